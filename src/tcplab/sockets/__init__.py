"""The live TCP socket table: sock_diag reader, owners from /proc, view, diagnoses.

``diag`` is the adapter to the kernel (NETLINK_SOCK_DIAG, one namespace per
netlink socket); ``procs`` maps socket inodes to processes; ``view`` groups
a snapshot by process; ``diagnose`` says what the table means.  The lab
imports ``diag`` alone for its per-step snapshots.
"""

from tcplab.sockets.diag import (
    SockDiag,
    SockInfo,
    StateMask,
    TcpInfo,
    dump_tcp,
    dump_tcp_in_netns,
    entered_netns,
)

__all__ = [
    "SockDiag",
    "SockInfo",
    "StateMask",
    "TcpInfo",
    "dump_tcp",
    "dump_tcp_in_netns",
    "entered_netns",
]
