"""TCP options (RFC 9293 §3.1, §3.2): typed records, a parser that never
gives up on a packet, a builder that reproduces the bytes, and tcpdump text.

Kinds decoded into their own record (the rest stay ``UnknownOption`` with
their raw data, never dropped, never ``None``):

====  ======  =================  ==========================
kind  length  record             RFC
====  ======  =================  ==========================
0     1       ``Eol``            9293 §3.2
1     1       ``Nop``            9293 §3.2
2     4       ``Mss``            9293 §3.2, 6691
3     3       ``WindowScale``    7323 §2.2
4     2       ``SackPermitted``  2018 §2
5     2+8n    ``Sack``           2018 §3
8     10      ``Timestamps``     7323 §3.2
34    2..18   ``TfoCookie``      7413 §4.1.1
254   4..20   ``TfoCookie``      7413 §4.1.1 + 6994 (magic 0xF989, pre-IANA)
====  ======  =================  ==========================

A known kind with the wrong length (an MSS of length 5) is kept as
``UnknownOption``: Linux's ``tcp_parse_options`` ignores such an option and
goes on, and so do we.  What ends parsing is a length that cannot be
followed (0 or 1, or past the header): the options up to there are kept,
``option_error`` says what and where, and the unparsed bytes are kept raw
so ``build`` reproduces the header exactly.  Bytes after an EOL are padding
(RFC 9293 §3.1: "The TCP header padding is composed of zeros"), kept raw.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

KIND_EOL: Final = 0
KIND_NOP: Final = 1
KIND_MSS: Final = 2
KIND_WSCALE: Final = 3
KIND_SACK_PERMITTED: Final = 4
KIND_SACK: Final = 5
KIND_TIMESTAMPS: Final = 8
KIND_TFO: Final = 34
KIND_EXPERIMENT: Final = 254
TFO_MAGIC: Final = 0xF989  # RFC 7413 §4.1.1 experimental ExID

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_MSS: Final = struct.Struct("!BBH")
_WSCALE: Final = struct.Struct("!BBB")
_TS: Final = struct.Struct("!BBII")
_TS_BODY: Final = struct.Struct("!II")
_SACK_BLOCK: Final = struct.Struct("!II")
_NOP_NOP_TS: Final = b"\x01\x01\x08\x0a"  # Linux's layout on every non-SYN segment


@dataclass(frozen=True, slots=True)
class Eol:
    """End of option list (kind 0); what follows it is padding."""

    def build(self) -> bytes:
        return b"\x00"


@dataclass(frozen=True, slots=True)
class Nop:
    """No-operation (kind 1), used to align the next option."""

    def build(self) -> bytes:
        return b"\x01"


@dataclass(frozen=True, slots=True)
class Mss:
    """Maximum segment size (kind 2), only meaningful on a SYN."""

    value: int

    def build(self) -> bytes:
        return _MSS.pack(KIND_MSS, 4, self.value)


@dataclass(frozen=True, slots=True)
class WindowScale:
    """Window scale shift count (kind 3, RFC 7323 §2.2), SYN only."""

    shift: int

    def build(self) -> bytes:
        return _WSCALE.pack(KIND_WSCALE, 3, self.shift)


@dataclass(frozen=True, slots=True)
class SackPermitted:
    """SACK permitted (kind 4, RFC 2018 §2), SYN only."""

    def build(self) -> bytes:
        return b"\x04\x02"


@dataclass(frozen=True, slots=True)
class Sack:
    """Selective acknowledgement blocks (kind 5, RFC 2018 §3): (left, right)
    edges as raw 32-bit sequence numbers, right edge exclusive."""

    blocks: tuple[tuple[int, int], ...]

    def build(self) -> bytes:
        body = b"".join(_SACK_BLOCK.pack(left, right) for left, right in self.blocks)
        return bytes((KIND_SACK, 2 + len(body))) + body


@dataclass(frozen=True, slots=True)
class Timestamps:
    """TSval / TSecr (kind 8, RFC 7323 §3.2)."""

    val: int
    ecr: int

    def build(self) -> bytes:
        return _TS.pack(KIND_TIMESTAMPS, 10, self.val, self.ecr)


@dataclass(frozen=True, slots=True)
class TfoCookie:
    """TCP Fast Open cookie (RFC 7413 §4.1.1); an empty cookie is a request.

    ``experimental`` marks the pre-IANA encoding, kind 254 with magic 0xF989,
    which old Linux and macOS still send; kept so ``build`` gives the same bytes.
    """

    cookie: bytes
    experimental: bool = False

    def build(self) -> bytes:
        if self.experimental:
            return (
                bytes((KIND_EXPERIMENT, 4 + len(self.cookie))) + _U16.pack(TFO_MAGIC) + self.cookie
            )
        return bytes((KIND_TFO, 2 + len(self.cookie))) + self.cookie


@dataclass(frozen=True, slots=True)
class UnknownOption:
    """Any other option, or a known kind whose length is wrong; ``data``
    excludes the kind and length bytes."""

    kind: int
    data: bytes

    def build(self) -> bytes:
        return bytes((self.kind, 2 + len(self.data))) + self.data


TcpOption = (
    Mss | WindowScale | SackPermitted | Sack | Timestamps | TfoCookie | Nop | Eol | UnknownOption
)

NOP: Final = Nop()
EOL: Final = Eol()
SACK_PERMITTED: Final = SackPermitted()


@dataclass(frozen=True, slots=True)
class ParsedOptions:
    """What ``parse_options`` found: the options, the raw bytes it did not
    turn into options (padding after EOL, or everything from a malformed
    option on), and the error that stopped it, if any."""

    options: tuple[TcpOption, ...]
    tail: bytes = b""
    error: str | None = None


def _known(kind: int, body: bytes) -> TcpOption:
    """The record for one well-delimited option; ``body`` excludes kind and length."""
    size = len(body)
    if kind == KIND_TIMESTAMPS and size == 8:
        val, ecr = _TS_BODY.unpack(body)
        return Timestamps(val, ecr)
    if kind == KIND_MSS and size == 2:
        return Mss(_U16.unpack(body)[0])
    if kind == KIND_WSCALE and size == 1:
        return WindowScale(body[0])
    if kind == KIND_SACK_PERMITTED and size == 0:
        return SACK_PERMITTED
    if kind == KIND_SACK and size and size % 8 == 0:
        return Sack(tuple(_SACK_BLOCK.iter_unpack(body)))
    # RFC 7413 §4.1.1: cookie length 4..16 bytes, or 0 for a cookie request.
    if kind == KIND_TFO and (size == 0 or 4 <= size <= 16):
        return TfoCookie(body)
    if (
        kind == KIND_EXPERIMENT
        and size >= 2
        and _U16.unpack_from(body)[0] == TFO_MAGIC
        and (size == 2 or 6 <= size <= 18)
    ):
        return TfoCookie(body[2:], experimental=True)
    return UnknownOption(kind, body)


def parse_options(data: bytes, base: int = 20) -> ParsedOptions:
    """Parse the option bytes of a TCP header.

    ``base`` is the offset of ``data[0]`` used in error messages (20 when
    offsets count from the TCP header; the decoder passes frame offsets).
    """
    return ParsedOptions(*scan_options(data, base))


def _malformed(kind: int, offset: int, problem: str) -> str:
    return f"malformed option kind {kind} at offset {offset}: {problem}"


def scan_options(data: bytes, base: int = 20) -> tuple[tuple[TcpOption, ...], bytes, str | None]:
    """``parse_options`` as a plain tuple ``(options, tail, error)``: the
    decoder's per-packet path, which should allocate no more than it returns."""
    if len(data) == 12 and data[:4] == _NOP_NOP_TS:
        val, ecr = _TS_BODY.unpack_from(data, 4)
        return (NOP, NOP, Timestamps(val, ecr)), b"", None
    options: list[TcpOption] = []
    pos = 0
    end = len(data)
    while pos < end:
        kind = data[pos]
        if kind == KIND_NOP:
            options.append(NOP)
            pos += 1
            continue
        if kind == KIND_EOL:
            options.append(EOL)
            return tuple(options), data[pos + 1 :], None
        if pos + 1 >= end:
            return tuple(options), data[pos:], _malformed(kind, base + pos, "no length byte")
        length = data[pos + 1]
        if length < 2:
            return tuple(options), data[pos:], _malformed(kind, base + pos, f"length {length} < 2")
        if pos + length > end:
            problem = f"length {length} runs past header"
            return tuple(options), data[pos:], _malformed(kind, base + pos, problem)
        options.append(_known(kind, data[pos + 2 : pos + length]))
        pos += length
    return tuple(options), b"", None


