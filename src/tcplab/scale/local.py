"""The single-process run of a capture set, and its Parquet output."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from tcplab.analyze.core import Analysis
from tcplab.analyze.frames import ReadReport
from tcplab.errors import InputError
from tcplab.scale.captureset import CaptureSet, resolve, total_bytes
from tcplab.scale.columns import merged_rows
from tcplab.scale.engine import EngineOptions, analyze_rows

PROGRESS_THRESHOLD = 4 * 1024 * 1024  # bytes; smaller sets finish before a bar helps


def analyze_set(
    inputs: Sequence[str], options: EngineOptions, show_progress: bool = True
) -> tuple[Analysis, CaptureSet]:
    """Analyse the files of ``inputs`` as one capture: every file through the
    engine's C reader, merged by time, through one engine
    (``tcplab.scale.columns``).  Files that cannot be used are lines in
    ``analysis.report.problems``; the rest is analysed."""
    missing: list[str] = []
    capture = resolve(inputs, missing)
    report = ReadReport()
    for line in missing:
        report.problem(line)
    unreadable: list[str] = []
    size = total_bytes(capture)
    if not show_progress or size < PROGRESS_THRESHOLD or not sys.stderr.isatty():
        batch = analyze_rows(merged_rows(capture, options, report, unreadable), options, report)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as progress:
            name = os.path.basename(capture.files[0]) if len(capture.files) == 1 else "capture set"
            task = progress.add_task(f"analysing {name}", total=size)
            rows = merged_rows(
                capture, options, report, unreadable, lambda n: progress.advance(task, n)
            )
            batch = analyze_rows(rows, options, report)
    if len(unreadable) == len(capture.files):
        raise InputError(unreadable[0])
    # One line per file that is not a capture, before the problems inside files.
    report.problems[:0] = unreadable
    return batch.analysis, capture


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
