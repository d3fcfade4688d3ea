"""What a socket table says is wrong, in words a person can act on.

Each rule reads one snapshot (plus, in ``--watch``, when each socket was
first seen) and reports a ``Diagnosis``: what was found, by whom (pid), since
when, and a short explanation of the TCP behind it, in English and Chinese.
The rules are a table (``RULES``) so the CLI, the JSON output and the tests
all see the same list.

Ages: tcp_info's ``last_ack_recv`` is the time since the last ACK arrived.
A socket in CLOSE-WAIT got the peer's FIN (which carries an ACK) and, if the
application sends nothing more, nothing after it, so ``last_ack_recv`` is a
lower bound on how long the socket has been in CLOSE-WAIT.  ``--watch``
also knows when it first saw the socket in that state; the larger of the two
is reported.
"""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from tcplab.sockets.diag import SockInfo
from tcplab.sockets.procs import Process
from tcplab.sockets.view import Row, Snapshot, SocketFilter
from tcplab.states import State

SocketKey = tuple[int, str, int, str, int, State]


def socket_key(s: SockInfo) -> SocketKey:
    return (s.family, s.src, s.sport, s.dst, s.dport, s.state)


class Kind(enum.Enum):
    CLOSE_WAIT_LEAK = "close-wait-leak"
    MANY_TIME_WAIT = "many-time-wait"
    SYN_SENT_STUCK = "syn-sent-stuck"
    FIN_WAIT_2_ORPHANS = "fin-wait-2-orphans"
    ACCEPT_QUEUE_FULL = "accept-queue-full"


EXPLANATIONS: dict[Kind, tuple[str, str]] = {
    Kind.CLOSE_WAIT_LEAK: (
        "The peer closed its side (its FIN arrived, RFC 9293 §3.6) and the kernel ACKed it; "
        "the socket now waits for this application to call close(). CLOSE-WAIT has no "
        "timeout: a socket that stays here is a leak in the application (a missing close() "
        "on an error path, a connection pool that never notices EOF). Each one holds a file "
        "descriptor and kernel memory until the process closes it or exits.",
        "对端已关闭（它的 FIN 已到达并被内核确认），套接字在等本应用调用 close()。"
        "CLOSE-WAIT 没有超时：长时间停留就是应用的泄漏（出错路径漏了 close()、连接池没发现 EOF）。"
        "每个这样的套接字占用一个文件描述符和内核内存，直到进程关闭它或退出。",
    ),
    Kind.MANY_TIME_WAIT: (
        "TIME-WAIT is kept by the side that closed first (the active closer) for 2·MSL, "
        "60 s on Linux, so late segments of the old connection cannot corrupt a new one with "
        "the same ports and the last ACK can be resent (RFC 9293 §3.6.1). Many of them mean "
        "this host opens and closes many short connections. Keep-alive (reusing connections) "
        "is the real fix. SO_REUSEADDR lets a server bind its port while old connections on it "
        "are in TIME-WAIT; it does not remove them. net.ipv4.tcp_tw_reuse lets new *outgoing* "
        "connections reuse a TIME-WAIT port pair when timestamps prove it safe; it does "
        "nothing for incoming connections and does not shorten TIME-WAIT.",
        "TIME-WAIT 由先关闭的一方（主动关闭方）保持 2·MSL（Linux 上 60 秒），防止旧连接的迟到报文"
        "混入相同端口的新连接，并能重发最后的 ACK。数量很多说明本机频繁建立和关闭短连接。"
        "真正的解决办法是复用连接（keep-alive）。SO_REUSEADDR 让服务器在旧连接处于 TIME-WAIT 时"
        "仍能绑定端口，但不会消除它们；tcp_tw_reuse 只让新的主动外连在时间戳证明安全时复用，"
        "对入站连接无效，也不会缩短 TIME-WAIT。",
    ),
    Kind.SYN_SENT_STUCK: (
        "connect() sent a SYN and got nothing back, not even a RST, so the kernel is "
        "retransmitting the SYN with backoff (tcp_syn_retries). The peer is unreachable or a "
        "firewall silently drops the packets; a closed port on a reachable host would have "
        "answered RST at once (ECONNREFUSED).",
        "connect() 发出的 SYN 没有任何回应（连 RST 也没有），"
        "内核正按退避重传 SYN（tcp_syn_retries）。对端不可达，或防火墙静默丢弃了报文；"
        "若对端主机可达但端口未监听，会立即回 RST（ECONNREFUSED）。",
    ),
    Kind.FIN_WAIT_2_ORPHANS: (
        "This side closed the socket and the peer ACKed the FIN, but the peer has not sent "
        "its own FIN: on the peer the connection sits in CLOSE-WAIT (its application has not "
        "closed). The application here no longer holds the socket (an orphan, owned by the "
        "kernel), which drops it after net.ipv4.tcp_fin_timeout (60 s).",
        "本端已关闭并且对端确认了 FIN，但对端还没发送自己的 FIN：对端连接停在 CLOSE-WAIT"
        "（对端应用没有 close）。本端应用已不再持有该套接字（孤儿套接字，归内核），"
        "内核会在 tcp_fin_timeout（60 秒）后丢弃它。",
    ),
    Kind.ACCEPT_QUEUE_FULL: (
        "The accept queue holds connections whose handshake is complete, waiting for the "
        "application to call accept(). Recv-Q is how many are waiting, Send-Q the listen() "
        "backlog. At the backlog, Linux drops further SYNs and final ACKs (ListenOverflows), "
        "so clients see slow or failed connects: the application does not accept fast enough "
        "(stuck or overloaded), or the backlog is too small.",
        "全连接（accept）队列里是已完成握手、等应用调用 accept() 的连接。Recv-Q 是排队数，"
        "Send-Q 是 listen() 的 backlog。达到 backlog 后，Linux 丢弃新的 SYN 和第三次握手的 ACK"
        "（ListenOverflows），客户端连接变慢或失败："
        "应用 accept 太慢（卡住或过载），或 backlog 太小。",
    ),
}


