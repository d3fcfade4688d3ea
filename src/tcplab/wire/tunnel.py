"""UDP and the two UDP tunnels whose inner TCP the decoder opens: Teredo
(IPv6 in UDP, RFC 4380) and GTP-U (IP in UDP, 3GPP TS 29.281).

Which UDP datagrams are tunnels, a deliberate choice that follows what
tshark 4.0 and Zeek decode on their reference traces:

* GTP-U: either UDP port is 2152 (TS 29.281 §4.4.2) and the message is a
  G-PDU (type 255) whose payload starts with an IPv4 or IPv6 header.  The
  sender's own port may differ from 2152 (an uplink from port 5906 in
  Zeek's ``gtp2_different_udp_port.pcap``): tshark and Zeek both match on
  either port, so we do too.
* Teredo: either UDP port is 3544 (RFC 4380 §2.2, the server port), or,
  on any other port, the payload passes tshark's Teredo heuristic (the
  ``teredo.heuristic_teredo`` preference; Zeek detects Teredo the same way
  on any port): optional authentication and origin indication headers,
  then an IPv6 header whose payload length accounts for exactly the rest
  of the datagram.  Teredo peers talk to each other from arbitrary NAT
  ports (RFC 4380 §5.2), so a port rule alone misses the data packets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from tcplab.wire.error import WireError

__all__ = [
    "GTP_U_PORT",
    "TEREDO_PORT",
    "GtpExtension",
    "GtpU",
    "Teredo",
    "TeredoAuth",
    "TeredoOrigin",
    "UdpHeader",
    "find_tunnel",
]

GTP_U_PORT: Final = 2152  # 3GPP TS 29.281 §4.4.2
TEREDO_PORT: Final = 3544  # RFC 4380 §2.2
GTP_G_PDU: Final = 255  # TS 29.281 §6.1: a G-PDU carries a user packet (T-PDU)
IPV6_HEADER_LEN: Final = 40

_UDP: Final = struct.Struct("!HHHH")
_GTP_MANDATORY: Final = struct.Struct("!BBHI")  # flags, type, length, TEID
_GTP_OPTIONAL: Final = struct.Struct("!HBB")  # sequence, N-PDU number, next extension type
_TEREDO_ORIGIN: Final = struct.Struct("!HHI")  # 0x0000, obfuscated port, obfuscated address
_U16: Final = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class UdpHeader:
    """The UDP header (RFC 768): ports, length (header + data), checksum."""

    sport: int
    dport: int
    length: int
    checksum: int

    SIZE = _UDP.size

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> UdpHeader:
        if len(data) - pos < cls.SIZE:
            raise WireError(f"truncated UDP header: {max(len(data) - pos, 0)} of 8 bytes", pos)
        sport, dport, length, checksum = _UDP.unpack_from(data, pos)
        if length < cls.SIZE:
            raise WireError(f"UDP length {length} < 8", pos + 4)
        return cls(sport, dport, length, checksum)

    def build(self) -> bytes:
        return _UDP.pack(self.sport, self.dport, self.length, self.checksum)


@dataclass(frozen=True, slots=True)
class GtpExtension:
    """One GTP-U extension header (TS 29.281 §5.2.1): its type (from the
    previous header's "next extension header type" field) and its content
    between the length octet and the next-type octet."""

    kind: int
    content: bytes

    def build(self, next_kind: int) -> bytes:
        # The length octet counts 4-octet units of the whole extension
        # header: length octet + content + next-type octet.
        total = len(self.content) + 2
        if total % 4:
            raise WireError(f"GTP-U extension content of {len(self.content)} bytes not 4n+2", 0)
        return bytes((total // 4,)) + self.content + bytes((next_kind,))


@dataclass(frozen=True, slots=True)
class GtpU:
    """A GTPv1-U header (3GPP TS 29.281 §5.1) with its extension headers.

    ``flags`` is the first octet whole (version 3 bits, PT, spare, E, S,
    PN); ``sequence``, ``npdu`` and the extension chain are present when
    any of E, S, PN is set (the optional 4 octets are then always there,
    §5.1 note 4).  ``length`` counts everything after the mandatory 8
    octets, optional fields and extensions included.
    """

    flags: int
    message_type: int
    length: int
    teid: int
    sequence: int | None = None
    npdu: int | None = None
    next_extension: int = 0  # the type octet in the optional fields
    extensions: tuple[GtpExtension, ...] = ()

    @property
    def version(self) -> int:
        return self.flags >> 5

    @property
    def has_optional(self) -> bool:
        return bool(self.flags & 0x07)  # E, S or PN

    @property
    def header_len(self) -> int:
        if not self.has_optional:
            return _GTP_MANDATORY.size
        return (
            _GTP_MANDATORY.size
            + _GTP_OPTIONAL.size
            + sum(len(e.content) + 2 for e in self.extensions)
        )

    @classmethod
    def parse(cls, data: bytes, pos: int = 0, end: int | None = None) -> GtpU:
        end = len(data) if end is None else end
        if end - pos < _GTP_MANDATORY.size:
            raise WireError(f"truncated GTP-U header: {max(end - pos, 0)} of 8 bytes", pos)
        flags, message_type, length, teid = _GTP_MANDATORY.unpack_from(data, pos)
        if flags >> 5 != 1 or not flags & 0x10:
            # Version 1 with PT=1 is GTP; PT=0 would be GTP' (TS 29.281 §5.1).
            raise WireError(f"not GTPv1-U (flags 0x{flags:02x})", pos)
        if not flags & 0x07:
            return cls(flags, message_type, length, teid)
        at = pos + _GTP_MANDATORY.size
        if end - at < _GTP_OPTIONAL.size:
            raise WireError("truncated GTP-U optional fields", at)
        sequence, npdu, next_kind = _GTP_OPTIONAL.unpack_from(data, at)
        first_kind = next_kind
        at += _GTP_OPTIONAL.size
        extensions: list[GtpExtension] = []
        # §5.2: the chain ends at next type 0; it is only walked when E is set.
        while flags & 0x04 and next_kind:
            if at >= end:
                raise WireError("truncated GTP-U extension header", at)
            units = data[at]
            if units == 0:  # §5.2.1: a length of 0 is invalid
                raise WireError("GTP-U extension header length 0", at)
            if at + units * 4 > end:
                raise WireError(f"GTP-U extension header of {units * 4} bytes runs past", at)
            extensions.append(GtpExtension(next_kind, bytes(data[at + 1 : at + units * 4 - 1])))
            next_kind = data[at + units * 4 - 1]
            at += units * 4
        return cls(flags, message_type, length, teid, sequence, npdu, first_kind, tuple(extensions))

    def build(self) -> bytes:
        out = _GTP_MANDATORY.pack(self.flags, self.message_type, self.length, self.teid)
        if not self.has_optional:
            return out
        kinds = [e.kind for e in self.extensions]
        out += _GTP_OPTIONAL.pack(self.sequence or 0, self.npdu or 0, self.next_extension)
        for index, extension in enumerate(self.extensions):
            out += extension.build(kinds[index + 1] if index + 1 < len(kinds) else 0)
        return out


@dataclass(frozen=True, slots=True)
class TeredoAuth:
    """Teredo authentication encapsulation (RFC 4380 §5.1.1): indicator
    0x0001, client identifier, authentication value, nonce, confirmation."""

    client_id: bytes
    auth_value: bytes
    nonce: bytes
    confirmation: int

    @property
    def size(self) -> int:
        return 4 + len(self.client_id) + len(self.auth_value) + 8 + 1

    def build(self) -> bytes:
        return (
            bytes((0, 1, len(self.client_id), len(self.auth_value)))
            + self.client_id
            + self.auth_value
            + self.nonce
            + bytes((self.confirmation,))
        )


@dataclass(frozen=True, slots=True)
class TeredoOrigin:
    """Teredo origin indication (RFC 4380 §5.1.1): the client's mapped UDP
    port and IPv4 address, each sent with all bits inverted."""

    port: int
    address: bytes  # 4 bytes, as on the wire once de-obfuscated

    SIZE = _TEREDO_ORIGIN.size

    def build(self) -> bytes:
        obscured = int.from_bytes(self.address, "big") ^ 0xFFFFFFFF
        return _TEREDO_ORIGIN.pack(0, self.port ^ 0xFFFF, obscured)


@dataclass(frozen=True, slots=True)
class Teredo:
    """The Teredo headers before the IPv6 packet (RFC 4380 §5.1.1): an
    optional authentication header, then an optional origin indication
    (in that order, each at most once; Zeek rejects any other order)."""

    auth: TeredoAuth | None = None
    origin: TeredoOrigin | None = None

    @property
    def header_len(self) -> int:
        return (self.auth.size if self.auth else 0) + (TeredoOrigin.SIZE if self.origin else 0)

    @classmethod
    def parse(cls, data: bytes, pos: int = 0, end: int | None = None) -> Teredo:
        """The headers at ``data[pos:end]``; raise unless an IPv6 header
        (version 6, 40 bytes available) follows them."""
        end = len(data) if end is None else end
        at = pos
        auth: TeredoAuth | None = None
        origin: TeredoOrigin | None = None
        if end - at >= 2 and data[at] == 0 and data[at + 1] == 1:
            if end - at < 4:
                raise WireError("truncated Teredo authentication header", at)
            id_len, auth_len = data[at + 2], data[at + 3]
            size = 4 + id_len + auth_len + 9
            if end - at < size:
                raise WireError("truncated Teredo authentication header", at)
            start = at + 4
            auth = TeredoAuth(
                bytes(data[start : start + id_len]),
                bytes(data[start + id_len : start + id_len + auth_len]),
                bytes(data[start + id_len + auth_len : start + id_len + auth_len + 8]),
                data[at + size - 1],
            )
            at += size
        if end - at >= 2 and data[at] == 0 and data[at + 1] == 0:
            if end - at < TeredoOrigin.SIZE:
                raise WireError("truncated Teredo origin indication", at)
            _, port, address = _TEREDO_ORIGIN.unpack_from(data, at)
            origin = TeredoOrigin(port ^ 0xFFFF, (address ^ 0xFFFFFFFF).to_bytes(4, "big"))
            at += TeredoOrigin.SIZE
        if end - at < IPV6_HEADER_LEN or data[at] >> 4 != 6:
            raise WireError("no IPv6 header after the Teredo headers", at)
        return cls(auth, origin)

    def build(self) -> bytes:
        return (self.auth.build() if self.auth else b"") + (
            self.origin.build() if self.origin else b""
        )


def _teredo_heuristic(data: bytes, pos: int, end: int) -> Teredo | None:
    """tshark's ``dissect_teredo_heur``: Teredo headers, then an IPv6
    header whose payload length is exactly the rest of the datagram (the
    check RFC 4380 §5.2.3 asks a client to make on what it receives)."""
    if end - pos < IPV6_HEADER_LEN:
        return None
    try:
        teredo = Teredo.parse(data, pos, end)
    except WireError:
        return None
    inner = pos + teredo.header_len
    (payload_length,) = _U16.unpack_from(data, inner + 4)
    return teredo if inner + IPV6_HEADER_LEN + payload_length == end else None


def find_tunnel(
    udp: UdpHeader, data: bytes, pos: int, end: int
) -> tuple[str, GtpU | Teredo, int] | str:
    """The tunnel in the UDP payload ``data[pos:end]``: ``(name, header,
    inner IP offset)``, or a reason it holds no tunnelled IP packet
    ("UDP" for plain UDP)."""
    ports = (udp.sport, udp.dport)
    if GTP_U_PORT in ports:
        try:
            gtp = GtpU.parse(data, pos, end)
        except WireError:
            return "UDP"  # tshark shows a malformed GTP; there is no TCP in it
        if gtp.message_type != GTP_G_PDU:
            return f"GTP-U message {gtp.message_type}"
        inner = pos + gtp.header_len
        if inner >= end or data[inner] >> 4 not in (4, 6):
            return "GTP-U without an IP packet"
        return ("gtp", gtp, inner)
    if TEREDO_PORT in ports:
        try:
            teredo = Teredo.parse(data, pos, end)
        except WireError:
            return "UDP"  # Teredo qualification or a bare UDP probe, no IPv6
        return ("teredo", teredo, pos + teredo.header_len)
    found = _teredo_heuristic(data, pos, end)
    if found is not None:
        return ("teredo", found, pos + found.header_len)
    return "UDP"
