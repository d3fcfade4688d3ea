"""One endpoint's TCP state, inferred from the segments it sends and receives.

Theory of operation: the capture shows segments, not states.  An observer
per endpoint replays RFC 9293's state diagram from that endpoint's point of
view: a sender changes state when it *sends* (a FIN moves ESTABLISHED to
FIN-WAIT-1 as the FIN leaves), a receiver when the segment *arrives* (an
ACK of our FIN moves FIN-WAIT-1 to FIN-WAIT-2).  The observer is the
model's (``tcplab.model.observe.Observer``), which moves only along the
model's transition table (``tcplab.model.table.TRANSITIONS``), so the lab,
the model and the analyzer share one table.  This module adds what a
capture needs on top: ``Pair`` decides when a segment seen on the wire has
reached the other end.

Where a capture starts mid-connection the state is ``None`` ("unknown")
until a segment pins it down; every guess is marked ``ambiguous`` with a
note saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tcplab.model.observe import Observer
from tcplab.model.table import Trigger
from tcplab.states import State
from tcplab.wire.seq import Seq


class InferredLike(Protocol):
    """What the observer reports per change (``tcplab.model.observe.Inferred``):
    ``ambiguous`` is the reason a change had to be assumed, ``at`` the time it
    took effect when that is before the segment that revealed it."""

    @property
    def old(self) -> State | None: ...

    @property
    def new(self) -> State: ...

    @property
    def cause(self) -> str: ...

    @property
    def rfc(self) -> str: ...

    @property
    def ambiguous(self) -> str | None: ...

    @property
    def at(self) -> float | None: ...


class ObserverLike(Protocol):
    state: State | None

    def sent(
        self, seq: int, ack: int, flags: int, length: int, now: float
    ) -> Sequence[InferredLike]: ...

    def received(
        self, seq: int, ack: int, flags: int, length: int, now: float
    ) -> Sequence[InferredLike]: ...


def make_observer(initial: State | None) -> ObserverLike:
    """The model's observer: the analyzer and the lab infer from one table."""
    observer: ObserverLike = Observer(initial)
    return observer


_SYN, _FIN, _RST, _ACK = 0x02, 0x01, 0x04, 0x10
MAX_IN_FLIGHT = 64
# Changes a *sent* segment reveals when the capture lacks the peer's answer:
# the endpoint's own ACK shows the handshake completed (Observer._own_ack_shows).
_HANDSHAKE_SHOWN = frozenset({Trigger.RCV_SYN_ACK.value, Trigger.RCV_ACK_OF_SYN.value})


@dataclass(frozen=True, slots=True)
class _InFlight:
    sender: str
    seq: int
    ack: int
    flags: int
    length: int
    time: float

    @property
    def end(self) -> Seq:
        return (
            Seq(self.seq)
            + self.length
            + (1 if self.flags & _SYN else 0)
            + (1 if self.flags & _FIN else 0)
        )

    @property
    def proof(self) -> Seq:
        """The acknowledgment that shows it arrived: a SYN's own sequence number
        is enough, since a server that does not take a Fast Open SYN's data
        acknowledges the SYN alone (RFC 7413 §4.2.2)."""
        return Seq(self.seq) + 1 if self.flags & _SYN else self.end