DEFAULT_TIME_WAIT_THRESHOLD = 1000


# Thresholds and Diagnosis are NamedTuples, not dataclasses: importing
# dataclasses (and inspect with it) was a tenth of `tcplab sockets --json`
# on a 20,000-socket table (issue 15).


class Thresholds(NamedTuple):
    time_wait: int = DEFAULT_TIME_WAIT_THRESHOLD  # TIME-WAIT sockets before it is worth a word
    syn_sent_retries: int = 1  # SYN retransmissions without an answer
    close_wait_ms: int = 0  # CLOSE-WAIT age before it counts as a leak


class Diagnosis(NamedTuple):
    kind: Kind
    summary: str
    pid: int | None
    comm: str
    count: int  # type: ignore[assignment]  # (a field named before: it hides tuple.count)
    age_ms: int | None
    sockets: tuple[str, ...]
    summary_zh: str = ""  # the headline in Chinese (--lang zh)

    def headline(self, lang: str = "en") -> str:
        return self.summary_zh if lang == "zh" and self.summary_zh else self.summary

    @property
    def explanation(self) -> str:
        return EXPLANATIONS[self.kind][0]

    @property
    def explanation_zh(self) -> str:
        return EXPLANATIONS[self.kind][1]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "summary": self.summary,
            "summary_zh": self.summary_zh,
            "pid": self.pid,
            "comm": self.comm,
            "count": self.count,
            "age_ms": self.age_ms,
            "sockets": list(self.sockets),
            "explanation": self.explanation,
            "explanation_zh": self.explanation_zh,
        }


FirstSeen = Mapping[SocketKey, float]
Rule = Callable[[Snapshot, FirstSeen, Thresholds], list[Diagnosis]]
_SHOWN = 5  # sockets named in a diagnosis; the count says how many there are


