"""Capture files in, one ``Segment`` per TCP packet out.

Theory of operation: the analyzer needs, per TCP packet, the addresses,
the TCP header fields, how many payload bytes the packet claims and how many
were captured, the IP datagram length (Zeek's ``ip_bytes``) and whether the
TCP checksum verifies.  This module reads classic pcap and pcapng in a
streaming way (memory bounded by one block), walks the link layers the Zeek
and Wireshark reference traces use (Ethernet, 802.1Q/QinQ, MPLS, PPPoE,
Linux SLL/SLL2, BSD null/loop, raw IP) and the IPv4/IPv6 headers, and yields
``Segment`` records.  A problem with one packet is a finding (``problems``),
never an exception; a file that is not a capture at all raises ``InputError``.

tcplab's shared codecs (``tcplab.wire.decode``, ``tcplab.capture``) are
written in parallel with this module; this reader keeps the analyzer
self-contained and is deliberately small: it decodes only what analysis
needs and performs no option validation beyond what Zeek and Wireshark do.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tcplab.errors import InputError

# Link-layer header types (https://www.tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_BSD12 = 12  # DLT_RAW on most BSDs
LINKTYPE_RAW_BSD14 = 14  # DLT_RAW on OpenBSD
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = (0x8100, 0x88A8, 0x9100)
_ETH_MPLS = (0x8847, 0x8848)
_ETH_PPPOE_SESSION = 0x8864

# TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
_OPT_EOL = 0
_OPT_NOP = 1
_OPT_MSS = 2
_OPT_WSCALE = 3
_OPT_SACK_PERMITTED = 4
_OPT_SACK = 5
_OPT_TIMESTAMPS = 8

# IPv6 extension headers we step over (RFC 8200 §4).
_IPV6_EXT = {0, 43, 60, 51, 135, 139, 140}
_IPV6_FRAGMENT = 44


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


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP packet as the analyzer needs it."""

    index: int  # frame number, 1-based like Wireshark's frame.number
    time: float  # seconds since the epoch
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
    not_tcp: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        # Keep the report bounded on a badly damaged file.
        if len(self.problems) < 50:
            self.problems.append(text)


@dataclass(frozen=True, slots=True)
class Frame:
    index: int
    time: float
    linktype: int
    data: bytes
    orig_len: int
    offset: int


def _ones_complement_sum(data: bytes, start: int = 0) -> int:
    """The 16-bit ones' complement sum (RFC 1071), folded.

    Since 2**16 == 1 (mod 0xFFFF), the sum of the big-endian 16-bit words is
    congruent to the whole buffer read as one big integer: one C call instead
    of a word loop.  A non-zero sum comes back as 1..0xFFFF, never 0.
    """
    if len(data) % 2:
        data += b"\x00"
    total = (int.from_bytes(data, "big") + start) % 0xFFFF
    return total if total or not (data.strip(b"\x00") or start) else 0xFFFF


def _parse_options(raw: bytes) -> TcpOptions:
    """Walk the option list the way Zeek's build_syn_packet_val does: stop at EOL,
    at a length of 0 or at an option running past the header (RFC 9293 §3.2)."""
    mss = wscale = ts_val = ts_ecr = None
    sack_permitted = False
    sack: list[tuple[int, int]] = []
    i = 0
    n = len(raw)
    while i < n:
        kind = raw[i]
        if kind == _OPT_EOL:
            break
        if kind == _OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            break
        olen = raw[i + 1]
        if olen < 2 or i + olen > n:
            break
        body = raw[i + 2 : i + olen]
        if kind == _OPT_MSS and olen == 4:
            mss = int.from_bytes(body, "big")
        elif kind == _OPT_WSCALE and olen == 3:
            wscale = body[0]
        elif kind == _OPT_SACK_PERMITTED and olen == 2:
            sack_permitted = True
        elif kind == _OPT_SACK and (olen - 2) % 8 == 0:
            for j in range(0, olen - 2, 8):
                left, right = struct.unpack_from("!II", body, j)
                sack.append((left, right))
        elif kind == _OPT_TIMESTAMPS and olen == 10:
            ts_val, ts_ecr = struct.unpack("!II", body)
        i += olen
    if mss is None and wscale is None and not sack_permitted and not sack and ts_val is None:
        return NO_OPTIONS
    return TcpOptions(mss, wscale, sack_permitted, tuple(sack), ts_val, ts_ecr)


