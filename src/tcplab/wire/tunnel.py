"""The tunnels whose inner TCP the decoder opens: IP in IP (RFC 2003,
RFC 4213), GRE (RFC 2784, RFC 2890, RFC 1701's routing), and in UDP Teredo
(IPv6, RFC 4380), GTP-U (IP, 3GPP TS 29.281), VXLAN (Ethernet, RFC 7348),
Geneve (RFC 8926) and GRE-in-UDP (RFC 8086).

What each tunnel carries is named by ``payload_ethertype``: None for an IP
packet whose version is its first nibble (IP in IP, GTP-U, Teredo), or an
EtherType (GRE's and Geneve's protocol type field; 0x6558, transparent
Ethernet bridging, for a whole Ethernet frame as VXLAN always carries).
The decoder walks from there with ``tcplab.wire.link``'s EtherType rules,
so VLAN tags, MPLS and PPPoE inside a tunnel are opened as on a link.

GRE, VXLAN and Geneve are opened as tshark 4.0 opens them
(``packet-gre.c``, ``packet-vxlan.c``, ``packet-geneve.c``): the payload is
handed on by the protocol type whatever the GRE version, VXLAN flags or
Geneve version say; GRE's checksum is not required to verify.  VXLAN and
Geneve are matched on either UDP port (4789, 6081; tshark tries the lower
port of the two first, and registers these only on those ports).

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
from tcplab.wire.link import ETHERTYPE_TEB

__all__ = [
    "ETHERTYPE_ERSPAN_II",
    "ETHERTYPE_ERSPAN_III",
    "ETHERTYPE_TEB",
    "GENEVE_PORT",
    "GRE_IN_UDP_PORT",
    "GTP_U_PORT",
    "TEREDO_PORT",
    "VXLAN_PORT",
    "ErspanHeader",
    "GeneveHeader",
    "GeneveOption",
    "GreHeader",
    "GreSre",
    "GtpExtension",
    "GtpU",
    "Teredo",
    "TeredoAuth",
    "TeredoOrigin",
    "UdpHeader",
    "VxlanHeader",
    "find_tunnel",
    "gre_payload",
    "payload_ethertype",
]

GTP_U_PORT: Final = 2152  # 3GPP TS 29.281 §4.4.2
VXLAN_PORT: Final = 4789  # RFC 7348 §5 (IANA)
GENEVE_PORT: Final = 6081  # RFC 8926 §3.3
GRE_IN_UDP_PORT: Final = 4754  # RFC 8086 §3
TEREDO_PORT: Final = 3544  # RFC 4380 §2.2
GTP_G_PDU: Final = 255  # TS 29.281 §6.1: a G-PDU carries a user packet (T-PDU)
IPV6_HEADER_LEN: Final = 40

_UDP: Final = struct.Struct("!HHHH")
_GTP_MANDATORY: Final = struct.Struct("!BBHI")  # flags, type, length, TEID
_GTP_OPTIONAL: Final = struct.Struct("!HBB")  # sequence, N-PDU number, next extension type
_TEREDO_ORIGIN: Final = struct.Struct("!HHI")  # 0x0000, obfuscated port, obfuscated address
_U16: Final = struct.Struct("!H")
_GRE_FIXED: Final = struct.Struct("!HH")  # C R K S s Recur | flags | version, protocol type
_U32: Final = struct.Struct("!I")
_VXLAN: Final = struct.Struct("!II")  # flags + 24 reserved bits, VNI + 8 reserved bits
_GENEVE: Final = struct.Struct("!BBHI")  # ver|opt len, O|C|rsvd, protocol type, VNI|rsvd
_GENEVE_OPTION: Final = struct.Struct("!HBB")  # class, type, rsvd(3)|length(5)

# GRE flag bits of the first 16-bit word (RFC 1701 §2.1; RFC 2784 §2.1 keeps
# C and the version, RFC 2890 §2 adds K and S back; RFC 2637 §4.1 the A bit).
GRE_CHECKSUM: Final = 0x8000
GRE_ROUTING: Final = 0x4000
GRE_KEY: Final = 0x2000
GRE_SEQUENCE: Final = 0x1000
GRE_ACK: Final = 0x0080  # enhanced GRE (PPTP, version 1) only
GRE_VERSION: Final = 0x0007
ETHERTYPE_PPP: Final = 0x880B  # what PPTP's enhanced GRE carries


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


@dataclass(frozen=True, slots=True)
class GreSre:
    """A source route entry of RFC 1701 GRE (§2.1): address family, SRE
    offset, and the routing information (its length is the SRE length)."""

    family: int
    offset: int
    info: bytes

    def build(self) -> bytes:
        return _GRE_FIXED.pack(self.family, self.offset << 8 | len(self.info)) + self.info


_GRE_SRE_END: Final = GreSre(0, 0, b"")  # §2.1: family 0 and length 0 end the list


@dataclass(frozen=True, slots=True)
class GreHeader:
    """A GRE header (RFC 2784 §2.1 with RFC 2890's key and sequence number,
    RFC 1701's routing, and PPTP's acknowledgment, RFC 2637 §4.1).

    ``flags`` is the first 16-bit word whole (flag bits and version); the
    optional fields are None when their bit is clear.  ``checksum`` and
    ``offset`` travel together: either C or R puts both on the wire.  With
    R set, ``routing`` holds the SREs before the terminating null SRE.  In
    PPTP's enhanced GRE (version 1 carrying PPP) the key field is the
    payload length and call ID, kept here as one 32-bit ``key``.
    """

    flags: int
    protocol: int
    checksum: int | None = None
    offset: int | None = None
    key: int | None = None
    sequence: int | None = None
    ack: int | None = None
    routing: tuple[GreSre, ...] = ()

    @property
    def version(self) -> int:
        return self.flags & GRE_VERSION

    @property
    def enhanced(self) -> bool:
        """PPTP's enhanced GRE, where the A bit is defined (packet-gre.c's is_ppp)."""
        return self.protocol == ETHERTYPE_PPP and bool(self.version)

    @property
    def header_len(self) -> int:
        size = _GRE_FIXED.size
        for bits in (GRE_CHECKSUM | GRE_ROUTING, GRE_KEY, GRE_SEQUENCE):
            size += 4 if self.flags & bits else 0
        if self.enhanced and self.flags & GRE_ACK:
            size += 4
        if self.flags & GRE_ROUTING:
            size += sum(4 + len(sre.info) for sre in self.routing) + 4
        return size

    @classmethod
    def parse(cls, data: bytes, pos: int = 0, end: int | None = None) -> GreHeader:
        end = len(data) if end is None else end
        if end - pos < _GRE_FIXED.size:
            raise WireError(f"truncated GRE header: {max(end - pos, 0)} of 4 bytes", pos)
        flags, protocol = _GRE_FIXED.unpack_from(data, pos)
        at = pos + _GRE_FIXED.size
        enhanced = protocol == ETHERTYPE_PPP and bool(flags & GRE_VERSION)

        def word(name: str) -> int:
            nonlocal at
            if end - at < 4:
                raise WireError(f"truncated GRE {name} field", at)
            (value,) = _U32.unpack_from(data, at)
            at += 4
            return int(value)

        checksum = offset = key = sequence = ack = None
        if flags & (GRE_CHECKSUM | GRE_ROUTING):
            both = word("checksum")
            checksum, offset = both >> 16, both & 0xFFFF
        if flags & GRE_KEY:
            key = word("key")
        if flags & GRE_SEQUENCE:
            sequence = word("sequence number")
        if enhanced and flags & GRE_ACK:
            ack = word("acknowledgment number")
        routing: list[GreSre] = []
        if flags & GRE_ROUTING:
            while True:  # ends at the null SRE, or raises: each step moves on
                family_offset = word("routing (SRE)")
                family, sre_offset, length = (
                    family_offset >> 16, family_offset >> 8 & 0xFF, family_offset & 0xFF,
                )
                if family == 0 and length == 0:
                    break
                if end - at < length:
                    raise WireError(f"GRE SRE of {length} bytes runs past the packet", at)
                routing.append(GreSre(family, sre_offset, bytes(data[at : at + length])))
                at += length
        return cls(flags, protocol, checksum, offset, key, sequence, ack, tuple(routing))

    def build(self) -> bytes:
        out = _GRE_FIXED.pack(self.flags, self.protocol)
        if self.flags & (GRE_CHECKSUM | GRE_ROUTING):
            out += _GRE_FIXED.pack(self.checksum or 0, self.offset or 0)
        for bit, value in ((GRE_KEY, self.key), (GRE_SEQUENCE, self.sequence)):
            if self.flags & bit:
                out += _U32.pack(value or 0)
        if self.enhanced and self.flags & GRE_ACK:
            out += _U32.pack(self.ack or 0)
        if self.flags & GRE_ROUTING:
            out += b"".join(sre.build() for sre in (*self.routing, _GRE_SRE_END))
        return out


@dataclass(frozen=True, slots=True)
class VxlanHeader:
    """The VXLAN header (RFC 7348 §5): flags (I, 0x08, says the VNI is
    valid), 24 reserved bits, the 24-bit VNI, 8 reserved bits."""

    flags: int
    vni: int
    reserved1: int = 0
    reserved2: int = 0

    SIZE = _VXLAN.size

    @classmethod
    def parse(cls, data: bytes, pos: int = 0, end: int | None = None) -> VxlanHeader:
        end = len(data) if end is None else end
        if end - pos < cls.SIZE:
            raise WireError(f"truncated VXLAN header: {max(end - pos, 0)} of 8 bytes", pos)
        first, second = _VXLAN.unpack_from(data, pos)
        return cls(first >> 24, second >> 8, first & 0xFFFFFF, second & 0xFF)

    def build(self) -> bytes:
        return _VXLAN.pack(self.flags << 24 | self.reserved1, self.vni << 8 | self.reserved2)


@dataclass(frozen=True, slots=True)
class GeneveOption:
    """A Geneve option (RFC 8926 §3.5): class, type (its high bit: critical),
    3 reserved bits, and data of 4-byte units (the length field counts them)."""

    option_class: int
    option_type: int
    data: bytes
    reserved: int = 0

    @property
    def size(self) -> int:
        return _GENEVE_OPTION.size + len(self.data)

    def build(self) -> bytes:
        if len(self.data) % 4 or len(self.data) > 31 * 4:
            raise WireError(f"Geneve option data of {len(self.data)} bytes", 0)
        return (
            _GENEVE_OPTION.pack(
                self.option_class, self.option_type, self.reserved << 5 | len(self.data) // 4
            )
            + self.data
        )


@dataclass(frozen=True, slots=True)
class GeneveHeader:
    """The Geneve header (RFC 8926 §3.4): version, the O (control packet)
    and C (critical options present) bits, the protocol type of what
    follows (an EtherType), the 24-bit VNI, then the options."""

    version: int
    protocol: int
    vni: int
    oam: bool = False
    critical: bool = False
    options: tuple[GeneveOption, ...] = ()
    reserved_flags: int = 0  # the 6 reserved bits after O and C
    reserved: int = 0  # the octet after the VNI

    BASE = _GENEVE.size

    @property
    def header_len(self) -> int:
        return self.BASE + sum(option.size for option in self.options)

    @classmethod
    def parse(cls, data: bytes, pos: int = 0, end: int | None = None) -> GeneveHeader:
        end = len(data) if end is None else end
        if end - pos < cls.BASE:
            raise WireError(f"truncated Geneve header: {max(end - pos, 0)} of 8 bytes", pos)
        version_length, flags, protocol, vni_reserved = _GENEVE.unpack_from(data, pos)
        options_end = pos + cls.BASE + (version_length & 0x3F) * 4
        if options_end > end:
            raise WireError(f"Geneve options of {options_end - pos - 8} bytes run past", pos)
        at = pos + cls.BASE
        options: list[GeneveOption] = []
        while at < options_end:
            if options_end - at < _GENEVE_OPTION.size:
                raise WireError("truncated Geneve option", at)
            option_class, option_type, reserved_length = _GENEVE_OPTION.unpack_from(data, at)
            size = _GENEVE_OPTION.size + (reserved_length & 0x1F) * 4
            if at + size > options_end:
                raise WireError(f"Geneve option of {size} bytes is past the options", at)
            options.append(
                GeneveOption(
                    option_class, option_type, bytes(data[at + 4 : at + size]), reserved_length >> 5
                )
            )
            at += size
        return cls(
            version_length >> 6,
            protocol,
            vni_reserved >> 8,
            bool(flags & 0x80),
            bool(flags & 0x40),
            tuple(options),
            flags & 0x3F,
            vni_reserved & 0xFF,
        )

    def build(self) -> bytes:
        options = b"".join(option.build() for option in self.options)
        if len(options) > 0x3F * 4:
            raise WireError(f"Geneve options of {len(options)} bytes exceed 252", 0)
        flags = (0x80 if self.oam else 0) | (0x40 if self.critical else 0) | self.reserved_flags
        return (
            _GENEVE.pack(
                self.version << 6 | len(options) // 4,
                flags,
                self.protocol,
                self.vni << 8 | self.reserved,
            )
            + options
        )


ETHERTYPE_ERSPAN_II: Final = 0x88BE  # ERSPAN type I/II over GRE (packet-cisco-erspan.c)
ETHERTYPE_ERSPAN_III: Final = 0x22EB
_ERSPAN_II: Final = struct.Struct("!HHI")  # ver|VLAN, COS|En|T|session, reserved|index
_ERSPAN_III: Final = struct.Struct("!HHIHH")  # ver|VLAN, COS|BSO|T|session, timestamp, SGT, flags


@dataclass(frozen=True, slots=True)
class ErspanHeader:
    """Cisco's ERSPAN header over GRE, as tshark 4.0 reads it
    (``packet-cisco-erspan.c``; draft-foschiano-erspan): version 1 (type II,
    8 bytes) or 2 (type III, 12 bytes, then an 8-byte platform sub-header
    when the O bit is set).  ``session`` is the second 16-bit word whole;
    ``index`` type II's last 32 bits; ``flags`` type III's last word (P, the
    frame type, hardware ID, D, granularity, O)."""

    version: int
    vlan: int
    session: int
    index: int = 0
    timestamp: int = 0
    sgt: int = 0
    flags: int = 0
    subheader: bytes = b""

    @property
    def frame_type(self) -> int:
        """0: an Ethernet frame follows; 2: IP (tshark dissects it as data)."""
        return (self.flags >> 10) & 0x1F if self.version == 2 else 0

    @property
    def header_len(self) -> int:
        return _ERSPAN_II.size if self.version == 1 else _ERSPAN_III.size + len(self.subheader)

    @classmethod
    def parse(cls, data: bytes, pos: int = 0, end: int | None = None) -> ErspanHeader:
        end = len(data) if end is None else end
        if end - pos < 2:
            raise WireError("truncated ERSPAN header", pos)
        version = data[pos] >> 4
        if version == 1:
            if end - pos < _ERSPAN_II.size:
                raise WireError("truncated ERSPAN type II header", pos)
            first, session, index = _ERSPAN_II.unpack_from(data, pos)
            return cls(1, first & 0x0FFF, session, index)
        if version == 2:
            if end - pos < _ERSPAN_III.size:
                raise WireError("truncated ERSPAN type III header", pos)
            first, session, timestamp, sgt, flags = _ERSPAN_III.unpack_from(data, pos)
            at = pos + _ERSPAN_III.size
            subheader = b""
            if flags & 0x0001:
                if end - at < 8:
                    raise WireError("truncated ERSPAN platform sub-header", at)
                subheader = bytes(data[at : at + 8])
            return cls(2, first & 0x0FFF, session, 0, timestamp, sgt, flags, subheader)
        raise WireError(f"ERSPAN version {version}", pos)

    def build(self) -> bytes:
        first = self.version << 12 | self.vlan
        if self.version == 1:
            return _ERSPAN_II.pack(first, self.session, self.index)
        return (
            _ERSPAN_III.pack(first, self.session, self.timestamp, self.sgt, self.flags)
            + self.subheader
        )


def gre_payload(gre: GreHeader, data: bytes, pos: int, end: int) -> tuple[int, int] | str:
    """Where GRE's payload at ``data[pos:end]`` starts and its EtherType,
    past an ERSPAN header when there is one, or why there is no packet.

    tshark 4.0: protocol 0x88BE has an ERSPAN header only when GRE's
    sequence number is present (otherwise it is type I: the mirrored
    Ethernet frame at once); 0x22EB always has one."""
    protocol = gre.protocol
    if protocol == ETHERTYPE_ERSPAN_III or (
        protocol == ETHERTYPE_ERSPAN_II and gre.flags & GRE_SEQUENCE
    ):
        try:
            erspan = ErspanHeader.parse(data, pos, end)
        except WireError as exc:
            return exc.message
        if erspan.frame_type != 0:
            return f"ERSPAN frame type {erspan.frame_type}"
        return pos + erspan.header_len, ETHERTYPE_TEB
    if protocol == ETHERTYPE_ERSPAN_II:
        return pos, ETHERTYPE_TEB
    return pos, protocol


TunnelHeader = GtpU | Teredo | VxlanHeader | GeneveHeader | GreHeader


def payload_ethertype(header: TunnelHeader) -> int | None:
    """What follows a tunnel header: an EtherType, or None for an IP packet
    whose first nibble says its version (GTP-U's T-PDU, Teredo's IPv6)."""
    if isinstance(header, VxlanHeader):
        return ETHERTYPE_TEB  # RFC 7348 §5: an inner Ethernet frame, always
    if isinstance(header, GeneveHeader | GreHeader):
        return header.protocol
    return None


def find_tunnel(
    udp: UdpHeader, data: bytes, pos: int, end: int
) -> tuple[str, TunnelHeader, int] | str:
    """The tunnel in the UDP payload ``data[pos:end]``: ``(name, header,
    offset of what it carries)``, or a reason it holds no tunnelled packet
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
    for port, name, parse in (
        (VXLAN_PORT, "vxlan", VxlanHeader.parse),
        (GENEVE_PORT, "geneve", GeneveHeader.parse),
        (GRE_IN_UDP_PORT, "gre", GreHeader.parse),
    ):
        if port in ports:
            try:
                header: VxlanHeader | GeneveHeader | GreHeader = parse(data, pos, end)
            except WireError as exc:
                return f"{name}: {exc.message}"
            return (name, header, pos + _header_len(header))
    found = _teredo_heuristic(data, pos, end)
    if found is not None:
        return ("teredo", found, pos + found.header_len)
    return "UDP"


def _header_len(header: VxlanHeader | GeneveHeader | GreHeader) -> int:
    return VxlanHeader.SIZE if isinstance(header, VxlanHeader) else header.header_len
