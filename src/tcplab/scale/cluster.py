"""``tcplab analyze --dask local:N | tcp://HOST:PORT``: the distributed run.

Theory of operation (docs/scale.md), in three stages of Dask tasks:

1. **read** (one task per byte range of a file, ``tcplab.scale.ranges``):
   resynchronise, read, decode, and split the segments' rows into ``P``
   pieces by a hash of the unordered 5-tuple, written to one file of the
   range in the run's scratch directory; only where each piece is and the
   range's metadata come back (a worker keeps no rows between tasks).
   The planner then checks every range's resync point against its
   predecessor's ``stop``, reads mismatched pairs again as one range,
   drops what follows lost framing (as the single-process reader stops
   there), and gives every range its first frame number and the largest
   time before it.
2. **analyse** (one task per partition): the partition's pieces of every
   range, read back a buffer at a time, given global frame numbers and
   order keys (``tcplab.scale.captureset``), merged by key, run through
   the engine (``tcplab.scale.engine``).  What leaves the engine goes to
   files as it leaves: conn.log rows as sorted runs, each new
   connection's first-packet key, and (for JSON and Parquet) the records.
   A connection never straddles two partitions, because the partition is
   its hash; and because the order of a subset of flows is the subset
   sorted by the same key, each partition sees its flows exactly as the
   single-process run does.
3. **write** (one task per partition, for JSON and Parquet only): the
   records read back a batch at a time, given connection numbers ranked by
   the client from every partition's first-packet keys (so the
   single-process numbers); Parquet row groups and sorted runs of JSON
   lines.

The client merges the sorted runs: conn.log in start order, JSON in
connection order.

The scratch directory is removed when the run ends, however it ends.
A ``LocalCluster`` listens on 127.0.0.1 only and is closed afterwards.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any

import numpy as np

from tcplab.analyze.frames import ReadReport
from tcplab.analyze.rowruns import LOG_ORDER, RunRef, Runs, row_span
from tcplab.analyze.zeek import DEFAULT_LIKELY_SERVER_PORTS
from tcplab.errors import InputError
from tcplab.scale.captureset import FRAME_BITS, CaptureSet, resolve
from tcplab.scale.columns import Fed, Framed, analysed, merge
from tcplab.scale.engine import EngineOptions
from tcplab.scale.ranges import (
    WHOLE_FILE,
    FileLayout,
    PieceReader,
    PieceRef,
    RangeMeta,
    RangeSpec,
    global_problem,
    layout,
    read_range,
)

RANGE_BYTES = 128 << 20  # bytes of capture per read task (fewer, larger tasks: less scheduling)
PARTITIONS_PER_WORKER = 2  # flow-hash partitions per worker (balance; memory does not need more)
RUN_BYTES = 8 << 20  # conn.log rows or JSON lines a task holds before a sorted run spills


@dataclass(frozen=True, slots=True)
class Plan:
    """The ranges accepted after the chain check, with what stage 2 needs of each."""

    layouts: dict[int, FileLayout]
    accepted: list[RangeMeta]
    frame_base: dict[tuple[int, int], int]  # (file, range) -> frames before it in its file
    carry_latest: dict[tuple[int, int], int]  # (file, range) -> largest time before it


@dataclass(slots=True)
class Result:
    """What a distributed run produced (conn.log and JSON as text, unless
    they were written to ``run``'s ``out``)."""

    conn_log: str = ""
    json: str = ""
    problems: list[str] = field(default_factory=list)
    connections: int = 0
    partitions: int = 0
    packets: int = 0
    read_seconds: float = 0.0  # stage 1, CPU seconds summed over tasks
    shuffle_bytes: int = 0  # bytes of rows stage 1 hands to stage 2
    partition_seconds: list[float] = field(default_factory=list)  # stage 2 CPU s, per partition
    write_seconds: float = 0.0  # stage 3, CPU seconds summed over tasks
    worker_peak_rss: int = 0  # the largest worker's peak RSS (VmHWM) after its last task
    worker_cpu: dict[int, float] = field(default_factory=dict)  # worker pid -> task CPU seconds

    def charge(self, worker: int, seconds: float) -> None:
        """A task's CPU seconds, to the worker that ran it."""
        self.worker_cpu[worker] = self.worker_cpu.get(worker, 0.0) + seconds


# JSON lines are merged by connection number (conn.log rows as the
# single-process capture set orders them: rowruns.LOG_ORDER).
JSON_KEY = np.dtype([("number", "i8"), ("length", "i8")])
JSON_ORDER = ("number",)


# -- stage 2 and 3 (run on the workers) ---------------------------------------------------


@dataclass(slots=True)
class Partition:
    """Stage 2's output: where its results are, and what it cost."""

    spool: str | None  # the records stage 3 needs, pickled a batch at a time (None: none)
    keys: str  # its connections' (first frame, key time) pairs, int64, in number order
    connections: int
    log_runs: list[RunRef]  # conn.log rows, sorted runs (rowruns.LOG_ORDER)
    log_span: tuple[float, float] | None  # their smallest start and largest last time
    packets: int
    seconds: float  # CPU seconds
    peak_rss: int  # bytes, of the worker process so far
    worker: int  # its pid


def analyse_partition(
    pieces: list[tuple[int, int, PieceRef]],
    frame_base: dict[tuple[int, int], int],
    carry_latest: dict[tuple[int, int], int],
    options: EngineOptions,
    prefix: str,
    want_log: bool,
    want_records: bool,
) -> Partition:
    """Stage 2: one flow-hash partition, ordered by key, through the engine.

    ``pieces`` are ``(file, range, piece)`` of every range: where stage 1
    wrote the partition's rows of the range (``ranges.PieceRef``).  A file's
    pieces in range order are in key order, so the partition is a k-way
    merge of its files (``columns.merge``), read back and fed to the engine
    a buffer at a time with each row's global frame and order-key time; a
    file joins the merge at its first row's key, so a ring's files, which
    do not overlap in time, are read one after another with one buffer.
    Connections leave the engine as they end, so its state is the
    partition's open connections, and everything they leave goes to files
    named ``prefix.*`` as they leave: conn.log rows (formatted by the
    engine) as sorted runs of at most ``RUN_BYTES``, the
    records stage 3 needs (``want_records``: JSON, Parquet), and each new
    connection's first-packet key (the client numbers connections by them)."""
    started = time.process_time()
    by_file: dict[int, list[tuple[int, PieceRef]]] = {}
    for file_id, range_id, ref in pieces:
        if ref.rows:
            by_file.setdefault(file_id, []).append((range_id, ref))
    packets = 0

    for file_pieces in by_file.values():
        file_pieces.sort(key=lambda p: p[0])

    def file_chunks(file_id: int) -> Iterator[Framed]:
        reader = PieceReader()  # (its buffers: made when the merge starts the file)
        for range_id, ref in by_file[file_id]:
            base = frame_base[(file_id, range_id)] + (file_id << FRAME_BITS)
            carry = carry_latest[(file_id, range_id)]
            yield from reader.chunks(ref, base, carry)

    def first_key(file_id: int) -> int:
        range_id, ref = by_file[file_id][0]
        return max(ref.first_key, carry_latest[(file_id, range_id)])

    def ordered() -> Iterator[Fed]:
        nonlocal packets
        files = sorted(by_file)
        streams = [(f, file_chunks(f)) for f in files]
        for rows, keys, frames in merge(streams, [first_key(f) for f in files]):
            packets += len(frames)
            yield rows, frames, keys

    from tcplab.analyze.engine import zeek_row_key, zeek_row_keys_of

    log = Runs(zeek_row_key(), LOG_ORDER, RUN_BYTES, prefix + ".log")
    span: tuple[float, float] | None = None
    connections = 0
    spool = prefix + ".records" if want_records else None
    engine_options = replace(options.engine(), conn_log_rows=True, connection_records=want_records)
    # (fails once the run has removed its scratch directory)
    with open(prefix + ".keys", "wb") as keys_out, open(spool or os.devnull, "wb") as out:
        for batch in analysed(ordered(), engine_options, with_keys=True):
            assert batch.order_keys is not None
            keys_out.write(batch.order_keys)
            connections += len(batch.order_keys) // 16
            if want_log and batch.zeek_rows and batch.zeek_row_keys is not None:
                log.add(batch.zeek_rows, zeek_row_keys_of(batch.zeek_row_keys))
                first, last = row_span(batch.zeek_row_keys)
                span = (first, last) if span is None else (min(span[0], first), max(span[1], last))
            if spool is not None and (batch.connections or batch.packets):
                pickle.dump((batch.connections, batch.packets), out, pickle.HIGHEST_PROTOCOL)
    log.spill()
    return Partition(
        spool,
        prefix + ".keys",
        connections,
        log.refs,
        span,
        packets,
        time.process_time() - started,
        peak_rss(),
        os.getpid(),
    )


def peak_rss() -> int:
    """This process's peak RSS (VmHWM: of this program, unlike ru_maxrss, which
    keeps the high-water mark of the process it was forked from across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(slots=True)
class Written:
    """Stage 3's output for one partition."""

    json_runs: list[RunRef]  # JSON lines, sorted runs by number
    seconds: float  # CPU seconds
    peak_rss: int  # bytes, of the worker process so far
    worker: int  # its pid


def write_partition(
    part: Partition,
    numbers_path: str,
    index: int,
    parquet: str | None,
    packets: bool,
    file_names: Sequence[str],
    want_json: bool,
) -> Written:
    """Stage 3: the partition's records read back from its spool a batch at
    a time, given their connection numbers (``numbers_path``: int64s, indexed
    by the engine's number), out as Parquet row groups and sorted runs of
    JSON lines."""
    from tcplab.analyze.core import connection_of, packet_of
    from tcplab.analyze.output import json_lines

    started = time.process_time()
    numbers: Any = np.zeros(0, np.int64)
    if part.connections:  # (mapped: pages of it, not the partition's, in memory)
        numbers = np.memmap(numbers_path, np.int64, mode="r")
    json_out = Runs(JSON_KEY, JSON_ORDER, RUN_BYTES, f"{part.keys}.json")
    tables: list[Any] = []
    if parquet is not None:
        from tcplab.scale.tables import PartWriter, connections_schema, packets_schema

        tables.append(PartWriter(parquet, "connections", index, connections_schema()))
        if packets:
            tables.append(PartWriter(parquet, "packets", index, packets_schema()))
    with open(part.spool or os.devnull, "rb") as f:
        while True:
            try:
                conns_t, packets_t = pickle.load(f)
            except EOFError:
                break
            conns = [connection_of(t) for t in conns_t]
            nums = numbers[[t[0] for t in conns_t]].tolist()
            if tables:
                from tcplab.scale.tables import connections_table, packets_table

                tables[0].add(connections_table(conns, nums))
                if packets and packets_t:
                    objects = [packet_of(t) for t in packets_t]
                    streams = {p.stream for p in objects}
                    by_stream = {s: int(numbers[s]) for s in streams}
                    tables[1].add(packets_table(objects, by_stream, file_names))
            if want_json and conns:
                for c, n in zip(conns, nums, strict=True):
                    c.number = n
                lines = [json_lines([c]).encode() for c in conns]
                keys = np.empty(len(lines), JSON_KEY)
                keys["number"] = nums
                keys["length"] = [len(line) for line in lines]
                json_out.add(b"".join(lines), keys)
    for table in tables:
        table.close()
    json_out.spill()
    return Written(json_out.refs, time.process_time() - started, peak_rss(), os.getpid())


# -- the planner (runs on the client) -----------------------------------------------------


def plan_ranges(lays: Sequence[FileLayout], range_bytes: int) -> list[tuple[FileLayout, RangeSpec]]:
    out: list[tuple[FileLayout, RangeSpec]] = []
    for lay in lays:
        if lay.kind == "gzip":
            out.append((lay, RangeSpec(lay.file_id, 0, 0, WHOLE_FILE, exact=True)))
            continue
        starts = list(range(lay.data_start, max(lay.size, lay.data_start + 1), range_bytes))
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else lay.size + 1
            out.append((lay, RangeSpec(lay.file_id, i, start, end, exact=i == 0)))
    return out


def check_chain(
    metas: list[RangeMeta],
    reread: Callable[[RangeSpec], RangeMeta],
) -> list[RangeMeta]:
    """The ranges of one file that the single-process reader would read.

    Walks the ranges in file order: a range whose resync point is its
    predecessor's ``stop`` is accepted; one that disagrees is read again
    from that ``stop``; after a predecessor that met a new section (SHB or
    IDB) the two are read again as one range from the predecessor's
    trusted start.  After lost framing nothing more of the file is read.
    """
    accepted: list[RangeMeta] = []
    for meta in metas:
        if not accepted:
            accepted.append(meta)  # the first range starts at the first record, exactly
            continue
        last = accepted[-1]
        if last.lost or last.stop is None:
            break  # the file ended, or its framing was lost, in the last range
        fid = last.spec.file_id
        if last.section_changed:
            # A new SHB or IDB: this range's carried head may be wrong; read on
            # from the last range's trusted start instead.
            accepted[-1] = reread(
                RangeSpec(fid, last.spec.range_id, last.first or 0, meta.spec.end, True)
            )
            continue
        if last.stop >= meta.spec.end:
            continue  # no record starts here (one record is longer than the range)
        if meta.first != last.stop:
            meta = reread(RangeSpec(fid, meta.spec.range_id, last.stop, meta.spec.end, True))
        accepted.append(meta)
    return accepted


def _read_task(
    lay: FileLayout, spec: RangeSpec, partitions: int, options: EngineOptions, scratch: str
) -> tuple[RangeMeta, list[PieceRef]]:
    return read_range(lay, spec, partitions, options, scratch)


def run(
    client: Any,
    inputs: Sequence[str],
    options: EngineOptions,
    *,
    parquet: str | None = None,
    packets: bool = False,
    want_log: bool = True,
    want_json: bool = False,
    partitions: int | None = None,
    range_bytes: int = RANGE_BYTES,
    progress: Callable[[int, int], None] | None = None,
    scratch: str | None = None,
    out: IO[str] | None = None,
) -> Result:
    """Analyse ``inputs`` as one capture on ``client``'s cluster.

    The shuffle goes through a new directory in ``scratch`` (by default
    ``default_scratch``'s), which every worker must reach at the same path;
    it is removed when the run ends, however it ends.  conn.log or the JSON
    lines are written to ``out`` as they are merged, or kept in the result
    without it."""
    problems: list[str] = []
    capture = resolve(inputs, problems)
    try:
        base = scratch if scratch is not None else default_scratch(capture)
        work = tempfile.mkdtemp(prefix="tcplab-scratch-", dir=base)
    except OSError as exc:
        raise InputError(f"--scratch {scratch}: {exc.strerror or exc}") from None
    submitted: list[Any] = []

    def submit(fn: Callable[..., Any], *args: Any) -> Any:
        fut = client.submit(fn, *args, pure=False)
        submitted.append(fut)
        return fut

    try:
        return _run(
            client,
            capture,
            problems,
            options,
            parquet,
            packets,
            want_log,
            want_json,
            partitions,
            range_bytes,
            progress,
            work,
            submit,
            out,
        )
    finally:
        # Tasks still queued must not start: cancel them.  One still running
        # may create a file while the directory is removed (rmdir then fails:
        # try again); once it is gone no task can write there (none makes
        # directories), and a file open in it is freed when it is closed.
        if submitted:
            with contextlib.suppress(Exception):
                client.cancel(submitted)
        for _attempt in range(100):
            shutil.rmtree(work, ignore_errors=True)
            if not os.path.exists(work):
                break
            time.sleep(0.1)


SHUFFLE_SHARE = 0.4  # scratch bytes per byte of capture: the packed rows take 0.07-0.09
# (synthetic, peer traces), up to 0.75 for a capture of bare ACKs


def default_scratch(capture: CaptureSet) -> str | None:
    """Where the scratch directory goes without ``--scratch``: ``/dev/shm``
    when it is a memory file system with room for the shuffle, else the
    system's temporary directory (None; ``$TMPDIR`` when set).  The shuffle
    passes through the page cache either way, but writing it to a disk file
    system costs far more CPU: on ext4 here 2.4 s of system time per GB,
    against 0.4 s on tmpfs (docs/scale.md)."""
    if os.environ.get("TMPDIR") or not _is_tmpfs("/dev/shm"):
        return None
    size = 0
    for name in capture.files:
        with contextlib.suppress(OSError):
            size += os.stat(name.removeprefix("file://")).st_size
    try:
        fs = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if fs.f_bavail * fs.f_frsize > SHUFFLE_SHARE * size else None


def _is_tmpfs(path: str) -> bool:
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split()[1:3] == [path, "tmpfs"] for line in f)
    except OSError:
        return False


