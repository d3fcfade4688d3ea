"""The one adapter between tcplab.scale and the analysis engine.

The engine's batch interface is: the segments of a set of flows, in order,
in; connection records out.  Everything in this package that runs the
engine goes through ``analyze_ordered``, and everything that ships
segments between processes goes through ``SEGMENT_SCHEMA`` (the per-packet
columns the engine needs), so a change of engine is a change of this file.

The engine is ``tcplab.analyze.engine.Engine`` (the C engine): one instance
per batch, fed segment by segment, ``finish()`` at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tcplab.analyze.core import Analysis
from tcplab.analyze.frames import NO_OPTIONS, ReadReport, Segment, TcpOptions
from tcplab.analyze.zeek import DEFAULT_LIKELY_SERVER_PORTS
from tcplab.scale.captureset import OrderKey

if TYPE_CHECKING:
    import pyarrow as pa


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
    ``analysis.zeek[i]`` (only when asked for: ``track_keys``); a
    distributed run numbers connections and merges conn.log by them.
    """

    analysis: Analysis
    conn_keys: list[OrderKey] = field(default_factory=list)
    zeek_keys: list[OrderKey] = field(default_factory=list)


def analyze_ordered(
    items: Iterable[tuple[OrderKey, Segment]],
    options: EngineOptions,
    report: ReadReport | None = None,
    track_keys: bool = False,
) -> Batch:
    """Run the engine (``tcplab.analyze.engine``) over segments already in order-key order."""
    from tcplab.analyze import engine
    from tcplab.analyze.core import connection_of, packet_of
    from tcplab.analyze.engine import FIRST_FRAME

    run = engine.Engine(
        engine.Options(
            options.likely_server_ports,
            options.ignore_checksums,
            keep_packets=options.keep_packets,
            evict=False,
        )
    )
    by_frame: dict[int, OrderKey] = {}
    for key, seg in items:
        run.feed_segment(seg)
        if track_keys:
            by_frame[seg.index] = key
    conns, zeek, packets = run.finish()
    conns.sort(key=lambda t: t[0])
    zrecords = sorted((engine.zeek_record(z) for z in zeek), key=lambda z: (z.start, z.first_frame))
    analysis = Analysis(
        [connection_of(t) for t in conns],
        [packet_of(t) for t in packets],
        zrecords,
        report if report is not None else ReadReport(),
    )
    if not track_keys:
        return Batch(analysis)
    conn_keys = [by_frame[t[FIRST_FRAME]] for t in conns]
    zeek_keys = [by_frame[z.first_frame] for z in zrecords]
    return Batch(analysis, conn_keys, zeek_keys)


# -- the per-packet columns the engine needs, as Arrow ---------------------------------

# The Segment fields that travel as they are, in Segment's order.
_PLAIN = (
    "src",
    "dst",
    "sport",
    "dport",
    "seq",
    "ack",
    "flags",
    "window",
    "length",
    "wire_length",
    "captured",
    "ip_len",
    "checksum_ok",
    "ip_checksum_ok",
)

_COLUMNS = (
    "file",
    "range",
    "frame",  # frame ordinal inside the byte range (1-based); made global later
    "time_ns",
    "latest",  # largest time so far inside the range (ns)
    *_PLAIN,
    "mss",
    "wscale",
    "sack_permitted",
    "sack",  # SACK blocks flattened: left, right, left, right, ...
    "ts_val",
    "ts_ecr",
    "dropped",
    "partial_checksum",
)


def segment_schema() -> pa.Schema:
    import pyarrow as pa

    types = {
        "file": pa.uint16(),
        "range": pa.uint32(),
        "frame": pa.uint64(),
        "time_ns": pa.int64(),
        "latest": pa.int64(),
        "src": pa.string(),
        "dst": pa.string(),
        "sport": pa.uint16(),
        "dport": pa.uint16(),
        "seq": pa.uint32(),
        "ack": pa.uint32(),
        "flags": pa.uint16(),
        "window": pa.uint16(),
        "length": pa.uint32(),
        "wire_length": pa.uint32(),
        "captured": pa.uint32(),
        "ip_len": pa.uint32(),
        "checksum_ok": pa.bool_(),
        "ip_checksum_ok": pa.bool_(),
        "mss": pa.uint16(),
        "wscale": pa.uint8(),
        "sack_permitted": pa.bool_(),
        "sack": pa.list_(pa.uint32()),
        "ts_val": pa.uint32(),
        "ts_ecr": pa.uint32(),
        "dropped": pa.bool_(),
        "partial_checksum": pa.bool_(),
    }
    return pa.schema([(name, types[name]) for name in _COLUMNS])


