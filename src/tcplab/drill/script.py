"""The packetdrill script model: what ``parser`` produces and the runners play.

A script (packetdrill's ``parser.y``: ``opt_options opt_init_command events
opt_cleanup_command``) is header options, an optional untimed shell command
run before the first event, timed events, and an optional untimed shell
command run after the last.  Times are kept in microseconds as packetdrill
keeps them; an event's kind is one of ``PacketSpec``, ``SyscallSpec``,
``CommandSpec`` or ``CodeSpec``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tcplab.errors import InputError

NO_TIME = -1  # packetdrill's NO_TIME_RANGE / SYSCALL_NON_BLOCKING


class DrillError(InputError):
    """``FILE:LINE: what``: a script the parser or a runner cannot take."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


class Unsupported(DrillError):
    """``FILE:LINE: unsupported: WHAT``: valid packetdrill this runner does not play."""

    def __init__(self, path: str, line: int, what: str) -> None:
        super().__init__(path, line, f"unsupported: {what}")
        self.what = what


class TimeType(enum.Enum):
    """packetdrill's ``event_time_t``."""

    ABSOLUTE = "absolute"  # 0.1
    RELATIVE = "relative"  # +0.1
    ANY = "any"  # *
    ABSOLUTE_RANGE = "absolute_range"  # 0.1~0.2
    RELATIVE_RANGE = "relative_range"  # +0.1~+0.2


# -- expressions (system call arguments) ---------------------------------------


@dataclass(frozen=True, slots=True)
class Ellipsis_:
    """``...``: "whatever the runner fills in" (an address, a buffer)."""


@dataclass(frozen=True, slots=True)
class Int:
    value: int
    text: str = ""


@dataclass(frozen=True, slots=True)
class Word:
    """A symbol (``SOL_SOCKET``, ``NULL``) resolved when the call runs."""

    name: str


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    ellipsis: bool = False  # "abc"...


@dataclass(frozen=True, slots=True)
class Binary:
    """``A|B`` (bitwise or) or ``name=value`` inside a structure."""

    op: str
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True, slots=True)
class ListExpr:
    """``[1]``, ``[{..., 40}, {..., 20}]``: a pointer to a value or an array."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Struct:
    """``{events=EPOLLIN, fd=4}``, ``{..., 40}``, ``{msg_name(...)=..., ...}``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Call:
    """``msg_iov(1)``, ``inet_addr("1.2.3.4")``, ``htons(8080)``."""

    name: str
    args: tuple[Expr, ...]


Expr = Ellipsis_ | Int | Word | Str | Binary | ListExpr | Struct | Call
ELLIPSIS = Ellipsis_()


def expr_text(expr: Expr) -> str:
    """The expression as a script would write it (for messages and the ladder)."""
    if isinstance(expr, Ellipsis_):
        return "..."
    if isinstance(expr, Int):
        return expr.text or str(expr.value)
    if isinstance(expr, Word):
        return expr.name
    if isinstance(expr, Str):
        return f'"{expr.value}"' + ("..." if expr.ellipsis else "")
    if isinstance(expr, Binary):
        sep = "|" if expr.op == "|" else "="
        return f"{expr_text(expr.lhs)}{sep}{expr_text(expr.rhs)}"
    if isinstance(expr, ListExpr):
        return "[" + ", ".join(expr_text(e) for e in expr.items) + "]"
    if isinstance(expr, Struct):
        return "{" + ", ".join(expr_text(e) for e in expr.items) + "}"
    return f"{expr.name}(" + ", ".join(expr_text(e) for e in expr.args) + ")"


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcpOptionSpec:
    """One option of a script packet: ``kind`` is packetdrill's keyword."""

    kind: str  # nop eol mss wscale sackOK sack TS FO FOEXP
    value: int = 0  # mss / wscale
    blocks: tuple[tuple[int, int], ...] = ()  # sack
    ts: tuple[int, int] = (0, 0)  # TS val, ecr
    cookie: bytes = b""  # FO / FOEXP

    def text(self) -> str:
        if self.kind in ("mss", "wscale"):
            return f"{self.kind} {self.value}"
        if self.kind == "sack":
            return "sack " + " ".join(f"{a}:{b}" for a, b in self.blocks)
        if self.kind == "TS":
            return f"TS val {self.ts[0]} ecr {self.ts[1]}"
        if self.kind in ("FO", "FOEXP"):
            return f"{self.kind} {self.cookie.hex()}".rstrip()
        return self.kind


