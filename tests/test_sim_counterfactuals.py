"""The counterfactual scenarios show what they claim, in the model and in the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tcplab.cli import cli, main
from tcplab.model.sim import run_scenario, sim_can_play, variants_of
from tcplab.scenario import builtin_ids, load
from tcplab.states import State
from tcplab.timeline import Note, Timeline


def play(scenario_id: str) -> dict[str, Timeline]:
    scenario = load(scenario_id)
    return {v.name: run_scenario(scenario, variant=v) for v in variants_of(scenario)}


def resets(timeline: Timeline) -> list[tuple[str, str]]:
    return [(p.sender, p.flags) for p in timeline.packets() if "R" in p.flags]


def calls(timeline: Timeline, actor: str, call: str) -> list[tuple[str | None, str | None]]:
    return [(c.result, c.errno) for c in timeline.api_calls(actor) if c.call == call]


def test_why_time_wait() -> None:
    runs = play("why-time-wait")
    with_tw, without = runs["with TIME-WAIT"], runs["without TIME-WAIT"]
    for timeline in runs.values():
        assert sum(p.dropped for p in timeline.packets()) == 1  # the client's last ACK
    # With TIME-WAIT: the retransmitted FIN is ACKed again, no RST, recv() sees EOF.
    wire = [(p.sender, p.flags, p.dropped) for p in with_tw.packets()]
    # The same wire `tcplab run why-time-wait` shows on this kernel: the server never
    # received data, so its ACK of the FIN leaves at the next timer tick, alone.
    assert wire[3:] == [("client", "F.", False), ("server", ".", False),
                        ("server", "F.", False), ("client", ".", True),
                        ("server", "F.", False), ("client", ".", False)]
    assert [(p.sender, p.flags) for p in without.packets()][-2:] == [("server", "F."),
                                                                      ("client", "R")]
    assert resets(with_tw) == []
    assert calls(with_tw, "server", "recv")[-1] == ("b''", None)
    assert with_tw.state_path("client")[-1] is State.TIME_WAIT
    fins = [p for p in with_tw.packets() if p.sender == "server" and "F" in p.flags]
    assert len(fins) == 2 and fins[1].time - fins[0].time == pytest.approx(0.2, abs=0.02)
    # Without: the retransmitted FIN meets a closed port; RST; the server's recv fails.
    assert resets(without) == [("client", "R")]
    assert calls(without, "server", "recv")[-1] == (None, "ECONNRESET")
    assert State.TIME_WAIT in without.state_path("client")  # for zero seconds
    assert without.state_path("client")[-1] is State.CLOSED


def test_why_three_way() -> None:
    runs = play("why-three-way")
    three, two = runs["three-way handshake"], runs["two-way handshake"]
    for timeline in runs.values():
        assert [p.flags for p in timeline.packets()] == ["S", "S.", "R"]
        assert resets(timeline) == [("client", "R")]
    assert three.state_path("server")[-2:] == [State.SYN_RECEIVED, State.CLOSED]
    assert State.ESTABLISHED not in three.state_path("server")
    assert calls(three, "server", "accept") == [("still blocked at the end", None)]
    assert State.ESTABLISHED in two.state_path("server")
    (accepted,) = calls(two, "server", "accept")
    # The application got a connection nobody opened.
    assert accepted[0] not in (None, "still blocked at the end")


def test_why_2msl() -> None:
    runs = play("why-2msl")
    with_tw, without = runs["with TIME-WAIT"], runs["without TIME-WAIT"]
    assert calls(with_tw, "client", "bind")[-1] == (None, "EADDRINUSE")
    assert calls(with_tw, "server", "recv")[-1] == ("b'new'", None)
    assert ("server", "R") in resets(with_tw)  # the stale segment met no connection
    assert calls(without, "client", "bind")[-1] == ("0", None)
    assert calls(without, "server", "recv")[-1] == ("b'OLD'", None)  # stale data accepted
    assert any(isinstance(e, Note) and "arrives now" in e.text for e in without.events)


def test_counterfactual_scenarios_are_listed_and_playable() -> None:
    for sid in ("why-three-way", "why-time-wait", "why-2msl"):
        assert sid in builtin_ids() and sim_can_play(load(sid))
        assert len(variants_of(load(sid))) == 2


def test_cli_why_time_wait_shows_both_variants_and_the_difference() -> None:
    result = CliRunner().invoke(cli, ["sim", "why-time-wait"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("=== with TIME-WAIT ===") < out.index("=== without TIME-WAIT ===")
    verdicts = [line for line in out.splitlines() if line.startswith("verdict:")]
    assert len(verdicts) == 2
    assert "no RST" in verdicts[0] and "no errors" in verdicts[0]
    assert "RST: client [R]" in verdicts[1] and "ECONNRESET" in verdicts[1]
    assert "TIME-WAIT" in out and "✗" in out  # the dropped ACK is drawn


def test_cli_why_three_way_shows_the_accepted_bogus_connection() -> None:
    result = CliRunner().invoke(cli, ["sim", "why-three-way"])
    assert result.exit_code == 0, result.output
    verdicts = [line for line in result.output.splitlines() if line.startswith("verdict:")]
    assert "accept() still waiting" in verdicts[0]
    assert "server accepted 1 connection" in verdicts[1]


def test_cli_json_per_variant_and_variant_filter(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = CliRunner().invoke(cli, ["sim", "why-time-wait", "--json", str(out)])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["run.with-time-wait.json", "run.without-time-wait.json"]
    timeline = Timeline.from_json((tmp_path / files[1]).read_text())
    assert timeline.producer == "sim" and timeline.meta["variant"] == "without TIME-WAIT"
    result = CliRunner().invoke(cli, ["sim", "why-time-wait", "--variant", "with TIME-WAIT",
                                      "--json", "-"])
    assert result.exit_code == 0
    (line,) = result.output.strip().splitlines()
    assert Timeline.from_json(line).meta["variant"] == "with TIME-WAIT"


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["sim", "no-such-scenario"], ["sim", "why-time-wait", "--variant", "nope"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("tcplab: ") and err.count("\n") == 1