def _owner(row: Row) -> Process | None:
    owners = row.owners
    if len(owners) == 1:
        return owners[0].process
    return min(owners, key=lambda o: o.process.pid).process if owners else None


def _pair(s: SockInfo) -> str:
    return f"{s.local} -> {s.peer}"


def _most_common_peers(socks: list[SockInfo], n: int) -> list[tuple[str, int]]:
    """``Counter(s.peer for s in socks).most_common(n)``, counted by the peer's
    fields (one text per distinct peer, not per socket: 10,000 TIME-WAIT
    sockets have a handful).  The fields name the text one to one, in the
    same first-seen order, so ties come out the same."""
    counts = Counter((s.family, s.dst, s.dport) for s in socks)
    return [(next(s for s in socks if (s.family, s.dst, s.dport) == key).peer, count)
            for key, count in counts.most_common(n)]  # fmt: skip


def _age_ms(snapshot: Snapshot, first_seen: FirstSeen, s: SockInfo) -> int | None:
    ages = []
    idle = s.last_ack_recv_ms  # (one field of tcp_info, not the whole record)
    if idle is not None:
        ages.append(idle)
    seen = first_seen.get(socket_key(s)) if first_seen else None
    if seen is not None:
        ages.append(int((snapshot.monotonic - seen) * 1000))
    return max(ages) if ages else None


# (unknown, "{n} ms", "{n} s", "{n} min", "{n} h") in each language.
_AGE_WORDS = {
    "en": ("for an unknown time", "for {} ms", "for {} s", "for {} min", "for {} h"),
    "zh": ("时长未知", "已 {} 毫秒", "已 {} 秒", "已 {} 分钟", "已 {} 小时"),
}


