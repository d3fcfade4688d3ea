"""The packet-comment marker of a packet a tcplab lab's wire dropped.

A pcapng packet comment (``opt_comment``) line starting with it is written by
``tcplab.lab.output`` and read by the analyzer: the packet was sent and never
received.  Its own module, so the analysis engine can know it without
loading the pcapng reader it mostly does not need.
"""

from typing import Final

DROPPED_BY_WIRE: Final = "DROPPED by the wire"
