"""The C loops of ``tcplab sockets`` (sockets/_diag.c) equal their Python references.

``_diag.parse_dump`` against ``diag.parse_dump``, ``_diag.socket_owners``
against ``procs.socket_owners_reference`` and ``_diag.rows_json`` against
``view.rows_json_text_reference``: on synthetic input (every field, every
malformed case with its one line) and on a live dump of this host's table.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.errors import TcplabError
from tcplab.sockets.diag import (
    NLMSGHDR,
    DiagRequest,
    SockInfo,
    StateMask,
    TcpInfo,
    _diag,
    _netlink_socket,
    parse_dump,
)
from tcplab.sockets.procs import Process, SocketOwner, socket_owners, socket_owners_reference
from tcplab.sockets.view import (
    STATE_GROUPS,
    ProcessGroup,
    Row,
    Snapshot,
    SocketFilter,
    attach_owners,
    attach_owners_reference,
    group_by_process,
    group_by_process_reference,
    rows_json_text_reference,
)
from tcplab.states import State
from test_sockets_diag import TIME_WAIT_MSG, _netlink, sock_infos
from test_sockets_json_text import synthetic_rows

root = pytest.mark.skipif(os.geteuid() != 0, reason="sock_diag of the host's table needs root")


def both(data: bytes | memoryview, seq: int | None = None) -> tuple[list[SockInfo], bool]:
    """Parse with both; they must agree on the result or on the one-line error."""
    try:
        expected: tuple[list[SockInfo], bool] | str = parse_dump(bytes(data), seq)
    except TcplabError as err:
        expected = str(err)
    try:
        got: tuple[list[SockInfo], bool] | str = _diag.parse_dump(data, seq)
    except TcplabError as err:
        got = str(err)
    assert got == expected
    assert not isinstance(got, str), got
    return got


def error_of(data: bytes, seq: int | None = None) -> str:
    messages = []
    for parse in (parse_dump, _diag.parse_dump):
        with pytest.raises(TcplabError) as caught:
            parse(data, seq)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    return messages[0]


def test_parse_literal_time_wait_and_stream() -> None:
    chunk = (
        _netlink(20, 3, TIME_WAIT_MSG)
        + _netlink(20, 2, TIME_WAIT_MSG)  # an older request's reply: skipped
        + _netlink(20, 3, TIME_WAIT_MSG)
        + _netlink(3, 3, struct.pack("<i", 0))
    )
    sockets, done = both(chunk, 3)
    assert done and len(sockets) == 2
    assert type(sockets[0]) is SockInfo and sockets[0].state is State.TIME_WAIT
    assert both(chunk[: 2 * (16 + 72)], 3) == (sockets[:1], False)
    assert both(memoryview(chunk)[16 + 72 :], None)[0] == sockets  # any seq, from a view


@settings(max_examples=300)
@given(st.lists(sock_infos(), max_size=6))
def test_parse_equals_python_on_built_messages(socks: list[SockInfo]) -> None:
    chunk = b"".join(_netlink(20, 7, s.build()) for s in socks) + _netlink(3, 7, b"\0" * 4)
    assert both(chunk, 7) == (socks, True)


def test_malformed_dumps_give_the_same_line() -> None:
    good = _netlink(20, 1, TIME_WAIT_MSG)
    shutdown_empty = _netlink(20, 1, TIME_WAIT_MSG + struct.pack("=HH", 4, 8))
    cases = {
        "netlink message at offset 0 has length 9": struct.pack("<IHHII", 9, 20, 0, 1, 0)
        + b"\0" * 8,
        f"netlink message at offset {len(good)} has length 4096": good
        + struct.pack("<IHHII", 4096, 20, 0, 1, 0),
        "inet_diag_msg at offset 16 is 8 bytes, need 72": _netlink(20, 1, b"\0" * 8),
        "message at offset 16 has address family 7": _netlink(20, 1, b"\x07" + TIME_WAIT_MSG[1:]),
        "message at offset 16 has unknown state 14": _netlink(
            20, 1, TIME_WAIT_MSG[:1] + b"\x0e" + TIME_WAIT_MSG[2:]
        ),
        "attribute at offset 88 has length 2": _netlink(
            20, 1, TIME_WAIT_MSG + struct.pack("=HH", 2, 2)
        ),
        "attribute at offset 88 has length 64": _netlink(
            20, 1, TIME_WAIT_MSG + struct.pack("=HH", 64, 2)
        ),
        "shutdown attribute at offset 88 is empty": shutdown_empty,
        "the kernel answered Invalid argument": _netlink(2, 1, struct.pack("<i", -22) + b"\0" * 16),
        "NLMSG_ERROR at offset 0 is 16 bytes": _netlink(2, 1, b""),
    }
    for message, data in cases.items():
        assert error_of(data, 1) == f"sock_diag: {message}"
    # An NLMSG_ERROR of 0 is an ACK; an unknown message type is skipped.
    ack = _netlink(2, 1, struct.pack("<i", 0) + b"\0" * 16) + _netlink(99, 1, b"x") + good
    assert len(both(ack, 1)[0]) == 1
    # An unknown timer is named, not refused.
    odd_timer = _netlink(20, 1, TIME_WAIT_MSG[:2] + b"\x09" + TIME_WAIT_MSG[3:])
    assert both(odd_timer, 1)[0][0].timer == "unknown(9)"


def _raw_dump(family: int) -> list[bytes]:
    """The chunks of one live dump of this namespace's TCP sockets, as received."""
    sock = _netlink_socket()
    chunks = []
    try:
        sock.send(DiagRequest(family=family, states=int(StateMask.ALL)).build(1))
        while True:
            chunk = sock.recv(65536)
            chunks.append(chunk)
            pos = 0
            while pos + 16 <= len(chunk):
                length, kind, _, _, _ = NLMSGHDR.unpack_from(chunk, pos)
                if kind == 3:
                    return chunks
                pos = (pos + length + 3) & ~3
    finally:
        sock.close()


