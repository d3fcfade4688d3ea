"""One byte range of one capture file: resynchronise, read, decode, partition.

Theory of operation.  A distributed run cuts every file into byte ranges
and reads them in parallel.  A record belongs to the range its header
starts in.  A range that starts inside the file first has to find a
boundary:

* classic pcap (draft-ietf-opsawg-pcap §5) has no marker, so every offset
  is a candidate record header, checked strictly: fraction below 10^6 (or
  10^9 for nanosecond files), caplen <= orig_len, caplen within the
  snaplen, and then a *chain* of ``CHAIN`` more headers, each starting
  where the previous record ends, each valid, within a day of its
  predecessor, or the chain ends exactly at the end of the file;
* pcapng (draft-ietf-opsawg-pcapng §3.1) frames every block with its length
  at both ends, so a candidate is a known block type whose leading and
  trailing lengths agree, followed by a chain of such blocks.  The range
  carries the section's Section Header and Interface Description blocks
  (read once from the head of the file) in front of its bytes, so its
  Enhanced Packet Blocks know their link types and time resolutions.

Resynchronisation is a heuristic, so it is never trusted alone: a range
also reports where the next range's first record starts (``stop``: the
first record header at or past its end, found by reading, not guessing),
and whether its section changed (a new SHB or IDB).  The planner
(``tcplab.scale.cluster``) checks each range's resync point against its
predecessor's ``stop``; on any disagreement it reads the two ranges again
as one, from the predecessor's trusted start.  A range whose reading hit
lost framing (a record or block the reader cannot step over) ends the
file, exactly as the single-process reader stops there.

A ``.gz`` file cannot be entered in the middle: it is one range.
"""

from __future__ import annotations

import io
import os
import re
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

import numpy as np

from tcplab.analyze import _engine
from tcplab.analyze.frames import dropped_by_wire, segment_of
from tcplab.capture import pcap, pcapng
from tcplab.capture.reader import CaptureReader, Record
from tcplab.capture.source import GZIP_MAGIC, ChunkSource, ProblemSink
from tcplab.errors import InputError
from tcplab.scale.captureset import is_url
from tcplab.scale.columns import (
    CHUNK,
    ROW,
    Decode,
    Framed,
    Keyed,
    decoder,
    empty_rows,
    keyed,
    segment_rows,
)
from tcplab.scale.engine import _Slow

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from tcplab.scale.engine import EngineOptions
    from tcplab.wire.decode import NotTcp

WHOLE_FILE = 1 << 62  # the end of a range that is the whole file (gzip: decompressed offsets)
CHAIN = 8  # records (blocks) after a candidate that must check out too
MAX_GAP_NS = 86_400 * 10**9  # consecutive records of a chain: at most a day apart
MAX_SPAN_NS = 366 * 86_400 * 10**9  # a record: within a year of the file's first
_CHECKS = (CHAIN, MAX_GAP_NS, MAX_SPAN_NS)
HEAD_LIMIT = 1 << 20  # bytes of a pcapng head searched for its SHB + IDBs
SCAN_WINDOW = 4 << 20  # bytes read at a time while resynchronising
FIRST_LOOK = 256 << 10  # bytes read first (the boundary is usually in them)
_PCAPNG_TYPES = frozenset(
    {
        pcapng.SHB_TYPE,
        pcapng.IDB_TYPE,
        pcapng.OPB_TYPE,
        pcapng.SPB_TYPE,
        pcapng.NRB_TYPE,
        pcapng.ISB_TYPE,
        pcapng.EPB_TYPE,
        pcapng.SJE_TYPE,
        pcapng.DSB_TYPE,
        pcapng.CB_COPY_TYPE,
        pcapng.CB_NOCOPY_TYPE,
    }
)


def open_binary(path: str) -> BinaryIO:
    """A local file, or an fsspec URL (s3://, gs://, file://, ...)."""
    try:
        if is_url(path):
            import fsspec

            return fsspec.open(path, "rb").open()  # type: ignore[no-any-return]
        return open(path, "rb")
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(f"{path}: cannot open: {exc}") from None


