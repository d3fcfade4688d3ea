"""The analysis engine's Python side: input, the batch interface, records out.

Theory of operation (docs/engine.md).  The engine (``_engine.c``) does the
whole analysis in one pass: Wireshark's streams, relative numbers and
tcp.analysis flags, Zeek's conn_state/history/counters, both endpoints'
inferred states.  This module

* loads the model's transition table into it (``load_model_table``: the
  engine moves only along ``tcplab.model.table.TRANSITIONS``);
* feeds it a capture's bytes (file, ``.gz``, or ``-`` for standard input) in
  chunks, and decodes with ``tcplab.wire`` the frames its fast decoder hands
  back (tunnels, fragments, MPLS, PPPoE, odd headers), so every frame the
  Python decoder reads is analysed by the same engine;
* hands over to ``tcplab.capture`` where the file's structure is unusual
  (the fast reader stops, the Python reader goes on from that offset and
  reports problems as it always does);
* turns the engine's tuples into ``Connection`` / ``PacketRecord`` /
  ``ZeekRecord`` objects for the views.

The batch interface, ``run(source, options, shard=(k, n))``, yields
``Batch``es as connections end: what ``--jobs N`` runs in each process and
what a distributed scheduler can run per flow-hash partition.  A connection
never straddles two shards: ``shard_of`` is a hash of the unordered 5-tuple.
"""

from __future__ import annotations

import _socket  # inet_ntop/pton without socket.py's enums (start-up)
import os
import stat
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

try:
    from tcplab.analyze import _engine
except ImportError as exc:  # pragma: no cover - a checkout whose engine was never built
    raise ImportError(
        "tcplab's analysis engine (src/tcplab/analyze/_engine.c) is not built: "
        "run `make setup` or `pip install -e .`"
    ) from exc
from tcplab.analyze.frames import NO_OPTIONS, ReadReport, Segment, TcpOptions, segment_of
from tcplab.analyze.wireshark import FLAG_NAMES, PROBLEM_FLAGS
from tcplab.analyze.zeek import DEFAULT_LIKELY_SERVER_PORTS
from tcplab.capture.marker import DROPPED_BY_WIRE
from tcplab.capture.source import GZIP_MAGIC, ChunkSource, ProblemSink, source_of
from tcplab.errors import InputError
from tcplab.model.table import TRANSITIONS, Trigger, TriggerKind, edges_from
from tcplab.states import State
from tcplab.wire.flags import Control

if TYPE_CHECKING:  # tcplab.capture's reader, for the frames the engine hands back
    import numpy as np
    from numpy.typing import NDArray

    from tcplab.capture import TcpRecords
    from tcplab.capture.reader import Record

CHUNK: Final = 1 << 22  # bytes per read: 4 MiB
TIME_LIMIT: Final = 1 << 62  # ns the engine holds either side of its time base

# The texts of the engine's fixed text codes, in _engine.c's X_* order; the
# wording is model/observe.py's (tests/test_engine.py checks the engine's
# changes against that observer's on every trace).
TEXTS: list[str] = [
    "",
    "a SYN arrived",
    "RFC 9293 §3.10.7.2",
    "LISTEN assumed: the first packet seen is a SYN to this port",
    "data both ways",
    "capture started midstream: the handshake was not seen",
    "the SYN this SYN-ACK answers was not seen",
    "the SYN-ACK answering the SYN was not seen",
    "sent RST",
    "RFC 9293 §3.10.7.1",
    "the SYN reached a port nobody listens on: no connection existed",
    "the SYN reached a port nobody listens on: no connection existed"
    " (the LISTEN assumed before the capture was wrong)",
    "the state before the RST is unknown",
    "sent FIN",
    "earlier states not seen",
    "close() or shutdown(SHUT_WR): the wire cannot tell",
    "our SYN was not seen",
    "inferred from one side: this endpoint's own ACK shows the SYN-ACK arrived;"
    " the capture does not have it",
    "inferred from one side: this endpoint acknowledges data sent after the handshake;"
    " the capture does not have its ACK",
    "sendto(MSG_FASTOPEN) or TCP_FASTOPEN_CONNECT: the wire cannot tell",
    "sent after the RST",
    "RFC 5961 §3.2",
    "the RST it was sent did not take effect: it goes on sending"
    " (a challenge ACK, or a RST that never arrived)",
]
STATES: Final = tuple(State)
# The triggers _engine.c names (TR_*), in its order.
_ENGINE_TRIGGERS: Final = (
    Trigger.LISTEN,
    Trigger.CONNECT,
    Trigger.CLOSE,
    Trigger.SHUTDOWN_WR,
    Trigger.ABORT,
    Trigger.RCV_SYN,
    Trigger.RCV_SYN_ACK,
    Trigger.RCV_ACK_OF_SYN,
    Trigger.RCV_ACK_OF_FIN,
    Trigger.RCV_FIN,
    Trigger.RCV_RST,
    Trigger.RCV_DATA_AFTER_CLOSE,
    Trigger.CONNECT_FASTOPEN,
    Trigger.RCV_SYN_FASTOPEN,
    Trigger.RCV_SYN_ACK_DATA_UNACKED,
)
# The engine's numbering of every trigger: its own first, the model's others after.
TRIGGERS: Final = _ENGINE_TRIGGERS + tuple(t for t in Trigger if t not in _ENGINE_TRIGGERS)
MAXTRIGGERS: Final = 32  # _engine.c's TR_COUNT


