"""Property: over a lossy, duplicating, reordering network two model endpoints deliver both
byte streams intact and in order, and both end CLOSED (after TIME-WAIT) once both close.
Virtual time only."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcplab.model.sim import Simulation
from tcplab.scenario import parse_scenario
from tcplab.states import State


def _scenario(client_bytes: int, server_bytes: int) -> dict[str, object]:
    return {
        "id": "property",
        "step": [
            {"actor": "server", "call": "listen"},
            {"actor": "client", "call": "connect"},
            {"actor": "server", "call": "accept"},
            {"actor": "client", "call": "send", "size": client_bytes},
            {"actor": "server", "call": "send", "size": server_bytes},
            {"actor": "server", "call": "recv", "until": "size", "size": client_bytes},
            {"actor": "client", "call": "recv", "until": "size", "size": server_bytes},
            {"actor": "client", "call": "close"},
            {"actor": "server", "call": "recv", "until": "eof"},
            {"actor": "server", "call": "close"},
        ],
    }


def _expected(size: int) -> str:
    return repr(bytes(ord("a") + i % 26 for i in range(size)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    client_bytes=st.integers(1, 9000),
    server_bytes=st.integers(1, 9000),
    loss=st.sampled_from([0.0, 0.05, 0.15]),
    duplicate=st.sampled_from([0.0, 0.1, 0.3]),
    reorder=st.sampled_from([0.0, 0.2, 0.5]),
    seed=st.integers(0, 2**32 - 1),
    profile=st.sampled_from(["linux", "rfc"]),
)
def test_streams_arrive_intact_and_both_end_closed(
    client_bytes: int, server_bytes: int, loss: float, duplicate: float, reorder: float,
    seed: int, profile: str,
) -> None:
    sim = Simulation(
        parse_scenario(_scenario(client_bytes, server_bytes)),
        profile=profile,
        seed=seed,
        options={"loss": loss, "duplicate": duplicate, "reorder": reorder},
    )
    timeline = sim.run()
    reads = {(c.actor, c.args): c.result for c in timeline.api_calls() if c.call == "recv"}
    server_read = reads[("server", ("until='size'", f"size={client_bytes}"))]
    client_read = reads[("client", ("until='size'", f"size={server_bytes}"))]
    assert server_read == _expected(client_bytes)
    assert client_read == _expected(server_bytes)
    assert reads[("server", ("until='eof'",))] == "b''"
    sim.run_to_the_end()
    for host in sim.hosts.values():
        assert [c.state for c in host.connections] == [State.CLOSED]
    assert sim.net.in_flight == 0
