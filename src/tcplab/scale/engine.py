"""The one adapter between tcplab.scale and the analysis engine.

The engine's batch interface is: the packets of a set of flows, in order,
in; connection records out.  Everything in this package that runs the
engine goes through ``tcplab.scale.columns.analysed``, and everything that ships packets
between processes ships the engine's own rows (``tcplab.scale.columns``:
a NumPy array of the C ``Row`` struct), so a change of engine is a change
of these two files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tcplab.analyze.core import Analysis
from tcplab.analyze.engine import _Fallback
from tcplab.analyze.frames import ReadReport
from tcplab.analyze.zeek import DEFAULT_LIKELY_SERVER_PORTS

if TYPE_CHECKING:
    from tcplab.analyze import engine
    from tcplab.analyze.engine import Options, ZeekRecord
    from tcplab.capture.reader import Record


@dataclass(frozen=True, slots=True)
class EngineOptions:
    likely_server_ports: frozenset[int] = DEFAULT_LIKELY_SERVER_PORTS
    ignore_checksums: bool = False
    keep_packets: bool = False
    strict_checksums: bool = False

    def engine(self, evict: bool = True) -> Options:
        """The analysis engine's options (``tcplab.analyze.engine.Options``)."""
        from tcplab.analyze.engine import Options

        return Options(
            self.likely_server_ports,
            self.ignore_checksums,
            self.strict_checksums,
            self.keep_packets,
            evict=evict,
        )


@dataclass(slots=True)
class Records:
    """The engine's records for a batch of flows, kept as its tuples (objects
    are made only for the outputs that need them, ``analysis()``)."""

    connections: list[tuple[Any, ...]]  # in the engine's number order
    zeek: list[ZeekRecord]  # in start order
    packets: list[tuple[Any, ...]]

    def analysis(self, report: ReadReport | None = None) -> Analysis:
        from tcplab.analyze.core import connection_of, packet_of

        return Analysis(
            [connection_of(t) for t in self.connections],
            [packet_of(t) for t in self.packets],
            self.zeek,
            report if report is not None else ReadReport(),
        )


def records_of(batches: Iterable[engine.Batch]) -> Records:
    """The engine's records gathered: connections in number order, Zeek's in
    start order."""
    from tcplab.analyze import engine

    conns: list[tuple[Any, ...]] = []
    zeek: list[tuple[Any, ...]] = []
    packets: list[tuple[Any, ...]] = []
    for batch in batches:
        conns += batch.connections
        zeek += batch.zeek
        packets += batch.packets
    conns.sort(key=lambda t: t[0])
    zrecords = sorted((engine.zeek_record(z) for z in zeek), key=lambda z: (z.start, z.first_frame))
    return Records(conns, zrecords, packets)


def analysis_of(batches: Iterable[engine.Batch], report: ReadReport | None = None) -> Analysis:
    """The engine's records gathered into an ``Analysis``."""
    return records_of(batches).analysis(report)


class _Slow(_Fallback):
    """The frames the fast decoder hands back, decoded by ``tcplab.wire``
    into the rows; fragment problems kept as ``(offset, message)``."""

    def __init__(self, eng: Any, name: str, options: EngineOptions) -> None:
        super().__init__(eng, name, options.engine(evict=False))
        self.fragments: list[tuple[int, str]] = []

    def skipped(self, record: Record, message: str) -> None:
        # Reported as the one-file run reports it (a capture set's lines), and
        # kept by offset for a byte range's own problems (``problems``).
        super().skipped(record, message)
        self.fragments.append((record.data_offset, message))

    def problems(self) -> list[tuple[int, str]]:
        """Every problem the Python decoder found, in offset order."""
        # (no frame handed back: no decoder loaded, no problem of its)
        decoded = self._records.problems if self._records is not None else []
        found = self.fragments + [(p.offset, p.message) for p in decoded]
        return sorted(found)