def _text(text: str) -> int:
    try:
        return TEXTS.index(text)
    except ValueError:
        TEXTS.append(text)
        return len(TEXTS) - 1


def model_table() -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int]]]:
    """The engine's tables, generated from ``tcplab.model.table``: every edge
    as (state, trigger, next state, RFC text code), and per state the edge a
    sent RST takes (trigger, text code of the ambiguity; -1 for none), as
    ``Observer._sent_reset`` picks it."""
    if len(TRIGGERS) > MAXTRIGGERS:
        raise RuntimeError(f"{len(TRIGGERS)} triggers: _engine.c holds {MAXTRIGGERS}")
    edges = [
        (STATES.index(e.state), TRIGGERS.index(e.trigger), STATES.index(e.next), _text(e.rfc))
        for e in TRANSITIONS
    ]
    rst: list[tuple[int, int]] = []
    for state in STATES:
        candidates = [
            e
            for e in edges_from(state)
            if e.sends is Control.RST
            and (
                e.trigger.kind is not TriggerKind.SEGMENT
                or e.trigger is Trigger.RCV_DATA_AFTER_CLOSE
            )
        ]
        if not candidates:
            rst.append((-1, 0))
            continue
        why = 0
        if len(candidates) > 1:
            why = _text(
                "sent RST: "
                + " or ".join(
                    e.trigger.value + (f" [{e.guard}]" if e.guard else "") for e in candidates
                )
            )
        rst.append((TRIGGERS.index(candidates[0].trigger), why))
    return edges, rst


def load_model_table() -> None:
    edges, rst = model_table()
    first: dict[tuple[int, int], int] = {}
    for _state, trigger, new, rfc in edges:
        first.setdefault((trigger, new), rfc)
    _engine.load_table(
        [_text(t.value) for t in TRIGGERS] + [0] * (MAXTRIGGERS - len(TRIGGERS)),
        edges,
        [(t, n, r) for (t, n), r in first.items()],
        rst,
    )


load_model_table()


# -- records -------------------------------------------------------------------


@lru_cache(maxsize=65536)
def address(raw: bytes) -> str:
    """Textual address, as tcplab.wire and tshark print it."""
    return _socket.inet_ntop(_socket.AF_INET if len(raw) == 4 else _socket.AF_INET6, raw)


@dataclass(frozen=True, slots=True)
class Change:
    """One inferred state change (``tcplab.analyze.infer.InferredLike``)."""

    old: State | None
    new: State
    cause: str
    rfc: str
    ambiguous: str | None
    at: float | None


ROLES: Final = ("client", "server")
FIRST_FRAME: Final = 22  # where a connection record (_engine.c conn_tuple) holds its first frame


def _state(code: int) -> State | None:
    return STATES[code] if code >= 0 else None


def changes_of(
    raw: Iterable[tuple[int, int, int, int, int, int, int | None, int]],
) -> tuple[tuple[str, Change, float], ...]:
    out = []
    for who, old, new, cause, rfc, amb, at, when in raw:
        state = _state(new)
        if state is None:
            raise RuntimeError("the engine reported a change to no state")
        change = Change(
            _state(old),
            state,
            TEXTS[cause],
            TEXTS[rfc],
            TEXTS[amb] or None,
            None if at is None else at / 1e9,
        )
        out.append((ROLES[who], change, when / 1e9))
    return tuple(out)


