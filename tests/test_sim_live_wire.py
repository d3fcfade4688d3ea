"""The sim against recorded live runs: every catalog scenario, segment by segment.

tests/data/model/live-wire.json holds what `tcplab run <id>` put on the wire on
the kernel tcplab is built on (sender, tcpdump flags, payload length, dropped),
with a digest of the scenario's steps, faults and sysctls at recording time.  The
linux profile must produce the same sequence.  Where a hold rule releases
segments together, the kernel's interleaving of the two senders depends on
scheduling, so only each sender's own order is compared.  A scenario that lists a
``bulk`` sim-vs-kernel difference (``[[extra.sim_vs_kernel.difference]]``, as
tests/test_catalog_live.py reads it) has its transfer compared as totals: the
sender's bytes (a retransmission would add to them) and largest segment; the
receiver's pure ACKs during and right after the transfer depend on how fast the
live wire delivers, and the model has no congestion control.  A scenario edited
since the recording is skipped until it is recorded again.
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


def has_bulk_difference(scenario: Scenario) -> bool:
    section = scenario.extra.get("sim_vs_kernel", {})
    diffs = section.get("difference", []) if isinstance(section, dict) else []
    return any(isinstance(d, dict) and d.get("kind") == "bulk" for d in diffs)


def bulk_totals(wire: list[list[Any]]) -> list[Any]:
    """The transfer (first to last data segment, and the receiver's pure ACKs that
    trail it) as one entry: (sender, bytes sent, largest segment); the rest as is."""
    data = [i for i, w in enumerate(wire) if w[2] > 0]
    if not data:
        return list(wire)
    first, last = data[0], data[-1]
    sender = wire[first][0]
    end = last + 1
    while end < len(wire) and wire[end][0] != sender and wire[end][1] == "." \
            and wire[end][2] == 0:
        end += 1
    middle = wire[first:end]
    sent = [w for w in middle if w[0] == sender]
    total = ["bulk", sender, sum(w[2] for w in sent), max(w[2] for w in sent)]
    answers = [w for w in middle if w[0] != sender and not (w[1] == "." and w[2] == 0)]
    return [*wire[:first], total, *answers, *wire[end:]]


def test_bulk_totals_count_a_retransmission_and_ignore_the_receivers_acks() -> None:
    head = [["client", "S", 0, False], ["server", "S.", 0, False], ["client", ".", 0, False]]
    tail = [["client", "F.", 0, False], ["server", ".", 0, False],
            ["server", "F.", 0, False], ["client", ".", 0, False]]
    once = [["client", ".", 1448, False], ["client", "P.", 100, False],
            ["server", ".", 0, False]]
    acked_twice = [["client", ".", 1448, False], ["server", ".", 0, False],
                   ["client", ".", 100, False], ["server", ".", 0, False],
                   ["server", ".", 0, False]]
    again = [*once[:2], ["client", ".", 1448, False], ["server", ".", 0, False]]
    assert bulk_totals(head + once + tail) == [*head, ["bulk", "client", 1548, 1448], *tail]
    assert bulk_totals(head + acked_twice + tail) == bulk_totals(head + once + tail)
    assert bulk_totals(head + again + tail) != bulk_totals(head + once + tail)


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
    elif has_bulk_difference(scenario):
        assert bulk_totals(wire) == bulk_totals(record["wire"])
    else:
        assert wire == record["wire"]