def file_size(path: str) -> int:
    if is_url(path):
        import fsspec

        fs, _, paths = fsspec.get_fs_token_paths(path)
        return int(fs.size(paths[0]))
    return os.path.getsize(path)


@dataclass(frozen=True, slots=True)
class FileLayout:
    """What every range of one file needs to know, read once from its head."""

    path: str
    file_id: int
    size: int
    kind: str  # "pcap" | "pcapng" | "gzip" (and anything else read whole, from the start)
    data_start: int  # offset of the first record (pcap: 24) or block (pcapng: 0)
    pcap_header: bytes = b""  # pcap: the 24-byte global header
    carry: bytes = b""  # pcapng: the head's SHB and IDBs, verbatim
    interfaces: int = 0  # pcapng: IDBs in the carry
    order: str = "<"
    first_time_ns: int = 0  # pcap: the first record's time (a reference for resync)


def layout(path: str, file_id: int) -> FileLayout:
    """Read a file's head; ``InputError`` (one line) when it is no capture."""
    size = file_size(path)
    with open_binary(path) as f:
        head = f.read(HEAD_LIMIT)
    if head[:2] == GZIP_MAGIC:
        return FileLayout(path, file_id, size, "gzip", 0)
    if pcap.sniff(head) is not None:
        if len(head) < pcap.GLOBAL_HEADER_LEN:
            raise InputError(
                f"{path}: offset {len(head)}: truncated pcap global header "
                f"({len(head)} of 24 bytes)"
            )
        header = head[: pcap.GLOBAL_HEADER_LEN]
        first_time = 0
        if len(head) >= pcap.GLOBAL_HEADER_LEN + pcap.RECORD_HEADER_LEN:
            g = pcap.GlobalHeader.parse(header)
            rec = pcap.RecordHeader.parse(head[pcap.GLOBAL_HEADER_LEN :], g.byte_order)
            first_time = rec.ts_sec * 10**9 + rec.ts_frac * (1 if g.nanosecond else 1000)
        return FileLayout(
            path, file_id, size, "pcap", pcap.GLOBAL_HEADER_LEN, header, first_time_ns=first_time
        )
    order = pcapng.sniff(head)
    if order is None:
        if not head:
            raise InputError(f"{path}: offset 0: empty file; not a pcap or pcapng file")
        if head[:4] == pcapng.SHB_TYPE_BYTES:
            # A damaged section header: the ordinary reader words it.
            return FileLayout(path, file_id, size, "gzip", 0)
        raise InputError(f"{path}: offset 0: not a pcap or pcapng file (magic 0x{head[:4].hex()})")
    pos, interfaces = 0, 0
    u32x2 = struct.Struct(order + "II").unpack_from
    while pos + 12 <= len(head):
        block_type, total = u32x2(head, pos)
        if block_type not in (pcapng.SHB_TYPE, pcapng.IDB_TYPE) or (
            pos and block_type == pcapng.SHB_TYPE
        ):
            break
        if total < 12 or pos + total > len(head):
            break
        interfaces += block_type == pcapng.IDB_TYPE
        pos += total
    return FileLayout(
        path, file_id, size, "pcapng", 0, carry=head[:pos], interfaces=interfaces, order=order
    )


# -- resynchronisation ------------------------------------------------------------------


def _pcap_valid(lay: FileLayout, buf: bytes, p: int, eof: bool) -> bool:
    """A header at ``buf[p]`` and CHAIN records after it check out."""
    header = pcap.GlobalHeader.parse(lay.pcap_header)
    unpack = struct.Struct(header.byte_order + "IIII").unpack_from
    frac_limit = 1_000_000_000 if header.nanosecond else 1_000_000
    frac_ns = 1 if header.nanosecond else 1000
    cap_limit = max(header.snaplen, 262144)
    prev: int | None = None
    for _ in range(CHAIN + 1):
        if p == len(buf) and eof:
            return prev is not None
        if p + pcap.RECORD_HEADER_LEN > len(buf):
            return False
        ts_sec, frac, caplen, orig = unpack(buf, p)
        if frac >= frac_limit or not 0 < caplen <= orig or caplen > cap_limit or orig > 1 << 24:
            return False
        t = ts_sec * 1_000_000_000 + frac * frac_ns
        if abs(t - lay.first_time_ns) > MAX_SPAN_NS:
            return False
        if prev is not None and abs(t - prev) > MAX_GAP_NS:
            return False
        prev = t
        p += pcap.RECORD_HEADER_LEN + caplen
        if p > len(buf):
            return False
    return True


