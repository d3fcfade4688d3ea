"""The sim against recorded live runs: every catalog scenario, segment by segment.

tests/data/model/live-wire.json holds what `tcplab run <id>` put on the wire on
the kernel tcplab is built on (sender, tcpdump flags, payload length, dropped),
with a digest of the scenario's steps, faults and sysctls at recording time.  The
linux profile must produce the same sequence.  Where a hold rule releases
segments together, the kernel's interleaving of the two senders depends on
scheduling, so only each sender's own order is compared.  A scenario edited since
the recording is skipped until it is recorded again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tcplab.model.sim import Simulation
from tcplab.scenario import Scenario, builtin_ids, load

RECORDED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "model" / "live-wire.json").read_text()
)


def digest(scenario: Scenario) -> str:
    text = repr((scenario.steps, scenario.faults, sorted(scenario.sysctl.items()),
                 scenario.server_port))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def per_sender(wire: list[list[Any]]) -> dict[str, list[list[Any]]]:
    return {name: [w for w in wire if w[0] == name] for name in ("client", "server")}


def test_most_of_the_catalog_was_recorded() -> None:
    assert len(RECORDED["scenarios"]) >= 20


@pytest.mark.parametrize("sid", sorted(RECORDED["scenarios"]))
def test_linux_profile_puts_the_same_segments_on_the_wire(sid: str) -> None:
    if sid not in builtin_ids():
        pytest.skip(f"{sid} is no longer a built-in scenario")
    scenario = load(sid)
    record = RECORDED["scenarios"][sid]
    if digest(scenario) != record["digest"]:
        pytest.skip(f"{sid} changed since the live recording; record it again")
    timeline = Simulation(scenario, profile="linux").run()
    wire = [[p.sender, p.flags, p.length, p.dropped] for p in timeline.packets()]
    if any(rule.action == "hold" for rule in scenario.faults):
        assert per_sender(wire) == per_sender(record["wire"])
    else:
        assert wire == record["wire"]
