"""Real loopback traffic, captured three ways at once (tcpdump µs pcap,
tcpdump ns pcap, dumpcap pcapng), then ``tcplab packets --json`` checked
field by field against ``tshark -T fields`` on each file.

The traffic covers what the lifecycle looks like on the wire: handshake,
data both ways, FIN/FIN close, a half-close with data after the FIN, an
abortive close (RST), a refused connect (SYN answered by RST), IPv6 on ::1,
and a bulk transfer (GSO segments up to ~64 KB on loopback).
"""

from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import capturing, compare_with_tshark, free_port, needs_tshark, run_tcplab, tcpdump_lo

pytestmark = [needs_tshark, pytest.mark.xdist_group("loopback-capture")]


def _serve_once(
    server: socket.socket, handler: Callable[[socket.socket], None]
) -> threading.Thread:
    def run() -> None:
        conn, _ = server.accept()
        with conn:
            handler(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _listener(family: int = socket.AF_INET) -> socket.socket:
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    server.listen(1)
    return server


def _recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def echo_exchange(server: socket.socket, family: int = socket.AF_INET) -> None:
    """connect, send "hello", echo, client closes, server closes."""

    def echo(conn: socket.socket) -> None:
        conn.sendall(conn.recv(100))
        assert conn.recv(100) == b""  # the client's FIN

    thread = _serve_once(server, echo)
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.connect(server.getsockname()[:2])
        client.sendall(b"hello")
        assert client.recv(100) == b"hello"
    thread.join(5)


def half_close(server: socket.socket) -> None:
    """The client shuts down its sending side; the server still answers, then closes."""

    def answer(conn: socket.socket) -> None:
        request = _recv_all(conn)  # up to and including the client's FIN
        conn.sendall(b"got " + request)

    thread = _serve_once(server, answer)
    with socket.socket() as client:
        client.connect(server.getsockname())
        client.sendall(b"request")
        client.shutdown(socket.SHUT_WR)
        assert _recv_all(client) == b"got request"
    thread.join(5)


def abort(server: socket.socket) -> None:
    """SO_LINGER 0 then close: the client resets the connection (RFC 9293 §3.10.4 ABORT)."""
    done = threading.Event()

    def wait(conn: socket.socket) -> None:
        with suppress(ConnectionResetError):
            conn.recv(100)
        done.set()

    thread = _serve_once(server, wait)
    client = socket.socket()
    client.connect(server.getsockname())
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    thread.join(5)
    assert done.is_set()


def refused(port: int) -> None:
    with socket.socket() as client, pytest.raises(ConnectionRefusedError):
        client.connect(("127.0.0.1", port))


BULK = 200_000


def bulk(server: socket.socket, size: int = BULK) -> None:
    received: list[int] = []

    def sink(conn: socket.socket) -> None:
        received.append(len(_recv_all(conn)))

    thread = _serve_once(server, sink)
    with socket.socket() as client:
        client.connect(server.getsockname())
        client.sendall(bytes(size))
    thread.join(5)
    assert received == [size]


@contextmanager
def dumpcap_lo(out: Path, ports: list[int]) -> Iterator[Path]:
    """dumpcap writes pcapng natively (IDB with if_tsresol, EPBs)."""
    expr = " or ".join(f"tcp port {p}" for p in ports)
    argv = ["dumpcap", "-q", "-B", "16", "-i", "lo", "-f", expr, "-w", str(out)]
    with capturing(argv, lambda line: line.startswith(b"File:")):
        # "File:" is printed when the file is open; the filter is attached a
        # moment later and dumpcap has no "ready" signal, so give it time.
        time.sleep(0.5)
        yield out
        # dumpcap drops what is still in the kernel buffer when interrupted.
        time.sleep(0.5)


@dataclass(frozen=True)
class Captured:
    files: dict[str, Path]
    ports: dict[str, int]


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    if shutil.which("dumpcap") is None:
        pytest.skip("dumpcap not installed")
    tmp = tmp_path_factory.mktemp("live")
    with ExitStack() as stack:
        servers = {
            "echo": stack.enter_context(_listener()),
            "half": stack.enter_context(_listener()),
            "abort": stack.enter_context(_listener()),
            "ipv6": stack.enter_context(_listener(socket.AF_INET6)),
            "bulk": stack.enter_context(_listener()),
        }
        ports = {name: s.getsockname()[1] for name, s in servers.items()}
        ports["refused"] = free_port()
        port_list = list(ports.values())
        files = {
            "pcap-us": tmp / "lo-us.pcap",
            "pcap-ns": tmp / "lo-ns.pcap",
            "pcapng": tmp / "lo.pcapng",
        }
        with (
            tcpdump_lo(files["pcap-us"], port_list),
            tcpdump_lo(files["pcap-ns"], port_list, nano=True),
            dumpcap_lo(files["pcapng"], port_list),
        ):
            echo_exchange(servers["echo"])
            half_close(servers["half"])
            abort(servers["abort"])
            refused(ports["refused"])
            echo_exchange(servers["ipv6"], socket.AF_INET6)
            bulk(servers["bulk"])
    # editcap turns the ns pcap into pcapng too (if_tsresol 9 from the pcap's magic).
    files["editcap-pcapng"] = tmp / "lo-ns.pcapng"
    subprocess.run(
        ["editcap", "-F", "pcapng", str(files["pcap-ns"]), str(files["editcap-pcapng"])],
        check=True,
        capture_output=True,
    )
    return Captured(files, ports)


FORMATS = ["pcap-us", "pcap-ns", "pcapng", "editcap-pcapng"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_live_capture_matches_tshark(captured: Captured, fmt: str) -> None:
    comparison = compare_with_tshark(captured.files[fmt])
    assert comparison.tunneled == set()
    assert sorted(comparison.ours) == sorted(comparison.reference)
    assert comparison.mismatches == []
    assert len(comparison.ours) > 30


def _by_port(captured: Captured, fmt: str, name: str) -> list[dict[str, object]]:
    port = captured.ports[name]
    comparison = compare_with_tshark(captured.files[fmt])
    return [o for o in comparison.ours.values() if port in (o["sport"], o["dport"])]


@pytest.mark.parametrize("fmt", ["pcap-ns", "pcapng"])
def test_live_capture_shows_each_lifecycle(captured: Captured, fmt: str) -> None:
    texts = {
        name: [str(o["flags_text"]) for o in _by_port(captured, fmt, name)]
        for name in captured.ports
    }
    # Handshake, "hello" each way, FIN from both ends.
    assert texts["echo"][:3] == ["S", "S.", "."]
    assert texts["echo"].count("F.") == 2
    assert texts["ipv6"][:3] == ["S", "S.", "."]
    # Refused: a SYN answered by RST+ACK (RFC 9293 §3.10.7.1: no listener).
    assert texts["refused"] == ["S", "R."]
    # Abortive close: the client's RST, no FIN.
    assert "R." in texts["abort"] and "F." not in texts["abort"]
    half = _by_port(captured, fmt, "half")
    client_fin = next(
        i for i, o in enumerate(half) if o["flags_text"] == "F." and o["direction"] == 0
    )
    # Half-close: the server still sends data after the client's FIN.
    assert any(o["direction"] == 1 and o["len"] for o in half[client_fin + 1 :])
    ipv6 = _by_port(captured, fmt, "ipv6")
    assert {o["ip_version"] for o in ipv6} == {6} and ipv6[0]["src"] == "::1"
    bulk = _by_port(captured, fmt, "bulk")
    assert sum(int(str(o["len"])) for o in bulk if o["direction"] == 0) == BULK
    # Stream numbers: one per connection, in order of first packet.
    streams = [o["stream"] for name in captured.ports for o in _by_port(captured, fmt, name)[:1]]
    assert sorted(streams) == list(range(6))


def test_live_capture_text_lines(captured: Captured) -> None:
    port = captured.ports["echo"]
    result = run_tcplab("packets", "--port", str(port), str(captured.files["pcap-ns"]))
    assert result.code == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert re.search(
        rf" IP 127\.0\.0\.1\.\d+ > 127\.0\.0\.1\.{port}: Flags \[S\], seq 0, win 65495, "
        r"options \[mss 65495,sackOK,TS val \d+ ecr 0,nop,wscale \d+\], length 0$",
        lines[0],
    ), lines[0]
    assert f"IP 127.0.0.1.{port} > " in lines[1]
    assert "Flags [S.], seq 0, ack 1, win 65483" in lines[1]
    assert "Flags [P.], seq 1:6, ack 1, " in lines[3] and lines[3].endswith("length 5")
    absolute = run_tcplab(
        "packets", "-S", "--port", str(port), "-c", "1", str(captured.files["pcap-ns"])
    )
    (line,) = absolute.stdout.splitlines()
    json_first = _by_port(captured, "pcap-ns", "echo")[0]
    assert f"seq {json_first['seq_raw']}," in line
