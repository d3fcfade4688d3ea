"""``Lab``: play a scenario on two real Linux endpoints and return one timeline.

Theory of operation (one run)::

    namespaces + TUN (host.py) -> sysctls -> tracefs instance (tracer.py)
    -> snapshot thread (sock_diag in both namespaces) -> wire thread (wire.py)
    -> actors (actor.py, one process per host) -> steps, one by one
    -> settle (the wire quiet) -> stop everything -> timeline (timeline_build.py)

Every resource is named after the run (``tcplab-<runid>``) and written to
``/run/tcplab/<runid>/state.json`` before it is created; ``_Run.teardown``
removes it on success, failure, exception, Ctrl-C and SIGTERM (the
handler raises into the main thread, see tcplab.signals).  What a SIGKILLed
run left is reaped by the next run (``Lab.run`` first calls ``reap_dead``,
which only touches runs whose liveness lock is free) or by ``tcplab cleanup``.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tcplab import signals
from tcplab.errors import InputError
from tcplab.lab import host
from tcplab.lab.cleanup import reap_dead, remove_own_tracefs
from tcplab.lab.faults import FaultProgram
from tcplab.lab.host import LabError, RunState
from tcplab.lab.timeline_build import (
    Observation,
    decode_packets,
    kernel_events,
    snapshot_changes,
    state_event_times,
)
from tcplab.lab.tracer import TraceEvent, Tracer, plain_address
from tcplab.lab.wire import LoopbackCapture, TunWire, WireRecord
from tcplab.scenario import WIRE, FactResult, Scenario, Step, check
from tcplab.states import State
from tcplab.timeline import (
    ApiCall,
    EndpointInfo,
    Note,
    Snapshot,
    Source,
    StateChange,
    Timeline,
)

STEP_TIMEOUT = 15.0
SETTLE_QUIET = 0.25  # the wire must be quiet this long before a run ends
SETTLE_MAX = 3.0


@dataclass
class RunResult:
    timeline: Timeline
    facts: list[FactResult]
    pcapng_path: Path | None = None
    json_path: Path | None = None
    extra_paths: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(f.held for f in self.facts)


@dataclass
class _Pending:
    step: Step
    sent: float
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None


class _ActorProc:
    """The lab's end of one actor's pipe."""

    def __init__(self, name: str, proc: subprocess.Popen[str]) -> None:
        self.name = name
        self.proc = proc
        self.pending: dict[int, _Pending] = {}
        self.background: list[_Pending] = []
        self.sockets: dict[str, list[Any]] = {}
        self.dead = threading.Event()
        self.lock = threading.Lock()
        self._ready: queue.Queue[int] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"tcplab-{name}", daemon=True)
        self._reader.start()

    def wait_ready(self, timeout: float) -> int:
        try:
            # The reader thread reports EOF too (dead), so a crashed actor fails fast.
            deadline = time.monotonic() + timeout
            while True:
                try:
                    return self._ready.get(timeout=0.05)
                except queue.Empty:
                    if self.dead.is_set() or time.monotonic() > deadline:
                        raise
        except queue.Empty:
            exited = self.proc.poll() is not None and self.proc.stderr is not None
            err = self.proc.stderr.read() if exited and self.proc.stderr else ""
            raise LabError(f"actor {self.name} did not start: {err.strip()[-200:]}") from None

    def _read(self) -> None:
        stdout = self.proc.stdout
        if stdout is None:
            return
        for line in stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "ready" in msg:
                self._ready.put(int(msg["ready"]))
                continue
            with self.lock:
                item = self.pending.pop(int(msg["id"]), None)
                # Merged, not replaced: a closed socket's four-tuple stays known for
                # wait(), and a socket that lost its peer (getpeername: ENOTCONN once
                # the kernel handed it to TIME-WAIT) keeps the tuple it had.
                for key, tup in (msg.get("sockets") or {}).items():
                    if tup[3] or key not in self.sockets:
                        self.sockets[key] = tup
            if item is not None:
                item.reply = msg
                item.done.set()
        self.dead.set()
        with self.lock:
            for item in self.pending.values():
                item.done.set()
            self.pending.clear()

    def send(self, ident: int, step: Step, item: _Pending) -> None:
        with self.lock:
            self.pending[ident] = item
        line = json.dumps({"id": ident, "call": step.call, "args": step.args, "sock": step.sock})
        if self.proc.stdin is None:
            raise LabError(f"actor {self.name} has no pipe")
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            item.done.set()

    def stop(self) -> None:
        host.stop_child(self.proc, grace=1)


class _Snapshots:
    """sock_diag dumps of both hosts, on a thread, whenever asked and every 20 ms."""

    def __init__(self, namespaces: dict[str, str], hosts: dict[str, str]) -> None:
        from tcplab.sockets.diag import SockDiag

        self._hosts = hosts  # address -> endpoint (loopback: two hosts, one table)

        self._diag = {h: SockDiag(path) for h, path in namespaces.items()}
        self.observations: list[Observation] = []
        self.events: list[Snapshot] = []  # timeline Snapshots: every row after a step, changes
        self.current: dict[str, dict[tuple[str, int, str, int], Any]] = {h: {} for h in namespaces}
        self._last: dict[tuple[str, tuple[str, int, str, int]], tuple[Any, ...]] = {}
        self.lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.count = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="tcplab-diag", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.02)
            self._wake.clear()
            try:
                self.take()
            except Exception as exc:  # the namespace went away under us: stop, say why
                self.error = exc
                return

    def take(self, all_rows: bool = False) -> None:
        """Dump both hosts; keep changed rows (and every row when ``all_rows``)."""
        with self.lock:
            self.count += 1
            for h, diag in self._diag.items():
                seen: dict[tuple[str, int, str, int], Any] = {}
                rows = diag.dump_tcp()
                # Stamped when the dump is complete: what it shows was true at
                # some moment before this, never after.
                now = time.monotonic()
                for info in rows:
                    key = (plain_address(info.src), info.sport, plain_address(info.dst),
                           info.dport)  # fmt: skip
                    seen[key] = info
                    owner = self._hosts.get(key[0], h)
                    # The cookie too: a SYN may reopen a four-tuple in TIME-WAIT, and
                    # the new socket is another row although its state may match.
                    mark = (info.state, info.timer, info.rqueue, info.wqueue, info.shutdown,
                            info.cookie)
                    changed = self._last.get((h, key)) != mark
                    if changed:
                        self._last[(h, key)] = mark
                        self.observations.append(
                            Observation(now, owner, key, info.state, info.timer,
                                        info.timer_expires_ms, info.cookie, info.inode)
                        )  # fmt: skip
                    if changed or all_rows:
                        self.events.append(_snapshot_event(now, owner, info))
                for key in list(self.current[h]):
                    if key not in seen:
                        self._last.pop((h, key), None)
                        owner = self._hosts.get(key[0], h)
                        self.observations.append(Observation(now, owner, key, None))
                self.current[h] = seen

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        for diag in self._diag.values():
            diag.close()


def scenario_ports(scenario: Scenario) -> tuple[int, ...]:
    """The well-known ports of a run: the server port and any port a step names."""
    ports = {scenario.server_port}
    for step in scenario.steps:
        port = step.args.get("port")
        if isinstance(port, int) and port > 0:
            ports.add(port)
    return tuple(sorted(p for p in ports if p > 0))  # none known yet: no filter


def _snapshot_event(now: float, endpoint: str, info: Any) -> Snapshot:
    return Snapshot(
        time=now,
        endpoint=endpoint,
        state=info.state,
        local=info.local,
        peer=info.peer,
        rqueue=info.rqueue,
        wqueue=info.wqueue,
        timer="" if info.timer == "off" else info.timer,
        timer_ms=info.timer_expires_ms,
        retrans=info.retrans,
        inode=info.inode,
        shutdown=info.shutdown or 0,
    )


@contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise into the main thread like Ctrl-C does, so ``finally``
    runs.  The ``tcplab`` executable installed the handlers at start-up; a program
    using ``Lab`` as a library gets them for the length of the run."""
    if threading.current_thread() is not threading.main_thread() or signals.installed():
        yield
        return
    old = {sig: signal.signal(sig, signals.handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


# Runs not yet torn down.  A run on a worker thread is not reached by the
# signal handlers; if the interpreter exits under it, atexit tears it down.
_ACTIVE: set[_Run] = set()


@atexit.register
def _teardown_active() -> None:
    for run in list(_ACTIVE):
        run.teardown()


class _Run:
    """One run's resources; ``teardown`` is idempotent and never raises."""

    def __init__(self, scenario: Scenario, loopback: bool, tracing: bool) -> None:
        self.scenario = scenario
        self.loopback = loopback
        self.tracing = tracing
        self.run_id = host.new_run_id()
        self.state = RunState(self.run_id, lab_start=host.proc_starttime(os.getpid()))
        self.ns: dict[str, str] = {}  # host -> /run/netns path
        self.addr: dict[str, str] = {}
        self.addr6: dict[str, str] = {}
        # IPv6 addresses too (fd00:89:X::1/2) when a step asks for an inet6 socket.
        self.ipv6 = any(s.args.get("family") == "inet6" for s in scenario.steps)
        self.tun_fds: list[int] = []
        self.wire: TunWire | LoopbackCapture | None = None
        self.tracer: Tracer | None = None
        self.snapshots: _Snapshots | None = None
        self.actors: dict[str, _ActorProc] = {}
        self.calls: list[ApiCall] = []
        self.notes: list[Note] = []
        self.snapshot_events: list[Snapshot] = []
        self.snapshot_count = 0
        # External programs: lab-external addresses the server is reached at (the
        # seed's 127.0.0.1), each -> the server port it is valid for (lab.external).
        self.aliases: dict[str, int] = {}
        self.hosts: dict[str, str] = {}  # what _Snapshots attributes by; aliases join it
        self.senders: dict[tuple[str, int], str] = {}  # the loopback capture's, likewise
        # Facts the run itself establishes (an external program's exit status).
        self.facts: list[FactResult] = []
        self._ident = 0
        self.start_ns = time.monotonic_ns()
        self.realtime_offset = time.time() - time.monotonic()
        self._lock_fd = -1  # held while the run lives (RunState.hold)

    # -- building ---------------------------------------------------------

    def build(self) -> None:
        # Choosing the subnet and recording it is one step under a lock: two runs
        # starting together must not share addresses (events are told apart by them).
        with host.subnet_lock():
            names = self._addresses(host.pick_subnet())
            self._lock_fd = self.state.hold()
            self.state.save()
        self._create(names)

    def _addresses(self, x: int) -> dict[str, str]:
        """This run's addresses in subnet ``x``; returns the namespace names."""
        if self.loopback:
            self.addr = {"client": f"127.89.{x}.1", "server": f"127.89.{x}.2"}
            names = {"client": f"tcplab-{self.run_id}-lo"}
        else:
            self.addr = {"client": f"10.89.{x}.1", "server": f"10.89.{x}.2"}
            names = {"client": f"tcplab-{self.run_id}-c", "server": f"tcplab-{self.run_id}-s"}
        if self.ipv6:
            # RFC 4193 unique local addresses, one /64 per run like the IPv4 /24.
            self.addr6 = {h: str(ipaddress.IPv6Address(f"fd00:89:{x:x}::{i}"))
                          for i, h in ((1, "client"), (2, "server"))}  # fmt: skip
        self.state.addresses = list(self.addr.values()) + list(self.addr6.values())
        self.state.namespaces = list(names.values())
        return names

    def _create(self, names: dict[str, str]) -> None:
        for h, name in names.items():
            host.ip("netns", "add", name)
            self.ns[h] = str(host.NETNS_DIR / name)
            host.ip("-n", name, "link", "set", "lo", "up")
            if self.ipv6:
                # IPv6 without autoconfiguration noise: no router solicitations,
                # no link-local address, no duplicate address detection delay.
                for key, value in (("accept_ra", "0"), ("router_solicitations", "0"),
                                   ("addr_gen_mode", "1"), ("dad_transmits", "0")):  # fmt: skip
                    host.write_sysctl(self.ns[h], f"net.ipv6.conf.default.{key}", value)
            else:
                # No IPv6 at all on an IPv4 run's links: nothing but the experiment.
                host.write_sysctl(self.ns[h], "net.ipv6.conf.default.disable_ipv6", "1")
        if self.loopback:
            self.ns["server"] = self.ns["client"]
            for h in self.addr6:
                host.ip("-n", names["client"], "-6", "addr", "add", self.addr6[h] + "/128",
                        "dev", "lo", "nodad")  # fmt: skip
        else:
            for h, peer in (("client", "server"), ("server", "client")):
                ifname = f"tl{self.run_id}{h[0]}"
                self.tun_fds.append(host.open_tun(self.ns[h], ifname))
                name = names[h]
                host.ip("-n", name, "addr", "add", self.addr[h], "peer", self.addr[peer],
                        "dev", ifname)  # fmt: skip
                if self.ipv6:
                    # The /64 is on-link through the TUN (NOARP: no neighbour discovery).
                    host.ip("-n", name, "-6", "addr", "add", f"{self.addr6[h]}/64",
                            "dev", ifname, "nodad")  # fmt: skip
                host.ip("-n", name, "link", "set", ifname, "mtu", "1500", "up")
        for actor in ("client", "server"):
            for key, value in self.scenario.sysctl.get(actor, {}).items():
                host.write_sysctl(self.ns[actor], key, value)

    def hosts_by_address(self) -> dict[str, str]:
        """Every lab address -> its endpoint: how kernel events and sockets are attributed."""
        hosts = {a: h for table in (self.addr, self.addr6) for h, a in table.items()}
        return hosts | dict.fromkeys(self.aliases, "server")

    def add_alias(self, address: str, port: int) -> None:
        """``address`` (e.g. 127.0.0.1) is the server's from now on (lab.external)."""
        self.aliases[address] = port
        self.hosts[address] = "server"
        self.senders[(address, port)] = "server"

    def start_observers(self) -> None:
        # In loopback mode both actors share one namespace: one table, named "client".
        distinct = {"client": self.ns["client"]} if self.loopback else dict(self.ns)
        self.hosts.update(self.hosts_by_address())
        self.snapshots = _Snapshots(distinct, self.hosts)
        if self.tracing:
            tracer = Tracer(self.run_id, self.state.dir / "tracefs", scenario_ports(self.scenario))
            self.tracer = tracer  # before open(): a signal mid-open still tears it down
            try:
                tracer.open(self.state.record_tracefs)
            except (OSError, LabError) as exc:
                self.tracer = None
                tracer.close()
                self.tracing = False
                self.notes.append(Note(
                    time.monotonic(), f"no tracefs ({exc}): kernel states from snapshots only"
                ))  # fmt: skip
            else:
                snaps = self.snapshots

                def poke(_event: TraceEvent) -> None:
                    snaps.poke()

                tracer.on_event = poke
        else:
            self.notes.append(
                Note(time.monotonic(), "tracing off: kernel states from sock_diag snapshots only")
            )
        if self.loopback:
            self.senders.update({(self.addr["client"], 0): "client",
                                 (self.addr["server"], 0): "server"})
            self.wire = LoopbackCapture(self.ns["client"], self.start_ns, self.senders)
        else:
            program: FaultProgram[tuple[str, bytes]] = FaultProgram(self.scenario.faults)
            self.wire = TunWire(self.tun_fds[0], self.tun_fds[1], program, self.start_ns)
        self.wire.start()

    def spawn_actors(self) -> None:
        """Start both actor processes; they come up while the lab sets up tracing.

        The actor is run as a plain script with ``-I -S`` (stdlib only: no site
        packages to scan), which halves Python's start-up on a busy machine.
        """
        from tcplab.lab import actor as actor_module

        for name in ("server", "client"):
            peer = "client" if name == "server" else "server"
            cmd = [
                sys.executable, "-I", "-S", actor_module.__file__, "--netns", self.ns[name],
                "--name", name, "--addr", self.addr[name], "--peer", self.addr[peer],
                "--port", str(self.scenario.server_port),
            ]  # fmt: skip
            if self.ipv6:
                cmd += ["--addr6", self.addr6[name], "--peer6", self.addr6[peer]]
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, bufsize=1,
            )  # fmt: skip
            self.actors[name] = _ActorProc(name, proc)
            self.state.pids.append((proc.pid, host.proc_starttime(proc.pid)))
        self.state.save()

    def start_actors(self) -> None:
        for actor in self.actors.values():
            actor.wait_ready(10)

    # -- steps ------------------------------------------------------------

    def play(self) -> None:
        for step in self.scenario.steps:
            if self.tracer is not None:
                self.tracer.mark(f"{step.actor}: {step.describe()}")
            if step.actor == WIRE:
                self._wire_step(step)
            elif step.call == "sleep":
                started = time.monotonic()
                time.sleep(float(step.args["seconds"]))
                self._record(step, started, time.monotonic(), str(step.args["seconds"]), None)
            elif step.call == "wait":
                self._wait(step)
            else:
                self._call(step)
            if self.snapshots is not None:
                # A sock_diag dump of both hosts after every step (the Snapshot events).
                self.snapshots.take(all_rows=True)

    def _wire_step(self, step: Step) -> None:
        """blackhole/heal a host, or release held packets: the wire as a third actor."""
        started = time.monotonic()
        wire = self.wire
        if not isinstance(wire, TunWire):
            raise InputError(f"{self.scenario.id}: wire steps need the lab's wire (not --loopback)")
        if step.call == "release":
            wire.command(lambda program, now: program.release_all(now))
        else:
            target = str(step.args["host"])
            if target not in ("client", "server"):
                raise InputError(f"{self.scenario.id}: wire {step.call}: host is client or server")
            on = step.call == "blackhole"

            def switch(program: FaultProgram[tuple[str, bytes]], _now: float) -> list[Any]:
                program.set_blackhole(target, on)
                return []

            wire.command(switch)
        self._record(step, started, time.monotonic(), "0", None)

    def _call(self, step: Step) -> None:
        actor = self.actors[step.actor]
        if not step.background:
            self._join_background(actor)
        self._ident += 1
        item = _Pending(step, time.monotonic())
        actor.send(self._ident, step, item)
        if step.background:
            actor.background.append(item)
            return
        self._finish(actor, item)

    def _join_background(self, actor: _ActorProc) -> None:
        for item in actor.background:
            self._finish(actor, item)
        actor.background.clear()

    def _finish(self, actor: _ActorProc, item: _Pending) -> None:
        if not item.done.wait(STEP_TIMEOUT):
            raise LabError(
                f"{item.step.actor}: {item.step.describe()} did not return in {STEP_TIMEOUT:.0f} s"
            )
        reply = item.reply
        if reply is None:
            # The actor died: SIGKILL (the kill step) or a crash; the kernel closes its sockets.
            now = time.monotonic()
            result = {"kill": "killed", "exit": "exited"}.get(item.step.call, "actor died")
            self._record(item.step, item.sent, now, result, None)
            return
        if reply.get("problem"):
            raise InputError(f"{self.scenario.source or self.scenario.id}: {item.step.actor} "
                             f"{item.step.describe()}: {reply['problem']}")  # fmt: skip
        self._record(item.step, reply["started"] / 1e9, reply["ended"] / 1e9,
                     reply.get("result"), reply.get("errno"))  # fmt: skip
        if item.step.expect_errno and reply.get("errno") != item.step.expect_errno:
            got = reply.get("errno") or "success"
            text = f"expected {item.step.expect_errno}, got {got}"
            self.notes.append(Note(reply["ended"] / 1e9, text, item.step.actor))

    def _record(self, step: Step, started: float, ended: float, result: str | None,
                errno: str | None) -> None:  # fmt: skip
        args = tuple(f"{k}={v!r}" for k, v in step.args.items())
        if step.sock:
            args = (f"sock={step.sock}", *args)
        self.calls.append(ApiCall(ended, step.actor, step.call, args, result, errno, started))

    def _actor_tuples(self, actor: str, name: str | None) -> list[tuple[str, int, str, int]]:
        socks = self.actors[actor].sockets
        keys = [name] if name else list(socks)
        return [(str(s[0]), int(s[1]), str(s[2]), int(s[3]))
                for s in (socks[k] for k in keys if k in socks)]  # fmt: skip

    def _wait(self, step: Step) -> None:
        """Wait (via sock_diag) until the actor's socket reaches a state or is gone."""
        started = time.monotonic()
        timeout = float(step.args.get("timeout", 10))
        want = State.parse(str(step.args["state"])) if "state" in step.args else None
        gone = bool(step.args.get("gone", False))
        snaps = self.snapshots
        result = "timeout"
        tuples = self._actor_tuples(step.actor, step.sock)
        if snaps is None or not tuples:
            raise InputError(f"{self.scenario.id}: {step.actor} wait(): no socket to watch yet")
        table_host = "client" if self.loopback else step.actor  # loopback: one table
        while time.monotonic() - started < timeout:
            snaps.take()
            table = snaps.current[table_host]
            states = {t: table[t].state for t in tuples if t in table}
            if want is not None and any(s is want for s in states.values()):
                result = str(want)
                break
            if gone and not states:
                result = "gone"
                break
            time.sleep(0.01)
        errno = "ETIMEDOUT" if result == "timeout" else None
        self._record(step, started, time.monotonic(), result, errno)

    def settle(self) -> None:
        """Let the last segments (delayed ACKs, a retransmitted FIN) reach the wire."""
        wire = self.wire
        if wire is None:
            return
        begin = time.monotonic()
        while time.monotonic() - begin < SETTLE_MAX:
            last = wire.records[-1].time_ns / 1e9 if wire.records else 0.0
            if time.monotonic() - last >= SETTLE_QUIET:
                break
            time.sleep(0.05)
        for actor in self.actors.values():
            for item in actor.background:
                if item.done.wait(0.5):
                    self._finish(actor, item)
                else:
                    # A call that never returned is part of the story (accept() on a
                    # listener nobody connects to): recorded, without a result.
                    now = time.monotonic()
                    self._record(item.step, item.sent, now, "still blocked at the end", None)
            actor.background.clear()
        if self.snapshots is not None:
            self.snapshots.take()

    # -- ending -----------------------------------------------------------

    def stop_observers(self) -> tuple[list[WireRecord], list[TraceEvent], list[Observation]]:
        records: list[WireRecord] = []
        events: list[TraceEvent] = []
        observations: list[Observation] = []
        if self.tracer is not None:
            self.tracer.close()
            events = list(self.tracer.events)
        if self.snapshots is not None:
            self.snapshots.take()
            self.snapshots.close()
            observations = list(self.snapshots.observations)
            if self.snapshots.error is not None:
                self.notes.append(Note(time.monotonic(), f"sock_diag: {self.snapshots.error}"))
            self.snapshot_events = list(self.snapshots.events)
            self.snapshot_count = self.snapshots.count
            self.snapshots = None
        if self.wire is not None:
            self.wire.stop()
            records = list(self.wire.records)
            if self.wire.error is not None:
                self.notes.append(Note(time.monotonic(), f"wire error: {self.wire.error}"))
            self.wire = None
        return records, events, observations

    def teardown(self) -> None:
        with suppress(Exception):
            if self.tracer is not None:
                self.tracer.close()
        with suppress(Exception):
            if self.snapshots is not None:
                self.snapshots.close()
        with suppress(Exception):
            if self.wire is not None:
                self.wire.stop()
        for actor in self.actors.values():
            with suppress(Exception):
                actor.stop()
        for fd in self.tun_fds:
            with suppress(OSError):
                os.close(fd)
        self.tun_fds.clear()
        for name in self.state.namespaces:
            with suppress(Exception):
                host.kill_namespace_processes(name)
            with suppress(Exception):
                if (host.NETNS_DIR / name).exists():
                    host.ip("netns", "del", name)
        # Whatever tracefs state the record names, even if the tracer never got
        # to know it (a signal between mkdir and the assignment).
        with suppress(Exception):
            remove_own_tracefs(self.state)
        with suppress(Exception):
            shutil.rmtree(self.state.dir)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # the run is over: cleanup may now treat it as dead
            self._lock_fd = -1


def _to_stderr(text: str) -> None:
    print(f"tcplab: {text}", file=sys.stderr, flush=True)


def _inferred(timeline: Timeline) -> list[StateChange]:
    """The analyzer's states from the packets alone (Source.INFERRED), when it exists."""
    try:
        from tcplab.model.timeline_infer import infer_states
    except ImportError:
        return []
    return infer_states(timeline)


def without_inferred(timeline: Timeline) -> Timeline:
    return timeline.with_events(
        [e for e in timeline.events
         if not (isinstance(e, StateChange) and e.source is Source.INFERRED)]
    )  # fmt: skip


class Lab:
    """``with Lab() as lab: result = lab.run(scenario.load("handshake-close"))``.

    ``outdir``: where ``<id>.pcapng``/``.json``/``.svg`` go (None: no files).
    ``loopback``: both actors on ``lo`` in one namespace (no faults).
    ``tracing``: use tracefs; False plays on sock_diag snapshots alone.
    Every ``run`` cleans up after itself; leaving the ``with`` block also
    tears down a run still going on another thread.
    """

    def __init__(self, outdir: Path | None = None, *, loopback: bool = False,
                 tracing: bool = True,
                 notify: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.outdir = outdir
        # One line for the user (default: stderr), e.g. what reaping removed.
        self.notify = notify or _to_stderr
        self.loopback = loopback
        self.tracing = tracing
        self._runs: set[_Run] = set()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        for run in list(self._runs & _ACTIVE):
            run.teardown()
            _ACTIVE.discard(run)

    def run(self, scenario: Scenario, play: Callable[[_Run], None] | None = None) -> RunResult:
        """Play ``scenario`` (or hand the built topology to ``play``: external actors)."""
        host.require_root()
        if self.loopback and scenario.faults:
            raise InputError(f"{scenario.id}: faults need the lab's wire; --loopback has none")
        FaultProgram(scenario.faults)  # validate before building anything
        if self.outdir is not None:
            from tcplab.lab.output import output_path

            for suffix in (".json", ".pcapng", ".svg", ".dot"):
                output_path(self.outdir, scenario.id, suffix)  # refused before, not after
        if play is None:
            from tcplab.lab.external import player, scenario_commands

            programs = scenario_commands(scenario)
            if programs is not None:
                play = player(*programs)
        began = time.monotonic()
        # Runs killed earlier (their liveness lock is free) go first, so nothing of
        # theirs outlives them unnoticed; a live run's lock keeps it out of reach.
        reaped = reap_dead()
        if not reaped.empty:
            self.notify(reaped.summary())
        run = _Run(scenario, self.loopback, self.tracing)
        _ACTIVE.add(run)
        self._runs.add(run)
        with _signals_raise():
            try:
                run.build()
                if play is None:
                    run.spawn_actors()
                run.start_observers()
                if play is None:
                    run.start_actors()
                    run.play()
                else:
                    play(run)
                run.settle()
                records, events, observations = run.stop_observers()
                timeline = self._timeline(run, records, events, observations)
            finally:
                # A second Ctrl-C must not cut the clean-up short: hold signals
                # until it is done (they are delivered, and raise, right after).
                main = threading.current_thread() is threading.main_thread()
                if main:
                    signal.pthread_sigmask(signal.SIG_BLOCK, signals.HANDLED)
                try:
                    run.teardown()
                    _ACTIVE.discard(run)
                    self._runs.discard(run)
                    if signals.received:
                        signals.after = "the run was cleaned up"
                finally:
                    if main:
                        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.HANDLED)
        # The facts are about what Linux did: the analyzer's inferences are shown
        # beside the kernel's states, never counted as them.
        facts = check(scenario, without_inferred(timeline)) + run.facts
        result = RunResult(timeline, facts, seconds=time.monotonic() - began)
        timeline.meta["seconds"] = round(result.seconds, 3)
        if self.outdir is not None:
            from tcplab.lab.output import write_outputs

            write_outputs(result, self.outdir, scenario.id)
        return result

    def _timeline(self, run: _Run, records: list[WireRecord], events: list[TraceEvent],
                  observations: list[Observation]) -> Timeline:  # fmt: skip
        scenario = run.scenario
        client_port = 0
        addresses = dict(run.addr)
        for alias in run.aliases:  # the server is where the client reached it
            addresses["server"] = alias
        if "client" in run.actors:
            for sock in run.actors["client"].sockets.values():
                # The client's connection says which family the run used.
                client_port = int(sock[1])
                addresses["client"] = str(sock[0])
                if sock[2]:
                    addresses["server"] = str(sock[2])
        timeline = Timeline(
            title=scenario.title,
            producer="lab",
            endpoints=[
                EndpointInfo("client", addresses["client"], client_port, "client"),
                EndpointInfo("server", addresses["server"], scenario.server_port, "server"),
            ],
            meta={
                "scenario": scenario.id,
                "run_id": run.run_id,
                "clock": "CLOCK_MONOTONIC",
                # CLOCK_REALTIME - CLOCK_MONOTONIC at the start: the pcapng's clock.
                "realtime_offset": run.realtime_offset,
                "mode": "loopback" if run.loopback else "tun",
                "tracing": run.tracer is not None,
                "snapshots": run.snapshot_count,
                "kernel_events": len(events),
                "sysctl": scenario.sysctl,
            },
        )
        hosts = run.hosts_by_address()
        obs = [o for o in observations if o.tuple[0] in hosts]
        timeline.extend(run.calls)
        packets = decode_packets(records)
        timeline.extend(packets)
        if not client_port:  # external programs: the client's port is on the wire
            first = next((p for p in packets if p.sender == "client"), None)
            if first is not None:
                timeline.endpoints[0] = replace(timeline.endpoints[0], port=first.sport)
        timeline.extend(kernel_events(events, hosts, obs, run.aliases))
        timeline.extend(snapshot_changes(obs, traced=run.tracer is not None,
                                         kernel_times=state_event_times(events)))
        if run.snapshot_events:
            timeline.extend(e for e in run.snapshot_events if e.endpoint in ("client", "server"))
        timeline.extend(run.notes)
        timeline.sort()
        timeline.extend(_inferred(timeline))
        timeline.sort()
        return timeline
