"""Synthetic TCP captures, written fast: many connections with full lifecycles.

Used by the analyzer benchmark (millions of packets) and by tests (small
files whose truth is known).  A connection follows one of a few *shapes*
(normal request/response with FIN both ways, with retransmissions, RST
abort, refused connect, unanswered SYN); a shape is a small table of
(direction, flags, relative seq, relative ack, payload length, time offset)
rows.  Connections differ by addresses, ports, ISNs and start time, so the
whole file is assembled with NumPy: fields are scattered into one byte
buffer and the IPv4 and TCP checksums (RFC 791 §3.1, RFC 9293 §3.1) are
computed column-wise.  Payload bytes are zeros, so they add nothing to a
checksum.  Output: classic pcap, microsecond timestamps, Ethernet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 1448
CLIENT_NET = 0x0A000000  # 10.0.0.0/8
SERVER_NET = 0xC0A80000  # 192.168.0.0/16
SYN_OPTIONS = bytes.fromhex("020405b40103030701010402")  # mss 1460, nop wscale 7, nop nop sackOK

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Shape:
    """One connection's packets: parallel columns, times relative to its start."""

    kind: str
    dir: tuple[int, ...]  # 0: client -> server
    flags: tuple[int, ...]
    seq: tuple[int, ...]  # relative to the sender's ISN
    ack: tuple[int, ...]  # relative to the receiver's ISN
    length: tuple[int, ...]
    dt: tuple[float, ...]


class _Builder:
    def __init__(self, rtt: float) -> None:
        self.rows: list[tuple[int, int, int, int, int, float]] = []
        self.nxt = [0, 0]  # next relative seq per direction
        self.t = 0.0
        self.rtt = rtt

    def send(
        self, d: int, flags: int, length: int = 0, gap: float = 0.0, seq: int | None = None
    ) -> None:
        self.t += gap
        s = self.nxt[d] if seq is None else seq
        ack = self.nxt[1 - d] if flags & ACK else 0
        self.rows.append((d, flags, s, ack, length, self.t))
        end = s + length + (1 if flags & (SYN | FIN) else 0)
        if seq is None:
            self.nxt[d] = max(self.nxt[d], end)

    def shape(self, kind: str) -> Shape:
        cols = list(zip(*self.rows, strict=True))
        return Shape(kind, *(tuple(c) for c in cols))


def _handshake(b: _Builder) -> None:
    b.send(0, SYN)
    b.send(1, SYN | ACK, gap=b.rtt / 2)
    b.send(0, ACK, gap=b.rtt / 2)


def make_shapes(rng: np.random.Generator, count: int = 48, mean_packets: int = 120) -> list[Shape]:
    """A mix of shapes; ``mean_packets`` sets the size of the normal ones."""
    shapes: list[Shape] = []
    for i in range(count):
        rtt = float(rng.uniform(0.0002, 0.05))
        b = _Builder(rtt)
        kind = (
            "normal",
            "normal",
            "normal",
            "normal",
            "retransmit",
            "retransmit",
            "rst",
            "refused",
            "noanswer",
            "server-close",
        )[i % 10]
        if kind == "refused":
            b.send(0, SYN)
            b.send(1, RST | ACK, gap=rtt / 2)
            shapes.append(b.shape(kind))
            continue
        if kind == "noanswer":
            b.send(0, SYN)
            b.send(0, SYN, gap=1.0, seq=0)
            b.send(0, SYN, gap=2.0, seq=0)
            shapes.append(b.shape(kind))
            continue
        _handshake(b)
        target = max(10, int(rng.normal(mean_packets, mean_packets / 4)))
        while len(b.rows) < target:
            req = int(rng.integers(40, 400))
            b.send(0, PSH | ACK, req, gap=float(rng.uniform(0.0001, 0.01)))
            segments = int(rng.integers(1, 12))
            for k in range(segments):
                length = MSS if k < segments - 1 else int(rng.integers(1, MSS))
                start = b.nxt[1]
                b.send(
                    1,
                    ACK | (PSH if k == segments - 1 else 0),
                    length,
                    gap=rtt / 2 if k == 0 else 0.00002,
                )
                if kind == "retransmit" and rng.random() < 0.15:
                    # The same segment again after a timeout (RFC 6298).
                    b.send(1, ACK, length, gap=rtt * 2, seq=start)
                if k % 2 == 1 or k == segments - 1:
                    b.send(0, ACK, gap=rtt / 2)
        if kind == "rst":
            b.send(0, RST | ACK, gap=0.001)
        elif kind == "server-close":
            b.send(1, FIN | ACK, gap=0.001)
            b.send(0, FIN | ACK, gap=rtt / 2)
            b.send(1, ACK, gap=rtt / 2)
        else:
            b.send(0, FIN | ACK, gap=0.001)
            b.send(1, FIN | ACK, gap=rtt / 2)
            b.send(0, ACK, gap=rtt / 2)
        shapes.append(b.shape(kind))
    return shapes


