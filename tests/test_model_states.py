"""The model, state by state, as packet exchanges (smoltcp's socket tests are the pattern).

Each ``*_state()`` helper builds an endpoint in that state by chaining the
previous one; ``deliver`` hands it a segment at a virtual time and ``expect``
drains what it sent.  The client is 10.0.0.1:40000 with ISS 1000, its peer
10.0.0.2:8080 with ISS 5000.  Scenario-driven tests (``sim(...)``) cover the
timer edges that need a network.  The last test runs every other test of this
module and fails if any edge of ``TRANSITIONS`` was never taken.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from tcplab.model import table
from tcplab.model.fastopen import CacheEntry, cookie_for, parse_key
from tcplab.model.host import Host
from tcplab.model.profile import LINUX, RFC, Profile
from tcplab.model.segment import Options, Segment
from tcplab.model.sim import Simulation
from tcplab.model.table import TRANSITIONS, TransitionError, Trigger
from tcplab.model.tcb import Connection, Listener, SocketError, StateChanged
from tcplab.scenario import parse_scenario
from tcplab.states import State
from tcplab.timeline import Timeline
from tcplab.wire.flags import Flags
from tcplab.wire.seq import Seq

LOCAL = ("10.0.0.1", 40000)
REMOTE = ("10.0.0.2", 8080)
ISS, PEER_ISS = 1000, 5000
F = Flags

# -- helpers -------------------------------------------------------------------


def seg(flags: Flags, seq: int, ack: int | None = None, payload: bytes = b"",
        window: int = 1000, options: Options | None = None) -> Segment:
    """A segment from the peer to the endpoint under test."""
    return Segment(REMOTE[0], REMOTE[1], LOCAL[0], LOCAL[1], Seq(seq),
                   Seq(ack) if ack is not None else None, flags, window,
                   options or Options(), payload)


def deliver(conn: Connection, segment: Segment, t: float) -> None:
    conn.receive(segment, t)


def expect(conn: Connection, wanted: list[tuple[str, int, int | None, int]]) -> None:
    """What the endpoint sent since the last check: (tcpdump flags, seq, ack, length)."""
    got = [
        (s.flags.tcpdump(), s.seq.value, s.ack.value if s.ack is not None else None,
         len(s.payload))
        for s in conn.segments_to_send()
    ]
    assert got == wanted


def changes(conn: Connection | Listener) -> list[tuple[State, State, Trigger]]:
    return [(e.old, e.new, e.trigger) for e in conn.events() if isinstance(e, StateChanged)]


def client(profile: Profile = LINUX) -> Connection:
    return Connection(profile=profile, endpoint="client", local=LOCAL, remote=REMOTE, iss=ISS)


def syn_sent(profile: Profile = LINUX) -> Connection:
    conn = client(profile)
    conn.connect(0.0)
    expect(conn, [("S", ISS, None, 0)])
    return conn


def established(profile: Profile = LINUX) -> Connection:
    conn = syn_sent(profile)
    deliver(conn, seg(F.SYN | F.ACK, PEER_ISS, ISS + 1, options=Options(mss=1460)), 0.001)
    expect(conn, [(".", ISS + 1, PEER_ISS + 1, 0)])
    assert conn.state is State.ESTABLISHED
    conn.events()
    return conn


def fin_wait_1(profile: Profile = LINUX) -> Connection:
    conn = established(profile)
    conn.close(0.01)
    expect(conn, [("F.", ISS + 1, PEER_ISS + 1, 0)])
    assert conn.state is State.FIN_WAIT_1
    return conn


def fin_wait_2(profile: Profile = LINUX) -> Connection:
    conn = fin_wait_1(profile)
    deliver(conn, seg(F.ACK, PEER_ISS + 1, ISS + 2), 0.011)
    expect(conn, [])
    assert conn.state is State.FIN_WAIT_2
    return conn


def close_wait(profile: Profile = LINUX) -> Connection:
    conn = established(profile)
    deliver(conn, seg(F.FIN | F.ACK, PEER_ISS + 1, ISS + 1), 0.01)
    assert conn.state is State.CLOSE_WAIT
    return conn


def last_ack(profile: Profile = LINUX) -> Connection:
    conn = close_wait(profile)
    conn.close(0.02)
    # The ACK of the peer's FIN rides on our FIN: the three-segment close.
    expect(conn, [("F.", ISS + 1, PEER_ISS + 2, 0)])
    assert conn.state is State.LAST_ACK
    return conn


def closing(profile: Profile = LINUX) -> Connection:
    conn = fin_wait_1(profile)
    deliver(conn, seg(F.FIN | F.ACK, PEER_ISS + 1, ISS + 1), 0.011)  # does not ACK our FIN
    expect(conn, [(".", ISS + 2, PEER_ISS + 2, 0)])
    assert conn.state is State.CLOSING
    return conn


def time_wait(profile: Profile = LINUX) -> Connection:
    conn = fin_wait_2(profile)
    deliver(conn, seg(F.FIN | F.ACK, PEER_ISS + 1, ISS + 2), 0.02)
    expect(conn, [(".", ISS + 2, PEER_ISS + 2, 0)])
    assert conn.state is State.TIME_WAIT
    return conn


def listener(profile: Profile = LINUX, backlog: int = 5) -> tuple[Listener, list[Connection]]:
    children: list[Connection] = []
    lst = Listener(profile=profile, endpoint="server", local=LOCAL, backlog=backlog,
                   isn=lambda local, remote, now: ISS, spawn=children.append)
    lst.listen(0.0)
    return lst, children


def syn_received(profile: Profile = LINUX) -> tuple[Listener, Connection]:
    lst, children = listener(profile)
    lst.receive(seg(F.SYN, PEER_ISS, options=Options(mss=1460)), 0.001)
    (child,) = children
    expect(child, [("S.", ISS, PEER_ISS + 1, 0)])
    assert child.state is State.SYN_RECEIVED
    return lst, child


# Fast Open (RFC 7413): both ends with tcp_fastopen=3, the listener with TCP_FASTOPEN.
TFO = replace(LINUX, fastopen=3)
COOKIE = cookie_for(parse_key(TFO.fastopen_key), REMOTE[0], LOCAL[0])  # what LOCAL's server issues


def fastopen_listener(profile: Profile = TFO) -> tuple[Listener, list[Connection]]:
    lst, children = listener(profile)
    lst.fastopen_qlen = 5  # setsockopt(TCP_FASTOPEN, 5)
    return lst, children


def fastopen_syn_received(data: bytes = b"hello") -> tuple[Listener, Connection]:
    """A valid cookie and data on the SYN: the child takes the data at once."""
    lst, children = fastopen_listener()
    lst.receive(seg(F.SYN, PEER_ISS, payload=data, options=Options(mss=1460, fastopen=COOKIE)),
                0.001)
    (child,) = children
    # The SYN-ACK acknowledges the data, and carries no cookie (it was valid).
    (synack,) = child.segments_to_send()
    assert (synack.flags, synack.ack) == (F.SYN | F.ACK, Seq(PEER_ISS + 1 + len(data)))
    assert synack.options.fastopen is None
    return lst, child


def fastopen_client(cookie: bytes | None = b"12345678", mss: int | None = 1460) -> Connection:
    """A client whose host has (or has not) learned a cookie for REMOTE."""
    cache = {REMOTE[0]: CacheEntry(cookie or b"", mss=mss)} if cookie is not None else {}
    return Connection(profile=TFO, endpoint="client", local=LOCAL, remote=REMOTE, iss=ISS,
                      fastopen_cache=cache)


def sim(steps: list[dict[str, Any]], faults: list[dict[str, Any]] | None = None,
        sysctl: dict[str, dict[str, Any]] | None = None, profile: str = "linux",
        **options: Any) -> Timeline:
    data: dict[str, Any] = {"id": "t", "step": steps, "fault": faults or []}
    if sysctl:
        data["sysctl"] = sysctl
    return Simulation(parse_scenario(data), profile=profile, options=options).run()


def path(timeline: Timeline, endpoint: str) -> list[str]:
    return [str(s) for s in timeline.state_path(endpoint)]


OPEN = [
    {"actor": "server", "call": "listen"},
    {"actor": "client", "call": "connect"},
    {"actor": "server", "call": "accept"},
]

# -- CLOSED ------------------------------------------------------------------------


def test_closed_connect_sends_syn_with_options() -> None:
    conn = client()
    conn.connect(0.0)
    (syn,) = conn.segments_to_send()
    assert syn.flags == F.SYN and syn.seq == Seq(ISS) and syn.ack is None
    assert syn.options.mss == 1460 and syn.options.wscale == 7 and syn.options.sack_ok
    assert changes(conn) == [(State.CLOSED, State.SYN_SENT, Trigger.CONNECT)]


def test_closed_port_answers_rst_ack_seq_zero() -> None:
    # RFC 9293 §3.10.7.1; Linux "R." seq 0 ack ISN+1 (KERNEL-NOTES: connect to a closed port).
    tl = sim([{"actor": "client", "call": "connect"}])
    flags = [(p.sender, p.flags, p.seq, p.rel_ack) for p in tl.packets()]
    assert [f[:2] for f in flags] == [("client", "S"), ("server", "R.")]
    assert flags[1][2] == 0 and flags[1][3] == 1
    assert tl.api_calls("client")[0].errno == "ECONNREFUSED"


def test_listen_then_close_listener() -> None:
    lst, _ = listener()
    lst.close(0.5)
    assert changes(lst) == [(State.CLOSED, State.LISTEN, Trigger.LISTEN),
                            (State.LISTEN, State.CLOSED, Trigger.CLOSE)]


def test_closed_sendto_fastopen_without_a_cookie_asks_for_one() -> None:
    # RFC 7413 §4.2.1: an empty Fast Open option, no data; the data waits for the handshake.
    conn = fastopen_client(cookie=None)
    assert conn.connect_fastopen(b"hello", 0.0) == 0
    (syn,) = conn.segments_to_send()
    assert (syn.flags, syn.payload, syn.options.fastopen) == (F.SYN, b"", b"")
    assert "tfo  cookiereq,nop,nop" in syn.options.tcpdump()
    assert conn.send_queue == b"hello"
    assert changes(conn) == [(State.CLOSED, State.SYN_SENT, Trigger.CONNECT_FASTOPEN)]


def test_closed_sendto_fastopen_with_a_cached_cookie_puts_data_on_the_syn() -> None:
    # RFC 7413 §4.2.2: cookie + data, up to the server's cached MSS less 40 (Linux).
    conn = fastopen_client(mss=1040)
    assert conn.connect_fastopen(b"x" * 2000, 0.0) == 1000
    (syn,) = conn.segments_to_send()
    assert (syn.flags, len(syn.payload), syn.options.fastopen) == (F.SYN, 1000, b"12345678")
    assert conn.snd_nxt == Seq(ISS + 1 + 1000) and len(conn.send_queue) == 1000


def test_closed_tcp_fastopen_connect_defers_the_syn_to_the_first_write() -> None:
    # packetdrill client/blocking-connect-bypass.pkt: connect() = 0 and nothing on the
    # wire; write(1000) sends "S 0:1000(1000) <...,FO cookie>".
    conn = fastopen_client()
    conn.set_fastopen_connect(True)
    conn.connect(0.0)
    expect(conn, [])
    assert changes(conn) == [(State.CLOSED, State.SYN_SENT, Trigger.CONNECT_DEFERRED)]
    assert conn.send(b"x" * 1000, 0.01) == 1000
    (syn,) = conn.segments_to_send()
    assert (syn.flags, len(syn.payload), syn.options.fastopen) == (F.SYN, 1000, b"12345678")


def test_closed_tcp_fastopen_connect_without_a_cookie_asks_for_one() -> None:
    conn = fastopen_client(cookie=None)
    conn.set_fastopen_connect(True)
    conn.connect(0.0)
    (syn,) = conn.segments_to_send()
    assert (syn.payload, syn.options.fastopen) == (b"", b"")
    assert changes(conn) == [(State.CLOSED, State.SYN_SENT, Trigger.CONNECT)]
    # The SYN-ACK's cookie is learnt; connect() returned, so the ACK goes alone.
    deliver(conn, seg(F.SYN | F.ACK, PEER_ISS, ISS + 1,
                      options=Options(mss=1460, fastopen=b"abcd1234")), 0.01)
    expect(conn, [(".", ISS + 1, PEER_ISS + 1, 0)])
    assert conn.fastopen_cache[REMOTE[0]].cookie == b"abcd1234"


def test_closed_sendto_fastopen_needs_the_client_bit() -> None:
    conn = fastopen_client()
    conn.profile = replace(TFO, fastopen=2)  # server bit only
    with pytest.raises(SocketError, match="EOPNOTSUPP"):
        conn.connect_fastopen(b"hello", 0.0)
    assert conn.state is State.CLOSED and conn.segments_to_send() == []


# -- LISTEN -------------------------------------------------------------------------


def test_listen_ack_gets_reset_and_rst_is_ignored() -> None:
    lst, children = listener()
    lst.receive(seg(F.ACK, 7, 4242), 0.1)
    (rst,) = lst.segments_to_send()
    assert rst.flags == F.RST and rst.seq == Seq(4242)  # <SEQ=SEG.ACK><CTL=RST>
    lst.receive(seg(F.RST, 7), 0.2)
    assert lst.segments_to_send() == [] and children == []


def test_listen_syn_spawns_child_in_syn_received() -> None:
    lst, child = syn_received()
    assert changes(child) == [(State.LISTEN, State.SYN_RECEIVED, Trigger.RCV_SYN)]
    assert lst.state is State.LISTEN and lst.half_open == [child]


def test_listen_syn_ack_echoes_the_syns_timestamp() -> None:
    # RFC 7323 §4.3: TSecr of the SYN-ACK is the SYN's TSval.
    lst, children = listener()
    lst.receive(seg(F.SYN, PEER_ISS, options=Options(mss=1460, ts=(777, 0))), 0.001)
    (synack,) = children[0].segments_to_send()
    assert synack.options.ts is not None and synack.options.ts[1] == 777


def test_listen_two_way_handshake_counterfactual() -> None:
    lst, children = listener(replace(LINUX, two_way_handshake=True))
    lst.receive(seg(F.SYN, PEER_ISS), 0.0)
    (child,) = children
    assert child.state is State.ESTABLISHED
    assert lst.accept() is child  # accepted before anyone confirmed it


def test_listen_fastopen_cookie_request_gets_a_cookie_not_a_fast_open() -> None:
    lst, children = fastopen_listener()
    lst.receive(seg(F.SYN, PEER_ISS, options=Options(mss=1460, fastopen=b"")), 0.001)
    (child,) = children
    (synack,) = child.segments_to_send()
    assert (synack.ack, synack.options.fastopen) == (Seq(PEER_ISS + 1), COOKIE)
    assert changes(child) == [(State.LISTEN, State.SYN_RECEIVED, Trigger.RCV_SYN)]
    assert lst.half_open == [child] and lst.accept() is None


def test_listen_valid_cookie_takes_the_syn_data_before_the_handshake_completes() -> None:
    lst, child = fastopen_syn_received()
    assert changes(child) == [(State.LISTEN, State.SYN_RECEIVED, Trigger.RCV_SYN_FASTOPEN)]
    # accept() returns it and the data is readable while it is still in SYN-RECEIVED.
    assert lst.accept() is child and child.recv(100, 0.002) == b"hello"
    assert child.state is State.SYN_RECEIVED


def test_listen_bad_cookie_acks_only_the_syn_and_hands_out_the_right_one() -> None:
    lst, children = fastopen_listener()
    lst.receive(seg(F.SYN, PEER_ISS, payload=b"hello",
                    options=Options(mss=1460, fastopen=b"badcooki")), 0.001)
    (child,) = children
    (synack,) = child.segments_to_send()
    assert (synack.ack, synack.options.fastopen) == (Seq(PEER_ISS + 1), COOKIE)
    assert child.rcv_queue == b"" and lst.half_open == [child]


def test_listen_fastopen_needs_the_server_bit_and_a_queue() -> None:
    options = Options(mss=1460, fastopen=COOKIE)
    for profile, qlen in ((TFO, 0), (replace(TFO, fastopen=1), 5)):
        lst, children = listener(profile)
        lst.fastopen_qlen = qlen
        lst.receive(seg(F.SYN, PEER_ISS, payload=b"hello", options=options), 0.001)
        (child,) = children
        (synack,) = child.segments_to_send()
        assert synack.ack == Seq(PEER_ISS + 1) and synack.options.fastopen is None
    # 0x400: every listener does Fast Open, its queue as long as the backlog.
    lst, _ = listener(replace(TFO, fastopen=0x403), backlog=7)
    assert lst.fastopen_qlen == 7


def test_listen_data_without_a_cookie_needs_the_cookie_not_required_bit() -> None:
    # packetdrill server/basic-cookie-not-reqd.pkt: tcp_fastopen=0x202.
    lst, children = fastopen_listener(replace(TFO, fastopen=0x202))
    lst.receive(seg(F.SYN, PEER_ISS, payload=b"x" * 1000, options=Options(mss=1460)), 0.001)
    (child,) = children
    expect(child, [("S.", ISS, PEER_ISS + 1001, 0)])
    assert child.fastopen_child and child.rcv_queue == b"x" * 1000


# -- SYN-SENT -----------------------------------------------------------------------


def test_syn_sent_syn_ack_establishes_and_acks() -> None:
    conn = established()
    assert conn.snd_una == Seq(ISS + 1) and conn.rcv_nxt == Seq(PEER_ISS + 1)


def test_syn_sent_bad_ack_gets_reset_and_state_stays() -> None:
    conn = syn_sent()
    deliver(conn, seg(F.SYN | F.ACK, PEER_ISS, ISS + 99), 0.001)
    expect(conn, [("R", ISS + 99, None, 0)])
    assert conn.state is State.SYN_SENT


def test_syn_sent_rst_refuses() -> None:
    conn = syn_sent()
    deliver(conn, seg(F.RST | F.ACK, 0, ISS + 1), 0.001)
    assert conn.state is State.CLOSED
    with pytest.raises(SocketError) as err:
        conn.send(b"x", 0.002)
    assert err.value.errno == "ECONNREFUSED"


def test_syn_sent_rst_without_acceptable_ack_is_ignored() -> None:
    conn = syn_sent()
    deliver(conn, seg(F.RST | F.ACK, 0, ISS + 50), 0.001)
    assert conn.state is State.SYN_SENT


def test_syn_sent_close_sends_nothing() -> None:
    conn = syn_sent()
    conn.close(0.1)
    expect(conn, [])
    assert conn.state is State.CLOSED and conn.next_deadline() is None


def test_syn_sent_simultaneous_open() -> None:
    conn = syn_sent()
    deliver(conn, seg(F.SYN, PEER_ISS), 0.001)
    expect(conn, [("S.", ISS, PEER_ISS + 1, 0)])
    assert conn.state is State.SYN_RECEIVED
    # The peer's SYN-ACK ACKs our SYN: ESTABLISHED, and one ACK back (KERNEL-NOTES).
    deliver(conn, seg(F.SYN | F.ACK, PEER_ISS, ISS + 1), 0.002)
    expect(conn, [(".", ISS + 1, PEER_ISS + 1, 0)])
    assert [c[1] for c in changes(conn)] == [State.SYN_SENT, State.SYN_RECEIVED,
                                             State.ESTABLISHED]


def test_simultaneous_open_over_the_network() -> None:
    tl = sim(
        [{"actor": "server", "call": "bind", "port": 9000},
         {"actor": "client", "call": "bind", "port": 8080},
         {"actor": "server", "call": "connect", "port": 8080, "background": True},
         {"actor": "client", "call": "connect", "port": 9000}],
        faults=[{"action": "hold", "flags": "S", "release_after": 2}],
    )
    assert [p.flags for p in tl.packets()] == ["S", "S", "S.", "S.", ".", "."]
    for name in ("client", "server"):
        assert path(tl, name) == ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]


def test_simultaneous_open_relative_numbers_in_the_timeline() -> None:
    # Both SYN-ACKs repeat their sender's ISN (relative seq 0) and ACK the other's SYN
    # (relative ack 1), as tshark shows them: the second pure SYN must not forget the
    # first side's base (RFC 9293 §3.5 figure 8; PEER-SEMANTICS.md §3.1).
    tl = sim(
        [{"actor": "server", "call": "bind", "port": 9000},
         {"actor": "client", "call": "bind", "port": 8080},
         {"actor": "server", "call": "connect", "port": 8080, "background": True},
         {"actor": "client", "call": "connect", "port": 9000}],
        faults=[{"action": "hold", "flags": "S", "release_after": 2},
                {"action": "hold", "flags": "S.", "release_after": 2}],
    )
    got = [(p.sender, p.flags, p.rel_seq, p.rel_ack) for p in tl.packets() if "S" in p.flags]
    assert sorted(got) == [("client", "S", 0, None), ("client", "S.", 0, 1),
                           ("server", "S", 0, None), ("server", "S.", 0, 1)]
    assert all(p.rel_ack == 1 for p in tl.packets() if p.flags == ".")


def test_syn_sent_retries_linear_then_exponential_then_etimedout() -> None:
    # KERNEL-NOTES: tcp_syn_linear_timeouts=4 keeps 1 s for the first retries; with
    # tcp_syn_linear_timeouts=0 and tcp_syn_retries=2: 1 s, 2 s backoff, ETIMEDOUT at 7 s.
    conn = syn_sent(replace(LINUX, syn_retries=2, syn_linear_timeouts=0))
    sends: list[tuple[float, str]] = []
    while conn.state is State.SYN_SENT:
        t = conn.next_deadline()
        assert t is not None
        conn.handle_timers(t)
        sends.extend((t, s.flags.tcpdump()) for s in conn.segments_to_send())
    assert sends == [(1.0, "S"), (3.0, "S")]
    assert changes(conn)[-1] == (State.SYN_SENT, State.CLOSED, Trigger.RETRIES_EXHAUSTED)
    with pytest.raises(SocketError, match="ETIMEDOUT"):
        conn.recv(10, 7.0)

    linear = syn_sent()
    times = []
    while linear.state is State.SYN_SENT:
        t = linear.next_deadline()
        assert t is not None
        linear.handle_timers(t)
        if linear.segments_to_send():
            times.append(t)
    assert times == [1.0, 2.0, 3.0, 4.0, 5.0, 7.0]


def test_syn_sent_fastopen_syn_ack_acknowledging_the_data() -> None:
    conn = fastopen_client()
    conn.connect_fastopen(b"hello", 0.0)
    expect(conn, [("S", ISS, None, 5)])
    deliver(conn, seg(F.SYN | F.ACK, PEER_ISS, ISS + 6, options=Options(mss=1460)), 0.001)
    expect(conn, [(".", ISS + 6, PEER_ISS + 1, 0)])
    assert changes(conn)[-1] == (State.SYN_SENT, State.ESTABLISHED, Trigger.RCV_SYN_ACK)
    assert conn.rtx == [] and conn.syn_data_acked


def test_syn_sent_fastopen_syn_ack_of_the_syn_only_sends_the_data_again() -> None:
    # RFC 7413 §4.2.2; packetdrill client/syn-data-only-syn-acked.pkt: "P. 1:701(700) ack 1",
    # and no bare ACK before it.
    conn = fastopen_client()
    conn.connect_fastopen(b"x" * 700, 0.0)
    expect(conn, [("S", ISS, None, 700)])
    deliver(conn, seg(F.SYN | F.ACK, PEER_ISS, ISS + 1, options=Options(mss=1040)), 0.02)
    expect(conn, [("P.", ISS + 1, PEER_ISS + 1, 700)])
    assert changes(conn)[-1] == (State.SYN_SENT, State.ESTABLISHED,
                                 Trigger.RCV_SYN_ACK_DATA_UNACKED)
    assert conn.rtx[0].retransmitted and conn.fastopen_cache[REMOTE[0]].mss == 1040
    assert not conn.syn_data_acked


def test_syn_sent_cookie_request_learns_the_cookie_and_the_data_carries_the_ack() -> None:
    # Seen live (tcplab run fast-open): no bare ACK, the data segment acknowledges the SYN-ACK.
    conn = fastopen_client(cookie=None)
    conn.connect_fastopen(b"hello", 0.0)
    conn.segments_to_send()
    deliver(conn, seg(F.SYN | F.ACK, PEER_ISS, ISS + 1,
                      options=Options(mss=1460, fastopen=b"abcdefgh")), 0.001)
    expect(conn, [("P.", ISS + 1, PEER_ISS + 1, 5)])
    assert conn.fastopen_cache[REMOTE[0]] == CacheEntry(b"abcdefgh", False, 1460)
    # That quick reply made it interactive: the server's answer is not ACKed at
    # once, the ACK rides on the FIN (packetdrill client/blocking-sendto.pkt).
    deliver(conn, seg(F.PSH | F.ACK, PEER_ISS + 1, ISS + 6, payload=b"x" * 500), 0.011)
    expect(conn, [])
    assert conn.recv(4096, 0.011) == b"x" * 500
    conn.close(0.011)
    expect(conn, [("F.", ISS + 6, PEER_ISS + 501, 0)])


def test_syn_sent_fastopen_retransmitted_syn_is_a_plain_syn() -> None:
    # packetdrill client/syn-data-timeout.pkt: no data, no Fast Open option.
    conn = fastopen_client()
    conn.connect_fastopen(b"hello", 0.0)
    conn.segments_to_send()
    conn.handle_timers(1.0)
    (again,) = conn.segments_to_send()
    assert (again.flags, again.payload, again.options.fastopen) == (F.SYN, b"", None)


# -- SYN-RECEIVED ---------------------------------------------------------------------


def test_syn_received_ack_of_syn_establishes_and_queues_for_accept() -> None:
    lst, child = syn_received()
    child.receive(seg(F.ACK, PEER_ISS + 1, ISS + 1), 0.002)
    assert child.state is State.ESTABLISHED and lst.accept() is child


def test_syn_received_fastopen_child_sends_before_the_handshake_completes() -> None:
    lst, child = fastopen_syn_received()
    assert lst.accept() is child
    child.send(b"reply", 0.002)
    expect(child, [("P.", ISS + 1, PEER_ISS + 6, 5)])
    # The client's ACK covers the SYN-ACK and the reply; the child is not queued twice.
    child.receive(seg(F.ACK, PEER_ISS + 6, ISS + 6), 0.003)
    assert child.state is State.ESTABLISHED and lst.accept() is None


def test_syn_received_fastopen_child_closed_with_unread_data_resets() -> None:
    # packetdrill server/unread-data-closed-trigger-rst.pkt: "> R. 1:1(0) ack 11", no FIN.
    lst, child = fastopen_syn_received(b"x" * 10)
    assert lst.accept() is child
    child.close(0.1)
    expect(child, [("R.", ISS + 1, PEER_ISS + 11, 0)])
    assert changes(child)[-1] == (State.SYN_RECEIVED, State.CLOSED, Trigger.CLOSE)


def test_syn_received_fastopen_child_reset_when_its_listener_closes() -> None:
    # packetdrill server/listener-closed-trigger-rst.pkt: "> R. 1:1(0) ack 11".
    lst, child = fastopen_syn_received(b"x" * 10)
    lst.close(0.1)
    expect(child, [("R.", ISS + 1, PEER_ISS + 11, 0)])
    assert changes(child)[-1] == (State.SYN_RECEIVED, State.CLOSED, Trigger.LISTENER_CLOSED)


def test_syn_received_fastopen_child_reset_before_accept() -> None:
    # packetdrill server/reset-before-accept.pkt: accept() still returns it,
    # read() gives the SYN's data, then ECONNRESET.
    lst, child = fastopen_syn_received(b"x" * 10)
    child.receive(seg(F.RST | F.ACK, PEER_ISS + 11), 0.1)
    assert child.state is State.CLOSED and lst.accept() is child
    assert child.recv(512, 0.2) == b"x" * 10
    with pytest.raises(SocketError, match="ECONNRESET"):
        child.recv(512, 0.2)


def test_syn_received_bad_ack_is_reset() -> None:
    _, child = syn_received()
    child.receive(seg(F.ACK, PEER_ISS + 1, ISS + 77), 0.002)
    expect(child, [("R", ISS + 77, None, 0)])
    assert child.state is State.SYN_RECEIVED


def test_syn_received_retransmitted_syn_gets_syn_ack_again() -> None:
    _, child = syn_received()
    child.receive(seg(F.SYN, PEER_ISS), 1.0)
    expect(child, [("S.", ISS, PEER_ISS + 1, 0)])


def test_syn_received_rst_removes_child_listener_stays() -> None:
    lst, child = syn_received()
    child.receive(seg(F.RST, PEER_ISS + 1), 0.002)
    assert child.state is State.CLOSED and lst.state is State.LISTEN
    assert lst.half_open == [] and lst.accept() is None


def test_syn_received_close_sends_fin() -> None:
    conn = syn_sent()
    deliver(conn, seg(F.SYN, PEER_ISS), 0.001)
    conn.segments_to_send()
    conn.close(0.002)
    assert conn.state is State.FIN_WAIT_1


def test_syn_received_synack_retries_exhausted() -> None:
    # The client's ACKs never arrive: the server retransmits SYN-ACK, then gives up.
    tl = sim([*OPEN[:2], {"actor": "server", "call": "sleep", "seconds": 30}],
             faults=[{"action": "drop", "sender": "client", "flags": "."}],
             sysctl={"server": {"net.ipv4.tcp_synack_retries": 2}})
    assert [p.flags for p in tl.packets() if p.sender == "server"] == ["S.", "S.", "S."]
    assert path(tl, "server")[-2:] == ["SYN-RECEIVED", "CLOSED"]


def test_syn_received_listener_close_drops_half_open_child() -> None:
    lst, child = syn_received()
    lst.close(0.01)
    assert child.state is State.CLOSED
    assert changes(child)[-1] == (State.SYN_RECEIVED, State.CLOSED, Trigger.ABORT)
    expect(child, [])  # Linux drops request sockets silently


def test_listener_close_resets_unaccepted_child() -> None:
    lst, child = syn_received()
    child.receive(seg(F.ACK, PEER_ISS + 1, ISS + 1), 0.002)
    child.segments_to_send()
    lst.close(0.01)
    expect(child, [("R.", ISS + 1, PEER_ISS + 1, 0)])


def test_backlog_full_drops_final_ack_linux() -> None:
    lst, children = listener(backlog=0)
    for port in (1, 2):
        syn = replace(seg(F.SYN, PEER_ISS), sport=port)
        lst.receive(syn, 0.0)
    first, second = children
    first.receive(replace(seg(F.ACK, PEER_ISS + 1, ISS + 1), sport=1), 0.01)
    second.receive(replace(seg(F.ACK, PEER_ISS + 1, ISS + 1), sport=2), 0.01)
    assert first.state is State.ESTABLISHED
    # The queue is full (backlog 0 holds one): Linux drops the request silently.
    assert changes(second)[-1] == (State.SYN_RECEIVED, State.CLOSED, Trigger.RCV_ACK_OF_SYN)
    expect(second, [("S.", ISS, PEER_ISS + 1, 0)])  # its SYN-ACK, and nothing after
    assert second.next_deadline() is None and lst.half_open == []
    lst.receive(replace(seg(F.SYN, PEER_ISS), sport=3), 0.02)
    assert len(children) == 2  # a new SYN is dropped while the queue is full


# -- ESTABLISHED ------------------------------------------------------------------------


def test_established_data_quick_ack_then_delayed_ack() -> None:
    conn = established(replace(LINUX, quickack_segments=1))
    deliver(conn, seg(F.PSH | F.ACK, PEER_ISS + 1, ISS + 1, b"hello"), 0.1)
    expect(conn, [(".", ISS + 1, PEER_ISS + 6, 0)])  # quick-ack mode: at once
    deliver(conn, seg(F.PSH | F.ACK, PEER_ISS + 6, ISS + 1, b"again"), 0.2)
    expect(conn, [])  # delayed
    t = conn.next_deadline()
    assert t is not None and t == pytest.approx(0.24)
    conn.handle_timers(t)
    expect(conn, [(".", ISS + 1, PEER_ISS + 11, 0)])
    assert conn.recv(100, 0.3) == b"helloagain"


def test_established_send_segments_by_mss_with_push_on_last() -> None:
    conn = established(replace(LINUX, timestamps=False))
    conn.snd_wnd = 100_000
    conn.send(b"x" * 3000, 0.1)
    expect(conn, [(".", ISS + 1, PEER_ISS + 1, 1460), (".", ISS + 1461, PEER_ISS + 1, 1460),
                  ("P.", ISS + 2921, PEER_ISS + 1, 80)])


def test_established_out_of_order_is_reassembled() -> None:
    conn = established()
    deliver(conn, seg(F.ACK, PEER_ISS + 4, ISS + 1, b"def"), 0.1)
    expect(conn, [(".", ISS + 1, PEER_ISS + 1, 0)])  # duplicate ACK at once
    deliver(conn, seg(F.ACK, PEER_ISS + 1, ISS + 1, b"abc"), 0.2)
    assert conn.recv(100, 0.3) == b"abcdef" and conn.rcv_nxt == Seq(PEER_ISS + 7)


def test_established_retransmission_backs_off_and_karn() -> None:
    conn = established()
    conn.send(b"data", 0.1)
    conn.segments_to_send()
    first = conn.next_deadline()
    assert first is not None
    conn.handle_timers(first)
    expect(conn, [("P.", ISS + 1, PEER_ISS + 1, 4)])
    second = conn.next_deadline()
    assert second is not None and second - first == pytest.approx(2 * (first - 0.1))
    deliver(conn, seg(F.ACK, PEER_ISS + 1, ISS + 5), second - 0.01)
    assert conn.rtx == [] and conn.retransmits == 0


def test_established_three_duplicate_acks_fast_retransmit() -> None:
    conn = established(replace(LINUX, timestamps=False))
    conn.snd_wnd = 100_000
    conn.send(b"y" * 4000, 0.1)
    conn.segments_to_send()
    for t in (0.11, 0.12, 0.13):
        deliver(conn, seg(F.ACK, PEER_ISS + 1, ISS + 1, window=conn.snd_wnd), t)
    expect(conn, [(".", ISS + 1, PEER_ISS + 1, 1460)])


def test_established_window_scaling_applies_after_syn() -> None:
    conn = syn_sent()
    deliver(conn, seg(F.SYN | F.ACK, PEER_ISS, ISS + 1, window=65535,
                      options=Options(mss=1460, wscale=2)), 0.001)
    assert conn.snd_wnd == 65535  # the SYN's window is never scaled
    deliver(conn, seg(F.ACK, PEER_ISS + 1, ISS + 1, window=1000), 0.002)
    assert conn.snd_wnd == 4000


def test_established_rst_in_window_but_not_exact_gets_challenge_ack() -> None:
    # RFC 5961 §3.2, as Linux does.
    conn = established()
    deliver(conn, seg(F.RST, PEER_ISS + 10), 0.1)
    expect(conn, [(".", ISS + 1, PEER_ISS + 1, 0)])
    assert changes(conn) == []  # still ESTABLISHED
    deliver(conn, seg(F.RST, PEER_ISS + 1), 0.2)
    assert changes(conn) == [(State.ESTABLISHED, State.CLOSED, Trigger.RCV_RST)]
    with pytest.raises(SocketError, match="ECONNRESET"):
        conn.recv(10, 0.3)
    with pytest.raises(SocketError, match="EPIPE"):
        conn.send(b"x", 0.4)


def test_established_syn_gets_challenge_ack_rate_limited() -> None:
    conn = established()
    deliver(conn, seg(F.SYN, PEER_ISS + 100), 0.1)
    deliver(conn, seg(F.SYN, PEER_ISS + 100), 0.2)
    expect(conn, [(".", ISS + 1, PEER_ISS + 1, 0)])  # one ACK per 0.5 s
    assert conn.state is State.ESTABLISHED


def test_established_ack_of_unsent_data_is_answered_and_dropped() -> None:
    conn = established()
    deliver(conn, seg(F.ACK, PEER_ISS + 1, ISS + 500, b"zz"), 0.1)
    expect(conn, [(".", ISS + 1, PEER_ISS + 1, 0)])
    assert conn.recv(10, 0.2) is None


def test_established_close_with_unread_data_resets() -> None:
    conn = established()
    deliver(conn, seg(F.PSH | F.ACK, PEER_ISS + 1, ISS + 1, b"unread"), 0.1)
    conn.segments_to_send()
    conn.close(0.2)
    expect(conn, [("R.", ISS + 1, PEER_ISS + 7, 0)])  # Linux: "R." with seq SND.NXT
    assert changes(conn)[-1] == (State.ESTABLISHED, State.CLOSED, Trigger.CLOSE)


def test_rfc_profile_reset_has_no_ack() -> None:
    conn = established(RFC)
    conn.abort(0.2)
    expect(conn, [("R", ISS + 1, None, 0)])


def test_established_shutdown_wr_half_close_still_receives() -> None:
    conn = established()
    conn.shutdown("SHUT_WR", 0.1)
    expect(conn, [("F.", ISS + 1, PEER_ISS + 1, 0)])
    assert changes(conn)[-1] == (State.ESTABLISHED, State.FIN_WAIT_1, Trigger.SHUTDOWN_WR)
    deliver(conn, seg(F.PSH | F.ACK, PEER_ISS + 1, ISS + 2, b"more"), 0.2)
    assert conn.state is State.FIN_WAIT_2 and conn.recv(10, 0.3) == b"more"
    with pytest.raises(SocketError, match="EPIPE"):
        conn.send(b"x", 0.4)


def test_established_shutdown_rd_linux_keeps_data_rfc_discards() -> None:
    for profile, readable in ((LINUX, b"later"), (RFC, b"")):
        conn = established(profile)
        conn.shutdown("SHUT_RD", 0.1)
        expect(conn, [])  # nothing on the wire (KERNEL-NOTES)
        deliver(conn, seg(F.PSH | F.ACK, PEER_ISS + 1, ISS + 1, b"later"), 0.2)
        assert conn.rcv_nxt == Seq(PEER_ISS + 6)  # ACKed either way
        assert conn.recv(10, 0.3) == readable


def test_established_fin_ack_is_delayed_on_linux_immediate_on_rfc() -> None:
    conn = close_wait(LINUX)
    expect(conn, [])
    conn.handle_timers(0.05)
    expect(conn, [(".", ISS + 1, PEER_ISS + 2, 0)])
    rfc = close_wait(RFC)
    expect(rfc, [(".", ISS + 1, PEER_ISS + 2, 0)])
    assert rfc.recv(10, 0.1) == b""


def test_established_abort_sends_rst() -> None:
    conn = established()
    conn.abort(0.1)
    expect(conn, [("R.", ISS + 1, PEER_ISS + 1, 0)])
    assert changes(conn)[-1] == (State.ESTABLISHED, State.CLOSED, Trigger.ABORT)


def test_established_retries_exhausted() -> None:
    conn = established(replace(LINUX, retries2=3))
    conn.send(b"lost", 0.1)
    conn.segments_to_send()
    while conn.state is State.ESTABLISHED:
        t = conn.next_deadline()
        assert t is not None
        conn.handle_timers(t)
    assert changes(conn)[-1][2] is Trigger.RETRIES_EXHAUSTED
    assert [s.flags.tcpdump() for s in conn.segments_to_send()] == ["P."] * 3


def test_established_keepalive_probes_then_reset() -> None:
    conn = established(replace(LINUX, keepalive_idle=10, keepalive_interval=2,
                                keepalive_probes=3))
    conn.set_keepalive(True, 0.001)
    probes: list[tuple[float, str, int]] = []
    while conn.state is State.ESTABLISHED:
        t = conn.next_deadline()
        assert t is not None
        conn.handle_timers(t)
        probes.extend((round(t, 3), s.flags.tcpdump(), s.seq.value)
                      for s in conn.segments_to_send())
    # RFC 1122 §4.2.3.6 probe: SEQ = SND.UNA - 1, no data.
    assert probes == [(10.001, ".", ISS), (12.001, ".", ISS), (14.001, ".", ISS),
                      (16.001, "R.", ISS + 1)]
    assert changes(conn)[-1][2] is Trigger.KEEPALIVE_EXHAUSTED


def test_keepalive_answered_keeps_connection() -> None:
    conn = established(replace(LINUX, keepalive_idle=10, keepalive_interval=2,
                                keepalive_probes=1))
    conn.set_keepalive(True, 0.0)
    conn.handle_timers(10.0)
    conn.segments_to_send()
    deliver(conn, seg(F.ACK, PEER_ISS + 1, ISS + 1), 10.001)
    conn.handle_timers(12.0)
    assert conn.state is State.ESTABLISHED


def test_keepalive_rfc_profile_gives_up_without_reset() -> None:
    conn = established(replace(RFC, keepalive_idle=1, keepalive_interval=1,
                               keepalive_probes=1))
    conn.set_keepalive(True, 0.0)
    for _ in range(2):
        t = conn.next_deadline()
        assert t is not None
        conn.handle_timers(t)
    assert conn.state is State.CLOSED
    assert [s.flags.tcpdump() for s in conn.segments_to_send()] == ["."]
    assert changes(conn)[-1][2] is Trigger.RETRIES_EXHAUSTED


# -- FIN-WAIT-1 ---------------------------------------------------------------------------


def test_fin_wait_1_ack_of_fin() -> None:
    conn = fin_wait_2()
    assert changes(conn)[-1] == (State.FIN_WAIT_1, State.FIN_WAIT_2, Trigger.RCV_ACK_OF_FIN)


def test_fin_wait_1_fin_with_ack_of_fin_goes_through_fin_wait_2() -> None:
    conn = fin_wait_1()
    deliver(conn, seg(F.FIN | F.ACK, PEER_ISS + 1, ISS + 2), 0.02)
    expect(conn, [(".", ISS + 2, PEER_ISS + 2, 0)])
    assert [c[1] for c in changes(conn)][-2:] == [State.FIN_WAIT_2, State.TIME_WAIT]


def test_fin_wait_1_crossing_fins_closing() -> None:
    conn = closing()
    assert changes(conn)[-1] == (State.FIN_WAIT_1, State.CLOSING, Trigger.RCV_FIN)


def test_fin_wait_1_rst() -> None:
    conn = fin_wait_1()
    deliver(conn, seg(F.RST, PEER_ISS + 1), 0.02)
    assert changes(conn)[-1] == (State.FIN_WAIT_1, State.CLOSED, Trigger.RCV_RST)


def test_fin_wait_1_data_after_close_is_reset() -> None:
    conn = fin_wait_1()
    deliver(conn, seg(F.PSH | F.ACK, PEER_ISS + 1, ISS + 1, b"late"), 0.02)
    expect(conn, [("R", ISS + 1, None, 0)])  # Linux answers the segment: SEQ=SEG.ACK
    assert changes(conn)[-1] == (State.FIN_WAIT_1, State.CLOSED, Trigger.RCV_DATA_AFTER_CLOSE)


def test_fin_wait_1_abort() -> None:
    conn = fin_wait_1()
    conn.linger_zero = True
    conn.abort(0.02)
    expect(conn, [("R.", ISS + 2, PEER_ISS + 1, 0)])
    assert changes(conn)[-1] == (State.FIN_WAIT_1, State.CLOSED, Trigger.ABORT)


def test_fin_wait_1_retries_exhausted() -> None:
    conn = fin_wait_1(replace(LINUX, retries2=2))
    while conn.state is State.FIN_WAIT_1:
        t = conn.next_deadline()
        assert t is not None
        conn.handle_timers(t)
    assert [s.flags.tcpdump() for s in conn.segments_to_send()] == ["F.", "F."]
    assert changes(conn)[-1][2] is Trigger.RETRIES_EXHAUSTED


# -- FIN-WAIT-2 ----------------------------------------------------------------------------


def test_fin_wait_2_fin_enters_time_wait_and_acks_at_once() -> None:
    conn = time_wait()
    assert changes(conn)[-1] == (State.FIN_WAIT_2, State.TIME_WAIT, Trigger.RCV_FIN)
    assert conn.next_deadline() == pytest.approx(60.02)


def test_fin_wait_2_orphan_times_out_linux_only() -> None:
    conn = fin_wait_2()
    t = conn.next_deadline()
    assert t is not None and t == pytest.approx(60.011)  # tcp_fin_timeout
    conn.handle_timers(t)
    assert changes(conn)[-1] == (State.FIN_WAIT_2, State.CLOSED, Trigger.TIMEOUT_FIN_WAIT_2)
    assert fin_wait_2(RFC).next_deadline() is None  # RFC 9293: FIN-WAIT-2 may last forever
    half = established()
    half.shutdown("SHUT_WR", 0.1)
    deliver(half, seg(F.ACK, PEER_ISS + 1, ISS + 2), 0.2)
    assert half.state is State.FIN_WAIT_2 and half.next_deadline() is None  # not orphaned


def test_fin_wait_2_rst() -> None:
    conn = fin_wait_2()
    deliver(conn, seg(F.RST, PEER_ISS + 1), 0.5)
    assert changes(conn)[-1] == (State.FIN_WAIT_2, State.CLOSED, Trigger.RCV_RST)


def test_fin_wait_2_data_after_close_is_reset() -> None:
    conn = fin_wait_2()
    deliver(conn, seg(F.PSH | F.ACK, PEER_ISS + 1, ISS + 2, b"late reply"), 0.5)
    expect(conn, [("R", ISS + 2, None, 0)])
    assert changes(conn)[-1][2] is Trigger.RCV_DATA_AFTER_CLOSE


def test_fin_wait_2_abort() -> None:
    conn = established()
    conn.shutdown("SHUT_WR", 0.1)
    deliver(conn, seg(F.ACK, PEER_ISS + 1, ISS + 2), 0.2)
    conn.segments_to_send()
    conn.abort(0.3)
    expect(conn, [("R.", ISS + 2, PEER_ISS + 1, 0)])
    assert changes(conn)[-1] == (State.FIN_WAIT_2, State.CLOSED, Trigger.ABORT)


# -- CLOSING --------------------------------------------------------------------------------


def test_closing_ack_of_fin_time_wait() -> None:
    conn = closing()
    deliver(conn, seg(F.ACK, PEER_ISS + 2, ISS + 2), 0.02)
    assert changes(conn)[-1] == (State.CLOSING, State.TIME_WAIT, Trigger.RCV_ACK_OF_FIN)


def test_closing_rst() -> None:
    conn = closing()
    deliver(conn, seg(F.RST, PEER_ISS + 2), 0.02)
    assert changes(conn)[-1] == (State.CLOSING, State.CLOSED, Trigger.RCV_RST)


def test_closing_retries_exhausted() -> None:
    conn = closing(replace(LINUX, retries2=1))
    while conn.state is State.CLOSING:
        t = conn.next_deadline()
        assert t is not None
        conn.handle_timers(t)
    assert changes(conn)[-1] == (State.CLOSING, State.CLOSED, Trigger.RETRIES_EXHAUSTED)


def test_simultaneous_close_over_the_network() -> None:
    tl = sim([*OPEN, {"actor": "client", "call": "close"}, {"actor": "server", "call": "close"}],
             faults=[{"action": "hold", "flags": "F.", "release_after": 2}])
    assert [p.flags for p in tl.packets()][3:] == ["F.", "F.", ".", "."]
    for name in ("client", "server"):
        assert path(tl, name)[-3:] == ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"]


# -- TIME-WAIT -------------------------------------------------------------------------------


def test_time_wait_re_acks_retransmitted_fin_and_restarts_2msl() -> None:
    conn = time_wait()
    deliver(conn, seg(F.FIN | F.ACK, PEER_ISS + 1, ISS + 2), 0.3)
    expect(conn, [(".", ISS + 2, PEER_ISS + 2, 0)])
    t = conn.next_deadline()
    assert t is not None and t == pytest.approx(60.3)
    conn.handle_timers(t)
    assert changes(conn)[-1] == (State.TIME_WAIT, State.CLOSED, Trigger.TIMEOUT_2MSL)


def test_time_wait_rst_kills_it() -> None:
    conn = time_wait()
    deliver(conn, seg(F.RST, PEER_ISS + 2), 1.0)
    assert changes(conn)[-1] == (State.TIME_WAIT, State.CLOSED, Trigger.RCV_RST)


def host_with_time_wait(profile: Profile = LINUX,
                        listening: bool = True) -> tuple[Host, Connection]:
    """A host whose port 40000 has a connection in TIME-WAIT and (maybe) a new listener."""
    host = Host("server", LOCAL[0], profile, isn=lambda local, remote, now: 9000,
                ephemeral_port=lambda: 50000)
    old = time_wait(profile)
    old.events()
    host.connections.append(old)
    if listening:
        host.listen(LOCAL[1], 5, 1.0)
    return host, old


def sent(host: Host) -> list[tuple[str, int, int | None]]:
    return [(s.flags.tcpdump(), s.seq.value, s.ack.value if s.ack is not None else None)
            for s in host.segments_to_send()]


def test_time_wait_newer_syn_reopens_the_port_pair() -> None:
    # Linux tcp_timewait_state_process (TCP_TW_SYN); RFC 9293 §3.6 MAY-2: a SYN after
    # RCV.NXT ends TIME-WAIT and the listener answers it, ISS = old SND.NXT + 65537.
    host, old = host_with_time_wait()
    host.receive(seg(F.SYN, PEER_ISS + 100_000, options=Options(mss=1460)), 2.0)
    assert changes(old) == [(State.TIME_WAIT, State.CLOSED, Trigger.RCV_SYN)]
    child = host.connections[-1]
    assert child is not old and child.state is State.SYN_RECEIVED
    assert sent(host) == [("S.", ISS + 2 + 65537, PEER_ISS + 100_001)]
    # The handshake completes on the new incarnation.
    host.receive(seg(F.ACK, PEER_ISS + 100_001, ISS + 2 + 65538), 2.1)
    assert child.state is State.ESTABLISHED and old.state is State.CLOSED


def test_time_wait_old_syn_is_answered_from_time_wait() -> None:
    # SEG.SEQ not after RCV.NXT and no timestamp: an old duplicate; TIME-WAIT stays and
    # answers with an ACK (Linux TCP_TW_ACK; RFC 5961 §4 challenge ACK).
    host, old = host_with_time_wait()
    host.receive(seg(F.SYN, PEER_ISS - 10), 2.0)
    assert old.state is State.TIME_WAIT and changes(old) == []
    assert sent(host) == [(".", ISS + 2, PEER_ISS + 2)]
    assert len(host.connections) == 1


def test_time_wait_newer_timestamp_reopens_even_with_an_older_seq() -> None:
    # RFC 6191 §2: with timestamps, a newer TSval identifies a new incarnation.
    host, old = host_with_time_wait()
    old.ts_ok, old.ts_recent = True, 700
    host.receive(seg(F.SYN, PEER_ISS - 10, options=Options(mss=1460, ts=(701, 0))), 2.0)
    assert old.state is State.CLOSED and host.connections[-1].state is State.SYN_RECEIVED
    host2, old2 = host_with_time_wait()
    old2.ts_ok, old2.ts_recent = True, 700
    host2.receive(seg(F.SYN, PEER_ISS - 10, options=Options(mss=1460, ts=(699, 0))), 2.0)
    assert old2.state is State.TIME_WAIT


def test_time_wait_syn_without_listener_or_on_rfc_profile_stays() -> None:
    # Linux looks for a listener first; without one TIME-WAIT answers with an ACK.
    host, old = host_with_time_wait(listening=False)
    host.receive(seg(F.SYN, PEER_ISS + 100_000), 2.0)
    assert old.state is State.TIME_WAIT and sent(host) == [(".", ISS + 2, PEER_ISS + 2)]
    # The rfc profile does not take RFC 9293 §3.6 MAY-2: a challenge ACK (RFC 5961 §4).
    host, old = host_with_time_wait(RFC)
    host.receive(seg(F.SYN, PEER_ISS + 100, options=Options(mss=1460)), 2.0)
    assert old.state is State.TIME_WAIT and sent(host) == [(".", ISS + 2, PEER_ISS + 2)]


def test_time_wait_syn_reopens_over_the_network() -> None:
    # The server closes first; the client comes back from the same port: one handshake,
    # no RST, the server's old connection leaves TIME-WAIT for the new one.
    steps = [
        {"actor": "server", "call": "listen"},
        {"actor": "client", "call": "bind", "sock": "a", "port": 40003},
        {"actor": "client", "call": "connect", "sock": "a"},
        {"actor": "server", "call": "accept", "into": "c1"},
        {"actor": "server", "call": "close", "sock": "c1"},
        {"actor": "client", "call": "recv", "sock": "a", "until": "eof"},
        {"actor": "client", "call": "close", "sock": "a"},
        {"actor": "client", "call": "bind", "sock": "b", "port": 40003},
        {"actor": "client", "call": "connect", "sock": "b"},
        {"actor": "server", "call": "accept", "into": "c2"},
    ]
    tl = sim(steps)
    flags = [p.flags for p in tl.packets()]
    assert flags[-3:] == ["S", "S.", "."] and "R" not in "".join(flags)
    server = path(tl, "server")
    assert server[-4:] == ["TIME-WAIT", "CLOSED", "SYN-RECEIVED", "ESTABLISHED"]
    assert path(tl, "client")[-2:] == ["SYN-SENT", "ESTABLISHED"]
    # The new incarnation's relative numbers start again at 0/1.
    syn_ack = [p for p in tl.packets() if p.flags == "S."][-1]
    assert (syn_ack.rel_seq, syn_ack.rel_ack) == (0, 1)


def _rebind_over_time_wait(old_reuse: bool, new_reuse: bool, profile: str) -> str | None:
    """The server closes first (TIME-WAIT on its port); what does a new bind() return?"""
    setopt = {"call": "setsockopt", "option": "SO_REUSEADDR", "value": 1}
    steps: list[dict[str, Any]] = []
    if old_reuse:
        steps.append({"actor": "server", "sock": "old", **setopt})
    steps += [
        {"actor": "server", "call": "listen", "sock": "old"},
        {"actor": "client", "call": "connect", "sock": "c"},
        {"actor": "server", "call": "accept", "sock": "old", "into": "conn"},
        {"actor": "server", "call": "close", "sock": "conn"},
        {"actor": "client", "call": "recv", "sock": "c", "until": "eof"},
        {"actor": "client", "call": "close", "sock": "c"},
        {"actor": "server", "call": "close", "sock": "old"},
        {"actor": "server", "call": "socket", "sock": "new"},
    ]
    if new_reuse:
        steps.append({"actor": "server", "sock": "new", **setopt})
    steps.append({"actor": "server", "call": "bind", "sock": "new", "port": 8080})
    tl = sim(steps, profile=profile)
    assert "TIME-WAIT" in path(tl, "server")  # the server closed first
    (bind,) = [c for c in tl.api_calls() if c.call == "bind"]
    return bind.errno


def test_bind_over_time_wait_linux_needs_reuseaddr_on_both_sockets() -> None:
    # inet_csk_bind_conflict: the TIME-WAIT socket inherits the listener's sk_reuse.
    assert _rebind_over_time_wait(True, True, "linux") is None
    assert _rebind_over_time_wait(False, True, "linux") == "EADDRINUSE"
    assert _rebind_over_time_wait(True, False, "linux") == "EADDRINUSE"


def test_bind_over_time_wait_rfc_profile_takes_the_bsd_rule() -> None:
    # No bind() in RFC 9293: the rfc profile follows BSD sockets, the new socket's flag.
    assert _rebind_over_time_wait(False, True, "rfc") is None
    assert _rebind_over_time_wait(True, False, "rfc") == "EADDRINUSE"


def test_time_wait_lasts_2msl_per_profile() -> None:
    assert time_wait(RFC).next_deadline() == pytest.approx(0.02 + 240)
    off = time_wait(LINUX.with_options({"time_wait": False}))
    assert off.next_deadline() == pytest.approx(0.02)


# -- CLOSE-WAIT and LAST-ACK ------------------------------------------------------------------


def test_close_wait_close_three_segment_close() -> None:
    conn = last_ack()
    assert changes(conn)[-1] == (State.CLOSE_WAIT, State.LAST_ACK, Trigger.CLOSE)


def test_close_wait_close_with_unread_data_resets() -> None:
    conn = established()
    deliver(conn, seg(F.FIN | F.PSH | F.ACK, PEER_ISS + 1, ISS + 1, b"bye"), 0.01)
    conn.close(0.02)
    expect(conn, [("R.", ISS + 1, PEER_ISS + 5, 0)])
    assert changes(conn)[-1] == (State.CLOSE_WAIT, State.CLOSED, Trigger.CLOSE)


def test_close_wait_shutdown_wr() -> None:
    conn = close_wait()
    conn.shutdown("SHUT_WR", 0.02)
    assert changes(conn)[-1] == (State.CLOSE_WAIT, State.LAST_ACK, Trigger.SHUTDOWN_WR)


def test_close_wait_can_still_send() -> None:
    conn = close_wait()
    conn.snd_wnd = 1000
    assert conn.send(b"reply", 0.02) == 5
    expect(conn, [("P.", ISS + 1, PEER_ISS + 2, 5)])


def test_close_wait_rst_then_epipe() -> None:
    conn = close_wait()
    deliver(conn, seg(F.RST, PEER_ISS + 2), 0.02)
    assert changes(conn)[-1] == (State.CLOSE_WAIT, State.CLOSED, Trigger.RCV_RST)
    with pytest.raises(SocketError, match="EPIPE"):
        conn.send(b"x", 0.03)


def test_close_wait_abort() -> None:
    conn = close_wait()
    conn.abort(0.02)
    expect(conn, [("R.", ISS + 1, PEER_ISS + 2, 0)])
    assert changes(conn)[-1] == (State.CLOSE_WAIT, State.CLOSED, Trigger.ABORT)


def test_close_wait_retries_exhausted() -> None:
    conn = close_wait(replace(LINUX, retries2=1))
    conn.snd_wnd = 1000
    conn.send(b"nobody hears", 0.02)
    while conn.state is State.CLOSE_WAIT:
        t = conn.next_deadline()
        assert t is not None
        conn.handle_timers(t)
    assert changes(conn)[-1] == (State.CLOSE_WAIT, State.CLOSED, Trigger.RETRIES_EXHAUSTED)


def test_last_ack_ack_of_fin_closes() -> None:
    conn = last_ack()
    deliver(conn, seg(F.ACK, PEER_ISS + 2, ISS + 2), 0.03)
    assert changes(conn)[-1] == (State.LAST_ACK, State.CLOSED, Trigger.RCV_ACK_OF_FIN)
    assert conn.next_deadline() is None


def test_last_ack_rst() -> None:
    conn = last_ack()
    deliver(conn, seg(F.RST, PEER_ISS + 2), 0.03)
    assert changes(conn)[-1] == (State.LAST_ACK, State.CLOSED, Trigger.RCV_RST)


def test_last_ack_retransmits_fin_then_gives_up() -> None:
    conn = last_ack(replace(LINUX, retries2=2))
    times = []
    while conn.state is State.LAST_ACK:
        t = conn.next_deadline()
        assert t is not None
        conn.handle_timers(t)
        times += [t for s in conn.segments_to_send() if s.flags & F.FIN]
    assert len(times) == 2
    assert changes(conn)[-1] == (State.LAST_ACK, State.CLOSED, Trigger.RETRIES_EXHAUSTED)


# -- the table itself -------------------------------------------------------------------------


def test_engine_refuses_an_edge_not_in_the_table() -> None:
    conn = established()
    with pytest.raises(TransitionError, match="no transition ESTABLISHED"):
        conn._set_state(State.LISTEN, Trigger.RCV_SYN, 1.0)
    assert conn.state is State.ESTABLISHED


def test_api_misuse_raises_and_state_is_unchanged() -> None:
    conn = established()
    with pytest.raises(SocketError, match="EISCONN"):
        conn.connect(1.0)
    with pytest.raises(SocketError, match="EINVAL"):
        conn.shutdown("SHUT_SIDEWAYS", 1.0)
    assert conn.state is State.ESTABLISHED


def test_every_edge_of_the_table_is_exercised() -> None:
    """Run every test of this module; the edges they took must be all of TRANSITIONS."""
    module = sys.modules[__name__]
    tests: list[Callable[[], None]] = [
        getattr(module, name) for name in dir(module)
        if name.startswith("test_") and name != "test_every_edge_of_the_table_is_exercised"
    ]
    table.USED.clear()
    for test in tests:
        test()
    # The counterfactual scenarios' other edges (LISTEN -two-way-> ESTABLISHED is above).
    missing = [f"{e.state} --{e.label}--> {e.next}" for e in TRANSITIONS if e not in table.USED]
    assert missing == []
