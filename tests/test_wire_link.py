"""Link layers: every supported link type and encapsulation on literal
bytes, round trips of random layer stacks, and tshark as the referee on
one pcapng holding a frame of each kind."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import needs_tshark, tshark_fields
from tcplab.wire import (
    EthernetHeader,
    Flags,
    IPv4Header,
    IPv6Header,
    LinkType,
    MplsLabel,
    NotTcp,
    NullHeader,
    PppoeSession,
    Sll2Header,
    SllHeader,
    TcpHeader,
    TcpPacket,
    VlanTag,
    decode_frame,
    linktype_of,
    locate_network,
    parse_link,
)
from tcplab.wire.link import LinkLayer

SEGMENT = TcpHeader.create(40000, 80, 1, 0, Flags.SYN, 1024).build(src="10.1.0.1", dst="10.1.0.2")
IP4 = IPv4Header.create("10.1.0.1", "10.1.0.2", 6, len(SEGMENT)).build(SEGMENT)
SEGMENT6 = TcpHeader.create(40001, 80, 1, 0, Flags.SYN, 1024).build(src="fd00::1", dst="fd00::2")
IP6 = IPv6Header.create("fd00::1", "fd00::2", 6, len(SEGMENT6)).build(SEGMENT6)
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
ETH = MAC_B + MAC_A


def eth(ethertype: int, rest: bytes) -> bytes:
    return ETH + struct.pack("!H", ethertype) + rest


# (name, linktype, frame, expected ip version, expected IP offset)
CASES: list[tuple[str, int, bytes, int, int]] = [
    ("ethernet ipv4", 1, eth(0x0800, IP4), 4, 14),
    ("ethernet ipv6", 1, eth(0x86DD, IP6), 6, 14),
    ("802.1Q", 1, eth(0x8100, b"\x20\x64\x08\x00" + IP4), 4, 18),
    ("QinQ 88a8+8100", 1, eth(0x88A8, b"\x00\x0a\x81\x00\x00\x14\x86\xdd" + IP6), 6, 22),
    ("QinQ 9100", 1, eth(0x9100, b"\x00\x0a\x81\x00\x00\x14\x08\x00" + IP4), 4, 22),
    ("MPLS two labels ipv4", 1, eth(0x8847, b"\x00\x01\x00\x40\x00\x02\x01\x40" + IP4), 4, 22),
    ("MPLS ipv6", 1, eth(0x8847, b"\x00\x01\x01\x40" + IP6), 6, 18),
    ("VLAN then MPLS", 1, eth(0x8100, b"\x00\x05\x88\x47\x00\x01\x01\x40" + IP4), 4, 22),
    (
        "PPPoE ipv4",
        1,
        eth(0x8864, struct.pack("!BBHHH", 0x11, 0, 7, len(IP4) + 2, 0x21) + IP4),
        4,
        22,
    ),
    (
        "PPPoE ipv6",
        1,
        eth(0x8864, struct.pack("!BBHHH", 0x11, 0, 7, len(IP6) + 2, 0x57) + IP6),
        6,
        22,
    ),
    (
        "QinQ PPPoE",
        1,
        eth(0x8100, b"\x0e\x78\x81\x00\x09\xaa\x88\x64")
        + struct.pack("!BBHHH", 0x11, 0, 0x0F07, len(IP4) + 2, 0x21)
        + IP4,
        4,
        30,
    ),
    ("raw 101", 101, IP4, 4, 0),
    ("raw 101 v6", 101, IP6, 6, 0),
    ("DLT_RAW 12", 12, IP6, 6, 0),
    ("DLT_RAW 14", 14, IP4, 4, 0),
    ("ipv4 228", 228, IP4, 4, 0),
    ("ipv6 229", 229, IP6, 6, 0),
    ("SLL", 113, struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\0\0", 0x0800) + IP4, 4, 16),
    (
        "SLL vlan",
        113,
        struct.pack("!HHH8sH", 4, 1, 6, MAC_A + b"\0\0", 0x8100) + b"\x00\x07\x86\xdd" + IP6,
        6,
        20,
    ),
    ("SLL2", 276, struct.pack("!HHIHBB8s", 0x86DD, 0, 3, 1, 4, 6, MAC_A + b"\0\0") + IP6, 6, 20),
    ("null little-endian", 0, struct.pack("<I", 2) + IP4, 4, 4),
    ("null big-endian", 0, struct.pack(">I", 2) + IP4, 4, 4),
    ("null AF_INET6 24", 0, struct.pack("<I", 24) + IP6, 6, 4),
    ("null AF_INET6 28", 0, struct.pack("<I", 28) + IP6, 6, 4),
    ("null AF_INET6 30", 0, struct.pack(">I", 30) + IP6, 6, 4),
    ("loop", 108, struct.pack(">I", 2) + IP4, 4, 4),
]


@pytest.mark.parametrize(
    ("name", "linktype", "frame", "version", "offset"), CASES, ids=[c[0] for c in CASES]
)
def test_locate_and_decode(
    name: str, linktype: int, frame: bytes, version: int, offset: int
) -> None:
    assert locate_network(linktype, frame)[:2] == (version, offset)  # type: ignore[index]
    packet = decode_frame(linktype, frame)
    assert isinstance(packet, TcpPacket)
    assert packet.ip_version == version and packet.ip_offset == offset
    assert packet.src == ("10.1.0.1" if version == 4 else "fd00::1")
    assert packet.flags == Flags.SYN and packet.checksum_ok is True
    link = parse_link(linktype, frame)
    assert link.offset == offset
    assert link.build(frame[offset:]) == frame


NOT_IP = [
    ("ARP", 1, eth(0x0806, bytes(28)), "ARP"),
    ("LLC", 1, ETH + b"\x00\x26" + bytes(38), "802.3 LLC frame"),
    ("LLDP", 1, eth(0x88CC, bytes(30)), "LLDP"),
    ("other ethertype", 1, eth(0x1234, bytes(30)), "ethertype 0x1234"),
    (
        "MPLS pseudowire",
        1,
        eth(0x8847, b"\x00\x01\x01\x40" + bytes(4) + eth(0x0800, IP4)),
        "MPLS payload not IP (first nibble 0)",
    ),
    (
        "PPP LCP",
        1,
        eth(0x8864, struct.pack("!BBHHH", 0x11, 0, 7, 6, 0xC021) + bytes(4)),
        "PPP protocol 0xc021",
    ),
    ("PPPoE discovery", 1, eth(0x8863, bytes(20)), "PPPoE discovery"),
    ("truncated ethernet", 1, ETH, "truncated Ethernet header"),
    ("truncated vlan", 1, eth(0x8100, b"\x00"), "truncated VLAN tag"),
    ("null family 7", 0, struct.pack("<I", 7) + IP4, "loopback address family 7"),
    ("raw version 5", 101, b"\x50" + IP4[1:], "raw frame with IP version 5"),
    (
        "SLL CAN",
        113,
        struct.pack("!HHH8sH", 0, 280, 0, bytes(8), 0x000C) + bytes(16),
        "Linux cooked protocol 0x000c",
    ),
    ("unsupported", 147, IP4, "unsupported link type 147"),
    ("802.11", 105, IP4, "unsupported link type 105"),
]


@pytest.mark.parametrize(
    ("name", "linktype", "frame", "reason"), NOT_IP, ids=[c[0] for c in NOT_IP]
)
def test_not_ip(name: str, linktype: int, frame: bytes, reason: str) -> None:
    assert decode_frame(linktype, frame) == NotTcp(reason)


def test_linktype_numbers() -> None:
    assert [int(t) for t in LinkType] == [0, 1, 101, 108, 113, 228, 229, 276]
    assert linktype_of(12) is LinkType.RAW and linktype_of(14) is LinkType.RAW
    assert linktype_of(276) is LinkType.LINUX_SLL2
    assert linktype_of(147) is None


def test_record_fields() -> None:
    tag = VlanTag.parse(b"\x20\x64\x08\x00")
    assert (tag.pcp, tag.vid, tag.ethertype) == (1, 100, 0x0800)
    label = MplsLabel.parse(b"\x00\x02\x01\x40")
    assert label == MplsLabel(label=32, tc=0, bottom=True, ttl=64)
    assert label.build() == b"\x00\x02\x01\x40"
    assert NullHeader.parse(struct.pack(">I", 24)) == NullHeader(24, big_endian=True)
    pppoe = PppoeSession.parse(struct.pack("!BBHHH", 0x11, 0, 0x0F07, 42, 0x21))
    assert pppoe == PppoeSession(code=0, session_id=0x0F07, length=42, ppp_protocol=0x21)


def test_pppoe_length_cuts_ip_total_length() -> None:
    # zeek's pppoe-over-qinq.pcap frame 19: IP says 46, PPPoE says 40 (+2);
    # Wireshark follows PPPoE (tcp.len 0) and so do we.
    ip = bytearray(IP4 + bytes(6))
    ip[2:4] = struct.pack("!H", len(IP4) + 6)
    frame = eth(0x8864, struct.pack("!BBHHH", 0x11, 0, 7, len(IP4) + 2, 0x21) + bytes(ip))
    packet = decode_frame(1, frame)
    assert isinstance(packet, TcpPacket)
    assert packet.ip_len == len(IP4) and packet.length == 0


# -- random stacks round-trip ---------------------------------------------------

u16 = st.integers(0, 0xFFFF)
macs = st.binary(min_size=6, max_size=6)
vlan_tpids = st.sampled_from([0x8100, 0x88A8, 0x9100])
mpls_labels = st.lists(
    st.builds(
        MplsLabel, st.integers(0, 2**20 - 1), st.integers(0, 7), st.just(False), st.integers(0, 255)
    ),
    max_size=3,
)


@st.composite
def ethertype_stacks(draw: st.DrawFn, network: int) -> tuple[list[LinkLayer], int]:
    """Tags/labels/PPPoE after an outer header; returns layers and the first EtherType."""
    tpids = draw(st.lists(vlan_tpids, max_size=3))
    inner = draw(st.sampled_from(["plain", "mpls", "pppoe"]))
    final = {"plain": 0x0800 if network == 4 else 0x86DD, "mpls": 0x8847, "pppoe": 0x8864}[inner]
    types = [*tpids[1:], final]
    layers: list[LinkLayer] = [VlanTag(draw(u16), t) for t in types[: len(tpids)]]
    if inner == "mpls":
        stack = draw(mpls_labels)
        bottom = MplsLabel(draw(st.integers(0, 2**20 - 1)), 0, True, draw(st.integers(0, 255)))
        layers += [*stack, bottom]
    elif inner == "pppoe":
        ip_len = len(IP4 if network == 4 else IP6)
        layers.append(PppoeSession(0, draw(u16), ip_len + 2, 0x21 if network == 4 else 0x57))
    return layers, (tpids[0] if tpids else final)


@st.composite
def frames(draw: st.DrawFn) -> tuple[int, list[LinkLayer], bytes]:
    network = draw(st.sampled_from([4, 6]))
    kind = draw(st.sampled_from(["eth", "sll", "sll2", "null", "raw"]))
    ip = IP4 if network == 4 else IP6
    if kind == "raw":
        return 101, [], ip
    if kind == "null":
        family = 2 if network == 4 else draw(st.sampled_from([24, 28, 30]))
        return 0, [NullHeader(family, draw(st.booleans()))], ip
    inner, first = draw(ethertype_stacks(network))
    if kind == "eth":
        outer: LinkLayer = EthernetHeader(draw(macs), draw(macs), first)
        linktype = 1
    elif kind == "sll":
        outer = SllHeader(draw(st.integers(0, 4)), 1, 6, draw(macs) + b"\0\0", first)
        linktype = 113
    else:
        outer = Sll2Header(
            first,
            0,
            draw(st.integers(0, 2**32 - 1)),
            1,
            draw(st.integers(0, 4)),
            6,
            draw(macs) + b"\0\0",
        )
        linktype = 276
    return linktype, [outer, *inner], ip


@given(frames())
def test_link_stack_roundtrip(case: tuple[int, list[LinkLayer], bytes]) -> None:
    linktype, layers, ip = case
    frame = b"".join(layer.build() for layer in layers) + ip
    link = parse_link(linktype, frame)
    assert list(link.layers) == layers
    assert link.build(frame[link.offset :]) == frame
    assert frame[link.offset :] == ip
    packet = decode_frame(linktype, frame)
    assert isinstance(packet, TcpPacket)
    assert packet.ip_offset == link.offset
    assert packet.tcp.build() == (SEGMENT if ip is IP4 else SEGMENT6)


# -- tshark as the referee --------------------------------------------------------


def pcapng(frames: list[tuple[int, bytes]]) -> bytes:
    """A little-endian pcapng section with one interface per frame (so each
    frame can have its own link type)."""

    def block(kind: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        size = len(body) + 12
        return struct.pack("<II", kind, size) + body + struct.pack("<I", size)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype, _ in frames:
        out += block(1, struct.pack("<HHI", linktype, 0, 0))
    for index, (_, frame) in enumerate(frames):
        out += block(6, struct.pack("<IIIII", index, 0, index, len(frame), len(frame)) + frame)
    return out


@needs_tshark
def test_tshark_agrees_on_every_link_type(tmp_path: Path) -> None:
    cases = [(linktype, frame) for _, linktype, frame, _, _ in CASES]
    cases += [(linktype, frame) for _, linktype, frame, _ in NOT_IP if linktype in (0, 1, 101, 113)]
    path = tmp_path / "links.pcapng"
    path.write_bytes(pcapng(cases))
    out = tshark_fields(path, ["ip.src", "ipv6.src", "tcp.srcport"])
    assert len(out) == len(cases)
    for (linktype, frame), row in zip(cases, out, strict=True):
        ip_src, ip6_src, sport = row["ip.src"], row["ipv6.src"], row["tcp.srcport"]
        packet = decode_frame(linktype, frame)
        if isinstance(packet, TcpPacket):
            assert packet.src == (ip_src or ip6_src), (linktype, frame.hex())
            assert str(packet.sport) == sport
        else:
            assert sport == "", (linktype, frame.hex(), packet)


@given(
    st.sampled_from([0, 1, 101, 108, 113, 276]),
    st.sampled_from([b"", b"\x81\x00", b"\x88\x47", b"\x88\x64", b"\x88\xa8", b"\x08\x00"]),
    st.binary(max_size=40),
)
def test_parse_link_agrees_with_locate_on_any_bytes(
    linktype: int, ethertype: bytes, tail: bytes
) -> None:
    frame = ETH + ethertype + tail if linktype == 1 else ethertype + tail
    link = parse_link(linktype, frame)  # never raises on its own invariant
    located = locate_network(linktype, frame)
    assert link.network == located
    assert link.build(frame[link.offset :]) == frame
    if isinstance(located, tuple):
        assert link.offset == located[1]
