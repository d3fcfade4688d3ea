"""The sock_diag reader against the live kernel, checked against ``ss -tanpoie``.

One network namespace per module holds a zoo of sockets, one or more in
every state Linux lets us park a socket in: LISTEN, SYN-SENT, SYN-RECV,
ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2 (full and orphaned), CLOSE-WAIT,
CLOSING, LAST-ACK, TIME-WAIT, over IPv4 and IPv6.  Packets are dropped by
nftables rules inside the namespace to hold sockets in the transient states.
A child process (uid 65534) leaks a CLOSE-WAIT socket on purpose.  Nothing
here looks at the host's own sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from conftest import default_sigint
from tcplab.sockets.diag import (
    SockDiag,
    SockInfo,
    StateMask,
    dump_tcp,
    dump_tcp_in_netns,
    entered_netns,
)
from tcplab.sockets.diagnose import Kind, Thresholds, diagnose
from tcplab.sockets.procs import socket_owners
from tcplab.sockets.view import (
    KERNEL,
    STATE_GROUPS,
    Snapshot,
    SocketFilter,
    group_by_process,
    take_snapshot,
)
from tcplab.states import State

pytestmark = [
    pytest.mark.root,
    pytest.mark.xdist_group("sockets-live"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(
        shutil.which("nft") is None or shutil.which("ss") is None, reason="needs nft and ss"
    ),
]

LEAK_CHILD = """
import encodings.idna, os, socket, sys, time  # idna: imported before losing root
os.setgid(65534); os.setuid(65534)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(os.getpid(), s.getsockname()[1], flush=True)
time.sleep(300)  # holds the socket and never calls close(): the leak
"""


@dataclass
class Zoo:
    netns: str
    path: str
    sockets: list[socket.socket] = field(default_factory=list)
    leak_pid: int = 0
    leak_port: int = 0
    leak_child: subprocess.Popen[bytes] | None = None
    leak_closed_at: float = 0.0  # monotonic time the server closed: CLOSE-WAIT from here
    syn_sent_at: float = 0.0

    def nft(self, rules: str) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.netns, "nft", "-f", "-"], input=rules.encode(), check=True
        )

    def keep(self, sock: socket.socket) -> socket.socket:
        self.sockets.append(sock)
        return sock

    def listener(self, port: int, backlog: int = 16, family: int = socket.AF_INET) -> socket.socket:
        with entered_netns(self.path):
            s = self.keep(socket.socket(family, socket.SOCK_STREAM))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
        s.listen(backlog)
        return s

    def client(self, port: int, family: int = socket.AF_INET, wait: bool = True) -> socket.socket:
        with entered_netns(self.path):
            c = self.keep(socket.socket(family, socket.SOCK_STREAM))
        c.setblocking(False)
        c.connect_ex(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
        if wait:
            c.setblocking(True)
            c.settimeout(5)
            c.send(b"")  # raises if the connection did not complete
        return c

    def pair(self, port: int, family: int = socket.AF_INET) -> tuple[socket.socket, socket.socket]:
        listener = self.listener(port, family=family)
        c = self.client(port, family)
        s, _ = listener.accept()
        self.keep(s)
        return c, s


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what}")
        time.sleep(0.02)


def states_on_port(path: str, port: int) -> list[State]:
    return sorted(
        (s.state for s in dump_tcp_in_netns(path) if port in (s.sport, s.dport)),
        key=lambda s: s.value,
    )


@pytest.fixture(scope="module")
def zoo() -> Iterator[Zoo]:
    name = f"tcplab-sockets-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    z = Zoo(netns=name, path=f"/var/run/netns/{name}")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        build_zoo(z)
        yield z
    finally:
        if z.leak_child is not None:
            z.leak_child.kill()
            z.leak_child.wait()
        for s in z.sockets:
            with contextlib.suppress(OSError):
                s.close()
        subprocess.run(["ip", "netns", "del", name], check=False)


def build_zoo(z: Zoo) -> None:
    p = z.path
    z.nft(
        "table inet zoo {\n"
        " chain out { type filter hook output priority 0; policy accept;\n"
        # 7003: SYNs vanish, the client stays in SYN-SENT.
        "  tcp dport 7003 drop\n"
        # 7002: the client's handshake ACK vanishes: the server keeps a request
        # socket (SYN-RECV), the client is ESTABLISHED.
        "  tcp dport 7002 tcp flags & (syn | ack) == ack drop\n"
        " }\n"
        "}\n"
    )
    # CLOSED: bound, never listening nor connecting (listed only on request).
    with entered_netns(p):
        z.keep(socket.socket()).bind(("127.0.0.1", 7011))
    # LISTEN + ESTABLISHED (accepted), IPv4 and IPv6.
    z.pair(7001)
    z.pair(7008, socket.AF_INET6)
    # SYN-SENT.
    z.client(7003, wait=False)
    z.syn_sent_at = time.monotonic()
    # SYN-RECV.
    z.listener(7002)
    z.client(7002)
    wait_for(lambda: State.SYN_RECEIVED in states_on_port(p, 7002), "SYN-RECV on 7002")
    # FIN-WAIT-2 (full socket, half closed) and CLOSE-WAIT.
    c, _ = z.pair(7004)
    c.shutdown(socket.SHUT_WR)
    # FIN-WAIT-2 orphaned (a timewait mini-socket) and CLOSE-WAIT.
    c, _ = z.pair(7005)
    c.close()
    # LAST-ACK and TIME-WAIT: the client's last ACK is dropped.
    c, s = z.pair(7006)
    c.shutdown(socket.SHUT_WR)
    wait_for(lambda: State.CLOSE_WAIT in states_on_port(p, 7006), "CLOSE-WAIT on 7006")
    z.nft("add rule inet zoo out tcp dport 7006 drop\n")
    s.close()
    # CLOSING and FIN-WAIT-1: every client->server packet on 7007 is dropped;
    # both ends send FIN; the client gets the server's FIN before any ACK of
    # its own (RFC 9293 §3.6 simultaneous close), the server gets nothing.
    c, s = z.pair(7007)
    z.nft("add rule inet zoo out tcp dport 7007 drop\n")
    c.shutdown(socket.SHUT_WR)
    s.shutdown(socket.SHUT_WR)
    # A full accept queue: backlog 1 holds two unaccepted children (Linux
    # counts full only when the queue length exceeds the backlog).
    z.listener(7010, backlog=1)
    z.client(7010)
    z.client(7010)
    # The CLOSE-WAIT leak: a child process that never closes its socket.
    leak_listener = z.listener(7009)
    child = subprocess.Popen(
        ["ip", "netns", "exec", z.netns, sys.executable, "-c", LEAK_CHILD, "7009"],
        stdout=subprocess.PIPE,
    )
    z.leak_child = child
    assert child.stdout is not None
    pid_text, port_text = child.stdout.readline().split()
    z.leak_pid, z.leak_port = int(pid_text), int(port_text)
    conn, _ = leak_listener.accept()
    conn.close()
    z.leak_closed_at = time.monotonic()
    expected = {
        7002: State.SYN_RECEIVED,
        7003: State.SYN_SENT,
        7005: State.FIN_WAIT_2,
        7006: State.LAST_ACK,
        7007: State.CLOSING,
        7009: State.CLOSE_WAIT,
    }
    for port, state in expected.items():
        wait_for(
            lambda port=port, state=state: state in states_on_port(p, port), f"{state} on {port}"
        )


# ------------------------------------------------------------------ ss parsing


@dataclass(frozen=True)
class SsRow:
    state: str
    recv_q: int
    send_q: int
    local: str
    peer: str
    timer: str
    inode: int
    uid: int
    pids: frozenset[int]


SS_STATE_NAMES = {
    "ESTAB": State.ESTABLISHED,
    "SYN-SENT": State.SYN_SENT,
    "SYN-RECV": State.SYN_RECEIVED,
    "FIN-WAIT-1": State.FIN_WAIT_1,
    "FIN-WAIT-2": State.FIN_WAIT_2,
    "TIME-WAIT": State.TIME_WAIT,
    "UNCONN": State.CLOSED,
    "CLOSE-WAIT": State.CLOSE_WAIT,
    "LAST-ACK": State.LAST_ACK,
    "LISTEN": State.LISTEN,
    "CLOSING": State.CLOSING,
}


def ss_rows(netns: str) -> list[SsRow]:
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "ss", "-tanpoieH"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        if not line or line[0].isspace():
            continue  # the -i continuation line
        state, recv_q, send_q, local, peer, *rest = line.split()
        tail = " ".join(rest)
        timer = re.search(r"timer:\((\w+),", tail)
        inode = re.search(r"\bino:(\d+)", tail)
        uid = re.search(r"\buid:(\d+)", tail)
        rows.append(
            SsRow(
                state=SS_STATE_NAMES[state].value,
                recv_q=int(recv_q),
                send_q=int(send_q),
                local=local,
                peer=peer,
                timer=timer.group(1) if timer else "off",
                inode=int(inode.group(1)) if inode else 0,
                uid=int(uid.group(1)) if uid else 0,
                pids=frozenset(int(p) for p in re.findall(r"pid=(\d+)", tail)),
            )
        )
    return rows


def our_rows(sockets: list[SockInfo]) -> list[SsRow]:
    owners = socket_owners()
    return [
        SsRow(
            state=s.state.value,
            recv_q=s.rqueue,
            send_q=s.wqueue,
            local=s.local,
            peer=s.peer,
            timer=s.timer,
            inode=s.inode,
            uid=s.uid,
            pids=frozenset(o.process.pid for o in owners.get(s.inode, []))
            if s.inode
            else frozenset(),
        )
        for s in sockets
    ]


# ------------------------------------------------------------------ tests


def test_every_state_is_present(zoo: Zoo) -> None:
    seen = {s.state for s in dump_tcp_in_netns(zoo.path)}
    assert seen == set(State) - {State.CLOSED}


def test_table_equals_ss(zoo: Zoo) -> None:
    # Retransmission timers tick between the two reads; everything compared
    # here is stable while the zoo stands, except that on a loaded machine a
    # socket can still be settling into its state when the two reads run: the
    # tables must agree exactly on one of three tries.
    for _ in range(3):
        ours = sorted(our_rows(dump_tcp_in_netns(zoo.path)), key=repr)
        theirs = sorted(ss_rows(zoo.netns), key=repr)
        if ours == theirs:
            break
        time.sleep(0.2)
    assert len(theirs) == 30
    assert ours == theirs


def test_per_state_kernel_facts(zoo: Zoo) -> None:
    by_port: dict[tuple[int, State], SockInfo] = {}
    for s in dump_tcp_in_netns(zoo.path):
        by_port[(s.sport, s.state)] = s
        by_port[(s.dport, s.state)] = s
    listen = by_port[(7010, State.LISTEN)]
    assert (listen.rqueue, listen.wqueue) == (2, 1)  # accept-queue length, backlog
    assert listen.info is not None and listen.info.unacked == 2
    half_closed = by_port[(7004, State.FIN_WAIT_2)]
    assert half_closed.shutdown == 2 and half_closed.inode != 0 and half_closed.timer == "off"
    orphan = by_port[(7005, State.FIN_WAIT_2)]
    assert orphan.inode == 0 and orphan.timer == "timewait" and orphan.info is None
    time_wait = by_port[(7006, State.TIME_WAIT)]
    assert time_wait.timer == "timewait" and 50_000 < time_wait.timer_expires_ms <= 60_000
    last_ack = by_port[(7006, State.LAST_ACK)]
    assert last_ack.timer == "on" and last_ack.inode == 0
    close_wait = by_port[(7009, State.CLOSE_WAIT)]
    assert close_wait.rqueue == 1  # the FIN counts
    assert close_wait.uid == 65534
    assert by_port[(7002, State.SYN_RECEIVED)].linux_state == 3
    assert by_port[(7008, State.ESTABLISHED)].family == socket.AF_INET6


def test_state_mask_narrows_the_dump(zoo: Zoo) -> None:
    with SockDiag(zoo.path) as diag:
        listeners = diag.dump_tcp(StateMask.LISTEN)
        syn_recv = diag.dump_tcp(StateMask.of(State.SYN_RECEIVED), family=socket.AF_INET)
        v6 = diag.dump_tcp(family=socket.AF_INET6)
    assert sorted(s.sport for s in listeners) == [
        7001,
        7002,
        7004,
        7005,
        7006,
        7007,
        7008,
        7009,
        7010,
    ]
    assert [s.sport for s in syn_recv] == [7002]
    assert {s.family for s in v6} == {socket.AF_INET6} and len(v6) == 3


def test_bound_inactive_only_on_request(zoo: Zoo) -> None:
    with SockDiag(zoo.path) as diag:
        bound = diag.dump_tcp(StateMask.BOUND_INACTIVE)
        everything = diag.dump_tcp()
    assert [(s.state, s.linux_state, s.local) for s in bound] == [
        (State.CLOSED, 7, "127.0.0.1:7011")
    ]
    assert bound[0].inode != 0
    assert not [s for s in everything if s.sport == 7011]


def test_netns_given_as_an_open_fd(zoo: Zoo) -> None:
    fd = os.open(zoo.path, os.O_RDONLY)
    try:
        by_fd = dump_tcp_in_netns(fd)
        os.fstat(fd)  # still open: the caller's fd is the caller's to close
    finally:
        os.close(fd)
    assert {s.cookie for s in by_fd} == {s.cookie for s in dump_tcp_in_netns(zoo.path)}


def test_netns_switch_restores_thread_and_leaks_no_fd(zoo: Zoo) -> None:
    home = os.readlink("/proc/thread-self/ns/net")
    fds_before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        dump_tcp_in_netns(zoo.path)
    with pytest.raises(Exception, match="no such network namespace"):
        dump_tcp_in_netns("tcplab-no-such-netns")
    with pytest.raises(RuntimeError), entered_netns(zoo.path):
        assert os.readlink("/proc/thread-self/ns/net") != home
        raise RuntimeError("body failed")
    assert os.readlink("/proc/thread-self/ns/net") == home
    assert len(os.listdir("/proc/self/fd")) == fds_before
    # dump_tcp() in our own namespace never sees the zoo's sockets.
    zoo_inodes = {s.inode for s in dump_tcp_in_netns(zoo.path) if s.inode}
    assert len(zoo_inodes) > 10
    assert not zoo_inodes & {s.inode for s in dump_tcp()}


def test_dump_from_a_thread_inside_the_namespace(zoo: Zoo) -> None:
    with entered_netns(zoo.path):
        inside = dump_tcp()
    assert {(s.local, s.peer, s.state) for s in inside} == {
        (s.local, s.peer, s.state) for s in dump_tcp_in_netns(zoo.path)
    }


# ------------------------------------------------------------------ view and diagnoses


def snapshot(zoo: Zoo) -> Snapshot:
    return take_snapshot(zoo.path)


def test_close_wait_leak_is_diagnosed_with_the_child_pid(zoo: Zoo) -> None:
    # Let the leak age past a second, so "how long" is a number worth checking.
    time.sleep(max(0.0, 1.2 - (time.monotonic() - zoo.leak_closed_at)))
    snap = snapshot(zoo)
    upper_ms = (time.monotonic() - zoo.leak_closed_at) * 1000 + 20
    leaks = {d.pid: d for d in diagnose(snap) if d.kind is Kind.CLOSE_WAIT_LEAK}
    leak = leaks[zoo.leak_pid]
    assert leak.count == 1
    assert leak.comm.startswith("python")
    assert leak.sockets == (f"127.0.0.1:{zoo.leak_port} -> 127.0.0.1:7009",)
    assert leak.age_ms is not None and 1000 <= leak.age_ms <= upper_ms
    assert f"pid {zoo.leak_pid}" in leak.summary and f"for {leak.age_ms // 1000} s" in leak.summary
    # The test process holds the two server-side CLOSE-WAITs of 7004 and 7005.
    assert leaks[os.getpid()].count == 2
    assert set(leaks) == {zoo.leak_pid, os.getpid()}


def test_full_accept_queue_is_diagnosed(zoo: Zoo) -> None:
    full = [d for d in diagnose(snapshot(zoo)) if d.kind is Kind.ACCEPT_QUEUE_FULL]
    assert [(d.pid, d.sockets, d.count) for d in full] == [(os.getpid(), ("127.0.0.1:7010",), 2)]
    assert "accept queue 2/1, full" in full[0].summary


def test_syn_sent_stuck_after_a_retransmission(zoo: Zoo) -> None:
    # Linux retransmits an unanswered SYN after 1 s (RFC 6298 §2.1 initial RTO).
    wait_for(
        lambda: any(d.kind is Kind.SYN_SENT_STUCK for d in diagnose(snapshot(zoo))),
        "a SYN retransmission",
        timeout=4.0,
    )
    assert time.monotonic() - zoo.syn_sent_at >= 0.9
    stuck = [d for d in diagnose(snapshot(zoo)) if d.kind is Kind.SYN_SENT_STUCK]
    assert len(stuck) == 1 and stuck[0].pid == os.getpid()
    assert "127.0.0.1:7003" in stuck[0].summary


def test_fin_wait_2_orphans_and_time_wait(zoo: Zoo) -> None:
    snap = snapshot(zoo)
    found = {d.kind: d for d in diagnose(snap, thresholds=Thresholds(time_wait=1))}
    orphans = found[Kind.FIN_WAIT_2_ORPHANS]
    assert orphans.count == 2 and orphans.pid is None
    assert found[Kind.MANY_TIME_WAIT].count == 1
    assert "127.0.0.1:7006 (1)" in found[Kind.MANY_TIME_WAIT].summary
    # One TIME-WAIT socket is normal: nothing to say at the default threshold.
    assert Kind.MANY_TIME_WAIT not in {d.kind for d in diagnose(snap)}


def test_grouping_by_process(zoo: Zoo) -> None:
    snap = snapshot(zoo)
    groups = {g.key: g for g in group_by_process(snap, SocketFilter(STATE_GROUPS["all"]))}
    assert set(groups) == {os.getpid(), zoo.leak_pid, KERNEL}
    assert groups[zoo.leak_pid].counts == {State.CLOSE_WAIT: 1}
    kernel = groups[KERNEL].counts
    assert kernel == {State.TIME_WAIT: 1, State.FIN_WAIT_2: 2, State.LAST_ACK: 1}
    ours = groups[os.getpid()]
    # Unaccepted children and the request socket sit with the listener's owner.
    queued = sorted((r.sock.state.value, r.queued_on.sport) for r in ours.rows if r.queued_on)
    assert queued == [("ESTABLISHED", 7010), ("ESTABLISHED", 7010), ("SYN-RECEIVED", 7002)]
    assert ours.counts[State.LISTEN] == 9


def run_cli(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from tcplab.cli import cli

    result = CliRunner().invoke(cli, ["sockets", *args])
    return result.exit_code, result.output


def test_cli_json_state_filter(zoo: Zoo) -> None:
    code, out = run_cli("--netns", zoo.netns, "--json", "--state", "close-wait")
    assert code == 0
    doc = json.loads(out)
    states = {s["state"] for p in doc["processes"] for s in p["sockets"]}
    assert states == {"CLOSE-WAIT"}
    by_pid = {p["pid"]: p for p in doc["processes"]}
    assert set(by_pid) == {os.getpid(), zoo.leak_pid}
    assert by_pid[zoo.leak_pid]["sockets"][0]["uid"] == 65534
    # Listeners are filtered out of the rows but still named per process.
    assert {"local": "127.0.0.1:7010", "accept_queue": 2, "backlog": 1} in by_pid[os.getpid()][
        "listeners"
    ]
    assert by_pid[zoo.leak_pid]["listeners"] == []
    # The diagnoses follow the filter: a CLOSE-WAIT view reports CLOSE-WAIT leaks.
    kinds = {(d["kind"], d["pid"]) for d in doc["diagnoses"]}
    assert ("close-wait-leak", zoo.leak_pid) in kinds
    assert {k for k, _ in kinds} == {"close-wait-leak"}
    code, out = run_cli("--netns", zoo.netns, "--json", "--state", "close-wait",
                        "--state", "listen")  # fmt: skip
    kinds = {(d["kind"], d["pid"]) for d in json.loads(out)["diagnoses"]}
    assert ("accept-queue-full", os.getpid()) in kinds


def test_cli_pid_filter_filters_the_diagnoses(zoo: Zoo) -> None:
    # Another process's CLOSE-WAIT leak is not this process's diagnosis.
    code, out = run_cli("--netns", zoo.netns, "--json", "--pid", str(os.getpid()))
    assert code == 0
    doc = json.loads(out)
    assert all(d["pid"] in (os.getpid(), None) for d in doc["diagnoses"])
    assert not any(d["pid"] == zoo.leak_pid for d in doc["diagnoses"])
    code, out = run_cli("--netns", zoo.netns, "--json", "--pid", str(zoo.leak_pid))
    kinds = {(d["kind"], d["pid"]) for d in json.loads(out)["diagnoses"]}
    assert kinds == {("close-wait-leak", zoo.leak_pid)}


def test_cli_text_view_plain_and_zh_headlines(zoo: Zoo) -> None:
    code, out = run_cli("--netns", zoo.netns, "-a", "--lang", "zh")
    assert code == 0
    assert "\x1b[" not in out  # not a terminal: plain text
    assert "诊断" in out and "CLOSE-WAIT 套接字" in out
    header = next(line for line in out.splitlines() if line.startswith("State"))
    assert header.split() == ["State", "Recv-Q", "Send-Q", "Local", "Peer", "Timer", "fd", "/",
                              "note"]  # fmt: skip
    # Rows are aligned under the header: the Local column starts at one place.
    start = header.index("Local")
    rows = [line for line in out.splitlines() if line.startswith(("ESTAB ", "CLOSE-WAIT "))]
    assert rows and all(line[start - 2:start] == "  " and line[start] != " " for line in rows)
    code, out = run_cli("--netns", zoo.netns, "-a", "--limit", "1")
    assert "more (" in out and "--limit 0 lists them all" in out
    assert "TCP sockets (" in out.splitlines()[-1]


def test_cli_json_port_filter_and_listener_fill(zoo: Zoo) -> None:
    code, out = run_cli("--netns", zoo.path, "--json", "-a", "--port", "7010")
    assert code == 0
    doc = json.loads(out)
    rows = [s for p in doc["processes"] for s in p["sockets"]]
    assert all(7010 in (s["sport"], s["dport"]) for s in rows)
    assert len(rows) == 5  # listener, two queued children, two clients
    (listener,) = [s for s in rows if s["state"] == "LISTEN"]
    assert (listener["accept_queue"], listener["backlog"]) == (2, 1)


def test_cli_defaults_follow_ss(zoo: Zoo) -> None:
    code, out = run_cli("--netns", zoo.netns, "--json")
    assert code == 0
    ours = sorted(
        (s["state"], s["local"], s["peer"])
        for p in json.loads(out)["processes"]
        for s in p["sockets"]
    )
    plain = subprocess.run(
        ["ip", "netns", "exec", zoo.netns, "ss", "-tnH"], capture_output=True, text=True
    ).stdout
    theirs = sorted(
        (SS_STATE_NAMES[f[0]].value, f[3], f[4])
        for f in (line.split() for line in plain.splitlines())
    )
    assert ours == theirs


def test_cli_host_filter_ipv6(zoo: Zoo) -> None:
    code, out = run_cli("--netns", zoo.netns, "--json", "-a", "--host", "::1")
    assert code == 0
    rows = [s for p in json.loads(out)["processes"] for s in p["sockets"]]
    assert {s["family"] for s in rows} == {"ipv6"} and len(rows) == 3


def test_cli_text_view(zoo: Zoo) -> None:
    code, out = run_cli("--netns", zoo.netns, "-a")
    assert code == 0
    assert f"pid {zoo.leak_pid}" in out
    assert "accept queue 2/1 FULL" in out
    assert "kernel" in out and "TIME-WAIT 1" in out
    assert "Diagnoses" in out and "never called close()" in out
    code, out = run_cli("--netns", zoo.netns, "--state", "close-wait", "--lang", "zh")
    assert code == 0 and "对端已关闭" in out
    assert "127.0.0.1:7010 (queue 2/1 FULL)" in out


def test_cli_bad_input_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tcplab", "sockets", "--state", "half-open"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("tcplab: --state 'half-open': not a TCP state")
    assert proc.stderr.count("\n") == 1
    proc = subprocess.run(
        [sys.executable, "-m", "tcplab", "sockets", "--netns", "tcplab-none-such"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert proc.stderr == "tcplab: /var/run/netns/tcplab-none-such: no such network namespace\n"


def test_cli_watch_refreshes_until_interrupted(zoo: Zoo) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tcplab",
            "sockets",
            "--watch",
            "--interval",
            "0.2",
            "--netns",
            zoo.netns,
            "-a",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    # Give a loaded machine time to start Python and draw a few frames.
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.count("tcplab sockets —") >= 2  # refreshed more than once
    assert "accept queue 2/1 FULL" in out
