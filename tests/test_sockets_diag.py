"""sock_diag codec: literal bytes both ways, malformed input, round trips (no root needed)."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcplab.errors import TcplabError
from tcplab.sockets.diag import (
    INET_DIAG_INFO,
    TIMER_NAMES,
    DiagRequest,
    SockInfo,
    StateMask,
    TcpInfo,
    parse_dump,
)
from tcplab.states import State

# inet_diag_msg of a TIME-WAIT socket 127.0.0.1:40000 -> 127.0.0.1:7001, written
# out field by field against include/uapi/linux/inet_diag.h (little-endian host).
TIME_WAIT_MSG = (
    bytes([socket.AF_INET, 6, 3, 0])  # family, state TCP_TIME_WAIT, timer 3, retrans 0
    + b"\x9c\x40"  # sport 40000, big-endian
    + b"\x1b\x59"  # dport 7001
    + bytes([127, 0, 0, 1])
    + b"\0" * 12  # src
    + bytes([127, 0, 0, 1])
    + b"\0" * 12  # dst
    + struct.pack("<I", 0)  # if
    + struct.pack("<II", 0x11223344, 0x55)  # cookie[0], cookie[1]
    + struct.pack("<IIIII", 59_900, 0, 0, 0, 0)  # expires, rqueue, wqueue, uid, inode
)


def test_parse_time_wait_literal() -> None:
    sock = SockInfo.parse(TIME_WAIT_MSG)
    assert sock.state is State.TIME_WAIT
    assert sock.linux_state == 6
    assert (sock.src, sock.sport, sock.dst, sock.dport) == ("127.0.0.1", 40000, "127.0.0.1", 7001)
    assert sock.local == "127.0.0.1:40000"
    assert sock.peer == "127.0.0.1:7001"
    assert sock.timer == "timewait"
    assert sock.timer_expires_ms == 59_900
    assert sock.cookie == 0x55_11223344
    assert sock.inode == 0
    assert sock.info is None
    assert sock.shutdown is None


def test_build_time_wait_literal() -> None:
    assert SockInfo.parse(TIME_WAIT_MSG).build() == TIME_WAIT_MSG


def test_parse_ipv6_listener_with_attributes() -> None:
    info = TcpInfo(
        state=10,
        retransmits=0,
        probes=0,
        backoff=0,
        rto_us=0,
        ato_us=0,
        snd_mss=536,
        rcv_mss=88,
        unacked=2,
        sacked=1,
        lost=0,
        retrans=0,
        last_data_sent_ms=0,
        last_data_recv_ms=0,
        last_ack_recv_ms=0,
        pmtu=0,
        rtt_us=0,
        rttvar_us=0,
        snd_ssthresh=0,
        snd_cwnd=10,
    )
    msg = (
        bytes([socket.AF_INET6, 10, 0, 0])
        + b"\x1b\x60"
        + b"\0\0"
        + b"\0" * 15
        + b"\x01"
        + b"\0" * 16
        + struct.pack("<IIIIIIII", 1, 7, 0, 0, 2, 1, 1000, 4242)
        + struct.pack("<HH", 4 + len(info.build()), INET_DIAG_INFO)
        + info.build()
        + struct.pack("<HHB3x", 5, 8, 0)  # INET_DIAG_SHUTDOWN = 0, padded to 4
    )
    sock = SockInfo.parse(msg)
    assert sock.state is State.LISTEN
    assert sock.local == "[::1]:7008"
    assert sock.peer == "[::]:*"
    assert (sock.rqueue, sock.wqueue, sock.uid, sock.inode) == (2, 1, 1000, 4242)
    assert sock.info == info
    assert sock.shutdown == 0
    assert sock.interface == 1
    assert sock.cookie == 7
    assert sock.build() == msg


def test_new_syn_recv_and_bound_inactive_map_to_rfc_states() -> None:
    base = bytearray(TIME_WAIT_MSG)
    base[1] = 12
    assert SockInfo.parse(bytes(base)).state is State.SYN_RECEIVED
    base[1] = 13
    sock = SockInfo.parse(bytes(base))
    assert sock.state is State.CLOSED
    assert sock.linux_state == 13


def test_truncated_message() -> None:
    with pytest.raises(TcplabError, match="71 bytes, need 72"):
        SockInfo.parse(TIME_WAIT_MSG[:-1])


def test_attribute_length_below_header() -> None:
    with pytest.raises(TcplabError, match="attribute at offset 72 has length 2"):
        SockInfo.parse(TIME_WAIT_MSG + struct.pack("<HH", 2, 8))


def test_attribute_longer_than_message() -> None:
    with pytest.raises(TcplabError, match="attribute at offset 72 has length 40"):
        SockInfo.parse(TIME_WAIT_MSG + struct.pack("<HH", 40, 8))


def test_truncated_tcp_info() -> None:
    # tcp_info is kept raw and parsed on access (a snapshot rarely reads them all).
    sock = SockInfo.parse(TIME_WAIT_MSG + struct.pack("<HH", 12, INET_DIAG_INFO) + b"\0" * 8)
    assert sock.tcp_info == b"\0" * 8
    with pytest.raises(TcplabError, match="tcp_info is 8 bytes"):
        _ = sock.info


def test_unknown_family_and_state() -> None:
    bad_family = bytearray(TIME_WAIT_MSG)
    bad_family[0] = 7
    with pytest.raises(TcplabError, match="address family 7"):
        SockInfo.parse(bytes(bad_family))
    bad_state = bytearray(TIME_WAIT_MSG)
    bad_state[1] = 99
    with pytest.raises(TcplabError, match="unknown state 99"):
        SockInfo.parse(bytes(bad_state))


def test_request_literal_bytes() -> None:
    req = DiagRequest(family=socket.AF_INET, states=int(StateMask.LISTEN)).build(seq=5)
    assert req == (
        struct.pack("<IHHII", 72, 20, 0x301, 5, 0)  # nlmsghdr: SOCK_DIAG_BY_FAMILY, DUMP
        + bytes([socket.AF_INET, socket.IPPROTO_TCP, 2, 0])  # ext: 1 << (INET_DIAG_INFO-1)
        + struct.pack("<I", 1 << 10)  # TCPF_LISTEN
        + b"\0" * 40  # sockid: ports, addresses, interface
        + b"\xff" * 8  # INET_DIAG_NOCOOKIE
    )
    assert DiagRequest.parse(req) == DiagRequest(family=socket.AF_INET, states=1 << 10)


def test_state_mask_of_rfc_states() -> None:
    assert StateMask.of(State.SYN_RECEIVED) == StateMask.SYN_RECV | StateMask.NEW_SYN_RECV
    assert StateMask.of(State.LISTEN, State.CLOSE_WAIT) == (1 << 10) | (1 << 8)
    assert not StateMask.ALL & StateMask.BOUND_INACTIVE


def _netlink(kind: int, seq: int, payload: bytes) -> bytes:
    length = 16 + len(payload)
    return struct.pack("<IHHII", length, kind, 2, seq, 0) + payload + b"\0" * (-length % 4)


def test_parse_dump_stream_until_done() -> None:
    chunk = (
        _netlink(20, 3, TIME_WAIT_MSG)
        + _netlink(20, 2, TIME_WAIT_MSG)  # stale reply to an older request: skipped
        + _netlink(20, 3, TIME_WAIT_MSG)
        + _netlink(3, 3, struct.pack("<i", 0))
    )
    sockets, done = parse_dump(chunk, seq=3)
    assert done
    assert len(sockets) == 2
    partial, done = parse_dump(chunk[: 2 * (16 + 72)], seq=3)
    assert (len(partial), done) == (1, False)


def test_parse_dump_error_message() -> None:
    with pytest.raises(TcplabError, match="Invalid argument"):
        parse_dump(_netlink(2, 1, struct.pack("<i", -22) + b"\0" * 16), seq=1)


def test_parse_dump_bad_length() -> None:
    with pytest.raises(TcplabError, match="offset 0 has length 9"):
        parse_dump(struct.pack("<IHHII", 9, 20, 0, 1, 0) + b"\0" * 8)


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: socket.inet_ntop(socket.AF_INET6, a.packed))
u32 = st.integers(0, 2**32 - 1)


@st.composite
def sock_infos(draw: st.DrawFn) -> SockInfo:
    family = draw(st.sampled_from([socket.AF_INET, socket.AF_INET6]))
    addr = ipv4 if family == socket.AF_INET else ipv6
    linux_state = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]))
    from tcplab.sockets.diag import STATE_OF_LINUX

    info = draw(
        st.none()
        | st.builds(
            TcpInfo,
            state=st.integers(0, 255),
            retransmits=st.integers(0, 255),
            probes=st.integers(0, 255),
            backoff=st.integers(0, 255),
            rto_us=u32,
            ato_us=u32,
            snd_mss=u32,
            rcv_mss=u32,
            unacked=u32,
            sacked=u32,
            lost=u32,
            retrans=u32,
            last_data_sent_ms=u32,
            last_data_recv_ms=u32,
            last_ack_recv_ms=u32,
            pmtu=u32,
            rtt_us=u32,
            rttvar_us=u32,
            snd_ssthresh=u32,
            snd_cwnd=u32,
        )
    )
    return SockInfo(
        state=STATE_OF_LINUX[linux_state],
        linux_state=linux_state,
        family=family,
        src=draw(addr),
        sport=draw(st.integers(0, 65535)),
        dst=draw(addr),
        dport=draw(st.integers(0, 65535)),
        rqueue=draw(u32),
        wqueue=draw(u32),
        timer=draw(st.sampled_from(TIMER_NAMES)),
        timer_expires_ms=draw(u32),
        retrans=draw(st.integers(0, 255)),
        uid=draw(u32),
        inode=draw(u32),
        cookie=draw(st.integers(0, 2**64 - 1)),
        interface=draw(u32),
        shutdown=draw(st.none() | st.integers(0, 3)),
        tcp_info=None if info is None else info.build(),
    )


@given(sock_infos())
def test_parse_build_round_trip(sock: SockInfo) -> None:
    assert SockInfo.parse(sock.build()) == sock
