"""System call lines -> calls a stack makes, and the checks on what came back.

Follows packetdrill's ``run_system_call.c``: the script's file descriptors
are mapped to live ones (``socket() = 3`` maps script fd 3 to whatever the
kernel returned); ``...`` addresses become the lab's (bind: the local
address and port, connect/sendto: the remote); buffers are zeros; an
output argument written ``[1000]`` (getsockopt, ioctl) is compared after
the call; ``= -1 EINPROGRESS`` checks the result and errno.  A call this
runner does not make is ``unsupported``.
"""

from __future__ import annotations

import codecs
import errno as errno_mod
import os
from dataclasses import dataclass, field
from typing import Any

from tcplab.drill.script import (
    Binary,
    Call,
    Ellipsis_,
    Expr,
    Int,
    ListExpr,
    Str,
    Struct,
    SyscallSpec,
    Word,
    expr_text,
)

# Linux values (uapi headers); packetdrill's symbols_linux.c lists the same names.
SYMBOLS: dict[str, int] = {
    "NULL": 0,
    "AF_UNSPEC": 0,
    "AF_INET": 2,
    "AF_INET6": 10,
    "SOCK_STREAM": 1,
    "SOCK_DGRAM": 2,
    "IPPROTO_IP": 0,
    "IPPROTO_TCP": 6,
    "IPPROTO_UDP": 17,
    "SOL_SOCKET": 1,
    "SOL_TCP": 6,
    "SOL_IP": 0,
    "SOL_IPV6": 41,
    "SO_DEBUG": 1,
    "SO_REUSEADDR": 2,
    "SO_TYPE": 3,
    "SO_ERROR": 4,
    "SO_DONTROUTE": 5,
    "SO_BROADCAST": 6,
    "SO_SNDBUF": 7,
    "SO_RCVBUF": 8,
    "SO_KEEPALIVE": 9,
    "SO_OOBINLINE": 10,
    "SO_LINGER": 13,
    "SO_REUSEPORT": 15,
    "SO_RCVLOWAT": 18,
    "SO_SNDLOWAT": 19,
    "SO_MARK": 36,
    "SO_ZEROCOPY": 60,
    "SO_MAX_PACING_RATE": 47,
    "TCP_NODELAY": 1,
    "TCP_MAXSEG": 2,
    "TCP_CORK": 3,
    "TCP_KEEPIDLE": 4,
    "TCP_KEEPINTVL": 5,
    "TCP_KEEPCNT": 6,
    "TCP_SYNCNT": 7,
    "TCP_LINGER2": 8,
    "TCP_DEFER_ACCEPT": 9,
    "TCP_WINDOW_CLAMP": 10,
    "TCP_INFO": 11,
    "TCP_QUICKACK": 12,
    "TCP_CONGESTION": 13,
    "TCP_THIN_LINEAR_TIMEOUTS": 16,
    "TCP_USER_TIMEOUT": 18,
    "TCP_REPAIR": 19,
    "TCP_FASTOPEN": 23,
    "TCP_TIMESTAMP": 24,
    "TCP_NOTSENT_LOWAT": 25,
    "TCP_FASTOPEN_KEY": 33,
    "TCP_FASTOPEN_NO_COOKIE": 34,
    "TCP_INQ": 36,
    "TCP_CM_INQ": 36,
    "TCP_FASTOPEN_CONNECT": 30,
    "TCP_TX_DELAY": 37,
    "F_GETFD": 1,
    "F_SETFD": 2,
    "F_GETFL": 3,
    "F_SETFL": 4,
    "O_RDONLY": 0,
    "O_WRONLY": 1,
    "O_RDWR": 2,
    "O_NONBLOCK": 0o4000,
    "MSG_OOB": 1,
    "MSG_PEEK": 2,
    "MSG_DONTROUTE": 4,
    "MSG_TRUNC": 0x20,
    "MSG_DONTWAIT": 0x40,
    "MSG_EOR": 0x80,
    "MSG_WAITALL": 0x100,
    "MSG_NOSIGNAL": 0x4000,
    "MSG_MORE": 0x8000,
    "MSG_ERRQUEUE": 0x2000,
    "MSG_FASTOPEN": 0x20000000,
    "MSG_ZEROCOPY": 0x4000000,
    "SHUT_RD": 0,
    "SHUT_WR": 1,
    "SHUT_RDWR": 2,
    "SIOCINQ": 0x541B,
    "FIONREAD": 0x541B,
    "SIOCOUTQ": 0x5411,
    "TIOCOUTQ": 0x5411,
    "SIOCOUTQNSD": 0x894B,
    "EPOLL_CTL_ADD": 1,
    "EPOLL_CTL_DEL": 2,
    "EPOLL_CTL_MOD": 3,
    "EPOLLIN": 0x1,
    "EPOLLPRI": 0x2,
    "EPOLLOUT": 0x4,
    "EPOLLERR": 0x8,
    "EPOLLHUP": 0x10,
    "EPOLLRDNORM": 0x40,
    "EPOLLRDBAND": 0x80,
    "EPOLLWRNORM": 0x100,
    "EPOLLWRBAND": 0x200,
    "EPOLLMSG": 0x400,
    "EPOLLRDHUP": 0x2000,
    "EPOLLEXCLUSIVE": 1 << 28,
    "EPOLLWAKEUP": 1 << 29,
    "EPOLLONESHOT": 1 << 30,
    "EPOLLET": 1 << 31,
    "POLLIN": 0x1,
    "POLLPRI": 0x2,
    "POLLOUT": 0x4,
    "POLLERR": 0x8,
    "POLLHUP": 0x10,
    "POLLNVAL": 0x20,
    "POLLRDNORM": 0x40,
    "POLLRDBAND": 0x80,
    "POLLWRNORM": 0x100,
    "POLLWRBAND": 0x200,
    "POLLMSG": 0x400,
    "POLLRDHUP": 0x2000,
}

