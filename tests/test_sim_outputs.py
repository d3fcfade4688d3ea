"""``tcplab sim`` writes what was asked, where it was asked, and says what the model is."""

from __future__ import annotations

from pathlib import Path

from conftest import run_tcplab


def test_variants_go_into_one_report(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    out.mkdir()
    result = run_tcplab("sim", "why-time-wait", "--report", str(out / "wtw.html"))
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["wtw.html"]
    html = (out / "wtw.html").read_text(encoding="utf-8")
    # Both variants, side by side: each its verdict and its inline ladder.
    assert html.count('<section class="variant"><h2>with TIME-WAIT</h2>') == 1
    assert html.count('<section class="variant"><h2>without TIME-WAIT</h2>') == 1
    assert html.count("verdict: ") == 2
    assert "ECONNRESET" in html  # the variant without TIME-WAIT ends in a reset
    assert html.count("<svg") >= 2
    assert "wrote " + str(out / "wtw.html") in result.stdout


def test_mermaid_to_stdout_is_only_mermaid() -> None:
    result = run_tcplab("sim", "handshake-close", "--mermaid", "-")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "---" and "sequenceDiagram" in lines
    assert not any(line.startswith(("===", "verdict:", "wrote ")) or "│" in line
                   for line in lines)  # fmt: skip
    # Several variants are several diagrams: stdout holds one, so ask which.
    result = run_tcplab("sim", "why-time-wait", "--mermaid", "-")
    assert result.code != 0 and "--variant" in result.stderr
    one = run_tcplab("sim", "why-time-wait", "--mermaid", "-", "--variant", "with TIME-WAIT")
    assert one.code == 0 and one.stdout.startswith("---")
    both = run_tcplab("sim", "handshake-close", "--mermaid", "-", "--json", "-")
    assert both.code != 0 and "only one view can go to stdout" in both.stderr


def test_the_sim_shows_no_snapshots_it_never_took() -> None:
    result = run_tcplab("sim", "why-time-wait", "--width", "120")
    assert result.code == 0, result.stderr
    assert "ss:" not in result.stdout
    assert "sock_diag" not in result.stdout
    assert not any(word.endswith("*") for word in result.stdout.split()
                   if word.rstrip("*").isupper())  # fmt: skip
    # The model's timers, labelled as the model's.
    assert "model: Send-Q 1, retransmission timer" in result.stdout
    assert "model: TIME-WAIT timer: 60 s left" in result.stdout
    assert "model: FIN-WAIT-2 timer" in result.stdout
