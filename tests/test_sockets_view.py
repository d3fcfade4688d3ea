"""The sockets view and diagnoses on hand-made tables (no root, no kernel)."""

from __future__ import annotations

import socket

import pytest

from tcplab.errors import InputError
from tcplab.sockets.diag import STATE_OF_LINUX, SockInfo, TcpInfo
from tcplab.sockets.diagnose import Kind, Thresholds, diagnose, format_age, socket_key
from tcplab.sockets.procs import Process, SocketOwner
from tcplab.sockets.view import (
    DEFAULT_STATES,
    KERNEL,
    STATE_GROUPS,
    UNKNOWN,
    Row,
    Snapshot,
    SocketFilter,
    attach_owners,
    diff_rows,
    format_ms,
    group_by_process,
    normalise_host,
    parse_states,
)
from tcplab.states import State

LINUX = {v: k for k, v in STATE_OF_LINUX.items() if k not in (12, 13)}


def sock(
    state: State,
    sport: int,
    dport: int,
    *,
    inode: int = 0,
    rq: int = 0,
    wq: int = 0,
    src: str = "10.0.0.1",
    dst: str = "10.0.0.2",
    cookie: int = 0,
    timer: str = "off",
    expires: int = 0,
    retrans: int = 0,
    info: TcpInfo | None = None,
) -> SockInfo:
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    return SockInfo(
        state=state,
        linux_state=LINUX[state],
        family=family,
        src=src,
        sport=sport,
        dst=dst,
        dport=dport,
        rqueue=rq,
        wqueue=wq,
        timer=timer,
        timer_expires_ms=expires,
        retrans=retrans,
        uid=0,
        inode=inode,
        cookie=cookie or (sport << 16 | dport),
        interface=0,
        shutdown=None,
        tcp_info=None if info is None else info.build(),
    )


def info(last_ack_ms: int = 0, retransmits: int = 0) -> TcpInfo:
    return TcpInfo(
        state=0,
        retransmits=retransmits,
        probes=0,
        backoff=0,
        rto_us=200_000,
        ato_us=0,
        snd_mss=1448,
        rcv_mss=536,
        unacked=0,
        sacked=0,
        lost=0,
        retrans=0,
        last_data_sent_ms=0,
        last_data_recv_ms=last_ack_ms,
        last_ack_recv_ms=last_ack_ms,
        pmtu=1500,
        rtt_us=100,
        rttvar_us=50,
        snd_ssthresh=0,
        snd_cwnd=10,
    )


NGINX = Process(pid=100, comm="nginx", cmdline="nginx: worker")
APP = Process(pid=200, comm="app", cmdline="python app.py")


def snap(*socks: SockInfo, owners: dict[int, list[SocketOwner]] | None = None) -> Snapshot:
    return Snapshot(
        rows=attach_owners(list(socks), owners or {}), wall_time=0.0, monotonic=100.0, netns=None
    )


def test_parse_states_spellings_and_groups() -> None:
    assert parse_states(["close-wait"]) == {State.CLOSE_WAIT}
    assert parse_states(["TIME_WAIT", "ESTAB", "syn-recv"]) == {
        State.TIME_WAIT,
        State.ESTABLISHED,
        State.SYN_RECEIVED,
    }
    assert parse_states(["connected"]) == set(State) - {State.LISTEN, State.CLOSED}
    assert parse_states(["bucket"]) == {State.TIME_WAIT, State.SYN_RECEIVED}
    with pytest.raises(InputError, match="'half-open': not a TCP state"):
        parse_states(["half-open"])


def test_default_states_are_what_ss_lists_without_a() -> None:
    # ss -t: connected sockets, minus the "bucket" mini-sockets.
    assert STATE_GROUPS["connected"] - {State.TIME_WAIT, State.SYN_RECEIVED} == DEFAULT_STATES
    assert State.LISTEN not in DEFAULT_STATES and State.CLOSE_WAIT in DEFAULT_STATES