def format_age(ms: int | None, lang: str = "en") -> str:
    unknown, in_ms, in_s, in_min, in_h = _AGE_WORDS[lang]
    if ms is None:
        return unknown
    if ms < 1000:
        return in_ms.format(ms)
    seconds = ms // 1000
    if seconds < 120:
        return in_s.format(seconds)
    if seconds < 7200:
        return in_min.format(seconds // 60)
    return in_h.format(seconds // 3600)


def close_wait_leaks(snapshot: Snapshot, first_seen: FirstSeen, t: Thresholds) -> list[Diagnosis]:
    by_pid: dict[int, list[Row]] = defaultdict(list)
    ages_of: dict[int, list[int]] = defaultdict(list)
    procs: dict[int, Process] = {}
    close_wait = State.CLOSE_WAIT
    for row in snapshot.rows:
        if row.sock.state is not close_wait:
            continue
        owner = _owner(row)
        # inode 0 in CLOSE-WAIT: a child still in the accept queue whose client gave up;
        # the application never saw it, so it is not the application's leak.
        if owner is not None and row.queued_on is None:
            age = _age_ms(snapshot, first_seen, row.sock)
            if age is None or age >= t.close_wait_ms:
                by_pid[owner.pid].append(row)
                procs[owner.pid] = owner
                if age is not None:
                    ages_of[owner.pid].append(age)
    out = []
    for pid, rows in sorted(by_pid.items()):
        ages = ages_of.get(pid)
        oldest = max(ages) if ages else None
        proc = procs[pid]
        out.append(
            Diagnosis(
                kind=Kind.CLOSE_WAIT_LEAK,
                summary=(
                    f"{proc.comm} (pid {pid}) holds {len(rows)} CLOSE-WAIT socket"
                    f"{'s' if len(rows) != 1 else ''}, the oldest {format_age(oldest)}: "
                    "the peer closed, the application never called close()"
                ),
                pid=pid,
                comm=proc.comm,
                count=len(rows),
                age_ms=oldest,
                sockets=tuple(_pair(r.sock) for r in rows[:_SHOWN]),
                summary_zh=(
                    f"{proc.comm}（pid {pid}）持有 {len(rows)} 个 CLOSE-WAIT 套接字，最老的"
                    f"{format_age(oldest, 'zh')}：对端已关闭，应用一直没有调用 close()"
                ),
            )
        )
    return out


def many_time_wait(snapshot: Snapshot, first_seen: FirstSeen, t: Thresholds) -> list[Diagnosis]:
    time_wait = State.TIME_WAIT
    tw = [s for s in (r.sock for r in snapshot.rows) if s.state is time_wait]
    if len(tw) < t.time_wait:
        return []
    # Which services this host keeps connecting to and closing first.
    top = ", ".join(f"{peer} ({n})" for peer, n in _most_common_peers(tw, 3))
    return [
        Diagnosis(
            kind=Kind.MANY_TIME_WAIT,
            summary=f"{len(tw)} sockets in TIME-WAIT (this side closed first); most to {top}",
            pid=None,
            comm="kernel",
            count=len(tw),
            age_ms=None,
            sockets=tuple(_pair(s) for s in tw[:_SHOWN]),
            summary_zh=f"{len(tw)} 个套接字处于 TIME-WAIT（本端先关闭）；最多的对端：{top}",
        )
    ]


def syn_sent_stuck(snapshot: Snapshot, first_seen: FirstSeen, t: Thresholds) -> list[Diagnosis]:
    by_pid: dict[int | None, list[Row]] = defaultdict(list)
    syn_sent = State.SYN_SENT
    for row in snapshot.rows:
        s = row.sock
        if s.state is not syn_sent:
            continue
        info = s.info
        if (info.retransmits if info is not None else s.retrans) >= t.syn_sent_retries:
            owner = _owner(row)
            by_pid[owner.pid if owner else None].append(row)
    out = []
    for pid, rows in sorted(by_pid.items(), key=lambda kv: kv[0] or 0):
        owner = _owner(rows[0])
        comm = owner.comm if owner else "kernel"
        peers = sorted({r.sock.peer for r in rows})
        tries = max((r.sock.info.retransmits if r.sock.info else r.sock.retrans) for r in rows)
        who = f"{comm} (pid {pid})" if pid is not None else comm
        out.append(
            Diagnosis(
                kind=Kind.SYN_SENT_STUCK,
                summary=(
                    f"{who}: {len(rows)} connect() stuck in SYN-SENT to {', '.join(peers[:3])}, "
                    f"SYN sent {tries + 1} times without an answer: unreachable or filtered"
                ),
                pid=pid,
                comm=comm,
                count=len(rows),
                age_ms=None,
                sockets=tuple(_pair(r.sock) for r in rows[:_SHOWN]),
                summary_zh=(
                    f"{who}：{len(rows)} 个 connect() 卡在 SYN-SENT，目标 {', '.join(peers[:3])}，"
                    f"SYN 已发送 {tries + 1} 次仍无回应：不可达或被防火墙过滤"
                ),
            )
        )
    return out


def fin_wait_2_orphans(snapshot: Snapshot, first_seen: FirstSeen, t: Thresholds) -> list[Diagnosis]:
    # An orphan FIN-WAIT-2 is a timewait mini-socket: inode 0, timer "timewait".
    fin_wait_2 = State.FIN_WAIT_2
    orphans = [s for s in (r.sock for r in snapshot.rows)
               if s.state is fin_wait_2 and s.inode == 0]  # fmt: skip
    if not orphans:
        return []
    peers = _most_common_peers(orphans, 3)
    left = min(s.timer_expires_ms for s in orphans)
    return [
        Diagnosis(
            kind=Kind.FIN_WAIT_2_ORPHANS,
            summary=(
                f"{len(orphans)} orphaned FIN-WAIT-2 socket{'s' if len(orphans) != 1 else ''} "
                f"(closed here, the peer never closed: peers "
                f"{', '.join(p for p, _ in peers)}); the first goes in {left // 1000} s"
            ),
            pid=None,
            comm="kernel",
            count=len(orphans),
            age_ms=None,
            sockets=tuple(_pair(s) for s in orphans[:_SHOWN]),
            summary_zh=(
                f"{len(orphans)} 个孤儿 FIN-WAIT-2 套接字（本端已关闭，对端一直没关闭：对端 "
                f"{', '.join(p for p, _ in peers)}）；第一个将在 {left // 1000} 秒后释放"
            ),
        )
    ]


def accept_queue_full(snapshot: Snapshot, first_seen: FirstSeen, t: Thresholds) -> list[Diagnosis]:
    out = []
    listen = State.LISTEN
    for row in snapshot.rows:
        s = row.sock
        # LISTEN: rqueue = accept-queue length, wqueue = backlog (inet_diag).  Linux
        # queues up to backlog + 1 (sk_acceptq_is_full: length > backlog).
        if s.state is listen and s.rqueue > 0 and s.rqueue >= s.wqueue:
            owner = _owner(row)
            comm = owner.comm if owner else "kernel"
            pid = owner.pid if owner else None
            who = f"{comm} (pid {pid})" if pid is not None else comm
            overflowing = "full, dropping handshakes" if s.rqueue > s.wqueue else "at its limit"
            out.append(
                Diagnosis(
                    kind=Kind.ACCEPT_QUEUE_FULL,
                    summary=(
                        f"{who} listening on {s.local}: accept queue {s.rqueue}/{s.wqueue}, "
                        f"{overflowing}: the application is not calling accept()"
                    ),
                    pid=pid,
                    comm=comm,
                    count=s.rqueue,
                    age_ms=None,
                    sockets=(s.local,),
                    summary_zh=(
                        f"{who} 监听 {s.local}：accept 队列 {s.rqueue}/{s.wqueue}，"
                        f"{'已满，正在丢弃握手' if s.rqueue > s.wqueue else '已到上限'}："
                        "应用没有调用 accept()"
                    ),
                )
            )
    return out


RULES: tuple[Rule, ...] = (
    close_wait_leaks,
    accept_queue_full,
    syn_sent_stuck,
    fin_wait_2_orphans,
    many_time_wait,
)


def diagnose(
    snapshot: Snapshot, first_seen: FirstSeen | None = None, thresholds: Thresholds | None = None
) -> list[Diagnosis]:
    seen: FirstSeen = first_seen if first_seen is not None else {}
    limits = thresholds if thresholds is not None else Thresholds()
    out: list[Diagnosis] = []
    for rule in RULES:
        out.extend(rule(snapshot, seen, limits))
    return out


# The state each diagnosis is about: with --state, only those the user asked for.
STATE_OF_KIND: dict[Kind, State] = {
    Kind.CLOSE_WAIT_LEAK: State.CLOSE_WAIT,
    Kind.MANY_TIME_WAIT: State.TIME_WAIT,
    Kind.SYN_SENT_STUCK: State.SYN_SENT,
    Kind.FIN_WAIT_2_ORPHANS: State.FIN_WAIT_2,
    Kind.ACCEPT_QUEUE_FULL: State.LISTEN,
}


def diagnose_filtered(
    snapshot: Snapshot,
    keep: SocketFilter,
    first_seen: FirstSeen | None = None,
    thresholds: Thresholds | None = None,
) -> list[Diagnosis]:
    """The diagnoses of the sockets the user's filters select.

    ``--port``, ``--host`` and ``--pid`` narrow the sockets the rules read (a
    CLOSE-WAIT leak of another process is not reported under ``--pid``);
    an explicit ``--state`` keeps the diagnoses about those states.  The
    default listing (no TIME-WAIT rows) still reports a TIME-WAIT pile.
    """
    if keep.scoped:
        rows = tuple(r for r in snapshot.rows if keep.in_scope(r))
        snapshot = Snapshot(rows, snapshot.wall_time, snapshot.monotonic, snapshot.netns)
    found = diagnose(snapshot, first_seen, thresholds)
    if keep.explicit_states:
        found = [d for d in found if STATE_OF_KIND[d.kind] in keep.states]
    return found
