"""Packets as columns: the engine's C decoder without the analysis, and back.

Theory of operation (docs/scale.md).  The engine (``_engine.c``) reads and
decodes a capture in C at about a million packets per CPU second; what the
analysis needs of a packet is its ``Pkt`` struct, and a ``Row`` holds the
same fields in 136 bytes instead of 184.  Here the engine runs in
*decode-only* mode (``Engine.decode_only``): its reader and fast decoder
collect one ``Row`` per TCP packet (``columns()``), the frames the fast
decoder leaves to Python are decoded by ``tcplab.wire`` as in a normal run
and enter the same rows (``packet``), and where the file's structure is
unusual the Python reader takes over as in a normal run.  The rows are a
NumPy structured array whose dtype is the C struct's layout (``ROW``, read
from the extension itself, so the two cannot drift apart), and an analysing
engine takes them back in one call per batch (``feed_columns``).

Between the two a capture set is merged by time (``merged_rows``) and a
distributed run partitions rows by the flow hash and ships them between
processes (``tcplab.scale.cluster``), with NumPy doing the per-packet work
(order keys, sorting, partitioning).  A row's ``index`` is its frame: inside
one reader the reader's frame number, in a capture set ``file << 32 |
frame`` (``tcplab.scale.captureset.encode_frame``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from tcplab.analyze import _engine, engine
from tcplab.analyze.frames import ReadReport, Segment
from tcplab.capture.source import ProblemSink
from tcplab.errors import InputError
from tcplab.scale.captureset import FRAME_BITS, CaptureSet, is_url
from tcplab.scale.engine import _Slow

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from tcplab.scale.engine import EngineOptions


def _row_dtype() -> np.dtype[Any]:
    """The C struct's layout, every padding byte a named field (NumPy drops
    unnamed padding when it concatenates)."""
    size, fields = _engine.packet_layout()
    names: list[str] = []
    formats: list[Any] = []
    offsets: list[int] = []
    at = 0
    for name, offset, code, n in [*fields, ("", size, "", 0)]:
        if offset > at:
            names.append(f"_pad{at}")
            formats.append(("u1", offset - at))
            offsets.append(at)
        if not name:
            break
        names.append(name)
        formats.append(code if n == 1 else (code, n))
        offsets.append(offset)
        at = offset + np.dtype(code).itemsize * n
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


ROW: Final = _row_dtype()  # one decoded packet: _engine.c's Row
BATCH: Final = 65536  # rows per feed_columns call (records are taken between calls)
CHUNK: Final = engine.CHUNK


def rows_of(raw: bytes | memoryview) -> NDArray[Any]:
    """Rows from the bytes ``columns()`` returns (read-only, no copy)."""
    return np.frombuffer(raw, dtype=ROW)


def empty_rows() -> NDArray[Any]:
    return np.zeros(0, dtype=ROW)


def decoder(options: EngineOptions) -> Any:
    """An engine for decode-only mode (decode_only() is still to be called):
    what the decoder depends on is the checksum rule."""
    return engine.Engine(options.engine(evict=False)).engine


@dataclass(slots=True)
class Decode:
    """One decode-only pass: rows out as they are decoded; how it ended."""

    eng: Any
    slow: _Slow
    end: str = "eof"  # "eof" | "stop" (the range's end) | "takeover" (tcplab.capture's)
    offset: int = -1  # where it stopped or handed over
    section_at: int = -1  # pcapng: the first SHB/IDB past the carried head

    def rows(self) -> NDArray[Any]:
        raw, section_at = self.eng.columns()
        if section_at >= 0 and self.section_at < 0:
            self.section_at = int(section_at)
        return rows_of(raw)

    def run(self, read: Callable[[], bytes], prefix: bytes = b"") -> Iterator[NDArray[Any]]:
        """Feed ``prefix`` then what ``read`` returns until it returns nothing."""
        eng, slow = self.eng, self.slow
        chunk = prefix or read()
        while True:
            final = not chunk
            result = eng.feed(chunk, final)
            while result is not None:
                if result[0] in ("takeover", "stop"):
                    self.end, self.offset = str(result[0]), int(result[1])
                    yield self.rows()
                    return
                slow.frame(engine._record(result), True)
                result = eng.feed(b"", final)
            yield self.rows()
            if final:
                return
            chunk = read()

    def run_fd(self, fd: int, prefix: bytes = b"") -> Iterator[NDArray[Any]]:
        """Feed ``prefix``, then the engine reads ``fd`` itself (no copy through Python)."""
        eng, slow = self.eng, self.slow
        result = eng.feed(prefix) if prefix else None
        while True:
            if result is None:
                result = eng.feed_fd(fd)
            while result is not None and result[0] not in ("eof", "takeover", "stop"):
                slow.frame(engine._record(result), True)
                result = eng.feed(b"")
            if result is not None and result[0] in ("takeover", "stop"):
                self.end, self.offset = str(result[0]), int(result[1])
            yield self.rows()
            if result is not None:
                return


# -- a capture set in one process ----------------------------------------------------


def file_rows(
    file_id: int,
    path: str,
    options: EngineOptions,
    report: ReadReport,
    progress: Callable[[int], None] | None = None,
) -> Iterator[NDArray[Any]]:
    """Every TCP packet of one file as rows (frame ``file << 32 | frame``), in
    file order, through the C reader; problems into ``report`` as the
    single-file run words them.  ``InputError`` when it is no capture at all."""
    if is_url(path):
        from tcplab.scale.ranges import WHOLE_FILE, RangeSpec, decode_range, layout

        lay = layout(path, file_id)
        meta, chunks = decode_range(
            lay, RangeSpec(file_id, 0, lay.data_start, WHOLE_FILE, exact=True), options
        )
        _count(report, meta.records, meta.tcp, meta.not_tcp, meta.undecodable)
        for offset, message in meta.problems:
            report.problem(f"{path}: offset {offset}: {message}")
        for rows, _latest in chunks:
            if file_id:
                rows = rows.copy()
                rows["index"] += file_id << FRAME_BITS
            yield rows
        return
    eng = decoder(options)
    eng.decode_only(-1, 0, 0, file_id << FRAME_BITS)
    d = Decode(eng, _Slow(eng, path, options))
    sink = ProblemSink()
    fd = engine._plain_file(path)
    if fd is not None:
        try:
            done = 0
            for rows in d.run_fd(fd):
                if progress is not None:
                    now = int(eng.stats()["bytes_read"])
                    progress(now - done)
                    done = now
                yield rows
        finally:
            os.close(fd)
    else:
        raw, stream = engine._open(path, sink)

        def read() -> bytes:
            chunk: bytes = stream._read_more(CHUNK)
            if progress is not None:
                progress(len(chunk))
            return chunk

        with raw:
            yield from d.run(read)
    if d.end == "takeover" and not sink.problems:
        for _batch in engine._take_over(eng, d.slow, path, d.offset):
            yield d.rows()
        yield d.rows()
    stats = eng.stats()
    got = d.slow.finish([])
    gz = [problem.line(path) for problem in sink.problems]
    got.problems[:] = [p for p in got.problems if "gzip data" not in p and p not in gz] + gz
    _count(report, int(stats["frames"]), int(stats["tcp"]), int(stats["not_tcp"]), 0)
    report.undecodable += d.slow.undecodable
    for line in got.problems:
        report.problem(line)


def _count(report: ReadReport, frames: int, tcp: int, not_tcp: int, undecodable: int) -> None:
    report.frames += frames
    report.tcp += tcp
    report.not_tcp += not_tcp
    report.undecodable += undecodable


Keyed = tuple["NDArray[Any]", "NDArray[np.int64]"]  # rows and their order-key times
# rows, their order-key times and their frames (int64: what the engine reports)
Framed = tuple["NDArray[Any]", "NDArray[np.int64]", "NDArray[np.int64]"]
# what the engine is fed: rows and their frames (and, in a distributed run,
# their order-key times)
Fed = (
    tuple["NDArray[Any]", "NDArray[np.int64]"]
    | tuple["NDArray[Any]", "NDArray[np.int64]", "NDArray[np.int64]"]
)


def keyed(chunks: Iterable[NDArray[Any]]) -> Iterator[Keyed]:
    """One file's rows with their order-key times: the largest time so far."""
    latest = -(1 << 63)
    for rows in chunks:
        if len(rows):
            keys = np.maximum.accumulate(np.maximum(rows["t"], latest))
            latest = int(keys[-1])
            yield rows, keys


