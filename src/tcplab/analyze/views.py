"""Views of the engine's output, streamed: the terminal overview, JSON lines,
conn.log, per-packet lines (text or JSON), and the ``--jobs N`` runner.

Theory of operation: a view has two halves.  ``render(batch)`` turns one
``engine.Batch`` into a payload (text lines keyed for ordering, or a partial
aggregate) and runs where the engine runs; ``take(payload)`` writes or
merges it and runs in the process that owns stdout.  With ``--jobs N`` each
of N processes runs the engine on its shard of the flows (the unordered
5-tuple's hash): it skips the other shards' packets right after their
headers and renders its own batches, naming each stream by its first frame.
Every shard reads the same chunks of the same file, so batch j of every
shard covers the same stretch of the capture; the merge (``Numbering``)
numbers the streams the j-th batches started in first-frame order, as one
process numbers them, puts those numbers into the few places the text shows
one (``renumber``), and merges the payloads by number (frame number for
packets): the output of one process exactly.

Memory is bounded by the batch: nothing is kept across batches except the
overview's counters, its worst-connections heap and its first page of rows.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import stat
import sys
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any, ClassVar, Protocol

from tcplab.analyze import engine, rowruns
from tcplab.analyze.core import ANOMALY_NAMES, Connection, connection_of, packet_of
from tcplab.analyze.frames import ReadReport
from tcplab.analyze.output import (
    conn_log_footer,
    conn_log_header,
    conn_log_row,
    packet_line,
    packet_object,
)
from tcplab.analyze.wireshark import PROBLEM_FLAGS
from tcplab.errors import InputError, TcplabError

Keyed = list[tuple[Any, str]]  # (ordering key, text)


@dataclass(frozen=True, slots=True)
class Filter:
    """--conn / --host / --port / --problems."""

    conn: int | None = None
    host: str | None = None
    port: int | None = None
    problems: bool = False

    @property
    def active(self) -> bool:
        return (
            self.conn is not None
            or self.host is not None
            or self.port is not None
            or (self.problems)
        )

    def __call__(self, c: Connection) -> bool:
        if self.conn is not None and c.number != self.conn:
            return False
        if self.host is not None and self.host not in (c.client.address, c.server.address):
            return False
        if self.port is not None and self.port not in (c.client.port, c.server.port):
            return False
        return not self.problems or c.has_problems


class Spool:
    """Rows out in key order with bounded memory: sorted runs of at most
    ``limit`` bytes spill to temporary files and are merged at the end.  A
    row counts its text and what Python holds it in (ROW_COST: the row and
    key tuples, the number objects, the string header), so the limit is the
    memory the rows take, whatever their length."""

    ROW_COST = 200

    def __init__(self, limit: int = 32 << 20) -> None:
        self.limit = limit
        self.rows: list[tuple[Any, str]] = []
        self.size = 0
        self.runs: list[IO[bytes]] = []

    def add(self, rows: Keyed) -> None:
        self.rows += rows
        self.size += sum(len(text) for _, text in rows) + self.ROW_COST * len(rows)
        if self.size > self.limit:
            self._spill()

    def _spill(self) -> None:
        import pickle  # (here and below: a small capture never spills, nor pays for them)
        import tempfile

        run = tempfile.TemporaryFile()  # noqa: SIM115 - closed once merged (_read)
        self.rows.sort(key=lambda r: r[0])
        pickler = pickle.Pickler(run, protocol=pickle.HIGHEST_PROTOCOL)
        for i in range(0, len(self.rows), 4096):
            pickler.dump(self.rows[i : i + 4096])
        run.seek(0)
        self.runs.append(run)
        self.rows, self.size = [], 0

    @staticmethod
    def _read(run: IO[bytes]) -> Iterator[tuple[Any, str]]:
        import pickle

        unpickler = pickle.Unpickler(run)
        while True:
            try:
                yield from unpickler.load()
            except EOFError:
                run.close()
                return

    def drain(self) -> Iterator[str]:
        self.rows.sort(key=lambda r: r[0])
        if not self.runs:
            yield from (text for _, text in self.rows)
            return
        runs = [self._read(run) for run in self.runs]
        yield from (text for _, text in heapq.merge(*runs, self.rows, key=lambda r: r[0]))


class View(Protocol):
    def render(self, batch: engine.Batch) -> Any: ...
    def merge(self, parts: list[Any], numbers: Numbering) -> Any: ...
    def take(self, payload: Any) -> None: ...
    def finish(self, report: ReadReport) -> None: ...


class Numbering:
    """Stream numbers for ``--jobs N``: a shard names a stream by its first
    frame; the merge numbers the streams every shard started in a batch in
    first-frame order after those of the batches before (Wireshark's
    tcp.stream: order of first appearance), and forgets a stream once its
    records went out, so it holds only the open ones."""

    def __init__(self) -> None:
        self.next = 0
        self.open: dict[int, int] = {}

    def start(self, started: list[bytes]) -> None:
        runs = [array("q", raw) for raw in started if raw]
        for first in heapq.merge(*runs) if len(runs) > 1 else runs[0] if runs else ():
            self.open[first] = self.next
            self.next += 1

    def end(self, ended: list[bytes]) -> None:
        for raw in ended:
            for first in array("q", raw):
                del self.open[first]

    def __getitem__(self, first: int) -> int:
        return self.open[first]


def renumber(text: str, at: str, old: int, new: int, spec: str = "") -> str:
    """``text`` with the stream number ``old`` that follows the first ``at``
    (formatted with ``spec``, as the renderer wrote it) replaced by ``new``."""
    i = text.index(at) + len(at) if at else 0
    return text[:i] + format(new, spec) + text[i + len(format(old, spec)) :]


def _renumber_rows(rows: Keyed, numbers: Numbering, at: str, spec: str = "") -> Keyed:
    """Rows keyed by a stream's first frame, keyed and shown by its number."""
    out = []
    for first, text in rows:
        n = numbers[first]
        out.append((n, renumber(text, at, first, n, spec)))
    return out


