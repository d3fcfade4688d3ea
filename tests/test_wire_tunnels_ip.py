"""IP in IP, GRE, VXLAN and Geneve: records on literal bytes both ways,
damage, decode_frame on nested tunnels, garbage, and a capture built here
compared with tshark field by field (``tcplab packets --json``) and with
its TCP analysis (``test_analyze_tshark.compare``)."""

from __future__ import annotations

import shutil
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import packets_json, tshark_fields
from tcplab.analyze import analyze_file
from tcplab.capture.writer import PcapWriter
from tcplab.wire import NotTcp, TcpPacket, WireError, decode_frame
from tcplab.wire.checksum import internet_checksum, tcp_checksum
from tcplab.wire.decode import MAX_TUNNELS
from tcplab.wire.tunnel import (
    GRE_CHECKSUM,
    GRE_KEY,
    GRE_ROUTING,
    GRE_SEQUENCE,
    ErspanHeader,
    GeneveHeader,
    GeneveOption,
    GreHeader,
    GreSre,
    VxlanHeader,
)
from test_analyze_tshark import compare
from test_wire_tunnel import inner_tcp_v4, inner_tcp_v6, ipv6, udp

LINKTYPE_ETHERNET, LINKTYPE_RAW = 1, 101
MAC = bytes.fromhex("020000000001") + bytes.fromhex("020000000002")


