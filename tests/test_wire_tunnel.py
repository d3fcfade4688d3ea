"""Teredo and GTP-U records (parse/build pairs) and decode_frame's
decapsulation, on hand-built frames and on Zeek's two tunnel traces."""

from __future__ import annotations

import socket
import struct

import dpkt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import SHARED
from tcplab.wire import NotTcp, TcpPacket, WireError, decode_frame
from tcplab.wire.checksum import tcp_checksum
from tcplab.wire.tunnel import (
    GtpExtension,
    GtpU,
    Teredo,
    TeredoAuth,
    TeredoOrigin,
    UdpHeader,
    find_tunnel,
)

TRACES = SHARED / "peer-traces/zeek/traces/tunnels"
LINKTYPE_RAW = 101  # a bare IPv4/IPv6 packet, no link header


def tcp_segment(src: str, dst: str, sport: int, dport: int, payload: bytes = b"") -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
    checksum = tcp_checksum(src, dst, header + payload)
    return header[:16] + struct.pack("!H", checksum) + header[18:] + payload


def ipv4(src: str, dst: str, protocol: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0,
        64,
        protocol,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), next_header, 60)
        + socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + payload
    )


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return UdpHeader(sport, dport, 8 + len(payload), 0).build() + payload


def inner_tcp_v4() -> bytes:
    segment = tcp_segment("10.0.0.1", "10.0.0.2", 40000, 80, b"hello")
    return ipv4("10.0.0.1", "10.0.0.2", 6, segment)


def inner_tcp_v6() -> bytes:
    segment = tcp_segment("2001:0:4137:9e50::1", "2001:db8::2", 1286, 80)
    return ipv6("2001:0:4137:9e50::1", "2001:db8::2", 6, segment)


# -- records ---------------------------------------------------------------


def test_gtp_u_with_extension_chain_round_trips() -> None:
    # TS 29.281 §5.2.2: a PDU Session Container (0x85) then a UDP Port
    # extension (0x40), each one 4-octet unit, the chain ending in type 0.
    raw = (
        bytes((0x34, 0xFF))
        + struct.pack("!HI", 4 + 8 + 20, 0xBF2E)
        + struct.pack("!HBB", 7, 0, 0x85)
        + bytes((1, 0x10, 0x05, 0x40))
        + bytes((1, 0x08, 0x68, 0x00))
    )
    gtp = GtpU.parse(raw)
    assert gtp.version == 1
    assert gtp.sequence == 7
    assert gtp.extensions == (GtpExtension(0x85, b"\x10\x05"), GtpExtension(0x40, b"\x08\x68"))
    assert gtp.header_len == len(raw)
    assert gtp.build() == raw


def test_gtp_u_without_optional_fields_is_eight_octets() -> None:
    raw = bytes((0x30, 0xFF)) + struct.pack("!HI", 40, 0x9E40BA4F)
    gtp = GtpU.parse(raw)
    assert (gtp.header_len, gtp.teid, gtp.sequence, gtp.extensions) == (8, 0x9E40BA4F, None, ())
    assert gtp.build() == raw


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (bytes((0x30, 0xFF, 0, 0)), "truncated GTP-U header"),
        (bytes((0x20, 0xFF, 0, 0, 0, 0, 0, 1)), "not GTPv1-U"),  # PT=0: GTP'
        (bytes((0x34, 0xFF, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0x85, 0, 1, 2, 0)), "length 0"),
        (bytes((0x34, 0xFF, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0x85, 2, 1, 2, 0)), "runs past"),
    ],
)
def test_gtp_u_damage_raises(raw: bytes, problem: str) -> None:
    with pytest.raises(WireError, match=problem):
        GtpU.parse(raw)


def test_teredo_auth_and_origin_round_trip() -> None:
    # RFC 4380 §5.1.1; the origin port and address go inverted on the wire.
    teredo = Teredo(
        TeredoAuth(b"id", b"", bytes.fromhex("cd5669400b22df88"), 0),
        TeredoOrigin(3797, socket.inet_aton("70.55.215.234")),
    )
    raw = teredo.build()
    assert raw[:2] == b"\x00\x01"
    assert raw[teredo.auth.size if teredo.auth else 0 :][:4] == bytes((0, 0, 0xF1, 0x2A))
    parsed = Teredo.parse(raw + inner_tcp_v6())
    assert parsed == teredo
    assert parsed.header_len == len(raw)


