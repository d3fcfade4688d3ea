"""Entering a network namespace from Python 3.11 (which has no ``os.setns``).

setns(2) with CLONE_NEWNET moves only the calling *thread*; sockets created
while inside stay in that namespace after the thread goes back.  The lab
(its TUN wire, sysctls, snapshots) and ``tcplab sockets --netns`` both use
``entered``; the thread's own namespace, saved from /proc/thread-self/ns/net,
is restored on every exit, also on exceptions.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from tcplab.errors import PrivilegeError, TcplabError

CLONE_NEWNET: Final = 0x40000000
NETNS_DIR: Final = "/var/run/netns"  # where `ip netns add NAME` pins NAME

_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open as ``fd``."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        if err == 1:
            raise PrivilegeError("setns: entering a network namespace needs CAP_SYS_ADMIN")
        raise TcplabError(f"setns(CLONE_NEWNET): {os.strerror(err)}")


def netns_path(name_or_path: str | Path) -> str:
    """An ``ip netns`` name (under /var/run/netns) or a path (/proc/PID/ns/net)."""
    text = str(name_or_path)
    return text if "/" in text else os.path.join(NETNS_DIR, text)


def open_netns(name_or_path: str | Path) -> int:
    path = netns_path(name_or_path)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TcplabError(f"{path}: no such network namespace") from None
    except PermissionError:
        raise PrivilegeError(f"{path}: permission denied (needs root)") from None


@contextmanager
def entered(netns: str | Path | int) -> Iterator[None]:
    """Run the body with the calling thread inside ``netns`` (name, path or open fd)."""
    target = netns if isinstance(netns, int) else open_netns(netns)
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target)
            try:
                yield
            finally:
                setns(home)
        finally:
            os.close(home)
    finally:
        if not isinstance(netns, int):
            os.close(target)
