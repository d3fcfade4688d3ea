"""pcapng blocks (draft-ietf-opsawg-pcapng), their parse/build pairs, a streaming reader.

Every block has the same frame (§3.1)::

    0  block type         u32
    4  block total length u32   (whole block, multiple of 4, >= 12)
    8  body ...                 (options at the end, §3.5)
    -4 block total length u32   (repeated, so a reader can check the frame)

The byte order is the writer's, announced per section by the byte-order
magic 0x1A2B3C4D in the Section Header Block (§4.1); a file may hold several
sections, each with its own interfaces (IDB ids restart at 0, §4.2).

Because each block repeats its length at the end, a reader can tell a
corrupt block it can step over (leading == trailing length, body broken:
skip it and continue at the next block) from lost framing (the two lengths
disagree: nothing after it can be trusted, so we stop and say so).
Block types we do not need (NRB, ISB, DSB, custom, systemd journal, and any
unknown type) are stepped over silently: skipping them is what §3.1 asks.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Final

from tcplab.capture.marker import DROPPED_BY_WIRE as DROPPED_BY_WIRE
from tcplab.capture.pcap import KEEP_DATA, MAX_CAPLEN, RawRecord
from tcplab.capture.source import ChunkSource, ProblemSink
from tcplab.clock import DATE_MAX_NS, DATE_MIN_NS, out_of_range_text

BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
SHB_TYPE: Final = 0x0A0D0D0A
SHB_TYPE_BYTES: Final = b"\x0a\x0d\x0d\x0a"  # a palindrome: same in both byte orders
MAX_BLOCK_LEN: Final = MAX_CAPLEN
# A block larger than this is streamed (_huge_block): only its first
# KEEP_DATA bytes of packet data are held (tcplab.capture.pcap.KEEP_DATA).
HUGE_BLOCK: Final = 1 << 20
# Interfaces per section (the IDB's id is 32-bit): a file declaring a million
# costs this many entries, then one line, not a million objects.
MAX_INTERFACES: Final = 65536

# Block type codes (§11.1, "Block Type Codes")
IDB_TYPE: Final = 0x00000001
OPB_TYPE: Final = 0x00000002
SPB_TYPE: Final = 0x00000003
NRB_TYPE: Final = 0x00000004
ISB_TYPE: Final = 0x00000005
EPB_TYPE: Final = 0x00000006
SJE_TYPE: Final = 0x00000009
DSB_TYPE: Final = 0x0000000A
CB_COPY_TYPE: Final = 0x00000BAD
CB_NOCOPY_TYPE: Final = 0x40000BAD

# Option codes (§3.5 common, §4.1 SHB, §4.2 IDB)
OPT_ENDOFOPT: Final = 0
OPT_COMMENT: Final = 1
SHB_HARDWARE: Final = 2
SHB_OS: Final = 3
SHB_USERAPPL: Final = 4
IF_NAME: Final = 2
IF_DESCRIPTION: Final = 3
IF_TSRESOL: Final = 9
IF_TSOFFSET: Final = 14

Options = tuple[tuple[int, bytes], ...]


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def _padded(data: bytes) -> bytes:
    """``data`` with zeros up to a 32-bit boundary (§3.1: every field is padded to 4)."""
    return data + b"\0" * (_pad4(len(data)) - len(data))


def _packet_data(body: bytes, caplen: int, order: str) -> tuple[bytes, Options]:
    """The captured bytes and the options after them, for the EPB and the obsolete
    Packet Block, whose 20 fixed bytes are followed by the same data + options."""
    if 20 + caplen > len(body):
        raise ValueError(f"captured length {caplen} runs past the block body")
    return bytes(body[20 : 20 + caplen]), parse_options(body, 20 + _pad4(caplen), order)


def parse_options(body: bytes, start: int, order: str) -> Options:
    """Options from ``body[start:]`` (§3.5): code u16, length u16, value padded to 4."""
    out: list[tuple[int, bytes]] = []
    pos = start
    end = len(body)
    while pos + 4 <= end:
        code, length = struct.unpack_from(order + "HH", body, pos)
        if code == OPT_ENDOFOPT:
            break
        value_end = pos + 4 + length
        if value_end > end:
            raise ValueError(
                f"option {code} of length {length} at body offset {pos} runs past the block"
            )
        out.append((code, bytes(body[pos + 4 : value_end])))
        pos += 4 + _pad4(length)
    return tuple(out)


def build_options(options: Options, order: str) -> bytes:
    if not options:
        return b""
    parts = []
    for code, value in options:
        parts.append(struct.pack(order + "HH", code, len(value)))
        parts.append(_padded(value))
    parts.append(struct.pack(order + "HH", OPT_ENDOFOPT, 0))
    return b"".join(parts)


def _text(options: Options, code: int) -> str | None:
    values = [v.decode("utf-8", "replace") for c, v in options if c == code]
    return "\n".join(values) if values else None


def comment_of(options: Options) -> str | None:
    """opt_comment values (several are allowed, §3.5), joined by newlines."""
    return _text(options, OPT_COMMENT)


@dataclass(frozen=True, slots=True)
class SectionHeader:
    """SHB (§4.1): byte-order magic u32, major u16, minor u16, section length i64, options."""

    byte_order: str = "<"
    major: int = 1
    minor: int = 0
    section_length: int = -1  # -1: not specified (§4.1)
    options: Options = ()

    BLOCK_TYPE: ClassVar[int] = SHB_TYPE
    FIELDS: ClassVar[str] = "IHHq"

    @property
    def comment(self) -> str | None:
        return _text(self.options, OPT_COMMENT)

    @property
    def application(self) -> str | None:
        return _text(self.options, SHB_USERAPPL)

    @classmethod
    def parse(cls, body: bytes, order: str) -> SectionHeader:
        if len(body) < 16:
            raise ValueError(f"section header body is {len(body)} bytes, needs 16")
        magic, major, minor, length = struct.unpack_from(order + cls.FIELDS, body)
        if magic != BYTE_ORDER_MAGIC:
            raise ValueError(f"bad byte-order magic 0x{magic:08x}")
        return cls(order, major, minor, length, parse_options(body, 16, order))

    def build(self, order: str) -> bytes:
        fixed = struct.pack(
            order + self.FIELDS, BYTE_ORDER_MAGIC, self.major, self.minor, self.section_length
        )
        return fixed + build_options(self.options, order)


@dataclass(frozen=True, slots=True)
class InterfaceDescription:
    """IDB (§4.2): link type u16, reserved u16, snaplen u32, options."""

    linktype: int
    snaplen: int = 0
    options: Options = ()

    BLOCK_TYPE: ClassVar[int] = IDB_TYPE
    FIELDS: ClassVar[str] = "HHI"

    @property
    def name(self) -> str | None:
        return _text(self.options, IF_NAME)

    def tsresol(self) -> tuple[int, int]:
        """Timestamp units as (base, exponent): ticks per second = base**exponent.

        if_tsresol (§4.2): most significant bit clear -> 10**-n, set -> 2**-n;
        absent -> microseconds.
        """
        for code, value in self.options:
            if code == IF_TSRESOL and len(value) >= 1:
                raw = value[0]
                return (2, raw & 0x7F) if raw & 0x80 else (10, raw)
        return (10, 6)

    def tsoffset(self, order: str) -> int:
        """if_tsoffset (§4.2): whole seconds added to every timestamp."""
        for code, value in self.options:
            if code == IF_TSOFFSET and len(value) == 8:
                offset: int = struct.unpack(order + "q", value)[0]
                return offset
        return 0

    @classmethod
    def parse(cls, body: bytes, order: str) -> InterfaceDescription:
        if len(body) < 8:
            raise ValueError(f"interface description body is {len(body)} bytes, needs 8")
        linktype, _, snaplen = struct.unpack_from(order + cls.FIELDS, body)
        return cls(linktype, snaplen, parse_options(body, 8, order))

    def build(self, order: str) -> bytes:
        fixed = struct.pack(order + self.FIELDS, self.linktype, 0, self.snaplen)
        return fixed + build_options(self.options, order)


@dataclass(frozen=True, slots=True)
class EnhancedPacket:
    """EPB (§4.3): interface u32, timestamp high u32 + low u32, caplen u32, orig len u32,
    data padded to 4, options."""

    interface: int
    timestamp: int  # in the interface's if_tsresol units
    data: bytes
    orig_len: int
    options: Options = ()

    BLOCK_TYPE: ClassVar[int] = EPB_TYPE
    FIELDS: ClassVar[str] = "IIIII"

    @property
    def comment(self) -> str | None:
        return comment_of(self.options)

    @classmethod
    def parse(cls, body: bytes, order: str) -> EnhancedPacket:
        if len(body) < 20:
            raise ValueError(f"enhanced packet body is {len(body)} bytes, needs 20")
        iface, high, low, caplen, orig_len = struct.unpack_from(order + cls.FIELDS, body)
        data, options = _packet_data(body, caplen, order)
        return cls(iface, (high << 32) | low, data, orig_len, options)

    def build(self, order: str) -> bytes:
        caplen = len(self.data)
        fixed = struct.pack(
            order + self.FIELDS,
            self.interface,
            self.timestamp >> 32,
            self.timestamp & 0xFFFFFFFF,
            caplen,
            self.orig_len,
        )
        return fixed + _padded(self.data) + build_options(self.options, order)


@dataclass(frozen=True, slots=True)
class SimplePacket:
    """SPB (§4.4): original length u32, data padded to 4; no timestamp, interface 0.

    The stored length is min(orig_len, interface 0's snaplen) (§4.4); ``parse``
    keeps the whole padded body and the reader trims it with the snaplen.
    """

    orig_len: int
    data: bytes

    BLOCK_TYPE: ClassVar[int] = SPB_TYPE
    FIELDS: ClassVar[str] = "I"

    @classmethod
    def parse(cls, body: bytes, order: str) -> SimplePacket:
        if len(body) < 4:
            raise ValueError(f"simple packet body is {len(body)} bytes, needs 4")
        (orig_len,) = struct.unpack_from(order + cls.FIELDS, body)
        return cls(orig_len, bytes(body[4:]))

    def build(self, order: str) -> bytes:
        return struct.pack(order + self.FIELDS, self.orig_len) + _padded(self.data)


@dataclass(frozen=True, slots=True)
class ObsoletePacket:
    """Packet Block (obsolete, appendix A): interface u16, drops u16, timestamp high u32 +
    low u32, caplen u32, orig len u32, data padded to 4, options."""

    interface: int
    drops: int
    timestamp: int
    data: bytes
    orig_len: int
    options: Options = ()

    BLOCK_TYPE: ClassVar[int] = OPB_TYPE
    FIELDS: ClassVar[str] = "HHIIII"

    @property
    def comment(self) -> str | None:
        return comment_of(self.options)

    @classmethod
    def parse(cls, body: bytes, order: str) -> ObsoletePacket:
        if len(body) < 20:
            raise ValueError(f"packet block body is {len(body)} bytes, needs 20")
        iface, drops, high, low, caplen, orig_len = struct.unpack_from(order + cls.FIELDS, body)
        data, options = _packet_data(body, caplen, order)
        return cls(iface, drops, (high << 32) | low, data, orig_len, options)

    def build(self, order: str) -> bytes:
        caplen = len(self.data)
        fixed = struct.pack(
            order + self.FIELDS,
            self.interface,
            self.drops,
            self.timestamp >> 32,
            self.timestamp & 0xFFFFFFFF,
            caplen,
            self.orig_len,
        )
        return fixed + _padded(self.data) + build_options(self.options, order)


@dataclass(frozen=True, slots=True)
class OpaqueBlock:
    """Any block the reader steps over (NRB, ISB, DSB, custom, unknown): type and raw body."""

    block_type: int
    body: bytes = field(default=b"")

    @classmethod
    def parse(cls, block_type: int, body: bytes) -> OpaqueBlock:
        return cls(block_type, bytes(body))

    def build(self, order: str) -> bytes:
        return _padded(self.body)


Block = (
    SectionHeader
    | InterfaceDescription
    | EnhancedPacket
    | SimplePacket
    | ObsoletePacket
    | OpaqueBlock
)

BLOCK_NAMES: Final[dict[int, str]] = {
    SHB_TYPE: "section header block",
    IDB_TYPE: "interface description block",
    OPB_TYPE: "packet block",
    SPB_TYPE: "simple packet block",
    NRB_TYPE: "name resolution block",
    ISB_TYPE: "interface statistics block",
    EPB_TYPE: "enhanced packet block",
    SJE_TYPE: "systemd journal export block",
    DSB_TYPE: "decryption secrets block",
    CB_COPY_TYPE: "custom block",
    CB_NOCOPY_TYPE: "custom block",
}


def frame_block(block: Block, order: str = "<") -> bytes:
    """The complete block: type, total length, body, total length (§3.1)."""
    block_type = block.block_type if isinstance(block, OpaqueBlock) else block.BLOCK_TYPE
    body = block.build(order)
    total = 12 + len(body)
    head = struct.pack(order + "II", block_type, total)
    return head + body + struct.pack(order + "I", total)


def parse_block(block_type: int, body: bytes, order: str) -> Block:
    """The typed block for ``block_type``; unknown types become an ``OpaqueBlock``."""
    match block_type:
        case 0x0A0D0D0A:
            return SectionHeader.parse(body, order)
        case 0x00000001:
            return InterfaceDescription.parse(body, order)
        case 0x00000006:
            return EnhancedPacket.parse(body, order)
        case 0x00000003:
            return SimplePacket.parse(body, order)
        case 0x00000002:
            return ObsoletePacket.parse(body, order)
        case _:
            return OpaqueBlock.parse(block_type, body)


def sniff(head: bytes) -> str | None:
    """The byte order if ``head`` starts a pcapng Section Header Block."""
    if len(head) < 12 or head[:4] != SHB_TYPE_BYTES:
        return None
    magic = head[8:12]
    if magic == BYTE_ORDER_MAGIC.to_bytes(4, "little"):
        return "<"
    if magic == BYTE_ORDER_MAGIC.to_bytes(4, "big"):
        return ">"
    return None


@dataclass(frozen=True, slots=True)
class _Interface:
    linktype: int
    snaplen: int
    # time_ns = ts * mul // div + offset_ns: exact integer arithmetic for
    # both power-of-10 and power-of-2 resolutions.
    mul: int
    div: int
    offset_ns: int

    @classmethod
    def of(cls, idb: InterfaceDescription, order: str) -> _Interface:
        base, exp = idb.tsresol()
        if base == 10:
            mul, div = (10 ** (9 - exp), 1) if exp <= 9 else (1, 10 ** (exp - 9))
        else:
            mul, div = 1_000_000_000, 1 << exp
        return cls(idb.linktype, idb.snaplen, mul, div, idb.tsoffset(order) * 1_000_000_000)

    def time_ns(self, ts: int) -> int:
        return ts * self.mul // self.div + self.offset_ns


class PcapngState:
    """What the reader knows about the file so far (visible to ``CaptureReader``)."""

    __slots__ = ("linktypes", "non_packet_frames", "odd_time", "sections")

    def __init__(self) -> None:
        self.linktypes: list[int] = []
        self.sections = 0
        self.odd_time = False  # a timestamp that is no date was reported (once per file)
        # Wireshark lists custom and systemd-journal blocks as frames of their
        # own; counting them keeps our frame numbers equal to Wireshark's.
        self.non_packet_frames = 0


def read_records(
    source: ChunkSource, problems: ProblemSink, state: PcapngState
) -> Iterator[RawRecord]:
    """Packet records of every section, in file order.

    Like the classic pcap loop, this works on the source's current chunk
    with local variables and only talks to the source to refill.  An EPB
    for a known interface takes the fast path (one unpack, one slice);
    every other block goes through the typed, checked slow path.
    """
    order = "<"
    head = struct.Struct("<II").unpack_from
    epb_fields = struct.Struct("<IIIII").unpack_from
    u32 = struct.Struct("<I").unpack_from
    interfaces: list[_Interface | None] = []
    buf, pos = source.ensure(12)
    base = source.offset - pos  # stream offset of buf[0]
    size = len(buf)
    while True:
        if pos + 12 > size:
            source.advance(pos - source.pos)
            buf, pos = source.ensure(12)
            base, size = source.offset - pos, len(buf)
            if size - pos < 12:
                if size - pos:
                    problems.add(base + pos, f"truncated block header ({size - pos} of 12 bytes)")
                return
        block_offset = base + pos
        if buf[pos : pos + 4] == SHB_TYPE_BYTES:
            # The SHB announces the byte order for itself and its section (§4.1).
            new_order = sniff(buf[pos : pos + 12])
            if new_order is None:
                magic = int.from_bytes(buf[pos + 8 : pos + 12], "big")
                problems.add(
                    block_offset,
                    f"section header with bad byte-order magic 0x{magic:08x}; stopping here",
                )
                return
            if new_order != order:
                order = new_order
                head = struct.Struct(order + "II").unpack_from
                epb_fields = struct.Struct(order + "IIIII").unpack_from
                u32 = struct.Struct(order + "I").unpack_from
        block_type, total = head(buf, pos)
        if total < 12 or total > MAX_BLOCK_LEN:
            name = BLOCK_NAMES.get(block_type, f"block type 0x{block_type:08x}")
            what = "is below the minimum 12" if total < 12 else "exceeds 256 MiB"
            problems.add(block_offset, f"{name} total length {total} {what}; stopping here")
            return
        if total > HUGE_BLOCK:
            # Streamed: its head is kept, the rest skipped, never two copies of it.
            source.advance(pos - source.pos)
            record = _huge_block(source, block_type, total, order, interfaces, problems, state)
            if record is False:
                return
            if record is not None and record is not True:
                yield record
            buf, pos = source.ensure(12)
            base, size = source.offset - pos, len(buf)
            continue
        if pos + total > size:
            source.advance(pos - source.pos)
            buf, pos = source.ensure(total)
            base, size = source.offset - pos, len(buf)
            if size - pos < total:
                name = BLOCK_NAMES.get(block_type, f"block type 0x{block_type:08x}")
                problems.add(
                    block_offset,
                    f"{name} truncated: total length {total} but only {size - pos} bytes "
                    "left in the file",
                )
                return
        (trailing,) = u32(buf, pos + total - 4)
        if trailing != total or total % 4:
            name = BLOCK_NAMES.get(block_type, f"block type 0x{block_type:08x}")
            if trailing == total:
                # The frame is self-consistent, so the next block is findable: skip this one.
                problems.add(
                    block_offset, f"{name} total length {total} is not a multiple of 4; skipped"
                )
                pos += total
                continue
            what = (
                f"total length {total} is not a multiple of 4"
                if total % 4
                else f"length mismatch: leading total length {total}, trailing {trailing}"
            )
            problems.add(block_offset, f"{name} {what}; block boundaries are lost, stopping here")
            return

        if block_type == EPB_TYPE and total >= 32:
            iface_id, high, low, caplen, orig_len = epb_fields(buf, pos + 8)
            data_end = pos + 28 + caplen
            if iface_id < len(interfaces) and data_end <= pos + total - 4:
                iface = interfaces[iface_id]
                if iface is not None:
                    comment = None
                    if 28 + _pad4(caplen) < total - 4:
                        comment = _comment_or_problem(
                            buf[pos + 8 : pos + total - 4],
                            20 + _pad4(caplen),
                            order,
                            problems,
                            block_offset,
                            "enhanced packet block",
                        )
                    time_ns = ((high << 32) | low) * iface.mul // iface.div + iface.offset_ns
                    if not DATE_MIN_NS <= time_ns <= DATE_MAX_NS and not state.odd_time:
                        state.odd_time = True
                        problems.add(block_offset, out_of_range_text(time_ns), skipped=0)
                    yield (
                        time_ns,
                        iface.linktype,
                        buf[pos + 28 : data_end],
                        orig_len,
                        iface_id,
                        comment,
                        block_offset,
                        block_offset + 28,  # 8 bytes of block frame + 20 of EPB fields
                    )
                    pos += total
                    continue

        body = buf[pos + 8 : pos + total - 4]
        pos += total
        if block_type == SHB_TYPE:
            try:
                shb = SectionHeader.parse(body, order)
            except (ValueError, struct.error) as exc:
                problems.add(block_offset, f"section header block malformed: {exc}; stopping here")
                return
            if shb.major != 1:
                problems.add(
                    block_offset,
                    f"unsupported pcapng version {shb.major}.{shb.minor}; stopping here",
                    skipped=0,
                )
                return
            interfaces = []
            state.sections += 1
        elif block_type == IDB_TYPE:
            if len(interfaces) >= MAX_INTERFACES:
                if len(interfaces) == MAX_INTERFACES:
                    interfaces.append(None)  # (a marker: said once per section)
                    problems.add(block_offset, f"the section declares more than "
                                 f"{MAX_INTERFACES} interfaces; the rest, and their packets, "
                                 "are skipped", skipped=0)  # fmt: skip
                continue
            try:
                idb = InterfaceDescription.parse(body, order)
            except (ValueError, struct.error) as exc:
                problems.add(block_offset, f"interface description block malformed: {exc}")
                interfaces.append(None)
                continue
            interfaces.append(_Interface.of(idb, order))
            if len(state.linktypes) < MAX_INTERFACES:
                state.linktypes.append(idb.linktype)
        elif block_type in (EPB_TYPE, OPB_TYPE):
            record = _packet_record(body, block_type, order, interfaces, problems, block_offset)
            if record is not None:
                if not DATE_MIN_NS <= record[0] <= DATE_MAX_NS and not state.odd_time:
                    state.odd_time = True
                    problems.add(block_offset, out_of_range_text(record[0]), skipped=0)
                yield record
        elif block_type == SPB_TYPE:
            record = _simple_record(body, order, interfaces, problems, block_offset)
            if record is not None:
                yield record
        elif block_type in (CB_COPY_TYPE, CB_NOCOPY_TYPE, SJE_TYPE):
            state.non_packet_frames += 1
        # NRB, ISB, DSB and unknown blocks: nothing for us (§3.1 says skip).


def _comment_or_problem(
    body: bytes, start: int, order: str, problems: ProblemSink, block_offset: int, name: str
) -> str | None:
    """opt_comment of a packet block; malformed options are a problem, the packet stays."""
    try:
        return comment_of(parse_options(body, start, order))
    except ValueError as exc:
        problems.add(block_offset, f"{name} options malformed: {exc}", skipped=0)
        return None


def _packet_record(
    body: bytes,
    block_type: int,
    order: str,
    interfaces: list[_Interface | None],
    problems: ProblemSink,
    block_offset: int,
) -> RawRecord | None:
    name = BLOCK_NAMES[block_type]
    head = "IIIII" if block_type == EPB_TYPE else "HHIIII"
    if len(body) < 20:
        problems.add(block_offset, f"{name} body is {len(body)} bytes, needs 20")
        return None
    fields = struct.unpack_from(order + head, body)
    iface_id, high, low, caplen, orig_len = (
        fields if block_type == EPB_TYPE else (fields[0], *fields[2:])
    )
    if iface_id >= len(interfaces):
        problems.add(
            block_offset,
            f"{name} for interface {iface_id}, but the section defines "
            f"{len(interfaces)} interface(s)",
        )
        return None
    iface = interfaces[iface_id]
    if iface is None:
        problems.add(block_offset, f"{name} for interface {iface_id}, whose IDB is malformed")
        return None
    if 20 + caplen > len(body):
        problems.add(
            block_offset,
            f"{name} captured length {caplen} runs past the block body ({len(body) - 20} bytes)",
        )
        return None
    data = bytes(body[20 : 20 + caplen])
    comment = None
    opt_start = 20 + _pad4(caplen)
    if opt_start < len(body):
        comment = _comment_or_problem(body, opt_start, order, problems, block_offset, name)
    return (
        iface.time_ns((high << 32) | low),
        iface.linktype,
        data,
        orig_len,
        iface_id,
        comment,
        block_offset,
        block_offset + 28,  # 8 bytes of block frame + 20 of EPB/OPB fixed fields
    )


def _simple_record(
    body: bytes,
    order: str,
    interfaces: list[_Interface | None],
    problems: ProblemSink,
    block_offset: int,
) -> RawRecord | None:
    if not interfaces or interfaces[0] is None:
        problems.add(block_offset, "simple packet block, but the section has no interface 0")
        return None
    iface = interfaces[0]
    if len(body) < 4:
        problems.add(block_offset, f"simple packet block body is {len(body)} bytes, needs 4")
        return None
    (orig_len,) = struct.unpack_from(order + "I", body)
    # §4.4: captured length = min(original length, snaplen); the rest is padding.
    caplen = min(orig_len, len(body) - 4)
    if iface.snaplen:
        caplen = min(caplen, iface.snaplen)
    # SPBs carry no timestamp; 0 is what Wireshark shows too.
    data = bytes(body[4 : 4 + caplen])
    return (0, iface.linktype, data, orig_len, 0, None, block_offset, block_offset + 12)


def _huge_block(
    source: ChunkSource,
    block_type: int,
    total: int,
    order: str,
    interfaces: list[_Interface | None],
    problems: ProblemSink,
    state: PcapngState,
) -> RawRecord | bool | None:
    """A block of more than ``HUGE_BLOCK`` bytes, ``source`` at its start.

    Its head (block header, fixed fields, ``KEEP_DATA`` bytes of packet data)
    is read, the rest skipped without being held, the trailing length checked.
    Returns the packet record (EPB/OPB/SPB), True for any other block that was
    taken into account, None for a packet block that was not usable, False
    when block boundaries are lost (the caller stops).
    """
    name = BLOCK_NAMES.get(block_type, f"block type 0x{block_type:08x}")
    offset = source.offset
    head = source.read(28 + KEEP_DATA)  # < total - 4, as total > HUGE_BLOCK
    rest = total - 4 - len(head)
    skipped = source.skip(rest) if len(head) == 28 + KEEP_DATA else 0
    trail = source.read(4) if skipped == rest else b""
    if len(trail) < 4:
        left = len(head) + skipped + len(trail)
        problems.add(offset, f"{name} truncated: total length {total} but only {left} bytes "
                             "left in the file")  # fmt: skip
        return False
    (trailing,) = struct.unpack(order + "I", trail)
    if trailing != total or total % 4:
        what = (
            f"total length {total} is not a multiple of 4" if total % 4
            else f"length mismatch: leading total length {total}, trailing {trailing}"
        )  # fmt: skip
        problems.add(offset, f"{name} {what}; block boundaries are lost, stopping here")
        return False
    fixed = head[8:]
    if block_type == SHB_TYPE:
        major, minor = struct.unpack_from(order + "HH", fixed, 4)
        if major != 1:
            problems.add(offset, f"unsupported pcapng version {major}.{minor}; stopping here",
                         skipped=0)  # fmt: skip
            return False
        interfaces.clear()
        state.sections += 1
        problems.add(offset, f"section header block of {total} bytes: its options are skipped",
                     skipped=0)  # fmt: skip
        return True
    if block_type == IDB_TYPE:
        # An interface's options (if_tsresol...) are a few bytes; megabytes of them
        # are not an interface description we can trust.
        problems.add(offset, f"interface description block of {total} bytes is implausible; "
                             "its packets are skipped")  # fmt: skip
        if len(interfaces) < MAX_INTERFACES:
            interfaces.append(None)
        return True
    if block_type in (CB_COPY_TYPE, CB_NOCOPY_TYPE, SJE_TYPE):
        state.non_packet_frames += 1
        return True
    if block_type not in (EPB_TYPE, OPB_TYPE, SPB_TYPE):
        return True  # NRB, ISB, DSB, unknown: nothing for us, skipped whole
    if block_type == SPB_TYPE:
        iface_id, stamp = 0, 0
        (orig_len,) = struct.unpack_from(order + "I", fixed)
        caplen, data_at = min(orig_len, total - 16), 4
    else:
        fields = struct.unpack_from(order + ("IIIII" if block_type == EPB_TYPE else "HHIIII"),
                                    fixed)  # fmt: skip
        iface_id, high, low, caplen, orig_len = (
            fields if block_type == EPB_TYPE else (fields[0], *fields[2:])
        )
        stamp, data_at = (high << 32) | low, 20
    iface = interfaces[iface_id] if iface_id < len(interfaces) else None
    if iface is None:
        problems.add(offset, f"{name} for interface {iface_id}, which the section does not "
                             "define (or whose IDB is unusable)")  # fmt: skip
        return None
    if data_at + caplen > total - 12:
        problems.add(offset, f"{name} captured length {caplen} runs past the block body "
                             f"({total - 12 - data_at} bytes)")  # fmt: skip
        return None
    problems.add(offset, f"{name} captured length {caplen} is larger than any IP packet; "
                         f"only its first {KEEP_DATA} bytes (the headers) are read",
                 skipped=0)  # fmt: skip
    time_ns = iface.time_ns(stamp) if block_type != SPB_TYPE else 0
    if not DATE_MIN_NS <= time_ns <= DATE_MAX_NS and not state.odd_time:
        state.odd_time = True
        problems.add(offset, out_of_range_text(time_ns), skipped=0)
    data = fixed[data_at : data_at + min(caplen, KEEP_DATA)]
    return (time_ns, iface.linktype, data, orig_len, iface_id, None, offset,
            offset + 8 + data_at)  # fmt: skip