@root
def test_parse_equals_python_on_a_live_dump() -> None:
    servers = [socket.create_server(("127.0.0.1", 0)),
               socket.create_server(("::1", 0), family=socket.AF_INET6)]  # fmt: skip
    kept: list[socket.socket] = []
    try:
        for server in servers:
            for _ in range(50):
                kept.append(socket.create_connection(server.getsockname()[:2]))
                kept.append(server.accept()[0])
            kept[-1].close()  # one CLOSE-WAIT / FIN-WAIT-2 pair per family
        seen = 0
        for family in (socket.AF_INET, socket.AF_INET6):
            for chunk in _raw_dump(family):
                sockets, _ = both(chunk, 1)
                seen += len(sockets)
        assert seen >= 2 * 100
    finally:
        for s in kept + servers:
            s.close()


# ------------------------------------------------------------------ owners


def _fake_proc(tmp: Path) -> Path:
    """A /proc-shaped tree: fd entries are symlinks to what /proc shows."""
    layout: dict[str, dict[str, str]] = {
        "1": {"0": "/dev/null", "3": "socket:[101]", "4": "pipe:[7]", "5": "socket:[102]"},
        "22": {"3": "socket:[101]", "9": "anon_inode:[eventpoll]", "10": "socket:[103]"},
        "333": {"1": "/tmp/x"},  # no sockets: never asked for its name
        "4444": {"3": "socket:[104]"},  # its comm is gone: skipped, as a vanished process
        "55": {},  # a kernel thread: no fds
        "self": {"3": "socket:[999]"},  # not a pid
    }
    for pid, fds in layout.items():
        (tmp / pid / "fd").mkdir(parents=True)
        for fd, target in fds.items():
            (tmp / pid / "fd" / fd).symlink_to(target)
        if pid != "4444":
            (tmp / pid / "comm").write_text(f"p{pid}\n")
            (tmp / pid / "cmdline").write_bytes(f"/bin/p{pid}\0--x\0".encode())
    (tmp / "66").mkdir()  # a process whose fd directory cannot be opened
    return tmp


def test_owner_scan_equals_python_on_a_fake_proc(tmp_path: Path) -> None:
    proc = str(_fake_proc(tmp_path))
    want = socket_owners_reference(proc)
    got = socket_owners(proc)
    assert got == want
    assert list(got) == list(want)  # the same order too
    p1, p22 = Process(1, "p1", "/bin/p1 --x"), Process(22, "p22", "/bin/p22 --x")
    assert sorted(got[101]) == sorted([SocketOwner(p1, 3), SocketOwner(p22, 3)])
    assert got[102] == [SocketOwner(p1, 5)] and got[103] == [SocketOwner(p22, 10)]
    assert set(got) == {101, 102, 103}
    assert all(type(o) is SocketOwner for owners in got.values() for o in owners)