# Calls that create a descriptor: the result is checked as "an fd", then mapped.
FD_RESULT = {"socket", "accept", "epoll_create"}


class CallError(Exception):
    """A line that cannot be made into a call (packetdrill: a runtime error)."""


class CallUnsupported(CallError):
    """A call or argument this runner does not make."""


@dataclass
class Env:
    """What the script's ``...`` and fds stand for in this run."""

    family: int
    local_ip: str
    remote_ip: str
    bind_port: int
    connect_port: int
    fds: dict[int, int] = field(default_factory=dict)  # script fd -> live fd


def symbol(name: str) -> int:
    if name in SYMBOLS:
        return SYMBOLS[name]
    code = getattr(errno_mod, name, None)
    if isinstance(code, int):
        return code
    raise CallUnsupported(f"symbol {name}")


def integer(expr: Expr) -> int:
    if isinstance(expr, Int):
        return expr.value
    if isinstance(expr, Word):
        return symbol(expr.name)
    if isinstance(expr, Binary) and expr.op == "|":
        return integer(expr.lhs) | integer(expr.rhs)
    raise CallError(f"expected an integer, got {expr_text(expr)}")


def bracketed(expr: Expr) -> int:
    """``[1000]``: a pointer to one integer."""
    if isinstance(expr, ListExpr) and len(expr.items) == 1:
        return integer(expr.items[0])
    raise CallError(f"expected [integer], got {expr_text(expr)}")


def string_bytes(expr: Str) -> bytes:
    """A C string literal's bytes (``\\xf7`` escapes)."""
    raw, _ = codecs.escape_decode(expr.value.encode("latin-1", "backslashreplace"))
    return bytes(raw)


def fields(expr: Expr) -> dict[str, Expr]:
    """``{events=EPOLLIN, fd=4}`` -> {"events": ..., "fd": ...}."""
    out: dict[str, Expr] = {}
    if isinstance(expr, Struct):
        for item in expr.items:
            if isinstance(item, Binary) and item.op == "=":
                key = item.lhs.name if isinstance(item.lhs, (Word, Call)) else ""
                out[key] = item.rhs
                if isinstance(item.lhs, Call):
                    out[key + "()"] = ListExpr(item.lhs.args)
    return out


@dataclass
class Prepared:
    """A call ready for a stack (``cmd``) and what to check afterwards."""

    cmd: dict[str, Any]
    checks: list[tuple[str, Expr]] = field(default_factory=list)  # (output key, expected)


