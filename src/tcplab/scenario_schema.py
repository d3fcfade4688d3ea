"""The one schema every scenario file is checked against before anything runs.

A scenario file is a program: it names calls, ports, durations and sysctls
that the lab plays as root.  So it is validated as a whole, in one pass,
before a namespace exists: every key's type and range (ports 1-65535,
finite non-negative durations under ``MAX_SECONDS``, known enum values,
at most ``MAX_STEPS`` steps, names that can become file names), and every
problem is reported, one line each, as ``FILE: KEY: problem``.  ``tcplab
run`` and ``tcplab sim`` share it (``tcplab.scenario.parse_scenario``).

The schema is data: ``Spec`` objects (``Int``, ``Seconds``, ``Text``,
``Name``, ``OneOf``, ``ListOf``, ``Table``, ``MapOf``) held in tables below
that can be read against the format described in ``tcplab.scenario``.
"""

from __future__ import annotations

import errno as errno_module
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcplab.states import State

MAX_STEPS = 1000
MAX_FAULTS = 100
MAX_SECONDS = 600.0  # one sleep, wait timeout or fault delay; TIME-WAIT is 60 s
MAX_FILE_BYTES = 1 << 20  # a scenario file; the largest built-in one is about 8 KiB
MAX_TEXT = 64 * 1024
MAX_SEND = 64 << 20  # bytes one send() step may ask for
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SYSCTL = re.compile(r"net(\.[A-Za-z0-9_-]+)+")

Problems = list[tuple[str, str]]  # (key, problem)


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key + 1}]"
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)  # fmt: skip


class Spec:
    what = "a value"

    def check(self, value: Any, where: str, out: Problems) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Spec):
    lo: int
    hi: int
    what: str = "an integer"

    def check(self, value: Any, where: str, out: Problems) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            out.append((where, f"must be {self.what} from {self.lo} to {self.hi}, "
                               f"not {_kind(value)} ({value!r:.40})"))  # fmt: skip
        elif not self.lo <= value <= self.hi:
            out.append((where, f"{value} is out of range {self.lo}..{self.hi}"))


PORT = Int(1, 65535, "a port")
PORT_OR_EPHEMERAL = Int(0, 65535, "a port (0: ephemeral)")
COUNT = Int(0, 1 << 31, "a count")


@dataclass(frozen=True)
class Seconds(Spec):
    """A duration: finite, non-negative, at most ``hi`` seconds."""

    hi: float = MAX_SECONDS
    what: str = "seconds"

    def check(self, value: Any, where: str, out: Problems) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append((where, f"must be a number of seconds, not {_kind(value)}"))
        elif not math.isfinite(value) or value < 0 or value > self.hi:
            out.append((where, f"{value!r} s: a duration is finite, from 0 to {self.hi:g} s"))


@dataclass(frozen=True)
class Bool(Spec):
    what: str = "a boolean"

    def check(self, value: Any, where: str, out: Problems) -> None:
        if not isinstance(value, bool):
            out.append((where, f"must be true or false, not {_kind(value)}"))


@dataclass(frozen=True)
class Text(Spec):
    limit: int = MAX_TEXT
    pattern: re.Pattern[str] | None = None
    hint: str = ""
    what: str = "a string"

    def check(self, value: Any, where: str, out: Problems) -> None:
        if not isinstance(value, str):
            out.append((where, f"must be a string, not {_kind(value)}"))
        elif len(value) > self.limit:
            out.append((where, f"is {len(value)} characters; at most {self.limit}"))
        elif self.pattern is not None and not self.pattern.fullmatch(value):
            out.append((where, f"{value!r:.60} is not {self.hint}"))


# A name becomes a file name (out/<id>.json) or a key: letters, digits, - and _.
NAME_TEXT = Text(64, NAME, "a name (1-64 letters, digits, '-' or '_')")


@dataclass(frozen=True)
class Enum(Spec):
    values: tuple[str, ...]
    what: str = "one of"

    def check(self, value: Any, where: str, out: Problems) -> None:
        if not isinstance(value, str) or value not in self.values:
            known = ", ".join(v or "''" for v in self.values)
            out.append((where, f"must be one of {known}, not {value!r:.40}"))


