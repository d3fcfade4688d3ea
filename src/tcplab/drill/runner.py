"""One script, one stack: parse with the family's defines, play, collect.

``run_script(path, family, model=False)`` returns a ``DrillRun``: the
outcome (pass, or the failure with its line and kind), the records for the
ladder, the datagrams on the wire, and the kernel's (or the model's) state
changes.  The defines packetdrill's ``run_all.py`` passes per family are
the defaults (``TFO_COOKIE`` differs between IPv4 and IPv6: the cookie is
computed over the addresses); ``-D`` overrides them.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcplab.drill.engine import Engine, Failure, Outcome
from tcplab.drill.packets import Config
from tcplab.drill.parser import parse_file
from tcplab.drill.script import DrillError, Script, Unsupported

FAMILY_DEFINES: dict[int, dict[str, str]] = {
    socket.AF_INET: {
        "TFO_COOKIE": "3021b9d889017eeb",
        "CODE": "host_unreachable",
        "CMSG_LEVEL_IP": "SOL_IP",
        "CMSG_TYPE_RECVERR": "IP_RECVERR",
    },
    socket.AF_INET6: {
        "TFO_COOKIE": "c1d1e9742a47a9bc",
        "CMSG_LEVEL_IP": "SOL_IPV6",
        "CMSG_TYPE_RECVERR": "IPV6_RECVERR",
    },
}

# Header options this runner honours; the rest of packetdrill's are unsupported.
KNOWN_OPTIONS = {
    "tolerance_usecs",
    "tolerance_percent",
    "tcp_ts_tick_usecs",
    "tcp_ts_ecr_scaled",
    "local_ip",
    "remote_ip",
    "gateway_ip",
    "netmask_ip",
    "define",
    "ip_version",
    "mtu",
}


@dataclass
class DrillRun:
    path: str
    family: int
    model: bool
    outcome: Outcome
    script: Script | None = None
    wire: list[tuple[int, str, bytes]] = field(default_factory=list)  # (ns, in/out, datagram)
    kernel_events: list[Any] = field(default_factory=list)
    model_events: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    start_ns: int = 0
    seconds: float = 0.0
    local: tuple[str, int] = ("", 0)
    remote: tuple[str, int] = ("", 0)
    run_id: str = ""  # the lab run (namespace tcplab-<run_id>-d) that played a Linux run

    @property
    def passed(self) -> bool:
        return self.outcome.failure is None

    @property
    def failure(self) -> Failure | None:
        return self.outcome.failure

    def message(self) -> str:
        f = self.outcome.failure
        return "" if f is None else f.text(self.path)


def config_of(script: Script, tolerance_usecs: int | None = None) -> Config:
    opts = script.options
    for name in opts:
        if name not in KNOWN_OPTIONS:
            raise Unsupported(script.path, 1, f"option --{name}")
    if opts.get("ip_version") not in (None, "ipv4", "ipv6"):
        raise Unsupported(script.path, 1, f"option --ip_version={opts['ip_version']}")
    try:
        config = Config(
            tolerance_usecs=int(opts.get("tolerance_usecs", "4000")),
            tolerance_percent=float(opts.get("tolerance_percent", "12.5")),
            tcp_ts_tick_usecs=int(opts.get("tcp_ts_tick_usecs", "0")),
            tcp_ts_ecr_scaled="tcp_ts_ecr_scaled" in opts,
        )
    except ValueError as exc:
        raise DrillError(script.path, 1, f"bad option value: {exc}") from None
    if tolerance_usecs is not None:
        config.tolerance_usecs = max(config.tolerance_usecs, tolerance_usecs)
    return config


def load(path: str | Path, family: int, defines: dict[str, str] | None = None) -> Script:
    merged = dict(FAMILY_DEFINES[family])
    merged.update(defines or {})
    return parse_file(path, merged)


def run_script(
    path: str | Path,
    family: int = socket.AF_INET,
    *,
    model: bool = False,
    defines: dict[str, str] | None = None,
    tracing: bool = True,
    tolerance_usecs: int | None = None,
) -> DrillRun:
    """Parse and play one script; parse errors and unsupported features are a failed run."""
    began = time.monotonic()
    path = str(path)
    try:
        script = load(path, family, defines)
        config = config_of(script, tolerance_usecs)
    except Unsupported as exc:
        out = Outcome(Script(path), Failure("unsupported", exc.line, exc.message))
        return DrillRun(path, family, model, out)
    except DrillError as exc:
        out = Outcome(Script(path), Failure("parse", exc.line, exc.message))
        return DrillRun(path, family, model, out)
    why = ipv4_only(script)
    if family == socket.AF_INET6 and why:
        message = f"IPv4-only script ({why}) run over IPv6"
        return DrillRun(path, family, model, Outcome(script, Failure("family", 1, message)))
    addresses = _addresses(script, family)
    bind_port = 1024 + secrets.randbelow(30000)
    connect_port = bind_port + 1
    ephemeral = 40000 + secrets.randbelow(20000)
    ports = (bind_port, connect_port, *range(ephemeral + 1, ephemeral + 9))
    script_dir = Path(path).resolve().parent
    if model:
        from tcplab.drill.modelstack import ModelStack

        mstack = ModelStack(family, script_dir, addresses)
        engine = Engine(script, mstack, config, (bind_port, connect_port), ephemeral)
        outcome = _with_commands(engine, script, mstack)
        run = DrillRun(path, family, True, outcome, script, mstack.wire, [], mstack.events())
    else:
        from tcplab.drill.linux import LinuxStack

        # Ctrl-C/SIGTERM raise into this thread (tcplab.signals, installed by the CLI);
        # leaving the with block tears the namespace down with the signals held.
        with LinuxStack(family, script_dir, ports, tracing, addresses) as stack:
            engine = Engine(script, stack, config, (bind_port, connect_port), ephemeral)
            outcome = _with_commands(engine, script, stack)
        run = DrillRun(path, family, False, outcome, script, list(stack.wire),
                       list(stack.trace_events), [], list(stack.notes))  # fmt: skip
        run.run_id = stack.run_id
    sut = engine.sut
    if sut is not None:
        run.local, run.remote = sut.local, sut.remote
    run.start_ns = run.start_ns or engine.live_start * 1000
    run.seconds = time.monotonic() - began
    return run


def _with_commands(engine: Engine, script: Script, stack: Any) -> Outcome:
    """packetdrill's order: the init command, the events, the cleanup command (always)."""
    if script.init_command is not None:
        status, output = stack.command(script.init_command.command)
        if status != 0:
            tail = output.strip().splitlines()[-1] if output.strip() else ""
            message = f"error executing init command: non-zero status {status}"
            return Outcome(script, Failure("command", script.init_line,
                                           message + (f": {tail}" if tail else "")))  # fmt: skip
    outcome = _play(engine, script)
    if script.cleanup_command is not None:
        status, _ = stack.command(script.cleanup_command.command)
        if status != 0 and outcome.failure is None:
            message = f"error executing cleanup command: non-zero status {status}"
            outcome.failure = Failure("command", script.cleanup_line, message)
    return outcome


def _play(engine: Engine, script: Script) -> Outcome:
    """The engine on this thread at a raised priority (root; optional), restored after:
    packetdrill's timing is tight, and a busy machine makes every event late."""
    tid = threading.get_native_id()
    try:
        old = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, -10)
    except OSError:
        return engine.run()
    try:
        return engine.run()
    finally:
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, old)


def ipv4_only(script: Script) -> str:
    """``--local_ip=...`` when the header pins an IPv4 address (the corpus's Fast Open
    server scripts, whose literal cookies are computed over IPv4 addresses), else ""."""
    for name in ("local_ip", "remote_ip"):
        value = script.options.get(name, "")
        if value and ":" not in value:
            return f"--{name}={value}"
    return ""


def _addresses(script: Script, family: int) -> tuple[str, str] | None:
    """``--local_ip`` / ``--remote_ip`` in the header (IPv4 scripts' TFO cookie tests)."""
    local = script.options.get("local_ip")
    remote = script.options.get("remote_ip")
    if family != socket.AF_INET or not (local or remote):
        return None
    from tcplab.drill.linux import V4

    return (local or str(V4["local"]), remote or str(V4["remote"]))
