"""A snapshot of the socket table, organised by the process that owns each socket.

``take_snapshot`` reads the table (sock_diag) and the owners (/proc) once;
``group_by_process`` turns it into what ``tcplab sockets`` shows: per
process, the count of sockets in each state, its listeners with their
accept-queue fill, and its connections.  Sockets with inode 0 have no file
descriptor: TIME-WAIT and orphaned sockets (closed by the application, still
finishing the close) belong to the kernel.  Request sockets (SYN-RECV) and
children not yet accepted also have inode 0 but wait in a listener's queue,
so they are shown with the process that owns that listener.

Filters (``SocketFilter``) select which rows are listed; the per-process
state counts always cover all of the process's sockets, so a filtered view
still says what else the process holds.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from tcplab.errors import InputError
from tcplab.sockets import _diag  # (configured by diag, imported first)
from tcplab.sockets.diag import SockDiag, SockInfo, StateMask
from tcplab.sockets.procs import Process, SocketOwner, socket_owners
from tcplab.states import State

# ss's state groups (ss(8) STATE-FILTER), as RFC states.
STATE_GROUPS: dict[str, frozenset[State]] = {
    "all": frozenset(State) - {State.CLOSED},
    "connected": frozenset(State) - {State.LISTEN, State.CLOSED},
    "synchronized": frozenset(State) - {State.LISTEN, State.CLOSED, State.SYN_SENT},
    "bucket": frozenset({State.TIME_WAIT, State.SYN_RECEIVED}),
    "big": frozenset(State) - {State.TIME_WAIT, State.SYN_RECEIVED},
    "listening": frozenset({State.LISTEN}),
}
# What `ss -t` lists without -a: connected sockets that are full sockets.
DEFAULT_STATES: frozenset[State] = STATE_GROUPS["connected"] - STATE_GROUPS["bucket"]


def parse_states(names: Iterable[str]) -> frozenset[State]:
    """``--state`` values: RFC, ss or netstat spellings, or an ss group name."""
    out: set[State] = set()
    for name in names:
        key = name.strip().lower()
        if key in STATE_GROUPS:
            out |= STATE_GROUPS[key]
            continue
        try:
            out.add(State.parse(name))
        except ValueError:
            groups = ", ".join(STATE_GROUPS)
            raise InputError(
                f"--state {name!r}: not a TCP state (close-wait, TIME_WAIT...) or group ({groups})"
            ) from None
    return frozenset(out)


class Row(NamedTuple):
    """One socket and the file descriptors that refer to it (none: the kernel's).

    A NamedTuple (as SockInfo): one is built per socket, 20,000 on a busy
    host, at a third of a frozen dataclass's cost."""

    sock: SockInfo
    owners: tuple[SocketOwner, ...]
    # An unaccepted child or request socket: the listener it is queued on.
    queued_on: SockInfo | None = None


class Snapshot(NamedTuple):
    """The table at one moment: wall-clock and monotonic time of the read."""

    rows: tuple[Row, ...]
    wall_time: float
    monotonic: float
    netns: str | None


def take_snapshot(
    netns: str | None = None,
    states: int = StateMask.ALL,
    owners: bool = True,
    diag: SockDiag | None = None,
) -> Snapshot:
    """Read every TCP socket of ``netns`` (default: ours) and, unless told not to, their owners."""
    wall, mono = time.time(), time.monotonic()
    if diag is None:
        with SockDiag(netns) as own:
            sockets = own.dump_tcp(states)
    else:
        sockets = diag.dump_tcp(states)
    owner_map = socket_owners() if owners else {}
    return Snapshot(
        rows=attach_owners(sockets, owner_map), wall_time=wall, monotonic=mono, netns=netns
    )


def attach_owners(
    sockets: Sequence[SockInfo], owner_map: dict[int, list[SocketOwner]]
) -> tuple[Row, ...]:
    """A Row per socket: its owners by inode, or, for a child still in a
    listener's accept queue (no inode yet), the listener's owners.

    The loop over every socket is ``_diag.attach_rows`` (C); the few queued
    children are placed here.  ``attach_owners_reference`` is the same in
    Python, which a test holds the two to."""
    rows, pending = _diag.attach_rows(sockets, owner_map, Row, _QUEUE_STATES)
    if pending:
        listeners = _listeners_by_port(sockets)
        empty: tuple[SocketOwner, ...] = ()
        for i in pending:
            s = sockets[i]
            queued_on = _listener_for(s, listeners.get(s.sport, ()))
            if queued_on is not None:
                rows[i] = Row(s, tuple(owner_map.get(queued_on.inode, empty)), queued_on)
    return tuple(rows)


# The states a child socket without an inode can be in while it waits to be accepted.
_QUEUE_STATES = (State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT)


def _listeners_by_port(sockets: Sequence[SockInfo]) -> dict[int, list[SockInfo]]:
    listeners: dict[int, list[SockInfo]] = {}
    for s in sockets:
        if s.state is State.LISTEN:
            listeners.setdefault(s.sport, []).append(s)
    return listeners


def attach_owners_reference(
    sockets: Sequence[SockInfo], owner_map: dict[int, list[SocketOwner]]
) -> tuple[Row, ...]:
    """``attach_owners`` in Python."""
    listeners = _listeners_by_port(sockets)
    rows = []
    empty: tuple[SocketOwner, ...] = ()
    for s in sockets:
        if s.inode:
            rows.append(Row(s, tuple(owner_map.get(s.inode, empty))))
            continue
        queued_on = None
        if s.state in _QUEUE_STATES:
            queued_on = _listener_for(s, listeners.get(s.sport, ()))
        if queued_on is not None:
            rows.append(Row(s, tuple(owner_map.get(queued_on.inode, empty)), queued_on))
        else:
            rows.append(Row(s, empty))
    return tuple(rows)


_WILDCARDS = ("0.0.0.0", "::")


def _listener_for(child: SockInfo, candidates: Iterable[SockInfo]) -> SockInfo | None:
    """The listener whose accept queue holds ``child`` (same port, same or wildcard address)."""
    best = None
    for lst in candidates:
        if lst.src == child.src:
            return lst
        if lst.src in _WILDCARDS or (lst.family == socket.AF_INET6 and lst.src == "::"):
            best = lst
    return best


class SocketFilter(NamedTuple):
    states: frozenset[State] = DEFAULT_STATES
    ports: frozenset[int] = frozenset()
    hosts: frozenset[str] = frozenset()
    pids: frozenset[int] = frozenset()

    # --state given by the user (not the default view): the diagnoses follow it too.
    explicit_states: bool = False

    def __call__(self, row: Row) -> bool:
        return row.sock.state in self.states and self.in_scope(row)

    @property
    def scoped(self) -> bool:
        """Whether a port, host or pid filter is given (else ``in_scope`` is always true)."""
        return bool(self.ports or self.hosts or self.pids)

    def in_scope(self, row: Row) -> bool:
        """The port, host and pid filters alone: which sockets the diagnoses look at."""
        s = row.sock
        if self.ports and s.sport not in self.ports and s.dport not in self.ports:
            return False
        if self.hosts and _bare(s.src) not in self.hosts and _bare(s.dst) not in self.hosts:
            return False
        return not self.pids or any(o.process.pid in self.pids for o in row.owners)


def _bare(addr: str) -> str:
    # ::ffff:10.0.0.1 (an IPv4 peer of an IPv6 socket) also matches --host 10.0.0.1.
    return addr.removeprefix("::ffff:")


def normalise_host(text: str) -> str:
    try:
        packed = socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except OSError:
        raise InputError(f"--host {text!r}: not an IPv4 or IPv6 address") from None
    family = socket.AF_INET6 if len(packed) == 16 else socket.AF_INET
    return _bare(socket.inet_ntop(family, packed))


class ProcessGroup:
    """Everything one process holds.

    ``process`` None and ``key`` KERNEL: sockets no file refers to (inode 0).
    ``process`` None and ``key`` UNKNOWN: sockets with an inode but no owner
    we can see (a process in another PID namespace, or not ours to read).
    (A plain class: the sockets path does not import dataclasses, see
    tcplab.sockets.command.)
    """

    __slots__ = ("counts", "key", "listeners", "process", "rows")

    def __init__(self, process: Process | None, key: int) -> None:
        self.process = process
        self.key = key
        self.counts: Counter[State] = Counter()
        self.rows: list[Row] = []
        # Every listener of the process, filtered out of ``rows`` or not: the
        # header always says which ports it serves and how full their queues are.
        self.listeners: list[SockInfo] = []

    def __repr__(self) -> str:
        return f"ProcessGroup(pid {self.key}, {len(self.rows)} rows, {dict(self.counts)})"


def group_by_process(snapshot: Snapshot, keep: SocketFilter) -> list[ProcessGroup]:
    """Groups with at least one row ``keep`` selects, by pid; the kernel's group last.

    A socket several processes hold (a listener shared after fork) is listed
    under the lowest pid and counted there once.  The loop over the rows and
    the sort within each group are in C (``_diag.group_rows``,
    ``_diag.sort_rows``); ``group_by_process_reference`` is the same in Python.
    """
    in_scope = keep.in_scope if keep.scoped else None
    groups = _diag.group_rows(snapshot.rows, keep.states, in_scope, ProcessGroup)
    shown = [g for g in groups if g.rows]
    for g in shown:
        if not _diag.sort_rows(g.rows, _ORDER):
            g.rows.sort(key=_row_order)
    shown.sort(key=_group_order)
    return shown


def group_by_process_reference(snapshot: Snapshot, keep: SocketFilter) -> list[ProcessGroup]:
    """``group_by_process`` in Python."""
    groups: dict[int, ProcessGroup] = {}
    for row in snapshot.rows:
        owners = row.owners
        owner = (None if not owners else owners[0].process if len(owners) == 1
                 else min(owners, key=lambda o: o.process.pid).process)  # fmt: skip
        key = owner.pid if owner is not None else KERNEL if row.sock.inode == 0 else UNKNOWN
        group = groups.get(key)
        if group is None:
            group = groups[key] = ProcessGroup(owner, key)
        group.counts[row.sock.state] += 1
        if row.sock.state is State.LISTEN:
            group.listeners.append(row.sock)
        if keep(row):
            group.rows.append(row)
    shown = [g for g in groups.values() if g.rows]
    for g in shown:
        g.rows.sort(key=_row_order)
    shown.sort(key=_group_order)
    return shown


def _row_order(row: Row) -> tuple[int, int, int]:
    s = row.sock
    return (_ORDER[s.state], s.sport, s.dport)


def _group_order(group: ProcessGroup) -> tuple[bool, int]:
    return (group.process is None, group.key if group.process else -group.key)


KERNEL = 0
UNKNOWN = -1


# ------------------------------------------------------------------ JSON


def row_json(row: Row) -> dict[str, Any]:
    s = row.sock
    out: dict[str, Any] = {
        "state": s.state.value,
        "linux_state": s.linux_state,
        "family": "ipv6" if s.family == socket.AF_INET6 else "ipv4",
        "local": s.local,
        "peer": s.peer,
        "src": s.src,
        "sport": s.sport,
        "dst": s.dst,
        "dport": s.dport,
        "recv_q": s.rqueue,
        "send_q": s.wqueue,
        "timer": s.timer,
        "timer_expires_ms": s.timer_expires_ms,
        "retrans": s.retrans,
        "uid": s.uid,
        "inode": s.inode,
        "cookie": s.cookie,
        "shutdown": s.shutdown,
        "owners": [{"pid": o.process.pid, "fd": o.fd} for o in row.owners],
    }
    if row.queued_on is not None:
        out["queued_on"] = row.queued_on.local
    if s.state is State.LISTEN:
        out["accept_queue"] = s.rqueue
        out["backlog"] = s.wqueue
    i = s.info
    if i is not None:
        out["tcp_info"] = {
            "rto_us": i.rto_us,
            "rtt_us": i.rtt_us,
            "rttvar_us": i.rttvar_us,
            "snd_mss": i.snd_mss,
            "rcv_mss": i.rcv_mss,
            "snd_cwnd": i.snd_cwnd,
            "unacked": i.unacked,
            "retransmits": i.retransmits,
            "probes": i.probes,
            "backoff": i.backoff,
            "last_data_sent_ms": i.last_data_sent_ms,
            "last_data_recv_ms": i.last_data_recv_ms,
            "last_ack_recv_ms": i.last_ack_recv_ms,
        }
    return out


def process_json(group: ProcessGroup) -> dict[str, Any]:
    process = group.process
    if process is None:
        comm = "kernel" if group.key == KERNEL else "unknown"
        return {"pid": None, "comm": comm, "cmdline": ""}
    return {"pid": process.pid, "comm": process.comm, "cmdline": process.cmdline}


def groups_json(groups: Sequence[ProcessGroup]) -> list[dict[str, Any]]:
    return [
        {**process_json(g), **groups_json_head(g), "sockets": [row_json(r) for r in g.rows]}
        for g in groups
    ]


_ORDER = {s: i for i, s in enumerate(State)}


def _state_order(item: tuple[State, int]) -> int:
    return _ORDER[item[0]]


def ss_state_name(state: State) -> str:
    """The short names ss prints (ESTAB, SYN-RECV, ...)."""
    return _SS_NAMES.get(state, state.value)


_SS_NAMES = {State.ESTABLISHED: "ESTAB", State.SYN_RECEIVED: "SYN-RECV", State.CLOSED: "UNCONN"}


def format_ms(ms: int) -> str:
    """Time left on a timer the way ss -o writes it (ms, sec, min)."""
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}sec".replace(".0sec", "sec")
    return f"{ms // 60_000}min{(ms % 60_000) // 1000}sec"


