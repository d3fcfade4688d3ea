"""A sans-IO TCP endpoint (RFC 9293): the connection (TCB) and the listener.

Theory of operation.  A ``Connection`` is fed three kinds of input, each with
an explicit ``now``: socket-API calls (``connect``, ``send``, ``recv``,
``shutdown``, ``close``, ``abort``), arriving segments (``receive``) and timer
expiry (``handle_timers``).  It never performs output: segments to send pile
up in an output queue the caller drains (``segments_to_send``), events
(state changes, data delivered, errors for the application) in another
(``events``), and ``next_deadline()`` says when it next wants to be woken.

Arriving segments are processed in the order of RFC 9293 §3.10.7: SYN-SENT
has its own rule (§3.10.7.3); every other state runs the eight checks of
§3.10.7.4 (sequence number, RST, security, SYN, ACK, URG, text, FIN), with
RFC 5961's stricter RST/SYN/ACK acceptance (challenge ACKs) as Linux does.
Every state change goes through ``_set_state(new, trigger)``, which refuses
any edge that is not in ``tcplab.model.table.TRANSITIONS``.

TCP Fast Open (RFC 7413) rides on the same machinery: ``connect_fastopen``
(sendto(MSG_FASTOPEN)) puts data and the cached cookie on the SYN, a
listener that finds a valid cookie makes a child that takes the data at
once (``open_passive(..., fastopen=True)``), and a SYN-ACK that leaves the
SYN's data unacknowledged makes the client send it again.  The cookie and
the client's cache live in ``tcplab.model.fastopen``.

Misuse by the caller (``send`` on a closed socket) raises ``SocketError``
with the errno Linux would return; a misbehaving peer never raises: the
model answers it the RFC way (drop, ACK, RST).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from tcplab.model import fastopen as tfo
from tcplab.model.profile import Profile
from tcplab.model.segment import Options, Segment, make_flags
from tcplab.model.table import USED, Trigger, lookup
from tcplab.model.timers import Timer, TimerKind
from tcplab.states import State
from tcplab.wire.flags import Control, Flags
from tcplab.wire.seq import Seq


class SocketError(Exception):
    """An API call failed; ``errno`` is the name Linux would set (EPIPE...)."""

    def __init__(self, errno: str, message: str = "") -> None:
        super().__init__(f"{errno}: {message}" if message else errno)
        self.errno = errno


# -- events: what the model tells its caller ------------------------------------


@dataclass(frozen=True, slots=True)
class StateChanged:
    time: float
    endpoint: str
    socket: str  # "10.0.0.1:40000" or "listener :8080"
    old: State
    new: State
    trigger: Trigger
    cause: str


@dataclass(frozen=True, slots=True)
class Delivered:
    time: float
    endpoint: str
    socket: str
    data: bytes  # bytes now readable, in order


@dataclass(frozen=True, slots=True)
class ConnError:
    time: float
    endpoint: str
    socket: str
    errno: str  # ECONNREFUSED, ECONNRESET, ETIMEDOUT, EPIPE


@dataclass(frozen=True, slots=True)
class Retransmitted:
    time: float
    endpoint: str
    socket: str
    state: State  # the state the retransmission happened in (Linux tcp_retransmit_skb)
    seq: Seq


ModelEvent = StateChanged | Delivered | ConnError | Retransmitted


class _Machine:
    """What the listener and the connection share: a state, events, the output queue."""

    def __init__(self, endpoint: str, label: str, state: State) -> None:
        self.endpoint = endpoint
        self.label = label
        self.state = state
        self._events: list[ModelEvent] = []
        self._out: list[Segment] = []

    def _set_state(self, new: State, trigger: Trigger, now: float, detail: str = "") -> None:
        # The one place a state changes; the table must have the edge.
        edge = lookup(self.state, trigger, new)
        USED.add(edge)
        old = self.state
        self.state = new
        cause = trigger.value + (f" ({detail})" if detail else "")
        self._events.append(StateChanged(now, self.endpoint, self.label, old, new, trigger, cause))

    def events(self) -> list[ModelEvent]:
        out, self._events = self._events, []
        return out

    def segments_to_send(self) -> list[Segment]:
        out, self._out = self._out, []
        return out


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A segment sent and not yet fully acknowledged (the retransmission queue)."""

    seq: Seq
    control: Control  # SYN, FIN or NONE
    payload: bytes
    sent_at: float
    retransmitted: bool = False
    psh: bool = False

    @property
    def end(self) -> Seq:
        return self.seq + len(self.payload) + (self.control in (Control.SYN, Control.FIN))


def reset_for(seg: Segment, rst_ack: bool = True) -> Segment | None:
    """RFC 9293 §3.10.7.1: the reply to a segment for no connection (None for a RST).

    If the segment has ACK: <SEQ=SEG.ACK><CTL=RST>; otherwise
    <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (Linux: ``R.`` seq 0 ack ISN+1).
    """
    if seg.flags & Flags.RST:
        return None
    if seg.has_ack and seg.ack is not None:
        return Segment(seg.dst, seg.dport, seg.src, seg.sport, seg.ack, None, Flags.RST)
    return Segment(seg.dst, seg.dport, seg.src, seg.sport, Seq(0), seg.seq + seg.seg_len,
                   Flags.RST | Flags.ACK)