def ipv4(src: str, dst: str, protocol: int, payload: bytes) -> bytes:
    """An IPv4 header with a valid checksum (Zeek drops a packet any of
    whose IP headers fails it) before ``payload``."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, protocol, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:] + payload


def ethernet(ethertype: int, payload: bytes) -> bytes:
    return MAC + struct.pack("!H", ethertype) + payload


# -- records on literal bytes --------------------------------------------------


def test_gre_minimal_header() -> None:
    # RFC 2784 §2.1: no flags, version 0, protocol type IPv4.
    raw = bytes.fromhex("00000800")
    gre = GreHeader.parse(raw)
    assert gre == GreHeader(0, 0x0800)
    assert (gre.header_len, gre.version) == (4, 0)
    assert gre.build() == raw


def test_gre_checksum_key_and_sequence() -> None:
    # C, K and S (RFC 2784 §2.5, RFC 2890 §2.1-2.2), in that order on the wire.
    raw = bytes.fromhex("b000 86dd 1234 0000 0000002a 00000007".replace(" ", ""))
    gre = GreHeader.parse(raw)
    assert gre == GreHeader(GRE_CHECKSUM | GRE_KEY | GRE_SEQUENCE, 0x86DD, 0x1234, 0, 42, 7)
    assert gre.header_len == 16
    assert gre.build() == raw


def test_gre_rfc1701_routing() -> None:
    # R puts the checksum/offset word on the wire even without C; the SRE
    # list ends with the null SRE (family 0, length 0).
    raw = bytes.fromhex("4000 0800 0000 0004 0800 00 04 0a000001 0000 00 00".replace(" ", ""))
    gre = GreHeader.parse(raw)
    assert gre.routing == (GreSre(0x0800, 0, bytes.fromhex("0a000001")),)
    assert (gre.checksum, gre.offset) == (0, 4)
    assert gre.header_len == len(raw) == 20
    assert gre.build() == raw


def test_vxlan_header() -> None:
    # RFC 7348 §5: flags 0x08 (VNI valid), VNI 0x123456.
    raw = bytes.fromhex("0800000012345600")
    vxlan = VxlanHeader.parse(raw)
    assert vxlan == VxlanHeader(0x08, 0x123456)
    assert vxlan.build() == raw


def test_geneve_header_with_an_option() -> None:
    # RFC 8926 §3.4/§3.5: version 0, 2 words of options, C set, Ethernet,
    # VNI 0xabcdef; one option (class 0x0102, type 0x80 critical, 4 bytes).
    raw = bytes.fromhex("02 40 6558 abcdef00 0102 80 01 deadbeef".replace(" ", ""))
    geneve = GeneveHeader.parse(raw)
    assert geneve == GeneveHeader(
        0, 0x6558, 0xABCDEF, critical=True,
        options=(GeneveOption(0x0102, 0x80, bytes.fromhex("deadbeef")),),
    )
    assert geneve.header_len == len(raw) == 16
    assert geneve.build() == raw


def test_erspan_type_ii_and_iii() -> None:
    # packet-cisco-erspan.c: version 1, VLAN 10, session word, index.
    raw = bytes.fromhex("100a 0064 00000007".replace(" ", ""))
    erspan = ErspanHeader.parse(raw)
    assert erspan == ErspanHeader(1, 10, 0x64, 7)
    assert (erspan.header_len, erspan.frame_type, erspan.build()) == (8, 0, raw)
    # Version 2 with the O bit: an 8-byte platform sub-header follows.
    raw = bytes.fromhex("2000 0001 12345678 0000 0001 0102030405060708".replace(" ", ""))
    erspan = ErspanHeader.parse(raw)
    assert (erspan.version, erspan.timestamp, erspan.subheader) == (
        2, 0x12345678, bytes.fromhex("0102030405060708"))
    assert (erspan.header_len, erspan.build()) == (20, raw)


@pytest.mark.parametrize(
    ("parse", "raw", "problem"),
    [
        (GreHeader.parse, bytes.fromhex("2000"), "truncated GRE header"),
        (GreHeader.parse, bytes.fromhex("20000800 0000"), "truncated GRE key"),
        (GreHeader.parse, bytes.fromhex("40000800 00000000 08000008 0a00"), "SRE of 8 bytes"),
        (GreHeader.parse, bytes.fromhex("40000800 00000000"), "truncated GRE routing"),
        (VxlanHeader.parse, bytes.fromhex("08000000"), "truncated VXLAN header"),
        (GeneveHeader.parse, bytes.fromhex("0100655800000100"), "options of 4 bytes run past"),
        (GeneveHeader.parse, bytes.fromhex("01006558000001000102800100"), "option of 8 bytes"),
        (ErspanHeader.parse, bytes.fromhex("1000 0001".replace(" ", "")), "truncated ERSPAN type"),
        (ErspanHeader.parse, bytes.fromhex("2000000100000000 00000001"), "platform sub-header"),
        (ErspanHeader.parse, bytes.fromhex("3000000000000000"), "ERSPAN version 3"),
    ],
)
def test_damaged_headers_raise(parse: object, raw: bytes, problem: str) -> None:
    assert callable(parse)
    with pytest.raises(WireError, match=problem):
        parse(raw)


@given(
    flags=st.sampled_from([0, GRE_CHECKSUM, GRE_KEY, GRE_SEQUENCE, 0xB000, 0x4000, 0xF000]),
    protocol=st.integers(0, 0xFFFF),
    words=st.lists(st.integers(0, 0xFFFFFFFF), min_size=4, max_size=4),
    sres=st.lists(
        st.tuples(st.integers(1, 0xFFFF), st.integers(0, 255), st.binary(max_size=12)),
        max_size=3,
    ),
)
def test_gre_build_parse_inverse(
    flags: int, protocol: int, words: list[int], sres: list[tuple[int, int, bytes]]
) -> None:
    routing = tuple(GreSre(*sre) for sre in sres) if flags & GRE_ROUTING else ()
    c_or_r = flags & (GRE_CHECKSUM | GRE_ROUTING)
    gre = GreHeader(
        flags,
        protocol if protocol != 0x880B else 0x0800,
        words[0] >> 16 if c_or_r else None,
        words[0] & 0xFFFF if c_or_r else None,
        words[1] if flags & GRE_KEY else None,
        words[2] if flags & GRE_SEQUENCE else None,
        None,
        routing,
    )
    raw = gre.build()
    assert len(raw) == gre.header_len
    assert GreHeader.parse(raw + b"payload") == gre


@given(
    version=st.integers(0, 3),
    protocol=st.integers(0, 0xFFFF),
    vni=st.integers(0, 0xFFFFFF),
    options=st.lists(
        st.tuples(st.integers(0, 0xFFFF), st.integers(0, 255),
                  st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4))),
        max_size=4,
    ),
    vxlan_flags=st.integers(0, 255),
)
def test_vxlan_and_geneve_build_parse_inverse(
    version: int, protocol: int, vni: int, options: list[tuple[int, int, bytes]],
    vxlan_flags: int,
) -> None:
    vxlan = VxlanHeader(vxlan_flags, vni)
    assert VxlanHeader.parse(vxlan.build()) == vxlan
    geneve = GeneveHeader(version, protocol, vni, True, False,
                          tuple(GeneveOption(*o) for o in options))
    raw = geneve.build()
    assert len(raw) == geneve.header_len
    assert GeneveHeader.parse(raw + b"rest") == geneve


# -- decode_frame ----------------------------------------------------------------


def ipip(layers: int, inner: bytes) -> bytes:
    """``inner`` inside ``layers`` more IPv4 headers (protocol 4)."""
    for n in range(layers):
        inner = ipv4(f"192.0.2.{n + 1}", f"198.51.100.{n + 1}", 4, inner)
    return inner


def gre_packet(inner: bytes, protocol: int = 0x0800, flags: int = 0, key: int | None = None,
               sequence: int | None = None) -> bytes:
    header = GreHeader(flags, protocol, 0 if flags & GRE_CHECKSUM else None,
                       0 if flags & GRE_CHECKSUM else None, key, sequence)
    body = header.build() + inner
    if flags & GRE_CHECKSUM:  # RFC 2784 §2.5: over the GRE header and payload
        body = body[:4] + struct.pack("!H", internet_checksum(body)) + body[6:]
    return ipv4("203.0.113.1", "203.0.113.2", 47, body)


def test_three_nested_ipv4_headers() -> None:
    packet = decode_frame(LINKTYPE_RAW, ipip(3, inner_tcp_v4()))
    assert isinstance(packet, TcpPacket)
    assert (packet.src, packet.dst, packet.sport, packet.payload) == (
        "10.0.0.1", "10.0.0.2", 40000, b"hello")
    assert packet.tunnel == "ipip/ipip/ipip"
    assert (packet.outer_src, packet.outer_dst) == ("192.0.2.3", "198.51.100.3")
    assert (packet.outer_sport, packet.outer_dport) == (None, None)
    assert packet.checksum_ok is True


def test_ipv6_in_ipv4_and_ipv6_in_ipv6() -> None:
    six_in_four = decode_frame(LINKTYPE_RAW, ipv4("192.0.2.1", "192.0.2.2", 41, inner_tcp_v6()))
    assert isinstance(six_in_four, TcpPacket)
    assert (six_in_four.ip_version, six_in_four.tunnel) == (6, "ipip")
    six_in_six = ipv6("2001:db8::a", "2001:db8::b", 41, inner_tcp_v6())
    packet = decode_frame(LINKTYPE_RAW, six_in_six)
    assert isinstance(packet, TcpPacket)
    assert (packet.src, packet.outer_src) == ("2001:0:4137:9e50::1", "2001:db8::a")


def test_nesting_is_bounded() -> None:
    assert isinstance(decode_frame(LINKTYPE_RAW, ipip(MAX_TUNNELS, inner_tcp_v4())), TcpPacket)
    too_deep = decode_frame(LINKTYPE_RAW, ipip(MAX_TUNNELS + 1, inner_tcp_v4()))
    assert too_deep == NotTcp(f"more than {MAX_TUNNELS} nested tunnels")


def test_gre_with_checksum_key_and_sequence() -> None:
    frame = gre_packet(inner_tcp_v4(), flags=0xB000, key=7, sequence=1)
    packet = decode_frame(LINKTYPE_RAW, frame)
    assert isinstance(packet, TcpPacket)
    assert (packet.tunnel, packet.src, packet.outer_src) == ("gre", "10.0.0.1", "203.0.113.1")
    assert packet.tcp_offset == 20 + 16 + 20


def test_gre_transparent_ethernet_bridging_and_vlan() -> None:
    inner = ethernet(0x8100, struct.pack("!HH", 100, 0x0800) + inner_tcp_v4())
    packet = decode_frame(LINKTYPE_RAW, gre_packet(inner, protocol=0x6558))
    assert isinstance(packet, TcpPacket) and packet.payload == b"hello"


def test_vxlan_and_geneve_carry_ethernet() -> None:
    frame = ethernet(0x0800, ipv4("192.0.2.1", "192.0.2.2", 17, udp(
        51000, 4789, VxlanHeader(0x08, 99).build() + ethernet(0x0800, inner_tcp_v4()))))
    packet = decode_frame(LINKTYPE_ETHERNET, frame)
    assert isinstance(packet, TcpPacket)
    assert (packet.tunnel, packet.outer_sport, packet.outer_dport) == ("vxlan", 51000, 4789)
    geneve = GeneveHeader(0, 0x6558, 5, options=(GeneveOption(0x0103, 1, bytes(8)),)).build()
    frame = ipv4("192.0.2.1", "192.0.2.2", 17,
                 udp(51001, 6081, geneve + ethernet(0x86DD, inner_tcp_v6())))
    packet = decode_frame(LINKTYPE_RAW, frame)
    assert isinstance(packet, TcpPacket)
    assert (packet.tunnel, packet.ip_version) == ("geneve", 6)


def test_vxlan_inside_gre_inside_ipip() -> None:
    vxlan = ipv4("192.0.2.1", "192.0.2.2", 17, udp(
        51000, 4789, VxlanHeader(0x08, 1).build() + ethernet(0x0800, inner_tcp_v4())))
    packet = decode_frame(LINKTYPE_RAW, ipip(1, gre_packet(vxlan)))
    assert isinstance(packet, TcpPacket)
    assert packet.tunnel == "ipip/gre/vxlan"
    assert (packet.outer_src, packet.outer_sport) == ("192.0.2.1", 51000)


def test_erspan_over_gre() -> None:
    mirrored = ethernet(0x0800, inner_tcp_v4())
    # 0x88BE with the sequence number: a type II header, then the frame.
    typed = gre_packet(ErspanHeader(1, 0, 1).build() + mirrored, protocol=0x88BE,
                       flags=GRE_SEQUENCE, sequence=1)
    # 0x88BE without it: type I, the frame at once (tshark's rule).
    bare = gre_packet(mirrored, protocol=0x88BE)
    three = gre_packet(ErspanHeader(2, 0, 1).build() + mirrored, protocol=0x22EB)
    for frame in (typed, bare, three):
        packet = decode_frame(LINKTYPE_RAW, frame)
        assert isinstance(packet, TcpPacket) and packet.tunnel == "erspan", packet
    ip_frames = gre_packet(ErspanHeader(2, 0, 1, flags=2 << 10).build() + inner_tcp_v4(),
                           protocol=0x22EB)
    assert decode_frame(LINKTYPE_RAW, ip_frames) == NotTcp("GRE: ERSPAN frame type 2")


def test_tunnel_that_carries_no_ip_says_so() -> None:
    assert decode_frame(LINKTYPE_RAW, gre_packet(b"\x00" * 30, protocol=0x0806)) == NotTcp(
        "gre: ARP")
    damaged = ipv4("192.0.2.1", "192.0.2.2", 47, bytes.fromhex("2000080000"))
    assert decode_frame(LINKTYPE_RAW, damaged) == NotTcp("GRE: truncated GRE key field")


@settings(max_examples=300)
@given(
    kind=st.sampled_from(["ipip", "gre", "vxlan", "geneve", "gre-udp", "erspan"]),
    garbage=st.binary(max_size=120),
    cut=st.integers(0, 200),
)
def test_garbage_inside_a_tunnel_never_escapes(kind: str, garbage: bytes, cut: int) -> None:
    payloads = {
        "ipip": lambda g: ipv4("1.1.1.1", "2.2.2.2", 4, g),
        "gre": lambda g: ipv4("1.1.1.1", "2.2.2.2", 47, g),
        "vxlan": lambda g: ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 4789, g)),
        "geneve": lambda g: ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 6081, g)),
        "gre-udp": lambda g: ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 4754, g)),
        "erspan": lambda g: ipv4("1.1.1.1", "2.2.2.2", 47, bytes.fromhex("100022eb") + bytes(4)
                                 + g),
    }
    frame = payloads[kind](garbage)[: 20 + cut]
    try:
        result = decode_frame(LINKTYPE_RAW, frame)
    except WireError:
        return  # a damaged inner header: one problem line, as for any frame
    assert isinstance(result, TcpPacket | NotTcp)


# -- a capture built here, against tshark ------------------------------------------------

SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def tcp_v4(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
           payload: bytes = b"") -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    checksum = tcp_checksum(src, dst, header + payload)
    return ipv4(src, dst, 6, header[:16] + struct.pack("!H", checksum) + header[18:] + payload)


def connection(n: int) -> list[bytes]:
    """A short connection between 10.9.n.1:4000n and 10.9.n.2:80."""
    c, s, cp = f"10.9.{n}.1", f"10.9.{n}.2", 40000 + n
    return [
        tcp_v4(c, s, cp, 80, 1000, 0, SYN),
        tcp_v4(s, c, 80, cp, 5000, 1001, SYN | ACK),
        tcp_v4(c, s, cp, 80, 1001, 5001, ACK),
        tcp_v4(c, s, cp, 80, 1001, 5001, PSH | ACK, b"GET /"),
        tcp_v4(s, c, 80, cp, 5001, 1006, ACK),
        tcp_v4(c, s, cp, 80, 1006, 5001, FIN | ACK),
    ]


def outer_udp(port: int, payload: bytes) -> bytes:
    return ipv4("192.0.2.1", "192.0.2.2", 17, udp(52000, port, payload))


WRAPPERS = {
    "ipip/ipip/ipip": lambda p: ipip(3, p),
    "ipip": lambda p: ipv4("192.0.2.1", "192.0.2.2", 4, p),
    "gre": lambda p: gre_packet(p, flags=0xB000, key=9, sequence=3),
    "gre/gre": lambda p: gre_packet(gre_packet(p)),
    "vxlan": lambda p: outer_udp(4789, VxlanHeader(0x08, 42).build() + ethernet(0x0800, p)),
    "geneve": lambda p: outer_udp(6081, GeneveHeader(
        0, 0x6558, 7, options=(GeneveOption(0x0101, 0x01, bytes(4)),)).build()
        + ethernet(0x0800, p)),
    "erspan": lambda p: gre_packet(ErspanHeader(1, 5, 2).build() + ethernet(0x0800, p),
                                    protocol=0x88BE, flags=GRE_SEQUENCE, sequence=1),
    "gre/vxlan": lambda p: gre_packet(
        outer_udp(4789, VxlanHeader(0x08, 1).build() + ethernet(0x0800, p))),
}


def write_tunnel_capture(path: Path) -> None:
    """One short connection per WRAPPERS entry, each packet in its tunnel."""
    with path.open("wb") as f:
        writer = PcapWriter(f, LINKTYPE_ETHERNET)
        t = 1_700_000_000 * 10**9
        for n, wrap in enumerate(WRAPPERS.values()):
            for packet in connection(n):
                t += 1_000_000
                writer.write(t, ethernet(0x0800, wrap(packet)))


def tunnel_chain(protocols: str) -> str:
    """tshark's frame.protocols as tcplab's tunnel names, outermost first."""
    names: list[str] = []
    previous = ""
    for layer in protocols.split(":"):
        if layer in ("gre", "vxlan", "geneve"):
            names.append(layer)
        elif layer == "erspan" and names and names[-1] == "gre":
            names[-1] = "erspan"  # tcplab names GRE carrying ERSPAN once
        elif layer in ("ip", "ipv6") and previous in ("ip", "ipv6"):
            names.append("ipip")
        previous = layer
    return "/".join(names)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tunnel_capture_matches_tshark(tmp_path: Path) -> None:
    path = tmp_path / "tunnels.pcap"
    write_tunnel_capture(path)
    fields = ["frame.number", "frame.protocols", "ip.src", "ip.dst", "udp.srcport",
              "udp.dstport", "tcp.srcport", "tcp.dstport", "tcp.seq", "tcp.ack", "tcp.len",
              "tcp.stream"]
    rows = tshark_fields(path, fields, "tcp")
    ours = packets_json(path)
    assert len(rows) == len(ours) == 6 * len(WRAPPERS)
    seen = set()
    for row in rows:
        mine = ours[int(row["frame.number"])]
        addresses = row["ip.src"].split(","), row["ip.dst"].split(",")
        expected = {
            "tunnel": tunnel_chain(row["frame.protocols"]),
            "src": addresses[0][-1], "dst": addresses[1][-1],
            "outer_src": addresses[0][0], "outer_dst": addresses[1][0],
            "outer_sport": int(row["udp.srcport"].split(",")[0]) if row["udp.srcport"] else None,
            "outer_dport": int(row["udp.dstport"].split(",")[0]) if row["udp.dstport"] else None,
            "sport": int(row["tcp.srcport"]), "dport": int(row["tcp.dstport"]),
            "seq": int(row["tcp.seq"]), "ack": int(row["tcp.ack"]) if mine["ack"] is not None
            else None, "len": int(row["tcp.len"]), "stream": int(row["tcp.stream"]),
        }
        assert {k: mine[k] for k in expected} == expected, row["frame.number"]
        seen.add(mine["tunnel"])
    assert seen == set(WRAPPERS)
    compared, problems = compare(path, path.name)
    assert not problems and compared == len(rows), problems
    # Zeek keys the inner connections too: SYN, SYN-ACK, ACK, data, ACK,
    # the client's FIN -> S2 (orig closed, resp established), history ShADaF.
    zeek = [(z.conn_state(), z.history) for z in analyze_file(path).zeek]
    assert zeek == [("S2", "ShADaF")] * len(WRAPPERS)


def test_a_bad_outer_ipv4_checksum_drops_the_packet_as_zeek_does() -> None:
    frame = bytearray(ipv4("192.0.2.1", "192.0.2.2", 4, ipv4("10.0.0.1", "10.0.0.2", 6,
                                                              inner_tcp_v4()[20:])))
    good = decode_frame(LINKTYPE_RAW, bytes(frame), strict_checksum=True)
    assert isinstance(good, TcpPacket) and good.ip_checksum_ok is True
    frame[10] ^= 0xFF  # the outer header's checksum
    bad = decode_frame(LINKTYPE_RAW, bytes(frame), strict_checksum=True)
    assert isinstance(bad, TcpPacket) and bad.ip_checksum_ok is False
    lenient = decode_frame(LINKTYPE_RAW, bytes(frame))
    assert isinstance(lenient, TcpPacket) and lenient.ip_checksum_ok is None


def test_summary_counts_tunnelled_connections(tmp_path: Path) -> None:
    """``--summary`` reads the same tunnels as the full analysis."""
    import json

    from conftest import run_tcplab

    path = tmp_path / "tunnels.pcap"
    write_tunnel_capture(path)
    full = analyze_file(path)
    result = run_tcplab("analyze", "--summary", "--json", str(path))
    summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(full.connections) == len(summary) == len(WRAPPERS)
    assert sorted(tuple(c["packets"]) for c in summary) == sorted(
        (c.client.packets, c.server.packets) for c in full.connections)
