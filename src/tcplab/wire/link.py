"""Link layers: from a captured frame to the IP header inside it.

The pcap/pcapng link type (https://www.tcpdump.org/linktypes.html) says
what the frame starts with.  Ethernet-like layers name the next protocol
with an EtherType; VLAN tags (IEEE 802.1Q 0x8100, 802.1ad QinQ 0x88A8, the
pre-standard 0x9100), MPLS label stacks (RFC 3032: 0x8847 / 0x8848) and
PPPoE sessions (RFC 2516: 0x8864) sit between Ethernet and IP and are
walked through.  MPLS does not say what it carries: like Wireshark and
Zeek we look at the first nibble after the bottom-of-stack label (4 or 6).

Two ways in, one meaning:

* ``locate_network(linktype, frame)`` is the decoder's fast path: it only
  returns ``(ip_version, offset)`` or the reason the frame holds no IP.
* ``parse_link(linktype, frame)`` returns every layer as a record with a
  ``build``, for tests, pcap writers and round trips.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final


class LinkType(IntEnum):
    """LINKTYPE_ values used in pcap and pcapng headers."""

    NULL = 0  # BSD loopback: 4-byte address family in the writer's byte order
    ETHERNET = 1
    RAW = 101  # raw IPv4 or IPv6 (RawCap, Linux TUN captures)
    LOOP = 108  # OpenBSD loopback: family in network byte order
    LINUX_SLL = 113  # Linux cooked capture v1, 16-byte header
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276  # Linux cooked capture v2, 20-byte header


# DLT_RAW is 12 on most BSDs and 14 on OpenBSD; savefiles from old libpcap
# may carry either number instead of LINKTYPE_RAW.
_LINKTYPE_ALIASES: Final = {12: LinkType.RAW, 14: LinkType.RAW}

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_TEB: Final = 0x6558  # transparent Ethernet bridging (GRE, Geneve): a frame follows
ETHERTYPE_ARP: Final = 0x0806
ETHERTYPE_IPV6: Final = 0x86DD
ETHERTYPE_VLAN: Final = 0x8100
ETHERTYPE_QINQ: Final = 0x88A8
ETHERTYPE_QINQ_OLD: Final = 0x9100
ETHERTYPE_MPLS: Final = 0x8847
ETHERTYPE_MPLS_MULTICAST: Final = 0x8848
ETHERTYPE_PPPOE_DISCOVERY: Final = 0x8863
ETHERTYPE_PPPOE_SESSION: Final = 0x8864
VLAN_TPIDS: Final = frozenset({ETHERTYPE_VLAN, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD})
MPLS_TYPES: Final = frozenset({ETHERTYPE_MPLS, ETHERTYPE_MPLS_MULTICAST})
PPP_IPV4: Final = 0x0021  # RFC 1332
PPP_IPV6: Final = 0x0057  # RFC 5072
# BSD address families seen in DLT_NULL / DLT_LOOP headers.
AF_INET: Final = 2
AF_INET6_BSD: Final = frozenset({24, 28, 30})  # NetBSD/OpenBSD, FreeBSD, Darwin

_ETHERTYPE_NAMES: Final = {
    ETHERTYPE_ARP: "ARP",
    0x8035: "RARP",
    0x88CC: "LLDP",
    0x888E: "EAPOL",
    0x8809: "slow protocols (LACP)",
    0x88F7: "PTP",
    ETHERTYPE_PPPOE_DISCOVERY: "PPPoE discovery",
}

_ETHERNET: Final = struct.Struct("!6s6sH")  # destination, source, EtherType
_TAG: Final = struct.Struct("!HH")  # VLAN: TCI, next EtherType
_U16: Final = struct.Struct("!H")
_PPPOE_TAIL: Final = struct.Struct("!HH")  # PPPoE length, PPP protocol
_U32: Final = struct.Struct("!I")
_PPPOE: Final = struct.Struct("!BBHHH")  # ver|type, code, session, length, PPP protocol
# Linux cooked v1 (LINKTYPE_LINUX_SLL): packet type, ARPHRD, addr len, addr, protocol.
_SLL: Final = struct.Struct("!HHH8sH")
# Linux cooked v2 (LINKTYPE_LINUX_SLL2): protocol, reserved, ifindex, ARPHRD,
# packet type, addr len, addr.
_SLL2: Final = struct.Struct("!HHIHBB8s")

Located = tuple[int, int, int | None] | str
"""``(ip_version, offset of the IP header, end)``, or why there is no IP.