def _run(
    client: Any,
    capture: CaptureSet,
    problems: list[str],
    options: EngineOptions,
    parquet: str | None,
    packets: bool,
    want_log: bool,
    want_json: bool,
    partitions: int | None,
    range_bytes: int,
    progress: Callable[[int, int], None] | None,
    work: str,
    submit: Callable[..., Any],
    out: IO[str] | None,
) -> Result:
    import distributed

    as_completed: Any = distributed.as_completed

    workers = max(1, len(client.scheduler_info().get("workers", {})))
    # Layouts: read on the workers too (the files must be where the workers are).
    lay_futures = [submit(_layout, f, i) for i, f in enumerate(capture.files)]
    lays: list[FileLayout] = []
    for fut in lay_futures:
        lay = fut.result()
        if isinstance(lay, str):
            problems.append(lay)
        else:
            lays.append(lay)
    if not lays:
        raise InputError(problems[0])
    specs = plan_ranges(lays, range_bytes)
    total = sum(lay.size for lay in lays)
    # Enough partitions to keep every worker busy.  A partition's size does
    # not bound a worker's memory (its open connections and a batch do), and
    # every range is cut into one piece per partition, so no more than that.
    parts = partitions or PARTITIONS_PER_WORKER * workers
    # A read task's result is small (its metadata and where its pieces are),
    # so the client holds them all and hands each partition its pieces.
    pieces_of: dict[tuple[int, int], list[PieceRef]] = {}
    metas: dict[tuple[int, int], RangeMeta] = {}
    done_bytes = 0
    reads = [submit(_read_task, lay, spec, parts, options, work) for lay, spec in specs]
    for fut in as_completed(reads):
        meta, pieces = fut.result()
        metas[(meta.spec.file_id, meta.spec.range_id)] = meta
        pieces_of[(meta.spec.file_id, meta.spec.range_id)] = pieces
        done_bytes += min(meta.spec.end, total) - meta.spec.start
        if progress is not None:
            progress(done_bytes, total)
    layouts = {lay.file_id: lay for lay in lays}

    accepted: list[RangeMeta] = []
    for lay in lays:
        file_metas = [metas[(lay.file_id, s.range_id)] for l2, s in specs if l2 is lay]

        def reread(spec: RangeSpec, lay: FileLayout = lay) -> RangeMeta:
            meta, pieces = submit(_read_task, lay, spec, parts, options, work).result()
            pieces_of[(spec.file_id, spec.range_id)] = pieces
            return meta  # type: ignore[no-any-return]

        accepted += check_chain(file_metas, reread)

    frame_base: dict[tuple[int, int], int] = {}
    carry_latest: dict[tuple[int, int], int] = {}
    report = ReadReport()
    for line in problems:
        report.problem(line)
    by_file: dict[int, list[RangeMeta]] = {}
    for meta in accepted:
        by_file.setdefault(meta.spec.file_id, []).append(meta)
    for file_id, file_metas in by_file.items():
        base, latest = 0, -(1 << 63)
        for meta in file_metas:
            key = (file_id, meta.spec.range_id)
            frame_base[key], carry_latest[key] = base, latest
            base += meta.frames
            latest = max(latest, meta.latest)
            for offset, message in meta.problems:
                report.problem(
                    global_problem(layouts[file_id].path, offset, message, frame_base[key])
                )

    # Stage 2: one task per partition, given where that partition's piece of
    # every range is.
    want_records = parquet is not None or want_json
    part_futures = []
    for p in range(parts):
        pieces = [
            (m.spec.file_id, m.spec.range_id, pieces_of[(m.spec.file_id, m.spec.range_id)][p])
            for m in accepted
        ]
        prefix = os.path.join(work, f"part-{p}")
        part_futures.append(
            submit(
                analyse_partition,
                pieces,
                frame_base,
                carry_latest,
                options,
                prefix,
                want_log,
                want_records,
            )
        )
    partitions_out: list[Partition] = client.gather(part_futures)
    result = Result(problems=report.problems, partitions=parts)
    result.connections = sum(p.connections for p in partitions_out)
    result.read_seconds = sum(m.seconds for m in accepted)
    result.shuffle_bytes = sum(m.shuffle_bytes for m in accepted)
    result.packets = sum(p.packets for p in partitions_out)
    result.partition_seconds = [p.seconds for p in partitions_out]
    for meta in accepted:
        result.charge(meta.worker, meta.seconds)
    for part in partitions_out:
        result.charge(part.worker, part.seconds)
    result.worker_peak_rss = max(p.peak_rss for p in partitions_out)

    # Stage 3, for JSON and Parquet: connection numbers are the ranks of the
    # connections' first-packet keys over all partitions (the single-process
    # numbers), handed to each partition's write task as a file.
    written: list[Written] = []
    if want_records:
        if parquet is not None:
            from tcplab.scale.tables import prepare_dataset

            prepare_dataset(parquet, packets)
        numbered = _number(partitions_out)
        names = capture.names
        written = client.gather(
            [
                submit(write_partition, part, numbers, p, parquet, packets, names, want_json)
                for p, (part, numbers) in enumerate(zip(partitions_out, numbered, strict=True))
            ]
        )
        for w in written:
            result.write_seconds += w.seconds
            result.charge(w.worker, w.seconds)
            result.worker_peak_rss = max(result.worker_peak_rss, w.peak_rss)
    # The CLI asks for one of them, written to ``out``; without ``out`` both
    # may be asked for, kept as text.
    if want_json:
        lines = Runs(JSON_KEY, JSON_ORDER)
        lines.refs += [r for w in written for r in w.json_runs]
        result.json = _text(out, lambda sink: _write_lines(lines, sink))
    if want_log and not (want_json and out is not None):
        result.conn_log = _text(out, lambda sink: _write_log(partitions_out, sink))
    return result


