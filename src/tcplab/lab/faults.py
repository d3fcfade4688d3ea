"""The wire's fault program: which packets to drop, delay, duplicate or hold.

Sans-IO: the wire hands every TCP segment it reads to ``FaultProgram.on_packet``
with the time (seconds since the run started) and an opaque token, and gets
back ``Release`` decisions (deliver now / at time T / never); ``tick(now)``
releases held packets whose time is up and ``next_deadline()`` tells the
wire how long it may sleep.  No clock, no sockets in here.

Rules come from the scenario (``scenario.FaultRule``) and are tried in
order; the first rule that selects a packet decides its fate.  A rule
*matches* on sender, exact tcpdump flags, payload, time window and a
``when`` predicate about the connection's close so far; ``nth`` then picks
among the matches (1-based; 0 = every match).

``when`` predicates (a live wire cannot see the future, so "the last ACK"
has to be recognised as it happens):

* ``sent-fin``  -- the sender has already sent its FIN;
* ``got-fin``   -- the sender has already acknowledged the peer's FIN;
* ``final-ack`` -- an empty, pure ACK from a side that has sent its own FIN
  and whose ack number covers the peer's FIN: the active closer's last ACK
  (RFC 9293 §3.6, the segment that moves the peer out of LAST-ACK or
  CLOSING).

A ``hold`` rule releases once (``release_after`` packets held, or its
``seconds`` up, or a ``release`` wire step) and is then spent.  ``wire``
steps in the scenario blackhole/heal a host from that moment on
(``set_blackhole``), which is steadier than a time window.

``nth = -1`` ("the last match") is played as ``when = "final-ack", nth = 1``
when the rule has no ``when``: on a clean close the final ACK is the last
segment the sender sends, and the first such ACK is the one a learner means
(later ones answer retransmitted FINs from TIME-WAIT).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tcplab.errors import InputError
from tcplab.scenario import FAULT_WHEN, FaultRule
from tcplab.wire.seq import Seq

WHEN_PREDICATES = FAULT_WHEN
Token = TypeVar("Token")


@dataclass(frozen=True, slots=True)
class Segment:
    """What the fault program needs to know about a packet (decoded by the wire)."""

    sender: str  # "client" | "server"
    flags: str  # tcpdump text: "S", "S.", ".", "P.", "F.", "R."
    seq: int
    ack: int
    payload_len: int

    @property
    def fin(self) -> bool:
        return "F" in self.flags

    @property
    def syn(self) -> bool:
        return "S" in self.flags


@dataclass(frozen=True, slots=True)
class Release(Generic[Token]):
    token: Token
    at: float  # seconds since the run started; when the packet goes out
    dropped: bool = False
    note: str = ""  # why: "dropped by fault 1", "held until 2 FINs crossed"


@dataclass
class _RuleState(Generic[Token]):
    rule: FaultRule
    index: int
    when: str
    nth: int
    matches: int = 0
    held: list[tuple[float, Token]] = field(default_factory=list)
    spent: bool = False  # a hold rule releases once, then lets everything pass


@dataclass
class _CloseTracker:
    """Per sender: where its FIN ended (seq of FIN + 1), once it has sent one."""

    fin_end: dict[str, Seq] = field(default_factory=dict)
    acked_peer_fin: set[str] = field(default_factory=set)

    def observe(self, seg: Segment) -> None:
        peer = "server" if seg.sender == "client" else "client"
        if peer in self.fin_end and "." in seg.flags and Seq(seg.ack) == self.fin_end[peer]:
            self.acked_peer_fin.add(seg.sender)
        if seg.fin and seg.sender not in self.fin_end:
            # RFC 9293 §3.4: the FIN occupies one sequence number after the data.
            self.fin_end[seg.sender] = Seq(seg.seq) + seg.payload_len + 1

    def holds(self, when: str, seg: Segment) -> bool:
        peer = "server" if seg.sender == "client" else "client"
        if when == "":
            return True
        if when == "sent-fin":
            return seg.sender in self.fin_end
        if when == "got-fin":
            return seg.sender in self.acked_peer_fin
        # final-ack
        return (
            seg.flags == "."
            and seg.payload_len == 0
            and seg.sender in self.fin_end
            and peer in self.fin_end
            and Seq(seg.ack) == self.fin_end[peer]
        )


def validate(rule: FaultRule, where: str) -> None:
    if rule.when not in WHEN_PREDICATES:
        raise InputError(f"{where}: when={rule.when!r} (known: {', '.join(WHEN_PREDICATES[1:])})")
    if rule.nth < -1:
        raise InputError(
            f"{where}: nth={rule.nth}: a live wire cannot know the {-rule.nth}th-last packet in "
            "advance; use a 'when' predicate (sent-fin, got-fin, final-ack) and a positive nth"
        )
    if rule.action == "hold" and rule.release_after < 1:
        raise InputError(f"{where}: hold needs release_after >= 1")


class FaultProgram(Generic[Token]):
    def __init__(self, rules: tuple[FaultRule, ...]) -> None:
        self._rules: list[_RuleState[Token]] = []
        for i, rule in enumerate(rules):
            validate(rule, f"fault {i + 1}")
            when, nth = rule.when, rule.nth
            if nth == -1 and not when:
                when, nth = "final-ack", 1
            elif nth == -1:
                nth = 1
            self._rules.append(_RuleState(rule, i + 1, when, nth))
        self._close = _CloseTracker()
        self._blackholed: set[str] = set()  # hosts cut off by a wire step

    def set_blackhole(self, host: str, on: bool) -> None:
        """A ``wire`` step: drop every packet to and from ``host`` from now on (or stop)."""
        if on:
            self._blackholed.add(host)
        else:
            self._blackholed.discard(host)

    def release_all(self, now: float) -> list[Release[Token]]:
        """A ``wire`` step ``release``: every held packet goes now."""
        return self.flush(now)

    def _matches(self, state: _RuleState[Token], now: float, seg: Segment) -> bool:
        rule = state.rule
        if rule.after is not None and now < rule.after:
            return False
        if rule.before is not None and now >= rule.before:
            return False
        if rule.action == "blackhole":
            # Two hosts on one wire: every packet is to or from the blackholed host.
            return True
        if rule.sender not in ("any", seg.sender):
            return False
        if rule.flags != "any" and rule.flags != seg.flags:
            return False
        if rule.payload is not None and rule.payload != (seg.payload_len > 0):
            return False
        return self._close.holds(state.when, seg)

    def on_packet(self, now: float, seg: Segment, token: Token) -> list[Release[Token]]:
        out = self._decide(now, seg, token)
        self._close.observe(seg)
        return out

    def _decide(self, now: float, seg: Segment, token: Token) -> list[Release[Token]]:
        if self._blackholed:
            # Two hosts on one wire: every packet is to or from a blackholed host.
            hosts = " and ".join(f"the {h}" for h in sorted(self._blackholed))
            note = f"the wire drops everything to and from {hosts}"
            return [Release(token, now, dropped=True, note=note)]
        for state in self._rules:
            if state.spent:
                continue
            if not self._matches(state, now, seg):
                continue
            if state.rule.action == "blackhole":
                note = f"the wire drops everything from the {seg.sender} (fault {state.index})"
                return [Release(token, now, dropped=True, note=note)]
            state.matches += 1
            if state.nth not in (0, state.matches):
                continue
            rule = state.rule
            label = rule.note or f"the scenario's fault {state.index}"
            if rule.action == "drop":
                return [Release(token, now, dropped=True, note=label)]
            if rule.action == "delay":
                note = f"the wire delays it {rule.seconds} s: {label}"
                return [Release(token, now + rule.seconds, note=note)]
            if rule.action == "duplicate":
                note = f"the wire duplicates it: {label}"
                return [Release(token, now), Release(token, now, note=note)]
            # hold: keep until release_after packets are held, then let them cross.
            state.held.append((now, token))
            if len(state.held) >= rule.release_after:
                return self._release(state, now)
            return []
        return [Release(token, now)]

    def _release(self, state: _RuleState[Token], now: float) -> list[Release[Token]]:
        label = state.rule.note or f"the scenario's fault {state.index}"
        n = len(state.held)
        others = f", let go with {n - 1} more" if n > 1 else ""

        def note(held: float) -> str:
            if held < 5e-4 and n > 1:  # the packet that completed the hold
                return f"the wire let it go at once with the {n - 1} it held: {label}"
            return f"the wire held it {held * 1000:.1f} ms: {label}{others}"

        out = [Release(tok, now, note=note(now - t)) for t, tok in state.held]
        state.held.clear()
        state.spent = True
        return out

    def tick(self, now: float) -> list[Release[Token]]:
        """Release holds whose ``seconds`` have run out."""
        out: list[Release[Token]] = []
        for state in self._rules:
            rule = state.rule
            if state.held and rule.seconds > 0 and now >= state.held[0][0] + rule.seconds:
                out.extend(self._release(state, now))
        return out

    def next_deadline(self) -> float | None:
        times = [
            s.held[0][0] + s.rule.seconds for s in self._rules if s.held and s.rule.seconds > 0
        ]
        return min(times) if times else None

    def flush(self, now: float) -> list[Release[Token]]:
        """At the end of a run: whatever is still held goes out."""
        out: list[Release[Token]] = []
        for state in self._rules:
            if state.held:
                out.extend(self._release(state, now))
        return out
