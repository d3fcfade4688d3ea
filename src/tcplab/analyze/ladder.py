"""Analyzer results as a ``tcplab.timeline.Timeline``, and inference on lab timelines.

``timeline_for`` turns one connection's packets into the timeline every
renderer draws (two columns, client and server, states written down each
column from the inferred ``StateChange`` events).  ``infer_states`` runs the
same per-endpoint inference on a timeline someone else produced (the lab's),
using each ``Packet``'s raw IP bytes when present and its decoded fields
otherwise, so the lab can merge the analyzer's view with the kernel's.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcplab.analyze.core import CLIENT, SERVER, Connection, PacketRecord, ambiguity
from tcplab.analyze.infer import InferredLike, ObserverLike, Pair, make_observer
from tcplab.states import State
from tcplab.timeline import EndpointInfo, Note, Packet, Source, StateChange, Timeline
from tcplab.wire.decode import TcpPacket, WireError, decode_frame
from tcplab.wire.flags import Flags
from tcplab.wire.link import LinkType

_LETTERS = {
    "S": Flags.SYN,
    "F": Flags.FIN,
    "R": Flags.RST,
    "P": Flags.PSH,
    ".": Flags.ACK,
    "U": Flags.URG,
    "E": Flags.ECE,
    "W": Flags.CWR,
    "e": Flags.AE,
}


def flags_from_text(text: str) -> int:
    """tcpdump flag letters back to bits ("S." -> SYN|ACK)."""
    bits = 0
    for ch in text:
        bits |= int(_LETTERS.get(ch, 0))
    return bits


def timeline_for(packets: Sequence[PacketRecord], connection: Connection) -> Timeline:
    """One connection as a Timeline with inferred state changes (Source.INFERRED)."""
    client, server = connection.client, connection.server
    timeline = Timeline(
        title=f"connection {connection.number}: {client.label} -> {server.label}",
        producer="analyze",
        endpoints=[
            EndpointInfo(
                CLIENT, client.address, client.port, "client" if connection.roles_known else ""
            ),
            EndpointInfo(
                SERVER, server.address, server.port, "server" if connection.roles_known else ""
            ),
        ],
        meta={"conn_state": connection.zeek_conn_state, "history": connection.zeek_history},
    )
    if connection.roles_known:
        # What was true before the first packet: the client had not opened,
        # the server was listening.
        t0 = packets[0].time if packets else connection.start
        timeline.add(StateChange(t0, CLIENT, None, State.CLOSED, Source.INFERRED, "before capture"))
        timeline.add(StateChange(t0, SERVER, None, State.LISTEN, Source.INFERRED, "before capture"))
    for p in packets:
        receiver = SERVER if p.sender == CLIENT else CLIENT
        annotations = tuple(sorted(p.analysis))
        timeline.add(
            Packet(
                time=p.time,
                sender=p.sender,
                receiver=receiver,
                src=p.src,
                sport=p.sport,
                dst=p.dst,
                dport=p.dport,
                flags=p.flag_text,
                seq=p.seq,
                ack=p.ack,
                length=p.length,
                window=p.window,
                options=p.options,
                rel_seq=p.rel_seq,
                rel_ack=p.rel_ack,
                dropped=p.dropped_by_wire,
                annotations=annotations,
                raw=p.raw,
            )
        )
        for who, change, when in p.changes:
            _add_change(timeline, who, change, max(when, p.time))
    for who, change, when in connection.trailing_changes:
        _add_change(timeline, who, change, when)
    return timeline


def _add_change(timeline: Timeline, who: str, change: InferredLike, when: float) -> None:
    timeline.add(_state_change(who, change, when))
    note = ambiguity(change)
    if note:
        timeline.add(Note(when, note, who))


def infer_states(timeline: Timeline) -> list[StateChange]:
    """Per-endpoint inferred state changes for any timeline's packets.

    The endpoint names are the timeline's own (``Packet.sender`` /
    ``Packet.receiver``).  The first pure SYN's sender starts CLOSED and its
    receiver LISTEN; without a SYN both start unknown.  A ``dropped`` packet
    (the lab's wire lost it) moves its sender, never its receiver.
    """
    packets = timeline.packets()
    pairs: dict[frozenset[str], Pair] = {}
    changes: list[StateChange] = []
    for p in packets:
        seq, ack, length, flags = p.seq, p.ack, p.length, flags_from_text(p.flags)
        if p.raw:
            try:
                decoded = decode_frame(LinkType.RAW, p.raw, verify_checksum=False)
            except WireError:
                decoded = None  # damaged bytes: the Packet's own fields stand
            if isinstance(decoded, TcpPacket):
                seq, ack, length, flags = (
                    decoded.seq,
                    decoded.ack,
                    decoded.length,
                    int(decoded.flags),
                )
        key = frozenset((p.sender, p.receiver))
        pair = pairs.get(key)
        if pair is None:
            pure_syn = flags & (Flags.SYN | Flags.ACK) == Flags.SYN
            observers: dict[str, ObserverLike] = {
                p.sender: make_observer(State.CLOSED if pure_syn else None),
                p.receiver: make_observer(State.LISTEN if pure_syn else None),
            }
            pair = pairs[key] = Pair(observers)
        sent = pair.packet(p.sender, p.receiver, seq, ack, flags, length, p.time, not p.dropped)
        for who, change, when in sent:
            changes.append(_state_change(who, change, when))
    for pair in pairs.values():
        for who, change, when in pair.flush():
            changes.append(_state_change(who, change, when))
    return changes


def _state_change(who: str, change: InferredLike, when: float) -> StateChange:
    return StateChange(
        when,
        who,
        change.old,
        change.new,
        Source.INFERRED,
        f"{change.cause} ({change.rfc})" if change.rfc else change.cause,
    )


def state_path(changes: Sequence[StateChange], endpoint: str) -> list[State]:
    """The sequence of states an endpoint went through (first old state included)."""
    path: list[State] = []
    for change in changes:
        if change.endpoint != endpoint:
            continue
        if not path and change.old is not None:
            path.append(change.old)
        path.append(change.new)
    return path
