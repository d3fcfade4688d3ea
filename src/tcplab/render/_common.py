"""What every ladder view agrees on: column order, labels, times, gaps.

The text, SVG, DOT and Mermaid ladders all draw the same picture, so the
choices that make up that picture live here once: which endpoint is the left
column, how a segment is labelled, how a time is written, and which silences
are long enough to deserve a break in the time axis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from tcplab.fmt import value_text, window_shifts, window_text
from tcplab.timeline import (
    ApiCall,
    EndpointInfo,
    Event,
    Note,
    Packet,
    Snapshot,
    Source,
    StateChange,
    Timeline,
)

# A silence at least this long gets a visible break in the time axis.  The
# interesting gaps in TCP are timers: delayed ACK (Linux 40 ms minimum,
# RFC 9293 §3.8.6.3 allows up to 500 ms) and retransmission timeouts
# (RFC 6298 §2: 1 s initial, Linux 200 ms minimum).  Anything shorter is
# ordinary scheduling and round-trip noise and is drawn to scale.
BREAK_GAP = 0.1

# How a state's source is marked when shown as text.  The kernel's own
# tracepoint and the model are authoritative for their producer; snapshots
# are sampled (a state may have come and gone between two dumps) and
# inferred states are the analyzer's reading of packets alone.
SOURCE_MARK: dict[Source, str] = {
    Source.KERNEL: "",
    Source.MODEL: "",
    Source.SNAPSHOT: "*",
    Source.INFERRED: "?",
}
SOURCE_LEGEND: dict[Source, str] = {
    Source.KERNEL: "kernel tracepoint",
    Source.MODEL: "tcplab model",
    Source.SNAPSHOT: "sock_diag snapshot",
    Source.INFERRED: "inferred from packets",
}


@dataclass(frozen=True, slots=True)
class Columns:
    """The two endpoints drawn as columns: ``left`` is the client when known."""

    left: EndpointInfo
    right: EndpointInfo

    @property
    def names(self) -> tuple[str, str]:
        return (self.left.name, self.right.name)

    def side(self, name: str | None) -> int | None:
        """0 for the left column, 1 for the right, None for neither."""
        if name == self.left.name:
            return 0
        if name == self.right.name:
            return 1
        return None


def _event_endpoints(timeline: Timeline) -> list[str]:
    seen: list[str] = []
    for event in timeline.events:
        names: tuple[str | None, ...]
        if isinstance(event, Packet):
            names = (event.sender, event.receiver)
        elif isinstance(event, ApiCall):
            names = (event.actor,)
        elif isinstance(event, StateChange):
            names = (event.endpoint,)
        else:
            names = (event.endpoint,)
        for name in names:
            if name and name not in seen:
                seen.append(name)
    return seen


# The lab's wire is a third actor (blackhole, heal, release): never a column.
WIRE_ACTOR = "wire"


def columns(timeline: Timeline) -> Columns:
    """Endpoint order from ``timeline.endpoints``, the client (active opener) first.

    Endpoints that only appear in events (a hand-built timeline) are added in
    order of appearance, after the declared ones; a timeline about one
    endpoint gets an unnamed peer.  The wire is never a column.
    """
    infos = [info for info in timeline.endpoints if info.name != WIRE_ACTOR]
    known = {info.name for info in infos}
    if len(infos) < 2:
        infos += [EndpointInfo(name) for name in _event_endpoints(timeline)
                  if name not in known and name != WIRE_ACTOR]  # fmt: skip
    # Stable: among equal roles the declared order stands.
    infos.sort(key=lambda info: {"client": 0, "server": 2}.get(info.role, 1))
    while len(infos) < 2:
        infos.append(EndpointInfo("peer" if infos else "client"))
    return Columns(infos[0], infos[1])


_API_CAUSE = re.compile(r"^(connect|close|listen|shutdown|abort|sendto)\(")


def _draw_rank(event: Event) -> int:
    """Tie-break for events at one instant.

    ``Timeline.sort`` puts a call before the packet it caused (close() then
    FIN).  A blocking call that *returns* at the instant a packet arrives was
    woken by that packet (connect() returning ECONNREFUSED on a RST), so it
    goes after the packet and the state change the packet caused.
    """
    if isinstance(event, ApiCall):
        return 3 if event.started is not None and event.started < event.time else 0
    if isinstance(event, Packet):
        return 1
    if isinstance(event, StateChange):
        # A change a call made (connect() -> SYN-SENT) comes before the segment
        # it sends; one a segment made comes after it.
        return 0 if _API_CAUSE.match(event.cause) else 2
    if isinstance(event, Snapshot):
        return 4
    return 5


def ordered_events(timeline: Timeline) -> list[Event]:
    """The events in drawing order, leaving the caller's timeline as it is.

    Each packet carries the window scale shift of its connection
    (``Packet.win_shift``), so every view prints its window the same way.
    """
    events = sorted(timeline.events, key=lambda e: (e.time, _draw_rank(e)))
    packets = [e for e in events if isinstance(e, Packet)]
    shifts = iter(window_shifts(packets))
    return [replace(e, win_shift=next(shifts)) if isinstance(e, Packet) else e for e in events]


def snapshot_key(snap: Snapshot) -> tuple[str, str, str]:
    return (snap.endpoint, snap.local, snap.peer)


def _snapshot_shows(snap: Snapshot) -> tuple[object, ...]:
    return (snap.state, snap.rqueue, snap.wqueue, snap.timer)


def visible_events(timeline: Timeline) -> list[Event]:
    """``ordered_events`` without snapshots that repeat what the last one said.

    The lab dumps every socket after every step; a ladder shows a socket's
    snapshot only when its state, queues or timer kind changed, so a pile of
    identical ``LISTEN`` dumps does not bury the segments.
    """
    last: dict[tuple[str, str, str], tuple[object, ...]] = {}
    out: list[Event] = []
    for event in ordered_events(timeline):
        if isinstance(event, Snapshot):
            key = snapshot_key(event)
            shown = _snapshot_shows(event)
            if last.get(key) == shown:
                continue
            last[key] = shown
        out.append(event)
    return out


def snapshot_detail(snap: Snapshot) -> str:
    """What ``ss -tano`` would add to the state: queues and the running timer."""
    parts: list[str] = []
    if snap.rqueue:
        parts.append(f"Recv-Q {snap.rqueue}")
    if snap.wqueue:
        parts.append(f"Send-Q {snap.wqueue}")
    if snap.timer:
        parts.append(f"timer {snap.timer} {snap.timer_ms / 1000:.1f}s")
    return ", ".join(parts)


def start_time(events: list[Event]) -> float:
    return min((e.time for e in events), default=0.0)


def format_ms(seconds: float) -> str:
    """Milliseconds with microsecond precision: ``1000.123``."""
    return f"{seconds * 1000:.3f}"


def format_gap(seconds: float) -> str:
    """A silence in the unit that reads best: ``40.1 ms``, ``1.003 s``."""
    # Decide the unit on the rounded value: 0.99999 s reads "1.000 s".
    if round(seconds, 3) >= 1.0:
        return f"{seconds:.3f} s"
    if round(seconds, 4) >= 0.001:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def key_options(options: str) -> str:
    """The options a learner looks at in a SYN, short: ``mss 1460,sackOK,TS,wscale 7``.

    tcpdump's option text (``mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7``)
    carries padding (nop) and timestamp values that matter for RTT and PAWS
    (RFC 7323) but not for reading a handshake; the full text goes in the
    SVG tooltip and the report's packet table.
    """
    kept: list[str] = []
    for part in options.split(","):
        part = part.strip()
        if not part or part in ("nop", "eol"):
            continue
        if part.startswith("TS "):
            part = "TS"
        kept.append(part)
    return ",".join(kept)


def several_connections(timeline: Timeline) -> bool:
    """More than one 4-tuple on the wire (several clients, a reused port pair)."""
    tuples = {frozenset(((p.src, p.sport), (p.dst, p.dport))) for p in timeline.packets()}
    return len(tuples) > 1


def connection_tag(packet: Packet, cols: Columns) -> str:
    """The left endpoint's port, which tells connections apart: ``:40000``."""
    port = packet.sport if cols.side(packet.sender) != 1 else packet.dport
    return f":{port}"