class SegmentColumns:
    """Segments of one byte range gathered column by column."""

    def __init__(self, file_id: int, range_id: int) -> None:
        self.file_id = file_id
        self.range_id = range_id
        self.cols: dict[str, list[object]] = {name: [] for name in _COLUMNS[2:]}
        self.latest = -(1 << 63)

    def __len__(self) -> int:
        return len(self.cols["frame"])

    def add(self, frame: int, seg: Segment) -> None:
        c = self.cols
        time_ns = seg.time_ns
        self.latest = max(self.latest, time_ns)
        opts = seg.options
        c["frame"].append(frame)
        c["time_ns"].append(time_ns)
        c["latest"].append(self.latest)
        c["src"].append(seg.src)
        c["dst"].append(seg.dst)
        c["sport"].append(seg.sport)
        c["dport"].append(seg.dport)
        c["seq"].append(seg.seq)
        c["ack"].append(seg.ack)
        c["flags"].append(seg.flags)
        c["window"].append(seg.window)
        c["length"].append(seg.length)
        c["wire_length"].append(seg.wire_length)
        c["captured"].append(seg.captured)
        c["ip_len"].append(seg.ip_len)
        c["checksum_ok"].append(seg.checksum_ok)
        c["ip_checksum_ok"].append(seg.ip_checksum_ok)
        c["mss"].append(opts.mss)
        c["wscale"].append(opts.wscale)
        c["sack_permitted"].append(opts.sack_permitted)
        c["sack"].append([x for block in opts.sack_blocks for x in block])
        c["ts_val"].append(opts.ts_val)
        c["ts_ecr"].append(opts.ts_ecr)
        c["dropped"].append(seg.dropped)
        c["partial_checksum"].append(seg.partial_checksum)

    def table(self, rows: Sequence[int] | None = None) -> pa.Table:
        """The columns as an Arrow table (only ``rows`` when given)."""
        import pyarrow as pa

        schema = segment_schema()
        n = len(self) if rows is None else len(rows)
        arrays = [
            pa.array([self.file_id] * n, pa.uint16()),
            pa.array([self.range_id] * n, pa.uint32()),
        ]
        for name in _COLUMNS[2:]:
            values = self.cols[name]
            if rows is not None:
                values = [values[i] for i in rows]
            arrays.append(pa.array(values, schema.field(name).type))
        return pa.Table.from_arrays(arrays, schema=schema)


def iter_segments(table: pa.Table, index: Sequence[int], rows: int = 65536) -> Iterator[Segment]:
    """Segments back from their columns, ``rows`` at a time (the Arrow table is
    compact; the Python objects exist only a slice at a time)."""
    for start in range(0, table.num_rows, rows):
        yield from segments_of(table.slice(start, rows), index[start : start + rows])


def segments_of(table: pa.Table, index: Sequence[int]) -> list[Segment]:
    """Segments back from their columns; ``index`` is each row's engine frame index."""
    d = table.to_pydict()
    out: list[Segment] = []
    options = zip(
        d["mss"], d["wscale"], d["sack_permitted"], d["sack"], d["ts_val"], d["ts_ecr"], strict=True
    )
    plain = zip(*(d[name] for name in _PLAIN), strict=True)
    rows = zip(
        index, d["time_ns"], plain, options, d["dropped"], d["partial_checksum"], strict=True
    )
    for frame, time_ns, fields, opt, dropped, partial in rows:
        mss, wscale, sack_ok, sack, ts_val, ts_ecr = opt
        if mss is None and wscale is None and not sack_ok and not sack and ts_val is None:
            opts = NO_OPTIONS
        else:
            blocks = tuple(zip(sack[0::2], sack[1::2], strict=True))
            opts = TcpOptions(mss, wscale, sack_ok, blocks, ts_val, ts_ecr)
        out.append(
            Segment._make((frame, time_ns / 1e9, time_ns, *fields, opts, b"", dropped, partial))
        )
    return out
