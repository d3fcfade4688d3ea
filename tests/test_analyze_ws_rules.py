"""Wireshark 4.0.17's timing and once-per-hole rules, on captures built here.

Each capture is crafted byte by byte (live traffic cannot put a SYN at time
0, or make data arrive out of order microseconds apart) and compared frame
by frame with tshark: relative seq/ack, length, every tcp.analysis flag and
the duplicate-ACK number (``test_analyze_tshark.compare``).  Every test also
asserts the verdict that motivated it, so a tshark that changed its mind
would not pass silently.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ACK, FIN, SYN, ipv4_tcp
from tcplab.analyze import analyze_file
from tcplab.analyze.frames import read_segments
from tcplab.analyze.wireshark import StreamTracker
from tcplab.capture.writer import PcapWriter
from test_analyze_tshark import compare

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

C, S = ("10.0.0.1", 40000), ("10.0.0.2", 80)
US = 1_000  # ns
MS = 1_000_000
# 2023-11-14T22:13:20Z, a capture's usual kind of timestamp.
EPOCH = 1_700_000_000 * 1_000_000_000

Packet = tuple[int, bytes]


def seg(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int,
        size: int = 0) -> bytes:
    return ipv4_tcp(src[0], dst[0], src[1], dst[1], seq, ack, flags, b"x" * size)


def write(path: Path, packets: list[Packet]) -> Path:
    with path.open("wb") as f:
        writer = PcapWriter(f, 101, nanosecond=True)  # LINKTYPE_RAW
        for t, data in packets:
            writer.write(t, data)
    return path


def flags_by_frame(path: Path) -> dict[int, frozenset[str]]:
    tracker = StreamTracker()
    return {s.index: tracker.observe(s).flags for s in read_segments(path)}


def matches_tshark(path: Path) -> dict[int, frozenset[str]]:
    """tshark's verdicts, frame by frame, from the reference rules; the
    engine (what ``tcplab analyze`` runs) must say the same."""
    compared, problems = compare(path, path.name)
    assert not problems, problems
    assert compared > 0
    reference = flags_by_frame(path)
    assert {p.index: p.analysis for p in analyze_file(path).packets} == reference
    return reference


def syn_then_data_out_of_order(t0: int, first: int = 1 * US) -> list[Packet]:
    """A lone SYN, then data microseconds apart (``first`` after the SYN), one
    segment arriving 1 µs after the highest one."""
    return [
        (t0, seg(C, S, 1000, 0, SYN)),
        (t0 + first, seg(C, S, 1001, 5001, ACK, 100)),
        (t0 + first + 1 * US, seg(C, S, 1201, 5001, ACK, 100)),  # 1101..1200 missing
        (t0 + first + 2 * US, seg(C, S, 1101, 5001, ACK, 100)),  # ... arrives late
    ]


def test_syn_at_time_zero_starts_no_rtt(tmp_path: Path) -> None:
    # packet-tcp.c: ts_mru_syn stamped 0 is nstime_is_zero(), so no first RTT
    # is taken (not the 1 µs to the first data) and ooo_thres stays 3 ms: the
    # late segment is out-of-order.
    path = write(tmp_path / "syn-at-0.pcap", syn_then_data_out_of_order(0))
    assert matches_tshark(path)[4] == {"out_of_order"}


def test_first_rtt_is_the_threshold(tmp_path: Path) -> None:
    # The same packets an epoch later: SYN -> first segment with ACK is 1 µs,
    # the late segment 1 µs after the highest one is not within it.
    path = write(tmp_path / "syn-at-epoch.pcap", syn_then_data_out_of_order(EPOCH))
    assert matches_tshark(path)[4] == {"retransmission"}


def test_gap_not_below_first_rtt_is_a_retransmission(tmp_path: Path) -> None:
    # First RTT 10 µs (SYN to the first segment with ACK and without SYN);
    # a late segment exactly 10 µs after the highest one is not "t < ooo_thres".
    t0 = EPOCH + 123_456_789
    packets = [
        (t0, seg(C, S, 1000, 0, SYN)),
        (t0 + 4 * US, seg(S, C, 5000, 1001, SYN | ACK)),
        (t0 + 10 * US, seg(C, S, 1001, 5001, ACK)),
        (t0 + 20 * US, seg(C, S, 1001, 5001, ACK, 100)),
        (t0 + 21 * US, seg(C, S, 1201, 5001, ACK, 100)),
        (t0 + 31 * US, seg(C, S, 1101, 5001, ACK, 100)),  # gap == RTT
        (t0 + 40 * US, seg(C, S, 1401, 5001, ACK, 100)),
        (t0 + 50 * US - 1, seg(C, S, 1301, 5001, ACK, 100)),  # gap == RTT - 1 ns
        (t0 + 60 * US, seg(S, C, 5001, 1501, ACK)),
        (t0 + 70 * US, seg(C, S, 1501, 5001, FIN | ACK)),
        (t0 + 80 * US, seg(S, C, 5001, 1502, FIN | ACK)),
        (t0 + 90 * US, seg(C, S, 1502, 5002, ACK)),
    ]
    path = write(tmp_path / "gap-equals-rtt.pcap", packets)
    flags = matches_tshark(path)
    assert flags[6] == {"retransmission"}
    assert flags[8] == {"out_of_order"}


def test_lone_syn_then_reordered_data(tmp_path: Path) -> None:
    # Issue 11's case: a capture that starts with a lone SYN (its SYN-ACK not
    # captured) and data reordered within microseconds.  The data carries ACK,
    # so tshark takes SYN -> first data as the RTT; tcplab must say what it says.
    path = write(tmp_path / "lone-syn.pcap", syn_then_data_out_of_order(EPOCH, 10 * US))
    assert matches_tshark(path)[4] == {"out_of_order"}


def test_no_syn_uses_three_milliseconds(tmp_path: Path) -> None:
    # Without any SYN there is no RTT: 3 ms decides (2.999 ms: out-of-order,
    # 3 ms: retransmission).
    t0 = EPOCH
    packets = [
        (t0, seg(C, S, 1001, 5001, ACK, 100)),
        (t0 + 1 * MS, seg(C, S, 1201, 5001, ACK, 100)),
        (t0 + 4 * MS - 1, seg(C, S, 1101, 5001, ACK, 100)),
        (t0 + 5 * MS, seg(C, S, 1401, 5001, ACK, 100)),
        (t0 + 8 * MS, seg(C, S, 1301, 5001, ACK, 100)),
    ]
    path = write(tmp_path / "no-syn.pcap", packets)
    flags = matches_tshark(path)
    assert flags[3] == {"out_of_order"}
    assert flags[5] == {"retransmission"}


def test_acked_unseen_segment_once_per_hole(tmp_path: Path) -> None:
    # packet-tcp.c "ACKED LOST PACKET": the server ACKs client data the
    # capture never saw; the first such ACK is flagged, the next ACKs of
    # more unseen data are not (the client's dupacknum holds the -1 marker),
    # and the guint32 marker also passes "dupacknum>=2": the server's
    # retransmission of what the client last ACKed is a fast retransmission.
    t0 = EPOCH
    packets = [
        (t0, seg(C, S, 1000, 0, SYN)),
        (t0 + 100 * US, seg(S, C, 5000, 1001, SYN | ACK)),
        (t0 + 200 * US, seg(C, S, 1001, 5001, ACK)),
        (t0 + 300 * US, seg(S, C, 5001, 1001, ACK, 100)),
        (t0 + 400 * US, seg(S, C, 5101, 1101, ACK)),  # ACKs client data never seen
        (t0 + 500 * US, seg(S, C, 5101, 1201, ACK)),  # more of it: not flagged again
        (t0 + 5 * MS, seg(S, C, 5001, 1201, ACK, 100)),  # seq == the client's last ACK
    ]
    path = write(tmp_path / "acked-unseen.pcap", packets)
    flags = matches_tshark(path)
    assert flags[5] == {"ack_lost_segment"}
    assert flags[6] == frozenset()
    assert flags[7] == {"fast_retransmission", "retransmission"}


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")
@pytest.mark.parametrize("shift", ["1", "7", "1000000000"])
def test_time_shift_changes_nothing(tmp_path: Path, shift: str) -> None:
    # tshark computes gaps in integer nanoseconds: shifting the whole capture
    # changes no verdict.  Float seconds would tip the gap == RTT cases.
    test_gap_not_below_first_rtt_is_a_retransmission(tmp_path)
    test_no_syn_uses_three_milliseconds(tmp_path)
    for name in ("gap-equals-rtt.pcap", "no-syn.pcap"):
        original = tmp_path / name
        shifted = tmp_path / f"shifted-{name}"
        subprocess.run(
            ["editcap", "-t", shift, str(original), str(shifted)], check=True,
            capture_output=True, timeout=60,
        )
        assert flags_by_frame(shifted) == flags_by_frame(original)
        assert verdicts(shifted) == verdicts(original)
        matches_tshark(shifted)


def verdicts(path: Path) -> list[object]:
    """Everything the analysis says that a time shift must not change."""
    analysis = analyze_file(path)
    packets = [(p.analysis, p.dupack_num, p.client_state, p.server_state,
                tuple((w, c.new) for w, c, _ in p.changes)) for p in analysis.packets]
    conns = [(c.client.final_state, c.server.final_state, c.zeek_conn_state, c.zeek_history,
              c.ending) for c in analysis.connections]
    return [packets, conns]


WS7 = bytes.fromhex("01030307")  # NOP, window scale 7 (RFC 7323 §2.2)


def scaled_handshake() -> list[bytes]:
    return [
        ipv4_tcp(C[0], S[0], C[1], S[1], 1000, 0, SYN, options=WS7),
        ipv4_tcp(S[0], C[0], S[1], C[1], 5000, 1001, SYN | ACK, window=300, options=WS7),
        ipv4_tcp(C[0], S[0], C[1], S[1], 1001, 5001, ACK, window=100),
    ]


def test_window_full_uses_the_unscaled_syn_window_until_an_ack(tmp_path: Path) -> None:
    # packet-tcp.c: a direction's SYN sets is_first_ack, its first segment
    # with ACK and without SYN clears it; while set, window_full takes the
    # window unscaled.  Frame 4 fills the SYN-ACK's 300 bytes; after the
    # server's ACK (window 4 << 7 = 512) frame 6 fills that.
    packets = [
        *scaled_handshake(),
        ipv4_tcp(C[0], S[0], C[1], S[1], 1001, 5001, ACK, b"x" * 300, window=100),
        ipv4_tcp(S[0], C[0], S[1], C[1], 5001, 1301, ACK, window=4),
        ipv4_tcp(C[0], S[0], C[1], S[1], 1301, 5001, ACK, b"x" * 512, window=100),
    ]
    timed = [(EPOCH + i * MS, p) for i, p in enumerate(packets)]
    path = write(tmp_path / "window-full.pcap", timed)
    flags = matches_tshark(path)
    assert flags[4] == flags[6] == {"window_full"}


def test_a_segment_without_ack_keeps_the_window_unscaled(tmp_path: Path) -> None:
    # The server's bare PSH (no ACK bit) does not clear is_first_ack: its
    # window 3 stays unscaled, so 3 bytes from its ACK field fill it.
    packets = [
        *scaled_handshake(),
        ipv4_tcp(S[0], C[0], S[1], C[1], 5001, 1001, 0x08, b"x" * 10, window=3),
        ipv4_tcp(C[0], S[0], C[1], S[1], 1001, 5011, ACK, b"x" * 3, window=100),
        ipv4_tcp(C[0], S[0], C[1], S[1], 1004, 5011, ACK, b"x" * 381, window=100),
    ]
    timed = [(EPOCH + i * MS, p) for i, p in enumerate(packets)]
    path = write(tmp_path / "no-ack-bit.pcap", timed)
    flags = matches_tshark(path)
    assert (flags[5], flags[6]) == ({"window_full"}, frozenset())
