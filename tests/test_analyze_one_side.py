"""Inferred states never contradict what an endpoint itself sends.

Captures of one direction only (tcpdump with a ``src port`` filter on
loopback, as an asymmetric route or a ``src host`` filter would give) and a
crafted capture of crossing FINs whose second FIN is never acknowledged.
Each capture is compared with tshark frame by frame, and the inferred states
are checked against the rules (docs/analyze.md, "States from one side"):

* an endpoint that sends a segment with ACK (not SYN, not RST) has had the
  peer's SYN: it is not CLOSED, LISTEN or SYN-SENT (RFC 9293 §3.10.7.3);
* one that acknowledges data beyond its SYN-ACK is not SYN-RECEIVED
  (§3.10.7.4: only an acceptable ACK lets data in there);
* one that has sent a FIN is past ESTABLISHED (§3.10.4);
* the end of the capture does not move an endpoint past what its packets
  show.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import (
    ACK,
    FIN,
    SYN,
    ZEEK_TRACES,
    capturing,
    compare_with_tshark,
    free_port,
    ipv4_tcp,
)
from tcplab.analyze import analyze_file
from tcplab.analyze.core import Analysis, PacketRecord
from tcplab.capture.writer import PcapWriter
from tcplab.states import State
from test_analyze_tshark import compare

needs_tools = pytest.mark.skipif(
    shutil.which("tshark") is None or shutil.which("tcpdump") is None,
    reason="tshark and tcpdump needed",
)

TRACES = ZEEK_TRACES
CLOSED_SIDE = {State.CLOSED, State.LISTEN, State.SYN_SENT}
AFTER_FIN = {State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING, State.TIME_WAIT,
             State.LAST_ACK, State.CLOSED}


def contradictions(analysis: Analysis) -> list[str]:
    """Packets whose sender's inferred state its own packet contradicts."""
    problems: list[str] = []
    sent_fin: set[tuple[int, str]] = set()  # (stream, role)
    synack_ack: dict[tuple[int, str], int] = {}
    for p in analysis.packets:
        who = (p.stream, p.sender)
        state = p.client_state if p.sender == "client" else p.server_state
        syn, fin, rst = p.flags & SYN, p.flags & FIN, p.flags & 0x04
        if syn and p.flags & ACK:
            synack_ack[who] = p.ack
        if fin:
            sent_fin.add(who)
        if rst or syn:
            continue
        # It acknowledges the peer's SYN (relative ack > 0; an ACK of 0 does not).
        if p.flags & ACK and p.rel_ack and state in CLOSED_SIDE:
            problems.append(f"frame {p.index}: {p.sender} sends ACK in {state}")
        beyond = (p.ack - synack_ack.get(who, p.ack)) % 2**32  # RFC 1982 distance
        if state is State.SYN_RECEIVED and 0 < beyond < 2**31:
            problems.append(f"frame {p.index}: {p.sender} acks data in SYN-RECEIVED")
        if who in sent_fin and state not in AFTER_FIN:
            problems.append(f"frame {p.index}: {p.sender} sent FIN, still {state}")
    for conn in analysis.connections:
        for role, side in (("client", conn.client), ("server", conn.server)):
            if (conn.number, role) in sent_fin and side.final_state not in AFTER_FIN:
                problems.append(f"{role} sent FIN, ends {side.final_state}")
    return problems


