"""decode_frame: the per-record entry point.  Reasons for NotTcp, integrity
errors with frame offsets, truncated captures, padding, checksum verdicts,
and a live loopback capture decoded against what the kernel sent."""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import needs_tshark, tshark_fields
from tcplab.wire import (
    Flags,
    IPv4Header,
    IPv6Header,
    Mss,
    Nop,
    NotTcp,
    SackPermitted,
    TcpHeader,
    TcpPacket,
    Timestamps,
    WindowScale,
    WireError,
    decode_frame,
)
from tcplab.wire.checksum import offload_partial_sum

SRC, DST = "192.0.2.1", "198.51.100.2"
ETH_HEAD = bytes.fromhex("020000000002020000000001")


def tcp_frame(
    payload: bytes = b"",
    *,
    options: tuple[Nop | Timestamps | Mss, ...] = (Nop(), Nop(), Timestamps(100, 200)),
    flags: Flags = Flags.ACK | Flags.PSH,
    src: str = SRC,
    dst: str = DST,
) -> bytes:
    segment = TcpHeader.create(40000, 80, 1000, 2000, flags, 502, options).build(
        payload, src=src, dst=dst
    )
    if ":" in src:
        return ETH_HEAD + b"\x86\xdd" + IPv6Header.create(src, dst, 6, len(segment)).build(segment)
    return ETH_HEAD + b"\x08\x00" + IPv4Header.create(src, dst, 6, len(segment)).build(segment)


def test_typical_frame() -> None:
    frame = tcp_frame(b"hello")
    packet = decode_frame(1, frame)
    assert isinstance(packet, TcpPacket)
    assert (packet.ip_version, packet.src, packet.dst, packet.ttl) == (4, SRC, DST, 64)
    assert (packet.sport, packet.dport, packet.seq, packet.ack) == (40000, 80, 1000, 2000)
    assert packet.flags == Flags.PSH | Flags.ACK
    assert packet.tcp.options == (Nop(), Nop(), Timestamps(100, 200))
    assert packet.payload == b"hello" and packet.length == 5
    assert packet.ip_len == 20 + 32 + 5 and packet.ip_offset == 14 and packet.tcp_offset == 34
    assert packet.checksum_ok is True and not packet.truncated


def test_ipv6_frame() -> None:
    packet = decode_frame(1, tcp_frame(b"x" * 10, src="2001:db8::1", dst="2001:db8::2"))
    assert isinstance(packet, TcpPacket)
    assert (packet.ip_version, packet.src, packet.dst) == (6, "2001:db8::1", "2001:db8::2")
    assert packet.length == 10 and packet.ip_len == 40 + 32 + 10 and packet.checksum_ok is True


def test_ipv4_options_move_the_tcp_header() -> None:
    segment = TcpHeader.create(1, 2, 3, 4, Flags.SYN, 5).build(b"ab", src=SRC, dst=DST)
    router_alert = bytes.fromhex("94040000")  # RFC 2113
    ip = IPv4Header.create(SRC, DST, 6, len(segment), options=router_alert)
    packet = decode_frame(1, ETH_HEAD + b"\x08\x00" + ip.build(segment))
    assert isinstance(packet, TcpPacket)
    assert packet.ip_header_len == 24 and packet.tcp_offset == 38
    assert packet.length == 2 and packet.payload == b"ab" and packet.checksum_ok is True


def test_ethernet_padding_is_not_payload() -> None:
    frame = tcp_frame(options=())  # 54 bytes: Ethernet pads it to 60
    packet = decode_frame(1, frame + bytes(6))
    assert isinstance(packet, TcpPacket)
    assert packet.payload == b"" and packet.length == 0 and packet.checksum_ok is True


def test_bad_checksum() -> None:
    frame = bytearray(tcp_frame(b"data"))
    frame[-1] ^= 0xFF
    packet = decode_frame(1, bytes(frame))
    assert isinstance(packet, TcpPacket) and packet.checksum_ok is False
    assert decode_frame(1, bytes(frame), verify_checksum=False).checksum_ok is None  # type: ignore[union-attr]


