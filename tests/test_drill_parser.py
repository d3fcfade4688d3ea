"""The packetdrill language: every construct the corpus uses, on hand-written scripts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conftest import SHARED
from tcplab.drill import calls
from tcplab.drill.engine import parse_tcp_info, run_python
from tcplab.drill.packets import Config, Conn, build_inbound, decode
from tcplab.drill.parser import parse_file, parse_text
from tcplab.drill.script import (
    CodeSpec,
    CommandSpec,
    DrillError,
    Ellipsis_,
    Int,
    ListExpr,
    PacketSpec,
    Struct,
    SyscallSpec,
    TimeType,
    Unsupported,
    Word,
)

CORPUS = SHARED / "peer-traces/packetdrill"


def one(text: str) -> object:
    script = parse_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n" + text, "t.pkt")
    return script.events[1]


def test_options_and_defines() -> None:
    script = parse_text(
        "--tolerance_usecs=10000\n--tcp_ts_ecr_scaled // comment\n--define=WIN=257\n"
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < . 1:1(0) ack 1 win WIN\n",
        "t.pkt",
        {"X": "1"},
    )
    assert script.options == {
        "tolerance_usecs": "10000",
        "tcp_ts_ecr_scaled": "",
        "define": "WIN=257",
    }
    pkt = script.events[1].action
    assert isinstance(pkt, PacketSpec) and pkt.window == 257
    # -D on the command line: a word becomes the define's token (here a hex cookie).
    script = parse_text("0 < S 0:0(0) win 1 <FOEXP COOKIE>\n", "t.pkt", {"COOKIE": "abcd1234"})
    pkt = script.events[0].action
    assert isinstance(pkt, PacketSpec) and pkt.options is not None
    assert pkt.options[0].kind == "FOEXP" and pkt.options[0].cookie == bytes.fromhex("abcd1234")


def test_times() -> None:
    script = parse_text(
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "+.1 close(3) = 0\n"
        "0.25 close(3) = 0\n"
        "* > F. 1:1(0) ack 1\n"
        "+.3~+.400 > F. 1:1(0) ack 1\n"
        "1~2 > F. 1:1(0) ack 1\n"
        "+.01...0.011 connect(3, ..., ...) = 0\n",
        "t.pkt",
    )
    kinds = [(e.time_type, e.time_usecs, e.time_end_usecs) for e in script.events]
    assert kinds == [
        (TimeType.ABSOLUTE, 0, -1),
        (TimeType.RELATIVE, 100_000, -1),
        (TimeType.ABSOLUTE, 250_000, -1),
        (TimeType.ANY, 0, -1),
        (TimeType.RELATIVE_RANGE, 300_000, 400_000),
        (TimeType.ABSOLUTE_RANGE, 1_000_000, 2_000_000),
        (TimeType.RELATIVE, 10_000, -1),
    ]
    call = script.events[-1].action
    assert isinstance(call, SyscallSpec) and call.blocking and call.end_usecs == 11_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* close(3) = 0", "event time <star> can only be used with outbound packets"),
        ("+.1~+.2 < . 1:1(0) ack 1 win 1", "event time range can only be used with outbound"),
        ("+.2~+.1 > . 1:1(0) ack 1", "time range is backwards"),
        ("+0 > . 1:5(3) ack 1", "inconsistent TCP sequence numbers and payload size"),
        ("+0 < . 1:1(0) ack 1", "window must be specified for inbound packets"),
        ("+0 < . 1:1(0) ack 1 win 1 <...>", "<...> for TCP options can only be used with outbound"),
        ("+0 < S 0:0(0) win 1 <mss 1460,nop>", "TCP options are not padded correctly"),
        ("+0 > . 1:1(0) ack 1 <bogus 3>", "unknown TCP option 'bogus'"),
        ("+0 close(3 = 0", "expected ')'"),
    ],
)
def test_semantic_errors(text: str, message: str) -> None:
    with pytest.raises(DrillError) as info:
        parse_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\n" + text + "\n", "bad.pkt")
    assert str(info.value).startswith("bad.pkt:3: ")
    assert message in str(info.value)


def test_packet_lines() -> None:
    pkt = one("+0 < S. 0:0(0) ack 1 win 32768 <mss 1000,nop,wscale 6,nop,nop,sackOK>").action
    assert isinstance(pkt, PacketSpec)
    assert (pkt.inbound, pkt.flags, pkt.seq, pkt.end, pkt.length, pkt.ack, pkt.window) == (
        True,
        "S.",
        0,
        0,
        0,
        1,
        32768,
    )
    assert [o.text() for o in pkt.options or ()] == [
        "mss 1000",
        "nop",
        "wscale 6",
        "nop",
        "nop",
        "sackOK",
    ]
    out = one("+0 > P. 1:1001(1000) ack 1").action
    assert isinstance(out, PacketSpec) and not out.inbound and out.window is None
    assert out.options == ()
    wild = one("+0 > S 0:0(0) <...>").action
    assert isinstance(wild, PacketSpec) and wild.options is None
    noflags = one("+0 < - 1:1001(1000) win 20000").action
    assert isinstance(noflags, PacketSpec) and noflags.flags == ""
    fin = one("+0 < FP. 1001:2001(1000) ack 1 win 257").action
    assert isinstance(fin, PacketSpec) and fin.flags == "FP."
    opts = one("+0 < . 1:1(0) ack 1 win 1 <sack 1:2 3:4,TS val 200 ecr 100,FO abcd1234,eol,nop>")
    pkt = opts.action  # type: ignore[attr-defined]
    assert isinstance(pkt, PacketSpec) and pkt.options is not None
    sack, ts, fo, eol, nop = pkt.options
    assert sack.blocks == ((1, 2), (3, 4)) and ts.ts == (200, 100)
    assert fo.kind == "FO" and fo.cookie == bytes.fromhex("abcd1234")
    assert (eol.kind, nop.kind) == ("eol", "nop")


def test_syscall_lines() -> None:
    call = one("+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)").action
    assert isinstance(call, SyscallSpec)
    assert call.name == "connect" and call.errno == "EINPROGRESS"
    assert call.note == "Operation now in progress" and call.result == Int(-1, "-1")
    assert isinstance(call.args[1], Ellipsis_)
    getl = one("+0 fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)").action
    assert isinstance(getl, SyscallSpec) and getl.result == Int(2, "0x2") and getl.errno is None
    msg = one(
        "+0 recvmsg(3, {msg_name(...)=...,\n msg_iov(1)=[{..., 1000}],\n msg_flags=0,\n"
        " msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ, cmsg_data=9000}]}, 0) = 1000"
    ).action
    assert isinstance(msg, SyscallSpec) and isinstance(msg.args[1], Struct)
    fields = calls.fields(msg.args[1])
    assert isinstance(fields["msg_iov"], ListExpr) and "msg_control" in fields
    ep = one("+0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLOUT|EPOLLIN|EPOLLET, fd=4}) = 0")
    action = ep.action  # type: ignore[attr-defined]
    env = calls.Env(socket.AF_INET, "192.168.0.1", "192.0.2.1", 8080, 8080, {4: 7, 5: 9})
    prep = calls.prepare(action, env)
    assert prep.cmd == {
        "op": "epoll_ctl",
        "fd": 9,
        "ctl": 1,
        "target": 7,
        "events": 0x1 | 0x4 | (1 << 31),
        "data": 7,
    }
    sso = one("+0 setsockopt(4, SOL_SOCKET, SO_SNDBUF, [21000], 4) = 0").action
    assert isinstance(sso, SyscallSpec)
    assert calls.prepare(sso, env).cmd["value"] == 21000
    key = one('+0 setsockopt(3, SOL_TCP, TCP_FASTOPEN_KEY, "\\xf7\\x63", 2) = 0').action
    assert isinstance(key, SyscallSpec) and calls.prepare(key, env).cmd["raw"] == "f763"
    blocking = one("+0...0.300 write(4, ..., 61000) = 61000    // blocks").action
    assert isinstance(blocking, SyscallSpec) and blocking.end_usecs == 300_000
    nul = one("+0 write(4, NULL, 1000) = -1 EFAULT (Bad address)").action
    assert isinstance(nul, SyscallSpec) and calls.prepare(nul, env).cmd["null"] is True
    assert isinstance(nul.args[1], Word)


def test_commands_and_code() -> None:
    script = parse_text(
        "`../common/defaults.sh\n sysctl -q net.ipv4.tcp_timestamps=0`\n"
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "+0 `tc qdisc add dev tun0 root pfifo`\n"
        "+0 %{ assert tcpi_probes == 0, tcpi_probes; \\\n  assert tcpi_backoff == 0 }%\n"
        "`/tmp/sysctl_restore_${PPID}.sh`\n",
        "t.pkt",
    )
    assert script.init_command is not None and "defaults.sh" in script.init_command.command
    assert script.init_line == 1
    assert isinstance(script.events[1].action, CommandSpec)
    code = script.events[2].action
    assert isinstance(code, CodeSpec) and code.code.startswith("assert tcpi_probes")
    assert script.cleanup_command is not None and "sysctl_restore" in script.cleanup_command.command


def test_python_blocks_run_restricted() -> None:
    info = {"tcpi_probes": 0, "tcpi_backoff": 0, "tcpi_options": 32}
    assert (
        run_python("assert tcpi_probes == 0, tcpi_probes; \\\n assert tcpi_backoff == 0;\\\n", info)
        is None
    )
    assert run_python("assert (tcpi_options & TCPI_OPT_SYN_DATA) != 0", info) is None
    assert run_python("assert tcpi_probes == 6, tcpi_probes", info) == "AssertionError: 0"
    # No imports, no files: the namespace has tcpi_* and a few builtins only.
    err = run_python("import os", info)
    assert err is not None and "ImportError" in err
    assert run_python("open('/etc/passwd')", info) == "NameError: name 'open' is not defined"


def test_tcp_info_layout() -> None:
    import struct

    raw = bytes([1, 0, 0, 6, 2, 7, 0x87, 0]) + struct.pack("=24I", *range(1, 25))
    info = parse_tcp_info(raw)
    assert info["tcpi_state"] == 1 and info["tcpi_probes"] == 6 and info["tcpi_backoff"] == 2
    assert (info["tcpi_snd_wscale"], info["tcpi_rcv_wscale"]) == (7, 8)
    assert info["tcpi_rto"] == 1 and info["tcpi_last_data_recv"] == 12
    assert info["tcpi_total_retrans"] == 24 and "tcpi_pacing_rate" not in info


def test_unsupported_features_name_the_line() -> None:
    for text, what in (
        ("+0 < icmp unreachable frag_needed mtu 1200", "ICMP packets"),
        ("+0 < udp (1000)", "UDP packets"),
        ("+0 < [ect0] S 0:0(0) win 1", "IP header fields on a packet (ECN/TOS/flow label/TTL)"),
        ("+0 < S 0:0(0) win 1 <md5 abcd,nop,nop>", "TCP MD5 signature option"),
    ):
        with pytest.raises(Unsupported) as info:
            parse_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n" + text + "\n", "u.pkt")
        assert str(info.value) == f"u.pkt:2: unsupported: {what}"
    env = calls.Env(socket.AF_INET, "192.168.0.1", "192.0.2.1", 8080, 8080)
    call = one("+0 splice(3, 4, 5) = 0").action
    assert isinstance(call, SyscallSpec)
    with pytest.raises(calls.CallUnsupported, match="system call splice"):
        calls.prepare(call, env)


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bin.pkt"
    bad.write_bytes(b"0 socket(...) = 3\n\xff\xfe\n")
    with pytest.raises(DrillError, match=r"bin.pkt:2: not UTF-8"):
        parse_file(bad)
    with pytest.raises(DrillError, match=r"(?i)no such file"):
        parse_file(tmp_path / "missing.pkt")
    with pytest.raises(DrillError, match=r"unterminated %\{ code block"):
        parse_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 %{ assert 1\n", "c.pkt")


def test_inbound_packet_is_mapped_onto_the_live_connection() -> None:
    conn = Conn(
        socket.AF_INET,
        local=("192.168.0.1", 8080),
        remote=("192.0.2.1", 40001),
        script_local_isn=0,
        live_local_isn=1000,
    )
    conn.ts_map[100] = 555
    pkt = one("+0 < . 1:1001(1000) ack 1 win 257 <nop,nop,TS val 7 ecr 100>").action
    assert isinstance(pkt, PacketSpec)
    raw = build_inbound(pkt, conn, Config())
    live = decode(raw, 0)
    assert live is not None
    assert (live.src, live.tcp.sport, live.dst, live.tcp.dport) == (
        "192.0.2.1",
        40001,
        "192.168.0.1",
        8080,
    )
    assert live.tcp.seq == 1 and live.tcp.ack == 1001 and len(live.payload) == 1000
    assert live.tcp.option_text() == "nop,nop,TS val 7 ecr 555"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the packetdrill corpus is not beside the checkout")
def test_the_corpus_parses_or_names_what_is_unsupported() -> None:
    scripts = sorted((CORPUS / "tcp").rglob("*.pkt"))
    assert len(scripts) == 102
    unsupported = []
    for path in scripts:
        try:
            parse_file(path, {"TFO_COOKIE": "3021b9d889017eeb"})
        except Unsupported as exc:
            unsupported.append(exc.what)
    assert unsupported == ["ICMP packets"] * 6
