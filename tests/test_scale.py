"""Capture sets, Parquet tables and the distributed run (issue: beyond one machine).

One synthetic capture (analyze/synth.py) is cut with ``editcap -c`` into a
ring of 8 files; three of them are rewritten as pcapng and one is
gzip-compressed, so every reader and both resynchronisations are
exercised.  The ring analysed as one capture must give what the one file
gives; the Parquet tables must answer questions exactly as the analyzer's
own JSON does; a Dask LocalCluster of 2 workers must give the
single-process result.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import SHARED, SYN, ipv4_tcp, run_tcplab
from tcplab.analyze.synth import write_capture

pytestmark = [
    pytest.mark.xdist_group("scale"),
    pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed"),
]

PACKETS = 8000


@dataclass(frozen=True)
class Ring:
    one: Path  # the whole capture as one classic pcap
    files: list[Path]  # the same capture cut into 8 files, in ring order
    root: Path

    @property
    def dir(self) -> Path:
        return self.files[0].parent


def _cut(one: Path, count: int, out: Path, files: int) -> list[Path]:
    per = -(-count // files)
    out.mkdir()
    subprocess.run(
        ["editcap", "-F", "pcap", "-c", str(per), str(one), str(out / "ring.pcap")], check=True
    )
    parts = sorted(out.iterdir())
    assert len(parts) == files
    for i, part in enumerate(parts):
        if i == 5:  # one file gzip-compressed: read whole, from the start
            gz = part.with_suffix(".pcap.gz")
            gz.write_bytes(gzip.compress(part.read_bytes()))
            part.unlink()
            parts[i] = gz
        elif i % 2:  # every other file as pcapng
            ng = part.with_suffix(".pcapng")
            subprocess.run(["editcap", "-F", "pcapng", str(part), str(ng)], check=True)
            part.unlink()
            parts[i] = ng
    return parts


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Ring:
    root = tmp_path_factory.mktemp("ring")
    one = root / "one.pcap"
    written = write_capture(one, PACKETS, 260, seed=7, concurrency_seconds=120.0)
    return Ring(one, _cut(one, written["packets"], root / "ring", 8), root)


def conn_log_rows(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if not line.startswith("#"))


def json_rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def ok(*args: str) -> str:
    result = run_tcplab("analyze", *args, timeout=300)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


# -- a capture set is one capture ---------------------------------------------------------


def test_ring_equals_one_file(ring: Ring) -> None:
    one_log = ok("--conn-log", str(ring.one))
    assert ok("--conn-log", str(ring.dir)) == one_log  # rows, order and header
    assert ok("--conn-log", *map(str, ring.files)) == one_log
    # fsspec URLs go through to the readers (only local files are tested).
    assert ok("--conn-log", *(f"file://{f}" for f in ring.files)) == one_log
    one_json = ok("--json", str(ring.one))
    assert len(json_rows(one_json)) > 200
    assert ok("--json", str(ring.dir)) == one_json  # same connections, same numbers


def test_files_in_any_order_and_overlapping(ring: Ring, tmp_path: Path) -> None:
    """Merged by time, not by the order given; two files that overlap in time
    (every other packet each) are one capture too."""
    shuffled = [str(f) for f in reversed(ring.files)]
    assert conn_log_rows(ok("--conn-log", *shuffled)) == conn_log_rows(
        ok("--conn-log", str(ring.one))
    )
    even, odd = tmp_path / "even.pcap", tmp_path / "odd.pcapng"
    subprocess.run(
        [
            "tshark",
            "-r",
            str(ring.one),
            "-Y",
            "frame.number % 2 == 0",
            "-F",
            "pcap",
            "-w",
            str(even),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "tshark",
            "-r",
            str(ring.one),
            "-Y",
            "frame.number % 2 == 1",
            "-F",
            "pcapng",
            "-w",
            str(odd),
        ],
        check=True,
        capture_output=True,
    )
    assert conn_log_rows(ok("--conn-log", str(even), str(odd))) == conn_log_rows(
        ok("--conn-log", str(ring.one))
    )


def test_connection_across_two_files_is_one(ring: Ring, tmp_path: Path) -> None:
    import duckdb

    ok("--parquet", str(tmp_path / "pq"), "--parquet-packets", str(ring.dir))
    packets = f"'{tmp_path}/pq/packets/*.parquet'"
    spanning = duckdb.sql(
        f"select connection, list(distinct file) files, count(*) n from {packets} "
        "group by connection having count(distinct file) > 1 order by connection"
    ).fetchall()
    assert spanning, "the ring cuts no connection"
    number, files, n = spanning[0]
    assert len(files) == 2
    conns = json_rows(ok("--json", "--conn", str(number), str(ring.dir)))
    assert len(conns) == 1
    c = conns[0]
    assert c["client"]["packets"] + c["server"]["packets"] == n
    # The one-file run has the same connection, with the same counts and ending.
    assert json_rows(ok("--json", "--conn", str(number), str(ring.one))) == conns
    # Frame numbers say which file each packet came from.
    lines = ok("--packets", "--conn", str(number), str(ring.dir)).splitlines()
    assert {line.split()[0].rsplit(":", 1)[0] for line in lines} == set(files)


def test_truncated_file_in_the_middle(ring: Ring, tmp_path: Path) -> None:
    """One line for the broken file; every connection it does not touch is intact."""
    import duckdb

    broken = tmp_path / "ring"
    shutil.copytree(ring.dir, broken)
    victim = sorted(broken.iterdir())[3]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) * 2 // 3 + 5])  # mid-record
    result = run_tcplab("analyze", "--conn-log", str(broken), timeout=300)
    assert result.code == 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"tcplab: {victim}: offset ")
    assert "truncated" in lines[0]
    # Which connections lost packets: those with a packet of the victim past
    # the last frame still readable.
    again = run_tcplab(
        "analyze", "--parquet", str(tmp_path / "pq"), "--parquet-packets", str(broken), timeout=300
    )
    assert again.code == 0 and again.stderr == result.stderr
    ok("--parquet", str(tmp_path / "full"), "--parquet-packets", str(ring.dir))
    last = duckdb.sql(
        f"select max(frame) from '{tmp_path}/pq/packets/*.parquet' where file = '{victim.name}'"
    ).fetchall()[0]
    touched = {
        frozenset(((a, str(ap)), (b, str(bp))))
        for (a, ap, b, bp) in duckdb.sql(
            f"select distinct c.client_address, c.client_port, c.server_address, c.server_port "
            f"from '{tmp_path}/full/packets/*.parquet' p "
            f"join '{tmp_path}/full/connections/*.parquet' c using (connection) "
            f"where p.file = '{victim.name}' and p.frame > {last[0]}"
        ).fetchall()
    }
    assert touched

    def untouched(rows: list[str]) -> list[str]:
        def pair(row: str) -> frozenset[tuple[str, str]]:
            f = row.split("\t")
            return frozenset(((f[2], f[3]), (f[4], f[5])))

        return [r for r in rows if pair(r) not in touched]

    full = untouched(conn_log_rows(ok("--conn-log", str(ring.dir))))
    assert untouched(conn_log_rows(result.stdout)) == full
    assert len(full) > 150


def test_not_a_capture_in_the_set(ring: Ring, tmp_path: Path) -> None:
    d = tmp_path / "ring"
    shutil.copytree(ring.dir, d)
    (d / "zz-notes.txt").write_text("not a capture\n")
    result = run_tcplab("analyze", "--conn-log", str(d), timeout=300)
    assert result.code == 0
    assert result.stderr.splitlines() == [
        f"tcplab: {d / 'zz-notes.txt'}: offset 0: not a pcap or pcapng file (magic 0x6e6f7420)"
    ]
    assert conn_log_rows(result.stdout) == conn_log_rows(ok("--conn-log", str(ring.one)))


def test_a_fragment_in_a_set_is_reported_as_in_one_file(tmp_path: Path) -> None:
    """An IP fragment is skipped with one line, worded as the one-file run
    words it (the file's own frame number), in a capture set read either
    way (file after file, and merged, which a .gz forces) and on Dask."""
    from tcplab.analyze.views import ConnLogView
    from tcplab.capture import PcapWriter
    from tcplab.scale.engine import EngineOptions
    from tcplab.scale.local import PATHS, stream_set

    syn = ipv4_tcp("10.9.0.1", "10.9.0.2", 40000, 80, 1, flags=SYN)
    fragment = bytearray(syn)
    fragment[6] |= 0x20  # More Fragments (RFC 791 §3.1): not reassembled
    frag, later = tmp_path / "a.pcap", tmp_path / "b.pcap"
    for path, frames, at in ((frag, [bytes(fragment), syn], 0), (later, [syn], 10**9)):
        with path.open("wb") as fh:
            writer = PcapWriter(fh, linktype=101, nanosecond=False)
            for i, data in enumerate(frames):
                writer.write(1_700_000_000_000_000_000 + at + i * 500_000, data)
    one = run_tcplab("analyze", "--conn-log", str(frag))
    [line] = one.stderr.splitlines()
    assert line == f"tcplab: {frag}: offset 40: frame 1: IPv4 fragment (offset 0) skipped"
    zipped = tmp_path / "b.pcap.gz"
    zipped.write_bytes(gzip.compress(later.read_bytes()))
    for second in (later, zipped):
        before = PATHS.copy()
        stream = io.StringIO()
        report = stream_set([str(frag), str(second)], EngineOptions(), ConnLogView(stream))
        assert report.problems == [line.removeprefix("tcplab: ")]
        took = PATHS - before
        assert took == Counter({"concatenated" if second is later else "merged": 1})
    dask = run_tcplab(
        "analyze", "--dask", "local:1", "--conn-log", str(frag), str(later), timeout=300
    )
    assert dask.stderr.splitlines()[1:] == [line]


# -- Parquet ------------------------------------------------------------------------------

CONNECTIONS_SCHEMA = """\
connection: uint32
client_address: string
client_port: uint16
server_address: string
server_port: uint16
roles_known: bool
start: timestamp[ns, tz=UTC]
end: timestamp[ns, tz=UTC]
duration: duration[ns]
client_packets: uint64
client_bytes: uint64
server_packets: uint64
server_bytes: uint64
handshake_seen: bool
rtt_syn_synack: duration[ns]
rtt_synack_ack: duration[ns]
client_mss: uint16
client_wscale: uint8
client_sack_permitted: bool
client_timestamps: bool
server_mss: uint16
server_wscale: uint8
server_sack_permitted: bool
server_timestamps: bool
client_state: dictionary<values=string, indices=int32, ordered=0>
server_state: dictionary<values=string, indices=int32, ordered=0>
active_closer: dictionary<values=string, indices=int32, ordered=0>
ending: dictionary<values=string, indices=int32, ordered=0>
conn_state: dictionary<values=string, indices=int32, ordered=0>
history: string
uid: string
anomaly_zero_window_probe: uint32
anomaly_zero_window: uint32
anomaly_lost_segment: uint32
anomaly_keep_alive: uint32
anomaly_window_update: uint32
anomaly_window_full: uint32
anomaly_keep_alive_ack: uint32
anomaly_zero_window_probe_ack: uint32
anomaly_duplicate_ack: uint32
anomaly_ack_lost_segment: uint32
anomaly_spurious_retransmission: uint32
anomaly_fast_retransmission: uint32
anomaly_out_of_order: uint32
anomaly_retransmission: uint32
anomaly_reused_ports: uint32
anomaly_bad_checksum: uint32
dropped_by_wire: uint32
notes: list<element: string>"""

PACKETS_SCHEMA = """\
file: dictionary<values=string, indices=int32, ordered=0>
frame: uint64
time: timestamp[ns, tz=UTC]
connection: uint32
direction: dictionary<values=string, indices=int32, ordered=0>
flags: uint16
flag_text: dictionary<values=string, indices=int32, ordered=0>
rel_seq: uint32
rel_ack: uint32
next_seq: uint32
length: uint32
window: uint32
analysis: list<element: string>
dupack_num: uint32
client_state: dictionary<values=string, indices=int32, ordered=0>
server_state: dictionary<values=string, indices=int32, ordered=0>
dropped_by_wire: bool"""


def _schema_text(path: Path) -> str:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return "\n".join(f"{f.name}: {f.type}" for f in schema)


def test_parquet_schema_is_stable(ring: Ring, tmp_path: Path) -> None:
    ok("--parquet", str(tmp_path), "--parquet-packets", str(ring.one))
    assert _schema_text(tmp_path / "connections/part-00000.parquet") == CONNECTIONS_SCHEMA
    assert _schema_text(tmp_path / "packets/part-00000.parquet") == PACKETS_SCHEMA
    # docs/schema.md documents every column.
    doc = (Path(__file__).parents[1] / "docs/schema.md").read_text()
    for line in (CONNECTIONS_SCHEMA + "\n" + PACKETS_SCHEMA).splitlines():
        name = line.split(":")[0]
        documented = name
        if name.startswith("anomaly_") and name != "anomaly_bad_checksum":
            documented = name.removeprefix("anomaly_")  # listed in the anomaly_<flag> row
        assert f"`{documented}`" in doc, line


@pytest.fixture(scope="module")
def cut_short(ring: Ring, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The first 4 files of the ring without the servers' FINs (tshark's
    display filter): servers that got the client's FIN and never closed are
    left in CLOSE-WAIT, as a leaking server would be."""
    d = tmp_path_factory.mktemp("short")
    files = []
    for f in ring.files[:4]:
        out = d / f.name
        subprocess.run(
            [
                "tshark",
                "-r",
                str(f),
                "-Y",
                "!(tcp.flags.fin == 1 && tcp.srcport < 1024)",
                "-w",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        files.append(str(out))
    ok("--parquet", str(d / "pq"), "--parquet-packets", *files)
    yield d / "pq", ok("--json", *files)


def test_duckdb_close_wait_servers(cut_short: tuple[Path, str]) -> None:
    import duckdb

    pq, text = cut_short
    got = duckdb.sql(
        f"select server_address, count(*) from '{pq}/connections/*.parquet' "
        "where server_state = 'CLOSE-WAIT' group by server_address order by 2 desc, 1"
    ).fetchall()
    want = Counter(
        c["server"]["address"]
        for c in json_rows(text)
        if c["server"]["final_state"] == "CLOSE-WAIT"
    )
    assert got, "no server left in CLOSE-WAIT"
    assert got == sorted(want.items(), key=lambda kv: (-kv[1], kv[0]))
    left = duckdb.sql(
        f"select count(*) from '{pq}/connections/*.parquet' where client_state = 'CLOSE-WAIT'"
    ).fetchall()[0]
    assert left[0] == sum(c["client"]["final_state"] == "CLOSE-WAIT" for c in json_rows(text))


def test_duckdb_retransmissions_per_connection(cut_short: tuple[Path, str]) -> None:
    import duckdb

    pq, text = cut_short
    per_packet = dict(
        duckdb.sql(
            f"select connection, count(*) from '{pq}/packets/*.parquet' "
            "where list_contains(analysis, 'retransmission') group by connection"
        ).fetchall()
    )
    per_conn = dict(
        duckdb.sql(
            f"select connection, anomaly_retransmission from '{pq}/connections/*.parquet' "
            "where anomaly_retransmission > 0"
        ).fetchall()
    )
    want = {
        c["connection"]: c["anomalies"]["retransmission"]
        for c in json_rows(text)
        if c["anomalies"].get("retransmission")
    }
    assert want
    assert per_packet == want
    assert per_conn == want
    # Durations and handshake RTTs agree with the JSON to the microsecond.
    rows = duckdb.sql(
        "select connection, epoch_us(start::timestamptz), duration // 1000, "
        f"rtt_syn_synack // 1000 from '{pq}/connections/*.parquet' order by connection"
    ).fetchall()
    for (number, start, duration, rtt), c in zip(rows, json_rows(text), strict=True):
        assert number == c["connection"]
        assert start == round(c["start"] * 1e6)
        assert duration == round(c["duration"] * 1e6) or abs(duration - c["duration"] * 1e6) < 2
        assert rtt == (None if c["rtt_syn_synack"] is None else round(c["rtt_syn_synack"] * 1e6))


# -- Dask -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A LocalCluster of 2 workers (127.0.0.1 only), closed after the module."""
    from tcplab.scale.cluster import ClusterSpec, connect

    with connect(ClusterSpec(2, None)) as c:
        yield c


def _table_rows(root: Path, name: str, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    import pyarrow.dataset as ds

    rows = ds.dataset(root / name, format="parquet").to_table().to_pylist()
    for row in rows:
        for column in drop:
            del row[column]
    return sorted(rows, key=lambda r: tuple(str(v) for v in r.values()))


def test_dask_ring_equals_one_file(ring: Ring, client: Any, tmp_path: Path) -> None:
    """2 workers, the 8-file ring cut into 64 KiB ranges (dozens of resyncs in
    pcap and pcapng): conn.log, JSON and both Parquet tables equal the
    single-process run."""
    from tcplab.scale.cluster import run
    from tcplab.scale.engine import EngineOptions

    result = run(
        client,
        [str(ring.dir)],
        EngineOptions(keep_packets=True),
        parquet=str(tmp_path / "dask"),
        packets=True,
        want_log=True,
        want_json=True,
        range_bytes=64 << 10,
    )
    assert result.problems == []
    assert result.partitions == 4
    one_log = ok("--conn-log", str(ring.one))
    assert conn_log_rows(result.conn_log) == conn_log_rows(one_log)
    assert result.conn_log == one_log  # merged in start order: the very same file
    assert result.json == ok("--json", str(ring.one))
    # Parquet: the same tables as the single-process run of the ring...
    ok("--parquet", str(tmp_path / "single"), "--parquet-packets", str(ring.dir))
    parts = sorted((tmp_path / "dask/connections").iterdir())
    assert len(parts) == 4
    for name in ("connections", "packets"):
        assert _table_rows(tmp_path / "dask", name) == _table_rows(tmp_path / "single", name)
    # ... and of the one file, but for the file names and frame numbers.
    ok("--parquet", str(tmp_path / "one"), "--parquet-packets", str(ring.one))
    assert _table_rows(tmp_path / "dask", "connections") == _table_rows(
        tmp_path / "one", "connections"
    )
    assert _table_rows(tmp_path / "dask", "packets", ("file", "frame")) == _table_rows(
        tmp_path / "one", "packets", ("file", "frame")
    )


def test_idle_connections_leave_the_engine_alike(ring: Ring, client: Any, tmp_path: Path) -> None:
    """Connections leave the engine as they end, in every path: the second
    half of the capture shifted 400 s later (past Zeek's 300 s inactivity
    timeout), so every connection open at the cut goes idle and its next
    packet starts a new record.  The one file, the two halves as a set and
    the set on Dask give the same conn.log and JSON."""
    from tcplab.scale.cluster import run
    from tcplab.scale.engine import EngineOptions

    halves = tmp_path / "halves"
    halves.mkdir()
    first, second = halves / "a.pcap", halves / "b.pcap"
    count = int(
        subprocess.run(
            ["capinfos", "-Mc", str(ring.one)], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
    )
    subprocess.run(
        ["editcap", "-F", "pcap", "-r", str(ring.one), str(first), f"1-{count // 2}"], check=True
    )
    late = tmp_path / "late.pcap"
    subprocess.run(
        ["editcap", "-F", "pcap", "-r", str(ring.one), str(late), f"{count // 2 + 1}-{count}"],
        check=True,
    )
    subprocess.run(["editcap", "-F", "pcap", "-t", "400", str(late), str(second)], check=True)
    one = tmp_path / "one.pcap"
    subprocess.run(
        ["mergecap", "-F", "pcap", "-a", "-w", str(one), str(first), str(second)], check=True
    )
    one_log = ok("--conn-log", str(one))
    gapless = ok("--conn-log", str(ring.one))
    assert len(conn_log_rows(one_log)) > len(conn_log_rows(gapless))  # the cut split some
    assert ok("--conn-log", str(halves)) == one_log
    assert ok("--json", str(halves)) == ok("--json", str(one))
    result = run(client, [str(halves)], EngineOptions(), want_json=True, range_bytes=96 << 10)
    assert result.conn_log == one_log
    assert result.json == ok("--json", str(one))


def test_dask_truncated_file_in_the_middle(ring: Ring, client: Any, tmp_path: Path) -> None:
    from tcplab.scale.cluster import run
    from tcplab.scale.engine import EngineOptions

    broken = tmp_path / "ring"
    shutil.copytree(ring.dir, broken)
    victim = sorted(broken.iterdir())[4]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2 + 7])
    single = run_tcplab("analyze", "--conn-log", str(broken), timeout=300)
    assert single.code == 0
    [line] = single.stderr.splitlines()
    assert line.startswith(f"tcplab: {victim}: offset ")
    result = run(client, [str(broken)], EngineOptions(), range_bytes=48 << 10)
    assert [f"tcplab: {p}" for p in result.problems] == [line]
    assert result.conn_log == single.stdout


def test_dask_cli_local_cluster(ring: Ring) -> None:
    """The command line: the dashboard link (on 127.0.0.1), then conn.log;
    files as paths and as fsspec URLs."""
    files = [f"file://{f}" if i % 2 else str(f) for i, f in enumerate(ring.files)]
    result = run_tcplab("analyze", "--dask", "local:2", "--conn-log", *files, timeout=300)
    assert result.code == 0, result.stderr
    [dash] = result.stderr.splitlines()
    assert dash.startswith("tcplab: dask dashboard: http://127.0.0.1:")
    assert result.stdout == ok("--conn-log", str(ring.one))
    bad = run_tcplab("analyze", "--dask", "local:zero", "--conn-log", str(ring.one))
    assert bad.code == 2
    assert bad.stderr == "tcplab: --dask local:zero: expected local:N with N >= 1 workers\n"


def test_dask_cli_reader_goes_away(ring: Ring, tmp_path: Path) -> None:
    """``tcplab analyze --dask ... | head -1``: conn.log streams to standard
    output as it is merged; when the reader goes away the command ends
    quietly, as every command does, and its scratch directory is gone."""
    import sys

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    args = ["analyze", "--dask", "local:1", "--conn-log", "--scratch", str(scratch)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcplab", *args, str(ring.one)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0
    assert first == b"#separator \\x09\n"
    [dash] = err.splitlines()
    assert dash.startswith("tcplab: dask dashboard: ")
    assert list(scratch.iterdir()) == []


def test_local_cluster_listens_on_loopback_only(client: Any) -> None:
    import os

    pids = {os.getpid(), *client.run(os.getpid).values()}
    out = subprocess.run(["ss", "-tlnpH"], capture_output=True, text=True, check=True).stdout
    ours = [line.split()[3] for line in out.splitlines() if any(f"pid={p}," in line for p in pids)]
    assert len(ours) >= 4  # scheduler, dashboard, 2 workers (and their nannies)
    assert all(addr.startswith("127.0.0.1:") for addr in ours), ours


def test_dask_resync_fooled_by_payload_is_corrected(
    ring: Ring, client: Any, tmp_path: Path
) -> None:
    """A packet whose payload holds a chain of valid-looking pcap records
    fools the resynchronisation of the range that starts inside it; the
    predecessor's stop offset shows the mistake, the range is read again,
    and the result is still the single-process one."""
    import struct

    from tcplab.capture import open_capture
    from tcplab.scale.cluster import run
    from tcplab.scale.engine import EngineOptions
    from tcplab.scale.ranges import layout, resync

    data = bytearray(ring.one.read_bytes())
    with open_capture(ring.one) as reader:
        victim = next(r for r in reader if r.offset > 100_000 and len(r.data) > 800)
    payload = victim.data_offset + 54  # Ethernet + IPv4 + TCP headers of the synthetic file
    t = victim.time_ns // 1000
    fake = b"".join(
        struct.pack("<IIII", t // 10**6, t % 10**6 + i, 40, 40) + bytes(40) for i in range(10)
    )
    data[payload : payload + len(fake)] = fake
    path = tmp_path / "fooled.pcap"
    path.write_bytes(bytes(data))
    lay = layout(str(path), 0)
    true_next = victim.data_offset + len(victim.data)
    with open(path, "rb") as f:
        assert resync(lay, f, payload, payload + 4096) == payload  # fooled
    single = run_tcplab("analyze", "--conn-log", str(path), timeout=300)
    assert single.code == 0
    result = run(client, [str(path)], EngineOptions(), range_bytes=payload - 24)
    assert true_next > payload
    assert result.conn_log == single.stdout
    assert result.problems == []


def test_chain_check() -> None:
    """The planner's rules: agree -> accept; disagree -> read again from the
    trusted stop; a new section -> merge; lost framing -> the file ends."""
    from tcplab.scale.cluster import check_chain
    from tcplab.scale.ranges import RangeMeta, RangeSpec

    def meta(i: int, first: int | None, stop: int | None, **kw: Any) -> RangeMeta:
        spec = RangeSpec(0, i, i * 100 + (24 if i == 0 else 0), (i + 1) * 100, i == 0)
        return RangeMeta(
            spec, first, stop, kw.get("lost", False), kw.get("changed", False), 1, 0, []
        )

    reread: list[RangeSpec] = []

    def again(spec: RangeSpec) -> RangeMeta:
        reread.append(spec)
        return meta(spec.range_id, spec.start, spec.end + 3)

    good = [meta(0, 24, 103), meta(1, 103, 201), meta(2, 201, None)]
    assert check_chain(good, again) == good and not reread
    fooled = [meta(0, 24, 103), meta(1, 150, 201), meta(2, 201, None)]
    got = check_chain(fooled, again)
    # 1 is read again from 0's stop; then 2 disagrees with the re-read 1's stop.
    assert reread == [RangeSpec(0, 1, 103, 200, True), RangeSpec(0, 2, 203, 300, True)]
    assert [m.first for m in got] == [24, 103, 203]
    reread.clear()
    lost = [meta(0, 24, 103, lost=True), meta(1, 103, 201), meta(2, 201, None)]
    assert check_chain(lost, again) == lost[:1]
    long_record = [meta(0, 24, 250), meta(1, 120, 201), meta(2, 250, None)]
    assert check_chain(long_record, again) == [long_record[0], long_record[2]]
    section = [meta(0, 24, 103, changed=True), meta(1, 103, 201)]
    got = check_chain(section, again)
    assert reread == [RangeSpec(0, 0, 24, 200, True)] and len(got) == 1


def test_rows_of_the_c_decoder_equal_the_python_decoder() -> None:
    """The decode-only engine (C reader and decoder, tcplab.wire for the rest)
    gives the rows, counts and problem lines the Python reader and decoder
    give, on every capture of the suite's data and the peer traces."""
    import numpy as np

    from tcplab.analyze.frames import ReadReport, read_segments
    from tcplab.scale.columns import ROW, empty_rows, file_rows, segment_rows
    from tcplab.scale.engine import EngineOptions

    here = Path(__file__).parent
    files = sorted(here.glob("data/*.pcap*")) + sorted((SHARED / "peer-traces").rglob("*.pcap*"))
    assert len(files) > 20
    fields = [name for name in ROW.names if not name.startswith("_pad")]
    packets = 0
    for path in files:
        fast, slow = ReadReport(), ReadReport()
        got = np.concatenate([empty_rows(), *file_rows(0, str(path), EngineOptions(), fast)])
        want = segment_rows(read_segments(path, slow), EngineOptions())
        assert len(got) == len(want), path
        for name in fields:
            assert (got[name] == want[name]).all(), (path, name)
        assert (fast.frames, fast.tcp, fast.not_tcp, fast.problems) == (
            slow.frames,
            slow.tcp,
            slow.not_tcp,
            slow.problems,
        ), path
        packets += len(got)
    assert packets > 1000


def test_dask_shuffle_through_scratch_removed_however_the_run_ends(
    ring: Ring, client: Any, tmp_path: Path
) -> None:
    """Stage 1 writes the partitions' rows to files in a scratch directory
    (workers keep none of them); the directory is gone after a run that
    ends well, one interrupted (Ctrl-C) while tasks still run, and one that
    fails."""
    from tcplab.errors import InputError
    from tcplab.scale.cluster import run
    from tcplab.scale.engine import EngineOptions

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    seen: list[int] = []

    def look(done: int, total: int) -> None:
        seen.append(sum(f.stat().st_size for f in scratch.rglob("*.rows")))

    result = run(
        client,
        [str(ring.dir)],
        EngineOptions(),
        want_json=True,
        range_bytes=64 << 10,
        progress=look,
        scratch=str(scratch),
    )
    assert result.conn_log == ok("--conn-log", str(ring.one))
    assert result.json == ok("--json", str(ring.one))
    assert max(seen) > 0  # the rows were in files while the ranges were read
    assert seen[-1] == result.shuffle_bytes  # all of them, at the end of stage 1
    assert list(scratch.iterdir()) == []

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(
            client,
            [str(ring.dir)],
            EngineOptions(),
            range_bytes=16 << 10,
            progress=interrupt,
            scratch=str(scratch),
        )
    assert list(scratch.iterdir()) == []

    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"no capture here " * 8)
    with pytest.raises(InputError):
        run(client, [str(junk)], EngineOptions(), scratch=str(scratch))
    assert list(scratch.iterdir()) == []
    with pytest.raises(InputError, match=r"^--scratch .*missing: "):
        run(client, [str(ring.dir)], EngineOptions(), scratch=str(tmp_path / "missing"))


def test_dask_scheduler_needs_a_shared_scratch(ring: Ring, tmp_path: Path) -> None:
    """--scratch on the command line: used and emptied with local:N, required
    with a scheduler address, refused without --dask."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    local = run_tcplab(
        "analyze",
        "--dask",
        "local:1",
        "--scratch",
        str(scratch),
        "--conn-log",
        str(ring.dir),
        timeout=300,
    )
    assert local.code == 0, local.stderr
    assert local.stdout == ok("--conn-log", str(ring.one))
    assert list(scratch.iterdir()) == []
    bad = run_tcplab("analyze", "--dask", "tcp://127.0.0.1:9", "--conn-log", str(ring.one))
    assert bad.code == 2
    assert bad.stderr == (
        "tcplab: --dask tcp://127.0.0.1:9: give --scratch DIR,"
        " a directory every worker reaches at the same path\n"
    )
    alone = run_tcplab("analyze", "--scratch", str(tmp_path), "--conn-log", str(ring.one))
    assert alone.code == 2
    assert alone.stderr == "tcplab: --scratch goes with --dask\n"


def test_dask_worker_memory_follows_open_connections(tmp_path: Path) -> None:
    """A worker's memory is bounded by its partitions' open connections, not
    by all of them: four times the connections at the same rate (so about as
    many open at once) through JSON and Parquet, on a fresh 1-worker cluster
    each, raise the worker's peak RSS by little.  (When stage 3 loaded a
    partition's records, the two runs peaked at 161 and 276 MB; now at about
    144 and 167 MB.)"""
    from tcplab.scale.cluster import ClusterSpec, connect, run
    from tcplab.scale.engine import EngineOptions

    peaks: list[int] = []
    for scale in (1, 4):
        capture = tmp_path / f"x{scale}.pcap"
        written = write_capture(
            capture, 100_000 * scale, 10_000 * scale, seed=5, concurrency_seconds=400.0 * scale
        )
        with connect(ClusterSpec(1, None)) as one_worker:
            result = run(
                one_worker,
                [str(capture)],
                EngineOptions(),
                want_json=True,
                parquet=str(tmp_path / f"pq{scale}"),
            )
        assert result.connections == written["connections"]
        assert len(json_rows(result.json)) == result.connections
        peaks.append(result.worker_peak_rss)
        capture.unlink()
    # 30,000 more connections: 115 MB more before (about 4 kB each), 23 MB
    # now: the Parquet row group being gathered (up to PartWriter.ROW_GROUP
    # rows) and the sorted runs held before they spill (cluster.RUN_BYTES).
    assert peaks[1] - peaks[0] < 40 << 20, peaks