def packet_label(
    packet: Packet, *, relative: bool = True, with_options: bool = True, tag: str = ""
) -> str:
    """``[S.] seq 0 ack 1 len 0 win 65160 <mss 1460,sackOK,TS,wscale 7>``.

    The window is shown on SYNs (it is unscaled there, RFC 7323 §2.2) and on
    segments without data; the options on SYNs only, where they are
    negotiated (RFC 9293 §3.7.1 MSS, RFC 7323 window scale, RFC 2018 SACK).
    """
    text = (f"{tag} " if tag else "") + packet.label(relative)
    if "S" in packet.flags or packet.length == 0 or "R" in packet.flags:
        text += f" win {window_text(packet.window, packet.win_shift, syn='S' in packet.flags)}"
    if with_options and "S" in packet.flags and packet.options:
        short = key_options(packet.options)
        if short:
            text += f" <{short}>"
    return text


def state_text(change: StateChange | Snapshot) -> str:
    if isinstance(change, Snapshot):
        return f"{change.state.value}{SOURCE_MARK[Source.SNAPSHOT]}"
    return f"{change.new.value}{SOURCE_MARK[change.source]}"


def note_text(note: Note) -> str:
    return note.text


def _sock_prefix(call: ApiCall) -> tuple[str, list[str]]:
    sock = [a for a in call.args if a.startswith("sock=")]
    rest = [a for a in call.args if not a.startswith("sock=")]
    return (f"{sock[0].removeprefix('sock=')}: " if sock else ""), rest


