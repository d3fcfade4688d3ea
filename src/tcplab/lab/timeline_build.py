"""Turn what a run recorded (wire records, kernel events, snapshots, replies) into a Timeline.

Pure functions: no namespaces, no clocks.  Times are CLOCK_MONOTONIC
seconds, the one clock of the wire, the actors and ``trace_clock=mono``.

Kernel state changes are attributed to an endpoint by the socket's local
address (every lab host has its own).  The tracepoint reports a socket
handed to its timewait mini-socket as ``FIN_WAIT2 -> CLOSE`` (also from
FIN_WAIT1 or CLOSING); the sock_diag snapshots say what it really became:
TIME-WAIT, or an orphaned FIN-WAIT-2 mini-socket (tcp_fin_timeout).  That
change is written with the kernel's time and ``Source.SNAPSHOT``.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from tcplab.lab.tracer import TraceEvent
from tcplab.lab.wire import WireRecord
from tcplab.states import State
from tcplab.timeline import Note, Packet, Source, StateChange
from tcplab.wire.flags import Flags
from tcplab.wire.seq import Seq

FourTuple = tuple[str, int, str, int]  # local addr, local port, remote addr, remote port


@dataclass(frozen=True, slots=True)
class Observation:
    """A socket's row in a sock_diag snapshot, kept when it differs from the last one."""

    time: float
    host: str
    tuple: FourTuple
    state: State | None  # None: the socket has left the table
    timer: str = ""
    expires_ms: int = 0
    # The socket's identity: sock_diag's idiag_cookie (the tracepoint's ``sock_cookie``)
    # and inode (0 for TIME-WAIT and request mini-sockets).  A four-tuple is not an
    # identity: a SYN may reopen a four-tuple whose TIME-WAIT socket is still listed.
    cookie: int = 0
    inode: int = 0


def decode_packets(records: list[WireRecord]) -> list[Packet]:
    """Wire records -> timeline Packets with Wireshark-style relative seq/ack.

    Relative numbers count from each direction's ISN, taken from its SYN
    (RFC 9293 §3.4); a direction whose SYN was not seen starts at its first
    segment, as Wireshark does.
    """
    from tcplab.wire.tcp import TcpHeader

    isn: dict[tuple[str, int, str, int], Seq] = {}
    out: list[Packet] = []
    for rec in records:
        raw = rec.raw
        if raw[0] >> 4 == 4:
            ihl = (raw[0] & 0x0F) * 4
            total = struct.unpack_from("!H", raw, 2)[0]
            src = socket.inet_ntop(socket.AF_INET, raw[12:16])
            dst = socket.inet_ntop(socket.AF_INET, raw[16:20])
            seg = raw[ihl:total]
        else:
            src = socket.inet_ntop(socket.AF_INET6, raw[8:24])
            dst = socket.inet_ntop(socket.AF_INET6, raw[24:40])
            seg = raw[40 : 40 + struct.unpack_from("!H", raw, 4)[0]]
        header, payload = TcpHeader.parse(bytes(seg))
        key = (src, header.sport, dst, header.dport)
        back = (dst, header.dport, src, header.sport)
        if header.flags & Flags.SYN or key not in isn:
            isn.setdefault(key, Seq(header.seq))
            if header.flags & Flags.SYN:
                isn[key] = Seq(header.seq)
        rel_seq = Seq(header.seq) - isn[key]
        rel_ack = Seq(header.ack) - isn[back] if back in isn and header.flags & Flags.ACK else None
        if rel_ack is None and header.flags & Flags.ACK:
            rel_ack = header.ack
        receiver = "server" if rec.sender == "client" else "client"
        out.append(
            Packet(
                time=rec.time_ns / 1e9,
                sender=rec.sender,
                receiver=receiver,
                src=src,
                sport=header.sport,
                dst=dst,
                dport=header.dport,
                flags=header.flags.tcpdump(),
                seq=header.seq,
                ack=header.ack,
                length=len(payload),
                window=header.window,
                options=header.option_text(),
                rel_seq=rel_seq,
                rel_ack=rel_ack,
                dropped=rec.dropped,
                annotations=(rec.note,) if rec.note else (),
                raw=raw,
                delivered=rec.delivered_ns / 1e9 if rec.delivered_ns is not None else None,
            )
        )
    return out


_HANDOFF_FROM = (State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING)
_UNSPECIFIED = ("0.0.0.0", "::", "")


