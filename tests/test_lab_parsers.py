"""The lab's adapters on literal input: trace_pipe and strace lines, pcapng comments, no root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcplab.lab.external import StraceParser
from tcplab.lab.timeline_build import Observation, kernel_events
from tcplab.lab.tracer import TraceEvent, parse_line
from tcplab.states import State
from tcplab.timeline import Note, Source, StateChange

SET_STATE = (
    "          <idle>-0       [001] ..s2.  4242.123456: inet_sock_set_state: family=AF_INET "
    "protocol=IPPROTO_TCP sport=40000 dport=8080 saddr=10.89.7.1 daddr=10.89.7.2 "
    "saddrv6=::ffff:10.89.7.1 daddrv6=::ffff:10.89.7.2 oldstate=TCP_FIN_WAIT2 newstate=TCP_CLOSE"
)


def test_parse_inet_sock_set_state() -> None:
    event = parse_line(SET_STATE)
    assert event is not None
    assert event.time == 4242.123456
    assert event.event == "inet_sock_set_state"
    assert event.local == ("10.89.7.1", 40000)
    assert event.remote == ("10.89.7.2", 8080)
    assert event.fields["oldstate"] == "TCP_FIN_WAIT2"


def test_parse_reset_with_sockaddrs_and_marker() -> None:
    reset = parse_line(
        "  python3-77 [000] b..1. 10.000001: tcp_send_reset: skbaddr=0000 skaddr=0000 "
        "src=10.89.7.2:8080 dest=10.89.7.1:40000 state=TCP_ESTABLISHED reason=TCP_ABORT_ON_CLOSE"
    )
    assert reset is not None and reset.local == ("10.89.7.2", 8080)
    assert reset.remote == ("10.89.7.1", 40000)
    marker = parse_line("  python3-77 [000] ..... 10.5: tracing_mark_write: client: close()")
    assert marker is not None and marker.text == "client: close()"
    assert parse_line("# tracer: nop") is None


def test_timewait_handoff_becomes_time_wait_from_the_snapshot() -> None:
    event = parse_line(SET_STATE)
    assert event is not None
    key = ("10.89.7.1", 40000, "10.89.7.2", 8080)
    snaps = [
        Observation(4242.0, "client", key, State.FIN_WAIT_2, "off"),
        Observation(4242.2, "client", key, State.TIME_WAIT, "timewait", 59900),
    ]
    hosts = {"10.89.7.1": "client", "10.89.7.2": "server"}
    (change,) = kernel_events([event], hosts, snaps)
    assert isinstance(change, StateChange)
    assert (change.old, change.new, change.source) == (
        State.FIN_WAIT_2, State.TIME_WAIT, Source.SNAPSHOT,
    )  # fmt: skip
    assert change.time == event.time
    # Without a TIME-WAIT snapshot the kernel's word stands.
    (plain,) = kernel_events([event], hosts, [])
    assert isinstance(plain, StateChange) and plain.new is State.CLOSED
    assert plain.source is Source.KERNEL
    # An orphaned FIN-WAIT-2 mini-socket: no CLOSE, a note instead.
    orphan = [Observation(4242.2, "client", key, State.FIN_WAIT_2, "timewait", 2900)]
    (note,) = kernel_events([event], hosts, orphan)
    assert isinstance(note, Note) and "FIN-WAIT-2" in note.text
    # Another run's address is not ours.
    assert kernel_events([event], {"10.89.8.1": "client"}, snaps) == []
    # Nor a socket of ours talking to an address that is not this run's.
    assert kernel_events([event], {"10.89.7.1": "client"}, snaps) == []


def test_strace_lines_become_api_calls() -> None:
    parser = StraceParser("server", offset=1000.0)
    for line in [
        '501 1700.000100 socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 3',
        '501 1700.000200 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 4',
        '501 1700.000300 bind(4, {sa_family=AF_INET, sin_port=htons(8080)}, 16) = 0',
        '501 1700.000400 listen(4, 1) = 0',
        '501 1700.000500 accept4(4,  <unfinished ...>',
        '502 1700.000550 close(3) = 0',
        '501 1700.002000 <... accept4 resumed>{sa_family=AF_INET}, [16], SOCK_CLOEXEC) = 5',
        '501 1700.003000 connect(6, {sa_family=AF_INET}, 16) = -1 ECONNREFUSED (Refused)',
        '501 1700.004000 close(5) = 0',
        '501 1700.004100 close(9) = 0',
    ]:
        parser.feed(line)
    names = [c.call for c in parser.calls]
    assert names == ["socket", "bind", "listen", "accept4", "connect", "close"]
    accept = parser.calls[3]
    assert accept.started == pytest.approx(700.0005) and accept.time == pytest.approx(700.002)
    assert accept.result == "5"
    assert parser.calls[4].errno == "ECONNREFUSED" and parser.calls[4].result is None


def test_without_root_one_line_names_the_privilege(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tcplab.cli import main

    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "handshake-close"])
    assert exit_info.value.code == 77
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs root" in err and "CAP_NET_ADMIN" in err


def test_trace_filter_covers_every_port_a_scenario_names() -> None:
    from tcplab.lab.runner import scenario_ports
    from tcplab.lab.tracer import port_filter
    from tcplab.scenario import parse_scenario

    sc = parse_scenario(
        {
            "id": "ports",
            "server_port": 9000,
            "step": [
                {"actor": "server", "call": "listen"},
                {"actor": "client", "call": "bind", "port": 40001},
                {"actor": "client", "call": "connect", "port": 9001},
            ],
        }
    )
    assert scenario_ports(sc) == (9000, 9001, 40001)
    assert port_filter((9000, 9000)) == "sport == 9000 || dport == 9000"


def _datagram(sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    """A minimal IPv4 + TCP header (checksums zero: only the file layout matters)."""
    import socket as s
    import struct

    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     s.inet_aton("10.89.1.1"), s.inet_aton("10.89.1.2"))  # fmt: skip
    return ip + tcp


def test_pcapng_puts_each_call_on_the_next_packet(tmp_path: Path) -> None:
    from tcplab.capture import open_capture
    from tcplab.lab.output import LINKTYPE_RAW, write_pcapng
    from tcplab.timeline import ApiCall, Packet, Timeline

    def packet(t: float, flags: str, bits: int, dropped: bool = False) -> Packet:
        raw = _datagram(40000, 8080, 1, 0, bits)
        return Packet(t, "client", "server", "10.89.1.1", 40000, "10.89.1.2", 8080, flags,
                      1, 0, 0, raw=raw, dropped=dropped,
                      annotations=("the client's last ACK",) if dropped else ())  # fmt: skip

    tl = Timeline(meta={"scenario": "t"})
    tl.extend([
        ApiCall(1.5, "client", "connect", (), "0", None, started=0.9),
        packet(1.0, "S", 0x02),
        ApiCall(2.1, "client", "close", (), "0", None, started=2.0),
        packet(2.05, "F.", 0x11),
        packet(3.0, ".", 0x10, dropped=True),
        ApiCall(4.0, "server", "close", (), "0", None, started=3.9),
    ])  # fmt: skip
    tl.sort()
    path = tmp_path / "t.pcapng"
    write_pcapng(tl, path)
    with open_capture(path) as reader:
        records = list(reader)
    assert [r.linktype for r in records] == [LINKTYPE_RAW] * 3
    assert [r.time_ns for r in records] == [1_000_000_000, 2_050_000_000, 3_000_000_000]
    assert records[0].comment == "client: connect() = 0"
    assert records[1].comment == "client: close() = 0"
    assert records[2].comment == (
        "(after this packet) server: close() = 0\nDROPPED by the wire: the client's last ACK"
    )


def test_a_set_state_to_the_same_state_is_no_change() -> None:
    # close() after shutdown(SHUT_WR) in LAST-ACK: tcp_close_state() sets LAST_ACK
    # again and the tracepoint fires (seen live with the seed's node-half-open).
    line = SET_STATE.replace("oldstate=TCP_FIN_WAIT2 newstate=TCP_CLOSE",
                             "oldstate=TCP_LAST_ACK newstate=TCP_LAST_ACK")  # fmt: skip
    event = parse_line(line)
    assert event is not None and event.fields["newstate"] == "TCP_LAST_ACK"
    hosts = {"10.89.7.1": "client", "10.89.7.2": "server"}
    assert kernel_events([event], hosts, []) == []


def test_an_alias_counts_only_on_its_port_and_with_a_run_peer() -> None:
    # 127.0.0.1 is the server's alias for a program that listens there (lab.external):
    # the host's own 127.0.0.1 traffic is not the run's.
    hosts = {"10.89.7.1": "client", "10.89.7.2": "server", "127.0.0.1": "server"}
    aliases = {"127.0.0.1": 42181}

    def event(sport: int, daddr: str) -> TraceEvent:
        found = parse_line(SET_STATE.replace("sport=40000 dport=8080", f"sport={sport} dport=5")
                           .replace("saddr=10.89.7.1 daddr=10.89.7.2",
                                    f"saddr=127.0.0.1 daddr={daddr}"))  # fmt: skip
        assert found is not None
        return found

    ours = kernel_events([event(42181, "10.89.7.1")], hosts, [], aliases)
    assert [c.endpoint for c in ours if isinstance(c, StateChange)] == ["server"]
    assert kernel_events([event(42181, "127.0.0.1")], hosts, [], aliases) == []
    assert kernel_events([event(8080, "10.89.7.1")], hosts, [], aliases) == []
