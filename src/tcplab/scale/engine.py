"""The one adapter between tcplab.scale and the analysis engine.

The engine's batch interface is: the packets of a set of flows, in order,
in; connection records out.  Everything in this package that runs the
engine goes through ``analyze_rows``, and everything that ships packets
between processes ships the engine's own rows (``tcplab.scale.columns``:
a NumPy array of the C ``Pkt`` struct), so a change of engine is a change
of these two files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tcplab.analyze.core import Analysis
from tcplab.analyze.frames import ReadReport
from tcplab.analyze.zeek import DEFAULT_LIKELY_SERVER_PORTS
from tcplab.scale.captureset import OrderKey

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from tcplab.analyze import engine
    from tcplab.analyze.engine import Options


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
class Batch:
    """The engine's output for one batch of flows.

    ``conn_keys[i]`` is the order key of the first packet of
    ``analysis.connections[i]`` and ``zeek_keys[i]`` that of
    ``analysis.zeek[i]`` (only when asked for: ``key_of``); a distributed
    run numbers connections and merges conn.log by them.
    """

    analysis: Analysis
    conn_keys: list[OrderKey] = field(default_factory=list)
    zeek_keys: list[OrderKey] = field(default_factory=list)


def analyze_rows(
    rows: Iterable[NDArray[Any]],
    options: EngineOptions,
    report: ReadReport | None = None,
    key_of: Callable[[list[int]], list[OrderKey]] | None = None,
) -> Batch:
    """Run the engine over rows already in order-key order (``tcplab.scale.columns``).

    ``key_of`` maps frames (row indexes) to their order keys."""
    from tcplab.scale.columns import analysed

    return analysis_of(analysed(rows, options.engine()), report, key_of)


def analysis_of(
    batches: Iterable[engine.Batch],
    report: ReadReport | None = None,
    key_of: Callable[[list[int]], list[OrderKey]] | None = None,
) -> Batch:
    """The engine's records gathered into an ``Analysis`` (connections in
    number order, Zeek's in start order)."""
    from tcplab.analyze import engine
    from tcplab.analyze.core import connection_of, packet_of
    from tcplab.analyze.engine import FIRST_FRAME

    conns: list[tuple[Any, ...]] = []
    zeek: list[tuple[Any, ...]] = []
    packets: list[tuple[Any, ...]] = []
    for batch in batches:
        conns += batch.connections
        zeek += batch.zeek
        packets += batch.packets
    conns.sort(key=lambda t: t[0])
    zrecords = sorted((engine.zeek_record(z) for z in zeek), key=lambda z: (z.start, z.first_frame))
    analysis = Analysis(
        [connection_of(t) for t in conns],
        [packet_of(t) for t in packets],
        zrecords,
        report if report is not None else ReadReport(),
    )
    if key_of is None:
        return Batch(analysis)
    conn_keys = key_of([t[FIRST_FRAME] for t in conns])
    zeek_keys = key_of([z.first_frame for z in zrecords])
    return Batch(analysis, conn_keys, zeek_keys)
