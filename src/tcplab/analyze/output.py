"""Text renderings of an analysis: per-packet lines, Zeek conn.log, JSON lines, a rich table.

conn.log follows Zeek's ASCII writer: ``#separator``, ``#set_separator``,
``#empty_field``, ``#unset_field``, ``#path``, ``#open``, ``#fields``,
``#types`` header lines, tab-separated rows, ``#close``; unset values are
``-``.  As in Zeek's conn/main.zeek, duration and byte counts are left unset
when the connection's duration is zero.  uids are deterministic (a hash of
the 5-tuple and start time) so two runs give the same file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from tcplab.analyze.core import Connection, PacketRecord
from tcplab.analyze.zeek import ZeekView
from tcplab.clock import calendar

CONN_FIELDS = (
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
)
CONN_TYPES = (
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
)
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def zeek_uid(conn: ZeekView) -> str:
    """A Zeek-looking uid ("C" + base62), stable for the same connection."""
    import hashlib  # (only conn.log pays for it)

    key = f"{conn.orig.addr}|{conn.orig.port}|{conn.resp.addr}|{conn.resp.port}|{conn.start:.6f}"
    n = int.from_bytes(hashlib.sha256(key.encode()).digest()[:12], "big")
    out = ""
    while n and len(out) < 17:
        n, r = divmod(n, 62)
        out += _B62[r]
    return "C" + out


def _stamp(t: float) -> str:
    # A time that is no date (if_tsresol 0x80...) is printed raw; the reader warned.
    return calendar(t, "%Y-%m-%d-%H-%M-%S") or f"{t:.6f}"


def conn_log_header(first: float) -> str:
    """conn.log's header lines; ``first``: when the log opens (the first packet)."""
    lines = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        f"#open\t{_stamp(first)}",
        "#fields\t" + "\t".join(CONN_FIELDS),
        "#types\t" + "\t".join(CONN_TYPES),
    ]
    return "\n".join(lines) + "\n"


def conn_log_row(c: ZeekView) -> str:
    """One connection's conn.log line (with its newline)."""
    timed = c.duration > 0
    row = [
        f"{c.start:.6f}",
        zeek_uid(c),
        c.orig.addr,
        str(c.orig.port),
        c.resp.addr,
        str(c.resp.port),
        "tcp",
        "-",
        f"{c.duration:.6f}" if timed else "-",
        str(c.orig_bytes()) if timed else "-",
        str(c.resp_bytes()) if timed else "-",
        c.conn_state(),
        "-",
        "-",
        str(c.missed_bytes),
        c.history or "-",
        str(c.orig.pkts),
        str(c.orig.ip_bytes),
        str(c.resp.pkts),
        str(c.resp.ip_bytes),
        "-",
    ]
    return "\t".join(row) + "\n"


def conn_log_footer(last: float) -> str:
    return f"#close\t{_stamp(last)}\n"


def conn_log(conns: Sequence[ZeekView]) -> str:
    """Zeek's conn.log (TSV) for these connections, in start order."""
    first = min((c.start for c in conns), default=0.0)
    last = max((c.last_time for c in conns), default=0.0)
    rows = "".join(conn_log_row(c) for c in sorted(conns, key=lambda c: c.start))
    return conn_log_header(first) + rows + conn_log_footer(last)


def _state(s: object) -> str:
    return str(s) if s is not None else "unknown"


def packet_line(p: PacketRecord, conn: Connection | None = None, base: float = 0.0) -> str:
    """One packet: frame, time (minus ``base``: the first packet's time for
    relative times), connection, direction, flags, relative numbers, analysis
    flags, and both endpoints' inferred states after it."""
    arrow = "->" if p.sender == "client" else "<-"
    ack = f" ack {p.rel_ack}" if p.rel_ack is not None else ""
    flags = ",".join(sorted(p.analysis))
    if "duplicate_ack" in p.analysis:
        flags = flags.replace("duplicate_ack", f"duplicate_ack#{p.dupack_num}")
    analysis = f"  [{flags}]" if flags else ""
    # Not an analysis flag: tshark and Zeek know nothing of it; only the lab's
    # pcapng comment says so, and only the states reflect it.
    dropped = "  dropped_by_wire" if p.dropped_by_wire else ""
    return (
        f"{p.index:>6} {p.time - base:.6f} conn {p.stream:<4} client {arrow} server "
        f"[{p.flag_text}] seq {p.rel_seq}{ack} len {p.length} nxt {p.nxtseq} win {_window(p)}"
        f"{analysis}{dropped}"
        f"  client={_state(p.client_state)} server={_state(p.server_state)}"
    )


