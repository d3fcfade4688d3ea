"""``tcplab analyze``: connections, per-endpoint states and anomalies from a capture.

Public API:

- ``analyze_file(path, ...) -> Analysis`` — the detailed per-packet analysis
  (Wireshark's tcp.stream / relative numbers / tcp.analysis flags, Zeek's
  conn_state / history / conn.log counters, inferred RFC 9293 states).
- ``summarize_file(path, ...)`` — the fast columnar connection summary.
- ``timeline_for(packets, connection) -> Timeline`` and
  ``infer_states(timeline) -> list[StateChange]`` for the renderers and the lab.
"""

from tcplab.analyze.core import Analysis, Analyzer, Connection, PacketRecord, analyze_file
from tcplab.analyze.ladder import infer_states, state_path, timeline_for

__all__ = [
    "Analysis",
    "Analyzer",
    "Connection",
    "PacketRecord",
    "analyze_file",
    "infer_states",
    "state_path",
    "timeline_for",
]