# -- connections as JSON lines ------------------------------------------------------


@dataclass(slots=True)
class JsonView:
    """Connections in number order (as a one-file and a capture-set run give them)."""

    out: IO[str]
    keep: Filter = field(default_factory=Filter)
    spool: Spool = field(default_factory=Spool)
    AT: ClassVar[str] = '{"connection": '  # what a row's number follows (to_dict's first key)

    def render(self, batch: engine.Batch) -> Keyed:
        rows = []
        for t in batch.connections:
            c = connection_of(t)
            if self.keep(c):
                rows.append((c.number, json.dumps(c.to_dict()) + "\n"))
        return rows

    def merge(self, parts: list[Keyed], numbers: Numbering) -> Keyed:
        return sorted(row for part in parts for row in _renumber_rows(part, numbers, self.AT))

    def take(self, payload: Keyed) -> None:
        self.spool.add(payload)

    def finish(self, report: ReadReport) -> None:
        self.out.writelines(self.spool.drain())
        self.out.flush()


@dataclass(slots=True)
class SummaryJsonView(JsonView):
    """``--summary --json``: one short object per connection (the columns the
    old columnar summary had), from the same engine."""

    def render(self, batch: engine.Batch) -> Keyed:
        rows = []
        for t in batch.connections:
            c = connection_of(t)
            if self.keep(c):
                rows.append((c.number, json.dumps(summary_object(c)) + "\n"))
        return rows

    AT: ClassVar[str] = '{"number": '


def summary_object(c: Connection) -> dict[str, object]:
    return {
        "number": c.number,
        "client": c.client.label,
        "server": c.server.label,
        "start": c.start,
        "duration": c.duration,
        "packets": [c.client.packets, c.server.packets],
        "payload": [c.client.payload_bytes, c.server.payload_bytes],
        "retransmissions": [c.client.not_advanced, c.server.not_advanced],
        "syn_synack": c.rtt_syn_synack,
        "synack_ack": c.rtt_synack_ack,
        "closer": c.active_closer,
        "ending": c.ending,
    }


# -- Zeek's conn.log --------------------------------------------------------------


# A batch of conn.log rows the engine formatted: (rows, keys), Batch.zeek_rows
# and .zeek_row_keys; or, formatted here, (keyed rows, first start, last time).
EngineRows = tuple[bytes, bytes]
LogRows = tuple[Keyed, float, float]


