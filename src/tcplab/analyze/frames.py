"""Capture files in, one ``Segment`` per TCP packet out.

Theory of operation: the analyzer needs, per TCP packet, the addresses,
the TCP header fields, how many payload bytes the packet claims and how many
were captured, the IP datagram length (Zeek's ``ip_bytes``) and whether the
checksums verify.  Reading the file is ``tcplab.capture``'s job and decoding
the frame ``tcplab.wire.decode_frame``'s (through ``capture.TcpRecords``);
this module only flattens a decoded ``TcpPacket`` into the ``Segment`` the
trackers consume, with the two views of length they need side by side:

* ``length`` is what the IP header claims (``datagram_len``, Zeek's view:
  Zeek does not cut an IP packet at a PPPoE length field);
* ``wire_length`` stops at the link layer's own length (the decoder's
  ``TcpPacket.length``, tshark's ``tcp.len``).

A tcplab lab capture also holds the packets its wire dropped, each with a
packet comment line starting ``tcplab.capture.pcapng.DROPPED_BY_WIRE`` (written by
``tcplab.lab.output``); such a segment is ``dropped``: sent, never received.
Comments are pcapng ``opt_comment`` options (draft-ietf-opsawg-pcapng §3.5)
of Enhanced Packet Blocks (§4.3): a classic pcap has none.

Checksums are judged strictly (``strict_checksum``): an offloaded or partial
TCP checksum is bad, as Zeek and tshark with validation say.  A problem with
one packet is a finding (``ReadReport.problems``), never an exception; a file
that is not a capture at all raises ``InputError``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from tcplab.capture.marker import DROPPED_BY_WIRE

if TYPE_CHECKING:
    # Loaded where used: the analysis engine reads most captures itself and
    # needs the Python reader and decoders only for what it hands back.
    from tcplab.capture import Record
    from tcplab.wire.decode import NotTcp, TcpPacket
    from tcplab.wire.options import TcpOption


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """The options the analyzer reports (RFC 9293 §3.7.1, RFC 7323, RFC 2018)."""

    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    ts_val: int | None = None
    ts_ecr: int | None = None

    def describe(self) -> str:
        """tcpdump-like option text: ``mss 1460,sackOK,TS val 1 ecr 0,wscale 7``."""
        parts: list[str] = []
        if self.mss is not None:
            parts.append(f"mss {self.mss}")
        if self.sack_permitted:
            parts.append("sackOK")
        if self.ts_val is not None:
            parts.append(f"TS val {self.ts_val} ecr {self.ts_ecr}")
        if self.wscale is not None:
            parts.append(f"wscale {self.wscale}")
        for left, right in self.sack_blocks:
            parts.append(f"sack {left}:{right}")
        return ",".join(parts)


NO_OPTIONS = TcpOptions()


class Segment(NamedTuple):
    """One TCP packet as the analyzer needs it.

    A NamedTuple, not a frozen dataclass: one is built per packet, and a
    frozen dataclass's ``__init__`` with these 18 fields costs about 4.5 µs
    against 0.8 µs here (the same trade ``tcplab.capture.Record`` makes; the
    ``index`` field hides ``tuple.index`` there too).
    """

    index: int  # type: ignore[assignment]  # frame number, 1-based like Wireshark's frame.number
    time: float  # seconds since the epoch
    time_ns: int  # the same, in integer nanoseconds (the rules compare these)
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int  # tcplab.wire.flags.Flags bits
    window: int  # raw, unscaled
    length: int  # payload length the IP header claims (Zeek's view)
    wire_length: int  # payload length within the link layer's own length (Wireshark's tcp.len)
    captured: int  # payload bytes actually in the capture
    ip_len: int  # IP datagram length from the header (Zeek's ip_bytes)
    checksum_ok: bool | None  # None: not checkable (truncated capture)
    ip_checksum_ok: bool
    options: TcpOptions = NO_OPTIONS
    raw: bytes = b""  # the IP datagram as captured
    dropped: bool = False  # a tcplab wire dropped it: its receiver never got it
    # The TCP checksum field holds only the pseudo-header sum (CHECKSUM_PARTIAL:
    # a capture on the sending host, Linux loopback, RawCap): not verifiable.
    partial_checksum: bool = False

    @property
    def syn(self) -> bool:
        return bool(self.flags & 0x02)

    @property
    def fin(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def rst(self) -> bool:
        return bool(self.flags & 0x04)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & 0x10)


@dataclass(slots=True)
class ReadReport:
    """What the reader could not use, as findings for the output."""

    frames: int = 0
    tcp: int = 0
    not_tcp: int = 0  # (undecodable frames included)
    undecodable: int = 0  # frames that could not be decoded at all
    problems: list[str] = field(default_factory=list)

    @property
    def nothing_readable(self) -> bool:
        """The README's exit rule: problems, and not one frame could be read (exit 1),
        as ``tcplab packets`` decides it."""
        return bool(self.problems) and self.frames == self.undecodable

    def problem(self, text: str) -> None:
        # Keep the report bounded on a badly damaged file.
        if len(self.problems) < 50:
            self.problems.append(text)


def options_of(options: tuple[TcpOption, ...]) -> TcpOptions:
    """The options the analyzer reports, from the decoder's list (the last of
    a repeated kind wins, as in Zeek's build_syn_packet_val)."""
    if not options:
        return NO_OPTIONS
    from tcplab.wire.options import Mss, Sack, SackPermitted, Timestamps, WindowScale

    mss = wscale = ts_val = ts_ecr = None
    sack_permitted = False
    sack: tuple[tuple[int, int], ...] = ()
    for option in options:
        if isinstance(option, Timestamps):
            ts_val, ts_ecr = option.val, option.ecr
        elif isinstance(option, Mss):
            mss = option.value
        elif isinstance(option, WindowScale):
            wscale = option.shift
        elif isinstance(option, SackPermitted):
            sack_permitted = True
        elif isinstance(option, Sack):
            sack += option.blocks
    if mss is None and wscale is None and not sack_permitted and not sack and ts_val is None:
        return NO_OPTIONS
    return TcpOptions(mss, wscale, sack_permitted, sack, ts_val, ts_ecr)