def kernel_events(
    events: list[TraceEvent],
    hosts: dict[str, str],
    observations: list[Observation],
    aliases: dict[str, int] | None = None,
) -> list[StateChange | Note]:
    """Tracepoint events of this run's addresses -> StateChanges (KERNEL) and Notes.

    ``hosts`` maps an address to its endpoint name.  A ``-> CLOSE`` that is
    really a hand-off to a timewait mini-socket becomes the state the next
    snapshot of that four-tuple shows (TIME-WAIT, or FIN-WAIT-2 for an orphan).
    """
    out: list[StateChange | Note] = []
    aliases = aliases or {}
    for ev in events:
        local, remote = ev.local, ev.remote
        endpoint = hosts.get(local[0])
        # An alias (127.0.0.1) is not unique to the run: only its port, and a
        # peer that is one of the run's own addresses (or none), make it ours.
        if local[0] in aliases and (local[1] != aliases[local[0]] or remote[0] in aliases):
            continue
        # Both ends must be this run's (or unset: a listener, a socket not yet
        # connected); the addresses are unique to the run, the events global.
        if endpoint is None or (remote[0] not in hosts and remote[0] not in _UNSPECIFIED):
            continue
        if ev.event == "inet_sock_set_state":
            if ev.fields.get("protocol", "IPPROTO_TCP") != "IPPROTO_TCP":
                continue
            old = _state(ev.fields.get("oldstate", ""))
            new = _state(ev.fields.get("newstate", ""))
            if old is None or new is None or old is new:
                # old is new: tcp_set_state() fires the tracepoint even when the state
                # stays (close() after shutdown(SHUT_WR) in LAST-ACK: tcp_close_state
                # maps LAST_ACK to LAST_ACK).  Not a change.
                continue
            cause = "kernel"
            if remote[1] == 0:
                cause = f"listener :{local[1]}"
            if new is State.CLOSED and old in _HANDOFF_FROM:
                became = _after(observations, (local[0], local[1], remote[0], remote[1]), ev.time)
                if became is State.TIME_WAIT:
                    out.append(
                        StateChange(
                            ev.time, endpoint, old, State.TIME_WAIT, Source.SNAPSHOT,
                            f"kernel reports {old.linux_name} -> CLOSE (handed to the timewait "
                            "socket); sock_diag shows TIME-WAIT",
                        )
                    )  # fmt: skip
                    continue
                if became is State.FIN_WAIT_2:
                    out.append(
                        Note(
                            ev.time,
                            "orphaned: the kernel reports CLOSE, sock_diag still lists a "
                            "FIN-WAIT-2 mini-socket (lives tcp_fin_timeout seconds)",
                            endpoint,
                        )
                    )
                    if old is not State.FIN_WAIT_2:
                        out.append(
                            StateChange(ev.time, endpoint, old, State.FIN_WAIT_2, Source.SNAPSHOT,
                                        "orphaned FIN-WAIT-2 (sock_diag)")
                        )  # fmt: skip
                    continue
            out.append(StateChange(ev.time, endpoint, old, new, Source.KERNEL, cause))
        elif ev.event == "tcp_retransmit_skb":
            # One spelling of state names in what users read: the RFC's (LAST-ACK).
            raw = ev.fields.get("state", "")
            known = _state(raw)
            state = known.value if known is not None else raw.removeprefix("TCP_")
            out.append(Note(ev.time, f"kernel: retransmission (in {state})", endpoint))
        elif ev.event == "tcp_send_reset":
            reason = ev.fields.get("reason", "?")
            out.append(Note(ev.time, f"kernel: sends RST ({reason})", endpoint))
        elif ev.event == "tcp_receive_reset":
            out.append(Note(ev.time, "kernel: received RST", endpoint))
    return out


def state_event_times(events: list[TraceEvent]) -> dict[FourTuple, list[float]]:
    """Times of the tracepoint's state changes by four-tuple (for ``snapshot_changes``)."""
    times: dict[FourTuple, list[float]] = {}
    for ev in events:
        if ev.event == "inet_sock_set_state":
            key = (ev.local[0], ev.local[1], ev.remote[0], ev.remote[1])
            times.setdefault(key, []).append(ev.time)
    return times


def _state(text: str) -> State | None:
    if text == "TCP_NEW_SYN_RECV":
        return State.SYN_RECEIVED
    try:
        return State.parse(text)
    except ValueError:
        return None


