"""The linux profile against Linux itself: segment sequences captured on this kernel.

tests/data/model/loopback-*.txt are ``tcpdump -nn`` of small socket programs
(tests/data/model/loopback_experiments.py.txt) run over 127.0.0.1 on the
machine tcplab is built on, with ~1 ms between the calls, which is the sim's
``step_gap``.  The sim must produce the same (sender, flags, length) sequence.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tcplab.model.sim import Simulation
from tcplab.scenario import parse_scenario

DATA = Path(__file__).parent / "data" / "model"
SERVER_PORT = "47123|47124"
LINE = re.compile(r"IP \S+\.(\d+) > \S+\.(\d+): Flags \[([^\]]+)\].* length (\d+)")


def kernel_sequence(name: str) -> list[tuple[str, str, int]]:
    out = []
    for line in (DATA / f"loopback-{name}.txt").read_text().splitlines():
        m = LINE.search(line)
        assert m, line
        sender = "server" if re.fullmatch(SERVER_PORT, m.group(1)) else "client"
        out.append((sender, m.group(3), int(m.group(4))))
    return out


OPEN: list[dict[str, Any]] = [
    {"actor": "server", "call": "listen"},
    {"actor": "client", "call": "connect"},
    {"actor": "server", "call": "accept"},
    {"actor": "client", "call": "sleep", "seconds": 0.005},
]
STEPS: dict[str, list[dict[str, Any]]] = {
    # server writes 12 bytes and closes; client reads to EOF and closes
    "walk": [
        {"actor": "server", "call": "send", "data": "hello client"},
        {"actor": "server", "call": "close"},
        {"actor": "client", "call": "recv", "until": "eof"},
        {"actor": "client", "call": "close"},
    ],
    # an echo, then the client closes first: the three-segment close
    "both": [
        {"actor": "client", "call": "send", "data": "hello"},
        {"actor": "server", "call": "recv"},
        {"actor": "server", "call": "send", "data": "hello"},
        {"actor": "client", "call": "recv"},
        {"actor": "client", "call": "close"},
        {"actor": "server", "call": "recv"},
        {"actor": "server", "call": "close"},
    ],
    # the server closes while the client is blocked in recv()
    "killsim": [
        {"actor": "client", "call": "recv", "background": True},
        {"actor": "server", "call": "close"},
        {"actor": "client", "call": "close"},
    ],
    # shutdown(SHUT_RDWR), then the peer's data is answered with a bare RST
    "shutdown-rdwr": [
        {"actor": "client", "call": "shutdown", "how": "SHUT_RDWR"},
        {"actor": "server", "call": "recv"},
        {"actor": "server", "call": "send", "data": "late"},
        {"actor": "server", "call": "sleep", "seconds": 0.2},
        {"actor": "server", "call": "send", "data": "again"},
    ],
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_linux_profile_matches_the_kernel_segment_by_segment(name: str) -> None:
    scenario = parse_scenario({"id": name, "step": OPEN + STEPS[name]})
    timeline = Simulation(scenario, profile="linux", options={"step_gap": 0.001}).run()
    got = [(p.sender, p.flags, p.length) for p in timeline.packets()]
    assert got == kernel_sequence(name)


def test_shutdown_rdwr_second_send_is_epipe_like_the_kernel() -> None:
    scenario = parse_scenario({"id": "rdwr", "step": OPEN + STEPS["shutdown-rdwr"]})
    timeline = Simulation(scenario, options={"step_gap": 0.001}).run()
    sends = [c for c in timeline.api_calls("server") if c.call == "send"]
    assert [(c.result, c.errno) for c in sends] == [("4", None), (None, "EPIPE")]