def _window(p: PacketRecord) -> str:
    """Raw and scaled side by side (``raw×factor=scaled``, tcplab.fmt.window_text)."""
    if p.raw_window is None:
        return str(p.window)
    from tcplab.fmt import window_text

    return window_text(p.raw_window, p.window_shift, syn=bool(p.flags & 0x02))


def packet_object(p: PacketRecord, base: float = 0.0) -> dict[str, object]:
    """One packet as JSON: the fields ``packet_line`` shows, by name."""
    return {
        "frame": p.index,
        "time": round(p.time - base, 9),
        "connection": p.stream,
        "sender": p.sender,
        "src": p.src,
        "sport": p.sport,
        "dst": p.dst,
        "dport": p.dport,
        "flags": p.flag_text,
        "seq": p.rel_seq,
        "ack": p.rel_ack,
        "len": p.length,
        "nxtseq": p.nxtseq,
        "window": p.window,
        "window_raw": p.raw_window,
        "window_shift": p.window_shift,
        "analysis": sorted(p.analysis),
        "dupack_num": p.dupack_num,
        "dropped_by_wire": p.dropped_by_wire,
        "client_state": _state(p.client_state),
        "server_state": _state(p.server_state),
    }


def packet_line_names(as_json: bool) -> tuple[list[str], list[str], list[str]]:
    """The names ``packet_line`` (``packet_object`` when ``as_json``: as JSON
    strings) prints, for the engine's own formatter (_engine.c ``packet_lines``):
    tcpdump's flag letters for every 12-bit flags value, the states (no state
    first, then ``tcplab.states.State`` in order), the analysis flags by bit."""
    from tcplab.analyze.wireshark import FLAG_NAMES
    from tcplab.states import State
    from tcplab.wire.flags import Flags

    flags = [Flags(v).tcpdump() for v in range(1 << 12)]
    states = [_state(None)] + [_state(s) for s in State]
    names = list(FLAG_NAMES)
    if any("duplicate_ack" in n for n in names if n != "duplicate_ack"):
        raise RuntimeError("packet_line numbers duplicate_ack only (engine: dupack_bit)")
    if as_json:
        return (
            [json.dumps(x) for x in flags],
            [json.dumps(x) for x in states],
            [json.dumps(x) for x in names],
        )
    return flags, states, names


def json_lines(conns: Iterable[Connection]) -> str:
    return "".join(json.dumps(c.to_dict(), sort_keys=False) + "\n" for c in conns)


def _ms(value: float | None) -> str:
    return f"{value * 1000:.3f}" if value is not None else "-"


def connection_table(conns: Sequence[Connection], title: str) -> object:
    """A rich Table of connections (imported lazily: rich is slow to load)."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for name, justify in (
        ("#", "right"),
        ("client -> server", "left"),
        ("dur s", "right"),
        ("pkts", "right"),
        ("bytes", "right"),
        ("hs rtt ms", "right"),
        ("ended", "left"),
        ("final states", "left"),
        ("zeek", "left"),
        ("anomalies", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for c in conns:
        anomalies = ", ".join(f"{k} {v}" for k, v in sorted(c.anomalies.items()))
        closer = f" ({c.active_closer} first)" if c.active_closer and "both" in c.ending else ""
        table.add_row(
            str(c.number),
            f"{c.client.label}\n{c.server.label}",
            f"{c.duration:.3f}",
            f"{c.client.packets}/{c.server.packets}",
            f"{c.client.payload_bytes}/{c.server.payload_bytes}",
            f"{_ms(c.rtt_syn_synack)}/{_ms(c.rtt_synack_ack)}",
            c.ending + closer,
            f"{_state(c.client.final_state)}/{_state(c.server.final_state)}",
            f"{c.zeek_conn_state} {c.zeek_history}".strip(),
            anomalies,
        )
    return table
