"""Scenario files: the declarative experiments that ``tcplab run`` and ``tcplab sim`` play.

A scenario is a TOML file a person can copy and edit.  It names two actors
(``client`` and ``server``), lists their socket-API steps in order, the
faults the wire applies, per-host sysctls, an explanation (en + zh), and the
facts the run must show.  The same file drives the live lab (real Linux
sockets) and the model (``tcplab sim``); ``expect`` facts are checked
against the resulting ``Timeline`` by ``check``.

    id = "both-close"
    title = "Both sides close: the four-way (or three-segment) close"
    seeds = ["000", "002", "003"]
    needs = []                          # "kernel": the model cannot play it

    [explain]
    en = "..."
    zh = "..."

    [sysctl.client]                     # set inside that host's namespace only
    "net.ipv4.tcp_fin_timeout" = 3

    [[step]]
    actor = "server"
    call = "listen"                      # see CALLS below for every call and its arguments
    backlog = 5

    [[fault]]                            # see FaultRule
    action = "drop"
    sender = "client"
    flags = "."
    nth = -1                             # the last match (decided when the run ends)

    [expect]
    flags = ["S", "S.", ".", "F.", ".", "F.", "."]      # wire flag sequence, dropped included
    states.client = ["SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    errno = { "client.connect" = "ECONNREFUSED" }

Step sockets: every actor has named sockets.  ``socket`` creates ``sock``
(default ``"main"``); ``accept`` creates the socket named by ``into``
(default ``"conn"``); every other call acts on ``sock`` (default: the
actor's most recently created socket).
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tcplab import scenario_schema
from tcplab.errors import InputError
from tcplab.fmt import list_text, path_text, value_text
from tcplab.scenario_schema import NAME
from tcplab.states import State

ACTORS = ("client", "server")
# The wire is a third actor in the step list: its calls change what the wire
# does from that point of the run on (a host "crashes" off the network and
# comes back), which is steadier than a fault window measured in seconds.
WIRE = "wire"
WIRE_CALLS: dict[str, dict[str, str]] = {
    "blackhole": {"host": "client | server: drop every packet to and from it from now on"},
    "heal": {"host": "client | server: end the blackhole"},
    "release": {"": "let every packet a hold rule keeps go now"},
}

# call -> the arguments it accepts (all optional unless listed in REQUIRED).
CALLS: dict[str, dict[str, str]] = {
    "socket": {"family": "inet|inet6 (default inet)"},
    "setsockopt": {
        "option": "SO_REUSEADDR | SO_LINGER | SO_KEEPALIVE | TCP_KEEPIDLE | TCP_KEEPINTVL"
        " | TCP_KEEPCNT | TCP_NODELAY | TCP_CORK | SO_RCVBUF | SO_SNDBUF | TCP_FASTOPEN (a"
        " listener's Fast Open queue length) | TCP_FASTOPEN_CONNECT (connect() and the first"
        " send() do what sendto(MSG_FASTOPEN) does)",
        "value": "int, or [onoff, seconds] for SO_LINGER",
    },
    "bind": {"port": "int (default: the scenario's server port for the server, 0 = ephemeral)"},
    "listen": {"backlog": "int (default 5); does socket+bind first if the actor has none"},
    "accept": {"into": "name of the new socket (default conn)"},
    "connect": {
        "port": "peer port (default: the server port)",
        "nonblocking": "bool: return EINPROGRESS at once",
    },
    "send": {"data": "text to send", "size": "send this many bytes instead of data"},
    "sendto": {
        "data": "text to send", "size": "send this many bytes instead of data",
        "flags": "'MSG_FASTOPEN': connect and send in one call, the data on the SYN when a"
                 " Fast Open cookie is cached (RFC 7413); else like send",
        "port": "peer port with MSG_FASTOPEN (default: the server port)",
        "nonblocking": "bool, with MSG_FASTOPEN: return what the SYN carries, or EINPROGRESS",
    },
    "recv": {
        "bufsize": "int (default 65536)",
        "until": "'eof': keep reading until recv() returns 0; 'size': until size bytes",
        "size": "with until='size'",
    },
    "shutdown": {"how": "SHUT_RD | SHUT_WR | SHUT_RDWR"},
    "close": {},
    "abort": {"": "SO_LINGER {1, 0} then close(): RST, no TIME_WAIT"},
    "fork_close": {"": "fork(); the child closes its copy of sock and exits; the parent keeps it"},
    "kill": {"": "SIGKILL the actor's process; the kernel closes its sockets"},
    "exit": {"status": "int (default 0): the actor's process exits without closing its "
                       "sockets; the kernel closes them"},
    "sleep": {"seconds": "float"},
    "wait": {
        "state": "wait until this actor's socket reaches a TCP state (e.g. TIME-WAIT)",
        "gone": "bool: wait until the socket has left the kernel's table",
        "timeout": "seconds (default 10)",
    },
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "setsockopt": ("option", "value"),
    "blackhole": ("host",),
    "heal": ("host",),
    "shutdown": ("how",),
    "sleep": ("seconds",),
}
_STEP_KEYS = {"actor", "call", "sock", "label", "expect_errno", "background"}


@dataclass(frozen=True, slots=True)
class Step:
    actor: str
    call: str
    args: dict[str, Any] = field(default_factory=dict)
    sock: str | None = None
    label: str = ""  # shown in the ladder instead of the generated text
    expect_errno: str | None = None  # the step is meant to fail with this errno
    background: bool = False  # don't wait for the call to return (blocking accept, recv)

    def describe(self) -> str:
        if self.label:
            return self.label
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.call}({args})"


@dataclass(frozen=True, slots=True)
class FaultRule:
    """What the wire does to the packets a rule matches.

    Matching: ``sender`` (client|server|any), ``flags`` (tcpdump text of the
    packet, exact: "S", "S.", ".", "P.", "F.", "R."; or "any"), ``payload``
    (True: only packets carrying data; False: only empty ones), ``nth``
    (1-based index among matching packets; negative counts from the end,
    -1 = last; 0 = every match), ``after``/``before`` (seconds since the run
    started).

    Actions: ``drop``; ``delay`` by ``seconds``; ``duplicate``; ``hold``:
    keep matching packets until ``release_after`` of them are held (or
    ``seconds`` have passed), then release them all at once so they cross
    (a hold rule releases once and is then spent);
    ``blackhole``: drop everything to and from ``sender`` between ``after``
    and ``before``.
    """

    action: str
    sender: str = "any"
    flags: str = "any"
    payload: bool | None = None
    nth: int = 0
    after: float | None = None
    before: float | None = None
    seconds: float = 0.0
    release_after: int = 2
    note: str = ""
    # The lab's predicate about the close so far ("", "sent-fin", "got-fin",
    # "final-ack"); see tcplab.lab.faults.  The live wire cannot see the future,
    # so "the client's last ACK" is recognised as it happens.
    when: str = ""


FAULT_ACTIONS = ("drop", "delay", "duplicate", "hold", "blackhole")
# FaultRule.when: "" (always), or where the close stands when the packet is sent.
FAULT_WHEN = ("", "sent-fin", "got-fin", "final-ack")


@dataclass(frozen=True, slots=True)
class Expectations:
    flags: tuple[str, ...] | None = None  # the wire's flag sequence, dropped packets included
    flags_contain: tuple[str, ...] = ()  # a subsequence that must appear in order
    states: dict[str, tuple[State, ...]] = field(default_factory=dict)  # subsequence per endpoint
    never_states: dict[str, tuple[State, ...]] = field(default_factory=dict)
    final_states: dict[str, State] = field(default_factory=dict)
    errno: dict[str, str] = field(default_factory=dict)  # "client.connect" -> "ECONNREFUSED"
    results: dict[str, str] = field(default_factory=dict)  # "client.recv" -> "b''"
    dropped: int | None = None  # how many packets the wire dropped
    # Each entry must match some Snapshot: {endpoint, state, rqueue, rqueue_min,
    # wqueue, timer, shutdown} (every key optional but endpoint).
    snapshot: tuple[dict[str, Any], ...] = ()
    # Each entry must match some Note's text (substring), e.g. a wire finding.
    notes: tuple[str, ...] = ()
    # Packet patterns that must appear in this order (not necessarily adjacent):
    # {sender, flags, rel_seq, rel_ack, length, options_contain, dropped}.
    segments: tuple[dict[str, Any], ...] = ()
    flag_counts: dict[str, int] = field(default_factory=dict)  # "S" -> 1: exactly one SYN
    max_payload: int | None = None  # no segment carries more than this many bytes
    # "actor.call": between that call's return and the next API call no packet
    # is sent (close() of a shared descriptor, shutdown(SHUT_RD)).
    silent_after: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    steps: tuple[Step, ...]
    faults: tuple[FaultRule, ...] = ()
    sysctl: dict[str, dict[str, str]] = field(default_factory=dict)
    explain: dict[str, str] = field(default_factory=dict)
    expect: Expectations = field(default_factory=Expectations)
    seeds: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # "kernel": only the live lab can play it; "external"
    server_port: int = 8080
    source: str = ""  # the file it came from
    extra: dict[str, Any] = field(default_factory=dict)  # producer-specific sections

    @property
    def model_can_play(self) -> bool:
        return "kernel" not in self.needs and "external" not in self.needs


def _fail(source: str, where: str, problem: str) -> InputError:
    return InputError(f"{source}: {where}: {problem}")


def parse_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """A checked ``Scenario``; every problem of the file at once (``FILE: KEY: problem``,
    one line each) as an InputError, before anything runs (tcplab.scenario_schema)."""
    report = scenario_schema.validate(data, source)
    if report.problems:
        raise InputError(scenario_schema.first_lines(report.lines()))
    steps = tuple(_parse_step(source, i, raw) for i, raw in enumerate(data.get("step", [])))
    if not steps:
        raise _fail(source, "step", "a scenario needs at least one [[step]]")
    faults = tuple(_parse_fault(source, i, raw) for i, raw in enumerate(data.get("fault", [])))
    sysctl = {
        actor: {str(k): str(v) for k, v in values.items()}
        for actor, values in data.get("sysctl", {}).items()
    }
    for actor in sysctl:
        if actor not in ACTORS:
            raise _fail(source, f"sysctl.{actor}", f"actor must be one of {ACTORS}")
    return Scenario(
        id=str(data["id"]),
        title=str(data.get("title", data["id"])),
        steps=steps,
        faults=faults,
        sysctl=sysctl,
        explain={str(k): str(v) for k, v in data.get("explain", {}).items()},
        expect=_parse_expect(source, data.get("expect", {})),
        seeds=tuple(str(s) for s in data.get("seeds", [])),
        needs=tuple(str(s) for s in data.get("needs", [])),
        server_port=int(data.get("server_port", 8080)),
        source=source,
        extra=dict(data.get("extra", {})),
    )


def _parse_step(source: str, index: int, raw: dict[str, Any]) -> Step:
    where = f"step {index + 1}"
    actor = raw.get("actor")
    call = raw.get("call")
    if actor not in (*ACTORS, WIRE):
        raise _fail(source, where, f"actor must be one of {(*ACTORS, WIRE)}, got {actor!r}")
    calls = WIRE_CALLS if actor == WIRE else CALLS
    if call not in calls:
        raise _fail(source, where, f"unknown {actor} call {call!r} (known: {', '.join(calls)})")
    args = {k: v for k, v in raw.items() if k not in _STEP_KEYS}
    allowed = set(calls[call]) - {""}
    for key in args:
        if key not in allowed:
            raise _fail(source, where, f"{call}() takes no argument {key!r}")
    for key in REQUIRED.get(call, ()):
        if key not in args:
            raise _fail(source, where, f"{call}() needs {key!r}")
    return Step(
        actor=actor,
        call=call,
        args=args,
        sock=raw.get("sock"),
        label=str(raw.get("label", "")),
        expect_errno=raw.get("expect_errno"),
        background=bool(raw.get("background", False)),
    )


def _parse_fault(source: str, index: int, raw: dict[str, Any]) -> FaultRule:
    where = f"fault {index + 1}"
    if raw.get("action") not in FAULT_ACTIONS:
        raise _fail(source, where, f"action must be one of {FAULT_ACTIONS}")
    if raw.get("when", "") not in FAULT_WHEN:
        raise _fail(source, where, f"when must be one of {FAULT_WHEN[1:]}, got {raw['when']!r}")
    try:
        return FaultRule(**raw)
    except TypeError as exc:
        raise _fail(source, where, str(exc)) from None


def _parse_states(source: str, where: str, raw: dict[str, Any]) -> dict[str, tuple[State, ...]]:
    out: dict[str, tuple[State, ...]] = {}
    for endpoint, names in raw.items():
        try:
            out[endpoint] = tuple(State.parse(n) for n in names)
        except ValueError as exc:
            raise _fail(source, f"{where}.{endpoint}", str(exc)) from None
    return out


def _parse_expect(source: str, raw: dict[str, Any]) -> Expectations:
    known = {"flags", "flags_contain", "states", "never_states", "final_states", "errno",
             "results", "dropped", "snapshot", "notes", "segments", "flag_counts",
             "max_payload", "silent_after"}
    for key in raw:
        if key not in known:
            known_list = ", ".join(sorted(known))
            raise _fail(source, f"expect.{key}", f"unknown fact (known: {known_list})")
    finals: dict[str, State] = {}
    for endpoint, name in raw.get("final_states", {}).items():
        try:
            finals[endpoint] = State.parse(name)
        except ValueError as exc:
            raise _fail(source, f"expect.final_states.{endpoint}", str(exc)) from None
    return Expectations(
        flags=tuple(raw["flags"]) if "flags" in raw else None,
        flags_contain=tuple(raw.get("flags_contain", ())),
        states=_parse_states(source, "expect.states", raw.get("states", {})),
        never_states=_parse_states(source, "expect.never_states", raw.get("never_states", {})),
        final_states=finals,
        errno={str(k): str(v) for k, v in raw.get("errno", {}).items()},
        results={str(k): str(v) for k, v in raw.get("results", {}).items()},
        dropped=raw.get("dropped"),
        snapshot=tuple(_parse_snapshot_fact(source, i, f) for i, f in
                       enumerate(raw.get("snapshot", []))),
        notes=tuple(str(n) for n in raw.get("notes", [])),
        segments=tuple(_parse_segment_fact(source, i, f) for i, f in
                       enumerate(raw.get("segments", []))),
        flag_counts={str(k): int(v) for k, v in raw.get("flag_counts", {}).items()},
        max_payload=raw.get("max_payload"),
        silent_after=tuple(str(x) for x in raw.get("silent_after", [])),
    )


_SEGMENT_KEYS = {"sender", "flags", "rel_seq", "rel_ack", "length", "options_contain", "dropped"}


def _parse_segment_fact(source: str, index: int, raw: dict[str, Any]) -> dict[str, Any]:
    for key in raw:
        if key not in _SEGMENT_KEYS:
            raise _fail(source, f"expect.segments {index + 1}",
                        f"unknown key {key!r} (known: {sorted(_SEGMENT_KEYS)})")
    return dict(raw)


def _segment_matches(packet: Any, pattern: dict[str, Any]) -> bool:
    for key, want in pattern.items():
        if key == "options_contain":
            if want not in packet.options:
                return False
        elif getattr(packet, key) != want:
            return False
    return True


def _describe_segment(packet: Any) -> str:
    return f"{packet.sender} {packet.label()}"


_SNAPSHOT_KEYS = {"endpoint", "state", "rqueue", "rqueue_min", "wqueue", "timer", "shutdown"}


def _parse_snapshot_fact(source: str, index: int, raw: dict[str, Any]) -> dict[str, Any]:
    where = f"expect.snapshot {index + 1}"
    for key in raw:
        if key not in _SNAPSHOT_KEYS:
            raise _fail(source, where, f"unknown key {key!r} (known: {sorted(_SNAPSHOT_KEYS)})")
    if "endpoint" not in raw:
        raise _fail(source, where, "needs 'endpoint'")
    fact = dict(raw)
    if "state" in fact:
        try:
            fact["state"] = State.parse(fact["state"])
        except ValueError as exc:
            raise _fail(source, where, str(exc)) from None
    return fact


def _snapshot_matches(snap: Any, fact: dict[str, Any]) -> bool:
    for key, want in fact.items():
        if key == "rqueue_min":
            if snap.rqueue < want:
                return False
        elif getattr(snap, key) != want:
            return False
    return True


# -- loading -----------------------------------------------------------------

def builtin_dir() -> Path:
    return Path(str(resources.files("tcplab") / "scenarios"))


def builtin_ids() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


def load_file(path: Path, *, trust: bool = True) -> Scenario:
    """Read and check one scenario file.

    ``trust=False`` (``tcplab run`` without ``--trust``): a scenario is a program
    the lab plays as root, so, as ssh does with its keys, a file that another
    user could have written is refused: writable by group or others, or owned
    by someone other than us or root.
    """
    try:
        with path.open("rb") as fileobj:
            st = os.fstat(fileobj.fileno())
            if not trust:
                _check_owner(path, st)
            raw = fileobj.read(scenario_schema.MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > scenario_schema.MAX_FILE_BYTES:
        raise InputError(f"{path}: file: larger than {scenario_schema.MAX_FILE_BYTES} bytes; "
                         "a scenario file is a short list of steps")  # fmt: skip
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: offset {exc.start}: not UTF-8 "
                         f"(byte 0x{raw[exc.start]:02x}); scenario files are UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenario(data, str(path))


def _check_owner(path: Path, st: os.stat_result) -> None:
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group and others" if st.st_mode & stat.S_IWOTH and st.st_mode & stat.S_IWGRP \
            else "others" if st.st_mode & stat.S_IWOTH else "its group"  # fmt: skip
        raise InputError(
            f"{path}: permissions: writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}); "
            "a scenario runs programs as root: chmod go-w it, or pass --trust"
        )
    if st.st_uid not in (os.geteuid(), 0):
        raise InputError(
            f"{path}: owner: uid {st.st_uid} owns it, not you (uid {os.geteuid()}) or root; "
            "a scenario runs programs as root: pass --trust if you trust its author"
        )


def load(name: str, *, trust: bool = True) -> Scenario:
    """A built-in id (``both-close``) or a path to a ``.toml`` file (checked for
    ownership and permissions unless ``trust``; the built-ins come with tcplab)."""
    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        return load_file(path, trust=trust)
    candidate = builtin_dir() / f"{name}.toml"
    if NAME.fullmatch(name) and candidate.exists():
        return load_file(candidate)
    known = ", ".join(builtin_ids()) or "none"
    raise InputError(f"no scenario {name!r} (built-in: {known}; or give a path to a .toml file)")


# -- checking facts ------------------------------------------------------------


def _check_silent_after(timeline: Any, key: str) -> FactResult:
    actor, _, call = key.partition(".")
    calls = sorted(timeline.api_calls(), key=lambda c: c.time)
    for i, c in enumerate(calls):
        if c.actor == actor and c.call == call:
            end = calls[i + 1].started if i + 1 < len(calls) else None
            if end is None and i + 1 < len(calls):
                end = calls[i + 1].time
            sent = [
                p for p in timeline.packets()
                if p.time > c.time and (end is None or p.time < end)
            ]
            text = f"{len(sent)} packet(s) between {key} and the next call"
            return FactResult(f"silent_after.{key}", not sent, text)
    return FactResult(f"silent_after.{key}", False, f"no call {key} in the timeline")


@dataclass(frozen=True, slots=True)
class FactResult:
    fact: str
    held: bool
    detail: str


def _snapshot_text(snap: Any) -> str:
    """``TIME-WAIT (Recv-Q 0, Send-Q 0, timer timewait)``: what ss would print."""
    timer = f", timer {snap.timer}" if snap.timer else ""
    return f"{snap.state} (Recv-Q {snap.rqueue}, Send-Q {snap.wqueue}{timer})"


def _is_subsequence(needle: tuple[Any, ...], hay: list[Any]) -> bool:
    it = iter(hay)
    return all(any(x == y for y in it) for x in needle)


def check(scenario: Scenario, timeline: Any, state_source: Any = None) -> list[FactResult]:
    """Check a scenario's ``expect`` facts against a Timeline.

    ``state_source`` restricts state facts to one ``timeline.Source`` (e.g.
    only what the kernel reported); None uses every state change.
    """
    exp = scenario.expect
    results: list[FactResult] = []
    flags = [p.flags for p in timeline.packets()]
    if exp.flags is not None:
        ok = tuple(flags) == exp.flags
        detail = f"expected {list_text(exp.flags)}; wire had {list_text(flags)}"
        results.append(FactResult("flags", ok, detail))
    if exp.flags_contain:
        ok = _is_subsequence(exp.flags_contain, flags)
        results.append(
            FactResult("flags_contain", ok,
                       f"{list_text(exp.flags_contain)} in order within {list_text(flags)}")
        )
    for endpoint, wanted in exp.states.items():
        path = timeline.state_path(endpoint, state_source)
        ok = _is_subsequence(wanted, path)
        results.append(
            FactResult(
                f"states.{endpoint}",
                ok,
                f"expected {path_text(wanted)} in order; got {path_text(path)}",
            )
        )
    for endpoint, banned in exp.never_states.items():
        path = timeline.state_path(endpoint, state_source)
        seen = [str(s) for s in banned if s in path]
        results.append(
            FactResult(f"never_states.{endpoint}", not seen,
                       f"must not reach {list_text(banned)}; reached {list_text(seen)}")
        )
    for endpoint, final in exp.final_states.items():
        path = timeline.state_path(endpoint, state_source)
        last = path[-1] if path else None
        results.append(
            FactResult(f"final_states.{endpoint}", last is final,
                       f"expected {final}; last {value_text(last)}")
        )
    for key, errno in exp.errno.items():
        actor, _, call = key.partition(".")
        calls = [c for c in timeline.api_calls(actor) if c.call == call]
        got = [c.errno for c in calls]
        outcomes = list_text(e or "success" for e in got)
        detail = f"expected {errno}; got {outcomes}"
        results.append(FactResult(f"errno.{key}", errno in got, detail))
    for key, value in exp.results.items():
        actor, _, call = key.partition(".")
        got = [c.result for c in timeline.api_calls(actor) if c.call == call]
        results.append(FactResult(f"results.{key}", value in got,
                                  f"expected {value_text(value)}; got {list_text(got)}"))
    for fact in exp.snapshot:
        snaps = timeline.snapshots(fact["endpoint"])
        ok = any(_snapshot_matches(s, fact) for s in snaps)
        shown = sorted({_snapshot_text(s) for s in snaps})
        asked = ", ".join(f"{k} {v}" for k, v in fact.items() if k != "endpoint")
        results.append(FactResult(f"snapshot.{fact['endpoint']}", ok,
                                  f"a snapshot with {asked}; seen: {list_text(shown)}"))
    packets = timeline.packets()
    if exp.segments:
        it = iter(packets)
        missing = next(
            (pat for pat in exp.segments if not any(_segment_matches(p, pat) for p in it)), None
        )
        shown = [_describe_segment(p) for p in packets]
        detail = ("all in order" if missing is None
                  else f"nothing matched {value_text(missing)} (in order)")
        results.append(FactResult("segments", missing is None,
                                  f"{detail}; wire: {list_text(shown)}"))
    for flag_text, count in exp.flag_counts.items():
        n = sum(1 for p in packets if p.flags == flag_text)
        results.append(
            FactResult(f"flag_counts.{flag_text}", n == count, f"expected {count}, got {n}")
        )
    if exp.max_payload is not None:
        biggest = max((p.length for p in packets), default=0)
        results.append(
            FactResult("max_payload", biggest <= exp.max_payload,
                       f"largest payload {biggest}, limit {exp.max_payload}")
        )
    for key in exp.silent_after:
        results.append(_check_silent_after(timeline, key))
    for text in exp.notes:
        ok = any(text in e.text for e in timeline.events if e.kind == "note")
        results.append(FactResult("notes", ok, f'a note containing "{text}"'))
    if exp.dropped is not None:
        n = sum(1 for p in timeline.packets() if p.dropped)
        results.append(FactResult("dropped", n == exp.dropped, f"expected {exp.dropped}, got {n}"))
    return results
