"""A SYN for a port pair in TIME-WAIT, on the live kernel and in the model (root).

Linux's tcp_timewait_state_process returns TCP_TW_SYN for a SYN whose sequence
number is after the TIME-WAIT socket's RCV.NXT (or whose timestamp is newer),
when a listener exists: the TIME-WAIT socket goes and the listener answers
(RFC 9293 §3.6 MAY-2, RFC 6191).  The model's edge TIME-WAIT --rcv SYN
[syn_is_newer]--> CLOSED must put the same segments on the wire.  The catalog's
restart-time-wait plays it in its third phase: the client comes back from
port 40081 to the server's port 8081, whose TIME-WAIT socket still holds the pair.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tcplab import scenario as scenarios
from tcplab.lab.runner import Lab
from tcplab.model.sim import Simulation
from tcplab.states import State
from tcplab.timeline import Source
from test_catalog_compare import compare_segments, segments

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root"),
]


def test_a_newer_syn_ends_time_wait_on_the_kernel_and_in_the_model(tmp_path: Path) -> None:
    scenario = scenarios.load("restart-time-wait")
    live = Lab(tmp_path).run(scenario).timeline
    facts = scenarios.check(scenario, live)
    assert facts and all(f.held for f in facts), [f for f in facts if not f.held]
    # Phases 2 and 3 use the same port pair: the third handshake reopens the second's
    # TIME-WAIT, with no RST anywhere.
    syns = [p for p in live.packets() if p.flags == "S"]
    assert len(syns) == 3 and syns[1].sport == syns[2].sport == 40081
    assert syns[1].dport == syns[2].dport == 8081
    assert not any("R" in p.flags for p in live.packets())
    model = Simulation(scenario, profile="linux").run()
    ok, detail = compare_segments(scenario, segments(live), segments(model))
    assert ok, detail
    # On the kernel (sock_diag: the timewait socket left the table) and in the model (the
    # table's edge), TIME-WAIT ends in CLOSED, never in a state of the new connection; then
    # the listener's child completes the handshake.  The last SYN-ACK is a new incarnation's
    # (relative 0 / 1) on both wires.
    for timeline in (live, model):
        changes = [(c.old, c.new) for c in timeline.state_changes("server")
                   if c.source is not Source.INFERRED]  # fmt: skip
        assert (State.TIME_WAIT, State.CLOSED) in changes
        assert not [c for c in changes if c[0] is State.TIME_WAIT and c[1] is not State.CLOSED]
        last = [p for p in timeline.packets() if p.flags == "S."][-1]
        assert (last.rel_seq, last.rel_ack) == (0, 1)