def with_checksum(frame: bytes, value: int) -> bytes:
    return frame[:50] + struct.pack("!H", value) + frame[52:]


def test_offloaded_checksum_is_unverifiable() -> None:
    frame = tcp_frame(b"data")
    zero = decode_frame(1, with_checksum(frame, 0))
    assert isinstance(zero, TcpPacket) and zero.checksum_ok is None
    partial = offload_partial_sum(SRC, DST, 32 + 4)
    offloaded = decode_frame(1, with_checksum(frame, partial))
    assert isinstance(offloaded, TcpPacket) and offloaded.checksum_ok is None


def test_truncated_capture_payload() -> None:
    frame = tcp_frame(b"x" * 100)
    packet = decode_frame(1, frame[:80])  # snap length 80
    assert isinstance(packet, TcpPacket)
    assert packet.length == 100 and packet.payload == b"x" * 14
    assert packet.truncated and packet.checksum_ok is None


def test_truncated_capture_inside_options() -> None:
    # A snap length that ends inside the timestamp option (TCP at 34, TS at 56).
    frame = tcp_frame(b"x" * 100)
    packet = decode_frame(1, frame[:62])
    assert isinstance(packet, TcpPacket)
    assert packet.tcp.options == (Nop(), Nop())
    assert packet.tcp.option_error == (
        "options truncated by capture at offset 62: 28 of 32 header bytes captured"
    )
    assert packet.tcp.option_text() == "nop,nop"  # a capture cut is not a bad option
    assert packet.length == 100 and packet.payload == b"" and packet.checksum_ok is None
    assert packet.tcp.build() == frame[34:62]


def test_tso_total_length_zero() -> None:
    frame = bytearray(tcp_frame(b"y" * 30))
    frame[16:18] = b"\x00\x00"
    packet = decode_frame(1, bytes(frame))
    assert isinstance(packet, TcpPacket)
    assert packet.ip_len == len(frame) - 14 and packet.length == 30


# -- not TCP -------------------------------------------------------------------


def ipv4_frame(protocol: int, body: bytes, *, flags: int = 0b010, frag_offset: int = 0) -> bytes:
    base = IPv4Header.create(SRC, DST, protocol, len(body))
    header = IPv4Header(5, 0, base.total_length, 1, flags, frag_offset, 64, protocol, 0, SRC, DST)
    return ETH_HEAD + b"\x08\x00" + header.build(body)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (ipv4_frame(17, bytes(8)), "UDP"),
        (ipv4_frame(1, bytes(8)), "ICMP"),
        (ipv4_frame(99, bytes(8)), "IPv4 protocol 99"),
        (ipv4_frame(6, bytes(24), flags=0b001), "IPv4 fragment (offset 0)"),
        (ipv4_frame(6, bytes(24), frag_offset=185), "IPv4 fragment (offset 1480)"),
        (
            ETH_HEAD + b"\x86\xdd" + IPv6Header.create("::1", "::2", 58, 8).build(bytes(8)),
            "IPv6 no TCP (next header 58)",
        ),
        (
            ETH_HEAD
            + b"\x86\xdd"
            + IPv6Header.create(
                "::1", "::2", 6, 24, extension_headers=((44, b"\x00\xb9\x00\x00\x00\x01"),)
            ).build(bytes(24)),
            "IPv6 fragment (offset 184)",
        ),
        (ETH_HEAD + b"\x08\x06" + bytes(28), "ARP"),
    ],
)
def test_not_tcp(frame: bytes, reason: str) -> None:
    assert decode_frame(1, frame) == NotTcp(reason)


def test_ipv6_atomic_fragment_is_decoded() -> None:
    segment = TcpHeader.create(1, 2, 3, 4, Flags.SYN, 5).build(src="::1", dst="::2")
    ip = IPv6Header.create("::1", "::2", 6, len(segment), extension_headers=((44, bytes(6)),))
    packet = decode_frame(101, ip.build(segment))
    assert isinstance(packet, TcpPacket)
    assert packet.tcp_offset == 48 and packet.checksum_ok is True and packet.length == 0


# -- integrity errors carry the frame offset ---------------------------------------