def dropped_by_wire(comment: str | None) -> bool:
    """Whether a packet comment is tcplab's "the lab's wire dropped this packet".

    Only a whole comment line that starts with the marker counts: the same
    comment may also carry socket-API calls, one per line."""
    if not comment:
        return False
    return any(line.startswith(DROPPED_BY_WIRE) for line in comment.splitlines())


def segment_of(
    index: int, time_ns: int, frame: bytes, packet: TcpPacket, dropped: bool = False
) -> Segment:
    """The analyzer's view of one decoded packet of ``frame`` captured at
    ``time_ns`` (nanoseconds since the epoch, as the capture stores it)."""
    tcp = packet.tcp
    header_end = packet.tcp_offset + tcp.header_len
    datagram_end = packet.ip_offset + packet.datagram_len
    # By the IP header (Zeek); never negative even when the link cut it short.
    length = max(0, datagram_end - header_end)
    # Ethernet padding can make the frame longer than the datagram: only
    # bytes inside the IP length belong to the segment.
    captured_end = min(len(frame), datagram_end)
    # Positional: keyword arguments cost a measurable share at 10^5 packets/s.
    return Segment(
        index,
        time_ns / 1e9,
        time_ns,
        packet.src,
        packet.dst,
        tcp.sport,
        tcp.dport,
        tcp.seq,
        tcp.ack,
        int(tcp.flags),
        tcp.window,
        length,
        max(0, packet.length),
        max(0, min(length, captured_end - header_end)),
        packet.datagram_len,
        packet.checksum_ok,
        packet.ip_checksum_ok is not False,
        options_of(tcp.options),
        frame[packet.ip_offset : captured_end],
        dropped,
        packet.checksum_ok is False and partial_checksum(packet),
    )


def partial_checksum(packet: TcpPacket) -> bool:
    """Whether the TCP checksum field holds the folded pseudo-header sum the
    sender's NIC would have finished (``tcplab.wire.checksum.offload_partial_sum``)."""
    from tcplab.wire.checksum import offload_partial_sum

    length = packet.datagram_len - (packet.tcp_offset - packet.ip_offset)
    return packet.tcp.checksum == offload_partial_sum(packet.src, packet.dst, length)


def read_segments(path: str | Path, report: ReadReport | None = None) -> Iterator[Segment]:
    """Every TCP segment of a capture, in file order; problems go to ``report``
    as one line each (file, offset, what) once the file is read."""
    from tcplab.capture import TcpRecords, open_capture

    report = report if report is not None else ReadReport()
    name = str(path)

    def fragment(record: Record, not_tcp: NotTcp) -> None:
        # Not reassembled (docs/analyze.md): said, so a missing segment is explained.
        if "fragment" in not_tcp.reason:
            offset = record.data_offset
            report.problem(
                f"{name}: offset {offset}: frame {record.index}: {not_tcp.reason} skipped"
            )

    with open_capture(path) as reader:
        records = TcpRecords(reader, strict_checksum=True, on_not_tcp=fragment)
        try:
            for record, packet in records:
                yield segment_of(
                    record.index,
                    record.time_ns,
                    record.data,
                    packet,
                    record.comment is not None and dropped_by_wire(record.comment),
                )
        finally:
            report.frames += records.frames
            report.tcp += records.tcp
            report.not_tcp += records.not_tcp + records.undecodable
            report.undecodable += records.undecodable
            for problem in records.problems:
                report.problem(problem.line(name))
            if reader.problems_dropped:
                report.problem(f"{path}: {reader.problems_dropped} more problems not listed")


def frame_details(path: str | Path, frames: Collection[int]) -> dict[int, tuple[bytes, str | None]]:
    """The IP datagram and the packet comment (pcapng ``opt_comment``, §3.5)
    of each of ``frames`` (frame numbers), read again from ``path``.

    The engine keeps neither (a view of one connection asks for them, the
    analysis never does), so the report reads them back here, up to the last
    frame asked for.  The first pass already said what was wrong with the
    file: problems are not repeated."""
    from tcplab.capture import TcpRecords, open_capture

    wanted = set(frames)
    out: dict[int, tuple[bytes, str | None]] = {}
    if not wanted:
        return out
    last = max(wanted)
    with open_capture(path) as reader:
        records = TcpRecords(None, strict_checksum=True)
        for record in reader:
            if record.index > last:
                break
            if record.index not in wanted:
                continue
            # Only this frame is decoded: a datagram reassembled from fragments
            # (its earlier fragments not asked for) keeps its comment, not its bytes.
            got = records.decode(record)
            raw = b""
            if got is not None and got[0] is record:
                raw = segment_of(record.index, record.time_ns, record.data, got[1]).raw
            out[record.index] = (raw, record.comment)
    return out
