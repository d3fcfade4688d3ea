"""The sans-IO model as the local endpoint of a drill script.

The model (``tcplab.model``, linux profile) is one ``Host`` at the
script's local address; time is virtual and moves only when the engine
waits (a script that waits 3 s for a timer takes no time at all).  System
calls map onto the model's socket API (``Connection.connect/send/recv/
shutdown/close``, ``Listener.accept``); a call that would block is parked
and retried after every packet and timer, as a blocked thread would wake.
Segments cross as real datagrams, so the engine checks the model's
packets with the same code and the same messages as the kernel's; the
model's options are laid out as Linux lays them out (``tcp_options_write``:
mss, sackOK+TS or nop,nop,TS / nop,nop,sackOK, nop,wscale).

Backquoted commands do not run: the sysctls they set that the model has a
knob for (``profile.SYSCTLS``, plus tcp_timestamps / tcp_sack /
tcp_window_scaling) change the profile of later sockets; the rest is noted.
What the model does not have (poll/epoll, TCP_INFO, most socket options)
fails the call with ``the model has no ...``: a listed difference, never a
silent pass.
"""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tcplab.drill.calls import SYMBOLS
from tcplab.drill.engine import CallResult
from tcplab.drill.linux import V4, V6, find_defaults
from tcplab.drill.packets import IPPROTO_TCP, decode
from tcplab.model import profile as profiles
from tcplab.model.host import Host
from tcplab.model.segment import Options, Segment
from tcplab.model.tcb import Connection, Listener, SocketError, StateChanged
from tcplab.states import State
from tcplab.timeline import Source, StateChange
from tcplab.wire.flags import Flags
from tcplab.wire.ip import IPv4Header, IPv6Header
from tcplab.wire.options import NOP, SACK_PERMITTED, Mss, TfoCookie, Timestamps, WindowScale
from tcplab.wire.options import TcpOption as WireOption
from tcplab.wire.seq import Seq
from tcplab.wire.tcp import TcpHeader

# include/net/tcp_states.h
LINUX_STATE = {
    State.ESTABLISHED: 1, State.SYN_SENT: 2, State.SYN_RECEIVED: 3, State.FIN_WAIT_1: 4,
    State.FIN_WAIT_2: 5, State.TIME_WAIT: 6, State.CLOSED: 7, State.CLOSE_WAIT: 8,
    State.LAST_ACK: 9, State.LISTEN: 10, State.CLOSING: 11,
}  # fmt: skip
_DEFAULTS_LINE = re.compile(r"\S*common/defaults\.sh")
_SYSCTL = re.compile(r"(net\.ipv4\.[a-z_0-9]+)=(\S+)")
_PROC = re.compile(r"/proc/sys/(net/ipv4/[a-z_0-9]+)=(\S+)")
# sysctls the model has a switch for beyond profile.SYSCTLS
_BOOLEANS = {
    "net.ipv4.tcp_timestamps": "timestamps",
    "net.ipv4.tcp_sack": "sack_ok",
}


@dataclass
class _Fd:
    kind: str = "socket"  # socket
    port: int = 0
    nonblocking: bool = False
    reuseaddr: bool = False
    conn: Connection | None = None
    listener: Listener | None = None
    linger_zero: bool = False
    fastopen_qlen: int = 0  # setsockopt(TCP_FASTOPEN) before listen()


@dataclass
class _Call:
    cmd: dict[str, Any]
    started: float
    result: CallResult | None = None
    blocked: bool = False


def drill_profile() -> profiles.Profile:
    """The linux profile with what defaults.sh and packetdrill's tun0 give Linux:
    window scale 8 (tcp_rmem max 15 MB), a 65535-byte window in the SYN."""
    return replace(profiles.LINUX, wscale=8, window=65535)


