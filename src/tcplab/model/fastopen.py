"""TCP Fast Open (RFC 7413): the server's cookie and the client's cookie cache.

Theory of operation.  A server that does Fast Open hands each client address
a cookie, a MAC of the addresses under a key only the server knows (RFC 7413
§4.1.2).  A client asks for one with an empty Fast Open option on an ordinary
SYN (§4.1.1), caches it per server (§4.1.3) and, on later connections, sends
it on a SYN that already carries data; the server accepts that data before
the handshake completes only if the cookie is the one it would generate
(§4.2.2).  Everything here is pure: the key is data (the
``net.ipv4.tcp_fastopen_key`` sysctl's text), the cache a dict the host owns.

Linux computes the cookie as SipHash-2-4 (Aumasson and Bernstein, "SipHash:
a fast short-input PRF", 2012) over the IPv4 source and destination
addresses (or the IPv6 ones), keyed with the 16-byte key, and sends the
64-bit result little-endian (net/ipv4/tcp_fastopen.c,
``__tcp_fastopen_cookie_gen_cipher``).  The model does the same, so a cookie
the model's server issues is the one a Linux server with the same key
issues, and packetdrill's literal cookies (``tcp/fastopen/server/opt34``)
are valid for the model too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tcplab.errors import InputError

_MASK = (1 << 64) - 1

# Linux's tcp_fastopen sysctl bits (include/net/tcp.h).
CLIENT_ENABLE = 0x1  # sendto(MSG_FASTOPEN) and TCP_FASTOPEN_CONNECT work
SERVER_ENABLE = 0x2  # listeners may accept data on the SYN
CLIENT_NO_COOKIE = 0x4  # the client sends data on the SYN without any cookie
SERVER_COOKIE_NOT_REQD = 0x200  # the server accepts SYN data without a cookie
SERVER_WO_SOCKOPT = 0x400  # every listener does Fast Open (queue = backlog)

COOKIE_SIZE = 8  # TCP_FASTOPEN_COOKIE_SIZE: what Linux generates
COOKIE_MIN, COOKIE_MAX = 4, 16  # RFC 7413 §4.1.1
# Linux sizes SYN data as the MSS less MAX_TCP_OPTION_SPACE (tcp_send_syn_data).
SYN_OPTION_SPACE = 40


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash24(k0: int, k1: int, data: bytes) -> int:
    """SipHash-2-4 of ``data`` under the 128-bit key (k0, k1), as a 64-bit integer."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & _MASK
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _MASK
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    whole = len(data) - len(data) % 8
    for i in range(0, whole, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        rounds(2)
        v0 ^= m
    last = (len(data) & 0xFF) << 56 | int.from_bytes(data[whole:], "little")
    v3 ^= last
    rounds(2)
    v0 ^= last
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def parse_key(text: str, where: str = "net.ipv4.tcp_fastopen_key") -> tuple[int, int]:
    """The sysctl's text (``a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4``, a backup key
    after a comma is ignored) as SipHash's (k0, k1).

    Linux reads four 32-bit hex words, stores each little-endian and loads the
    16 bytes as two little-endian 64-bit halves (proc_tcp_fastopen_key,
    tcp_fastopen_reset_cipher)."""
    primary = text.split(",")[0].strip()
    words = primary.split("-")
    try:
        values = [int(w, 16) for w in words]
    except ValueError:
        values = []
    if len(values) != 4 or any(not 0 <= v <= 0xFFFFFFFF for v in values):
        raise InputError(f"{where}: {text!r} is not four 32-bit hex words joined by '-'")
    raw = b"".join(v.to_bytes(4, "little") for v in values)
    return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")


def cookie_for(key: tuple[int, int], src: str, dst: str) -> bytes:
    """The cookie a server with ``key`` gives the client at ``src`` talking to ``dst``.

    RFC 7413 §4.1.2: a MAC of the client's address (Linux: both addresses
    of the SYN, source first), ``COOKIE_SIZE`` bytes."""
    data = ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
    return siphash24(key[0], key[1], data).to_bytes(8, "little")


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What a client remembers about one server (Linux tcp_metrics' fastopen part).

    RFC 7413 §4.1.3: the cookie per server IP address, with the MSS the
    server announced, which bounds how much data the next SYN carries."""

    cookie: bytes = b""
    experimental: bool = False  # the server answered in the kind-254 encoding
    mss: int | None = None


def cookie_option_ok(cookie: bytes | None) -> bool:
    """A received Fast Open option Linux takes as a cookie (tcp_parse_fastopen_option):
    an even length between COOKIE_MIN and COOKIE_MAX."""
    return cookie is not None and COOKIE_MIN <= len(cookie) <= COOKIE_MAX and len(cookie) % 2 == 0
