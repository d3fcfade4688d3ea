"""Zeek-compatible connections: ``conn_state``, ``history`` and conn.log counters.

Theory of operation (PEER-SEMANTICS.md §1; Zeek's TCPSessionAdapter.cc,
TCP_Endpoint.cc, TCP_Reassembler.cc): every packet runs, in Zeek's order,
checksum validation -> endpoint sequence initialisation -> history letters ->
window bookkeeping -> ACK bookkeeping -> last-seq update (retransmission
counting) -> the per-endpoint state machine (INACTIVE, SYN_SENT,
SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET) -> ACK-driven content-gap
detection.  ``conn_state`` is then a pure function of the two endpoint
states and the history (``conn_state()`` in Zeek's conn/main.zeek).

Zeek's sequence numbers are 32-bit with wrap counters; ``seq_delta`` is the
signed 32-bit difference Zeek uses (RFC 1982 style, as tcplab's ``Seq``).
Timers (attempt, close delay, inactivity) are evaluated as data when the next
packet of the same 5-tuple arrives, the way Zeek's packet-driven clock fires
them when reading a trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from tcplab.analyze.frames import Segment

TOO_LARGE_SEQ_DELTA = 1048576
MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF

# Zeek's defaults (scripts/base/init-bare.zeek).
TCP_ATTEMPT_DELAY = 5.0
TCP_CLOSE_DELAY = 5.0
TCP_INACTIVITY_TIMEOUT = 300.0
TCP_MAX_INITIAL_WINDOW = 16384

# Ports the analyzers of Zeek's default script set register as likely
# server ports (``likely_server_ports``); ``zeek -b`` loads none of them.
DEFAULT_LIKELY_SERVER_PORTS: frozenset[int] = frozenset(
    {
        21,
        22,
        23,
        25,
        53,
        80,
        81,
        88,
        110,
        135,
        139,
        143,
        261,
        389,
        443,
        445,
        448,
        465,
        502,
        563,
        585,
        587,
        614,
        631,
        636,
        989,
        990,
        992,
        993,
        994,
        995,
        1080,
        1433,
        1434,
        1883,
        2811,
        3128,
        3268,
        3306,
        3389,
        5222,
        5223,
        5269,
        5432,
        5900,
        5901,
        5902,
        6379,
        6666,
        6667,
        6668,
        6669,
        8000,
        8080,
        8888,
        20000,
    }
)


class EndpointState(IntEnum):
    """Zeek's ``EndpointState`` (TCP_Endpoint.h), values as in conn.log events."""

    INACTIVE = 0
    SYN_SENT = 1
    SYN_ACK_SENT = 2
    PARTIAL = 3
    ESTABLISHED = 4
    CLOSED = 5
    RESET = 6


S = EndpointState

# History "seen" bits (TCP_Endpoint::HistoryMasks); the responder's are <<16.
HIST_SYN_PKT = 0x1
HIST_FIN_PKT = 0x2
HIST_RST_PKT = 0x4
HIST_FIN_RST_PKT = 0x8
HIST_DATA_PKT = 0x10
HIST_ACK_PKT = 0x20
HIST_MULTI_FLAG_PKT = 0x40

_RSTOS0_HISTORY = re.compile(r"\^?S[^HAFGIQ]*R.*")


def seq_delta(a: int, b: int) -> int:
    """Signed 32-bit a - b (Zeek's seq_delta)."""
    d = (a - b) & MASK32
    return d - 0x100000000 if d & 0x80000000 else d