def decode_error(frame: bytes) -> WireError:
    with pytest.raises(WireError) as err:
        decode_frame(1, frame)
    return err.value


def test_ihl_below_5() -> None:
    frame = bytearray(tcp_frame())
    frame[14] = 0x43
    assert str(decode_error(bytes(frame))) == "offset 14: IPv4 IHL 3 < 5"


def test_total_length_below_ihl() -> None:
    frame = bytearray(tcp_frame())
    frame[16:18] = b"\x00\x13"
    assert str(decode_error(bytes(frame))) == "offset 16: IPv4 total length 19 < header length 20"


def test_truncated_ip_header() -> None:
    err = decode_error(tcp_frame()[:30])
    assert (err.offset, err.message) == (30, "truncated IPv4 header: 16 of 20 bytes")
    err = decode_error(tcp_frame(src="::1", dst="::2")[:50])
    assert (err.offset, err.message) == (50, "truncated IPv6 header: 36 of 40 bytes")


def test_data_offset_below_5() -> None:
    frame = bytearray(tcp_frame())
    frame[46] = 0x30
    assert str(decode_error(bytes(frame))) == "offset 46: TCP data offset 3 < 5"


def test_data_offset_beyond_packet() -> None:
    frame = bytearray(tcp_frame(options=()))
    frame[46] = 0xF0
    err = decode_error(bytes(frame) + bytes(40))  # the bytes exist, but past the IP length
    assert err.offset == 46
    assert err.message == "TCP data offset 15 (60 bytes) runs past the IP packet (20 bytes)"


def test_tcp_header_past_ip_packet() -> None:
    frame = bytearray(tcp_frame(options=()))
    frame[16:18] = b"\x00\x1e"  # total length 30: 10 bytes for TCP
    err = decode_error(bytes(frame))
    assert (err.offset, err.message) == (
        34,
        "TCP header (20 bytes) runs past the IP packet (10 bytes left)",
    )


def test_truncated_tcp_header() -> None:
    err = decode_error(tcp_frame()[:44])
    assert (err.offset, err.message) == (44, "truncated TCP header: 10 of 20 bytes captured")


def test_option_error_offset_is_in_the_frame() -> None:
    frame = bytearray(tcp_frame(b"z"))
    frame[57] = 0  # the timestamp option's length byte (TCP starts at 34, TS at 56)
    packet = decode_frame(1, bytes(frame))
    assert isinstance(packet, TcpPacket)
    assert packet.tcp.option_error == "malformed option kind 8 at offset 56: length 0 < 2"
    assert packet.payload == b"z" and packet.checksum_ok is False


@given(st.binary(max_size=120), st.sampled_from([0, 1, 101, 113, 276, 228, 229]))
def test_garbage_never_crashes_otherwise(frame: bytes, linktype: int) -> None:
    """Any bytes: a packet, a reason, or a WireError; nothing else escapes."""
    try:
        result = decode_frame(linktype, frame)
    except WireError as err:
        assert 0 <= err.offset <= len(frame)
    else:
        assert isinstance(result, TcpPacket | NotTcp)


@given(st.binary(max_size=200), st.integers(0, 0xFFFFFFFF), st.integers(0, 0x1FF))
def test_decode_of_built_frame(payload: bytes, seq: int, flag_bits: int) -> None:
    segment = TcpHeader.create(
        5, 6, seq, 0, Flags(flag_bits), 7, (Mss(1400), WindowScale(3))
    ).build(payload, src=SRC, dst=DST)
    frame = ETH_HEAD + b"\x08\x00" + IPv4Header.create(SRC, DST, 6, len(segment)).build(segment)
    packet = decode_frame(1, frame)
    assert isinstance(packet, TcpPacket)
    assert packet.seq == seq and int(packet.flags) == flag_bits
    assert packet.payload == payload and packet.length == len(payload)
    assert packet.checksum_ok is True


