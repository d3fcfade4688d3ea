"""Bulk transfers on the model: data goes out once unless the wire loses it.

Regression for `tcplab sim mss-and-segmentation` sending 16 data segments twice
on a loss-free wire.  The cause was in the runner, not the sender's timer: a
recv() that emptied the receiver's buffer queued a window update (RFC 9293
§3.8.6.2.2) that stayed in the host's output queue until the next event, which
was the sender's retransmission timer (RFC 6298 §5.1), so every window's worth
of data ended in a spurious timeout.  A second defect made it worse: with
timestamps on, a full-sized segment carries 1448 bytes, and the receiver compared
it with 1460, so it never ACKed "every second full-sized segment" (RFC 9293
§3.8.6.3) and left the sender waiting for its delayed-ACK timer.

The ladder tests (client 10.0.0.1:40000, ISS 1000; peer ISS 5000) pin the
sender's and receiver's rules on one endpoint; the sim tests run a whole
transfer, loss-free and with one data segment dropped.
"""

from __future__ import annotations

from typing import Any

from tcplab.model.profile import LINUX
from tcplab.model.segment import Options, Segment
from tcplab.model.sim import Simulation
from tcplab.model.tcb import Connection, Retransmitted
from tcplab.model.timers import TimerKind
from tcplab.scenario import parse_scenario
from tcplab.timeline import Note, Packet, Timeline
from tcplab.wire.flags import Flags
from tcplab.wire.seq import Seq

LOCAL = ("10.0.0.1", 40000)
REMOTE = ("10.0.0.2", 8080)
ISS, PEER_ISS = 1000, 5000
F = Flags
FULL = 1448  # MSS 1460 less the 12 timestamp option bytes (RFC 7323 §3)
SIZE = 256 * 1024
# What the runner's send(size=N) writes (as the lab's actor does): a, b, ..., z, a, ...
WRITTEN = bytes(ord("a") + i % 26 for i in range(SIZE))

# -- ladder helpers ------------------------------------------------------------


def seg(flags: Flags, seq: int, ack: int | None, payload: bytes = b"",
        window: int = 1000, options: Options | None = None) -> Segment:
    """A segment from the peer to the endpoint under test (it echoes timestamps)."""
    return Segment(REMOTE[0], REMOTE[1], LOCAL[0], LOCAL[1], Seq(seq),
                   Seq(ack) if ack is not None else None, flags, window,
                   options or Options(ts=(1, 1)), payload)


def sent(conn: Connection) -> list[tuple[str, int, int | None, int]]:
    """What the endpoint sent since the last call: (tcpdump flags, seq, ack, length)."""
    return [
        (s.flags.tcpdump(), s.seq.value, s.ack.value if s.ack is not None else None,
         len(s.payload))
        for s in conn.segments_to_send()
    ]


def established_with_timestamps() -> Connection:
    """A client whose handshake negotiated MSS 1460, window scale 7 and timestamps."""
    conn = Connection(profile=LINUX, endpoint="client", local=LOCAL, remote=REMOTE, iss=ISS)
    conn.connect(0.0)
    conn.segments_to_send()
    synack = Options(mss=1460, wscale=7, sack_ok=True, ts=(1, 1))
    conn.receive(seg(F.SYN | F.ACK, PEER_ISS, ISS + 1, window=64240, options=synack), 0.001)
    assert sent(conn) == [(".", ISS + 1, PEER_ISS + 1, 0)]
    conn.events()
    return conn


def retransmit_deadline(conn: Connection) -> float:
    timer = conn.timers.get(TimerKind.RETRANSMIT)
    assert timer is not None, "no retransmission timer running"
    return timer.expires


# -- the sender: RFC 6298 §5 ------------------------------------------------------------


def test_segments_are_full_sized_with_timestamps() -> None:
    conn = established_with_timestamps()
    conn.send(b"x" * (3 * FULL), 0.01)
    assert sent(conn) == [
        (".", ISS + 1, PEER_ISS + 1, FULL),
        (".", ISS + 1 + FULL, PEER_ISS + 1, FULL),
        ("P.", ISS + 1 + 2 * FULL, PEER_ISS + 1, FULL),  # PSH where the queue empties
    ]


