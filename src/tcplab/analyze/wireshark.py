"""Wireshark-compatible TCP analysis: tcp.stream, relative seq/ack and tcp.analysis.*.

Theory of operation (PEER-SEMANTICS.md §3; Wireshark 4.0.17
epan/dissectors/packet-tcp.c, ``tcp_analyze_sequence_number``): a
conversation per address/port pair, a new one (a new ``tcp.stream``) when a
pure SYN arrives whose ISN differs from the direction's base sequence; the
stream numbers and base sequence numbers come from ``tcplab.flows``.
Each direction keeps ``nextseq`` (highest seq+len seen),
``lastack``, ``maxseqtobeacked``, the last window and the dup-ACK counter; the
checks run in the code's order, and each can skip the rest as the code's
``goto finished_fwd`` / ``goto finished_checking_retransmission_type`` do.

Sequence comparisons are RFC 1982 style on raw 32-bit values (Wireshark's
GT_SEQ/LT_SEQ), with 0 meaning "not yet known" as in the C code.

Times are integer nanoseconds (``Segment.time_ns``), as the C code keeps
``nstime_t`` and computes its gaps: ``t`` and ``ooo_thres`` are ``guint64``
nanosecond counts there, so a gap is never tipped by float rounding (a capture
shifted in time gives the same verdicts) and a negative gap (timestamps going
backwards) wraps to a huge unsigned value and is never "less than" anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcplab.analyze.frames import Segment
from tcplab.flows import FlowTracker

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF

# packet-tcp.c, tcp_analyze_sequence_number: a fast retransmission comes within
# 20 ms of the last duplicate ACK (``t<20000000``); out-of-order within the
# first RTT, or 3 ms when there is none (``ooo_thres = 3000000``).
FAST_RETRANSMISSION_NS = 20_000_000
DEFAULT_OOO_THRESHOLD_NS = 3_000_000

SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10

# Analysis flag names, as the tcp.analysis.<name> fields tshark prints.
FLAG_NAMES: tuple[str, ...] = (
    "zero_window_probe",
    "zero_window",
    "lost_segment",
    "keep_alive",
    "window_update",
    "window_full",
    "keep_alive_ack",
    "zero_window_probe_ack",
    "duplicate_ack",
    "ack_lost_segment",
    "spurious_retransmission",
    "fast_retransmission",
    "out_of_order",
    "retransmission",
    "reused_ports",
)

# The user-facing problem flags (a connection "has problems" when any is set).
PROBLEM_FLAGS = frozenset(
    {
        "zero_window",
        "lost_segment",
        "duplicate_ack",
        "ack_lost_segment",
        "spurious_retransmission",
        "fast_retransmission",
        "out_of_order",
        "retransmission",
        "window_full",
    }
)

WS_UNKNOWN = -1  # no SYN seen: scaling unknown
WS_NONE = -2  # SYN seen without the option: no scaling (RFC 7323 §2.2)


def _s32(x: int) -> int:
    x &= MASK32
    return x - 0x100000000 if x & 0x80000000 else x


def _unsigned32(x: int) -> int:
    """A guint32 counter's value (the -1 marker reads 0xFFFFFFFF)."""
    return x & MASK32


def gt_seq(a: int, b: int) -> bool:
    return _s32(a - b) > 0


def lt_seq(a: int, b: int) -> bool:
    return _s32(a - b) < 0


def le_seq(a: int, b: int) -> bool:
    return _s32(a - b) <= 0


@dataclass(slots=True)
class Flow:
    """One direction of a Wireshark conversation (tcp_flow_t + tcp_analyze_seq_flow_info_t)."""

    nextseq: int = 0
    nextseq_time_ns: int = 0
    maxseqtobeacked: int = 0
    lastack: int = 0
    lastack_time_ns: int = 0
    # guint32 in the C code; -1 is its "ACKed unseen segment reported" marker
    # (0xFFFFFFFF there, so it also passes ``dupacknum>=2``: see _unsigned32).
    dupacknum: int = 0
    window: int = -1  # -1: nothing seen yet (Wireshark initialises it to 0xFFFFFFFF)
    win_scale: int = WS_UNKNOWN
    lastsegmentflags: frozenset[str] = frozenset()
    # packet-tcp.c's is_first_ack: set by this direction's SYN, cleared by its
    # first segment with ACK and without SYN (zero before any SYN): while set,
    # window_full takes the window unscaled (a SYN's window never is, issue 14690).
    is_first_ack: bool = False
    segments: int = 0  # packets sent in this direction


@dataclass(slots=True)
class Conversation:
    stream: int
    flows: dict[tuple[str, int], Flow] = field(default_factory=dict)
    # tcp_analysis.ts_mru_syn / ts_first_rtt, in ns; 0 is "not set" as the C
    # code's nstime_is_zero() reads it (a SYN at time 0 sets nothing).
    mru_syn_ns: int = 0
    first_rtt_ns: int = 0

    def pair(self, seg: Segment) -> tuple[Flow, Flow]:
        # get-then-create: setdefault would build a Flow per call only to drop it.
        flows = self.flows
        fwd = flows.get((seg.src, seg.sport))
        if fwd is None:
            fwd = flows[(seg.src, seg.sport)] = Flow()
        rev = flows.get((seg.dst, seg.dport))
        if rev is None:
            rev = flows[(seg.dst, seg.dport)] = Flow()
        return fwd, rev