def analysis_flags(mask: int) -> frozenset[str]:
    got = _FLAG_SETS.get(mask)
    return got if got is not None else _FLAG_SETS.setdefault(mask, _flag_set(mask))


def take_batch(
    engine: _engine.Engine, records: tuple[Any, ...] | None = None, sharded: bool = False
) -> Batch:
    """What ended since the last batch (``records``: finish()'s, else take()'s)."""
    conns, zeek, packets = engine.take() if records is None else records
    numbering = engine.numbering() if sharded else None
    batch = Batch(conns, zeek, packets, engine.stats()["first_time"], engine.tally(), numbering)
    lines = engine.take_lines()
    if lines is not None:
        batch.lines, batch.frames = lines
    rows = engine.take_rows()
    if rows is not None:
        batch.zeek_rows, batch.zeek_row_keys = rows
    return batch


def _flag_set(mask: int) -> frozenset[str]:
    return frozenset(name for i, name in enumerate(FLAG_NAMES) if mask >> i & 1)


# Built as met: all 4096 at import cost a tiny capture a fifth of its start-up.
_FLAG_SETS: Final[dict[int, frozenset[str]]] = {}
# The flags that make a connection one of the overview's worst (its score).
PROBLEM_MASK: Final = sum(1 << i for i, name in enumerate(FLAG_NAMES) if name in PROBLEM_FLAGS)


@dataclass(slots=True)
class ZeekSide:
    addr: str
    port: int
    pkts: int
    ip_bytes: int


@dataclass(slots=True)
class ZeekRecord:
    """One Zeek connection as conn.log shows it (``tcplab.analyze.output.conn_log``)."""

    first_frame: int
    start: float
    last_time: float
    orig: ZeekSide
    resp: ZeekSide
    state: str
    history: str
    missed_bytes: int
    orig_size: int
    resp_size: int

    @property
    def duration(self) -> float:
        return self.last_time - self.start

    def conn_state(self) -> str:
        return self.state

    def orig_bytes(self) -> int:
        return self.orig_size

    def resp_bytes(self) -> int:
        return self.resp_size


def zeek_record(t: tuple[Any, ...]) -> ZeekRecord:
    (seq, start, last, _ver, oa, op, ra, rp, state, hist, missed, ob, rb, opk, oib, rpk, rib) = t
    return ZeekRecord(
        seq,
        start / 1e9,
        last / 1e9,
        ZeekSide(address(oa), op, opk, oib),
        ZeekSide(address(ra), rp, rpk, rib),
        str(state),
        str(hist),
        missed,
        ob,
        rb,
    )


@dataclass(slots=True)
class Batch:
    """What the engine finished since the last batch (tuples, see _engine.c)."""

    connections: list[tuple[Any, ...]]
    zeek: list[tuple[Any, ...]]
    packets: list[tuple[Any, ...]]
    first_time: int = 0  # ns: the capture's first TCP packet (relative times start there)
    # With Options.overview: the engine's counts of the connections that ended
    # (``Tally``); ``connections`` then holds only those the overview may show.
    tally: Tally | None = None
    # With a shard (k, n > 1): records number streams by their first frame, and
    # this is (started, ended): the first frames (int64s, array('q')) of the
    # streams the shard started and ended since the last batch, for the merge
    # to number them as one process does (views.Numbering).
    numbering: tuple[bytes, bytes] | None = None
    # With Options.packet_lines: the packets' lines, formatted by the engine in
    # frame order, and (in a shard of several) each line's frame and stream
    # (its first frame) as pairs of native int64s.
    lines: bytes | None = None
    frames: bytes | None = None
    # With Options.conn_log_rows: the Zeek connections that ended as conn.log
    # rows, formatted by the engine exactly as ``output.conn_log_row(
    # zeek_record(t))`` prints them (``zeek`` stays empty), each ending in
    # "\n", in the order the connections ended; and per row its key, one
    # ZEEK_ROW_KEY record each (``zeek_row_keys_of`` reads them): start_ns,
    # first_frame, last_ns (int64: ns; the first frame is ZeekRecord.first_frame,
    # global in a capture set), start, last (float64: ZeekRecord.start and
    # .last_time, i.e. ns / 1e9 as Python divides), length (int64: the row's
    # bytes).  conn.log orders rows by (start, first_frame), the float start
    # (two starts a few ns apart can be one float: then the frame decides);
    # #open is the smallest start, #close the largest last.
    zeek_rows: bytes | None = None
    zeek_row_keys: bytes | None = None
    # With feed_columns' keys (a distributed run): the engine's take_keys(),
    # (first frame, key time) of each stream started, as native int64 pairs.
    order_keys: bytes | None = None