@dataclass(slots=True)
class ConnLogView:
    """conn.log in start order (as the capture-set runs write it); ``#open``
    is the first connection's start, ``#close`` the last packet's time.

    Without a connection filter the engine formats the rows
    (``engine_options``: Options.conn_log_rows) and they stay bytes with a
    NumPy key array (``row_spool``); with one, the rows are formatted here
    from the Zeek records (output.conn_log_row: the reference, which
    tests/test_engine_conn_log.py holds the engine's rows to)."""

    out: IO[str]
    keep: Filter = field(default_factory=Filter)
    spool: Spool = field(default_factory=Spool)
    first: float | None = None
    last: float = 0.0
    # The engine's rows: in ``rows`` (made when they pass SMALL bytes, so a
    # small capture's conn.log loads no NumPy), until then in ``small``.
    rows: rowruns.Runs | None = None
    small: list[EngineRows] = field(default_factory=list)
    small_size: int = 0
    SMALL: ClassVar[int] = 1 << 20

    def engine_options(self, options: engine.Options) -> engine.Options:
        """``options`` with the engine formatting the rows, when every
        connection's row is written (no filter)."""
        if self.keep.active:
            return options
        return replace(options, conn_log_rows=True, connection_records=False)

    def render(self, batch: engine.Batch) -> LogRows | EngineRows:
        if batch.zeek_rows is not None and batch.zeek_row_keys is not None:
            return batch.zeek_rows, batch.zeek_row_keys
        records = [engine.zeek_record(z) for z in batch.zeek]
        if self.keep.active:
            ids = {
                i for t in batch.connections if self.keep(c := connection_of(t)) for i in c.zeek_ids
            }
            records = [z for z in records if z.first_frame in ids]
        first = min((z.start for z in records), default=0.0)
        last = max((z.last_time for z in records), default=0.0)
        rows = sorted(records, key=lambda z: (z.start, z.first_frame))
        return [((z.start, z.first_frame), conn_log_row(z)) for z in rows], first, last

    def merge(self, parts: list[Any], numbers: Numbering) -> LogRows | EngineRows:
        # conn.log shows no stream numbers (its rows are keyed by first frames)
        if parts and len(parts[0]) == 2:  # the engine's rows: ordered by the spool
            return b"".join(p[0] for p in parts), b"".join(p[1] for p in parts)
        rows = sorted((row for part in parts for row in part[0]), key=lambda r: r[0])
        return (
            rows,
            min((p[1] for p in parts if p[0]), default=0.0),
            max((p[2] for p in parts), default=0.0),
        )

    def take(self, payload: LogRows | EngineRows) -> None:
        if len(payload) == 2:
            text, raw = payload
            if not text:
                return
            self.span(*rowruns.row_span(raw))
            self.small.append((text, raw))
            self.small_size += len(text) + len(raw)
            if self.rows is not None or self.small_size > self.SMALL:
                self._spool_small()
            return
        rows, first, last = payload
        if not rows:
            return
        self.spool.add(rows)
        self.span(first, last)

    def span(self, first: float, last: float) -> None:
        """Widen #open/#close to rows from ``first`` to ``last``."""
        self.first = first if self.first is None else min(self.first, first)
        self.last = max(self.last, last)

    def _spool_small(self) -> rowruns.Runs:
        if self.rows is None:
            self.rows = row_spool()
        for text, raw in self.small:
            self.rows.add(text, engine.zeek_row_keys_of(raw))
        self.small, self.small_size = [], 0
        return self.rows

    def finish(self, report: ReadReport) -> None:
        self.out.write(conn_log_header(self.first or 0.0))
        # (one of the engine's rows and self.spool is only ever filled: options decide)
        if self.rows is None:
            write_bytes(self.out, small_rows(self.small))
        else:
            for chunk in self._spool_small().drain():
                write_bytes(self.out, chunk)
        self.out.writelines(self.spool.drain())
        self.out.write(conn_log_footer(self.last))
        self.out.flush()