# ------------------------------------------------------------------ terminal

ChangeMark = str  # "new", "changed" or "" (unchanged), for --watch highlighting


def diff_rows(
    previous: Mapping[int, Row], current: Mapping[int, Row]
) -> tuple[dict[int, ChangeMark], list[Row]]:
    """What changed between two snapshots, both keyed by socket cookie.

    A cookie names one kernel socket for its life, so a socket that moved to
    another state is "changed"; a connection that became a TIME-WAIT
    mini-socket is a new socket to the kernel and shows as "new" (its full
    socket is "gone").
    """
    changes: dict[int, ChangeMark] = {}
    for cookie, row in current.items():
        before = previous.get(cookie)
        if before is None:
            changes[cookie] = "new"
        elif before.sock.state is not row.sock.state:
            changes[cookie] = "changed"
    gone = [row for cookie, row in previous.items() if cookie not in current]
    return changes, gone


_STYLE_OF_STATE = {
    State.ESTABLISHED: "green",
    State.LISTEN: "cyan",
    State.CLOSE_WAIT: "bold red",
    State.TIME_WAIT: "dim",
    State.SYN_SENT: "yellow",
    State.SYN_RECEIVED: "yellow",
    State.FIN_WAIT_1: "magenta",
    State.FIN_WAIT_2: "magenta",
    State.LAST_ACK: "magenta",
    State.CLOSING: "magenta",
}


