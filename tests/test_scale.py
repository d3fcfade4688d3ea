"""Capture sets, Parquet tables and the distributed run (issue: beyond one machine).

One synthetic capture (analyze/synth.py) is cut with ``editcap -c`` into a
ring of 8 files; half of them are rewritten as pcapng, so both readers and
both resynchronisations are exercised.  The ring analysed as one capture
must give what the one file gives; the Parquet tables must answer questions
exactly as the analyzer's own JSON does; a Dask LocalCluster of 2 workers
must give the single-process result.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import run_tcplab
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
        if i % 2:  # every other file as pcapng
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
    """The first 3 files of the ring: connections are left mid-close, some in CLOSE-WAIT."""
    d = tmp_path_factory.mktemp("short")
    files = [str(f) for f in ring.files[:3]]
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
