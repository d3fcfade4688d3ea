"""Open any capture file: classic pcap or pcapng, plain or gzip-compressed.

The format is decided by magic numbers, never by the file name: gzip's
1f 8b first (the decompressed stream is then sniffed again), then the pcap
magics (both byte orders, µs and ns) and the pcapng Section Header Block.
A file that is none of these raises ``InputError``; everything wrong
*inside* a capture is a ``CaptureProblem`` on the reader, and reading goes
on wherever the format lets us find the next record.

Two ways to iterate:
- ``for record in reader`` gives ``Record`` objects (frame number, time,
  link type, bytes, comment, byte offset) for tools that show packets;
- ``reader.raw()`` gives bare ``(time_ns, linktype, data)`` tuples for bulk
  passes (the analyzer's columnar pass), skipping the per-record object.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO, NamedTuple

from tcplab.capture import pcap, pcapng
from tcplab.capture.pcap import RawRecord
from tcplab.capture.source import CaptureProblem, ChunkSource, ProblemSink, source_of
from tcplab.errors import InputError


class Record(NamedTuple):
    """One packet record of a capture file.

    ``index`` is the 1-based frame number as Wireshark numbers frames (it
    also gives pcapng custom and systemd-journal blocks a number, so we skip
    those numbers too);
    ``offset`` is the record's byte offset in the (decompressed) file and
    ``data_offset`` that of ``data[0]``, so a problem found inside the frame
    can name its file offset.
    A NamedTuple rather than a frozen dataclass: it is built once per packet
    and a frozen dataclass's ``__init__`` costs 2 µs against 0.45 µs here.
    (The ``index`` field hides ``tuple.index``; nobody searches a record.)
    """

    index: int  # type: ignore[assignment]
    time_ns: int
    linktype: int
    data: bytes
    orig_len: int
    interface: int
    comment: str | None
    offset: int
    data_offset: int

    @property
    def time(self) -> float:
        return self.time_ns / 1e9


class CaptureReader:
    """A streaming reader; use as a context manager and iterate once."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._sink = ProblemSink()
        self._pcapng_state = pcapng.PcapngState()
        self._pcap_linktype: int | None = None
        self.compressed = False
        self.count = 0
        self.format = ""
        self.global_header: pcap.GlobalHeader | None = None
        try:
            if self.path == "-":  # standard input: tcpdump -w - | tcplab packets -
                self._file: BinaryIO = open(0, "rb", closefd=False)  # noqa: SIM115
            else:
                self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open: {exc.strerror or exc}") from None
        self._started = False
        try:
            self._source = self._start()
        except BaseException:
            self.close()
            raise

    def _fail(self, offset: int, message: str) -> InputError:
        return InputError(f"{self.path}: offset {offset}: {message}")

    def _start(self) -> ChunkSource:
        source = source_of(self._file, self._sink)
        self.compressed = source.gzip
        head_buf, _ = source.ensure(pcap.GLOBAL_HEADER_LEN)
        head = head_buf[: pcap.GLOBAL_HEADER_LEN]
        if not head:
            gz = self._sink.problems[0].message if self._sink.problems else "empty file"
            raise self._fail(0, f"{gz}; not a pcap or pcapng file")
        if pcap.sniff(head) is not None:
            self.format = "pcap"
            if len(head) < pcap.GLOBAL_HEADER_LEN:
                raise self._fail(
                    len(head), f"truncated pcap global header ({len(head)} of 24 bytes)"
                )
            header = pcap.GlobalHeader.parse(head)
            self.global_header = header
            self._pcap_linktype = header.linktype
            source.advance(pcap.GLOBAL_HEADER_LEN)
            return source
        if head[:4] == pcapng.SHB_TYPE_BYTES:
            self.format = "pcapng"
            if len(head) < 12:
                raise self._fail(
                    len(head), f"truncated pcapng section header ({len(head)} of 12 bytes)"
                )
            if pcapng.sniff(head) is None:
                magic = int.from_bytes(head[8:12], "big")
                raise self._fail(8, f"pcapng section header has bad byte-order magic 0x{magic:08x}")
            return source
        raise self._fail(0, f"not a pcap or pcapng file (magic 0x{head[:4].hex()})")

    # -- what the reader found ------------------------------------------------

    @property
    def problems(self) -> list[CaptureProblem]:
        return self._sink.problems

    @property
    def problems_dropped(self) -> int:
        """Problems beyond the kept ones (only counted, to bound memory)."""
        return self._sink.dropped

    @property
    def skipped(self) -> int:
        """Malformed records (or blocks) that were not yielded."""
        return self._sink.skipped

    @property
    def linktypes(self) -> list[int]:
        """Link types of the file (pcap: one; pcapng: one per interface so far)."""
        if self._pcap_linktype is not None:
            return [self._pcap_linktype]
        return list(self._pcapng_state.linktypes)

    # -- iteration ---------------------------------------------------------------

    def _begin(self) -> None:
        if self._started:
            raise RuntimeError("a CaptureReader can be iterated only once")
        self._started = True

    def _records(self) -> Iterator[RawRecord]:
        if self.global_header is not None:
            return pcap.read_records(self._source, self.global_header, self._sink)
        return pcapng.read_records(self._source, self._sink, self._pcapng_state)

    def __iter__(self) -> Iterator[Record]:
        self._begin()
        state = self._pcapng_state
        for count, raw in enumerate(self._records(), start=1):
            self.count = count
            yield Record(count + state.non_packet_frames, *raw)

    def raw(self) -> Iterator[tuple[int, int, bytes]]:
        """``(time_ns, linktype, data)`` per record: the cheap bulk path.

        ``count`` is not maintained here (it would cost a third of the loop).
        """
        self._begin()
        if self.global_header is not None:
            return pcap.read_raw(self._source, self.global_header, self._sink)
        return ((r[0], r[1], r[2]) for r in self._records())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_capture(path: str | os.PathLike[str]) -> CaptureReader:
    """Open a pcap/pcapng (optionally .gz) file; raises ``InputError`` if it is neither."""
    return CaptureReader(path)


def iter_raw(path: str | os.PathLike[str]) -> Iterator[tuple[int, int, bytes]]:
    """``(time_ns, linktype, data)`` for every readable record of ``path``.

    Problems are not visible through this shortcut; use ``open_capture(path).raw()``
    when they matter.
    """
    with open_capture(path) as reader:
        yield from reader.raw()