def build_options(options: Iterable[TcpOption]) -> bytes:
    """The option bytes, exactly as given: no padding is added."""
    return b"".join(option.build() for option in options)


# tcpdump's names (print-tcp.c, tcp_option_values) for kinds it only dumps.
_TCPDUMP_NAMES: Final = {
    6: "echo",
    7: "echoreply",
    11: "cc",
    12: "ccnew",
    13: "",
    19: "md5",
    20: "scps",
    28: "uto",
    29: "tcp-ao",
    30: "mptcp",
}


def _tfo_text(cookie: bytes) -> str:
    return " cookiereq" if not cookie else " cookie " + cookie.hex()


def format_option(option: TcpOption, sack_base: int | None = None) -> str:
    """One option as tcpdump -nn prints it (see ``format_options``)."""
    match option:
        case Timestamps(val, ecr):
            return f"TS val {val} ecr {ecr}"
        case Nop():
            return "nop"
        case Mss(value):
            return f"mss {value}"
        case WindowScale(shift):
            return f"wscale {shift}"
        case SackPermitted():
            return "sackOK"
        case Sack(blocks):
            base = sack_base or 0
            edges = "".join(
                f"{{{(left - base) % (1 << 32)}:{(right - base) % (1 << 32)}}}"
                for left, right in blocks
            )
            return f"sack {len(blocks)} {edges}"
        case Eol():
            return "eol"
        case TfoCookie(cookie, experimental):
            # print-tcp.c: kind 34 prints "tfo" then " " then the cookie text,
            # hence tcpdump's double space; kind 254 prints "exp-tfo".
            return ("exp-tfo" if experimental else "tfo ") + _tfo_text(cookie)
        case UnknownOption(kind, data):
            return _format_unknown(kind, data)
    raise TypeError(f"not a TCP option: {option!r}")


