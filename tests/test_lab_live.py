"""The live lab end to end, as root: real namespaces, TUN wire, tracefs, sock_diag.

The kernel is the oracle: every built-in scenario's ``expect`` facts must
hold on this machine's Linux.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcplab import scenario as scenarios
from tcplab.lab.runner import Lab, RunResult
from tcplab.states import State
from tcplab.timeline import Note, Packet, Source, StateChange

pytestmark = [
    pytest.mark.root,
    pytest.mark.xdist_group("lab"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root"),
]

LAB_SCENARIOS = ["handshake-close", "both-close", "shutdown-wr", "lost-final-ack",
                 "simultaneous-close"]  # fmt: skip
ACTORS = Path(__file__).parent / "actors"


def run(scenario_id: str, tmp_path: Path, **kwargs: bool) -> RunResult:
    return Lab(tmp_path, **kwargs).run(scenarios.load(scenario_id))


@pytest.mark.parametrize("scenario_id", LAB_SCENARIOS)
def test_scenario_facts_hold_on_linux(scenario_id: str, tmp_path: Path) -> None:
    result = run(scenario_id, tmp_path)
    failed = [f"{f.fact}: {f.detail}" for f in result.facts if not f.held]
    assert not failed, failed
    assert result.facts, "a built-in scenario must state facts"
    assert result.timeline.meta["tracing"] is True
    assert result.pcapng_path is not None and result.pcapng_path.stat().st_size > 0
    assert result.seconds < 6


def test_handshake_close_timeline(tmp_path: Path) -> None:
    result = run("handshake-close", tmp_path)
    tl = result.timeline
    packets = tl.packets()
    assert [p.flags for p in packets][:3] == ["S", "S.", "."]
    assert all(not p.dropped for p in packets)
    data = [p for p in packets if p.length]
    assert [(p.sender, p.rel_seq, p.rel_ack, p.length) for p in data] == [
        ("client", 1, 1, 12),
        ("server", 1, 13, 12),
    ]
    # Every kernel transition of both endpoints, in order, from the tracepoint.
    kernel = {
        ep: [(c.old, c.new) for c in tl.state_changes(ep, Source.KERNEL)]
        for ep in ("client", "server")
    }
    assert kernel["client"] == [
        (State.CLOSED, State.SYN_SENT),
        (State.SYN_SENT, State.ESTABLISHED),
        (State.ESTABLISHED, State.FIN_WAIT_1),
        (State.FIN_WAIT_1, State.FIN_WAIT_2),
    ]
    assert kernel["server"] == [
        (State.CLOSED, State.LISTEN),
        (State.LISTEN, State.SYN_RECEIVED),
        (State.SYN_RECEIVED, State.ESTABLISHED),
        (State.ESTABLISHED, State.CLOSE_WAIT),
        (State.CLOSE_WAIT, State.LAST_ACK),
        (State.LAST_ACK, State.CLOSED),
    ]
    # TIME-WAIT comes from sock_diag, at the moment the kernel handed the socket over.
    kernel_view = [c for c in tl.state_changes() if c.source is not Source.INFERRED]
    (tw,) = [c for c in kernel_view if c.endpoint == "client" and c.new is State.TIME_WAIT]
    assert tw.source is Source.SNAPSHOT and tw.old is State.FIN_WAIT_2
    # One clock: each state change sits between the packets that caused it.
    def first(flags: str, sender: str) -> Packet:
        return next(p for p in packets if p.flags == flags and p.sender == sender)

    def change(ep: str, new: State) -> StateChange:
        return next(c for c in kernel_view if c.endpoint == ep and c.new is new)

    syn, synack = first("S", "client"), first("S.", "server")
    client_fin, server_fin = first("F.", "client"), first("F.", "server")
    final_ack = packets[-1]
    assert change("client", State.SYN_SENT).time < syn.time
    assert syn.time < change("client", State.ESTABLISHED).time
    assert synack.time < change("client", State.ESTABLISHED).time + 0.005
    assert client_fin.time < change("server", State.CLOSE_WAIT).time
    assert change("client", State.FIN_WAIT_1).time < client_fin.time
    # TIME-WAIT begins once the server's FIN has arrived.  Linux sends the final
    # ACK first and hands the socket to its timewait mini-socket after (tcp_fin(),
    # FIN_WAIT2: tcp_send_ack, then tcp_time_wait), so on a loaded machine the
    # hand-off can be stamped a few milliseconds after the ACK reached the wire.
    assert server_fin.time - 0.005 < tw.time < final_ack.time + 0.05
    assert final_ack.time < change("server", State.CLOSED).time
    # API calls share the clock: connect() returns after the SYN-ACK.
    (connect,) = tl.api_calls("client")[:1]
    assert connect.call == "connect" and connect.started is not None
    assert connect.started < syn.time and synack.time < connect.time + 0.005
    # The analyzer's reading of the same packets is merged in, marked as inferred.
    assert tl.state_path("client", Source.INFERRED) and tl.state_path("server", Source.INFERRED)
    # The files: JSON round-trips, tshark reads the pcapng and shows the call comments.
    assert result.json_path is not None
    assert type(tl).from_json(result.json_path.read_text()) == tl
    # The pcapng is on the wall clock: the timeline's monotonic time + the run's offset.
    from tcplab.capture import open_capture

    assert result.pcapng_path is not None
    with open_capture(result.pcapng_path) as reader:
        first_record = next(iter(reader))
    offset = tl.meta["realtime_offset"]
    assert abs(first_record.time_ns / 1e9 - (packets[0].time + offset)) < 1e-6
    assert abs(first_record.time_ns / 1e9 - time.time()) < 60
    if shutil.which("tshark"):
        out = subprocess.run(
            ["tshark", "-r", str(result.pcapng_path), "-T", "fields", "-e", "frame.comment"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "client: connect() = 0" in out
        assert "client: close() = 0" in out
        assert len(out.splitlines()) == len(packets)


def test_lost_final_ack_is_answered_from_time_wait(tmp_path: Path) -> None:
    tl = run("lost-final-ack", tmp_path).timeline
    packets = tl.packets()
    (dropped,) = [p for p in packets if p.dropped]
    fins = [p for p in packets if p.flags == "F." and p.sender == "server"]
    assert len(fins) == 2 and fins[0].seq == fins[1].seq
    gap = fins[1].time - fins[0].time
    assert 0.15 < gap < 1.5, gap  # Linux's RTO floor is 200 ms
    reack = packets[packets.index(fins[1]) + 1]
    assert reack.sender == "client" and reack.flags == "." and not reack.dropped
    assert reack.ack == dropped.ack
    tw = next(c for c in tl.state_changes("client", Source.SNAPSHOT) if c.new is State.TIME_WAIT)
    assert tw.time < fins[1].time
    # The re-ACK restarted TIME-WAIT's 60 s timer (RFC 9293 §3.10.7.4): sock_diag's
    # deadline (snapshot time + time left) moved later by about the FIN's RTO.
    deadlines = [
        (s.time, s.time + s.timer_ms / 1000)
        for s in tl.snapshots("client")
        if s.state is State.TIME_WAIT and s.timer == "timewait"
    ]
    before = [d for t, d in deadlines if t < fins[1].time]
    after = [d for t, d in deadlines if t > reack.time]
    assert before and after
    assert after[-1] - before[0] > 0.1
    assert any("retransmission" in n.text for n in tl.events if isinstance(n, Note))


def test_loopback_mode(tmp_path: Path) -> None:
    result = run("handshake-close", tmp_path, loopback=True)
    failed = [f"{f.fact}: {f.detail}" for f in result.facts if not f.held]
    assert not failed, failed
    packets = result.timeline.packets()
    # lo shows each packet twice; the outgoing copy is dropped, so each segment is once.
    assert len({(p.sender, p.seq, p.ack, p.flags, p.length) for p in packets}) == len(packets)
    assert {p.sender for p in packets} == {"client", "server"}
    assert result.timeline.meta["mode"] == "loopback"


def test_snapshots_only_without_tracefs(tmp_path: Path) -> None:
    result = run("both-close", tmp_path, tracing=False)
    tl = result.timeline
    assert tl.meta["tracing"] is False
    assert not tl.state_changes(source=Source.KERNEL)
    assert State.TIME_WAIT in tl.state_path("client", Source.SNAPSHOT)
    assert State.CLOSE_WAIT in tl.state_path("server", Source.SNAPSHOT)


def test_external_programs_as_actors(tmp_path: Path) -> None:
    from tcplab.lab.external import run_external

    if not shutil.which("strace"):
        pytest.skip("strace not installed (scripts/setup.sh installs it)")
    server = f"{sys.executable} {ACTORS / 'echo_server.py'}"
    client = f"{sys.executable} {ACTORS / 'echo_client.py'}"
    result = run_external(Lab(tmp_path), server, client, 8080)
    tl = result.timeline
    server_calls = [c.call for c in tl.api_calls("server")]
    client_calls = [c.call for c in tl.api_calls("client")]
    for name in ("socket", "bind", "listen"):
        assert name in server_calls
    assert any(c.startswith("accept") for c in server_calls)
    assert "connect" in client_calls and "shutdown" in client_calls
    assert [p.flags for p in tl.packets()][:3] == ["S", "S.", "."]
    assert State.TIME_WAIT in tl.state_path("client")
    assert any("client exited with status 0" in e.text for e in tl.events if isinstance(e, Note))
    # The syscalls are on the lab's clock: connect() starts before the SYN leaves.
    connect = next(c for c in tl.api_calls("client") if c.call == "connect")
    syn = tl.packets()[0]
    assert connect.started is not None and connect.started < syn.time < connect.time + 0.01


def test_node_half_open_seed_example(tmp_path: Path) -> None:
    if not (shutil.which("node") and shutil.which("strace")):
        pytest.skip("node/strace not installed (scripts/setup.sh installs them)")
    result = run("node-half-open", tmp_path)
    tl = result.timeline
    notes = [e for e in tl.events if isinstance(e, Note)]
    story = ([p.label() for p in tl.packets()], [n.text for n in notes],
             [c.describe() for c in tl.api_calls()])  # fmt: skip
    failed = [f"{f.fact}: {f.detail}" for f in result.facts if not f.held]
    assert not failed, (failed, story)
    printed = [e.text for e in notes if "prints: event" in e.text]
    assert any(t.startswith("server prints: event end") for t in printed), story
    assert any(t.startswith("client prints: event data thx") for t in printed), story
    # Node's 'end' on the server follows the client's FIN on the wire.
    client_fin = next(p for p in tl.packets() if p.sender == "client" and "F" in p.flags)
    server_end = next(e for e in notes if "server prints: event end" in e.text)
    assert client_fin.time < server_end.time
    assert "shutdown" in [c.call for c in tl.api_calls("server")]


WIRE_STEPS = """
id = "wire-steps"
title = "blackhole and heal from the step list"

