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
   the engine (``tcplab.scale.engine``); finished records go to a spool
   file as they leave the engine.  A connection never straddles two
   partitions, because the partition is its hash; and because the order
   of a subset of flows is the subset sorted by the same key, each
   partition sees its flows exactly as the single-process run does.
3. **write** (one task per partition): the records read back from the
   spool; connection numbers, given by the planner from every
   partition's first-packet keys, so they are the single-process
   numbers; Parquet parts; conn.log rows and JSON lines, which the client
   merges in start order (conn.log) and connection order (JSON).

The scratch directory is removed when the run ends, however it ends.
A ``LocalCluster`` listens on 127.0.0.1 only and is closed afterwards.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import operator
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tcplab.analyze.frames import ReadReport
from tcplab.analyze.zeek import DEFAULT_LIKELY_SERVER_PORTS
from tcplab.errors import InputError
from tcplab.scale.captureset import FRAME_BITS, FRAME_MASK, OrderKey, resolve
from tcplab.scale.columns import Framed, analysed, merge
from tcplab.scale.engine import EngineOptions, Records, records_of
from tcplab.scale.ranges import (
    WHOLE_FILE,
    FileLayout,
    PieceRef,
    RangeMeta,
    RangeSpec,
    global_problem,
    layout,
    piece_chunks,
    read_range,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

RANGE_BYTES = 64 << 20  # bytes of capture per read task
PARTITION_BYTES = 256 << 20  # bytes of capture per flow-hash partition (about)
READ_ROWS = 16384  # rows of a piece read back at a time in stage 2 (3 MB)


@dataclass(frozen=True, slots=True)
class Plan:
    """The ranges accepted after the chain check, with what stage 2 needs of each."""

    layouts: dict[int, FileLayout]
    accepted: list[RangeMeta]
    frame_base: dict[tuple[int, int], int]  # (file, range) -> frames before it in its file
    carry_latest: dict[tuple[int, int], int]  # (file, range) -> largest time before it


@dataclass(slots=True)
class Result:
    """What a distributed run produced (conn.log and JSON as text, on request)."""

    conn_log: str = ""
    json: str = ""
    problems: list[str] = field(default_factory=list)
    connections: int = 0
    partitions: int = 0
    packets: int = 0
    read_seconds: float = 0.0  # stage 1, CPU seconds summed over tasks
    shuffle_bytes: int = 0  # bytes of rows stage 1 hands to stage 2
    partition_seconds: list[float] = field(default_factory=list)  # stage 2 CPU s, per partition
    worker_peak_rss: int = 0  # the largest worker's peak RSS after stage 2
    worker_cpu: dict[int, float] = field(default_factory=dict)  # worker pid -> CPU seconds


# -- stage 2 and 3 (run on the workers) ---------------------------------------------------


def analyse_partition(
    pieces: list[tuple[int, int, PieceRef]],
    frame_base: dict[tuple[int, int], int],
    carry_latest: dict[tuple[int, int], int],
    options: EngineOptions,
    spool: str,
) -> Partition:
    """Stage 2: one flow-hash partition, ordered by key, through the engine.

    ``pieces`` are ``(file, range, piece)`` of every range: where stage 1
    wrote the partition's rows of the range (``ranges.PieceRef``).  A file's
    pieces in range order are in key order, so the partition is a k-way
    merge of its files (``columns.merge``), read back and fed to the engine
    a buffer at a time; a piece gets its global frames (and order-key
    times) as the merge reaches it.  Connections leave the engine as they
    end: its state is the partition's open connections; their records go
    to ``spool`` as they leave (stage 3 reads them back), and the task
    keeps only each one's first-packet key."""
    from tcplab.analyze.engine import FIRST_FRAME

    started = time.process_time()
    by_file: dict[int, list[tuple[int, PieceRef]]] = {}
    for file_id, range_id, ref in pieces:
        if ref[2]:
            by_file.setdefault(file_id, []).append((range_id, ref))
    seen = open(spool + ".keys", "wb")  # noqa: SIM115 (closed before key_of reads it)
    packets = 0

    def file_chunks(file_id: int) -> Iterator[Framed]:
        for range_id, ref in sorted(by_file[file_id], key=lambda p: p[0]):
            base = frame_base[(file_id, range_id)] + (file_id << FRAME_BITS)
            carry = carry_latest[(file_id, range_id)]
            for rows, latest in piece_chunks(ref, READ_ROWS):
                yield rows, np.maximum(latest, carry), rows["index"] + base

    def ordered() -> Iterator[tuple[NDArray[Any], NDArray[np.int64]]]:
        nonlocal packets
        for rows, keys, frames in merge([(f, file_chunks(f)) for f in sorted(by_file)]):
            # Every packet's frame and order-key time go to a file, not to
            # memory: the keys of the connections' first packets are looked
            # up there at the end (``first_keys``).
            seen.write(np.array([len(frames)], np.int64).tobytes())
            seen.write(np.ascontiguousarray(frames, np.int64).tobytes())
            seen.write(np.ascontiguousarray(keys, np.int64).tobytes())
            packets += len(frames)
            yield rows, frames

    # What records_of sorts by, without the records: connections by number,
    # Zeek's by (start, first frame), each with its first frame.
    conn_firsts: list[tuple[int, int]] = []
    zeek_firsts: list[tuple[float, int]] = []
    with open(spool, "wb") as out:  # fails once the run has removed its scratch directory
        for batch in analysed(ordered(), options.engine()):
            conn_firsts += [(t[0], t[FIRST_FRAME]) for t in batch.connections]
            zeek_firsts += [(z[1] / 1e9, z[0]) for z in batch.zeek]  # as zeek_record
            if batch.connections or batch.zeek or batch.packets:
                records = (batch.connections, batch.zeek, batch.packets)
                pickle.dump(records, out, pickle.HIGHEST_PROTOCOL)
    seen.close()
    conn_firsts.sort(key=lambda c: c[0])
    zeek_firsts.sort()
    conn_keys, zeek_keys = first_keys(
        spool + ".keys", [f for _n, f in conn_firsts], [f for _s, f in zeek_firsts]
    )
    os.remove(spool + ".keys")
    seconds = time.process_time() - started
    return Partition(spool, conn_keys, zeek_keys, packets, seconds, peak_rss(), os.getpid())


def first_keys(path: str, *wanted: list[int]) -> list[NDArray[np.int64]]:
    """The order keys of the frames in each of ``wanted``, found in the
    (frames, key times) blocks ``analyse_partition`` wrote to ``path``, read
    a block at a time (every frame is in one block once)."""
    frames = np.unique(np.array([f for w in wanted for f in w], np.int64))
    times = np.zeros(len(frames), np.int64)
    if len(frames):
        with open(path, "rb") as f:
            while head := f.read(8):
                n = int(np.frombuffer(head, np.int64)[0])
                index = np.frombuffer(f.read(8 * n), np.int64)
                keys = np.frombuffer(f.read(8 * n), np.int64)
                at = np.minimum(np.searchsorted(frames, index), len(frames) - 1)
                hit = frames[at] == index
                times[at[hit]] = keys[hit]
    out: list[NDArray[np.int64]] = []
    for w in wanted:
        asked = np.array(w, np.int64)
        got = times[np.searchsorted(frames, asked)] if len(asked) else asked
        out.append(np.stack([got, asked >> FRAME_BITS, asked & FRAME_MASK], axis=1))
    return out


def as_keys(keys: NDArray[np.int64]) -> list[OrderKey]:
    """Order keys kept as an (n, 3) array (24 bytes each) as tuples."""
    return [(t, f, n) for t, f, n in keys.tolist()]


def spooled(part: Partition) -> Records:
    """Stage 2's records of a partition, read back from its spool."""
    from tcplab.analyze.engine import Batch

    def batches() -> Iterator[Batch]:
        with open(part.spool, "rb") as f:
            while True:
                try:
                    conns, zeek, packets = pickle.load(f)
                except EOFError:
                    return
                yield Batch(conns, zeek, packets)

    records = records_of(batches())
    records.conn_keys, records.zeek_keys = as_keys(part.conn_keys), as_keys(part.zeek_keys)
    return records


@dataclass(slots=True)
class Partition:
    """Stage 2's output: where its records are, their keys, and what it cost."""

    spool: str  # the records, pickled a batch at a time (``spooled``)
    conn_keys: NDArray[np.int64]  # each connection's first-packet key, in number order
    zeek_keys: NDArray[np.int64]  # each Zeek connection's, in start order (``as_keys``)
    packets: int
    seconds: float  # CPU seconds
    peak_rss: int  # bytes, of the worker process so far
    worker: int  # its pid


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


def partition_figures(part: Partition) -> tuple[NDArray[np.int64], int, float, int, int]:
    return part.conn_keys, part.packets, part.seconds, part.peak_rss, part.worker


@dataclass(slots=True)
class Written:
    """Stage 3's output for one partition."""

    json: list[tuple[int, str]]  # (connection number, JSON line)
    log_rows: list[tuple[tuple[float, OrderKey], str]]  # ((start, key), conn.log row)
    log_open: tuple[float, str] | None  # this partition's #open line, by its first start
    log_close: tuple[float, str] | None  # its #close line, by its last time
    peak_rss: int = 0  # bytes, of the worker process so far


def write_partition(
    part_out: Partition,
    numbers: list[int],
    part: int,
    parquet: str | None,
    packets: bool,
    file_names: Sequence[str],
    want_json: bool,
    want_log: bool,
) -> Written:
    """Stage 3: connection numbers in, Parquet part and text rows out."""
    from tcplab.analyze.output import conn_log, json_lines

    records = spooled(part_out)
    by_stream = {t[0]: n for t, n in zip(records.connections, numbers, strict=True)}
    conns = []
    if parquet is not None or want_json:
        from tcplab.analyze.core import connection_of

        conns = [connection_of(t) for t in records.connections]
    if parquet is not None:
        from tcplab.analyze.core import packet_of
        from tcplab.scale.tables import connections_table, packets_table, write_part

        write_part(parquet, "connections", part, connections_table(conns, numbers))
        if packets:
            objects = [packet_of(t) for t in records.packets]
            write_part(parquet, "packets", part, packets_table(objects, by_stream, file_names))
    out = Written([], [], None, None)
    if want_json:
        for c, n in zip(conns, numbers, strict=True):
            c.number = n
            out.json.append((n, json_lines([c])))
    zeek = records.zeek
    if want_log and zeek:
        order = sorted(range(len(zeek)), key=lambda i: (zeek[i].start, records.zeek_keys[i]))
        zconns = [zeek[i] for i in order]
        lines = conn_log(zconns).splitlines()
        header = [line for line in lines if line.startswith("#")]
        rows = [line for line in lines if not line.startswith("#")]
        for i, row in zip(order, rows, strict=True):
            out.log_rows.append(((zeek[i].start, records.zeek_keys[i]), row))
        out.log_open = (zconns[0].start, next(h for h in header if h.startswith("#open")))
        last = max(z.last_time for z in zconns)
        out.log_close = (last, next(h for h in header if h.startswith("#close")))
    out.peak_rss = peak_rss()
    return out


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
) -> Result:
    """Analyse ``inputs`` as one capture on ``client``'s cluster.

    The shuffle goes through a new directory in ``scratch`` (the system's
    temporary directory by default), which every worker must reach at the
    same path; it is removed when the run ends, however it ends."""
    try:
        work = tempfile.mkdtemp(prefix="tcplab-scratch-", dir=scratch)
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
            inputs,
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


