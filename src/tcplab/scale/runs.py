"""Sorted runs of text lines in files, and their merge: how a distributed
run's conn.log rows and JSON lines reach the client in order with bounded
memory on every side.

A worker writes the lines of one batch, sorted by their keys, as one *run*
(``RunWriter.add``): the keys (a NumPy structured array), each line's end
offset, then the text.  It returns only where its runs are (``Run``).  The
client merges every worker's runs by key (``merged``), reading each run a
chunk of ``CHUNK`` lines at a time, and writes the lines out as they come:
neither side ever holds more than a batch, or a chunk per run.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

CHUNK = 4096  # lines of a run read at a time by the merge


@dataclass(frozen=True, slots=True)
class Run:
    """``count`` lines sorted by key, at ``offset`` of ``path``."""

    path: str
    offset: int
    count: int
    text_bytes: int


class RunWriter:
    """Appends sorted runs to one file (opened on the first run)."""

    def __init__(self, path: str, dtype: np.dtype[Any]) -> None:
        self.path = path
        self.dtype = dtype
        self.runs: list[Run] = []
        self._file: Any = None
        self._offset = 0

    def add(self, keys: NDArray[Any], lines: Sequence[bytes]) -> None:
        """One run: ``lines[i]`` (each ending in a newline) has key ``keys[i]``."""
        if not len(lines):
            return
        order = np.argsort(keys, order=list(self.dtype.names or ()), kind="stable")
        ordered = [lines[i] for i in order.tolist()]
        ends = np.cumsum([len(line) for line in ordered], dtype=np.int64)
        text = b"".join(ordered)
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 (closed by close())
        self._file.write(np.ascontiguousarray(keys[order], self.dtype).tobytes())
        self._file.write(ends.tobytes())
        self._file.write(text)
        self.runs.append(Run(self.path, self._offset, len(lines), len(text)))
        self._offset += len(lines) * (self.dtype.itemsize + 8) + len(text)

    def close(self) -> list[Run]:
        if self._file is not None:
            self._file.close()
        return self.runs


def _lines(run: Run, dtype: np.dtype[Any]) -> Iterator[tuple[Any, ...]]:
    """A run's (key fields..., line) tuples, read a chunk at a time."""
    width = dtype.itemsize
    ends_at = run.offset + run.count * width
    text_at = ends_at + run.count * 8
    fd = os.open(run.path, os.O_RDONLY)
    try:
        done, text_done = 0, 0
        while done < run.count:
            n = min(CHUNK, run.count - done)
            keys = np.frombuffer(os.pread(fd, n * width, run.offset + done * width), dtype)
            ends = np.frombuffer(os.pread(fd, n * 8, ends_at + done * 8), np.int64)
            text = os.pread(fd, int(ends[-1]) - text_done, text_at + text_done)
            cuts = (ends - text_done).tolist()
            lo = 0
            for key, hi in zip(keys.tolist(), cuts, strict=True):
                yield (*key, text[lo:hi])
                lo = hi
            done += n
            text_done = int(ends[-1])
    finally:
        os.close(fd)


def merged(runs: Sequence[Run], dtype: np.dtype[Any]) -> Iterator[bytes]:
    """Every run's lines, merged by key (ties: the run given first)."""
    width = len(dtype.names or ())
    for item in heapq.merge(*(_lines(run, dtype) for run in runs), key=lambda x: x[:width]):
        yield item[width]
