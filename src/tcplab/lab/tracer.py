"""The kernel's own state transitions, from a private tracefs instance.

Theory of operation.  tracefs is mounted on a private directory when the
host has no mount (an existing mount from /proc/mounts is reused).  The run
gets its own instance, ``instances/tcplab-<runid>``: its own ring buffer,
``trace_clock = mono`` (CLOCK_MONOTONIC, the clock of the wire and the
actors; ``local`` and ``global`` drift by milliseconds), and these events:

* ``sock/inet_sock_set_state``  -- every state change of a full socket;
* ``tcp/tcp_retransmit_skb``    -- with the state it happened in;
* ``tcp/tcp_send_reset`` / ``tcp/tcp_receive_reset``.

Events carry no network namespace and their pid/comm is whoever ran on the
CPU (often a softirq), so events are attributed by address and port: every
lab host has its own address.  ``trace_pipe`` is read on a thread; API
calls are written into ``trace_marker`` so they interleave on one clock.

What the tracepoint cannot show: TIME-WAIT (a socket handed to its
timewait mini-socket is reported as ``FIN_WAIT2 -> CLOSE``) and request
sockets (NEW_SYN_RECV).  The sock_diag snapshots fill those in.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from tcplab.lab.host import STATE_ROOT, LabError

EVENTS = (
    "sock/inet_sock_set_state",
    "tcp/tcp_retransmit_skb",
    "tcp/tcp_send_reset",
    "tcp/tcp_receive_reset",
)

# "  <idle>-0  [001] ..s2. 12345.678901: inet_sock_set_state: family=AF_INET ..."
_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[\d+\]\s+\S+\s+(?P<ts>\d+\.\d+): "
    r"(?P<event>\w+): (?P<body>.*)$"
)
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True, slots=True)
class TraceEvent:
    time: float  # CLOCK_MONOTONIC seconds (microsecond resolution)
    event: str  # inet_sock_set_state | tcp_retransmit_skb | ... | tracing_mark_write
    fields: dict[str, str]
    text: str = ""  # a marker's text

    @property
    def local(self) -> tuple[str, int]:
        """(saddr, sport) of the socket the event is about."""
        if "src" in self.fields:  # tcp_send_reset/receive_reset print sockaddrs
            return _split_hostport(self.fields["src"])
        return (self._addr("saddr"), int(self.fields.get("sport", "0")))

    @property
    def remote(self) -> tuple[str, int]:
        if "dest" in self.fields:
            return _split_hostport(self.fields["dest"])
        return (self._addr("daddr"), int(self.fields.get("dport", "0")))

    def _addr(self, key: str) -> str:
        if self.fields.get("family") == "AF_INET6":
            return plain_address(self.fields.get(key + "v6", ""))
        return self.fields.get(key, "")


def plain_address(addr: str) -> str:
    """``::ffff:10.89.3.1`` -> ``10.89.3.1``: a dual-stack socket (Node listens on
    ``::``) talks IPv4 through v4-mapped addresses (RFC 4291 §2.5.5.2)."""
    if addr.lower().startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr


def _split_hostport(text: str) -> tuple[str, int]:
    # %pISpc: "10.89.3.1:40000" or "[fd00::1]:40000"
    host, _, port = text.rpartition(":")
    return (plain_address(host.strip("[]")), int(port) if port.isdigit() else 0)


def parse_line(line: str) -> TraceEvent | None:
    match = _LINE.match(line)
    if match is None:
        return None
    body = match["body"]
    event = match["event"]
    if event == "tracing_mark_write":
        return TraceEvent(float(match["ts"]), event, {}, body.strip())
    return TraceEvent(float(match["ts"]), event, dict(_FIELD.findall(body)))


def port_filter(ports: tuple[int, ...]) -> str:
    """``sport == 8080 || dport == 8080 || ...``: tracefs event filter syntax."""
    return " || ".join(f"sport == {p} || dport == {p}" for p in sorted(set(ports)))


def existing_mount() -> str | None:
    """The host's tracefs mount, if any.  Another lab run's private mount is not
    reused: that run unmounts it when it ends, whoever is still using it."""
    private = str(STATE_ROOT) + "/"
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "tracefs" and not parts[1].startswith(private):
            return parts[1]
    return None


class Tracer:
    """One private tracefs instance; ``events`` grows while the run goes on."""

    def __init__(self, run_id: str, private_mount: Path, ports: tuple[int, ...] = ()) -> None:
        self.run_id = run_id
        self._private_mount = private_mount
        # The kernel-side filter keeps the ring buffer to the run's well-known
        # ports (every lab connection has one end on one); the exact choice,
        # by address, is made when events are attributed.
        self._ports = ports
        self.mounted_here = False
        self.root: Path | None = None
        self.instance: Path | None = None
        self.events: list[TraceEvent] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pipe_fd = -1
        self._marker_fd = -1
        self.on_event: Callable[[TraceEvent], None] | None = None

    def open(self, record: Callable[[str, str], None]) -> None:
        """Mount if needed, create the instance, enable events.  ``record(kind, path)``
        is told about the mount and the instance before they exist (for cleanup)."""
        root = existing_mount()
        if root is None:
            self._private_mount.mkdir(parents=True, exist_ok=True)
            record("mount", str(self._private_mount))
            # Before the mount, as self.instance before its mkdir: a signal that
            # lands once mount(8) has mounted but before this line would leave
            # close() believing nothing was mounted (a test saw the tracefs
            # mount left behind).  unmount() of a path not mounted only
            # removes the empty directory.
            self.mounted_here = True
            proc = subprocess.run(
                ["mount", "-t", "tracefs", "nodev", str(self._private_mount)],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                raise LabError(f"mount tracefs: {proc.stderr.strip()}")
            root = str(self._private_mount)
        self.root = Path(root)
        instance = self.root / "instances" / f"tcplab-{self.run_id}"
        record("instance", str(instance))
        self.instance = instance  # before mkdir: close() removes it if it exists
        instance.mkdir()
        (instance / "trace_clock").write_text("mono")
        (instance / "buffer_size_kb").write_text("1024")
        for name in EVENTS:
            event_dir = instance / "events" / name
            if not event_dir.is_dir():
                continue
            if self._ports and name in ("sock/inet_sock_set_state", "tcp/tcp_retransmit_skb"):
                (event_dir / "filter").write_text(port_filter(self._ports))
            (event_dir / "enable").write_text("1")
        self._pipe_fd = os.open(instance / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        self._marker_fd = os.open(instance / "trace_marker", os.O_WRONLY)
        (instance / "tracing_on").write_text("1")
        self._thread = threading.Thread(target=self._loop, name="tcplab-trace", daemon=True)
        self._thread.start()

    def set_ports(self, ports: tuple[int, ...]) -> None:
        """Narrow the kernel-side filter once the run's ports are known (an external
        server's port is learnt when it listens)."""
        self._ports = ports
        if self.instance is None or not ports:
            return
        for name in ("sock/inet_sock_set_state", "tcp/tcp_retransmit_skb"):
            event_dir = self.instance / "events" / name
            if event_dir.is_dir():
                (event_dir / "filter").write_text(port_filter(ports))

    def mark(self, text: str) -> None:
        if self._marker_fd >= 0:
            with suppress(OSError):  # a marker is a convenience, never a failure
                os.write(self._marker_fd, text.encode()[:1000])

    def _loop(self) -> None:
        buffer = b""
        while True:
            stopping = self._stop.is_set()
            ready, _, _ = select.select([self._pipe_fd], [], [], 0.05)
            chunk = b""
            if ready:
                try:
                    chunk = os.read(self._pipe_fd, 65536)
                except BlockingIOError:
                    chunk = b""
            if chunk:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    event = parse_line(raw.decode(errors="replace"))
                    if event is None:
                        continue
                    with self.lock:
                        self.events.append(event)
                    if self.on_event is not None:
                        self.on_event(event)
            elif stopping:
                return

    def close(self) -> None:
        """Drain, disable, remove the instance, unmount what we mounted.  Idempotent."""
        if self._thread is not None:
            time.sleep(0.02)  # let the last softirq events reach the buffer
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._pipe_fd, self._marker_fd):
            if fd >= 0:
                os.close(fd)
        self._pipe_fd = self._marker_fd = -1
        if self.instance is not None:
            remove_instance(self.instance)
            self.instance = None
        if self.mounted_here:
            unmount(self._private_mount)
            self.mounted_here = False


def remove_instance(instance: Path) -> None:
    if not instance.is_dir():
        return
    try:
        (instance / "tracing_on").write_text("0")
        for name in EVENTS:
            enable = instance / "events" / name / "enable"
            if enable.exists():
                enable.write_text("0")
    except OSError:
        pass
    for _ in range(50):
        try:
            instance.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)  # EBUSY while a reader still holds trace_pipe
    raise LabError(f"could not remove tracefs instance {instance}")


def unmount(path: Path) -> None:
    done = subprocess.run(["umount", str(path)], capture_output=True, check=False)
    if done.returncode != 0 and str(path) in Path("/proc/mounts").read_text():
        # Still busy (a reader not yet gone): detach it now, the kernel frees it later.
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
    with suppress(OSError):
        path.rmdir()
