"""``--summary`` counts what the full analysis counts, on a big window and
on every input the default mode reads (through the CLI, as a user runs it).

The first test holds whatever replaces the columnar summary: more than
10,000 connections in one 32 MiB window, each with one retransmitted
segment, must give the same count as ``--json``'s Wireshark flags (the
summary's "retransmissions" are Wireshark's not-advanced segments:
retransmissions, fast retransmissions and out-of-order together).
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import ACK, PSH, SYN, ipv4_tcp, run_tcplab
from tcplab.capture.writer import PcapWriter

CONNECTIONS = 10_200  # > 8,192 connection-directions: the old int64 overflow
S = 1_000_000_000


def client(i: int) -> tuple[str, int]:
    return f"10.{1 + i // 60000 % 200}.{i // 250 % 240}.{1 + i % 250}", 20000 + i % 40000


def write_many(path: Path) -> None:
    """Every connection: SYN, SYN-ACK, a 100-byte segment, the same segment
    again 2 s later; phases interleaved so they all share one window."""
    server = ("10.250.0.1", 80)
    with path.open("wb") as f:
        writer = PcapWriter(f, 101)
        t0 = 1_700_000_000 * S
        for phase, delay in enumerate((0, S // 2, S, 3 * S)):
            for i in range(CONNECTIONS):
                (caddr, cport), isn_c, isn_s = client(i), 1000 + i, 900_000 + i
                if phase == 0:
                    data = ipv4_tcp(caddr, server[0], cport, 80, isn_c, 0, SYN)
                elif phase == 1:
                    data = ipv4_tcp(server[0], caddr, 80, cport, isn_s, isn_c + 1, SYN | ACK)
                else:  # the segment, then its retransmission
                    data = ipv4_tcp(caddr, server[0], cport, 80, isn_c + 1, isn_s + 1,
                                    PSH | ACK, b"x" * 100)
                writer.write(t0 + delay + i * 1000, data)


def summary_lines(path: Path) -> list[dict[str, object]]:
    result = run_tcplab("analyze", "--summary", "--json", str(path), timeout=600)
    assert result.code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def summary_retransmissions(path: Path) -> int:
    total = 0
    for conn in summary_lines(path):
        counts = conn["retransmissions"]
        assert isinstance(counts, list)
        total += sum(counts)
    return total


def test_more_than_ten_thousand_connections_in_one_window(tmp_path: Path) -> None:
    path = tmp_path / "many.pcap"
    write_many(path)
    assert path.stat().st_size < 32 * 1024 * 1024  # one window of the columnar pass
    full = run_tcplab("analyze", "--json", str(path), timeout=900)
    assert full.code == 0, full.stderr
    conns = [json.loads(line) for line in full.stdout.splitlines()]
    assert len(conns) == CONNECTIONS
    flagged = sum(
        c["anomalies"].get("retransmission", 0) + c["anomalies"].get("out_of_order", 0)
        for c in conns
    )
    assert flagged == CONNECTIONS  # one per connection, as built
    assert summary_retransmissions(path) == flagged


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")
def test_summary_reads_pcapng_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "few.pcap"
    with path.open("wb") as f:
        writer = PcapWriter(f, 101)
        for i in range(5):
            writer.write(S + i * S // 10, ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, 1000 + i,
                                                    5000, PSH | ACK, b"x" * (i % 3)))
        writer.write(2 * S, ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, 1000, 5000, PSH | ACK,
                                     b"x" * 10))
    pcapng = tmp_path / "few.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(path), str(pcapng)], check=True, timeout=60)
    gz = tmp_path / "few.pcapng.gz"
    gz.write_bytes(gzip.compress(pcapng.read_bytes()))
    reference = summary_lines(path)
    assert reference and sum(sum(c["retransmissions"]) for c in reference) > 0  # type: ignore[misc, arg-type]
    assert summary_lines(pcapng) == reference
    assert summary_lines(gz) == reference


def test_summary_says_what_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, this is not a capture file at all\n" + struct.pack("!I", 7))
    result = run_tcplab("analyze", "--summary", str(path))
    assert result.code != 0
    assert "Traceback" not in result.stderr and str(path) in result.stderr