def _pcapng_valid(lay: FileLayout, buf: bytes, p: int, eof: bool) -> bool:
    u32x2 = struct.Struct(lay.order + "II").unpack_from
    u32 = struct.Struct(lay.order + "I").unpack_from
    for n in range(CHAIN + 1):
        if p == len(buf) and eof:
            return n > 0
        if p + 12 > len(buf):
            return False
        block_type, total = u32x2(buf, p)
        if (
            block_type not in _PCAPNG_TYPES
            or total < 12
            or total % 4
            or total > pcapng.MAX_BLOCK_LEN
        ):
            return False
        if p + total > len(buf):
            return False
        if u32(buf, p + total - 4)[0] != total:
            return False
        if block_type == pcapng.EPB_TYPE:
            if total < 32:
                return False
            iface, _hi, _lo, caplen, orig = struct.unpack_from(lay.order + "IIIII", buf, p + 8)
            if iface >= max(lay.interfaces, 1) or 32 + caplen > total or caplen > orig + 3:
                return False
        p += total
    return True


def resync(lay: FileLayout, f: BinaryIO, start: int, end: int) -> int | None:
    """The first record (block) boundary at or after ``start`` and before
    ``end``, by strict candidate checks; None when the range holds none.

    A boundary is usually within a record's length of ``start``: the first
    look reads ``FIRST_LOOK`` bytes, and its answer stands when no candidate
    before it ran out of those bytes (a candidate's checks give the same
    answer on more bytes unless they ran out); otherwise the scan is done
    over ``SCAN_WINDOW`` windows, as if there had been no first look."""
    step = 1 if lay.kind == "pcap" else 4  # pcapng blocks are 32-bit aligned (§3.1)
    scan = _scanner(lay)
    base = start
    if lay.kind == "pcapng":
        base += (-start) % 4
    if base < end:
        f.seek(base)
        buf = f.read(FIRST_LOOK)
        p, cut = scan(buf, min(len(buf), end - base), base + len(buf) >= lay.size, 0)
        if p >= 0 and not cut:
            return base + p
    while base < end:
        f.seek(base)
        buf = f.read(SCAN_WINDOW)
        eof = base + len(buf) >= lay.size
        limit = min(len(buf), end - base)
        p, _cut = scan(buf, limit, eof, 0)
        if p >= 0:
            return base + p
        if eof:
            return None
        # Keep the tail: a chain that ran past the window is checked again.
        base += max(limit - 2 * (1 << 18), step) if limit == len(buf) else limit
    return None


def _scanner(lay: FileLayout) -> Callable[[bytes, int, bool, int], tuple[int, bool]]:
    """``scan(buf, limit, eof, start)``: the first offset in ``[start,
    limit)`` (by 4 in pcapng) where ``_pcap_valid`` (``_pcapng_valid``)
    holds, or -1, and whether a candidate before it ran out of ``buf``,
    checked in C (``_engine.resync_scan``; the two functions
    above are its reference, tests/test_scale_ranges.py holds them equal)."""
    if lay.kind == "pcap":
        header = pcap.GlobalHeader.parse(lay.pcap_header)
        step, ng, le = 1, False, header.byte_order == "<"
        a, b = int(header.nanosecond), max(header.snaplen, 262144)
    else:
        step, ng, le = 4, True, lay.order == "<"
        a, b = lay.interfaces, pcapng.MAX_BLOCK_LEN

    def scan(buf: bytes, limit: int, eof: bool, start: int) -> tuple[int, bool]:
        found, cut = _engine.resync_scan(
            buf, start, limit, step, eof, ng, le, a, b, lay.first_time_ns, *_CHECKS
        )
        return found, bool(cut)

    return scan


