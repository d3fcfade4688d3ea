"""The single-process run of a capture set, and its Parquet output."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from tcplab.analyze import engine
from tcplab.analyze.core import Analysis
from tcplab.analyze.frames import ReadReport
from tcplab.errors import InputError
from tcplab.scale.captureset import CaptureSet, resolve, total_bytes
from tcplab.scale.columns import analysed, merged_rows
from tcplab.scale.engine import EngineOptions, analysis_of

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
    Every file goes through the engine's C reader; the rows are merged by
    time and fed to one engine (``tcplab.scale.columns``).  Files that cannot
    be used are lines in the report; the rest is analysed.  ``analysis``:
    the analysing engine's own options (a view's), when not ``options``'s."""
    report = ReadReport()
    for line in missing:
        report.problem(line)
    unreadable: list[str] = []
    rows = merged_rows(capture, options, report, unreadable, progress)
    yield from analysed(rows, analysis if analysis is not None else options.engine())
    if len(unreadable) == len(capture.files):
        raise InputError(unreadable[0])
    # One line per file that is not a capture, before the problems inside files.
    report.problems[:0] = unreadable
    yield report


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