@dataclass(slots=True)
class _Reassembly:
    """The bookkeeping of Zeek's TCP_Reassembler that decides content gaps.

    Relative sequence space, first data byte = 1.  Only undelivered blocks
    (above ``last_reassem``) are kept, merged; payload bytes are not stored.
    """

    last_reassem: int = 1
    trim: int = 1
    blocks: list[tuple[int, int]] = field(default_factory=list)  # sorted (seq, upper)

    def data_sent(self, seq: int, length: int, acked: int) -> None:
        upper = seq + length
        if seq < acked:
            if upper <= acked:
                return
            seq = acked
        if upper <= self.trim:
            return
        seq = max(seq, self.trim)
        if seq <= self.last_reassem:
            if upper > self.last_reassem:
                self.last_reassem = upper
                self._absorb()
            return
        self._insert(seq, upper)

    def _insert(self, seq: int, upper: int) -> None:
        merged: list[tuple[int, int]] = []
        placed = False
        for b_seq, b_upper in self.blocks:
            if b_upper < seq or b_seq > upper:
                if b_seq > upper and not placed:
                    merged.append((seq, upper))
                    placed = True
                merged.append((b_seq, b_upper))
            else:
                seq, upper = min(seq, b_seq), max(upper, b_upper)
        if not placed:
            merged.append((seq, upper))
        merged.sort()
        self.blocks = merged

    def _absorb(self) -> None:
        while self.blocks and self.blocks[0][0] <= self.last_reassem:
            _b_seq, b_upper = self.blocks.pop(0)
            self.last_reassem = max(self.last_reassem, b_upper)

    def gaps_up_to(self, up_to: int) -> list[tuple[int, int]]:
        """TrimToSeq/Undelivered: the holes below ``up_to`` that were never seen."""
        gaps: list[tuple[int, int]] = []
        while self.blocks and self.blocks[0][0] < up_to:
            b_seq, b_upper = self.blocks.pop(0)
            if b_seq > self.last_reassem:
                gaps.append((self.last_reassem, b_seq - self.last_reassem))
            self.last_reassem = max(self.last_reassem, b_upper)
        if up_to > self.last_reassem:
            gaps.append((self.last_reassem, up_to - self.last_reassem))
            self.last_reassem = up_to
        return gaps