# -- reading one range ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeSpec:
    file_id: int
    range_id: int
    start: int  # where to look for the first record (exact: where it is)
    end: int  # records whose header starts before this belong here
    exact: bool = False


@dataclass(slots=True)
class RangeMeta:
    """What the planner needs of a read range (the packets stay on the worker)."""

    spec: RangeSpec
    first: int | None  # offset of the first record read (None: the range holds none)
    stop: int | None  # offset of the first record at or past ``end`` (None: end of file)
    lost: bool  # reading stopped where framing was lost (or a truncated tail)
    section_changed: bool  # pcapng: an SHB or IDB inside the range
    frames: int  # frame numbers the range uses (packets, and pcapng custom blocks)
    latest: int  # largest timestamp in the range (ns)
    problems: list[tuple[int, str]]  # (offset, message) with range-local frame numbers
    records: int = 0  # records read (ReadReport.frames)
    tcp: int = 0
    not_tcp: int = 0
    bytes: int = 0
    packets: list[int] = field(default_factory=list)  # rows per partition
    seconds: float = 0.0  # CPU seconds the read took (contention does not count)
    worker: int = 0  # pid of the process that read it
    shuffle_bytes: int = 0  # size of the partition rows handed on
    undecodable: int = 0


class _Prefixed:
    """A byte stream: ``prefix`` then the rest of ``f`` (the carried pcapng head)."""

    def __init__(self, prefix: bytes, f: BinaryIO) -> None:
        self.prefix = prefix
        self.f = f

    def read(self, n: int) -> bytes:
        if self.prefix:
            out, self.prefix = self.prefix[:n], self.prefix[n:]
            if len(out) < n:
                out += self.f.read(n - len(out))
            return out
        return self.f.read(n)


class _RangeReader(CaptureReader):
    """A ``CaptureReader`` over the records of one range (for ``TcpRecords``)."""

    def __init__(self, lay: FileLayout, f: BinaryIO, first: int, end: int) -> None:
        self.path = lay.path
        self.size = lay.size
        self._sink = ProblemSink()
        self._pcapng_state = pcapng.PcapngState()
        self._pcap_linktype = None
        self.compressed = False
        self.count = 0
        self.format = lay.kind
        self.global_header = None
        self._file = f
        self._started = False
        self.end = end
        self.stop: int | None = None
        self.lost = False
        carry = b""
        if lay.kind == "gzip":
            # One range, read from the start by the ordinary reader (gzip included).
            if not hasattr(f, "peek"):
                f = io.BufferedReader(f)  # type: ignore[type-var]
                self._file = f
            self._source = self._start()
            self.carried_sections = self.carried_interfaces = 0
            return
        if lay.kind == "pcap":
            self.global_header = pcap.GlobalHeader.parse(lay.pcap_header)
            self._pcap_linktype = self.global_header.linktype
        elif first > 0:
            carry = lay.carry
        f.seek(first)
        stream: Any = _Prefixed(carry, f) if carry else f
        self._source = ChunkSource(stream, self._sink)
        self._source.offset = first - len(carry)
        self.carried_sections = 1 if carry else 0
        self.carried_interfaces = lay.interfaces if carry else 0

    def __iter__(self) -> Iterator[Record]:
        self._begin()
        state = self._pcapng_state
        for count, raw in enumerate(self._records(), start=1):
            if raw[6] >= self.end:
                self.stop = raw[6]
                return
            self.count = count
            yield Record(count + state.non_packet_frames, *raw)
        # The reader ended by itself: at the end of the file, or where it
        # reported lost framing (its last problem says "stopping here" or
        # names a truncated record at the end of the file).
        self.lost = self._source.offset < self.size

    def frames(self) -> int:
        return self.count + self._pcapng_state.non_packet_frames

    def section_changed(self) -> bool:
        st = self._pcapng_state
        return st.sections > self.carried_sections or len(st.linktypes) > self.carried_interfaces


