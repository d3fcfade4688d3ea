"""snapshot_changes on hand-built sock_diag sequences, and live (root) with and without tracefs.

A snapshot row is one socket by its cookie, not by its four-tuple: a SYN that
reopens a four-tuple in TIME-WAIT (tcp_timewait_state_process -> TCP_TW_SYN;
RFC 9293 §3.6 MAY-2, RFC 6191) leaves a new socket under the same four-tuple.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tcplab import scenario as scenarios
from tcplab.lab.runner import Lab
from tcplab.lab.timeline_build import Observation, snapshot_changes
from tcplab.states import State
from tcplab.timeline import Source

PAIR = ("10.0.0.2", 8081, "10.0.0.1", 40081)
OLD, NEW = 0x1111, 0x2222


def _pairs(changes: list) -> list[tuple[State | None, State]]:  # type: ignore[type-arg]
    return [(c.old, c.new) for c in changes]


def _reopened() -> list[Observation]:
    """The server's side of PAIR: a connection ends in TIME-WAIT, then a new socket has PAIR."""
    return [
        Observation(1.0, "server", PAIR, State.ESTABLISHED, "", 0, OLD, 77),
        Observation(1.1, "server", PAIR, State.FIN_WAIT_2, "timewait", 60000, OLD, 0),
        Observation(1.2, "server", PAIR, State.TIME_WAIT, "timewait", 59000, OLD, 0),
        Observation(1.5, "server", PAIR, State.ESTABLISHED, "", 0, NEW, 88),
    ]


def test_a_reopened_four_tuple_is_a_leaving_and_a_new_socket_without_tracefs() -> None:
    changes = snapshot_changes(_reopened(), traced=False)
    assert _pairs(changes) == [
        (None, State.ESTABLISHED),
        (State.ESTABLISHED, State.FIN_WAIT_2),
        (State.FIN_WAIT_2, State.TIME_WAIT),
        (State.TIME_WAIT, State.CLOSED),
        (State.CLOSED, State.ESTABLISHED),
    ]
    assert all(c.source is Source.SNAPSHOT and c.endpoint == "server" for c in changes)
    # No kernel events: the leaving is dated by the snapshot that saw the new socket.
    assert changes[-2].time == changes[-1].time == 1.5


def test_with_tracefs_only_the_timewait_socket_leaving_is_reported() -> None:
    # The tracepoint reports the new socket's own states; its first event dates the leaving.
    changes = snapshot_changes(_reopened(), traced=True, kernel_times={PAIR: [1.0, 1.34, 1.36]})
    assert _pairs(changes) == [(State.FIN_WAIT_2, State.TIME_WAIT), (State.TIME_WAIT, State.CLOSED)]
    assert changes[-1].time == pytest.approx(1.34 - 1e-6)
    assert "left the table" in changes[-1].cause


def test_the_old_four_tuple_bug_is_gone() -> None:
    # Keyed by four-tuple alone, the sequence read TIME-WAIT -> ESTABLISHED.
    for traced in (False, True):
        assert (State.TIME_WAIT, State.ESTABLISHED) not in _pairs(
            snapshot_changes(_reopened(), traced=traced)
        )


def test_a_request_socket_replaced_by_its_child_is_one_connection() -> None:
    # tcp_check_req: the request mini-socket (its own cookie) gives way to the child.
    observations = [
        Observation(1.0, "server", PAIR, State.SYN_RECEIVED, "on", 1000, OLD, 0),
        Observation(1.1, "server", PAIR, State.ESTABLISHED, "", 0, NEW, 88),
    ]
    assert _pairs(snapshot_changes(observations, traced=False)) == [
        (None, State.SYN_RECEIVED), (State.SYN_RECEIVED, State.ESTABLISHED),
    ]  # fmt: skip


def test_rows_without_cookies_fall_back_to_the_four_tuple() -> None:
    observations = [
        Observation(1.0, "server", PAIR, State.TIME_WAIT, "timewait", 100),
        Observation(1.2, "server", PAIR, None),
    ]
    assert _pairs(snapshot_changes(observations, traced=True)) == [
        (State.TIME_WAIT, State.CLOSED)
    ]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root")
def test_live_time_wait_reopened_without_tracefs(tmp_path: Path) -> None:
    # restart-time-wait's phase 3 reopens the server's TIME-WAIT of 8081 <-> 40081.  (The
    # traced run is tests/test_model_live_time_wait_syn.py.)
    scenario = scenarios.load("restart-time-wait")
    live = Lab(tmp_path, tracing=False).run(scenario).timeline
    changes = [c for c in live.state_changes("server") if c.source is Source.SNAPSHOT]
    pairs = _pairs(changes)
    assert (State.TIME_WAIT, State.CLOSED) in pairs
    assert not [p for p in pairs if p[0] is State.TIME_WAIT and p[1] is not State.CLOSED]
    # The new socket appears after the old one left.
    left = pairs.index((State.TIME_WAIT, State.CLOSED), pairs.index((State.FIN_WAIT_2,
                                                                     State.TIME_WAIT)))
    assert pairs[left + 1][0] is State.CLOSED and pairs[left + 1][1] in (
        State.SYN_RECEIVED, State.ESTABLISHED,
    )  # fmt: skip
