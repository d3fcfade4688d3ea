"""The wire between the two hosts: the lab process itself.

``TunWire`` polls the two TUN fds; every IP datagram read from one host's
TUN is timestamped (CLOCK_MONOTONIC ns, the clock of the tracepoints and
the actors), recorded exactly once, passed through the fault program, and
written to the other host's TUN (now, later, twice or never).  Non-TCP
datagrams are forwarded untouched and not recorded.

``LoopbackCapture`` is the ``--loopback`` mode's capture: an AF_PACKET
socket on ``lo`` inside the namespace.  ``lo`` shows every packet twice
(PACKET_OUTGOING then PACKET_HOST); the outgoing copy is dropped so each
segment is recorded once.
"""

from __future__ import annotations

import heapq
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcplab.lab.faults import FaultProgram, Release, Segment
from tcplab.netns import entered
from tcplab.wire.flags import Flags

IPPROTO_TCP = 6
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # <asm-generic/socket.h>
ETH_P_ALL = 0x0003


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One datagram as the wire saw it."""

    time_ns: int  # CLOCK_MONOTONIC when the wire read it
    sender: str
    raw: bytes  # the IP datagram
    dropped: bool = False
    note: str = ""
    delivered_ns: int | None = None  # when the wire passed it on, if it held or delayed it


def tcp_segment(raw: bytes, sender: str) -> Segment | None:
    """The few TCP fields the fault program needs, or None for non-TCP.

    RFC 791 §3.1 (IHL in 32-bit words), RFC 8200 §3 (fixed 40-byte header;
    the lab never sends extension headers), RFC 9293 §3.1 (data offset).
    """
    if len(raw) < 20:
        return None
    version = raw[0] >> 4
    if version == 4:
        ihl = (raw[0] & 0x0F) * 4
        if raw[9] != IPPROTO_TCP:
            return None
        total = struct.unpack_from("!H", raw, 2)[0]
        tcp_at, end = ihl, min(total, len(raw))
    elif version == 6 and len(raw) >= 40:
        if raw[6] != IPPROTO_TCP:
            return None
        tcp_at, end = 40, min(40 + struct.unpack_from("!H", raw, 4)[0], len(raw))
    else:
        return None
    if end - tcp_at < 20:
        return None
    seq, ack, off_flags = struct.unpack_from("!IIH", raw, tcp_at + 4)
    data_offset = (off_flags >> 12) * 4
    flags = Flags(off_flags & 0x1FF)
    return Segment(sender, flags.tcpdump(), seq, ack, max(0, end - tcp_at - data_offset))


@dataclass(order=True)
class _Pending:
    due_ns: int
    order: int
    target: int = field(compare=False)
    data: bytes = field(compare=False)


class TunWire:
    """Forward between two TUN fds, recording and applying faults, on its own thread."""

    def __init__(
        self,
        client_fd: int,
        server_fd: int,
        program: FaultProgram[tuple[str, bytes]],
        start_ns: int,
    ) -> None:
        self._fds = {client_fd: "client", server_fd: "server"}
        self._peer = {client_fd: server_fd, server_fd: client_fd}
        self._fd_of = {"client": client_fd, "server": server_fd}
        self._program = program
        self._start_ns = start_ns
        self.records: list[WireRecord] = []
        self._pending: list[_Pending] = []
        self._held_at: dict[int, int] = {}  # id(datagram) -> index in records
        self._commands: list[tuple[Any, threading.Event]] = []
        self._order = 0
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="tcplab-wire", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def command(self, fn: Callable[[FaultProgram[tuple[str, bytes]], float],
                                    list[Release[tuple[str, bytes]]]]) -> None:  # fmt: skip
        """Run ``fn(program, now)`` on the wire's thread (the program is not shared)
        and wait until it has run; its releases go out at once."""
        done = threading.Event()
        self._commands.append((fn, done))
        os.write(self._wake_w, b"c")
        if not done.wait(5):
            raise RuntimeError("the wire did not take the command")

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _now(self, ns: int) -> float:
        return (ns - self._start_ns) / 1e9

    def _apply(self, releases: list[Release[tuple[str, bytes]]], now_ns: int) -> None:
        for rel in releases:
            sender, data = rel.token
            index = self._held_at.pop(id(data), None)
            due = self._start_ns + int(rel.at * 1e9)
            if index is not None:
                # The record keeps the time the packet reached the wire; say when it left.
                old = self.records[index]
                self.records[index] = WireRecord(old.time_ns, old.sender, old.raw, note=rel.note,
                                                 delivered_ns=max(due, now_ns))  # fmt: skip
            target = self._fd_of["server" if sender == "client" else "client"]
            if rel.dropped:
                continue
            if due <= now_ns:
                self._write(target, data)
            else:
                self._order += 1
                heapq.heappush(self._pending, _Pending(due, self._order, target, data))

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        # A full TUN queue (500 packets) drops, as a real link would.
        with suppress(BlockingIOError):
            os.write(fd, data)

    def _loop(self) -> None:
        # The wire is on the path of every segment: on a busy machine a stalled
        # wire would show as retransmissions that no real link caused.  Raise
        # this thread's priority (our own thread only; needs root, optional).
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        try:
            self._run()
        except BaseException as exc:  # reported by the lab after stop()
            self.error = exc

    def _run(self) -> None:
        poller = select.poll()
        for fd in self._fds:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            now_ns = time.monotonic_ns()
            deadlines = [p.due_ns for p in self._pending[:1]]
            held = self._program.next_deadline()
            if held is not None:
                deadlines.append(self._start_ns + int(held * 1e9))
            timeout_ms = 200.0
            if deadlines:
                timeout_ms = max(0.0, (min(deadlines) - now_ns) / 1e6)
            for fd, _ in poller.poll(timeout_ms):
                if fd == self._wake_r:
                    os.read(self._wake_r, 64)
                    continue
                self._read_all(fd)
            while self._commands:
                fn, done = self._commands.pop(0)
                now_ns = time.monotonic_ns()
                self._apply(fn(self._program, self._now(now_ns)), now_ns)
                done.set()
            now_ns = time.monotonic_ns()
            self._apply(self._program.tick(self._now(now_ns)), now_ns)
            while self._pending and self._pending[0].due_ns <= now_ns:
                item = heapq.heappop(self._pending)
                self._write(item.target, item.data)
        # Whatever is still held or delayed is released so nothing is lost silently.
        now_ns = time.monotonic_ns()
        self._apply(self._program.flush(self._now(now_ns)), now_ns)

    def _read_all(self, fd: int) -> None:
        sender = self._fds[fd]
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            now_ns = time.monotonic_ns()
            seg = tcp_segment(data, sender)
            if seg is None:
                self._write(self._peer[fd], data)
                continue
            releases = self._program.on_packet(self._now(now_ns), seg, (sender, data))
            self._record(now_ns, sender, data, releases)
            self._apply(releases, now_ns)

    def _record(
        self, now_ns: int, sender: str, data: bytes, releases: list[Release[tuple[str, bytes]]]
    ) -> None:
        mine = [r for r in releases if r.token[1] is data]
        if not mine:
            self._held_at[id(data)] = len(self.records)
            self.records.append(WireRecord(now_ns, sender, data, note="held by the wire"))
            return
        due = self._start_ns + int(mine[0].at * 1e9)
        later = due if due > now_ns and not mine[0].dropped else None
        self.records.append(WireRecord(now_ns, sender, data, mine[0].dropped, mine[0].note, later))
        for dup in mine[1:]:
            # A duplicate is a second packet on the wire, recorded as such.
            self.records.append(WireRecord(now_ns, sender, data, note=dup.note))


class LoopbackCapture:
    """AF_PACKET on ``lo`` inside a namespace, for the ``--loopback`` mode."""

    def __init__(self, netns_path: str | Path, start_ns: int, senders: dict[tuple[str, int], str]):
        self._senders = senders  # (address, port) -> actor
        self._start_ns = start_ns
        self.records: list[WireRecord] = []
        self._stop = threading.Event()
        self.error: BaseException | None = None
        with entered(netns_path):
            # SOCK_DGRAM: the kernel strips lo's all-zero Ethernet header, we get IP.
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        self._sock.bind(("lo", 0))
        # The kernel's receive timestamp (CLOCK_REALTIME), not the moment this
        # thread got around to reading: on a busy machine that can be many ms later.
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._realtime_offset_ns = time.time_ns() - time.monotonic_ns()
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._loop, name="tcplab-lo", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    data, ancillary, _flags, addr = self._sock.recvmsg(262144, 64)
                except TimeoutError:
                    continue
                now_ns = time.monotonic_ns()
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                        sec, nsec = struct.unpack_from("@qq", value)
                        now_ns = min(now_ns, sec * 1_000_000_000 + nsec - self._realtime_offset_ns)
                if addr[2] == PACKET_OUTGOING:
                    continue
                seg = tcp_segment(data, "")
                if seg is None:
                    continue
                self.records.append(WireRecord(now_ns, self._sender_of(data), data))
        except BaseException as exc:
            self.error = exc

    def _sender_of(self, data: bytes) -> str:
        if data[0] >> 4 == 4:
            ihl = (data[0] & 0x0F) * 4
            src = socket.inet_ntop(socket.AF_INET, data[12:16])
            sport = struct.unpack_from("!H", data, ihl)[0]
        else:
            src = socket.inet_ntop(socket.AF_INET6, data[8:24])
            sport = struct.unpack_from("!H", data, 40)[0]
        return self._senders.get((src, sport)) or self._senders.get((src, 0), "?")
