"""What the ladders and fact lines say, in Chinese when ``--lang zh`` is asked.

The renderers and the fact checker write English sentences from a small
set of templates (``kernel: sends RST (reason)``, ``expected X; got Y``).
Each template has one pattern here and its Chinese form; values inside
(state names, numbers, flags, socket calls) are kept as they are, so
``FIN-WAIT-2`` and ``socket.end()`` read the same in both languages.  A
sentence no pattern knows (a finding of the analyzer, a note a scenario
wrote) is left in English rather than guessed.

State names keep the RFC spelling (``SYN-SENT``) in both languages.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_Sub = str | Callable[[re.Match[str]], str]

# (pattern, replacement); tried in order, each applied once to the whole text.
_ZH: tuple[tuple[re.Pattern[str], _Sub], ...] = tuple(
    (re.compile(p), r) for p, r in (
        # ladder notes from the kernel's tracepoints and the lab
        (r"^kernel: retransmission \(in (\S+)\)$", r"内核：重传（处于 \1）"),
        (r"^kernel: sends RST \((.+)\)$", r"内核：发送 RST（\1）"),
        (r"^kernel: received RST$", "内核：收到 RST"),
        (r"^orphaned: the kernel reports CLOSE, sock_diag still lists a FIN-WAIT-2 mini-socket"
         r" \(lives tcp_fin_timeout seconds\)$",
         "孤儿连接：内核报告 CLOSE，sock_diag 仍列出一个 FIN-WAIT-2 迷你 socket"
         "（存活 tcp_fin_timeout 秒）"),
        (r"^expected (\S+), got (\S+)$", r"预期 \1，实际 \2"),
        # what the wire did
        (r"^✗ (the wire drops .+)$", lambda m: "✗ " + tr(m[1], "zh")),
        (r"^the wire drops everything to and from (?:the )?(\w+)(?: and the (\w+))?$",
         lambda m: f"线路丢弃发往和来自 {m[1]}{' 和 ' + m[2] if m[2] else ''} 的一切"),
        (r"^the wire drops everything from the (\w+) \((.+)\)$", r"线路丢弃来自 \1 的一切（\2）"),
        (r"^the wire carries the (\w+)'s packets again$", r"线路恢复转发 \1 的报文"),
        (r"^the wire lets the packets it holds go$", "线路放行扣留的报文"),
        (r"^the wire held it ([\d.]+) ms: (.+), let go with (\d+) more$",
         r"线路扣留了 \1 ms：\2，与另外 \3 个一起放行"),
        (r"^the wire held it ([\d.]+) ms: (.+)$", r"线路扣留了 \1 ms：\2"),
        (r"^the wire delays it ([\d.]+) s: (.+)$", r"线路延迟 \1 s：\2"),
        (r"^the wire duplicates it: (.+)$", r"线路复制了它：\1"),
        (r"^the scenario's fault (\d+)$", r"场景的第 \1 条故障规则"),
        (r"^✗ dropped by the wire$", "✗ 被线路丢弃"),
        (r"^\(arrives (.+) later\)$", r"（\1 后到达）"),
        (r"^(.+) arrives$", r"\1 到达"),
        (r"^ (.+) later $", r" \1 后 "),
        # calls that are not socket calls
        (r"^sleeps (\S+) s$", r"等待 \1 秒"),
        (r"^(\w+: )?waits until ss shows (.+)$", r"\1等待 ss 显示 \2"),
        (r"^(\w+: )?waits until the socket is gone$", r"\1等待 socket 消失"),
        (r"^the wire let it go at once with the (\d+) it held: (.+)$",
         r"线路随即把它与扣留的 \1 个一起放行：\2"),
        (r"^kill\(SIGKILL\): the process dies, the kernel closes its sockets$",
         "kill(SIGKILL)：进程终止，内核关闭它的 socket"),
        (r"^(\w+: )?fork\(\); close\(\) in child$", r"\1fork()；子进程中 close()"),
        # snapshots and badges
        (r"^ss listener: (.+)$", r"ss 监听 socket：\1"),
        (r"^listener (\S+)$", r"监听 socket \1"),
        (r"^(.+) says (\S+); the lane shows (\S+)$", r"\1 说是 \2；本列显示 \3"),
        (r"^(.+) says (\S+)$", r"\1 说是 \2"),
        (r"^kernel tracepoint$", "内核 tracepoint"),
        (r"^sock_diag snapshot$", "sock_diag 快照"),
        (r"^inferred from packets$", "从报文推断"),
        (r"^tcplab model$", "tcplab 模型"),
        (r"^states: (.+)$", lambda m: "状态：" + "；".join(
            tr(part, "zh") for part in m[1].split("; "))),
        (r"^(NAME\S?) = (.+)$", lambda m: f"{m[1]} = {tr(m[2], 'zh')}"),
        # the sequence arithmetic (--explain-seq)
        (r"^SYN takes seq (\d+), next (\d+)$", r"SYN 占用序号 \1，下一个是 \2"),
        (r"^FIN takes seq (\d+), next (\d+)$", r"FIN 占用序号 \1，下一个是 \2"),
        (r"^bytes (\d+)–(\d+), next (\d+)$", r"字节 \1–\2，下一个是 \3"),
        (r"^ack (\d+): nothing new, still expects (\d+)$", r"ack \1：没有新确认，仍期待 \2"),
        (r"^ack (\d+): expects seq (\d+) next$", r"ack \1：期待下一个序号 \2"),
        # a collapsed bulk transfer
        (r"^… (\d+) data segments of ([\d–]+) bytes (\S+) → (\S+), ACKed every (\d+)$",
         r"… \1 个 \2 字节的数据段 \3 → \4，每 \5 个确认一次"),
        (r"^… (\d+) data segments of ([\d–]+) bytes (\S+) → (\S+), no ACKs$",
         r"… \1 个 \2 字节的数据段 \3 → \4，其间没有确认"),
        # fact lines (tcplab.scenario.check)
        (r"^expected (.+); wire had (.+)$", r"预期 \1；线路上是 \2"),
        (r"^(.+) in order within (.+)$", r"\2 中按顺序包含 \1"),
        (r"^expected (.+) in order; got (.+)$", r"预期按顺序经过 \1；实际 \2"),
        (r"^must not reach (.+); reached (.+)$", r"不应到达 \1；实际到达 \2"),
        (r"^expected (.+); last (.+)$", r"预期最后是 \1；实际最后是 \2"),
        (r"^expected (.+); got (.+)$", r"预期 \1；实际 \2"),
        (r"^a snapshot with (.+); seen: (.+)$", r"预期一个快照：\1；看到：\2"),
        (r"^all in order; wire: (.+)$", r"全部按顺序出现；线路：\1"),
        (r"^nothing matched (.+) \(in order\); wire: (.+)$",
         r"没有报文匹配 \1（按顺序）；线路：\2"),
        (r"^expected (\d+), got (\d+)$", r"预期 \1，实际 \2"),
        (r"^largest payload (\d+), limit (\d+)$", r"最大载荷 \1 字节，上限 \2"),
        (r"^(\d+) packet\(s\) between (\S+) and the next call$",
         r"\2 与下一次调用之间有 \1 个报文"),
        (r"^no call (\S+) in the timeline$", r"时间线中没有调用 \1"),
        (r'^a note containing "(.+)"$', r"一条包含“\1”的注释"),
        # several of the above joined by "; " (the seq arithmetic of one segment)
        (r"^(.+?); (.+)$", lambda m: f"{tr(m[1], 'zh')}；{tr(m[2], 'zh')}"),
    )
)

# Words of the terminal view itself.
WORDS_ZH: dict[str, str] = {
    "expected facts": "预期事实",
    "fact": "事实",
    "held": "成立",
    "detail": "详情",
    "yes": "是",
    "NO": "否",
}


def tr(text: str, lang: str) -> str:
    """``text`` in ``lang`` (``en``: as it is; ``zh``: by the first pattern that
    matches the whole sentence; unchanged when none does)."""
    if lang != "zh" or not text:
        return text
    if text in WORDS_ZH:
        return WORDS_ZH[text]
    for pattern, sub in _ZH:
        if pattern.fullmatch(text):
            out = pattern.sub(sub, text, count=1)
            return out
    return text


__all__ = ["WORDS_ZH", "tr"]