def test_an_ack_of_new_data_restarts_the_retransmission_timer() -> None:
    conn = established_with_timestamps()
    conn.send(b"x" * (3 * FULL), 0.01)
    sent(conn)
    first = retransmit_deadline(conn)
    assert first == 0.01 + conn.rto  # RFC 6298 (5.1): armed when data goes out
    # RFC 6298 (5.3): an ACK of new data restarts the timer from now, with the RTO
    # updated by the sample the ACK gave (Karn: the segment was sent once).
    conn.receive(seg(F.ACK, PEER_ISS + 1, ISS + 1 + FULL, window=501), 0.05)
    assert sent(conn) == []
    restarted = retransmit_deadline(conn)
    assert restarted == 0.05 + conn.rto
    assert restarted > first
    # At the old deadline nothing happens: the data is not lost, only in flight.
    conn.handle_timers(first)
    assert sent(conn) == []
    assert not [e for e in conn.events() if isinstance(e, Retransmitted)]


def test_the_timer_stops_when_everything_is_acked() -> None:
    conn = established_with_timestamps()
    conn.send(b"x" * (2 * FULL), 0.01)
    sent(conn)
    conn.receive(seg(F.ACK, PEER_ISS + 1, ISS + 1 + 2 * FULL, window=501), 0.02)
    # RFC 6298 (5.2): all outstanding data acknowledged: turn the timer off.
    assert TimerKind.RETRANSMIT not in conn.timers
    conn.handle_timers(10.0)
    assert sent(conn) == []


def test_the_timer_retransmits_only_the_first_unacked_segment() -> None:
    conn = established_with_timestamps()
    conn.send(b"x" * (3 * FULL), 0.01)
    sent(conn)
    rto = conn.rto
    conn.handle_timers(0.01 + rto)
    # RFC 6298 (5.4) retransmit the earliest segment not acknowledged, (5.5) back off.
    assert sent(conn) == [(".", ISS + 1, PEER_ISS + 1, FULL)]
    assert conn.rto == 2 * rto
    assert retransmit_deadline(conn) == 0.01 + 3 * rto


# -- the receiver: RFC 9293 §3.8.6.3 ----------------------------------------------------------


def test_receiver_acks_every_second_full_sized_segment_after_quickacks() -> None:
    conn = established_with_timestamps()
    seq = PEER_ISS + 1
    quick = LINUX.quickack_segments
    for _ in range(quick):  # Linux quick-ack mode: each of the first segments is ACKed
        conn.receive(seg(F.ACK, seq, ISS + 1, b"d" * FULL, window=501), 0.01)
        seq += FULL
        assert sent(conn) == [(".", ISS + 1, seq, 0)]
    # Then one ACK per two full-sized (1448-byte) segments, none in between.
    for pair in range(3):
        conn.receive(seg(F.ACK, seq, ISS + 1, b"d" * FULL, window=501), 0.02 + pair * 0.001)
        assert sent(conn) == []
        assert TimerKind.DELAYED_ACK in conn.timers
        conn.receive(seg(F.ACK, seq + FULL, ISS + 1, b"d" * FULL, window=501),
                     0.02 + pair * 0.001)
        seq += 2 * FULL
        assert sent(conn) == [(".", ISS + 1, seq, 0)]
        assert TimerKind.DELAYED_ACK not in conn.timers


def test_less_than_a_full_segment_waits_for_the_delayed_ack_timer() -> None:
    conn = established_with_timestamps()
    conn.quickacks_left = 0
    conn.receive(seg(F.ACK, PEER_ISS + 1, ISS + 1, b"d" * (FULL - 1), window=501), 0.01)
    assert sent(conn) == []
    conn.handle_timers(0.01 + LINUX.delayed_ack - 0.001)
    assert sent(conn) == []
    conn.handle_timers(0.01 + LINUX.delayed_ack)
    assert sent(conn) == [(".", ISS + 1, PEER_ISS + FULL, 0)]


