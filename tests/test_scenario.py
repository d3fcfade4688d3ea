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
        ({"step": [{"actor": "nobody", "call": "close"}]}, "step[1].actor: must be one of"),
        ({"step": [{"actor": "client", "call": "frobnicate"}]}, "unknown client call 'frobnicate'"),
        ({"step": [{"actor": "wire", "call": "close"}]}, "unknown wire call 'close'"),
        ({"step": [{"actor": "wire", "call": "blackhole"}]}, "blackhole() needs 'host'"),
        ({"step": [{"actor": "client", "call": "close", "how": 1}]}, "close() takes no argument"),
        ({"step": [{"actor": "client", "call": "shutdown"}]}, "shutdown() needs 'how'"),
        ({"fault": [{"action": "explode"}]}, "fault[1].action: must be one of"),
        ({"fault": [{"action": "drop", "colour": "red"}]}, "fault[1].colour: unknown key"),
        ({"expect": {"states": {"client": ["HALF_DONE"]}}}, "unknown TCP state 'HALF_DONE'"),
        ({"expect": {"weather": 1}}, "expect.weather: unknown key"),
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


def test_snapshot_and_note_facts() -> None:
    from tcplab.scenario import check
    from tcplab.timeline import Note, Snapshot

    s = parse_scenario(
        {
            "id": "q",
            "step": [{"actor": "client", "call": "connect"}],
            "expect": {
                "snapshot": [
                    {"endpoint": "server", "state": "ESTAB", "rqueue_min": 5},
                    {"endpoint": "client", "state": "TIME_WAIT", "timer": "timewait"},
                ],
                "notes": ["accept queue"],
            },
        }
    )
    t = Timeline()
    t.add(Snapshot(1.0, "server", State.ESTABLISHED, "b:2", "a:1", rqueue=12))
    t.add(Snapshot(2.0, "client", State.TIME_WAIT, "a:1", "b:2", timer="timewait", timer_ms=59000))
    t.add(Note(2.0, "the accept queue is full"))
    assert [r.held for r in check(s, t)] == [True, True, True]
    t2 = Timeline()
    t2.add(Snapshot(1.0, "server", State.ESTABLISHED, "b:2", "a:1", rqueue=4))
    assert [r.held for r in check(s, t2)] == [False, False, False]


def test_snapshot_fact_needs_endpoint() -> None:
    with pytest.raises(InputError, match=r"expect\.snapshot\[1\]\.endpoint: missing"):
        parse_scenario({**MINIMAL, "expect": {"snapshot": [{"state": "LISTEN"}]}})


def test_segment_patterns_flag_counts_max_payload_and_silence() -> None:
    from tcplab.scenario import check

    s = parse_scenario(
        {
            "id": "seg",
            "step": [{"actor": "client", "call": "connect"}],
            "expect": {
                "segments": [
                    {"sender": "client", "flags": "S", "options_contain": "mss 1460"},
                    {"sender": "server", "flags": "P.", "rel_seq": 1, "length": 12},
                    {"sender": "server", "flags": "F.", "rel_seq": 13},
                ],
                "flag_counts": {"S": 1},
                "max_payload": 12,
                "silent_after": ["server.fork_close"],
            },
        }
    )

    def pkt(t: float, sender: str, flags: str, rel_seq: int, length: int, opts: str = "") -> Packet:
        return Packet(t, sender, "x", "a", 1, "b", 2, flags, 0, 0, length, options=opts,
                      rel_seq=rel_seq, rel_ack=1)

    t = Timeline()
    t.add(pkt(0.0, "client", "S", 0, 0, "mss 1460,sackOK"))
    t.add(pkt(0.1, "server", "P.", 1, 12))
    t.add(ApiCall(0.2, "server", "fork_close", (), "0"))
    t.add(ApiCall(0.5, "server", "close", (), "0", started=0.5))
    t.add(pkt(0.5, "server", "F.", 13, 0))
    assert [r.held for r in check(s, t)] == [True, True, True, True]

    t.add(pkt(0.3, "server", "P.", 13, 100))  # a segment between fork_close and close
    t.add(pkt(0.6, "client", "S", 0, 0))
    held = {r.fact: r.held for r in check(s, t)}
    assert held == {"segments": True, "flag_counts.S": False, "max_payload": False,
                    "silent_after.server.fork_close": False}


def test_every_builtin_scenario_loads_and_is_named_after_its_file() -> None:
    from tcplab.scenario import builtin_dir, builtin_ids

    ids = builtin_ids()
    assert len(ids) >= 20
    for scenario_id in ids:
        s = load(scenario_id)
        assert s.id == scenario_id
        assert (builtin_dir() / f"{scenario_id}.toml").exists()
        assert s.explain.get("en") and s.explain.get("zh"), scenario_id
        assert any(
            [s.expect.flags, s.expect.flags_contain, s.expect.states, s.expect.errno,
             s.expect.segments, s.expect.snapshot, s.expect.results]
        ), f"{scenario_id} states no facts"
