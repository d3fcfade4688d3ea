"""decode_frame's strict checksum verdict (Zeek's and tshark-with-validation's
view), the IPv4 header checksum verdict and ``datagram_len`` (the IP header's
own length, Zeek's ip_bytes) against the PPPoE-cut ``ip_len``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SHARED
from tcplab.capture import TcpRecords, open_capture
from tcplab.wire import Flags, IPv4Header, TcpHeader, TcpPacket, decode_frame
from tcplab.wire.checksum import offload_partial_sum

SRC, DST = "192.0.2.1", "198.51.100.2"
ETH_HEAD = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
PPPOE = SHARED / "peer-traces/zeek/traces/pppoe-over-qinq.pcap"


def frame_with_checksum(checksum: int | None, payload: bytes = b"data") -> bytes:
    """An Ethernet/IPv4/TCP frame; ``checksum`` None: the correct one."""
    header = TcpHeader.create(40000, 80, 1000, 2000, Flags.ACK | Flags.PSH, 502)
    segment = header.build(payload, src=SRC, dst=DST)
    if checksum is not None:
        segment = segment[:16] + checksum.to_bytes(2, "big") + segment[18:]
    return ETH_HEAD + IPv4Header.create(SRC, DST, 6, len(segment)).build(segment)


def decode_both(frame: bytes) -> tuple[TcpPacket, TcpPacket]:
    lenient = decode_frame(1, frame)
    strict = decode_frame(1, frame, strict_checksum=True)
    assert isinstance(lenient, TcpPacket) and isinstance(strict, TcpPacket)
    return lenient, strict


def test_good_checksum_is_good_either_way() -> None:
    lenient, strict = decode_both(frame_with_checksum(None))
    assert lenient.checksum_ok is True and strict.checksum_ok is True
    assert strict.ip_checksum_ok is True and lenient.ip_checksum_ok is None


@pytest.mark.parametrize("kind", ["zero", "partial"])
def test_offloaded_checksum_is_bad_only_when_strict(kind: str) -> None:
    # CHECKSUM_PARTIAL leaves the folded pseudo-header sum (RFC 9293 §3.1 pseudo-header).
    value = 0 if kind == "zero" else offload_partial_sum(SRC, DST, 20 + 4)
    lenient, strict = decode_both(frame_with_checksum(value))
    assert lenient.checksum_ok is None
    assert strict.checksum_ok is False


def test_wrong_checksum_is_bad_either_way() -> None:
    good = decode_frame(1, frame_with_checksum(None))
    assert isinstance(good, TcpPacket)
    lenient, strict = decode_both(frame_with_checksum(good.tcp.checksum ^ 0x0101))
    assert lenient.checksum_ok is False and strict.checksum_ok is False


def test_ipv4_header_checksum_verdict() -> None:
    frame = bytearray(frame_with_checksum(None))
    frame[14 + 8] -= 1  # TTL changed without fixing the header checksum (RFC 791 §3.1)
    strict = decode_frame(1, bytes(frame), strict_checksum=True)
    assert isinstance(strict, TcpPacket)
    assert strict.ip_checksum_ok is False and strict.checksum_ok is True


def test_datagram_len_is_the_ip_header_length() -> None:
    frame = frame_with_checksum(None) + bytes(6)  # Ethernet padding
    packet = decode_frame(1, frame)
    assert isinstance(packet, TcpPacket)
    assert packet.datagram_len == packet.ip_len == 20 + 20 + 4


def test_pppoe_length_cut_keeps_the_ip_view() -> None:
    # Frame 19: the PPPoE length field ends the packet right after the TCP
    # header, the IP header claims 6 more bytes (present in the frame).
    with open_capture(PPPOE) as reader:
        found = {record.index: packet for record, packet in TcpRecords(reader)}
    with open_capture(PPPOE) as reader:
        strict = {r.index: p for r, p in TcpRecords(reader, strict_checksum=True)}
    packet = found[19]
    assert packet.length == 0 and packet.datagram_len == packet.ip_len + 6
    # tshark sums the cut segment (bad), Zeek the IP-delimited one (good).
    assert packet.checksum_ok is False and strict[19].checksum_ok is True
    if shutil.which("tshark"):
        fields = ["-T", "fields", "-e", "tcp.len", "-e", "ip.len"]
        out = subprocess.run(
            ["tshark", "-r", str(PPPOE), "-Y", "frame.number == 19", *fields],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert [int(x) for x in out] == [packet.length, packet.datagram_len]


def test_undecodable_frame_is_one_problem_and_reading_goes_on(tmp_path: Path) -> None:
    from tcplab.capture import PcapWriter

    good = frame_with_checksum(None)
    bad = bytearray(good)
    bad[14 + 20 + 12] = 0x30  # TCP data offset 3 < 5 (RFC 9293 §3.1)
    path = tmp_path / "mixed.pcap"
    with path.open("wb") as fh:
        writer = PcapWriter(fh, linktype=1)
        for i, data in enumerate((good, bytes(bad), good)):
            writer.write(i * 1000, data)
    with open_capture(path) as reader:
        records = TcpRecords(reader)
        indexes = [record.index for record, _ in records]
        assert indexes == [1, 3]
        assert (records.frames, records.tcp, records.undecodable) == (3, 2, 1)
        [problem] = records.problems
    assert "frame 2: TCP data offset 3 < 5" in problem.line(str(path))
    assert problem.offset == 24 + 16 + len(good) + 16 + 14 + 20 + 12
