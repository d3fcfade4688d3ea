"""A deterministic discrete-event network between model endpoints.

Theory of operation: ``send(sender, receiver, seg, now)`` decides the
segment's fate at once and schedules its arrival(s); ``next_deadline()`` is
the earliest pending arrival or hold release; ``due(now)`` hands back, in
order, every segment that has arrived by ``now``.  Virtual time only: the
caller owns the clock.

Two kinds of mischief:

* the scenario's fault rules (``scenario.FaultRule``), played by the same
  ``FaultProgram`` the live lab's wire uses (``tcplab.lab.faults``, pure
  code, no I/O), so one scenario file means the same thing in both;
* per-direction link properties (``Link``): delay, random loss,
  duplication and reordering, drawn from an injected random source (any
  object with ``random() -> float``; ``SplitMix64`` is provided, since
  ``tcplab.model`` does not import ``random``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Protocol

from tcplab.lab.faults import FaultProgram, Release
from tcplab.lab.faults import Segment as FaultSegment
from tcplab.model.segment import Segment
from tcplab.scenario import FaultRule


class RandomSource(Protocol):
    def random(self) -> float: ...


class SplitMix64:
    """A small seedable PRNG (Steele, Lea, Flood 2014): same seed, same run."""

    def __init__(self, seed: int) -> None:
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return z ^ (z >> 31)

    def random(self) -> float:
        return (self.next_u64() >> 11) / float(1 << 53)

    def randrange(self, low: int, high: int) -> int:
        return low + self.next_u64() % (high - low)


@dataclass(frozen=True, slots=True)
class Link:
    """One direction of the path: what happens to every segment a sender sends."""

    delay: float = 0.0005
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0  # probability a segment is held back by reorder_delay
    reorder_delay: float = 0.003


@dataclass(frozen=True, slots=True)
class Transmission:
    """What the wire did with one segment, for the timeline."""

    time: float
    sender: str
    receiver: str
    segment: Segment
    dropped: bool
    notes: tuple[str, ...] = ()


@dataclass(order=True)
class _Arrival:
    time: float
    order: int
    receiver: str = field(compare=False)
    segment: Segment = field(compare=False)
    sent_at: float = field(compare=False, default=0.0)


class Network:
    def __init__(
        self,
        rules: tuple[FaultRule, ...] = (),
        *,
        links: dict[str, Link] | None = None,
        rng: RandomSource | None = None,
    ) -> None:
        self._faults: FaultProgram[int] = FaultProgram(rules)
        self._links = links or {}
        self._rng = rng
        self._arrivals: list[_Arrival] = []
        self._order = 0
        self._tokens: dict[int, tuple[str, str, Segment, float]] = {}
        self._next_token = 0
        self.blackholed: set[str] = set()

    def link(self, sender: str) -> Link:
        return self._links.get(sender, Link())

    def _chance(self, p: float) -> bool:
        return p > 0 and self._rng is not None and self._rng.random() < p

    def _schedule(self, at: float, receiver: str, seg: Segment, sent_at: float) -> None:
        self._order += 1
        heapq.heappush(self._arrivals, _Arrival(at, self._order, receiver, seg, sent_at))

    def _deliver(self, release: Release[int]) -> list[str]:
        """Put a segment the fault program let go on the link; returns notes."""
        sender, receiver, seg, sent_at = self._tokens[release.token]
        link = self.link(sender)
        notes: list[str] = [release.note] if release.note else []
        if receiver in self.blackholed or sender in self.blackholed:
            return [*notes, "blackholed"]
        if self._chance(link.loss):
            return [*notes, "lost (random loss)"]
        at = release.at + link.delay
        if self._chance(link.reorder):
            at += link.reorder_delay
            notes.append("reordered")
        self._schedule(at, receiver, seg, sent_at)
        if self._chance(link.duplicate):
            self._schedule(at + link.delay / 2, receiver, seg, sent_at)
            notes.append("duplicated")
        return notes

    def send(self, sender: str, receiver: str, seg: Segment, now: float) -> Transmission:
        token = self._next_token
        self._next_token += 1
        self._tokens[token] = (sender, receiver, seg, now)
        if sender in self.blackholed or receiver in self.blackholed:
            return Transmission(now, sender, receiver, seg, True, ("blackholed",))
        fault_view = FaultSegment(
            sender=sender,
            flags=seg.flags.tcpdump(),
            seq=seg.seq.value,
            ack=seg.ack.value if seg.ack is not None else 0,
            payload_len=len(seg.payload),
        )
        releases = self._faults.on_packet(now, fault_view, token)
        if not releases:
            return Transmission(now, sender, receiver, seg, False, ("held by a fault rule",))
        notes: list[str] = []
        dropped = True
        for release in releases:
            if release.token != token:
                self._deliver(release)  # a hold let earlier packets go with this one
                continue
            if release.dropped:
                notes.append(release.note)
                continue
            more = self._deliver(release)
            if not any(n in ("lost (random loss)", "blackholed") for n in more):
                dropped = False
            notes.extend(more)
        return Transmission(now, sender, receiver, seg, dropped, tuple(n for n in notes if n))

    def release_held(self, now: float) -> None:
        """The wire's ``release`` step: every held packet goes now."""
        for release in self._faults.flush(now):
            self._deliver(release)

    def next_deadline(self) -> float | None:
        times = [self._arrivals[0].time] if self._arrivals else []
        hold = self._faults.next_deadline()
        if hold is not None:
            times.append(hold)
        return min(times, default=None)

    def due(self, now: float) -> list[tuple[str, Segment, float]]:
        """(receiver, segment, when it was sent) for everything arrived by ``now``."""
        for release in self._faults.tick(now):
            self._deliver(release)
        out: list[tuple[str, Segment, float]] = []
        while self._arrivals and self._arrivals[0].time <= now:
            arrival = heapq.heappop(self._arrivals)
            out.append((arrival.receiver, arrival.segment, arrival.sent_at))
        return out

    @property
    def in_flight(self) -> int:
        return len(self._arrivals)