[[step]]
actor = "server"
call = "listen"

[[step]]
actor = "client"
call = "connect"

[[step]]
actor = "server"
call = "accept"

[[step]]
actor = "wire"
call = "blackhole"
host = "server"

[[step]]
actor = "client"
call = "send"
data = "lost"

[[step]]
actor = "client"
call = "sleep"
seconds = 0.3

[[step]]
actor = "wire"
call = "heal"
host = "server"

[[step]]
actor = "server"
call = "recv"
until = "size"
size = 4

[expect]
segments = [
    { sender = "client", flags = "P.", length = 4, dropped = true },
    { sender = "client", flags = "P.", length = 4, dropped = false },
]
results = { "server.recv" = "b'lost'" }
notes = ["retransmission (in ESTABLISHED)"]
snapshot = [{ endpoint = "client", state = "ESTABLISHED", timer = "on" }]
"""


def test_wire_steps_blackhole_then_heal(tmp_path: Path) -> None:
    path = tmp_path / "wire-steps.toml"
    path.write_text(WIRE_STEPS)
    result = Lab(tmp_path).run(scenarios.load(str(path)))
    failed = [f"{f.fact}: {f.detail}" for f in result.facts if not f.held]
    assert not failed, failed
    wire_calls = result.timeline.api_calls("wire")
    assert [c.call for c in wire_calls] == ["blackhole", "heal"]
    dropped = [p for p in result.timeline.packets() if p.dropped]
    assert dropped and all("the wire drops everything" in p.annotations[0] for p in dropped)


IPV6 = """
id = "ipv6-close"
title = "the same close over IPv6 (fd00::/8 unique local addresses)"