def small_rows(parts: list[EngineRows]) -> bytes:
    """A few of the engine's rows in conn.log order, sorted here (as Spool
    sorts the keyed rows) rather than through NumPy, which a small capture's
    run would load for it."""
    step, at = rowruns.key_fields()
    keyed: list[tuple[tuple[float, int], bytes]] = []
    for text, raw in parts:
        doubles, ints = memoryview(raw).cast("d"), memoryview(raw).cast("q")
        starts = doubles[at["start"] :: step]
        frames = ints[at["first_frame"] :: step]
        offset = 0
        for start, frame, length in zip(starts, frames, ints[at["length"] :: step], strict=True):
            keyed.append(((start, frame), text[offset : offset + length]))
            offset += length
    keyed.sort(key=lambda r: r[0])
    return b"".join(text for _, text in keyed)


def row_spool(limit: int = rowruns.LIMIT, block: int = rowruns.BLOCK) -> rowruns.Runs:
    """``Spool`` for the engine's conn.log rows: bytes, with their key array
    (engine.zeek_row_key()), out in conn.log order, as Spool orders
    ConnLogView's keyed rows; no Python object per row (tcplab.analyze.rowruns)."""
    return rowruns.Runs(engine.zeek_row_key(), rowruns.LOG_ORDER, limit, block=block)


# -- per-packet lines -----------------------------------------------------------------


@dataclass(slots=True)
class PacketsView:
    """One line (or JSON object) per packet, as the engine analyses it; times
    relative to the capture's first packet unless ``absolute``.

    When the engine runs with ``Options.packet_lines`` (``packet_options``),
    it formats the lines itself and a batch carries them as bytes, written
    out whole; otherwise (and as the reference, tests/test_engine_lines.py)
    they are formatted here from the packet records."""

    out: IO[str]
    keep: Filter = field(default_factory=Filter)
    as_json: bool = False
    absolute: bool = False
    base: float | None = None

    def packet_options(self, options: engine.Options) -> engine.Options:
        """``options`` with the engine formatting this view's lines."""
        return replace(
            options,
            keep_packets=True,
            keep_stream=-1 if self.keep.conn is None else self.keep.conn,
            packet_lines=engine.PacketLines(
                self.as_json, self.absolute, self.keep.host, self.keep.port
            ),
        )

    def render(self, batch: engine.Batch) -> Keyed | bytes | tuple[bytes, bytes]:
        if batch.lines is not None:
            if batch.frames is None:
                return batch.lines
            return batch.lines, batch.frames  # a shard's: merge_lines renumbers and merges

        rows: Keyed = []
        base = self.base
        for t in batch.packets:
            p = packet_of(t)
            if self.keep.conn is not None and p.stream != self.keep.conn:
                continue
            if self.keep.host is not None and self.keep.host not in (p.src, p.dst):
                continue
            if self.keep.port is not None and self.keep.port not in (p.sport, p.dport):
                continue
            if base is None:
                base = 0.0 if self.absolute else batch.first_time / 1e9
                self.base = base
            # keyed by frame; the stream for the merge's renumber
            if self.as_json:
                rows.append(((p.index, p.stream), json.dumps(packet_object(p, base)) + "\n"))
            else:
                rows.append(((p.index, p.stream), packet_line(p, None, base) + "\n"))
        return rows

    def merge(self, parts: list[Any], numbers: Numbering) -> Keyed | bytes:
        if parts and isinstance(parts[0], tuple):  # the engine's lines
            return engine.merge_lines(parts, numbers.open, self.as_json)
        at, spec = ('"connection": ', "") if self.as_json else (" conn ", "<4")
        out = []
        for part in parts:
            for (index, first), text in part:
                n = numbers[first]
                out.append(((index, n), renumber(text, at, first, n, spec)))
        return sorted(out)

    def take(self, payload: Keyed | bytes) -> None:
        if isinstance(payload, bytes):
            write_bytes(self.out, payload)
        else:
            self.out.writelines(text for _, text in sorted(payload))

    def finish(self, report: ReadReport) -> None:
        self.out.flush()