def api_call_text(call: ApiCall) -> str:
    """The call as what really happened, without its result.

    Most steps are socket calls and read as one (``bind(port=8080)``).  A
    few are not: the lab's ``abort`` is ``setsockopt(SO_LINGER {1,0})`` then
    ``close()`` (RFC 9293 §3.10.5 ABORT), ``fork_close`` forks and the child
    closes its copy, ``kill`` is a signal, and the wire's steps are done to
    the wire, not by an endpoint.
    """
    sock, rest = _sock_prefix(call)
    if call.actor == WIRE_ACTOR:
        host = next((a.split("=", 1)[1].strip("'\"") for a in call.args
                     if a.startswith("host=")), "?")  # fmt: skip
        if call.call == "blackhole":
            return f"the wire drops everything to and from the {host}"
        if call.call == "heal":
            return f"the wire carries the {host}'s packets again"
        if call.call == "release":
            return "the wire lets the packets it holds go"
    if call.call == "abort":
        return f"{sock}setsockopt(SO_LINGER {{1,0}}); close()"
    if call.call == "fork_close":
        return f"{sock}fork(); close() in child"
    if call.call == "kill":
        return "kill(SIGKILL): the process dies, the kernel closes its sockets"
    if call.call == "sleep":
        return f"sleeps {', '.join(a.split('=', 1)[-1] for a in rest)} s"
    if call.call == "wait":
        values = dict(a.split("=", 1) for a in rest if "=" in a)
        state = values.get("state", "").strip("'\"")
        return f"{sock}waits until ss shows {state}" if state else \
            f"{sock}waits until the socket is gone"
    return f"{call.call}({', '.join(call.args)})"


def api_result_text(call: ApiCall) -> str:
    """What the call returned: ``= 12``, ``-> EADDRINUSE``; empty when nothing to say."""
    if call.errno:
        return f"-> {call.errno}"
    if call.call in ("sleep", "abort", "wait") or call.actor == WIRE_ACTOR:
        return ""
    if call.result is not None:
        return f"= {value_text(call.result)}"
    return ""


def api_text(call: ApiCall) -> str:
    """The call and its result on one line."""
    result = api_result_text(call)
    return f"{api_call_text(call)} {result}".rstrip()


__all__ = [
    "BREAK_GAP",
    "SOURCE_LEGEND",
    "SOURCE_MARK",
    "Columns",
    "api_text",
    "columns",
    "connection_tag",
    "format_gap",
    "format_ms",
    "key_options",
    "note_text",
    "ordered_events",
    "packet_label",
    "several_connections",
    "snapshot_detail",
    "snapshot_key",
    "start_time",
    "state_text",
    "visible_events",
]