class ZeekSideView(Protocol):
    @property
    def addr(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def pkts(self) -> int: ...
    @property
    def ip_bytes(self) -> int: ...


class ZeekView(Protocol):
    """What conn.log shows of a Zeek connection: this module's
    ``ZeekConnection`` and the engine's ``ZeekRecord`` both fit."""

    @property
    def start(self) -> float: ...
    @property
    def last_time(self) -> float: ...
    @property
    def duration(self) -> float: ...
    @property
    def history(self) -> str: ...
    @property
    def missed_bytes(self) -> int: ...
    @property
    def first_frame(self) -> int: ...
    @property
    def orig(self) -> ZeekSideView: ...
    @property
    def resp(self) -> ZeekSideView: ...
    def conn_state(self) -> str: ...
    def orig_bytes(self) -> int: ...
    def resp_bytes(self) -> int: ...


@dataclass(slots=True)
class ZeekEndpoint:
    is_orig: bool
    state: EndpointState = S.INACTIVE
    prev_state: EndpointState = S.INACTIVE
    start_seq: int = 0
    last_seq: int = 0
    ack_seq: int = 0
    seq_wraps: int = 0
    ack_wraps: int = 0
    window: int = 0
    window_scale: int = 0
    window_seq: int = 0
    window_ack_seq: int = 0
    fin_cnt: int = 0
    rst_cnt: int = 0
    fin_seq: int = 0
    did_close: bool = False
    hist_last_syn: int = 0
    hist_last_fin: int = 0
    hist_last_rst: int = 0
    counters: dict[str, list[int]] = field(default_factory=dict)  # letter -> [count, threshold]
    reassembly: _Reassembly = field(default_factory=_Reassembly)
    pkts: int = 0
    ip_bytes: int = 0
    addr: str = ""
    port: int = 0

    def set_state(self, new: EndpointState) -> None:
        if new != self.state:
            self.prev_state = self.state
            self.state = new

    def init_seqs(self, start: int, last: int) -> None:
        self.start_seq = start & MASK32
        self.ack_seq = start & MASK32
        self.last_seq = last & MASK32

    def update_last_seq(self, seq: int) -> None:
        if seq < self.last_seq:
            self.seq_wraps += 1
        self.last_seq = seq

    def update_ack_seq(self, seq: int) -> None:
        if seq < self.ack_seq:
            self.ack_wraps += 1
        self.ack_seq = seq

    def relative(self, cur: int, last: int, wraps: int) -> tuple[int, bool]:
        """get_relative_seq: (relative seq, underflow)."""
        delta = seq_delta(cur, last)
        if delta < 0:
            if wraps and cur > last:
                wraps -= 1
        elif delta > 0 and cur < last:
            wraps += 1
        if wraps == 0:
            d = seq_delta(cur, self.start_seq)
            return d & MASK64, d < 0
        return ((wraps << 32) + cur - self.start_seq) & MASK64, False

    def no_data_acked(self) -> bool:
        ack = (self.ack_wraps << 32) + self.ack_seq
        return ack in (self.start_seq, self.start_seq + 1)

    def size(self, peer: ZeekEndpoint) -> int:
        """TCP_Endpoint::Size: payload bytes in sequence space, SYN/FIN excluded."""
        if (
            self.prev_state == S.SYN_SENT
            and self.state == S.RESET
            and peer.state == S.INACTIVE
            and not self.no_data_acked()
        ):
            return 0
        last = (self.seq_wraps << 32) + self.last_seq
        ack = (self.ack_wraps << 32) + self.ack_seq
        size = (last if last > ack else ack) - self.start_seq
        size &= MASK64
        if size:
            size -= 1
        if self.fin_cnt > 0 and size:
            size -= 1
        return size

    def rel_ack_seq(self) -> int:
        return ((self.ack_wraps << 32) + self.ack_seq - self.start_seq) & MASK64


@dataclass(slots=True)
class ZeekConnection:
    """One Zeek connection; ``orig``/``resp`` follow Zeek's role decisions."""

    uid: str
    start: float
    orig: ZeekEndpoint
    resp: ZeekEndpoint
    last_time: float
    history: str = ""
    hist_seen: int = 0
    is_partial: bool = False
    first_packet_seen: int = 0
    is_active: bool = True
    missed_bytes: int = 0
    attempt_deadline: float | None = None
    delete_at: float | None = None
    last_packet: float = 0.0
    flipped: bool = False
    segments: list[int] = field(default_factory=list)  # frame numbers
    ignore_checksums: bool = False

    # -- history ---------------------------------------------------------
    def add_history(self, code: str) -> None:
        self.history += code

    def check_history(self, ep: ZeekEndpoint, mask: int, code: str) -> bool:
        """Connection::CheckHistory: True when this kind was already recorded."""
        if not ep.is_orig:
            mask <<= 16
            code = code.lower()
        if self.hist_seen & mask:
            return True
        self.hist_seen |= mask
        self.add_history(code)
        return False

    def endpoint_add_history(self, ep: ZeekEndpoint, code: str) -> None:
        self.add_history(code if ep.is_orig else code.lower())

    def scaled(self, ep: ZeekEndpoint, code: str) -> None:
        """Session::ScaledHistoryEntry: a letter at counts 1, 10, 100, ..."""
        count, threshold = ep.counters.get(code, [0, 1])
        count = (count + 1) & MASK32
        if count == threshold:
            self.add_history(code if ep.is_orig else code.lower())
            new = threshold * 10
            threshold = new if new <= MASK32 else threshold
        ep.counters[code] = [count, threshold]

    def flip_roles(self) -> None:
        """Connection::FlipRoles: swap originator and responder, append ``^``."""
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig = True
        self.resp.is_orig = False
        fps = self.first_packet_seen
        self.first_packet_seen = (2 if fps & 1 else 0) | (1 if fps & 2 else 0)
        self.is_partial = False
        self.flipped = not self.flipped
        self.add_history("^")

    # -- results ---------------------------------------------------------
    @property
    def first_frame(self) -> int:
        return self.segments[0] if self.segments else 0

    @property
    def duration(self) -> float:
        return self.last_time - self.start

    def conn_state(self) -> str:
        """conn_state() of conn/main.zeek (PEER-SEMANTICS.md §1.1), rules in order."""
        os_, rs = self.orig.state, self.resp.state
        inactive = (S.INACTIVE, S.PARTIAL)
        if rs == S.RESET:
            if os_ in (S.SYN_SENT, S.SYN_ACK_SENT) or (
                os_ == S.RESET and self.orig.size(self.resp) == 0 and self.resp.size(self.orig) == 0
            ):
                return "REJ"
            if os_ in inactive:
                return "RSTRH"
            return "RSTR"
        if os_ == S.RESET:
            if rs in inactive:
                return "RSTOS0" if _RSTOS0_HISTORY.fullmatch(self.history) else "OTH"
            return "RSTO"
        if os_ == S.CLOSED and rs == S.CLOSED:
            return "SF"
        if os_ == S.CLOSED:
            return "SH" if rs in inactive else "S2"
        if rs == S.CLOSED:
            return "SHR" if os_ in inactive else "S3"
        if os_ == S.SYN_SENT and rs == S.INACTIVE:
            return "S0"
        if os_ == S.ESTABLISHED and rs == S.ESTABLISHED:
            return "S1"
        return "OTH"

    def orig_bytes(self) -> int:
        return self.orig.size(self.resp)

    def resp_bytes(self) -> int:
        return self.resp.size(self.orig)


class ZeekTracker:
    """All connections of a capture, Zeek style.

    ``likely_server_ports``: Zeek's default mode registers the analyzers'
    ports; pass ``frozenset()`` to reproduce ``zeek -b``.
    ``ignore_checksums``: ``zeek -C``.
    """

    def __init__(
        self,
        likely_server_ports: frozenset[int] = DEFAULT_LIKELY_SERVER_PORTS,
        ignore_checksums: bool = False,
    ) -> None:
        self.likely_server_ports = likely_server_ports
        self.ignore_checksums = ignore_checksums
        self.active: dict[tuple[str, int, str, int], ZeekConnection] = {}
        self.finished: list[ZeekConnection] = []
        self._uid = 0

    # -- connection lookup -------------------------------------------------
    @staticmethod
    def key(seg: Segment) -> tuple[str, int, str, int]:
        a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
        return (*a, *b) if a <= b else (*b, *a)

    def _want_connection(self, seg: Segment) -> bool:
        """TCPAnalyzer::WantConnection: should the first packet's sender be the responder?"""
        first_is_not_a_syn = not seg.syn or seg.has_ack
        if first_is_not_a_syn and seg.sport in self.likely_server_ports:
            if seg.dport in self.likely_server_ports:
                return not seg.syn and seg.sport < seg.dport
            return True
        return False

    def _new_connection(self, seg: Segment) -> ZeekConnection:
        self._uid += 1
        src = ZeekEndpoint(is_orig=True, addr=seg.src, port=seg.sport)
        dst = ZeekEndpoint(is_orig=False, addr=seg.dst, port=seg.dport)
        conn = ZeekConnection(
            uid=f"C{self._uid:08d}",
            start=seg.time,
            orig=src,
            resp=dst,
            last_time=seg.time,
            last_packet=seg.time,
            ignore_checksums=self.ignore_checksums,
        )
        if self._want_connection(seg):
            conn.flip_roles()
        return conn

    def _finish(self, key: tuple[str, int, str, int]) -> None:
        conn = self.active.pop(key)
        self.finished.append(conn)

    def _expired(self, conn: ZeekConnection, now: float) -> bool:
        if conn.delete_at is not None and now >= conn.delete_at:
            return True
        if (
            conn.attempt_deadline is not None
            and now >= conn.attempt_deadline
            and conn.is_active
            and conn.orig.state in (S.SYN_SENT, S.SYN_ACK_SENT)
            and conn.resp.state == S.INACTIVE
        ):
            return True
        # The inactivity timer fires at last activity + timeout; a packet
        # arriving exactly then finds the connection gone (1 us slack for
        # float timestamps).
        return now - conn.last_packet >= TCP_INACTIVITY_TIMEOUT - 1e-6

    def _is_reuse(self, conn: ZeekConnection, seg: Segment) -> bool:
        """TCPSessionAdapter::IsReuse: does this SYN start a new connection?"""
        if not seg.syn:
            return False
        conn_orig = conn.orig
        if seg.has_ack:
            if conn.orig.state != S.INACTIVE:
                return False
            conn_orig = conn.resp
        if conn.is_active and conn.delete_at is None:
            if seg.seq == conn_orig.start_seq:
                return False
            if (
                not seg.has_ack
                and conn_orig.state == S.SYN_ACK_SENT
                and conn.resp.state == S.INACTIVE
                and seg.seq == conn.resp.start_seq
            ):
                return False
        return True

    def observe(self, seg: Segment) -> ZeekConnection | None:
        """Feed one packet; returns the connection it was attributed to."""
        if not self.ignore_checksums and not seg.ip_checksum_ok:
            # Zeek drops IPv4 packets with a bad header checksum before any
            # connection lookup ("bad_IP_checksum").
            return None
        key = self.key(seg)
        conn = self.active.get(key)
        if conn is not None and (self._expired(conn, seg.time) or self._is_reuse(conn, seg)):
            self._finish(key)
            conn = None
        if conn is None:
            conn = self._new_connection(seg)
            self.active[key] = conn
        conn.segments.append(seg.index)
        conn.last_packet = seg.time
        process(conn, seg)
        return conn

    def close(self) -> list[ZeekConnection]:
        """End of input: every connection, in order of first packet."""
        for key in list(self.active):
            self._finish(key)
        return sorted(self.finished, key=lambda c: (c.start, c.uid))


def process(conn: ZeekConnection, seg: Segment) -> None:
    """TCPSessionAdapter::Process for one packet (checksum check first, TCP.cc)."""
    is_orig = seg.src == conn.orig.addr and seg.sport == conn.orig.port
    if conn.orig.addr == conn.resp.addr and conn.orig.port == conn.resp.port:
        is_orig = True
    endpoint = conn.orig if is_orig else conn.resp
    peer = conn.resp if is_orig else conn.orig

    if not conn.ignore_checksums and seg.checksum_ok is False:
        conn.scaled(endpoint, "C")
        return

    # ConnSize analyzer: packets and IP bytes per direction.
    endpoint.pkts += 1
    endpoint.ip_bytes += seg.ip_len

    syn, fin, rst, ack = seg.syn, seg.fin, seg.rst, seg.has_ack
    length = seg.length
    _set_partial_status(conn, syn, ack, endpoint.is_orig)

    seg_len = length + (1 if syn else 0) + (1 if fin else 0) - (length if rst else 0)
    base_seq = seg.seq
    ack_seq = seg.ack
    seq_one_past = (base_seq + seg_len) & MASK32

    _init_endpoint(endpoint, syn, base_seq, seq_one_past)

    rel_seq, seq_underflow = endpoint.relative(base_seq, endpoint.last_seq, endpoint.seq_wraps)

    _update_history(conn, endpoint, syn, fin, rst, ack, rel_seq, length)
    _update_window(conn, endpoint, peer, seg.window, base_seq, ack_seq, syn, fin, rst)

    if not conn.orig.did_close or not conn.resp.did_close:
        conn.last_time = seg.time

    if syn:
        _init_window(endpoint, peer, ack, seg.options.wscale, base_seq, ack_seq)
    if fin:
        endpoint.fin_cnt += 1
        endpoint.fin_seq = (rel_seq + seg_len) & MASK64
    if rst:
        endpoint.rst_cnt += 1

    rel_ack = 0
    if ack:
        if peer.state == S.INACTIVE:
            rel_ack = 1
            # init_peer: number the peer as if its SYN had been seen.
            peer.init_seqs(ack_seq - 1, ack_seq - 1)
        else:
            rel_ack, ack_underflow = peer.relative(ack_seq, peer.ack_seq, peer.ack_wraps)
            if ack_underflow:
                rel_ack = 0
            elif not rst:
                # Don't trust acks in RST packets.
                d = seq_delta(ack_seq, peer.ack_seq)
                if not (ack_seq == 0 and d > TOO_LARGE_SEQ_DELTA) and d > 0:
                    peer.update_ack_seq(ack_seq)

    delta_last = _update_last_seq(conn, endpoint, seq_one_past, syn, fin, rst, length)

    do_close, gen_event = _update_state_machine(
        conn, endpoint, peer, base_seq, ack_seq, length, delta_last, syn, fin, rst, ack
    )
    # The flip inside the state machine may have swapped the roles.
    if ack:
        _ack_received(conn, peer, rel_ack)

    rel_data_seq = rel_seq + 1 if syn else rel_seq
    if length > 0 and not rst and not seq_underflow and seg.captured >= length:
        endpoint.reassembly.data_sent(rel_data_seq, length, endpoint.rel_ack_seq())

    if do_close:
        _connection_closed(conn, endpoint, peer, gen_event)


def _set_partial_status(conn: ZeekConnection, syn: bool, ack: bool, is_orig: bool) -> None:
    if is_orig:
        if not conn.first_packet_seen & 1:
            conn.is_partial = not syn or ack
    elif not conn.first_packet_seen & 2 and not conn.is_partial:
        conn.is_partial = not syn
    # CheckPIA_FirstPacket marks the direction seen after processing; doing
    # it here is equivalent because nothing in between reads it.
    conn.first_packet_seen |= 1 if is_orig else 2


def _init_endpoint(ep: ZeekEndpoint, syn: bool, first: int, last: int) -> None:
    if ep.state == S.INACTIVE:
        if syn:
            ep.init_seqs(first, last)
        else:
            # A partial connection: number it as though a SYN had been seen,
            # but keep the first packet from counting as a retransmission.
            ep.init_seqs(first - 1, first)
    elif ep.state in (S.SYN_SENT, S.SYN_ACK_SENT):
        if syn and first != ep.start_seq:
            ep.init_seqs(first, last)
    elif ep.state in (S.ESTABLISHED, S.PARTIAL):
        if syn:
            ep.init_seqs(first, last)
    elif ep.state == S.RESET and syn and ep.prev_state == S.INACTIVE:
        ep.init_seqs(first, last)


def _update_history(
    conn: ZeekConnection,
    ep: ZeekEndpoint,
    syn: bool,
    fin: bool,
    rst: bool,
    ack: bool,
    rel_seq: int,
    length: int,
) -> None:
    bits = syn + fin + rst
    if bits > 1:
        if fin and rst:
            conn.check_history(ep, HIST_FIN_RST_PKT, "I")
        else:
            conn.check_history(ep, HIST_MULTI_FLAG_PKT, "Q")
    elif bits == 1:
        if syn:
            code = "H" if ack else "S"
            if conn.check_history(ep, HIST_SYN_PKT, code) and rel_seq != ep.hist_last_syn:
                conn.endpoint_add_history(ep, code)
            ep.hist_last_syn = rel_seq
        if fin:
            # For FINs the compared sequence is the end of the segment's data.
            end = (rel_seq + length) & MASK64
            if conn.check_history(ep, HIST_FIN_PKT, "F") and end != ep.hist_last_fin:
                conn.endpoint_add_history(ep, "F")
            ep.hist_last_fin = end
        if rst:
            if conn.check_history(ep, HIST_RST_PKT, "R") and rel_seq != ep.hist_last_rst:
                conn.endpoint_add_history(ep, "R")
            ep.hist_last_rst = rel_seq
    elif length or ack:
        if conn.history == "H":
            # A connection whose only history is a SYN-ACK from the
            # "originator" was a SYN-ACK-first capture: flip it now.
            conn.history = ""
            conn.flip_roles()
            conn.history = "^h"
        if length:
            conn.check_history(ep, HIST_DATA_PKT, "D")
        else:
            conn.check_history(ep, HIST_ACK_PKT, "A")


def _update_window(
    conn: ZeekConnection,
    ep: ZeekEndpoint,
    peer: ZeekEndpoint,
    window: int,
    base_seq: int,
    ack_seq: int,
    syn: bool,
    fin: bool,
    rst: bool,
) -> None:
    scale = ep.window_scale
    window <<= scale
    if window == 0 and not rst and peer.state != S.CLOSED and ep.state != S.RESET:
        conn.scaled(ep, "W")  # ZeroWindow
    if (
        not syn
        and not fin
        and not rst
        and ep.state not in (S.CLOSED, S.RESET)
        and seq_delta(base_seq, ep.window_seq) >= 0
        and seq_delta(ack_seq, ep.window_ack_seq) >= 0
    ):
        ep.window = window
        ep.window_ack_seq = ack_seq
        ep.window_seq = base_seq


def _init_window(
    ep: ZeekEndpoint, peer: ZeekEndpoint, ack: bool, scale: int | None, base_seq: int, ack_seq: int
) -> None:
    if scale is None:
        if ack:
            ep.window_scale = 0
            peer.window_scale = 0
        else:
            ep.window_scale = 0
    else:
        ep.window_scale = min(scale, 14)  # RFC 7323 §2.3 caps the shift at 14
        ep.window_seq = base_seq
        ep.window_ack_seq = ack_seq
        peer.window_seq = ack_seq
        peer.window_ack_seq = base_seq


def _update_last_seq(
    conn: ZeekConnection,
    ep: ZeekEndpoint,
    last_seq: int,
    syn: bool,
    fin: bool,
    rst: bool,
    length: int,
) -> int:
    delta = seq_delta(last_seq, ep.last_seq)
    if (syn or rst) and (delta > TOO_LARGE_SEQ_DELTA or delta < -TOO_LARGE_SEQ_DELTA):
        pass
    elif fin and ep.last_seq == (ep.start_seq + 1) & MASK32:
        ep.update_last_seq(last_seq)
    elif ep.state == S.RESET:
        pass  # don't trust any subsequent sequence numbers
    elif delta > 0:
        ep.update_last_seq(last_seq)
    elif length > 0:
        conn.scaled(ep, "T")  # DidRxmit
    return delta


def _update_state_machine(
    conn: ZeekConnection,
    ep: ZeekEndpoint,
    peer: ZeekEndpoint,
    base_seq: int,
    ack_seq: int,
    length: int,
    delta_last: int,
    syn: bool,
    fin: bool,
    rst: bool,
    ack: bool,
) -> tuple[bool, bool]:
    do_close = gen_event = False
    st = ep.state
    if st == S.INACTIVE:
        do_close, gen_event = _inactive(conn, ep, peer, base_seq, length, syn, fin, rst, ack)
    elif st in (S.SYN_SENT, S.SYN_ACK_SENT):
        if fin:
            ep.set_state(S.CLOSED)
            do_close = gen_event = True
        if rst:
            ep.set_state(S.RESET)
            conn.is_active = False  # ConnectionReset
            do_close = True
    elif st in (S.ESTABLISHED, S.PARTIAL):
        if syn and st == S.PARTIAL and peer.state == S.INACTIVE and not ack:
            ep.set_state(S.SYN_SENT)
        if fin and not rst:
            ep.set_state(S.CLOSED)
            if peer.state == S.RESET and peer.prev_state == S.CLOSED:
                # The peer sent FIN then RST: that was a normal termination.
                peer.set_state(S.CLOSED)
            do_close = gen_event = True
        if rst:
            ep.set_state(S.RESET)
            do_close = True
            if peer.state != S.RESET or peer.prev_state != S.ESTABLISHED:
                conn.is_active = False
    elif st == S.CLOSED and rst and peer.state != S.CLOSED:
        # After a FIN exchange a RST does not change the outcome (SF stays SF).
        ep.set_state(S.RESET)
        if not ep.did_close:
            do_close = True
    return do_close, gen_event


def _inactive(
    conn: ZeekConnection,
    ep: ZeekEndpoint,
    peer: ZeekEndpoint,
    base_seq: int,
    length: int,
    syn: bool,
    fin: bool,
    rst: bool,
    ack: bool,
) -> tuple[bool, bool]:
    do_close = gen_event = False
    if syn:
        if ep.is_orig:
            ep.set_state(S.SYN_ACK_SENT if ack else S.SYN_SENT)
            conn.attempt_deadline = conn.last_time + TCP_ATTEMPT_DELAY
        else:
            if not ack and peer.state == S.SYN_ACK_SENT and base_seq == ep.start_seq:
                # SYN/SYN-ACK captured in reverse order: flip and establish.
                conn.is_partial = False
                conn.flip_roles()
                peer.set_state(S.ESTABLISHED)
                conn.first_packet_seen |= 1
            if peer.state == S.SYN_SENT:
                peer.set_state(S.ESTABLISHED)
            ep.set_state(S.ESTABLISHED)
    if fin:
        ep.set_state(S.CLOSED)
        do_close = gen_event = True
    if rst:
        ep.set_state(S.RESET)
        if ep.is_orig:
            is_reject = peer.state == S.ESTABLISHED
        else:
            is_reject = peer.state in (S.SYN_SENT, S.SYN_ACK_SENT)
        do_close = True
        gen_event = not is_reject
    if ep.state == S.INACTIVE:
        if not ep.is_orig and length == 0 and conn.orig.state == S.SYN_SENT:
            pass  # an ACK of the SYN before the SYN-ACK: not a partial connection
        elif ack and peer.state == S.ESTABLISHED:
            ep.set_state(S.ESTABLISHED)
            conn.is_partial = False
        else:
            ep.set_state(S.PARTIAL)
    return do_close, gen_event


def _ack_received(conn: ZeekConnection, ep: ZeekEndpoint, seq: int) -> None:
    """TCP_Reassembler::AckReceived on the endpoint whose data is acknowledged."""
    if ep.fin_cnt > 0 and seq >= ep.fin_seq:
        seq = ep.fin_seq - 1
    r = ep.reassembly
    if seq <= r.trim:
        return
    if seq > r.last_reassem:
        if seq <= 2 and conn.is_partial:
            # Faked-up initial sequence numbers of a partial connection.
            pass
        else:
            peer = conn.resp if ep is conn.orig else conn.orig
            for _gap_seq, gap_len in r.gaps_up_to(seq):
                if _is_clean(ep) and _is_clean(peer):
                    conn.scaled(ep, "G")
                    conn.missed_bytes += gap_len
    r.trim = seq
    r.blocks = [(max(b, seq), u) for b, u in r.blocks if u > seq]


def _is_clean(ep: ZeekEndpoint) -> bool:
    return ep.state == S.ESTABLISHED or (ep.state == S.CLOSED and ep.prev_state == S.ESTABLISHED)


def _connection_closed(
    conn: ZeekConnection, ep: ZeekEndpoint, peer: ZeekEndpoint, gen_event: bool
) -> None:
    if ep.did_close:
        return
    ep.did_close = True
    close_complete = ep.state == S.RESET or peer.did_close or peer.state == S.INACTIVE
    if close_complete:
        if (ep.prev_state != S.INACTIVE or peer.state != S.INACTIVE) and gen_event:
            conn.is_active = False  # ConnectionFinished
        conn.attempt_deadline = None
        conn.delete_at = conn.last_time + TCP_CLOSE_DELAY


def track(
    segments: Iterable[Segment],
    likely_server_ports: frozenset[int] = DEFAULT_LIKELY_SERVER_PORTS,
    ignore_checksums: bool = False,
) -> list[ZeekConnection]:
    tracker = ZeekTracker(likely_server_ports, ignore_checksums)
    for seg in segments:
        tracker.observe(seg)
    return tracker.close()