_FRAME = re.compile(r"^frame (\d+): ")


class PieceRef(NamedTuple):
    """A partition's piece of one range in the scratch directory: at
    ``offset`` of ``path``, ``rows`` rows (``columns.ROW``) in ``size``
    bytes, each with its largest time so far in the range, packed by the
    engine in blocks (_engine.c, "packed rows"; ``PieceReader``)."""

    path: str
    offset: int
    rows: int
    size: int
    first_key: int  # the first row's order-key time (as written: before the range's carry)


def read_range(
    lay: FileLayout, spec: RangeSpec, partitions: int, options: EngineOptions, scratch: str
) -> tuple[RangeMeta, list[PieceRef]]:
    """Read one range: its metadata and, per partition (``part_hash`` of the
    5-tuple), where its rows (``tcplab.scale.columns``), each with its
    largest time so far in the range, were written packed: one file of the
    range in ``scratch``, a partition after another, so the worker keeps
    nothing of the range once it is read.

    The engine's C reader packs each row straight into its partition's buffer
    and writes the buffers out itself (``Engine.write_pieces``, one writev);
    a range the Python reader reads (gzip, a structure the C reader hands
    over) is split and packed by ``_engine.pack_split``: the same pieces."""
    started = time.process_time()
    name = f"{spec.file_id}-{spec.range_id}-{spec.start}-{uuid.uuid4().hex}.rows"
    path = os.path.join(scratch, name)
    # fails once the run has removed its scratch directory
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        got = _engine_range(lay, spec, options, partitions)
        if got is None:
            meta, chunks = _python_range(lay, spec, options)
            counts, sizes, firsts = _write_split(fd, chunks, partitions)
        else:
            meta, eng, _ = got
            if eng is None:
                counts = sizes = [0] * partitions
                firsts = [-(1 << 63)] * partitions
            else:
                counts, sizes, firsts, latest = eng.write_pieces(fd)
                meta.latest = int(latest)
    finally:
        os.close(fd)
    refs: list[PieceRef] = []
    at = 0
    for n, size, first in zip(counts, sizes, firsts, strict=True):
        refs.append(PieceRef(path, at, n, size, first))
        at += size
    meta.packets = list(counts)
    meta.shuffle_bytes = at
    meta.seconds = time.process_time() - started
    meta.worker = os.getpid()
    return meta, refs


def _write_split(
    fd: int, chunks: list[Keyed], partitions: int, block: int = _engine.PACK_BLOCK
) -> tuple[list[int], list[int], list[int]]:
    """Rows (and their times) split by partition, packed and written to
    ``fd`` as ``Engine.write_pieces`` writes them; the rows, bytes and first
    row's key per partition."""
    rows = np.concatenate([r for r, _ in chunks]) if chunks else empty_rows()
    latest = np.concatenate([t for _, t in chunks]) if chunks else np.zeros(0, np.int64)
    counts: list[int] = []
    sizes: list[int] = []
    firsts: list[int] = []
    for n, packed, first in _engine.pack_split(rows, latest, partitions, block):
        counts.append(n)
        sizes.append(len(packed))
        firsts.append(first)
        view = memoryview(packed)
        while view:
            view = view[os.write(fd, view) :]
    return counts, sizes, firsts


