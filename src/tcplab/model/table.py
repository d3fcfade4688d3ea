"""The TCP state set and transition table, as data (RFC 9293 §3.3.2, Figure 5).

Theory of operation: every state change the model makes, every edge of the
state diagram ``tcplab states`` draws, every state the analyzer's
``Observer`` infers and the coverage test's list of edges come from
``TRANSITIONS`` below.  The engine (``tcplab.model.tcb``) changes state only
through ``_set_state(new, trigger)``, which looks the edge up here and raises
``TransitionError`` when there is none, so code and diagram cannot drift apart
(the drift h11's ``make-state-diagrams.py`` warns about is designed out).

A ``Trigger`` is what makes the edge fire: an API call, a kind of arriving
segment (flags already normalised into ``Control`` plus "does it ACK our
SYN/FIN"), or a timer.  ``sends`` is the control the endpoint sends while
taking the edge (``sends_ack``: with ACK set, so SYN + ACK is the SYN-ACK and
NONE + ACK a bare ACK).  ``guard`` names the predicate that picks between two
edges with the same state and trigger (``close()`` with unread data resets
instead of sending FIN); ``counterfactual`` marks edges only a model switch
(``two_way_handshake``) enables: Linux never takes them.

Two deliberate differences from RFC 9293's Figure 5, both following the
RFC's own text and Linux:

* A child of a listener that is reset in SYN-RECEIVED goes to CLOSED, not
  back to LISTEN: the listener is a separate socket that never left LISTEN
  (§3.10.7.4 "return this connection to LISTEN" is about the single-socket
  model; Linux discards the request socket).
* A FIN that also ACKs our FIN in FIN-WAIT-1 takes two edges, FIN-WAIT-1 ->
  FIN-WAIT-2 -> TIME-WAIT: §3.10.7.4 processes the ACK (fifth check) before
  the FIN (eighth check), and Linux's tracepoint shows the same two steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tcplab.states import State
from tcplab.wire.flags import Control


class TriggerKind(Enum):
    API = "api"
    SEGMENT = "segment"
    TIMER = "timer"


class Trigger(Enum):
    # API calls (RFC 9293 §3.10.1-§3.10.5)
    LISTEN = "listen()"
    CONNECT = "connect()"
    CONNECT_FASTOPEN = "sendto(MSG_FASTOPEN)"
    CONNECT_DEFERRED = "connect() with TCP_FASTOPEN_CONNECT"
    CLOSE = "close()"
    SHUTDOWN_WR = "shutdown(SHUT_WR)"
    ABORT = "abort()"
    LISTENER_CLOSED = "its listener's close()"
    # Arriving segments, flags normalised (RFC 9293 §3.10.7)
    RCV_SYN = "rcv SYN"
    RCV_SYN_FASTOPEN = "rcv SYN with a valid cookie"
    RCV_SYN_ACK = "rcv SYN-ACK"
    RCV_SYN_ACK_DATA_UNACKED = "rcv SYN-ACK not ACKing the SYN's data"
    RCV_ACK_OF_SYN = "rcv ACK of SYN"
    RCV_ACK_OF_FIN = "rcv ACK of FIN"
    RCV_FIN = "rcv FIN"
    RCV_RST = "rcv RST"
    RCV_DATA_AFTER_CLOSE = "rcv data after close()"
    # Timers (RFC 9293 §3.8.1, §3.10.8; RFC 1122 §4.2.3.6)
    TIMEOUT_2MSL = "2MSL timeout"
    TIMEOUT_FIN_WAIT_2 = "FIN-WAIT-2 timeout"
    RETRIES_EXHAUSTED = "retransmissions exhausted"
    KEEPALIVE_EXHAUSTED = "keepalive probes unanswered"

    @property
    def kind(self) -> TriggerKind:
        if self.name.startswith("RCV_"):
            return TriggerKind.SEGMENT
        if self in _TIMER_TRIGGERS:
            return TriggerKind.TIMER
        return TriggerKind.API


_TIMER_TRIGGERS = frozenset(
    {
        Trigger.TIMEOUT_2MSL,
        Trigger.TIMEOUT_FIN_WAIT_2,
        Trigger.RETRIES_EXHAUSTED,
        Trigger.KEEPALIVE_EXHAUSTED,
    }
)


@dataclass(frozen=True, slots=True)
class Transition:
    state: State
    trigger: Trigger
    next: State
    sends: Control | None  # what is sent while taking the edge; None: nothing
    sends_ack: bool  # the segment sent carries ACK (SYN-ACK, bare ACK, "F.", "R.")
    rfc: str
    guard: str | None = None  # a named predicate (see GUARDS)
    note: str = ""
    counterfactual: bool = False  # only a model switch enables it; Linux never does this

    @property
    def action(self) -> str:
        """The action text a diagram edge shows: ``SYN-ACK``, ``ACK``, ``FIN``, ``RST``."""
        if self.sends is None:
            return "-"
        if self.sends is Control.SYN:
            return "SYN-ACK" if self.sends_ack else "SYN"
        if self.sends is Control.NONE:
            return "ACK"
        return str(self.sends.value)

    @property
    def label(self) -> str:
        guard = f" [{self.guard}]" if self.guard else ""
        return f"{self.trigger.value}{guard} / {self.action}"


# Named guards: the predicate, in words, that an edge with a guard needs.
GUARDS: dict[str, str] = {
    "unread_data": "the receive queue holds data the application never read (RFC 9293 §3.6 SHLD-3)",
    "acceptable_ack": "SEG.ACK acknowledges our SYN (ISS < SEG.ACK =< SND.NXT)",
    "rst_in_sequence": "RFC 5961 §3.2: SEG.SEQ == RCV.NXT exactly (otherwise a challenge ACK)",
    "orphaned": "the application has closed the socket (Linux tcp_fin_timeout)",
    "read_shut": "close() or shutdown(SHUT_RD) shut the receive side and new data arrives"
                 " (Linux tcp_rcv_state_process: TCPAbortOnData)",
    "two_way_handshake": "counterfactual switch: the server trusts a bare SYN",
    "linux": "the linux profile (the RFC profile does not do this)",
    "accept_queue_full": "the listener's accept queue holds more than backlog children"
                         " (Linux sk_acceptq_is_full)",
    "syn_is_newer": "a SYN without ACK, SEG.SEQ > RCV.NXT or (timestamps) a newer TSval, a"
                    " listener on the port, and the profile reopens TIME-WAIT (RFC 9293 §3.6"
                    " MAY-2; RFC 6191)",
    "fastopen_cookie_valid": "the listener does Fast Open and the SYN carries the cookie it"
                             " would generate for that address (or data, with the"
                             " cookie-not-required bit) (RFC 7413 §4.2.2; Linux"
                             " tcp_try_fastopen)",
    "cookie_cached": "the host has a Fast Open cookie for the server (or the client"
                     " no-cookie bit 0x4 is set)",
    "fastopen_child": "a Fast Open child: a full socket, in the accept queue since its SYN"
                      " (RFC 7413 §4.2.2), not an embryonic request",
    "syn_data_unacked": "our SYN carried data and SEG.ACK covers the SYN but not all of the"
                        " data (RFC 7413 §4.2.2, the client receiving the SYN-ACK)",
}

_S = State
_C = Control
T = Transition

TRANSITIONS: tuple[Transition, ...] = (
    # -- opening -------------------------------------------------------------
    T(_S.CLOSED, Trigger.LISTEN, _S.LISTEN, None, False, "RFC 9293 §3.10.1",
      note="passive OPEN: wait for a SYN"),
    T(_S.CLOSED, Trigger.CONNECT, _S.SYN_SENT, _C.SYN, False, "RFC 9293 §3.10.1",
      note="active OPEN: send <SEQ=ISS><CTL=SYN>"),
    T(_S.LISTEN, Trigger.RCV_SYN, _S.SYN_RECEIVED, _C.SYN, True, "RFC 9293 §3.10.7.2",
      note="a child is born in SYN-RECEIVED and answers SYN-ACK"),
    T(_S.CLOSED, Trigger.CONNECT_FASTOPEN, _S.SYN_SENT, _C.SYN, False, "RFC 7413 §4.2.1, §4.2.2",
      note="Fast Open: the SYN carries the data and the cached cookie, or asks for a cookie"
           " with an empty option when none is cached (the data then follows the handshake)"),
    T(_S.CLOSED, Trigger.CONNECT_DEFERRED, _S.SYN_SENT, None, False,
      "RFC 7413 §4.2.2; Linux tcp_fastopen_defer_connect", guard="cookie_cached",
      note="TCP_FASTOPEN_CONNECT with a cookie cached: connect() returns at once and sends"
           " nothing; the first write() sends the SYN with the cookie and the data"),
    T(_S.LISTEN, Trigger.RCV_SYN_FASTOPEN, _S.SYN_RECEIVED, _C.SYN, True, "RFC 7413 §4.2.2",
      guard="fastopen_cookie_valid",
      note="the SYN-ACK acknowledges the SYN's data; the child is in the accept queue at once,"
           " its data readable and its own data sent before the handshake completes"),
    T(_S.LISTEN, Trigger.RCV_SYN, _S.ESTABLISHED, _C.SYN, True, "RFC 9293 §3.5 (counterfactual)",
      guard="two_way_handshake", counterfactual=True,
      note="without the third segment an old duplicate SYN opens a connection"),
    T(_S.LISTEN, Trigger.CLOSE, _S.CLOSED, None, False, "RFC 9293 §3.10.4",
      note="unaccepted children are reset"),
    T(_S.SYN_SENT, Trigger.RCV_SYN_ACK, _S.ESTABLISHED, _C.NONE, True, "RFC 9293 §3.10.7.3",
      guard="acceptable_ack", note="the third segment of the handshake"),
    T(_S.SYN_SENT, Trigger.RCV_SYN_ACK_DATA_UNACKED, _S.ESTABLISHED, _C.NONE, True,
      "RFC 7413 §4.2.2", guard="syn_data_unacked",
      note="the server did not take the SYN's data (no Fast Open, a bad cookie): the data is"
           " sent again at once, carrying the third segment's ACK"),
    T(_S.SYN_SENT, Trigger.RCV_SYN, _S.SYN_RECEIVED, _C.SYN, True, "RFC 9293 §3.10.7.3",
      note="simultaneous open: both SYNs crossed"),
    T(_S.SYN_SENT, Trigger.RCV_RST, _S.CLOSED, None, False, "RFC 9293 §3.10.7.3",
      guard="acceptable_ack", note="connection refused (ECONNREFUSED)"),
    T(_S.SYN_SENT, Trigger.CLOSE, _S.CLOSED, None, False, "RFC 9293 §3.10.4",
      note="nothing to tell the peer yet"),
    T(_S.SYN_SENT, Trigger.RETRIES_EXHAUSTED, _S.CLOSED, None, False, "RFC 1122 §4.2.3.5",
      note="SYN retries exhausted (ETIMEDOUT)"),
    T(_S.SYN_RECEIVED, Trigger.RCV_ACK_OF_SYN, _S.ESTABLISHED, None, False, "RFC 9293 §3.10.7.4",
      note="the handshake completes; a child joins the accept queue"),
    T(_S.SYN_RECEIVED, Trigger.RCV_ACK_OF_SYN, _S.CLOSED, None, False,
      "Linux listen overflow (tcp_check_req)", guard="accept_queue_full",
      note="the accept queue is full: the request is dropped, nothing is sent; the client"
           " believes it is connected"),
    T(_S.SYN_RECEIVED, Trigger.RCV_SYN_ACK, _S.ESTABLISHED, _C.NONE, True,
      "RFC 9293 §3.10.7.4; RFC 5961 §4", note="simultaneous open: the peer's SYN-ACK ACKs our SYN"),
    T(_S.SYN_RECEIVED, Trigger.RCV_RST, _S.CLOSED, None, False, "RFC 9293 §3.10.7.4",
      guard="rst_in_sequence", note="the half-open connection is removed; a listener stays"),
    T(_S.SYN_RECEIVED, Trigger.CLOSE, _S.FIN_WAIT_1, _C.FIN, True, "RFC 9293 §3.10.4"),
    T(_S.SYN_RECEIVED, Trigger.CLOSE, _S.CLOSED, _C.RST, True, "RFC 9293 §3.6 (SHLD-3)",
      guard="unread_data",
      note="a Fast Open child closed with the SYN's data unread: RST, no FIN (Linux tcp_close)"),
    T(_S.SYN_RECEIVED, Trigger.LISTENER_CLOSED, _S.CLOSED, _C.RST, True,
      "RFC 9293 §3.10.4; RFC 7413 §4.2.2", guard="fastopen_child",
      note="the listener closed before accept(): a Fast Open child is reset, where a request"
           " would be dropped silently (Linux inet_child_forget: tcp_disconnect)"),
    T(_S.SYN_RECEIVED, Trigger.RETRIES_EXHAUSTED, _S.CLOSED, None, False, "RFC 1122 §4.2.3.5",
      note="SYN-ACK retries exhausted"),
    T(_S.SYN_RECEIVED, Trigger.ABORT, _S.CLOSED, None, False, "RFC 9293 §3.10.4",
      note="the listener closed: a half-open child is dropped silently (Linux)"),
    # -- established -----------------------------------------------------------
    T(_S.ESTABLISHED, Trigger.CLOSE, _S.FIN_WAIT_1, _C.FIN, True, "RFC 9293 §3.10.4"),
    T(_S.ESTABLISHED, Trigger.CLOSE, _S.CLOSED, _C.RST, True, "RFC 9293 §3.6 (SHLD-3)",
      guard="unread_data", note="close() with unread data: RST, data loss is signalled"),
    T(_S.ESTABLISHED, Trigger.SHUTDOWN_WR, _S.FIN_WAIT_1, _C.FIN, True, "RFC 9293 §3.10.4",
      note="half-close: we can still receive"),
    T(_S.ESTABLISHED, Trigger.RCV_FIN, _S.CLOSE_WAIT, _C.NONE, True, "RFC 9293 §3.10.7.4",
      note="the peer closed its direction; recv() returns 0"),
    T(_S.ESTABLISHED, Trigger.RCV_RST, _S.CLOSED, None, False, "RFC 9293 §3.10.7.4; RFC 5961 §3",
      guard="rst_in_sequence", note="connection reset (ECONNRESET)"),
    T(_S.ESTABLISHED, Trigger.ABORT, _S.CLOSED, _C.RST, True, "RFC 9293 §3.10.5"),
    T(_S.ESTABLISHED, Trigger.RETRIES_EXHAUSTED, _S.CLOSED, None, False, "RFC 9293 §3.8.3",
      note="R2 exceeded (ETIMEDOUT)"),
    T(_S.ESTABLISHED, Trigger.KEEPALIVE_EXHAUSTED, _S.CLOSED, _C.RST, True, "RFC 1122 §4.2.3.6",
      guard="linux", note="the peer is dead (ETIMEDOUT); Linux resets"),
    # -- active close --------------------------------------------------------
    T(_S.FIN_WAIT_1, Trigger.RCV_ACK_OF_FIN, _S.FIN_WAIT_2, None, False, "RFC 9293 §3.10.7.4"),
    T(_S.FIN_WAIT_1, Trigger.RCV_FIN, _S.CLOSING, _C.NONE, True, "RFC 9293 §3.10.7.4",
      note="simultaneous close: the FINs crossed"),
    T(_S.FIN_WAIT_1, Trigger.RCV_RST, _S.CLOSED, None, False, "RFC 9293 §3.10.7.4",
      guard="rst_in_sequence"),
    T(_S.FIN_WAIT_1, Trigger.RCV_DATA_AFTER_CLOSE, _S.CLOSED, _C.RST, False,
      "RFC 9293 §3.6 (SHLD-3)", guard="read_shut", note="nobody will read it: RST"),
    T(_S.FIN_WAIT_1, Trigger.ABORT, _S.CLOSED, _C.RST, True, "RFC 9293 §3.10.5"),
    T(_S.FIN_WAIT_1, Trigger.RETRIES_EXHAUSTED, _S.CLOSED, None, False, "RFC 9293 §3.8.3"),
    T(_S.FIN_WAIT_2, Trigger.RCV_FIN, _S.TIME_WAIT, _C.NONE, True, "RFC 9293 §3.10.7.4",
      note="the last ACK; 2MSL starts"),
    T(_S.FIN_WAIT_2, Trigger.TIMEOUT_FIN_WAIT_2, _S.CLOSED, None, False,
      "RFC 9293 §3.10.7.4 (Linux tcp_fin_timeout)", guard="orphaned"),
    T(_S.FIN_WAIT_2, Trigger.RCV_RST, _S.CLOSED, None, False, "RFC 9293 §3.10.7.4",
      guard="rst_in_sequence"),
    T(_S.FIN_WAIT_2, Trigger.RCV_DATA_AFTER_CLOSE, _S.CLOSED, _C.RST, False,
      "RFC 9293 §3.6 (SHLD-3)", guard="read_shut", note="nobody will read it: RST"),
    T(_S.FIN_WAIT_2, Trigger.ABORT, _S.CLOSED, _C.RST, True, "RFC 9293 §3.10.5"),
    T(_S.CLOSING, Trigger.RCV_ACK_OF_FIN, _S.TIME_WAIT, None, False, "RFC 9293 §3.10.7.4"),
    T(_S.CLOSING, Trigger.RCV_RST, _S.CLOSED, None, False, "RFC 9293 §3.10.7.4"),
    T(_S.CLOSING, Trigger.RETRIES_EXHAUSTED, _S.CLOSED, None, False, "RFC 9293 §3.8.3"),
    T(_S.TIME_WAIT, Trigger.TIMEOUT_2MSL, _S.CLOSED, None, False, "RFC 9293 §3.10.8",
      note="2MSL: old duplicates have died"),
    T(_S.TIME_WAIT, Trigger.RCV_RST, _S.CLOSED, None, False, "RFC 9293 §3.10.7.4",
      note="TIME-WAIT assassination (RFC 1337); Linux tcp_rfc1337=0 does the same"),
    T(_S.TIME_WAIT, Trigger.RCV_SYN, _S.CLOSED, None, False, "RFC 9293 §3.6 (MAY-2); RFC 6191",
      guard="syn_is_newer",
      note="a new incarnation of the port pair: the listener takes the SYN, with an ISS above"
           " the old SND.NXT (Linux TCP_TW_SYN)"),
    # -- passive close ---------------------------------------------------------
    T(_S.CLOSE_WAIT, Trigger.CLOSE, _S.LAST_ACK, _C.FIN, True, "RFC 9293 §3.10.4"),
    T(_S.CLOSE_WAIT, Trigger.CLOSE, _S.CLOSED, _C.RST, True, "RFC 9293 §3.6 (SHLD-3)",
      guard="unread_data"),
    T(_S.CLOSE_WAIT, Trigger.SHUTDOWN_WR, _S.LAST_ACK, _C.FIN, True, "RFC 9293 §3.10.4"),
    T(_S.CLOSE_WAIT, Trigger.RCV_RST, _S.CLOSED, None, False, "RFC 9293 §3.10.7.4",
      guard="rst_in_sequence", note="EPIPE for the next send"),
    T(_S.CLOSE_WAIT, Trigger.ABORT, _S.CLOSED, _C.RST, True, "RFC 9293 §3.10.5"),
    T(_S.CLOSE_WAIT, Trigger.RETRIES_EXHAUSTED, _S.CLOSED, None, False, "RFC 9293 §3.8.3"),
    T(_S.LAST_ACK, Trigger.RCV_ACK_OF_FIN, _S.CLOSED, None, False, "RFC 9293 §3.10.7.4"),
    T(_S.LAST_ACK, Trigger.RCV_RST, _S.CLOSED, None, False, "RFC 9293 §3.10.7.4"),
    T(_S.LAST_ACK, Trigger.RETRIES_EXHAUSTED, _S.CLOSED, None, False, "RFC 9293 §3.8.3"),
)


class TransitionError(Exception):
    """The engine tried a state change the table does not have (a bug in the model)."""


# Edges the engine has taken in this process, for the coverage test.
USED: set[Transition] = set()


def lookup(state: State, trigger: Trigger, new: State) -> Transition:
    for edge in TRANSITIONS:
        if edge.state is state and edge.trigger is trigger and edge.next is new:
            return edge
    raise TransitionError(f"no transition {state} --{trigger.value}--> {new} in the table")


def edges_from(state: State | None) -> tuple[Transition, ...]:
    return tuple(edge for edge in TRANSITIONS if edge.state is state)


def states_in_table() -> list[State]:
    seen: list[State] = []
    for edge in TRANSITIONS:
        for state in (edge.state, edge.next):
            if state not in seen:
                seen.append(state)
    return seen
