"""The detailed analysis: every packet, every connection, both peers' semantics.

Theory of operation: one pass over the segments feeds three trackers that
each reproduce one reference: ``StreamTracker`` (Wireshark's tcp.stream,
relative numbers, tcp.analysis flags), ``ZeekTracker`` (Zeek's endpoint
machine, conn_state, history, conn.log counters) and one ``Observer`` per
endpoint (the inferred RFC 9293 state).  A connection is a Wireshark
stream: 5-tuple plus incarnation.  Its summary collects handshake timing,
negotiated options, who closed first and how it ended, and carries the
Zeek verdict of the Zeek connection its first packet belongs to.

A packet a tcplab lab's wire dropped (``Segment.dropped``, from its pcapng
comment) is in the file, so Wireshark and Zeek count it like any other and
so do their trackers here; only the state inference knows it was never
received, and the outputs mark it ``dropped_by_wire``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tcplab.analyze.frames import NO_OPTIONS, ReadReport, Segment
from tcplab.analyze.wireshark import FLAG_NAMES, PROBLEM_FLAGS, StreamTracker
from tcplab.analyze.zeek import (
    DEFAULT_LIKELY_SERVER_PORTS,
    ZeekConnection,
    ZeekTracker,
    ZeekView,
)
from tcplab.states import State
from tcplab.wire.flags import Flags
from tcplab.wire.ip import host_text

if TYPE_CHECKING:  # the reference's trackers load when it runs (Analyzer)
    from tcplab.analyze.infer import InferredLike, Pair

CLIENT = "client"
SERVER = "server"


def ambiguity(change: InferredLike) -> str:
    """Why an inferred change is uncertain ("" when it is not)."""
    return change.ambiguous or ""


@dataclass(frozen=True, slots=True)
class PacketRecord:
    """One packet with everything the analyzer knows about it."""

    index: int
    time: float
    stream: int
    sender: str  # "client" | "server"
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    seq: int
    ack: int
    rel_seq: int
    rel_ack: int | None
    nxtseq: int
    length: int
    window: int
    analysis: frozenset[str]
    dupack_num: int
    client_state: State | None
    server_state: State | None
    changes: tuple[tuple[str, InferredLike, float], ...] = ()  # (endpoint role, change, time)
    options: str = ""
    raw: bytes = b""
    dropped_by_wire: bool = False  # a tcplab wire dropped it: the receiver never got it
    raw_window: int | None = None  # the window field as sent (``window`` is scaled)
    window_shift: int | None = None  # the scale applied; None: unknown (no SYN seen)

    @property
    def flag_text(self) -> str:
        return Flags(self.flags).tcpdump()


@dataclass(slots=True)
class Side:
    """One endpoint of a connection, as the summary reports it."""

    address: str
    port: int
    packets: int = 0
    payload_bytes: int = 0
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    timestamps: bool = False
    sent_fin: float | None = None
    sent_rst: float | None = None
    final_state: State | None = None
    # Segments Wireshark calls retransmission, fast retransmission or
    # out-of-order (what the sequence numbers did not advance): the engine's.
    not_advanced: int = 0

    @property
    def label(self) -> str:
        return f"{host_text(self.address)}:{self.port}"


@dataclass(slots=True)
class Connection:
    """A tcp.stream: 5-tuple plus incarnation."""

    number: int
    client: Side
    server: Side
    start: float
    end: float
    roles_known: bool  # True when the first SYN was captured
    syn_time: float | None = None
    synack_time: float | None = None
    handshake_ack_time: float | None = None
    anomalies: Counter[str] = field(default_factory=Counter)
    zeek: ZeekConnection | None = None
    notes: list[str] = field(default_factory=list)
    # State changes inferred after the last packet (segments still in flight
    # when the capture ended, taken as delivered).
    trailing_changes: list[tuple[str, InferredLike, float]] = field(default_factory=list)
    # Frame numbers of the packets a tcplab lab's wire dropped.
    dropped_by_wire: list[int] = field(default_factory=list)
    # From the engine: the Zeek verdict as text, and the first frames of
    # the Zeek connections this connection's packets belong to.
    zeek_state: str = ""
    zeek_hist: str = ""
    zeek_ids: tuple[int, ...] = ()

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def handshake_seen(self) -> bool:
        return None not in (self.syn_time, self.synack_time, self.handshake_ack_time)

    @property
    def rtt_syn_synack(self) -> float | None:
        if self.syn_time is None or self.synack_time is None:
            return None
        rtt = self.synack_time - self.syn_time
        return rtt if rtt >= 0 else None  # captured out of order

    @property
    def rtt_synack_ack(self) -> float | None:
        if self.synack_time is None or self.handshake_ack_time is None:
            return None
        rtt = self.handshake_ack_time - self.synack_time
        return rtt if rtt >= 0 else None

    def side(self, role: str) -> Side:
        return self.client if role == CLIENT else self.server

    @property
    def active_closer(self) -> str | None:
        """Who sent the first FIN (RFC 9293 §3.6: the active close)."""
        c, s = self.client.sent_fin, self.server.sent_fin
        if c is None and s is None:
            return None
        if s is None or (c is not None and c <= s):
            return CLIENT
        return SERVER

    @property
    def ending(self) -> str:
        """How the connection ended, in words."""
        c, s = self.client, self.server
        if c.sent_rst is not None or s.sent_rst is not None:
            first = (
                CLIENT
                if s.sent_rst is None or (c.sent_rst is not None and c.sent_rst <= s.sent_rst)
                else SERVER
            )
            if first == SERVER and self.synack_time is None and self.syn_time is not None:
                return "refused (RST to SYN)"
            return f"RST by {first}"
        if c.sent_fin is not None and s.sent_fin is not None:
            return "FIN both ways"
        if c.sent_fin is not None or s.sent_fin is not None:
            closer = self.active_closer
            return f"half-closed by {closer}"
        if self.syn_time is not None and self.synack_time is None:
            return "no answer to SYN"
        if c.packets == 0 or s.packets == 0:
            return "half-open (one direction only)"
        return "still open"

    @property
    def has_problems(self) -> bool:
        if any(self.anomalies[name] for name in PROBLEM_FLAGS):
            return True
        ending = self.ending
        return ending.startswith(("RST", "refused", "half", "no answer"))

    @property
    def zeek_conn_state(self) -> str:
        return self.zeek.conn_state() if self.zeek else self.zeek_state

    @property
    def zeek_history(self) -> str:
        return self.zeek.history if self.zeek else self.zeek_hist

    def to_dict(self) -> dict[str, object]:
        def side(s: Side) -> dict[str, object]:
            return {
                "address": s.address,
                "port": s.port,
                "packets": s.packets,
                "payload_bytes": s.payload_bytes,
                "mss": s.mss,
                "wscale": s.wscale,
                "sack_permitted": s.sack_permitted,
                "timestamps": s.timestamps,
                "final_state": s.final_state.value if s.final_state else "unknown",
            }

        return {
            "connection": self.number,
            "client": side(self.client),
            "server": side(self.server),
            "roles_known": self.roles_known,
            "start": self.start,
            "duration": self.duration,
            "handshake_seen": self.handshake_seen,
            "rtt_syn_synack": self.rtt_syn_synack,
            "rtt_synack_ack": self.rtt_synack_ack,
            "active_closer": self.active_closer,
            "ending": self.ending,
            "anomalies": dict(sorted(self.anomalies.items())),
            "conn_state": self.zeek_conn_state,
            "history": self.zeek_history,
            "notes": self.notes,
            "dropped_by_wire": self.dropped_by_wire,
        }


@dataclass(slots=True)
class Analysis:
    connections: list[Connection]
    packets: list[PacketRecord]
    zeek: Sequence[ZeekView]
    report: ReadReport


@dataclass(slots=True)
class _StreamState:
    conn: Connection
    pair: Pair
    addr_role: dict[tuple[str, int], str]
    # Zeek connections after the first one this stream's packets went to:
    # (frame, was it a SYN, the Zeek connection).
    zeek_parts: list[tuple[int, bool, ZeekConnection]] = field(default_factory=list)


class Analyzer:
    """The per-packet engine; feed segments, then ``finish()``."""

    def __init__(
        self,
        likely_server_ports: frozenset[int] = DEFAULT_LIKELY_SERVER_PORTS,
        ignore_checksums: bool = False,
        keep_packets: bool = True,
        keep_raw: bool = False,
    ) -> None:
        self.streams = StreamTracker()
        self.zeek = ZeekTracker(likely_server_ports, ignore_checksums)
        self.keep_packets = keep_packets
        self.keep_raw = keep_raw
        self.state: dict[int, _StreamState] = {}
        self.packets: list[PacketRecord] = []

    def _start(self, stream: int, seg: Segment, zconn: ZeekConnection | None) -> _StreamState:
        pure_syn = seg.syn and not seg.has_ack
        if pure_syn:
            client = (seg.src, seg.sport)
            server = (seg.dst, seg.dport)
        elif seg.syn:
            # A SYN-ACK first: its receiver opened the connection.
            client = (seg.dst, seg.dport)
            server = (seg.src, seg.sport)
        elif zconn is not None:
            client = (zconn.orig.addr, zconn.orig.port)
            server = (zconn.resp.addr, zconn.resp.port)
        else:
            client, server = (seg.src, seg.sport), (seg.dst, seg.dport)
        conn = Connection(
            number=stream,
            client=Side(*client),
            server=Side(*server),
            start=seg.time,
            end=seg.time,
            roles_known=pure_syn,
        )
        if seg.syn and not pure_syn:
            conn.notes.append("first SYN not captured: the SYN-ACK's receiver is the client")
        elif not pure_syn:
            conn.notes.append("first SYN not captured: client/server roles follow Zeek's heuristic")
        initial_client = State.CLOSED if pure_syn else None
        initial_server = State.LISTEN if pure_syn else None
        from tcplab.analyze.infer import Pair, make_observer

        pair = Pair({CLIENT: make_observer(initial_client), SERVER: make_observer(initial_server)})
        st = _StreamState(conn, pair, {client: CLIENT, server: SERVER})
        self.state[stream] = st
        return st

    def observe(self, seg: Segment) -> PacketRecord | None:
        """Feed one segment; its ``PacketRecord`` when packets are kept (None
        otherwise: building one per packet is wasted on a summary)."""
        ws = self.streams.observe(seg)
        zconn = self.zeek.observe(seg)
        st = self.state.get(ws.stream)
        if st is None:
            st = self._start(ws.stream, seg, zconn)
            if zconn is not None:
                st.conn.zeek = zconn
        conn = st.conn
        if conn.zeek is None and zconn is not None:
            conn.zeek = zconn
        elif (
            zconn is not None
            and zconn is not conn.zeek
            and all(part is not zconn for _, _, part in st.zeek_parts)
        ):
            st.zeek_parts.append((seg.index, seg.syn, zconn))
        role = st.addr_role.get((seg.src, seg.sport), CLIENT)
        peer_role = SERVER if role == CLIENT else CLIENT
        side = conn.side(role)
        side.packets += 1
        side.payload_bytes += seg.length
        conn.end = seg.time
        flags = seg.flags
        opts = seg.options
        if seg.syn:
            if opts.mss is not None:
                side.mss = opts.mss
            side.wscale = opts.wscale
            side.sack_permitted = opts.sack_permitted
            side.timestamps = opts.ts_val is not None
            if not seg.has_ack and conn.syn_time is None:
                conn.syn_time = seg.time
            elif seg.has_ack and conn.synack_time is None:
                conn.synack_time = seg.time
        elif (
            seg.has_ack
            and role == CLIENT
            and conn.synack_time is not None
            and conn.handshake_ack_time is None
        ):
            conn.handshake_ack_time = seg.time
        if seg.fin and side.sent_fin is None:
            side.sent_fin = seg.time
        if seg.rst and side.sent_rst is None:
            side.sent_rst = seg.time
        for name in ws.flags:
            conn.anomalies[name] += 1
        if seg.checksum_ok is False:
            conn.anomalies["bad_checksum"] += 1

        if seg.dropped:
            conn.dropped_by_wire.append(seg.index)
        changes = st.pair.packet(
            role, peer_role, seg.seq, seg.ack, flags, seg.length, seg.time, not seg.dropped
        )
        self._note(conn, changes)
        conn.client.final_state = st.pair.state(CLIENT)
        conn.server.final_state = st.pair.state(SERVER)
        if not self.keep_packets:
            return None
        record = PacketRecord(
            index=seg.index,
            time=seg.time,
            stream=ws.stream,
            sender=role,
            src=seg.src,
            sport=seg.sport,
            dst=seg.dst,
            dport=seg.dport,
            flags=flags,
            seq=seg.seq,
            ack=seg.ack,
            rel_seq=ws.rel_seq,
            rel_ack=ws.rel_ack,
            nxtseq=ws.nxtseq,
            length=seg.length,
            window=ws.window,
            analysis=ws.flags,
            dupack_num=ws.dupack_num,
            client_state=st.pair.state(CLIENT),
            server_state=st.pair.state(SERVER),
            changes=tuple(changes),
            options=opts.describe() if opts is not NO_OPTIONS else "",
            raw=seg.raw if self.keep_raw else b"",
            dropped_by_wire=seg.dropped,
        )
        self.packets.append(record)
        return record

    @staticmethod
    def _end_notes(st: _StreamState) -> None:
        """Why the end of the capture left an endpoint where it is, and
        whether the states rest on one side's packets only."""
        conn, told = st.conn, set()
        for receiver, seg in st.pair.undelivered:
            if receiver in told or not seg.flags & (Flags.SYN | Flags.FIN):
                continue
            told.add(receiver)
            conn.notes.append(
                _held_note(
                    receiver,
                    st.pair.state(receiver),
                    seg.sender,
                    bool(seg.flags & Flags.FIN),
                    seg.time - conn.start,
                )
            )
        for frame, syn, part in st.zeek_parts:
            conn.notes.append(_zeek_part_note(frame, syn, part.conn_state(), part.history))
        conn.notes += _one_side_notes(conn)

    @staticmethod
    def _note(conn: Connection, changes: list[tuple[str, InferredLike, float]]) -> None:
        for who, change, _t in changes:
            note = ambiguity(change)
            if note:
                text = f"{who}: {note}"
                if text not in conn.notes:
                    conn.notes.append(text)

    def finish(self, report: ReadReport) -> Analysis:
        for st in self.state.values():
            trailing = st.pair.flush()
            self._note(st.conn, trailing)
            self._end_notes(st)
            st.conn.trailing_changes.extend(trailing)
            st.conn.client.final_state = st.pair.state(CLIENT)
            st.conn.server.final_state = st.pair.state(SERVER)
        zconns = self.zeek.close()
        conns = [self.state[k].conn for k in sorted(self.state)]
        return Analysis(conns, self.packets, zconns, report)