def ip_offset(linktype: int, data: bytes) -> int | None:
    """Where the IP header starts in a frame, or None when it carries no IP."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        off = 12
        etype = int.from_bytes(data[off : off + 2], "big")
        off += 2
        return _after_ethertype(data, off, etype)
    if linktype in (
        LINKTYPE_RAW,
        LINKTYPE_RAW_BSD12,
        LINKTYPE_RAW_BSD14,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
    ):
        return 0
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return 4 if len(data) >= 4 else None
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return None
        return _after_ethertype(data, 16, int.from_bytes(data[14:16], "big"))
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            return None
        return _after_ethertype(data, 20, int.from_bytes(data[0:2], "big"))
    return None


def _after_ethertype(data: bytes, off: int, etype: int) -> int | None:
    while True:
        if etype in (_ETH_IPV4, _ETH_IPV6):
            return off
        if etype in _ETH_VLAN:
            if len(data) < off + 4:
                return None
            etype = int.from_bytes(data[off + 2 : off + 4], "big")
            off += 4
            continue
        if etype in _ETH_MPLS:
            # Label stack until the bottom-of-stack bit (RFC 3032 §2.1), then
            # guess the payload from the IP version nibble as Zeek does.
            while True:
                if len(data) < off + 4:
                    return None
                bottom = data[off + 2] & 0x01
                off += 4
                if bottom:
                    break
            if len(data) <= off:
                return None
            return off if data[off] >> 4 in (4, 6) else None
        if etype == _ETH_PPPOE_SESSION:
            # PPPoE session header (RFC 2516 §4) then the PPP protocol field.
            if len(data) < off + 8:
                return None
            proto = int.from_bytes(data[off + 6 : off + 8], "big")
            off += 8
            return off if proto in (0x0021, 0x0057) else None
        return None


def link_limit(linktype: int, data: bytes, orig_len: int) -> int:
    """Where the link layer says its payload ends: the frame's wire length, or
    PPPoE's own length field (RFC 2516 §4), which Wireshark honours."""
    limit = orig_len
    if linktype == LINKTYPE_ETHERNET and len(data) >= 14:
        off = 12
        etype = int.from_bytes(data[off : off + 2], "big")
        off += 2
        while etype in _ETH_VLAN and len(data) >= off + 4:
            etype = int.from_bytes(data[off + 2 : off + 4], "big")
            off += 4
        if etype == _ETH_PPPOE_SESSION and len(data) >= off + 6:
            plen = int.from_bytes(data[off + 4 : off + 6], "big")
            limit = min(limit, off + 6 + plen)
    return limit


