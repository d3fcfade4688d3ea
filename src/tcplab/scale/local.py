"""The single-process run of a capture set, and its Parquet output."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from tcplab.analyze import _engine, engine
from tcplab.analyze.core import Analysis
from tcplab.analyze.frames import ReadReport
from tcplab.errors import InputError
from tcplab.scale.captureset import (
    FRAME_BITS,
    CaptureSet,
    encode_frame,
    is_url,
    resolve,
    total_bytes,
)
from tcplab.scale.engine import EngineOptions, _Slow, analysis_of

if TYPE_CHECKING:
    from tcplab.analyze.views import View

PROGRESS_THRESHOLD = 4 * 1024 * 1024  # bytes; smaller sets finish before a bar helps


def run_set(
    capture: CaptureSet,
    options: EngineOptions,
    missing: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    analysis: engine.Options | None = None,
) -> Iterator[engine.Batch | ReadReport]:
    """A capture set through the engine, as ``tcplab.analyze.engine.run``
    runs one file: ``Batch``es as connections end, then the ``ReadReport``.
    A time-disjoint set (``time_disjoint``) is read file after file by one
    engine (``concatenated``); otherwise every file goes through the
    engine's C reader, the rows are merged by time and fed to one engine
    (``tcplab.scale.columns``).  Both give the same.  Files that cannot
    be used are lines in the report; the rest is analysed.  ``analysis``:
    the analysing engine's own options (a view's), when not ``options``'s."""
    report = ReadReport()
    for line in missing:
        report.problem(line)
    unreadable: list[str] = []
    run = analysis if analysis is not None else options.engine()
    if time_disjoint(capture):
        PATHS["concatenated"] += 1
        yield from concatenated(capture, options, run, report, unreadable, progress)
    else:
        from tcplab.scale.columns import analysed, merged_rows  # (NumPy: only here)

        PATHS["merged"] += 1
        yield from analysed(merged_rows(capture, options, report, unreadable, progress), run)
    if len(unreadable) == len(capture.files):
        raise InputError(unreadable[0])
    # One line per file that is not a capture, before the problems inside files.
    report.problems[:0] = unreadable
    yield report


# How many capture sets took each path (observable for the tests, not a timing).
PATHS: Counter[str] = Counter()


def time_disjoint(capture: CaptureSet) -> bool:
    """Whether the merge of ``capture`` by order key is the files one after
    another: every file is a plain local pcap/pcapng file the engine reads
    itself to its end (``_engine.span`` is sure of it, having walked its
    record headers), and no record of a file is earlier than the latest
    record of the files before it.  An equal time is in order: the merge
    breaks a tie of order keys by file number (``columns.merge``).  The
    smallest time, not the first, bounds a file's order keys from below (a
    file's clock may step back).  Anything else: False (the merge decides)."""
    latest: int | None = None
    for path in capture.files:
        if is_url(path):
            return False
        try:
            fd = engine._plain_file(path)
        except InputError:
            return False
        if fd is None:  # gzip, a pipe
            return False
        try:
            got = _engine.span(fd)
        finally:
            os.close(fd)
        if got is None:
            return False
        records, smallest, largest = got
        if records >= 1 << FRAME_BITS:
            return False
        if not records:
            continue
        if latest is not None and smallest < latest:
            return False
        latest = largest if latest is None else max(latest, largest)
    return True


def concatenated(
    capture: CaptureSet,
    options: EngineOptions,
    analysis: engine.Options,
    report: ReadReport,
    unreadable: list[str],
    progress: Callable[[int], None] | None = None,
) -> Iterator[engine.Batch]:
    """A time-disjoint capture set (``time_disjoint``) through one engine
    that reads file after file with its full reader (``Engine.next_file``):
    the packets, frame numbers, problems and counts of ``merged_rows`` and
    ``analysed``, without the decode-only pass and the rows between."""
    run = engine.Engine(analysis).engine
    late: list[str] = []  # the problems of files with TCP packets (see below)
    for file_id, path in enumerate(capture.files):
        run.next_file(encode_frame(file_id, 0))
        slow = _Slow(run, path, options)
        before = run.stats()
        try:
            fd = engine._plain_file(path)
        except InputError as exc:
            unreadable.append(str(exc))
            continue
        if fd is None:  # replaced since time_disjoint walked it
            unreadable.append(f"{path}: changed while the capture set was read")
            continue
        extra: list[str] = []
        try:
            handed = yield from engine.read_mapped(run, fd, slow, extra, progress)
        finally:
            os.close(fd)
        try:
            if handed is not None:
                yield from engine._take_over(run, slow, path, handed)
        except InputError as exc:
            unreadable.append(str(exc))
            continue
        after = run.stats()
        report.frames += int(after["frames"]) - int(before["frames"])
        report.tcp += int(after["tcp"]) - int(before["tcp"])
        report.not_tcp += int(after["not_tcp"]) - int(before["not_tcp"])
        report.undecodable += slow.undecodable
        # The merge reads every file's first rows before it finishes any, so a
        # file without TCP packets says its problems first, the others in
        # file order after them (as they run out, time-disjoint: in order).
        lines = slow.finish(extra).problems
        if after["tcp"] == before["tcp"]:
            for line in lines:
                report.problem(line)
        else:
            late += lines
    for line in late:
        report.problem(line)
    yield engine.take_batch(run, run.finish())


def analyze_set(
    inputs: Sequence[str], options: EngineOptions, show_progress: bool = True
) -> tuple[Analysis, CaptureSet]:
    """Analyse the files of ``inputs`` as one capture (``run_set``), gathered."""
    missing: list[str] = []
    capture = resolve(inputs, missing)
    size = total_bytes(capture)
    items: list[engine.Batch | ReadReport]
    if not show_progress or size < PROGRESS_THRESHOLD or not sys.stderr.isatty():
        items = list(run_set(capture, options, missing))
    else:
        from rich.progress import Progress

        with Progress(transient=True) as progress:
            name = os.path.basename(capture.files[0]) if len(capture.files) == 1 else "capture set"
            task = progress.add_task(f"analysing {name}", total=size)
            items = list(run_set(capture, options, missing, lambda n: progress.advance(task, n)))
    report = items.pop()
    assert isinstance(report, ReadReport)
    batches = [b for b in items if not isinstance(b, ReadReport)]
    return analysis_of(batches, report), capture


def stream_set(
    inputs: Sequence[str],
    options: EngineOptions,
    view: View,
    progress: Callable[[int], None] | None = None,
    analysis: engine.Options | None = None,
) -> ReadReport:
    """A capture set through a streaming view (``tcplab.analyze.views``), as
    ``views.run_view`` runs one file: memory bounded by the open connections."""
    missing: list[str] = []
    capture = resolve(inputs, missing)
    for item in run_set(capture, options, missing, progress, analysis):
        if isinstance(item, ReadReport):
            view.finish(item)
            return item
        view.take(view.render(item))
    raise RuntimeError("the engine ended without a report")


def write_parquet(analysis: Analysis, capture: CaptureSet, root: str, packets: bool) -> None:
    """``root/connections`` (and ``root/packets``) for a single-process run."""
    from tcplab.scale.tables import (
        connections_table,
        packets_table,
        prepare_dataset,
        write_part,
    )

    prepare_dataset(root, packets)
    conns = analysis.connections
    write_part(root, "connections", 0, connections_table(conns, [c.number for c in conns]))
    if packets:
        numbers = {c.number: c.number for c in conns}
        write_part(root, "packets", 0, packets_table(analysis.packets, numbers, capture.names))
