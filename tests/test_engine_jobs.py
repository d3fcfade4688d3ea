"""``--jobs N`` equals one process on a capture built to trip the sharding:
port reuse and new-ISN streams on one 5-tuple, a connection idle past the
engine's timeout that comes back (a new record), timestamps that go
backwards, frames only the Python decoder reads (IP-in-IP, fragments, TCP
Fast Open options) and a damaged frame, over enough flows that every shard
has some.  Stream numbers come from the merge (shards name streams by their
first frame), so every view that shows one is compared."""

from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import pcapng_and_gz, run_tcplab
from tcplab.analyze import engine
from tcplab.analyze.synth import write_capture
from tcplab.capture.writer import PcapWriter
from tcplab.wire.checksum import internet_checksum, tcp_checksum

RAW = 101
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    options: bytes = b"",
) -> bytes:
    offset = (20 + len(options)) // 4
    header = struct.pack(
        "!HHIIBBHHH", sport, dport, seq % 2**32, ack % 2**32, offset << 4, flags, 65535, 0, 0
    )
    segment = header + options + payload
    checksum = tcp_checksum(src, dst, segment)
    return segment[:16] + struct.pack("!H", checksum) + segment[18:]


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 1, frag: int = 0) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        frag,
        64,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:] + payload


def ipv6(src: str, dst: str, payload: bytes) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), 6, 64)
        + socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + payload
    )


