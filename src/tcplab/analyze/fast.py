"""The fast connection summary: a columnar NumPy pass over a classic pcap file.

Theory of operation: the file is read in fixed-size chunks (peak memory is
one chunk plus a few small arrays per connection, never the file).  A tight
loop walks the record headers of a chunk (the only per-packet Python work:
record lengths chain the offsets); everything else is vectorised: the
Ethernet/VLAN, IPv4 and TCP fields are gathered at those offsets, packets are
keyed by their unordered 5-tuple, and per-connection, per-direction counters
(packets, payload bytes, first SYN / SYN-ACK / FIN / RST times, the handshake's
final ACK) are reduced with ``bincount`` / ``minimum.at``.  Retransmissions
are counted the way Wireshark's "not advanced" test does (a segment whose
sequence number is below the highest seq+len seen in its direction), with a
per-direction running maximum carried across chunks.

Records the vectorised decoder does not handle (IPv6, MPLS, PPPoE, IP
options spilling past the capture, damaged headers) go through the detailed
decoder one by one; a new SYN with another ISN on a known 5-tuple starts a
new connection (Wireshark's tcp.stream rule), handled the same way.

The records deliberately do not come through ``tcplab.capture``'s reader:
it hands out one ``bytes`` object per record (about 1.2 µs each, see
``capture/pcap.py``), while this pass needs only each record's offset in the
memory-mapped window to gather header bytes with NumPy; copying every record
out would cost more than the whole vectorised decode.  The file header is
parsed by ``tcplab.capture.pcap`` and the per-record fallback is the shared
``tcplab.wire.decode_frame``.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np
import numpy.typing as npt

from tcplab.analyze.frames import ReadReport, Segment, read_segments, segment_of
from tcplab.analyze.zeek import DEFAULT_LIKELY_SERVER_PORTS
from tcplab.capture import pcap
from tcplab.errors import InputError
from tcplab.wire.decode import NotTcp, WireError, decode_frame, decode_ip
from tcplab.wire.fragments import Incomplete, Reassembler, fragment_in
from tcplab.wire.ip import host_text
from tcplab.wire.link import LinkType, linktype_of

CHUNK = 32 * 1024 * 1024
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
_MUL = np.uint64(0x9E3779B97F4A7C15)
_NAN = math.nan

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FastConn:
    """One connection of the summary; side 0 is the client (first SYN's sender)."""

    number: int
    client: str
    server: str
    start: float
    duration: float
    packets: tuple[int, int]
    payload: tuple[int, int]
    retransmissions: tuple[int, int]
    syn_synack: float | None
    synack_ack: float | None
    closer: str | None
    ending: str


class _Table:
    """Per-connection state in growable arrays, indexed by connection id."""

    def __init__(self) -> None:
        self.n = 0
        self.cap = 0
        self.ids: dict[int, int] = {}
        self.ends: list[tuple[object, object]] = []  # (lo endpoint, hi endpoint)
        self.syn_seq: dict[int, int] = {}  # id -> ISN of its first pure SYN
        self._alloc(1024)

    def _alloc(self, cap: int) -> None:
        def grow(
            old: npt.NDArray[Any] | None, shape: tuple[int, ...], fill: float, dtype: type
        ) -> npt.NDArray[Any]:
            new: npt.NDArray[Any] = np.full(shape, fill, dtype=dtype)
            if old is not None:
                new[: old.shape[0]] = old
            return new

        g = getattr
        self.pkts = grow(g(self, "pkts", None), (cap, 2), 0, np.int64)
        self.bytes = grow(g(self, "bytes", None), (cap, 2), 0, np.int64)
        self.rexmit = grow(g(self, "rexmit", None), (cap, 2), 0, np.int64)
        self.first = grow(g(self, "first", None), (cap,), np.inf, np.float64)
        self.last = grow(g(self, "last", None), (cap,), -np.inf, np.float64)
        self.syn_t = grow(g(self, "syn_t", None), (cap, 2), np.inf, np.float64)
        self.synack_t = grow(g(self, "synack_t", None), (cap, 2), np.inf, np.float64)
        self.fin_t = grow(g(self, "fin_t", None), (cap, 2), np.inf, np.float64)
        self.rst_t = grow(g(self, "rst_t", None), (cap, 2), np.inf, np.float64)
        self.hs_ack_t = grow(g(self, "hs_ack_t", None), (cap,), np.inf, np.float64)
        self.first_dir = grow(g(self, "first_dir", None), (cap,), -1, np.int64)
        self.lastseq = grow(g(self, "lastseq", None), (cap * 2,), -1, np.int64)
        self.lastrel = grow(g(self, "lastrel", None), (cap * 2,), 0, np.int64)
        self.base = grow(g(self, "base", None), (cap * 2,), -1, np.int64)
        self.maxend = grow(g(self, "maxend", None), (cap * 2,), -1, np.int64)
        self.cap = cap

    def new_id(self, key: int, lo: object, hi: object) -> int:
        if self.n == self.cap:
            self._alloc(self.cap * 2)
        cid = self.n
        self.n += 1
        self.ids[key] = cid
        self.ends.append((lo, hi))
        return cid


def _be16(a: U8, i: I64) -> I64:
    return (a[i].astype(np.int64) << 8) | a[i + 1]


def _be32(a: U8, i: I64) -> I64:
    return (
        (a[i].astype(np.int64) << 24)
        | (a[i + 1].astype(np.int64) << 16)
        | (a[i + 2].astype(np.int64) << 8)
        | a[i + 3]
    )


def _ipv4_text(x: int) -> str:
    return f"{x >> 24}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}"


class Summarizer:
    def __init__(self) -> None:
        self.t = _Table()
        self.report = ReadReport()

    # -- one chunk of decoded columns ------------------------------------------
    def add_columns(
        self,
        time: F64,
        src: I64,
        sport: I64,
        dst: I64,
        dport: I64,
        seq: I64,
        flags: I64,
        plen: I64,
        slow_keys: tuple[U64, list[tuple[object, object]]] | None = None,
        seglen: I64 | None = None,
    ) -> None:
        """Aggregate one batch; ``seglen`` is Wireshark's tcp.len when it differs
        from the IP-header payload length ``plen`` (a PPPoE length field)."""
        if time.size == 0:
            return
        t = self.t
        ka = (src << 16) | sport
        kb = (dst << 16) | dport
        d = (ka > kb).astype(np.int64)  # 0: sent by the lower endpoint
        lo = np.minimum(ka, kb).astype(np.uint64)
        hi = np.maximum(ka, kb).astype(np.uint64)
        if slow_keys is None:
            key = lo * _MUL ^ hi
            uk, first_idx, inv = np.unique(key, return_index=True, return_inverse=True)
            lo_l, hi_l = lo[first_idx].tolist(), hi[first_idx].tolist()
            ends: list[tuple[object, object]] = [
                ((int(a) >> 16, int(a) & 0xFFFF), (int(b) >> 16, int(b) & 0xFFFF))
                for a, b in zip(lo_l, hi_l, strict=True)
            ]
        else:
            key, slow_ends = slow_keys
            uk, first_idx, inv = np.unique(key, return_index=True, return_inverse=True)
            ends = [slow_ends[i] for i in first_idx.tolist()]
        ids = np.empty(uk.size, dtype=np.int64)
        get = t.ids.get
        for i, k in enumerate(uk.tolist()):
            cid = get(k)
            if cid is None:
                cid = t.new_id(k, *ends[i])
            ids[i] = cid
        gid = ids[inv]
        fresh = t.first_dir[ids] < 0
        t.first_dir[ids[fresh]] = d[first_idx[fresh]]

        pure_syn = (flags & (SYN | ACK)) == SYN
        if pure_syn.any():
            gid = self._incarnations(gid, uk, inv, ends, pure_syn, seq)

        rst = (flags & RST) != 0
        fin = (flags & FIN) != 0
        syn = (flags & SYN) != 0
        synack = (flags & (SYN | ACK)) == (SYN | ACK)
        n = t.n
        flat = gid * 2 + d
        t.pkts.reshape(-1)[: n * 2] += np.bincount(flat, minlength=n * 2)[: n * 2]
        t.bytes.reshape(-1)[: n * 2] += np.bincount(flat, weights=plen, minlength=n * 2)[
            : n * 2
        ].astype(np.int64)
        np.minimum.at(t.first, gid, time)
        np.maximum.at(t.last, gid, time)
        for mask, arr in (
            (pure_syn, t.syn_t),
            (synack, t.synack_t),
            (fin, t.fin_t),
            (rst, t.rst_t),
        ):
            if mask.any():
                np.minimum.at(arr.reshape(-1), flat[mask], time[mask])

        # The handshake's final ACK: the client's first ACK after the SYN-ACK.
        syn_known = np.isfinite(t.syn_t[gid, 0]) | np.isfinite(t.syn_t[gid, 1])
        synack_known = np.isfinite(t.synack_t[gid, 0]) | np.isfinite(t.synack_t[gid, 1])
        client_d = np.where(
            syn_known,
            np.where(t.syn_t[gid, 1] < t.syn_t[gid, 0], 1, 0),
            np.where(synack_known, np.where(t.synack_t[gid, 1] < t.synack_t[gid, 0], 0, 1), -1),
        )
        synack_time = t.synack_t[gid, np.where(client_d == 1, 0, 1)]
        hs = (
            (client_d >= 0)
            & ((flags & (ACK | SYN | RST)) == ACK)
            & (d == client_d)
            & (time >= synack_time)
        )
        if hs.any():
            np.minimum.at(t.hs_ack_t, gid[hs], time[hs])

        self._retransmissions(flat, seq, plen if seglen is None else seglen, syn, fin)

    def _incarnations(
        self,
        gid: I64,
        uk: U64,
        inv: I64,
        ends: list[tuple[object, object]],
        pure_syn: npt.NDArray[np.bool_],
        seq: I64,
    ) -> I64:
        """Split connections where a pure SYN carries another ISN (tcp.stream rule)."""
        t = self.t
        syn_rows = np.flatnonzero(pure_syn)
        conflict: set[int] = set()
        first_seen: dict[int, int] = {}
        for row, g, s in zip(
            syn_rows.tolist(), gid[syn_rows].tolist(), seq[syn_rows].tolist(), strict=True
        ):
            known = t.syn_seq.get(g, first_seen.get(g))
            if known is None:
                first_seen[g] = s
            elif known != s:
                conflict.add(g)
            del row
        for g, s in first_seen.items():
            if g not in conflict:
                t.syn_seq.setdefault(g, s)
        if not conflict:
            return gid
        gid = gid.copy()
        for g in sorted(conflict):
            rows = np.flatnonzero(gid == g)
            current = g
            key_i = int(inv[rows[0]])
            for row in rows.tolist():
                if pure_syn[row]:
                    s = int(seq[row])
                    known = t.syn_seq.get(current)
                    if known is None:
                        t.syn_seq[current] = s
                    elif known != s:
                        current = t.new_id(int(uk[key_i]), *ends[key_i])
                        t.syn_seq[current] = s
                gid[row] = current
        return gid

    def _retransmissions(
        self, flat: I64, seq: I64, plen: I64, syn: npt.NDArray[np.bool_], fin: npt.NDArray[np.bool_]
    ) -> None:
        t = self.t
        order = np.argsort(flat, kind="stable")
        g = flat[order]
        s = seq[order]
        ln = plen[order]
        ctl = (syn[order] | fin[order]).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        heads = g[starts]
        unknown = t.base[heads] < 0
        t.base[heads[unknown]] = s[starts[unknown]]
        t.lastseq[heads[unknown]] = s[starts[unknown]]
        # Unwrap sequence numbers: each step is a signed 32-bit difference
        # (RFC 1982 comparison, as Wireshark's GT_SEQ), summed per direction.
        prev_seq = np.empty_like(s)
        prev_seq[1:] = s[:-1]
        prev_seq[starts] = t.lastseq[heads]
        step = (s - prev_seq) & 0xFFFFFFFF
        step = np.where(step >= 1 << 31, step - (1 << 32), step)
        csum = np.cumsum(step)
        group_start_csum = csum[starts] - step[starts]
        last_rel = np.where(t.maxend[heads] >= 0, t.lastrel[heads], 0)
        rel = (
            csum
            - np.repeat(group_start_csum, np.diff(np.r_[starts, g.size]))
            + np.repeat(last_rel, np.diff(np.r_[starts, g.size]))
        )
        end = rel + ln + ctl
        lastrow = np.r_[starts[1:] - 1, g.size - 1]
        t.lastseq[heads] = s[lastrow]
        t.lastrel[heads] = rel[lastrow]
        rel = rel + (1 << 40)  # keep unwrapped positions positive for the running max
        end = end + (1 << 40)
        # Running max of ``end`` within each direction at once: lift each
        # group's values above every earlier group's (an exclusive prefix sum
        # of the groups' spans), so one accumulate never crosses a group.  The
        # lift is bounded by the window's own spread of positions; a fixed
        # stride per group (rank << 50) overflowed int64 past 8,192 groups.
        sizes = np.diff(np.r_[starts, g.size])
        low = np.minimum.reduceat(end, starts)
        span = np.maximum.reduceat(end, starts) - low + 1
        lift = np.repeat(np.cumsum(span) - span - low, sizes)
        cm = np.maximum.accumulate(end + lift) - lift
        prev = np.empty_like(cm)
        prev[1:] = cm[:-1]
        prev[starts] = np.where(t.maxend[heads] >= 0, t.maxend[heads] + (1 << 40), -1)
        # Wireshark: not advanced = seq below the highest seq+len seen; a
        # 0/1-byte segment at nextseq-1 is a keep-alive, not a retransmission.
        keepalive = (ln <= 1) & (ctl == 0) & (rel == prev - 1)
        rexmit = ((ln > 0) | (ctl > 0)) & (prev >= 0) & (rel < prev) & ~keepalive
        if rexmit.any():
            np.add.at(t.rexmit.reshape(-1), g[rexmit], 1)
        t.maxend[heads] = np.maximum(t.maxend[heads], cm[lastrow] - (1 << 40))

    def _client_side(self, cid: int) -> int:
        """Which side is the client: the first pure SYN's sender; else the
        SYN-ACK's receiver; else Zeek's first-packet rule with its
        likely-server-port flip (PEER-SEMANTICS.md §1.2)."""
        t = self.t
        syn0, syn1 = t.syn_t[cid]
        if math.isfinite(syn0) or math.isfinite(syn1):
            return 1 if syn1 < syn0 else 0
        sa0, sa1 = t.synack_t[cid]
        if math.isfinite(sa0) or math.isfinite(sa1):
            return 0 if sa1 < sa0 else 1
        first = int(t.first_dir[cid])
        lo, hi = t.ends[cid]
        sport = (lo if first == 0 else hi)[1]  # type: ignore[index]
        dport = (hi if first == 0 else lo)[1]  # type: ignore[index]
        servers = DEFAULT_LIKELY_SERVER_PORTS
        flip = sport in servers and (dport not in servers or sport < dport)
        return 1 - first if flip else first

    # -- results -----------------------------------------------------------------
    def results(self) -> list[FastConn]:
        t = self.t
        n = t.n
        if n == 0:
            return []
        cs = np.array([self._client_side(i) for i in range(n)], dtype=np.int64)
        ss = 1 - cs
        r = np.arange(n)

        def pick(arr: npt.NDArray[Any], side: I64) -> list[Any]:
            values: list[Any] = arr[r, side].tolist()
            return values

        syn_t, synack_t = pick(t.syn_t, cs), pick(t.synack_t, ss)
        fin_c, fin_s = pick(t.fin_t, cs), pick(t.fin_t, ss)
        rst_c, rst_s = pick(t.rst_t, cs), pick(t.rst_t, ss)
        pk_c, pk_s = pick(t.pkts, cs), pick(t.pkts, ss)
        by_c, by_s = pick(t.bytes, cs), pick(t.bytes, ss)
        rx_c, rx_s = pick(t.rexmit, cs), pick(t.rexmit, ss)
        hs = t.hs_ack_t[:n].tolist()
        first, last = t.first[:n].tolist(), t.last[:n].tolist()
        rows = []
        for cid in range(n):
            lo, hi = t.ends[cid]
            c = int(cs[cid])
            client, server = (
                (_endpoint(lo), _endpoint(hi)) if c == 0 else (_endpoint(hi), _endpoint(lo))
            )
            fc, fs, rc, rs = fin_c[cid], fin_s[cid], rst_c[cid], rst_s[cid]
            closer = None
            if fc != math.inf or fs != math.inf:
                closer = "client" if fc <= fs else "server"
            if rc != math.inf or rs != math.inf:
                first_rst = "client" if rc <= rs else "server"
                if first_rst == "server" and synack_t[cid] == math.inf and syn_t[cid] != math.inf:
                    ending = "refused (RST to SYN)"
                else:
                    ending = f"RST by {first_rst}"
            elif fc != math.inf and fs != math.inf:
                ending = "FIN both ways"
            elif closer is not None:
                ending = f"half-closed by {closer}"
            elif syn_t[cid] != math.inf and synack_t[cid] == math.inf:
                ending = "no answer to SYN"
            elif pk_c[cid] == 0 or pk_s[cid] == 0:
                ending = "half-open (one direction only)"
            else:
                ending = "still open"
            rows.append(
                (
                    first[cid],
                    cid,
                    client,
                    server,
                    last[cid] - first[cid],
                    (pk_c[cid], pk_s[cid]),
                    (by_c[cid], by_s[cid]),
                    (rx_c[cid], rx_s[cid]),
                    _delta(syn_t[cid], synack_t[cid]),
                    _delta(synack_t[cid], hs[cid]),
                    closer,
                    ending,
                )
            )
        rows.sort(key=lambda x: (x[0], x[1]))
        return [
            FastConn(
                i,
                row[2],
                row[3],
                row[0],
                row[4],
                row[5],
                row[6],
                row[7],
                row[8],
                row[9],
                row[10],
                row[11],
            )
            for i, row in enumerate(rows)
        ]


def _delta(a: float, b: float) -> float | None:
    if math.isfinite(a) and math.isfinite(b) and b >= a:
        return b - a
    return None


def _endpoint(e: object) -> str:
    """(address, port) as text; the address is an int for IPv4, text for IPv6."""
    pair = cast(tuple[object, int], e)
    addr, port = pair
    if isinstance(addr, int):
        return f"{_ipv4_text(addr)}:{port}"
    return f"{host_text(str(addr))}:{port}"


# Link header length of the link types the vectorised path reads; a header's
# number goes through ``linktype_of`` first, so the BSD DLT_RAW aliases count.
_LINK_HEADER: dict[LinkType | None, int] = {
    LinkType.ETHERNET: 14,
    LinkType.RAW: 0,
    LinkType.IPV4: 0,
    LinkType.LINUX_SLL: 16,
}


def _decode_chunk(
    buf: memoryview, offs: I64, incl: I64, endian: str, unit: float, linktype: int
) -> tuple[dict[str, Any], I64]:
    """Vectorised decode of Ethernet(+one VLAN tag)/raw/SLL IPv4 TCP records.

    One 1-D gather per header byte (cheap: the index arrays are one entry
    per record).  Returns the columns and the indices (into ``offs``) of
    records left for the per-record decoder (IPv6, MPLS, PPPoE, IP options,
    damaged or truncated headers).
    """
    link = _LINK_HEADER.get(linktype_of(linktype))
    if link is None:
        return {}, np.arange(offs.size)
    a = np.frombuffer(buf, dtype=np.uint8)
    # Records within the last few bytes of the file go to the per-record
    # decoder, so every gather below stays inside the buffer.
    tail = offs + 16 + 80 > a.size
    pkt = np.where(tail, 0, offs + 16)
    if endian == "<":
        sec = (
            a[offs]
            | (a[offs + 1].astype(np.int64) << 8)
            | (a[offs + 2].astype(np.int64) << 16)
            | (a[offs + 3].astype(np.int64) << 24)
        )
        o = offs + 4
        frac = (
            a[o]
            | (a[o + 1].astype(np.int64) << 8)
            | (a[o + 2].astype(np.int64) << 16)
            | (a[o + 3].astype(np.int64) << 24)
        )
    else:
        sec = _be32(a, offs)
        frac = _be32(a, offs + 4)
    time = sec + frac * unit
    if linktype == LinkType.ETHERNET:
        et = _be16(a, pkt + 12)
        vlan = (et == 0x8100) | (et == 0x88A8)
        ipo = pkt + 14
        if vlan.any():
            et = np.where(vlan, _be16(a, pkt + 16), et)
            ipo = ipo + vlan * 4
        is_ip4 = et == 0x0800
        slow = ~is_ip4 & ((et == 0x86DD) | (et == 0x8847) | (et == 0x8864) | vlan)
    elif linktype == LinkType.LINUX_SLL:
        et = _be16(a, pkt + 14)
        ipo = pkt + 16
        is_ip4 = et == 0x0800
        slow = et == 0x86DD
    else:
        ipo = pkt
        version = a[pkt] >> 4
        is_ip4 = version == 4
        slow = version == 6
    have = (incl >= (ipo - pkt) + 40) & ~tail
    vb = a[ipo]
    plain = is_ip4 & (vb == 0x45) & have
    # IP options, truncated records: the per-record decoder reports or handles them.
    slow |= (is_ip4 & ~plain) | tail
    keep = np.flatnonzero(plain)
    ipo = ipo[keep]
    proto = a[ipo + 9]
    frag = _be16(a, ipo + 6) & 0x3FFF
    tcp = (proto == 6) & (frag == 0)
    # Fragments of any protocol (a UDP tunnel's too) go to the per-record
    # path, which reassembles them (tcplab.wire.fragments).
    slow_frag = keep[frag != 0]
    # UDP may carry TCP in a tunnel (Teredo on any port, GTP-U, VXLAN,
    # Geneve), and so may IP in IP (4, 41) and GRE (47): the per-record
    # decoder (tcplab.wire.tunnel) decides.
    tunnel = (proto == 17) | (proto == 4) | (proto == 41) | (proto == 47)
    slow_udp = keep[tunnel & (frag == 0)]
    keep = keep[tcp]
    ipo = ipo[tcp]
    tcpo = ipo + 20
    doff = (a[tcpo + 12].astype(np.int64) >> 4) * 4
    # A data offset below 20 or past the IP packet is damage the per-record
    # decoder reports (one line with the offset), never a segment here.
    sane = (doff >= 20) & (20 + doff <= _be16(a, ipo + 2))
    if not sane.all():
        slow_doff = keep[~sane]
        keep, ipo, tcpo, doff = keep[sane], ipo[sane], tcpo[sane], doff[sane]
        slow_udp = np.union1d(slow_udp, slow_doff)
    cols = {
        "time": time[keep],
        "src": _be32(a, ipo + 12),
        "dst": _be32(a, ipo + 16),
        "sport": _be16(a, tcpo),
        "dport": _be16(a, tcpo + 2),
        "seq": _be32(a, tcpo + 4),
        "flags": a[tcpo + 13].astype(np.int64),
        "plen": np.maximum(_be16(a, ipo + 2) - 20 - doff, 0),
    }
    return cols, np.union1d(np.union1d(np.flatnonzero(slow), slow_frag), slow_udp)


def summarize_file(
    path: str | Path, progress: Callable[[int], None] | None = None, chunk: int = CHUNK
) -> tuple[list[FastConn], ReadReport]:
    """The connection summary of a classic pcap file, window by window.

    The file is memory-mapped; each processed window is handed back to the
    kernel (MADV_DONTNEED), so resident memory stays at about one window.
    """
    summ = Summarizer()
    report = summ.report
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror}") from None
    with fh:
        head = fh.read(pcap.GLOBAL_HEADER_LEN)
        if pcap.sniff(head) is None:
            # pcapng, gzip, or not a capture at all: the shared reader (the
            # default mode's) knows them all and says which; its segments are
            # aggregated the same way, in batches.
            for batch in _batches(read_segments(path, report)):
                _add_segments(summ, batch)
            return summ.results(), report
        if len(head) < pcap.GLOBAL_HEADER_LEN:
            raise InputError(f"{path}: offset 4: pcap file header truncated")
        header = pcap.GlobalHeader.parse(head)
        endian, linktype = header.byte_order, header.linktype
        unit = 1e-9 if header.nanosecond else 1e-6
        size = os.fstat(fh.fileno()).st_size
        if size == 24:
            return [], report
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            _walk(mm, size, chunk, endian, unit, linktype, summ, report, str(path), progress)
        finally:
            mm.close()
    return summ.results(), report


