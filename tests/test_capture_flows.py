"""``tcplab.flows``: Wireshark's stream numbers and relative seq/ack, by rule
and against tshark on hand-built captures (port reuse, SYN-ACK re-base,
mid-stream start, wrap-around)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conftest import ACK, FIN, PSH, RST, SYN, compare_with_tshark, ipv4_tcp, needs_tshark
from tcplab.capture import PcapWriter
from tcplab.flows import FlowTracker, FlowView
from tcplab.wire.flags import Flags

C, S = "10.0.0.1", "10.0.0.2"


@dataclass(frozen=True)
class Seg:
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: Flags
    length: int = 0


def c2s(seq: int, ack: int, flags: int, length: int = 0, port: int = 40000) -> Seg:
    return Seg(C, S, port, 80, seq, ack, Flags(flags), length)


def s2c(seq: int, ack: int, flags: int, length: int = 0, port: int = 40000) -> Seg:
    return Seg(S, C, 80, port, seq, ack, Flags(flags), length)


def views(*segs: Seg) -> list[FlowView]:
    tracker = FlowTracker()
    return [tracker.observe(s) for s in segs]


def test_handshake_is_zero_based() -> None:
    syn, synack, ack, data = views(
        c2s(1000, 0, SYN),
        s2c(5000, 1001, SYN | ACK),
        c2s(1001, 5001, ACK),
        c2s(1001, 5001, PSH | ACK, 5),
    )
    assert (syn.rel_seq, syn.rel_ack, syn.nxtseq_rel, syn.direction) == (0, None, 1, 0)
    assert (synack.rel_seq, synack.rel_ack, synack.nxtseq_rel, synack.direction) == (0, 1, 1, 1)
    assert (ack.rel_seq, ack.rel_ack, ack.nxtseq_rel) == (1, 1, 1)
    assert (data.rel_seq, data.nxtseq_rel) == (1, 6)
    assert {v.stream for v in (syn, synack, ack, data)} == {0}


def test_mid_stream_start_shows_one() -> None:
    # PEER-SEMANTICS §3.1: base = seq - 1 without SYN; the reverse base = ack - 1.
    first, reply = views(c2s(777, 999, ACK, 10), s2c(999, 787, ACK))
    assert (first.rel_seq, first.rel_ack, first.nxtseq_rel) == (1, 1, 11)
    assert (reply.rel_seq, reply.rel_ack) == (1, 11)


def test_new_syn_with_other_isn_starts_a_new_stream() -> None:
    out = views(
        c2s(1000, 0, SYN),
        c2s(1000, 0, SYN),  # retransmitted SYN: same ISN, same stream
        s2c(5000, 1001, SYN | ACK),
        c2s(1001, 5001, RST),
        c2s(9000, 0, SYN),  # the port pair reused
        s2c(7000, 9001, SYN | ACK),
    )
    assert [v.stream for v in out] == [0, 0, 0, 0, 1, 1]
    assert [v.reused_ports for v in out] == [False, False, False, False, True, False]
    assert (out[4].rel_seq, out[5].rel_seq, out[5].rel_ack) == (0, 0, 1)
    assert out[3].rel_ack is None  # RST without ACK: no acknowledgment number


def test_syn_ack_with_other_isn_rebases() -> None:
    out = views(
        c2s(1000, 0, SYN),
        s2c(5000, 1001, SYN | ACK),
        s2c(6000, 1001, SYN | ACK),  # a different ISN: re-base, same stream
        s2c(6001, 1001, ACK, 3),
    )
    assert [v.stream for v in out] == [0, 0, 0, 0]
    assert [v.reused_ports for v in out] == [False, False, True, False]
    assert (out[2].rel_seq, out[3].rel_seq) == (0, 1)


def test_wraparound() -> None:
    # RFC 9293 §3.4: sequence space is modulo 2**32.
    isn = 2**32 - 3
    syn, _, data, fin = views(
        c2s(isn, 0, SYN),
        s2c(10, isn + 1, SYN | ACK),
        c2s(isn + 1, 11, ACK | PSH, 100),
        c2s((isn + 101) % 2**32, 11, FIN | ACK),
    )
    assert (syn.rel_seq, data.rel_seq, data.nxtseq_rel) == (0, 1, 101)
    assert (fin.rel_seq, fin.nxtseq_rel) == (101, 102)


def test_syn_fin_counts_one_sequence_number_like_tshark() -> None:
    (synfin,) = views(c2s(100, 0, SYN | FIN, 2))
    assert (synfin.rel_seq, synfin.nxtseq_rel) == (0, 3)


def test_streams_are_numbered_in_order_of_first_packet() -> None:
    out = views(c2s(1, 0, SYN, port=1), c2s(1, 0, SYN, port=2), s2c(5, 2, SYN | ACK, port=1))
    assert [v.stream for v in out] == [0, 1, 0]


@needs_tshark
def test_tracker_matches_tshark_on_reuse_and_rebase(tmp_path: Path) -> None:
    isn = 2**32 - 3
    frames = [
        ipv4_tcp(C, S, 40000, 80, 1000, 0, SYN),
        ipv4_tcp(C, S, 40000, 80, 1000, 0, SYN),
        ipv4_tcp(S, C, 80, 40000, 5000, 1001, SYN | ACK),
        ipv4_tcp(S, C, 80, 40000, 6000, 1001, SYN | ACK),
        ipv4_tcp(C, S, 40000, 80, 1001, 6001, ACK | PSH, payload=b"hello"),
        ipv4_tcp(C, S, 40000, 80, 1006, 0, RST),
        ipv4_tcp(C, S, 40000, 80, 9000, 0, SYN),
        ipv4_tcp(S, C, 80, 40000, 7000, 9001, SYN | ACK),
        ipv4_tcp(C, S, 40001, 80, 777, 999, ACK, payload=b"0123456789"),
        ipv4_tcp(S, C, 80, 40001, 999, 787, ACK),
        ipv4_tcp(C, S, 40002, 80, isn, 0, SYN),
        ipv4_tcp(S, C, 80, 40002, 10, isn + 1, SYN | ACK),
        ipv4_tcp(C, S, 40002, 80, isn + 1, 11, ACK | PSH, payload=bytes(100)),
        ipv4_tcp(C, S, 40002, 80, (isn + 101) % 2**32, 11, FIN | ACK),
        ipv4_tcp(S, C, 80, 40002, 11, (isn + 102) % 2**32, FIN | ACK),
        # SYN+FIN with data: tshark's nxtseq adds one for the flags, not two.
        ipv4_tcp(C, S, 40003, 80, 100, 0, SYN | FIN, payload=b"ab"),
    ]
    path = tmp_path / "reuse.pcap"
    with path.open("wb") as f:
        writer = PcapWriter(f, 101)
        for i, frame in enumerate(frames):
            writer.write(1_700_000_000 * 10**9 + i * 10**6, frame)
    comparison = compare_with_tshark(path)
    assert sorted(comparison.ours) == list(range(1, len(frames) + 1))
    assert comparison.mismatches == []
    assert [o["stream"] for o in comparison.ours.values()] == [0] * 6 + [1, 1, 2, 2] + [3] * 5 + [4]
    assert [o["reused_ports"] for o in comparison.ours.values()].count(True) == 2
