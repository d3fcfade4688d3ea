"""Bytes to typed records and back, no I/O: link layers, IPv4/IPv6, TCP and
its options, checksums, sequence numbers.  ``decode_frame`` is the one call
the capture layer makes per record."""

from tcplab.wire.checksum import (
    internet_checksum,
    ones_complement_sum,
    pseudo_header,
    tcp_checksum,
    verify_tcp_checksum,
)
from tcplab.wire.decode import NotTcp, TcpPacket, decode_frame
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

__all__ = [
    "Control",
    "Eol",
    "EthernetHeader",
    "ExtensionHeader",
    "Flags",
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
    "TfoCookie",
    "Timestamps",
    "UnknownOption",
    "VlanTag",
    "WindowScale",
    "WireError",
    "build_options",
    "decode_frame",
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
