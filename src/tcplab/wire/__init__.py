"""Bytes to typed records and back, no I/O: link layers, IPv4/IPv6, TCP and
its options, checksums, sequence numbers, and the tunnels (IP in IP, GRE,
Teredo, GTP-U, VXLAN, Geneve) whose inner TCP the decoder opens.  ``decode_frame`` is the one call
the capture layer makes per record."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcplab.wire.checksum import (
        internet_checksum,
        ones_complement_sum,
        pseudo_header,
        tcp_checksum,
        verify_tcp_checksum,
    )
    from tcplab.wire.decode import NotTcp, TcpPacket, decode_frame, decode_ip
    from tcplab.wire.error import WireError
    from tcplab.wire.flags import Control, Flags
    from tcplab.wire.ip import ExtensionHeader, IPv4Header, IPv6Header
    from tcplab.wire.link import (
        EthernetHeader,
        LinkFrame,
        LinkType,
        MplsLabel,
        NullHeader,
        PppoeSession,
        Sll2Header,
        SllHeader,
        VlanTag,
        linktype_of,
        locate_network,
        parse_link,
    )
    from tcplab.wire.options import (
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
        parse_options,
    )
    from tcplab.wire.seq import Seq, seq_max, seq_min
    from tcplab.wire.tcp import TcpHeader
    from tcplab.wire.tunnel import (
        GeneveHeader,
        GeneveOption,
        GreHeader,
        GreSre,
        GtpExtension,
        GtpU,
        Teredo,
        TeredoAuth,
        TeredoOrigin,
        UdpHeader,
        VxlanHeader,
        find_tunnel,
    )

# Names are loaded from their module on first use (PEP 562): importing one
# submodule, or the package for one name, does not load all of them.
_WHERE = {
    "Control": "tcplab.wire.flags",
    "Eol": "tcplab.wire.options",
    "EthernetHeader": "tcplab.wire.link",
    "ExtensionHeader": "tcplab.wire.ip",
    "Flags": "tcplab.wire.flags",
    "GeneveHeader": "tcplab.wire.tunnel",
    "GeneveOption": "tcplab.wire.tunnel",
    "GreHeader": "tcplab.wire.tunnel",
    "GreSre": "tcplab.wire.tunnel",
    "GtpExtension": "tcplab.wire.tunnel",
    "GtpU": "tcplab.wire.tunnel",
    "IPv4Header": "tcplab.wire.ip",
    "IPv6Header": "tcplab.wire.ip",
    "LinkFrame": "tcplab.wire.link",
    "LinkType": "tcplab.wire.link",
    "MplsLabel": "tcplab.wire.link",
    "Mss": "tcplab.wire.options",
    "Nop": "tcplab.wire.options",
    "NotTcp": "tcplab.wire.decode",
    "NullHeader": "tcplab.wire.link",
    "PppoeSession": "tcplab.wire.link",
    "Sack": "tcplab.wire.options",
    "SackPermitted": "tcplab.wire.options",
    "Seq": "tcplab.wire.seq",
    "Sll2Header": "tcplab.wire.link",
    "SllHeader": "tcplab.wire.link",
    "TcpHeader": "tcplab.wire.tcp",
    "TcpOption": "tcplab.wire.options",
    "TcpPacket": "tcplab.wire.decode",
    "Teredo": "tcplab.wire.tunnel",
    "TeredoAuth": "tcplab.wire.tunnel",
    "TeredoOrigin": "tcplab.wire.tunnel",
    "TfoCookie": "tcplab.wire.options",
    "Timestamps": "tcplab.wire.options",
    "UdpHeader": "tcplab.wire.tunnel",
    "UnknownOption": "tcplab.wire.options",
    "VlanTag": "tcplab.wire.link",
    "VxlanHeader": "tcplab.wire.tunnel",
    "WindowScale": "tcplab.wire.options",
    "WireError": "tcplab.wire.error",
    "build_options": "tcplab.wire.options",
    "decode_frame": "tcplab.wire.decode",
    "decode_ip": "tcplab.wire.decode",
    "find_tunnel": "tcplab.wire.tunnel",
    "format_option": "tcplab.wire.options",
    "format_options": "tcplab.wire.options",
    "internet_checksum": "tcplab.wire.checksum",
    "linktype_of": "tcplab.wire.link",
    "locate_network": "tcplab.wire.link",
    "ones_complement_sum": "tcplab.wire.checksum",
    "parse_link": "tcplab.wire.link",
    "parse_options": "tcplab.wire.options",
    "pseudo_header": "tcplab.wire.checksum",
    "seq_max": "tcplab.wire.seq",
    "seq_min": "tcplab.wire.seq",
    "tcp_checksum": "tcplab.wire.checksum",
    "verify_tcp_checksum": "tcplab.wire.checksum",
}

__all__ = [
    "Control",
    "Eol",
    "EthernetHeader",
    "ExtensionHeader",
    "Flags",
    "GeneveHeader",
    "GeneveOption",
    "GreHeader",
    "GreSre",
    "GtpExtension",
    "GtpU",
    "IPv4Header",
    "IPv6Header",
    "LinkFrame",
    "LinkType",
    "MplsLabel",
    "Mss",
    "Nop",
    "NotTcp",
    "NullHeader",
    "PppoeSession",
    "Sack",
    "SackPermitted",
    "Seq",
    "Sll2Header",
    "SllHeader",
    "TcpHeader",
    "TcpOption",
    "TcpPacket",
    "Teredo",
    "TeredoAuth",
    "TeredoOrigin",
    "TfoCookie",
    "Timestamps",
    "UdpHeader",
    "UnknownOption",
    "VlanTag",
    "VxlanHeader",
    "WindowScale",
    "WireError",
    "build_options",
    "decode_frame",
    "decode_ip",
    "find_tunnel",
    "format_option",
    "format_options",
    "internet_checksum",
    "linktype_of",
    "locate_network",
    "ones_complement_sum",
    "parse_link",
    "parse_options",
    "pseudo_header",
    "seq_max",
    "seq_min",
    "tcp_checksum",
    "verify_tcp_checksum",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