def test_teredo_without_ipv6_raises() -> None:
    with pytest.raises(WireError, match="no IPv6 header"):
        Teredo.parse(TeredoOrigin(1, b"\x01\x02\x03\x04").build() + inner_tcp_v4())


@given(
    port=st.integers(0, 0xFFFF),
    address=st.binary(min_size=4, max_size=4),
    client_id=st.binary(max_size=20),
    auth_value=st.binary(max_size=20),
    nonce=st.binary(min_size=8, max_size=8),
    confirmation=st.integers(0, 255),
)
def test_teredo_build_parse_inverse(
    port: int, address: bytes, client_id: bytes, auth_value: bytes, nonce: bytes, confirmation: int
) -> None:
    teredo = Teredo(
        TeredoAuth(client_id, auth_value, nonce, confirmation), TeredoOrigin(port, address)
    )
    assert Teredo.parse(teredo.build() + inner_tcp_v6()) == teredo


def test_teredo_heuristic_needs_the_ipv6_length_to_fit() -> None:
    """Off port 3544, only a datagram whose IPv6 payload length accounts
    for exactly its rest is Teredo (tshark's heuristic)."""
    payload = inner_tcp_v6()
    header = UdpHeader(32900, 3797, 8 + len(payload), 0)
    found = find_tunnel(header, payload, 0, len(payload))
    assert not isinstance(found, str) and found[0] == "teredo"
    assert find_tunnel(header, payload + b"\0", 0, len(payload) + 1) == "UDP"
    # On the Teredo port itself the length is not checked (RFC 4380 §2.2).
    on_port = UdpHeader(3797, 3544, 8 + len(payload) + 1, 0)
    assert not isinstance(find_tunnel(on_port, payload + b"\0", 0, len(payload) + 1), str)


# -- decode_frame ----------------------------------------------------------


def test_decode_frame_opens_gtp_u() -> None:
    gtp = GtpU(0x30, 0xFF, len(inner_tcp_v4()), 0xBF2E).build()
    frame = ipv4("167.55.105.244", "207.233.125.40", 17, udp(5906, 2152, gtp + inner_tcp_v4()))
    packet = decode_frame(LINKTYPE_RAW, frame)
    assert isinstance(packet, TcpPacket)
    assert (packet.src, packet.dst, packet.sport, packet.dport) == (
        "10.0.0.1",
        "10.0.0.2",
        40000,
        80,
    )
    assert packet.payload == b"hello"
    assert packet.checksum_ok is True
    assert (packet.tunnel, packet.outer_src, packet.outer_dst) == (
        "gtp",
        "167.55.105.244",
        "207.233.125.40",
    )
    assert (packet.outer_sport, packet.outer_dport) == (5906, 2152)
    assert frame[packet.tcp_offset : packet.tcp_offset + 2] == struct.pack("!H", 40000)


def test_decode_frame_gtp_u_other_messages_are_not_tcp() -> None:
    echo = GtpU(0x32, 1, 4, 0, sequence=1, npdu=0).build()  # Echo Request
    frame = ipv4("1.1.1.1", "2.2.2.2", 17, udp(2152, 2152, echo))
    assert decode_frame(LINKTYPE_RAW, frame) == NotTcp("GTP-U message 1")


def test_decode_frame_opens_teredo_with_origin_indication() -> None:
    teredo = Teredo(origin=TeredoOrigin(32900, socket.inet_aton("83.170.1.38"))).build()
    frame = ipv4("192.168.2.16", "83.170.1.38", 17, udp(3797, 32900, teredo + inner_tcp_v6()))
    packet = decode_frame(LINKTYPE_RAW, frame)
    assert isinstance(packet, TcpPacket)
    assert packet.ip_version == 6
    assert (packet.src, packet.dst) == ("2001:0:4137:9e50::1", "2001:db8::2")
    assert packet.checksum_ok is True
    assert packet.tunnel == "teredo"
    assert packet.length == 0


