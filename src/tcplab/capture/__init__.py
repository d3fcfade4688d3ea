"""Capture files in and out: classic pcap and pcapng, plain or .gz, streaming.

``open_capture(path)`` reads any of them (format by magic number);
``PcapWriter`` / ``PcapngWriter`` write them.  See ``reader.py`` for how
problems inside a file are reported instead of raised.

The names below load on first use (tcplab.lazy): ``tcplab analyze``'s engine reads
most files itself and needs ``tcplab.wire``'s decoders, which ``TcpRecords``
pulls in, only for the frames it hands back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcplab.lazy import lazy_attributes

if TYPE_CHECKING:
    from tcplab.capture.decoded import TcpRecords
    from tcplab.capture.reader import CaptureReader, Record, iter_raw, open_capture
    from tcplab.capture.source import CaptureProblem
    from tcplab.capture.writer import PcapngWriter, PcapWriter

_WHERE = {
    "CaptureProblem": "source",
    "CaptureReader": "reader",
    "PcapWriter": "writer",
    "PcapngWriter": "writer",
    "Record": "reader",
    "TcpRecords": "decoded",
    "iter_raw": "reader",
    "open_capture": "reader",
}

__getattr__ = lazy_attributes(__name__, _WHERE)

__all__ = [
    "CaptureProblem",
    "CaptureReader",
    "PcapWriter",
    "PcapngWriter",
    "Record",
    "TcpRecords",
    "iter_raw",
    "open_capture",
]
