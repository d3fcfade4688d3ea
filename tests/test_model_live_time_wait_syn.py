"""A SYN for a port pair in TIME-WAIT, on the live kernel and in the model (root).

Linux's tcp_timewait_state_process returns TCP_TW_SYN for a SYN whose sequence
number is after the TIME-WAIT socket's RCV.NXT (or whose timestamp is newer),
when a listener exists: the TIME-WAIT socket goes and the listener answers
(RFC 9293 §3.6 MAY-2, RFC 6191).  The model's edge TIME-WAIT --rcv SYN
[syn_is_newer]--> CLOSED must put the same segments on the wire.  The catalog
has no scenario for this (tests/data/model/time-wait-syn.toml is the model's
own); restart-time-wait's third phase connects from a fresh port.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tcplab import scenario as scenarios
from tcplab.lab.runner import Lab
from tcplab.model.sim import Simulation
from tcplab.states import State
from test_catalog_compare import compare_segments, segments

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root"),
]

SCENARIO = Path(__file__).parent / "data" / "model" / "time-wait-syn.toml"


def test_a_newer_syn_ends_time_wait_on_the_kernel_and_in_the_model(tmp_path: Path) -> None:
    scenario = scenarios.load(str(SCENARIO))
    live = Lab(tmp_path).run(scenario).timeline
    facts = scenarios.check(scenario, live)
    assert facts and all(f.held for f in facts), [f for f in facts if not f.held]
    # The second handshake reuses the port pair: same client port, no RST anywhere.
    syns = [p for p in live.packets() if p.flags == "S"]
    assert len(syns) == 2 and syns[0].sport == syns[1].sport == 40003
    assert not any("R" in p.flags for p in live.packets())
    model = Simulation(scenario, profile="linux").run()
    ok, detail = compare_segments(scenario, segments(live), segments(model))
    assert ok, detail
    # In the model the TIME-WAIT connection takes the table's edge, then the listener's child
    # completes the handshake; the last SYN-ACK is a new incarnation's (relative 0 / 1), as
    # on the kernel's wire.
    changes = [(c.old, c.new) for c in model.state_changes("server")]
    assert (State.TIME_WAIT, State.CLOSED) in changes
    for timeline in (live, model):
        last = [p for p in timeline.packets() if p.flags == "S."][-1]
        assert (last.rel_seq, last.rel_ack) == (0, 1)
