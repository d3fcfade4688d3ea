"""conn.log rows formatted by the engine (_engine.c ``conn_log_rows``)
against the readable reference: analyze/output.py's ``conn_log_row`` of
``engine.zeek_record``, as ``views.ConnLogView`` writes them when a filter
keeps it on the Python path.  Byte for byte, header and footer included, on
every trace the suite has, synthetic captures (one process, ``--jobs 2``, a
capture set of several files, runs that spill to disk), IPv6 addresses of
every compressed form, clocks beyond 64-bit nanoseconds and beyond any
date, zero-duration connections; and the uid's SHA-256 against hashlib.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ACK, FIN, RST, SYN, assert_same_output, ipv4_tcp, run_tcplab
from tcplab.analyze import _engine, engine, views
from tcplab.analyze.synth import write_capture
from tcplab.capture import PcapngWriter
from tcplab.scale.engine import EngineOptions
from tcplab.scale.local import stream_set
from tcplab.wire.flags import Flags
from tcplab.wire.ip import IPv6Header
from tcplab.wire.tcp import TcpHeader
from test_engine import TRACES
from test_odd_captures import tsresol_capture

RAW = 101  # LINKTYPE_RAW


def conn_log(
    inputs: Path | list[Path],
    in_engine: bool = True,
    jobs: int = 1,
    keep: views.Filter | None = None,
    spill: int | None = None,
) -> tuple[bytes, list[str]]:
    """--conn-log's output (bytes) and the read problems, one way or the other
    (``spill``: the engine rows' spool limit, in bytes, and its block size)."""
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=False)
    view = views.ConnLogView(out, keep or views.Filter())
    if spill is not None:
        view.rows = views.row_spool(spill, block=7)
    options = engine.Options()
    if in_engine:
        options = view.engine_options(options)
        assert options.conn_log_rows == (keep is None or not keep.active)
    if isinstance(inputs, list):
        report = stream_set([str(p) for p in inputs], EngineOptions(), view, None, options)
    else:
        report = views.run_view(str(inputs), options, view, jobs)
    out.flush()
    return raw.getvalue(), report.problems


def assert_same_log(inputs: Path | list[Path], jobs: int = 1, spill: int | None = None) -> bytes:
    reference = conn_log(inputs, in_engine=False)
    mine = conn_log(inputs, jobs=jobs, spill=spill)
    return assert_same_output(mine, reference)


def rows_of(text: bytes) -> list[bytes]:
    return [line for line in text.splitlines() if not line.startswith(b"#")]


def test_sha256_is_hashlibs() -> None:
    """The uid's hash (FIPS 180-4, written in _engine.c): every length across
    the one- and two-block paddings, and a few long messages."""
    rng = random.Random(3)
    for n in [*range(301), 1000, 4096, 65537]:
        data = rng.randbytes(n)
        assert _engine.sha256(data) == hashlib.sha256(data).digest(), n
    assert _engine.sha256(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 B.1
    )