def test_more_than_a_full_segment_of_data_is_acked_at_once() -> None:
    # Linux counts bytes (__tcp_ack_snd_check: more than one rcv_mss unACKed): a
    # full segment and a short tail, or two short ones, get their ACK at once.
    conn = established_with_timestamps()
    conn.quickacks_left = 0
    conn.receive(seg(F.ACK, PEER_ISS + 1, ISS + 1, b"d" * 1000, window=501), 0.01)
    assert sent(conn) == []
    conn.receive(seg(F.ACK, PEER_ISS + 1001, ISS + 1, b"d" * 449, window=501), 0.011)
    assert sent(conn) == [(".", ISS + 1, PEER_ISS + 1450, 0)]
    assert TimerKind.DELAYED_ACK not in conn.timers


# -- whole transfers on the sim -----------------------------------------------------------


def bulk(size: int, faults: list[dict[str, Any]] | None = None) -> Timeline:
    """The mss-and-segmentation steps with ``size`` bytes: a background send, a reader."""
    steps: list[dict[str, Any]] = [
        {"actor": "server", "call": "listen"},
        {"actor": "client", "call": "connect"},
        {"actor": "server", "call": "accept"},
        {"actor": "client", "call": "send", "size": size, "background": True},
        {"actor": "server", "call": "recv", "until": "size", "size": size},
        {"actor": "client", "call": "close"},
        {"actor": "server", "call": "recv", "until": "eof"},
        {"actor": "server", "call": "close"},
    ]
    data = {"id": "bulk", "step": steps, "fault": faults or []}
    return Simulation(parse_scenario(data), profile="linux").run()


def data_segments(timeline: Timeline) -> list[Packet]:
    return [p for p in timeline.packets() if p.sender == "client" and p.length > 0]


def sent_again(timeline: Timeline) -> list[int]:
    """Relative sequence numbers of client data segments that went on the wire twice."""
    seen: set[int] = set()
    again: list[int] = []
    for p in data_segments(timeline):
        assert p.rel_seq is not None
        if p.rel_seq in seen:
            again.append(p.rel_seq)
        seen.add(p.rel_seq)
    return again


def retransmission_notes(timeline: Timeline) -> list[Note]:
    return [e for e in timeline.events
            if isinstance(e, Note) and e.text.startswith("model: retransmission")]


def read_result(timeline: Timeline) -> str | None:
    recv = next(c for c in timeline.api_calls("server") if c.call == "recv")
    return recv.result


def test_loss_free_bulk_transfer_never_retransmits() -> None:
    timeline = bulk(SIZE)
    data = data_segments(timeline)
    assert sent_again(timeline) == []
    assert retransmission_notes(timeline) == []
    # Every byte went out exactly once, in full-sized segments but the window tails.
    assert sum(p.length for p in data) == SIZE
    assert max(p.length for p in data) == FULL
    assert read_result(timeline) == repr(WRITTEN)
    # No stall: without the spurious timeouts the transfer takes a few round trips
    # (0.5 ms each way), far less than one 200 ms RTO.
    assert data[-1].time - data[0].time < 0.05


def test_the_readers_window_update_leaves_when_it_reads() -> None:
    timeline = bulk(SIZE)
    recv = next(c for c in timeline.api_calls("server") if c.call == "recv")
    assert recv.started is not None
    # The server's first recv() empties a full receive buffer: the ACK announcing
    # the opened window (RFC 9293 §3.8.6.2.2) goes out at that instant.
    updates = [p for p in timeline.packets()
               if p.sender == "server" and p.time == recv.started and p.length == 0]
    assert updates, "no window update when the reader emptied its buffer"
    assert updates[0].window == LINUX.window >> 7


def test_one_dropped_segment_is_retransmitted_exactly_once() -> None:
    drop = {"action": "drop", "sender": "client", "payload": True, "nth": 5}
    timeline = bulk(SIZE, faults=[drop])
    dropped = [p for p in data_segments(timeline) if p.dropped]
    assert len(dropped) == 1
    assert dropped[0].rel_seq == 1 + 4 * FULL
    # The gap makes the receiver send duplicate ACKs (RFC 5681 §4.2), the third
    # one triggers a fast retransmit (§3.2): one retransmission, nothing else.
    assert sent_again(timeline) == [dropped[0].rel_seq]
    assert len(retransmission_notes(timeline)) == 1
    assert sum(p.length for p in data_segments(timeline) if not p.dropped) == SIZE
    assert read_result(timeline) == repr(WRITTEN)  # in order, nothing missing
