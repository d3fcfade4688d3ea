"""The live kernel as the local endpoint of a drill script.

Theory of operation.  One fresh network namespace per script, named
``tcplab-<runid>-d`` and recorded in the run's state file before it exists
(``tcplab cleanup`` reaps it if the run is killed; the run's liveness lock
keeps cleanup away while it lives).  Inside it, a TUN device named
``tun0`` (the name the corpus's commands use: ``tc qdisc add dev tun0``)
with packetdrill's addresses: local 192.168.0.1/16 and a route to the
remote 192.0.2.0/24, or for IPv6 fd3d:a0b:17d6::1 and a route to
fd3d:fa7b:d17d::/48 with MTU 1520.  The lab process is the remote peer:
it reads every datagram the kernel routes to tun0 (a thread stamps them
with CLOCK_MONOTONIC) and writes the script's ``<`` packets into it.

The socket calls are made by the drill actor (``drill/actor.py``), a
stdlib-only process that entered the namespace, driven over a pipe like
the lab's actors.  Backquoted commands run in the namespace (``ip netns
exec``): ``defaults.sh`` sets that namespace's sysctls, never the host's.
The corpus's helpers are found where packetdrill's layout puts them:
``common/defaults.sh`` in the corpus; ``set_sysctls.py`` (absent from the
corpus) is played by ``helpers/set_sysctls.sh``, which writes only
``/proc/sys/net/`` files.  Kernel state changes come from a private
tracefs instance (``lab.tracer``), filtered to this run's ports.
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from tcplab import signals
from tcplab.drill.engine import CallResult
from tcplab.lab import host
from tcplab.lab.host import LabError, RunState
from tcplab.lab.tracer import TraceEvent, Tracer

HELPERS = Path(__file__).parent / "helpers"

# packetdrill's addresses (run_all.py, the kernel selftests' ksft_runner.sh).
V4 = {"local": "192.168.0.1", "remote": "192.0.2.1", "prefix": 16, "route": "192.0.2.0/24"}
V6 = {
    "local": "fd3d:a0b:17d6::1",
    "remote": "fd3d:fa7b:d17d::1",
    "prefix": 48,
    "route": "fd3d:fa7b:d17d::/48",
}
COMMAND_TIMEOUT = 60.0

_DEFAULTS = re.compile(r"(?:\.\./)+common/defaults\.sh")
_SET_SYSCTLS = re.compile(r"(?:\.\./)+common/set_sysctls\.py")
_RESTORE = re.compile(r"/tmp/sysctl_restore_\$\{?PPID\}?\.sh")


def find_defaults(script_dir: Path) -> Path | None:
    """``common/defaults.sh`` in the script's directory or any parent (the corpus root)."""
    for parent in (script_dir, *script_dir.parents):
        candidate = parent / "common" / "defaults.sh"
        if candidate.is_file():
            return candidate
    return None


def rewrite_command(text: str, script_dir: Path, tmp: Path) -> str:
    """Point the corpus's helper paths at what exists here (see the module doc)."""
    defaults = find_defaults(script_dir)
    if defaults is not None:
        text = _DEFAULTS.sub(f"bash {defaults}", text)
    text = _SET_SYSCTLS.sub(f"sh {HELPERS / 'set_sysctls.sh'}", text)
    return _RESTORE.sub(f"sh {tmp / 'sysctl_restore.sh'}", text)


class _Actor:
    """The lab's end of the drill actor's pipe."""

    def __init__(self, netns: str) -> None:
        from tcplab.drill import actor as actor_module

        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", actor_module.__file__, "--netns", netns],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.tids: dict[int, int] = {}
        self.results: dict[int, dict[str, Any]] = {}
        self.cond = threading.Condition()
        self.ready = threading.Event()
        self.dead = False
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, name="tcplab-drill-actor", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                if "ready" in msg:
                    self.ready.set()
                elif "tid" in msg:
                    self.tids[int(msg["id"])] = int(msg["tid"])
                else:
                    self.results[int(msg["id"])] = msg
                self.cond.notify_all()
        with self.cond:
            self.dead = True
            self.cond.notify_all()
        self.ready.set()

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise LabError("the drill actor is gone") from None

    def stop(self) -> None:
        host.stop_child(self.proc, grace=2)