class PieceReader:
    """Pieces read back a block at a time (``_engine.PACK_BLOCK`` rows at
    most), each row with its order-key time and its frame in the capture
    set, so a reader holds one block of a piece, not the piece.

    The buffers are this reader's and are reused: a chunk's arrays are valid
    until the next chunk is asked for (the merge and the engine are done with
    a chunk by then).  Read into them, not mapped: a scratch file's pages are
    tmpfs's small pages, and mapping them (populated, then unmapped with its
    TLB flush) cost a stage-2 worker more system time than the copy into
    buffers that stay in memory (docs/scale.md)."""

    def __init__(self) -> None:
        self.rows = np.empty(_engine.PACK_BLOCK, ROW)
        self.times = np.empty(_engine.PACK_BLOCK, np.int64)
        self.frames = np.empty(_engine.PACK_BLOCK, np.int64)
        self.packed = bytearray(1 << 16)

    def chunks(
        self, ref: PieceRef, frame_base: int = 0, least_time: int = -(1 << 63)
    ) -> Iterator[Framed]:
        """The piece's rows, their order-key times (at least ``least_time``)
        and frames (their index plus ``frame_base``)."""
        path, offset, n, size, _ = ref
        fd = os.open(path, os.O_RDONLY)
        try:
            if os.fstat(fd).st_size < offset + size:
                raise OSError(f"{path}: a scratch file ended early")
            at, end, rows = offset, offset + size, 0
            head = os.pread(fd, 8, at) if size else b""
            while at < end:
                if len(head) != 8:
                    raise OSError(f"{path}: a scratch file ended early")
                count, nbytes = _HEAD.unpack(head)
                at += 8
                want = nbytes + 8 if at + nbytes < end else nbytes  # and the next block's head
                if len(self.packed) < want:
                    self.packed = bytearray(max(want, 2 * len(self.packed)))
                view = memoryview(self.packed)[:want]
                if os.preadv(fd, [view], at) != want:
                    raise OSError(f"{path}: a scratch file ended early")
                got = _engine.unpack_block(
                    view[:nbytes], self.rows, self.times, self.frames, frame_base, least_time
                )
                if got != count:
                    raise OSError(f"{path}: a block of a scratch file does not hold its rows")
                head = bytes(view[nbytes:])
                at += nbytes
                rows += got
                yield self.rows[:got], self.times[:got], self.frames[:got]
            if rows != n:
                raise OSError(f"{path}: a scratch piece does not hold its rows")
        finally:
            os.close(fd)


_HEAD = struct.Struct("=II")  # a packed block's head: its rows, its bytes


def decode_range(
    lay: FileLayout, spec: RangeSpec, options: EngineOptions
) -> tuple[RangeMeta, list[Keyed]]:
    """One range through the engine's C reader in decode-only mode: its
    metadata and its rows (frames numbered inside the range) a chunk at a
    time, each row with its largest time so far in the range.  A range whose
    structure the C reader hands over (a huge record, a truncated tail, an odd
    block) is read by ``tcplab.capture`` instead, the whole range, as before."""
    got = _engine_range(lay, spec, options, 0)
    if got is None:
        return _python_range(lay, spec, options)
    meta, _eng, rows = got
    chunks = list(keyed(rows))
    meta.latest = int(chunks[-1][1][-1]) if chunks else -(1 << 63)
    return meta, chunks


