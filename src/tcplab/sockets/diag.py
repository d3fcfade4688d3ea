"""The kernel's TCP socket table, read through NETLINK_SOCK_DIAG.

Theory of operation: one ``inet_diag_req_v2`` per address family asks the
kernel to dump every TCP socket whose state is in a bit mask; the kernel
answers with a stream of ``inet_diag_msg`` records, each followed by netlink
attributes (``INET_DIAG_INFO`` = ``struct tcp_info``, ``INET_DIAG_SHUTDOWN``),
ending with ``NLMSG_DONE``.  This is what ``ss -tan`` reads.  ``parse_dump``
below parses it with plain ``struct`` (pyroute2 was ten times slower, see
KERNEL-NOTES.md) and is the readable reference; snapshots use its C twin,
``_diag.parse_dump`` (_diag.c), held equal to it by tests/test_sockets_c.py:
20,000 sockets were a Python turn each (issue 15).

The dump covers the network namespace the netlink socket was *created* in.
``SockDiag(netns=...)`` creates it inside another namespace by switching the
calling thread there (setns(2)) and back again; the socket stays bound to
that namespace for its whole life, so a lab can keep one open per host and
snapshot after every step without switching again.

Layouts (include/uapi/linux/inet_diag.h, sock_diag.h, tcp.h) are declared as
one struct format each, next to the C field list they mirror.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
import struct
from collections.abc import Iterator
from typing import Final, NamedTuple

from tcplab.errors import PrivilegeError, TcplabError
from tcplab.states import State

try:
    from tcplab.sockets import _diag
except ImportError as exc:  # pragma: no cover - a checkout whose C module was never built
    raise ImportError(
        "tcplab's sock_diag parser (src/tcplab/sockets/_diag.c) is not built: "
        "run `make setup` or `pip install -e .`"
    ) from exc

NETLINK_SOCK_DIAG: Final = 4
SOCK_DIAG_BY_FAMILY: Final = 20
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
NLM_F_REQUEST: Final = 0x01
NLM_F_DUMP: Final = 0x300  # NLM_F_ROOT | NLM_F_MATCH

# Netlink attribute types in an inet_diag reply (enum in inet_diag.h).
INET_DIAG_INFO: Final = 2
INET_DIAG_SHUTDOWN: Final = 8

# struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }
NLMSGHDR: Final = struct.Struct("=IHHII")
# struct rtattr / nlattr { u16 len; u16 type; }
NLATTR: Final = struct.Struct("=HH")
# struct inet_diag_req_v2 { u8 family; u8 protocol; u8 ext; u8 pad; u32 states;
#   struct inet_diag_sockid id; }
# struct inet_diag_sockid { be16 sport; be16 dport; be32 src[4]; be32 dst[4];
#   u32 if; u32 cookie[2]; }
INET_DIAG_REQ_V2: Final = struct.Struct("=BBBxI2s2s16s16sIII")
# struct inet_diag_msg { u8 family; u8 state; u8 timer; u8 retrans;
#   struct inet_diag_sockid id; u32 expires; u32 rqueue; u32 wqueue; u32 uid; u32 inode; }
# The sockid's ports are big-endian; everything else is host order.  struct
# cannot switch byte order mid-format, so the ports are unpacked as raw bytes.
INET_DIAG_MSG: Final = struct.Struct("=BBBB2s2s16s16sIIIIIIII")
_PORT: Final = struct.Struct(">H")
# struct tcp_info, the prefix tcplab reads (it grows at the end, never changes).
#  u8 state, ca_state, retransmits, probes, backoff, options, wscale, flags;
#  u32 rto, ato, snd_mss, rcv_mss, unacked, sacked, lost, retrans, fackets,
#      last_data_sent, last_ack_sent, last_data_recv, last_ack_recv,
#      pmtu, rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd
TCP_INFO: Final = struct.Struct("=BBBBBBBBIIIIIIIIIIIIIIIIIII")
# tcpi_last_ack_recv: the 21st field, after 8 bytes and 12 u32s.
_LAST_ACK_RECV: Final = struct.Struct("=I")
_LAST_ACK_RECV_AT: Final = 8 + 12 * 4

_RECV_BUFFER: Final = 65536


class LinuxTcpState(enum.IntEnum):
    """include/net/tcp_states.h; the numbers sock_diag reports."""

    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT1 = 4
    FIN_WAIT2 = 5
    TIME_WAIT = 6
    CLOSE = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11
    NEW_SYN_RECV = 12
    BOUND_INACTIVE = 13


class StateMask(enum.IntFlag):
    """``idiag_states``: bit ``1 << linux_state`` selects that state."""

    ESTABLISHED = 1 << 1
    SYN_SENT = 1 << 2
    SYN_RECV = 1 << 3
    FIN_WAIT1 = 1 << 4
    FIN_WAIT2 = 1 << 5
    TIME_WAIT = 1 << 6
    CLOSE = 1 << 7
    CLOSE_WAIT = 1 << 8
    LAST_ACK = 1 << 9
    LISTEN = 1 << 10
    CLOSING = 1 << 11
    NEW_SYN_RECV = 1 << 12
    # Linux >= 6.8 lists bound-but-inactive sockets only when asked by this
    # bit (ss -B); they come back in state CLOSE (7).  Like ss -a, ``ALL``
    # leaves them out.
    BOUND_INACTIVE = 1 << 13
    ALL = (1 << 13) - 2

    @classmethod
    def of(cls, *states: State) -> StateMask:
        """The mask selecting these RFC states (SYN-RECEIVED includes request sockets)."""
        mask = cls(0)
        for state in states:
            mask |= _MASK_OF_STATE[state]
        return mask


# What each Linux number means as an RFC state.  NEW_SYN_RECV request socks
# are reported by the kernel as SYN_RECV already (inet_req_diag_fill); a
# socket that is only bound (or was closed but still open as an fd) is CLOSE.
STATE_OF_LINUX: Final[dict[int, State]] = {
    1: State.ESTABLISHED,
    2: State.SYN_SENT,
    3: State.SYN_RECEIVED,
    4: State.FIN_WAIT_1,
    5: State.FIN_WAIT_2,
    6: State.TIME_WAIT,
    7: State.CLOSED,
    8: State.CLOSE_WAIT,
    9: State.LAST_ACK,
    10: State.LISTEN,
    11: State.CLOSING,
    12: State.SYN_RECEIVED,
    13: State.CLOSED,
}

_MASK_OF_STATE: Final[dict[State, StateMask]] = {
    State.ESTABLISHED: StateMask.ESTABLISHED,
    State.SYN_SENT: StateMask.SYN_SENT,
    State.SYN_RECEIVED: StateMask.SYN_RECV | StateMask.NEW_SYN_RECV,
    State.FIN_WAIT_1: StateMask.FIN_WAIT1,
    State.FIN_WAIT_2: StateMask.FIN_WAIT2,
    State.TIME_WAIT: StateMask.TIME_WAIT,
    State.CLOSED: StateMask.CLOSE,
    State.CLOSE_WAIT: StateMask.CLOSE_WAIT,
    State.LAST_ACK: StateMask.LAST_ACK,
    State.LISTEN: StateMask.LISTEN,
    State.CLOSING: StateMask.CLOSING,
}

# idiag_timer values, named as ss prints them (misc/ss.c tmr_name).
TIMER_NAMES: Final[tuple[str, ...]] = ("off", "on", "keepalive", "timewait", "persist")

# INET_DIAG_SHUTDOWN carries sk_shutdown: RCV_SHUTDOWN = 1, SEND_SHUTDOWN = 2.
SHUT_RD_BIT: Final = 1
SHUT_WR_BIT: Final = 2


class TcpInfo(NamedTuple):
    """The part of ``struct tcp_info`` tcplab shows (times as the kernel gives them).

    For a LISTEN socket the kernel reuses ``unacked`` for the accept-queue
    length and ``sacked`` for the backlog (tcp_get_info).
    """

    state: int
    retransmits: int
    probes: int
    backoff: int
    rto_us: int
    ato_us: int
    snd_mss: int
    rcv_mss: int
    unacked: int
    sacked: int
    lost: int
    retrans: int
    last_data_sent_ms: int
    last_data_recv_ms: int
    last_ack_recv_ms: int
    pmtu: int
    rtt_us: int
    rttvar_us: int
    snd_ssthresh: int
    snd_cwnd: int

    @classmethod
    def parse(cls, data: bytes | memoryview) -> TcpInfo:
        if len(data) < TCP_INFO.size:
            raise TcplabError(
                f"sock_diag: tcp_info is {len(data)} bytes, need at least {TCP_INFO.size}"
            )
        f = TCP_INFO.unpack_from(data)
        return cls(
            f[0], f[2], f[3], f[4], f[8], f[9], f[10], f[11], f[12], f[13], f[14], f[15],
            f[17], f[19], f[20], f[21], f[23], f[24], f[25], f[26],
        )  # fmt: skip

    def build(self) -> bytes:
        """The tcp_info prefix that parses back to ``self`` (unread fields zero)."""
        return TCP_INFO.pack(
            self.state,
            0,
            self.retransmits,
            self.probes,
            self.backoff,
            0,
            0,
            0,
            self.rto_us,
            self.ato_us,
            self.snd_mss,
            self.rcv_mss,
            self.unacked,
            self.sacked,
            self.lost,
            self.retrans,
            0,
            self.last_data_sent_ms,
            0,
            self.last_data_recv_ms,
            self.last_ack_recv_ms,
            self.pmtu,
            0,
            self.rtt_us,
            self.rttvar_us,
            self.snd_ssthresh,
            self.snd_cwnd,
        )


class SockInfo(NamedTuple):
    """One TCP socket as sock_diag reports it (one ``inet_diag_msg`` + attributes).

    ``state`` is the RFC state; ``linux_state`` keeps the kernel's number
    (so a request socket, a bound-inactive socket... stay recognisable).
    ``timer`` is ss's name for ``idiag_timer`` and ``timer_expires_ms`` the time
    left on it.  TIME-WAIT and request sockets carry no tcp_info, no
    shutdown attribute, inode 0 and uid 0.
    """

    state: State
    linux_state: int
    family: int
    src: str
    sport: int
    dst: str
    dport: int
    rqueue: int
    wqueue: int
    timer: str
    timer_expires_ms: int
    retrans: int
    uid: int
    inode: int
    cookie: int
    interface: int
    shutdown: int | None
    tcp_info: bytes | None  # the raw INET_DIAG_INFO attribute; ``info`` parses it

    @property
    def info(self) -> TcpInfo | None:
        """tcp_info, parsed when asked for (a snapshot of 10,000 rarely needs them all)."""
        return TcpInfo.parse(self.tcp_info) if self.tcp_info is not None else None

    @property
    def last_ack_recv_ms(self) -> int | None:
        """``info.last_ack_recv_ms`` without parsing the rest (the diagnoses' age)."""
        raw = self.tcp_info
        if raw is None:
            return None
        if len(raw) < TCP_INFO.size:
            TcpInfo.parse(raw)  # raises the one-line error
        value: int = _LAST_ACK_RECV.unpack_from(raw, _LAST_ACK_RECV_AT)[0]
        return value

    @property
    def local(self) -> str:
        return _endpoint(self.family, self.src, self.sport)

    @property
    def peer(self) -> str:
        return _endpoint(self.family, self.dst, self.dport)

    @classmethod
    def parse(cls, payload: bytes) -> SockInfo:
        """One SOCK_DIAG_BY_FAMILY payload (after the nlmsghdr); offsets count from it."""
        header = NLMSGHDR.pack(16 + len(payload), SOCK_DIAG_BY_FAMILY, 0, 0, 0)
        try:
            (sock,), _ = parse_dump(header + bytes(payload))
        except TcplabError as err:
            raise TcplabError(_shift_offsets(str(err), -16)) from None
        return sock

    def build(self) -> bytes:
        """The payload that ``parse`` reads back as ``self``."""
        src = socket.inet_pton(self.family, self.src).ljust(16, b"\0")[:16]
        dst = socket.inet_pton(self.family, self.dst).ljust(16, b"\0")[:16]
        timer = TIMER_NAMES.index(self.timer)
        body = INET_DIAG_MSG.pack(
            self.family,
            self.linux_state,
            timer,
            self.retrans,
            _PORT.pack(self.sport),
            _PORT.pack(self.dport),
            src,
            dst,
            self.interface,
            self.cookie & 0xFFFFFFFF,
            self.cookie >> 32,
            self.timer_expires_ms,
            self.rqueue,
            self.wqueue,
            self.uid,
            self.inode,
        )
        attrs = b""
        if self.tcp_info is not None:
            attrs += _attr(INET_DIAG_INFO, self.tcp_info)
        if self.shutdown is not None:
            attrs += _attr(INET_DIAG_SHUTDOWN, bytes([self.shutdown]))
        return body + attrs


# SockInfo and TcpInfo are NamedTuples rather than frozen dataclasses: a
# snapshot builds 10,000 of them, and a frozen dataclass's generated __init__
# (one object.__setattr__ per field) was half the time of the snapshot; a
# NamedTuple is built by one tuple.__new__ and is just as immutable.


def _shift_offsets(message: str, delta: int) -> str:
    import re

    return re.sub(r"offset (\d+)", lambda m: f"offset {int(m.group(1)) + delta}", message)


def _attr(kind: int, value: bytes) -> bytes:
    length = NLATTR.size + len(value)
    return NLATTR.pack(length, kind) + value + b"\0" * (-length % 4)


def _endpoint(family: int, addr: str, port: int) -> str:
    if family == socket.AF_INET6:
        return f"[{addr}]:{port if port else '*'}"
    return f"{addr}:{port if port else '*'}"


class DiagRequest(NamedTuple):
    """``inet_diag_req_v2`` asking for a dump of one family's TCP sockets."""

    family: int
    states: int
    ext: int = 1 << (INET_DIAG_INFO - 1)
    protocol: int = socket.IPPROTO_TCP

    def build(self, seq: int = 1) -> bytes:
        body = INET_DIAG_REQ_V2.pack(
            self.family,
            self.protocol,
            self.ext,
            self.states,
            b"\0\0",
            b"\0\0",
            b"\0" * 16,
            b"\0" * 16,
            0,
            0xFFFFFFFF,
            0xFFFFFFFF,
        )
        header = NLMSGHDR.pack(
            NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
        )
        return header + body

    @classmethod
    def parse(cls, data: bytes) -> DiagRequest:
        if len(data) < NLMSGHDR.size + INET_DIAG_REQ_V2.size:
            raise TcplabError(f"inet_diag_req_v2: {len(data)} bytes, need {NLMSGHDR.size + 56}")
        length, kind, _flags, _seq, _pid = NLMSGHDR.unpack_from(data)
        if kind != SOCK_DIAG_BY_FAMILY or length != len(data):
            raise TcplabError(f"inet_diag_req_v2: type {kind} length {length}, not a request")
        family, protocol, ext, states, *_ = INET_DIAG_REQ_V2.unpack_from(data, NLMSGHDR.size)
        return cls(family=family, states=states, ext=ext, protocol=protocol)


# nlmsghdr and inet_diag_msg in one unpack: the hot loop reads both at once.
_HEADER_AND_MSG: Final = struct.Struct(NLMSGHDR.format + INET_DIAG_MSG.format[1:])
_FULL = NLMSGHDR.size + INET_DIAG_MSG.size
_ERRNO: Final = struct.Struct("=i")

# Address text by packed address: a table has few distinct local addresses and
# inet_ntop per socket was a measurable share of a 10,000-socket snapshot.
_V4_TEXT: dict[bytes, str] = {}
_V6_TEXT: dict[bytes, str] = {}
_TEXT_CACHE_LIMIT = 1 << 16


def _v4_text(packed16: bytes) -> str:
    if len(_V4_TEXT) >= _TEXT_CACHE_LIMIT:
        _V4_TEXT.clear()
    text = _V4_TEXT[packed16] = socket.inet_ntop(socket.AF_INET, packed16[:4])
    return text


def _v6_text(packed16: bytes) -> str:
    if len(_V6_TEXT) >= _TEXT_CACHE_LIMIT:
        _V6_TEXT.clear()
    text = _V6_TEXT[packed16] = socket.inet_ntop(socket.AF_INET6, packed16)
    return text


def parse_dump(data: bytes, seq: int | None = None) -> tuple[list[SockInfo], bool]:
    """Parse one recv()'d chunk of a dump: the sockets in it, and whether it held NLMSG_DONE.

    This is the hot loop of a snapshot (10,000 sockets: 10,000 turns), so it
    is written flat: one unpack for header + message, attributes walked in
    place, no per-socket helper calls.
    """
    out: list[SockInfo] = []
    append = out.append
    make = SockInfo
    unpack_full = _HEADER_AND_MSG.unpack_from
    unpack_attr = NLATTR.unpack_from
    v4_get, v6_get = _V4_TEXT.get, _V6_TEXT.get
    states = STATE_OF_LINUX
    timers = TIMER_NAMES
    af_inet, af_inet6 = socket.AF_INET, socket.AF_INET6
    pos = 0
    size = len(data)
    while pos + 16 <= size:
        if pos + _FULL <= size:
            (
                length, kind, _flags, msg_seq, _pid,
                family, linux_state, timer, retrans, sport, dport, src, dst,
                interface, cookie_lo, cookie_hi, expires, rqueue, wqueue, uid, inode,
            ) = unpack_full(data, pos)  # fmt: skip
        else:
            length, kind, _flags, msg_seq, _pid = NLMSGHDR.unpack_from(data, pos)
        end = pos + length
        if length < 16 or end > size:
            raise TcplabError(f"sock_diag: netlink message at offset {pos} has length {length}")
        if seq is not None and msg_seq != seq:
            # A reply to an earlier, abandoned request on this socket.
            pos = (end + 3) & ~3
            continue
        if kind != SOCK_DIAG_BY_FAMILY:
            if kind == NLMSG_DONE:
                return out, True
            if kind == NLMSG_ERROR:
                _raise_netlink_error(data, pos, length)
            pos = (end + 3) & ~3
            continue
        if length < _FULL:
            raise TcplabError(
                f"sock_diag: inet_diag_msg at offset {pos + 16} is {length - 16} bytes, "
                f"need {_FULL - 16}"
            )
        if family == af_inet:
            src_text = v4_get(src) or _v4_text(src)
            dst_text = v4_get(dst) or _v4_text(dst)
        elif family == af_inet6:
            src_text = v6_get(src) or _v6_text(src)
            dst_text = v6_get(dst) or _v6_text(dst)
        else:
            raise TcplabError(
                f"sock_diag: message at offset {pos + 16} has address family {family}"
            )
        state = states.get(linux_state)
        if state is None:
            raise TcplabError(
                f"sock_diag: message at offset {pos + 16} has unknown state {linux_state}"
            )
        info: bytes | None = None
        shutdown: int | None = None
        attr = pos + _FULL
        while attr + 4 <= end:
            attr_len, attr_type = unpack_attr(data, attr)
            if attr_len < 4 or attr + attr_len > end:
                raise TcplabError(f"sock_diag: attribute at offset {attr} has length {attr_len}")
            if attr_type == INET_DIAG_INFO:
                info = data[attr + 4 : attr + attr_len]
            elif attr_type == INET_DIAG_SHUTDOWN:
                if attr_len == 4:
                    raise TcplabError(f"sock_diag: shutdown attribute at offset {attr} is empty")
                shutdown = data[attr + 4]
            attr = (attr + attr_len + 3) & ~3
        append(make(
            state, linux_state, family, src_text, sport[0] << 8 | sport[1],
            dst_text, dport[0] << 8 | dport[1], rqueue, wqueue,
            timers[timer] if timer < 5 else f"unknown({timer})", expires, retrans,
            uid, inode, cookie_hi << 32 | cookie_lo, interface, shutdown, info,
        ))  # fmt: skip
        pos = (end + 3) & ~3
    return out, False


def _raise_netlink_error(data: bytes, pos: int, length: int) -> None:
    if length < 20:
        raise TcplabError(f"sock_diag: NLMSG_ERROR at offset {pos} is {length} bytes")
    (errno_neg,) = _ERRNO.unpack_from(data, pos + 16)
    if errno_neg == 0:  # an ACK, not an error
        return
    if -errno_neg == 1:  # EPERM
        raise PrivilegeError("sock_diag: the kernel refused the dump (EPERM)")
    raise TcplabError(f"sock_diag: the kernel answered {os.strerror(-errno_neg)}")


# ---------------------------------------------------------------- namespaces

def _netlink_socket() -> socket.socket:
    try:
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
        )
    except PermissionError:
        raise PrivilegeError("sock_diag: cannot open a NETLINK_SOCK_DIAG socket") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def entered_netns(netns: str | int) -> Iterator[None]:
    """Run the body with the calling *thread* inside ``netns`` (name, path or fd).

    setns(2) switches only the calling thread; sockets created in the body
    stay in ``netns`` after it ends.  The thread's own namespace, saved from
    /proc/thread-self/ns/net, is restored on every exit, also on exceptions.
    """
    from tcplab.netns import entered  # (ctypes: only when a namespace is named)

    with entered(netns):
        yield