def _fold(total: I64) -> I64:
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return total


def write_capture(
    path: str | Path,
    packets: int,
    connections: int,
    seed: int = 1,
    concurrency_seconds: float = 600.0,
) -> dict[str, int]:
    """Write about ``packets`` packets over ``connections`` connections.

    Returns the exact counts written (packets, connections, bytes) and a
    count per shape kind, for the benchmark and the tests.
    """
    rng = np.random.default_rng(seed)
    # Short shapes (refused, unanswered) pull the mean down: size the long
    # ones so the drawn connections reach the packet target.
    mean = max(6, packets // max(connections, 1))
    for _attempt in range(4):
        shapes = make_shapes(np.random.default_rng(seed), mean_packets=mean)
        sizes = np.array([len(s.dir) for s in shapes])
        choice = np.random.default_rng(seed + 1).integers(0, len(shapes), size=connections)
        total = int(sizes[choice].sum())
        if total >= packets:
            break
        mean = int(mean * packets / max(total, 1) * 1.03) + 1
    # Column tables of all shapes, concatenated; row offsets per shape.
    offsets = np.r_[0, np.cumsum(sizes)]
    col = {
        name: np.concatenate([np.asarray(getattr(s, name)) for s in shapes])
        for name in ("dir", "flags", "seq", "ack", "length", "dt")
    }
    per_conn = sizes[choice]
    conn_of_row = np.repeat(np.arange(connections), per_conn)
    row_in_shape = np.arange(per_conn.sum()) - np.repeat(np.cumsum(per_conn) - per_conn, per_conn)
    src_row = offsets[choice][conn_of_row] + row_in_shape
    n = src_row.size

    start = np.sort(rng.uniform(0.0, concurrency_seconds, size=connections)) + 1_700_000_000.0
    client_ip = CLIENT_NET + 1 + (np.arange(connections) // 20000)
    client_port = 20000 + (np.arange(connections) % 20000)
    server_ip = SERVER_NET + 1 + rng.integers(0, 50, size=connections)
    server_port = np.where(rng.random(connections) < 0.7, 443, 80)
    isn_c = rng.integers(0, 1 << 32, size=connections, dtype=np.int64)
    isn_s = rng.integers(0, 1 << 32, size=connections, dtype=np.int64)

    d = col["dir"][src_row]
    flags = col["flags"][src_row].astype(np.int64)
    t = start[conn_of_row] + col["dt"][src_row]
    order = np.argsort(t, kind="stable")
    d, flags, t, src_row, conn_of_row = (
        d[order],
        flags[order],
        t[order],
        src_row[order],
        conn_of_row[order],
    )
    c = conn_of_row
    length = col["length"][src_row].astype(np.int64)
    from_client = d == 0
    sip = np.where(from_client, client_ip[c], server_ip[c]).astype(np.int64)
    dip = np.where(from_client, server_ip[c], client_ip[c]).astype(np.int64)
    sport = np.where(from_client, client_port[c], server_port[c]).astype(np.int64)
    dport = np.where(from_client, server_port[c], client_port[c]).astype(np.int64)
    seq = (np.where(from_client, isn_c[c], isn_s[c]) + col["seq"][src_row]) & 0xFFFFFFFF
    ack = np.where(
        flags & ACK,
        (np.where(from_client, isn_s[c], isn_c[c]) + col["ack"][src_row]) & 0xFFFFFFFF,
        0,
    )
    is_syn = (flags & SYN) != 0
    opt_len = np.where(is_syn, len(SYN_OPTIONS), 0)
    tcp_len = 20 + opt_len + length
    ip_len = 20 + tcp_len
    frame_len = 14 + ip_len
    rec_len = 16 + frame_len
    pos = np.r_[0, np.cumsum(rec_len)[:-1]]
    total = int(rec_len.sum())
    window = np.where(is_syn, 64240, 501)
    doff_flags = ((5 + opt_len // 4) << 12) | flags

    # TCP checksum over the pseudo-header and header; zero payload adds 0.
    opt_words = np.frombuffer(SYN_OPTIONS, dtype=">u2").astype(np.int64).sum()
    tsum = (
        (sip >> 16)
        + (sip & 0xFFFF)
        + (dip >> 16)
        + (dip & 0xFFFF)
        + 6
        + tcp_len
        + sport
        + dport
        + (seq >> 16)
        + (seq & 0xFFFF)
        + (ack >> 16)
        + (ack & 0xFFFF)
        + doff_flags
        + window
        + np.where(is_syn, opt_words, 0)
    )
    tcp_ck = 0xFFFF - _fold(tsum)
    ident = np.arange(n) & 0xFFFF
    isum = (
        0x4500
        + ip_len
        + ident
        + 0x4000
        + 0x4006
        + (sip >> 16)
        + (sip & 0xFFFF)
        + (dip >> 16)
        + (dip & 0xFFFF)
    )
    ip_ck = 0xFFFF - _fold(isum)

    buf = np.zeros(total, dtype=np.uint8)

    def put(offset: int | I64, value: I64, width: int, little: bool = False) -> None:
        for k in range(width):
            shift = 8 * (k if little else width - 1 - k)
            buf[pos + offset + k] = (value >> shift) & 0xFF

    sec = np.floor(t).astype(np.int64)
    usec = np.round((t - sec) * 1e6).astype(np.int64)
    sec += usec // 1_000_000
    usec %= 1_000_000
    put(0, sec, 4, True)
    put(4, usec, 4, True)
    put(8, frame_len, 4, True)
    put(12, frame_len, 4, True)
    e = 16
    put(e + 0, np.where(from_client, 0x020000000002, 0x020000000001), 6)
    put(e + 6, np.where(from_client, 0x020000000001, 0x020000000002), 6)
    put(e + 12, np.full(n, 0x0800), 2)
    ip = e + 14
    put(ip + 0, np.full(n, 0x4500), 2)
    put(ip + 2, ip_len, 2)
    put(ip + 4, ident, 2)
    put(ip + 6, np.full(n, 0x4000), 2)
    put(ip + 8, np.full(n, 0x4006), 2)
    put(ip + 10, ip_ck, 2)
    put(ip + 12, sip, 4)
    put(ip + 16, dip, 4)
    tcp = ip + 20
    put(tcp + 0, sport, 2)
    put(tcp + 2, dport, 2)
    put(tcp + 4, seq, 4)
    put(tcp + 8, ack, 4)
    put(tcp + 12, doff_flags, 2)
    put(tcp + 14, window, 2)
    put(tcp + 16, tcp_ck, 2)
    syn_pos = pos[is_syn] + tcp + 20
    for k, byte in enumerate(SYN_OPTIONS):
        buf[syn_pos + k] = byte

    header = (
        b"\xd4\xc3\xb2\xa1"
        + (2).to_bytes(2, "little")
        + (4).to_bytes(2, "little")
        + bytes(8)
        + (262144).to_bytes(4, "little")
        + (1).to_bytes(4, "little")
    )
    with open(path, "wb") as fh:
        fh.write(header)
        buf.tofile(fh)  # no second copy of a multi-gigabyte buffer
    kinds: dict[str, int] = {}
    for i in choice.tolist():
        kinds[shapes[i].kind] = kinds.get(shapes[i].kind, 0) + 1
    return {"packets": n, "connections": connections, "bytes": total + 24, **kinds}