def _after(observations: list[Observation], key: FourTuple, time: float) -> State | None:
    """The first hand-off state a snapshot completed after ``time`` shows for ``key``
    (snapshots are stamped when complete, so they cannot predate what they show)."""
    for obs in observations:
        if obs.tuple == key and obs.time >= time and obs.state in (
            State.TIME_WAIT, State.FIN_WAIT_2,
        ):
            if obs.state is State.FIN_WAIT_2 and obs.timer != "timewait":
                continue
            return obs.state
    return None


def snapshot_changes(
    observations: list[Observation],
    traced: bool,
    kernel_times: dict[FourTuple, list[float]] | None = None,
) -> list[StateChange]:
    """StateChanges from snapshots.

    With the tracepoint (``traced``), only what it cannot report: a
    timewait mini-socket moving on (orphan FIN-WAIT-2 -> TIME-WAIT) or
    leaving the table.  Without it, every change the snapshots saw.

    A row is one socket by its cookie, not by its four-tuple: when a SYN
    reopens a four-tuple in TIME-WAIT (Linux: tcp_timewait_state_process ->
    TCP_TW_SYN; RFC 9293 §3.6 MAY-2, RFC 6191), the next snapshot lists a
    new socket under the same four-tuple.  That is the TIME-WAIT socket
    leaving (-> CLOSED) and a new one appearing (CLOSED -> ...), never a
    TIME-WAIT -> ESTABLISHED change.  ``kernel_times`` (tracepoint state
    events by four-tuple) dates the leaving: the timewait socket is gone
    before the new socket's first event, which may predate the snapshot.
    """
    out: list[StateChange] = []
    last: dict[tuple[str, FourTuple], Observation] = {}
    for obs in observations:
        key = (obs.host, obs.tuple)
        prev = last.get(key)
        last[key] = obs
        if prev is not None and prev.state is not None and _replaced(prev, obs):
            left = _left_at(prev, obs, (kernel_times or {}).get(obs.tuple, []))
            out.append(
                StateChange(left, obs.host, prev.state, State.CLOSED, Source.SNAPSHOT,
                            "sock_diag: the timewait socket left the table (a new SYN "
                            "reopened its four-tuple)" if _is_mini(prev) else
                            "sock_diag: the socket left the table; a new one has its four-tuple")
            )  # fmt: skip
            if not traced and obs.state is not None:
                out.append(StateChange(obs.time, obs.host, State.CLOSED, obs.state,
                                       Source.SNAPSHOT, "sock_diag: a new socket"))  # fmt: skip
            continue
        old = prev.state if prev else None
        new = obs.state if obs.state is not None else State.CLOSED
        if prev is not None and old is new:
            continue
        if traced:
            if prev is None or not _is_mini(prev):
                continue
            cause = "sock_diag: the timewait socket left the table" if obs.state is None else (
                "sock_diag"
            )
        else:
            cause = "sock_diag" if obs.state is not None else "sock_diag: gone from the table"
        if prev is None and obs.state is None:
            continue
        out.append(StateChange(obs.time, obs.host, old, new, Source.SNAPSHOT, cause))
    return out


def _is_mini(obs: Observation) -> bool:
    """A timewait mini-socket: TIME-WAIT, or an orphaned FIN-WAIT-2 on the timewait timer."""
    return obs.timer == "timewait" and obs.state in (State.TIME_WAIT, State.FIN_WAIT_2)


def _replaced(prev: Observation, obs: Observation) -> bool:
    """Whether ``obs`` is another socket than ``prev`` under the same four-tuple.

    A request socket (SYN-RECEIVED) is replaced by its child when the
    handshake's ACK arrives (tcp_check_req): a new cookie, the same
    connection (RFC 9293 §3.10.7.4 SYN-RECEIVED -> ESTABLISHED).
    """
    if obs.state is None or not prev.cookie or not obs.cookie or prev.cookie == obs.cookie:
        return False
    return prev.state is not State.SYN_RECEIVED


def _left_at(prev: Observation, obs: Observation, kernel_times: list[float]) -> float:
    """When the replaced socket left: just before the new socket's first tracepoint event
    after the last snapshot showing the old one, else when the snapshot saw it gone."""
    for t in sorted(kernel_times):
        if prev.time <= t <= obs.time:
            # The old socket is removed (inet_twsk_deschedule_put) before the listener
            # handles the SYN; one microsecond, the tracepoint's resolution, orders it first.
            return t - 1e-6
    return obs.time
