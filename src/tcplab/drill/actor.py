"""The drill actor: a script's system calls, made raw, inside the lab namespace.

``python -I -S .../drill/actor.py --netns PATH`` (stdlib only, like the
lab's own actor; the same JSON-lines pipe).  The calls go through libc
(ctypes) exactly as a C program makes them, so return values, errno,
NULL buffers (EFAULT) and blocking behave as in packetdrill: nothing of
Python's socket module (timeouts, retries on EINTR, its own fd objects)
sits in between.  Each command runs on its own thread; before the call
the actor says so (``{"id": N, "tid": T}``) so the lab can tell a call
that blocks (its thread sleeping in the kernel) from one still running.

    -> {"id": 4, "op": "write", "fd": 5, "len": 1000}
    <- {"id": 4, "tid": 1234}
    <- {"id": 4, "ret": 1000, "errno": 0, "out": {}, "started": ns, "ended": ns}
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1

libc = ctypes.CDLL(None, use_errno=True)
_out_lock = threading.Lock()


def _say(msg: dict[str, Any]) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()


def _sockaddr(addr: list[Any] | None) -> tuple[Any, int]:
    """(buffer, length) for [family, ip, port]; family 0 is AF_UNSPEC."""
    if addr is None:
        return None, 0
    family, ip, port = int(addr[0]), str(addr[1]), int(addr[2])
    if family == socket.AF_INET6:
        raw = struct.pack("!HHI", 0, port, 0) + socket.inet_pton(socket.AF_INET6, ip) + bytes(4)
        raw = struct.pack("=H", family) + raw[2:]
    elif family == socket.AF_INET:
        raw = struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_aton(ip) + bytes(8)
    else:
        raw = struct.pack("=H", family) + bytes(14)
    buf = ctypes.create_string_buffer(raw, len(raw))
    return buf, len(raw)


def _buffer(length: int, null: bool) -> Any:
    if null:
        return None
    return ctypes.create_string_buffer(max(length, 1))


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(_Iovec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


def _msghdr(iov_lens: list[int], control_len: int, addr: list[Any] | None) -> tuple[Any, ...]:
    bufs = [ctypes.create_string_buffer(max(n, 1)) for n in iov_lens]
    iovs = (_Iovec * max(len(iov_lens), 1))()
    for i, (buf, n) in enumerate(zip(bufs, iov_lens, strict=True)):
        iovs[i].base = ctypes.cast(buf, ctypes.c_void_p)
        iovs[i].len = n
    msg = _Msghdr()
    name, namelen = _sockaddr(addr)
    if name is not None:
        msg.name = ctypes.cast(name, ctypes.c_void_p)
        msg.namelen = namelen
    msg.iov = iovs
    msg.iovlen = len(iov_lens)
    control = ctypes.create_string_buffer(control_len) if control_len else None
    if control is not None:
        msg.control = ctypes.cast(control, ctypes.c_void_p)
        msg.controllen = control_len
    return msg, bufs, iovs, name, control


def _cmsgs(msg: _Msghdr, control: Any) -> list[list[int]]:
    """[[level, type, first int of data], ...] (CMSG_FIRSTHDR/NXTHDR by hand)."""
    out: list[list[int]] = []
    if control is None:
        return out
    raw = control.raw[: msg.controllen]
    pos = 0
    while pos + 16 <= len(raw):
        length, level, kind = struct.unpack_from("=Qii", raw, pos)
        if length < 16:
            break
        data = raw[pos + 16 : pos + length]
        value = struct.unpack_from("=i", data)[0] if len(data) >= 4 else 0
        out.append([level, kind, value])
        pos += (length + 7) & ~7
    return out


def call(cmd: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Run one call; (return value, outputs).  errno is read by the caller."""
    op = cmd["op"]
    fd = int(cmd.get("fd", -1))
    out: dict[str, Any] = {}
    if op == "socket":
        return libc.socket(cmd["domain"], cmd["type"], cmd["protocol"]), out
    if op == "bind" or op == "connect":
        addr, length = _sockaddr(cmd.get("addr"))
        fn = libc.bind if op == "bind" else libc.connect
        return fn(fd, addr, length), out
    if op == "listen":
        return libc.listen(fd, cmd["backlog"]), out
    if op == "accept":
        addr = ctypes.create_string_buffer(128)
        alen = ctypes.c_uint32(128)
        return libc.accept(fd, addr, ctypes.byref(alen)), out
    if op in ("read", "recv", "recvfrom"):
        n = int(cmd["len"])
        buf = _buffer(n, bool(cmd.get("null")))
        if op == "read":
            return libc.read(fd, buf, ctypes.c_size_t(n)), out
        if op == "recv":
            return libc.recv(fd, buf, ctypes.c_size_t(n), cmd.get("flags", 0)), out
        return libc.recvfrom(fd, buf, ctypes.c_size_t(n), cmd.get("flags", 0), None, None), out
    if op in ("write", "send", "sendto"):
        n = int(cmd["len"])
        buf = _buffer(n, bool(cmd.get("null")))  # zeros, as packetdrill's buffers
        if op == "write":
            return libc.write(fd, buf, ctypes.c_size_t(n)), out
        if op == "send":
            return libc.send(fd, buf, ctypes.c_size_t(n), cmd.get("flags", 0)), out
        addr, length = _sockaddr(cmd.get("addr"))
        return libc.sendto(fd, buf, ctypes.c_size_t(n), cmd.get("flags", 0), addr, length), out
    if op in ("sendmsg", "recvmsg"):
        msg, *_keep = _msghdr(list(cmd["iov"]), int(cmd.get("control_len", 0)), cmd.get("addr"))
        fn = libc.sendmsg if op == "sendmsg" else libc.recvmsg
        ret = fn(fd, ctypes.byref(msg), cmd.get("flags", 0))
        if op == "recvmsg":
            out["msg_flags"] = msg.flags
            out["cmsgs"] = _cmsgs(msg, _keep[3])
        return ret, out
    if op == "close":
        return libc.close(fd), out
    if op == "shutdown":
        return libc.shutdown(fd, cmd["how"]), out
    if op == "setsockopt":
        value = cmd.get("value", 0)
        if "raw" in cmd:
            raw = bytes.fromhex(cmd["raw"]) or b"\0"
        elif isinstance(value, list):
            raw = struct.pack("=ii", *value)
        else:
            raw = struct.pack("=I", value & 0xFFFFFFFF)
        buf = ctypes.create_string_buffer(raw, len(raw))
        return libc.setsockopt(fd, cmd["level"], cmd["name"], buf, int(cmd["optlen"])), out
    if op == "getsockopt":
        size = max(int(cmd["optlen"]), 4)
        buf = ctypes.create_string_buffer(size)
        optlen = ctypes.c_uint32(int(cmd["optlen"]))
        ret = libc.getsockopt(fd, cmd["level"], cmd["name"], buf, ctypes.byref(optlen))
        out["optlen"] = optlen.value
        out["value"] = struct.unpack_from("=i", buf.raw)[0]
        out["raw"] = buf.raw[: optlen.value].hex()
        return ret, out
    if op == "tcp_info":
        buf = ctypes.create_string_buffer(512)
        optlen = ctypes.c_uint32(512)
        ret = libc.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_INFO, buf, ctypes.byref(optlen))
        out["raw"] = buf.raw[: optlen.value].hex()
        return ret, out
    if op == "fcntl":
        if "arg" in cmd:
            return libc.fcntl(fd, cmd["cmd"], ctypes.c_long(cmd["arg"])), out
        return libc.fcntl(fd, cmd["cmd"]), out
    if op == "ioctl":
        value = ctypes.c_int(0)
        ret = libc.ioctl(fd, ctypes.c_ulong(cmd["request"]), ctypes.byref(value))
        out["value"] = value.value
        return ret, out
    if op == "poll":
        fds = cmd["fds"]
        arr = (ctypes.c_byte * (8 * max(len(fds), 1)))()
        raw = b"".join(struct.pack("=ihh", f, ev, 0) for f, ev in fds)
        ctypes.memmove(arr, raw, len(raw))
        ret = libc.poll(arr, len(fds), cmd["timeout"])
        got = bytes(arr)
        out["revents"] = [
            struct.unpack_from("=ihh", got, 8 * i)[2] & 0xFFFF for i in range(len(fds))
        ]
        return ret, out
    if op == "epoll_create":
        return libc.epoll_create(cmd["size"]), out
    if op == "epoll_ctl":
        ev = struct.pack("=IQ", cmd["events"] & 0xFFFFFFFF, cmd["data"])
        buf = ctypes.create_string_buffer(ev, len(ev))
        return libc.epoll_ctl(fd, cmd["ctl"], cmd["target"], buf), out
    if op == "epoll_wait":
        n = max(int(cmd["maxevents"]), 1)
        buf = ctypes.create_string_buffer(12 * n)
        ret = libc.epoll_wait(fd, buf, cmd["maxevents"], cmd["timeout"])
        out["events"] = [
            list(struct.unpack_from("=IQ", buf.raw, 12 * i)) for i in range(max(ret, 0))
        ]
        return ret, out
    raise ValueError(f"the drill actor does not make {op!r} calls")


