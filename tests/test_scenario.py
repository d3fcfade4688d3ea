"""The scenario format: parsing, clear errors, and checking facts against a timeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcplab.errors import InputError
from tcplab.scenario import load, parse_scenario
from tcplab.states import State
from tcplab.timeline import ApiCall, Packet, Source, StateChange, Timeline

MINIMAL = {
    "id": "mini",
    "step": [
        {"actor": "server", "call": "listen", "backlog": 1},
        {"actor": "client", "call": "connect"},
        {"actor": "client", "call": "close"},
    ],
    "expect": {
        "flags": ["S", "S.", "."],
        "states": {"client": ["SYN_SENT", "ESTAB"]},
        "final_states": {"client": "TIME_WAIT"},
        "errno": {"client.connect": "ECONNREFUSED"},
        "dropped": 1,
    },
}


def test_parse_minimal_scenario() -> None:
    s = parse_scenario(MINIMAL)
    assert [step.call for step in s.steps] == ["listen", "connect", "close"]
    assert s.steps[0].args == {"backlog": 1}
    assert s.expect.states["client"] == (State.SYN_SENT, State.ESTABLISHED)
    assert s.model_can_play


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"step": [{"actor": "nobody", "call": "close"}]}, "step 1: actor must be one of"),
        ({"step": [{"actor": "client", "call": "frobnicate"}]}, "unknown call 'frobnicate'"),
        ({"step": [{"actor": "client", "call": "close", "how": 1}]}, "close() takes no argument"),
        ({"step": [{"actor": "client", "call": "shutdown"}]}, "shutdown() needs 'how'"),
        ({"fault": [{"action": "explode"}]}, "fault 1: action must be one of"),
        ({"fault": [{"action": "drop", "colour": "red"}]}, "fault 1:"),
        ({"expect": {"states": {"client": ["HALF_DONE"]}}}, "unknown TCP state 'HALF_DONE'"),
        ({"expect": {"weather": 1}}, "expect.weather: unknown fact"),
        ({"colour": 1}, "colour: unknown key"),
        ({"step": []}, "needs at least one [[step]]"),
    ],
)
def test_bad_scenarios_get_one_clear_line(patch: dict[str, object], message: str) -> None:
    data = {**MINIMAL, **patch}
    with pytest.raises(InputError) as info:
        parse_scenario(data, "my.toml")
    assert str(info.value).startswith("my.toml: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_unknown_id_lists_the_builtins() -> None:
    with pytest.raises(InputError, match="no scenario 'no-such-thing'"):
        load("no-such-thing")


def test_load_reports_bad_toml_with_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("id = \n")
    with pytest.raises(InputError, match=r"bad\.toml: not valid TOML"):
        load(str(bad))


def _timeline(flags: list[str], client_states: list[State], errno: str | None) -> Timeline:
    t = Timeline()
    for i, f in enumerate(flags):
        t.add(Packet(i, "client", "server", "a", 1, "b", 2, f, 0, 0, 0, dropped=(i == 2)))
    prev = State.CLOSED
    for i, s in enumerate(client_states):
        t.add(StateChange(i, "client", prev, s, Source.KERNEL))
        prev = s
    t.add(ApiCall(0, "client", "connect", (), None if errno else "0", errno))
    return t


def test_check_reports_each_fact_held() -> None:
    from tcplab.scenario import check

    s = parse_scenario(MINIMAL)
    good = _timeline(["S", "S.", "."], [State.SYN_SENT, State.ESTABLISHED, State.TIME_WAIT],
                     "ECONNREFUSED")
    assert all(r.held for r in check(s, good)), check(s, good)


def test_check_reports_each_fact_failed() -> None:
    from tcplab.scenario import check

    s = parse_scenario(MINIMAL)
    bad = _timeline(["S", "R."], [State.SYN_SENT, State.CLOSED], None)
    results = {r.fact: r.held for r in check(s, bad)}
    assert results == {
        "flags": False,
        "states.client": False,
        "final_states.client": False,
        "errno.client.connect": False,
        "dropped": False,
    }