def live_fd(env: Env, expr: Expr) -> int:
    script_fd = integer(expr)
    if script_fd in env.fds:
        return env.fds[script_fd]
    # Not ours (a never-opened fd on purpose, e.g. for EBADF): passed as written.
    return script_fd


def _addr(env: Env, expr: Expr, port: int) -> list[Any]:
    if isinstance(expr, Ellipsis_):
        return [env.family, env.remote_ip if port == env.connect_port else env.local_ip, port]
    if isinstance(expr, Word) and expr.name == "AF_UNSPEC":
        return [0, "", 0]
    raise CallUnsupported(f"socket address {expr_text(expr)} (only ...)")


def _is_null(expr: Expr) -> bool:
    return isinstance(expr, Word) and expr.name == "NULL"


def _iov_lens(expr: Expr) -> list[int]:
    if not isinstance(expr, ListExpr):
        raise CallError(f"expected an iovec array, got {expr_text(expr)}")
    lens = []
    for item in expr.items:
        if isinstance(item, Struct) and len(item.items) == 2:
            lens.append(integer(item.items[1]))
        else:
            raise CallError(f"expected {{..., LEN}}, got {expr_text(item)}")
    return lens


def _argc(spec: SyscallSpec, *counts: int) -> None:
    if len(spec.args) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise CallError(f"{spec.name} needs {want} arguments, got {len(spec.args)}")


def prepare(spec: SyscallSpec, env: Env) -> Prepared:
    """The call to make for ``spec`` (packetdrill's ``syscall_*`` functions)."""
    name = spec.name
    a = spec.args
    if name == "socket":
        _argc(spec, 3)
        # packetdrill ignores the domain (``...``) and uses the run's address family.
        domain = env.family if isinstance(a[0], Ellipsis_) else integer(a[0])
        return Prepared(
            {"op": "socket", "domain": domain, "type": integer(a[1]), "protocol": integer(a[2])}
        )
    if name == "bind":
        _argc(spec, 3)
        return Prepared(
            {
                "op": "bind",
                "fd": live_fd(env, a[0]),
                "addr": [env.family, env.local_ip, env.bind_port],
            }
        )
    if name == "connect":
        _argc(spec, 3)
        return Prepared(
            {"op": "connect", "fd": live_fd(env, a[0]), "addr": _addr(env, a[1], env.connect_port)}
        )
    if name == "listen":
        _argc(spec, 2)
        return Prepared({"op": "listen", "fd": live_fd(env, a[0]), "backlog": integer(a[1])})
    if name == "accept":
        _argc(spec, 3)
        return Prepared({"op": "accept", "fd": live_fd(env, a[0])})
    if name in ("read", "write"):
        _argc(spec, 3)
        return Prepared(
            {"op": name, "fd": live_fd(env, a[0]), "len": integer(a[2]), "null": _is_null(a[1])}
        )
    if name in ("send", "recv"):
        _argc(spec, 4)
        return Prepared(
            {
                "op": name,
                "fd": live_fd(env, a[0]),
                "len": integer(a[2]),
                "null": _is_null(a[1]),
                "flags": integer(a[3]),
            }
        )
    if name in ("sendto", "recvfrom"):
        _argc(spec, 6)
        cmd: dict[str, Any] = {
            "op": name,
            "fd": live_fd(env, a[0]),
            "len": integer(a[2]),
            "null": _is_null(a[1]),
            "flags": integer(a[3]),
        }
        if name == "sendto":
            cmd["addr"] = _addr(env, a[4], env.connect_port)
        return Prepared(cmd)
    if name in ("sendmsg", "recvmsg"):
        return _msg(spec, env)
    if name == "close":
        _argc(spec, 1)
        return Prepared({"op": "close", "fd": live_fd(env, a[0])})
    if name == "shutdown":
        _argc(spec, 2)
        return Prepared({"op": "shutdown", "fd": live_fd(env, a[0]), "how": integer(a[1])})
    if name == "setsockopt":
        return _setsockopt(spec, env)
    if name == "getsockopt":
        _argc(spec, 5)
        optlen = bracketed(a[4])
        prep = Prepared(
            {
                "op": "getsockopt",
                "fd": live_fd(env, a[0]),
                "level": integer(a[1]),
                "name": integer(a[2]),
                "optlen": optlen,
            }
        )
        if isinstance(a[3], ListExpr):
            prep.checks.append(("value", a[3].items[0] if a[3].items else Int(0)))
        elif not isinstance(a[3], Ellipsis_):
            raise CallUnsupported(f"getsockopt value {expr_text(a[3])}")
        prep.checks.append(("optlen", Int(optlen)))
        return prep
    if name == "fcntl":
        _argc(spec, 2, 3)
        cmd = {"op": "fcntl", "fd": live_fd(env, a[0]), "cmd": integer(a[1])}
        if len(a) == 3:
            cmd["arg"] = integer(a[2])
        return Prepared(cmd)
    if name == "ioctl":
        _argc(spec, 3)
        prep = Prepared({"op": "ioctl", "fd": live_fd(env, a[0]), "request": integer(a[1])})
        if isinstance(a[2], ListExpr):
            prep.checks.append(("value", a[2].items[0]))
        return prep
    if name == "poll":
        return _poll(spec, env)
    if name == "epoll_create":
        _argc(spec, 1)
        return Prepared({"op": "epoll_create", "size": integer(a[0])})
    if name == "epoll_ctl":
        _argc(spec, 4)
        ev = fields(a[3])
        data = ev.get("fd", ev.get("u64", ev.get("u32", ev.get("ptr", Int(0)))))
        data_value = live_fd(env, data) if "fd" in ev else integer(data)
        return Prepared(
            {
                "op": "epoll_ctl",
                "fd": live_fd(env, a[0]),
                "ctl": integer(a[1]),
                "target": live_fd(env, a[2]),
                "events": integer(ev.get("events", Int(0))),
                "data": data_value,
            }
        )
    if name == "epoll_wait":
        _argc(spec, 4)
        prep = Prepared(
            {
                "op": "epoll_wait",
                "fd": live_fd(env, a[0]),
                "maxevents": integer(a[2]),
                "timeout": integer(a[3]),
            }
        )
        prep.checks.append(("events", a[1]))
        return prep
    raise CallUnsupported(f"system call {name}()")


