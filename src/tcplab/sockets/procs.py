"""Which processes hold which sockets: socket inode -> (pid, fd, comm, command line).

A socket fd shows up in /proc/PID/fd as a symlink to ``socket:[INODE]``;
socket inodes are unique across network namespaces, so one scan of /proc
serves every namespace (this is what ``ss -p`` and ``netstat -p`` do).  The
scan is done once per snapshot and gives a dict, so the table lookup per
socket is O(1).  A socket several processes share (fork, SCM_RIGHTS) lists
them all.  Inode 0 (TIME-WAIT, request and orphaned sockets) has no owner
file: those belong to the kernel.

The scan is one readlink per open file of every process: 12,500 on the
issue-15 benchmark's host.  ``socket_owners`` runs it in C
(``_diag.socket_owners``, no Python turn per fd); ``socket_owners_reference``
below is the same scan in Python, the readable reference a test holds the C to.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from tcplab.sockets import _diag


class Process(NamedTuple):
    pid: int
    comm: str
    cmdline: str


class SocketOwner(NamedTuple):
    """One fd of one process referring to a socket (a NamedTuple, as SockInfo:
    one per socket fd, built by the C scan without a Python call)."""

    process: Process
    fd: int


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        # The process exited between listing /proc and reading it.
        return None


def _process(pid: int, proc: str = "/proc") -> Process | None:
    comm = _read_text(f"{proc}/{pid}/comm")
    if comm is None:
        return None
    cmdline = _read_text(f"{proc}/{pid}/cmdline") or ""
    return Process(pid=pid, comm=comm.rstrip("\n"), cmdline=cmdline.rstrip("\0").replace("\0", " "))


def socket_owners(proc: str = "/proc") -> dict[int, list[SocketOwner]]:
    """inode -> every (process, fd) holding it, by one scan of ``proc``/*/fd.

    Threads share their process's fd table, so only thread-group leaders
    (the numeric entries of /proc) are scanned.  Processes that vanish or
    whose fds we may not read are skipped, as ss does.  ``_process`` is
    called once per process that holds a socket.
    """
    return _diag.socket_owners(proc, lambda pid: _process(pid, proc), SocketOwner)


def socket_owners_reference(proc: str = "/proc") -> dict[int, list[SocketOwner]]:
    """``socket_owners`` in Python: the same scan, the same result, in the same order."""
    owners: dict[int, list[SocketOwner]] = {}
    readlink = os.readlink
    with os.scandir(proc) as entries:
        pids = [int(e.name) for e in entries if e.name.isdigit()]
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    for pid in pids:
        # readlink relative to the open fd directory: the kernel resolves one
        # name per fd instead of the whole /proc/PID/fd/N path.
        try:
            dir_fd = os.open(f"{proc}/{pid}/fd", flags)
        except OSError:
            continue
        try:
            fds = os.listdir(dir_fd)
            process: Process | None = None
            for fd in fds:
                try:
                    target = readlink(fd, dir_fd=dir_fd)
                except OSError:
                    continue
                if target[:8] != "socket:[":
                    continue
                inode = int(target[8:-1])
                if process is None:
                    process = _process(pid, proc)
                    if process is None:
                        break
                owners.setdefault(inode, []).append(SocketOwner(process=process, fd=int(fd)))
        except OSError:
            continue
        finally:
            os.close(dir_fd)
    return owners