def test_filters() -> None:
    a = Row(sock(State.ESTABLISHED, 40000, 80), (SocketOwner(APP, 3),))
    b = Row(sock(State.ESTABLISHED, 41000, 443, src="::ffff:10.0.0.1", dst="::ffff:10.0.0.9"), ())
    assert SocketFilter(ports=frozenset({80}))(a)
    assert not SocketFilter(ports=frozenset({80}))(b)
    assert SocketFilter(hosts=frozenset({"10.0.0.9"}))(b)
    assert SocketFilter(pids=frozenset({200}))(a) and not SocketFilter(pids=frozenset({200}))(b)
    assert not SocketFilter(states=frozenset({State.LISTEN}))(a)
    assert normalise_host("::FFFF:10.0.0.9") == "10.0.0.9"
    assert normalise_host("2001:db8::0001") == "2001:db8::1"
    with pytest.raises(InputError, match="not an IPv4 or IPv6 address"):
        normalise_host("example.org")


def test_grouping_kernel_unknown_and_queued_children() -> None:
    listener = sock(State.LISTEN, 80, 0, inode=11, rq=1, wq=128, src="0.0.0.0", dst="0.0.0.0")
    queued = sock(State.ESTABLISHED, 80, 5000)  # inode 0: waiting in the accept queue
    accepted = sock(State.ESTABLISHED, 80, 5001, inode=12)
    shared = sock(State.LISTEN, 8080, 0, inode=13, src="0.0.0.0", dst="0.0.0.0")
    tw = sock(State.TIME_WAIT, 80, 5002, timer="timewait", expires=59_000)
    stranger = sock(State.ESTABLISHED, 22, 6000, inode=99)
    owners = {
        11: [SocketOwner(NGINX, 6)],
        12: [SocketOwner(NGINX, 7)],
        13: [SocketOwner(APP, 4), SocketOwner(NGINX, 9)],
    }
    groups = group_by_process(
        snap(listener, queued, accepted, shared, tw, stranger, owners=owners),
        SocketFilter(STATE_GROUPS["all"]),
    )
    assert [g.key for g in groups] == [NGINX.pid, KERNEL, UNKNOWN]
    by_key = {g.key: g for g in groups}
    # A socket held by two processes is listed once, under the lower pid.
    assert [r.sock.sport for r in by_key[NGINX.pid].rows] == [80, 8080, 80, 80]
    assert by_key[NGINX.pid].counts == {State.LISTEN: 2, State.ESTABLISHED: 2}
    assert [r.queued_on for r in by_key[NGINX.pid].rows if r.queued_on] == [listener]
    assert by_key[KERNEL].counts == {State.TIME_WAIT: 1}
    assert by_key[UNKNOWN].counts == {State.ESTABLISHED: 1}
    # A filter hides groups with nothing to list, but counts stay whole.
    only_tw = group_by_process(snap(listener, tw, owners=owners), SocketFilter(DEFAULT_STATES))
    assert only_tw == []


def test_diff_rows_marks_new_changed_and_gone() -> None:
    before = {
        1: Row(sock(State.ESTABLISHED, 1, 2, cookie=1), ()),
        2: Row(sock(State.FIN_WAIT_1, 3, 4, cookie=2), ()),
        3: Row(sock(State.ESTABLISHED, 5, 6, cookie=3), ()),
    }
    after = {
        1: Row(sock(State.ESTABLISHED, 1, 2, cookie=1), ()),
        2: Row(sock(State.FIN_WAIT_2, 3, 4, cookie=2), ()),
        4: Row(sock(State.TIME_WAIT, 5, 6, cookie=4), ()),
    }
    changes, gone = diff_rows(before, after)
    assert changes == {2: "changed", 4: "new"}
    assert [r.sock.cookie for r in gone] == [3]