[[step]]
actor = "server"
call = "socket"
family = "inet6"

[[step]]
actor = "server"
call = "listen"

[[step]]
actor = "server"
call = "accept"
background = true

[[step]]
actor = "client"
call = "socket"
family = "inet6"

[[step]]
actor = "client"
call = "connect"

[[step]]
actor = "client"
call = "send"
data = "over v6"

[[step]]
actor = "client"
call = "close"

[[step]]
actor = "server"
call = "recv"
until = "eof"

[[step]]
actor = "server"
call = "close"

[[step]]
actor = "client"
call = "wait"
state = "TIME-WAIT"
timeout = 3

[expect]
flags_contain = ["S", "S.", ".", "P.", "F.", "F.", "."]
states.client = ["SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
states.server = ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
results = { "server.recv" = "b'over v6'" }
snapshot = [{ endpoint = "client", state = "TIME-WAIT", timer = "timewait" }]
"""


def test_ipv6_run(tmp_path: Path) -> None:
    path = tmp_path / "ipv6-close.toml"
    path.write_text(IPV6)
    result = Lab(tmp_path).run(scenarios.load(str(path)))
    failed = [f"{f.fact}: {f.detail}" for f in result.facts if not f.held]
    assert not failed, failed
    tl = result.timeline
    assert tl.endpoint("client").address.startswith("fd00:89:")
    assert all(p.raw[0] >> 4 == 6 and p.src.startswith("fd00:89:") for p in tl.packets())
    assert tl.state_changes("client", Source.KERNEL)


def test_a_call_still_blocked_at_the_end_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "bg.toml"
    path.write_text(BLOCKED)
    tl = Lab(None).run(scenarios.load(str(path))).timeline
    accept = next(c for c in tl.api_calls("server") if c.call == "accept")
    assert accept.result == "still blocked at the end" and accept.errno is None
    # The listener sits in sock_diag with an empty accept queue.
    assert any(s.state is State.LISTEN and s.rqueue == 0 for s in tl.snapshots("server"))


BLOCKED = """
id = "blocked"
[[step]]
actor = "server"
call = "listen"
[[step]]
actor = "server"
call = "accept"
background = true
[[step]]
actor = "client"
call = "sleep"
seconds = 0.1
"""
