"""One captured frame in, one decoded TCP segment (or the reason it is not
one) out: the single entry point the capture layer calls per record.

Integrity problems that make the frame undecodable raise ``WireError``
(IHL below 5, a total length below the header, an IP or TCP header cut
off, a TCP data offset below 5 or past the end of the IP packet).  Frames
that are fine but not TCP come back as ``NotTcp`` with a short reason.

Rules worth knowing, each a deliberate choice:

* Any IPv4 fragment (MF set or offset non-zero) is ``NotTcp``, even a first
  fragment that holds a whole TCP header: tshark dissects TCP only after
  reassembly, which is the caller's (``tcplab.wire.fragments``, run by
  ``tcplab.capture.TcpRecords``; the whole datagram then goes through
  ``decode_ip``).  IPv6 likewise, except an atomic fragment (offset 0, M
  clear; RFC 6946), which is a whole packet.
* ``TcpPacket.length`` is the TCP payload length by the IP header (what
  tshark calls ``tcp.len``); ``payload`` is the bytes actually captured, so
  a capture with a small snap length has ``len(payload) < length``.
  Ethernet padding is never payload: everything stops at the IP length.
* ``checksum_ok`` is None when the checksum cannot be judged: the segment
  was not captured whole, or the field holds what a checksum-offloading
  sender leaves there (0, or the folded pseudo-header sum of
  CHECKSUM_PARTIAL, as on every Linux loopback capture).  tcpdump -vv and
  Zeek call those "incorrect"; they are artefacts of capturing on the
  sender, not damage on the wire.  ``strict_checksum=True`` gives their
  verdict instead (only a sum that verifies is good), for tools that must
  reproduce Zeek (or tshark with checksum validation); it also fills in
  ``ip_checksum_ok``, the IPv4 header checksum verdict (RFC 791 §3.1; False
  also when an enclosing tunnel's IPv4 header fails: Zeek drops those), and
  sums the segment as the IP header delimits it, as Zeek does, where a
  PPPoE length cut it shorter.
* TCP inside tunnels is decoded (the rules are in ``tcplab.wire.tunnel``):
  IP in IP (IPv4 protocol / IPv6 next header 4 and 41), GRE (47, and in UDP
  port 4754; ERSPAN over GRE is named "erspan"), and in UDP Teredo, GTP-U,
  VXLAN and Geneve, nested up to ``MAX_TUNNELS`` deep (tshark finds TCP
  inside three nested IPv4 headers; a deeper nest is ``NotTcp``, so garbage
  cannot make the walk unbounded).
  The addresses, TTL and lengths are the innermost IP packet's,
  ``ip_offset`` points at it, ``tunnel`` names the encapsulations outermost
  first ("ipip", "gre", "vxlan", "ipip/gre"), ``outer_src``/``outer_dst``
  are the outermost IP addresses and ``outer_sport``/``outer_dport`` the
  outermost UDP datagram's ports (None when no UDP tunnel carried it).
  Each enclosing packet bounds what it carries as PPPoE's length does.  An
  outer IPv4 fragment is ``NotTcp`` like any other, until reassembled; a
  fragment inside a tunnel stays ``NotTcp``.
* ``ip_len`` stops at the link layer's own length (PPPoE, RFC 2516 §4), as
  tshark's ``tcp.len`` does; ``datagram_len`` is the length the IP header
  alone claims, which is what Zeek counts (``ip_bytes``).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Final

from tcplab.wire.checksum import ones_complement_sum
from tcplab.wire.error import WireError
from tcplab.wire.flags import Flags
from tcplab.wire.ip import IPV6_HEADER, IPV6_LEN, ipv4_fixed, walk_extensions
from tcplab.wire.link import LinkType, locate_by_ethertype, locate_network
from tcplab.wire.tcp import TCP_MIN_LEN, TcpHeader
from tcplab.wire.tunnel import (
    ETHERTYPE_ERSPAN_II,
    ETHERTYPE_ERSPAN_III,
    GreHeader,
    UdpHeader,
    find_tunnel,
    gre_payload,
    payload_ethertype,
)

__all__ = ["NotTcp", "TcpPacket", "WireError", "decode_frame", "decode_ip"]

IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_IPIP: Final = 4  # IPv4 in IP (RFC 2003)
IPPROTO_IPV6: Final = 41  # IPv6 in IP (RFC 4213 §3.5)
IPPROTO_GRE: Final = 47  # RFC 2784
# Encapsulations opened around one TCP segment at most.  Wireshark bounds its
# own recursion too; every level also costs at least 20 bytes of frame.
MAX_TUNNELS: Final = 8
_IP_IN_IP: Final = {IPPROTO_IPIP: "ipip", IPPROTO_IPV6: "ipip"}
_IPV4_PROTOCOL_NAMES: Final = {
    1: "ICMP",
    2: "IGMP",
    17: "UDP",
    47: "GRE",
    50: "ESP",
    51: "AH",
    89: "OSPF",
    132: "SCTP",
}
_LEN16: Final = struct.Struct("!H")
_V4_ZERO_PROTOCOL: Final = bytes((0, IPPROTO_TCP))
_V6_LEN32: Final = struct.Struct("!I3xB")


@dataclass(frozen=True, slots=True)
class TcpPacket:
    """A decoded TCP segment with its IP context.

    ``ip_len`` is the IP packet's length by its header (IPv4 total length,
    IPv6 40 + payload length; the captured length where the header says 0,
    see ``tcplab.wire.ip``), cut to the link layer's length where that is
    shorter (PPPoE).  ``ip_header_len`` includes IPv4 options and
    IPv6 extension headers; 0 means the minimum (20 or 40).
    """

    ip_version: int
    src: str
    dst: str
    ttl: int  # hop limit for IPv6
    ip_len: int
    tcp: TcpHeader
    payload: bytes
    ip_offset: int
    checksum_ok: bool | None
    ip_header_len: int = 0
    datagram_len: int = 0  # by the IP header alone, before the link cut (Zeek's ip_bytes)
    ip_checksum_ok: bool | None = None  # IPv4 header, with strict_checksum only
    # The tunnels the segment came out of, outermost first ("teredo", "gtp",
    # "vxlan", "geneve", "gre", "ipip", joined by "/"; None when the TCP was
    # not tunnelled), the outermost IP addresses and the outermost UDP
    # tunnel's ports (None when only IP-level tunnels carried it).
    tunnel: str | None = None
    outer_src: str | None = None
    outer_dst: str | None = None
    outer_sport: int | None = None
    outer_dport: int | None = None

    @property
    def sport(self) -> int:
        return self.tcp.sport

    @property
    def dport(self) -> int:
        return self.tcp.dport

    @property
    def seq(self) -> int:
        return self.tcp.seq

    @property
    def ack(self) -> int:
        return self.tcp.ack

    @property
    def flags(self) -> Flags:
        return self.tcp.flags

    @property
    def tcp_offset(self) -> int:
        """Where the TCP header starts in the frame."""
        return self.ip_offset + (self.ip_header_len or (20 if self.ip_version == 4 else 40))

    @property
    def length(self) -> int:
        """TCP payload length by the IP header (tshark's ``tcp.len``)."""
        ip_header_len = self.ip_header_len or (20 if self.ip_version == 4 else 40)
        return self.ip_len - ip_header_len - self.tcp.header_len

    @property
    def truncated(self) -> bool:
        """True when the capture holds less payload than the IP header says."""
        return len(self.payload) < self.length


@dataclass(frozen=True, slots=True)
class NotTcp:
    """A frame that carries no decodable TCP segment, and why."""

    reason: str


_address_cache: dict[bytes, str] = {}


def _address(raw: bytes) -> str:
    """Textual address (IPv6 compressed as RFC 5952 and tshark print it);
    memoised because a capture repeats a handful of addresses."""
    text = _address_cache.get(raw)
    if text is None:
        if len(_address_cache) > 4096:
            _address_cache.clear()
        text = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
        _address_cache[raw] = text
    return text


_Outer = tuple[str, str, str, int | None, int | None]  # tunnel, outer src, dst, sport, dport
_NO_OUTER: Final[tuple[None, None, None, None, None]] = (None, None, None, None, None)
# (name, UDP ports or None, the offset of what it carries, where that ends,
# its EtherType or None for IP by version nibble)
_Opened = tuple[str, tuple[int, int] | None, int, int, int | None]


def _gre_opened(
    gre: GreHeader, frame: bytes, at: int, end: int, ports: tuple[int, int] | None
) -> _Opened | str:
    found = gre_payload(gre, frame, at, end)
    if isinstance(found, str):
        return f"GRE: {found}"
    inner, ethertype = found
    name = "erspan" if gre.protocol in (ETHERTYPE_ERSPAN_II, ETHERTYPE_ERSPAN_III) else "gre"
    return (name, ports, inner, end, ethertype)


def _open(frame: bytes, protocol: int, payload: int, end: int) -> _Opened | str:
    """The tunnel that IP protocol ``protocol`` at ``frame[payload:end]`` is,
    opened one level, or why it holds no tunnelled packet."""
    if protocol in _IP_IN_IP:
        # RFC 2003 §3 / RFC 4213 §3.5: the inner IP header follows at once.
        return (_IP_IN_IP[protocol], None, payload, end, None)
    if protocol == IPPROTO_GRE:
        try:
            gre = GreHeader.parse(frame, payload, end)
        except WireError as exc:
            return f"GRE: {exc.message}"
        return _gre_opened(gre, frame, payload + gre.header_len, end, None)
    try:
        udp = UdpHeader.parse(frame[:end], payload)
    except WireError:
        return "UDP"  # a truncated or damaged UDP header: no TCP we could reach
    # RFC 768: the UDP length delimits the datagram inside the IP packet.
    end = min(end, payload + udp.length)
    found = find_tunnel(udp, frame, payload + UdpHeader.SIZE, end)
    if isinstance(found, str):
        return found
    name, header, inner_offset = found
    if isinstance(header, GreHeader):
        return _gre_opened(header, frame, inner_offset, end, (udp.sport, udp.dport))
    if name == "gtp":
        # GTP-U's own length (TS 29.281 §5.1) may end the T-PDU earlier.
        (gtp_length,) = _LEN16.unpack_from(frame, payload + UdpHeader.SIZE + 2)
        end = min(end, payload + UdpHeader.SIZE + 8 + gtp_length)
    return (name, (udp.sport, udp.dport), inner_offset, end, payload_ethertype(header))


def decode_frame(
    linktype: int, frame: bytes, *, verify_checksum: bool = True, strict_checksum: bool = False
) -> TcpPacket | NotTcp:
    """Decode one captured frame of the given pcap link type.

    ``verify_checksum=False`` skips the checksum (``checksum_ok`` is None),
    for passes that do not need it.  ``strict_checksum=True`` judges the
    checksum as Zeek and tshark's validation do: offloaded (0) and partial
    sums count as bad, and ``ip_checksum_ok`` is set for IPv4.
    """
    located = locate_network(linktype, frame)
    if isinstance(located, str):
        return NotTcp(located)
    version, ip_offset, link_end = located
    outer: _Outer | None = None
    tunnels: list[str] = []
    outer_ip_bad = False  # an enclosing IPv4 header's checksum fails (strict only)
    while True:
        if version == 4:
            ip_header_len, _, total_length, _, flags_frag, ttl, protocol, _, src_raw, dst_raw = (
                ipv4_fixed(frame, ip_offset)
            )
            if flags_frag & 0x3FFF:  # MF or a fragment offset (RFC 791 §3.2)
                return NotTcp(f"IPv4 fragment (offset {(flags_frag & 0x1FFF) * 8})")
            ip_len = total_length or len(frame) - ip_offset
            tcp_offset = ip_offset + ip_header_len
            if protocol == IPPROTO_TCP:
                ip_checksum_ok = (
                    # RFC 791 §3.1: the header, checksum field included, sums to -0.
                    ones_complement_sum(frame[ip_offset:tcp_offset]) == 0xFFFF
                    if strict_checksum
                    else None
                )
            elif strict_checksum and ones_complement_sum(frame[ip_offset:tcp_offset]) != 0xFFFF:
                # Zeek checks every IP layer's header (bad_IP_checksum drops
                # the packet), a tunnel's outer ones too.
                outer_ip_bad = True
        else:
            if len(frame) - ip_offset < IPV6_LEN:
                raise WireError(
                    f"truncated IPv6 header: {len(frame) - ip_offset} of 40 bytes", len(frame)
                )
            word, payload_length, next_header, ttl, src_raw, dst_raw = IPV6_HEADER.unpack_from(
                frame, ip_offset
            )
            if word >> 28 != 6:
                raise WireError(f"IP version {word >> 28} in an IPv6 header", ip_offset)
            ip_len = IPV6_LEN + payload_length if payload_length else len(frame) - ip_offset
            protocol, tcp_offset, fragment = walk_extensions(
                frame, ip_offset + IPV6_LEN, next_header, min(len(frame), ip_offset + ip_len)
            )
            if fragment is not None and fragment & 0xFFF9:
                return NotTcp(f"IPv6 fragment (offset {fragment & 0xFFF8})")
            ip_header_len = tcp_offset - ip_offset
            ip_checksum_ok = None  # IPv6 has no header checksum (RFC 8200 §3)
        if protocol == IPPROTO_TCP:
            break
        if protocol not in (IPPROTO_UDP, IPPROTO_GRE, IPPROTO_IPIP, IPPROTO_IPV6):
            if version == 4:
                return NotTcp(_IPV4_PROTOCOL_NAMES.get(protocol, f"IPv4 protocol {protocol}"))
            return NotTcp(f"IPv6 no TCP (next header {protocol})")
        if len(tunnels) == MAX_TUNNELS:
            return NotTcp(f"more than {MAX_TUNNELS} nested tunnels")
        # What this IP packet carries ends with it (or with the link's length).
        end = min(len(frame), ip_offset + ip_len)
        if link_end is not None:
            end = min(end, link_end)
        opened = _open(frame, protocol, tcp_offset, end)
        if isinstance(opened, str):
            return NotTcp(opened if not tunnels else f"{'/'.join(tunnels)}: {opened}")
        name, ports, inner, inner_end, ethertype = opened
        tunnels.append(name)
        if outer is None:
            outer = (name, _address(src_raw), _address(dst_raw), None, None)
        if ports is not None and outer[3] is None:
            outer = (name, outer[1], outer[2], *ports)
        if ethertype is None:
            version = frame[inner] >> 4 if inner < inner_end else 0
            if version not in (4, 6):
                return NotTcp(f"{name}: inner IP version {version}")
            ip_offset, link_end = inner, inner_end
            continue
        located = locate_by_ethertype(frame[:inner_end], ethertype, inner)
        if isinstance(located, str):
            return NotTcp(f"{name}: {located}")
        version, ip_offset, cut = located
        link_end = inner_end if cut is None else min(cut, inner_end)
    if outer_ip_bad:
        ip_checksum_ok = False
    datagram_len = ip_len
    if link_end is not None and ip_offset + ip_len > link_end:
        # The link layer's length wins over a longer IP length (Wireshark
        # does the same): the difference is padding, not data.
        ip_len = max(link_end - ip_offset, ip_header_len)
    segment_len = ip_len - ip_header_len  # by the IP header
    captured_end = min(len(frame), ip_offset + ip_len)
    segment = frame[tcp_offset:captured_end]
    if segment_len < TCP_MIN_LEN:
        raise WireError(
            f"TCP header (20 bytes) runs past the IP packet ({segment_len} bytes left)",
            tcp_offset,
        )
    if len(segment) < TCP_MIN_LEN:
        raise WireError(f"truncated TCP header: {len(segment)} of 20 bytes captured", captured_end)
    data_offset = segment[12] >> 4
    if data_offset < 5:
        raise WireError(f"TCP data offset {data_offset} < 5", tcp_offset + 12)
    if data_offset * 4 > segment_len:
        raise WireError(
            f"TCP data offset {data_offset} ({data_offset * 4} bytes) runs past the "
            f"IP packet ({segment_len} bytes)",
            tcp_offset + 12,
        )
    whole = len(segment) == segment_len
    if data_offset * 4 <= len(segment):
        tcp, payload = TcpHeader.parse(segment, tcp_offset)
    else:
        tcp, payload = TcpHeader.parse_truncated(segment, tcp_offset), b""
    checksum_ok: bool | None = None
    if strict_checksum and datagram_len != ip_len:
        # Zeek sums the segment the IP header delimits, past a shorter PPPoE
        # length: the sender's TCP checksummed that much (RFC 9293 §3.1).
        segment_len = datagram_len - ip_header_len
        segment = frame[tcp_offset : ip_offset + datagram_len]
        whole = len(segment) == segment_len
    if verify_checksum and whole:
        # RFC 9293 §3.1 (IPv4) and RFC 8200 §8.1 (IPv6) pseudo-headers.
        if version == 4:
            pseudo = src_raw + dst_raw + _V4_ZERO_PROTOCOL + _LEN16.pack(segment_len)
        else:
            pseudo = src_raw + dst_raw + _V6_LEN32.pack(segment_len, IPPROTO_TCP)
        if ones_complement_sum(pseudo + segment) == 0xFFFF:
            checksum_ok = True
        elif strict_checksum or (tcp.checksum != 0 and tcp.checksum != ones_complement_sum(pseudo)):
            checksum_ok = False
    return TcpPacket(
        version,
        _address(src_raw),
        _address(dst_raw),
        ttl,
        ip_len,
        tcp,
        payload,
        ip_offset,
        checksum_ok,
        ip_header_len,
        datagram_len,
        ip_checksum_ok,
        *(("/".join(tunnels), *outer[1:]) if outer else _NO_OUTER),
    )


def decode_ip(
    datagram: bytes, *, verify_checksum: bool = True, strict_checksum: bool = False
) -> TcpPacket | NotTcp:
    """Decode a whole IP datagram with no link header (version from its
    first nibble), as ``tcplab.wire.fragments`` hands back a reassembled
    one; offsets in the result are into ``datagram``."""
    return decode_frame(
        LinkType.RAW, datagram, verify_checksum=verify_checksum, strict_checksum=strict_checksum
    )