def exchange(server_port: int, client_port: int) -> None:
    """Client connects, sends, reads the answer, closes first; the server
    answers, reads EOF and closes: the lifecycle every endpoint sees."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", server_port))
        listener.listen(1)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                conn.recv(100)
                conn.sendall(b"world")
                while conn.recv(100):
                    pass
        thread = threading.Thread(target=serve)
        thread.start()
        with socket.socket() as client:
            client.settimeout(10)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            client.bind(("127.0.0.1", client_port))
            client.connect(("127.0.0.1", server_port))
            client.sendall(b"hello")
            client.recv(100)
        thread.join(10)
    time.sleep(0.2)  # the last ACK


@contextmanager
def tcpdump_filtered(out: Path, expression: str) -> Iterator[Path]:
    args = ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-s", "0", "-B", "16384",
            "-w", str(out), expression]
    with capturing(args, lambda line: b"listening on" in line):
        yield out
        time.sleep(0.3)


def one_direction(tmp_path: Path, sender: str) -> tuple[Analysis, Path]:
    server_port, client_port = free_port(), free_port()
    port = client_port if sender == "client" else server_port
    path = tmp_path / f"{sender}-only.pcap"
    with tcpdump_filtered(path, f"tcp and src host 127.0.0.1 and src port {port}"):
        exchange(server_port, client_port)
    compared, problems = compare(path, path.name)
    assert not problems and compared >= 4, problems
    assert not compare_with_tshark(path).mismatches
    return analyze_file(path), path


def changes_of(packets: list[PacketRecord], who: str) -> list[tuple[State, str]]:
    return [(c.new, c.ambiguous or "") for p in packets for w, c, _ in p.changes if w == who]


@needs_tools
def test_client_direction_only(tmp_path: Path) -> None:
    analysis, _ = one_direction(tmp_path, "client")
    assert {p.sender for p in analysis.packets} == {"client"}
    assert not contradictions(analysis), contradictions(analysis)
    conn = analysis.connections[0]
    # Its own ACK shows the SYN-ACK arrived: ESTABLISHED, said to come from one side.
    established = [why for new, why in changes_of(analysis.packets, "client")
                   if new is State.ESTABLISHED]
    assert established and "inferred from one side" in established[0]
    assert conn.client.final_state is State.FIN_WAIT_1
    # The server, seen only through what the client sent it, got the FIN.
    assert conn.server.final_state is State.CLOSE_WAIT
    assert any("only the client's packets" in n for n in conn.notes), conn.notes


@needs_tools
def test_server_direction_only(tmp_path: Path) -> None:
    analysis, _ = one_direction(tmp_path, "server")
    assert {p.sender for p in analysis.packets} == {"server"}
    assert not contradictions(analysis), contradictions(analysis)
    conn = analysis.connections[0]
    # The server acknowledges the client's data: not SYN-RECEIVED any more.
    acks_data = [p for p in analysis.packets if not p.flags & SYN and p.rel_ack and p.rel_ack > 1]
    assert acks_data and acks_data[0].server_state is State.ESTABLISHED
    assert conn.server.final_state in AFTER_FIN
    assert any("only the server's packets" in n for n in conn.notes), conn.notes


@needs_tools
def test_both_directions_need_no_one_side_inference(tmp_path: Path) -> None:
    server_port, client_port = free_port(), free_port()
    path = tmp_path / "both.pcap"
    with tcpdump_filtered(path, f"tcp port {server_port}"):
        exchange(server_port, client_port)
    analysis = analyze_file(path)
    assert not contradictions(analysis)
    conn = analysis.connections[0]
    assert (conn.client.final_state, conn.server.final_state) == (State.TIME_WAIT, State.CLOSED)
    assert not any("one side" in n for n in conn.notes), conn.notes


C, S = ("10.0.0.1", 40000), ("10.0.0.2", 80)
EPOCH = 1_700_000_000 * 1_000_000_000


def crossing_fins(tmp_path: Path) -> Path:
    """FINs cross; the server then retransmits its FIN eight times (now
    ACKing the client's FIN) and the client never acknowledges it."""

    def seg(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int,
            flags: int) -> bytes:
        return ipv4_tcp(src[0], dst[0], src[1], dst[1], seq, ack, flags)

    packets = [
        seg(C, S, 1000, 0, SYN),
        seg(S, C, 5000, 1001, SYN | ACK),
        seg(C, S, 1001, 5001, ACK),
        seg(C, S, 1001, 5001, FIN | ACK),
        seg(S, C, 5001, 1001, FIN | ACK),  # crosses the client's FIN
    ] + [seg(S, C, 5001, 1002, FIN | ACK)] * 8
    path = tmp_path / "crossing-fins.pcap"
    with path.open("wb") as f:
        writer = PcapWriter(f, 101)
        for i, data in enumerate(packets):
            writer.write(EPOCH + (2**i) * 1_000_000, data)
    return path


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_end_of_capture_does_not_deliver_what_was_never_acknowledged(tmp_path: Path) -> None:
    path = crossing_fins(tmp_path)
    compared, problems = compare(path, path.name)
    assert not problems and compared == 13, problems
    analysis = analyze_file(path)
    assert not contradictions(analysis)
    conn = analysis.connections[0]
    assert [p.client_state for p in analysis.packets][-1] is State.FIN_WAIT_1
    # Not TIME-WAIT: the client's packets never show the server's FIN arrived.
    assert conn.client.final_state is State.FIN_WAIT_1
    assert conn.server.final_state is State.CLOSING
    assert not conn.trailing_changes
    assert any("client: stays FIN-WAIT-1" in n and "never acknowledge" in n
               for n in conn.notes), conn.notes


# Reference traces whose packets no RFC 9293 state sends, with why the
# inference leaves them as they are: (trace, the contradiction).
ODD_STACKS = {
    # A bare FIN (no ACK) from SYN-SENT: CLOSE in SYN-SENT deletes the TCB
    # (RFC 9293 §3.10.4); the FIN changes nothing, the endpoint stays SYN-SENT.
    ("tcp/fin_retransmission.pcap", "frame 2: client sent FIN, still SYN-SENT"),
    ("tcp/syn-then-stuff-then-rst.pcap", "frame 3: client sent FIN, still SYN-SENT"),
    ("tcp/syn-then-stuff-then-rst.pcap", "client sent FIN, ends SYN-SENT"),
    # Data with ACK 16 s after the same endpoint's own RST (a raw-socket
    # scanner): no state sends data after an abort.
    ("modbus/modbus-and-non-modbus-p502.pcap", "frame 65: client sends ACK in CLOSED"),
}


@pytest.mark.skipif(not TRACES.is_dir(), reason="Zeek traces not present")
@pytest.mark.parametrize("name", sorted(str(p.relative_to(TRACES)) for p in TRACES.rglob("*.pcap*"))
                         if TRACES.is_dir() else [])
def test_reference_traces_have_no_contradicted_state(name: str) -> None:
    found = {(name, problem) for problem in contradictions(analyze_file(TRACES / name))}
    assert found <= ODD_STACKS, sorted(found - ODD_STACKS)


@pytest.mark.skipif(not TRACES.is_dir(), reason="Zeek traces not present")
def test_a_reset_the_endpoint_did_not_take_is_undone() -> None:
    # rst-inject-rae.pcap: a RST (frame 7) the client goes on sending after
    # (frame 8, 150 bytes): it never took effect on the client (RFC 5961 §3.2).
    analysis = analyze_file(TRACES / "tcp/rst-inject-rae.pcap")
    by_frame = {p.index: p for p in analysis.packets}
    assert by_frame[7].client_state is State.CLOSED
    assert by_frame[8].client_state is State.ESTABLISHED
    (change,) = [c for w, c, _ in by_frame[8].changes if w == "client"]
    assert change.rfc == "RFC 5961 §3.2" and "did not take effect" in (change.ambiguous or "")
    assert by_frame[9].client_state is State.CLOSED  # the next RST closes it
