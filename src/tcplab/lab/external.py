"""External programs as actors: ``tcplab run --server CMD --client CMD``.

Each command runs inside its host's namespace (``ip netns exec``) under
``strace -f -ttt``, with ``TCPLAB_SERVER_ADDR``, ``TCPLAB_CLIENT_ADDR`` and
``TCPLAB_SERVER_PORT`` (also ``TCPLAB_PORT``) in its environment.  The
client starts once the server has a listening socket (seen by sock_diag).
Their socket syscalls become ApiCalls: socket-family calls always, and
close/read/write/... only on descriptors that a socket()/accept() returned.
Each line a program prints on stdout becomes a Note on its side of the
timeline, stamped when its write() to stdout returned (from the strace
log; when strace did not show every line, when the lab read it from the
pipe).  The seed's Node example prints "event end", "event close" this way.

A scenario file can name its programs (``[extra.external] server = "node
{dir}/x/server.js"``; ``{dir}`` is the scenario file's directory); its
steps then only document what the programs do.

strace 6.1 prints wall-clock time only (``-ttt``, microseconds): it is
converted to CLOCK_MONOTONIC with an offset sampled from both clocks at the
start of the run (exact to a few microseconds unless the wall clock is
stepped during the run).
"""

from __future__ import annotations

import codecs
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tcplab.errors import InputError
from tcplab.lab.host import LabError
from tcplab.scenario import Expectations, Scenario
from tcplab.states import State
from tcplab.timeline import ApiCall, Note

if TYPE_CHECKING:
    from tcplab.lab.runner import Lab, RunResult, _Run

SOCKET_CALLS = {
    "socket", "bind", "listen", "accept", "accept4", "connect", "shutdown", "getsockopt",
    "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
}  # fmt: skip
FD_CALLS = {"close", "read", "write", "readv", "writev"}
TRACE = "trace=" + ",".join(sorted((SOCKET_CALLS - {"getsockopt"}) | FD_CALLS))

_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<ts>\d+\.\d+)\s+(?P<rest>.*)$")
_CALL = re.compile(r"^(?P<name>\w+)\((?P<args>.*?)(?:\)\s+=\s+(?P<ret>.*)| <unfinished \.\.\.>)$")
_RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<args>.*?)\)\s+=\s+(?P<ret>.*)$")
_RET = re.compile(r"^(?P<value>-?\d+|\?)(?:\s+(?P<errno>E[A-Z0-9]+))?")


@dataclass
class _Open:
    name: str
    args: str
    started: float


@dataclass
class StraceParser:
    """strace -f -ttt lines of one actor -> ApiCalls on the monotonic clock."""

    actor: str
    offset: float  # monotonic = wall - offset
    calls: list[ApiCall] = field(default_factory=list)
    # (time the write() returned, text): what the program printed on stdout, so each
    # line lands on the timeline when it was written, not when the lab read the pipe.
    printed: list[tuple[float, str]] = field(default_factory=list)
    _open: dict[int, _Open] = field(default_factory=dict)
    _sockets: dict[int, set[int]] = field(default_factory=dict)

    def feed(self, line: str) -> None:
        match = _LINE.match(line.strip())
        if match is None:
            return
        pid, when, rest = int(match["pid"]), float(match["ts"]) - self.offset, match["rest"]
        resumed = _RESUMED.match(rest)
        if resumed is not None:
            opened = self._open.pop(pid, None)
            started = opened.started if opened else when
            args = (opened.args if opened else "") + resumed["args"]
            self._finish(pid, resumed["name"], args, resumed["ret"], started, when)
            return
        call = _CALL.match(rest)
        if call is None:
            return
        if call["ret"] is None:
            self._open[pid] = _Open(call["name"], call["args"], when)
            return
        self._finish(pid, call["name"], call["args"], call["ret"], when, when)

    def _finish(
        self, pid: int, name: str, args: str, ret: str, started: float, ended: float
    ) -> None:
        fds = self._sockets.setdefault(pid, set())
        first = args.split(",", 1)[0].strip()
        fd = int(first) if first.isdigit() else -1
        if name in ("write", "writev") and fd == 1 and fd not in fds:
            self.printed.append((ended, "".join(_strings(args))))
            return
        if name in FD_CALLS and fd not in fds:
            return
        if name not in SOCKET_CALLS and name not in FD_CALLS:
            return
        parsed = _RET.match(ret.strip())
        value = parsed["value"] if parsed else ret.strip()
        errno = parsed["errno"] if parsed else None
        if name in ("socket", "accept", "accept4") and errno is None and value.isdigit():
            fds.add(int(value))
        if name == "close" and fd in fds:
            fds.discard(fd)
        if name == "socket" and "AF_INET" not in args:
            return  # AF_UNIX/AF_NETLINK plumbing of the runtime, not the experiment
        text = args if len(args) <= 80 else args[:77] + "..."
        self.calls.append(
            ApiCall(ended, self.actor, name, (text,), None if errno else value, errno, started)
        )