@dataclass(frozen=True)
class Custom(Spec):
    """A string checked by a parser (a TCP state name, an errno name)."""

    parse: Callable[[str], object]
    what: str = "a string"

    def check(self, value: Any, where: str, out: Problems) -> None:
        if not isinstance(value, str):
            out.append((where, f"must be a string, not {_kind(value)}"))
            return
        try:
            self.parse(value)
        except ValueError as exc:
            out.append((where, str(exc)))


def _errno_name(text: str) -> None:
    if text not in errno_module.errorcode.values():
        raise ValueError(f"unknown errno name {text!r:.40} (e.g. ECONNREFUSED, EPIPE)")


def _actor_call(text: str) -> None:
    actor, dot, call = text.partition(".")
    if not dot or actor not in ("client", "server") or not NAME.fullmatch(call):
        raise ValueError(f"{text!r:.40} is not 'client.CALL' or 'server.CALL'")


STATE = Custom(State.parse, "a TCP state")
ERRNO = Custom(_errno_name, "an errno name")
ACTOR_CALL = Custom(_actor_call, "actor.call")


@dataclass(frozen=True)
class OneOf(Spec):
    options: tuple[Spec, ...]
    what: str = "a value"

    def check(self, value: Any, where: str, out: Problems) -> None:
        tries: list[Problems] = []
        for option in self.options:
            got: Problems = []
            option.check(value, where, got)
            if not got:
                return
            tries.append(got)
        out.append((where, " or ".join(p[0][1] for p in tries)))


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec
    limit: int = 1000
    exact: int | None = None
    what: str = "an array"

    def check(self, value: Any, where: str, out: Problems) -> None:
        if not isinstance(value, list):
            out.append((where, f"must be an array, not {_kind(value)}"))
            return
        if len(value) > self.limit:
            out.append((where, f"has {len(value)} entries; at most {self.limit}"))
            return
        if self.exact is not None and len(value) != self.exact:
            out.append((where, f"must have exactly {self.exact} entries, not {len(value)}"))
            return
        for i, item in enumerate(value):
            self.item.check(item, _join(where, i), out)


@dataclass(frozen=True)
class MapOf(Spec):
    """A table with free keys (checked by ``key``) and values of one kind."""

    value: Spec
    key: Spec = NAME_TEXT
    limit: int = 1000
    what: str = "a table"

    def check(self, value: Any, where: str, out: Problems) -> None:
        if not isinstance(value, dict):
            out.append((where, f"must be a table, not {_kind(value)}"))
            return
        if len(value) > self.limit:
            out.append((where, f"has {len(value)} keys; at most {self.limit}"))
            return
        for k, v in value.items():
            sub: Problems = []
            self.key.check(k, _join(where, k), sub)
            out.extend((w, f"key {p}") for w, p in sub)
            self.value.check(v, _join(where, k), out)


@dataclass(frozen=True)
class Table(Spec):
    fields: dict[str, Spec]
    required: tuple[str, ...] = ()
    what: str = "a table"

    def check(self, value: Any, where: str, out: Problems) -> None:
        if not isinstance(value, dict):
            out.append((where, f"must be a table, not {_kind(value)}"))
            return
        for key in self.required:
            if key not in value:
                out.append((_join(where, key), "missing"))
        for key, item in value.items():
            spec = self.fields.get(key)
            if spec is None:
                known = ", ".join(sorted(self.fields))
                out.append((_join(where, key), f"unknown key (known: {known})"))
            else:
                spec.check(item, _join(where, key), out)


@dataclass(frozen=True)
class Anything(Spec):
    what: str = "any value"

    def check(self, value: Any, where: str, out: Problems) -> None:
        return


# -- the scenario format ---------------------------------------------------------

ENDPOINT = Enum(("client", "server"))
SOCKOPTS = ("SO_REUSEADDR", "SO_LINGER", "SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL",
            "TCP_KEEPCNT", "TCP_NODELAY", "SO_RCVBUF", "SO_SNDBUF",
            "TCP_CORK", "TCP_FASTOPEN", "TCP_FASTOPEN_CONNECT")  # fmt: skip