def netlink_socket_in_netns(netns: str | int | None) -> socket.socket:
    """A NETLINK_SOCK_DIAG socket created inside ``netns`` (name, path or open fd)."""
    if netns is None:
        return _netlink_socket()
    with entered_netns(netns):
        return _netlink_socket()


class SockDiag:
    """A sock_diag connection to one network namespace; reusable for many dumps.

    ``with SockDiag("/var/run/netns/lab-a") as diag: diag.dump_tcp()``
    """

    def __init__(self, netns: str | int | None = None) -> None:
        self._netns = netns
        self._sock = netlink_socket_in_netns(netns)
        self._seq = 0
        # A dump cut short (a signal raised mid-read) leaves the kernel's dump
        # running on this socket; a new request on it would get EBUSY.  The next
        # dump starts on a fresh socket instead.
        self._midway = False

    def __enter__(self) -> SockDiag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def dump_tcp(self, states: int = StateMask.ALL, family: int | None = None) -> list[SockInfo]:
        """Every TCP socket of the namespace in ``states`` (IPv4 then IPv6 unless ``family``)."""
        families = (socket.AF_INET, socket.AF_INET6) if family is None else (family,)
        out: list[SockInfo] = []
        for fam in families:
            out.extend(self._dump_family(fam, int(states)))
        return out

    def _dump_family(self, family: int, states: int) -> list[SockInfo]:
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise TcplabError(f"sock_diag: family {family} is neither AF_INET nor AF_INET6")
        if states & StateMask.SYN_RECV:
            states |= StateMask.NEW_SYN_RECV
        if self._midway:
            fresh = netlink_socket_in_netns(self._netns)
            self._sock.close()
            self._sock = fresh
            self._midway = False
        self._seq += 1
        seq = self._seq
        self._midway = True
        self._sock.send(DiagRequest(family=family, states=states).build(seq))
        out: list[SockInfo] = []
        # One buffer for the whole dump, parsed in place by the C twin of
        # parse_dump (_diag.c): no bytes object per chunk.
        buffer = bytearray(_RECV_BUFFER)
        view = memoryview(buffer)
        recv_into = self._sock.recv_into
        parse = _diag.parse_dump
        while True:
            size = recv_into(buffer)
            if not size:
                raise TcplabError("sock_diag: the netlink socket closed mid-dump")
            sockets, done = parse(view[:size], seq)
            out += sockets
            if done:
                self._midway = False
                return out


def dump_tcp(states: int = StateMask.ALL, family: int | None = None) -> list[SockInfo]:
    """The TCP sockets of the calling thread's current network namespace."""
    with SockDiag() as diag:
        return diag.dump_tcp(states, family)


def dump_tcp_in_netns(
    netns: str | int, states: int = StateMask.ALL, family: int | None = None
) -> list[SockInfo]:
    """The TCP sockets of another namespace (``ip netns`` name, path, or open fd)."""
    with SockDiag(netns) as diag:
        return diag.dump_tcp(states, family)


# The C twin of parse_dump gets its types and tables from here, so the
# layouts stay declared once (above).
_diag.configure(
    SockInfo,
    tuple(STATE_OF_LINUX.get(n) for n in range(max(STATE_OF_LINUX) + 1)),
    TIMER_NAMES,
    TcplabError,
    _raise_netlink_error,
    State.LISTEN,
)
