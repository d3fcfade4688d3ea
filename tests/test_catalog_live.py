"""The whole catalog, live on this kernel (root, as in CI).

For every built-in scenario, one live run per test session (shared by the
three checks below through a per-worker cache):

a. its ``expect`` facts hold on the kernel's and the snapshots' states;
b. the analyzer, given only the run's pcapng, infers the same per-endpoint
   state path as the kernel reported, up to the scenario's listed
   ``[[extra.inference.limit]]``s;
c. ``tcplab sim`` with the linux profile puts the same segments on the wire
   as the kernel did in this same session, up to the scenario's listed
   ``[[extra.sim_vs_kernel.difference]]``s.

How paths and segments are compared: tests/test_catalog_compare.py.  The
catalog is split into two xdist groups, so with ``-n 2 --dist loadgroup`` at
most two lab runs overlap.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from tcplab import scenario as scenarios
from tcplab.lab.runner import Lab, RunResult
from tcplab.model.sim import Simulation, sim_can_play
from tcplab.timeline import Note
from test_catalog_compare import (
    compare_paths,
    compare_segments,
    inferred_paths,
    kernel_paths,
    model_defect,
    segments,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root"),
]

CATALOG = scenarios.builtin_ids()


def _param(index: int, sid: str) -> Any:
    return pytest.param(sid, marks=pytest.mark.xdist_group(f"catalog-{index % 2}"), id=sid)


PARAMS = [_param(i, sid) for i, sid in enumerate(CATALOG)]


def only(sid: str) -> list[Any]:
    """The one parameter for ``sid``, in its scenario's xdist group (to share its run)."""
    return [_param(i, s) for i, s in enumerate(CATALOG) if s == sid]

_RUNS: dict[str, RunResult] = {}


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("catalog")


def live(sid: str, outdir: Path) -> RunResult:
    """The scenario's live run in this session (run on first use)."""
    if sid not in _RUNS:
        _RUNS[sid] = Lab(outdir).run(scenarios.load(sid))
    return _RUNS[sid]


def test_the_catalog_has_every_seed_experiment() -> None:
    # SCENARIOS.md's 25 rows plus the model engineer's three why-* counterfactuals.
    rows = {
        "handshake-close", "seq-ack-walkthrough", "connect-bound-only", "connect-closed-port",
        "listen-no-accept", "backlog-full", "client-close-only", "both-close", "server-killed",
        "close-unread-data", "linger-abort", "shutdown-rd", "shutdown-wr", "shutdown-rdwr",
        "fork-shared-close", "syn-timeout", "lost-final-ack", "simultaneous-open",
        "simultaneous-close", "restart-time-wait", "half-open-crash", "keepalive-dead-peer",
        "http-keepalive", "mss-and-segmentation", "node-half-open",
    }  # fmt: skip
    assert rows <= set(CATALOG), sorted(rows - set(CATALOG))


@pytest.mark.parametrize("sid", PARAMS)
def test_facts_hold_on_the_kernel(sid: str, outdir: Path) -> None:
    result = live(sid, outdir)
    assert result.facts, f"{sid}: a catalog scenario must state facts"
    failed = [f"{f.fact}: {f.detail}" for f in result.facts if not f.held]
    assert not failed, failed
    assert result.timeline.meta["tracing"] is True
    assert result.pcapng_path is not None and result.pcapng_path.stat().st_size > 0


@pytest.mark.parametrize("sid", PARAMS)
def test_analyzer_infers_the_kernels_states_from_the_pcapng(sid: str, outdir: Path) -> None:
    result = live(sid, outdir)
    assert result.pcapng_path is not None
    kernel = kernel_paths(result.timeline)
    scenario = scenarios.load(sid)
    inferred = inferred_paths(result.pcapng_path, result.timeline, scenario)
    everything = inferred_paths(result.pcapng_path, result.timeline)
    verdicts = compare_paths(scenario, kernel, inferred, everything)
    bad = [f"{v.endpoint}: {v.detail}" for v in verdicts if not v.ok]
    assert not bad, bad


