"""What every ladder view agrees on: column order, labels, times, gaps.

The text, SVG, DOT and Mermaid ladders all draw the same picture, so the
choices that make up that picture live here once: which endpoint is the left
column, how a segment is labelled, how a time is written, and which silences
are long enough to deserve a break in the time axis.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tcplab.fmt import window_shifts, window_text
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


def columns(timeline: Timeline) -> Columns:
    """Endpoint order from ``timeline.endpoints``, the client (active opener) first.

    Endpoints that only appear in events (a hand-built timeline) are added in
    order of appearance; a timeline about one endpoint gets an unnamed peer.
    """
    infos = list(timeline.endpoints)
    known = {info.name for info in infos}
    infos += [EndpointInfo(name) for name in _event_endpoints(timeline) if name not in known]
    # Stable: among equal roles the declared order stands.
    infos.sort(key=lambda info: {"client": 0, "server": 2}.get(info.role, 1))
    while len(infos) < 2:
        infos.append(EndpointInfo("peer" if infos else "client"))
    return Columns(infos[0], infos[1])


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
        return 2
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


def api_text(call: ApiCall) -> str:
    return call.describe()


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