def _walk(
    mm: mmap.mmap,
    size: int,
    chunk: int,
    endian: str,
    unit: float,
    linktype: int,
    summ: Summarizer,
    report: ReadReport,
    name: str,
    progress: Callable[[int], None] | None,
) -> None:
    rec_len = struct.Struct(endian + "8xI").unpack_from
    view = memoryview(mm)  # unpack_from is much faster on a memoryview than on the mmap
    off = 24
    index = 0
    done = 0  # bytes already handed back to the kernel
    page = mmap.PAGESIZE
    reassembler = Reassembler()
    try:
        while off < size:
            window_end = min(size, off + chunk)
            offs_list: list[int] = []
            append = offs_list.append
            limit = min(window_end, size - 16)
            # The one per-record Python loop: record lengths chain the offsets.
            while off <= limit:
                append(off)
                off += 16 + rec_len(view, off)[0]
            if off > size:
                bad = offs_list.pop()
                n = off - bad - 16
                what = (
                    f"record length {n} implausible" if n > 0x4000000 else "packet data truncated"
                )
                report.problem(f"{name}: offset {bad}: {what}")
                off = size
            elif limit < window_end and off < size:
                report.problem(f"{name}: offset {off}: record header truncated")
                off = size
            if offs_list:
                offs = np.array(offs_list, dtype=np.int64)
                incl = np.diff(np.r_[offs, off]) - 16
                report.frames += offs.size
                cols, slow = _decode_chunk(view, offs, incl, endian, unit, linktype)
                if cols:
                    report.tcp += cols["time"].size
                    summ.add_columns(
                        cols["time"],
                        cols["src"],
                        cols["sport"],
                        cols["dst"],
                        cols["dport"],
                        cols["seq"],
                        cols["flags"],
                        cols["plen"],
                    )
                if slow.size:
                    _slow_rows(
                        summ,
                        view,
                        offs[slow],
                        endian,
                        unit,
                        linktype,
                        index,
                        report,
                        name,
                        reassembler,
                    )
                index += offs.size
            release = (min(off, size) // page) * page
            if release > done and hasattr(mm, "madvise"):
                mm.madvise(mmap.MADV_DONTNEED, done, release - done)
                done = release
            if progress is not None:
                progress(min(off, size))
        _report_incomplete(reassembler.finish(), report, name)
    finally:
        view.release()


def _batches(segments: Iterable[Segment], size: int = 65536) -> Iterator[list[Segment]]:
    batch: list[Segment] = []
    for seg in segments:
        batch.append(seg)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _report_incomplete(given_up: list[Incomplete], report: ReadReport, name: str) -> None:
    """One problem line per IP datagram whose fragments never all arrived."""
    for incomplete in given_up:
        report.problem(f"{name}: frame {incomplete.frames[0]}: {incomplete.describe()}")


def _slow_rows(
    summ: Summarizer,
    buf: memoryview,
    offs: I64,
    endian: str,
    unit: float,
    linktype: int,
    index: int,
    report: ReadReport,
    name: str,
    reassembler: Reassembler,
) -> None:
    """Records the vectorised decoder left: decode one by one, then aggregate.
    IP fragments go to ``reassembler``; a completed datagram is decoded on
    its last fragment, as ``tcplab.capture.TcpRecords`` does.

    IPv4 rows are keyed exactly like the vectorised ones (so an MPLS- or
    VLAN-tagged packet joins its connection); IPv6 rows by a hash of the
    endpoints.
    """
    rec = struct.Struct(endian + "IIII")
    segments: list[Segment] = []
    for off in offs.tolist():
        sec, frac, incl, _orig = rec.unpack_from(buf, off)
        frame = bytes(buf[off + 16 : off + 16 + incl])
        try:
            packet = decode_frame(linktype, frame, verify_checksum=False)
        except WireError as exc:
            report.problem(f"{name}: offset {off + 16 + exc.offset}: {exc.message}")
            report.undecodable += 1
            continue
        time = sec + frac * unit
        if isinstance(packet, NotTcp) and "fragment" in packet.reason:
            fragment = fragment_in(linktype, frame)
            if fragment is not None:
                done = reassembler.add(fragment, round(time * 1e9), index)
                _report_incomplete(reassembler.take_incomplete(), report, name)
                if done is not None:
                    frame = done.datagram
                    try:
                        packet = decode_ip(frame, verify_checksum=False)
                    except WireError as exc:
                        report.problem(f"{name}: frame {index}: {exc}")
                        continue
        if isinstance(packet, NotTcp):
            report.not_tcp += 1
            continue
        report.tcp += 1
        segments.append(
            segment_of(index, sec * 1_000_000_000 + round(frac * unit * 1e9), frame, packet)
        )
    _add_segments(summ, segments)


def _add_segments(summ: Summarizer, segments: Iterable[Segment]) -> None:
    """Aggregate decoded segments: IPv4 rows keyed exactly like the
    vectorised ones, IPv6 rows by a hash of the endpoints."""
    import ipaddress

    v4: list[tuple[float, int, int, int, int, int, int, int, int]] = []
    v6: list[tuple[float, int, tuple[object, object], int, int, int, int, int]] = []
    for seg in segments:
        if ":" not in seg.src:
            v4.append(
                (
                    seg.time,
                    int(ipaddress.IPv4Address(seg.src)),
                    seg.sport,
                    int(ipaddress.IPv4Address(seg.dst)),
                    seg.dport,
                    seg.seq,
                    seg.flags,
                    seg.length,
                    seg.wire_length,
                )
            )
            continue
        a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
        lo, hi = (a, b) if a <= b else (b, a)
        v6.append(
            (
                seg.time,
                hash((lo, hi)) & 0xFFFFFFFFFFFFFFFF,
                (lo, hi),
                0 if a == lo else 1,
                seg.seq,
                seg.flags,
                seg.length,
                seg.wire_length,
            )
        )
    if v4:
        cols = [np.array(c) for c in zip(*v4, strict=True)]
        src, sport, dst, dport, seqs, flags4, plen = [c.astype(np.int64) for c in cols[1:8]]
        summ.add_columns(
            cols[0].astype(np.float64),
            src,
            sport,
            dst,
            dport,
            seqs,
            flags4,
            plen,
            seglen=cols[8].astype(np.int64),
        )
    if v6:
        time, keys, ends, dirs, seqs6, flags, plens, wire = zip(*v6, strict=True)
        d = np.array(dirs, dtype=np.int64)
        zero = np.zeros_like(d)
        # src/dst 0/1 encode the direction: add_columns calls the lower endpoint 0.
        summ.add_columns(
            np.array(time, dtype=np.float64),
            d,
            zero,
            1 - d,
            zero,
            np.array(seqs6, dtype=np.int64),
            np.array(flags, dtype=np.int64),
            np.array(plens, dtype=np.int64),
            slow_keys=(np.array(keys, dtype=np.uint64), list(ends)),
            seglen=np.array(wire, dtype=np.int64),
        )


def _ms(x: float | None) -> str:
    return f"{x * 1000:.3f}" if x is not None else "-"


def write_summary(conns: list[FastConn], out: TextIO) -> None:
    """One line per connection, aligned columns (fast to print, grep-able)."""
    out.write(
        f"{'#':>6} {'client':<22} {'server':<22} {'start':>17} {'dur s':>9} "
        f"{'pkts c>s/s>c':>13} {'bytes c>s/s>c':>19} {'rexmit':>9} {'hs rtt ms':>17} ended\n"
    )
    lines = []
    for c in conns:
        closer = f" ({c.closer} first)" if c.closer and c.ending == "FIN both ways" else ""
        lines.append(
            f"{c.number:>6} {c.client:<22} {c.server:<22} {c.start:>17.6f} {c.duration:>9.3f} "
            f"{c.packets[0]:>6}/{c.packets[1]:<6} {c.payload[0]:>9}/{c.payload[1]:<9} "
            f"{c.retransmissions[0]:>4}/{c.retransmissions[1]:<4} "
            f"{_ms(c.syn_synack):>8}/{_ms(c.synack_ack):<8} {c.ending}{closer}\n"
        )
    out.write("".join(lines))


def print_summary(
    path: Path,
    conn: int | None = None,
    host: str | None = None,
    port: int | None = None,
    as_json: bool = False,
) -> ReadReport:
    size = path.stat().st_size
    if size > 4 * 1024 * 1024 and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"summarising {path.name}", total=size)
            conns, report = summarize_file(path, progress=lambda n: bar.advance(task, n))
    else:
        conns, report = summarize_file(path)
    for problem in report.problems:
        sys.stderr.write(f"tcplab: {problem}\n")
    chosen = [
        c
        for c in conns
        if (conn is None or c.number == conn)
        and (
            host is None
            or host
            in (c.client.rsplit(":", 1)[0].strip("[]"), c.server.rsplit(":", 1)[0].strip("[]"))
        )
        and (port is None or str(port) in (c.client.rsplit(":", 1)[1], c.server.rsplit(":", 1)[1]))
    ]
    if as_json:
        import dataclasses
        import json

        for c in chosen:
            sys.stdout.write(json.dumps(dataclasses.asdict(c)) + "\n")
        return report
    write_summary(chosen, sys.stdout)
    return report
