"""IPv4 (RFC 791 §3.1) and IPv6 (RFC 8200 §3, §4) headers.

Both parse from the first byte of the IP header and return the payload
trimmed to the length the header declares, so Ethernet padding after a
short packet is never taken for data.  A capture cut short (snap length)
gives a shorter payload; the declared length stays in the header.

A declared length of 0 means "not filled in": Windows and macOS captures
with TCP segmentation offload show IPv4 total length 0 (Wireshark:
"presumed to be because of TSO"), and IPv6 uses payload length 0 for
jumbograms (RFC 2675) and Linux BIG TCP.  Then the rest of the buffer is
the payload.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Final

from tcplab.wire.checksum import internet_checksum, ones_complement_sum
from tcplab.wire.error import WireError

# RFC 791 §3.1 Figure 4, in wire order.
IPV4_FIELDS: Final = (
    ("version_ihl", "B"),  # Version (4) | IHL (4), IHL in 32-bit words
    ("tos", "B"),  # Type of Service (DSCP | ECN, RFC 2474 / 3168)
    ("total_length", "H"),  # Total Length, header + data, bytes
    ("ident", "H"),  # Identification
    ("flags_frag", "H"),  # Flags (3: reserved, DF, MF) | Fragment Offset (13, 8-byte units)
    ("ttl", "B"),  # Time to Live
    ("protocol", "B"),  # Protocol
    ("checksum", "H"),  # Header Checksum
    ("src", "4s"),  # Source Address
    ("dst", "4s"),  # Destination Address
)
IPV4_HEADER: Final = struct.Struct("!" + "".join(code for _, code in IPV4_FIELDS))
IPV4_MIN_LEN: Final = IPV4_HEADER.size  # 20

# RFC 8200 §3, in wire order.
IPV6_FIELDS: Final = (
    ("version_class_flow", "I"),  # Version (4) | Traffic Class (8) | Flow Label (20)
    ("payload_length", "H"),  # Payload Length: everything after these 40 bytes
    ("next_header", "B"),  # Next Header
    ("hop_limit", "B"),  # Hop Limit
    ("src", "16s"),  # Source Address
    ("dst", "16s"),  # Destination Address
)
IPV6_HEADER: Final = struct.Struct("!" + "".join(code for _, code in IPV6_FIELDS))
IPV6_LEN: Final = IPV6_HEADER.size  # 40

IP_FLAG_RESERVED: Final = 0x4
IP_FLAG_DF: Final = 0x2
IP_FLAG_MF: Final = 0x1

# Extension headers that share the (next header, length) layout, RFC 8200 §4
# and RFC 7045 §4; AH (RFC 4302 §2.2) counts its length in 4-byte units.
EXT_HOP_BY_HOP: Final = 0
EXT_ROUTING: Final = 43
EXT_FRAGMENT: Final = 44
EXT_AH: Final = 51
EXT_DST_OPTS: Final = 60
EXTENSION_HEADERS: Final = frozenset({0, 43, 44, 51, 60, 135, 139, 140})
_FRAGMENT: Final = struct.Struct("!BBHI")  # next header, reserved, offset|res|M, identification


def _ntop4(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw)


def _ntop6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def ipv4_fixed(
    data: bytes, base: int = 0
) -> tuple[int, int, int, int, int, int, int, int, bytes, bytes]:
    """The validated fixed fields of the IPv4 header at ``data[base:]``:
    ``(header_len, tos, total_length, ident, flags_frag, ttl, protocol,
    checksum, src, dst)``.  Shared by ``IPv4Header.parse`` and the decoder's
    fast path.  Offsets in errors count from ``data[0]``."""
    available = len(data) - base
    if available < IPV4_MIN_LEN:
        raise WireError(f"truncated IPv4 header: {max(available, 0)} of 20 bytes", len(data))
    version_ihl, tos, total_length, ident, flags_frag, ttl, protocol, checksum, src, dst = (
        IPV4_HEADER.unpack_from(data, base)
    )
    if version_ihl >> 4 != 4:
        raise WireError(f"IP version {version_ihl >> 4} in an IPv4 header", base)
    header_len = (version_ihl & 0xF) * 4
    if header_len < IPV4_MIN_LEN:
        raise WireError(f"IPv4 IHL {header_len // 4} < 5", base)
    if header_len > available:
        raise WireError(
            f"truncated IPv4 header: IHL {header_len // 4} needs {header_len} bytes, "
            f"{available} captured",
            len(data),
        )
    if total_length and total_length < header_len:
        raise WireError(f"IPv4 total length {total_length} < header length {header_len}", base + 2)
    return (header_len, tos, total_length, ident, flags_frag, ttl, protocol, checksum, src, dst)


@dataclass(frozen=True, slots=True)
class IPv4Header:
    """An IPv4 header; ``flags`` are the 3 flag bits (reserved, DF, MF),
    ``frag_offset`` is in 8-byte units, ``options`` raw (RFC 791 §3.1)."""

    ihl: int
    tos: int
    total_length: int
    ident: int
    flags: int
    frag_offset: int
    ttl: int
    protocol: int
    checksum: int
    src: str
    dst: str
    options: bytes = b""

    @property
    def header_len(self) -> int:
        return self.ihl * 4

    @property
    def is_fragment(self) -> bool:
        """MF set or a non-zero offset: part of a datagram, not all of it."""
        return bool(self.flags & IP_FLAG_MF) or self.frag_offset != 0

    @property
    def dont_fragment(self) -> bool:
        return bool(self.flags & IP_FLAG_DF)

    @classmethod
    def parse(cls, data: bytes, base: int = 0) -> tuple[IPv4Header, bytes]:
        """``(header, payload)``; the payload stops at ``total_length``."""
        header_len, tos, total_length, ident, flags_frag, ttl, protocol, checksum, src, dst = (
            ipv4_fixed(data, base)
        )
        end = base + total_length if total_length else len(data)
        header = cls(
            header_len // 4,
            tos,
            total_length,
            ident,
            flags_frag >> 13,
            flags_frag & 0x1FFF,
            ttl,
            protocol,
            checksum,
            _ntop4(src),
            _ntop4(dst),
            data[base + IPV4_MIN_LEN : base + header_len],
        )
        return header, data[base + header_len : end]

    def build(self, payload: bytes = b"") -> bytes:
        """Header and payload, every field as given (see ``create`` for one
        with lengths and checksum filled in)."""
        return (
            IPV4_HEADER.pack(
                0x40 | self.ihl,
                self.tos,
                self.total_length,
                self.ident,
                (self.flags << 13) | self.frag_offset,
                self.ttl,
                self.protocol,
                self.checksum,
                socket.inet_pton(socket.AF_INET, self.src),
                socket.inet_pton(socket.AF_INET, self.dst),
            )
            + self.options
            + payload
        )

    def checksum_ok(self) -> bool:
        """RFC 791 §3.1: the header sums to all ones."""
        return ones_complement_sum(self.build()) == 0xFFFF

    @classmethod
    def create(
        cls,
        src: str,
        dst: str,
        protocol: int,
        payload_len: int,
        *,
        ttl: int = 64,
        ident: int = 0,
        tos: int = 0,
        flags: int = IP_FLAG_DF,
        options: bytes = b"",
    ) -> IPv4Header:
        """A header with IHL, total length and checksum filled in."""
        if len(options) % 4 or len(options) > 40:
            raise ValueError(
                f"IPv4 options must be a multiple of 4 up to 40 bytes, got {len(options)}"
            )
        draft = cls(
            5 + len(options) // 4,
            tos,
            IPV4_MIN_LEN + len(options) + payload_len,
            ident,
            flags,
            0,
            ttl,
            protocol,
            0,
            src,
            dst,
            options,
        )
        checksum = internet_checksum(draft.build())
        return cls(
            draft.ihl,
            tos,
            draft.total_length,
            ident,
            flags,
            0,
            ttl,
            protocol,
            checksum,
            src,
            dst,
            options,
        )


@dataclass(frozen=True, slots=True)
class ExtensionHeader:
    """One IPv6 extension header, raw: ``raw[0]`` is the next header after it."""

    kind: int
    raw: bytes

    @property
    def next_header(self) -> int:
        return self.raw[0]

    @classmethod
    def create(cls, kind: int, next_header: int, body: bytes) -> ExtensionHeader:
        """From the bytes after the first two; ``body`` padded by the caller.

        The length byte counts 8-byte units beyond the first 8 (RFC 8200 §4.3),
        4-byte units beyond the first 8 for AH (RFC 4302 §2.2); the fragment
        header's second byte is reserved (RFC 8200 §4.5) and ``body`` is 6 bytes.
        """
        size = 2 + len(body)
        if kind == EXT_FRAGMENT:
            if size != 8:
                raise ValueError("a fragment header is 8 bytes")
            return cls(kind, bytes((next_header, 0)) + body)
        unit = 4 if kind == EXT_AH else 8
        if size % unit or size < 8:
            raise ValueError(f"extension header {kind} of {size} bytes: not a multiple of {unit}")
        length = size // 4 - 2 if kind == EXT_AH else size // 8 - 1
        return cls(kind, bytes((next_header, length)) + body)


def extension_length(kind: int, data: bytes, pos: int) -> int:
    """Bytes taken by the extension header of type ``kind`` at ``data[pos]``."""
    if kind == EXT_FRAGMENT:
        return 8
    if kind == EXT_AH:
        return (data[pos + 1] + 2) * 4
    return (data[pos + 1] + 1) * 8


def _checked_extension_length(kind: int, data: bytes, pos: int, end: int) -> int:
    if pos + 2 > end:
        raise WireError(f"truncated IPv6 extension header {kind}", pos)
    size = extension_length(kind, data, pos)
    if pos + size > end:
        raise WireError(f"IPv6 extension header {kind} of {size} bytes runs past the packet", pos)
    return size


def walk_extensions(
    data: bytes, pos: int, next_header: int, end: int
) -> tuple[int, int, int | None]:
    """Skip extension headers from ``data[pos]``: ``(protocol, offset,
    fragment_field)`` where ``protocol`` is the first header that is not an
    extension, ``offset`` where it starts, ``fragment_field`` the fragment
    header's offset/M word (None without one).  ``end`` bounds the walk."""
    fragment: int | None = None
    while next_header in EXTENSION_HEADERS:
        size = _checked_extension_length(next_header, data, pos, end)
        if next_header == EXT_FRAGMENT:
            fragment = _FRAGMENT.unpack_from(data, pos)[2]
        next_header = data[pos]
        pos += size
    return next_header, pos, fragment


