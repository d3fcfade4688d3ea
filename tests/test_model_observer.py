"""The observer infers one endpoint's state from its packets; ladders written by hand.

Each ladder line is ``(direction, flags, seq, ack, length)`` with ``c>s`` a
packet from the client to the server.  The observer watches one endpoint:
its own packets are ``sent``, the others ``received``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tcplab.model.observe import Inferred, Observer
from tcplab.model.sim import Simulation, sim_can_play
from tcplab.model.table import TRANSITIONS, Trigger
from tcplab.scenario import builtin_ids, load, parse_scenario
from tcplab.states import State
from tcplab.wire.flags import Flags

C, S = 1000, 5000  # client and server ISNs
Line = tuple[str, str, int, int | None, int]


def flags_of(text: str) -> Flags:
    letters = {"S": Flags.SYN, "F": Flags.FIN, "R": Flags.RST, "P": Flags.PSH, ".": Flags.ACK}
    out = Flags(0)
    for ch in text:
        out |= letters[ch]
    return out


def watch(endpoint: str, ladder: list[Line], initial: State | None = None
          ) -> tuple[Observer, list[Inferred]]:
    obs = Observer(initial)
    out: list[Inferred] = []
    mine = "c>s" if endpoint == "client" else "s>c"
    for i, (direction, flags, seq, ack, length) in enumerate(ladder):
        step = obs.sent if direction == mine else obs.received
        out.extend(step(seq, ack, flags_of(flags), length, float(i)))
    return obs, out


def states(inferred: list[Inferred]) -> list[str]:
    return [str(i.new) for i in inferred]


HANDSHAKE: list[Line] = [
    ("c>s", "S", C, None, 0),
    ("s>c", "S.", S, C + 1, 0),
    ("c>s", ".", C + 1, S + 1, 0),
]
DATA: list[Line] = [
    ("c>s", "P.", C + 1, S + 1, 5),
    ("s>c", ".", S + 1, C + 6, 0),
]


def test_normal_open_client_and_server() -> None:
    _, inferred = watch("client", HANDSHAKE)
    assert states(inferred) == ["SYN-SENT", "ESTABLISHED"]
    assert inferred[1].rfc == "RFC 9293 §3.10.7.3" and inferred[1].ambiguous is None
    _obs, inferred = watch("server", HANDSHAKE, initial=State.LISTEN)
    assert states(inferred) == ["SYN-RECEIVED", "ESTABLISHED"]


def test_server_seen_from_its_first_syn_starts_in_listen() -> None:
    _, inferred = watch("server", HANDSHAKE)
    assert states(inferred) == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]
    assert inferred[0].old is None and inferred[0].ambiguous is not None


def test_four_way_close_active_and_passive() -> None:
    ladder = HANDSHAKE + DATA + [
        ("c>s", "F.", C + 6, S + 1, 0),
        ("s>c", ".", S + 1, C + 7, 0),
        ("s>c", "F.", S + 1, C + 7, 0),
        ("c>s", ".", C + 7, S + 2, 0),
    ]
    obs, inferred = watch("client", ladder)
    assert states(inferred) == ["SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
                                "TIME-WAIT"]
    assert obs.state is State.TIME_WAIT  # TIME-WAIT -> CLOSED is never on the wire
    assert "SHUT_WR" in (inferred[2].ambiguous or "")
    _, inferred = watch("server", ladder, initial=State.LISTEN)
    assert states(inferred) == ["SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK",
                                "CLOSED"]


def test_three_segment_close_fin_carries_the_ack() -> None:
    ladder = [
        *HANDSHAKE,
        ("c>s", "F.", C + 1, S + 1, 0),
        ("s>c", "F.", S + 1, C + 2, 0),  # ACKs the client's FIN and carries its own
        ("c>s", ".", C + 2, S + 2, 0),
    ]
    _, inferred = watch("client", ladder)
    assert states(inferred)[2:] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    _, inferred = watch("server", ladder, State.LISTEN)
    assert states(inferred)[2:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]


def test_server_closes_first_time_wait_lands_on_server() -> None:
    ladder = [
        *HANDSHAKE,
        ("s>c", "F.", S + 1, C + 1, 0),
        ("c>s", "F.", C + 1, S + 2, 0),
        ("s>c", ".", S + 2, C + 2, 0),
    ]
    obs, _ = watch("server", ladder, State.LISTEN)
    assert obs.state is State.TIME_WAIT
    obs, _ = watch("client", ladder)
    assert obs.state is State.CLOSED


def test_simultaneous_open() -> None:
    ladder: list[Line] = [
        ("c>s", "S", C, None, 0),
        ("s>c", "S", S, None, 0),
        ("c>s", "S.", C, S + 1, 0),
        ("s>c", "S.", S, C + 1, 0),
        ("c>s", ".", C + 1, S + 1, 0),
        ("s>c", ".", S + 1, C + 1, 0),
    ]
    for endpoint in ("client", "server"):
        obs = Observer(State.CLOSED)
        mine = "c>s" if endpoint == "client" else "s>c"
        got: list[Inferred] = []
        # Each side sends its SYN before the other's arrives.
        order = [0, 1, 2, 3, 4, 5] if endpoint == "client" else [1, 0, 3, 2, 5, 4]
        for i in order:
            d, f, seq, ack, n = ladder[i]
            step = obs.sent if d == mine else obs.received
            got.extend(step(seq, ack, flags_of(f), n, float(i)))
        assert states(got) == ["SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"], endpoint


def test_simultaneous_close_through_closing() -> None:
    ladder = [
        *HANDSHAKE,
        ("c>s", "F.", C + 1, S + 1, 0),
        ("s>c", "F.", S + 1, C + 1, 0),  # crossed: does not ACK the client's FIN
        ("c>s", ".", C + 2, S + 2, 0),
        ("s>c", ".", S + 2, C + 2, 0),
    ]
    obs = Observer()
    got: list[Inferred] = []
    for d, f, seq, ack, n in ladder:
        step = obs.sent if d == "c>s" else obs.received
        got.extend(step(seq, ack, flags_of(f), n, 0.0))
    assert states(got)[-3:] == ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"]


def test_retransmitted_syn_and_fin_change_nothing() -> None:
    ladder = [
        ("c>s", "S", C, None, 0),
        ("c>s", "S", C, None, 0),
        ("s>c", "S.", S, C + 1, 0),
        ("c>s", ".", C + 1, S + 1, 0),
        ("c>s", "F.", C + 1, S + 1, 0),
        ("c>s", "F.", C + 1, S + 1, 0),
        ("s>c", "F.", S + 1, C + 2, 0),
        ("s>c", "F.", S + 1, C + 2, 0),
        ("c>s", ".", C + 2, S + 2, 0),
    ]
    _, inferred = watch("client", ladder)
    assert states(inferred) == ["SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
                                "TIME-WAIT"]


@pytest.mark.parametrize("at", [1, 3, 4, 5])
def test_rst_in_any_state_closes(at: int) -> None:
    ladder = ([*HANDSHAKE, ("c>s", "F.", C + 1, S + 1, 0), ("s>c", ".", S + 1, C + 2, 0)])[:at]
    obs, _ = watch("client", [*ladder, ("s>c", "R.", S + 1, C + 1, 0)])
    assert obs.state is State.CLOSED


def test_rst_received_by_syn_sent_must_ack_the_syn() -> None:
    obs, inferred = watch("client", [("c>s", "S", C, None, 0), ("s>c", "R.", 0, C + 7, 0)])
    assert obs.state is State.SYN_SENT
    obs, inferred = watch("client", [("c>s", "S", C, None, 0), ("s>c", "R.", 0, C + 1, 0)])
    assert states(inferred) == ["SYN-SENT", "CLOSED"]


def test_sent_rst_from_established_is_an_abort_with_alternatives_named() -> None:
    _obs, inferred = watch("client", [*HANDSHAKE, ("c>s", "R.", C + 1, S + 1, 0)])
    assert inferred[-1].new is State.CLOSED
    assert "abort" in (inferred[-1].ambiguous or "")


def test_midstream_capture_becomes_established_with_a_note() -> None:
    ladder: list[Line] = [
        ("c>s", "P.", C + 100, S + 100, 10),
        ("s>c", "P.", S + 100, C + 110, 20),
    ]
    obs, inferred = watch("client", ladder)
    assert obs.state is State.ESTABLISHED
    assert inferred[0].old is None and "midstream" in (inferred[0].ambiguous or "")


def test_observer_edges_come_from_the_table() -> None:
    obs, _ = watch("client", [*HANDSHAKE, ("c>s", "F.", C + 1, S + 1, 0)])
    assert obs.edges and all(edge in TRANSITIONS for edge in obs.edges)


def _packets_both_ways(steps: list[dict[str, Any]], faults: list[dict[str, Any]] | None = None
                       ) -> tuple[Any, dict[str, list[str]]]:
    sim = Simulation(parse_scenario({"id": "obs", "step": steps, "fault": faults or []}))
    timeline = sim.run()
    inferred: dict[str, list[str]] = {}
    for name in ("client", "server"):
        obs = Observer()
        got: list[Inferred] = []
        for p in timeline.packets():
            if p.sender == name:
                got += obs.sent(p.seq, p.ack, flags_of(p.flags), p.length, p.time)
            elif not p.dropped:
                got += obs.received(p.seq, p.ack, flags_of(p.flags), p.length, p.time)
        inferred[name] = states(got)
    return timeline, inferred


def _model_path(timeline: Any, name: str) -> list[str]:
    path = [str(s) for s in timeline.state_path(name)]
    while path and path[0] in ("CLOSED", "LISTEN"):
        path.pop(0)
    return path


@pytest.mark.parametrize("closer", ["client", "server"])
def test_observer_agrees_with_the_model_on_sim_runs(closer: str) -> None:
    other = "server" if closer == "client" else "client"
    steps = [
        {"actor": "server", "call": "listen"},
        {"actor": "client", "call": "connect"},
        {"actor": "server", "call": "accept"},
        {"actor": "client", "call": "send", "data": "ping"},
        {"actor": "server", "call": "recv"},
        {"actor": "server", "call": "send", "data": "pong"},
        {"actor": "client", "call": "recv"},
        {"actor": closer, "call": "close"},
        {"actor": other, "call": "recv", "until": "eof"},
        {"actor": other, "call": "close"},
    ]
    timeline, inferred = _packets_both_ways(steps)
    for name in ("client", "server"):
        observed = [s for s in inferred[name] if s != "LISTEN"]
        assert observed == _model_path(timeline, name), name


def test_listen_side_that_missed_the_syn_learns_from_its_syn_ack() -> None:
    obs, inferred = watch("server", HANDSHAKE[1:], initial=State.LISTEN)
    assert states(inferred) == ["SYN-RECEIVED", "ESTABLISHED"]
    assert inferred[0].ambiguous is not None and obs.state is State.ESTABLISHED


def test_syn_answered_by_rst_means_a_closed_port() -> None:
    obs, inferred = watch("server", [("c>s", "S", C, None, 0), ("s>c", "R.", 0, C + 1, 0)])
    assert obs.state is State.CLOSED
    assert inferred[-1].rfc == "RFC 9293 §3.10.7.1" and inferred[-1].ambiguous is not None


REFUSED: list[Line] = [("c>s", "S", C, None, 0), ("s>c", "R.", 0, C + 1, 0)]


@pytest.mark.parametrize("initial", [None, State.LISTEN])
def test_refused_connect_never_puts_the_server_in_syn_received(initial: State | None) -> None:
    # Linux answers a SYN to a port without a listener from no socket at all
    # (tcp_v4_send_reset, RFC 9293 §3.10.7.1): no SYN-RECEIVED, no table edge taken.
    obs, inferred = watch("server", REFUSED, initial=initial)
    assert states(inferred) == ["CLOSED"]
    assert inferred[0].old is initial and obs.edges == []
    client, seen = watch("client", REFUSED)
    assert states(seen) == ["SYN-SENT", "CLOSED"] and client.state is State.CLOSED


def test_syn_to_a_listener_is_pending_until_its_syn_ack() -> None:
    obs = Observer(State.LISTEN)
    assert obs.received(C, None, Flags.SYN, 0, 1.0) == []
    assert obs.state is State.LISTEN  # nothing answered yet: a listener or no socket
    [change] = obs.sent(S, C + 1, Flags.SYN | Flags.ACK, 0, 1.5)
    assert (change.old, change.new, change.at) == (State.LISTEN, State.SYN_RECEIVED, 1.0)
    assert [(e.state, e.trigger) for e in obs.edges] == [(State.LISTEN, Trigger.RCV_SYN)]


def test_unanswered_syn_leaves_the_listener_listening() -> None:
    obs, inferred = watch("server", [("c>s", "S", C, None, 0)] * 3, initial=State.LISTEN)
    assert inferred == [] and obs.state is State.LISTEN


def test_uncaptured_syn_ack_is_inferred_from_the_clients_ack() -> None:
    ladder = [HANDSHAKE[0], HANDSHAKE[2]]  # the SYN-ACK is missing from the capture
    obs, inferred = watch("server", ladder, initial=State.LISTEN)
    assert states(inferred) == ["SYN-RECEIVED", "ESTABLISHED"]
    assert inferred[0].ambiguous is not None and obs.state is State.ESTABLISHED


# Where packets cannot tell what the model knows, and the observer says so:
# the FIN-WAIT-2 timer closed the client before its host answered late data with RST;
# a SYN to a closed port looks like a listener's until the RST answers it.
_INVISIBLE = {
    ("client-close-only", "client"),
    ("connect-bound-only", "server"),
    ("connect-closed-port", "server"),
}
# Timer-driven and silent changes never show on the wire.
_SILENT = ("2MSL timeout", "FIN-WAIT-2 timeout", "retransmissions exhausted", "abort()",
           "close()")


def _catalog_single_connection() -> list[str]:
    return [sid for sid in builtin_ids()
            if sim_can_play(load(sid))
            and not any(f.action in ("delay", "hold") for f in load(sid).faults)]


@pytest.mark.parametrize("sid", _catalog_single_connection())
def test_observer_agrees_with_the_model_on_the_catalog(sid: str) -> None:
    timeline = Simulation(load(sid)).run()
    packets = timeline.packets()
    connections = {(p.src, p.sport, p.dst, p.dport) if p.sender == "client"
                   else (p.dst, p.dport, p.src, p.sport) for p in packets}
    if len(connections) != 1:
        pytest.skip("the observer watches one connection; this scenario has several")
    for name in ("client", "server"):
        if (sid, name) in _INVISIBLE:
            continue
        obs = Observer()
        got: list[Inferred] = []
        for p in packets:
            if p.sender == name:
                got += obs.sent(p.seq, p.ack, flags_of(p.flags), p.length, p.time)
            elif not p.dropped:
                got += obs.received(p.seq, p.ack, flags_of(p.flags), p.length, p.time)
        rst_times = {p.time for p in packets if p.sender == name and "R" in p.flags}
        model = [
            str(ch.new) for ch in timeline.state_changes(name)
            if ch.new is not State.LISTEN
            and not (ch.new is State.CLOSED and ch.cause.startswith(_SILENT)
                     and ch.time not in rst_times)
        ]
        assert [s for s in states(got) if s != "LISTEN"] == model, name


# TCP Fast Open (RFC 7413 §4.2.2): data on the SYN, a SYN-ACK that acknowledges it or not.
FAST_OPEN: list[Line] = [
    ("c>s", "S", C, None, 11),
    ("s>c", "S.", S, C + 12, 0),
    ("c>s", ".", C + 12, S + 1, 0),
]


def test_fast_open_syn_data_acknowledged() -> None:
    obs, inferred = watch("client", FAST_OPEN, initial=State.CLOSED)
    assert states(inferred) == ["SYN-SENT", "ESTABLISHED"]
    assert [e.trigger for e in obs.edges] == [Trigger.CONNECT_FASTOPEN, Trigger.RCV_SYN_ACK]
    assert inferred[0].ambiguous is not None  # sendto(MSG_FASTOPEN) or TCP_FASTOPEN_CONNECT
    obs, inferred = watch("server", FAST_OPEN, initial=State.LISTEN)
    assert states(inferred) == ["SYN-RECEIVED", "ESTABLISHED"]
    assert [e.trigger for e in obs.edges] == [Trigger.RCV_SYN_FASTOPEN, Trigger.RCV_ACK_OF_SYN]


def test_fast_open_syn_ack_of_the_syn_only() -> None:
    # The server did not take the data (no cookie, a bad one): the client sends it again.
    ladder: list[Line] = [("c>s", "S", C, None, 11), ("s>c", "S.", S, C + 1, 0),
                          ("c>s", "P.", C + 1, S + 1, 11), ("s>c", ".", S + 1, C + 12, 0)]
    obs, _ = watch("client", ladder, initial=State.CLOSED)
    assert [e.trigger for e in obs.edges] == [Trigger.CONNECT_FASTOPEN,
                                              Trigger.RCV_SYN_ACK_DATA_UNACKED]
    obs, _ = watch("server", ladder, initial=State.LISTEN)
    assert [e.trigger for e in obs.edges] == [Trigger.RCV_SYN, Trigger.RCV_ACK_OF_SYN]


def test_fast_open_server_data_in_syn_received_then_the_ack_covers_it() -> None:
    # The child sends before the handshake completes; the client's first ACK covers it.
    ladder: list[Line] = [FAST_OPEN[0], FAST_OPEN[1], ("s>c", "P.", S + 1, C + 12, 6),
                          ("c>s", ".", C + 12, S + 7, 0)]
    obs, inferred = watch("server", ladder, initial=State.LISTEN)
    assert states(inferred) == ["SYN-RECEIVED", "ESTABLISHED"] and obs.state is State.ESTABLISHED


def test_capture_pair_delivers_a_syn_whose_data_was_not_taken() -> None:
    # The capture point sees the SYN (11 bytes) and a SYN-ACK acknowledging only
    # the SYN: the SYN did arrive (RFC 7413 §4.2.2), so the server answered it
    # from LISTEN, not from an unseen SYN.
    from tcplab.analyze.infer import Pair, make_observer

    pair = Pair({"client": make_observer(State.CLOSED), "server": make_observer(State.LISTEN)})
    syn, synack = int(Flags.SYN), int(Flags.SYN | Flags.ACK)
    pair.packet("client", "server", C, 0, syn, 11, 0.0)
    out = pair.packet("server", "client", S, C + 1, synack, 0, 0.001)
    server = [(change.old, change.new, change.ambiguous) for name, change, _t in out
              if name == "server"]
    assert server == [(State.LISTEN, State.SYN_RECEIVED, None)]


def test_reset_from_syn_received_with_ack_is_the_childs_own() -> None:
    # A Fast Open child closed with its SYN data unread resets ("R.", Linux tcp_close);
    # a bare "R" from SYN-RECEIVED answers a bad ACK and the request stays.
    answer: list[Line] = [FAST_OPEN[0], FAST_OPEN[1], ("s>c", "R", C + 99, None, 0)]
    obs, _ = watch("server", answer, initial=State.LISTEN)
    assert obs.state is State.SYN_RECEIVED
    closed: list[Line] = [FAST_OPEN[0], FAST_OPEN[1], ("s>c", "R.", S + 1, C + 12, 0)]
    obs, inferred = watch("server", closed, initial=State.LISTEN)
    assert obs.state is State.CLOSED and obs.edges[-1].guard == "unread_data"
    # ... or its listener closed before accept(): the wire cannot tell.
    assert inferred[-1].ambiguous is not None and "listener" in inferred[-1].ambiguous


def test_fast_open_resets_in_a_capture() -> None:
    # tests/data/analyze/fastopen-resets.pcap (built with conftest.ipv4_tcp):
    # A: a bare RST from SYN-RECEIVED answers the client's bad ACK, the child stays;
    # B: the child closed with its SYN data unread resets with ACK;
    # C: a SYN with data to a closed port: "R." acknowledges the SYN and the data.
    from pathlib import Path

    from tcplab.analyze import analyze_file

    path = Path(__file__).parent / "data" / "analyze" / "fastopen-resets.pcap"
    conns = analyze_file(path).connections
    finals = [(c.client.final_state, c.server.final_state) for c in conns]
    assert finals[0][1] is State.ESTABLISHED
    assert finals[1][1] is State.CLOSED
    assert finals[2][0] is State.CLOSED