class Capture:
    def __init__(self) -> None:
        self.frames: list[tuple[float, bytes]] = []
        self.ident = 0

    def add(self, t: float, frame: bytes) -> None:
        self.frames.append((t, frame))

    def segment(
        self, t: float, src: str, dst: str, sport: int, dport: int, seq: int, ack: int,
        flags: int, payload: bytes = b"", how: str = "plain",
    ) -> None:  # fmt: skip
        options = b""
        if how == "fastopen":  # TCP Fast Open cookie request: left to tcplab.wire
            options = bytes((34, 2, 1, 0))
        segment = tcp(src, dst, sport, dport, seq, ack, flags, payload, options)
        if ":" in src:
            self.add(t, ipv6(src, dst, segment))
        elif how == "ipip":  # IP in IP (protocol 4): the Python decoder's
            self.add(t, ipv4("172.16.0.1", "172.16.0.2", 4, ipv4(src, dst, 6, segment)))
        elif how == "fragments" and payload:  # two fragments, reassembled by tcplab.wire
            cut = 24
            self.ident += 1
            self.add(t, ipv4(src, dst, 6, segment[:cut], ident=self.ident, frag=0x2000))
            self.add(t + 1e-6, ipv4(src, dst, 6, segment[cut:], self.ident, frag=cut // 8))
        else:
            self.add(t, ipv4(src, dst, 6, segment))

    def connection(
        self, t: float, client: str, server: str, cport: int, sport: int, isn: int,
        data: int = 2, how: str = "plain", close: bool = True,
    ) -> float:  # fmt: skip
        """A handshake, ``data`` request/response pairs and a FIN each way;
        returns the time after it."""
        sisn = isn ^ 0x5A5A5A5A
        c, s = isn + 1, sisn + 1
        seg = self.segment
        seg(t, client, server, cport, sport, isn, 0, SYN, how=how)
        seg(t + 0.001, server, client, sport, cport, sisn, c, SYN | ACK, how=how)
        seg(t + 0.002, client, server, cport, sport, c, s, ACK, how=how)
        t += 0.003
        for _ in range(data):
            seg(t, client, server, cport, sport, c, s, PSH | ACK, b"x" * 100, how)
            c += 100
            seg(t + 0.001, server, client, sport, cport, s, c, PSH | ACK, b"y" * 300, how)
            s += 300
            seg(t + 0.002, client, server, cport, sport, c, s, ACK, how=how)
            t += 0.003
        if close:
            seg(t, client, server, cport, sport, c, s, FIN | ACK, how=how)
            seg(t + 0.001, server, client, sport, cport, s, c + 1, FIN | ACK, how=how)
            seg(t + 0.002, client, server, cport, sport, c + 1, s + 1, ACK, how=how)
            t += 0.003
        return t

    def write(self, path: Path) -> None:
        with path.open("wb") as f:
            writer = PcapWriter(f, RAW)
            for t, frame in self.frames:
                writer.write(int(t * 1e9), frame)


def tricky_capture(path: Path) -> None:
    rng = random.Random(7)
    cap = Capture()
    t = 1_700_000_000.0
    hows = ["plain"] * 6 + ["ipip", "fragments", "fastopen"]
    for i in range(60):
        client, server = f"10.1.{i % 7}.{i + 1}", f"192.168.9.{i % 5 + 1}"
        how = hows[i % len(hows)]
        start = t + i * 0.0007
        end = cap.connection(start, client, server, 30000 + i, 80, rng.getrandbits(32), how=how)
        if i % 4 == 0:
            # port reuse: the same 5-tuple again at once, a SYN with a new ISN
            # (a new tcp.stream in Wireshark, the same table entry here)
            cap.connection(end + 0.5, client, server, 30000 + i, 80, rng.getrandbits(32))
        if i % 10 == 3:
            # idle far past the engine's timeout, then more of the same 5-tuple
            # (mid-stream): a new record after the first went out
            cap.connection(start + 2000.0, client, server, 30000 + i, 80, 99, close=False)
    for i in range(8):  # IPv6
        cap.connection(t + 0.2 + i * 0.01, f"2001:db8::{i + 1}", "2001:db8::ff", 40000 + i, 443, i)
    # A SYN-ACK retransmitted with another ISN (the stream's base moves)
    a, b = "10.9.9.9", "192.168.9.9"
    cap.segment(t + 0.3, a, b, 5555, 80, 1000, 0, SYN)
    cap.segment(t + 0.301, b, a, 80, 5555, 5000, 1001, SYN | ACK)
    cap.segment(t + 0.302, b, a, 80, 5555, 7000, 1001, SYN | ACK)
    cap.segment(t + 0.303, a, b, 5555, 80, 1001, 7001, ACK)
    cap.frames.sort(key=lambda f: f[0])
    # timestamps that go backwards: a few frames moved earlier in the file
    for k in (40, 200, 333):
        cap.frames.insert(k, cap.frames.pop(k + 25))
    # a frame cut inside its TCP header: one problem line, from every shard alike
    cap.frames.insert(100, (cap.frames[99][0], ipv4("10.0.0.1", "10.0.0.2", 6, b"\x00" * 10)))
    cap.write(path)


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jobs") / "tricky.pcap"
    tricky_capture(path)
    return path


def test_every_shard_has_flows_and_each_flow_one_shard(tricky: Path) -> None:
    whole = engine.collect(tricky)
    firsts = sorted(c[engine.FIRST_FRAME] for c in whole.connections)
    got: list[int] = []
    for k in range(3):
        part = engine.collect(tricky, shard=(k, 3))
        assert part.connections, f"shard {k} of 3 has no connection"
        # a shard names a stream by its first frame until the merge numbers it
        assert all(c[0] == c[engine.FIRST_FRAME] for c in part.connections)
        got += [c[0] for c in part.connections]
        assert part.report.tcp == whole.report.tcp
        assert part.report.problems == whole.report.problems
    assert sorted(got) == firsts
    assert len(firsts) > 80  # reuse and the returning connections are streams of their own


MODES = [
    (),
    ("--all",),
    ("--json",),
    ("--conn-log",),
    ("--packets",),
    ("--packets", "--json"),
    ("--summary", "--json"),
    ("--problems", "--json"),
    ("--host", "192.168.9.2", "--json"),
    ("--port", "443", "--packets"),
    ("--conn", "7", "--packets"),
]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: " ".join(m) or "default")
def test_jobs_equal_one_process(tricky: Path, mode: tuple[str, ...]) -> None:
    one = run_tcplab("analyze", *mode, str(tricky), timeout=300)
    assert one.code == 0, one.stderr
    assert one.stdout
    assert "frame 101" in one.stderr  # the damaged frame's line
    for jobs in ("2", "3"):
        many = run_tcplab("analyze", *mode, "--jobs", jobs, str(tricky), timeout=300)
        assert (many.code, many.stdout, many.stderr) == (one.code, one.stdout, one.stderr)


def test_jobs_on_pcapng_and_gz(tricky: Path, tmp_path: Path) -> None:
    """The shards read pcapng (the engine's block reader) and .gz (fed by
    Python, not mapped) as they read pcap."""
    pcapng, gz = pcapng_and_gz(tricky, tmp_path)
    for mode in ((), ("--json",), ("--packets",)):
        one = run_tcplab("analyze", *mode, str(tricky), timeout=300)
        assert one.code == 0 and one.stdout, one.stderr
        for other in (pcapng, gz):
            two = run_tcplab("analyze", *mode, "--jobs", "2", str(other), timeout=300)
            assert two.code == 0, two.stderr
            assert two.stdout.replace(other.name, tricky.name) == one.stdout


def test_jobs_after_the_python_reader_takes_over(tricky: Path, tmp_path: Path) -> None:
    """A record too large for the engine's reader hands the rest of the file
    to tcplab.capture's reader in every shard; the shards still agree."""
    data = bytearray(tricky.read_bytes())
    offset = 24
    for _ in range(500):
        offset += 16 + struct.unpack_from("<I", data, offset + 8)[0]
    big = b"\x45" + bytes(300 * 1024 - 1)
    data[offset:offset] = struct.pack("<IIII", 1_700_000_001, 0, len(big), len(big)) + big
    path = tmp_path / "big-record.pcap"
    path.write_bytes(bytes(data))
    for mode in ((), ("--json",), ("--packets",)):
        one = run_tcplab("analyze", *mode, str(path), timeout=300)
        assert one.code == 0 and one.stdout, one.stderr
        assert "record caplen 307200" in one.stderr
        two = run_tcplab("analyze", *mode, "--jobs", "2", str(path), timeout=300)
        assert (two.code, two.stdout, two.stderr) == (one.code, one.stdout, one.stderr)


def test_jobs_on_a_fifo_run_in_one_process(tricky: Path, tmp_path: Path) -> None:
    """A named pipe can be read once: the shards would split its bytes, so
    ``--jobs 2`` reads it in one process, as it reads standard input."""
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat {tricky} > {fifo}"])
    try:
        piped = run_tcplab("analyze", "--json", "--jobs", "2", str(fifo), timeout=300)
    finally:
        writer.wait(timeout=60)
    one = run_tcplab("analyze", "--json", str(tricky), timeout=300)
    assert piped.code == one.code == 0, piped.stderr
    assert piped.stdout == one.stdout


def test_a_file_cut_short_under_the_mapped_reader_is_one_problem(tmp_path: Path) -> None:
    """The engine maps the file window by window; a file truncated while it is
    read (a ring of tcpdump -W files reusing one) makes those pages vanish.
    That is one problem line at the offset reached, not a SIGBUS."""
    path = tmp_path / "shrinks.pcap"
    write_capture(path, 20000, 400, seed=3)
    assert path.stat().st_size > 3 * engine.CHUNK
    report = None
    for n, item in enumerate(engine.run(path)):
        if n == 0:  # the first window is read: cut the file below it
            os.truncate(path, engine.CHUNK // 4)
        if isinstance(item, engine.ReadReport):
            report = item
    assert report is not None
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{path}: offset ")
    assert report.problems[0].endswith("the file shrank while it was read")
    assert 0 < report.tcp < 20000