def _full(listener: SockInfo) -> bool:
    # The accept queue is at the backlog (the diagnosis rule, diagnose.py).
    return listener.rqueue > 0 and listener.rqueue >= listener.wqueue


def _listening_line(group: ProcessGroup) -> str:
    """The group's listeners, when the filter keeps them out of the rows."""
    if not group.listeners or any(r.sock.state is State.LISTEN for r in group.rows):
        return ""
    ports = ", ".join(
        f"{s.local} (queue {s.rqueue}/{s.wqueue}{' FULL' if _full(s) else ''})"
        for s in sorted(group.listeners, key=lambda s: s.sport)
    )
    return f"\nlistening: {ports}"


def _group_title(group: ProcessGroup) -> str:
    counts = "  ".join(
        f"{ss_state_name(state)} {n}" for state, n in sorted(group.counts.items(), key=_state_order)
    )
    if group.process is None and group.key == KERNEL:
        return f"kernel (TIME-WAIT, orphans: no process holds them)   {counts}"
    if group.process is None:
        return f"unknown process (another PID namespace, or not readable)   {counts}"
    p = group.process
    cmd = " ".join(p.cmdline.split())  # python -c "..." carries newlines
    cmd = cmd if len(cmd) <= 60 else cmd[:57] + "..."
    return f"{p.comm} pid {p.pid}  {cmd}   {counts}"