def decode(frame: Frame, report: ReadReport) -> Segment | None:
    """The TCP segment in a frame, or None (not TCP, or a damaged packet)."""
    data = frame.data
    off = ip_offset(frame.linktype, data)
    if off is None or len(data) < off + 1:
        report.not_tcp += 1
        return None
    version = data[off] >> 4
    ip_checksum_ok = True
    if version == 4:
        if len(data) < off + 20:
            report.problem(f"frame {frame.index}: IPv4 header truncated")
            return None
        ihl = (data[off] & 0x0F) * 4
        total = int.from_bytes(data[off + 2 : off + 4], "big")
        proto = data[off + 9]
        frag = int.from_bytes(data[off + 6 : off + 8], "big")
        if proto != 6:
            report.not_tcp += 1
            return None
        if ihl < 20 or len(data) < off + ihl:
            report.problem(f"frame {frame.index}: IPv4 header length {ihl} invalid")
            return None
        if frag & 0x3FFF:
            # Fragments are not reassembled (docs/analyze.md).
            report.problem(f"frame {frame.index}: IPv4 fragment skipped")
            return None
        ip_checksum_ok = _ones_complement_sum(data[off : off + ihl]) == 0xFFFF
        src = socket.inet_ntoa(data[off + 12 : off + 16])
        dst = socket.inet_ntoa(data[off + 16 : off + 20])
        pseudo = _ones_complement_sum(data[off + 12 : off + 20])
        l4 = off + ihl
        ip_len = total
        l4_len = total - ihl
    elif version == 6:
        if len(data) < off + 40:
            report.problem(f"frame {frame.index}: IPv6 header truncated")
            return None
        plen = int.from_bytes(data[off + 4 : off + 6], "big")
        nxt = data[off + 6]
        src = _ipv6_text(data[off + 8 : off + 24])
        dst = _ipv6_text(data[off + 24 : off + 40])
        l4 = off + 40
        while nxt in _IPV6_EXT or nxt == _IPV6_FRAGMENT:
            if len(data) < l4 + 8:
                report.problem(f"frame {frame.index}: IPv6 extension header truncated")
                return None
            if nxt == _IPV6_FRAGMENT:
                report.problem(f"frame {frame.index}: IPv6 fragment skipped")
                return None
            hlen = (data[l4 + 1] + 1) * (4 if nxt == 51 else 8)
            nxt = data[l4]
            l4 += hlen
        if nxt != 6:
            report.not_tcp += 1
            return None
        ip_len = plen + 40
        l4_len = plen - (l4 - off - 40)
        src_dst = data[off + 8 : off + 40]
        pseudo = _ones_complement_sum(src_dst)
        total = ip_len
    else:
        report.not_tcp += 1
        return None
    if len(data) < l4 + 20:
        report.problem(f"frame {frame.index}: TCP header truncated")
        return None
    sport, dport, seq, ack, offflags, window = struct.unpack_from("!HHIIHH", data, l4)
    doff = (offflags >> 12) * 4
    flags = offflags & 0x1FF
    if doff < 20:
        report.problem(f"frame {frame.index}: TCP data offset {doff} below 20")
        return None
    if len(data) < l4 + doff:
        report.problem(f"frame {frame.index}: TCP options truncated")
        return None
    length = max(0, l4_len - doff)
    wire_end = min(off + total, link_limit(frame.linktype, data, frame.orig_len))
    wire_length = max(0, min(length, wire_end - l4 - doff))
    # Ethernet padding can make the frame longer than the datagram: only
    # bytes inside the IP length belong to the segment.
    ip_end = min(len(data), off + total)
    captured = max(0, min(length, ip_end - l4 - doff))
    checksum_ok: bool | None = None
    if captured == length and l4_len >= doff:
        segment = data[l4 : l4 + l4_len]
        # Pseudo-header (RFC 9293 §3.1; RFC 8200 §8.1 for IPv6).
        start = pseudo + 6 + (l4_len & 0xFFFF) + (l4_len >> 16)
        checksum_ok = _ones_complement_sum(segment, start) == 0xFFFF
    options = _parse_options(data[l4 + 20 : l4 + doff]) if doff > 20 else NO_OPTIONS
    report.tcp += 1
    return Segment(
        index=frame.index,
        time=frame.time,
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        seq=seq,
        ack=ack,
        flags=flags,
        window=window,
        length=length,
        wire_length=wire_length,
        captured=captured,
        ip_len=ip_len,
        checksum_ok=checksum_ok,
        ip_checksum_ok=ip_checksum_ok,
        options=options,
        raw=bytes(data[off:ip_end]),
    )


def _ipv6_text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


# --- capture files ---------------------------------------------------------

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