_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _strings(args: str) -> list[str]:
    """The C-escaped string literals of an strace argument list, decoded."""
    out = []
    for literal in _STRING.findall(args):
        raw = codecs.escape_decode(literal.encode("latin-1", "backslashreplace"))[0]
        out.append(bytes(raw).decode("utf-8", "replace"))
    return out


def _command(netns: str, command: str, trace_file: Path, env: dict[str, str]) -> list[str]:
    # setpriv --pdeathsig KILL: strace dies with the lab.  strace does not take
    # its tracees with it, so their pids go to the state file (_record_programs)
    # and the run's teardown, or ``tcplab cleanup``, kills them.
    return [
        "ip", "netns", "exec", Path(netns).name, "env", *[f"{k}={v}" for k, v in env.items()],
        "setpriv", "--pdeathsig", "KILL",
        # -s 4096: whole strings, so what a program prints can be read from its write().
        "strace", "-f", "-qq", "-ttt", "-s", "4096", "-o", str(trace_file), "-e", TRACE,
        "sh", "-c", command,
    ]  # fmt: skip


def run_external(lab: Lab, server_cmd: str, client_cmd: str, port: int,
                 timeout: float = 15.0) -> RunResult:  # fmt: skip
    """Run two programs as the server and the client; see the module doc."""
    scenario = Scenario(
        id="external",
        title=f"server: {server_cmd}   client: {client_cmd}",
        steps=(),
        server_port=port,
        needs=("external",),
        expect=Expectations(),
    )
    return lab.run(scenario, play=player(server_cmd, client_cmd, timeout))


def scenario_commands(scenario: Scenario) -> tuple[str, str] | None:
    """The ``[extra.external]`` programs of a scenario, ``{dir}`` filled in."""
    spec = scenario.extra.get("external")
    if not isinstance(spec, dict):
        return None
    if "server" not in spec or "client" not in spec:
        raise InputError(f"{scenario.source}: extra.external needs 'server' and 'client'")
    where = str(Path(scenario.source).resolve().parent) if scenario.source else "."
    return (str(spec["server"]).replace("{dir}", where),
            str(spec["client"]).replace("{dir}", where))  # fmt: skip


def player(server_cmd: str, client_cmd: str, timeout: float = 15.0) -> Callable[[_Run], None]:
    return lambda run: _play(run, server_cmd, client_cmd, timeout)


