"""Bounded-memory byte source for the capture readers, and the problem list.

Readers never load a file: they ask ``ChunkSource.ensure(n)`` for at least
``n`` contiguous bytes and get the current chunk plus a position in it.
Memory is one chunk (1 MiB) plus the largest single record asked for, and
record sizes are capped by the formats' sanity limits (256 MiB).

Offsets are byte offsets in the decompressed stream, which for a plain file
is the file itself: that is what every problem line reports.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final, cast

GZIP_MAGIC: Final = b"\x1f\x8b"
CHUNK: Final = 1 << 20
# A .gz that expands more than BOMB_RATIO times, past BOMB_MIN bytes, is a
# decompression bomb, not a capture (captures compress 2-20x, bulk transfers
# of zero bytes some 25x; deflate's limit is about 1030x): reading stops there
# with one line, in bounded time and memory.
BOMB_MIN: Final = 16 << 20
BOMB_RATIO: Final = 250
# Keep the first problems verbatim; beyond this only count them, so a file
# made of nothing but broken blocks cannot grow memory without bound.
MAX_KEPT_PROBLEMS: Final = 1000


@dataclass(frozen=True, slots=True)
class CaptureProblem:
    """One thing wrong with the file, at a byte offset of the (decompressed) stream."""

    offset: int
    message: str

    def line(self, filename: str) -> str:
        return f"{filename}: offset {self.offset}: {self.message}"


class ProblemSink:
    """Collects problems and counts skipped records while a reader streams."""

    __slots__ = ("dropped", "problems", "skipped")

    def __init__(self) -> None:
        self.problems: list[CaptureProblem] = []
        self.skipped = 0
        self.dropped = 0

    def add(self, offset: int, message: str, *, skipped: int = 1) -> None:
        self.skipped += skipped
        if len(self.problems) < MAX_KEPT_PROBLEMS:
            self.problems.append(CaptureProblem(offset, message))
        else:
            self.dropped += 1


class ChunkSource:
    """A forward-only window on a binary stream.

    ``buf[pos:]`` is the unread part of the current chunk; ``offset`` is the
    stream offset of ``buf[pos]``.  Decompression errors of a ``.gz`` stream
    end the stream and are reported as a problem at the offset reached.
    """

    __slots__ = (
        "_compressed",
        "_end",
        "_eof",
        "_pending_error",
        "_problems",
        "_produced",
        "_stream",
        "buf",
        "offset",
        "pos",
        "stepwise",
    )

    @property
    def gzip(self) -> bool:
        """Whether the stream is a .gz being inflated (``source_of``)."""
        return self._compressed is not None

    def __init__(
        self,
        stream: BinaryIO,
        problems: ProblemSink,
        initial: bytes = b"",
        stepwise: bool = False,
        compressed: Callable[[], int] | None = None,
    ) -> None:
        """``compressed``: for a .gz stream, how many compressed bytes were consumed
        (the decompression-bomb check)."""
        self._stream = stream
        self._compressed = compressed
        self._produced = 0
        self.stepwise = stepwise
        self._pending_error = False
        self._problems = problems
        self._eof = False
        self.buf = initial
        self.pos = 0
        self.offset = 0
        # The stream offset just past the last byte read from it: where a
        # damaged .gz ends.  Counted here, not from ``offset`` and ``buf``, because
        # a caller may take chunks through _read_more itself (the analysis
        # engine does) and ``ensure`` gathers several reads before ``buf`` is set.
        self._end = len(initial)

    def _read_more(self, want: int) -> bytes:
        if self._eof:
            return b""
        try:
            if self._pending_error:
                raise EOFError("gzip stream truncated")
            data = self._read_some(want)
        except EOFError:
            # gzip: "Compressed file ended before the end-of-stream marker was reached"
            self._eof = True
            self._problems.add(
                self._end,
                "gzip data ends before its end-of-stream marker (truncated .gz file)",
                skipped=0,
            )
            return b""
        except (OSError, zlib.error) as exc:
            # gzip.BadGzipFile is an OSError; a corrupt deflate stream is zlib.error.
            self._eof = True
            self._problems.add(
                self._end,
                f"gzip data is corrupt ({exc}); stopping here",
                skipped=0,
            )
            return b""
        self._end += len(data)
        if not data:
            self._eof = True
        elif self._compressed is not None:
            self._produced += len(data)
            if self._produced > BOMB_MIN and self._produced > BOMB_RATIO * self._compressed():
                self._eof = True
                self._problems.add(
                    self._end,
                    f"gzip data expands more than {BOMB_RATIO}x ({self._produced} bytes from "
                    f"{self._compressed()}): a decompression bomb, not a capture; stopping here",
                    skipped=0,
                )
        return data

    def _read_some(self, want: int) -> bytes:
        """Up to ``want`` bytes.  A ``GzipFile.read(n)`` that hits a truncated
        stream raises and throws away everything it decompressed in that
        call, so compressed streams are read one step (``read1``) at a time:
        every byte before the cut reaches the reader."""
        if not self.stepwise:
            return self._stream.read(want)
        parts: list[bytes] = []
        got = 0
        try:
            while got < want:
                part = self._stream.read1(want - got)  # type: ignore[attr-defined]
                if not part:
                    break
                parts.append(part)
                got += len(part)
        except EOFError:
            if not parts:
                raise
            self._pending_error = True  # report it on the next call, data first
        return b"".join(parts)

    @property
    def end(self) -> int:
        """The stream offset just past the last byte read from the stream."""
        return self._end

    def ensure(self, n: int) -> tuple[bytes, int]:
        """At least ``n`` unread bytes in ``buf[pos:]`` unless the stream ends first."""
        have = len(self.buf) - self.pos
        if have >= n:
            return self.buf, self.pos
        parts = [self.buf[self.pos :]] if have else []
        while have < n:
            more = self._read_more(max(CHUNK, n - have))
            if not more:
                break
            parts.append(more)
            have += len(more)
        self.buf = b"".join(parts)
        self.pos = 0
        return self.buf, 0

    def advance(self, n: int) -> None:
        self.pos += n
        self.offset += n

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the stream)."""
        buf, pos = self.ensure(n)
        data = buf[pos : pos + n]
        self.advance(len(data))
        return data

    def skip(self, n: int) -> int:
        """Discard ``n`` bytes without holding them; returns how many there were."""
        have = len(self.buf) - self.pos
        if have >= n:
            self.advance(n)
            return n
        self.advance(have)
        self.buf, self.pos = b"", 0
        skipped = have
        while skipped < n:
            more = self._read_more(min(CHUNK, n - skipped))
            if not more:
                break
            if len(more) > n - skipped:
                # A read never returns more than asked, but stay exact regardless.
                self.buf = more[n - skipped :]
                more = more[: n - skipped]
            skipped += len(more)
            self.offset += len(more)
        return skipped

    def at_eof(self) -> bool:
        buf, pos = self.ensure(1)
        return len(buf) - pos == 0


def source_of(raw: BinaryIO, problems: ProblemSink) -> ChunkSource:
    """``raw`` as a ChunkSource, through gzip when it starts with gzip's magic.
    The magic is peeked, not read and sought back: a FIFO or standard input
    cannot seek.  For a .gz stream the guards watch the compressed bytes
    consumed (``raw.tell``)."""
    peek = getattr(raw, "peek", None)
    if peek is not None and peek(2)[:2] == GZIP_MAGIC:
        import gzip

        stream = cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
        return ChunkSource(stream, problems, stepwise=True, compressed=raw.tell)
    return ChunkSource(raw, problems)
