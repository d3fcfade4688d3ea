"""State inference for any timeline's packets: the model's observer, per endpoint pair.

The lab (``tcplab.lab.runner``) and the renderers infer states for the
packets of a timeline they built; the analyzer's engine infers them for a
capture.  Both run the model's ``Observer`` (``tcplab.model.observe``) along
the model's transition table, with ``tcplab.analyze.infer.Pair`` deciding
when a segment seen on the wire has reached the other end.
"""

from __future__ import annotations

from tcplab.analyze.infer import InferredLike, ObserverLike, Pair, make_observer
from tcplab.states import State
from tcplab.timeline import Source, StateChange, Timeline
from tcplab.wire.decode import TcpPacket, WireError, decode_frame
from tcplab.wire.flags import Flags
from tcplab.wire.link import LinkType


def flags_from_text(text: str) -> int:
    """tcpdump flag letters back to bits ("S." -> SYN|ACK)."""
    return int(Flags.from_tcpdump(text))


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
            changes.append(state_change(who, change, when))
    for pair in pairs.values():
        for who, change, when in pair.flush():
            changes.append(state_change(who, change, when))
    return changes


def state_change(who: str, change: InferredLike, when: float) -> StateChange:
    return StateChange(
        when,
        who,
        change.old,
        change.new,
        Source.INFERRED,
        f"{change.cause} ({change.rfc})" if change.rfc else change.cause,
    )