def _play(run: _Run, server_cmd: str, client_cmd: str, timeout: float) -> None:
    for tool in ("strace", "ip", "setpriv"):
        if shutil.which(tool) is None:
            raise LabError(f"external actors need {tool} (scripts/setup.sh installs it)")
    offset = time.time() - time.monotonic()
    env = {
        "TCPLAB_SERVER_ADDR": run.addr["server"],
        "TCPLAB_CLIENT_ADDR": run.addr["client"],
        "TCPLAB_PORT": str(run.scenario.server_port),
        "TCPLAB_SERVER_PORT": str(run.scenario.server_port),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    readers: list[threading.Thread] = []
    arrived: dict[str, list[tuple[float, str]]] = {"server": [], "client": []}
    exited: dict[str, float] = {}
    files = {name: run.state.dir / f"strace-{name}.txt" for name in ("server", "client")}
    try:
        procs["server"] = _spawn(run, "server", server_cmd, files["server"], env)
        readers.append(_read_stdout(procs["server"], arrived["server"]))
        _wait_listen(run, 5.0)
        procs["client"] = _spawn(run, "client", client_cmd, files["client"], env)
        readers.append(_read_stdout(procs["client"], arrived["client"]))
        for name, limit in (("client", timeout), ("server", 2.0)):
            deadline = time.monotonic() + limit
            while procs[name].poll() is None and time.monotonic() < deadline:
                _record_programs(run)
                with suppress(subprocess.TimeoutExpired):
                    procs[name].wait(0.1)
            if procs[name].poll() is None:
                text = f"{name} still running after {limit} s: stopped with SIGTERM"
                run.notes.append(Note(time.monotonic(), text, name))
            else:
                exited[name] = time.monotonic()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)  # our own child, by pid
                try:
                    proc.wait(2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(2)
    for reader in readers:
        reader.join(timeout=2)
    for name, path in files.items():
        parser = StraceParser(name, offset)
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                parser.feed(line)
        run.calls.extend(parser.calls)
        run.notes.extend(_printed_notes(name, parser.printed, arrived[name]))
        if name in procs:
            code = procs[name].returncode
            when = exited.get(name, time.monotonic())
            run.notes.append(Note(when, f"{name} exited with status {code}", name))


def _spawn(
    run: _Run, name: str, cmd: str, trace: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        _command(run.ns[name], cmd, trace, env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    from tcplab.lab import host

    run.state.pids.append((proc.pid, host.proc_starttime(proc.pid)))
    run.state.save()
    return proc


def _record_programs(run: _Run) -> None:
    """Every process now inside the run's namespaces goes into the state file (pid
    and start time), so ``tcplab cleanup`` can kill a program whose lab was killed:
    strace does not take its tracees down with it."""
    from tcplab.lab import host

    known = {pid for pid, _ in run.state.pids}
    new = [
        (pid, host.proc_starttime(pid))
        for path in set(run.ns.values())
        for pid in host.namespace_pids(path)
        if pid not in known and pid != os.getpid()
    ]
    if new:
        run.state.pids.extend(p for p in new if p[1])
        run.state.save()


def _read_stdout(proc: subprocess.Popen[bytes], lines: list[tuple[float, str]]) -> threading.Thread:
    """Drain the program's stdout (so it never blocks on a full pipe): (arrival, line)."""

    def read() -> None:
        if proc.stdout is None:
            return
        for raw in proc.stdout:
            text = raw.decode(errors="replace").rstrip()
            if text:
                lines.append((time.monotonic(), text))

    thread = threading.Thread(target=read, name="tcplab-stdout", daemon=True)
    thread.start()
    return thread


def _printed_notes(name: str, written: list[tuple[float, str]],
                   arrived: list[tuple[float, str]]) -> list[Note]:  # fmt: skip
    """One Note per printed line, stamped when the program's write() returned (strace);
    a line strace did not show keeps the time the lab read it from the pipe."""
    stamped: list[tuple[float, str]] = []
    for when, chunk in written:
        stamped += [(when, line.rstrip()) for line in chunk.split("\n") if line.strip()]
    if [text for _, text in stamped] != [text for _, text in arrived]:
        stamped = arrived  # strace missed or cut a write: the arrival times are all we have
    return [Note(when, f"{name} prints: {text}", name) for when, text in stamped]


def _wait_listen(run: _Run, timeout: float) -> None:
    snaps = run.snapshots
    if snaps is None:
        return
    begin = time.monotonic()
    table_host = "client" if run.loopback else "server"
    while time.monotonic() - begin < timeout:
        _record_programs(run)
        snaps.take()
        if any(
            info.state is State.LISTEN and info.sport == run.scenario.server_port
            for info in snaps.current[table_host].values()
        ):
            return
        time.sleep(0.02)
    raise LabError(f"the server command did not listen on port {run.scenario.server_port} "
                   f"within {timeout:.0f} s")  # fmt: skip
