"""The Parquet tables: connections and packets (schema in docs/schema.md).

A dataset is a directory: ``DIR/connections/part-NNNNN.parquet`` and, with
``--parquet-packets``, ``DIR/packets/part-NNNNN.parquet``.  A single-process
run writes one part, a distributed run one per flow-hash partition; the
schema is the same, so ``read_parquet('DIR/connections/*.parquet')`` in
DuckDB (or ``pyarrow.dataset``, pandas, Polars, Spark) reads either.

Times are ``timestamp[ns, UTC]`` and durations ``duration[ns]``; the
engine keeps float seconds, which at today's epoch hold about 0.24 µs, so
values are rounded to the microsecond.  Ports are ``uint16``.  Strings that
take few values (states, endings, conn_state, the direction) are
dictionary-encoded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tcplab.analyze.core import Connection, PacketRecord
from tcplab.analyze.output import zeek_uid
from tcplab.analyze.wireshark import FLAG_NAMES
from tcplab.scale.captureset import decode_frame

if TYPE_CHECKING:
    import pyarrow as pa

ANOMALY_NAMES: tuple[str, ...] = (*FLAG_NAMES, "bad_checksum")
SIDES = ("client", "server")


def _dict_string() -> pa.DataType:
    import pyarrow as pa

    return pa.dictionary(pa.int32(), pa.string())


def connections_schema() -> pa.Schema:
    import pyarrow as pa

    ts = pa.timestamp("ns", tz="UTC")
    dur = pa.duration("ns")
    fields: list[tuple[str, pa.DataType]] = [("connection", pa.uint32())]
    for side in SIDES:
        fields += [(f"{side}_address", pa.string()), (f"{side}_port", pa.uint16())]
    fields += [
        ("roles_known", pa.bool_()),
        ("start", ts),
        ("end", ts),
        ("duration", dur),
    ]
    for side in SIDES:
        fields += [(f"{side}_packets", pa.uint64()), (f"{side}_bytes", pa.uint64())]
    fields += [
        ("handshake_seen", pa.bool_()),
        ("rtt_syn_synack", dur),
        ("rtt_synack_ack", dur),
    ]
    for side in SIDES:
        fields += [
            (f"{side}_mss", pa.uint16()),
            (f"{side}_wscale", pa.uint8()),
            (f"{side}_sack_permitted", pa.bool_()),
            (f"{side}_timestamps", pa.bool_()),
        ]
    fields += [
        ("client_state", _dict_string()),
        ("server_state", _dict_string()),
        ("active_closer", _dict_string()),
        ("ending", _dict_string()),
        ("conn_state", _dict_string()),
        ("history", pa.string()),
        ("uid", pa.string()),
    ]
    fields += [(f"anomaly_{name}", pa.uint32()) for name in ANOMALY_NAMES]
    fields += [("dropped_by_wire", pa.uint32()), ("notes", pa.list_(pa.string()))]
    return pa.schema(fields)


def packets_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("file", _dict_string()),
            ("frame", pa.uint64()),
            ("time", pa.timestamp("ns", tz="UTC")),
            ("connection", pa.uint32()),
            ("direction", _dict_string()),
            ("flags", pa.uint16()),
            ("flag_text", _dict_string()),
            ("rel_seq", pa.uint32()),
            ("rel_ack", pa.uint32()),
            ("next_seq", pa.uint32()),
            ("length", pa.uint32()),
            ("window", pa.uint32()),
            ("analysis", pa.list_(pa.string())),
            ("dupack_num", pa.uint32()),
            ("client_state", _dict_string()),
            ("server_state", _dict_string()),
            ("dropped_by_wire", pa.bool_()),
        ]
    )


def _ns(t: float | None) -> int | None:
    """Seconds to integer nanoseconds, rounded to the microsecond."""
    return None if t is None else round(t * 1e6) * 1000


def _state(s: object) -> str:
    return str(s) if s is not None else "unknown"


def _table(schema: pa.Schema, cols: dict[str, list[object]]) -> pa.Table:
    import pyarrow as pa

    arrays = []
    for f in schema:
        values = cols[f.name]
        if pa.types.is_dictionary(f.type):
            arrays.append(pa.array(values, pa.string()).dictionary_encode())
        else:
            arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def connections_table(conns: Sequence[Connection], numbers: Sequence[int]) -> pa.Table:
    """One row per connection; ``numbers[i]`` is ``conns[i]``'s connection id."""
    schema = connections_schema()
    cols: dict[str, list[object]] = {f.name: [] for f in schema}

    def put(name: str, value: object) -> None:
        cols[name].append(value)

    for c, number in zip(conns, numbers, strict=True):
        put("connection", number)
        for name, side in (("client", c.client), ("server", c.server)):
            put(f"{name}_address", side.address)
            put(f"{name}_port", side.port)
            put(f"{name}_packets", side.packets)
            put(f"{name}_bytes", side.payload_bytes)
            put(f"{name}_mss", side.mss)
            put(f"{name}_wscale", side.wscale)
            put(f"{name}_sack_permitted", side.sack_permitted)
            put(f"{name}_timestamps", side.timestamps)
            put(f"{name}_state", _state(side.final_state))
        put("roles_known", c.roles_known)
        put("start", _ns(c.start))
        put("end", _ns(c.end))
        put("duration", _ns(c.duration))
        put("handshake_seen", c.handshake_seen)
        put("rtt_syn_synack", _ns(c.rtt_syn_synack))
        put("rtt_synack_ack", _ns(c.rtt_synack_ack))
        put("active_closer", c.active_closer)
        put("ending", c.ending)
        put("conn_state", c.zeek_conn_state)
        put("history", c.zeek_history)
        put("uid", zeek_uid(c.zeek) if c.zeek is not None else None)
        for name in ANOMALY_NAMES:
            put(f"anomaly_{name}", c.anomalies.get(name, 0))
        put("dropped_by_wire", len(c.dropped_by_wire))
        put("notes", list(c.notes))
    return _table(schema, cols)