SOCKOPT_VALUE = OneOf((Int(0, 1 << 30), ListOf(Int(0, 1 << 30), exact=2)))

# call -> its arguments (the same calls as tcplab.scenario.CALLS documents).
CALL_ARGS: dict[str, dict[str, Spec]] = {
    "socket": {"family": Enum(("inet", "inet6"))},
    "setsockopt": {"option": Enum(SOCKOPTS), "value": SOCKOPT_VALUE},
    "bind": {"port": PORT_OR_EPHEMERAL},
    "listen": {"backlog": Int(0, 65535, "a backlog")},
    "accept": {"into": NAME_TEXT},
    "connect": {"port": PORT, "nonblocking": Bool()},
    "send": {"data": Text(MAX_TEXT), "size": Int(0, MAX_SEND, "a byte count")},
    "sendto": {"data": Text(MAX_TEXT), "size": Int(0, MAX_SEND, "a byte count"),
               "flags": Enum(("MSG_FASTOPEN",)), "port": PORT, "nonblocking": Bool()},
    "recv": {"bufsize": Int(1, 16 << 20, "a buffer size"), "until": Enum(("eof", "size")),
             "size": Int(0, MAX_SEND, "a byte count")},
    "shutdown": {"how": Enum(("SHUT_RD", "SHUT_WR", "SHUT_RDWR"))},
    "close": {},
    "abort": {},
    "fork_close": {},
    "kill": {},
    "exit": {"status": Int(0, 255, "an exit status")},
    "sleep": {"seconds": Seconds()},
    "wait": {"state": STATE, "gone": Bool(), "timeout": Seconds()},
}
WIRE_CALL_ARGS: dict[str, dict[str, Spec]] = {
    "blackhole": {"host": ENDPOINT},
    "heal": {"host": ENDPOINT},
    "release": {},
}
STEP_COMMON: dict[str, Spec] = {
    "actor": Enum(("client", "server", "wire")),
    "call": Text(64),
    "sock": NAME_TEXT,
    "label": Text(200),
    "expect_errno": ERRNO,
    "background": Bool(),
}

FAULT = Table(
    {
        "action": Enum(("drop", "delay", "duplicate", "hold", "blackhole")),
        "sender": Enum(("client", "server", "any")),
        "flags": Text(16),
        "payload": Bool(),
        "nth": Int(-MAX_STEPS * 100, MAX_STEPS * 100, "a match index"),
        "after": Seconds(),
        "before": Seconds(),
        "seconds": Seconds(),
        "release_after": Int(1, 1000, "a packet count"),
        "note": Text(200),
        "when": Enum(("", "sent-fin", "got-fin", "final-ack")),
    },
    required=("action",),
)

SEGMENT = Table({
    "sender": ENDPOINT, "flags": Text(16), "rel_seq": Int(-(1 << 32), 1 << 32, "a number"),
    "rel_ack": Int(-(1 << 32), 1 << 32, "a number"), "length": COUNT,
    "options_contain": Text(200), "dropped": Bool(),
})  # fmt: skip
SNAPSHOT = Table({
    "endpoint": ENDPOINT, "state": STATE, "rqueue": COUNT, "rqueue_min": COUNT,
    "wqueue": COUNT, "timer": Text(32), "shutdown": Int(0, 3, "a shutdown mask"),
}, required=("endpoint",))  # fmt: skip
STATES_BY_ENDPOINT = MapOf(ListOf(STATE, 200), key=ENDPOINT)

EXPECT = Table({
    "flags": ListOf(Text(16), 10000),
    "flags_contain": ListOf(Text(16), 10000),
    "states": STATES_BY_ENDPOINT,
    "never_states": STATES_BY_ENDPOINT,
    "final_states": MapOf(STATE, key=ENDPOINT),
    "errno": MapOf(ERRNO, key=ACTOR_CALL),
    "results": MapOf(Text(MAX_TEXT), key=ACTOR_CALL),
    "dropped": COUNT,
    "snapshot": ListOf(SNAPSHOT, 1000),
    "notes": ListOf(Text(1000), 1000),
    "segments": ListOf(SEGMENT, 10000),
    "flag_counts": MapOf(COUNT, key=Text(16)),
    "max_payload": COUNT,
    "silent_after": ListOf(ACTOR_CALL, 100),
})  # fmt: skip