@dataclass(frozen=True, slots=True)
class PacketAnalysis:
    """What Wireshark shows for one packet."""

    index: int
    stream: int
    rel_seq: int
    rel_ack: int | None  # None when the ACK bit is clear
    nxtseq: int  # relative seq + len (+1 for SYN/FIN)
    flags: frozenset[str]
    dupack_num: int = 0
    window: int = 0  # scaled when the scale is known


class StreamTracker:
    """Assigns packets to tcp.streams and runs tcp.analysis on each.

    Stream numbers, port reuse and relative seq/ack are ``tcplab.flows``'s
    (the one implementation of packet-tcp.c's rules, §3.1); this class keeps
    the per-direction analysis state of the stream each packet lands in.
    """

    def __init__(self) -> None:
        self.flows = FlowTracker()
        self.conversations: list[Conversation] = []  # indexed by stream number

    @property
    def stream_count(self) -> int:
        return self.flows.stream_count

    def observe(self, seg: Segment) -> PacketAnalysis:
        view = self.flows.observe(seg)
        if view.stream < len(self.conversations):
            conv = self.conversations[view.stream]
        else:
            # A new pair, or a pure SYN with another ISN on a known pair: a new stream.
            conv = Conversation(view.stream)
            self.conversations.append(conv)
        flags: set[str] = {"reused_ports"} if view.reused_ports else set()
        syn_ack = seg.flags & (SYN | ACK)
        fwd, rev = conv.pair(seg)
        fwd.segments += 1
        scaled_window = self._window(seg, fwd, rev)
        # The analysis compares the raw 16-bit window; only window_full scales.
        self._analyze(conv, seg, fwd, rev, seg.window, flags)
        if seg.flags & SYN:
            fwd.is_first_ack = True
        elif syn_ack == ACK:
            fwd.is_first_ack = False
        # iRTT (tcp.analysis.initial_rtt), after the sequence analysis as in
        # dissect_tcp: a pure SYN records ts_mru_syn; the first segment with ACK
        # and without SYN, while ts_mru_syn is non-zero and ts_first_rtt still
        # zero, stores the difference.  Both "zero" tests are nstime_is_zero():
        # a SYN stamped exactly 0 starts no RTT, and a zero difference is
        # computed again at the next ACK.
        if syn_ack == SYN:
            conv.mru_syn_ns = seg.time_ns
        elif syn_ack == ACK and conv.mru_syn_ns != 0 and conv.first_rtt_ns == 0:
            conv.first_rtt_ns = seg.time_ns - conv.mru_syn_ns
        rel_seq, rel_ack = view.rel_seq, view.rel_ack
        nxt = rel_seq + seg.wire_length + (1 if seg.flags & (SYN | FIN) else 0)
        dup = fwd.dupacknum if "duplicate_ack" in flags else 0
        return PacketAnalysis(
            seg.index,
            conv.stream,
            rel_seq,
            rel_ack,
            nxt & MASK32,
            frozenset(flags),
            dup,
            scaled_window,
        )

    @staticmethod
    def _window(seg: Segment, fwd: Flow, rev: Flow) -> int:
        """The window the dissector analyses: scaled once the SYNs told the scale."""
        if seg.flags & SYN:
            scale = seg.options.wscale
            if seg.flags & ACK:
                # RFC 7323 §2.2: scaling is on only if both SYNs carried the option.
                if scale is None or rev.win_scale == WS_NONE:
                    fwd.win_scale = WS_NONE
                    rev.win_scale = WS_NONE
                else:
                    fwd.win_scale = scale
            else:
                fwd.win_scale = WS_NONE if scale is None else scale
            return seg.window
        if fwd.win_scale >= 0:
            return seg.window << fwd.win_scale
        return seg.window

    def _analyze(
        self,
        conv: Conversation,
        seg: Segment,
        fwd: Flow,
        rev: Flow,
        window: int,
        flags: set[str],
    ) -> None:
        seq, ack, seglen, tf = seg.seq, seg.ack, seg.wire_length, seg.flags
        now = seg.time_ns
        no_ctl = not tf & (SYN | FIN | RST)

        def finished_fwd() -> None:
            if ack != fwd.lastack:
                fwd.dupacknum = 0

        skip_fwd = False
        if seglen == 1 and seq == fwd.nextseq and rev.window == 0:
            flags.add("zero_window_probe")
            skip_fwd = True
        if not skip_fwd:
            if window == 0 and no_ctl:
                flags.add("zero_window")
            if fwd.nextseq and gt_seq(seq, fwd.nextseq) and not tf & RST:
                flags.add("lost_segment")
            if seglen in (0, 1) and seq == (fwd.nextseq - 1) & MASK32 and no_ctl:
                flags.add("keep_alive")
            same = seq == fwd.nextseq and ack == fwd.lastack and no_ctl and seglen == 0
            if same and window and window != fwd.window:
                flags.add("window_update")
            if (
                seglen > 0
                and rev.win_scale != WS_UNKNOWN
                and (seq + seglen) & MASK32
                == (rev.lastack + (rev.window << self._shift(rev))) & MASK32
                and no_ctl
            ):
                flags.add("window_full")
            if same and window and window == fwd.window and "keep_alive" in rev.lastsegmentflags:
                flags.add("keep_alive_ack")
                skip_fwd = True
            elif (
                same
                and window == 0
                and window == fwd.window
                and "zero_window_probe" in rev.lastsegmentflags
            ):
                flags.add("zero_window_probe_ack")
                skip_fwd = True
            elif same and window and window == fwd.window:
                # -1 marks "an ACK-unseen-segment was reported" (below).
                fwd.dupacknum = 1 if fwd.dupacknum == -1 else fwd.dupacknum + 1
                flags.add("duplicate_ack")
        finished_fwd()

        # ACKED LOST PACKET, once per hole (packet-tcp.c 4.0.17, "ACKED LOST
        # PACKET"): an ACK past maxseqtobeacked (the highest contiguous data
        # seen) is flagged and moves maxseqtobeacked up to nextseq when that is
        # higher; when it is already there (the ACK is past everything seen),
        # the other direction's dupacknum gets the -1 marker and only an ACK
        # finding that counter at 0 is flagged, so a repeated ACK of the same
        # unseen data is not.
        if rev.maxseqtobeacked and gt_seq(ack, rev.maxseqtobeacked) and tf & ACK:
            if lt_seq(rev.maxseqtobeacked, rev.nextseq):
                rev.maxseqtobeacked = rev.nextseq
                flags.add("ack_lost_segment")
            else:
                if rev.dupacknum == 0:
                    flags.add("ack_lost_segment")
                rev.dupacknum = -1

        if (seglen > 0 or tf & (SYN | FIN)) and "keep_alive" not in flags:
            self._retransmission(conv, seg, fwd, rev, flags)

        nextseq = (seq + seglen + (1 if tf & (SYN | FIN) else 0)) & MASK32
        zwp = "zero_window_probe" in flags
        if (gt_seq(nextseq, fwd.nextseq) or not fwd.nextseq) and not zwp:
            fwd.nextseq = nextseq
            fwd.nextseq_time_ns = now
        if (seq == fwd.maxseqtobeacked or not fwd.maxseqtobeacked) and not zwp:
            fwd.maxseqtobeacked = fwd.nextseq
        fwd.window = window
        fwd.lastack = ack
        fwd.lastack_time_ns = now
        fwd.lastsegmentflags = frozenset(flags)

    @staticmethod
    def _shift(flow: Flow) -> int:
        if flow.is_first_ack or flow.win_scale == WS_NONE:
            return 0
        return max(flow.win_scale, 0)

    @staticmethod
    def _retransmission(
        conv: Conversation, seg: Segment, fwd: Flow, rev: Flow, flags: set[str]
    ) -> None:
        seq, seglen, tf = seg.seq, seg.wire_length, seg.flags
        not_advanced = bool(fwd.nextseq) and lt_seq(seq, fwd.nextseq)
        # Data following a zero-window probe (seq == nextseq-1, >1 byte) advances.
        if seglen > 1 and (fwd.nextseq - 1) & MASK32 == seq:
            not_advanced = False
        if seglen > 0 and rev.lastack and le_seq((seq + seglen) & MASK32, rev.lastack):
            flags.add("spurious_retransmission")
            flags.add("retransmission")  # the expert item both carry (§3.2 gotcha)
            return
        # Gaps as the C code computes them: guint64 nanoseconds, so a negative
        # gap is huge and never below a threshold.
        if (
            not_advanced
            and _unsigned32(rev.dupacknum) >= 2
            and rev.lastack == seq
            and (seg.time_ns - rev.lastack_time_ns) & MASK64 < FAST_RETRANSMISSION_NS
        ):
            flags.add("fast_retransmission")
            flags.add("retransmission")
            return
        # ooo_thres: the first RTT if known (non-zero), else 3 ms; a negative
        # first RTT (SYN captured after its ACK) is a huge guint64 as well.
        ooo_threshold = (
            conv.first_rtt_ns & MASK64 if conv.first_rtt_ns else DEFAULT_OOO_THRESHOLD_NS
        )
        if (
            not_advanced
            and (seg.time_ns - fwd.nextseq_time_ns) & MASK64 < ooo_threshold
            and fwd.nextseq != (seq + seglen + (1 if tf & (SYN | FIN) else 0)) & MASK32
        ):
            flags.add("out_of_order")
            return
        if not_advanced:
            flags.add("retransmission")