def _run(
    client: Any,
    inputs: Sequence[str],
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
) -> Result:
    import distributed

    as_completed: Any = distributed.as_completed

    problems: list[str] = []
    capture = resolve(inputs, problems)
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
    # Enough partitions to keep every worker busy, and small enough that one
    # partition's columns fit a worker comfortably (docs/scale.md).
    parts = partitions or max(2 * workers, -(-total // PARTITION_BYTES))
    futures: dict[tuple[int, int], Any] = {}
    meta_of: dict[Any, Any] = {}
    for lay, spec in specs:
        fut = submit(_read_task, lay, spec, parts, options, work)
        futures[(spec.file_id, spec.range_id)] = fut
        meta_of[fut] = submit(operator.itemgetter(0), fut)
    metas: dict[tuple[int, int], RangeMeta] = {}
    done_bytes = 0
    for mfut in as_completed(list(meta_of.values())):
        meta: RangeMeta = mfut.result()
        metas[(meta.spec.file_id, meta.spec.range_id)] = meta
        done_bytes += min(meta.spec.end, total) - meta.spec.start
        if progress is not None:
            progress(done_bytes, total)
    layouts = {lay.file_id: lay for lay in lays}

    accepted: list[RangeMeta] = []
    for lay in lays:
        file_metas = [metas[(lay.file_id, s.range_id)] for l2, s in specs if l2 is lay]

        def reread(spec: RangeSpec, lay: FileLayout = lay) -> RangeMeta:
            fut = submit(_read_task, lay, spec, parts, options, work)
            futures[(spec.file_id, spec.range_id)] = fut
            result: RangeMeta = submit(operator.itemgetter(0), fut).result()
            return result

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
    batches = []
    for p in range(parts):
        pieces = [submit(_piece, futures[(m.spec.file_id, m.spec.range_id)], p) for m in accepted]
        spool = os.path.join(work, f"part-{p}.records")
        batches.append(submit(analyse_partition, pieces, frame_base, carry_latest, options, spool))
    figures = client.gather([submit(partition_figures, b) for b in batches])
    keys_per_part = [as_keys(f[0]) for f in figures]
    # Connection numbers: the rank of each connection's first packet over all partitions.
    ranked = sorted((k, p, i) for p, ks in enumerate(keys_per_part) for i, k in enumerate(ks))
    numbers: list[list[int]] = [[0] * len(ks) for ks in keys_per_part]
    for n, (_k, p, i) in enumerate(ranked):
        numbers[p][i] = n

    # Stage 3.
    if parquet is not None:
        from tcplab.scale.tables import prepare_dataset

        prepare_dataset(parquet, packets)
    names = capture.names
    written_futures = [
        submit(write_partition, b, numbers[p], p, parquet, packets, names, want_json, want_log)
        for p, b in enumerate(batches)
    ]
    written: list[Written] = client.gather(written_futures)
    result = Result(problems=report.problems, connections=len(ranked), partitions=parts)
    result.read_seconds = sum(m.seconds for m in accepted)
    result.shuffle_bytes = sum(m.shuffle_bytes for m in accepted)
    result.packets = sum(f[1] for f in figures)
    result.partition_seconds = [f[2] for f in figures]
    result.worker_peak_rss = max([f[3] for f in figures] + [w.peak_rss for w in written], default=0)
    for meta in accepted:
        result.worker_cpu[meta.worker] = result.worker_cpu.get(meta.worker, 0.0) + meta.seconds
    for f in figures:
        result.worker_cpu[f[4]] = result.worker_cpu.get(f[4], 0.0) + f[2]
    if want_json:
        result.json = "".join(line for _n, line in heapq.merge(*(w.json for w in written)))
    if want_log:
        result.conn_log = _merge_log(written)
    return result


def _layout(path: str, file_id: int) -> FileLayout | str:
    try:
        return layout(path, file_id)
    except InputError as exc:
        return str(exc)


def _piece(read: tuple[RangeMeta, list[PieceRef]], p: int) -> tuple[int, int, PieceRef]:
    meta, pieces = read
    return meta.spec.file_id, meta.spec.range_id, pieces[p]


def _merge_log(written: list[Written]) -> str:
    from tcplab.analyze.output import conn_log

    empty = conn_log([]).splitlines()
    opens = [w.log_open for w in written if w.log_open is not None]
    closes = [w.log_close for w in written if w.log_close is not None]
    header = [line for line in empty if not line.startswith("#close")]
    close = [line for line in empty if line.startswith("#close")]
    if opens:
        header = [min(opens)[1] if h.startswith("#open") else h for h in header]
        close = [max(closes)[1]]
    rows = (row for _key, row in heapq.merge(*(w.log_rows for w in written)))
    return "\n".join([*header, *rows, *close]) + "\n"


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
                )
            finally:
                if bar is not None:
                    bar.close()
    except OSError as exc:
        raise InputError(f"--dask {dask}: {exc}") from None
    for line in result.problems:
        click.echo(f"tcplab: {line}", err=True)
    if conn_log:
        sys.stdout.write(result.conn_log)
    elif as_json:
        sys.stdout.write(result.json)


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