def packets_table(
    packets: Sequence[PacketRecord], numbers: dict[int, int], file_names: Sequence[str]
) -> pa.Table:
    """One row per packet; ``numbers`` maps the engine's stream number to the
    connection id, ``file_names`` a file number to the ``file`` column."""
    schema = packets_schema()
    cols: dict[str, list[object]] = {f.name: [] for f in schema}
    for p in packets:
        file_id, frame = decode_frame(p.index)
        cols["file"].append(file_names[file_id])
        cols["frame"].append(frame)
        cols["time"].append(_ns(p.time))
        cols["connection"].append(numbers[p.stream])
        cols["direction"].append("client->server" if p.sender == "client" else "server->client")
        cols["flags"].append(p.flags)
        cols["flag_text"].append(p.flag_text)
        cols["rel_seq"].append(p.rel_seq)
        cols["rel_ack"].append(p.rel_ack)
        cols["next_seq"].append(p.nxtseq)
        cols["length"].append(p.length)
        cols["window"].append(p.window)
        cols["analysis"].append(sorted(p.analysis))
        cols["dupack_num"].append(p.dupack_num)
        cols["client_state"].append(_state(p.client_state))
        cols["server_state"].append(_state(p.server_state))
        cols["dropped_by_wire"].append(p.dropped_by_wire)
    return _table(schema, cols)


TABLES = ("connections", "packets")


def prepare_dataset(root: str | os.PathLike[str], packets: bool) -> None:
    """Create ``root/connections`` (and ``root/packets``), removing the parts
    a previous run left there, so the dataset is this run's only."""
    for name in TABLES[: 2 if packets else 1]:
        d = Path(root) / name
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("part-*.parquet"):
            old.unlink()


def part_path(root: str | os.PathLike[str], name: str, part: int) -> Path:
    """Where part ``part`` of table ``name`` goes (``prepare_dataset`` clears them)."""
    return Path(root) / name / f"part-{part:05d}.parquet"


def write_part(root: str | os.PathLike[str], name: str, part: int, table: pa.Table) -> str:
    import pyarrow.parquet as pq

    path = part_path(root, name, part)
    pq.write_table(table, path, row_group_size=256 * 1024)
    return str(path)


class PartWriter:
    """One part of a table written a row group at a time (a distributed
    run's stage 3, which reads its records a batch at a time): tables are
    gathered up to ``ROW_GROUP`` rows, then written, so memory holds one row
    group, not the partition.  A part with no rows is written empty."""

    ROW_GROUP = 64 * 1024

    def __init__(
        self, root: str | os.PathLike[str], name: str, part: int, schema: pa.Schema
    ) -> None:
        self.path = part_path(root, name, part)
        self.schema = schema
        self.pending: list[pa.Table] = []
        self.rows = 0
        self.writer: Any = None

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        if self.rows >= self.ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema)
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=self.ROW_GROUP)
        self.pending, self.rows = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()
