"""The lab's hosts: network namespaces, TUN devices, per-namespace sysctls.

Theory of operation.  A run owns two network namespaces named
``tcplab-<runid>-c`` and ``tcplab-<runid>-s`` (``ip netns add``, so they are
bind-mounted under /run/netns and visible to ``ip``).  The lab process
enters a namespace with ``setns(2)`` for the *calling thread only* (Python
3.11 has no ``os.setns``; sockets and TUN devices keep the namespace they
were created in) and always restores the thread's previous namespace
afterwards.  A TUN device opened while inside a namespace is created in it,
so the host never sees the lab's links at all.

Everything carries the run's name and is recorded in a state file under
``/run/tcplab/<runid>/`` before it is created, so ``tcplab cleanup`` can
remove what a killed run left behind.  Nothing here touches the host's
interfaces, routes or sysctls: sysctls are written from a thread that has
entered the lab's namespace (/proc/sys/net is resolved per network
namespace of the writing task).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tcplab.errors import PrivilegeError, TcplabError
from tcplab.netns import entered

STATE_ROOT = Path("/run/tcplab")
NETNS_DIR = Path("/run/netns")
NAME_PREFIX = "tcplab-"
# Exactly what a run names its things: other tools may use "tcplab-" too
# (e.g. a profiling namespace), and cleanup must never touch those.
RUN_NAMESPACE = re.compile(r"^tcplab-([0-9a-f]{8})-(c|s|lo|d)$")
RUN_INSTANCE = re.compile(r"^tcplab-([0-9a-f]{8})$")
RUN_ID = re.compile(r"^[0-9a-f]{8}$")

# <linux/if_tun.h>
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN = 0x01, 0x02, 0x04, 0x08
VNET_HDR_LEN = 10  # struct virtio_net_hdr, before every datagram with IFF_VNET_HDR

T = TypeVar("T")


class LabError(TcplabError):
    """The lab could not build or drive its topology."""


def require_root() -> None:
    """One line naming the missing privilege, before anything is created."""
    if os.geteuid() != 0:
        raise PrivilegeError(
            "tcplab run needs root (CAP_SYS_ADMIN for network namespaces and tracefs, "
            "CAP_NET_ADMIN for TUN devices): run it with sudo"
        )
    if not Path("/dev/net/tun").exists():
        raise PrivilegeError("tcplab run needs /dev/net/tun (load the tun module: modprobe tun)")


def new_run_id() -> str:
    return secrets.token_hex(4)


def in_netns(netns_path: str | Path, fn: Callable[[], T]) -> T:
    """Call ``fn`` on a short-lived thread inside the namespace (the caller never moves)."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            with entered(netns_path):
                box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=body, name="tcplab-netns")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def ip(*args: str) -> None:
    """Run iproute2; a failure is a one-line LabError with ip's own message."""
    try:
        proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LabError("the lab needs iproute2's ip (scripts/setup.sh installs it)") from None
    if proc.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")


def kill_namespace_processes(name: str) -> list[int]:
    """SIGKILL what still runs inside one of the run's own namespaces.

    Called by the run that created the namespace, at its teardown: only that
    run puts processes there (its actors, external programs and whatever they
    forked), so they are its own; a process left inside would keep the
    namespace alive after its name is deleted.  ``tcplab cleanup`` does not
    use this: it kills only the pids a run recorded.
    """
    if not RUN_NAMESPACE.match(name):
        raise LabError(f"{name}: not a lab namespace")
    killed: list[int] = []
    for pid in namespace_pids(NETNS_DIR / name):
        if pid != os.getpid():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


def namespace_pids(netns_path: str | Path) -> list[int]:
    """The processes whose network namespace is ``netns_path`` (what ``ip netns pids``
    prints), by comparing /proc/PID/ns/net with the namespace file."""
    try:
        target = os.stat(netns_path)
    except OSError:
        return []
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (ns.st_dev, ns.st_ino) == (target.st_dev, target.st_ino):
            pids.append(int(entry.name))
    return pids


def write_sysctl(netns_path: str | Path, name: str, value: str) -> None:
    """``net.ipv4.tcp_fin_timeout = 3`` inside the namespace only, never the host's."""
    if not name.startswith("net."):
        raise LabError(f"sysctl {name}: only net.* sysctls are per network namespace")
    path = Path("/proc/sys") / name.replace(".", "/")

    def write() -> None:
        try:
            path.write_text(f"{value}\n")
        except OSError as exc:
            raise LabError(f"sysctl {name}={value}: {exc.strerror}") from None

    in_netns(netns_path, write)


def read_sysctl(netns_path: str | Path, name: str) -> str:
    path = Path("/proc/sys") / name.replace(".", "/")
    return in_netns(netns_path, lambda: path.read_text().strip())