def write_bytes(out: IO[str], data: bytes) -> None:
    """UTF-8 text, already encoded, to a text stream: straight to its buffer
    when it has one that takes UTF-8."""
    if not data:
        return
    buffer = getattr(out, "buffer", None)
    encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    if buffer is not None and encoding == "utf8":
        out.flush()
        buffer.write(data)
    else:
        out.write(data.decode())


# -- the terminal overview ------------------------------------------------------------

PAGE = 20
WORST = 5


@dataclass(slots=True)
class Overview:
    """What a big capture needs first: counts by ending and conn_state,
    anomalies by kind, the worst connections, then one page of rows."""

    page: int | None = PAGE  # None: every row (--all)
    keep: Filter = field(default_factory=Filter)
    connections: int = 0
    shown: int = 0
    packets: int = 0
    endings: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    worst: list[tuple[int, int, Row]] = field(default_factory=list)  # (score, -number, row)
    rows: list[tuple[int, Row]] = field(default_factory=list)  # heap of (-number, row)
    sharded: bool = False  # a part of --jobs N: numbers are first frames until the merge

    def render(self, batch: engine.Batch) -> Overview:
        part = Overview(self.page, self.keep, sharded=batch.numbering is not None)
        if batch.tally is None:
            for t in batch.connections:
                part.add(connection_of(t))
            return part
        # The engine counted every connection (Options.overview) and gave the
        # records of those this view may still show: rows only for them.
        if self.keep.active:
            raise ValueError("the engine's tally counts every connection: no filters")
        conns, packets, endings, states, anomalies = batch.tally
        part.connections = part.shown = conns
        part.packets = packets
        part.endings.update(endings)
        part.states.update(states)
        part.anomalies.update({k: n for k, n in zip(ANOMALY_NAMES, anomalies, strict=True) if n})
        for t in batch.connections:
            part.add_rows(connection_of(t))
        return part

    def add(self, c: Connection) -> None:
        """The reference: one connection counted and, if it may be shown, rendered
        (_engine.c's tally_add counts the same way; tests/test_views.py)."""
        self.connections += 1
        if not self.keep(c):
            return
        self.shown += 1
        self.packets += c.client.packets + c.server.packets
        ending = c.ending
        self.endings[ending.split(" (")[0]] += 1
        self.states[c.zeek_conn_state or "-"] += 1
        self.anomalies.update(c.anomalies)
        self.add_rows(c)

    def add_rows(self, c: Connection) -> None:
        """``c`` among the worst and on the first page, if it is one of them."""
        score = sum(n for name, n in c.anomalies.items() if name in PROBLEM_FLAGS)
        # Only the connections that can still be shown are kept, as text only
        # for --all (every row is shown): the others are rendered by text().
        if score and (len(self.worst) < WORST or (score, -c.number) > self.worst[0][:2]):
            item: tuple[int, int, Row] = (score, -c.number, c)
            if len(self.worst) < WORST:
                heapq.heappush(self.worst, item)
            else:
                heapq.heappushpop(self.worst, item)
        row = connection_row(c) if self.page is None and not self.sharded else c
        if self.page is None or len(self.rows) < self.page:
            heapq.heappush(self.rows, (-c.number, row))
        elif -c.number > self.rows[0][0]:
            heapq.heappushpop(self.rows, (-c.number, row))

    def merge(self, parts: list[Overview], numbers: Numbering) -> Overview:
        first = self.renumber(parts[0], numbers)
        for part in parts[1:]:
            first.take(self.renumber(part, numbers))
        return first

    def renumber(self, part: Overview, numbers: Numbering) -> Overview:
        """A shard's rows are connections (a row's layout depends on its
        number's width): numbered here, rendered here for ``--all`` (each is
        shown) and at the end otherwise (``text``)."""
        done: set[int] = set()  # a connection can be a row and one of the worst

        def numbered(c: Row) -> Connection:
            assert isinstance(c, Connection)
            if id(c) not in done:
                c.number = numbers[c.number]
                done.add(id(c))
            return c

        rows: list[tuple[int, Row]] = []
        for _, row in part.rows:
            c = numbered(row)
            rows.append((-c.number, connection_row(c) if self.page is None else c))
        part.rows = rows
        part.worst = [(score, -(c := numbered(row)).number, c) for score, _, row in part.worst]
        return part

    def take(self, part: Overview) -> None:
        self.connections += part.connections
        self.shown += part.shown
        self.packets += part.packets
        self.endings.update(part.endings)
        self.states.update(part.states)
        self.anomalies.update(part.anomalies)
        for item in part.worst:
            if len(self.worst) < WORST:
                heapq.heappush(self.worst, item)
            else:
                heapq.heappushpop(self.worst, item)
        for number, row in part.rows:
            if self.page is None or len(self.rows) < self.page:
                heapq.heappush(self.rows, (number, row))
            elif number > self.rows[0][0]:
                heapq.heappushpop(self.rows, (number, row))

    def text(self, name: str, report: ReadReport) -> str:
        out = [
            f"{name}: {_count(self.connections, 'TCP connection')}, "
            f"{_count(report.tcp, 'TCP packet')} in {_count(report.frames, 'frame')}"
        ]
        if self.keep.active:
            out[0] += f" ({self.shown:,} match the filters)"
        if not self.shown:
            if report.tcp == 0:
                out.append(f"no TCP packets in {report.frames} frames")
            return "\n".join(out) + "\n"
        out.append("")
        left = [f"{'ended':<32}{'conns':>8}"] + [f"{k:<32}{v:>8,}" for k, v in _most(self.endings)]
        right = [f"{'zeek conn_state':<16}{'conns':>8}"] + [
            f"{k:<16}{v:>8,}" for k, v in _most(self.states)
        ]
        for i in range(max(len(left), len(right))):
            a = left[i] if i < len(left) else ""
            b = right[i] if i < len(right) else ""
            out.append(f"  {a:<42}{b}".rstrip())
        if self.anomalies:
            out.append("")
            out.append(f"  {'anomaly (packets)':<32}{'count':>8}")
            out += [f"  {k:<32}{v:>8,}" for k, v in _most(self.anomalies)]
        if self.worst:
            out.append("")
            out.append("worst connections (most problem flags):")
            for _score, _n, row in sorted(self.worst, key=lambda w: w[:2], reverse=True):
                out.append(_text(row))
        rows = sorted(self.rows, key=lambda r: r[0], reverse=True)
        out.append("")
        if self.page is not None and self.shown > len(rows):
            out.append(f"first {len(rows)} of {self.shown:,} connections (--all for every row):")
        else:
            out.append(f"{_count(self.shown, 'connection')}:")
        out += [_text(row) for _, row in rows]
        return "\n".join(out) + "\n"

    def finish(self, report: ReadReport) -> None:
        return None