class ModelStack:
    def __init__(self, family: int, script_dir: Path,
                 addresses: tuple[str, str] | None = None) -> None:  # fmt: skip
        self.family = family
        self.script_dir = script_dir
        table = V6 if family == socket.AF_INET6 else V4
        self.local_ip, self.remote_ip = addresses or (str(table["local"]), str(table["remote"]))
        self.t = 0.0
        self._isn_counter = 0
        self._port = 33000
        self.host = Host(
            "local",
            self.local_ip,
            drill_profile(),
            isn=self._isn,
            ephemeral_port=self._ephemeral,
        )
        self.fds: dict[int, _Fd] = {}
        self.calls: dict[int, _Call] = {}
        self._ident = 0
        self._out: list[tuple[int, bytes]] = []
        self.wire: list[tuple[int, str, bytes]] = []
        self._events: list[Any] = []
        self.notes: list[str] = []

    def _isn(self, local: tuple[str, int], remote: tuple[str, int], now: float) -> int:
        self._isn_counter += 1
        return (0x5EED0000 + 7919 * self._isn_counter) & 0xFFFFFFFF

    def _ephemeral(self) -> int:
        self._port += 1
        return self._port

    # -- clock and wire --------------------------------------------------------------

    def now_us(self) -> int:
        return round(self.t * 1e6)

    def _flush(self) -> None:
        for seg in self.host.segments_to_send():
            raw = segment_bytes(seg, self.family)
            self._out.append((self.now_us(), raw))
            self.wire.append((self.now_us() * 1000, "out", raw))
        self._events.extend(self.host.events())

    def _step_to(self, t: float) -> None:
        """Advance virtual time to ``t``, firing timers and waking blocked calls."""
        while True:
            deadline = self.host.next_deadline()
            if deadline is None or deadline > t:
                break
            self.t = max(self.t, deadline)
            self.host.handle_timers(self.t)
            self._flush()
            self._retry()
        self.t = max(self.t, t)

    def sleep_until_us(self, t: int) -> None:
        self._step_to(t / 1e6)

    def inject(self, raw: bytes) -> None:
        self.wire.append((self.now_us() * 1000, "in", raw))
        seg = model_segment(raw)
        if seg is not None:
            self.host.receive(seg, self.t)
        self._flush()
        self._retry()

    def sniff(self, until_us: int) -> tuple[int, bytes] | None:
        while not self._out:
            deadline = self.host.next_deadline()
            if deadline is None or deadline * 1e6 > until_us:
                self._step_to(until_us / 1e6)
                return None
            self._step_to(deadline)
        return self._out.pop(0)

    def command(self, text: str) -> tuple[int, str]:
        """Apply the sysctls the model knows; everything else is Linux configuration."""
        defaults = find_defaults(self.script_dir)
        # defaults.sh's settings count where the line runs it (a later line may override).
        body = _DEFAULTS_LINE.sub(
            lambda _m: defaults.read_text() if defaults is not None else "", text
        )
        settings = dict(_SYSCTL.findall(body))
        settings.update({k.replace("/", "."): v for k, v in _PROC.findall(body)})
        prof = self.host.profile.with_sysctls(settings)
        for key, name in _BOOLEANS.items():
            if key in settings:
                prof = prof.with_options({name: settings[key] != "0"}, key)
        self.host.profile = prof
        return 0, ""

    def events(self) -> list[StateChange]:
        self._events.extend(self.host.events())
        out = []
        for ev in self._events:
            if isinstance(ev, StateChanged):
                out.append(StateChange(ev.time, "local", ev.old, ev.new, Source.MODEL, ev.cause))
        return out

    # -- calls -----------------------------------------------------------------------

    def start_call(self, cmd: dict[str, Any]) -> int:
        self._ident += 1
        call = _Call(cmd, self.t)
        self.calls[self._ident] = call
        self._attempt(call)
        self._flush()
        return self._ident

    def call_status(self, handle: int) -> str:
        call = self.calls[handle]
        return "done" if call.result is not None else "blocked"

    def wait_call(self, handle: int, until_us: int) -> CallResult | None:
        call = self.calls[handle]
        while call.result is None:
            deadline = self.host.next_deadline()
            if deadline is None or deadline * 1e6 > until_us:
                self._step_to(until_us / 1e6)
                break
            self._step_to(deadline)
        if call.result is not None:
            del self.calls[handle]
        return call.result

    def _retry(self) -> None:
        for call in list(self.calls.values()):
            if call.result is None:
                self._attempt(call)

    def _finish(self, call: _Call, ret: int, err: str | int = 0, **out: Any) -> None:
        code = int(getattr(errno, err, 0)) if isinstance(err, str) else err
        call.result = CallResult(ret, code, out, round(call.started * 1e6), self.now_us())

    def _problem(self, call: _Call, text: str) -> None:
        call.result = CallResult(-1, 0, {}, round(call.started * 1e6), self.now_us(), text)

    def _attempt(self, call: _Call) -> None:
        try:
            self._dispatch(call)
        except SocketError as exc:
            self._finish(call, -1, exc.errno)

    def _new_fd(self) -> int:
        fd = 3
        while fd in self.fds:
            fd += 1
        return fd

    def _dispatch(self, call: _Call) -> None:
        cmd = call.cmd
        op = cmd["op"]
        if op in ("socket", "epoll_create"):
            if op == "epoll_create" or cmd["type"] != socket.SOCK_STREAM:
                self._problem(call, f"the model has no {op}() of this kind")
                return
            fd = self._new_fd()
            self.fds[fd] = _Fd()
            self._finish(call, fd)
            return
        handler = getattr(self, "_op_" + op, None)
        if handler is None:
            self._problem(call, f"the model has no {op}()")
            return
        entry = self.fds.get(int(cmd.get("fd", -1)))
        if entry is None:
            self._finish(call, -1, "EBADF")
            return
        handler(call, entry)

    def _block_or(self, call: _Call, entry: _Fd, err: str = "EAGAIN") -> None:
        if entry.nonblocking:
            self._finish(call, -1, err)
        else:
            call.blocked = True

    def _op_bind(self, call: _Call, entry: _Fd) -> None:
        port = int(call.cmd["addr"][2])
        if self.host.port_in_use(port, entry.reuseaddr):
            self._finish(call, -1, "EADDRINUSE")
            return
        entry.port = port
        self._finish(call, 0)

    def _op_listen(self, call: _Call, entry: _Fd) -> None:
        if not entry.port:
            entry.port = self.host.ephemeral_port()
        entry.listener = self.host.listen(entry.port, int(call.cmd["backlog"]), self.t)
        if entry.fastopen_qlen:
            entry.listener.fastopen_qlen = entry.fastopen_qlen
        self._finish(call, 0)

    def _op_accept(self, call: _Call, entry: _Fd) -> None:
        if entry.listener is None:
            self._finish(call, -1, "EINVAL")
            return
        conn = entry.listener.accept()
        if conn is None:
            self._block_or(call, entry)
            return
        fd = self._new_fd()
        conn.reuseaddr = entry.reuseaddr  # a child inherits sk_reuse from its listener
        self.fds[fd] = _Fd(port=entry.port, conn=conn, reuseaddr=entry.reuseaddr)
        self._finish(call, fd)

    def _op_connect(self, call: _Call, entry: _Fd) -> None:
        conn = entry.conn
        addr = call.cmd["addr"]
        if addr[0] == 0:
            self._problem(call, "the model has no connect(AF_UNSPEC)")
            return
        if conn is None:
            port = entry.port or self.host.ephemeral_port()
            conn = self.host.new_connection(port, (str(addr[1]), int(addr[2])), self.t)
            conn.reuseaddr = entry.reuseaddr
            entry.conn = conn
            conn.connect(self.t)
            if entry.nonblocking:
                self._finish(call, -1, "EINPROGRESS")
                return
            call.blocked = True
            return
        if conn.state is State.SYN_SENT:
            if call.blocked:
                return
            self._finish(call, -1, "EALREADY")
            return
        if call.blocked:
            if conn.state.synchronized and conn.state is not State.CLOSED:
                self._finish(call, 0)
            elif conn.error is not None:
                err, conn.error = conn.error, None
                self._finish(call, -1, err)
            elif conn.state is State.CLOSED:
                self._finish(call, -1, "ECONNREFUSED")
            return
        self._finish(call, -1, "EISCONN")

    def _conn(self, call: _Call, entry: _Fd) -> Connection | None:
        if entry.conn is None:
            self._finish(call, -1, "ENOTCONN")
        return entry.conn

    def _op_write(self, call: _Call, entry: _Fd) -> None:
        self._send(call, entry, int(call.cmd["len"]), bool(call.cmd.get("null")))

    def _op_send(self, call: _Call, entry: _Fd) -> None:
        self._send(call, entry, int(call.cmd["len"]), bool(call.cmd.get("null")))

    def _op_sendto(self, call: _Call, entry: _Fd) -> None:
        if call.cmd.get("flags", 0) & SYMBOLS["MSG_FASTOPEN"]:
            self._fastopen(call, entry, int(call.cmd["len"]), bool(call.cmd.get("null")))
            return
        self._send(call, entry, int(call.cmd["len"]), bool(call.cmd.get("null")))

    def _op_sendmsg(self, call: _Call, entry: _Fd) -> None:
        flags = call.cmd.get("flags", 0)
        if flags & (SYMBOLS["MSG_MORE"] | SYMBOLS["MSG_ZEROCOPY"]):
            self._problem(call, "the model has no MSG_MORE/MSG_ZEROCOPY (corking)")
            return
        if flags & SYMBOLS["MSG_FASTOPEN"]:
            self._fastopen(call, entry, sum(call.cmd["iov"]), False)
            return
        self._send(call, entry, sum(call.cmd["iov"]), False)

    def _fastopen(self, call: _Call, entry: _Fd, length: int, null: bool) -> None:
        """sendto/sendmsg(MSG_FASTOPEN): a new socket connects with data on the SYN
        (Connection.connect_fastopen); a blocking call returns once the handshake is
        done, a non-blocking one at once (the SYN's data, or EINPROGRESS)."""
        conn = entry.conn
        if conn is not None and call.blocked:
            if conn.state.synchronized and conn.state is not State.CLOSED:
                self._finish(call, length)
            elif conn.error is not None:
                err, conn.error = conn.error, None
                self._finish(call, -1, err)
            return
        if conn is not None:  # MSG_FASTOPEN after the handshake is an ordinary send
            self._send(call, entry, length, null)
            return
        if null and length:
            self._finish(call, -1, "EFAULT")
            return
        addr = call.cmd["addr"]
        if not addr[0]:
            self._finish(call, -1, "EOPNOTSUPP")  # tcp_sendmsg_fastopen: AF_UNSPEC
            return
        port = entry.port or self.host.ephemeral_port()
        conn = self.host.new_connection(port, (str(addr[1]), int(addr[2])), self.t)
        try:
            carried = conn.connect_fastopen(bytes(length), self.t, blocking=not entry.nonblocking)
        except SocketError:
            self.host.connections.remove(conn)  # the socket stays unconnected (EOPNOTSUPP)
            raise
        entry.conn = conn
        self._flush()
        if not entry.nonblocking:
            call.blocked = True
        elif carried:
            self._finish(call, carried)
        else:
            self._finish(call, -1, "EINPROGRESS")

    def _send(self, call: _Call, entry: _Fd, length: int, null: bool) -> None:
        conn = self._conn(call, entry)
        if conn is None:
            return
        if conn.state is State.SYN_SENT:
            self._block_or(call, entry)
            return
        if null and length:
            self._finish(call, -1, "EFAULT")
            return
        sent = conn.send(bytes(length), self.t)
        self._flush()
        self._finish(call, sent)

    def _op_read(self, call: _Call, entry: _Fd) -> None:
        self._recv(call, entry)

    def _op_recv(self, call: _Call, entry: _Fd) -> None:
        self._recv(call, entry)

    def _op_recvfrom(self, call: _Call, entry: _Fd) -> None:
        self._recv(call, entry)

    def _recv(self, call: _Call, entry: _Fd) -> None:
        conn = self._conn(call, entry)
        if conn is None:
            return
        if call.cmd.get("null") and conn.rcv_queue:
            self._finish(call, -1, "EFAULT")
            return
        data = conn.recv(int(call.cmd["len"]), self.t)
        if data is None:
            self._block_or(call, entry)
            return
        self._flush()
        self._finish(call, len(data))

    def _op_close(self, call: _Call, entry: _Fd) -> None:
        if entry.listener is not None:
            entry.listener.close(self.t)
        if entry.conn is not None:
            if entry.linger_zero:
                entry.conn.abort(self.t)
            else:
                entry.conn.close(self.t)
        del self.fds[int(call.cmd["fd"])]
        self._flush()
        self._finish(call, 0)

    def _op_shutdown(self, call: _Call, entry: _Fd) -> None:
        conn = self._conn(call, entry)
        if conn is None:
            return
        how = {0: "SHUT_RD", 1: "SHUT_WR", 2: "SHUT_RDWR"}.get(int(call.cmd["how"]), "?")
        conn.shutdown(how, self.t)
        self._flush()
        self._finish(call, 0)

    def _op_setsockopt(self, call: _Call, entry: _Fd) -> None:
        level, name, value = call.cmd["level"], call.cmd["name"], call.cmd.get("value", 0)
        if (level, name) == (SYMBOLS["SOL_SOCKET"], SYMBOLS["SO_REUSEADDR"]):
            entry.reuseaddr = bool(value)
        elif (level, name) == (SYMBOLS["SOL_SOCKET"], SYMBOLS["SO_LINGER"]):
            entry.linger_zero = isinstance(value, list) and value[0] == 1 and value[1] == 0
        elif (level, name) == (SYMBOLS["SOL_SOCKET"], SYMBOLS["SO_KEEPALIVE"]):
            if entry.conn is not None:
                entry.conn.set_keepalive(bool(value), self.t)
        elif (level, name) == (SYMBOLS["SOL_TCP"], SYMBOLS["TCP_NODELAY"]) and value == 1:
            pass  # the model has no Nagle algorithm: it always behaves as TCP_NODELAY
        elif (level, name) == (SYMBOLS["SOL_TCP"], SYMBOLS["TCP_FASTOPEN"]):
            entry.fastopen_qlen = int(value)
            if entry.listener is not None:
                entry.listener.fastopen_qlen = int(value)
        else:
            self._problem(call, f"the model has no setsockopt level {level} option {name}")
            return
        self._finish(call, 0)

    def _op_getsockopt(self, call: _Call, entry: _Fd) -> None:
        level, name = call.cmd["level"], call.cmd["name"]
        if (level, name) == (SYMBOLS["SOL_SOCKET"], SYMBOLS["SO_ERROR"]):
            err = 0
            if entry.conn is not None and entry.conn.error is not None:
                err, entry.conn.error = int(getattr(errno, entry.conn.error, 0)), None
            self._finish(call, 0, 0, value=err, optlen=4)
            return
        self._problem(call, f"the model has no getsockopt level {level} option {name}")

    def _op_fcntl(self, call: _Call, entry: _Fd) -> None:
        cmd = call.cmd["cmd"]
        if cmd == SYMBOLS["F_GETFL"]:
            self._finish(call, SYMBOLS["O_RDWR"] | (SYMBOLS["O_NONBLOCK"] * entry.nonblocking))
        elif cmd == SYMBOLS["F_SETFL"]:
            entry.nonblocking = bool(call.cmd.get("arg", 0) & SYMBOLS["O_NONBLOCK"])
            self._finish(call, 0)
        else:
            self._problem(call, f"the model has no fcntl command {cmd}")

    def _op_tcp_info(self, call: _Call, entry: _Fd) -> None:
        """The tcp_info fields the model has (the rest are absent, so a script that
        asserts on them fails with a NameError: congestion control, delivery counts...)."""
        conn = entry.conn
        if conn is None:
            self._problem(call, "the model has no tcp_info for a listener")
            return
        options = (
            (1 if conn.ts_ok else 0)
            | (4 if conn.snd_wscale or conn.rcv_wscale else 0)
            | (32 if getattr(conn, "syn_data_acked", False) else 0)
        )
        mss = min(conn.peer_mss, conn.profile.mss) - (12 if conn.ts_ok else 0)
        last = conn.last_data_at
        info = {
            "tcpi_state": LINUX_STATE.get(conn.state, 7),
            "tcpi_options": options,
            "tcpi_snd_mss": mss,
            "tcpi_advmss": conn.profile.mss,
            "tcpi_unacked": len(conn.rtx),
            "tcpi_retransmits": conn.retransmits,
            "tcpi_probes": conn.probes_sent,
            "tcpi_rto": round(conn.rto * 1e6),
            "tcpi_last_data_recv": round((self.t - last) * 1000) if last is not None else 0,
        }
        if conn.srtt is not None:
            info["tcpi_rtt"] = round(conn.srtt * 1e6)
        self._finish(call, 0, 0, info=info)

    def _op_ioctl(self, call: _Call, entry: _Fd) -> None:
        if call.cmd["request"] == SYMBOLS["SIOCINQ"] and entry.conn is not None:
            self._finish(call, 0, 0, value=len(entry.conn.rcv_queue))
            return
        self._problem(call, f"the model has no ioctl {call.cmd['request']:#x}")