def test_owner_scan_of_a_missing_proc_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        socket_owners(str(tmp_path / "nowhere"))


@root
def test_owner_scan_equals_python_for_this_process() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        try:
            mine = {server.fileno(), client.fileno(), conn.fileno()}

            def own(owners: dict[int, list[SocketOwner]]) -> dict[int, list[SocketOwner]]:
                # Other processes open and close sockets between the two scans.
                out = {i: [o for o in os_ if o.process.pid == os.getpid()]
                       for i, os_ in owners.items()}  # fmt: skip
                return {i: os_ for i, os_ in out.items() if os_}

            got, want = own(socket_owners()), own(socket_owners_reference())
            assert got == want
            assert {o.fd for owners in got.values() for o in owners} >= mine
        finally:
            client.close()
            conn.close()


# ------------------------------------------------------------------ attach and group


def _sock(state: State, src: str, sport: int, dst: str, dport: int, inode: int,
          family: int = socket.AF_INET) -> SockInfo:  # fmt: skip
    return SockInfo(state, 1, family, src, sport, dst, dport, 0, 0, "off", 0, 0, 0, inode,
                    inode * 7 + sport, 0, None, None)  # fmt: skip


def _table() -> tuple[list[SockInfo], dict[int, list[SocketOwner]]]:
    """Every case of attach and group: shared, unknown and kernel sockets,
    children queued on a specific and on a wildcard listener, a queued child
    whose listener is gone, equal sort keys in dump order."""
    web, app, old = (Process(300, "web", "web -d"), Process(20, "app", "app"),
                     Process(20_000, "old", ""))  # fmt: skip
    socks = [
        _sock(State.LISTEN, "0.0.0.0", 80, "0.0.0.0", 0, 11),
        _sock(State.LISTEN, "10.0.0.1", 443, "0.0.0.0", 0, 12),
        _sock(State.LISTEN, "::", 8080, "::", 0, 13, socket.AF_INET6),
        _sock(State.ESTABLISHED, "10.0.0.1", 80, "10.0.0.9", 5000, 21),
        _sock(State.ESTABLISHED, "10.0.0.1", 80, "10.0.0.9", 4000, 22),
        _sock(State.ESTABLISHED, "10.0.0.1", 80, "10.0.0.9", 4000, 23),  # equal key
        _sock(State.ESTABLISHED, "10.0.0.1", 80, "10.0.0.8", 6000, 0),  # queued on :80
        _sock(State.SYN_RECEIVED, "10.0.0.1", 443, "10.0.0.8", 6001, 0),  # queued on :443
        _sock(State.CLOSE_WAIT, "::1", 8080, "::1", 6002, 0, socket.AF_INET6),  # queued, v6
        _sock(State.ESTABLISHED, "10.0.0.1", 9999, "10.0.0.8", 6003, 0),  # no listener
        _sock(State.TIME_WAIT, "10.0.0.1", 41000, "10.0.0.9", 80, 0),
        _sock(State.TIME_WAIT, "10.0.0.1", 40000, "10.0.0.9", 80, 0),
        _sock(State.FIN_WAIT_2, "10.0.0.1", 40001, "10.0.0.9", 80, 0),
        _sock(State.CLOSE_WAIT, "10.0.0.1", 80, "10.0.0.7", 7000, 31),
        _sock(State.ESTABLISHED, "10.0.0.1", 2222, "10.0.0.7", 7001, 99),  # owner unseen
    ]
    owners = {
        11: [SocketOwner(web, 3), SocketOwner(app, 7), SocketOwner(old, 4)],  # shared: app
        12: [SocketOwner(web, 5)],
        13: [SocketOwner(old, 6)],
        21: [SocketOwner(app, 8)],
        22: [SocketOwner(web, 9)],
        23: [SocketOwner(web, 10)],
        31: [SocketOwner(web, 11), SocketOwner(web, 12)],
    }
    return socks, owners


def _groups(groups: list[ProcessGroup]) -> list[tuple[object, ...]]:
    return [(g.process, g.key, dict(g.counts), g.rows, g.listeners) for g in groups]