def read_frames(path: str | Path, report: ReadReport) -> Iterator[Frame]:
    """Frames of a pcap or pcapng file, streaming."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror}") from None
    try:
        head = fh.read(4)
        if head in _PCAP_MAGIC:
            yield from _read_pcap(fh, str(path), head, report)
        elif head == _PCAPNG_SHB:
            yield from _read_pcapng(fh, str(path), head, report)
        else:
            raise InputError(
                f"{path}: offset 0: not a pcap or pcapng file (magic {head.hex() or 'empty'})"
            )
    finally:
        fh.close()


def _read_pcap(fh: BinaryIO, name: str, magic: bytes, report: ReadReport) -> Iterator[Frame]:
    endian, unit = _PCAP_MAGIC[magic]
    rest = fh.read(20)
    if len(rest) < 20:
        raise InputError(f"{name}: offset 4: pcap file header truncated")
    linktype = struct.unpack(endian + "I", rest[16:20])[0] & 0x0FFFFFFF
    rec = struct.Struct(endian + "IIII")
    offset = 24
    index = 0
    while True:
        hdr = fh.read(16)
        if not hdr:
            return
        if len(hdr) < 16:
            report.problem(f"{name}: offset {offset}: record header truncated")
            return
        sec, frac, incl, orig = rec.unpack(hdr)
        if incl > 0x4000000:
            report.problem(f"{name}: offset {offset}: record length {incl} implausible")
            return
        data = fh.read(incl)
        if len(data) < incl:
            report.problem(f"{name}: offset {offset}: packet data truncated")
            return
        index += 1
        report.frames += 1
        yield Frame(index, sec + frac * unit, linktype, data, orig, offset)
        offset += 16 + incl


def _read_pcapng(fh: BinaryIO, name: str, magic: bytes, report: ReadReport) -> Iterator[Frame]:
    endian = "<"
    interfaces: list[tuple[int, float]] = []
    offset = 0
    index = 0
    head: bytes = magic
    while True:
        if offset:
            head = fh.read(4)
            if not head:
                return
        rest = fh.read(4)
        if len(head) < 4 or len(rest) < 4:
            report.problem(f"{name}: offset {offset}: block header truncated")
            return
        if head == _PCAPNG_SHB:
            bom = fh.read(4)
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                raise InputError(f"{name}: offset {offset + 8}: bad pcapng byte-order magic")
            interfaces = []
            blen = struct.unpack(endian + "I", rest)[0]
            body = bom + fh.read(blen - 12)
        else:
            blen = struct.unpack(endian + "I", rest)[0]
            body = fh.read(blen - 8) if blen >= 12 else b""
        btype = struct.unpack(endian + "I", head)[0]
        if blen < 12 or len(body) < blen - 8:
            report.problem(f"{name}: offset {offset}: block length {blen} invalid or truncated")
            return
        content = body[:-4]
        if btype == 1:  # Interface Description Block
            linktype = struct.unpack_from(endian + "H", content, 0)[0]
            interfaces.append((linktype, _if_tsresol(content[8:], endian)))
        elif btype == 6:  # Enhanced Packet Block
            ifid, hi, lo, incl, orig = struct.unpack_from(endian + "IIIII", content, 0)
            if ifid >= len(interfaces):
                report.problem(f"{name}: offset {offset}: packet on undeclared interface {ifid}")
            else:
                linktype, unit = interfaces[ifid]
                index += 1
                report.frames += 1
                yield Frame(
                    index, ((hi << 32) | lo) * unit, linktype, content[20 : 20 + incl], orig, offset
                )
        elif btype == 3:  # Simple Packet Block
            if interfaces:
                orig = struct.unpack_from(endian + "I", content, 0)[0]
                index += 1
                report.frames += 1
                yield Frame(index, 0.0, interfaces[0][0], content[4 : 4 + orig], orig, offset)
        elif btype == 2:  # Obsolete Packet Block
            ifid, _drops, hi, lo, incl, orig = struct.unpack_from(endian + "HHIIII", content, 0)
            if ifid < len(interfaces):
                linktype, unit = interfaces[ifid]
                index += 1
                report.frames += 1
                yield Frame(
                    index, ((hi << 32) | lo) * unit, linktype, content[20 : 20 + incl], orig, offset
                )
        offset += blen


def _if_tsresol(options: bytes, endian: str) -> float:
    """The if_tsresol option of an IDB (pcapng spec §4.2); default microseconds."""
    i = 0
    while i + 4 <= len(options):
        code, olen = struct.unpack_from(endian + "HH", options, i)
        if code == 0:
            break
        if code == 9 and olen >= 1:
            value = options[i + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
        i += 4 + ((olen + 3) & ~3)
    return 1e-6


def read_segments(path: str | Path, report: ReadReport | None = None) -> Iterator[Segment]:
    """Every TCP segment of a capture, in file order."""
    report = report if report is not None else ReadReport()
    for frame in read_frames(path, report):
        seg = decode(frame, report)
        if seg is not None:
            yield seg