class Connection(_Machine):
    def __init__(
        self,
        *,
        profile: Profile,
        endpoint: str,
        local: tuple[str, int],
        remote: tuple[str, int],
        iss: int,
        state: State = State.CLOSED,
        listener: Listener | None = None,
        now: float = 0.0,
        fastopen_cache: dict[str, tfo.CacheEntry] | None = None,
    ) -> None:
        super().__init__(endpoint, f"{local[0]}:{local[1]}", state)
        self.profile = profile
        self.local = local
        self.remote = remote
        self.listener = listener
        # Send sequence variables (RFC 9293 §3.3.1)
        self.iss = Seq(iss)
        self.snd_una = self.iss
        self.snd_nxt = self.iss
        self.snd_wnd = 0
        self.snd_wl1 = Seq(0)
        self.snd_wl2 = Seq(0)
        self.max_snd_wnd = 0
        self.snd_wscale = 0  # shift for the peer's window field
        self.rcv_wscale = 0  # shift we apply to our own window field
        self.peer_mss = 536  # RFC 9293 §3.7.1 default when no MSS option
        # Receive sequence variables
        self.irs: Seq | None = None
        self.rcv_nxt: Seq | None = None
        # Queues
        self.send_queue = bytearray()  # accepted from send(), not yet transmitted
        self.rtx: list[_InFlight] = []  # transmitted, not yet acknowledged
        self.fin_queued = False  # our FIN follows the send queue
        self.fin_seq: Seq | None = None  # the sequence number our FIN took
        self.rcv_queue = bytearray()  # in order, not yet read by the application
        self.out_of_order: dict[Seq, tuple[bytes, bool]] = {}  # seq -> (payload, fin)
        self.peer_fin = False
        self.read_shut = False
        self.write_shut = False
        self.orphaned = False  # the application closed it
        self.error: str | None = None  # reported once to the next API call
        # Timers and their bookkeeping
        self.timers: dict[TimerKind, Timer] = {}
        self.rto = profile.rto_initial
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.retransmits = 0
        self.dupacks = 0
        self.unacked_bytes = 0  # data received in order since our last ACK
        self.quickacks_left = profile.quickack_segments
        self.keepalive = False
        self.keepalive_idle = profile.keepalive_idle
        self.keepalive_interval = profile.keepalive_interval
        self.keepalive_probes = profile.keepalive_probes
        self.probes_sent = 0
        self.last_heard = now
        self.reuseaddr = False
        self.linger_zero = False
        self.syn_options = Options()
        self.clock = now  # the ``now`` of the input being processed
        self.ts_ok = False  # RFC 7323 timestamps negotiated
        self.ts_recent = 0
        self.fin_consumed = False  # recv() has returned the end of stream
        self.last_oow_ack: float | None = None
        self.got_data = False  # any payload arrived (Linux sets ato on the first)
        self.last_data_at: float | None = None  # when payload last arrived
        self.pingpong = 0  # Linux: quick replies counted towards interactive mode
        # TCP Fast Open (RFC 7413).  The cache is the host's (per server address).
        self.fastopen_cache: dict[str, tfo.CacheEntry] = (
            fastopen_cache if fastopen_cache is not None else {})
        self.syn_fastopen = False  # our SYN carried a Fast Open option (Linux syn_fastopen)
        self.syn_data = 0  # bytes of data our SYN carried (Linux syn_data)
        self.fastopen_child = False  # a server child born of a valid cookie (SYN data taken)
        # The SYN's data was taken in the handshake, either side (Linux syn_data_acked,
        # what tcp_info reports as TCPI_OPT_SYN_DATA).
        self.syn_data_acked = False
        self.fastopen_connect = False  # setsockopt(TCP_FASTOPEN_CONNECT)
        self.deferred_connect = False  # connect() returned; the SYN waits for a write

    # -- helpers ---------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<Connection {self.endpoint} {self.label} {self.state}>"

    @property
    def rcv_wnd(self) -> int:
        return max(0, self.profile.window - len(self.rcv_queue))

    def _arm(self, kind: TimerKind, expires: float) -> None:
        self.timers[kind] = Timer(kind, expires)

    def _cancel(self, kind: TimerKind) -> None:
        self.timers.pop(kind, None)

    def next_deadline(self) -> float | None:
        return min((t.expires for t in self.timers.values()), default=None)

    def _syn_options(self, peer: Options | None = None) -> Options:
        # RFC 7323 §1.3: a SYN-ACK carries window scale only if the SYN did.
        offer_ws = self.profile.wscale is not None and (peer is None or peer.wscale is not None)
        offer_sack = self.profile.sack_ok and (peer is None or peer.sack_ok)
        offer_ts = self.profile.timestamps and (peer is None or peer.ts is not None)
        return Options(
            mss=self.profile.mss,
            wscale=self.profile.wscale if offer_ws else None,
            sack_ok=offer_sack,
            ts=(0, 0) if offer_ts else None,  # filled in when sent
        )

    def _ts_val(self) -> int:
        # RFC 7323 §5.4: a millisecond clock plus an offset.  Linux derives the
        # offset from the address pair (secure_tcp_ts_off), so the clock keeps
        # rising across incarnations of a port pair, which RFC 6191 relies on to
        # tell a new SYN from an old one in TIME-WAIT; so does the model.
        offset = 0x811C9DC5
        for byte in f"{self.local[0]}|{self.remote[0]}".encode():
            offset = ((offset ^ byte) * 0x01000193) & 0xFFFFFFFF
        return (int(self.clock * 1000) + offset) & 0xFFFFFFFF

    def _emit(
        self,
        seq: Seq,
        control: Control,
        *,
        ack: bool = True,
        payload: bytes = b"",
        psh: bool = False,
        options: Options | None = None,
    ) -> None:
        with_ack = ack and self.rcv_nxt is not None
        if control is Control.SYN and options is not None and options.ts is not None:
            options = replace(options, ts=(self._ts_val(), self.ts_recent if with_ack else 0))
        elif self.ts_ok and control is not Control.RST:
            options = replace(options or Options(), ts=(self._ts_val(), self.ts_recent))
        if control is Control.SYN:
            # RFC 7323 §2.2: the window in a SYN is never scaled.
            window = min(self.rcv_wnd, 65535)
        else:
            window = min(self.rcv_wnd >> self.rcv_wscale, 65535)
        self._out.append(
            Segment(
                self.local[0], self.local[1], self.remote[0], self.remote[1],
                seq, self.rcv_nxt if with_ack else None, make_flags(control, with_ack, psh),
                window, options or Options(), payload,
            )
        )
        if with_ack:
            # Any segment with ACK carries the acknowledgment a delayed ACK owed.
            self._cancel(TimerKind.DELAYED_ACK)
            self.unacked_bytes = 0

    def _send_ack(self) -> None:
        self._emit(self.snd_nxt, Control.NONE)

    def _send_oow_ack(self) -> None:
        """An ACK answering a segment we cannot use (out of window, challenge ACK).

        Rate-limited (RFC 5961 §7; Linux tcp_invalid_ratelimit): two endpoints
        that disagree about the window would otherwise ACK each other forever.
        """
        last = self.last_oow_ack
        if last is not None and self.clock - last < self.profile.oow_ack_interval:
            return
        self.last_oow_ack = self.clock
        self._send_ack()

    def _send_reset(self) -> None:
        # RFC 9293 §3.10.5 <SEQ=SND.NXT><CTL=RST>; Linux sets ACK too ("R.").
        self._emit(self.snd_nxt, Control.RST, ack=self.profile.rst_carries_ack)

    def _clear(self) -> None:
        self.timers.clear()
        self.rtx.clear()
        self.send_queue.clear()

    def _fail(self, errno: str, now: float) -> None:
        self.error = errno
        self._events.append(ConnError(now, self.endpoint, self.label, errno))

    def _rtt_sample(self, rtt: float) -> None:
        # RFC 6298 (2.2)/(2.3); alpha = 1/8, beta = 1/4.
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        p = self.profile
        if p.rto_min_added:
            rto = self.srtt + max(p.rto_min, 4 * self.rttvar)
        else:
            rto = max(p.rto_min, self.srtt + max(0.001, 4 * self.rttvar))
        self.rto = min(rto, p.rto_max)

    def _transmit(self, item: _InFlight, *, psh: bool = False, options: Options | None = None,
                  ack: bool = True) -> None:
        self._emit(item.seq, item.control, payload=item.payload, psh=psh, options=options, ack=ack)

    def _queue_sent(self, item: _InFlight, now: float) -> None:
        self.rtx.append(item)
        self.snd_nxt = item.end
        if TimerKind.RETRANSMIT not in self.timers:
            self._arm(TimerKind.RETRANSMIT, now + self.rto)

    # -- API calls -------------------------------------------------------------

    def connect(self, now: float) -> None:
        self.clock = now
        if self.state is not State.CLOSED:
            raise SocketError("EISCONN", f"connect() in {self.state}")
        entry = self.fastopen_cache.get(self.remote[0], tfo.CacheEntry())
        if self.fastopen_connect and (entry.cookie
                                      or self.profile.fastopen & tfo.CLIENT_NO_COOKIE):
            # TCP_FASTOPEN_CONNECT with a cookie: connect() returns at once and the
            # SYN waits for the first write (Linux tcp_fastopen_defer_connect).
            self._set_state(State.SYN_SENT, Trigger.CONNECT_DEFERRED, now)
            self.deferred_connect = True
            return
        self._set_state(State.SYN_SENT, Trigger.CONNECT, now)
        item = _InFlight(self.iss, Control.SYN, b"", now)
        self.syn_options = self._syn_options()
        options = self.syn_options
        if self.fastopen_connect:
            # ... without one, an ordinary SYN that asks for a cookie (RFC 7413 §4.2.1).
            options = replace(options, fastopen=b"", fastopen_exp=entry.experimental)
            self.syn_fastopen = True
        self._transmit(item, options=options, ack=False)
        self._queue_sent(item, now)

    def set_fastopen_connect(self, on: bool) -> None:
        """setsockopt(TCP_FASTOPEN_CONNECT): connect() then write() do what
        sendto(MSG_FASTOPEN) does (Linux do_tcp_setsockopt)."""
        if not self.profile.fastopen & tfo.CLIENT_ENABLE:
            raise SocketError("EOPNOTSUPP", "net.ipv4.tcp_fastopen has no client bit (1)")
        if self.state is not State.CLOSED:
            raise SocketError("EINVAL", f"TCP_FASTOPEN_CONNECT in {self.state}")
        self.fastopen_connect = on

    def connect_fastopen(self, data: bytes, now: float, *, blocking: bool = True) -> int:
        """sendto(MSG_FASTOPEN) on a new socket: connect, with data on the SYN if it can.

        RFC 7413 §4.2.1 (cookie request), §4.2.2 (sending the SYN) and Linux
        tcp_send_syn_data: with a cookie cached for
        the server the SYN carries it and as much data as fits (the MSS, the
        server's cached one if smaller, less 40 bytes of option space); with
        none the SYN asks for one with an empty Fast Open option and carries
        no data.  Returns how many bytes the SYN carries; a blocking sendto()
        queues the rest for after the handshake, a non-blocking one drops them
        (it returns the count, or EINPROGRESS when the SYN carries none).
        """
        self.clock = now
        if not self.profile.fastopen & tfo.CLIENT_ENABLE:
            raise SocketError("EOPNOTSUPP", "net.ipv4.tcp_fastopen has no client bit (1)")
        if self.state is not State.CLOSED:
            raise SocketError("EISCONN", f"sendto(MSG_FASTOPEN) in {self.state}")
        self._set_state(State.SYN_SENT, Trigger.CONNECT_FASTOPEN, now)
        return self._syn_with_data(data, now, blocking)

    def _syn_with_data(self, data: bytes, now: float, blocking: bool) -> int:
        """The Fast Open SYN: the cookie and data, or a cookie request (see above)."""
        # A retransmitted SYN is a plain one: no cookie, no data (Linux frees the
        # Fast Open request once the first SYN is out; packetdrill syn-data-timeout).
        self.syn_options = self._syn_options()
        entry = self.fastopen_cache.get(self.remote[0], tfo.CacheEntry())
        room = min(self.profile.mss, entry.mss or self.profile.mss) - tfo.SYN_OPTION_SPACE
        options: Options = self.syn_options
        payload = b""
        if entry.cookie:
            options = replace(options, fastopen=entry.cookie, fastopen_exp=entry.experimental)
            payload = data[:max(room, 0)]
        elif self.profile.fastopen & tfo.CLIENT_NO_COOKIE:
            payload = data[:max(room, 0)]  # data, and no option at all
        else:
            options = replace(options, fastopen=b"", fastopen_exp=entry.experimental)
        self.syn_fastopen = options.fastopen is not None
        self.syn_data = len(payload)
        syn = _InFlight(self.iss, Control.SYN, b"", now)
        self._emit(self.iss, Control.SYN, ack=False, payload=payload, options=options)
        self._queue_sent(syn, now)
        if payload:
            # Linux keeps the data as its own segment after the SYN, so that a
            # SYN-ACK acknowledging only the SYN leaves exactly it to resend.
            self._queue_sent(_InFlight(self.iss + 1, Control.NONE, payload, now, psh=True), now)
        if blocking:
            self.send_queue += data[len(payload):]
        return len(payload)

    def open_passive(self, seg: Segment, now: float, *, fastopen: bool = False,
                     cookie: bytes | None = None) -> None:
        """A child of a listener takes the SYN (RFC 9293 §3.10.7.2).

        ``fastopen``: the listener found a valid cookie (RFC 7413 §4.2.2): the
        SYN's data is taken now, the SYN-ACK acknowledges it, and the child
        joins the accept queue before the handshake completes.  ``cookie``: the
        cookie the SYN-ACK hands out (the SYN asked, or brought a bad one).
        """
        self.clock = now
        self._take_syn(seg)
        two_way = self.profile.two_way_handshake
        if fastopen:
            self.fastopen_child = True
            if seg.payload:
                self._accept_syn_data(seg.payload, now)
                self.syn_data_acked = True
            self._set_state(State.SYN_RECEIVED, Trigger.RCV_SYN_FASTOPEN, now,
                            f"{len(seg.payload)} bytes of SYN data")
        else:
            new = State.ESTABLISHED if two_way else State.SYN_RECEIVED
            self._set_state(new, Trigger.RCV_SYN, now, "two-way handshake" if two_way else "")
        item = _InFlight(self.iss, Control.SYN, b"", now)
        # A retransmitted SYN-ACK carries no cookie (Linux inet_rtx_syn_ack).
        self.syn_options = self._syn_options(seg.options)
        options = self.syn_options
        if cookie is not None:
            options = replace(options, fastopen=cookie, fastopen_exp=seg.options.fastopen_exp)
        self._transmit(item, options=options)
        self._queue_sent(item, now)
        if (two_way or fastopen) and self.listener is not None:
            self.listener.child_established(self)

    def _accept_syn_data(self, payload: bytes, now: float) -> None:
        """Data on a SYN (or a SYN-ACK) taken as Fast Open data: RCV.NXT moves past
        it and it is readable at once (Linux tcp_fastopen_add_skb)."""
        if self.rcv_nxt is None:
            return
        self.rcv_nxt = self.rcv_nxt + len(payload)
        self.got_data = True
        self.last_data_at = now
        self.rcv_queue += payload
        self._events.append(Delivered(now, self.endpoint, self.label, payload))

    def send(self, data: bytes, now: float) -> int:
        self.clock = now
        self._raise_pending()
        if self.write_shut or self.state in (
            State.CLOSED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING, State.LAST_ACK,
            State.TIME_WAIT,
        ):
            raise SocketError("EPIPE", f"send() in {self.state}")
        if self.state is State.LISTEN:
            raise SocketError("ENOTCONN")
        if self.deferred_connect:
            # The first write after a deferred connect() sends the Fast Open SYN.
            self.deferred_connect = False
            self._syn_with_data(data, now, blocking=True)
            return len(data)
        self.send_queue += data
        self._push(now)
        return len(data)

    def recv(self, bufsize: int, now: float) -> bytes | None:
        """Readable bytes, b"" at end of stream, None when recv() would block."""
        self.clock = now
        if self.rcv_queue:
            data = bytes(self.rcv_queue[:bufsize])
            del self.rcv_queue[:bufsize]
            if self.state.synchronized and self.state is not State.CLOSED:
                self._window_update_if_opened(len(data))
            return data
        self._raise_pending()
        if self.peer_fin or self.state is State.CLOSED or self.read_shut:
            self.fin_consumed = self.fin_consumed or self.peer_fin
            return b""
        if self.state is State.LISTEN:
            raise SocketError("ENOTCONN")
        return None

    def _window_update_if_opened(self, freed: int) -> None:
        # A window that was nearly closed and opens by an MSS is announced
        # (RFC 9293 §3.8.6.2.2 receiver SWS avoidance).
        if self.rcv_wnd - freed < self.profile.mss <= self.rcv_wnd:
            self._send_ack()

    def _raise_pending(self) -> None:
        if self.error is not None:
            errno, self.error = self.error, None
            raise SocketError(errno)

    def shutdown(self, how: str, now: float) -> None:
        self.clock = now
        if how not in ("SHUT_RD", "SHUT_WR", "SHUT_RDWR"):
            raise SocketError("EINVAL", f"shutdown how={how!r}")
        if self.state in (State.CLOSED, State.LISTEN, State.SYN_SENT):
            raise SocketError("ENOTCONN", f"shutdown() in {self.state}")
        if how in ("SHUT_RD", "SHUT_RDWR"):
            # Linux: nothing is sent and later data is still ACKed and readable
            # (KERNEL-NOTES.md); 4.4BSD (the rfc profile) throws it away.
            self.read_shut = True
            if self.profile.shut_rd_discards:
                self.rcv_queue.clear()
        if how in ("SHUT_WR", "SHUT_RDWR") and not self.write_shut:
            self._close_write(Trigger.SHUTDOWN_WR, now)

    def _close_write(self, trigger: Trigger, now: float) -> None:
        new = {
            State.ESTABLISHED: State.FIN_WAIT_1,
            State.SYN_RECEIVED: State.FIN_WAIT_1,
            State.CLOSE_WAIT: State.LAST_ACK,
        }.get(self.state)
        self.write_shut = True
        if new is None:
            return
        if trigger is Trigger.SHUTDOWN_WR and self.state is State.SYN_RECEIVED:
            trigger = Trigger.CLOSE  # the table has one edge out of SYN-RECEIVED for both
        self._set_state(new, trigger, now)
        self.fin_queued = True
        self._push(now)

    def close(self, now: float) -> None:
        self.clock = now
        if self.linger_zero:
            self.abort(now)
            return
        self.orphaned = True
        if self.state is State.SYN_SENT:
            self._set_state(State.CLOSED, Trigger.CLOSE, now)
            self._clear()
            return
        if (
            # SYN-RECEIVED holds data only in a Fast Open child (RFC 7413 §4.2.2).
            self.state in (State.ESTABLISHED, State.CLOSE_WAIT, State.SYN_RECEIVED)
            and self.rcv_queue
            and self.profile.rst_on_close_with_unread
        ):
            # RFC 9293 §3.6 (SHLD-3): data would be lost silently; say so with RST.
            self._send_reset()
            self._set_state(State.CLOSED, Trigger.CLOSE, now,
                            f"{len(self.rcv_queue)} unread bytes")
            self._clear()
            return
        if not self.write_shut:
            self._close_write(Trigger.CLOSE, now)
        elif self.state is State.FIN_WAIT_2:
            self._arm_fin_wait_2(now)

    def abort(self, now: float) -> None:
        """SO_LINGER {1, 0} then close(): RST, no TIME-WAIT (RFC 9293 §3.10.5)."""
        self.clock = now
        self.orphaned = True
        if self.state in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2,
                          State.CLOSE_WAIT):
            self._send_reset()
            self._set_state(State.CLOSED, Trigger.ABORT, now)
            self._clear()
        elif self.state is State.SYN_RECEIVED:
            self._set_state(State.CLOSED, Trigger.ABORT, now)
            self._clear()
        elif self.state is State.SYN_SENT:
            self._set_state(State.CLOSED, Trigger.CLOSE, now)
            self._clear()
        else:
            self.linger_zero = False
            self.close(now)

    def listener_closed(self, now: float) -> None:
        """The listener closed while this Fast Open child waited in its accept queue in
        SYN-RECEIVED: a full socket, so it is reset (Linux inet_child_forget ->
        tcp_disconnect), unlike a request, which is dropped silently."""
        self.clock = now
        self.orphaned = True
        self._send_reset()
        self._set_state(State.CLOSED, Trigger.LISTENER_CLOSED, now)
        self._clear()

    def set_keepalive(self, on: bool, now: float) -> None:
        self.keepalive = on
        if on and self.state is State.ESTABLISHED:
            self._arm(TimerKind.KEEPALIVE, self.last_heard + self.keepalive_idle)
        elif not on:
            self._cancel(TimerKind.KEEPALIVE)

    # -- output ------------------------------------------------------------------

    def _push(self, now: float) -> None:
        """Send what the window allows from the send queue, then a queued FIN."""
        if self.state in (State.CLOSED, State.LISTEN, State.SYN_SENT):
            return
        if self.state is State.SYN_RECEIVED and not self.fastopen_child:
            # RFC 9293 §3.10.2: data waits for ESTABLISHED; a Fast Open child may
            # send at once (RFC 7413 §4.2.2; Linux tcp_passive_fastopen).
            return
        if self.fin_seq is not None:
            return
        # RFC 7323 §3: the timestamp option takes 12 bytes of every segment.
        mss = min(self.peer_mss, self.profile.mss) - (12 if self.ts_ok else 0)
        if (self.send_queue and self.last_data_at is not None
                and now - self.last_data_at < self.profile.delayed_ack):
            # Linux tcp_event_data_sent: a reply soon after data arrived counts
            # towards interactive (pingpong) mode.
            self.pingpong += 1
        while self.send_queue:
            usable = (self.snd_una + self.snd_wnd) - self.snd_nxt
            size = min(len(self.send_queue), mss, usable)
            if size <= 0:
                break  # zero window: the persist timer is not modelled
            payload = bytes(self.send_queue[:size])
            del self.send_queue[:size]
            # Linux sets PSH on the segment that empties the queue (tcp_push).
            item = _InFlight(self.snd_nxt, Control.NONE, payload, now, psh=not self.send_queue)
            self._transmit(item, psh=item.psh)
            self._queue_sent(item, now)
        if self.fin_queued and not self.send_queue:
            self.fin_seq = self.snd_nxt
            item = _InFlight(self.snd_nxt, Control.FIN, b"", now)
            self._transmit(item)
            self._queue_sent(item, now)

    # -- timers ------------------------------------------------------------------

    def handle_timers(self, now: float) -> None:
        self.clock = now
        for kind in list(TimerKind):
            timer = self.timers.get(kind)
            if timer is None or timer.expires > now:
                continue
            del self.timers[kind]
            if kind is TimerKind.RETRANSMIT:
                self._on_retransmit_timer(now)
            elif kind is TimerKind.DELAYED_ACK:
                if self.rcv_nxt is not None and self.state is not State.CLOSED:
                    # Linux tcp_delack_timer_handler: a delayed ACK that had to go
                    # alone ends interactive mode.
                    self.pingpong = 0
                    self._send_ack()
            elif kind is TimerKind.KEEPALIVE:
                self._on_keepalive_timer(now)
            elif kind is TimerKind.FIN_WAIT_2:
                if self.state is State.FIN_WAIT_2:
                    self._set_state(State.CLOSED, Trigger.TIMEOUT_FIN_WAIT_2, now)
                    self._clear()
            elif kind is TimerKind.TIME_WAIT and self.state is State.TIME_WAIT:
                self._set_state(State.CLOSED, Trigger.TIMEOUT_2MSL, now)
                self._clear()

    def _on_retransmit_timer(self, now: float) -> None:
        if not self.rtx:
            return
        p = self.profile
        # A Fast Open child retries its SYN-ACK once more (tcp_fastopen_synack_timer).
        limit = {State.SYN_SENT: p.syn_retries,
                 State.SYN_RECEIVED: p.synack_retries + self.fastopen_child}.get(
            self.state, p.retries2
        )
        self.retransmits += 1
        if self.retransmits > limit:
            # RFC 1122 §4.2.3.5: give up; the application sees ETIMEDOUT.
            self._set_state(State.CLOSED, Trigger.RETRIES_EXHAUSTED, now,
                            f"{limit} retransmissions")
            self._clear()
            if not self.orphaned or self.listener is None:
                self._fail("ETIMEDOUT", now)
            return
        head = replace(self.rtx[0], retransmitted=True)
        self.rtx[0] = head
        self._events.append(Retransmitted(now, self.endpoint, self.label, self.state, head.seq))
        options = self.syn_options if head.control is Control.SYN else None
        self._transmit(head, psh=head.psh, options=options,
                       ack=self.state is not State.SYN_SENT)
        # RFC 6298 (5.5) doubles the RTO; Linux keeps it for the first
        # tcp_syn_linear_timeouts SYN retries (KERNEL-NOTES.md).
        linear = self.state is State.SYN_SENT and self.retransmits <= p.syn_linear_timeouts
        if not linear:
            self.rto = min(self.rto * 2, p.rto_max)
        self._arm(TimerKind.RETRANSMIT, now + self.rto)

    def _on_keepalive_timer(self, now: float) -> None:
        if not self.keepalive or self.state is not State.ESTABLISHED:
            return
        if self.probes_sent >= self.keepalive_probes:
            # RFC 1122 §4.2.3.6: the peer is dead.
            if self.profile.keepalive_reset:
                self._send_reset()
                self._set_state(State.CLOSED, Trigger.KEEPALIVE_EXHAUSTED, now)
            else:
                self._set_state(State.CLOSED, Trigger.RETRIES_EXHAUSTED, now, "keepalive")
            self._clear()
            self._fail("ETIMEDOUT", now)
            return
        # The probe: SEG.SEQ = SND.UNA - 1, no data, so the peer must ACK it.
        self.probes_sent += 1
        self._emit(self.snd_una - 1, Control.NONE)
        self._arm(TimerKind.KEEPALIVE, now + self.keepalive_interval)

    def _arm_fin_wait_2(self, now: float) -> None:
        timeout = self.profile.fin_wait_2_timeout
        if self.orphaned and timeout is not None:
            self._arm(TimerKind.FIN_WAIT_2, now + timeout)

    def _enter_time_wait(self, trigger: Trigger, now: float) -> None:
        self._set_state(State.TIME_WAIT, trigger, now)
        self.timers.clear()
        self.rtx.clear()
        # RFC 9293 §3.10.8: 2*MSL; zero when the time_wait switch is off.
        self._arm(TimerKind.TIME_WAIT, now + self.profile.time_wait_seconds)

    # -- arriving segments ---------------------------------------------------------

    def _take_syn(self, seg: Segment) -> None:
        self.irs = seg.seq
        self.rcv_nxt = seg.seq + 1
        opts = seg.options
        if opts.mss is not None:
            self.peer_mss = opts.mss
        # RFC 7323 §2.2: scaling is on only when both SYNs carried the option.
        if opts.wscale is not None and self.profile.wscale is not None:
            self.snd_wscale = min(opts.wscale, 14)
            self.rcv_wscale = self.profile.wscale
        self.snd_wnd = seg.window
        self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
        self.snd_wl1 = seg.seq
        if opts.ts is not None and self.profile.timestamps:
            self.ts_ok = True
            # RFC 7323 §4.3: the SYN-ACK echoes the SYN's TSval (a listener's child
            # takes the SYN here, not through receive()).
            self.ts_recent = opts.ts[0]

    def receive(self, seg: Segment, now: float) -> None:
        self.clock = now
        control = seg.control
        if control is Control.INVALID:
            return  # SYN+FIN and friends: RFC 9293 §3.10.7 gives them no meaning
        self.last_heard = now
        self.probes_sent = 0
        if seg.options.ts is not None:
            self.ts_recent = seg.options.ts[0]
        if self.state is State.SYN_SENT:
            self._receive_syn_sent(seg, control, now)
        elif self.state in (State.CLOSED, State.LISTEN):
            return
        else:
            self._receive_synchronized(seg, control, now)
        if self.keepalive and self.state is State.ESTABLISHED:
            self._arm(TimerKind.KEEPALIVE, now + self.keepalive_idle)

    def syn_is_newer(self, seg: Segment) -> bool:
        """May this SYN end TIME-WAIT and open a new incarnation of the port pair?

        RFC 9293 §3.6 MAY-2 and RFC 6191 §2; Linux tcp_timewait_state_process
        (TCP_TW_SYN): a SYN without ACK whose SEG.SEQ is after RCV.NXT, or whose
        TSval is newer than TS.Recent.  The caller also needs a listener on the
        port (Linux otherwise answers from TIME-WAIT with an ACK).
        """
        if self.state is not State.TIME_WAIT or not self.profile.syn_reopens_time_wait:
            return False
        if seg.control is not Control.SYN or seg.has_ack or self.rcv_nxt is None:
            return False
        if seg.seq > self.rcv_nxt:
            return True
        ts = seg.options.ts
        return self.ts_ok and ts is not None and Seq(ts[0]) > Seq(self.ts_recent)

    def end_time_wait(self, now: float) -> int:
        """A newer SYN ends TIME-WAIT; returns the ISS for the new incarnation.

        RFC 9293 §3.6 MAY-2 (1): the new ISS must be larger than any sequence
        number the old incarnation used; Linux takes SND.NXT + 65535 + 2.
        """
        self._set_state(State.CLOSED, Trigger.RCV_SYN, now, "a newer SYN reopens the port pair")
        self._clear()
        iss = (self.snd_nxt + (65535 + 2)).value
        return iss or 1  # Linux avoids an ISN of 0

    def _receive_syn_sent(self, seg: Segment, control: Control, now: float) -> None:
        # RFC 9293 §3.10.7.3, first: check the ACK.
        ack_ok = False
        if seg.has_ack and seg.ack is not None:
            if seg.ack <= self.iss or seg.ack > self.snd_nxt:
                if control is not Control.RST:
                    self._out.append(
                        Segment(self.local[0], self.local[1], self.remote[0], self.remote[1],
                                seg.ack, None, Flags.RST))
                return
            ack_ok = True
        # second: the RST bit
        if control is Control.RST:
            if ack_ok:
                self._set_state(State.CLOSED, Trigger.RCV_RST, now, "connection refused")
                self._clear()
                self._fail("ECONNREFUSED", now)
            return
        # fourth: the SYN bit
        if control is not Control.SYN:
            return
        self._take_syn(seg)
        if ack_ok and seg.ack is not None:
            fastopen = self.syn_fastopen or self.syn_data > 0
            if fastopen:
                self._fastopen_synack(seg)
            self._ack_advance(seg.ack, now)
            # RFC 7413 §4.2.2: what the SYN-ACK leaves of the SYN's data is still
            # queued after the SYN (Linux tcp_rcv_fastopen_synack).
            unacked = [item for item in self.rtx if item.control is Control.NONE]
            if self.syn_data and unacked:
                self._set_state(State.ESTABLISHED, Trigger.RCV_SYN_ACK_DATA_UNACKED, now,
                                f"{sum(len(i.payload) for i in unacked)} bytes to resend")
            else:
                self.syn_data_acked = self.syn_data > 0
                self._set_state(State.ESTABLISHED, Trigger.RCV_SYN_ACK, now)
            self.snd_wnd = seg.window  # RFC 7323 §2.2: a SYN's window is never scaled
            self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
            if fastopen and seg.payload:
                self._accept_syn_data(seg.payload, now)  # data on the SYN-ACK
            if self.syn_data and unacked:
                # The data goes again at once and carries the ACK of the SYN-ACK.
                for i, item in enumerate(self.rtx):
                    again = replace(item, retransmitted=True)
                    self.rtx[i] = again
                    self._events.append(
                        Retransmitted(now, self.endpoint, self.label, self.state, again.seq))
                    self._transmit(again, psh=again.psh)
            elif not (fastopen and self.send_queue):
                self._send_ack()
            else:
                # A sendto(MSG_FASTOPEN) still waiting to queue its data makes Linux
                # save the bare ACK (sk_write_pending in tcp_rcv_synsent_state_process):
                # the data carries it (seen live: `tcplab run fast-open`, connection 1).
                # That path enters quick-ack mode (ato = 40 ms) and tcp_finish_connect
                # stamped the SYN-ACK's arrival, so the data that follows counts as a
                # quick reply: interactive mode, later ACKs wait (packetdrill
                # client/blocking-sendto.pkt: "Ack is delayed until FIN").
                self.last_data_at = now
            self._push(now)
        else:
            # Simultaneous open: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
            self._set_state(State.SYN_RECEIVED, Trigger.RCV_SYN, now, "simultaneous open")
            head = self.rtx[0] if self.rtx else _InFlight(self.iss, Control.SYN, b"", now)
            self.syn_options = self._syn_options(seg.options)
            self._transmit(head, options=self.syn_options)
            self._arm(TimerKind.RETRANSMIT, now + self.rto)

    def _fastopen_synack(self, seg: Segment) -> None:
        """Remember what a SYN-ACK says about the server (RFC 7413 §4.1.3; Linux
        tcp_rcv_fastopen_synack, tcp_fastopen_cache_set): its MSS always, its
        cookie when we asked for or used one and it sent a well-formed one.  A
        cookie request answered without a cookie makes the next request try the
        other encoding (kind 254 <-> kind 34)."""
        entry = self.fastopen_cache.get(self.remote[0], tfo.CacheEntry())
        cookie = seg.options.fastopen
        if seg.options.mss is not None:
            entry = replace(entry, mss=seg.options.mss)
        if self.syn_fastopen and tfo.cookie_option_ok(cookie) and cookie is not None:
            entry = replace(entry, cookie=cookie, experimental=seg.options.fastopen_exp)
        elif self.syn_fastopen and not self.syn_data and not self.retransmits and not entry.cookie:
            entry = replace(entry, experimental=not entry.experimental)
        self.fastopen_cache[self.remote[0]] = entry

    def _acceptable(self, seg: Segment) -> bool:
        """RFC 9293 §3.10.7.4 first check: the four cases of the acceptability test."""
        rcv_nxt = self.rcv_nxt
        if rcv_nxt is None:
            return False
        wnd = self.rcv_wnd
        seg_len = seg.seg_len
        if seg_len == 0:
            if wnd == 0:
                return seg.seq == rcv_nxt
            return seg.seq.between(rcv_nxt, rcv_nxt + wnd)
        if wnd == 0:
            return False
        last = seg.seq + (seg_len - 1)
        return seg.seq.between(rcv_nxt, rcv_nxt + wnd) or last.between(rcv_nxt, rcv_nxt + wnd)

    def _receive_synchronized(self, seg: Segment, control: Control, now: float) -> None:
        rcv_nxt = self.rcv_nxt
        if rcv_nxt is None:
            return
        # Linux lets a simultaneous-open SYN-ACK through in SYN-RECEIVED
        # (tcp_validate_incoming's RFC 5961 §4 exception); it ACKs our SYN.
        simultaneous = (
            self.state is State.SYN_RECEIVED
            and control is Control.SYN
            and seg.has_ack
            and seg.seq + 1 == rcv_nxt
            and seg.ack == self.snd_nxt
        )
        if simultaneous and seg.ack is not None:
            self._ack_advance(seg.ack, now)
            self._set_state(State.ESTABLISHED, Trigger.RCV_SYN_ACK, now, "simultaneous open")
            self.snd_wnd = seg.window << self.snd_wscale
            self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
            self._send_ack()
            self._push(now)
            return
        # A retransmitted SYN reaching a child in SYN-RECEIVED: its SYN-ACK was
        # lost, so send it again (Linux inet_rtx_syn_ack).
        if (self.state is State.SYN_RECEIVED and control is Control.SYN and not seg.has_ack
                and seg.seq == self.irs):
            if self.rtx:
                self._transmit(self.rtx[0], options=self.syn_options)
            return
        # TIME-WAIT and a retransmitted FIN: ACK it and restart 2MSL (§3.10.7.4 eighth).
        if (self.state is State.TIME_WAIT and control is Control.FIN
                and seg.end == rcv_nxt):
            self._send_ack()
            self._arm(TimerKind.TIME_WAIT, now + self.profile.time_wait_seconds)
            return
        # first: sequence number
        if not self._acceptable(seg):
            if control is not Control.RST:
                self._send_oow_ack()
            return
        # second: RST, with RFC 5961 §3.2's exact-match rule
        if control is Control.RST:
            if seg.seq == rcv_nxt:
                self._on_reset(now)
            else:
                self._send_oow_ack()  # challenge ACK
            return
        # fourth: SYN in a synchronized state, RFC 5961 §4: challenge ACK
        if control is Control.SYN:
            self._send_oow_ack()  # challenge ACK
            return
        # fifth: ACK
        if not seg.has_ack or seg.ack is None:
            return
        if not self._process_ack(seg, seg.ack, now):
            return
        # seventh: segment text
        payload = seg.payload
        fin = control is Control.FIN
        if payload or fin:
            self._process_text(seg, payload, fin, now)
        self._push(now)

    def _on_reset(self, now: float) -> None:
        state = self.state
        if state is State.SYN_RECEIVED:
            self._set_state(State.CLOSED, Trigger.RCV_RST, now)
            self._clear()
            if self.fastopen_child:
                # Already in the accept queue: accept() still returns it, recv()
                # gives the SYN's data, then ECONNRESET (packetdrill reset-before-accept).
                self._fail("ECONNRESET", now)
            elif self.listener is not None:
                self.listener.child_gone(self)
            else:
                self._fail("ECONNREFUSED", now)
            return
        errno = {
            State.ESTABLISHED: "ECONNRESET",
            State.FIN_WAIT_1: "ECONNRESET",
            State.FIN_WAIT_2: "ECONNRESET",
            State.CLOSE_WAIT: "EPIPE",  # Linux tcp_reset
            State.CLOSING: "ECONNRESET",
            State.LAST_ACK: "ECONNRESET",
        }.get(state)
        self._set_state(State.CLOSED, Trigger.RCV_RST, now)
        self._clear()
        if errno is not None:
            self._fail(errno, now)

    def _ack_advance(self, ack: Seq, now: float) -> None:
        """SND.UNA moves to ``ack``: drop acknowledged segments, sample the RTT."""
        self.snd_una = ack
        while self.rtx:
            head = self.rtx[0]
            if head.end <= ack:
                self.rtx.pop(0)
                if not head.retransmitted:  # Karn's algorithm
                    self._rtt_sample(now - head.sent_at)
            elif head.seq < ack:
                cut = ack - head.seq
                self.rtx[0] = replace(head, seq=ack, payload=head.payload[cut:])
                break
            else:
                break
        self.retransmits = 0
        self.dupacks = 0
        if self.rtx:
            self._arm(TimerKind.RETRANSMIT, now + self.rto)
        else:
            self._cancel(TimerKind.RETRANSMIT)

    def _process_ack(self, seg: Segment, ack: Seq, now: float) -> bool:
        """RFC 9293 §3.10.7.4 fifth check; False: stop processing the segment."""
        if self.state is State.SYN_RECEIVED:
            if not (self.snd_una < ack <= self.snd_nxt):
                self._out.append(Segment(self.local[0], self.local[1], self.remote[0],
                                         self.remote[1], ack, None, Flags.RST))
                return False
            if (self.listener is not None and not self.fastopen_child
                    and not self.listener.can_complete()):
                # Linux listen overflow: the request disappears without a word (no
                # SYN-ACK retransmission, nothing in sock_diag; seen with `tcplab run
                # backlog-full`).  The client believes it is connected.
                self._set_state(State.CLOSED, Trigger.RCV_ACK_OF_SYN, now, "accept queue full")
                self._clear()
                self.listener.child_gone(self)
                return False
            self._ack_advance(ack, now)
            self._set_state(State.ESTABLISHED, Trigger.RCV_ACK_OF_SYN, now)
            self.snd_wnd = seg.window << self.snd_wscale
            self.snd_wl1, self.snd_wl2 = seg.seq, ack
            if self.listener is not None:
                self.listener.child_established(self)
            if self.keepalive:
                self._arm(TimerKind.KEEPALIVE, now + self.keepalive_idle)
        # RFC 5961 §5.2: an ACK for data never sent, or far too old: ACK back, drop.
        if ack > self.snd_nxt or ack < self.snd_una - max(self.max_snd_wnd, 1):
            self._send_oow_ack()
            return False
        window = seg.window << self.snd_wscale
        if ack > self.snd_una:
            self._ack_advance(ack, now)
        elif (ack == self.snd_una and self.rtx and not seg.payload
              and seg.control is Control.NONE and window == self.snd_wnd):
            # RFC 5681 §3.2: the third duplicate ACK triggers fast retransmit.
            self.dupacks += 1
            if self.dupacks == 3:
                head = replace(self.rtx[0], retransmitted=True)
                self.rtx[0] = head
                self._events.append(
                    Retransmitted(now, self.endpoint, self.label, self.state, head.seq))
                self._transmit(head, psh=head.psh)
        # RFC 9293 §3.10.7.4: update the send window from newer segments only.
        if self.snd_wl1 < seg.seq or (self.snd_wl1 == seg.seq and self.snd_wl2 <= ack):
            self.snd_wnd = window
            self.max_snd_wnd = max(self.max_snd_wnd, window)
            self.snd_wl1, self.snd_wl2 = seg.seq, ack
        fin_acked = self.fin_seq is not None and self.snd_una == self.fin_seq + 1
        if fin_acked:
            if self.state is State.FIN_WAIT_1:
                self._set_state(State.FIN_WAIT_2, Trigger.RCV_ACK_OF_FIN, now)
                self._arm_fin_wait_2(now)
            elif self.state is State.CLOSING:
                self._enter_time_wait(Trigger.RCV_ACK_OF_FIN, now)
                return False
            elif self.state is State.LAST_ACK:
                self._set_state(State.CLOSED, Trigger.RCV_ACK_OF_FIN, now)
                self._clear()
                return False
        return self.state is not State.TIME_WAIT

    def _process_text(self, seg: Segment, payload: bytes, fin: bool, now: float) -> None:
        rcv_nxt = self.rcv_nxt
        if rcv_nxt is None:
            return
        if self.state not in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2):
            # CLOSE-WAIT, CLOSING, LAST-ACK: the peer already sent its FIN;
            # §3.10.7.4 seventh: ignore the text (a retransmitted FIN is re-ACKed).
            if fin:
                self._send_ack()
            return
        if (payload and (self.orphaned or self.read_shut)
                and self.state in (State.FIN_WAIT_1, State.FIN_WAIT_2)
                and seg.seq + len(payload) > rcv_nxt):
            # RFC 9293 §3.6 (SHLD-3): new data after CLOSE; nobody can read it.
            # Linux (TCPAbortOnData) resets in answer to the segment itself:
            # <SEQ=SEG.ACK><CTL=RST>, and the socket dies with ECONNRESET.
            reply = reset_for(seg)
            if reply is not None:
                self._out.append(replace(reply, src=self.local[0], sport=self.local[1],
                                         dst=self.remote[0], dport=self.remote[1]))
            self._set_state(State.CLOSED, Trigger.RCV_DATA_AFTER_CLOSE, now)
            self._clear()
            if not self.orphaned:
                self._fail("ECONNRESET", now)
            return
        seq = seg.seq
        if seq < rcv_nxt:  # trim what we already have
            cut = rcv_nxt - seq
            payload = payload[cut:]
            seq = rcv_nxt
        if seq != rcv_nxt:
            # Out of order: keep it, and say what we are missing at once
            # (RFC 5681 §4.2 duplicate ACK).
            self.out_of_order[seq] = (payload, fin)
            self._send_ack()
            return
        delivered = bytearray(payload)
        end = rcv_nxt + len(payload)
        got_fin = fin
        while not got_fin and end in self.out_of_order:
            more, more_fin = self.out_of_order.pop(end)
            delivered += more
            end = end + len(more)
            got_fin = more_fin
        # Drop queued pieces the new data covered.
        for key in [k for k in self.out_of_order if k < end]:
            piece, piece_fin = self.out_of_order.pop(key)
            tail = (key + len(piece)) - end
            if tail > 0:
                self.out_of_order[end] = (piece[len(piece) - tail:], piece_fin)
        self.rcv_nxt = end
        if delivered:
            self.got_data = True
            self.last_data_at = now
            if not (self.read_shut and self.profile.shut_rd_discards):
                self.rcv_queue += delivered
                self._events.append(Delivered(now, self.endpoint, self.label, bytes(delivered)))
            self.unacked_bytes += len(delivered)
        if got_fin:
            self._process_fin(now)
            return
        if delivered:
            self._schedule_ack(now)

    @property
    def interactive(self) -> bool:
        """Linux pingpong mode: ACKs wait, to ride on the reply the application is writing."""
        threshold = self.profile.pingpong_threshold
        return threshold is not None and self.pingpong >= threshold

    @property
    def _full_sized(self) -> int:
        """A full-sized segment's payload: the peer's effective send MSS (RFC 9293
        §3.7.1), the MSS less the 12 timestamp option bytes every segment carries
        (RFC 7323 §3): 1448 on Ethernet.  Linux measures it from what arrives
        (tcp_measure_rcv_mss).  Taking 1460 instead, no segment is ever full and a
        bulk receiver ACKs only when its delayed-ACK timer fires."""
        return min(self.peer_mss, self.profile.mss) - (12 if self.ts_ok else 0)

    def _schedule_ack(self, now: float) -> None:
        p = self.profile
        if self.quickacks_left > 0 and not self.interactive:
            self.quickacks_left -= 1
            self._send_ack()
        elif self.unacked_bytes > (p.ack_every_full_segments - 1) * self._full_sized:
            # RFC 9293 §3.8.6.3: an ACK for at least every second full-sized segment.
            # Counted in bytes, as Linux does (__tcp_ack_snd_check: more than one
            # rcv_mss unACKed), so a full segment and a short tail are ACKed at once.
            self._send_ack()
        elif TimerKind.DELAYED_ACK not in self.timers:
            self._arm(TimerKind.DELAYED_ACK, now + p.delayed_ack)

    def _process_fin(self, now: float) -> None:
        # RFC 9293 §3.10.7.4 eighth: advance RCV.NXT over the FIN and ACK it.
        if self.rcv_nxt is None:
            return
        self.rcv_nxt = self.rcv_nxt + 1
        self.peer_fin = True
        self._events.append(Delivered(now, self.endpoint, self.label, b""))
        if self.state is State.ESTABLISHED:
            self._set_state(State.CLOSE_WAIT, Trigger.RCV_FIN, now)
            if self.profile.pingpong_threshold is not None:
                self.pingpong = self.profile.pingpong_threshold  # tcp_fin
            if self.profile.delay_ack_of_fin:
                # Linux tcp_fin: pingpong mode, so the ACK waits for the delayed-ACK
                # timer: 40 ms once data has arrived (it usually rides on our own FIN,
                # the three-segment close), the next timer tick if none ever did
                # (ato is still 0; KERNEL-NOTES: 1-44 ms).
                delay = (self.profile.delayed_ack if self.got_data
                         else self.profile.delayed_ack_before_data)
                if TimerKind.DELAYED_ACK not in self.timers:
                    self._arm(TimerKind.DELAYED_ACK, now + delay)
            else:
                self._send_ack()
        elif self.state is State.FIN_WAIT_1:
            self._set_state(State.CLOSING, Trigger.RCV_FIN, now)
            self._send_ack()
        elif self.state is State.FIN_WAIT_2:
            self._send_ack()
            self._enter_time_wait(Trigger.RCV_FIN, now)


