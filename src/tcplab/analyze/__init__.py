"""``tcplab analyze``: connections, per-endpoint states and anomalies from a capture.

Public API (loaded lazily):

- ``analyze_file(path, ...) -> Analysis`` — the detailed per-packet analysis
  (Wireshark's tcp.stream / relative numbers / tcp.analysis flags, Zeek's
  conn_state / history / conn.log counters, inferred RFC 9293 states).
- ``timeline_for(packets, connection) -> Timeline`` and
  ``infer_states(timeline) -> list[StateChange]`` for the renderers and the lab.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Analysis": "tcplab.analyze.core",
    "Analyzer": "tcplab.analyze.core",
    "Connection": "tcplab.analyze.core",
    "PacketRecord": "tcplab.analyze.core",
    "analyze_file": "tcplab.analyze.core",
    "infer_states": "tcplab.model.timeline_infer",
    "state_path": "tcplab.analyze.ladder",
    "timeline_for": "tcplab.analyze.ladder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tcplab.analyze' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