def _text(out: IO[str] | None, write: Callable[[IO[str]], None]) -> str:
    """What ``write`` writes: to ``out``, or returned as text without it."""
    if out is not None:
        write(out)
        return ""
    sink = io.StringIO()
    write(sink)
    return sink.getvalue()


def _write_lines(lines: Runs, out: IO[str]) -> None:
    from tcplab.analyze.views import write_bytes

    for chunk in lines.drain():
        write_bytes(out, chunk)
    out.flush()


def _number(partitions: list[Partition]) -> list[str]:
    """Every connection's number, the rank of its first packet's order key
    (key time, then global frame) over all partitions: one file of int64s
    per partition, indexed by the engine's own number there."""
    keys = [np.fromfile(p.keys, np.int64).reshape(-1, 2) for p in partitions]
    every = np.concatenate([np.zeros((0, 2), np.int64), *keys])
    ranks = np.empty(len(every), np.int64)
    ranks[np.lexsort((every[:, 0], every[:, 1]))] = np.arange(len(every))
    paths: list[str] = []
    at = 0
    for part, k in zip(partitions, keys, strict=True):
        paths.append(part.keys + ".numbers")
        ranks[at : at + len(k)].tofile(paths[-1])
        at += len(k)
    return paths


def _write_log(partitions: list[Partition], out: IO[str]) -> None:
    """conn.log as the one-process view writes it (header, rows in start
    order, footer), from every partition's sorted runs and span."""
    from tcplab.analyze.views import ConnLogView, row_spool

    rows = row_spool()
    view = ConnLogView(out, rows=rows)
    for part in partitions:
        rows.refs += part.log_runs
        if part.log_span is not None:
            view.span(*part.log_span)
    view.finish(ReadReport())