def test_decode_frame_plain_udp_stays_udp() -> None:
    frame = ipv4("1.1.1.1", "2.2.2.2", 17, udp(1920, 53, b"\x12\x34" + bytes(60)))
    assert decode_frame(LINKTYPE_RAW, frame) == NotTcp("UDP")


def test_decode_frame_plain_tcp_has_no_tunnel() -> None:
    packet = decode_frame(LINKTYPE_RAW, inner_tcp_v4())
    assert isinstance(packet, TcpPacket)
    assert (packet.tunnel, packet.outer_src, packet.outer_sport) == (None, None, None)


def test_decode_frame_gtp_in_gtp_is_opened_twice() -> None:
    """TCP in GTP-U in GTP-U: both levels are opened (bounded by MAX_TUNNELS)."""
    tunnelled = GtpU(0x30, 0xFF, len(inner_tcp_v4()), 1).build() + inner_tcp_v4()
    inner = ipv4("10.1.1.1", "10.2.2.2", 17, udp(2152, 2152, tunnelled))
    outer_payload = GtpU(0x30, 0xFF, len(inner), 2).build() + inner
    frame = ipv4("1.1.1.1", "2.2.2.2", 17, udp(2152, 2152, outer_payload))
    packet = decode_frame(LINKTYPE_RAW, frame)
    assert isinstance(packet, TcpPacket)
    assert (packet.tunnel, packet.outer_src, packet.src) == ("gtp/gtp", "1.1.1.1", "10.0.0.1")


def test_decode_frame_empty_inner_gtp_says_where() -> None:
    inner = ipv4("10.1.1.1", "10.2.2.2", 17, udp(2152, 2152, GtpU(0x30, 0xFF, 0, 1).build()))
    outer_payload = GtpU(0x30, 0xFF, len(inner), 2).build() + inner
    frame = ipv4("1.1.1.1", "2.2.2.2", 17, udp(2152, 2152, outer_payload))
    assert decode_frame(LINKTYPE_RAW, frame) == NotTcp("gtp: GTP-U without an IP packet")


# -- the Zeek traces -------------------------------------------------------


@pytest.mark.skipif(not TRACES.is_dir(), reason="Zeek traces not present")
def test_teredo_trace_headers_match_tshark() -> None:
    """Every Teredo datagram of the trace, by frame number, with what
    tshark -o teredo.heuristic_teredo:TRUE shows of its headers: frames
    6 and 7 carry an authentication header (nonce cd5669400b22df88), 7 and
    31 an origin indication; frames 29-57 less 50 and 51 are Teredo too."""
    with (TRACES / "Teredo.pcap").open("rb") as stream:
        frames = [frame for _, frame in dpkt.pcap.Reader(stream)]
    seen: dict[int, tuple[tuple[str, int] | None, str | None]] = {}
    for number, frame in enumerate(frames, 1):
        outer_ip = 14  # Ethernet, IPv4 throughout
        if frame[12:14] != b"\x08\x00" or frame[outer_ip + 9] != 17:
            continue
        udp_offset = outer_ip + (frame[outer_ip] & 0xF) * 4
        header = UdpHeader.parse(frame, udp_offset)
        found = find_tunnel(header, frame, udp_offset + 8, udp_offset + header.length)
        if isinstance(found, str):
            continue
        name, teredo, _ = found
        assert name == "teredo" and isinstance(teredo, Teredo)
        origin = teredo.origin
        seen[number] = (
            (socket.inet_ntoa(origin.address), origin.port) if origin else None,
            teredo.auth.nonce.hex() if teredo.auth else None,
        )
    expected_numbers = {6, 7, *range(29, 50), *range(52, 58)}
    assert set(seen) == expected_numbers
    assert seen[6] == (None, "cd5669400b22df88")
    assert seen[7] == (("70.55.215.234", 3797), "cd5669400b22df88")
    assert seen[31] == (("83.170.1.38", 32900), None)
    assert all(seen[n] == (None, None) for n in expected_numbers - {6, 7, 31})