Row = Connection | str  # the overview's row: rendered, or rendered when shown


def _text(row: Row) -> str:
    return row if isinstance(row, str) else connection_row(row)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _most(counts: Counter[str]) -> list[tuple[str, int]]:
    """Most first, ties by name: the same order whatever order the counts came
    in (one process, --jobs N, the engine's tally)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


ROW_WIDTH = 80  # every row line fits a terminal of 80 columns
ROW_INDENT = " " * 8  # continuation lines start under the client address


def connection_row(c: Connection) -> str:
    """A connection in lines that fit 80 columns, IPv4 or IPv6.

    Addresses are written whole, as ``ss`` writes them (``[2001:db8::1]:443``,
    RFC 3986 §3.2.2 brackets); a line breaks only between fields, so a long
    IPv6 pair puts ``-> server`` on a line of its own, never a cut address."""
    closer = f" ({c.active_closer} first)" if c.active_closer and "both" in c.ending else ""
    zeek = f"{c.zeek_conn_state} {c.zeek_history}".strip()
    rtt = f"rtt {c.rtt_syn_synack * 1000:.3f} ms" if c.rtt_syn_synack is not None else ""
    states = f"{_state(c.client.final_state)}/{_state(c.server.final_state)}"
    lines = _pack(
        [f"{c.number:>6}  {c.client.label}", f"-> {c.server.label}", f" {c.ending}{closer}"], " "
    )
    counts = [f"{c.duration:.3f} s", f"{c.client.packets}/{c.server.packets} pkts", rtt]
    lines += _pack([ROW_INDENT + counts[0], *(x for x in [*counts[1:], states, zeek] if x)], "  ")
    anomalies = [f"{k} {v}" for k, v in sorted(c.anomalies.items())]
    if anomalies:
        anomalies[:-1] = [a + "," for a in anomalies[:-1]]
        lines += _pack([ROW_INDENT + anomalies[0], *anomalies[1:]], " ")
    return "\n".join(lines)


def _pack(parts: list[str], sep: str) -> list[str]:
    """``parts`` joined by ``sep`` into lines of at most ROW_WIDTH columns,
    breaking only between parts; a continuation line starts at ROW_INDENT."""
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + len(sep) + len(part) <= ROW_WIDTH:
            lines[-1] += sep + part
        else:
            lines.append(ROW_INDENT + part.lstrip())
    return lines


def _state(s: object) -> str:
    return str(s) if s is not None else "unknown"


# -- running a view, in one process or N ------------------------------------------------


def run_view(
    source: str,
    options: engine.Options,
    view: View,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> ReadReport:
    """Run the engine over ``source`` and ``view`` over its output."""
    for payload in _payloads(source, options, view, jobs, progress):
        if isinstance(payload, ReadReport):
            view.finish(payload)
            return payload
        view.take(payload)
    raise RuntimeError("the engine ended without a report")


def _payloads(
    source: str,
    options: engine.Options,
    view: View,
    jobs: int,
    progress: Callable[[int], None] | None,
) -> Iterator[Any]:
    if jobs <= 1 or not _rereadable(source):
        for item in engine.run(source, options, progress=progress):
            yield item if isinstance(item, ReadReport) else view.render(item)
        return
    # fork: the shards start with what this process has imported, and the
    # view and options as they are (nothing is pickled on the way in).
    import multiprocessing  # only --jobs N pays for it

    ctx = multiprocessing.get_context("fork")
    pipes = []
    procs = []
    for k in range(jobs):
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_shard, args=(source, options, view, (k, jobs), sender), daemon=True
        )
        proc.start()
        sender.close()
        pipes.append(receiver)
        procs.append(proc)
    numbers = Numbering()
    done = False
    try:
        while True:
            parts = [_receive(pipes[k], procs[k], k, jobs) for k in range(jobs)]
            for part in parts:
                if isinstance(part, BaseException):
                    raise part
            if isinstance(parts[0], ReadReport):
                done = True
                yield parts[0]
                return
            if progress is not None:
                progress(engine.CHUNK)
            numbers.start([started for started, _, _ in parts])
            yield view.merge([payload for _, _, payload in parts], numbers)
            numbers.end([ended for _, ended, _ in parts])
    finally:
        # Shards that sent their report are exiting; any other end (an error,
        # a signal) stops them now rather than let them read on.
        for proc in procs:
            if done:
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
            proc.join()


def _rereadable(source: str) -> bool:
    """Can every shard open and read ``source`` for itself?  Not standard
    input, nor a pipe or a socket: the shards would split its bytes."""
    if source == "-":
        return False
    try:
        return stat.S_ISREG(os.stat(source).st_mode)
    except OSError:
        return True  # the engine says what is wrong with it


def _receive(pipe: Any, proc: Any, k: int, jobs: int) -> Any:
    """Shard k's next part; one line if it died without sending it."""
    try:
        return pipe.recv()
    except EOFError:
        proc.join(timeout=5)
        code = proc.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        raise TcplabError(f"--jobs {jobs}: process {k + 1} of {jobs} ended early ({how})") from None


def _shard(
    source: str, options: engine.Options, view: View, shard: tuple[int, int], pipe: Any
) -> None:
    """One of --jobs N: the engine on one shard of the flows, rendered; each
    batch goes out as (started, ended, payload) (``engine.Batch.numbering``)."""
    try:
        for item in engine.run(source, options, shard):
            if isinstance(item, ReadReport):
                pipe.send(item)
            else:
                started, ended = item.numbering or (b"", b"")
                pipe.send((started, ended, view.render(item)))
    except BaseException as exc:
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.send(exc if isinstance(exc, InputError | OSError) else RuntimeError(repr(exc)))
    finally:
        pipe.close()
        os._exit(0)


def stdout_text() -> IO[str]:
    return sys.stdout