``end`` is where the link layer says the network packet stops, when it says
so (PPPoE's length field); None otherwise.  Like Wireshark, the decoder
trusts it over a longer IP total length: what follows is Ethernet padding.
"""


def linktype_of(number: int) -> LinkType | None:
    """The ``LinkType`` for a header's number, or None when unsupported."""
    alias = _LINKTYPE_ALIASES.get(number)
    if alias is not None:
        return alias
    try:
        return LinkType(number)
    except ValueError:
        return None


def _ethertype_reason(ethertype: int) -> str:
    if ethertype < 0x0600:  # IEEE 802.3 length field: LLC/SNAP follows
        return "802.3 LLC frame"
    return _ETHERTYPE_NAMES.get(ethertype, f"ethertype 0x{ethertype:04x}")


def _from_ethertype(frame: bytes, ethertype: int, pos: int) -> Located:
    """Walk VLAN tags, MPLS labels and PPPoE from the EtherType at ``pos - 2``."""
    end = len(frame)
    while True:
        if ethertype == ETHERTYPE_IPV4:
            return (4, pos, None)
        if ethertype == ETHERTYPE_IPV6:
            return (6, pos, None)
        if ethertype in VLAN_TPIDS:
            if pos + 4 > end:
                return "truncated VLAN tag"
            ethertype = _U16.unpack_from(frame, pos + 2)[0]
            pos += 4
            continue
        if ethertype in MPLS_TYPES:
            while True:
                if pos + 4 > end:
                    return "truncated MPLS label stack"
                bottom = frame[pos + 2] & 0x01
                pos += 4
                if bottom:
                    break
            version = frame[pos] >> 4 if pos < end else 0
            if version in (4, 6):
                return (version, pos, None)
            return f"MPLS payload not IP (first nibble {version})"
        if ethertype == ETHERTYPE_PPPOE_SESSION:
            if pos + 8 > end:
                return "truncated PPPoE header"
            length, protocol = _PPPOE_TAIL.unpack_from(frame, pos + 4)
            end = pos + 6 + length  # RFC 2516 §4: length counts from the PPP protocol field
            if protocol == PPP_IPV4:
                return (4, pos + 8, end)
            if protocol == PPP_IPV6:
                return (6, pos + 8, end)
            return f"PPP protocol 0x{protocol:04x}"
        return _ethertype_reason(ethertype)


def locate_by_ethertype(frame: bytes, ethertype: int, pos: int) -> Located:
    """Where the IP header is when what starts at ``pos`` is named by
    ``ethertype`` (a tunnel's protocol type field): IP, a VLAN tag, MPLS,
    PPPoE, or 0x6558 (transparent Ethernet bridging), a whole Ethernet frame.
    Nothing past ``len(frame)`` is read: pass the frame cut at the tunnel's end."""
    if ethertype == ETHERTYPE_TEB:
        if len(frame) - pos < 14:
            return "truncated Ethernet header"
        return _from_ethertype(frame, frame[pos + 12] << 8 | frame[pos + 13], pos + 14)
    return _from_ethertype(frame, ethertype, pos)


def _null_family(frame: bytes) -> int:
    """The address family of a BSD null/loop header, whatever its byte order:
    a value with high bits set was written in the other order (Wireshark's rule)."""
    family: int = struct.unpack_from("<I", frame)[0]
    if family & 0xFFFF0000:
        family = _U32.unpack_from(frame)[0]
    return family


_IPV4_AT_14: Final[Located] = (4, 14, None)


def locate_network(linktype: int, frame: bytes) -> Located:
    """Where the IP header starts in ``frame`` and its version, or a reason."""
    if linktype == LinkType.ETHERNET:
        if len(frame) < 14:
            return "truncated Ethernet header"
        ethertype = frame[12] << 8 | frame[13]
        if ethertype == ETHERTYPE_IPV4:  # the common case, without the walk
            return _IPV4_AT_14
        return _from_ethertype(frame, ethertype, 14)
    if linktype in (LinkType.RAW, 12, 14):
        if not frame:
            return "empty raw IP frame"
        version = frame[0] >> 4
        if version in (4, 6):
            return (version, 0, None)
        return f"raw frame with IP version {version}"
    if linktype == LinkType.IPV4:
        return (4, 0, None)
    if linktype == LinkType.IPV6:
        return (6, 0, None)
    if linktype == LinkType.LINUX_SLL:
        if len(frame) < 16:
            return "truncated Linux cooked (SLL) header"
        return _sll_protocol(frame, _U16.unpack_from(frame, 14)[0], 16)
    if linktype == LinkType.LINUX_SLL2:
        if len(frame) < 20:
            return "truncated Linux cooked (SLL2) header"
        return _sll_protocol(frame, _U16.unpack_from(frame, 0)[0], 20)
    if linktype in (LinkType.NULL, LinkType.LOOP):
        if len(frame) < 4:
            return "truncated loopback header"
        family = _null_family(frame)
        if family == AF_INET:
            return (4, 4, None)
        if family in AF_INET6_BSD:
            return (6, 4, None)
        return f"loopback address family {family}"
    return f"unsupported link type {linktype}"


def _sll_protocol(frame: bytes, protocol: int, pos: int) -> Located:
    # In cooked captures the protocol field is an EtherType for Ethernet-like
    # devices; values below 0x0600 are Linux ETH_P_ pseudo types (802.2, CAN ...).
    if protocol < 0x0600:
        return f"Linux cooked protocol 0x{protocol:04x}"
    return _from_ethertype(frame, protocol, pos)


# --- records, for building frames and round trips -------------------------


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """Destination and source MAC (6 raw bytes each) and the EtherType."""

    dst: bytes
    src: bytes
    ethertype: int

    SIZE = _ETHERNET.size

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> EthernetHeader:
        dst, src, ethertype = _ETHERNET.unpack_from(data, pos)
        return cls(dst, src, ethertype)

    def build(self) -> bytes:
        return _ETHERNET.pack(self.dst, self.src, self.ethertype)


@dataclass(frozen=True, slots=True)
class VlanTag:
    """An 802.1Q / 802.1ad tag after a VLAN TPID: TCI (PCP 3, DEI 1, VID 12
    bits) and the EtherType that follows it."""

    tci: int
    ethertype: int

    SIZE = _TAG.size

    @property
    def vid(self) -> int:
        return self.tci & 0x0FFF

    @property
    def pcp(self) -> int:
        return self.tci >> 13

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> VlanTag:
        tci, ethertype = _TAG.unpack_from(data, pos)
        return cls(tci, ethertype)

    def build(self) -> bytes:
        return _TAG.pack(self.tci, self.ethertype)


@dataclass(frozen=True, slots=True)
class MplsLabel:
    """One MPLS label stack entry (RFC 3032 §2.1): label 20 bits, traffic
    class 3, bottom of stack 1, TTL 8."""

    label: int
    tc: int
    bottom: bool
    ttl: int

    SIZE = 4

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> MplsLabel:
        word = _U32.unpack_from(data, pos)[0]
        return cls(word >> 12, (word >> 9) & 0x7, bool(word & 0x100), word & 0xFF)

    def build(self) -> bytes:
        return _U32.pack(self.label << 12 | self.tc << 9 | int(self.bottom) << 8 | self.ttl)


@dataclass(frozen=True, slots=True)
class PppoeSession:
    """PPPoE session header (RFC 2516 §4) plus the PPP protocol number;
    ``length`` counts the PPP protocol field and what follows."""

    code: int
    session_id: int
    length: int
    ppp_protocol: int
    version_type: int = 0x11

    SIZE = _PPPOE.size

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> PppoeSession:
        version_type, code, session_id, length, protocol = _PPPOE.unpack_from(data, pos)
        return cls(code, session_id, length, protocol, version_type)

    def build(self) -> bytes:
        return _PPPOE.pack(
            self.version_type, self.code, self.session_id, self.length, self.ppp_protocol
        )


@dataclass(frozen=True, slots=True)
class SllHeader:
    """Linux cooked capture v1 (LINKTYPE_LINUX_SLL), 16 bytes."""

    packet_type: int  # 0 to us, 1 broadcast, 2 multicast, 3 to another host, 4 sent by us
    arphrd: int
    addr_len: int
    addr: bytes  # 8 bytes, the first addr_len meaningful
    protocol: int

    SIZE = _SLL.size

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> SllHeader:
        return cls(*_SLL.unpack_from(data, pos))

    def build(self) -> bytes:
        return _SLL.pack(self.packet_type, self.arphrd, self.addr_len, self.addr, self.protocol)


@dataclass(frozen=True, slots=True)
class Sll2Header:
    """Linux cooked capture v2 (LINKTYPE_LINUX_SLL2), 20 bytes."""

    protocol: int
    reserved: int
    ifindex: int
    arphrd: int
    packet_type: int
    addr_len: int
    addr: bytes

    SIZE = _SLL2.size

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> Sll2Header:
        return cls(*_SLL2.unpack_from(data, pos))

    def build(self) -> bytes:
        return _SLL2.pack(
            self.protocol,
            self.reserved,
            self.ifindex,
            self.arphrd,
            self.packet_type,
            self.addr_len,
            self.addr,
        )


@dataclass(frozen=True, slots=True)
class NullHeader:
    """BSD loopback header: the address family, in the byte order written."""

    family: int
    big_endian: bool = False

    SIZE = 4

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> NullHeader:
        little: int = struct.unpack_from("<I", data, pos)[0]
        if little & 0xFFFF0000:
            return cls(_U32.unpack_from(data, pos)[0], True)
        return cls(little, False)

    def build(self) -> bytes:
        return struct.pack(">I" if self.big_endian else "<I", self.family)


LinkLayer = (
    EthernetHeader | VlanTag | MplsLabel | PppoeSession | SllHeader | Sll2Header | NullHeader
)


@dataclass(frozen=True, slots=True)
class LinkFrame:
    """Every link-layer record in front of the network layer, outermost first."""

    layers: tuple[LinkLayer, ...]
    offset: int  # where the network layer starts
    network: Located  # as ``locate_network`` says

    def build(self, payload: bytes) -> bytes:
        return b"".join(layer.build() for layer in self.layers) + payload


def parse_link(linktype: int, frame: bytes) -> LinkFrame:
    """All the link-layer records of ``frame`` (see ``locate_network``)."""
    network = locate_network(linktype, frame)
    offset = network[1] if isinstance(network, tuple) else 0
    layers: list[LinkLayer] = []
    pos = 0
    ethertype: int | None = None
    if linktype == LinkType.ETHERNET and len(frame) >= 14:
        eth = EthernetHeader.parse(frame)
        layers.append(eth)
        ethertype, pos = eth.ethertype, 14
    elif linktype == LinkType.LINUX_SLL and len(frame) >= 16:
        sll = SllHeader.parse(frame)
        layers.append(sll)
        ethertype, pos = sll.protocol, 16
    elif linktype == LinkType.LINUX_SLL2 and len(frame) >= 20:
        sll2 = Sll2Header.parse(frame)
        layers.append(sll2)
        ethertype, pos = sll2.protocol, 20
    elif linktype in (LinkType.NULL, LinkType.LOOP) and len(frame) >= 4:
        layers.append(NullHeader.parse(frame))
        pos = 4
    while ethertype is not None and pos < len(frame):
        if ethertype in VLAN_TPIDS and pos + 4 <= len(frame):
            tag = VlanTag.parse(frame, pos)
            layers.append(tag)
            ethertype, pos = tag.ethertype, pos + 4
        elif ethertype in MPLS_TYPES:
            while pos + 4 <= len(frame):
                label = MplsLabel.parse(frame, pos)
                layers.append(label)
                pos += 4
                if label.bottom:
                    break
            ethertype = None
        elif ethertype == ETHERTYPE_PPPOE_SESSION and pos + 8 <= len(frame):
            layers.append(PppoeSession.parse(frame, pos))
            pos += 8
            ethertype = None
        else:
            ethertype = None
    if isinstance(network, tuple) and pos != offset:
        raise RuntimeError(f"link walk ended at {pos}, network layer at {offset}")
    return LinkFrame(tuple(layers), offset if isinstance(network, tuple) else pos, network)