# ------------------------------------------------------------------ plain text

_ANSI = {"bold": "1", "dim": "2", "green": "32", "cyan": "36", "bold red": "1;31",
         "yellow": "33", "magenta": "35", "red": "31", "bold green": "1;32",
         "bold yellow reverse": "1;33;7", "dim strike": "2;9"}  # fmt: skip
_HEADER = ("State", "Recv-Q", "Send-Q", "Local", "Peer", "Timer", "fd / note")
_RIGHT = (False, True, True, False, False, False, False)


def _paint(text: str, style: str, color: bool) -> str:
    code = _ANSI.get(style) if color else None
    return f"\x1b[{code}m{text}\x1b[0m" if code else text


def _cells(row: Row, group: ProcessGroup) -> tuple[str, ...]:
    s = row.sock
    timer = "" if s.timer == "off" else f"{s.timer} {format_ms(s.timer_expires_ms)}"
    if s.retrans and s.timer != "off":
        timer += f" ×{s.retrans}"
    if s.state is State.LISTEN:
        note = f"accept queue {s.rqueue}/{s.wqueue}" + (" FULL" if _full(s) else "")
    elif row.queued_on is not None:
        note = "not accepted yet" if s.state is not State.SYN_RECEIVED else "handshake"
    else:
        note = ",".join(str(o.fd) for o in row.owners if o.process.pid == group.key)
    return (ss_state_name(s.state), str(s.rqueue), str(s.wqueue), s.local, s.peer, timer, note)