class Pair:
    """Two endpoints' observers and the segments in flight between them.

    A capture is taken at one point on the path, so a segment seen leaving
    one end has not necessarily reached the other.  The sender's change is
    applied when the segment is seen.  A SYN or FIN (what can cross its
    peer's) is delivered to the receiver only once the receiver shows it has
    it: one of its own segments acknowledges the SYN or FIN (RFC 9293 §3.4);
    a receiver's segment that does not was sent before it arrived, so the
    receiver's own change comes first.  Other segments are delivered at once
    unless something is already waiting for that receiver: they never
    overtake it.  That is what makes a simultaneous close (the FINs cross, RFC
    9293 §3.6 Figure 13) come out as FIN-WAIT-1 -> CLOSING on both ends when
    the capture is taken next to one of them.

    At the end of the capture (``flush``) what is still held is delivered
    only where the receiver's own packets cannot say otherwise: an endpoint
    that has packets in the capture and never acknowledged a SYN or FIN is
    not taken to have received it (nor what queued behind it), so the end
    of the capture never moves it past what its packets show (crossing FINs
    whose second FIN is retransmitted unanswered leave the receiver in
    FIN-WAIT-1).  Those segments are listed in ``undelivered``.  An
    endpoint with no packets at all in the capture (a one-sided capture)
    is taken to have received everything sent to it.

    A segment known to be lost (``delivered=False``: a tcplab capture's
    "dropped by the wire") is sent and never received: its sender's change
    is applied, its receiver is never told.  Its acknowledgment still proves
    what its sender had received, so it still delivers what it acknowledges.
    """

    def __init__(self, observers: dict[str, ObserverLike]) -> None:
        self.observers = observers
        self.in_flight: dict[str, list[_InFlight]] = {name: [] for name in observers}
        self.last_time: dict[str, float] = {name: float("-inf") for name in observers}
        self.has_sent: dict[str, bool] = {name: False for name in observers}
        # Held SYN/FIN segments (and what queued behind them) the end of the
        # capture did not deliver: (receiver, segment).
        self.undelivered: list[tuple[str, _InFlight]] = []

    def state(self, name: str) -> State | None:
        return self.observers[name].state

    def _deliver(self, name: str, seg: _InFlight) -> list[tuple[str, InferredLike, float]]:
        when = max(seg.time, self.last_time[name])
        out = []
        # The observer is told when the segment arrived (``when``), not when
        # the capture proved it: a SYN pending an answer is dated by it.
        for change in self.observers[name].received(seg.seq, seg.ack, seg.flags, seg.length, when):
            at = when if change.at is None else change.at
            out.append((name, change, at))
            self.last_time[name] = max(self.last_time[name], at)
        return out

    def packet(
        self,
        sender: str,
        receiver: str,
        seq: int,
        ack: int,
        flags: int,
        length: int,
        now: float,
        delivered: bool = True,
    ) -> list[tuple[str, InferredLike, float]]:
        """One segment seen on the wire: (endpoint, change, time) in causal order.

        ``delivered=False``: the segment is known never to have reached ``receiver``."""
        out: list[tuple[str, InferredLike, float]] = []
        self.has_sent[sender] = True
        queue = self.in_flight[sender]
        if flags & _ACK:
            while queue and Seq(ack) >= queue[0].proof:
                out += self._deliver(sender, queue.pop(0))
        elif flags & _RST:
            # A RST without ACK proves nothing; deliver what came before it.
            while queue:
                out += self._deliver(sender, queue.pop(0))
        answered = False
        for change in self.observers[sender].sent(seq, ack, flags, length, now):
            # A change the segment only revealed (a SYN-ACK answering a SYN)
            # happened when its cause arrived.
            when = now if change.at is None else change.at
            out.append((sender, change, when))
            self.last_time[sender] = max(self.last_time[sender], when)
            answered = answered or change.cause in _HANDSHAKE_SHOWN
        if answered:
            # The sender's own ACK showed its handshake completed (the peer's
            # answer is not in the capture): the peer had its SYN.
            pending = self.in_flight[receiver]
            while pending and pending[0].flags & _SYN and pending[0].sender == sender:
                out += self._deliver(receiver, pending.pop(0))
        if not delivered:
            # Lost on the way (RFC 9293 §3.10.7: a segment that never arrives
            # is never processed): the receiver's state is what it was.
            return out
        pending = self.in_flight[receiver]
        segment = _InFlight(sender, seq, ack, flags, length, now)
        if not pending and not flags & (_SYN | _FIN):
            return out + self._deliver(receiver, segment)
        pending.append(segment)
        while len(pending) > MAX_IN_FLIGHT:
            out += self._deliver(receiver, pending.pop(0))
        return out

    def flush(self) -> list[tuple[str, InferredLike, float]]:
        """End of capture: what is still in flight is delivered, up to the
        first SYN or FIN a receiver with packets of its own never acknowledged."""
        out: list[tuple[str, InferredLike, float]] = []
        deliver: list[tuple[float, int, str, _InFlight]] = []
        for name, queue in self.in_flight.items():
            for i, seg in enumerate(queue):
                if self.has_sent[name] and seg.flags & (_SYN | _FIN):
                    self.undelivered += [(name, held) for held in queue[i:]]
                    break
                deliver.append((seg.time, i, name, seg))
        for _t, _i, name, seg in sorted(deliver, key=lambda x: (x[0], x[1])):
            out += self._deliver(name, seg)
        for q in self.in_flight.values():
            q.clear()
        return out
