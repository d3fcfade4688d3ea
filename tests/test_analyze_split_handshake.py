"""Zeek on split handshakes (two SYNs cross, then one side answers).

Zeek is not installed here, so the expected conn.log rows are derived from
its source (zeek/zeek ``src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc``
and ``scripts/base/protocols/conn/main.zeek``), step by step in comments:

* ``IsReuse`` is asked about every SYN on a known 5-tuple, from either side.
  The responder's SYN carries another ISN than the originator's StartSeq and
  the state is not the SYN/SYN-ACK reversal it tolerates, so it is reuse
  (weird ``SYN_seq_jump``): the first connection is logged with only the
  client's SYN, ``S0``/``S``, and a new one starts with the *server* as its
  originator.
* In that second connection the capture continues as the variant says; its
  conn_state follows ``conn_state()`` from the endpoints' final states.

Frame by frame, relative numbers and flags equal tshark's (one stream).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import ACK, PSH, RST, SYN, ipv4_tcp
from tcplab.analyze import analyze_file
from tcplab.capture.writer import PcapWriter
from test_analyze_tshark import compare

C, S = ("10.0.0.1", 40000), ("10.0.0.2", 80)


def seg(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int,
        size: int = 0) -> bytes:
    return ipv4_tcp(src[0], dst[0], src[1], dst[1], seq, ack, flags, b"x" * size)


def capture(path: Path, answer: list[bytes]) -> Path:
    packets = [seg(C, S, 1000, 0, SYN), seg(S, C, 5000, 0, SYN), *answer,
               seg(C, S, 1001, 5001, PSH | ACK, 10), seg(S, C, 5001, 1011, PSH | ACK, 20),
               seg(C, S, 1011, 5021, RST | ACK)]
    with path.open("wb") as f:
        writer = PcapWriter(f, 101)
        for i, data in enumerate(packets):
            writer.write(1_700_000_000 * 10**9 + i * 1_000_000, data)
    return path


# The classic 4-way split handshake: the client answers the server's SYN.
# Second connection (orig = server, resp = client):
#   server SYN       -> orig INACTIVE -> SYN_SENT                      'S'
#   client SYN-ACK   -> resp INACTIVE, SYN+ACK from the responder:
#                       peer SYN_SENT -> ESTABLISHED, resp ESTABLISHED 'h'
#   server ACK       -> orig ESTABLISHED                               'A'
#   client data      -> 'd';  server data -> 'D'
#   client RST       -> resp RESET                                     'r'
#   conn_state: rs == RESET, os ESTABLISHED -> "RSTR"
CLIENT_ANSWERS = ([seg(C, S, 1000, 5001, SYN | ACK), seg(S, C, 5001, 1001, ACK)],
                  [("S0", "S"), ("RSTR", "ShAdDr")])
# The server answers with SYN-ACK after its own SYN:
#   server SYN       -> orig SYN_SENT                                  'S'
#   server SYN-ACK   -> UpdateSYN_SentState: weird repeated_SYN_with_ack;
#                       same sequence number as the last SYN: no letter
#   client ACK       -> resp INACTIVE, no data, orig SYN_SENT: the
#                       "eccentric TCP" rule leaves it INACTIVE         'a'
#   client data      -> resp PARTIAL                                   'd'
#   server data      -> weird data_before_established                  'D'
#   client RST       -> resp RESET                                     'r'
#   conn_state: rs == RESET, os SYN_SENT -> "REJ"
SERVER_ANSWERS = ([seg(S, C, 5000, 1001, SYN | ACK), seg(C, S, 1001, 5001, ACK)],
                  [("S0", "S"), ("REJ", "SadDr")])


@pytest.mark.parametrize("variant", [CLIENT_ANSWERS, SERVER_ANSWERS],
                         ids=["client-answers", "server-answers"])
def test_split_handshake_as_zeek_logs_it(
    tmp_path: Path, variant: tuple[list[bytes], list[tuple[str, str]]]
) -> None:
    answer, rows = variant
    path = capture(tmp_path / "split.pcap", answer)
    analysis = analyze_file(path)
    assert [(z.conn_state(), z.history) for z in analysis.zeek] == rows
    # The second row's originator is the server (its SYN started it).
    assert (analysis.zeek[1].orig.addr, analysis.zeek[1].orig.port) == S
    # One Wireshark stream; its note says where Zeek splits it and why.
    (conn,) = analysis.connections
    assert (conn.zeek_conn_state, conn.zeek_history) == rows[0]
    second = rows[1]
    assert any(
        f"from frame 2 on as another connection ({second[0]}, history {second[1]})" in note
        and "IsReuse" in note
        for note in conn.notes
    ), conn.notes
    if shutil.which("tshark"):
        compared, problems = compare(path, path.name)
        assert not problems and compared == 7, problems
