"""tcplab.wire against tshark and tcpdump on the Zeek traces.

The reference answers were produced by tests/data/wire/make_peer_baseline.py
(tshark 4.0 with TCP checksum validation on, tcpdump -nn -S); frames are
read with dpkt so this test depends on no other tcplab module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

from conftest import SHARED
from tcplab.wire import NotTcp, TcpPacket, decode_frame, format_options
from tcplab.wire.checksum import offload_partial_sum
from tcplab.wire.decode import decode_ip
from tcplab.wire.fragments import Reassembler, fragment_in

TRACES = SHARED / "peer-traces/zeek/traces"
BASELINE = json.loads((Path(__file__).parent / "data/wire/peer_baseline.json").read_text())
FIELDS: list[str] = BASELINE["fields"]

pytestmark = pytest.mark.skipif(not TRACES.is_dir(), reason="Zeek traces not present")


def frames(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as stream:
        reader = (
            dpkt.pcapng.Reader(stream) if path.suffix == ".pcapng" else dpkt.pcap.Reader(stream)
        )
        linktype = reader.datalink()
        for _, frame in reader:
            yield linktype, frame


def expected_tunnel(protocols: str) -> str | None:
    """The UDP tunnel tshark opened to reach the TCP ("" for none), or None
    when decode_frame should find no TCP (none there, or TCP quoted inside
    an ICMP error)."""
    layers = protocols.split(":")
    if "tcp" not in layers or "icmp" in layers or "icmpv6" in layers:
        return None
    for tunnel in ("gtp", "teredo"):
        if tunnel in layers:
            return tunnel
    return ""


def last(value: str) -> str:
    """The innermost occurrence of a field tshark printed once per layer."""
    return value.rsplit(",", 1)[-1]


# TCP packets per tunnel, as measured (tshark 4.0 with the Teredo heuristic):
# the test fails if decapsulation finds more or fewer.  GTP: 78 frames carry
# TCP in tshark, 42 of them only after reassembling the outer IPv4 fragments
# (REASSEMBLED: tcplab.wire.fragments does it here as tshark does).
TUNNELLED = {
    "tunnels/Teredo.pcap": {"": 33, "teredo": 22},
    "tunnels/gtp/gtp2_different_udp_port.pcap": {"gtp": 78},
}
REASSEMBLED = {"tunnels/gtp/gtp2_different_udp_port.pcap": 42}


@pytest.mark.parametrize("name", sorted(BASELINE["files"]))
def test_trace_matches_tshark(name: str) -> None:
    entry = BASELINE["files"][name]
    rows = [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in entry["rows"]]
    decoded = list(frames(TRACES / name))
    assert len(decoded) == len(rows)
    tcp_seen = 0
    tunnels: dict[str, int] = {}
    reassembler = Reassembler()
    for (linktype, frame), row in zip(decoded, rows, strict=True):
        result = decode_frame(linktype, frame)
        where = f"{name} frame {row['frame.number']}"
        if isinstance(result, NotTcp) and "fragment" in result.reason:
            # tshark dissects a reassembled datagram on its last fragment's
            # frame; so do we, with the datagram in place of the frame.
            fragment = fragment_in(linktype, frame)
            assert fragment is not None, where
            done = reassembler.add(fragment, 0, int(row["frame.number"]))
            if done is not None:
                frame, result = done.datagram, decode_ip(done.datagram)
        tunnel = expected_tunnel(row["frame.protocols"])
        if tunnel is None:
            assert isinstance(result, NotTcp), where
            continue
        assert isinstance(result, TcpPacket), f"{where}: {result}"
        tcp_seen += 1
        tunnels[tunnel] = tunnels.get(tunnel, 0) + 1
        assert result.tunnel == (tunnel or None), where
        v4 = result.ip_version == 4
        assert result.src == last(row["ip.src" if v4 else "ipv6.src"]), where
        assert result.dst == last(row["ip.dst" if v4 else "ipv6.dst"]), where
        if tunnel:
            assert result.outer_src == row["ip.src"].split(",")[0], where
            assert result.outer_dst == row["ip.dst"].split(",")[0], where
            assert result.outer_sport == int(row["udp.srcport"]), where
            assert result.outer_dport == int(row["udp.dstport"]), where
        assert result.ttl == int(last(row["ip.ttl" if v4 else "ipv6.hlim"])), where
        expected_ip_len = int(last(row["ip.len"])) if v4 else 40 + int(last(row["ipv6.plen"]))
        if "pppoes" in row["frame.protocols"]:
            # PPPoE's own length can cut the IP packet (Wireshark follows it too).
            assert result.ip_len <= expected_ip_len, where
        else:
            assert result.ip_len == expected_ip_len, where
        assert result.sport == int(row["tcp.srcport"]), where
        assert result.dport == int(row["tcp.dstport"]), where
        assert result.seq == int(row["tcp.seq_raw"]), where
        assert result.ack == int(row["tcp.ack_raw"]), where
        # tshark's tcp.flags holds all 12 bits, the 3 reserved ones too.
        bits = result.tcp.reserved << 9 | int(result.flags)
        assert bits == int(row["tcp.flags"], 16), where
        assert result.length == int(row["tcp.len"]), where
        assert result.tcp.header_len == int(row["tcp.hdr_len"]), where
        assert result.tcp.window == int(row["tcp.window_size_value"]), where
        raw_options = frame[result.tcp_offset + 20 : result.tcp_offset + result.tcp.header_len]
        assert raw_options.hex() == row["tcp.options"], where
        check_checksum(result, row["tcp.checksum.status"], where)
        if entry["tcpdump_aligned"] and not tunnel:
            # tcpdump -nn prints these tunnels as bare "UDP, length N": it
            # says nothing about the inner TCP.
            assert format_options(result.tcp.options) == row["tcpdump.options"], where
    assert tcp_seen > 0
    assert tunnels == TUNNELLED.get(name, {"": tcp_seen}), "tunnelled TCP counts differ"
    assert reassembler.completed == REASSEMBLED.get(name, 0)
    assert reassembler.finish() == []


def check_checksum(packet: TcpPacket, status: str, where: str) -> None:
    """tshark: 1 good, 0 bad, 2 unverified.  We say None where tshark says bad
    only for an offloaded (0 or pseudo-header partial sum) checksum."""
    if status == "1":
        assert packet.checksum_ok is True, where
    elif status == "2":
        assert packet.checksum_ok is None, where
    elif packet.checksum_ok is None:
        partial = offload_partial_sum(packet.src, packet.dst, packet.ip_len - packet.ip_header_len)
        assert packet.tcp.checksum in (0, partial), where
    else:
        assert packet.checksum_ok is False, where


def test_baseline_covers_encapsulations() -> None:
    """The traces exercise VLAN, QinQ + PPPoE, MPLS, IPv6 and bad checksums."""
    protocols = {
        line.split("\t")[1] for entry in BASELINE["files"].values() for line in entry["rows"]
    }
    assert "eth:ethertype:mpls:ip:tcp" in protocols
    assert "eth:ethertype:vlan:ethertype:vlan:ethertype:pppoes:ppp:ip:tcp" in protocols
    assert "eth:ethertype:ipv6:tcp" in protocols
    statuses = {
        line.split("\t")[FIELDS.index("tcp.checksum.status")]
        for entry in BASELINE["files"].values()
        for line in entry["rows"]
    }
    assert {"0", "1"} <= statuses
