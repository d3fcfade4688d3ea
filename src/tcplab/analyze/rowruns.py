"""Text rows out in key order with bounded memory, with no Python object per
row: the rows are bytes (each ending in a newline) and their keys a NumPy
record array beside them, with a ``length`` field (the row's bytes) and the
fields the order is by.

``Runs`` holds rows up to a limit, then sorts them (NumPy) and spills them
as a *sorted run* to a file, in blocks; ``drain`` merges the runs block by
block (``merge_runs``).  The single-process conn.log orders the engine's
rows this way (``views.ConnLogView``), and a distributed run spills each
partition's conn.log rows and JSON lines to runs in its scratch directory
(``path``), which the client merges from there (``refs``: a ``Runs``
drains the runs it is given as well as its own).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

BLOCK = 8192  # rows per block of a spilled run
LIMIT = 32 << 20  # bytes of rows and keys held before they spill


@dataclass(frozen=True, slots=True)
class RunRef:
    """A run spilled to a named file: ``blocks`` blocks from ``offset``."""

    path: str
    offset: int
    blocks: int


class Runs:
    """Rows keyed by ``dtype`` records, out ordered by the ``order`` fields
    (the last one unique).  Spilled runs go to temporary files, or, with
    ``path``, one after another to that file (``refs``)."""

    def __init__(
        self,
        dtype: np.dtype[Any],
        order: Sequence[str],
        limit: int = LIMIT,
        path: str | None = None,
        block: int = BLOCK,
    ) -> None:
        self.dtype = dtype
        self.order = tuple(order)
        self.limit = limit
        self.path = path
        self.block = block
        self.texts: list[bytes] = []
        self.keys: list[NDArray[Any]] = []
        self.size = 0
        self.runs: list[tuple[IO[bytes], int]] = []  # (temporary file, blocks)
        self.refs: list[RunRef] = []  # runs in named files: spilled with ``path``, or given

    def add(self, text: bytes, keys: NDArray[Any]) -> None:
        if not len(keys):
            return
        self.texts.append(text)
        self.keys.append(keys)
        self.size += len(text) + keys.nbytes
        if self.size > self.limit:
            self.spill()

    def _held(self) -> tuple[bytes, NDArray[Any]]:
        """The rows held, in order (and their keys)."""
        import numpy as np

        keys = np.concatenate(self.keys) if self.keys else np.empty(0, self.dtype)
        texts = self.texts  # (gathered as they are: no joined copy)
        self.texts, self.keys, self.size = [], [], 0
        return ordered(texts, keys, self.order)

    def spill(self) -> None:
        """The rows held, as one sorted run in a file."""
        import numpy as np

        text, keys = self._held()
        if not len(keys):
            return
        if self.path is None:
            import tempfile  # (a run that never spills does not pay for it)

            out: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed once merged
        else:
            out = open(self.path, "ab")  # noqa: SIM115 - closed below
        offset = out.tell()
        view = memoryview(text)
        ends = np.cumsum(keys["length"])
        blocks = 0
        for i in range(0, len(keys), self.block):
            part = keys[i : i + self.block]
            at = int(ends[i] - part["length"][0])
            size = int(ends[i + len(part) - 1]) - at
            out.write(np.array([len(part), size], np.int64).tobytes())
            out.write(part.tobytes())
            out.write(view[at : at + size])
            blocks += 1
        if self.path is None:
            out.seek(0)
            self.runs.append((out, blocks))
        else:
            out.close()
            self.refs.append(RunRef(self.path, offset, blocks))

    def drain(self) -> Iterator[bytes]:
        """Every row added and every run spilled or given (``refs``), in
        order (a chunk of bytes at a time)."""
        text, keys = self._held()
        runs = [_Run(_blocks(f, n, self.dtype), n) for f, n in self.runs]
        runs += [_Run(_blocks(_opened(r), r.blocks, self.dtype), r.blocks) for r in self.refs]
        self.runs, self.refs = [], []
        if not runs:
            if text:
                yield text
            return
        runs.append(_Run(iter([(keys, text)]), 1))
        yield from merge_runs(runs, self.order)


def _blocks(
    f: IO[bytes], blocks: int, dtype: np.dtype[Any]
) -> Iterator[tuple[NDArray[Any], bytes]]:
    import numpy as np

    with f:
        for _ in range(blocks):
            n, size = np.frombuffer(f.read(16), np.int64)
            keys = np.frombuffer(f.read(int(n) * dtype.itemsize), dtype)
            yield keys, f.read(int(size))


def _opened(ref: RunRef) -> IO[bytes]:
    f = open(ref.path, "rb")  # noqa: SIM115 - closed by _blocks
    f.seek(ref.offset, os.SEEK_SET)
    return f


def ordered(
    text: bytes | list[bytes], keys: NDArray[Any], order: Sequence[str]
) -> tuple[bytes, NDArray[Any]]:
    """Rows (the text, or texts one after the other, and their keys) sorted
    by the ``order`` fields."""
    import numpy as np

    from tcplab.analyze import _engine

    by = np.lexsort(tuple(keys[name] for name in reversed(order)))
    lengths = keys["length"]
    starts = np.cumsum(lengths) - lengths
    keys = keys[by]
    return _engine.gather_rows(
        text, np.ascontiguousarray(starts[by]), np.ascontiguousarray(keys["length"])
    ), keys


class _Run:
    """A sorted run of rows, a block at a time (``merge_runs``)."""

    def __init__(self, blocks: Iterator[tuple[NDArray[Any], bytes]], count: int) -> None:
        self.blocks = blocks
        self.left = count  # blocks not yet read
        self.keys: NDArray[Any] | None = None
        self.text = b""
        self.starts: NDArray[Any] | None = None
        self.at = 0  # the first row not yet out

    def ready(self) -> bool:
        """Rows to give: the current block's, or the next one's."""
        import numpy as np

        while (self.keys is None or self.at == len(self.keys)) and self.left:
            self.keys, self.text = next(self.blocks)
            self.left -= 1
            lengths = self.keys["length"]
            self.starts = np.cumsum(lengths) - lengths
            self.at = 0
        return self.keys is not None and self.at < len(self.keys)

    def last(self, order: tuple[str, ...]) -> tuple[Any, ...]:
        assert self.keys is not None
        return tuple(self.keys[name][-1].item() for name in order)

    def upto(self, bound: tuple[Any, ...], order: tuple[str, ...]) -> int:
        """The end of the rows whose key is at most ``bound``: narrowed to the
        rows equal to it field by field, then the last field decides."""
        import numpy as np

        assert self.keys is not None
        lo, hi = 0, len(self.keys)
        for name, value in zip(order[:-1], bound[:-1], strict=True):
            column = self.keys[name][lo:hi]
            lo, hi = (
                lo + int(np.searchsorted(column, value, "left")),
                lo + int(np.searchsorted(column, value, "right")),
            )
        end = lo + int(np.searchsorted(self.keys[order[-1]][lo:hi], bound[-1], "right"))
        return max(end, self.at)


def merge_runs(runs: list[_Run], order: tuple[str, ...]) -> Iterator[bytes]:
    """Sorted runs merged, a step at a time: every row up to the smallest
    last key of the blocks in hand (of runs with more blocks to come), which
    empties at least that block; those rows sorted together go out."""
    import numpy as np

    live = [r for r in runs if r.ready()]
    while live:
        bound = [r for r in live if r.left]
        upto = min(r.last(order) for r in bound) if bound else None
        texts, keys = [], []
        for r in live:
            assert r.keys is not None and r.starts is not None
            end = r.upto(upto, order) if upto is not None else len(r.keys)
            if end == r.at:
                continue
            at = int(r.starts[r.at])
            size = int(r.starts[end - 1] + r.keys["length"][end - 1]) - at
            texts.append(r.text[at : at + size])
            keys.append(r.keys[r.at : end])
            r.at = end
        text, _ = ordered(texts, np.concatenate(keys), order)
        yield text
        live = [r for r in live if r.ready()]


# conn.log rows (the engine's, with their keys: Batch.zeek_row_keys)

LOG_ORDER: Final = ("start", "first_frame")  # by start (the float it prints), then first frame


def row_span(keys: bytes) -> tuple[float, float]:
    """The smallest start and the largest last time of rows' keys
    (``Batch.zeek_row_keys``, at least one row), read without NumPy."""
    step, at = key_fields()
    doubles = memoryview(keys).cast("d")
    return min(doubles[at["start"] :: step]), max(doubles[at["last"] :: step])


@lru_cache(maxsize=1)
def key_fields() -> tuple[int, dict[str, int]]:
    """A row key's size and its fields' places, in 8-byte words."""
    from tcplab.analyze import _engine

    size, fields = _engine.zkey_layout()
    if size % 8 or any(offset % 8 for _, offset, _ in fields):
        raise RuntimeError("a conn.log row key is not of 8-byte fields")
    return size // 8, {name: offset // 8 for name, offset, _ in fields}
