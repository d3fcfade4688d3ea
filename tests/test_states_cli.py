"""``tcplab states``: the diagram comes from the transition table."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcplab.cli import cli
from tcplab.model.diagram import render_dot, taken_edges
from tcplab.model.sim import run_scenario, variants_of
from tcplab.model.table import TRANSITIONS
from tcplab.scenario import load

EDGE = re.compile(r"^  (\w+) -> (\w+) \[label=")


def edges_in(dot: str) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for line in dot.splitlines() if (m := EDGE.match(line))]


def test_every_table_edge_is_drawn_with_trigger_action_and_rfc() -> None:
    dot = render_dot(layout="rfc")
    assert edges_in(dot) == [(e.state.name, e.next.name) for e in TRANSITIONS]
    for edge in TRANSITIONS:
        assert f"{edge.label}\\n{edge.rfc}" in dot
    assert dot.count("style=dashed") == sum(e.counterfactual for e in TRANSITIONS)


def test_highlight_marks_the_edges_a_run_took() -> None:
    scenario = load("why-time-wait")
    timeline = run_scenario(scenario, variant=variants_of(scenario)[0])
    _states, edges = taken_edges(timeline.state_changes())
    names = {(e.state.name, e.next.name, e.trigger.name) for e in edges}
    assert ("FIN_WAIT_2", "TIME_WAIT", "RCV_FIN") in names
    assert ("CLOSE_WAIT", "LAST_ACK", "SHUTDOWN_WR") in names
    assert ("CLOSE_WAIT", "LAST_ACK", "CLOSE") not in names  # the cause picks the edge
    dot = render_dot(layout="rfc", highlight=timeline.state_changes())
    red = [line for line in dot.splitlines() if 'color="red"' in line and "->" in line]
    assert len(red) == len(edges)
    assert 'TIME_WAIT [label="TIME-WAIT", style="rounded,filled"' in dot


def test_cli_without_options_prints_the_table() -> None:
    result = CliRunner().invoke(cli, ["states"])
    assert result.exit_code == 0
    assert len(result.output.splitlines()) == len(TRANSITIONS) + 1


def test_cli_dot_to_stdout_and_highlight_from_json(tmp_path: Path) -> None:
    run = tmp_path / "run.json"
    result = CliRunner().invoke(cli, ["sim", "why-three-way", "--variant",
                                      "three-way handshake", "--json", str(run)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["states", "--dot", "-", "--highlight", str(run),
                                      "--layout", "rfc"])
    assert result.exit_code == 0
    assert "digraph tcp_states" in result.output
    assert re.search(r'SYN_RECEIVED -> CLOSED \[label="rcv RST[^\n]*color="red"', result.output)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
def test_cli_svg_from_the_table(tmp_path: Path) -> None:
    out = tmp_path / "states.svg"
    result = CliRunner().invoke(cli, ["states", "--svg", str(out), "--layout", "rfc"])
    assert result.exit_code == 0, result.output
    svg = html.unescape(out.read_text())
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert svg.count('class="edge"') == len(TRANSITIONS)
    assert "FIN-WAIT-2" in svg and "RFC 9293 §3.10.7.4" in svg
