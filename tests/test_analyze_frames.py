"""The analyzer reads through tcplab.capture and tcplab.wire: one problem line
per damaged frame while the readable packets are analysed, and a refused
connect (SYN answered by RST/ACK) never puts the server in SYN-RECEIVED; a
packet a tcplab pcapng marks as dropped by the lab's wire reaches its sender's
state, never its receiver's."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tcplab.analyze import analyze_file, infer_states, state_path, timeline_for
from tcplab.analyze.frames import dropped_by_wire
from tcplab.capture import PcapWriter
from tcplab.capture.pcapng import DROPPED_BY_WIRE
from tcplab.cli import cli
from tcplab.lab.output import write_pcapng
from tcplab.states import State
from tcplab.timeline import ApiCall, Packet, Timeline
from tcplab.wire import Flags, IPv4Header, TcpHeader

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 9)
ETH = bytes.fromhex("020000000002020000000001") + b"\x08\x00"


def frame(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: Flags) -> bytes:
    header = TcpHeader.create(src[1], dst[1], seq, ack, flags, 65000 if flags & Flags.SYN else 0)
    segment = header.build(b"", src=src[0], dst=dst[0])
    return ETH + IPv4Header.create(src[0], dst[0], 6, len(segment)).build(segment)


def write(path: Path, frames: list[bytes]) -> Path:
    with path.open("wb") as fh:
        writer = PcapWriter(fh, linktype=1, nanosecond=False)
        for i, data in enumerate(frames):
            writer.write(1_700_000_000_000_000_000 + i * 500_000, data)
    return path


def refused(tmp_path: Path) -> Path:
    # What Linux sends for a SYN to a port without a socket: RST|ACK, seq 0,
    # ack = ISN + 1 (RFC 9293 §3.10.7.1).
    return write(
        tmp_path / "refused.pcap",
        [
            frame(CLIENT, SERVER, 1000, 0, Flags.SYN),
            frame(SERVER, CLIENT, 0, 1001, Flags.RST | Flags.ACK),
        ],
    )


def test_refused_connect_server_never_in_syn_received(tmp_path: Path) -> None:
    analysis = analyze_file(refused(tmp_path))
    [conn] = analysis.connections
    assert conn.ending == "refused (RST to SYN)" and conn.zeek_conn_state == "REJ"
    assert (conn.client.final_state, conn.server.final_state) == (State.CLOSED, State.CLOSED)
    assert all(p.server_state is not State.SYN_RECEIVED for p in analysis.packets)
    timeline = timeline_for(analysis.packets, conn)
    server_path = [c.new for c in timeline.state_changes("server")]
    assert server_path == [State.LISTEN, State.CLOSED]
    assert "no connection existed" in " ".join(conn.notes)


def test_damaged_frame_is_one_line_and_the_rest_is_analysed(tmp_path: Path) -> None:
    good_syn = frame(CLIENT, SERVER, 1000, 0, Flags.SYN)
    damaged = bytearray(frame(CLIENT, SERVER, 1000, 0, Flags.ACK))
    damaged[14 + 20 + 12] = 0x20  # TCP data offset 2 < 5 (RFC 9293 §3.1)
    path = write(
        tmp_path / "damaged.pcap",
        [good_syn, bytes(damaged), frame(SERVER, CLIENT, 0, 1001, Flags.RST | Flags.ACK)],
    )
    analysis = analyze_file(path)
    assert (analysis.report.frames, analysis.report.tcp) == (3, 2)
    [problem] = analysis.report.problems
    offset = 24 + (16 + len(good_syn)) + 16 + 14 + 20 + 12
    assert problem == f"{path}: offset {offset}: frame 2: TCP data offset 2 < 5"
    result = CliRunner().invoke(cli, ["analyze", str(path), "--json"])
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [f"tcplab: {problem}"]
    assert '"ending": "refused (RST to SYN)"' in result.stdout


def test_ip_fragment_is_reported_not_analysed(tmp_path: Path) -> None:
    syn = frame(CLIENT, SERVER, 1000, 0, Flags.SYN)
    fragment = bytearray(syn)
    fragment[14 + 6] |= 0x20  # More Fragments (RFC 791 §3.1): not reassembled here
    fragment[14 + 10 : 14 + 12] = b"\x00\x00"  # header checksum no longer matters
    path = write(tmp_path / "fragment.pcap", [bytes(fragment), syn])
    analysis = analyze_file(path)
    assert (analysis.report.frames, analysis.report.tcp, analysis.report.not_tcp) == (2, 1, 1)
    assert analysis.report.problems == [
        f"{path}: offset 40: frame 1: IPv4 fragment (offset 0) skipped"
    ]
    assert [p.index for p in analysis.packets] == [2]


# -- packets the lab's wire dropped --------------------------------------------------------


def lab_packet(
    sender: str, seq: int, ack: int, flags: Flags, time: float, dropped: bool = False
) -> Packet:
    """A lab timeline's packet with its raw IP datagram, as the lab's wire records it."""
    src, dst = (CLIENT, SERVER) if sender == "client" else (SERVER, CLIENT)
    header = TcpHeader.create(src[1], dst[1], seq, ack, flags, 65000)
    segment = header.build(b"", src=src[0], dst=dst[0])
    raw = IPv4Header.create(src[0], dst[0], 6, len(segment)).build(segment)
    receiver = "server" if sender == "client" else "client"
    return Packet(
        time, sender, receiver, src[0], src[1], dst[0], dst[1], flags.tcpdump(), seq, ack, 0,
        dropped=dropped, annotations=("dropped by fault 1",) if dropped else (), raw=raw,
    )  # fmt: skip


def lost_final_ack(dropped: bool) -> Timeline:
    """Handshake, the client closes first, the server closes, the client's last ACK is lost."""
    A = Flags.ACK
    rows = [
        ("client", 1000, 0, Flags.SYN),
        ("server", 5000, 1001, Flags.SYN | A),
        ("client", 1001, 5001, A),
        ("client", 1001, 5001, Flags.FIN | A),
        ("server", 5001, 1002, A),
        ("server", 5001, 1002, Flags.FIN | A),
        ("client", 1002, 5002, A),
    ]
    timeline = Timeline(title="lost-final-ack", producer="lab", meta={"realtime_offset": 1.7e9})
    for i, (who, seq, ack, flags) in enumerate(rows):
        timeline.add(lab_packet(who, seq, ack, flags, 10.0 + i * 0.001, dropped and i == 6))
    # The client reads the server's EOF: its comment shares the dropped ACK's.
    timeline.add(ApiCall(10.0058, "client", "recv", ("1024",), "b''", started=10.0055))
    return timeline