def test_attach_equals_python() -> None:
    socks, owners = _table()
    rows = attach_owners(socks, owners)
    assert rows == attach_owners_reference(socks, owners)
    assert all(type(r) is Row and type(r.owners) is tuple for r in rows)
    assert rows[6].queued_on is socks[0] and rows[7].queued_on is socks[1]
    assert rows[8].queued_on is socks[2] and rows[9].queued_on is None
    assert attach_owners([], {}) == ()


FILTERS = [
    SocketFilter(STATE_GROUPS["all"]),
    SocketFilter(),
    SocketFilter(STATE_GROUPS["listening"]),
    SocketFilter(STATE_GROUPS["all"], ports=frozenset({80})),
    SocketFilter(STATE_GROUPS["all"], pids=frozenset({300})),
    SocketFilter(frozenset({State.TIME_WAIT}), explicit_states=True),
]


@pytest.mark.parametrize("keep", FILTERS)
def test_group_equals_python(keep: SocketFilter) -> None:
    socks, owners = _table()
    snap = Snapshot(attach_owners(socks, owners), 0.0, 0.0, None)
    got = _groups(group_by_process(snap, keep))
    assert got == _groups(group_by_process_reference(snap, keep))
    assert got  # every filter keeps something


def test_group_sorts_in_python_when_a_port_is_not_16_bits() -> None:
    socks, owners = _table()
    socks[4] = socks[4]._replace(dport=70_000)  # no kernel gives this; a test may
    snap = Snapshot(attach_owners(socks, owners), 0.0, 0.0, None)
    keep = SocketFilter(STATE_GROUPS["all"])
    assert _groups(group_by_process(snap, keep)) == _groups(group_by_process_reference(snap, keep))


@root
def test_attach_and_group_equal_python_on_this_hosts_table() -> None:
    from tcplab.sockets.diag import dump_tcp

    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        try:
            socks, owners = dump_tcp(), socket_owners()
        finally:
            client.close()
            conn.close()
    rows = attach_owners(socks, owners)
    assert rows == attach_owners_reference(socks, owners)
    snap = Snapshot(rows, 0.0, 0.0, None)
    for keep in FILTERS:
        assert _groups(group_by_process(snap, keep)) == _groups(
            group_by_process_reference(snap, keep))


# ------------------------------------------------------------------ rows


def _c_text(rows: list[Row]) -> str:
    return _diag.rows_json(rows)


def _python_text(rows: list[Row]) -> str:
    parts: list[str] = []
    rows_json_text_reference(rows, parts.append)
    return "".join(parts)


def _agree(rows: list[Row]) -> str:
    text = _c_text(rows)
    assert text == _python_text(rows)
    return text


def test_rows_json_equals_python_on_every_kind_of_row() -> None:
    rows = synthetic_rows()
    odd = rows[1].sock._replace(src='1"\\\n\x01\x7f中', dst="\t\b\f\r", sport=0, timer="x\"y",
                                shutdown=3, cookie=2**64 - 1, uid=0)  # fmt: skip
    rows.append(Row(odd, rows[1].owners, rows[0].sock))
    text = _agree(rows)
    assert '"src": "1\\"\\\\\\n\\u0001\x7f中"' in text
    assert _agree([]) == ""


@given(st.lists(sock_infos(), max_size=5))
def test_rows_json_equals_python_on_random_sockets(socks: list[SockInfo]) -> None:
    owner = SocketOwner(Process(12, "x", ""), 4)
    _agree([Row(s, (owner,) * (i % 3)) for i, s in enumerate(socks)])


def test_rows_json_short_tcp_info_is_the_same_one_line() -> None:
    row = synthetic_rows()[0]
    bad = [Row(row.sock._replace(tcp_info=b"\0" * 20), row.owners)]
    messages = []
    for render in (_c_text, _python_text):
        with pytest.raises(TcplabError) as caught:
            render(bad)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] == "sock_diag: tcp_info is 20 bytes, need at least 84"


@root
def test_rows_json_equals_python_on_this_hosts_table() -> None:
    from tcplab.sockets.diag import dump_tcp

    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        try:
            rows = list(attach_owners(dump_tcp(), socket_owners()))
        finally:
            client.close()
            conn.close()
    assert any(r.owners for r in rows) and any(r.sock.tcp_info for r in rows)
    _agree(rows)


