"""``tcplab packets``: the tcpdump -nn line format with Wireshark-relative
numbers, the options, JSON, and behaviour at the edges (pipes, empty files)."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ACK, FIN, PSH, REPO, RST, SYN, ipv4_tcp, run_tcplab
from tcplab.capture import PcapWriter

C, S = "192.0.2.1", "198.51.100.7"
T0 = 1_700_000_000_000_001_000  # 2023-11-14 22:13:20.000001 UTC
MSS_SACK_TS_WS = (
    b"\x02\x04\x05\xb4"  # mss 1460
    + b"\x04\x02"  # sackOK
    + b"\x08\x0a"
    + struct.pack("!II", 1, 0)  # TS val 1 ecr 0
    + b"\x01"  # nop
    + b"\x03\x03\x07"  # wscale 7
)


def ipv6_tcp(sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 512, 0, 0)
    src = dst = socket.inet_pton(socket.AF_INET6, "::1")
    return struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + src + dst + tcp


def udp_frame() -> bytes:
    udp = struct.pack("!HHHH", 53, 53, 8, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, bytes(4), bytes(4))
    return ip + udp


FRAMES = [
    ipv4_tcp(C, S, 40000, 8080, 1000, 0, SYN, window=64240, options=MSS_SACK_TS_WS),
    ipv4_tcp(S, C, 8080, 40000, 5000, 1001, SYN | ACK, window=65160),
    udp_frame(),
    ipv4_tcp(C, S, 40000, 8080, 1001, 5001, ACK, window=502),
    ipv4_tcp(C, S, 40000, 8080, 1001, 5001, PSH | ACK, payload=b"hello", window=502),
    ipv4_tcp(S, C, 8080, 40000, 5001, 1006, 0x20 | ACK, window=509),  # URG set, urgent 0
    ipv4_tcp(C, S, 40000, 8080, 1006, 5001, FIN | ACK, window=502),
    ipv4_tcp(S, C, 8080, 40000, 5001, 0, RST, window=0),
]
IPV6_FRAME = ipv6_tcp(5555, 6666, 42, 0, SYN)

EXPECTED = [
    "22:13:20.000001 IP 192.0.2.1.40000 > 198.51.100.7.8080: Flags [S], seq 0, win 64240, "
    "options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0",
    "22:13:20.001001 IP 198.51.100.7.8080 > 192.0.2.1.40000: Flags [S.], seq 0, ack 1, "
    "win 65160, length 0",
    "22:13:20.003001 IP 192.0.2.1.40000 > 198.51.100.7.8080: Flags [.], ack 1, win 502, length 0",
    "22:13:20.004001 IP 192.0.2.1.40000 > 198.51.100.7.8080: Flags [P.], seq 1:6, ack 1, "
    "win 502, length 5",
    "22:13:20.005001 IP 198.51.100.7.8080 > 192.0.2.1.40000: Flags [U.], ack 6, win 509, "
    "urg 0, length 0",
    "22:13:20.006001 IP 192.0.2.1.40000 > 198.51.100.7.8080: Flags [F.], seq 6, ack 1, "
    "win 502, length 0",
    "22:13:20.007001 IP 198.51.100.7.8080 > 192.0.2.1.40000: Flags [R], seq 1, win 0, length 0",
    "22:13:20.008001 IP6 ::1.5555 > ::1.6666: Flags [S], seq 0, win 512, length 0",
]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "sample.pcap"
    with path.open("wb") as f:
        writer = PcapWriter(f, 101, nanosecond=True)
        for i, frame in enumerate([*FRAMES, IPV6_FRAME]):
            writer.write(T0 + i * 1_000_000, frame)
    return path


def test_tcpdump_lines_with_relative_numbers(capture: Path) -> None:
    result = run_tcplab("packets", "--utc", str(capture))
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == EXPECTED  # the UDP record is counted, not printed


def test_absolute_numbers(capture: Path) -> None:
    result = run_tcplab("packets", "--utc", "--absolute", "-c", "2", str(capture))
    assert result.stdout.splitlines() == [
        EXPECTED[0].replace("seq 0,", "seq 1000,"),
        EXPECTED[1].replace("seq 0, ack 1,", "seq 5000, ack 1001,"),
    ]


def test_count_and_filters(capture: Path) -> None:
    assert len(run_tcplab("packets", "-c", "3", str(capture)).stdout.splitlines()) == 3
    only_v6 = run_tcplab("packets", "--utc", "--port", "6666", str(capture))
    assert only_v6.stdout.splitlines() == [EXPECTED[-1]]
    host = run_tcplab("packets", "--utc", "--host", "::1", "--host", "10.9.9.9", str(capture))
    assert host.stdout.splitlines() == [EXPECTED[-1]]
    bad = run_tcplab("packets", "--host", "not-an-ip", str(capture))
    assert bad.code == 2 and "not an IP address" in bad.stderr


def test_filtered_json_keeps_global_stream_numbers(capture: Path) -> None:
    result = run_tcplab("packets", "--json", "--port", "6666", str(capture))
    (obj,) = map(json.loads, result.stdout.splitlines())
    assert (obj["frame"], obj["stream"], obj["ip_version"]) == (9, 1, 6)


@pytest.mark.parametrize(
    ("args", "first", "second"),
    [
        (["--time", "epoch"], "1700000000.000001 ", "1700000000.001001 "),
        (["--time", "epoch", "--nano"], "1700000000.000001000 ", "1700000000.001001000 "),
        (["--time", "delta"], "00:00:00.000000 ", "00:00:00.001000 "),
        (["--time", "relative"], "00:00:00.000000 ", "00:00:00.001000 "),
        (["--time", "date", "--utc"], "2023-11-14 22:13:20.000001 ", "2023-11-14 22:13:20.001001 "),
        (["--time", "none"], "IP ", "IP "),
    ],
)
def test_time_formats(capture: Path, args: list[str], first: str, second: str) -> None:
    lines = run_tcplab("packets", *args, "-c", "2", str(capture)).stdout.splitlines()
    assert lines[0].startswith(first) and lines[1].startswith(second)


def test_json_has_every_field(capture: Path) -> None:
    result = run_tcplab("packets", "--json", "-c", "1", str(capture))
    obj = json.loads(result.stdout)
    assert obj["frame"] == 1 and obj["time"] == "1700000000.000001000"
    assert (obj["src"], obj["sport"], obj["dst"], obj["dport"]) == (C, 40000, S, 8080)
    assert (obj["seq"], obj["seq_raw"], obj["ack"], obj["ack_raw"], obj["nxtseq"]) == (
        0,
        1000,
        None,
        0,
        1,
    )
    assert (obj["flags"], obj["flags_text"], obj["flags_value"]) == (["SYN"], "S", 2)
    assert obj["options"] == [
        {"kind": 2, "name": "mss", "value": 1460},
        {"kind": 4, "name": "sack_perm"},
        {"kind": 8, "name": "timestamp", "val": 1, "ecr": 0},
        {"kind": 1, "name": "nop"},
        {"kind": 3, "name": "wscale", "shift": 7},
    ]
    assert obj["checksum_ok"] is True
    assert (obj["ip_version"], obj["ttl"], obj["ip_len"], obj["header_len"], obj["len"]) == (
        4,
        64,
        60,
        40,
        0,
    )
    for key in ("linktype", "caplen", "orig_len", "window", "urgent", "stream", "offset"):
        assert isinstance(obj[key], int), key


def test_closing_the_pipe_early_is_silent(tmp_path: Path) -> None:
    path = tmp_path / "many.pcap"
    frame = ipv4_tcp(C, S, 40000, 8080, 1001, 5001, ACK)
    with path.open("wb") as f:
        writer = PcapWriter(f, 101)
        for i in range(50_000):
            writer.write(T0 + i, frame)
    proc = subprocess.run(
        ["bash", "-c", f'set -o pipefail; "{sys.executable}" -m tcplab packets "{path}" | head -2'],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 2


def test_empty_capture_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    with path.open("wb") as f:
        PcapWriter(f, 1)
    result = run_tcplab("packets", str(path))
    assert (result.code, result.stdout, result.stderr) == (0, "", "")


def test_demo_script_prints_the_conversation() -> None:
    """``make demo`` (scripts/demo.sh): the lab plays handshake-close on real
    endpoints, then ``tcplab packets`` reads the lab's capture back."""
    proc = subprocess.run(
        ["scripts/demo.sh"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = "== tcplab packets out/handshake-close.pcapng"
    assert header in lines
    packets = lines[lines.index(header) + 1 :]
    flags = [line.split("Flags [")[1].split("]")[0] for line in packets]
    assert flags[:3] == ["S", "S.", "."]
    assert flags.count("P.") == 2 and flags.count("F.") == 2
    # The client's first data segment, relative numbers as tcpdump prints them.
    assert "Flags [P.], seq 1:13, ack 1," in packets[3]


@pytest.mark.parametrize("compressed", [False, True])
def test_standard_input_reads_as_the_file_does(tmp_path: Path, compressed: bool) -> None:
    # tcpdump -w - | tcplab packets -
    import gzip

    path = next((REPO / "tests" / "data" / "analyze").glob("*.pcap*"))
    data = path.read_bytes()
    piped = gzip.compress(data) if compressed else data
    argv = [sys.executable, "-m", "tcplab", "packets", "--json"]
    from_file = subprocess.run([*argv, str(path)], capture_output=True, timeout=120)
    from_stdin = subprocess.run([*argv, "-"], input=piped, capture_output=True, timeout=120)
    assert from_file.returncode == from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout and from_stdin.stdout == from_file.stdout
