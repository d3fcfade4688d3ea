"""Records in, decoded TCP packets out: the loop every packet consumer shares.

``TcpRecords`` wraps a ``CaptureReader`` and runs ``decode_frame`` on each
record.  A frame the decoder cannot read (``WireError``) becomes a
``CaptureProblem`` at its file offset ("frame N: ...") and is skipped; frames
that are fine but not TCP are only counted.  So a tool gets, for every
readable TCP packet, the record and its decoded ``TcpPacket``, and at the end
one problem list (the reader's and the decoder's, in file order).

IP fragments (of the outermost IP header) go to a ``Reassembler``
(``tcplab.wire.fragments``); when a fragment completes its datagram, the
whole datagram is decoded (``decode_ip``) and yielded on that last
fragment's record, as tshark shows the reassembled packet on the last
fragment's frame: a copy of the record whose ``data`` is the datagram and
``linktype`` is RAW (101).  The other fragments are counted (``fragments``)
and not reported; a datagram given up (timed out, evicted, still
incomplete at the end) is one problem line at its first fragment's frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tcplab.capture.reader import CaptureReader, Record
from tcplab.capture.source import MAX_KEPT_PROBLEMS, CaptureProblem
from tcplab.wire.decode import NotTcp, TcpPacket, WireError, decode_frame, decode_ip
from tcplab.wire.fragments import Incomplete, Reassembler, fragment_in
from tcplab.wire.link import LinkType


class TcpRecords:
    """Iterate once over ``(record, packet)`` for the TCP packets of ``reader``."""

    def __init__(
        self,
        reader: CaptureReader | None,
        *,
        verify_checksum: bool = True,
        strict_checksum: bool = False,
        on_not_tcp: Callable[[Record, NotTcp], None] | None = None,
        reassembler: Reassembler | None = None,
    ) -> None:
        """``on_not_tcp`` is told about each frame that is not TCP (and why),
        for tools that report some of them (the analyzer: IP fragments that
        could not be reassembled).  ``reassembler`` sets the fragment
        reassembly limits (default: 60 s, 1024 datagrams in progress)."""
        self.reader = reader
        self.on_not_tcp = on_not_tcp
        self.verify_checksum = verify_checksum
        self.strict_checksum = strict_checksum
        self.frames = 0
        self.tcp = 0
        self.not_tcp = 0
        self.undecodable = 0
        self.decode_problems: list[CaptureProblem] = []
        self.reassembler = reassembler if reassembler is not None else Reassembler()
        self.fragments = 0  # frames holding a fragment taken for reassembly
        self.reassembled = 0  # datagrams completed (TCP or not)
        self.incomplete = 0  # datagrams given up
        # Where each frame's record starts, for the first fragment of a
        # datagram given up (bounded by the reassembler's own limit).
        self._fragment_offsets: dict[int, int] = {}

    def __iter__(self) -> Iterator[tuple[Record, TcpPacket]]:
        if self.reader is None:
            raise TypeError("no reader: feed records to decode()")
        for record in self.reader:
            got = self.decode(record)
            if got is not None:
                yield got
        self.end()

    def decode(self, record: Record) -> tuple[Record, TcpPacket] | None:
        """One record: its TCP packet (a reassembled datagram's on its last
        fragment), or None when it holds none.  The analysis engine calls this
        for the frames its fast decoder leaves to ``tcplab.wire``."""
        self.frames += 1
        try:
            packet = decode_frame(
                record.linktype,
                record.data,
                verify_checksum=self.verify_checksum,
                strict_checksum=self.strict_checksum,
            )
            if isinstance(packet, NotTcp) and "fragment" in packet.reason:
                reassembled = self._reassemble(record, packet)
                if reassembled is None:
                    return None
                record, packet = reassembled
        except WireError as exc:
            self.undecodable += 1
            if len(self.decode_problems) < MAX_KEPT_PROBLEMS:
                self.decode_problems.append(self.problem(record, exc))
            return None
        if isinstance(packet, NotTcp):
            self.not_tcp += 1
            if self.on_not_tcp is not None:
                self.on_not_tcp(record, packet)
            return None
        self.tcp += 1
        return record, packet

    def end(self) -> None:
        """End of input: datagrams still incomplete become problems."""
        self._report(self.reassembler.finish())

    def _reassemble(
        self, record: Record, not_tcp: NotTcp
    ) -> tuple[Record, TcpPacket | NotTcp] | None:
        """Hand a fragment to the reassembler: None while its datagram is
        incomplete (the frame counts as not TCP), else the record rewritten
        to carry the whole datagram and its decoding.  A fragment that
        cannot be reassembled comes back as the ``NotTcp`` it was."""
        fragment = fragment_in(record.linktype, record.data)
        if fragment is None:
            return record, not_tcp
        self.fragments += 1
        self._fragment_offsets[record.index] = record.data_offset
        done = self.reassembler.add(fragment, record.time_ns, record.index)
        self._report(self.reassembler.take_incomplete())
        if done is None:
            self.not_tcp += 1
            return None
        self.reassembled += 1
        for frame in done.frames:
            self._fragment_offsets.pop(frame, None)
        whole = record._replace(
            linktype=int(LinkType.RAW), data=done.datagram, orig_len=len(done.datagram)
        )
        packet = decode_ip(
            done.datagram,
            verify_checksum=self.verify_checksum,
            strict_checksum=self.strict_checksum,
        )
        return whole, packet

    def _report(self, given_up: list[Incomplete]) -> None:
        """One problem line per datagram given up, at its first fragment."""
        for incomplete in given_up:
            self.incomplete += 1
            offsets = [self._fragment_offsets.pop(f, None) for f in incomplete.frames]
            if len(self.decode_problems) < MAX_KEPT_PROBLEMS:
                self.decode_problems.append(
                    CaptureProblem(
                        offsets[0] or 0, f"frame {incomplete.frames[0]}: {incomplete.describe()}"
                    )
                )

    @staticmethod
    def problem(record: Record, exc: WireError) -> CaptureProblem:
        """The decoder's complaint about one frame, at its offset in the file."""
        return CaptureProblem(
            record.data_offset + exc.offset, f"frame {record.index}: {exc.message}"
        )

    @property
    def dropped(self) -> int:
        """Problems found but not kept (to bound memory), reader's and decoder's."""
        return (
            (self.reader.problems_dropped if self.reader is not None else 0)
            + self.undecodable
            + self.incomplete
            - len(self.decode_problems)
        )

    @property
    def skipped(self) -> int:
        """Records not yielded as packets for being malformed (not for not being TCP)."""
        return (self.reader.skipped if self.reader is not None else 0) + self.undecodable

    @property
    def problems(self) -> list[CaptureProblem]:
        """The reader's and the decoder's problems, in file order."""
        read = self.reader.problems if self.reader is not None else []
        return sorted([*read, *self.decode_problems], key=lambda p: p.offset)
