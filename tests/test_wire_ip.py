"""IPv4 (RFC 791) and IPv6 (RFC 8200) headers: literal bytes, malformed
cases with offsets, extension headers, property round trips."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcplab.wire import ExtensionHeader, IPv4Header, IPv6Header, WireError

# IPv4 header of zeek's localhost-bad-chksum.pcap frame 2 (the SYN-ACK).
IPV4 = bytes.fromhex("450000340000400037063 01a23dd2e09c0a8011c".replace(" ", ""))
TCP_32 = bytes(32)


def test_parse_real_ipv4() -> None:
    header, payload = IPv4Header.parse(IPV4 + TCP_32 + b"\x00" * 6)  # 6 bytes Ethernet padding
    assert header == IPv4Header(
        ihl=5,
        tos=0,
        total_length=52,
        ident=0,
        flags=0b010,
        frag_offset=0,
        ttl=55,
        protocol=6,
        checksum=0x301A,
        src="35.221.46.9",
        dst="192.168.1.28",
    )
    assert payload == TCP_32  # padding trimmed by total length
    assert header.dont_fragment and not header.is_fragment
    assert header.checksum_ok()
    assert header.build(payload) == IPV4 + TCP_32


def test_create_fills_lengths_and_checksum() -> None:
    header = IPv4Header.create("35.221.46.9", "192.168.1.28", 6, 32, ttl=55)
    assert header.build() == IPV4
    with_options = IPv4Header.create("10.0.0.1", "10.0.0.2", 6, 0, options=b"\x01\x01\x01\x00")
    assert with_options.ihl == 6 and with_options.checksum_ok()
    assert IPv4Header.parse(with_options.build())[0] == with_options


def test_fragment_flags() -> None:
    more = IPv4Header.parse(IPV4[:6] + b"\x20\x00" + IPV4[8:] + TCP_32)[0]
    assert more.is_fragment and more.flags == 0b001
    later = IPv4Header.parse(IPV4[:6] + b"\x00\xb9" + IPV4[8:] + TCP_32)[0]
    assert later.is_fragment and later.frag_offset == 185


def test_total_length_zero_means_tso() -> None:
    # Windows/macOS TSO captures leave total length 0; the rest is the packet.
    raw = IPV4[:2] + b"\x00\x00" + IPV4[4:] + TCP_32 + b"xyz"
    header, payload = IPv4Header.parse(raw)
    assert header.total_length == 0
    assert payload == TCP_32 + b"xyz"
    assert header.build(payload) == raw


def test_truncated_capture_keeps_what_is_there() -> None:
    header, payload = IPv4Header.parse(IPV4 + TCP_32[:10])
    assert header.total_length == 52
    assert payload == TCP_32[:10]


def test_ihl_below_5() -> None:
    with pytest.raises(WireError) as err:
        IPv4Header.parse(b"\x44" + IPV4[1:] + TCP_32, base=0)
    assert str(err.value) == "offset 0: IPv4 IHL 4 < 5"


def test_total_length_below_header() -> None:
    raw = b"\x00" * 14 + IPV4[:2] + b"\x00\x10" + IPV4[4:] + TCP_32
    with pytest.raises(WireError) as err:
        IPv4Header.parse(raw, base=14)
    assert str(err.value) == "offset 16: IPv4 total length 16 < header length 20"


def test_truncated_ipv4_header() -> None:
    with pytest.raises(WireError) as err:
        IPv4Header.parse(IPV4[:19])
    assert str(err.value) == "offset 19: truncated IPv4 header: 19 of 20 bytes"
    with pytest.raises(WireError) as err:
        IPv4Header.parse(b"\x46" + IPV4[1:])  # IHL 6 but 20 bytes present
    assert err.value.offset == 20
    assert "IHL 6 needs 24 bytes, 20 captured" in err.value.message


def test_wrong_version() -> None:
    with pytest.raises(WireError, match="offset 0: IP version 6 in an IPv4 header"):
        IPv4Header.parse(b"\x65" + IPV4[1:])


# IPv6 from zeek's ftp/ipv6.pcap style: 2001:470:1f11:81f:c999:d94:aa7c:2e3e -> 2001:470:4867:99::21
V6_SRC = "2001:470:1f11:81f:c999:d94:aa7c:2e3e"
V6_DST = "2001:470:4867:99::21"


def test_ipv6_literal_both_ways() -> None:
    raw = bytes.fromhex(
        "6"
        "12"
        "abcde"  # version, traffic class 0x12, flow label 0xabcde
        "0014"
        "06"
        "40"  # payload length 20, TCP, hop limit 64
        "20010470 1f11081f c9990d94 aa7c2e3e"
        "20010470 48670099 00000000 00000021".replace(" ", "")
    ) + bytes(20)
    header, payload = IPv6Header.parse(raw + b"pad")
    assert header == IPv6Header(0x12, 0xABCDE, 20, 6, 64, V6_SRC, V6_DST)
    assert payload == bytes(20)
    assert header.protocol == 6 and header.header_len == 40
    assert header.build(payload) == raw


def test_ipv6_extension_headers_walked() -> None:
    header = IPv6Header.create(
        "fe80::1",
        "ff02::1",
        6,
        20,
        extension_headers=(
            (0, bytes(6)),  # hop-by-hop, 8 bytes (PadN)
            (43, bytes(14)),  # routing, 16 bytes
            (60, bytes(6)),  # destination options
            (51, bytes(10)),  # AH: 12 bytes, length in 4-byte units
            (44, bytes(6)),  # atomic fragment (offset 0, M clear)
        ),
    )
    raw = header.build(b"T" * 20)
    # Each header's first byte names the next one; lengths in 8-byte units
    # beyond the first 8, AH's in 4-byte units minus 2.
    assert (raw[6], raw[40], raw[48], raw[64], raw[72], raw[84]) == (0, 43, 60, 51, 44, 6)
    assert (raw[41], raw[49], raw[65], raw[73]) == (0, 1, 0, 1)
    parsed, payload = IPv6Header.parse(raw)
    assert parsed == header
    assert payload == b"T" * 20
    assert parsed.protocol == 6
    assert parsed.header_len == 40 + 8 + 16 + 8 + 12 + 8
    assert parsed.fragment == (0, False) and not parsed.is_fragment


def test_ipv6_fragment_header() -> None:
    header = IPv6Header.create(
        "2001:db8::1",
        "2001:db8::2",
        6,
        8,
        extension_headers=((44, b"\x05\x89" + b"\x00\x00\x00\x07"),),
    )
    parsed, _ = IPv6Header.parse(header.build(bytes(8)))
    assert parsed.fragment == (0x588, True)
    assert parsed.is_fragment


def test_ipv6_extension_runs_past_packet() -> None:
    header = IPv6Header.create("::1", "::1", 6, 0, extension_headers=((60, bytes(14)),))
    raw = bytearray(header.build())
    raw[41] = 5  # claims 48 bytes
    with pytest.raises(WireError) as err:
        IPv6Header.parse(bytes(raw))
    assert str(err.value) == "offset 40: IPv6 extension header 60 of 48 bytes runs past the packet"


def test_truncated_ipv6() -> None:
    with pytest.raises(WireError, match="offset 39: truncated IPv6 header: 39 of 40 bytes"):
        IPv6Header.parse(bytes.fromhex("60") + bytes(38))


# What tshark 4.0 prints for each address (checked by writing these into a
# pcap and running tshark -e ipv6.src); RFC 5952 plus the embedded-IPv4
# forms ::a.b.c.d and ::ffff:a.b.c.d that glibc's inet_ntop also uses.
TSHARK_IPV6_TEXT = [
    ("::1", "::1"),
    ("::", "::"),
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  # RFC 5952 §4.2.3: first longest run
    ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  # §4.2.2: a single 0 field stays
    ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
    ("fe80:0:0:0:0:0:0:1", "fe80::1"),
    ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ("::ffff:0.0.0.1", "::ffff:0.0.0.1"),
    ("::1:0", "::0.1.0.0"),
    ("::1.2.3.4", "::1.2.3.4"),
    ("::0.0.1.0", "::100"),
    ("64:ff9b::1.2.3.4", "64:ff9b::102:304"),
]


@pytest.mark.parametrize(("address", "text"), TSHARK_IPV6_TEXT)
def test_ipv6_text_like_tshark(address: str, text: str) -> None:
    header = IPv6Header.create(address, "::", 6, 0)
    assert IPv6Header.parse(header.build())[0].src == text


addresses_v4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
addresses_v6 = st.integers(0, 2**128 - 1).map(
    lambda n: socket.inet_ntop(socket.AF_INET6, n.to_bytes(16, "big"))
)


@given(
    addresses_v4,
    addresses_v4,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 7),
    st.integers(0, 0x1FFF),
    st.integers(0, 255),
    st.binary(max_size=40).map(lambda b: b[: len(b) - len(b) % 4]),
    st.binary(max_size=60),
)
def test_ipv4_roundtrip(
    src: str,
    dst: str,
    tos: int,
    protocol: int,
    ident: int,
    flags: int,
    frag_offset: int,
    ttl: int,
    options: bytes,
    payload: bytes,
) -> None:
    base = IPv4Header.create(
        src, dst, protocol, len(payload), ttl=ttl, ident=ident, tos=tos, options=options
    )
    header = IPv4Header(
        base.ihl,
        tos,
        base.total_length,
        ident,
        flags,
        frag_offset,
        ttl,
        protocol,
        0x1234,
        base.src,
        base.dst,
        options,
    )
    raw = header.build(payload)
    parsed, parsed_payload = IPv4Header.parse(raw)
    assert parsed == header
    assert parsed_payload == payload
    assert parsed.build(parsed_payload) == raw


extension = st.one_of(
    st.tuples(
        st.sampled_from([0, 43, 60, 135, 139, 140]),
        st.integers(0, 3).map(lambda n: bytes(6 + 8 * n)),
    ),
    st.tuples(st.just(51), st.integers(0, 4).map(lambda n: bytes(6 + 4 * n))),
    st.tuples(st.just(44), st.binary(min_size=6, max_size=6)),
)


@given(
    addresses_v6,
    addresses_v6,
    st.integers(0, 255),
    st.integers(0, 0xFFFFF),
    st.integers(0, 255),
    st.lists(extension, max_size=4),
    st.sampled_from([6, 17, 58, 59]),
    st.binary(max_size=60),
)
def test_ipv6_roundtrip(
    src: str,
    dst: str,
    traffic_class: int,
    flow_label: int,
    hop_limit: int,
    extensions: list[tuple[int, bytes]],
    protocol: int,
    payload: bytes,
) -> None:
    header = IPv6Header.create(
        src,
        dst,
        protocol,
        len(payload),
        hop_limit=hop_limit,
        traffic_class=traffic_class,
        flow_label=flow_label,
        extension_headers=tuple(extensions),
    )
    raw = header.build(payload)
    parsed, parsed_payload = IPv6Header.parse(raw)
    assert parsed == header
    assert parsed.protocol == protocol
    assert parsed_payload == payload
    assert parsed.build(parsed_payload) == raw


def test_extension_header_create_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        ExtensionHeader.create(60, 6, bytes(5))
    with pytest.raises(ValueError):
        ExtensionHeader.create(44, 6, bytes(14))