@dataclass(frozen=True, slots=True)
class IPv6Header:
    """An IPv6 header with its extension headers (RFC 8200 §3-4)."""

    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int
    hop_limit: int
    src: str
    dst: str
    extension_headers: tuple[ExtensionHeader, ...] = ()

    @property
    def protocol(self) -> int:
        """The upper-layer protocol after the extension headers (6 for TCP)."""
        if self.extension_headers:
            return self.extension_headers[-1].next_header
        return self.next_header

    @property
    def header_len(self) -> int:
        """40 plus the extension headers: where the upper layer starts."""
        return IPV6_LEN + sum(len(ext.raw) for ext in self.extension_headers)

    @property
    def fragment(self) -> tuple[int, bool] | None:
        """``(offset in bytes, more fragments)`` from a fragment header, if any."""
        for ext in self.extension_headers:
            if ext.kind == EXT_FRAGMENT:
                word = _FRAGMENT.unpack(ext.raw)[2]
                return (word & 0xFFF8, bool(word & 1))
        return None

    @property
    def is_fragment(self) -> bool:
        """A fragment header with offset or M set; an "atomic fragment"
        (both zero, RFC 6946) is a whole packet."""
        frag = self.fragment
        return frag is not None and (frag[0] != 0 or frag[1])

    @classmethod
    def parse(cls, data: bytes, base: int = 0) -> tuple[IPv6Header, bytes]:
        """``(header, upper-layer payload)``, trimmed to the payload length."""
        if len(data) - base < IPV6_LEN:
            raise WireError(
                f"truncated IPv6 header: {max(len(data) - base, 0)} of 40 bytes", len(data)
            )
        word, payload_length, next_header, hop_limit, src, dst = IPV6_HEADER.unpack_from(data, base)
        if word >> 28 != 6:
            raise WireError(f"IP version {word >> 28} in an IPv6 header", base)
        end = min(len(data), base + IPV6_LEN + payload_length) if payload_length else len(data)
        exts: list[ExtensionHeader] = []
        kind = next_header
        pos = base + IPV6_LEN
        while kind in EXTENSION_HEADERS:
            size = _checked_extension_length(kind, data, pos, end)
            exts.append(ExtensionHeader(kind, data[pos : pos + size]))
            kind = data[pos]
            pos += size
        header = cls(
            (word >> 20) & 0xFF,
            word & 0xFFFFF,
            payload_length,
            next_header,
            hop_limit,
            _ntop6(src),
            _ntop6(dst),
            tuple(exts),
        )
        return header, data[pos:end]

    def build(self, payload: bytes = b"") -> bytes:
        """Header, extension headers and payload, every field as given."""
        return (
            IPV6_HEADER.pack(
                (6 << 28) | (self.traffic_class << 20) | self.flow_label,
                self.payload_length,
                self.next_header,
                self.hop_limit,
                socket.inet_pton(socket.AF_INET6, self.src),
                socket.inet_pton(socket.AF_INET6, self.dst),
            )
            + b"".join(ext.raw for ext in self.extension_headers)
            + payload
        )

    @classmethod
    def create(
        cls,
        src: str,
        dst: str,
        protocol: int,
        payload_len: int,
        *,
        hop_limit: int = 64,
        traffic_class: int = 0,
        flow_label: int = 0,
        extension_headers: tuple[tuple[int, bytes], ...] = (),
    ) -> IPv6Header:
        """A header with the chain of next-header values and the payload
        length filled in; ``extension_headers`` as ``(kind, body)`` pairs."""
        kinds = [kind for kind, _ in extension_headers]
        chain = [*kinds[1:], protocol] if kinds else []
        exts = tuple(
            ExtensionHeader.create(kind, following, body)
            for (kind, body), following in zip(extension_headers, chain, strict=True)
        )
        return cls(
            traffic_class,
            flow_label,
            sum(len(ext.raw) for ext in exts) + payload_len,
            kinds[0] if kinds else protocol,
            hop_limit,
            src,
            dst,
            exts,
        )


def host_text(address: str) -> str:
    """An address ready for ``:port`` to follow: IPv6 in brackets (RFC 3986
    §3.2.2), since its own colons would make the port ambiguous."""
    return f"[{address}]" if ":" in address else address