def test_dropped_by_wire_marker_is_a_comment_line() -> None:
    assert dropped_by_wire(f"client: close() = 0\n{DROPPED_BY_WIRE}: dropped by fault 1")
    assert dropped_by_wire(f"{DROPPED_BY_WIRE}: ")
    assert not dropped_by_wire("wire: held until 2 FINs crossed")
    assert not dropped_by_wire(f"client: send({DROPPED_BY_WIRE!r}) = 19")
    assert not dropped_by_wire(None) and not dropped_by_wire("")


def test_lab_pcapng_dropped_packet_never_reaches_its_receiver(tmp_path: Path) -> None:
    # The server's kernel never gets the client's last ACK: it stays in
    # LAST-ACK (and would retransmit its FIN, RFC 9293 §3.6), while the
    # client, which sent it, is in TIME-WAIT.
    dropped_path, delivered_path = tmp_path / "dropped.pcapng", tmp_path / "delivered.pcapng"
    write_pcapng(lost_final_ack(dropped=True), dropped_path)
    write_pcapng(lost_final_ack(dropped=False), delivered_path)
    lost, seen = analyze_file(dropped_path), analyze_file(delivered_path)
    [conn], [conn_seen] = lost.connections, seen.connections
    assert (conn.client.final_state, conn.server.final_state) == (
        State.TIME_WAIT,
        State.LAST_ACK,
    )
    assert conn_seen.server.final_state is State.CLOSED  # the same file without the marker
    server = [c.new for c in timeline_for(lost.packets, conn).state_changes("server")]
    assert server == [
        State.LISTEN, State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT, State.LAST_ACK
    ]  # fmt: skip
    client = [c.new for c in timeline_for(lost.packets, conn).state_changes("client")]
    assert client[-3:] == [State.FIN_WAIT_1, State.FIN_WAIT_2, State.TIME_WAIT]
    # Zeek and Wireshark would see the packet in the file: their views do not change.
    assert (conn.zeek_conn_state, conn.zeek_history) == (
        conn_seen.zeek_conn_state,
        conn_seen.zeek_history,
    )
    assert [p.analysis for p in lost.packets] == [p.analysis for p in seen.packets]
    assert [p.dropped_by_wire for p in lost.packets] == [False] * 6 + [True]
    assert conn.dropped_by_wire == [7] and conn_seen.dropped_by_wire == []
    ladder = timeline_for(lost.packets, conn)
    assert [p.dropped for p in ladder.packets()] == [False] * 6 + [True]
    # The lab's own timeline, inferred directly, agrees with the file.
    direct = infer_states(lost_final_ack(dropped=True))
    assert state_path(direct, "server") == server  # the first old state is LISTEN
    assert state_path(direct, "client")[-1] is State.TIME_WAIT
    # --packets marks the packet, --json lists its frame number.
    lines = CliRunner().invoke(cli, ["analyze", str(dropped_path), "--packets"]).stdout
    marked = [line for line in lines.splitlines() if "dropped_by_wire" in line]
    assert len(marked) == 1 and marked[0].split()[0] == "7"
    assert marked[0].endswith("client=TIME-WAIT server=LAST-ACK")
    result = CliRunner().invoke(cli, ["analyze", str(dropped_path), "--json"])
    assert json.loads(result.stdout)["dropped_by_wire"] == [7]


def test_lab_pcapng_dropped_syns_leave_the_listener_listening(tmp_path: Path) -> None:
    # syn-timeout: every SYN is blackholed; the client is in SYN-SENT, the
    # server never leaves LISTEN (no SYN arrived, RFC 9293 §3.10.7.2).
    timeline = Timeline(title="syn-timeout", producer="lab")
    for i in range(3):
        timeline.add(lab_packet("client", 1000, 0, Flags.SYN, 1.0 + 2**i, dropped=True))
    path = tmp_path / "syn-timeout.pcapng"
    write_pcapng(timeline, path)
    analysis = analyze_file(path)
    [conn] = analysis.connections
    assert (conn.client.final_state, conn.server.final_state) == (State.SYN_SENT, State.LISTEN)
    assert conn.zeek_conn_state == "S0" and conn.dropped_by_wire == [1, 2, 3]
    assert [c for c in infer_states(timeline) if c.endpoint == "server"] == []
    assert state_path(infer_states(timeline), "client") == [State.CLOSED, State.SYN_SENT]
