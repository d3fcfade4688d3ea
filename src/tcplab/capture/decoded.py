"""Records in, decoded TCP packets out: the loop every packet consumer shares.

``TcpRecords`` wraps a ``CaptureReader`` and runs ``decode_frame`` on each
record.  A frame the decoder cannot read (``WireError``) becomes a
``CaptureProblem`` at its file offset ("frame N: ...") and is skipped; frames
that are fine but not TCP are only counted.  So a tool gets, for every
readable TCP packet, the record and its decoded ``TcpPacket``, and at the end
one problem list (the reader's and the decoder's, in file order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tcplab.capture.reader import CaptureReader, Record
from tcplab.capture.source import MAX_KEPT_PROBLEMS, CaptureProblem
from tcplab.wire.decode import NotTcp, TcpPacket, WireError, decode_frame


class TcpRecords:
    """Iterate once over ``(record, packet)`` for the TCP packets of ``reader``."""

    def __init__(
        self,
        reader: CaptureReader,
        *,
        verify_checksum: bool = True,
        strict_checksum: bool = False,
        on_not_tcp: Callable[[Record, NotTcp], None] | None = None,
    ) -> None:
        """``on_not_tcp`` is told about each frame that is not TCP (and why),
        for tools that report some of them (the analyzer: IP fragments)."""
        self.reader = reader
        self.on_not_tcp = on_not_tcp
        self.verify_checksum = verify_checksum
        self.strict_checksum = strict_checksum
        self.frames = 0
        self.tcp = 0
        self.not_tcp = 0
        self.undecodable = 0
        self.decode_problems: list[CaptureProblem] = []

    def __iter__(self) -> Iterator[tuple[Record, TcpPacket]]:
        verify, strict = self.verify_checksum, self.strict_checksum
        problems = self.decode_problems
        for record in self.reader:
            self.frames += 1
            try:
                packet = decode_frame(
                    record.linktype, record.data, verify_checksum=verify, strict_checksum=strict
                )
            except WireError as exc:
                self.undecodable += 1
                if len(problems) < MAX_KEPT_PROBLEMS:
                    problems.append(self.problem(record, exc))
                continue
            if isinstance(packet, NotTcp):
                self.not_tcp += 1
                if self.on_not_tcp is not None:
                    self.on_not_tcp(record, packet)
                continue
            self.tcp += 1
            yield record, packet

    @staticmethod
    def problem(record: Record, exc: WireError) -> CaptureProblem:
        """The decoder's complaint about one frame, at its offset in the file."""
        return CaptureProblem(
            record.data_offset + exc.offset, f"frame {record.index}: {exc.message}"
        )

    @property
    def dropped(self) -> int:
        """Problems found but not kept (to bound memory), reader's and decoder's."""
        return self.reader.problems_dropped + self.undecodable - len(self.decode_problems)

    @property
    def skipped(self) -> int:
        """Records not yielded as packets for being malformed (not for not being TCP)."""
        return self.reader.skipped + self.undecodable

    @property
    def problems(self) -> list[CaptureProblem]:
        """The reader's and the decoder's problems, in file order."""
        return sorted([*self.reader.problems, *self.decode_problems], key=lambda p: p.offset)
