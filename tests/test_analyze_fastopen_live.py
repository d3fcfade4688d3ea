"""A real TCP Fast Open capture: the analyzer's inferred states against the kernel's.

Two connections on the loopback of a network namespace created here, with
``net.ipv4.tcp_fastopen = 3`` set inside it (never the host's): the first
sendto(MSG_FASTOPEN) asks for a cookie, the second puts the cookie and its
data on the SYN and the SYN-ACK acknowledges that data (RFC 7413 §4.2.1,
§4.2.2).  tcpdump runs inside the namespace.  The kernel's own state changes
come from a tracefs instance (sock/inet_sock_set_state, as the lab reads
them); ``ss`` at the end shows the clients in TIME-WAIT, which the
tracepoint reports as FIN_WAIT2 -> CLOSE.  The analyzer must infer every
socket's path, and tshark must agree on the relative numbers (tshark counts
the SYN's data: the client's next sequence number is 1 + its length).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import compare_with_tshark
from tcplab.analyze import Analysis, Connection, analyze_file, state_path, timeline_for
from tcplab.lab.tracer import Tracer
from tcplab.states import State
from tcplab.timeline import StateChange

HELPER = Path(__file__).parent / "data" / "analyze" / "fastopen_live.py"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tcpdump") is None,
        reason="needs root, iproute2 (network namespaces) and tcpdump",
    ),
]

# The tracepoint carries no namespace: a port of its own keeps other runs out.
PORT = 47000 + os.getpid() % 2000
LINUX_NAMES = {
    "TCP_CLOSE": State.CLOSED, "TCP_LISTEN": State.LISTEN, "TCP_SYN_SENT": State.SYN_SENT,
    "TCP_SYN_RECV": State.SYN_RECEIVED, "TCP_ESTABLISHED": State.ESTABLISHED,
    "TCP_FIN_WAIT1": State.FIN_WAIT_1, "TCP_FIN_WAIT2": State.FIN_WAIT_2,
    "TCP_CLOSE_WAIT": State.CLOSE_WAIT, "TCP_LAST_ACK": State.LAST_ACK,
    "TCP_CLOSING": State.CLOSING, "TCP_TIME_WAIT": State.TIME_WAIT,
}


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"tcplab-tfo-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.tcp_fastopen=3"],
                       check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def kernel_paths(tracer: Tracer) -> dict[tuple[str, int], list[tuple[State, State, float]]]:
    """Each socket's changes, keyed by (role, the client's port); the listener's
    own changes are left out (no packet shows listen() or its close())."""
    out: dict[tuple[str, int], list[tuple[State, State, float]]] = {}
    unbound: list[tuple[State, State, float]] = []
    for event in tracer.events:
        if event.event != "inet_sock_set_state":
            continue
        change = (LINUX_NAMES[event.fields["oldstate"]], LINUX_NAMES[event.fields["newstate"]],
                  event.time)
        local, remote = event.local[1], event.remote[1]
        if local == PORT and remote == 0:
            continue  # the listener itself
        if local == 0:
            # CLOSE -> SYN_SENT comes before connect() picks the ephemeral port
            # (tcp_v4_connect); the connections here run one after the other.
            unbound.append(change)
            continue
        key = ("server", remote) if local == PORT else ("client", local)
        if key not in out and key[0] == "client":
            out[key], unbound = unbound, []
        out.setdefault(key, []).append(change)
    return out


def as_path(changes: list[tuple[State, State, float]], final: State | None = None) -> list[State]:
    path = [changes[0][0]] + [new for _old, new, _t in changes]
    if final is not None and path[-2:] == [State.FIN_WAIT_2, State.CLOSED]:
        path[-1] = final  # the hand-off to the timewait mini-socket (ss shows TIME-WAIT)
    return path


def inferred_changes(analysis: Analysis, conn: Connection) -> list[StateChange]:
    packets = [p for p in analysis.packets if p.stream == conn.number]
    return list(timeline_for(packets, conn).state_changes())


def test_fast_open_capture_states_match_the_kernel(namespace: str, tmp_path: Path) -> None:
    tracer = Tracer(f"tfo-{os.getpid()}", tmp_path / "tracefs", ports=(PORT,))
    try:
        tracer.open(lambda kind, path: None)
        subprocess.run(["ip", "netns", "exec", namespace, sys.executable, str(HELPER),
                        str(tmp_path), str(PORT)], check=True, timeout=60)
    finally:
        tracer.close()
    kernel = json.loads((tmp_path / "kernel.json").read_text())
    first, second, third = kernel["clients"]
    # The first sendto() had no cookie: all its data went after the handshake;
    # the second one's 11 bytes rode on the SYN, and so did the third's 12
    # (TCP_FASTOPEN_CONNECT: connect(), then write()).
    assert kernel["sent"] == [10, 11, 12]
    assert kernel["read"] == ["GET /first", "GET /second", "GET /connect"]
    assert sorted(row[0] for row in kernel["ss"] if row[0] != "LISTEN") == ["TIME-WAIT"] * 3
    traced = kernel_paths(tracer)

    capture = tmp_path / "capture.pcap"
    analysis = analyze_file(capture, ignore_checksums=True)  # loopback: offloaded checksums
    assert [c.client.port for c in analysis.connections] == [first, second, third]
    syns = [p for p in analysis.packets if p.flag_text == "S"]
    assert [p.length for p in syns] == [0, 11, 12]
    # connect() with TCP_FASTOPEN_CONNECT returned before any SYN left.
    assert syns[2].time > kernel["connected"]
    for conn in analysis.connections:
        changes = inferred_changes(analysis, conn)
        client, server = state_path(changes, "client"), state_path(changes, "server")
        assert client == as_path(traced[("client", conn.client.port)], final=State.TIME_WAIT)
        assert server == as_path(traced[("server", conn.client.port)])
        assert client == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED, State.FIN_WAIT_1,
                          State.FIN_WAIT_2, State.TIME_WAIT]
        assert server == [State.LISTEN, State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT,
                          State.LAST_ACK, State.CLOSED]

    # The second connection, edge by edge: the SYN carried data, the server's
    # SYN-ACK acknowledged it (a valid cookie), so the client's SYN-ACK is the
    # ordinary edge and nothing is sent again.
    changes = inferred_changes(analysis, analysis.connections[1])
    causes = [(c.endpoint, c.new, c.cause.split(" (RFC")[0]) for c in changes]
    assert ("client", State.SYN_SENT, "sendto(MSG_FASTOPEN)") in causes
    assert ("server", State.SYN_RECEIVED, "rcv SYN with a valid cookie") in causes
    assert ("client", State.ESTABLISHED, "rcv SYN-ACK") in causes
    # The first one asked for the cookie: an ordinary SYN, an ordinary child.
    causes = [(c.endpoint, c.new, c.cause.split(" (RFC")[0])
              for c in inferred_changes(analysis, analysis.connections[0])]
    assert ("server", State.SYN_RECEIVED, "rcv SYN") in causes
    # The kernel made the Fast Open child at the SYN, before the client was
    # ESTABLISHED (an ordinary child appears only with the third segment), and
    # the analyzer dates the server's SYN-RECEIVED before the client's ESTABLISHED too.
    born = traced[("server", second)][0]
    established = next(c for c in traced[("client", second)] if c[1] is State.ESTABLISHED)
    assert born[:2] == (State.LISTEN, State.SYN_RECEIVED) and born[2] < established[2]
    at = {(c.endpoint, c.new): c.time for c in changes}
    assert at[("server", State.SYN_RECEIVED)] < at[("client", State.ESTABLISHED)]
    born = traced[("server", first)][0]
    established = next(c for c in traced[("client", first)] if c[1] is State.ESTABLISHED)
    assert born[2] >= established[2]

    # tshark agrees on every frame (its relative numbers count the SYN's data:
    # the client's next sequence number after its SYN is 1 + 11).
    assert compare_with_tshark(capture).mismatches == []
    handshake = [(p.sender, p.flag_text, p.rel_seq, p.rel_ack, p.length, p.nxtseq)
                 for p in analysis.packets if p.stream == analysis.connections[1].number][:3]
    assert handshake == [("client", "S", 0, None, 11, 12), ("server", "S.", 0, 12, 0, 1),
                         ("client", ".", 12, 1, 0, 12)]
