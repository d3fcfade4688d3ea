"""The TCP header (RFC 9293 §3.1, Figure 1).

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |          Source Port          |       Destination Port        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                        Sequence Number                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Acknowledgment Number                      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Data |       |A|C|E|U|A|P|R|S|F|                             |
    | Offset| Rsrvd |E|W|C|R|C|S|S|Y|I|            Window           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           Checksum            |         Urgent Pointer        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           [Options]                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The data offset and the 12 flag bits (AE is the old NS bit, RFC 9768)
share one 16-bit word: ``offset_flags >> 12`` is the offset in 32-bit
words, ``offset_flags & 0x1FF`` the flags.  The three remaining reserved
bits are kept so ``build`` reproduces odd headers byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from tcplab.wire.checksum import tcp_checksum
from tcplab.wire.error import WireError
from tcplab.wire.flags import Control, Flags
from tcplab.wire.options import (
    EOL,
    Eol,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TcpOption,
    TfoCookie,
    Timestamps,
    UnknownOption,
    WindowScale,
    build_options,
    format_option,
    format_options,
    scan_options,
)

__all__ = [
    "Eol",
    "Mss",
    "Nop",
    "Sack",
    "SackPermitted",
    "TcpHeader",
    "TcpOption",
    "TfoCookie",
    "Timestamps",
    "UnknownOption",
    "WindowScale",
    "format_option",
    "format_options",
]

# Layout of the fixed 20 bytes, in wire order (one row per Figure 1 field).
TCP_FIELDS: Final = (
    ("sport", "H"),  # Source Port
    ("dport", "H"),  # Destination Port
    ("seq", "I"),  # Sequence Number
    ("ack", "I"),  # Acknowledgment Number
    ("offset_flags", "H"),  # Data Offset (4) | Reserved (3) | flags (9)
    ("window", "H"),  # Window
    ("checksum", "H"),  # Checksum
    ("urgent", "H"),  # Urgent Pointer
)
TCP_HEADER: Final = struct.Struct("!" + "".join(code for _, code in TCP_FIELDS))
TCP_MIN_LEN: Final = TCP_HEADER.size  # 20
_FLAG_MASK: Final = 0x1FF
_RESERVED_MASK: Final = 0xE00
_NO_OPTIONS: Final[tuple[tuple[TcpOption, ...], bytes, None]] = ((), b"", None)
# Enum construction costs about a microsecond; the decoder looks flags up instead.
FLAGS_BY_BITS: Final = tuple(Flags(bits) for bits in range(_FLAG_MASK + 1))


@dataclass(frozen=True, slots=True)
class TcpHeader:
    """One TCP header, fields as on the wire (raw 32-bit seq/ack, unscaled window).

    ``option_error`` is set when the options could not all be parsed; the
    options before the problem are kept and ``option_tail`` holds the raw
    bytes from there on (or the padding after an EOL), so ``build``
    reproduces the parsed bytes exactly.  ``reserved`` holds the 3 reserved
    bits (RFC 9293 §3.1: "must be zero", but kept as seen).
    """

    sport: int
    dport: int
    seq: int
    ack: int
    data_offset: int  # in 32-bit words
    flags: Flags
    window: int
    checksum: int
    urgent: int
    options: tuple[TcpOption, ...] = ()
    option_error: str | None = None
    option_tail: bytes = b""
    reserved: int = 0

    @property
    def control(self) -> Control:
        return Control.of(self.flags)

    @property
    def header_len(self) -> int:
        return self.data_offset * 4

    def option_text(self, sack_base: int | None = None) -> str:
        """The options as tcpdump -nn prints them, ``[bad opt]`` included."""
        malformed = self.option_error is not None and self.option_error.startswith("malformed")
        return format_options(self.options, sack_base, malformed=malformed)

    @classmethod
    def parse(cls, data: bytes, base: int = 0) -> tuple[TcpHeader, bytes]:
        """``(header, payload)`` from a segment that starts at ``data[0]``.

        ``base`` is the offset of ``data[0]`` in the frame, for messages.
        Raises ``WireError`` when fewer than 20 bytes are present, when the
        data offset is below 5, or when it points past the end of ``data``.
        """
        fixed = _unpack_fixed(data, base)
        data_offset = fixed[4] >> 12
        header_len = data_offset * 4
        if header_len > len(data):
            raise WireError(
                f"TCP data offset {data_offset} ({header_len} bytes) runs past the "
                f"segment ({len(data)} bytes)",
                base + 12,
            )
        options, tail, error = (
            scan_options(data[TCP_MIN_LEN:header_len], base + TCP_MIN_LEN)
            if header_len > TCP_MIN_LEN
            else _NO_OPTIONS
        )
        return _from_fixed(fixed, options, error, tail), data[header_len:]

    @classmethod
    def parse_truncated(cls, data: bytes, base: int = 0) -> TcpHeader:
        """A header whose options the capture cut off (snap length inside them).

        The data offset says more than was captured; the options that are
        complete are kept, the cut one is raw in ``option_tail`` and
        ``option_error`` says so.  ``build`` gives back the captured bytes.
        """
        fixed = _unpack_fixed(data, base)
        data_offset = fixed[4] >> 12
        options, tail, error = scan_options(data[TCP_MIN_LEN : data_offset * 4], base + TCP_MIN_LEN)
        if len(data) < data_offset * 4:
            error = (
                f"options truncated by capture at offset {base + len(data)}: "
                f"{len(data)} of {data_offset * 4} header bytes captured"
            )
        return _from_fixed(fixed, options, error, tail)

    def build(
        self, payload: bytes = b"", *, src: str | None = None, dst: str | None = None
    ) -> bytes:
        """The segment bytes.  Every field is written as given, the options
        and ``option_tail`` exactly as given (no padding added); with ``src``
        and ``dst`` the checksum is computed over the IPv4 or IPv6
        pseudo-header instead (RFC 9293 §3.1)."""
        option_bytes = build_options(self.options) + self.option_tail
        if TCP_MIN_LEN + len(option_bytes) != self.header_len and (
            self.option_error is None or TCP_MIN_LEN + len(option_bytes) > self.header_len
        ):
            raise ValueError(
                f"options take {len(option_bytes)} bytes but data offset {self.data_offset} "
                f"leaves {self.header_len - TCP_MIN_LEN}"
            )
        offset_flags = (self.data_offset << 12) | (self.reserved << 9) | int(self.flags)
        fields = [
            self.sport,
            self.dport,
            self.seq,
            self.ack,
            offset_flags,
            self.window,
            0 if src is not None else self.checksum,
            self.urgent,
        ]
        segment = TCP_HEADER.pack(*fields) + option_bytes + payload
        if src is None:
            return segment
        if dst is None:
            raise ValueError("a checksum needs both src and dst")
        checksum = tcp_checksum(src, dst, segment)
        return segment[:16] + checksum.to_bytes(2, "big") + segment[18:]

    @classmethod
    def create(
        cls,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: Flags,
        window: int,
        options: tuple[TcpOption, ...] = (),
        urgent: int = 0,
    ) -> TcpHeader:
        """A header with the data offset worked out and the options padded
        to a 32-bit boundary with EOL and zeros (RFC 9293 §3.1); checksum 0
        (``build(src=, dst=)`` fills it in)."""
        length = len(build_options(options))
        pad = -length % 4
        if length + pad > 40:
            raise ValueError(f"options take {length} bytes; a TCP header holds at most 40")
        tail = b""
        if pad:
            options = (*options, EOL)
            tail = bytes(pad - 1)
        return cls(
            sport,
            dport,
            seq % (1 << 32),
            ack % (1 << 32),
            5 + (length + pad) // 4,
            flags,
            window,
            0,
            urgent,
            options,
            None,
            tail,
        )


def _unpack_fixed(data: bytes, base: int) -> tuple[int, ...]:
    """The fixed 20 bytes as ``TCP_FIELDS`` values, after the integrity checks
    ``parse`` and ``parse_truncated`` share: all 20 bytes present, data offset
    at least 5 (RFC 9293 §3.1: the header is at least five 32-bit words)."""
    if len(data) < TCP_MIN_LEN:
        raise WireError(f"truncated TCP header: {len(data)} of 20 bytes", base + len(data))
    fixed: tuple[int, ...] = TCP_HEADER.unpack_from(data)
    data_offset = fixed[4] >> 12
    if data_offset < 5:
        raise WireError(f"TCP data offset {data_offset} < 5", base + 12)
    return fixed


def _from_fixed(
    fixed: tuple[int, ...],
    options: tuple[TcpOption, ...],
    error: str | None,
    tail: bytes,
) -> TcpHeader:
    """A ``TcpHeader`` from ``_unpack_fixed`` values and the scanned options."""
    sport, dport, seq, ack, offset_flags, window, checksum, urgent = fixed
    return TcpHeader(
        sport,
        dport,
        seq,
        ack,
        offset_flags >> 12,
        FLAGS_BY_BITS[offset_flags & _FLAG_MASK],
        window,
        checksum,
        urgent,
        options,
        error,
        tail,
        (offset_flags & _RESERVED_MASK) >> 9,
    )