def _aligned(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(v.rjust(w) if right else v.ljust(w)
                     for v, w, right in zip(values, widths, _RIGHT, strict=True)).rstrip()


def summary_line(snapshot: Snapshot, shown: int) -> str:
    """``21,034 TCP sockets (ESTAB 20,000, LISTEN 1, TIME-WAIT 1,033); 2,000 listed``."""
    counts = Counter(r.sock.state for r in snapshot.rows)
    parts = ", ".join(f"{ss_state_name(st)} {n:,}" for st, n in sorted(counts.items(),
                                                                       key=_state_order))
    return f"{len(snapshot.rows):,} TCP sockets ({parts or 'none'}); {shown:,} listed"


def render_plain(
    groups: Sequence[ProcessGroup],
    changes: dict[int, ChangeMark] | None = None,
    gone: Sequence[Row] = (),
    *,
    limit: int = 0,
    color: bool = False,
) -> str:
    """The table as plain aligned text (``ss``-like, one line per socket).

    Like ss: one line per socket, columns aligned per process.  The rich
    tables it replaces took 12.5 s for 18,800 sockets; this takes 0.15 s.  ``limit``: at most
    that many rows per process, then one line saying how many more (0: all).
    ``color``: ANSI colours for a terminal.
    """
    marks = changes or {}
    out: list[str] = []
    for group in groups:
        rows = group.rows if not limit else group.rows[:limit]
        cells = [_cells(r, group) for r in rows]
        widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(_HEADER)]
        widths[0] = max(widths[0], 11)
        widths[-1] = 0  # the last column is not padded

        out.append(_paint(_group_title(group) + _listening_line(group), "bold", color))
        out.append(_paint(_aligned(_HEADER, widths), "bold", color))
        for row, values in zip(rows, cells, strict=True):
            text = _aligned(values, widths)
            mark = marks.get(row.sock.cookie, "")
            if mark:
                text = _paint(text, {"new": "bold green", "changed": "bold yellow reverse"}[mark],
                              color)  # fmt: skip
            elif color:
                state = values[0].ljust(widths[0])
                text = _paint(state, _STYLE_OF_STATE.get(row.sock.state, ""), color) + \
                    text[len(state):]  # fmt: skip
            out.append(text)
        if len(group.rows) > len(rows):
            more = Counter(r.sock.state for r in group.rows[len(rows):])
            what = ", ".join(f"{ss_state_name(st)} {n:,}" for st, n in
                             sorted(more.items(), key=_state_order))  # fmt: skip
            out.append(_paint(f"… {len(group.rows) - len(rows):,} more ({what}); "
                              "--limit 0 lists them all", "dim", color))  # fmt: skip
        out.append("")
    for row in gone:
        out.append(_paint(f"gone: {ss_state_name(row.sock.state)} {row.sock.local} -> "
                          f"{row.sock.peer}", "dim strike", color))  # fmt: skip
    if not groups:
        out.append(_paint("no sockets match", "dim", color))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ JSON text, fast

# ``tcplab sockets --json`` on 20,000 sockets spent most of its time building
# a dict per row and encoding it again.  The same document is written here as
# text directly, row by row: byte for byte what ``json.dumps(groups_json(...),
# ensure_ascii=False)`` gives (a test holds the two together), at a fraction
# of the time and memory.  Strings go through ``json.dumps`` (cached: states,
# timers and addresses repeat); numbers are formatted as json does.


def _js_cache() -> Any:
    import json

    cache: dict[str, str] = {}
    dumps = json.dumps

    def js(text: str) -> str:
        out = cache.get(text)
        if out is None:
            out = dumps(text, ensure_ascii=False)
            if len(cache) < 100_000:
                cache[text] = out
        return out

    return js


