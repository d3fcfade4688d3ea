"""IP fragment reassembly (tcplab.wire.fragments): RFC 791 §3.2, RFC 8200 §4.5."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.analyze import analyze_file
from tcplab.capture import TcpRecords, open_capture
from tcplab.capture.writer import PcapWriter
from tcplab.wire.checksum import ones_complement_sum
from tcplab.wire.decode import NotTcp, TcpPacket, decode_frame, decode_ip
from tcplab.wire.flags import Flags
from tcplab.wire.fragments import (
    Fragment,
    Reassembler,
    fragment_in,
    reassemble,
    split_ipv4,
    split_ipv6,
)
from tcplab.wire.ip import IPv4Header, IPv6Header
from tcplab.wire.link import LinkType
from tcplab.wire.tcp import TcpHeader

RAW = int(LinkType.RAW)
ETHERNET_V4 = bytes(6) + bytes.fromhex("020000000001") + b"\x08\x00"

# A hand-written IPv4 datagram: header (id 0x1234, DF clear, TTL 64, UDP,
# checksum filled in below) and 24 bytes of payload "ABCDEFGH" "IJKLMNOP" "QRSTUVWX".
V4_HEADER = bytearray.fromhex("4500 002c 1234 0000 4011 0000 0a000001 0a000002")
V4_HEADER[10:12] = (0xFFFF - ones_complement_sum(bytes(V4_HEADER))).to_bytes(2, "big")
V4_PAYLOAD = b"ABCDEFGHIJKLMNOPQRSTUVWX"
V4_DATAGRAM = bytes(V4_HEADER) + V4_PAYLOAD


def v4_fragment(offset: int, more: bool, data: bytes, ident: int = 0x1234) -> bytes:
    """A literal IPv4 fragment of V4_DATAGRAM's header: offset in bytes."""
    header = bytearray(V4_HEADER)
    header[2:4] = (20 + len(data)).to_bytes(2, "big")
    header[4:6] = ident.to_bytes(2, "big")
    header[6:8] = ((0x2000 if more else 0) | offset // 8).to_bytes(2, "big")
    header[10:12] = b"\x00\x00"
    header[10:12] = (0xFFFF - ones_complement_sum(bytes(header))).to_bytes(2, "big")
    return bytes(header) + data


def fragments_of(frames: list[bytes]) -> list[Fragment]:
    found = [fragment_in(RAW, f) for f in frames]
    assert all(f is not None for f in found)
    return [f for f in found if f is not None]


FIRST = v4_fragment(0, True, b"ABCDEFGH")
MIDDLE = v4_fragment(8, True, b"IJKLMNOP")
LAST = v4_fragment(16, False, b"QRSTUVWX")


def test_fragment_in_reads_the_ipv4_header() -> None:
    fragment = fragment_in(RAW, MIDDLE)
    assert fragment is not None
    assert fragment.key == (4, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 17, 0x1234)
    assert (fragment.offset, fragment.more, fragment.data) == (8, True, b"IJKLMNOP")
    assert fragment_in(RAW, V4_DATAGRAM) is None  # MF clear, offset 0: whole


def test_in_order() -> None:
    assert reassemble(fragments_of([FIRST, MIDDLE, LAST])) == V4_DATAGRAM


def test_out_of_order() -> None:
    assert reassemble(fragments_of([LAST, FIRST, MIDDLE])) == V4_DATAGRAM


def test_missing_piece_leaves_a_hole() -> None:
    assert reassemble(fragments_of([FIRST, LAST])) is None
    reassembler = Reassembler()
    for frame, fragment in enumerate(fragments_of([LAST, FIRST]), 1):
        assert reassembler.add(fragment, 0, frame) is None
    [incomplete] = reassembler.finish()
    assert (incomplete.why, incomplete.frames, incomplete.received, incomplete.total) == (
        "end of capture",
        (1, 2),
        16,
        24,
    )
    assert "10.0.0.1 -> 10.0.0.2 protocol 17" in incomplete.describe()


def test_duplicate_changes_nothing() -> None:
    assert reassemble(fragments_of([FIRST, FIRST, LAST, LAST, MIDDLE])) == V4_DATAGRAM


def test_overlap_first_wins() -> None:
    # A 16-byte fragment at offset 8 overlaps MIDDLE and LAST with other data:
    # what arrived first stays (documented choice; Linux would drop it all).
    overlapping = v4_fragment(8, True, b"iiiiiiiiqqqqqqqq")
    done = reassemble(fragments_of([FIRST, MIDDLE, overlapping, LAST]))
    # Bytes 8-15 were MIDDLE's first; bytes 16-23 came first from the overlap.
    assert done == bytes(V4_HEADER) + b"ABCDEFGH" + b"IJKLMNOP" + b"qqqqqqqq"
    # Arriving first, it wins over MIDDLE and LAST where they overlap.
    done = reassemble(fragments_of([overlapping, LAST, FIRST, MIDDLE]))
    assert done == bytes(V4_HEADER) + b"ABCDEFGH" + b"iiiiiiiiqqqqqqqq"


def test_different_identification_is_another_datagram() -> None:
    other = v4_fragment(16, False, b"QRSTUVWX", ident=0x4321)
    assert reassemble(fragments_of([FIRST, MIDDLE, other])) is None


def test_reassembled_header_checksum_is_recomputed_only_if_it_was_good() -> None:
    done = reassemble(fragments_of([FIRST, LAST, MIDDLE]))
    assert done is not None and ones_complement_sum(done[:20]) == 0xFFFF
    damaged = bytearray(FIRST)
    damaged[10] ^= 0xFF
    done = reassemble(fragments_of([bytes(damaged), MIDDLE, LAST]))
    assert done is not None and ones_complement_sum(done[:20]) != 0xFFFF


def test_ipv6_fragment_extension_header() -> None:
    # RFC 8200 §4.5: IPv6 header (next header 44), fragment header (next
    # header 17 = UDP, offset|M, identification), then the data.
    src = bytes.fromhex("20010db8" + "00" * 11 + "01")
    dst = bytes.fromhex("20010db8" + "00" * 11 + "02")

    def v6(offset: int, more: bool, data: bytes) -> bytes:
        header = bytes.fromhex("60000000") + (8 + len(data)).to_bytes(2, "big") + b"\x2c\x40"
        word = (offset | more).to_bytes(2, "big")
        fragment = bytes([17, 0]) + word + bytes.fromhex("cafe0001")
        return header + src + dst + fragment + data

    pieces = [v6(16, False, b"QRST"), v6(0, True, b"ABCDEFGH"), v6(8, True, b"IJKLMNOP")]
    found = fragments_of(pieces)
    assert found[0].key == (6, src, dst, 0, 0xCAFE0001)
    whole = bytes.fromhex("60000000") + (20).to_bytes(2, "big") + b"\x11\x40" + src + dst
    assert reassemble(found) == whole + b"ABCDEFGHIJKLMNOPQRST"
    # An atomic fragment (offset 0, M clear; RFC 6946) is a whole packet.
    assert fragment_in(RAW, v6(0, False, b"ABCD")) is None


def tcp_datagram(version: int, payload: bytes, ident: int = 7) -> bytes:
    src, dst = ("10.0.0.1", "10.0.0.2") if version == 4 else ("2001:db8::1", "2001:db8::2")
    header = TcpHeader.create(40000, 80, 1000, 2000, Flags.ACK | Flags.PSH, 65000)
    segment = header.build(payload, src=src, dst=dst)
    if version == 4:
        return IPv4Header.create(src, dst, 6, len(segment), ident=ident, flags=0).build(segment)
    return IPv6Header.create(src, dst, 6, len(segment)).build(segment)


@settings(max_examples=60, deadline=None)
@given(
    version=st.sampled_from([4, 6]),
    payload=st.binary(min_size=0, max_size=600),
    cut_units=st.sets(st.integers(min_value=1, max_value=80), max_size=12),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_round_trip(version: int, payload: bytes, cut_units: set[int], seed: int) -> None:
    """Split any datagram into fragments, shuffle, reassemble: the original."""
    datagram = tcp_datagram(version, payload)
    body = len(datagram) - (20 if version == 4 else 40)
    cuts = [unit * 8 for unit in cut_units if unit * 8 < body]
    pieces = split_ipv4(datagram, cuts) if version == 4 else split_ipv6(datagram, cuts, 99)
    random.Random(seed).shuffle(pieces)
    if len(pieces) > 1:
        assert all(isinstance(decode_frame(RAW, p), NotTcp) for p in pieces)
    else:
        return  # no cut: nothing to reassemble
    done = reassemble(fragments_of(pieces))
    assert done == datagram
    packet = decode_ip(done)
    assert isinstance(packet, TcpPacket) and packet.payload == payload
    assert packet.checksum_ok is True


def test_memory_is_bounded_by_datagram_count() -> None:
    reassembler = Reassembler(max_datagrams=4)
    for ident in range(10):
        [fragment] = fragments_of([v4_fragment(0, True, b"ABCDEFGH", ident=ident)])
        reassembler.add(fragment, 0, ident + 1)
        assert reassembler.in_progress <= 4
    evicted = reassembler.take_incomplete()
    assert [(i.why, i.key[4]) for i in evicted] == [("evicted", n) for n in range(6)]
    # The newest four are still there: their last pieces complete them.
    [last] = fragments_of([v4_fragment(8, False, b"IJKLMNOP", ident=9)])
    done = reassembler.add(last, 0, 11)
    assert done is not None and done.frames == (10, 11)


def test_memory_is_bounded_by_capture_time() -> None:
    second = 1_000_000_000
    reassembler = Reassembler(timeout_ns=60 * second)
    [first, middle, last] = fragments_of([FIRST, MIDDLE, LAST])
    assert reassembler.add(first, 0, 1) is None
    assert reassembler.add(middle, 60 * second, 2) is None  # 60 s: still waiting
    assert reassembler.add(last, 61 * second, 3) is None  # too late: first two expired
    [expired] = reassembler.take_incomplete()
    assert (expired.why, expired.frames) == ("timed out", (1, 2))
    assert reassembler.in_progress == 1  # the last piece, a new datagram


def test_too_long_is_given_up() -> None:
    far = v4_fragment(65528, False, b"QRSTUVWX")  # ends past 65535 - 20
    reassembler = Reassembler()
    assert reassembler.add(fragments_of([far])[0], 0, 1) is None
    assert [i.why for i in reassembler.take_incomplete()] == ["too long"]


def write(path: Path, frames: list[bytes]) -> Path:
    with path.open("wb") as stream:
        writer = PcapWriter(stream, linktype=1, nanosecond=False)
        for i, frame in enumerate(frames):
            writer.write(1_700_000_000_000_000_000 + i * 1_000_000, ETHERNET_V4 + frame)
    return path


def test_tcp_records_yields_the_datagram_on_the_last_fragment(tmp_path: Path) -> None:
    datagram = tcp_datagram(4, b"x" * 100, ident=0x55)
    pieces = split_ipv4(datagram, [64])
    lonely = v4_fragment(0, True, b"ABCDEFGH", ident=0x77)  # never completed
    path = write(tmp_path / "frag.pcap", [pieces[1], lonely, pieces[0]])
    with open_capture(path) as reader:
        records = TcpRecords(reader, strict_checksum=True)
        got = list(records)
    [(record, packet)] = got
    assert record.index == 3 and record.linktype == RAW and record.data == datagram
    assert packet.payload == b"x" * 100 and packet.checksum_ok is True
    assert (records.frames, records.tcp, records.not_tcp) == (3, 1, 2)
    assert (records.fragments, records.reassembled, records.incomplete) == (3, 1, 1)
    [problem] = records.problems
    assert problem.offset == 24 + 16 + len(ETHERNET_V4 + pieces[1]) + 16
    assert problem.message.startswith("frame 2: IPv4 datagram id 0x77 10.0.0.1 -> 10.0.0.2")
    assert "end of capture" in problem.message


def test_the_engine_reassembles_too(tmp_path: Path) -> None:
    """The engine hands fragments to tcplab.wire's reassembler and analyses the datagram."""
    datagram = tcp_datagram(4, b"y" * 200, ident=0x99)
    path = write(tmp_path / "frag.pcap", split_ipv4(datagram, [64, 128]))
    analysis = analyze_file(path)
    report = analysis.report
    assert report.tcp == 1 and report.not_tcp == 2 and report.problems == []
    [conn] = analysis.connections
    assert conn.client.packets + conn.server.packets == 1
    assert conn.client.payload_bytes + conn.server.payload_bytes == 200
