"""Inferred states on captures of real Linux exchanges, checked against the kernel.

Each scenario runs in network namespaces created here (and removed, also on
failure): normal close, half-close, RST abort on the namespace's loopback;
simultaneous close across a veth pair whose token-bucket queues hold the two
FINs so they cross.  The capture is analysed; the inferred state sequence of
each endpoint must be the RFC 9293 path, the final states must be what ``ss``
showed, and relative seq/ack and analysis flags must equal tshark's.
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

from conftest import tshark_fields
from tcplab.analyze import analyze_file, infer_states, state_path, timeline_for
from tcplab.states import State

HELPER = Path(__file__).parent / "data" / "analyze" / "live_scenarios.py"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None,
        reason="needs root and iproute2 (network namespaces)",
    ),
]


def _ns(name: str, *args: str) -> None:
    subprocess.run(["ip", "-n", name, *args], check=True)


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"tcplab-ta-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        _ns(name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def run_scenario(ns: str, scenario: str, out: Path, *extra: str) -> dict[str, object]:
    subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, str(HELPER), scenario, str(out), *extra],
        check=True,
        timeout=60,
    )
    kernel: dict[str, object] = json.loads((out / "kernel.json").read_text())
    return kernel


def paths(capture: Path) -> tuple[list[State], list[State], object]:
    # Loopback captures carry CHECKSUM_PARTIAL checksums (offloaded): analyse
    # like zeek -C, as one must for any capture taken on a sending host.
    analysis = analyze_file(capture, ignore_checksums=True)
    assert len(analysis.connections) == 1
    conn = analysis.connections[0]
    timeline = timeline_for(analysis.packets, conn)
    changes = [e for e in timeline.state_changes()]
    return state_path(changes, "client"), state_path(changes, "server"), (analysis, conn)


# RFC 9293 Figure 5 paths of a close in which the client sends the first FIN.
ACTIVE_CLOSER_PATH = [
    State.CLOSED,
    State.SYN_SENT,
    State.ESTABLISHED,
    State.FIN_WAIT_1,
    State.FIN_WAIT_2,
    State.TIME_WAIT,
]
PASSIVE_CLOSER_PATH = [
    State.LISTEN,
    State.SYN_RECEIVED,
    State.ESTABLISHED,
    State.CLOSE_WAIT,
    State.LAST_ACK,
    State.CLOSED,
]


def snapshots(kernel: dict[str, object]) -> dict[str, tuple[float, list[list[str]]]]:
    """The helper's ``ss`` snapshots by label: ``(time, rows)``."""
    return {label: (t, rows) for label, t, rows in kernel["snapshots"]}  # type: ignore[attr-defined]


def kernel_states(snapshot: list[list[str]], client_port: int) -> dict[str, State]:
    """Map ss rows to client/server by the client's ephemeral port (ss spells
    the states "ESTAB", "SYN-RECV", ...: ``State.parse`` reads them)."""
    out: dict[str, State] = {}
    for state, local, _peer in snapshot:
        role = "client" if local.endswith(f":{client_port}") else "server"
        out[role] = State.parse(state)
    return out


def states_at(analysis: object, when: float) -> dict[str, State | None]:
    last = None
    for p in analysis.packets:  # type: ignore[attr-defined]
        if p.time <= when:
            last = p
    assert last is not None
    return {"client": last.client_state, "server": last.server_state}


def compare_with_tshark(capture: Path, analysis: object) -> None:
    """Relative seq/ack, tcp.len and every tcp.analysis flag equal tshark's."""
    if shutil.which("tshark") is None:
        return
    from tcplab.analyze.wireshark import FLAG_NAMES

    fields = ["frame.number", "tcp.seq", "tcp.ack", "tcp.flags.ack", "tcp.len"]
    fields += [f"tcp.analysis.{name}" for name in FLAG_NAMES]
    theirs = {
        int(row["frame.number"]): [row[name] for name in fields]
        for row in tshark_fields(capture, fields, "tcp")
    }
    assert len(theirs) == len(analysis.packets)  # type: ignore[attr-defined]
    for p in analysis.packets:  # type: ignore[attr-defined]
        row = theirs[p.index]
        flags = {n for n, v in zip(FLAG_NAMES, row[5:], strict=True) if v}
        expected = (int(row[1]), int(row[2]) if row[3] == "1" else None, int(row[4]), flags)
        assert (p.rel_seq, p.rel_ack, p.length, set(p.analysis)) == expected, p.index


def test_normal_close(namespace: str, tmp_path: Path) -> None:
    kernel = run_scenario(namespace, "normal", tmp_path)
    client, server, (analysis, conn) = paths(tmp_path / "capture.pcap")
    assert client == ACTIVE_CLOSER_PATH
    assert server == PASSIVE_CLOSER_PATH
    snaps = snapshots(kernel)
    t, rows = snaps["client closed"]
    assert kernel_states(rows, conn.client.port) == {
        "client": State.FIN_WAIT_2,
        "server": State.CLOSE_WAIT,
    }
    assert states_at(analysis, t) == {"client": State.FIN_WAIT_2, "server": State.CLOSE_WAIT}
    t, rows = snaps["both closed"]
    assert kernel_states(rows, conn.client.port) == {"client": State.TIME_WAIT}
    assert (conn.client.final_state, conn.server.final_state) == (State.TIME_WAIT, State.CLOSED)
    assert (conn.active_closer, conn.ending, conn.zeek_conn_state) == (
        "client",
        "FIN both ways",
        "SF",
    )
    assert conn.zeek_history == "ShADadFf"
    # Zeek without -C rejects every offloaded checksum: only C/c letters
    # (--strict-checksums); by default a partial checksum is not verifiable,
    # not bad, so the connection reads as it happened.
    strict = analyze_file(tmp_path / "capture.pcap", strict_checksums=True).connections[0]
    assert set(strict.zeek_history) <= {"C", "c"} and strict.zeek_conn_state == "OTH"
    default = analyze_file(tmp_path / "capture.pcap").connections[0]
    assert (default.zeek_conn_state, default.zeek_history) == ("SF", "ShADadFf")
    assert "bad_checksum" not in default.anomalies
    compare_with_tshark(tmp_path / "capture.pcap", analysis)