@dataclass(slots=True)
class _Run:
    """One file's rows in the merge: a buffer, its order-key times and frames."""

    file_id: int
    chunks: Iterator[Framed]
    rows: NDArray[Any] = field(default_factory=empty_rows)
    keys: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    frames: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    done: bool = False

    def fill(self) -> None:
        while not len(self.rows) and not self.done:
            got = next(self.chunks, None)
            if got is None:
                self.done = True
            else:
                self.rows, self.keys, self.frames = got

    def upto(self, bound: tuple[int, int] | None) -> int:
        """How many buffered rows come before ``bound`` (time, file) or are it:
        a prefix, since a file's rows are in key order."""
        if bound is None:
            return len(self.rows)
        t, f = bound
        if self.file_id == f:  # the bound is this file's own last row
            return len(self.rows)
        if self.file_id < f:
            return int(np.searchsorted(self.keys, t, side="right"))
        return int(np.searchsorted(self.keys, t, side="left"))

    def take(self, n: int) -> Framed:
        out = self.rows[:n], self.keys[:n], self.frames[:n]
        self.rows, self.keys, self.frames = self.rows[n:], self.keys[n:], self.frames[n:]
        return out


def merge(
    streams: list[tuple[int, Iterator[Framed]]], first_keys: Sequence[int] | None = None
) -> Iterator[Framed]:
    """K-way merge of files' rows by order key ``(t, file, frame)``
    (``tcplab.scale.captureset``), a buffer at a time: everything up to the
    smallest last key of the files still reading is in order.  Inside a file
    the rows are in key order already, so ties go by file, then by position.

    With ``first_keys`` (each stream's first key: its keys never go below
    it), a stream starts only when the merge reaches that key, so files that
    do not overlap in time hold one buffer between them, not one each (a
    distributed run's partition of a ring of many files)."""
    runs = [_Run(file_id, chunks) for file_id, chunks in streams]
    waiting: list[tuple[int, int, _Run]] = []  # by (first key, file), the next last
    if first_keys is not None:
        waiting = [(k, r.file_id, r) for k, r in zip(first_keys, runs, strict=True)]
        waiting.sort(key=lambda w: (w[0], w[1]), reverse=True)
        runs = []
    while True:
        for r in runs:
            r.fill()
        runs = [r for r in runs if len(r.rows) or not r.done]
        reading = [(int(r.keys[-1]), r.file_id) for r in runs if not r.done]
        if waiting:
            key, file_id, run = waiting[-1]
            if not reading or (key, file_id) <= min(reading):
                waiting.pop()
                runs.append(run)
                continue
            reading.append((key, file_id))  # its rows come at or after its first key
        if not runs:
            return
        bound = min(reading) if reading else None
        parts: list[Framed] = []
        files = []
        for r in runs:
            n = r.upto(bound)
            if n:
                parts.append(r.take(n))
                files.append(r.file_id)
        if len(parts) == 1:
            yield parts[0]
            continue
        rows, keys, frames = (np.concatenate([p[i] for p in parts]) for i in range(3))
        file_of = np.repeat(np.array(files, np.int64), [len(p[0]) for p in parts])
        order = np.lexsort((file_of, keys))  # stable: a file's own order kept
        yield rows[order], keys[order], frames[order]


