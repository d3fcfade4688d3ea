"""The Internet checksum (RFC 1071) and the TCP pseudo-header checksum."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tcplab.wire.checksum import (
    internet_checksum,
    offload_partial_sum,
    ones_complement_sum,
    pseudo_header,
    tcp_checksum,
    verify_tcp_checksum,
)


def reference_sum(data: bytes) -> int:
    """RFC 1071 §4.1, word by word with end-around carry."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_rfc1071_example() -> None:
    # RFC 1071 §3 worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_complement_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D


def test_minus_zero_not_plus_zero() -> None:
    # Non-zero data summing to all ones gives 0xFFFF (-0), never 0x0000.
    assert ones_complement_sum(b"\xff\xff") == 0xFFFF
    assert ones_complement_sum(b"\x80\x00\x7f\xff") == 0xFFFF
    assert ones_complement_sum(b"\x00\x00") == 0
    assert ones_complement_sum(b"") == 0


@given(st.binary(max_size=200))
def test_fast_sum_equals_rfc1071_loop(data: bytes) -> None:
    assert ones_complement_sum(data) == reference_sum(data)


@given(st.binary(min_size=2, max_size=200).filter(lambda d: len(d) % 2 == 0))
def test_checksum_makes_data_verify(data: bytes) -> None:
    with_sum = data + internet_checksum(data).to_bytes(2, "big")
    assert ones_complement_sum(with_sum) in (0xFFFF, 0) and reference_sum(with_sum) in (0xFFFF, 0)
    if any(with_sum):
        assert ones_complement_sum(with_sum) == 0xFFFF


def test_pseudo_headers() -> None:
    # RFC 9293 §3.1: src, dst, zero, PTCL, TCP length.
    assert pseudo_header("10.0.0.1", "10.0.0.2", 40) == bytes.fromhex("0a0000010a00000200060028")
    # RFC 8200 §8.1: src, dst, upper-layer length (32 bits), 3 zero bytes, next header.
    v6 = pseudo_header("::1", "fe80::2", 40)
    assert len(v6) == 40
    assert v6[32:] == bytes.fromhex("0000002800000006")


# A real SYN-ACK from zeek's chksums/localhost-bad-chksum.pcap (frame 2),
# which tshark marks "Good": 35.221.46.9:80 -> 192.168.1.28:53246.
SYN_ACK = bytes.fromhex("0050cffebf4d3093d186d4178012ff28f68700000204058c0101040201030307")


def test_real_segment_verifies() -> None:
    assert verify_tcp_checksum("35.221.46.9", "192.168.1.28", SYN_ACK)
    zeroed = SYN_ACK[:16] + b"\x00\x00" + SYN_ACK[18:]
    assert tcp_checksum("35.221.46.9", "192.168.1.28", zeroed) == 0xF687
    damaged = SYN_ACK[:4] + b"\xbf\x4d\x30\x94" + SYN_ACK[8:]
    assert not verify_tcp_checksum("35.221.46.9", "192.168.1.28", damaged)


def test_offload_partial_sum_is_the_folded_pseudo_header() -> None:
    # Frame 1 of the same trace, sent by the capturing Mac with checksum
    # offload: tcpdump -vv prints "cksum 0x13dd (incorrect -> 0x3007)".
    assert offload_partial_sum("192.168.1.28", "35.221.46.9", 44) == 0x13DD


@given(st.binary(min_size=20, max_size=100))
def test_v6_checksum_roundtrip(segment: bytes) -> None:
    zeroed = segment[:16] + b"\x00\x00" + segment[18:]
    value = tcp_checksum("2001:db8::1", "2001:db8::2", zeroed)
    filled = zeroed[:16] + value.to_bytes(2, "big") + zeroed[18:]
    assert verify_tcp_checksum("2001:db8::1", "2001:db8::2", filled)