SYSCTL_NAME = Text(200, SYSCTL, "a net.* sysctl name (net.ipv4.tcp_fin_timeout)")
SYSCTL_VALUE = OneOf((Int(-(1 << 62), 1 << 62), Text(200, re.compile(r"[^\n\r]*"), "one line")))
EXTERNAL = Table({"server": Text(4096), "client": Text(4096)}, required=("server", "client"))

SCENARIO = Table(
    {
        "id": NAME_TEXT,
        "title": Text(200),
        "step": ListOf(Anything(), MAX_STEPS),  # each step: check_step (the call decides)
        "fault": ListOf(FAULT, MAX_FAULTS),
        "sysctl": MapOf(MapOf(SYSCTL_VALUE, key=SYSCTL_NAME, limit=100), key=ENDPOINT),
        "explain": MapOf(Text(MAX_TEXT), key=Enum(("en", "zh"))),
        "expect": EXPECT,
        "seeds": ListOf(Text(64), 100),
        "needs": ListOf(Enum(("kernel", "external")), 2),
        "server_port": PORT,
        "extra": MapOf(Anything()),
    },
    required=("id",),
)


@dataclass
class Report:
    source: str
    problems: Problems = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"{self.source}: {where}: {problem}" for where, problem in self.problems]


def check_step(raw: Any, where: str, out: Problems) -> None:
    if not isinstance(raw, dict):
        out.append((where, f"must be a table ([[step]]), not {_kind(raw)}"))
        return
    actor = raw.get("actor")
    STEP_COMMON["actor"].check(actor, _join(where, "actor"), out)
    calls = WIRE_CALL_ARGS if actor == "wire" else CALL_ARGS
    call = raw.get("call")
    if call not in calls:
        who = actor if actor in ("client", "server", "wire") else "a"
        out.append((_join(where, "call"),
                    f"unknown {who} call {call!r:.40} (known: {', '.join(calls)})"))  # fmt: skip
        return
    from tcplab.scenario import REQUIRED

    args = calls[call]
    for key in REQUIRED.get(call, ()):
        if key not in raw:
            out.append((_join(where, key), f"{call}() needs {key!r}"))
    for key, value in raw.items():
        if key in ("actor", "call"):
            continue
        spec = STEP_COMMON.get(key) or args.get(key)
        if spec is None:
            out.append((_join(where, key), f"{call}() takes no argument {key!r}"))
        else:
            spec.check(value, _join(where, key), out)
    if call == "recv" and raw.get("until") == "size" and "size" not in raw:
        out.append((_join(where, "size"), "recv(until='size') needs 'size'"))


def validate(data: dict[str, Any], source: str) -> Report:
    """Every problem of a parsed TOML document, as (key, problem) pairs."""
    report = Report(source)
    out = report.problems
    SCENARIO.check(data, "", out)
    steps = data.get("step")
    if isinstance(steps, dict):
        out[:] = [p for p in out if p[0] != "step"]
        out.append(("step", "must be an array of tables: write [[step]], not [step]"))
    elif isinstance(steps, list) and len(steps) <= MAX_STEPS:
        for i, raw in enumerate(steps):
            check_step(raw, _join("step", i), out)
    if not steps and "step" not in {p[0] for p in out}:
        out.append(("step", "a scenario needs at least one [[step]]"))
    extra = data.get("extra")
    if isinstance(extra, dict) and "external" in extra:
        EXTERNAL.check(extra["external"], "extra.external", out)
    return report


def first_lines(lines: Sequence[str], limit: int = 50) -> str:
    """At most ``limit`` problem lines (a 10 MB file of mistakes stays readable)."""
    shown = list(lines[:limit])
    if len(lines) > limit:
        shown.append(f"... and {len(lines) - limit} more problem(s)")
    return "\n".join(shown)
