"""The overview's connection rows fit 80 columns, IPv6 included.

A row breaks only between fields, so addresses stay whole and unambiguous,
bracketed as ``ss`` writes them (``[2001:db8::1]:443``): a long IPv6 pair
puts ``-> server`` on its own line.  The captures are written here and run
through ``tcplab analyze`` as a user runs it (stdout not a terminal: plain text).
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from conftest import ACK, FIN, PSH, RST, SYN, _checksum, ipv4_tcp, run_tcplab
from tcplab.analyze.core import analyze_file
from tcplab.analyze.views import connection_row
from tcplab.capture import PcapWriter

T0 = 1_700_000_000_000_000_000
LONG_A = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1111"  # 39 characters: no :: to shorten
LONG_B = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:2222"


def ipv6_tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
             payload: bytes = b"") -> bytes:  # fmt: skip
    """A raw IPv6 packet with a TCP segment, checksum over the RFC 8200 §8.1 pseudo-header."""
    s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 512, 0, 0) + payload
    pseudo = s + d + struct.pack("!I3xB", len(tcp), 6)
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    return struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + s + d + tcp


def conversation(build, a: str, b: str, sport: int, rst: bool = False) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Handshake, 5 bytes of data, then FIN both ways (or the client's RST)."""
    frames = [
        build(a, b, sport, 443, 100, 0, SYN),
        build(b, a, 443, sport, 500, 101, SYN | ACK),
        build(a, b, sport, 443, 101, 501, ACK),
        build(a, b, sport, 443, 101, 501, PSH | ACK, b"hello"),
        build(b, a, 443, sport, 501, 106, ACK),
    ]
    if rst:
        return [*frames, build(a, b, sport, 443, 106, 0, RST)]
    return [*frames, build(a, b, sport, 443, 106, 501, FIN | ACK),
            build(b, a, 443, sport, 501, 107, FIN | ACK),
            build(a, b, sport, 443, 107, 502, ACK)]  # fmt: skip


def v4(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
       payload: bytes = b"") -> bytes:  # fmt: skip
    return ipv4_tcp(src, dst, sport, dport, seq, ack, flags, payload)


def write(path: Path, frames: list[bytes]) -> Path:
    with path.open("wb") as out:
        writer = PcapWriter(out, 101)
        for i, frame in enumerate(frames):
            writer.write(T0 + i * 1_000_000, frame)
    return path


def test_long_ipv6_rows_fit_80_columns_with_whole_addresses(tmp_path: Path) -> None:
    frames = conversation(ipv6_tcp, LONG_A, LONG_B, 40000)
    frames += conversation(ipv6_tcp, LONG_A, LONG_B, 40001, rst=True)
    path = write(tmp_path / "v6.pcap", frames)
    result = run_tcplab("analyze", str(path))
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, [ln for ln in lines if len(ln) > 80]
    for number, port, ending in ((0, 40000, "FIN both ways (client first)"),
                                 (1, 40001, "RST by client")):  # fmt: skip
        first = lines.index(f"{number:>6}  [{LONG_A}]:{port}")
        row = lines[first : first + 4]
        assert row[1].startswith(f"        -> [{LONG_B}]:443"), row
        assert ending in row[1] or row[2] == f"        {ending}", row
    # Every address is there whole, bracketed before its port.
    text = result.stdout
    assert text.count(f"[{LONG_A}]:") == 2 and text.count(f"[{LONG_B}]:443") == 2
    assert "…" not in text


def test_the_longest_ipv4_row_fits_too(tmp_path: Path) -> None:
    a, b = "192.168.100.200", "172.16.255.254"
    path = write(tmp_path / "v4.pcap", conversation(v4, a, b, 65535))
    analysis = analyze_file(path)
    row = connection_row(analysis.connections[0]).splitlines()
    assert all(len(line) <= 80 for line in row), row
    assert row[0] == f"     0  {a}:65535 -> {b}:443"
    assert row[1] == "        FIN both ways (client first)"
    assert row[2].startswith("        0.007 s  5/3 pkts  rtt 1.000 ms  ")


def test_a_short_ipv4_row_keeps_its_one_line_head(tmp_path: Path) -> None:
    path = write(tmp_path / "short.pcap", conversation(v4, "10.0.0.1", "10.0.0.2", 40000))
    row = connection_row(analyze_file(path).connections[0]).splitlines()
    assert row[0] == "     0  10.0.0.1:40000 -> 10.0.0.2:443  FIN both ways (client first)"
    assert row[1].startswith("        0.007 s  5/3 pkts  rtt 1.000 ms  ")
    assert len(row) == 2
