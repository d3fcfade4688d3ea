"""The pcapng packet comment that marks a packet a tcplab lab's wire dropped.

Written by ``tcplab.lab.output``, read by the analyzer (``tcplab.analyze``):
a module of its own so the analyzer's start-up does not load the pcapng
reader for one string (``tcplab.capture.pcapng`` re-exports it)."""

from __future__ import annotations

from typing import Final

# Starts the opt_comment line of a packet a tcplab lab's wire dropped.
DROPPED_BY_WIRE: Final = "DROPPED by the wire"
