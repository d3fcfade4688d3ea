"""Shared test helpers: running the CLI, tshark as the reference, free ports,
loopback captures with tcpdump, and hand-built IPv4/TCP frames.

Keep this file small and generic; part-specific helpers live in the test
modules that use them.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
# The project's shared folder sits beside the checkout (CI clones main with
# shared/ next to it); TCPLAB_SHARED points elsewhere.
SHARED = Path(os.environ.get("TCPLAB_SHARED", REPO.parent / "shared"))
ZEEK_TRACES = SHARED / "peer-traces/zeek/traces"


def data_module(relative: str) -> ModuleType:
    """A helper module under ``tests/data/`` (not a package), loaded by path."""
    path = Path(__file__).parent / "data" / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the CLI -------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_tcplab(*args: str, timeout: float = 60) -> CliResult:
    """``tcplab ARGS`` in a subprocess, the way a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "tcplab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


PEAK_RSS_CHILD = (
    "import sys\n"
    "from pathlib import Path\n"
    # The peak RSS survives fork and exec (ru_maxrss would report the pytest
    # worker's); proc(5): writing 5 to clear_refs resets this process's VmHWM.
    "Path('/proc/self/clear_refs').write_text('5')\n"
    "from tcplab.cli import main\n"
    "try:\n    main(sys.argv[1:])\n"
    "finally:\n"
    "    hwm = [ln for ln in Path('/proc/self/status').read_text().splitlines()\n"
    "           if ln.startswith('VmHWM')][0]\n"
    "    print(int(hwm.split()[1]), file=sys.stderr)\n"
)


def pcapng_and_gz(pcap: Path, out: Path) -> tuple[Path, Path]:
    """``pcap`` again as pcapng (editcap; the test is skipped without it) and
    as .gz, in ``out``."""
    if shutil.which("editcap") is None:
        pytest.skip("editcap (wireshark) not installed")
    pcapng = out / f"{pcap.stem}.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(pcap), str(pcapng)], check=True)
    gz = out / f"{pcap.name}.gz"
    gz.write_bytes(gzip.compress(pcap.read_bytes()))
    return pcapng, gz


def peak_rss_mb(*argv: str, timeout: float = 300) -> tuple[int, str, str, float]:
    """``tcplab ARGV`` in a child: exit status, stdout, stderr, its own peak RSS in MB."""
    done = subprocess.run([sys.executable, "-c", PEAK_RSS_CHILD, *argv], capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=REPO)  # fmt: skip
    *err, rss = done.stderr.splitlines()
    return done.returncode, done.stdout, "\n".join(err), int(rss) / 1024


# -- tshark as the reference -----------------------------------------------------

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


@lru_cache(maxsize=256)
def _tshark_cached(
    path: str, mtime_ns: int, fields: tuple[str, ...], display_filter: str
) -> tuple[tuple[str, ...], ...]:
    args = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]
    args += ["-E", "aggregator=,"]
    for field in fields:
        args += ["-e", field]
    if display_filter:
        args += ["-Y", display_filter]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"tshark failed on {path}: {proc.stderr.strip()}")
    return tuple(tuple(line.split("|")) for line in proc.stdout.splitlines())


def tshark_fields(
    path: str | Path, fields: Sequence[str], display_filter: str = ""
) -> list[dict[str, str]]:
    """One dict per packet, field name -> tshark's text ("" when absent).

    Cached for the test session (keyed on the file's mtime), so several
    tests comparing the same trace run tshark once.
    """
    path = str(path)
    rows = _tshark_cached(path, os.stat(path).st_mtime_ns, tuple(fields), display_filter)
    return [dict(zip(fields, row, strict=True)) for row in rows]


# -- `tcplab packets --json` against tshark ------------------------------------------

PACKET_FIELDS = [
    "frame.number",
    "frame.time_epoch",
    "frame.comment",
    "tcp.stream",
    "tcp.seq",
    "tcp.ack",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.nxtseq",
    "tcp.len",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.hdr_len",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.options.mss_val",
    "tcp.options.wscale.shift",
    "tcp.options.sack_perm",
    "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr",
    "tcp.options.sack_le",
    "tcp.options.sack_re",
    "udp.port",
    "icmp.type",
    "icmpv6.type",
    "_ws.expert.message",
]