def run(cmd: dict[str, Any]) -> None:
    ident = cmd["id"]
    _say({"id": ident, "tid": threading.get_native_id()})
    started = time.monotonic_ns()
    problem = None
    out: dict[str, Any] = {}
    try:
        ctypes.set_errno(0)
        ret, out = call(cmd)
        err = ctypes.get_errno() if ret < 0 else 0
    except (ValueError, KeyError, TypeError, OSError) as exc:
        ret, err, problem = -1, 0, str(exc)
    ended = time.monotonic_ns()
    _say(
        {
            "id": ident,
            "ret": ret,
            "errno": err,
            "out": out,
            "started": started,
            "ended": ended,
            "problem": problem,
        }
    )


def _enter(netns: str) -> None:
    fd = os.open(netns, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise SystemExit(f"drill actor: setns {netns}: {os.strerror(ctypes.get_errno())}")
    os.close(fd)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the lab


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tcplab.drill.actor")
    parser.add_argument("--netns", required=True)
    opts = parser.parse_args(argv)
    if os.getppid() == 1:
        raise SystemExit("drill actor: the lab is gone")
    _enter(opts.netns)
    # A write to a reset connection must return EPIPE, not kill the actor.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # A busy machine must not make the script's calls late (root only; optional).
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    libc.socket.restype = ctypes.c_int
    for name in ("read", "write", "recv", "send", "recvfrom", "sendto", "sendmsg", "recvmsg"):
        getattr(libc, name).restype = ctypes.c_ssize_t
    _say({"ready": os.getpid()})
    for line in sys.stdin:
        if line.strip():
            threading.Thread(target=run, args=(json.loads(line),), daemon=True).start()
    os._exit(0)


if __name__ == "__main__":
    main()