def _setsockopt(spec: SyscallSpec, env: Env) -> Prepared:
    _argc(spec, 5)
    a = spec.args
    cmd: dict[str, Any] = {
        "op": "setsockopt",
        "fd": live_fd(env, a[0]),
        "level": integer(a[1]),
        "name": integer(a[2]),
        "optlen": integer(a[4]),
    }
    value = a[3]
    if isinstance(value, ListExpr) and len(value.items) == 1:
        cmd["value"] = integer(value.items[0])
    elif isinstance(value, Struct) and "onoff" in fields(value):
        f = fields(value)
        cmd["value"] = [integer(f["onoff"]), integer(f.get("linger", Int(0)))]
    elif isinstance(value, Str):
        cmd["raw"] = string_bytes(value).hex()
    else:
        raise CallUnsupported(f"setsockopt value {expr_text(value)}")
    return Prepared(cmd)


def _msg(spec: SyscallSpec, env: Env) -> Prepared:
    _argc(spec, 3)
    a = spec.args
    f = fields(a[1])
    if "msg_iov" not in f:
        raise CallError(f"{spec.name} needs a msghdr {{msg_name(...)=..., msg_iov(N)=[...], ...}}")
    cmd: dict[str, Any] = {
        "op": spec.name,
        "fd": live_fd(env, a[0]),
        "iov": _iov_lens(f["msg_iov"]),
        "flags": integer(a[2]),
    }
    prep = Prepared(cmd)
    if spec.name == "sendmsg" and "msg_name" in f:
        # packetdrill's msghdr_new: msg_name(...)=... is the live remote address.
        cmd["addr"] = [env.family, env.remote_ip, env.connect_port]
    if spec.name == "sendmsg" and "msg_control" in f:
        control = f["msg_control"]
        if not (isinstance(control, ListExpr) and not control.items):
            raise CallUnsupported("sendmsg with control messages")
    if spec.name == "recvmsg":
        wanted = f.get("msg_control")
        if isinstance(wanted, ListExpr) and wanted.items:
            cmd["control_len"] = 64 * len(wanted.items)
            prep.checks.append(("cmsgs", wanted))
        if "msg_flags" in f:
            prep.checks.append(("msg_flags", f["msg_flags"]))
    return prep