def packets_json(path: Path) -> dict[int, dict[str, Any]]:
    """``tcplab packets --json`` in-process, by frame number."""
    # Imported here so a broken tcplab module cannot break every test's conftest.
    from tcplab.commands.packets import list_packets

    out, err = io.StringIO(), io.StringIO()
    status = list_packets(str(path), out, err, as_json=True)
    assert status == 0, err.getvalue()
    return {o["frame"]: o for o in map(json.loads, out.getvalue().splitlines())}


def _option(obj: dict[str, Any], name: str, key: str) -> str:
    values = [str(o[key]) for o in obj["options"] if o["name"] == name]
    return ",".join(values)


def expected_view(obj: dict[str, Any], clamp: bool) -> dict[str, str]:
    """Our JSON in tshark's field vocabulary."""
    view = {
        "frame.time_epoch": obj["time"],
        "frame.comment": (obj["comment"] or "").replace("\n", "\\n"),  # tshark escapes it
        "tcp.stream": str(obj["stream"]),
        "tcp.seq": str(obj["seq"]),
        # tshark prints the raw ack when the ACK bit is clear; we say null.
        "tcp.ack": str(obj["ack"] if obj["ack"] is not None else obj["ack_raw"]),
        "tcp.seq_raw": str(obj["seq_raw"]),
        "tcp.ack_raw": str(obj["ack_raw"]),
        "tcp.flags": f"0x{obj['flags_value'] | obj['reserved'] << 9:04x}",
        "tcp.window_size_value": str(obj["window"]),
        "tcp.hdr_len": str(obj["header_len"]),
        "tcp.srcport": str(obj["sport"]),
        "tcp.dstport": str(obj["dport"]),
        "tcp.options.mss_val": _option(obj, "mss", "value"),
        "tcp.options.wscale.shift": _option(obj, "wscale", "shift"),
        # tshark prints the option's raw bytes (kind 4, length 2) per occurrence
        "tcp.options.sack_perm": ",".join(
            "0402" for o in obj["options"] if o["name"] == "sack_perm"
        ),
        "tcp.options.timestamp.tsval": _option(obj, "timestamp", "val"),
        "tcp.options.timestamp.tsecr": _option(obj, "timestamp", "ecr"),
    }
    sack = [edges for o in obj["options"] if o["name"] == "sack" for edges in o["blocks_rel"]]
    view["tcp.options.sack_le"] = ",".join(str(le) for le, _ in sack)
    view["tcp.options.sack_re"] = ",".join(str(re) for _, re in sack)
    if not clamp:
        view["tcp.nxtseq"] = str(obj["nxtseq"])
        view["tcp.len"] = str(obj["len"])
    return view


@dataclass
class TsharkComparison:
    ours: dict[int, dict[str, Any]]
    reference: dict[int, dict[str, str]]
    tunneled: set[str]
    mismatches: list[tuple[int, dict[str, tuple[str, str]]]]


def compare_with_tshark(path: Path) -> TsharkComparison:
    """Every TCP frame tshark shows (outside tunnels) against our JSON.

    Where tshark reports "IPv4 total length exceeds packet length" it clamps
    tcp.len to the link layer's length while tcplab trusts the IP header,
    so len/nxtseq are not compared on those frames.
    """
    rows = tshark_fields(path, PACKET_FIELDS, "tcp")
    tunneled = {
        r["frame.number"] for r in rows if r["udp.port"] or r["icmp.type"] or r["icmpv6.type"]
    }
    reference = {int(r["frame.number"]): r for r in rows if r["frame.number"] not in tunneled}
    ours = packets_json(path)
    mismatches = []
    for frame, row in reference.items():
        if frame not in ours:
            continue
        clamp = "IPv4 total length exceeds packet length" in row["_ws.expert.message"]
        mine = expected_view(ours[frame], clamp)
        theirs = {k: row[k] for k in mine}
        if mine != theirs:
            diff = {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}
            mismatches.append((frame, diff))
    return TsharkComparison(ours, reference, tunneled, mismatches)


