"""The engine (analyze/_engine.c) against the readable reference (analyze/core.py's
``Analyzer``: wireshark.py, zeek.py, infer.py and the model's observer).

The Python trackers stay as the reference only because this file runs both on
every trace the suite has (Zeek's baselines, the packetdrill and tcplab
captures, the synthetic generator) and requires equal output: every packet's
relative numbers, analysis flags, states and state changes; every
connection's summary, notes and trailing changes; the conn.log; the read
report.  The reference reads checksums strictly, as Zeek does without -C, so
the engine runs with ``strict_checksums`` here.

Also: the engine runs the model's transition table (the tables it was
given are ``tcplab.model.table``'s), and its input paths (pcap, pcapng,
``.gz``, standard input) give one analysis.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import SHARED
from tcplab.analyze import _engine
from tcplab.analyze.core import Analysis, Analyzer, Connection, PacketRecord, analyze_file
from tcplab.analyze.engine import STATES, TEXTS, TRIGGERS, model_table
from tcplab.analyze.frames import ReadReport, read_segments
from tcplab.analyze.output import conn_log
from tcplab.analyze.synth import write_capture
from tcplab.model.table import TRANSITIONS

REPO = Path(__file__).resolve().parent.parent
TRACES = sorted(
    {
        *(SHARED / "peer-traces").rglob("*.pcap"),
        *(SHARED / "peer-traces").rglob("*.pcapng"),
        *(REPO / "tests/data").rglob("*.pcap"),
        *(REPO / "tests/data").rglob("*.pcapng"),
    }
)


def reference(path: Path, ignore_checksums: bool = False) -> Analysis:
    report = ReadReport()
    analyzer = Analyzer(ignore_checksums=ignore_checksums)
    for seg in read_segments(path, report):
        analyzer.observe(seg)
    return analyzer.finish(report)


def packet_view(p: PacketRecord) -> tuple[Any, ...]:
    changes = [
        (who, c.old, c.new, c.cause, c.rfc, c.ambiguous or None, when, c.at)
        for who, c, when in p.changes
    ]
    return (
        p.index, p.time, p.stream, p.sender, p.src, p.sport, p.dst, p.dport, p.flags, p.seq,
        p.ack, p.rel_seq, p.rel_ack, p.nxtseq, p.length, p.window, sorted(p.analysis),
        p.dupack_num, p.client_state, p.server_state, changes, p.options, p.dropped_by_wire,
    )  # fmt: skip


def connection_view(c: Connection) -> dict[str, Any]:
    d = c.to_dict()
    d["trailing"] = [
        (who, x.old, x.new, x.cause, x.rfc, x.ambiguous or None, when)
        for who, x, when in c.trailing_changes
    ]
    return d


def assert_same(ref: Analysis, eng: Analysis) -> None:
    assert [connection_view(c) for c in eng.connections] == [
        connection_view(c) for c in ref.connections
    ]
    assert len(eng.packets) == len(ref.packets)
    for mine, theirs in zip(eng.packets, ref.packets, strict=True):
        assert packet_view(mine) == packet_view(theirs)
    assert conn_log(eng.zeek) == conn_log(ref.zeek)
    assert eng.report.problems == ref.report.problems
    assert (eng.report.frames, eng.report.tcp, eng.report.not_tcp) == (
        ref.report.frames,
        ref.report.tcp,
        ref.report.not_tcp,
    )


@pytest.mark.parametrize("path", TRACES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_engine_equals_reference(path: Path) -> None:
    assert_same(reference(path), analyze_file(path, strict_checksums=True))


def test_engine_equals_reference_with_ignored_checksums() -> None:
    path = SHARED / "peer-traces/zeek/traces/chksums/localhost-bad-chksum.pcap"
    assert_same(
        reference(path, ignore_checksums=True),
        analyze_file(path, ignore_checksums=True, strict_checksums=True),
    )


@pytest.mark.parametrize("seed", [3, 5])
def test_engine_equals_reference_on_synthetic(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "synth.pcap"
    write_capture(path, 20000, 600, seed=seed, concurrency_seconds=5)
    assert_same(reference(path), analyze_file(path, strict_checksums=True))


def test_engine_runs_the_model_table() -> None:
    """The tables in the engine are tcplab.model.table's, edge for edge."""
    edges, rst = _engine.table()
    expected = {
        (STATES.index(e.state), TRIGGERS.index(e.trigger), STATES.index(e.next))
        for e in TRANSITIONS
    }
    assert {(s, t, n) for s, t, n, _ in edges} == expected
    for s, t, n, rfc in edges:
        first = next(
            e
            for e in TRANSITIONS
            if (STATES.index(e.state), TRIGGERS.index(e.trigger), STATES.index(e.next))
            == (s, t, n)
        )
        assert TEXTS[rfc] == first.rfc
    assert rst == model_table()[1]


def _same_analysis(a: Analysis, b: Analysis) -> None:
    assert [connection_view(c) for c in a.connections] == [
        connection_view(c) for c in b.connections
    ]
    assert [packet_view(p) for p in a.packets] == [packet_view(p) for p in b.packets]
    assert conn_log(a.zeek) == conn_log(b.zeek)


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap (wireshark) not installed")
def test_pcap_pcapng_gz_stdin_agree(tmp_path: Path) -> None:
    pcap = tmp_path / "synth.pcap"
    write_capture(pcap, 5000, 200, seed=7, concurrency_seconds=5)
    pcapng = tmp_path / "synth.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(pcap), str(pcapng)], check=True)
    gz = tmp_path / "synth.pcapng.gz"
    gz.write_bytes(gzip.compress(pcapng.read_bytes()))
    base = analyze_file(pcap)
    for other in (pcapng, gz):
        _same_analysis(base, analyze_file(other))
    code = (
        "import sys, json; from tcplab.analyze import analyze_file;"
        "a = analyze_file('-');"
        "print(json.dumps([c.to_dict() for c in a.connections]))"
    )
    with pcapng.open("rb") as stdin:
        out = subprocess.run(
            [sys.executable, "-c", code], stdin=stdin, capture_output=True, check=True, text=True
        ).stdout
    import json

    assert json.loads(out) == [c.to_dict() for c in base.connections]
