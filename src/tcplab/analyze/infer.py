"""One endpoint's TCP state, inferred from the segments it sends and receives.

Theory of operation: the capture shows segments, not states.  An observer
per endpoint replays RFC 9293's state diagram from that endpoint's point of
view: a sender changes state when it *sends* (a FIN moves ESTABLISHED to
FIN-WAIT-1 as the FIN leaves), a receiver when the segment *arrives* (an
ACK of our FIN moves FIN-WAIT-1 to FIN-WAIT-2).  The transitions are data
(``TRANSITIONS``: ``(state, event) -> (next state, RFC section)``) so the
docs and tests read the same table the engine runs.  Guards that need
sequence numbers (does this ACK cover our FIN?) are named predicates.

The model's own observer (``tcplab.model.observe.Observer``, driven by the
model's transition table) has the same interface; ``make_observer`` prefers
it when it is installed, so the lab and the analyzer share one table.

Where a capture starts mid-connection the state is ``None`` ("unknown")
until a segment pins it down; every guess is marked ``ambiguous`` with a
note saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from tcplab.states import State
from tcplab.wire.flags import Flags
from tcplab.wire.seq import Seq


class Event(Enum):
    """What an endpoint did or saw, normalised from one segment (STYLE.md rule 5)."""

    SND_SYN = "snd SYN"
    SND_SYN_ACK = "snd SYN,ACK"
    SND_FIN = "snd FIN"
    SND_RST = "snd RST"
    RCV_SYN = "rcv SYN"
    RCV_SYN_ACK = "rcv SYN,ACK"
    RCV_ACK_OF_SYN = "rcv ACK of SYN"
    RCV_ACK_OF_FIN = "rcv ACK of FIN"
    RCV_FIN = "rcv FIN"
    RCV_FIN_ACK_OF_FIN = "rcv FIN,ACK of FIN"
    RCV_RST = "rcv RST"


# (state, event) -> (next state, RFC 9293 section).  ``None`` as the state
# means "not known yet" (capture started midstream).
TRANSITIONS: dict[tuple[State | None, Event], tuple[State, str]] = {
    # Opening (§3.5, Figure 6; §3.10.7.2 LISTEN, §3.10.7.3 SYN-SENT).
    (State.CLOSED, Event.SND_SYN): (State.SYN_SENT, "RFC 9293 §3.10.1 (active OPEN)"),
    (None, Event.SND_SYN): (State.SYN_SENT, "RFC 9293 §3.10.1 (active OPEN)"),
    (State.LISTEN, Event.SND_SYN_ACK): (State.SYN_RECEIVED, "RFC 9293 §3.10.7.2"),
    (State.CLOSED, Event.SND_SYN_ACK): (State.SYN_RECEIVED, "RFC 9293 §3.10.7.2"),
    (None, Event.SND_SYN_ACK): (State.SYN_RECEIVED, "RFC 9293 §3.10.7.2"),
    (State.SYN_SENT, Event.RCV_SYN_ACK): (State.ESTABLISHED, "RFC 9293 §3.10.7.3"),
    (None, Event.RCV_SYN_ACK): (State.ESTABLISHED, "RFC 9293 §3.10.7.3"),
    # Simultaneous open (§3.5 Figure 7).
    (State.SYN_SENT, Event.RCV_SYN): (State.SYN_RECEIVED, "RFC 9293 §3.10.7.3 (simultaneous open)"),
    (State.SYN_RECEIVED, Event.RCV_ACK_OF_SYN): (State.ESTABLISHED, "RFC 9293 §3.10.7.4"),
    (State.SYN_RECEIVED, Event.RCV_SYN_ACK): (State.ESTABLISHED, "RFC 9293 §3.10.7.4"),
    # Closing (§3.6, Figures 12-13; §3.10.4 CLOSE; §3.10.7.4 FIN processing).
    (State.ESTABLISHED, Event.SND_FIN): (State.FIN_WAIT_1, "RFC 9293 §3.10.4 (CLOSE)"),
    (State.SYN_RECEIVED, Event.SND_FIN): (State.FIN_WAIT_1, "RFC 9293 §3.10.4 (CLOSE)"),
    (State.CLOSE_WAIT, Event.SND_FIN): (State.LAST_ACK, "RFC 9293 §3.10.4 (CLOSE)"),
    (State.FIN_WAIT_1, Event.RCV_ACK_OF_FIN): (State.FIN_WAIT_2, "RFC 9293 §3.10.7.4"),
    (State.CLOSING, Event.RCV_ACK_OF_FIN): (State.TIME_WAIT, "RFC 9293 §3.10.7.4"),
    (State.LAST_ACK, Event.RCV_ACK_OF_FIN): (State.CLOSED, "RFC 9293 §3.10.7.4"),
    (State.ESTABLISHED, Event.RCV_FIN): (State.CLOSE_WAIT, "RFC 9293 §3.10.7.4 (eighth, FIN)"),
    (State.SYN_RECEIVED, Event.RCV_FIN): (State.CLOSE_WAIT, "RFC 9293 §3.10.7.4 (eighth, FIN)"),
    (State.FIN_WAIT_1, Event.RCV_FIN): (State.CLOSING, "RFC 9293 §3.10.7.4 (simultaneous close)"),
    (State.FIN_WAIT_2, Event.RCV_FIN): (State.TIME_WAIT, "RFC 9293 §3.10.7.4 (eighth, FIN)"),
    (State.FIN_WAIT_2, Event.RCV_FIN_ACK_OF_FIN): (State.TIME_WAIT, "RFC 9293 §3.10.7.4"),
    # Aborts (§3.10.7.3 and §3.10.7.4 "first, check sequence number" / RST).
    (State.SYN_SENT, Event.RCV_RST): (State.CLOSED, "RFC 9293 §3.10.7.3 (RST: connection refused)"),
    (State.SYN_RECEIVED, Event.RCV_RST): (State.CLOSED, "RFC 9293 §3.10.7.4 (RST)"),
    (State.ESTABLISHED, Event.RCV_RST): (State.CLOSED, "RFC 9293 §3.10.7.4 (RST: reset)"),
    (State.FIN_WAIT_1, Event.RCV_RST): (State.CLOSED, "RFC 9293 §3.10.7.4 (RST: reset)"),
    (State.FIN_WAIT_2, Event.RCV_RST): (State.CLOSED, "RFC 9293 §3.10.7.4 (RST: reset)"),
    (State.CLOSE_WAIT, Event.RCV_RST): (State.CLOSED, "RFC 9293 §3.10.7.4 (RST: reset)"),
    (State.CLOSING, Event.RCV_RST): (State.CLOSED, "RFC 9293 §3.10.7.4 (RST)"),
    (State.LAST_ACK, Event.RCV_RST): (State.CLOSED, "RFC 9293 §3.10.7.4 (RST)"),
    (State.TIME_WAIT, Event.RCV_RST): (State.CLOSED, "RFC 1337 (Linux default rfc1337=0)"),
    (None, Event.RCV_RST): (State.CLOSED, "RFC 9293 §3.10.7.4 (RST)"),
}
# Sending a RST aborts from any state (§3.10.5 ABORT, §3.10.7.1 CLOSED).
for _state in [None, *State]:
    if _state not in (State.CLOSED, State.LISTEN):
        TRANSITIONS[(_state, Event.SND_RST)] = (State.CLOSED, "RFC 9293 §3.10.5 (ABORT) / §3.10.7")


@dataclass(frozen=True, slots=True)
class Inferred:
    """One inferred state change."""

    old: State | None
    new: State
    cause: str
    rfc: str
    ambiguous: bool = False
    note: str = ""


class InferredLike(Protocol):
    """What any observer reports per change (ours or the model's ``Inferred``).

    ``ambiguous`` is a bool (ours, with the reason in ``note``) or the reason
    itself (the model's); ``tcplab.analyze.core.ambiguity`` reads both.
    """

    @property
    def old(self) -> State | None: ...

    @property
    def new(self) -> State: ...

    @property
    def cause(self) -> str: ...

    @property
    def rfc(self) -> str: ...

    @property
    def ambiguous(self) -> object: ...


class ObserverLike(Protocol):
    state: State | None

    def sent(
        self, seq: int, ack: int, flags: int, length: int, now: float
    ) -> Sequence[InferredLike]: ...

    def received(
        self, seq: int, ack: int, flags: int, length: int, now: float
    ) -> Sequence[InferredLike]: ...


class Observer:
    """Replays TRANSITIONS for one endpoint.

    ``initial`` is what is known before the first segment: CLOSED for the
    side that sends the first SYN, LISTEN for the side that receives it,
    ``None`` when the capture starts midstream.
    """

    def __init__(self, initial: State | None) -> None:
        self.state: State | None = initial
        self._fin_end: Seq | None = None  # sequence number just after our FIN
        self._iss_end: Seq | None = None  # sequence number just after our SYN
        self._peer_fin_seen = False

    def _apply(self, event: Event, note: str = "", ambiguous: bool = False) -> list[Inferred]:
        entry = TRANSITIONS.get((self.state, event))
        if entry is None:
            return []
        new, rfc = entry
        if new == self.state:
            return []
        old = self.state
        if old is None:
            ambiguous = True
            note = note or "capture started midstream: the earlier state is unknown"
        self.state = new
        return [Inferred(old, new, event.value, rfc, ambiguous, note)]

    def sent(self, seq: int, ack: int, flags: int, length: int, now: float) -> list[Inferred]:
        f = Flags(flags)
        if f & Flags.RST:
            return self._apply(Event.SND_RST)
        out: list[Inferred] = []
        if f & Flags.SYN:
            self._iss_end = Seq(seq) + 1
            out += self._apply(Event.SND_SYN_ACK if f & Flags.ACK else Event.SND_SYN)
        if f & Flags.FIN:
            if self._fin_end is None or Seq(seq) + length + 1 > self._fin_end:
                self._fin_end = Seq(seq) + length + (1 if f & Flags.SYN else 0) + 1
            if self.state is None:
                # Midstream: a FIN after the peer's FIN closes from CLOSE-WAIT.
                self.state = State.CLOSE_WAIT if self._peer_fin_seen else State.ESTABLISHED
                out += [
                    Inferred(
                        None,
                        self.state,
                        "snd FIN",
                        "RFC 9293 §3.10.4",
                        True,
                        "capture started midstream: state before the FIN assumed",
                    )
                ]
            out += self._apply(Event.SND_FIN)
        return out

    def received(self, seq: int, ack: int, flags: int, length: int, now: float) -> list[Inferred]:
        f = Flags(flags)
        if f & Flags.RST:
            note = ""
            ambiguous = False
            if self.state == State.TIME_WAIT:
                ambiguous = True
                note = "RST in TIME-WAIT: Linux (rfc1337=0) closes, RFC 1337 says ignore"
            return self._apply(Event.RCV_RST, note, ambiguous)
        out: list[Inferred] = []
        acks_syn = bool(f & Flags.ACK) and self._iss_end is not None and Seq(ack) >= self._iss_end
        acks_fin = bool(f & Flags.ACK) and self._fin_end is not None and Seq(ack) >= self._fin_end
        if f & Flags.SYN:
            if f & Flags.ACK:
                out += self._apply(Event.RCV_SYN_ACK)
            else:
                out += self._apply(Event.RCV_SYN)
            if not f & Flags.FIN:
                return out
        elif acks_syn and self.state == State.SYN_RECEIVED:
            out += self._apply(Event.RCV_ACK_OF_SYN)
        if acks_fin and self.state in (State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK):
            out += self._apply(Event.RCV_ACK_OF_FIN)
        if f & Flags.FIN:
            self._peer_fin_seen = True
            if self.state is None:
                return out  # cannot tell ESTABLISHED from FIN-WAIT-2: stay unknown
            out += self._apply(Event.RCV_FIN)
        return out


def make_observer(initial: State | None) -> ObserverLike:
    """The model's observer when the model package provides one, else ours."""
    try:
        from tcplab.model.observe import Observer as ModelObserver
    except ImportError:
        return Observer(initial)
    model_observer: ObserverLike = ModelObserver(initial)
    return model_observer


_SYN, _FIN, _RST, _ACK = 0x02, 0x01, 0x04, 0x10
MAX_IN_FLIGHT = 64


@dataclass(frozen=True, slots=True)
class _InFlight:
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
    the capture is taken next to one of them.  What is never acknowledged is
    delivered at the end (``flush``).
    """

    def __init__(self, observers: dict[str, ObserverLike]) -> None:
        self.observers = observers
        self.in_flight: dict[str, list[_InFlight]] = {name: [] for name in observers}
        self.last_time: dict[str, float] = {name: float("-inf") for name in observers}

    def state(self, name: str) -> State | None:
        return self.observers[name].state

    def _deliver(
        self, name: str, seg: _InFlight, now: float
    ) -> list[tuple[str, InferredLike, float]]:
        when = max(seg.time, self.last_time[name])
        out = []
        for change in self.observers[name].received(seg.seq, seg.ack, seg.flags, seg.length, now):
            out.append((name, change, when))
            self.last_time[name] = when
        return out

    def packet(
        self, sender: str, receiver: str, seq: int, ack: int, flags: int, length: int, now: float
    ) -> list[tuple[str, InferredLike, float]]:
        """One segment seen on the wire: (endpoint, change, time) in causal order."""
        out: list[tuple[str, InferredLike, float]] = []
        queue = self.in_flight[sender]
        if flags & _ACK:
            while queue and Seq(ack) >= queue[0].end:
                out += self._deliver(sender, queue.pop(0), now)
        elif flags & _RST:
            # A RST without ACK proves nothing; deliver what came before it.
            while queue:
                out += self._deliver(sender, queue.pop(0), now)
        for change in self.observers[sender].sent(seq, ack, flags, length, now):
            out.append((sender, change, now))
            self.last_time[sender] = now
        pending = self.in_flight[receiver]
        segment = _InFlight(seq, ack, flags, length, now)
        if not pending and not flags & (_SYN | _FIN):
            return out + self._deliver(receiver, segment, now)
        pending.append(segment)
        while len(pending) > MAX_IN_FLIGHT:
            out += self._deliver(receiver, pending.pop(0), now)
        return out

    def flush(self) -> list[tuple[str, InferredLike, float]]:
        """End of capture: everything still in flight is taken as delivered."""
        out: list[tuple[str, InferredLike, float]] = []
        items = sorted(
            (
                (seg.time, name, i, seg)
                for name, q in self.in_flight.items()
                for i, seg in enumerate(q)
            ),
            key=lambda x: (x[0], x[2]),
        )
        for _t, name, _i, seg in items:
            out += self._deliver(name, seg, seg.time)
        for q in self.in_flight.values():
            q.clear()
        return out