# -- held packets -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """A held or delayed segment reaching its receiver (``packet.delivered``).

    Renderers draw the segment from its send row to this row, so it crosses
    whatever happened in between, as it did on the wire.
    """

    time: float
    packet: Packet

    kind = "arrival"


def split_arrivals(items: list[Any]) -> list[Any]:
    """``items`` with an ``Arrival`` after every packet that arrived later than
    something else happened (the wire held or delayed it past other events)."""
    times = sorted(i.time for i in items)
    out = list(items)
    extra: list[Arrival] = []
    for item in items:
        if not isinstance(item, Packet) or item.dropped or item.delivered is None:
            continue
        if item.delivered <= item.time:
            continue
        if any(item.time < t < item.delivered for t in times) or item.delivered - item.time > 1e-3:
            extra.append(Arrival(item.delivered, item))
    if not extra:
        return out
    merged = out + extra
    order = {id(x): i for i, x in enumerate(merged)}
    # An arrival goes before anything at its own instant but after the items
    # stamped earlier (it caused the state change the receiver reports then).
    merged.sort(key=lambda x: (x.time, 0 if isinstance(x, Arrival) else 1, order[id(x)]))
    return merged


def arrives_later(packet: Packet, items: list[Any]) -> bool:
    return any(isinstance(i, Arrival) and i.packet is packet for i in items)


# -- the sequence arithmetic (--explain-seq) ------------------------------------------


def _seq_end(packet: Packet) -> int | None:
    if packet.rel_seq is None:
        return None
    return packet.rel_seq + packet.length + ("S" in packet.flags) + ("F" in packet.flags)


def seq_explanations(packets: list[Packet]) -> dict[int, str]:
    """Per packet (by ``id``), the arithmetic the seed notes teach, in relative numbers.

    ``ack 13 = 1 + 12``: the acknowledgment number is the next byte expected,
    the acknowledged segment's seq plus its length; a SYN and a FIN each
    occupy one sequence number (RFC 9293 §3.4), so ``ack 1 = 0 + SYN`` and
    ``ack 14 = 13 + FIN``.  An ACK that acknowledges nothing new says so.
    """
    out: dict[int, str] = {}
    by_sender: dict[str, list[Packet]] = {}
    acked: dict[str, int] = {}
    for packet in sorted(packets, key=lambda p: p.time):
        parts: list[str] = []
        seq = packet.rel_seq
        if seq is not None:
            if "S" in packet.flags:
                parts.append(f"SYN takes seq {seq}, next {seq + 1}")
            if packet.length:
                parts.append(f"bytes {seq}–{seq + packet.length - 1}, next {seq + packet.length}")
            if "F" in packet.flags:
                fin = seq + packet.length
                parts.append(f"FIN takes seq {fin}, next {fin + 1}")
        ack = packet.rel_ack
        if "." in packet.flags and ack is not None and "R" not in packet.flags:
            other = [p for p in by_sender.get(packet.receiver, []) if p.arrival <= packet.time]
            match = next((p for p in reversed(other) if _seq_end(p) == ack), None)
            pure = packet.length == 0 and not set(packet.flags) & set("SF")
            if acked.get(packet.sender) == ack and (match is None or match.length == 0):
                if pure:
                    parts.append(f"ack {ack}: nothing new, still expects {ack}")
            elif match is not None and match.rel_seq is not None:
                terms = [str(match.rel_seq)]
                if match.length:
                    terms.append(str(match.length))
                if "S" in match.flags:
                    terms.append("SYN")
                if "F" in match.flags:
                    terms.append("FIN")
                parts.append(f"ack {ack} = {' + '.join(terms)}")
            else:
                parts.append(f"ack {ack}: expects seq {ack} next")
            acked[packet.sender] = ack
        if parts:
            out[id(packet)] = "; ".join(parts)
        by_sender.setdefault(packet.sender, []).append(packet)
    return out


# -- long ladders: runs of like segments --------------------------------------------


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Many like segments in a row (a bulk transfer), drawn as one row."""

    time: float
    end: float
    sender: str
    receiver: str
    segments: int
    length: int  # the size of every data segment, 0 when they differ
    acks: int
    hidden: tuple[Packet, ...]
    shortest: int = 0
    longest: int = 0

    kind = "run"

    def text(self) -> str:
        every = f", ACKed every {round(self.segments / self.acks)}" if self.acks else ", no ACKs"
        size = (f"of {self.length} bytes" if self.length
                else f"of {self.shortest}–{self.longest} bytes")  # fmt: skip
        return f"… {self.segments} data segments {size} {self.sender} → {self.receiver}{every}"


RUN_MIN = 10  # data segments in a stretch before it is collapsed
RUN_KEEP = 2  # segments kept visible at each end of a stretch


def _plain_segment(item: Any) -> bool:
    return (isinstance(item, Packet) and not item.dropped and not item.annotations
            and not set(item.flags) & set("SFR") and item.delivered is None)  # fmt: skip


def collapse_runs(items: list[Any]) -> list[Any]:
    """A bulk transfer: a stretch of plain segments where one side sends data and
    the other only ACKs, with at least ``RUN_MIN`` data segments, becomes a
    ``RunSummary`` between its first and last ``RUN_KEEP`` segments."""
    out: list[Any] = []
    i = 0
    while i < len(items):
        item = items[i]
        if not (_plain_segment(item) and item.length > 0):
            out.append(item)
            i += 1
            continue
        sender = item.sender
        j = i
        while j < len(items) and _plain_segment(items[j]):
            p = items[j]
            if not ((p.sender == sender and p.length > 0) or (p.sender != sender
                                                              and p.length == 0)):
                break
            j += 1
        stretch = items[i:j]
        data = [p for p in stretch if p.sender == sender]
        if len(data) < RUN_MIN:
            out.extend(stretch)
            i = j
            continue
        hidden = tuple(stretch[RUN_KEEP:-RUN_KEEP])
        sizes = {p.length for p in hidden if p.sender == sender}
        segs = sum(1 for p in hidden if p.sender == sender)
        out.extend(stretch[:RUN_KEEP])
        out.append(RunSummary(hidden[0].time, hidden[-1].time, sender, item.receiver, segs,
                              sizes.pop() if len(sizes) == 1 else 0, len(hidden) - segs, hidden,
                              min(sizes, default=0), max(sizes, default=0)))  # fmt: skip
        out.extend(stretch[-RUN_KEEP:])
        i = j
    return out
