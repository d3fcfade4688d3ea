"""Classic libpcap files: the global header, record headers, a streaming reader.

Layout (draft-ietf-opsawg-pcap §4, §5), every field in the writer's byte order::

    global header, 24 bytes        record header, 16 bytes
    0  magic        u32            0  ts_sec      u32
    4  version      u16 u16        4  ts_frac     u32   (µs or ns, by the magic)
    8  thiszone     i32            8  caplen      u32   (bytes stored)
    12 sigfigs      u32            12 orig_len    u32   (bytes on the wire)
    16 snaplen      u32
    20 linktype     u32   (low 16 bits; upper bits carry FCS info, §4)

The magic number tells byte order and timestamp unit at once
(``_MAGICS``): 0xa1b2c3d4 = microseconds, 0xa1b23c4d = nanoseconds.

The reader is a generator over a ``ChunkSource`` so memory stays at one
chunk whatever the file size.  A record header cannot be validated on its
own (there is no trailing length as in pcapng), so a record whose caplen is
absurd means we have lost the record boundaries: the reader reports it and
stops, rather than guessing where the next record might start.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Final

from tcplab.capture.source import ChunkSource, ProblemSink

MAGIC_USEC: Final = 0xA1B2C3D4
MAGIC_NSEC: Final = 0xA1B23C4D
GLOBAL_HEADER_LEN: Final = 24
RECORD_HEADER_LEN: Final = 16
# Wireshark refuses records above 256 MiB (WTAP_MAX_PACKET_SIZE_STANDARD is
# 256 KiB for most link types, but its hard ceiling is this); anything larger
# is a corrupt length field, not a packet.
MAX_CAPLEN: Final = 256 * 1024 * 1024
# What a reader keeps of one record: more than any IP datagram (65,535 bytes)
# plus its link headers; the analysis needs the headers.  The rest of a larger
# record is streamed past (ChunkSource.skip) and never held, so a 255 MiB
# record costs this much memory, not twice its size.
KEEP_DATA: Final = 256 * 1024
DEFAULT_SNAPLEN: Final = 262144

# magic as read little-endian -> (byte order prefix, nanosecond?)
_MAGICS: Final[dict[int, tuple[str, bool]]] = {
    MAGIC_USEC: ("<", False),
    MAGIC_NSEC: ("<", True),
    int.from_bytes(MAGIC_USEC.to_bytes(4, "big"), "little"): (">", False),
    int.from_bytes(MAGIC_NSEC.to_bytes(4, "big"), "little"): (">", True),
}


def sniff(head: bytes) -> tuple[str, bool] | None:
    """(byte order, nanosecond) if ``head`` starts with a classic pcap magic."""
    if len(head) < 4:
        return None
    return _MAGICS.get(int.from_bytes(head[:4], "little"))


@dataclass(frozen=True, slots=True)
class GlobalHeader:
    byte_order: str  # "<" or ">"
    nanosecond: bool
    version_major: int
    version_minor: int
    thiszone: int
    sigfigs: int
    snaplen: int
    network: int  # the whole 32-bit field, FCS bits included

    FIELDS: ClassVar[str] = "IHHiIII"  # magic, major, minor, thiszone, sigfigs, snaplen, network

    @property
    def linktype(self) -> int:
        return self.network & 0xFFFF

    @classmethod
    def parse(cls, data: bytes) -> GlobalHeader:
        if len(data) < GLOBAL_HEADER_LEN:
            raise ValueError(f"truncated pcap global header ({len(data)} of 24 bytes)")
        sniffed = sniff(data)
        if sniffed is None:
            raise ValueError(f"not a pcap magic 0x{int.from_bytes(data[:4], 'big'):08x}")
        order, nano = sniffed
        _, major, minor, zone, sigfigs, snaplen, network = struct.unpack_from(
            order + cls.FIELDS, data
        )
        return cls(order, nano, major, minor, zone, sigfigs, snaplen, network)

    def build(self) -> bytes:
        magic = MAGIC_NSEC if self.nanosecond else MAGIC_USEC
        return struct.pack(
            self.byte_order + self.FIELDS,
            magic,
            self.version_major,
            self.version_minor,
            self.thiszone,
            self.sigfigs,
            self.snaplen,
            self.network,
        )


@dataclass(frozen=True, slots=True)
class RecordHeader:
    ts_sec: int
    ts_frac: int
    caplen: int
    orig_len: int

    FIELDS: ClassVar[str] = "IIII"

    @classmethod
    def parse(cls, data: bytes, byte_order: str = "<") -> RecordHeader:
        if len(data) < RECORD_HEADER_LEN:
            raise ValueError(f"truncated record header ({len(data)} of 16 bytes)")
        return cls(*struct.unpack_from(byte_order + cls.FIELDS, data))

    def build(self, byte_order: str = "<") -> bytes:
        return struct.pack(
            byte_order + self.FIELDS, self.ts_sec, self.ts_frac, self.caplen, self.orig_len
        )


# (time_ns, linktype, data, orig_len, interface, comment, offset, data_offset)
RawRecord = tuple[int, int, bytes, int, int, "str | None", int, int]


def read_records(
    source: ChunkSource, header: GlobalHeader, problems: ProblemSink
) -> Iterator[RawRecord]:
    """Records after the global header (``source`` is positioned just past it)."""
    return _read(source, header, problems, full=True)  # type: ignore[return-value]


def read_raw(
    source: ChunkSource, header: GlobalHeader, problems: ProblemSink
) -> Iterator[tuple[int, int, bytes]]:
    """``(time_ns, linktype, data)`` only: the analyzer's bulk path."""
    return _read(source, header, problems, full=False)  # type: ignore[return-value]


