"""Capture files in and out: classic pcap and pcapng, plain or .gz, streaming.

``open_capture(path)`` reads any of them (format by magic number);
``PcapWriter`` / ``PcapngWriter`` write them.  See ``reader.py`` for how
problems inside a file are reported instead of raised.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcplab.capture.decoded import TcpRecords
    from tcplab.capture.reader import CaptureReader, Record, iter_raw, open_capture
    from tcplab.capture.source import CaptureProblem
    from tcplab.capture.writer import PcapngWriter, PcapWriter

# Names are loaded from their module on first use (PEP 562): importing one
# submodule, or the package for one name, does not load all of them.
_WHERE = {
    "CaptureProblem": "tcplab.capture.source",
    "CaptureReader": "tcplab.capture.reader",
    "PcapWriter": "tcplab.capture.writer",
    "PcapngWriter": "tcplab.capture.writer",
    "Record": "tcplab.capture.reader",
    "TcpRecords": "tcplab.capture.decoded",
    "iter_raw": "tcplab.capture.reader",
    "open_capture": "tcplab.capture.reader",
}

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


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