def _poll(spec: SyscallSpec, env: Env) -> Prepared:
    _argc(spec, 3)
    a = spec.args
    if not isinstance(a[0], ListExpr):
        raise CallError("poll needs [{fd=N, events=..., revents=...}, ...]")
    fds: list[list[int]] = []
    expected: list[Expr] = []
    for item in a[0].items:
        f = fields(item)
        fds.append([live_fd(env, f.get("fd", Int(-1))), integer(f.get("events", Int(0)))])
        expected.append(f.get("revents", Int(0)))
    prep = Prepared({"op": "poll", "fds": fds, "timeout": integer(a[2])})
    prep.checks.append(("revents", ListExpr(tuple(expected))))
    return prep


def check_outputs(prep: Prepared, out: dict[str, Any], env: Env) -> str | None:
    """packetdrill's per-call checks of what the kernel wrote back."""
    for key, expected in prep.checks:
        got = out.get(key)
        if key in ("value", "optlen"):
            want = integer(expected)
            if got is None:
                continue
            # [0xffffffff] compares as the 32-bit pattern the kernel wrote.
            if (int(got) & 0xFFFFFFFF) != (want & 0xFFFFFFFF):
                what = "optval" if key == "value" else "optlen"
                return f"Bad getsockopt {what}: expected: {want} actual: {got}"
        elif key == "revents":
            assert isinstance(expected, ListExpr)
            for want_expr, have in zip(expected.items, got or [], strict=False):
                want = integer(want_expr)
                if want != have:
                    return f"poll: expected revents {want:#x} but got {have:#x}"
        elif key == "events":
            err = _check_epoll(expected, got or [], env)
            if err:
                return err
        elif key == "cmsgs":
            err = _check_cmsgs(expected, got or [])
            if err:
                return err
        elif key == "msg_flags":
            want = integer(expected)
            if got is not None and want != got:
                return f"recvmsg: expected msg_flags {want:#x} but got {got:#x}"
    return None


def _check_epoll(expected: Expr, got: list[list[int]], env: Env) -> str | None:
    items = expected.items if isinstance(expected, ListExpr) else (expected,)
    for i, item in enumerate(items):
        f = fields(item)
        want_events = integer(f.get("events", Int(0)))
        if want_events == 0 and not got:
            continue
        if i >= len(got):
            return f"epoll_wait: expected event {want_events:#x} but got none"
        have_events, have_data = got[i]
        if want_events != have_events:
            return f"epoll_wait: expected events {want_events:#x} but got {have_events:#x}"
        if "fd" in f and live_fd(env, f["fd"]) != have_data:
            return f"epoll_wait: expected fd {integer(f['fd'])} but got live data {have_data}"
    return None


def _check_cmsgs(expected: Expr, got: list[list[int]]) -> str | None:
    assert isinstance(expected, ListExpr)
    for i, item in enumerate(expected.items):
        f = fields(item)
        if i >= len(got):
            return "recvmsg: expected a control message, got none"
        level, kind, value = got[i]
        want = (integer(f["cmsg_level"]), integer(f["cmsg_type"]), integer(f["cmsg_data"]))
        if (level, kind, value) != want:
            return (
                f"recvmsg: expected cmsg (level {want[0]}, type {want[1]}, data {want[2]}) "
                f"but got (level {level}, type {kind}, data {value})"
            )
    return None


def errno_name(code: int) -> str:
    return errno_mod.errorcode.get(code, str(code))


def result_error(spec: SyscallSpec, ret: int, err: int) -> str | None:
    """packetdrill's ``end_syscall``: result (an fd for socket/accept), then errno."""
    expected = integer(spec.result)
    if spec.name in FD_RESULT and expected >= 0:
        if ret < 0:
            return (
                f"Expected non-negative result but got {ret} with errno {err} ({os.strerror(err)})"
            )
    elif ret != expected:
        return f"Expected result {expected} but got {ret} with errno {err} ({os.strerror(err)})"
    if spec.errno is not None:
        want = symbol(spec.errno)
        if err != want:
            return f"Expected errno {want} ({os.strerror(want)}) but got {err} ({os.strerror(err)})"
    return None
