"""An actor: one endpoint's process, inside its host's namespace, driven over a pipe.

``python -I -S .../lab/actor.py --netns PATH --name client --addr A --peer B --port P``
(stdlib only, so the lab runs it as a plain script; ``python -m tcplab.lab.actor`` works too)

The actor enters the namespace first (setns on its only thread moves the
whole process), then reads one JSON command per line on stdin and answers
one JSON line per command on stdout::

    -> {"id": 3, "call": "connect", "args": {"port": 8080}, "sock": null}
    <- {"id": 3, "started": 123456789, "ended": 123999999, "result": "0",
        "errno": null, "sockets": {"main": ["10.89.7.1", 40000, "10.89.7.2", 8080]}}

Times are CLOCK_MONOTONIC nanoseconds, the clock of the wire and of the
tracepoints.  Every command runs on its own thread, so a blocking call (an
``accept`` the lab does not wait for) does not stop the next command; the
lab decides the order.  The actor dies with the lab (PR_SET_PDEATHSIG) and
when its stdin closes.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
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

SOCKOPTS: dict[str, tuple[int, int]] = {
    "SO_REUSEADDR": (socket.SOL_SOCKET, socket.SO_REUSEADDR),
    "SO_KEEPALIVE": (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    "SO_LINGER": (socket.SOL_SOCKET, socket.SO_LINGER),
    "SO_RCVBUF": (socket.SOL_SOCKET, socket.SO_RCVBUF),
    "SO_SNDBUF": (socket.SOL_SOCKET, socket.SO_SNDBUF),
    "TCP_NODELAY": (socket.IPPROTO_TCP, socket.TCP_NODELAY),
    # Hold partial segments until uncorked, shutdown() or close() (Linux tcp(7)).
    "TCP_CORK": (socket.IPPROTO_TCP, socket.TCP_CORK),
    "TCP_KEEPIDLE": (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    "TCP_KEEPINTVL": (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    "TCP_KEEPCNT": (socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    # A listener's Fast Open queue length (RFC 7413; Linux fastopenq.max_qlen).
    "TCP_FASTOPEN": (socket.IPPROTO_TCP, 23),
    # connect() + write() as sendto(MSG_FASTOPEN) (Linux TCP_FASTOPEN_CONNECT).
    "TCP_FASTOPEN_CONNECT": (socket.IPPROTO_TCP, 30),
}
MSG_FASTOPEN = 0x20000000  # include/linux/socket.h: connect and send in one call
SHUT = {"SHUT_RD": socket.SHUT_RD, "SHUT_WR": socket.SHUT_WR, "SHUT_RDWR": socket.SHUT_RDWR}


class CallError(Exception):
    """A step the actor cannot perform (unknown socket name...), not an errno."""


def _short(data: bytes) -> str:
    return repr(data) if len(data) <= 64 else f"<{len(data)} bytes>"


class Actor:
    def __init__(self, name: str, addr: str, peer: str, server_port: int,
                 addr6: str = "", peer6: str = "") -> None:  # fmt: skip
        self.name = name
        # family -> (this host's address, the peer's address)
        self.addresses = {socket.AF_INET: (addr, peer)}
        if addr6:
            self.addresses[socket.AF_INET6] = (addr6, peer6)
        self.server_port = server_port
        self.sockets: dict[str, socket.socket] = {}
        self.last: str | None = None
        self.bound: set[str] = set()
        self.out_lock = threading.Lock()
        self.state_lock = threading.Lock()

    # -- helpers ----------------------------------------------------------

    def _sock(self, name: str | None) -> tuple[str, socket.socket]:
        key = name or self.last
        with self.state_lock:
            if key is None or key not in self.sockets:
                raise CallError(f"{self.name} has no socket {key or '(none yet)'}")
            return key, self.sockets[key]

    def _ensure(self, name: str | None) -> None:
        """listen()/connect() create the socket first when there is none yet."""
        with self.state_lock:
            missing = name not in self.sockets if name else self.last is None
        if missing:
            self._new(name or "main")

    def _new(self, name: str, family: int = socket.AF_INET) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        with self.state_lock:
            self.sockets[name] = sock
            self.last = name
        return sock

    def _bind_if_needed(self, key: str, sock: socket.socket, port: int) -> None:
        # Bind to this host's own address so every kernel event names it
        # (the lab attributes tracepoint events by address and port).
        if key not in self.bound:
            sock.bind((self.addresses[sock.family][0], port))
            self.bound.add(key)

    def describe(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        with self.state_lock:
            items = list(self.sockets.items())
        for key, sock in items:
            try:
                local = sock.getsockname()
            except OSError:
                continue
            try:
                remote = sock.getpeername()
            except OSError:
                remote = ("", 0)
            out[key] = [local[0], local[1], remote[0], remote[1]]
        return out

    @staticmethod
    def _payload(args: dict[str, Any]) -> bytes:
        if "size" in args:
            return b"x" * int(args["size"])
        return str(args.get("data", "")).encode()

    # -- calls ------------------------------------------------------------

    def call(self, call: str, args: dict[str, Any], name: str | None) -> str:
        if call == "socket":
            family = socket.AF_INET6 if args.get("family") == "inet6" else socket.AF_INET
            if family not in self.addresses:
                raise CallError("this run's hosts have IPv4 addresses only")
            self._new(name or "main", family)
            return "0"
        if call == "listen":
            self._ensure(name)
            key, sock = self._sock(name)
            self._bind_if_needed(key, sock, self.server_port)
            sock.listen(int(args.get("backlog", 5)))
            return "0"
        if call == "connect":
            self._ensure(name)
            key, sock = self._sock(name)
            self._bind_if_needed(key, sock, 0)
            target = (self.addresses[sock.family][1], int(args.get("port", self.server_port)))
            if args.get("nonblocking"):
                sock.setblocking(False)
                code = sock.connect_ex(target)
                if code:
                    raise OSError(code, os.strerror(code))
                return "0"
            sock.connect(target)
            return "0"
        if call == "sendto" and args.get("flags") == "MSG_FASTOPEN":
            # sendto(MSG_FASTOPEN) on a new socket: the kernel connects, and puts
            # the data on the SYN when it has a Fast Open cookie for the server.
            self._ensure(name)
            key, sock = self._sock(name)
            self._bind_if_needed(key, sock, 0)
            target = (self.addresses[sock.family][1], int(args.get("port", self.server_port)))
            if args.get("nonblocking"):
                sock.setblocking(False)
            return str(sock.sendto(self._payload(args), MSG_FASTOPEN, target))
        key, sock = self._sock(name)
        if call == "setsockopt":
            level, opt = SOCKOPTS[str(args["option"])]
            value = args["value"]
            if isinstance(value, list):
                sock.setsockopt(level, opt, struct.pack("ii", int(value[0]), int(value[1])))
            else:
                sock.setsockopt(level, opt, int(value))
            return "0"
        if call == "bind":
            default = self.server_port if self.name == "server" else 0
            sock.bind((self.addresses[sock.family][0], int(args.get("port", default))))
            self.bound.add(key)
            return "0"
        if call == "accept":
            conn, _ = sock.accept()
            into = str(args.get("into", "conn"))
            with self.state_lock:
                self.sockets[into] = conn
                self.last = into
            return "0"
        if call in ("send", "sendto"):
            data = self._payload(args)
            sock.sendall(data)
            return str(len(data))
        if call == "recv":
            bufsize = int(args.get("bufsize", 65536))
            until = args.get("until")
            if until == "eof":
                # Read until recv() returns 0: the peer's FIN (RFC 9293 §3.10.7.4).
                total = b""
                while chunk := sock.recv(bufsize):
                    total += chunk
                return _short(total)
            if until == "size":
                want = int(args.get("size", 0))
                total = b""
                while len(total) < want:
                    chunk = sock.recv(min(bufsize, want - len(total)))
                    if not chunk:
                        break
                    total += chunk
                return _short(total)
            return _short(sock.recv(bufsize))
        if call == "shutdown":
            sock.shutdown(SHUT[str(args["how"])])
            return "0"
        if call in ("close", "abort"):
            if call == "abort":
                # SO_LINGER {1, 0}: close() sends RST and skips TIME-WAIT (RFC 9293 §3.10.5 ABORT).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with self.state_lock:
                self.sockets.pop(key, None)
                if self.last == key:
                    self.last = next(reversed(self.sockets), None)
            sock.close()
            return "0"
        if call == "fork_close":
            pid = os.fork()
            if pid == 0:
                # The child's copy of the descriptor goes; the parent still holds the socket.
                os.close(sock.fileno())
                os._exit(0)
            os.waitpid(pid, 0)
            return f"child {pid}"
        if call == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if call == "exit":
            # exit() without close(): the process ends normally; the kernel closes
            # every descriptor it still holds, as it does for any exiting process.
            os._exit(int(args.get("status", 0)))
        raise CallError(f"the actor does not perform {call!r}")

    def run_command(self, cmd: dict[str, Any]) -> None:
        started = time.monotonic_ns()
        result: str | None = None
        err: str | None = None
        problem: str | None = None
        try:
            result = self.call(str(cmd["call"]), dict(cmd.get("args", {})), cmd.get("sock"))
        except OSError as exc:
            err = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        except (CallError, KeyError, ValueError, TypeError) as exc:
            problem = str(exc)
        ended = time.monotonic_ns()
        reply = {
            "id": cmd["id"], "started": started, "ended": ended, "result": result,
            "errno": err, "problem": problem, "sockets": self.describe(),
        }  # fmt: skip
        with self.out_lock:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


def _enter(netns: str) -> None:
    # tcplab.netns does this for the lab process; the actor runs as a plain
    # stdlib script (python -I -S, fast start), so it cannot import it.
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise SystemExit(f"actor: setns {netns}: {os.strerror(ctypes.get_errno())}")
    os.close(fd)
    # Die with the lab: a killed lab must not leave actors holding namespaces.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tcplab.lab.actor")
    parser.add_argument("--netns", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--addr", required=True)
    parser.add_argument("--peer", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--addr6", default="")
    parser.add_argument("--peer6", default="")
    opts = parser.parse_args(argv)
    if os.getppid() == 1:
        raise SystemExit("actor: the lab is gone")
    _enter(opts.netns)
    actor = Actor(opts.name, opts.addr, opts.peer, opts.port, opts.addr6, opts.peer6)
    sys.stdout.write(json.dumps({"ready": os.getpid()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        threading.Thread(target=actor.run_command, args=(cmd,), daemon=True).start()
    # stdin closed: the lab is done with us; sockets close as the process exits.
    os._exit(0)


if __name__ == "__main__":
    main()