class Listener(_Machine):
    """A LISTEN socket: it never leaves LISTEN for a SYN; it spawns a child (RFC 9293 §3.10.7.2)."""

    def __init__(
        self,
        *,
        profile: Profile,
        endpoint: str,
        local: tuple[str, int],
        backlog: int,
        isn: Callable[[tuple[str, int], tuple[str, int], float], int],
        spawn: Callable[[Connection], None],
    ) -> None:
        super().__init__(endpoint, f"listener :{local[1]}", State.CLOSED)
        self.profile = profile
        self.local = local
        self.backlog = backlog
        self._isn = isn
        self._spawn = spawn
        self.accept_queue: deque[Connection] = deque()
        self.half_open: list[Connection] = []
        self.reuseaddr = False
        self.keepalive = False
        # Fast Open children that may wait for their handshake at once
        # (setsockopt TCP_FASTOPEN; Linux fastopenq.max_qlen); 0: no Fast Open.
        self.fastopen_qlen = 0

    def listen(self, now: float) -> None:
        self._set_state(State.LISTEN, Trigger.LISTEN, now, f"backlog {self.backlog}")
        bits = self.profile.fastopen
        if bits & tfo.SERVER_WO_SOCKOPT and bits & tfo.SERVER_ENABLE and not self.fastopen_qlen:
            self.fastopen_qlen = self.backlog  # Linux inet_listen: every listener, qlen = backlog

    def _fastopen(self, seg: Segment) -> tuple[bool, bytes | None]:
        """RFC 7413 §4.2.2 as Linux tcp_try_fastopen decides it: (take the SYN's
        data in a Fast Open child, the cookie the SYN-ACK carries)."""
        bits = self.profile.fastopen
        cookie = seg.options.fastopen
        if cookie and not tfo.cookie_option_ok(cookie):
            cookie = None  # a malformed option counts as none (tcp_parse_fastopen_option)
        pending = sum(1 for c in self.accept_queue
                      if c.fastopen_child and c.state is State.SYN_RECEIVED)
        if not (bits & tfo.SERVER_ENABLE and (seg.payload or cookie is not None)
                and pending < self.fastopen_qlen):
            return False, None
        if bits & tfo.SERVER_COOKIE_NOT_REQD:
            return True, None
        if cookie is None:
            return False, None  # data without a cookie: an ordinary SYN
        valid = tfo.cookie_for(tfo.parse_key(self.profile.fastopen_key), seg.src, seg.dst)
        if cookie == valid:
            return True, None
        return False, valid  # asked for one (empty option), or brought a bad one

    def accept(self) -> Connection | None:
        if self.state is not State.LISTEN:
            raise SocketError("EINVAL", "accept() on a socket that is not listening")
        return self.accept_queue.popleft() if self.accept_queue else None

    def _full(self) -> bool:
        # Linux sk_acceptq_is_full: more than backlog children waiting.
        return self.profile.backlog_overflow_drops and len(self.accept_queue) > self.backlog

    def can_complete(self) -> bool:
        return not self._full()

    def child_established(self, child: Connection) -> None:
        if child.fastopen_child and child.state is not State.SYN_RECEIVED:
            return  # queued for accept() when it was born (RFC 7413 §4.2.2)
        if child in self.half_open:
            self.half_open.remove(child)
        self.accept_queue.append(child)

    def child_gone(self, child: Connection) -> None:
        if child in self.half_open:
            self.half_open.remove(child)

    def receive(self, seg: Segment, now: float, *, iss: int | None = None) -> None:
        """A segment for the port; ``iss`` fixes the child's ISS (a SYN that ended TIME-WAIT)."""
        control = seg.control
        if self.state is not State.LISTEN or control in (Control.RST, Control.INVALID):
            return  # §3.10.7.2 first: an incoming RST is ignored
        if seg.has_ack:
            # §3.10.7.2 second: any ACK is bad here: <SEQ=SEG.ACK><CTL=RST>.
            reply = reset_for(seg)
            if reply is not None:
                self._out.append(reply)
            return
        if control is not Control.SYN:
            return
        if self._full():
            return  # Linux drops the SYN while the accept queue is full
        remote = (seg.src, seg.sport)
        child = Connection(
            profile=self.profile, endpoint=self.endpoint, local=self.local, remote=remote,
            iss=self._isn(self.local, remote, now) if iss is None else iss,
            state=State.LISTEN, listener=self, now=now,
        )
        child.keepalive = self.keepalive
        fastopen, cookie = self._fastopen(seg)
        if not fastopen:
            self.half_open.append(child)
        self._spawn(child)
        child.open_passive(seg, now, fastopen=fastopen, cookie=cookie)

    def close(self, now: float) -> None:
        if self.state is not State.LISTEN:
            return
        self._set_state(State.CLOSED, Trigger.CLOSE, now)
        # Linux inet_csk_listen_stop: unaccepted children are reset, half-open
        # requests dropped silently.
        for child in list(self.accept_queue):
            if child.fastopen_child and child.state is State.SYN_RECEIVED:
                child.listener_closed(now)
            else:
                child.abort(now)
        for child in list(self.half_open):
            child.abort(now)
        self.accept_queue.clear()
        self.half_open.clear()