def _layout(path: str, file_id: int) -> FileLayout | str:
    try:
        return layout(path, file_id)
    except InputError as exc:
        return str(exc)


# -- the command line ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    workers: int | None  # local:N
    address: str | None  # tcp://HOST:PORT


def parse_spec(text: str) -> ClusterSpec:
    if text.startswith("local:"):
        try:
            n = int(text.removeprefix("local:"))
        except ValueError:
            n = 0
        if n < 1:
            raise InputError(f"--dask {text}: expected local:N with N >= 1 workers")
        return ClusterSpec(n, None)
    if "://" in text:
        return ClusterSpec(None, text)
    raise InputError(f"--dask {text}: expected local:N or a scheduler address tcp://HOST:PORT")


class connect:
    """A ``Client`` on a LocalCluster (127.0.0.1 only, closed on exit) or a scheduler."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.cluster: Any = None
        self.client: Any = None

    def __enter__(self) -> Any:
        import distributed

        local_cluster: Any = distributed.LocalCluster
        new_client: Any = distributed.Client

        try:
            if self.spec.workers is not None:
                self.cluster = local_cluster(
                    n_workers=self.spec.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.CRITICAL,
                )
                self.client = new_client(self.cluster)
            else:
                self.client = new_client(self.spec.address, timeout=30)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.client

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def run_cli(
    files: tuple[str, ...],
    dask: str,
    parquet: str | None,
    parquet_packets: bool,
    conn_log: bool,
    as_json: bool,
    bare: bool,
    ignore_checksums: bool,
    scratch: str | None = None,
) -> None:
    """``tcplab analyze --dask ...``: conn.log, JSON and/or Parquet; the
    shuffle through ``scratch`` (docs/scale.md)."""
    import click

    if not (conn_log or as_json or parquet):
        raise InputError("--dask writes --conn-log, --json or --parquet DIR: choose at least one")
    if conn_log and as_json:
        raise InputError("choose one of --json, --conn-log")
    spec = parse_spec(dask)
    if spec.address is not None and scratch is None:
        raise InputError(
            f"--dask {dask}: give --scratch DIR, a directory every worker reaches at the same path"
        )
    ports = frozenset() if bare else DEFAULT_LIKELY_SERVER_PORTS
    options = EngineOptions(ports, ignore_checksums, keep_packets=parquet_packets)
    try:
        with connect(spec) as client:
            click.echo(f"tcplab: dask dashboard: {client.dashboard_link}", err=True)
            bar = _bar() if sys.stderr.isatty() else None
            try:
                result = run(
                    client,
                    files,
                    options,
                    parquet=parquet,
                    packets=parquet_packets,
                    want_log=conn_log,
                    want_json=as_json,
                    progress=bar.update if bar is not None else None,
                    scratch=scratch,
                    out=sys.stdout if conn_log or as_json else None,
                )
            finally:
                if bar is not None:
                    bar.close()
    except BrokenPipeError:
        raise  # the reader went away: the command ends quietly (tcplab.cli)
    except OSError as exc:
        raise InputError(f"--dask {dask}: {exc}") from None
    sys.stdout.flush()
    for line in result.problems:
        click.echo(f"tcplab: {line}", err=True)


class _bar:
    """A progress bar over the bytes read (stage 1) on a terminal."""

    def __init__(self) -> None:
        from rich.progress import Progress

        self.progress = Progress(transient=True)
        self.progress.start()
        self.task = self.progress.add_task("reading", total=None)

    def update(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def close(self) -> None:
        self.progress.stop()
