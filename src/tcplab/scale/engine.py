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


@dataclass(frozen=True, slots=True)
class EngineOptions:
    likely_server_ports: frozenset[int] = DEFAULT_LIKELY_SERVER_PORTS
    ignore_checksums: bool = False
    keep_packets: bool = False


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
    batches: Iterable[NDArray[Any]],
    options: EngineOptions,
    report: ReadReport | None = None,
    key_of: Callable[[list[int]], list[OrderKey]] | None = None,
) -> Batch:
    """Run the engine over rows already in order-key order (``tcplab.scale.columns``).

    ``key_of`` maps frames (row indexes) to their order keys."""
    from tcplab.analyze import engine
    from tcplab.analyze.core import connection_of, packet_of
    from tcplab.analyze.engine import FIRST_FRAME
    from tcplab.scale.columns import analyse

    conns, zeek, packets = analyse(batches, options)
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