def test_half_close(namespace: str, tmp_path: Path) -> None:
    kernel = run_scenario(namespace, "half", tmp_path)
    client, server, (analysis, conn) = paths(tmp_path / "capture.pcap")
    assert client == ACTIVE_CLOSER_PATH
    assert server == PASSIVE_CLOSER_PATH
    snaps = snapshots(kernel)
    for label in ("client shut down writing", "server sent after half-close"):
        t, rows = snaps[label]
        expected = {"client": State.FIN_WAIT_2, "server": State.CLOSE_WAIT}
        assert kernel_states(rows, conn.client.port) == expected
        assert states_at(analysis, t) == expected
    # The server's data after the client's FIN is in the capture.
    after_fin = [
        p
        for p in analysis.packets
        if p.sender == "server" and p.length > 0 and p.client_state == State.FIN_WAIT_2
    ]
    assert after_fin
    t, rows = snaps["both closed"]
    assert kernel_states(rows, conn.client.port) == {"client": State.TIME_WAIT}
    assert conn.zeek_history.startswith("ShAD")
    compare_with_tshark(tmp_path / "capture.pcap", analysis)


def test_rst_abort(namespace: str, tmp_path: Path) -> None:
    kernel = run_scenario(namespace, "rst", tmp_path)
    client, server, (analysis, conn) = paths(tmp_path / "capture.pcap")
    assert client[-1] == State.CLOSED and State.ESTABLISHED in client
    assert server[-2:] == [State.ESTABLISHED, State.CLOSED]
    snaps = snapshots(kernel)
    # The kernel: nothing left in any TCP state ss lists, and the server's
    # recv() saw the reset.
    assert snaps["client aborted"][1] == []
    assert snaps["server recv error"][1][0][0] == "ConnectionResetError"
    assert (conn.ending, conn.zeek_conn_state) == ("RST by client", "RSTO")
    assert analysis.packets[-1].flag_text.startswith("R")
    compare_with_tshark(tmp_path / "capture.pcap", analysis)


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str]]:
    a, b = f"tcplab-tsa-{os.getpid()}", f"tcplab-tsb-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", a], check=True)
    try:
        subprocess.run(["ip", "netns", "add", b], check=True)
        _ns(a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
        _ns(a, "addr", "add", "10.9.0.1/24", "dev", "va")
        _ns(b, "addr", "add", "10.9.0.2/24", "dev", "vb")
        for ns, dev in ((a, "va"), (b, "vb")):
            _ns(ns, "link", "set", "lo", "up")
            _ns(ns, "link", "set", dev, "up")
            # A slow token bucket: filler datagrams queue up and hold the FINs.
            subprocess.run(
                [
                    "tc",
                    "-n",
                    ns,
                    "qdisc",
                    "add",
                    "dev",
                    dev,
                    "root",
                    "tbf",
                    "rate",
                    "400kbit",
                    "burst",
                    "1600",
                    "latency",
                    "1s",
                ],
                check=True,
            )
        yield a, b
    finally:
        subprocess.run(["ip", "netns", "del", a], check=False)
        subprocess.run(["ip", "netns", "del", b], check=False)


def test_simultaneous_close(veth_pair: tuple[str, str], tmp_path: Path) -> None:
    a, b = veth_pair
    kernel = run_scenario(a, "simultaneous", tmp_path, b)
    client, server, (_analysis, conn) = paths(tmp_path / "capture.pcap")
    expected_tail = [State.ESTABLISHED, State.FIN_WAIT_1, State.CLOSING, State.TIME_WAIT]
    assert client[-4:] == expected_tail
    assert server[-4:] == expected_tail
    polled = kernel["polled"]  # type: ignore[index]
    # What ss showed while polling each end: the same path.
    for role in ("client", "server"):
        # (the server's listening socket is another socket: leave it out)
        seen: list[State] = []
        for name in polled[role]:  # type: ignore[index]
            if name != "LISTEN" and (not seen or seen[-1] != State.parse(name)):
                seen.append(State.parse(name))
        assert seen[-3:] == expected_tail[1:], (role, seen)
    assert conn.zeek_conn_state == "SF"
    assert (conn.client.final_state, conn.server.final_state) == (State.TIME_WAIT, State.TIME_WAIT)


def test_infer_states_on_a_timeline_with_raw_packets(namespace: str, tmp_path: Path) -> None:
    # The lab's path: a Timeline whose Packets carry raw IP bytes.
    run_scenario(namespace, "normal", tmp_path)
    analysis = analyze_file(tmp_path / "capture.pcap")
    from tcplab.analyze.core import Analyzer
    from tcplab.analyze.frames import read_segments

    engine = Analyzer(keep_raw=True)
    for seg in read_segments(tmp_path / "capture.pcap"):
        engine.observe(seg)
    timeline = timeline_for(engine.packets, analysis.connections[0])
    bare = timeline.with_events([e for e in timeline.events if e.kind == "packet"])
    assert all(p.raw for p in bare.packets())
    changes = infer_states(bare)
    assert state_path(changes, "client")[-1] == State.TIME_WAIT
    assert state_path(changes, "server")[-3:] == [State.CLOSE_WAIT, State.LAST_ACK, State.CLOSED]
