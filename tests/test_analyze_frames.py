"""The analyzer reads through tcplab.capture and tcplab.wire: one problem line
per damaged frame while the readable packets are analysed, and a refused
connect (SYN answered by RST/ACK) never puts the server in SYN-RECEIVED."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tcplab.analyze import analyze_file, timeline_for
from tcplab.capture import PcapWriter
from tcplab.cli import cli
from tcplab.states import State
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
