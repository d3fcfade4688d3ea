"""The packetdrill script language, as the corpus uses it: lexer and parser.

Follows packetdrill's ``lexer.l`` and ``parser.y`` (google/packetdrill,
gtests/net/packetdrill): the same tokens (``//`` and ``/* */`` comments,
``%{ }%`` code, backquoted commands, ``--option`` words, floats written
``.01``, ``...``), the same grammar (options, an untimed init command,
timed events, an untimed cleanup command) and the same semantic checks
(``seq:end(len)`` consistent, ``*`` and time ranges only on outbound
packets, ``<...>`` only outbound).  Symbols defined with ``-D NAME=VALUE``
or ``--define=NAME=VALUE`` replace words as packetdrill's ``word()`` does.

Constructs packetdrill has but the corpus never uses (UDP/ICMP packets, IP
headers written out, ECN/TOS/flow labels, MPLS/GRE/PSP encapsulation, MD5,
AccECN) stop with ``FILE:LINE: unsupported: WHAT``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn as Never

from tcplab.drill.script import (
    ELLIPSIS,
    NO_TIME,
    Action,
    Binary,
    Call,
    CodeSpec,
    CommandSpec,
    DrillError,
    Event,
    Expr,
    Int,
    ListExpr,
    PacketSpec,
    Script,
    Str,
    Struct,
    SyscallSpec,
    TcpOptionSpec,
    TimeType,
    Unsupported,
    Word,
)

MAX_SCRIPT_BYTES = 4 * 1024 * 1024  # the largest corpus script is 7 KB

# Token kinds
OPTION, FLOAT, INT, HEX, WORD, STRING, BACKQUOTED, CODE, ELL, PUNCT, EOF = (
    "OPTION",
    "FLOAT",
    "INT",
    "HEX",
    "WORD",
    "STRING",
    "BACKQUOTED",
    "CODE",
    "...",
    "PUNCT",
    "EOF",
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    line: int
    value: object = None
    pos: int = 0  # offset in the source, for line text


# Order matters only among patterns that can start at the same character;
# like flex, the longest match wins and ties go to the earlier pattern.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (ELL, re.compile(r"\.\.\.")),
    (OPTION, re.compile(r"--[a-zA-Z0-9_]+")),
    (FLOAT, re.compile(r"-?[0-9]*\.[0-9]+")),
    (INT, re.compile(r"-?[0-9]+")),
    (HEX, re.compile(r"0x[0-9a-fA-F]+")),
    (WORD, re.compile(r"[a-zA-Z0-9_]+")),
    (STRING, re.compile(r'"(\\.|[^"\\])*"', re.S)),
    (BACKQUOTED, re.compile(r"`(\\.|[^`\\])*`", re.S)),
]
_SPACE = re.compile(r"[ \t\r\n]+")
_CPP_COMMENT = re.compile(r"//[^\n]*")
_C_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_CODE = re.compile(r"%\{(.*?)\}%", re.S)


def tokenize(text: str, path: str, defines: dict[str, str]) -> list[Token]:
    tokens: list[Token] = []
    pos, line, n = 0, 1, len(text)
    while pos < n:
        ch = text[pos]
        if ch in " \t\r\n":
            m = _SPACE.match(text, pos)
            assert m is not None
            line += m.group().count("\n")
            pos = m.end()
            continue
        if text.startswith("//", pos):
            m = _CPP_COMMENT.match(text, pos)
            assert m is not None
            pos = m.end()
            continue
        if text.startswith("/*", pos):
            m = _C_COMMENT.match(text, pos)
            if m is None:
                raise DrillError(path, line, "unterminated /* comment")
            line += m.group().count("\n")
            pos = m.end()
            continue
        if text.startswith("%{", pos):
            m = _CODE.match(text, pos)
            if m is None:
                raise DrillError(path, line, "unterminated %{ code block (no }%)")
            tokens.append(Token(CODE, m.group(1).strip(" \t"), line, pos=pos))
            line += m.group().count("\n")
            pos = m.end()
            continue
        best: tuple[str, re.Match[str]] | None = None
        for kind, pattern in _PATTERNS:
            m = pattern.match(text, pos)
            if m is not None and (best is None or m.end() > best[1].end()):
                best = (kind, m)
        if best is None:
            tokens.append(Token(PUNCT, ch, line, pos=pos))
            pos += 1
            continue
        kind, m = best
        raw = m.group()
        start_line = line
        line += raw.count("\n")
        pos = m.end()
        if kind == STRING:
            tokens.append(Token(STRING, raw[1:-1], start_line, pos=m.start()))
        elif kind == BACKQUOTED:
            tokens.append(Token(BACKQUOTED, raw[1:-1], start_line, pos=m.start()))
        elif kind == OPTION:
            tokens.append(Token(OPTION, raw[2:], start_line, pos=m.start()))
        elif kind == FLOAT:
            tokens.append(Token(FLOAT, raw, start_line, float(raw), m.start()))
        elif kind == INT:
            tokens.append(Token(INT, raw, start_line, int(raw), m.start()))
        elif kind == HEX:
            tokens.append(Token(HEX, raw, start_line, int(raw, 16), m.start()))
        elif kind == WORD:
            tokens.append(_word(raw, start_line, m.start(), defines))
        else:
            tokens.append(Token(kind, raw, start_line, pos=m.start()))
    tokens.append(Token(EOF, "", line, pos=n))
    return tokens


def _word(raw: str, line: int, pos: int, defines: dict[str, str]) -> Token:
    """packetdrill's ``word()``: a defined symbol becomes its value's token."""
    value = defines.get(raw)
    if value is None:
        return Token(WORD, raw, line, pos=pos)
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        return Token(STRING, value[1:-1], line, pos=pos)
    if value.startswith("`") and value.endswith("`") and len(value) >= 2:
        return Token(BACKQUOTED, value[1:-1], line, pos=pos)
    try:
        return Token(INT, value, line, int(value, 0), pos)
    except ValueError:
        return Token(WORD, value, line, pos=pos)


_FLAG_LETTERS = set("SFRPUEWA")
_UNSUPPORTED_PACKET_WORDS = {
    "udp": "UDP packets",
    "icmp": "ICMP packets",
    "ipv4": "packets with IP headers written out",
    "ipv6": "packets with IP headers written out",
    "gre": "GRE encapsulation",
    "GREv0": "GRE encapsulation",
    "mpls": "MPLS encapsulation",
    "encap": "PSP encapsulation",
}


class Parser:
    def __init__(self, text: str, path: str, defines: dict[str, str] | None = None) -> None:
        self.path = path
        self.text = text
        self.defines = dict(defines or {})
        # Header options come first and may add defines: lex the header alone first.
        self.script = Script(path=path, lines=text.splitlines())
        self.toks: list[Token] = []
        self.i = 0

    # -- token helpers ----------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Token:
        t = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return t

    def is_punct(self, ch: str, k: int = 0) -> bool:
        t = self.peek(k) if k else self.tok
        return t.kind == PUNCT and t.text == ch

    def expect_punct(self, ch: str, what: str = "") -> Token:
        if not self.is_punct(ch):
            self.fail(f"expected '{ch}'{' ' + what if what else ''}, found {self.describe()}")
        return self.next()

    def is_word(self, *words: str) -> bool:
        return self.tok.kind == WORD and self.tok.text in words

    def expect_int(self, what: str) -> int:
        t = self.tok
        if t.kind in (INT, HEX):
            self.next()
            assert isinstance(t.value, int)
            return t.value
        self.fail(f"expected {what}, found {self.describe()}")

    def describe(self, t: Token | None = None) -> str:
        t = t or self.tok
        if t.kind == EOF:
            return "end of file"
        text = t.text if len(t.text) <= 30 else t.text[:27] + "..."
        return f"'{text}'"

    def fail(self, message: str, line: int | None = None) -> Never:
        raise DrillError(self.path, line if line is not None else self.tok.line, message)

    def unsupported(self, what: str, line: int | None = None) -> Never:
        raise Unsupported(self.path, line if line is not None else self.tok.line, what)

    # -- script -----------------------------------------------------------------------

    def parse(self) -> Script:
        self._parse_header()
        self.toks = tokenize(self.text, self.path, self.defines)
        # Skip the header tokens again (they were consumed by _parse_header).
        while self.tok.kind == OPTION:
            self.next()
            if self.is_punct("="):
                self.next()
                self._option_value_raw()
        script = self.script
        if self.tok.kind == BACKQUOTED:
            script.init_line = self.tok.line
            script.init_command = CommandSpec(str(self.next().text))
        while self.tok.kind != EOF:
            if self.tok.kind == BACKQUOTED and self.peek().kind == EOF:
                script.cleanup_line = self.tok.line
                script.cleanup_command = CommandSpec(str(self.next().text))
                break
            script.events.append(self._event())
        if not script.events:
            raise DrillError(self.path, self.tok.line, "the script has no events")
        return script

    def _parse_header(self) -> None:
        """``--name[=value]`` lines before the first event; ``--define`` adds symbols."""
        self.toks = tokenize(self.text, self.path, self.defines)
        self.i = 0
        while self.tok.kind == OPTION:
            name = self.next().text
            value = ""
            if self.is_punct("="):
                self.next()
                value = self._option_value_raw()
            if name == "define":
                key, sep, val = value.partition("=")
                if not sep or not key:
                    self.fail(f"--define needs NAME=VALUE, got '{value}'")
                self.defines.setdefault(key, val)
            self.script.options[name] = value
        self.script.defines = dict(self.defines)

    def _option_value_raw(self) -> str:
        """An option's value: the source text up to the end of its line."""
        t = self.tok
        end = self.text.find("\n", t.pos)
        end = len(self.text) if end < 0 else end
        raw = self.text[t.pos : end]
        raw = re.sub(r"\s*//.*$", "", raw).strip()
        while self.tok.kind != EOF and self.tok.pos < end:
            self.next()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = raw[1:-1]
        return raw

    # -- events -----------------------------------------------------------------------

    def _event(self) -> Event:
        line = self.tok.line
        time_type, start, end = self._event_time()
        action = self._action()
        if time_type is TimeType.ANY and not (
            isinstance(action, PacketSpec) and not action.inbound
        ):
            self.fail("event time <star> can only be used with outbound packets", line)
        if time_type in (TimeType.ABSOLUTE_RANGE, TimeType.RELATIVE_RANGE):
            if not (isinstance(action, PacketSpec) and not action.inbound):
                self.fail("event time range can only be used with outbound packets", line)
            if end < start:
                self.fail("time range is backwards", line)
        if isinstance(action, SyscallSpec) and action.blocking and action.end_usecs < 0:
            self.fail("negative time", line)
        return Event(line, time_type, start, end, action, self.script.line_text(line))

    def _time(self) -> int:
        t = self.tok
        if t.kind == FLOAT:
            self.next()
            assert isinstance(t.value, float)
            if t.value < 0:
                self.fail("negative time", t.line)
            return round(t.value * 1e6)
        if t.kind == INT:
            self.next()
            assert isinstance(t.value, int)
            if t.value < 0:
                self.fail("negative time", t.line)
            return t.value * 1_000_000
        self.fail(f"expected a time, found {self.describe()}")

    def _event_time(self) -> tuple[TimeType, int, int]:
        if self.is_punct("*"):
            self.next()
            return TimeType.ANY, 0, NO_TIME
        if self.is_punct("+"):
            self.next()
            start = self._time()
            if self.is_punct("~"):
                self.next()
                self.expect_punct("+", "(a relative range is +T1~+T2)")
                return TimeType.RELATIVE_RANGE, start, self._time()
            return TimeType.RELATIVE, start, NO_TIME
        if self.tok.kind in (FLOAT, INT):
            start = self._time()
            if self.is_punct("~"):
                self.next()
                return TimeType.ABSOLUTE_RANGE, start, self._time()
            return TimeType.ABSOLUTE, start, NO_TIME
        self.fail(f"expected an event time (0, +0.1, *, +.3~+.4), found {self.describe()}")

    def _action(self) -> Action:
        t = self.tok
        if t.kind == PUNCT and t.text in "<>":
            return self._packet()
        if t.kind == BACKQUOTED:
            self.next()
            return CommandSpec(t.text)
        if t.kind == CODE:
            self.next()
            return CodeSpec(t.text)
        if t.kind == ELL or t.kind == WORD:
            return self._syscall()
        self.fail(
            f"expected a packet, system call, `command` or %{{code}}%, found {self.describe()}"
        )

    # -- packets ----------------------------------------------------------------------

    def _packet(self) -> PacketSpec:
        line = self.tok.line
        inbound = self.next().text == "<"
        if self.tok.kind == WORD and self.tok.text in _UNSUPPORTED_PACKET_WORDS:
            self.unsupported(_UNSUPPORTED_PACKET_WORDS[self.tok.text])
        if self.is_punct("(") or self.is_punct("["):
            self.unsupported("IP header fields on a packet (ECN/TOS/flow label/TTL)")
        if self.tok.kind == INT and self.is_punct(">", 1):
            self.unsupported("explicit ports on a packet (SRC>DST)")
        flags = self._flags()
        seq, end, length = self._seq()
        ack: int | None = None
        window: int | None = None
        urgent = 0
        if self.is_word("ack"):
            self.next()
            ack = self._u32("TCP ack sequence number")
        if self.is_word("win"):
            self.next()
            window = self.expect_int("a window")
            if not 0 <= window <= 0xFFFF:
                self.fail("TCP window value out of range")
        if self.is_word("urg"):
            self.next()
            urgent = self.expect_int("an urgent pointer")
        options: tuple[TcpOptionSpec, ...] | None = ()
        if self.is_punct("<"):
            self.next()
            if self.tok.kind == ELL:
                self.next()
                self.expect_punct(">", "after <...")
                if inbound:
                    self.fail("<...> for TCP options can only be used with outbound packets", line)
                options = None
            else:
                opts = [self._tcp_option()]
                while self.is_punct(","):
                    self.next()
                    opts.append(self._tcp_option())
                self.expect_punct(">", "to end the TCP options")
                options = tuple(opts)
                size = sum(_option_size(o) for o in options)
                if size > 40:
                    self.fail("TCP option list too long", line)
                if size % 4:
                    self.fail(
                        "TCP options are not padded correctly to ensure TCP header "
                        f"is a multiple of 4 bytes: {size % 4} excess bytes",
                        line,
                    )
        if inbound and window is None:
            self.fail("window must be specified for inbound packets", line)
        return PacketSpec(inbound, flags, seq, end, length, ack, window, options, urgent)

    def _flags(self) -> str:
        t = self.tok
        if t.kind == PUNCT and t.text == ".":
            self.next()
            return "."
        if t.kind == PUNCT and t.text == "-":
            self.next()
            return ""
        if t.kind == FLOAT:
            self.unsupported("AccECN flags (ACE field)")
        if t.kind == WORD and set(t.text) <= _FLAG_LETTERS:
            self.next()
            flags = t.text
            if self.is_punct("."):
                self.next()
                flags += "."
            return flags
        self.fail(f"expected TCP flags (S, S., P., F., R, ., -), found {self.describe()}")

    def _u32(self, what: str) -> int:
        value = self.expect_int(what)
        if not 0 <= value <= 0xFFFFFFFF:
            self.fail(f"{what} out of range")
        return value

    def _seq(self) -> tuple[int, int, int]:
        start = self._u32("TCP start sequence number")
        self.expect_punct(":", "in seq:end(len)")
        end = self._u32("TCP end sequence number")
        self.expect_punct("(", "in seq:end(len)")
        length = self.expect_int("a payload length")
        self.expect_punct(")", "in seq:end(len)")
        if not 0 <= length <= 0xFFFF:
            self.fail("TCP payload size out of range")
        if end != (start + length) % (1 << 32) and end != start + length:
            self.fail("inconsistent TCP sequence numbers and payload size")
        return start, end, length

    def _hex_blob(self) -> bytes:
        t = self.tok
        if t.kind in (WORD, INT) and re.fullmatch(r"[0-9a-fA-F]*", t.text):
            self.next()
            if len(t.text) % 2:
                self.fail(f"TCP fast open cookie '{t.text}' is not a whole number of bytes")
            return bytes.fromhex(t.text)
        if t.kind in (WORD, INT, HEX):
            self.fail(f"TCP fast open cookie '{t.text}' is not hex")
        return b""

    def _tcp_option(self) -> TcpOptionSpec:
        t = self.tok
        if t.kind != WORD:
            self.fail(f"expected a TCP option, found {self.describe()}")
        name = t.text
        self.next()
        if name in ("nop", "eol", "sackOK"):
            return TcpOptionSpec(name)
        if name == "mss":
            value = self.expect_int("an MSS")
            if not 0 <= value <= 0xFFFF:
                self.fail("mss value out of range")
            return TcpOptionSpec("mss", value)
        if name == "wscale":
            value = self.expect_int("a window scale")
            if not 0 <= value <= 0xFF:
                self.fail("window scale shift count out of range")
            return TcpOptionSpec("wscale", value)
        if name == "sack":
            blocks: list[tuple[int, int]] = []
            while self.tok.kind == INT and self.is_punct(":", 1):
                left = self._u32("TCP SACK left sequence number")
                self.next()
                right = self._u32("TCP SACK right sequence number")
                blocks.append((left, right))
            if not blocks:
                self.fail("sack needs at least one LEFT:RIGHT block")
            return TcpOptionSpec("sack", blocks=tuple(blocks))
        if name == "TS":
            if not self.is_word("val"):
                self.fail("expected 'val' after TS")
            self.next()
            val = self._u32("ts val")
            if not self.is_word("ecr"):
                self.fail("expected 'ecr' in TS val N ecr M")
            self.next()
            ecr = self._u32("ecr val")
            return TcpOptionSpec("TS", ts=(val, ecr))
        if name in ("FO", "FOEXP"):
            # Any length: scripts send malformed cookies on purpose (RFC 7413 §4.1.1
            # says 4 to 16 bytes); the whole option list must fit in 40 bytes.
            cookie = self._hex_blob()
            return TcpOptionSpec(name, cookie=cookie)
        if name == "md5":
            self.unsupported("TCP MD5 signature option")
        if name == "ECN":
            self.unsupported("AccECN option")
        self.fail(f"unknown TCP option '{name}'", t.line)

    # -- system calls -----------------------------------------------------------------

    def _syscall(self) -> SyscallSpec:
        end_usecs = NO_TIME
        if self.tok.kind == ELL:
            self.next()
            end_usecs = self._time()
        if self.tok.kind != WORD:
            self.fail(f"expected a system call name, found {self.describe()}")
        name = self.next().text
        self.expect_punct("(", f"after {name}")
        args: list[Expr] = []
        if not self.is_punct(")"):
            args = self._expr_list()
        self.expect_punct(")", f"to end {name}'s arguments")
        self.expect_punct("=", f"and the result of {name}()")
        result = self._expr()
        errno: str | None = None
        note: str | None = None
        if self.tok.kind == WORD and self.is_punct("(", 1):
            errno = self.next().text
            note = self._note()
        elif self.is_punct("("):
            note = self._note()
        return SyscallSpec(name, tuple(args), result, errno, note, end_usecs)

    def _note(self) -> str:
        self.expect_punct("(")
        words: list[str] = []
        while not self.is_punct(")"):
            if self.tok.kind == EOF:
                self.fail("unterminated ( note )")
            words.append(self.next().text)
        self.next()
        return " ".join(words)

    def _expr_list(self) -> list[Expr]:
        items = [self._expr()]
        while self.is_punct(","):
            self.next()
            items.append(self._expr())
        return items

    def _expr(self) -> Expr:
        lhs = self._primary()
        while self.is_punct("|"):
            self.next()
            lhs = Binary("|", lhs, self._primary())
        return lhs

    def _primary(self) -> Expr:
        t = self.tok
        if t.kind == ELL:
            self.next()
            return ELLIPSIS
        if t.kind in (INT, HEX):
            self.next()
            assert isinstance(t.value, int)
            return Int(t.value, t.text)
        if t.kind == STRING:
            self.next()
            if self.tok.kind == ELL:
                self.next()
                return Str(t.text, True)
            text = t.text
            while self.tok.kind == STRING:  # "a" "b": concatenation
                text += self.next().text
            return Str(text)
        if t.kind == WORD:
            self.next()
            expr: Expr = Word(t.text)
            if self.is_punct("("):
                self.next()
                args: list[Expr] = []
                if not self.is_punct(")"):
                    args = self._expr_list()
                self.expect_punct(")", f"after {t.text}(")
                expr = Call(t.text, tuple(args))
            if self.is_punct("="):
                self.next()
                return Binary("=", expr, self._expr())
            return expr
        if self.is_punct("["):
            self.next()
            items: list[Expr] = []
            if not self.is_punct("]"):
                items = self._expr_list()
            self.expect_punct("]", "to end the [list]")
            return ListExpr(tuple(items))
        if self.is_punct("{"):
            self.next()
            items = []
            if not self.is_punct("}"):
                items = self._expr_list()
            self.expect_punct("}", "to end the {structure}")
            return Struct(tuple(items))
        if t.kind == FLOAT:
            self.fail(f"a floating-point number ({t.text}) is not a system call argument")
        self.fail(f"expected an expression, found {self.describe()}")


def _option_size(opt: TcpOptionSpec) -> int:
    return {
        "nop": 1,
        "eol": 1,
        "sackOK": 2,
        "mss": 4,
        "wscale": 3,
        "TS": 10,
    }.get(opt.kind) or (
        2 + 8 * len(opt.blocks)
        if opt.kind == "sack"
        else 2 + len(opt.cookie)
        if opt.kind == "FO"
        else 4 + len(opt.cookie)
    )


def parse_text(text: str, path: str = "<script>", defines: dict[str, str] | None = None) -> Script:
    return Parser(text, path, defines).parse()


def parse_file(path: str | Path, defines: dict[str, str] | None = None) -> Script:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_SCRIPT_BYTES:
            raise DrillError(str(p), 0, f"{size} bytes: not a packetdrill script (limit 4 MiB)")
        raw = p.read_bytes()
    except OSError as exc:
        raise DrillError(str(p), 0, exc.strerror or str(exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DrillError(str(p), line, f"not UTF-8 text (byte {exc.start})") from None
    return parse_text(text, str(p), defines)


def option_size(opt: TcpOptionSpec) -> int:
    """Bytes the option takes on the wire."""
    return _option_size(opt)
