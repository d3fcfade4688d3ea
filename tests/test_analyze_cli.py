"""``tcplab analyze``: modes, filters, conn.log format, bad input as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from conftest import SHARED
from tcplab.cli import cli

TRACES = SHARED / "peer-traces/zeek/traces"


def run_process(*args: str) -> tuple[int, str, str]:
    """The real entry point, where errors become one line (tcplab.cli.main)."""
    code = "import sys; from tcplab.cli import main; main(sys.argv[1:])"
    proc = subprocess.run(
        [sys.executable, "-c", code, "analyze", *args], capture_output=True, text=True, timeout=60
    )
    return proc.returncode, proc.stdout, proc.stderr


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["analyze", *args])
    return result.exit_code, result.stdout, result.stderr


def zeek_cut(text: str, *columns: str) -> list[list[str]]:
    """What zeek-cut does: pick columns by the #fields header."""
    fields: list[str] = []
    rows = []
    for line in text.splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            parts = line.split("\t")
            rows.append([parts[fields.index(c)] for c in columns])
    return rows


def test_conn_log_is_zeek_tsv_and_matches_baseline() -> None:
    code, out, _ = run(str(TRACES / "pop3/pop3.pcap"), "--conn-log", "-b")
    assert code == 0
    head = out.splitlines()[:8]
    assert head[0] == "#separator \\x09"
    assert [h.split("\t")[0] for h in head[1:]] == [
        "#set_separator",
        "#empty_field",
        "#unset_field",
        "#path",
        "#open",
        "#fields",
        "#types",
    ]
    assert out.splitlines()[-1].startswith("#close\t")
    rows = zeek_cut(out, "id.orig_p", "conn_state", "history")
    assert rows.count(["26242", "REJ", "Sr"]) == 3
    assert rows.count(["26272", "SF", "ShAdDafF"]) == 1
    assert len({r[0] for r in zeek_cut(out, "uid")}) == len(rows)  # uids unique


def test_json_one_object_per_connection() -> None:
    code, out, _ = run(str(TRACES / "http/get.pcap"), "--json")
    assert code == 0
    objs = [json.loads(line) for line in out.splitlines()]
    assert len(objs) == 1
    c = objs[0]
    assert (c["conn_state"], c["history"], c["ending"], c["active_closer"]) == (
        "SF",
        "ShADadFf",
        "FIN both ways",
        "client",
    )
    assert c["client"]["final_state"] == "TIME-WAIT"
    assert c["server"]["final_state"] == "CLOSED"
    assert c["handshake_seen"] is True
    assert c["client"]["mss"] == 1460 and c["server"]["wscale"] == 7
    assert abs(c["rtt_syn_synack"] - 0.069740) < 1e-5


def test_packets_mode_shows_flags_and_states() -> None:
    code, out, _ = run(str(TRACES / "http/get.pcap"), "--packets")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 14
    assert "[S.] seq 0 ack 1" in lines[1]
    assert lines[-1].endswith("client=TIME-WAIT server=CLOSED")


def test_packets_mode_shows_analysis_flags() -> None:
    code, out, _ = run(str(TRACES / "tcp/ssh-dups.pcap"), "--packets")
    assert code == 0
    assert "duplicate_ack#" in out and "retransmission" in out


def test_filters() -> None:
    trace = str(TRACES / "pop3/pop3.pcap")
    _, out, _ = run(trace, "--json", "--port", "26272")
    assert [json.loads(x)["client"]["port"] for x in out.splitlines()] == [26272]
    _, out, _ = run(trace, "--json", "--problems")
    shown = [json.loads(x) for x in out.splitlines()]
    assert sum(c["ending"] == "refused (RST to SYN)" for c in shown) == 2
    assert all(c["ending"] != "FIN both ways" or c["anomalies"] for c in shown)
    assert len(shown) < 7
    _, out, _ = run(trace, "--json", "--host", "212.227.15.171")
    assert {json.loads(x)["server"]["address"] for x in out.splitlines()} == {"212.227.15.171"}
    _, out, _ = run(trace, "--json", "--conn", "2")
    assert [json.loads(x)["connection"] for x in out.splitlines()] == [2]


def test_ladder_draws_inferred_states() -> None:
    code, out, _ = run(str(TRACES / "http/get.pcap"), "--ladder", "0")
    assert code == 0
    for state in ("SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "CLOSE-WAIT", "LAST-ACK", "TIME-WAIT"):
        assert state in out
    code, _, err = run_process(str(TRACES / "http/get.pcap"), "--ladder", "7")
    assert code != 0 and "no connection 7" in err


def test_table_default() -> None:
    code, out, _ = run(str(TRACES / "http/get.pcap"))
    assert code == 0 and "SF" in out and "1 TCP connection, 14 TCP packets in 14 frames" in out


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pcap"
    bogus.write_bytes(b"hello world, not a capture")
    code, _out, err = run_process(str(bogus))
    assert code == 2 and err.count("\n") == 1 and "not a pcap" in err and "Traceback" not in err
    code, _, err = run_process(str(tmp_path / "missing.pcap"))
    assert code != 0 and err.count("\n") == 1


def test_truncated_capture_reports_and_analyses_the_rest(tmp_path: Path) -> None:
    data = (TRACES / "http/get.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 30])
    code, out, err = run(str(cut), "--json")
    assert code == 0
    assert "truncated" in err and err.count("\n") == 1
    assert json.loads(out.splitlines()[0])["client"]["packets"] == 6  # the last ACK was cut


def test_views_for_one_connection(tmp_path: Path) -> None:
    svg, html = tmp_path / "c.svg", tmp_path / "c.html"
    code, _, _ = run(str(TRACES / "http/get.pcap"), "--svg", str(svg), "--report", str(html))
    assert code == 0
    assert svg.read_text().lstrip().startswith("<svg") or "<svg" in svg.read_text()[:300]
    assert "TIME-WAIT" in html.read_text()
    code, _, err = run_process(str(TRACES / "pop3/pop3.pcap"), "--svg", str(svg))
    assert code == 2 and "choose one with --conn" in err


def test_summary_mode(tmp_path: Path) -> None:
    # --summary is the engine's overview (one analyzer): counts, then the rows.
    code, out, _ = run(str(TRACES / "pop3/pop3.pcap"), "--summary", "--port", "26272")
    assert code == 0 and "(1 match the filters)" in out.splitlines()[0]
    assert "FIN both ways (server first)" in out
    # pcapng goes through the shared reader: one row per connection, as the default mode.
    trace = str(TRACES / "tcp/http-on-irc-port-missing-syn.pcapng")
    code, out, err = run_process(trace, "--summary", "--json")
    assert code == 0, err
    code, full, _ = run_process(trace, "--json")
    assert code == 0 and len(out.splitlines()) == len(full.splitlines()) > 0