# -- model segments <-> datagrams ------------------------------------------------------


def _options(seg: Segment) -> tuple[WireOption, ...]:
    """Linux's layout (tcp_options_write)."""
    opts = seg.options
    out: list[WireOption] = []
    syn = bool(seg.flags & Flags.SYN)
    if opts.mss is not None:
        out.append(Mss(opts.mss))
    if opts.ts is not None:
        if syn and opts.sack_ok:
            out.append(SACK_PERMITTED)
        else:
            out += [NOP, NOP]
        out.append(Timestamps(*opts.ts))
    elif syn and opts.sack_ok:
        out += [NOP, NOP, SACK_PERMITTED]
    if opts.wscale is not None:
        out += [NOP, WindowScale(opts.wscale)]
    if opts.fastopen is not None:
        # tcp_options_write: the cookie, then NOPs to the next 32-bit boundary.
        out.append(TfoCookie(opts.fastopen, experimental=opts.fastopen_exp))
        size = (4 if opts.fastopen_exp else 2) + len(opts.fastopen)
        out += [NOP] * (-size % 4)
    return tuple(out)


def segment_bytes(seg: Segment, family: int) -> bytes:
    ack = seg.ack.value if seg.ack is not None else 0
    tcp = TcpHeader.create(seg.sport, seg.dport, seg.seq.value, ack, seg.flags, seg.window,
                           _options(seg))  # fmt: skip
    body = tcp.build(seg.payload, src=seg.src, dst=seg.dst)
    if family == socket.AF_INET6:
        return IPv6Header.create(seg.src, seg.dst, IPPROTO_TCP, len(body)).build(body)
    return IPv4Header.create(seg.src, seg.dst, IPPROTO_TCP, len(body)).build(body)


def model_segment(raw: bytes) -> Segment | None:
    pkt = decode(raw, 0)
    if pkt is None:
        return None
    tcp = pkt.tcp
    mss = wscale = None
    sack_ok = False
    ts: tuple[int, int] | None = None
    cookie: bytes | None = None
    experimental = False
    for opt in tcp.options:
        if isinstance(opt, Mss):
            mss = opt.value
        elif isinstance(opt, WindowScale):
            wscale = opt.shift
        elif opt is SACK_PERMITTED or type(opt).__name__ == "SackPermitted":
            sack_ok = True
        elif isinstance(opt, Timestamps):
            ts = (opt.val, opt.ecr)
        elif isinstance(opt, TfoCookie):
            cookie, experimental = opt.cookie, opt.experimental
    ack = Seq(tcp.ack) if tcp.flags & Flags.ACK else None
    return Segment(pkt.src, tcp.sport, pkt.dst, tcp.dport, Seq(tcp.seq), ack, tcp.flags,
                   tcp.window, Options(mss, wscale, sack_ok, ts, cookie, experimental),
                   pkt.payload)  # fmt: skip
