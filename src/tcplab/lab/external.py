"""External programs as actors: ``tcplab run --server CMD --client CMD``.

Each command runs inside its host's namespace (``ip netns exec``) under
``strace -f -ttt``, with the ``ENVIRONMENT`` variables set (the server's and
the client's lab addresses, the port, the role).  The client starts once the
server has a listening socket (seen by sock_diag); without ``--port`` the lab
learns the port from that socket.  Programs written for one machine, like the
seed's Node scripts (127.0.0.1:42181, fixed), run unchanged: the server's
loopback address is made reachable from the client (``reach_server``).
Their socket syscalls become ApiCalls: socket-family calls always, and
close/read/write/... only on descriptors that a socket()/accept() returned.
Each line a program prints on stdout becomes a Note on its side of the
timeline, stamped when its write() to stdout returned (from the strace
log; when strace did not show every line, when the lab read it from the
pipe).  The seed's Node example prints "event end", "event close" this way.

The run ends when the client has exited and the server's connections are
done (closed or in TIME-WAIT): the lab then stops the server with SIGTERM,
at once.  A program that exits non-zero on its own (a client refused, a
thrown exception) fails the run: each program's exit is a fact.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tcplab.errors import InputError
from tcplab.lab.host import LabError
from tcplab.lab.tracer import plain_address
from tcplab.scenario import Expectations, FactResult, Scenario
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


# What a program finds in its environment (``tcplab run --help`` lists them too).
ENVIRONMENT = {
    "TCPLAB_SERVER_ADDR": "the server's lab address (connect here, or to 127.0.0.1)",
    "TCPLAB_CLIENT_ADDR": "the client's lab address",
    "TCPLAB_SERVER_PORT": "the server port (--port, else 8080 until the server listens)",
    "TCPLAB_PORT": "the same as TCPLAB_SERVER_PORT",
    "TCPLAB_ROLE": "server or client: which side this program plays",
}

# A program that still runs this long after the client exited (a server
# normally never exits) is stopped, once its connections are done.
SERVER_GRACE = 1.0


def run_external(lab: Lab, server_cmd: str, client_cmd: str, port: int | None,
                 timeout: float = 15.0) -> RunResult:  # fmt: skip
    """Run two programs as the server and the client; see the module doc.

    ``port``: the server's port; None learns it from the server's first
    listening socket (the seed's tcp-server.js listens on 42181).
    """
    scenario = Scenario(
        id="external",
        title=f"server: {server_cmd}   client: {client_cmd}",
        steps=(),
        server_port=port or 0,
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
    port = run.scenario.server_port
    env = {
        "TCPLAB_SERVER_ADDR": run.addr["server"],
        "TCPLAB_CLIENT_ADDR": run.addr["client"],
        "TCPLAB_PORT": str(port or DEFAULT_PORT),
        "TCPLAB_SERVER_PORT": str(port or DEFAULT_PORT),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    readers: list[threading.Thread] = []
    arrived: dict[str, list[tuple[float, str]]] = {"server": [], "client": []}
    exited: dict[str, float] = {}
    stopped: set[str] = set()  # stopped by the lab (not a failure)
    files = {name: run.state.dir / f"strace-{name}.txt" for name in ("server", "client")}
    try:
        procs["server"] = _spawn(run, "server", server_cmd, files["server"],
                                 env | {"TCPLAB_ROLE": "server"})  # fmt: skip
        readers.append(_read_stdout(procs["server"], arrived["server"]))
        address, port = _wait_listen(run, procs["server"], port, 5.0)
        if run.scenario.server_port != port:
            run.scenario = replace(run.scenario, server_port=port)
            env["TCPLAB_PORT"] = env["TCPLAB_SERVER_PORT"] = str(port)
            if run.tracer is not None:
                run.tracer.set_ports((port,))
        reach_server(run, address, port)
        procs["client"] = _spawn(run, "client", client_cmd, files["client"],
                                 env | {"TCPLAB_ROLE": "client"})  # fmt: skip
        readers.append(_read_stdout(procs["client"], arrived["client"]))
        _wait_exit(run, procs["client"], timeout)
        if procs["client"].poll() is None:
            text = f"client still running after {timeout:g} s: stopped by the lab"
            run.notes.append(Note(time.monotonic(), text, "client"))
            stopped.add("client")
            _stop(procs["client"])
        exited["client"] = time.monotonic()
        # The scenario is over once the client is gone and the server's connections
        # have ended (closed, or handed to TIME-WAIT): stop the server right then.
        _wait_server_done(run, procs["server"], port, SERVER_GRACE)
        if procs["server"].poll() is None:
            stopped.add("server")
            run.notes.append(Note(time.monotonic(), "the client is done: the lab stops the "
                                  "server (SIGTERM)", "server"))  # fmt: skip
            _stop(procs["server"])
        exited["server"] = time.monotonic()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                _stop(proc)
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
            run.notes.append(Note(when, f"{name} {exit_text(code)}", name))
            run.facts.append(exit_fact(name, code, name in stopped))


DEFAULT_PORT = 8080


def exit_text(code: int | None) -> str:
    """``exited with status 1`` / ``killed by SIGTERM`` (strace passes both on)."""
    if code is None:
        return "did not exit"
    if code < 0 or code > 128:
        number = -code if code < 0 else code - 128
        with suppress(ValueError):
            return f"killed by {signal.Signals(number).name}"
    return f"exited with status {code}"


def exit_fact(name: str, code: int | None, stopped: bool) -> FactResult:
    """A program that fails on its own fails the run; one the lab stopped does not."""
    if stopped:
        return FactResult(f"{name} program", True, f"{exit_text(code)} (stopped by the lab)")
    return FactResult(f"{name} program", code == 0, exit_text(code))


def reach_server(run: _Run, address: str, port: int) -> None:
    """Make the address the server listens on reachable from the client, unchanged.

    The seed's scripts connect to a fixed 127.0.0.1:42181.  Each lab host has
    its own 127.0.0.1, so:

    * on the wire: in the client's namespace, 127.0.0.1 (and the server's own
      loopback address, if another) is routed through the TUN, from the
      client's address, by a policy rule ahead of the local table; both TUNs
      accept 127/8 (``route_localnet``, a per-interface sysctl inside the
      lab's namespaces).  The wire then carries client -> 127.0.0.1.
    * with ``--loopback``: both programs share one 127.0.0.1; its local
      route (and 127/8's) gets the client's lab address as preferred source,
      so the client's end is 127.89.X.1 and the two ends can be told apart.

    Either way 127.0.0.1 becomes an alias of the server (``_Run.add_alias``).
    A server listening on a lab address or on 0.0.0.0 needs nothing more.
    """
    from tcplab.lab import host

    targets = ["127.0.0.1"]
    if address.startswith("127.") and address not in targets:
        targets.append(address)
    if ":" in address and address != "::":
        return  # a server on one IPv6 address is reached at it (::1 is not mapped)
    client_ns = Path(run.ns["client"]).name
    if run.loopback:
        # The whole of 127/8 too: a client connecting to TCPLAB_SERVER_ADDR (127.89.X.2)
        # would otherwise get 127.0.0.1, the server's alias, as its source.
        for target in [*targets, "127.0.0.0/8"]:
            host.ip("-n", client_ns, "route", "replace", "local", target, "dev", "lo", "table",
                    "local", "proto", "kernel", "scope", "host", "src", run.addr["client"])
    else:
        tun = {h: f"tl{run.run_id}{h[0]}" for h in ("client", "server")}
        for h, name in tun.items():
            host.write_sysctl(run.ns[h], f"net.ipv4.conf.{name}.route_localnet", "1")
        for target in targets:
            host.ip("-n", client_ns, "route", "add", f"{target}/32", "dev", tun["client"],
                    "src", run.addr["client"], "table", str(ALIAS_TABLE))
        host.ip("-n", client_ns, "rule", "add", "pref", "10", "lookup", str(ALIAS_TABLE))
        host.ip("-n", client_ns, "rule", "add", "pref", "20", "lookup", "local")
        host.ip("-n", client_ns, "rule", "del", "pref", "0")
    for target in targets:
        run.add_alias(target, port)
    if address not in ("0.0.0.0", "::", run.addr["server"]) and not address.startswith("127."):
        run.notes.append(Note(time.monotonic(), f"the server listens on {address}, which the "
                              "lab does not route", "server"))  # fmt: skip


# The client namespace's routing table for the server's loopback aliases.
ALIAS_TABLE = 89


def _wait_exit(run: _Run, proc: subprocess.Popen[bytes], limit: float) -> None:
    deadline = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        _record_programs(run)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)


def _wait_server_done(run: _Run, proc: subprocess.Popen[bytes], port: int, limit: float) -> None:
    """Until the server exits, or none of its connections on ``port`` is still
    open (only LISTEN, TIME-WAIT or nothing left), at most ``limit`` seconds."""
    snaps = run.snapshots
    deadline = time.monotonic() + limit
    table = "client" if run.loopback else "server"
    while proc.poll() is None and time.monotonic() < deadline:
        if snaps is not None:
            snaps.take()
            live = [info for info in snaps.current[table].values()
                    if info.sport == port and info.state not in _DONE]  # fmt: skip
            if not live:
                return
        with suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)


_DONE = (State.LISTEN, State.TIME_WAIT, State.CLOSED)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the program (strace's tracees, our own descendants, by pid): strace
    then exits with the program's status.  SIGKILL if it does not go in 2 s."""
    for pid in _descendants(proc.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(2)


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc/PID/task/*/children), deepest last."""
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with suppress(OSError):
                for child in (task / "children").read_text().split():
                    out.append(int(child))
                    todo.append(int(child))
    return out


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


def _wait_listen(run: _Run, proc: subprocess.Popen[bytes], port: int,
                 timeout: float) -> tuple[str, int]:  # fmt: skip
    """The server's listening (address, port): ``port`` when given, else the first
    listener that appears (8080 preferred).  A server that exits first, or never
    listens, is a one-line LabError."""
    snaps = run.snapshots
    if snaps is None:
        return run.addr["server"], port or DEFAULT_PORT
    begin = time.monotonic()
    table_host = "client" if run.loopback else "server"
    while time.monotonic() - begin < timeout:
        _record_programs(run)
        snaps.take()
        listening = sorted(
            ((info.sport != DEFAULT_PORT, plain_address(info.src), info.sport)
             for info in snaps.current[table_host].values() if info.state is State.LISTEN
             and (port == 0 or info.sport == port)),
        )  # fmt: skip
        if listening:
            return listening[0][1], listening[0][2]
        if proc.poll() is not None:
            raise LabError(f"the server command {exit_text(proc.returncode)} before it listened")
        time.sleep(0.02)
    where = f"on port {port}" if port else "on any port"
    raise LabError(f"the server command did not listen {where} within {timeout:.0f} s")