def test_info_layout_matches_the_struct() -> None:
    # _diag.c's TCP_INFO_SIZE and field offsets mirror diag.TCP_INFO.
    info = TcpInfo(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
    row = synthetic_rows()[0]
    text = _agree([Row(row.sock._replace(tcp_info=info.build()), ())])
    assert ('"rto_us": 5, "rtt_us": 17, "rttvar_us": 18, "snd_mss": 7, "rcv_mss": 8, '
            '"snd_cwnd": 20, "unacked": 9, "retransmits": 2') in text  # fmt: skip


# ------------------------------------------------------------------ the plain path


PLAIN = [["sockets"], ["sockets", "--json", "-a"], ["sockets", "-l", "--no-processes"],
         ["sockets", "--all", "--listening", "--json", "--json"]]  # fmt: skip


@pytest.mark.parametrize("argv", PLAIN)
def test_plain_flags_run_what_click_runs(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import tcplab.commands.sockets as click_command
    import tcplab.sockets.command as plain_command
    from tcplab import cli
    from tcplab.plain_sockets import plain_sockets_flags

    calls: list[tuple[object, ...]] = []

    def record(*args: object, **kwargs: object) -> None:
        calls.append((args, sorted(kwargs.items())))

    monkeypatch.setattr(plain_command, "run", record)
    monkeypatch.setattr(click_command, "run", record)
    flags = plain_sockets_flags(argv)
    assert flags is not None
    plain_command.run_plain(flags)
    cli.main(argv)
    plain, by_click = calls
    # click passes every option; the plain path leaves the defaults to run().
    defaults = {"netns": None, "as_json": False, "watch": False, "interval": 1.0,
                "owners": True, "limit": 0, "lang": None}  # fmt: skip
    assert plain[0] == by_click[0]
    assert {**defaults, **dict(plain[1])} == dict(by_click[1])


@pytest.mark.parametrize("argv", [["sockets", "-al"], ["sockets", "--json", "--port", "80"],
                                  ["sockets", "--help"], ["socket"], [], ["sockets", "-x"]])
def test_anything_else_goes_through_click(argv: list[str]) -> None:
    from tcplab import entry

    assert entry.plain_sockets_flags(argv) is None


@root
def test_plain_path_imports_no_click_rich_or_dataclasses() -> None:
    import subprocess
    import sys

    code = ("import sys; from tcplab.entry import main; main(['sockets', '--json', '-a']); "
            "heavy = {'click', 'rich', 'dataclasses', 'inspect', 'numpy', 'tcplab.analyze', "
            "'tcplab.fmt', 'tcplab.netns', 'ctypes', 'shutil'} & set(sys.modules); "
            "sys.stderr.write(repr(sorted(heavy)))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    assert done.stderr == "[]"
    assert done.stdout.startswith('{"netns": null, "time": ')


@root
def test_plain_path_output_is_whole_and_a_closed_reader_is_not_an_error() -> None:
    import subprocess
    import sys

    cli = [sys.executable, "-m", "tcplab", "sockets", "--json", "-a"]
    # The executable ends with os._exit once its output is flushed: all of it.
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.endswith("}\n") and done.stderr == ""
    # `tcplab sockets -a | head -1`: the reader goes away, the command ends quietly.
    # (A thousand sockets of our own make the text longer than a pipe holds.)
    servers = [socket.create_server(("127.0.0.1", 0), backlog=2048)]
    kept = [socket.create_connection(servers[0].getsockname(), timeout=30) for _ in range(1000)]
    try:
        child = subprocess.Popen([*cli[:-2], "-a"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)  # fmt: skip
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.readline()
        child.stdout.close()
        assert child.wait(timeout=120) == 0
        assert child.stderr.read() == b""
        child.stderr.close()
    finally:
        for s in kept + servers:
            s.close()


def test_rows_json_called_again_from_inside_a_row() -> None:
    """An attribute read runs Python (Enum.value, a property): a thread may call
    rows_json meanwhile.  The inner call must not write into the outer one's buffer."""
    rows = synthetic_rows()
    inner: list[str] = []

    class Owner:
        fd = 7

        @property
        def process(self) -> Process:
            inner.append(_diag.rows_json(rows))
            return Process(5, "x", "")

    outer = _diag.rows_json([Row(rows[1].sock, (Owner(),))])
    assert inner == [_python_text(rows)]
    assert outer == _python_text([Row(rows[1].sock, (SocketOwner(Process(5, "x", ""), 7),))])