def _read(
    source: ChunkSource, header: GlobalHeader, problems: ProblemSink, full: bool
) -> Iterator[RawRecord | tuple[int, int, bytes]]:
    """The hot loop of ``tcplab analyze``: works on the current chunk with local
    variables and one precompiled ``Struct``, and only talks to the source to
    refill (about 1.2 µs per record on this machine instead of 3)."""
    unpack_from = struct.Struct(header.byte_order + RecordHeader.FIELDS).unpack_from
    frac_ns = 1 if header.nanosecond else 1000
    linktype = header.linktype
    buf, pos = source.ensure(RECORD_HEADER_LEN)
    base = source.offset - pos  # stream offset of buf[0]
    size = len(buf)
    while True:
        data_start = pos + RECORD_HEADER_LEN
        if data_start > size:
            source.advance(pos - source.pos)
            buf, pos = source.ensure(RECORD_HEADER_LEN)
            base, size, data_start = source.offset - pos, len(buf), pos + RECORD_HEADER_LEN
            if data_start > size:
                if size - pos:
                    problems.add(
                        base + pos,
                        f"truncated record header ({size - pos} of 16 bytes) at end of file",
                    )
                return
        ts_sec, ts_frac, caplen, orig_len = unpack_from(buf, pos)
        end = data_start + caplen
        if caplen > KEEP_DATA and caplen <= MAX_CAPLEN:
            source.advance(pos - source.pos)
            record = _huge_record(source, caplen, problems)
            if record is None:
                return
            data, offset = record
            time_ns = ts_sec * 1_000_000_000 + ts_frac * frac_ns
            if full:
                yield time_ns, linktype, data, orig_len, 0, None, offset, offset + 16
            else:
                yield time_ns, linktype, data
            buf, pos = source.ensure(RECORD_HEADER_LEN)
            base, size = source.offset - pos, len(buf)
            continue
        if end > size:
            if caplen > MAX_CAPLEN:
                problems.add(
                    base + pos,
                    f"record caplen {caplen} exceeds 256 MiB; record boundaries are lost, "
                    "stopping here",
                )
                return
            source.advance(pos - source.pos)
            buf, pos = source.ensure(RECORD_HEADER_LEN + caplen)
            base, size = source.offset - pos, len(buf)
            data_start = pos + RECORD_HEADER_LEN
            end = data_start + caplen
            if end > size:
                problems.add(
                    base + pos,
                    f"record truncated: caplen {caplen} but only {size - data_start} bytes "
                    "left in the file",
                )
                return
        elif caplen > MAX_CAPLEN:
            problems.add(
                base + pos,
                f"record caplen {caplen} exceeds 256 MiB; record boundaries are lost, "
                "stopping here",
            )
            return
        if full:
            yield (
                ts_sec * 1_000_000_000 + ts_frac * frac_ns,
                linktype,
                buf[data_start:end],
                orig_len,
                0,
                None,
                base + pos,
                base + data_start,
            )
        else:
            yield ts_sec * 1_000_000_000 + ts_frac * frac_ns, linktype, buf[data_start:end]
        pos = end


def _huge_record(
    source: ChunkSource, caplen: int, problems: ProblemSink
) -> tuple[bytes, int] | None:
    """A record larger than ``KEEP_DATA`` (``source`` at its header): its first
    ``KEEP_DATA`` bytes and its offset; the rest is skipped without being held.
    None (and a problem) when the file ends inside it."""
    offset = source.offset
    head = source.read(RECORD_HEADER_LEN + KEEP_DATA)
    rest = caplen - KEEP_DATA
    skipped = source.skip(rest) if len(head) == RECORD_HEADER_LEN + KEEP_DATA else 0
    if skipped < rest:
        problems.add(
            offset,
            f"record truncated: caplen {caplen} but only "
            f"{len(head) - RECORD_HEADER_LEN + skipped} bytes left in the file",
        )
        return None
    problems.add(
        offset,
        f"record caplen {caplen} is larger than any IP packet; only its first {KEEP_DATA} "
        "bytes (the headers) are read",
        skipped=0,
    )
    return head[RECORD_HEADER_LEN:], offset
