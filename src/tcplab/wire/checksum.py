"""The Internet checksum (RFC 1071) and the TCP pseudo-header (RFC 9293 §3.1).

The one's complement sum of 16-bit words is computed with one big-integer
remainder instead of a Python loop: since 2**16 ≡ 1 (mod 0xFFFF), a
big-endian byte string read as one integer is congruent, mod 0xFFFF, to the
sum of its 16-bit words, and end-around carry is exactly arithmetic mod
0xFFFF.  The one ambiguity, "+0" versus "-0" (0x0000 versus 0xFFFF), is
settled by RFC 1071's own rule: a sum over data that is not all zero never
comes out as +0.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

_PSEUDO_V4: Final = struct.Struct("!4s4sxBH")  # RFC 9293 §3.1 Figure 2
_PSEUDO_V6: Final = struct.Struct("!16s16sI3xB")  # RFC 8200 §8.1
IPPROTO_TCP: Final = 6


def ones_complement_sum(data: bytes | bytearray | memoryview) -> int:
    """The 16-bit one's complement sum of ``data`` (odd length: pad a zero byte)."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    value = int.from_bytes(data, "big")
    total = value % 0xFFFF
    if total == 0 and value != 0:
        return 0xFFFF
    return total


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """The checksum field value for ``data`` (with its checksum field zeroed)."""
    return 0xFFFF - ones_complement_sum(data)


def pseudo_header(src: str, dst: str, length: int, protocol: int = IPPROTO_TCP) -> bytes:
    """The IPv4 or IPv6 pseudo-header, chosen by the address family of ``src``."""
    if ":" in src:
        return _PSEUDO_V6.pack(
            socket.inet_pton(socket.AF_INET6, src),
            socket.inet_pton(socket.AF_INET6, dst),
            length,
            protocol,
        )
    return _PSEUDO_V4.pack(
        socket.inet_pton(socket.AF_INET, src),
        socket.inet_pton(socket.AF_INET, dst),
        protocol,
        length,
    )


def tcp_checksum(src: str, dst: str, segment: bytes | bytearray | memoryview) -> int:
    """The value for the checksum field of ``segment`` (header + payload),
    which must be passed with its checksum field (bytes 16-17) zeroed."""
    return internet_checksum(pseudo_header(src, dst, len(segment)) + bytes(segment))


def verify_tcp_checksum(src: str, dst: str, segment: bytes | bytearray | memoryview) -> bool:
    """True when the segment's checksum field is right (the total sums to -0)."""
    return ones_complement_sum(pseudo_header(src, dst, len(segment)) + bytes(segment)) == 0xFFFF


def offload_partial_sum(src: str, dst: str, length: int) -> int:
    """What a checksum-offloading sender leaves in the TCP checksum field.

    With CHECKSUM_PARTIAL (Linux, and macOS/Windows NICs alike) the stack
    stores the folded pseudo-header sum and lets the NIC finish; a capture
    taken on the sending host (loopback above all) sees that value.  It is
    not a wire error, so the decoder reports such a checksum as unverifiable.
    """
    return ones_complement_sum(pseudo_header(src, dst, length))