def test_close_wait_age_takes_the_larger_of_tcp_info_and_first_seen() -> None:
    cw = sock(State.CLOSE_WAIT, 40000, 80, inode=21, rq=1, info=info(last_ack_ms=4_000))
    table = snap(cw, owners={21: [SocketOwner(APP, 5)]})
    (leak,) = diagnose(table)
    assert (leak.kind, leak.pid, leak.count, leak.age_ms) == (Kind.CLOSE_WAIT_LEAK, 200, 1, 4000)
    assert "app (pid 200) holds 1 CLOSE-WAIT socket, the oldest for 4 s" in leak.summary
    (leak,) = diagnose(table, first_seen={socket_key(cw): 100.0 - 300})
    assert leak.age_ms == 300_000 and "for 5 min" in leak.summary
    assert diagnose(table, thresholds=Thresholds(close_wait_ms=10_000)) == []


def test_close_wait_in_an_accept_queue_is_not_a_leak() -> None:
    listener = sock(State.LISTEN, 80, 0, inode=11, rq=1, wq=128, src="0.0.0.0", dst="0.0.0.0")
    child = sock(State.CLOSE_WAIT, 80, 5000, rq=1)
    kinds = {d.kind for d in diagnose(snap(listener, child, owners={11: [SocketOwner(APP, 3)]}))}
    assert Kind.CLOSE_WAIT_LEAK not in kinds


def test_accept_queue_at_and_over_the_backlog() -> None:
    owners = {11: [SocketOwner(NGINX, 6)], 12: [SocketOwner(NGINX, 7)]}
    at = sock(State.LISTEN, 80, 0, inode=11, rq=128, wq=128)
    over = sock(State.LISTEN, 81, 0, inode=12, rq=129, wq=128)
    fine = sock(State.LISTEN, 82, 0, inode=13, rq=127, wq=128)
    idle = sock(State.LISTEN, 83, 0, inode=14, rq=0, wq=0)
    found = diagnose(snap(at, over, fine, idle, owners=owners))
    assert [(d.kind, d.sockets, d.pid) for d in found] == [
        (Kind.ACCEPT_QUEUE_FULL, ("10.0.0.1:80",), 100),
        (Kind.ACCEPT_QUEUE_FULL, ("10.0.0.1:81",), 100),
    ]
    assert "at its limit" in found[0].summary and "dropping handshakes" in found[1].summary


def test_syn_sent_needs_a_retransmission() -> None:
    fresh = sock(State.SYN_SENT, 40000, 80, inode=31, timer="on", info=info())
    retried = sock(State.SYN_SENT, 40001, 80, inode=32, timer="on", info=info(retransmits=3))
    owners = {31: [SocketOwner(APP, 3)], 32: [SocketOwner(APP, 4)]}
    (stuck,) = diagnose(snap(fresh, retried, owners=owners))
    assert stuck.kind is Kind.SYN_SENT_STUCK and stuck.count == 1
    assert "SYN sent 4 times" in stuck.summary


def test_time_wait_threshold_and_peers() -> None:
    tws = [sock(State.TIME_WAIT, 50000 + i, 5432 if i < 7 else 6379) for i in range(10)]
    assert diagnose(snap(*tws), thresholds=Thresholds(time_wait=11)) == []
    (many,) = diagnose(snap(*tws), thresholds=Thresholds(time_wait=10))
    assert many.kind is Kind.MANY_TIME_WAIT and many.count == 10
    assert "most to 10.0.0.2:5432 (7), 10.0.0.2:6379 (3)" in many.summary
    assert "tcp_tw_reuse" in many.explanation and "tcp_tw_reuse" in many.explanation_zh


def test_formatting() -> None:
    assert format_ms(892) == "892ms"
    assert format_ms(59_000) == "59sec"
    assert format_ms(59_700) == "59.7sec"
    assert format_ms(7_260_000) == "121min0sec"
    assert format_age(None) == "for an unknown time"
    assert format_age(90_000) == "for 90 s"
    assert format_age(3 * 3600 * 1000) == "for 3 h"