def open_tun(netns_path: str | Path, ifname: str, offload: bool = False) -> int:
    """Create a TUN device (IFF_TUN | IFF_NO_PI: raw IP packets) inside the namespace.

    The device lives as long as the returned fd (not persistent), so a
    killed lab leaves no link behind once its namespaces are gone.  With
    ``offload`` the device takes TSO/checksum offload like an Ethernet card
    (IFF_VNET_HDR + TUNSETOFFLOAD, as packetdrill's tun0): every datagram read
    or written is preceded by a 10-byte ``struct virtio_net_hdr``, and the
    kernel hands over whole TSO super-segments.
    """

    def create() -> int:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if offload else 0)
            ifr = struct.pack("16sH22x", ifname.encode(), flags)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
            if offload:
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
        except OSError as exc:
            os.close(fd)
            raise LabError(f"TUNSETIFF {ifname}: {exc.strerror}") from None
        os.set_blocking(fd, False)
        return fd

    return in_netns(netns_path, create)


@dataclass
class RunState:
    """What a run created, on disk so ``tcplab cleanup`` can undo a killed run."""

    run_id: str
    lab_pid: int = field(default_factory=os.getpid)
    lab_start: int = 0
    namespaces: list[str] = field(default_factory=list)
    tracefs_instance: str = ""
    tracefs_mount: str = ""
    pids: list[tuple[int, int]] = field(default_factory=list)  # (pid, starttime)
    addresses: list[str] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return STATE_ROOT / self.run_id

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(self.__dict__ | {"pids": [list(p) for p in self.pids]}))
        tmp.replace(self.dir / "state.json")

    def record_tracefs(self, kind: str, path: str) -> None:
        """``Tracer.open``'s callback: note a mount or instance before it exists."""
        if kind == "mount":
            self.tracefs_mount = path
        else:
            self.tracefs_instance = path
        self.save()

    def hold(self) -> int:
        """Take the run's liveness lock (``<dir>/lock``) for as long as the returned
        fd stays open.  The kernel drops it when the process dies, even by SIGKILL,
        and it means the same in every pid namespace: unlike a pid, it cannot be
        mistaken for another process."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    @staticmethod
    def held(run_dir: Path) -> bool:
        """Is some live process holding this run's lock?"""
        try:
            fd = os.open(run_dir / "lock", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    @classmethod
    def load(cls, path: Path) -> RunState:
        raw = json.loads(path.read_text())
        raw["pids"] = [tuple(p) for p in raw.get("pids", [])]
        return cls(**raw)


def proc_starttime(pid: int) -> int:
    """Field 22 of /proc/PID/stat: tells a pid apart from a later reuse of it. 0 if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def used_subnets() -> set[int]:
    """The third octets (10.89.X.0/24) other live runs use, so tracepoint
    events can be attributed by address even when runs overlap."""
    used: set[int] = set()
    if not STATE_ROOT.is_dir():
        return used
    for path in STATE_ROOT.glob("*/state.json"):
        try:
            state = RunState.load(path)
        except (OSError, ValueError, TypeError):
            continue
        for addr in state.addresses:
            parts = addr.split(".")
            if len(parts) == 4 and parts[2].isdigit():
                used.add(int(parts[2]))
    return used


@contextmanager
def state_lock(name: str) -> Iterator[None]:
    """An exclusive lock ``/run/tcplab/<name>`` for the length of the block."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    fd = os.open(STATE_ROOT / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def subnet_lock() -> AbstractContextManager[None]:
    """An exclusive lock over choosing a subnet and writing the state file."""
    return state_lock(".subnets.lock")


class RunWatch:
    """The run ids of the lab processes ``pids`` (add to it as they start), read
    from their state files every 10 ms while the watch lives: how a test or
    the soak benchmark learns which runs are its own, never touching others'."""

    def __init__(self, *pids: int) -> None:
        self.pids: set[int] = set(pids)
        self.ids: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tcplab-runwatch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for path in STATE_ROOT.glob("*/state.json"):
                try:
                    if json.loads(path.read_text())["lab_pid"] in self.pids:
                        self.ids.add(path.parent.name)
                except (OSError, ValueError, KeyError, TypeError):
                    continue
            time.sleep(0.01)

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join()
        return self.ids


def pick_subnet() -> int:
    used = used_subnets()
    for _ in range(64):
        candidate = 1 + secrets.randbelow(254)
        if candidate not in used:
            return candidate
    raise LabError("no free 10.89.X.0/24 subnet for this run (too many runs at once?)")


def stop_child(proc: subprocess.Popen[str], grace: float) -> None:
    """End an actor we started: close its pipe (it exits on EOF), then kill it,
    by pid, if it is still there after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with suppress(OSError):
        if proc.stdin:
            proc.stdin.close()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()  # our own child, by pid
        proc.wait(timeout=5)