def merged_rows(
    capture: CaptureSet,
    options: EngineOptions,
    report: ReadReport,
    unreadable: list[str],
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[NDArray[Any], NDArray[np.int64]]]:
    """Every TCP packet of the set as rows, with their frames, in order-key order.  A file that is
    not a capture at all is one line in ``unreadable``."""

    def guarded(file_id: int, path: str) -> Iterator[NDArray[Any]]:
        try:
            yield from file_rows(file_id, path, options, report, progress)
        except InputError as exc:
            unreadable.append(str(exc))

    def framed(file_id: int, path: str) -> Iterator[Framed]:
        for rows, keys in keyed(guarded(file_id, path)):
            yield rows, keys, np.ascontiguousarray(rows["index"])

    streams = [(i, framed(i, path)) for i, path in enumerate(capture.files)]
    for rows, _keys, frames in merge(streams):
        yield rows, frames


# -- rows through the analysis ------------------------------------------------------


def analysed(
    batches: Iterable[Fed], options: engine.Options, with_keys: bool = False
) -> Iterator[engine.Batch]:
    """Rows (with their frames) in capture order through one analysing
    engine: its records as connections end (the single-file run's
    eviction), then the rest.  ``with_keys`` (a distributed run): the batches
    carry each row's order-key time too, and every Batch the engine's
    ``take_keys()``."""
    run = engine.Engine(options).engine

    def batch(records: tuple[Any, Any, Any]) -> engine.Batch:
        out = engine.take_batch(run, records)
        if with_keys:
            out.order_keys = run.take_keys()
        return out

    for rows, frames, *times in batches:
        for start in range(0, len(rows), BATCH):
            end = start + BATCH
            chunk = np.ascontiguousarray(rows[start:end])
            if times:
                key_times = np.ascontiguousarray(times[0][start:end])
                run.feed_columns(chunk, frames[start:end], key_times)
            else:
                run.feed_columns(chunk, frames[start:end])
            yield batch(run.take())
    # (the tally: with Options.overview the records are only the rows the
    # overview may show, and the counts come with the batch)
    yield batch(run.finish())


def segment_rows(segments: Iterable[Segment], options: EngineOptions) -> NDArray[Any]:
    """Rows of segments another decoder made (``tcplab.analyze.frames``)."""
    eng = decoder(options)
    eng.decode_only()
    for seg in segments:
        engine.feed_segment(eng, seg, options.strict_checksums)
    return rows_of(eng.columns()[0])