class LinuxStack:
    """One script's namespace, TUN, actor and tracer (``with LinuxStack(...) as s:``)."""

    def __init__(
        self,
        family: int,
        script_dir: Path,
        ports: tuple[int, ...],
        tracing: bool = True,
        addresses: tuple[str, str] | None = None,
    ) -> None:
        self.family = family
        table = V6 if family == socket.AF_INET6 else V4
        self.local_ip, self.remote_ip = addresses or (str(table["local"]), str(table["remote"]))
        self._table = table
        self.script_dir = script_dir
        self.ports = ports
        self.tracing = tracing
        self.run_id = host.new_run_id()
        self.state = RunState(self.run_id, lab_start=host.proc_starttime(os.getpid()))
        self.ns_name = f"tcplab-{self.run_id}-d"
        self.ns_path = str(host.NETNS_DIR / self.ns_name)
        self._lock_fd = -1
        self._tun = -1
        self._queue: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self.wire: list[tuple[int, str, bytes]] = []  # (mono ns, "in"/"out", datagram)
        self._wire_lock = threading.Lock()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._actor: _Actor | None = None
        self._ident = 0
        self.tracer: Tracer | None = None
        self.trace_events: list[TraceEvent] = []
        self.notes: list[str] = []
        self._tmp: Path | None = None

    # -- building and tearing down ---------------------------------------------------

    def __enter__(self) -> LinuxStack:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        host.require_root()
        self.state.namespaces = [self.ns_name]
        self.state.addresses = [self.local_ip, self.remote_ip]
        self._lock_fd = self.state.hold()
        self.state.save()
        self._tmp = Path(tempfile.mkdtemp(prefix=f"tcplab-drill-{self.run_id}-"))
        (self._tmp / "sysctl_restore.sh").write_text("#!/bin/sh\n")
        host.ip("netns", "add", self.ns_name)
        host.ip("-n", self.ns_name, "link", "set", "lo", "up")
        v6 = self.family == socket.AF_INET6
        if v6:
            for key, value in (
                ("accept_ra", "0"),
                ("router_solicitations", "0"),
                ("dad_transmits", "0"),
            ):
                for scope in ("default", "all"):
                    host.write_sysctl(self.ns_path, f"net.ipv6.conf.{scope}.{key}", value)
        else:
            host.write_sysctl(self.ns_path, "net.ipv6.conf.default.disable_ipv6", "1")
        self._tun = host.open_tun(self.ns_path, "tun0", offload=True)
        prefix = f"{self.local_ip}/{self._table['prefix']}"
        fam = "-6" if v6 else "-4"
        host.ip(
            "-n",
            self.ns_name,
            fam,
            "addr",
            "add",
            prefix,
            "dev",
            "tun0",
            *(["nodad"] if v6 else []),
        )
        host.ip("-n", self.ns_name, "link", "set", "tun0", "mtu", "1520" if v6 else "1500", "up")
        route = (
            str(self._table["route"])
            if self.remote_ip == self._table["remote"]
            else (f"{self.remote_ip}/{128 if v6 else 32}")
        )
        host.ip("-n", self.ns_name, fam, "route", "add", route, "dev", "tun0")
        if self.tracing:
            self._open_tracer()
        self._reader = threading.Thread(target=self._read_tun, name="tcplab-drill-tun", daemon=True)
        self._reader.start()
        self._actor = _Actor(self.ns_path)
        self.state.pids.append((self._actor.pid, host.proc_starttime(self._actor.pid)))
        self.state.save()
        if not self._actor.ready.wait(15) or self._actor.dead:
            err = ""
            if self._actor.proc.poll() is not None and self._actor.proc.stderr is not None:
                err = self._actor.proc.stderr.read().strip()[-200:]
            raise LabError(f"the drill actor did not start: {err}")

    def _open_tracer(self) -> None:
        tracer = Tracer(self.run_id, self.state.dir / "tracefs", self.ports)
        try:
            tracer.open(self.state.record_tracefs)
        except (OSError, LabError) as exc:
            tracer.close()
            self.notes.append(f"no tracefs ({exc}): no kernel states")
            return
        self.tracer = tracer

    def close(self) -> None:
        """Idempotent; never raises; leaves nothing behind.  A second Ctrl-C (or a
        SIGTERM) during the clean-up is held until it is done, as the lab does."""
        held = set(signals.HANDLED)
        main = threading.current_thread() is threading.main_thread()
        if main:
            signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            self._close()
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

    def _close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None
        if self.tracer is not None:
            with suppress(Exception):
                self.tracer.close()
                self.trace_events = list(self.tracer.events)
            self.tracer = None
        if self._actor is not None:
            with suppress(Exception):
                self._actor.stop()
            self._actor = None
        if self._tun >= 0:
            with suppress(OSError):
                os.close(self._tun)
            self._tun = -1
        if (host.NETNS_DIR / self.ns_name).exists():
            with suppress(Exception):
                host.kill_namespace_processes(self.ns_name)
            with suppress(Exception):
                host.ip("netns", "del", self.ns_name)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        with suppress(Exception):
            shutil.rmtree(self.state.dir)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- the wire --------------------------------------------------------------------

    def _read_tun(self) -> None:
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        poller = select.poll()
        poller.register(self._tun, select.POLLIN)
        while not self._stop.is_set():
            for _fd, _ev in poller.poll(50):
                while True:
                    try:
                        data = os.read(self._tun, 65536 + host.VNET_HDR_LEN)
                    except (BlockingIOError, OSError):
                        break
                    data = data[host.VNET_HDR_LEN :]
                    now = time.monotonic_ns()
                    version = data[0] >> 4 if data else 0
                    proto = (
                        data[9]
                        if version == 4 and len(data) > 20
                        else (data[6] if version == 6 and len(data) > 40 else -1)
                    )
                    if proto != 6:
                        continue  # ICMPv6 and the like: not the script's business
                    with self._wire_lock:
                        self.wire.append((now, "out", data))
                    self._queue.put((now // 1000, data))

    def inject(self, raw: bytes) -> None:
        with self._wire_lock:
            self.wire.append((time.monotonic_ns(), "in", raw))
        os.write(self._tun, bytes(host.VNET_HDR_LEN) + raw)

    def sniff(self, until_us: int) -> tuple[int, bytes] | None:
        timeout = (until_us - self.now_us()) / 1e6
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    # -- clock -----------------------------------------------------------------------

    def now_us(self) -> int:
        return time.monotonic_ns() // 1000

    def sleep_until_us(self, t: int) -> None:
        while True:
            left = t - self.now_us()
            if left <= 0:
                return
            time.sleep(left / 1e6 if left < 2000 else (left - 500) / 1e6)

    # -- calls -----------------------------------------------------------------------

    def start_call(self, cmd: dict[str, Any]) -> int:
        assert self._actor is not None
        self._ident += 1
        if self.tracer is not None:
            self.tracer.mark(f"drill: {cmd.get('op')}")
        self._actor.send({"id": self._ident, **cmd})
        return self._ident

    def call_status(self, handle: int) -> str:
        actor = self._actor
        assert actor is not None
        with actor.cond:
            if handle in actor.results or actor.dead:
                return "done"
            tid = actor.tids.get(handle)
        if tid is None:
            return "running"
        try:
            stat = Path(f"/proc/{actor.pid}/task/{tid}/stat").read_text()
        except OSError:
            return "running"
        state = stat.rsplit(")", 1)[1].split()[0]
        return "blocked" if state in ("S", "D") else "running"

    def wait_call(self, handle: int, until_us: int) -> CallResult | None:
        actor = self._actor
        assert actor is not None
        with actor.cond:
            while handle not in actor.results:
                left = (until_us - self.now_us()) / 1e6
                if left <= 0 or actor.dead:
                    return None
                actor.cond.wait(min(left, 0.5))
            msg = actor.results.pop(handle)
        return CallResult(
            int(msg["ret"]),
            int(msg["errno"]),
            dict(msg.get("out") or {}),
            int(msg["started"]) // 1000,
            int(msg["ended"]) // 1000,
            msg.get("problem"),
        )

    def command(self, text: str) -> tuple[int, str]:
        assert self._tmp is not None
        line = rewrite_command(text, self.script_dir, self._tmp)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "PACKETDRILL_PID": str(os.getpid()),
            "TCPLAB_DRILL_TMP": str(self._tmp),
            "NSTAT_HISTORY": str(self._tmp / "nstat.history"),  # not the host's /tmp file
            "HOME": str(self._tmp),
        }
        try:
            proc = subprocess.run(
                ["ip", "netns", "exec", self.ns_name, "bash", "-c", line],
                cwd=self.script_dir,
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {COMMAND_TIMEOUT:.0f} s"
        return proc.returncode, proc.stderr + proc.stdout