# Known kinds whose length is wrong: tcpdump decodes the value from the
# first bytes and then flags the length ("mss 65535[len 5]").
def _mss_text(body: bytes) -> str:
    return f"mss {_U16.unpack_from(body)[0]}"


def _wscale_text(body: bytes) -> str:
    return f"wscale {body[0]}"


def _ts_text(body: bytes) -> str:
    val, ecr = _TS_BODY.unpack_from(body)
    return f"TS val {val} ecr {ecr}"


_FIXED_SIZE_TEXT: Final[dict[int, tuple[int, Callable[[bytes], str]]]] = {
    KIND_MSS: (2, _mss_text),
    KIND_WSCALE: (1, _wscale_text),
    KIND_TIMESTAMPS: (8, _ts_text),
}
KIND_UTO: Final = 28  # RFC 5482 user timeout


def _format_unknown(kind: int, data: bytes) -> str:
    """tcpdump's text for an option we keep raw (print-tcp.c, tcp_print)."""
    fixed = _FIXED_SIZE_TEXT.get(kind)
    if fixed is not None and len(data) > fixed[0]:
        return f"{fixed[1](data)}[len {len(data) + 2}]"
    if kind == KIND_SACK:
        # print-tcp.c prints the block count, then "invalid sack" unless 8 | len.
        return "sack 0 " if not data else "sack invalid sack"
    if kind == KIND_TFO:
        return "tfo  (invalid)"
    if kind == KIND_UTO and len(data) == 2:
        # RFC 5482 §3: low bit is the granularity (1 = minutes), the rest the timeout.
        value = _U16.unpack(data)[0]
        timeout = (value >> 1) * 60 if value & 1 else value >> 1
        return f"uto 0x{value:x} {timeout}"
    if kind == KIND_EXPERIMENT and len(data) >= 2:
        return f"exp-{_U16.unpack_from(data)[0]:04x}"
    name = _TCPDUMP_NAMES.get(kind, f"unknown-{kind}")
    return name + (" 0x" + data.hex() if data else "")


def format_options(
    options: Iterable[TcpOption], sack_base: int | None = None, *, malformed: bool = False
) -> str:
    """The text tcpdump -nn prints inside ``options [...]``.

    ``"mss 1460,sackOK,TS val 383644 ecr 0,nop,wscale 7"``.  tcpdump stops
    at EOL, so do we.  SACK edges are printed as given; tcpdump (without
    ``-S``) prints them relative to the peer's ISN, so pass that as
    ``sack_base`` to get the same numbers.  ``malformed`` appends tcpdump's
    ``[bad opt]`` for an option list that ended in a malformed option.
    """
    parts: list[str] = []
    for option in options:
        parts.append(format_option(option, sack_base))
        if isinstance(option, Eol):
            return ",".join(parts)
    if malformed:
        parts.append("[bad opt]")
    return ",".join(parts)
