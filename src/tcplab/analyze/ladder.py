"""Analyzer results as a ``tcplab.timeline.Timeline``.

``timeline_for`` turns one connection's packets into the timeline every
renderer draws (two columns, client and server, states written down each
column from the inferred ``StateChange`` events).  The same inference on a
timeline someone else produced (the lab's) is ``tcplab.model.timeline_infer``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tcplab.analyze.core import CLIENT, SERVER, Connection, PacketRecord, ambiguity
from tcplab.analyze.infer import InferredLike
from tcplab.model.timeline_infer import state_change
from tcplab.states import State
from tcplab.timeline import EndpointInfo, Note, Packet, Source, StateChange, Timeline


def timeline_for(
    packets: Sequence[PacketRecord],
    connection: Connection,
    details: Mapping[int, tuple[bytes, str | None]] | None = None,
) -> Timeline:
    """One connection as a Timeline with inferred state changes (Source.INFERRED).

    ``details``: per frame number, the IP datagram and the packet comment
    (``tcplab.analyze.frames.frame_details``), for the views that show them."""
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
        raw, comment = details.get(p.index, (p.raw, None)) if details else (p.raw, None)
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
                raw=raw,
                comment=comment,
            )
        )
        for who, change, when in p.changes:
            _add_change(timeline, who, change, max(when, p.time))
    for who, change, when in connection.trailing_changes:
        _add_change(timeline, who, change, when)
    return timeline


def _add_change(timeline: Timeline, who: str, change: InferredLike, when: float) -> None:
    timeline.add(state_change(who, change, when))
    note = ambiguity(change)
    if note:
        timeline.add(Note(when, note, who))


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
