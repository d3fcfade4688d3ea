"""The fast columnar summary agrees with the detailed per-packet analysis.

On every classic-pcap reference trace and on synthetic captures (known
shapes: normal, retransmissions, RST abort, refused, unanswered SYN,
server-first close), packets, payload bytes, retransmissions (Wireshark's
"not advanced": retransmission, fast retransmission, out-of-order), handshake
RTT, who closed first and how the connection ended must be equal.  Small
chunk sizes exercise records split across chunk boundaries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED
from tcplab.analyze import analyze_file
from tcplab.analyze.fast import FastConn, summarize_file
from tcplab.analyze.synth import write_capture

TRACES = SHARED / "peer-traces/zeek/traces"
PCAPS = sorted(str(p.relative_to(TRACES)) for p in TRACES.rglob("*.pcap"))
NOT_ADVANCED = {"retransmission", "out_of_order", "fast_retransmission"}


def detailed_rows(path: Path) -> list[tuple[object, ...]]:
    analysis = analyze_file(path)
    rexmit: dict[tuple[int, str], int] = {}
    for p in analysis.packets:
        if p.analysis & NOT_ADVANCED:
            rexmit[(p.stream, p.sender)] = rexmit.get((p.stream, p.sender), 0) + 1
    rows = []
    for c in analysis.connections:
        rows.append(
            (
                c.client.label,
                c.server.label,
                (c.client.packets, c.server.packets),
                (c.client.payload_bytes, c.server.payload_bytes),
                c.ending,
                (rexmit.get((c.number, "client"), 0), rexmit.get((c.number, "server"), 0)),
                c.active_closer,
                _r(c.rtt_syn_synack),
                _r(c.rtt_synack_ack),
            )
        )
    return rows


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def fast_rows(conns: list[FastConn]) -> list[tuple[object, ...]]:
    return [
        (
            c.client,
            c.server,
            c.packets,
            c.payload,
            c.ending,
            c.retransmissions,
            c.closer,
            _r(c.syn_synack),
            _r(c.synack_ack),
        )
        for c in conns
    ]


@pytest.mark.parametrize("name", PCAPS)
def test_fast_summary_equals_detailed_on_reference_traces(name: str) -> None:
    path = TRACES / name
    conns, _ = summarize_file(path)
    assert fast_rows(conns) == detailed_rows(path)


def test_fast_summary_on_synthetic_capture_with_small_chunks(tmp_path: Path) -> None:
    path = tmp_path / "synth.pcap"
    info = write_capture(path, packets=6000, connections=120, seed=7)
    whole, report = summarize_file(path)
    chunked, _ = summarize_file(path, chunk=5000)
    assert report.frames == info["packets"] and not report.problems
    assert fast_rows(chunked) == fast_rows(whole) == detailed_rows(path)
    endings = [c.ending for c in whole]
    assert endings.count("refused (RST to SYN)") == info.get("refused", 0)
    assert endings.count("no answer to SYN") == info.get("noanswer", 0)
    assert endings.count("RST by client") == info.get("rst", 0)
    assert sum(c.retransmissions[1] > 0 for c in whole) <= info.get("retransmit", 0)
    assert sum(c.packets[0] + c.packets[1] for c in whole) == info["packets"]


def _packet(
    t: float,
    src: tuple[str, int],
    dst: tuple[str, int],
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
) -> bytes:
    import ipaddress
    import struct

    from tcplab.wire.checksum import ones_complement_sum

    sip, dip = ipaddress.IPv4Address(src[0]).packed, ipaddress.IPv4Address(dst[0]).packed
    tcp = struct.pack("!HHIIHHHH", src[1], dst[1], seq, ack, (5 << 12) | flags, 65000, 0, 0)
    seg = tcp + payload
    pseudo = sip + dip + struct.pack("!HH", 6, len(seg))
    ck = 0xFFFF - ones_complement_sum(pseudo + seg)
    seg = seg[:16] + struct.pack("!H", ck) + seg[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 0, 0x4000, 64, 6, 0, sip, dip)
    ip = ip[:10] + struct.pack("!H", 0xFFFF - ones_complement_sum(ip)) + ip[12:]
    frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + seg
    sec = int(t)
    return struct.pack("<IIII", sec, round((t - sec) * 1e6), len(frame), len(frame)) + frame


def write_pcap(path: Path, records: list[bytes]) -> None:
    import struct

    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(head + b"".join(records))


def lifecycle(t0: float, isn_c: int, isn_s: int) -> list[bytes]:
    """A full connection: handshake, request, response, FIN both ways."""
    c, s = ("10.1.1.1", 40000), ("10.2.2.2", 80)
    S, A, F, P = 0x02, 0x10, 0x01, 0x08
    return [
        _packet(t0, c, s, isn_c, 0, S),
        _packet(t0 + 0.001, s, c, isn_s, isn_c + 1, S | A),
        _packet(t0 + 0.002, c, s, isn_c + 1, isn_s + 1, A),
        _packet(t0 + 0.003, c, s, isn_c + 1, isn_s + 1, P | A, b"x" * 10),
        _packet(t0 + 0.004, s, c, isn_s + 1, isn_c + 11, P | A, b"y" * 20),
        _packet(t0 + 0.005, c, s, isn_c + 11, isn_s + 21, F | A),
        _packet(t0 + 0.006, s, c, isn_s + 21, isn_c + 12, F | A),
        _packet(t0 + 0.007, c, s, isn_c + 12, isn_s + 22, A),
    ]


def test_port_reuse_starts_a_new_connection(tmp_path: Path) -> None:
    # The same 5-tuple twice, the second time with new ISNs (tcp.stream rule),
    # once inside one chunk and once across many small chunks.
    path = tmp_path / "reuse.pcap"
    write_pcap(path, lifecycle(100.0, 1000, 5000) + lifecycle(101.0, 900000, 7000))
    for chunk in (1 << 20, 300):
        conns, _ = summarize_file(path, chunk=chunk)
        assert [(c.packets, c.payload, c.ending) for c in conns] == [
            ((5, 3), (10, 20), "FIN both ways")
        ] * 2
    det = analyze_file(path)
    assert [c.number for c in det.connections] == [0, 1]
    assert "reused_ports" in det.packets[8].analysis
    assert fast_rows(summarize_file(path)[0]) == detailed_rows(path)
