"""Capture files in and out: classic pcap and pcapng, plain or .gz, streaming.

``open_capture(path)`` reads any of them (format by magic number);
``PcapWriter`` / ``PcapngWriter`` write them.  See ``reader.py`` for how
problems inside a file are reported instead of raised.
"""

from tcplab.capture.decoded import TcpRecords
from tcplab.capture.reader import CaptureReader, Record, iter_raw, open_capture
from tcplab.capture.source import CaptureProblem
from tcplab.capture.writer import PcapngWriter, PcapWriter

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