def zeek_row_keys_of(raw: bytes) -> NDArray[Any]:
    """``Batch.zeek_row_keys`` as a NumPy record array (ZEEK_ROW_KEY)."""
    import numpy as np  # (only the conn.log views pay for it)

    return np.frombuffer(raw, zeek_row_key())


@lru_cache(maxsize=1)
def zeek_row_key() -> np.dtype[Any]:
    """ZEEK_ROW_KEY: the NumPy dtype of a conn.log row's key (_engine.c ZKey)."""
    import numpy as np

    size, fields = _engine.zkey_layout()
    return np.dtype(
        {
            "names": [name for name, _, _ in fields],
            "formats": [code for _, _, code in fields],
            "offsets": [offset for _, offset, _ in fields],
            "itemsize": size,
        }
    )


# _engine.c's tally(): (connections, packets, {ending: n}, {conn_state: n},
# anomaly counts in FLAG_NAMES order then bad_checksum)
Tally = tuple[int, int, dict[str, int], dict[str, int], tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class PacketLines:
    """``--packets`` formatted by the engine: ``packet_line`` (or, ``as_json``,
    ``packet_object``) of every packet kept, as ``views.PacketsView`` prints
    them (tcplab.analyze.output is the reference, tests/test_engine_lines.py
    the proof), with its filters: ``host`` (either address, as text) and
    ``port`` (either port); the connection filter is ``Options.keep_stream``."""

    as_json: bool = False
    absolute: bool = False  # times since the epoch, not since the first packet
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Options:
    """What the analysis depends on (the same in every shard of a run)."""

    likely_server_ports: frozenset[int] = DEFAULT_LIKELY_SERVER_PORTS
    ignore_checksums: bool = False  # zeek -C
    strict_checksums: bool = False  # a partial (offloaded) checksum is bad, as Zeek says
    keep_packets: bool = False
    keep_stream: int = -1  # with keep_packets: only this connection's packets (-1: all)
    evict: bool = True  # connections out as they end (False: all at the end)
    # The overview's tally (views.Overview): (rows on its page, -1 for every
    # row; worst connections shown).  The engine then counts each connection
    # and gives a record only for one the overview may still show.
    overview: tuple[int, int] | None = None
    # With keep_packets: the packets' lines are the engine's only output (no
    # packet, connection or Zeek records: --packets shows none of them).
    packet_lines: PacketLines | None = None
    # conn.log rows formatted by the engine (Batch.zeek_rows) instead of Zeek
    # records; with connection_records False, no connection records either
    # (a conn.log of every connection needs none).
    conn_log_rows: bool = False
    connection_records: bool = True

    def ports(self) -> bytes:
        bits = bytearray(8192)
        for port in self.likely_server_ports:
            bits[port >> 3] |= 1 << (port & 7)
        return bytes(bits)


class Engine:
    """The batch interface: segments of a set of flows in (in capture order),
    connection records out.  ``feed_segment`` takes ``tcplab.analyze.frames``
    segments (what any reader or a distributed shuffle produces); ``take``
    returns what ended since the last call, ``finish`` the rest.  Records are
    the engine's tuples: ``tcplab.analyze.core.connection_of`` /
    ``packet_of`` and ``zeek_record`` turn them into objects."""

    def __init__(self, options: Options = Options(), shard: tuple[int, int] = (0, 1)) -> None:
        self.options = options
        self.engine = _engine.Engine(
            options.ports(),
            options.ignore_checksums,
            options.strict_checksums,
            options.keep_packets,
            options.keep_stream,
            shard[0],
            shard[1],
            DROPPED_BY_WIRE.encode(),
            options.evict,
        )
        if options.overview is not None:
            page, worst = options.overview
            self.engine.overview(page, worst, PROBLEM_MASK)
        if options.packet_lines is not None:
            _format_lines(self.engine, options.packet_lines)
        if options.conn_log_rows:
            self.engine.conn_log_rows(options.connection_records)

    def feed_segment(self, seg: Segment) -> None:
        feed_segment(self.engine, seg, self.options.strict_checksums)

    def take(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        return self.engine.take()

    def finish(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        return self.engine.finish()


def _format_lines(engine: _engine.Engine, form: PacketLines) -> None:
    """Have the engine format packet lines, with the names output.py prints."""
    from tcplab.analyze.output import packet_line_names

    host: bytes | None = None
    if form.host is not None:
        try:
            host = _packed(form.host)
        except OSError:
            host = b""  # no address: no packet is from or to it
        if host and address(host) != form.host:
            host = b""  # the view compares text: "::0001" is no packet's address
    port = -1 if form.port is None else form.port
    if form.port is not None and not 0 <= form.port <= 0xFFFF:
        host = b""  # no packet uses it
    flags, states, names = packet_line_names(form.as_json)
    order = sorted(range(len(FLAG_NAMES)), key=FLAG_NAMES.__getitem__)
    engine.packet_lines(
        form.as_json,
        form.absolute,
        host,
        port,
        flags,
        states,
        names,
        order,
        FLAG_NAMES.index("duplicate_ack"),
    )


def merge_lines(parts: list[tuple[bytes, bytes]], numbers: dict[int, int], as_json: bool) -> bytes:
    """The shards' ``--packets`` lines of one batch as one process's
    (``_engine.c`` merge_lines; ``numbers``: a first frame's stream number)."""
    return _engine.merge_lines(parts, numbers, as_json)


def shard_of(src: bytes, sport: int, dst: bytes, dport: int, shards: int) -> int:
    """Which of ``shards`` processes analyses this 5-tuple (either direction)."""
    version = 4 if len(src) == 4 else 6
    return int(_engine.flow_hash(version, src, sport, dst, dport) % shards)


# -- input ----------------------------------------------------------------------


def _open(source: str | Path, sink: ProblemSink) -> tuple[BinaryIO, ChunkSource]:
    """A stream Python feeds the engine from (standard input, .gz), through
    tcplab.capture's ChunkSource: its gzip guards (truncation, corruption, a
    decompression bomb) end the stream with one problem line."""
    if str(source) == "-":
        raw: BinaryIO = sys.stdin.buffer
    else:
        try:
            raw = open(source, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise InputError(f"{source}: {exc.strerror or exc}") from exc
    return raw, source_of(raw, sink)


class _Fallback:
    """The frames the fast decoder hands back, decoded by ``tcplab.wire``."""

    def __init__(self, engine: _engine.Engine, name: str, options: Options) -> None:
        self.engine = engine
        self.name = name
        self.options = options
        self.report = ReadReport()
        self._records: TcpRecords | None = None
        self.base = 0  # the engine's time base (a clock beyond 64-bit nanoseconds)

    @property
    def records(self) -> TcpRecords:
        """tcplab.capture's decoder, loaded when the first frame needs it."""
        if self._records is None:
            from tcplab.capture import TcpRecords

            self._records = TcpRecords(None, strict_checksum=True, on_not_tcp=self._fragment)
        return self._records

    @property
    def undecodable(self) -> int:
        return self._records.undecodable if self._records is not None else 0

    def _fragment(self, record: Record, not_tcp: object) -> None:
        reason = getattr(not_tcp, "reason", "")
        if "fragment" in reason:
            self.skipped(record, f"frame {record.index}: {reason} skipped")

    def skipped(self, record: Record, message: str) -> None:
        """An IP fragment the decoder skipped, said as the one-file run says it."""
        self.report.problem(f"{self.name}: offset {record.data_offset}: {message}")

    def frame(self, record: Record, counted: bool) -> None:
        not_tcp = self.records.not_tcp + self.records.undecodable
        got = self.records.decode(record)
        if got is None:
            added = self.records.not_tcp + self.records.undecodable - not_tcp
            self.engine.count(0 if counted else 1, added, record.index)
            return
        if not counted:
            self.engine.count(1, 0, record.index)
        record, packet = got
        time_ns = record.time_ns
        if (
            not -TIME_LIMIT <= time_ns - self.base <= TIME_LIMIT
            and self.engine.stats()["tcp"] == 0
            and not self.base
        ):
            # A clock no 64-bit nanosecond count holds (if_tsresol 2**-0...): the
            # engine runs relative to it; its records are absolute again.
            self.base = time_ns - (1 << 40)
            self.engine.set_time_base(self.base)
        relative = max(-TIME_LIMIT, min(TIME_LIMIT, time_ns - self.base))
        seg = segment_of(record.index, relative, record.data, packet, False)
        feed_segment(
            self.engine,
            seg._replace(dropped=_dropped(record.comment)),
            self.options.strict_checksums,
        )

    def finish(self, extra: list[str]) -> ReadReport:
        if self._records is not None:
            self._records.end()
            for problem in self._records.problems:
                self.report.problem(problem.line(self.name))
        for line in extra:
            self.report.problem(line)
        return self.report


def feed_segment(engine: _engine.Engine, seg: Segment, strict_checksums: bool) -> None:
    """One decoded segment into the engine (the batch interface's packet input)."""
    checksum_ok = seg.checksum_ok
    if checksum_ok is False and seg.partial_checksum and not strict_checksums:
        checksum_ok = None  # not verifiable, not bad
    o = seg.options
    opts = (
        None
        if o is NO_OPTIONS
        else (o.mss, o.wscale, o.sack_permitted, o.ts_val, o.ts_ecr, o.sack_blocks[:4])
    )
    src, dst = _packed(seg.src), _packed(seg.dst)
    engine.packet(
        seg.index,
        seg.time_ns,
        4 if len(src) == 4 else 6,
        src,
        dst,
        seg.sport,
        seg.dport,
        seg.seq,
        seg.ack,
        seg.flags,
        seg.window,
        seg.length,
        seg.wire_length,
        seg.captured,
        seg.ip_len,
        -1 if checksum_ok is None else int(checksum_ok),
        int(seg.ip_checksum_ok),
        opts,
        int(seg.dropped),
    )


@lru_cache(maxsize=65536)
def _packed(text: str) -> bytes:
    return _socket.inet_pton(_socket.AF_INET6 if ":" in text else _socket.AF_INET, text)


def _record(handed: tuple[Any, ...]) -> Record:
    """A frame the fast decoder handed back, as tcplab.capture's record."""
    from tcplab.capture.reader import Record

    index, time_ns, linktype, data_offset, data, dropped = handed
    return Record(
        index,
        time_ns,
        linktype,
        data,
        len(data),
        0,
        DROPPED_BY_WIRE if dropped else None,
        data_offset,
        data_offset,
    )


def _plain_file(source: str | Path) -> int | None:
    """A file descriptor for the engine to read itself: a regular file that is
    not gzip-compressed (None otherwise: Python feeds the bytes)."""
    if str(source) == "-":
        return None
    try:
        fd = os.open(source, os.O_RDONLY)
    except OSError as exc:
        raise InputError(f"{source}: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or os.pread(fd, 2, 0) == GZIP_MAGIC:
            os.close(fd)
            return None
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except OSError:
        os.close(fd)
        raise
    return fd


def _dropped(comment: str | None) -> bool:
    if not comment:
        return False
    return any(line.startswith(DROPPED_BY_WIRE) for line in comment.splitlines())


def run(
    source: str | Path,
    options: Options = Options(),
    shard: tuple[int, int] = (0, 1),
    progress: Callable[[int], None] | None = None,
) -> Iterator[Batch | ReadReport]:
    """Analyse ``source``: ``Batch``es as connections end, then the ``ReadReport``.

    ``shard=(k, n)``: only the connections whose 5-tuple hashes to k of n.
    Every shard reads the whole file but skips other shards' packets right
    after their headers; its records name a stream by its first frame
    (``Batch.numbering`` says which started and ended)."""
    engine = Engine(options, shard).engine
    sharded = shard[1] > 1

    name = str(source)
    slow = _Fallback(engine, name, options)
    extra: list[str] = []
    handed: int | None = None
    left: int | None = None  # standard input: bytes after the record the stream cut
    sink = ProblemSink()  # the gzip guards' problems (a .gz or a pipe: read by Python)
    fd = _plain_file(source)
    if fd is not None:
        try:
            handed = yield from read_mapped(engine, fd, slow, extra, progress, sharded)
        finally:
            os.close(fd)
    else:
        raw, stream = _open(source, sink)
        with raw:
            while handed is None:
                chunk = stream._read_more(CHUNK)
                final = not chunk
                result = engine.feed(chunk, final)
                while result is not None:
                    if result[0] == "takeover":
                        handed = int(result[1])
                        if final:  # the stream is over: the record there was cut short
                            left = stream.end - handed
                        break
                    slow.frame(_record(result), True)
                    result = engine.feed(b"", final)
                if progress is not None and chunk:
                    progress(len(chunk))
                yield take_batch(engine, sharded=sharded)
                if final:
                    break
    if handed is not None:
        if name == "-" and left is not None:
            extra.append(
                f"{name}: offset {handed}: record truncated: the stream ends {left} bytes into it"
            )
        elif name == "-":
            stats = engine.stats()
            extra.append(
                f"{name}: offset {handed}: capture structure the stream reader does not"
                f" handle after frame {stats['frame_index']}; stopping here"
            )
        else:
            yield from _take_over(engine, slow, source, handed, sharded)
    yield take_batch(engine, engine.finish(), sharded)
    report = slow.finish(extra)
    if sink.problems:
        # A takeover's reader meets the same gzip damage again; this reader's
        # line (exact offset, said once) is the one kept.
        gz = [problem.line(name) for problem in sink.problems]
        report.problems[:] = [p for p in report.problems if "gzip data" not in p and p not in gz]
        report.problems += gz
    stats = engine.stats()
    report.frames = int(stats["frames"])
    report.tcp = int(stats["tcp"])
    report.not_tcp = int(stats["not_tcp"])
    report.undecodable = slow.undecodable
    yield report


def read_mapped(
    engine: _engine.Engine,
    fd: int,
    slow: _Fallback,
    extra: list[str],
    progress: Callable[[int], None] | None = None,
    sharded: bool = False,
) -> Generator[Batch, None, int | None]:
    """A plain file read by the engine's own (mapped) reader, the frames it
    hands back decoded by ``slow``: ``Batch``es as connections end.  Returns
    the offset where it handed the file over to ``tcplab.capture`` (None: it
    read to the end).  A file that shrinks under the mapping (or an EIO) ends
    the read with one line in ``extra``."""
    before = int(engine.stats()["bytes_read"])
    while True:
        try:
            result = engine.feed_fd(fd)
            while result is not None and result[0] not in ("eof", "takeover"):
                slow.frame(_record(result), True)
                result = engine.feed(b"")
        except OSError as exc:
            extra.append(f"{slow.name}: {exc.strerror or exc}")
            result = ("eof",)
        if progress is not None:
            done = int(engine.stats()["bytes_read"])
            progress(done - before)
            before = done
        yield take_batch(engine, sharded=sharded)
        if result is not None:
            return int(result[1]) if result[0] == "takeover" else None


def _take_over(
    engine: _engine.Engine,
    slow: _Fallback,
    source: str | Path,
    offset: int,
    sharded: bool = False,
) -> Iterator[Batch]:
    """tcplab.capture reads on from ``offset`` (problems reported its way)."""
    from tcplab.capture import open_capture

    with open_capture(source) as reader:
        n = 0
        for record in reader:
            if record.offset < offset:
                continue
            slow.frame(record, False)
            n += 1
            if n % 65536 == 0:
                yield take_batch(engine, sharded=sharded)
        slow.records.reader = reader
        for problem in reader.problems:
            slow.report.problem(problem.line(str(source)))
        if reader.problems_dropped:
            slow.report.problem(f"{source}: {reader.problems_dropped} more problems not listed")
        slow.records.reader = None


@dataclass(slots=True)
class Collected:
    connections: list[tuple[Any, ...]] = field(default_factory=list)
    zeek: list[tuple[Any, ...]] = field(default_factory=list)
    packets: list[tuple[Any, ...]] = field(default_factory=list)
    report: ReadReport = field(default_factory=ReadReport)


def collect(
    source: str | Path,
    options: Options = Options(),
    shard: tuple[int, int] = (0, 1),
    progress: Callable[[int], None] | None = None,
) -> Collected:
    out = Collected()
    for item in run(source, options, shard, progress):
        if isinstance(item, ReadReport):
            out.report = item
        else:
            out.connections += item.connections
            out.zeek += item.zeek
            out.packets += item.packets
    return out


def options_text(raw: tuple[Any, ...] | None) -> str:
    if raw is None:
        return ""
    mss, ws, sp, tv, te, sack = raw
    return TcpOptions(mss, ws, bool(sp), tuple(sack), tv, te).describe()