def analyze_segments(
    segments: Iterable[Segment],
    report: ReadReport | None = None,
    likely_server_ports: frozenset[int] = DEFAULT_LIKELY_SERVER_PORTS,
    ignore_checksums: bool = False,
    keep_packets: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Analysis:
    analyzer = Analyzer(likely_server_ports, ignore_checksums, keep_packets)
    for seg in segments:
        analyzer.observe(seg)
        if progress is not None:
            progress(len(seg.raw) + 16)
    return analyzer.finish(report if report is not None else ReadReport())


def analyze_file(
    path: str | Path,
    likely_server_ports: frozenset[int] = DEFAULT_LIKELY_SERVER_PORTS,
    ignore_checksums: bool = False,
    keep_packets: bool = True,
    progress: Callable[[int], None] | None = None,
    strict_checksums: bool = False,
    keep_stream: int = -1,
) -> Analysis:
    """Analyse a pcap/pcapng file (``.gz``, ``-`` for standard input) with the
    engine (``tcplab.analyze.engine``).  Capture problems end up in ``report``."""
    from tcplab.analyze import engine

    options = engine.Options(
        likely_server_ports,
        ignore_checksums,
        strict_checksums,
        keep_packets,
        keep_stream,
    )
    got = engine.collect(path, options, progress=progress)
    connections = sorted((connection_of(t) for t in got.connections), key=lambda c: c.number)
    zeek = sorted((engine.zeek_record(t) for t in got.zeek), key=lambda z: (z.start, z.first_frame))
    packets = [packet_of(t) for t in got.packets]
    return Analysis(connections, packets, zeek, got.report)


_STATES: tuple[State | None, ...] = (*State, None)  # index -1: unknown


def _side(address: str, port: int, raw: tuple[Any, ...]) -> Side:
    packets, payload, mss, wscale, sack, ts, fin, rst, final, not_advanced = raw
    return Side(
        address,
        port,
        packets,
        payload,
        mss,
        wscale,
        bool(sack),
        bool(ts),
        None if fin is None else fin / 1e9,
        None if rst is None else rst / 1e9,
        _STATES[final],
        not_advanced,
    )


_FIRST_NOTES = (
    "",
    "first SYN not captured: the SYN-ACK's receiver is the client",
    "first SYN not captured: client/server roles follow Zeek's heuristic",
)
ANOMALY_NAMES = (*FLAG_NAMES, "bad_checksum")


def connection_of(t: tuple[Any, ...]) -> Connection:
    """A ``Connection`` from the engine's record (``_engine.c`` conn_tuple)."""
    from tcplab.analyze import engine

    (
        number,
        _ver,
        ca,
        cp,
        sa,
        sp,
        roles_known,
        first_note,
        start,
        end,
        syn,
        synack,
        hs_ack,
        client,
        server,
        anomalies,
        zstate,
        zhist,
        zids,
        notes,
        trailing,
        dropped,
        _first,
        held,
        parts,
    ) = t
    address, roles = engine.address, engine.ROLES
    counts: Counter[str] = Counter()
    for name, n in zip(ANOMALY_NAMES, anomalies, strict=True):
        if n:
            counts[name] = n
    texts = engine.TEXTS
    conn = Connection(
        number,
        _side(address(ca), cp, client),
        _side(address(sa), sp, server),
        start / 1e9,
        end / 1e9,
        bool(roles_known),
        None if syn is None else syn / 1e9,
        None if synack is None else synack / 1e9,
        None if hs_ack is None else hs_ack / 1e9,
        counts,
        None,
        [_FIRST_NOTES[first_note]] if first_note else [],
        list(engine.changes_of(trailing)) if trailing else [],
        list(dropped),
        zstate,
        zhist,
        zids,
    )
    if notes:
        conn.notes += [f"{roles[who]}: {texts[text]}" for who, text in notes]
    for receiver, sender, fin, when in held:
        role = roles[receiver]
        state = conn.side(role).final_state
        conn.notes.append(
            _held_note(role, state, roles[sender], bool(fin), when / 1e9 - conn.start)
        )
    for frame, syn_part, state_text, history in parts:
        conn.notes.append(_zeek_part_note(frame, bool(syn_part), str(state_text), str(history)))
    if not conn.client.packets or not conn.server.packets:
        conn.notes += _one_side_notes(conn)
    return conn


def _held_note(receiver: str, state: State | None, sender: str, fin: bool, after: float) -> str:
    """The end of the capture did not deliver a SYN/FIN (infer.Pair.flush)."""
    return (
        f"{receiver}: stays {state.value if state else 'unknown'} at the end of the "
        f"capture: its packets never acknowledge the {sender}'s {'FIN' if fin else 'SYN'} "
        f"sent {after:.6f} s after the first packet, so its arrival is not assumed"
    )


def _zeek_part_note(frame: int, syn: bool, conn_state: str, history: str) -> str:
    """Zeek logs part of a Wireshark stream as another connection.

    Zeek keys connections by 5-tuple and ends one when a SYN comes with
    another ISN from either side (TCPSessionAdapter::IsReuse, weird
    SYN_seq_jump: a split handshake's second SYN), or when its timers
    expire; Wireshark keeps one stream."""
    why = (
        "a SYN with another ISN is connection reuse to Zeek (IsReuse)"
        if syn
        else "Zeek's timers had ended the earlier one"
    )
    return (
        f"Zeek logs this stream from frame {frame} on as another connection "
        f"({conn_state}, history {history or '-'}): {why}"
    )


def _one_side_notes(conn: Connection) -> list[str]:
    notes = []
    for role, side in ((CLIENT, conn.client), (SERVER, conn.server)):
        if side.packets == 0:
            peer = SERVER if role == CLIENT else CLIENT
            notes.append(
                f"only the {peer}'s packets are in the capture: both states are "
                f"inferred from one side (the {role}'s from what the {peer} sent it)"
            )
    return notes


def packet_of(t: tuple[Any, ...]) -> PacketRecord:
    """A ``PacketRecord`` from the engine's per-packet record (``_engine.c`` packet_tuple)."""
    from tcplab.analyze.engine import (
        ROLES,
        STATES,
        address,
        analysis_flags,
        changes_of,
        options_text,
    )

    (
        index,
        t_ns,
        stream,
        role,
        _ver,
        src,
        sport,
        dst,
        dport,
        seq,
        ack,
        flags,
        rel_seq,
        rel_ack,
        nxt,
        length,
        wflags,
        dup,
        window,
        cstate,
        sstate,
        changes,
        opts,
        dropped,
        raw_window,
        shift,
    ) = t
    return PacketRecord(
        index,
        t_ns / 1e9,
        stream,
        ROLES[role],
        address(src),
        sport,
        address(dst),
        dport,
        flags,
        seq,
        ack,
        rel_seq,
        rel_ack,
        nxt,
        length,
        window,
        analysis_flags(wflags),
        dup,
        STATES[cstate] if cstate >= 0 else None,
        STATES[sstate] if sstate >= 0 else None,
        changes_of(changes),
        options_text(opts),
        b"",
        bool(dropped),
        raw_window,
        None if shift < 0 else shift,
    )


def iter_packets(analysis: Analysis, stream: int | None = None) -> Iterator[PacketRecord]:
    for p in analysis.packets:
        if stream is None or p.stream == stream:
            yield p