# -- ports and loopback captures ---------------------------------------------------


def free_port(family: int = socket.AF_INET) -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def port() -> int:
    return free_port()


@contextmanager
def tcpdump_lo(out: Path, ports: Sequence[int], nano: bool = False) -> Iterator[Path]:
    """Capture loopback TCP on ``ports`` into ``out`` while the block runs.

    Waits for tcpdump to report it is listening before yielding and stops
    it (SIGINT, so it flushes) on the way out, also on failure.
    """
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump not installed")
    expr = " or ".join(f"tcp port {p}" for p in ports)
    # --immediate-mode: without it TPACKET_V3 hands packets over in blocks, and
    # a short exchange still sitting in an unfinished block is lost at SIGINT.
    args = ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-s", "0", "-B", "16384"]
    args += ["-w", str(out)]
    if nano:
        args += ["--time-stamp-precision", "nano"]
    with capturing([*args, expr], lambda line: b"listening on" in line):
        yield out
        time.sleep(0.2)  # let the last segments reach the capture


def default_sigint() -> None:
    """``preexec_fn`` for a child the test will stop with a signal.

    A background job of a non-interactive shell (``make test &``, some CI
    runners) starts with SIGINT ignored, and a run under ``nohup`` with
    SIGHUP ignored; every child inherits that.  A child that is to be
    interrupted gets the default dispositions back, as a terminal would
    give them.
    """
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@contextmanager
def capturing(argv: list[str], ready: Callable[[bytes], bool]) -> Iterator[None]:
    """Run a capture tool (tcpdump, dumpcap) while the block runs.

    Waits (up to 10 s) for a stderr line that ``ready`` accepts before
    entering the block, and stops the tool with SIGINT, so it flushes the
    file, on the way out, also on failure.
    """
    proc = subprocess.Popen(
        argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, preexec_fn=default_sigint
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 10
        line = b""
        while not ready(line):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} did not start: {line!r}")
            line = proc.stderr.readline()
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# -- hand-built frames -------------------------------------------------------------

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int = 0,
    flags: int = ACK,
    payload: bytes = b"",
    window: int = 65535,
    options: bytes = b"",
    data_offset: int | None = None,
    ihl: int = 5,
    total_length: int | None = None,
    ident: int = 0,
) -> bytes:
    """A raw IPv4 packet (LINKTYPE_RAW) with a TCP segment and valid checksums.

    ``data_offset``, ``ihl`` and ``total_length`` override the computed
    values so tests can build malformed headers on purpose.
    """
    options += b"\0" * (-len(options) % 4)
    offset_words = data_offset if data_offset is not None else 5 + len(options) // 4
    src_raw, dst_raw = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset_words << 4, flags, window, 0, 0)
    segment = tcp + options + payload
    pseudo = src_raw + dst_raw + struct.pack("!BBH", 0, 6, len(segment))
    csum = _checksum(pseudo + segment)
    segment = segment[:16] + struct.pack("!H", csum) + segment[18:]
    length = total_length if total_length is not None else 20 + len(segment)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, 0x4000, 64, 6, 0, src_raw, dst_raw
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return ip + segment


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic capture (tcplab.analyze.synth: 6,000 packets over 300
    connections spread over 400 s, so some leave the engine while others are
    open): what the engine's C output is held to its Python reference on."""
    from tcplab.analyze.synth import write_capture

    path = tmp_path_factory.mktemp("small_synth") / "synth.pcap"
    write_capture(path, 6000, 300, seed=4, concurrency_seconds=400)
    return path


def assert_same_output(
    mine: tuple[bytes, list[str]], reference: tuple[bytes, list[str]]
) -> bytes:
    """Two runs' (output, problem lines) equal, byte for byte; on a difference
    the first differing line is what the failure shows (it says more than
    the whole text).  Returns the output."""
    assert mine[1] == reference[1]
    if mine[0] != reference[0]:
        for ours, theirs in zip(mine[0].splitlines(), reference[0].splitlines(), strict=False):
            assert ours.decode() == theirs.decode()
    assert mine[0] == reference[0]
    return mine[0]