# -- the kernel as the source of real frames -------------------------------------

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="AF_PACKET needs root")
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_live_loopback_handshake(family: int) -> None:
    """Capture a real connection on lo with AF_PACKET and decode it: Linux's
    SYN options, the handshake flags, the data length, and checksums left
    partial by the loopback's checksum offload."""
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniffer.bind(("lo", 0))
    listener = socket.socket(family, socket.SOCK_STREAM)
    packets: list[TcpPacket] = []
    try:
        listener.bind((host, 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        client = socket.create_connection((host, port), timeout=5)
        server, _ = listener.accept()
        client.sendall(b"hello, wire")
        assert server.recv(100) == b"hello, wire"
        client.close()
        server.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(packets) < 6:
            ready, _, _ = select.select([sniffer], [], [], 0.2)
            if not ready:
                continue
            frame, address = sniffer.recvfrom(65535)
            if address[2] != PACKET_OUTGOING:  # lo shows each frame twice
                continue
            result = decode_frame(1, frame)
            if isinstance(result, TcpPacket) and port in (result.sport, result.dport):
                packets.append(result)
    finally:
        sniffer.close()
        listener.close()
    syn, syn_ack, ack, data = packets[:4]
    assert syn.flags == Flags.SYN and syn_ack.flags == Flags.SYN | Flags.ACK
    assert ack.flags == Flags.ACK and data.flags == Flags.PSH | Flags.ACK
    mss = 65495 if family == socket.AF_INET else 65476  # MTU 65536 minus headers
    # Linux's SYN layout (tcp_options_write): mss, sackOK+TS, nop+wscale.
    assert [type(o) for o in syn.tcp.options] == [Mss, SackPermitted, Timestamps, Nop, WindowScale]
    assert syn.tcp.options[0] == Mss(mss)
    assert syn.tcp.option_text().startswith(f"mss {mss},sackOK,TS val ")
    assert syn_ack.ack == (syn.seq + 1) % 2**32
    assert data.length == 11 and data.payload == b"hello, wire"
    assert data.src == host and data.ip_version == (4 if family == socket.AF_INET else 6)
    # On lo the kernel never finishes CHECKSUM_PARTIAL sums: the field holds
    # the folded pseudo-header sum, which we call unverifiable, not bad.
    for packet in packets:
        assert packet.checksum_ok is not False
        if packet.checksum_ok is None:
            segment_len = packet.ip_len - packet.ip_header_len
            assert packet.tcp.checksum == offload_partial_sum(packet.src, packet.dst, segment_len)


# -- tshark on the odd-length cases ---------------------------------------------


def pcap(records: list[tuple[bytes, int]]) -> bytes:
    """Classic little-endian pcap, Ethernet; each record (captured bytes, wire length)."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for index, (data, wire_len) in enumerate(records):
        out += struct.pack("<IIII", index, 0, len(data), wire_len) + data
    return out


@needs_tshark
def test_lengths_agree_with_tshark(tmp_path: Path) -> None:
    """tcp.len (by the IP header) on truncated captures, padding and TSO."""
    full = tcp_frame(b"x" * 100)
    tso = bytearray(tcp_frame(b"y" * 30))
    tso[16:18] = b"\x00\x00"
    records = [
        (full, len(full)),
        (full[:80], len(full)),  # snap length inside the payload
        (full[:62], len(full)),  # snap length inside the options
        (tcp_frame(options=()) + bytes(6), 60),  # Ethernet padding
        (bytes(tso), len(tso)),  # TSO: IPv4 total length 0
        (tcp_frame(b"z" * 7, src="2001:db8::1", dst="2001:db8::2") + bytes(4), 0),
    ]
    records = [(data, wire or len(data)) for data, wire in records]
    path = tmp_path / "lengths.pcap"
    path.write_bytes(pcap(records))
    out = tshark_fields(path, ["tcp.len", "tcp.hdr_len", "tcp.srcport"])
    assert len(out) == len(records)
    for (data, _), row in zip(records, out, strict=True):
        packet = decode_frame(1, data)
        assert isinstance(packet, TcpPacket)
        assert (packet.length, packet.tcp.header_len, packet.sport) == (
            int(row["tcp.len"]),
            int(row["tcp.hdr_len"]),
            int(row["tcp.srcport"]),
        ), data.hex()
