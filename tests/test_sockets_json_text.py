"""``tcplab sockets --json`` writes its document as text directly; it must be
byte for byte what ``json.dumps`` of the dict form gives (every field, every
kind of row: owners, queued children, listeners, IPv6, no tcp_info,
unusual process names)."""

from __future__ import annotations

import json
import os
import socket

import pytest

from tcplab.commands.sockets import snapshot_json
from tcplab.sockets.diag import SockInfo, TcpInfo, dump_tcp
from tcplab.sockets.procs import Process, SocketOwner
from tcplab.sockets.view import (
    STATE_GROUPS,
    Row,
    Snapshot,
    SocketFilter,
    attach_owners,
    group_by_process,
    groups_json,
    groups_json_text,
)
from tcplab.states import State

INFO = TcpInfo(1, 0, 0, 0, 204000, 40000, 1448, 536, 0, 0, 0, 0, 12, 34, 56, 65535, 120, 60,
               2147483647, 10).build()  # fmt: skip


def _sock(state: State, src: str, sport: int, dst: str, dport: int, inode: int,
          family: int = socket.AF_INET, info: bytes | None = INFO,
          shutdown: int | None = 0) -> SockInfo:  # fmt: skip
    return SockInfo(state, 1, family, src, sport, dst, dport, 3, 4, "keepalive", 7000, 1, 0,
                    inode, 2**63 + 5, 0, shutdown, info)  # fmt: skip


def synthetic_rows() -> list[Row]:
    odd = Process(4242, 'na"me\\ \t ünï', "/usr/bin/x --flag='a b' \"q\" \u2028 中文")
    plain = Process(7, "sshd", "")
    listener = _sock(State.LISTEN, "0.0.0.0", 8080, "0.0.0.0", 0, 11)
    rows = [
        Row(listener, (SocketOwner(odd, 3), SocketOwner(plain, 9))),
        Row(_sock(State.ESTABLISHED, "10.0.0.1", 8080, "10.0.0.2", 5000, 12),
            (SocketOwner(odd, 4),)),
        Row(_sock(State.ESTABLISHED, "10.0.0.1", 8080, "10.0.0.3", 5001, 0, info=None), (),
            listener),
        Row(_sock(State.TIME_WAIT, "10.0.0.1", 8080, "10.0.0.4", 5002, 0, info=None,
                  shutdown=None), ()),
        Row(_sock(State.CLOSE_WAIT, "fe80::1", 443, "2001:db8::2", 6000, 13, socket.AF_INET6),
            (SocketOwner(plain, 5),)),
        Row(_sock(State.SYN_SENT, "::", 0, "::ffff:1.2.3.4", 80, 14, socket.AF_INET6), ()),
    ]  # fmt: skip
    return rows


def test_the_text_is_json_dumps_of_the_dicts() -> None:
    snap = Snapshot(tuple(synthetic_rows()), 1_700_000_000.123456, 5.0, None)
    groups = group_by_process(snap, SocketFilter(STATE_GROUPS["all"]))
    assert len(groups) == 4  # sshd, the odd name, unknown owner, the kernel
    assert groups_json_text(groups) == json.dumps(groups_json(groups), ensure_ascii=False)
    doc = json.loads(snapshot_json(snap, SocketFilter(STATE_GROUPS["all"]), []))
    assert doc == {"netns": None, "time": 1_700_000_000.123456,
                   "processes": groups_json(groups), "diagnoses": []}  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="sock_diag of the host's table")
def test_the_text_is_json_dumps_on_this_hosts_table() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        try:
            rows = attach_owners(dump_tcp(), {})
        finally:
            client.close()
            conn.close()
    snap = Snapshot(rows, 1.5, 2.5, "x")
    groups = group_by_process(snap, SocketFilter(STATE_GROUPS["all"]))
    assert groups_json_text(groups) == json.dumps(groups_json(groups), ensure_ascii=False)
