"""Write classic pcap and pcapng files.

Timestamps are always passed in (``time_ns``): a writer never reads the
clock (dpkt's pcap writer silently does; STYLE.md rule 3).  Both writers
take an open binary file object and never close it; the caller owns it.

``PcapngWriter`` is what the lab uses for ``<run>.pcapng``: one interface
per capture point, the socket-API calls as per-packet ``opt_comment``
options, which Wireshark/tshark show as ``frame.comment``.
"""

from __future__ import annotations

from typing import BinaryIO

from tcplab import __version__
from tcplab.capture import pcap, pcapng
from tcplab.capture.pcapng import (
    IF_NAME,
    IF_TSRESOL,
    OPT_COMMENT,
    SHB_USERAPPL,
    EnhancedPacket,
    InterfaceDescription,
    SectionHeader,
    frame_block,
)


class PcapWriter:
    """Classic pcap; nanosecond magic by default so lab timestamps keep full precision."""

    def __init__(
        self,
        fileobj: BinaryIO,
        linktype: int,
        nanosecond: bool = True,
        snaplen: int = pcap.DEFAULT_SNAPLEN,
    ) -> None:
        if not 0 <= linktype <= 0xFFFF:
            raise ValueError(f"link type {linktype} does not fit 16 bits")
        self._file = fileobj
        self._nanosecond = nanosecond
        header = pcap.GlobalHeader("<", nanosecond, 2, 4, 0, 0, snaplen, linktype)
        fileobj.write(header.build())

    def write(self, time_ns: int, data: bytes, orig_len: int | None = None) -> None:
        if time_ns < 0:
            raise ValueError(f"timestamp {time_ns} ns is before 1970: pcap cannot store it")
        if len(data) > pcap.MAX_CAPLEN:
            raise ValueError(f"record of {len(data)} bytes exceeds the 256 MiB limit")
        sec, ns = divmod(time_ns, 1_000_000_000)
        if sec >> 32:
            raise ValueError(f"timestamp {time_ns} ns is past 2106: pcap's u32 seconds end there")
        frac = ns if self._nanosecond else ns // 1000
        length = len(data) if orig_len is None else orig_len
        if length < len(data):
            raise ValueError(f"orig_len {length} is below the captured length {len(data)}")
        self._file.write(pcap.RecordHeader(sec, frac, len(data), length).build() + data)


class PcapngWriter:
    """pcapng with one section; add interfaces, then write packets (EPBs)."""

    def __init__(
        self,
        fileobj: BinaryIO,
        comment: str | None = None,
        application: str = f"tcplab {__version__}",
    ) -> None:
        self._file = fileobj
        self._scale: list[tuple[int, int]] = []  # per interface: ts = time_ns * mul // div
        options: list[tuple[int, bytes]] = []
        if comment is not None:
            options.append((OPT_COMMENT, comment.encode()))
        options.append((SHB_USERAPPL, application.encode()))
        self.write_block(SectionHeader(options=tuple(options)))

    def write_block(self, block: pcapng.Block) -> None:
        """Any block as is (tests use this for the block types tcplab never writes itself)."""
        self._file.write(frame_block(block))

    def add_interface(
        self,
        linktype: int,
        name: str | None = None,
        snaplen: int = pcap.DEFAULT_SNAPLEN,
        tsresol: int = 9,
    ) -> int:
        """Declare an interface (IDB); returns its id.  ``tsresol``: 10**-tsresol s units."""
        if not 0 <= tsresol <= 19:
            raise ValueError(f"tsresol {tsresol}: a power of ten from 0 to 19 expected")
        options: list[tuple[int, bytes]] = []
        if name is not None:
            options.append((IF_NAME, name.encode()))
        options.append((IF_TSRESOL, bytes([tsresol])))
        self.write_block(InterfaceDescription(linktype, snaplen, tuple(options)))
        self._scale.append((10 ** max(0, tsresol - 9), 10 ** max(0, 9 - tsresol)))
        return len(self._scale) - 1

    def write(
        self,
        time_ns: int,
        data: bytes,
        interface: int = 0,
        comment: str | None = None,
        orig_len: int | None = None,
    ) -> None:
        if not 0 <= interface < len(self._scale):
            raise ValueError(
                f"interface {interface} was not added ({len(self._scale)} interface(s))"
            )
        if time_ns < 0:
            raise ValueError(f"timestamp {time_ns} ns is negative")
        mul, div = self._scale[interface]
        length = len(data) if orig_len is None else orig_len
        if length < len(data):
            raise ValueError(f"orig_len {length} is below the captured length {len(data)}")
        options = ((OPT_COMMENT, comment.encode()),) if comment is not None else ()
        self.write_block(
            EnhancedPacket(interface, time_ns * mul // div, bytes(data), length, options)
        )