def _tcp_info_text(raw: bytes) -> str:
    from tcplab.sockets.diag import TCP_INFO, TcpInfo

    if len(raw) < TCP_INFO.size:
        TcpInfo.parse(raw)  # raises the one-line error
    f = TCP_INFO.unpack_from(raw)
    return (
        f'{{"rto_us": {f[8]}, "rtt_us": {f[23]}, "rttvar_us": {f[24]}, "snd_mss": {f[10]}, '
        f'"rcv_mss": {f[11]}, "snd_cwnd": {f[26]}, "unacked": {f[12]}, "retransmits": {f[2]}, '
        f'"probes": {f[3]}, "backoff": {f[4]}, "last_data_sent_ms": {f[17]}, '
        f'"last_data_recv_ms": {f[19]}, "last_ack_recv_ms": {f[20]}}}'
    )


def _rows_text(rows: Sequence[Row], write: Callable[[str], object]) -> None:
    """The rows as JSON objects, separated by ", ", handed to ``write`` in batches
    of 1,000 (``_diag.rows_json``: ``rows_json_text_reference`` in C)."""
    for start in range(0, len(rows), 1000):
        if start:
            write(", ")
        write(_diag.rows_json(rows[start : start + 1000]))


def rows_json_text_reference(rows: Sequence[Row], write: Callable[[str], object]) -> None:
    """``_rows_text`` in Python, the reference its C twin is held to (a test):
    each row is ``row_json``'s dict as ``json.dumps`` writes it."""
    js = _js_cache()
    out: list[str] = []
    append = out.append
    first = True
    listen = State.LISTEN
    inet6 = socket.AF_INET6
    for row in rows:
        s = row.sock
        src, dst = js(s.src), js(s.dst)  # quoted: '"10.0.0.1"'
        if s.family == inet6:
            family, local, peer = "ipv6", f'"[{src[1:-1]}]:', f'"[{dst[1:-1]}]:'
        else:
            family, local, peer = "ipv4", f"{src[:-1]}:", f"{dst[:-1]}:"
        owners = ", ".join(f'{{"pid": {o.process.pid}, "fd": {o.fd}}}' for o in row.owners)
        text = (
            f'{{"state": {js(s.state.value)}, "linux_state": {s.linux_state}, '
            f'"family": "{family}", "local": {local}{s.sport or "*"}", '
            f'"peer": {peer}{s.dport or "*"}", "src": {src}, '
            f'"sport": {s.sport}, "dst": {dst}, "dport": {s.dport}, '
            f'"recv_q": {s.rqueue}, "send_q": {s.wqueue}, "timer": {js(s.timer)}, '
            f'"timer_expires_ms": {s.timer_expires_ms}, "retrans": {s.retrans}, '
            f'"uid": {s.uid}, "inode": {s.inode}, "cookie": {s.cookie}, '
            f'"shutdown": {"null" if s.shutdown is None else s.shutdown}, '
            f'"owners": [{owners}]'
        )
        if row.queued_on is not None:
            text += f', "queued_on": {js(row.queued_on.local)}'
        if s.state is listen:
            text += f', "accept_queue": {s.rqueue}, "backlog": {s.wqueue}'
        if s.tcp_info is not None:
            text += f', "tcp_info": {_tcp_info_text(s.tcp_info)}'
        append(text + "}")
        if len(out) >= 1000:
            write(("" if first else ", ") + ", ".join(out))
            out.clear()
            first = False
    if out:
        write(("" if first else ", ") + ", ".join(out))


def groups_json_text(groups: Sequence[ProcessGroup],
                     write: Callable[[str], object] | None = None) -> str:  # fmt: skip
    """``json.dumps(groups_json(groups), ensure_ascii=False)``, written directly:
    returned, or handed to ``write`` piece by piece (then "" is returned)."""
    import json

    parts: list[str] = []
    sink = write if write is not None else parts.append
    sink("[")
    for i, g in enumerate(groups):
        head = json.dumps({**process_json(g), **groups_json_head(g)}, ensure_ascii=False)
        sink(f'{", " if i else ""}{head[:-1]}, "sockets": [')
        _rows_text(g.rows, sink)
        sink("]}")
    sink("]")
    return "".join(parts)


def groups_json_head(group: ProcessGroup) -> dict[str, Any]:
    """A group's counts and listeners (its rows follow under "sockets")."""
    return {
        "counts": {state.value: n for state, n in sorted(group.counts.items(), key=_state_order)},
        "listeners": [
            {"local": s.local, "accept_queue": s.rqueue, "backlog": s.wqueue}
            for s in sorted(group.listeners, key=lambda s: s.sport)
        ],
    }