@pytest.mark.parametrize("path", TRACES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_trace_byte_identical(path: Path) -> None:
    assert_same_log(path)


def test_synthetic_byte_identical(small_synth: Path) -> None:
    """Sorted as a small log (views.small_rows) and through the spool (NumPy)."""
    text = assert_same_log(small_synth)
    assert len(rows_of(text)) >= 290
    assert assert_same_log(small_synth, spill=1 << 30) == text


def test_a_small_log_loads_no_numpy(small_synth: Path) -> None:
    """A small capture's conn.log is sorted without NumPy (its import would be
    most of such a run's time: views.small_rows)."""
    probe = (
        "import sys\nfrom tcplab.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('numpy' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "analyze", "--conn-log", str(small_synth)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.stdout.encode() == conn_log(small_synth, in_engine=False)[0]
    assert done.stderr.splitlines()[-1] == "False"


def test_a_log_grown_past_small_goes_to_the_spool(
    small_synth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows held as a small log until they pass ConnLogView.SMALL bytes, then
    spooled (NumPy) with those held: one process and --jobs 2."""
    reference = conn_log(small_synth, in_engine=False)[0]
    monkeypatch.setattr(views.ConnLogView, "SMALL", 3000)
    assert conn_log(small_synth)[0] == reference
    assert conn_log(small_synth, jobs=2)[0] == reference


def test_the_engine_formats_the_rows(small_synth: Path) -> None:
    """With the option the engine gives rows and keys, no Zeek or connection
    records; the keys say what the rows are."""
    view = views.ConnLogView(io.StringIO())
    options = view.engine_options(engine.Options())
    batches = [b for b in engine.run(small_synth, options) if isinstance(b, engine.Batch)]
    assert all(b.zeek == [] and b.connections == [] for b in batches)
    text = b"".join(b.zeek_rows or b"" for b in batches)
    keys = [k for b in batches for k in engine.zeek_row_keys_of(b.zeek_row_keys or b"")]
    assert len(keys) == text.count(b"\n") >= 290
    reference = {r.split(b"\t")[1]: r for r in rows_of(conn_log(small_synth, in_engine=False)[0])}
    at = 0
    for key in keys:
        row = text[at : at + int(key["length"])]
        at += int(key["length"])
        assert row.endswith(b"\n") and row.count(b"\n") == 1
        fields = row.split(b"\t")
        assert reference[fields[1]] == row[:-1]  # the same row, found by its uid
        assert fields[0] == f"{key['start']:.6f}".encode()
        assert key["start"] == key["start_ns"] / 1e9 and key["last"] == key["last_ns"] / 1e9
        assert key["last_ns"] >= key["start_ns"] and key["first_frame"] >= 1
    assert at == len(text)


def test_jobs_2_byte_identical(small_synth: Path) -> None:
    assert len(rows_of(assert_same_log(small_synth, jobs=2))) >= 290


def test_spilled_runs_merge_byte_identical(small_synth: Path) -> None:
    """A spool limit of a few rows: many sorted runs on disk, in blocks of 7
    rows, merged (rowruns.merge_runs); one process and --jobs 2."""
    for limit in (1, 2000, 20000):
        assert_same_log(small_synth, spill=limit)
        assert_same_log(small_synth, jobs=2, spill=limit)


def test_a_capture_set_byte_identical(tmp_path: Path) -> None:
    """Several files merged by time (frames numbered across the set), and the CLI."""
    files = []
    for seed in range(3):
        path = tmp_path / f"part{seed}.pcap"
        write_capture(path, 1500, 80, seed=10 + seed, concurrency_seconds=60)
        files.append(path)
    text = assert_same_log(files)
    assert len(rows_of(text)) >= 200
    assert_same_log(files, spill=3000)
    result = run_tcplab("analyze", "--conn-log", *map(str, files), timeout=300)
    assert result.code == 0, result.stderr
    assert result.stdout.encode() == text


def test_the_cli_and_its_filters(small_synth: Path) -> None:
    """The CLI's conn.log is the engine's rows; with a filter, the Python rows."""
    result = run_tcplab("analyze", "--conn-log", str(small_synth), timeout=300)
    assert result.code == 0, result.stderr
    assert result.stdout.encode() == conn_log(small_synth, in_engine=False)[0]
    port = int(rows_of(result.stdout.encode())[0].split(b"\t")[5])
    filtered = run_tcplab(
        "analyze", "--conn-log", "--port", str(port), str(small_synth), timeout=300
    )
    assert filtered.code == 0, filtered.stderr
    keep = views.Filter(port=port)
    assert filtered.stdout.encode() == conn_log(small_synth, in_engine=False, keep=keep)[0]
    assert 0 < len(rows_of(filtered.stdout.encode())) < len(rows_of(result.stdout.encode()))


def _v6(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    segment = TcpHeader.create(sport, dport, seq, ack, Flags(flags), 65535).build(
        b"", src=src, dst=dst
    )
    return IPv6Header.create(src, dst, 6, len(segment)).build(segment)


# Each address and its text as conn.log prints it: engine.address is
# inet_ntop's (RFC 5952 zero runs: the longest, the first of equal ones,
# never a single zero field; glibc writes ::ffff:0:0/96 and ::/96 beyond ::1
# with a dotted IPv4 tail, where Python's ipaddress writes hex: ::1:2 is
# ::0.1.0.2 here, ::ffff:10.0.0.1 is not ::ffff:a00:1).
V6 = {
    "::": "::",
    "::1": "::1",
    "::1:2": "::0.1.0.2",
    "1::": "1::",
    "2001:db8::1": "2001:db8::1",
    "2001:db8:1::": "2001:db8:1::",
    "2001:db8:0:1:1:1:1:1": "2001:db8:0:1:1:1:1:1",
    "2001:0:0:1::1": "2001:0:0:1::1",
    "1:0:0:2:0:0:0:3": "1:0:0:2::3",
    "::ffff:10.0.0.1": "::ffff:10.0.0.1",
    "::ffff:0:10.0.0.1": "::ffff:0:a00:1",
    "::10.0.0.1": "::10.0.0.1",
    "64:ff9b::10.0.0.1": "64:ff9b::a00:1",
    "fe80::1:2:3:4": "fe80::1:2:3:4",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
}


def test_ipv6_addresses_and_zero_durations(tmp_path: Path) -> None:
    """Every address form both ways; handshakes, lone SYNs (duration 0:
    duration and bytes unset), RSTs, and a connection to itself."""
    frames: list[bytes] = []
    given = list(V6)
    for i, a in enumerate(given):
        b = given[(i + 5) % len(given)]
        frames += [
            _v6(a, b, 40000 + i, 443, 100, 0, SYN),
            _v6(b, a, 443, 40000 + i, 900, 101, SYN | ACK),
            _v6(a, b, 40000 + i, 443, 101, 901, ACK),
            _v6(a, b, 40000 + i, 443, 101, 901, FIN | ACK),
            _v6(b, a, 5000 + i, 22, 7, 0, SYN),  # a lone SYN: zero duration
            _v6(a, b, 6000 + i, 80, 1, 0, RST),
        ]
    frames.append(ipv4_tcp("0.0.0.0", "255.255.255.255", 1, 2, 5, 0, SYN))
    frames.append(ipv4_tcp("10.9.9.9", "10.9.9.9", 7, 7, 5, 0, SYN))  # to itself
    frames.append(ipv4_tcp("10.9.9.9", "10.9.9.9", 7, 7, 5, 6, SYN | ACK))
    path = tmp_path / "v6.pcapng"
    with path.open("wb") as stream:
        writer = PcapngWriter(stream)
        iface = writer.add_interface(RAW, "v6", tsresol=9)
        for i, frame in enumerate(frames):
            writer.write(1_600_000_000_123_456_789 + i * 333_333_333, frame, iface, None)
    text = assert_same_log(path).decode()
    addresses = {f for row in rows_of(text.encode()) for f in row.decode().split("\t")[2:5:2]}
    assert set(V6.values()) <= addresses and "0.0.0.0" in addresses
    assert "\t-\t-\t-\tS0\t" in text  # zero duration: duration and bytes unset
    assert "10.9.9.9\t7\t10.9.9.9\t7" in text


@pytest.mark.parametrize("resolution", [0x80, 0x81, 0x00, 0xFF, 0x89, 0x06])
def test_odd_clocks(tmp_path: Path, resolution: int) -> None:
    """if_tsresol oddities: times beyond 64-bit nanoseconds (the engine's time
    base), times that are no date (#open/#close printed raw), plain ones."""
    path = tmp_path / "clock.pcapng"
    path.write_bytes(tsresol_capture(resolution))
    assert rows_of(assert_same_log(path))


def test_times_every_way(tmp_path: Path) -> None:
    """Starts and durations ``.6f`` rounds: nanoseconds either side of a
    half microsecond, out of order, microsecond to nanosecond clocks, a
    start at 0 and times of the 1970s and of today."""
    rng = random.Random(13)
    stamps = [0, 1, 499, 500, 501, 1_500, 2_500, 10**15 + 7, 10**15 + 500]
    for base in (10**15, 1_700_000_000_000_000_000):
        stamps += [base + rng.randrange(0, 10**12) for _ in range(200)]
        stamps += [base + rng.randrange(0, 10**9) // 1000 * 1000 + 500 for _ in range(200)]
    path = tmp_path / "times.pcapng"
    with path.open("wb") as stream:
        writer = PcapngWriter(stream)
        iface = writer.add_interface(RAW, "t", tsresol=9)
        for i, stamp in enumerate(stamps):
            port = 1000 + i
            writer.write(stamp, ipv4_tcp("10.3.0.1", "10.3.0.2", port, 80, 1, 0, SYN), iface)
            later = stamp + rng.choice([0, 1, 499, 500, 501, 999_999, 10**9 + 500])
            syn_ack = ipv4_tcp("10.3.0.2", "10.3.0.1", 80, port, 9, 2, SYN | ACK)
            writer.write(later, syn_ack, iface)
    assert len(rows_of(assert_same_log(path))) == len(stamps)


def test_the_row_spool_orders_as_the_keyed_spool() -> None:
    """The engine rows' spool (views.row_spool) against Spool (ConnLogView's
    keyed rows): random rows in random chunks, starts that tie (one float
    for several nanoseconds), limits that spill every chunk, every few
    chunks, or never."""
    import numpy as np

    rng = random.Random(21)
    dtype = engine.zeek_row_key()
    for limit, block in ((1, 3), (500, 5), (5000, 64), (1 << 30, 8192)):
        rows = views.row_spool(limit, block)
        keyed = views.Spool()
        frame = 0
        for _ in range(40):
            n = rng.randrange(0, 30)
            keys = np.zeros(n, dtype)
            texts = []
            for i in range(n):
                frame += rng.randrange(1, 4)
                start_ns = 1_700_000_000_000_000_000 + rng.randrange(0, 2000)
                text = f"{frame}\t{'x' * rng.randrange(0, 20)}\n"
                keys[i] = (start_ns, frame, start_ns + 5, start_ns / 1e9, 0.0, len(text))
                texts.append(text)
                keyed.add([((start_ns / 1e9, frame), text)])
            if n:
                rows.add("".join(texts).encode(), keys)
        assert (len(rows.runs) > 1) == (limit < 1 << 20)
        assert b"".join(rows.drain()).decode() == "".join(keyed.drain())


def test_gz_and_standard_input(small_synth: Path, tmp_path: Path) -> None:
    """Python feeds the engine (.gz, a pipe): the same rows from the same batches."""
    reference = conn_log(small_synth, in_engine=False)[0]
    gz = tmp_path / "synth.pcap.gz"
    gz.write_bytes(gzip.compress(small_synth.read_bytes(), compresslevel=1))
    assert conn_log(gz)[0] == reference
    with small_synth.open("rb") as stdin:
        piped = subprocess.run(
            [sys.executable, "-m", "tcplab", "analyze", "--conn-log", "-"],
            stdin=stdin,
            capture_output=True,
            timeout=300,
            check=False,
        )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == reference