@pytest.mark.parametrize("sid", PARAMS)
def test_sim_puts_the_kernels_segments_on_the_wire(
    sid: str, outdir: Path, request: pytest.FixtureRequest
) -> None:
    scenario = scenarios.load(sid)
    if not sim_can_play(scenario):
        pytest.skip(f"{sid}: the model cannot play it (needs {', '.join(scenario.needs)})")
    defect = model_defect(scenario)
    if defect:
        # strict: once the model is fixed this fails, and the scenario's note must go.
        request.applymarker(pytest.mark.xfail(reason=defect, strict=True))
    result = live(sid, outdir)
    model = Simulation(scenario, profile="linux").run()
    ok, detail = compare_segments(scenario, segments(result.timeline), segments(model))
    assert ok, detail


# -- what the fact format cannot say: timer spacing and events against packets ----------


def _times(result: RunResult, sender: str, flags: str, port: int | None = None) -> list[float]:
    return [p.time for p in result.timeline.packets()
            if p.sender == sender and p.flags == flags
            and (port is None or port in (p.sport, p.dport))]  # fmt: skip


@pytest.mark.parametrize("sid", only("syn-timeout"))
def test_syn_retransmissions_back_off_exponentially(sid: str, outdir: Path) -> None:
    # tcp_syn_linear_timeouts = 0: RFC 6298 §5.5 doubling from the 1 s initial RTO (§2.1).
    result = live(sid, outdir)
    t = _times(result, "client", "S")
    assert len(t) == 3
    gaps = [b - a for a, b in itertools.pairwise(t)]
    assert 0.9 < gaps[0] < 1.5 and 1.8 < gaps[1] < 2.7, gaps
    connect = next(c for c in result.timeline.api_calls("client") if c.call == "connect")
    assert connect.started is not None
    # ETIMEDOUT after the last retry's doubled timeout: 1 + 2 + 4 s.
    assert 6.5 < connect.time - connect.started < 8.5


@pytest.mark.parametrize("sid", only("backlog-full"))
def test_synack_retransmissions_back_off(sid: str, outdir: Path) -> None:
    result = live(sid, outdir)
    synacks = [p for p in result.timeline.packets() if p.sender == "server" and p.flags == "S."]
    port = synacks[-1].dport  # c3: the one whose SYN-ACK is repeated
    t = [p.time for p in synacks if p.dport == port]
    assert len(t) == 3
    # The request socket's timer: 1 s (TCP_TIMEOUT_INIT), then doubled.
    gaps = [b - a for a, b in itertools.pairwise(t)]
    assert 0.9 < gaps[0] < 1.5 and 1.8 < gaps[1] < 2.7, gaps


@pytest.mark.parametrize("sid", only("keepalive-dead-peer"))
def test_keepalive_probes_come_every_keepintvl(sid: str, outdir: Path) -> None:
    result = live(sid, outdir)
    probes = [p for p in result.timeline.packets()
              if p.sender == "client" and p.flags == "." and p.dropped]  # fmt: skip
    assert len(probes) == 2
    # RFC 1122 §4.2.3.6: the probe carries seq = SND.NXT - 1 (relative 0 after the handshake).
    assert {p.rel_seq for p in probes} == {0}
    assert 0.8 < probes[1].time - probes[0].time < 1.6


@pytest.mark.parametrize("sid", only("node-half-open"))
def test_node_events_land_against_the_packets(sid: str, outdir: Path) -> None:
    result = live(sid, outdir)
    notes = {n.text: n.time for n in result.timeline.events if isinstance(n, Note)}
    client_fin = _times(result, "client", "F.")[0]
    server_data = next(p.time for p in result.timeline.packets()
                       if p.sender == "server" and p.length == 3)  # fmt: skip
    server_fin = _times(result, "server", "F.")[0]
    # The server's 'end' fires once the client's FIN arrived, before it writes "thx";
    # the client's 'end' once the server's FIN arrived; 'close' comes after 'end' on both.
    assert client_fin < notes["server prints: event end"] < server_data
    assert server_fin < notes["client prints: event end"] < notes["client prints: event close"]
    assert notes["server prints: event end"] < notes["server prints: event close"]
