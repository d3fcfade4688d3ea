"""Infer one endpoint's TCP state from the segments it sends and receives.

The analyzer (``tcplab analyze``) has only packets.  An ``Observer`` watches
one endpoint of one connection and moves it along the same
``TRANSITIONS`` the model runs on: a sender changes state when it sends (its
FIN means close() was called, its RST means an abort), a receiver when the
segment arrives (SYN, SYN-ACK, the ACK of its SYN or FIN, the peer's FIN, a
RST).  Every inferred change names the table edge's trigger and RFC section.

A SYN arriving at a listener is taken into SYN-RECEIVED only once the
endpoint answers it: the table's edge LISTEN --rcv SYN--> SYN-RECEIVED
*sends* the SYN-ACK (RFC 9293 §3.10.7.2), and a port nobody listens on
answers the same SYN with RST instead (§3.10.7.1) from CLOSED, never having
had a connection.  Until the answer is seen the SYN is pending; the change
then carries ``at``, the SYN's arrival time, since that is when it happened.

What packets cannot show is said, not guessed silently: ``ambiguous`` carries
the reason when a change had to be assumed (capture started midstream, a FIN
that could be close() or shutdown(SHUT_WR)).  Timer-driven changes are never
on the wire: TIME-WAIT -> CLOSED is not reported, so an active closer's last
inferred state is TIME-WAIT, as ``ss`` would show it.

TCP Fast Open (RFC 7413) shows on the wire as a SYN carrying data: the
client's SYN-ACK then acknowledges up to ISS + 1 + the data (or only the SYN,
and the data is sent again), and the server's SYN-ACK acknowledging the data
is the table's "rcv SYN with a valid cookie" edge.

An endpoint's own packets also prove what it has received when the capture
lacks the peer's segments (one direction of an asymmetric route, a capture
filtered with ``src host``): an ACK sent in SYN-SENT proves the SYN-ACK
arrived, an ACK of data beyond the SYN sent in SYN-RECEIVED proves the
handshake's ACK arrived.  Such a change takes the same table edge the
arrival would have taken and says it was inferred from one side.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.model.table import TRANSITIONS, Transition, Trigger, TriggerKind, edges_from, lookup
from tcplab.states import State
from tcplab.wire.flags import Control, Flags
from tcplab.wire.seq import Seq

_ACK = int(Flags.ACK)
# States in which sending a FIN is a change (RFC 9293 §3.10.4 CLOSE).
_BEFORE_CLOSE = frozenset({State.ESTABLISHED, State.SYN_RECEIVED, State.CLOSE_WAIT})


@dataclass(frozen=True, slots=True)
class Inferred:
    old: State | None
    new: State
    cause: str
    rfc: str
    ambiguous: str | None = None
    at: float | None = None  # when it took effect, if before the segment that showed it


class Observer:
    def __init__(self, initial: State | None = None) -> None:
        self.state: State | None = initial
        self.iss: Seq | None = None  # our SYN's sequence number
        self.irs: Seq | None = None  # the peer's
        self.our_fin_end: Seq | None = None  # sequence number after our FIN
        self.peer_fin_end: Seq | None = None
        self.sent_data = False
        self.received_data = False
        self.edges: list[Transition] = []
        # A SYN received in LISTEN (or unknown) state, not answered yet: its arrival time.
        self.pending_syn: float | None = None
        self.pending_syn_len = 0  # the data that SYN carried (TCP Fast Open)
        self.syn_data = 0  # the data our own SYN carried (TCP Fast Open)
        self.snd_max: Seq | None = None  # the highest sequence number we sent, plus one
        # What our SYN-ACK acknowledged (the peer's SYN, and its data with TFO).
        self.synack_ack: Seq | None = None
        # The state a received RST closed, until this endpoint shows it took it.
        self.before_reset: State | None = None

    # -- helpers ---------------------------------------------------------------

    def _take(self, trigger: Trigger, new: State, ambiguous: str | None = None,
              at: float | None = None) -> Inferred:
        old = self.state
        if old is None:
            self.state = new
            rfc = next((e.rfc for e in TRANSITIONS if e.trigger is trigger and e.next is new), "")
            return Inferred(None, new, trigger.value, rfc, ambiguous, at)
        edge = lookup(old, trigger, new)
        self.edges.append(edge)
        self.state = new
        return Inferred(old, new, trigger.value, edge.rfc, ambiguous, at)

    def _answered_syn(self, ambiguous: str | None = None,
                       ack: Seq | None = None) -> list[Inferred]:
        """The pending SYN was answered with a SYN-ACK: LISTEN -> SYN-RECEIVED,
        dated when the SYN arrived (RFC 9293 §3.10.7.2).  A SYN-ACK (``ack``)
        that acknowledges the SYN's data took it as Fast Open data (RFC 7413
        §4.2.2)."""
        at, self.pending_syn = self.pending_syn, None
        fastopen = (self.pending_syn_len > 0 and ack is not None and self.irs is not None
                    and ack == self.irs + 1 + self.pending_syn_len)
        out: list[Inferred] = []
        if self.state is None:
            self.state = State.LISTEN
            out.append(Inferred(None, State.LISTEN, "a SYN arrived", "RFC 9293 §3.10.7.2",
                                "LISTEN assumed: the first packet seen is a SYN to this port",
                                at))
        trigger = Trigger.RCV_SYN_FASTOPEN if fastopen else Trigger.RCV_SYN
        out.append(self._take(trigger, State.SYN_RECEIVED, ambiguous, at))
        return out

    def _assume(self, new: State, cause: str, why: str) -> Inferred:
        old = self.state
        self.state = new
        return Inferred(old, new, cause, "", why)

    def _midstream(self) -> list[Inferred]:
        if self.state is None and self.sent_data and self.received_data:
            return [self._assume(State.ESTABLISHED, "data both ways",
                                 "capture started midstream: the handshake was not seen")]
        return []

    # -- the endpoint sends ------------------------------------------------------

    def sent(self, seq: int, ack: int | None, flags: Flags | int, length: int,
             now: float) -> list[Inferred]:
        # Plain ints from here: IntFlag arithmetic builds a new enum member per
        # operation, which was a third of the analyzer's per-packet time.
        bits = int(flags)
        control = Control.of(bits)
        out: list[Inferred] = []
        if control is Control.INVALID:
            return out
        if length:
            self.sent_data = True
        end = Seq(seq) + length + (control in (Control.SYN, Control.FIN))
        if self.snd_max is None or end > self.snd_max:
            self.snd_max = end
        if control is Control.SYN:
            s = Seq(seq)
            if bits & _ACK and ack is not None:
                self.synack_ack = Seq(ack)
            if not bits & _ACK:
                if self.state in (None, State.CLOSED):
                    if length:
                        # RFC 7413 §4.2.2: data on the SYN is Fast Open.
                        out.append(self._take(
                            Trigger.CONNECT_FASTOPEN, State.SYN_SENT,
                            "sendto(MSG_FASTOPEN) or TCP_FASTOPEN_CONNECT: the wire cannot tell"))
                    else:
                        out.append(self._take(Trigger.CONNECT, State.SYN_SENT))
                    self.syn_data = length
                self.iss = s
            else:
                self.iss = s
                if self.pending_syn is not None:
                    out.extend(self._answered_syn(ack=Seq(ack) if ack is not None else None))
                elif self.state is None:
                    out.append(self._assume(State.SYN_RECEIVED, Trigger.RCV_SYN.value,
                                            "the SYN this SYN-ACK answers was not seen"))
                elif self.state is State.LISTEN:
                    out.append(self._take(Trigger.RCV_SYN, State.SYN_RECEIVED,
                                          "the SYN this SYN-ACK answers was not seen"))
            return out
        if control is Control.RST:
            return self._sent_reset(bits)
        if self.state is State.CLOSED and self.before_reset is not None and bits & _ACK:
            out.append(self._reset_not_taken(self.before_reset))
        if bits & _ACK and ack is not None:
            out.extend(self._own_ack_shows(Seq(ack)))
        if self.pending_syn is not None and bits & _ACK:
            # Answering with ACK means the SYN-ACK went out uncaptured.
            out.extend(self._answered_syn("the SYN-ACK answering the SYN was not seen"))
        if control is Control.FIN:
            end = Seq(seq) + length + 1
            if (self.our_fin_end is not None and end == self.our_fin_end
                    and self.state not in _BEFORE_CLOSE):
                return out  # a retransmitted FIN changes nothing
            self.our_fin_end = end
            out.extend(self._midstream())
            out.extend(self._sent_fin())
            return out
        if self.state is None:
            out.extend(self._midstream())
        return out

    def _own_ack_shows(self, ack: Seq) -> list[Inferred]:
        """What a segment this endpoint sends with ACK (neither SYN nor RST)
        proves it received, when the capture did not show the arrival."""
        if self.state is State.SYN_SENT:
            # RFC 9293 §3.10.7.3: SYN-SENT sends an ACK only on the SYN-ACK
            # that makes it ESTABLISHED (a bare SYN is answered with SYN-ACK).
            self.irs = ack - 1 if self.irs is None else self.irs
            return [self._take(Trigger.RCV_SYN_ACK, State.ESTABLISHED,
                               "inferred from one side: this endpoint's own ACK shows "
                               "the SYN-ACK arrived; the capture does not have it")]
        if (self.state is State.SYN_RECEIVED and self.synack_ack is not None
                and ack > self.synack_ack):
            # RFC 9293 §3.10.7.4: in SYN-RECEIVED a segment without ACK is
            # dropped (fifth check), and an acceptable ACK makes the endpoint
            # ESTABLISHED before its data is taken; acknowledging the peer's
            # data beyond the SYN proves such a segment arrived.
            return [self._take(Trigger.RCV_ACK_OF_SYN, State.ESTABLISHED,
                               "inferred from one side: this endpoint acknowledges data "
                               "sent after the handshake; the capture does not have its ACK")]
        return []

    def _sent_reset(self, bits: int) -> list[Inferred]:
        state = self.state
        if self.pending_syn is not None:
            # A SYN answered with RST, not SYN-ACK: nobody listened on that port
            # (RFC 9293 §3.10.7.1 answers from CLOSED), so no connection ever
            # existed.  Not an edge: what was assumed (LISTEN, or nothing) is corrected.
            self.pending_syn = None
            self.state = State.CLOSED
            reason = "the SYN reached a port nobody listens on: no connection existed"
            if state is State.LISTEN:
                reason += " (the LISTEN assumed before the capture was wrong)"
            return [Inferred(state, State.CLOSED, "sent RST", "RFC 9293 §3.10.7.1", reason)]
        if state is None:
            return [self._assume(State.CLOSED, "sent RST", "the state before the RST is unknown")]
        # Edges that send RST on the endpoint's own initiative (a call, a timer,
        # data arriving after close()); RSTs answering bad segments change nothing.
        candidates = [
            e for e in edges_from(state)
            if e.sends is Control.RST
            and (e.trigger.kind is not TriggerKind.SEGMENT
                 or e.trigger is Trigger.RCV_DATA_AFTER_CLOSE)
        ]
        if state is State.SYN_RECEIVED and not bits & _ACK:
            # <SEQ=SEG.ACK><CTL=RST> answers a bad ACK and the request stays (RFC 9293
            # §3.10.7.4); a child's own reset carries ACK (Linux tcp_send_active_reset).
            candidates = []
        if not candidates:
            return []  # a RST answering a bad segment (SYN-SENT, SYN-RECEIVED): no change
        first = candidates[0]
        why: str | None = None
        if len(candidates) > 1:
            why = "sent RST: " + " or ".join(e.trigger.value + (f" [{e.guard}]" if e.guard else "")
                                              for e in candidates)
        return [self._take(first.trigger, State.CLOSED, why)]

    def _sent_fin(self) -> list[Inferred]:
        state = self.state
        if state is None:
            if self.peer_fin_end is not None:
                return [self._assume(State.LAST_ACK, "sent FIN", "earlier states not seen")]
            return [self._assume(State.FIN_WAIT_1, "sent FIN", "earlier states not seen")]
        if state in (State.ESTABLISHED, State.SYN_RECEIVED):
            why = "close() or shutdown(SHUT_WR): the wire cannot tell" if (
                state is State.ESTABLISHED) else None
            return [self._take(Trigger.CLOSE, State.FIN_WAIT_1, why)]
        if state is State.CLOSE_WAIT:
            return [self._take(Trigger.CLOSE, State.LAST_ACK,
                               "close() or shutdown(SHUT_WR): the wire cannot tell")]
        return []

    # -- the endpoint receives ---------------------------------------------------

    def received(self, seq: int, ack: int | None, flags: Flags | int, length: int,
                 now: float) -> list[Inferred]:
        bits = int(flags)
        control = Control.of(bits)
        a = Seq(ack) if ack is not None and bits & _ACK else None
        out: list[Inferred] = []
        if control is Control.INVALID:
            return out
        if length:
            self.received_data = True
        if control is Control.RST:
            return self._received_reset(a)
        if control is Control.SYN:
            return self._received_syn(Seq(seq), a, length, now)
        if a is not None:
            if self.pending_syn is not None:
                # The peer ACKs something of ours: the SYN-ACK went out uncaptured.
                out.extend(self._answered_syn("the SYN-ACK answering the SYN was not seen"))
            # Only SYN-RECEIVED and a sent FIN wait for an ACK (_received_ack).
            if self.state is State.SYN_RECEIVED or self.our_fin_end is not None:
                out.extend(self._received_ack(a))
        if control is Control.FIN:
            end = Seq(seq) + length + 1
            if self.peer_fin_end is not None and end == self.peer_fin_end:
                return out  # retransmitted FIN
            self.peer_fin_end = end
            out.extend(self._midstream())
            out.extend(self._received_fin())
            return out
        if self.state is None:
            out.extend(self._midstream())
        return out

    def _received_reset(self, ack: Seq | None) -> list[Inferred]:
        state = self.state
        if state is None:
            return [self._assume(State.CLOSED, Trigger.RCV_RST.value,
                                 "the state before the RST is unknown")]
        if state in (State.CLOSED, State.LISTEN):
            return []  # RFC 9293 §3.10.7.1/§3.10.7.2: ignored
        if state is State.SYN_SENT and ack is not None and self.iss is not None and (
            not self.iss + 1 <= ack <= self.iss + 1 + self.syn_data
        ):
            # §3.10.7.3: a RST whose ACK is not acceptable (ISS < SEG.ACK =< SND.NXT,
            # past the SYN's data with Fast Open) is ignored.
            return []
        self.before_reset = state
        return [self._take(Trigger.RCV_RST, State.CLOSED)]

    def _reset_not_taken(self, restored: State) -> Inferred:
        """The endpoint sends on (ACK set, no SYN or RST) after a RST it was
        taken to accept: the RST never took effect.  RFC 5961 §3.2 answers an
        in-window RST that is not exactly RCV.NXT with a challenge ACK, and a
        RST forged or lost on the way never arrives.  Not a table edge (no
        edge leaves CLOSED that way): the inference that closed it is undone,
        as a refused SYN's assumed LISTEN is corrected."""
        old, self.state, self.before_reset = self.state, restored, None
        return Inferred(old, restored, "sent after the RST", "RFC 5961 §3.2",
                        "the RST it was sent did not take effect: it goes on sending "
                        "(a challenge ACK, or a RST that never arrived)")

    def _received_syn(self, seq: Seq, ack: Seq | None, length: int,
                      now: float) -> list[Inferred]:
        state = self.state
        if ack is None:
            if state in (None, State.LISTEN):
                # Pending until answered: SYN-ACK (a listener) or RST (no socket).
                self.irs = seq
                self.pending_syn_len = length
                if self.pending_syn is None:
                    self.pending_syn = now
                return []
            if state is State.SYN_SENT:
                self.irs = seq
                return [self._take(Trigger.RCV_SYN, State.SYN_RECEIVED)]
            return []  # retransmitted SYN, or a SYN answered by a challenge ACK
        # SYN-ACK
        self.irs = seq
        if state is None:
            return [self._assume(State.ESTABLISHED, Trigger.RCV_SYN_ACK.value,
                                 "our SYN was not seen")]
        if state in (State.SYN_SENT, State.SYN_RECEIVED):
            # RFC 9293 §3.10.7.3: ISS < SEG.ACK =< SND.NXT, which is past the
            # SYN's data with Fast Open (RFC 7413 §4.2.2).
            if self.iss is not None and not self.iss + 1 <= ack <= self.iss + 1 + self.syn_data:
                return []
            if (state is State.SYN_SENT and self.iss is not None and self.syn_data
                    and ack != self.iss + 1 + self.syn_data):
                # The server did not take (all) the data: it is sent again.
                return [self._take(Trigger.RCV_SYN_ACK_DATA_UNACKED, State.ESTABLISHED)]
            return [self._take(Trigger.RCV_SYN_ACK, State.ESTABLISHED)]
        return []

    def _received_ack(self, ack: Seq) -> list[Inferred]:
        state = self.state
        # ISS < SEG.ACK =< SND.NXT (RFC 9293 §3.10.7.4): a Fast Open server may
        # have sent data in SYN-RECEIVED, and the ACK may cover it too.
        if state is State.SYN_RECEIVED and (
            self.iss is None or self.snd_max is None or self.iss < ack <= self.snd_max
        ):
            return [self._take(Trigger.RCV_ACK_OF_SYN, State.ESTABLISHED)]
        if self.our_fin_end is None or ack < self.our_fin_end:
            return []
        nxt = {
            State.FIN_WAIT_1: State.FIN_WAIT_2,
            State.CLOSING: State.TIME_WAIT,
            State.LAST_ACK: State.CLOSED,
        }.get(state) if state is not None else None
        if nxt is None:
            return []
        return [self._take(Trigger.RCV_ACK_OF_FIN, nxt)]

    def _received_fin(self) -> list[Inferred]:
        state = self.state
        if state is None:
            guess = State.CLOSING if self.our_fin_end is not None else State.CLOSE_WAIT
            return [self._assume(guess, Trigger.RCV_FIN.value, "earlier states not seen")]
        nxt = {
            State.ESTABLISHED: State.CLOSE_WAIT,
            State.FIN_WAIT_1: State.CLOSING,
            State.FIN_WAIT_2: State.TIME_WAIT,
        }.get(state)
        if nxt is None:
            return []
        return [self._take(Trigger.RCV_FIN, nxt)]