@dataclass(frozen=True, slots=True)
class PacketSpec:
    """``< S. 0:0(0) ack 1 win 32768 <mss 1000,nop,wscale 6>``."""

    inbound: bool
    flags: str  # packetdrill letters: S F R P . (ACK) E W U; "" for "-"
    seq: int
    end: int
    length: int
    ack: int | None  # None: no "ack N"
    window: int | None  # None: not checked (outbound) / 0 (inbound)
    options: tuple[TcpOptionSpec, ...] | None  # None: <...>, not checked
    urgent: int = 0

    @property
    def has_ack_flag(self) -> bool:
        return "." in self.flags

    def text(self) -> str:
        parts = [
            "<" if self.inbound else ">",
            self.flags or "-",
            f"{self.seq}:{self.end}({self.length})",
        ]
        if self.ack is not None:
            parts.append(f"ack {self.ack}")
        if self.window is not None:
            parts.append(f"win {self.window}")
        if self.options is None:
            parts.append("<...>")
        elif self.options:
            parts.append("<" + ",".join(o.text() for o in self.options) + ">")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class SyscallSpec:
    """``connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)``."""

    name: str
    args: tuple[Expr, ...]
    result: Expr
    errno: str | None = None
    note: str | None = None
    end_usecs: int = NO_TIME  # a blocking call's expected return time

    @property
    def blocking(self) -> bool:
        return self.end_usecs != NO_TIME

    def text(self) -> str:
        args = ", ".join(expr_text(a) for a in self.args)
        out = f"{self.name}({args}) = {expr_text(self.result)}"
        if self.errno:
            out += f" {self.errno}"
        return out


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A backquoted shell command."""

    command: str

    def text(self) -> str:
        first = self.command.strip().splitlines()[0] if self.command.strip() else ""
        return f"`{first}`"


@dataclass(frozen=True, slots=True)
class CodeSpec:
    """A ``%{ }%`` python block reading ``tcpi_*`` of the socket under test."""

    code: str

    def text(self) -> str:
        first = self.code.strip().splitlines()[0] if self.code.strip() else ""
        return "%{ " + first.rstrip("\\ ") + " }%"


Action = PacketSpec | SyscallSpec | CommandSpec | CodeSpec


@dataclass(slots=True)
class Event:
    line: int
    time_type: TimeType
    time_usecs: int
    time_end_usecs: int  # NO_TIME unless a range
    action: Action
    source: str = ""  # the script text of the line

    @property
    def kind(self) -> str:
        if isinstance(self.action, PacketSpec):
            return "inbound" if self.action.inbound else "outbound"
        if isinstance(self.action, SyscallSpec):
            return "syscall"
        if isinstance(self.action, CommandSpec):
            return "command"
        return "code"


@dataclass
class Script:
    path: str
    options: dict[str, str] = field(default_factory=dict)
    defines: dict[str, str] = field(default_factory=dict)
    init_command: CommandSpec | None = None
    init_line: int = 0
    events: list[Event] = field(default_factory=list)
    cleanup_command: CommandSpec | None = None
    cleanup_line: int = 0
    lines: list[str] = field(default_factory=list)  # the file, for the ladder

    def line_text(self, line: int) -> str:
        if 1 <= line <= len(self.lines):
            return self.lines[line - 1].strip()
        return ""