def _engine_range(
    lay: FileLayout, spec: RangeSpec, options: EngineOptions, partitions: int
) -> tuple[RangeMeta, Any, list[NDArray[Any]]] | None:
    """The range through the C reader: its metadata (but ``latest``), the
    engine (None when the range holds no record) and the range's rows; with
    ``partitions`` the rows stay in the engine's partition buffers (for
    ``write_pieces``).  None: the Python reader takes the range over."""
    if lay.kind not in ("pcap", "pcapng"):
        return None
    with open_binary(lay.path) as f:
        first = _first_record(lay, f, spec)
        if first is None:
            return _empty_range(spec), None, []
        if lay.kind == "pcap":
            prefix, head_end = lay.pcap_header, first
        elif first > lay.data_start:
            prefix, head_end = lay.carry, first
        else:
            prefix, head_end = b"", len(lay.carry)
        eng = decoder(options)
        eng.decode_only(
            spec.end if spec.end < WHOLE_FILE else -1, first - len(prefix), head_end, 0, partitions
        )
        d = Decode(eng, _Slow(eng, lay.path, options))
        if isinstance(f, io.BufferedReader):  # a local file: the engine reads it itself
            os.lseek(f.fileno(), first, os.SEEK_SET)  # past what the buffer holds
            chunks = d.run_fd(f.fileno(), prefix)
        else:
            f.seek(first)
            chunks = d.run(lambda: f.read(CHUNK), prefix)
        try:
            rows = [r for r in chunks if len(r)]
        except OSError:
            # The file shrank under the mapped reader (tcpdump -W reusing a
            # ring's file), or an I/O error: the Python reader reads the
            # range instead and says what it finds, as a read() would have.
            return None
    if d.end == "takeover":
        return None
    stop = d.offset if d.end == "stop" else None
    stats = eng.stats()
    end = stop if stop is not None else lay.size + 1
    meta = RangeMeta(
        spec,
        first,
        stop,
        False,
        d.section_at >= 0,
        int(stats["frame_index"]),
        -(1 << 63),
        [(o, m) for o, m in d.slow.problems() if first <= o < end],
        int(stats["frames"]),
        int(stats["tcp"]),
        int(stats["not_tcp"]),
        (stop if stop is not None else lay.size) - first,
        undecodable=d.slow.undecodable,
    )
    return meta, eng, rows


def _first_record(lay: FileLayout, f: BinaryIO, spec: RangeSpec) -> int | None:
    """Where the range's first record (pcap) or block (pcapng) starts; None
    when none starts inside it."""
    first = spec.start if spec.exact else resync(lay, f, spec.start, spec.end)
    return None if first is None or first >= spec.end else first


def _empty_range(spec: RangeSpec) -> RangeMeta:
    return RangeMeta(spec, None, None, False, False, 0, -(1 << 63), [])


def _python_range(
    lay: FileLayout, spec: RangeSpec, options: EngineOptions
) -> tuple[RangeMeta, list[Keyed]]:
    """A range read by ``tcplab.capture`` and decoded by ``tcplab.wire``
    (gzip, and what the C reader hands over): the same rows and metadata."""
    with open_binary(lay.path) as f:
        first = _first_record(lay, f, spec)
        if first is None:
            return _empty_range(spec), []
        reader = _RangeReader(lay, f, first, spec.end)
        problems: list[tuple[int, str]] = []

        def fragment(record: Record, not_tcp: NotTcp) -> None:
            if "fragment" in not_tcp.reason:
                problems.append(
                    (record.data_offset, f"frame {record.index}: {not_tcp.reason} skipped")
                )

        from tcplab.capture import TcpRecords  # (the wire's decoders: only for a range read here)

        records = TcpRecords(reader, strict_checksum=True, on_not_tcp=fragment)
        segments = (
            segment_of(
                record.index,
                record.time_ns,
                record.data,
                packet,
                record.comment is not None and dropped_by_wire(record.comment),
            )
            for record, packet in records
        )
        rows = segment_rows(segments, options)
        stop = reader.stop if reader.stop is not None else lay.size + 1
        problems += [(p.offset, p.message) for p in records.problems if first <= p.offset < stop]
        latest = np.maximum.accumulate(rows["t"]) if len(rows) else np.zeros(0, np.int64)
        meta = RangeMeta(
            spec,
            first,
            reader.stop,
            reader.lost,
            lay.kind == "pcapng" and reader.section_changed(),
            reader.frames(),
            int(latest[-1]) if len(latest) else -(1 << 63),
            sorted(problems),
            records.frames,
            records.tcp,
            records.not_tcp + records.undecodable,
            (reader.stop if reader.stop is not None else lay.size) - first,
            undecodable=records.undecodable,
        )
        return meta, [(rows, latest)] if len(rows) else []


def global_problem(name: str, offset: int, message: str, frame_base: int) -> str:
    """A range's problem as the single-process reader words it (global frame numbers)."""
    m = _FRAME.match(message)
    if m is not None and frame_base:
        message = f"frame {int(m.group(1)) + frame_base}: " + message[m.end() :]
    return f"{name}: offset {offset}: {message}"
