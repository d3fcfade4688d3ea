"""The wire's fault program, sans-IO: segments in, release decisions out."""

from __future__ import annotations

import pytest

from tcplab.errors import InputError
from tcplab.lab.faults import FaultProgram, Segment
from tcplab.scenario import FaultRule

C, S = "client", "server"


def seg(sender: str, flags: str, seq: int, ack: int, length: int = 0) -> Segment:
    return Segment(sender, flags, seq, ack, length)


def close_sequence() -> list[Segment]:
    """client ISN 100, server ISN 500; the client closes first (three-segment close)."""
    return [
        seg(C, "S", 100, 0),
        seg(S, "S.", 500, 101),
        seg(C, ".", 101, 501),
        seg(C, "F.", 101, 501),
        seg(S, "F.", 501, 102),
        seg(C, ".", 102, 502),  # the final ACK
        seg(S, "F.", 501, 102),  # retransmitted FIN
        seg(C, ".", 102, 502),  # re-ACKed from TIME-WAIT
    ]


def play(program: FaultProgram[int], segments: list[Segment]) -> list[tuple[int, bool]]:
    out: list[tuple[int, bool]] = []
    for i, s in enumerate(segments):
        out.extend((r.token, r.dropped) for r in program.on_packet(float(i), s, i))
    return out


def test_final_ack_drops_only_the_first_final_ack() -> None:
    program: FaultProgram[int] = FaultProgram(
        (FaultRule("drop", sender="client", flags=".", when="final-ack", nth=1),)
    )
    out = play(program, close_sequence())
    assert [i for i, dropped in out if dropped] == [5]
    assert len(out) == 8


def test_nth_minus_one_is_played_as_the_final_ack() -> None:
    rule = FaultRule("drop", sender="client", flags=".", nth=-1)
    program: FaultProgram[int] = FaultProgram((rule,))
    assert [i for i, dropped in play(program, close_sequence()) if dropped] == [5]


def test_handshake_ack_is_not_a_final_ack() -> None:
    program: FaultProgram[int] = FaultProgram(
        (FaultRule("drop", sender="client", flags=".", when="final-ack", nth=0),)
    )
    dropped = [i for i, d in play(program, close_sequence()) if d]
    assert 2 not in dropped
    assert dropped == [5, 7]


def test_sent_fin_and_got_fin_predicates() -> None:
    sent: FaultProgram[int] = FaultProgram((FaultRule("drop", sender="client", when="sent-fin"),))
    assert [i for i, d in play(sent, close_sequence()) if d] == [5, 7]
    got: FaultProgram[int] = FaultProgram((FaultRule("drop", sender="server", when="got-fin"),))
    # The server's FIN (index 4) acknowledges the client's FIN, so later server packets match.
    assert [i for i, d in play(got, close_sequence()) if d] == [6]


def test_hold_releases_together_when_enough_are_held() -> None:
    program: FaultProgram[str] = FaultProgram((FaultRule("hold", flags="F.", release_after=2),))
    assert program.on_packet(0.0, seg(C, "F.", 1, 1), "fin-c") == []
    released = program.on_packet(0.01, seg(S, "F.", 1, 1), "fin-s")
    assert [r.token for r in released] == ["fin-c", "fin-s"]
    assert all(r.at == 0.01 and not r.dropped for r in released)


def test_hold_times_out() -> None:
    program: FaultProgram[str] = FaultProgram(
        (FaultRule("hold", flags="F.", release_after=2, seconds=0.5),)
    )
    assert program.on_packet(1.0, seg(C, "F.", 1, 1), "fin") == []
    assert program.next_deadline() == 1.5
    assert program.tick(1.2) == []
    assert [r.token for r in program.tick(1.5)] == ["fin"]
    assert program.next_deadline() is None


def test_delay_and_duplicate() -> None:
    program: FaultProgram[str] = FaultProgram(
        (FaultRule("delay", flags="S", seconds=0.3), FaultRule("duplicate", flags="S."))
    )
    (delayed,) = program.on_packet(2.0, seg(C, "S", 1, 0), "syn")
    assert delayed.at == pytest.approx(2.3)
    assert [r.token for r in program.on_packet(2.0, seg(S, "S.", 9, 2), "synack")] == [
        "synack",
        "synack",
    ]


def test_blackhole_window_drops_both_directions() -> None:
    program: FaultProgram[int] = FaultProgram(
        (FaultRule("blackhole", sender="server", after=1.0, before=2.0),)
    )
    assert not program.on_packet(0.5, seg(C, "P.", 1, 1, 10), 0)[0].dropped
    assert program.on_packet(1.5, seg(C, "P.", 11, 1, 10), 1)[0].dropped
    assert program.on_packet(1.6, seg(S, ".", 1, 21), 2)[0].dropped
    assert not program.on_packet(2.0, seg(C, "P.", 11, 1, 10), 3)[0].dropped


def test_payload_and_flags_must_match_exactly() -> None:
    program: FaultProgram[int] = FaultProgram((FaultRule("drop", flags="P.", payload=True, nth=2),))
    out = [program.on_packet(0.0, seg(C, f, 1, 1, n), i)[0].dropped
           for i, (f, n) in enumerate([("P.", 5), (".", 0), ("P.", 5), ("P.", 5)])]  # fmt: skip
    assert out == [False, False, True, False]


def test_flush_releases_everything_still_held() -> None:
    program: FaultProgram[str] = FaultProgram((FaultRule("hold", flags="F.", release_after=3),))
    program.on_packet(0.0, seg(C, "F.", 1, 1), "a")
    assert [r.token for r in program.flush(1.0)] == ["a"]


@pytest.mark.parametrize(
    "rule, problem",
    [
        (FaultRule("drop", when="sometime"), "when='sometime'"),
        (FaultRule("drop", nth=-2), "nth=-2"),
        (FaultRule("hold", release_after=0), "release_after"),
    ],
)
def test_bad_rules_are_input_errors(rule: FaultRule, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        FaultProgram((rule,))


def test_scenario_file_rejects_an_unknown_when() -> None:
    from tcplab.scenario import parse_scenario

    data = {
        "id": "x",
        "step": [{"actor": "client", "call": "close"}],
        "fault": [{"action": "drop", "when": "someday"}],
    }
    with pytest.raises(InputError, match=r"fault\[1\]\.when: must be one of"):
        parse_scenario(data, "x.toml")


def test_a_hold_rule_is_spent_after_its_release() -> None:
    program: FaultProgram[str] = FaultProgram((FaultRule("hold", flags="F.", release_after=2),))
    program.on_packet(0.0, seg(C, "F.", 1, 1), "a")
    assert [r.token for r in program.on_packet(0.1, seg(S, "F.", 1, 2), "b")] == ["a", "b"]
    # A retransmitted FIN later goes straight through.
    (again,) = program.on_packet(0.5, seg(S, "F.", 1, 2), "c")
    assert again.token == "c" and not again.dropped


def test_wire_steps_blackhole_heal_and_release() -> None:
    program: FaultProgram[str] = FaultProgram((FaultRule("hold", flags="S", release_after=5),))
    assert program.on_packet(0.0, seg(C, "S", 1, 0), "syn") == []
    assert [r.token for r in program.release_all(0.2)] == ["syn"]
    program.set_blackhole("server", True)
    (lost,) = program.on_packet(0.3, seg(C, "P.", 2, 1, 4), "data")
    assert lost.dropped and lost.note == "the wire drops everything to and from the server"
    program.set_blackhole("server", False)
    assert not program.on_packet(0.4, seg(C, "P.", 2, 1, 4), "again")[0].dropped
