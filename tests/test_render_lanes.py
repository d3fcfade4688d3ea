"""What the ladders draw of states, held packets, long transfers and words (no root).

The same rules are checked on every live catalog scenario in
tests/test_render_catalog.py; here each rule has a small timeline of its own.
"""

from __future__ import annotations

import re

from data.render import samples
from tcplab.render._common import (
    Arrival,
    RunSummary,
    api_text,
    collapse_runs,
    columns,
    seq_explanations,
    split_arrivals,
    visible_events,
)
from tcplab.render.i18n import tr
from tcplab.render.lanes import Badge, drawn_path, lane_events
from tcplab.render.svg import render_svg
from tcplab.render.text import render_ladder
from tcplab.render.wrap import display_width, fill_paragraphs, wrap
from tcplab.states import State
from tcplab.timeline import ApiCall, EndpointInfo, Packet, Snapshot, Source, StateChange, Timeline

C, S = "client", "server"
K, INF, SN = Source.KERNEL, Source.INFERRED, Source.SNAPSHOT


def _timeline(*events: object) -> Timeline:
    return Timeline("t", "lab", [EndpointInfo(C, "10.0.0.1", 40000, "client"),
                                 EndpointInfo(S, "10.0.0.2", 8080, "server")],
                    list(events))  # type: ignore[arg-type]  # fmt: skip


def _pkt(t: float, sender: str, flags: str, seq: int, ack: int, length: int = 0,
         delivered: float | None = None) -> Packet:  # fmt: skip
    receiver = S if sender == C else C
    return Packet(t, sender, receiver, "10.0.0.1", 40000, "10.0.0.2", 8080, flags, seq, ack,
                  length, 500, rel_seq=seq, rel_ack=ack, delivered=delivered)  # fmt: skip


def _badges(tl: Timeline) -> list[Badge]:
    return [i for i in lane_events(tl, visible_events(tl)) if isinstance(i, Badge)]


def test_an_early_inference_joins_the_kernels_badge_never_a_backwards_step() -> None:
    # handshake-close as issue 14 saw it: the analyzer dates SYN-RECEIVED by the SYN,
    # the kernel by the final ACK (tcp_check_req), after the inferred ESTABLISHED.
    tl = _timeline(
        StateChange(0.0, S, State.CLOSED, State.LISTEN, K, "listener :8080"),
        StateChange(0.010, S, State.LISTEN, State.SYN_RECEIVED, INF, "rcv SYN"),
        StateChange(0.087013, S, State.SYN_RECEIVED, State.ESTABLISHED, INF, "rcv ACK of SYN"),
        StateChange(0.087053, S, State.LISTEN, State.SYN_RECEIVED, K, "kernel"),
        StateChange(0.087060, S, State.SYN_RECEIVED, State.ESTABLISHED, K, "kernel"),
    )
    path = drawn_path(lane_events(tl, visible_events(tl)), S)
    assert [b.state for b in path] == [State.LISTEN, State.SYN_RECEIVED, State.ESTABLISHED]
    assert [b.sources for b in path[1:]] == [[K, INF], [K, INF]]
    assert [b.time for b in path] == sorted(b.time for b in path)


def test_a_stale_snapshot_is_not_drawn_as_a_new_state() -> None:
    tl = _timeline(
        StateChange(0.0090, C, State.CLOSED, State.SYN_SENT, K),
        StateChange(0.0105, C, State.SYN_SENT, State.ESTABLISHED, K),
        Snapshot(0.0119, C, State.SYN_SENT, "10.0.0.1:40000", "10.0.0.2:8080", wqueue=1),
    )
    badges = _badges(tl)
    assert [b.state for b in badges] == [State.SYN_SENT, State.ESTABLISHED]
    assert badges[0].sources == [K, SN]  # a late confirmation of SYN-SENT
    text = render_ladder(tl)
    assert "SYN-SENT*" not in text and "Send-Q 1" not in text  # late: not shown


def test_a_claim_no_visit_matches_is_drawn_aside_as_a_disagreement() -> None:
    tl = _timeline(
        StateChange(0.0, S, State.CLOSED, State.SYN_SENT, K),
        StateChange(0.1, S, None, State.LISTEN, INF, "analyzer"),
        StateChange(0.2, S, State.SYN_SENT, State.SYN_RECEIVED, K),
    )
    (odd,) = [b for b in _badges(tl) if b.aside]
    assert odd.disagrees and odd.state is State.LISTEN and odd.primary_state is State.SYN_SENT
    assert [b.state for b in drawn_path(lane_events(tl, visible_events(tl)), S)] == [
        State.SYN_SENT, State.SYN_RECEIVED]
    text = " ".join(render_ladder(tl, width=140).split())
    assert "inferred from packets says LISTEN; the lane shows SYN-SENT" in text
    svg = render_svg(tl)
    assert 'class="state inferred aside disagrees"' in svg


def test_one_badge_per_moment_with_its_sources_in_the_svg() -> None:
    svg = render_svg(samples.handshake_close())
    listen = re.findall(r'<g class="state [^"]*"[^>]*data-state="LISTEN"[^>]*>', svg)
    assert len(listen) == 1 and 'data-sources="kernel snapshot"' in listen[0]


def test_a_held_packet_is_drawn_from_its_send_to_its_delivery() -> None:
    tl = _timeline(
        StateChange(0.000, C, State.CLOSED, State.SYN_SENT, K),
        _pkt(0.001, C, "S", 0, 0, delivered=0.080),
        StateChange(0.050, S, State.CLOSED, State.SYN_SENT, K),
        _pkt(0.051, S, "S", 0, 0),
        StateChange(0.081, S, State.SYN_SENT, State.SYN_RECEIVED, K),
    )
    items = split_arrivals(lane_events(tl, visible_events(tl)))
    (arrival,) = [i for i in items if isinstance(i, Arrival)]
    assert arrival.time == 0.080
    server_syn = next(i for i in items if isinstance(i, Packet) and i.sender == S)
    assert items.index(arrival) > items.index(server_syn)  # it crosses the server's SYN
    text = render_ladder(tl).splitlines()
    row = next(line for line in text if "seq 0 arrives" in line)
    assert row.lstrip().startswith("80.000") and row.rstrip().endswith("▶│")
    svg = render_svg(tl)
    held = re.search(r'<g class="packet held"[^>]*data-y0="([\d.]+)" data-y1="([\d.]+)"', svg)
    assert held and float(held[1]) < float(held[2])
    assert f'data-label="80.000" data-y="{held[2]}"' in svg


def test_the_wire_is_never_a_column_and_its_steps_are_said_in_words() -> None:
    tl = _timeline(StateChange(0.0, C, State.CLOSED, State.SYN_SENT, K),
                   ApiCall(0.1, "wire", "blackhole", ("host='server'",), "0"),
                   ApiCall(0.2, S, "abort", (), "0"),
                   ApiCall(0.3, C, "fork_close", ("sock=c1",), "child 42"))  # fmt: skip
    tl.endpoints = tl.endpoints[:1]  # only the client declared: the server comes from events
    assert columns(tl).names == (C, S)
    texts = [api_text(c) for c in tl.api_calls()]
    assert texts[0] == "the wire drops everything to and from the server"
    assert texts[1] == "setsockopt(SO_LINGER {1,0}); close()"
    assert texts[2].startswith("c1: fork(); close() in child")


def test_seq_arithmetic_as_the_notes_teach_it() -> None:
    tl = _timeline(_pkt(0.0, C, "S", 0, 0), _pkt(0.1, S, "S.", 0, 1), _pkt(0.2, C, ".", 1, 1),
                   _pkt(0.3, S, "P.", 1, 1, 12), _pkt(0.4, C, ".", 1, 13),
                   _pkt(0.5, S, "F.", 13, 1), _pkt(0.6, C, ".", 1, 14))  # fmt: skip
    notes = seq_explanations(tl.packets())
    said = [notes.get(id(p), "") for p in tl.packets()]
    assert said[0] == "SYN takes seq 0, next 1"
    assert said[1] == "SYN takes seq 0, next 1; ack 1 = 0 + SYN"
    assert said[4] == "ack 13 = 1 + 12"
    assert said[5] == "FIN takes seq 13, next 14"
    assert said[6] == "ack 14 = 13 + FIN"
    assert "ack 13 = 1 + 12" in render_ladder(tl, explain_seq=True)
    assert "ack 13 = 1 + 12" not in render_ladder(tl)


def test_a_bulk_transfer_collapses_to_one_row() -> None:
    events: list[object] = [_pkt(0.0, C, "S", 0, 0), _pkt(0.001, S, "S.", 0, 1)]
    seq = 1
    for i in range(40):
        events.append(_pkt(0.01 + i * 0.001, C, ".", seq, 1, 1448))
        seq += 1448
        if i % 2:
            events.append(_pkt(0.0105 + i * 0.001, S, ".", 1, seq))
    tl = _timeline(*events)
    items = collapse_runs(list(visible_events(tl)))
    (run,) = [i for i in items if isinstance(i, RunSummary)]
    # 40 segments: the first two and the last one (with its ACK) stay drawn.
    assert run.text() == "… 37 data segments of 1448 bytes client → server, ACKed every 2"
    assert len(render_ladder(tl).splitlines()) < 20
    assert render_ladder(tl, collapse=False).count("len 1448") == 40


def test_wrapping_never_splits_a_name_and_counts_cjk_as_two_columns() -> None:
    text = ("客户端调用 socket.end() 之后进入 FIN-WAIT-2 状态，"
            "等待服务端的 FIN，然后进入 TIME-WAIT。")
    for width in range(12, 40):
        lines = wrap(text, width)
        assert all(display_width(line) <= width for line in lines)
        joined = "\n".join(lines)
        for name in ("socket.end()", "FIN-WAIT-2", "TIME-WAIT"):
            assert name in joined, (width, lines)
        assert not any(line.startswith(("，", "。")) for line in lines)
    para = fill_paragraphs("One two three\nfour five.\n\n1. first item that\n   goes on\n2. second",
                           16)
    assert para.splitlines()[0] == "One two three"
    assert "1. first item" in para and "   that goes on" in para


def test_zh_ladder_notes_and_fact_lines() -> None:
    assert tr("kernel: sends RST (TCP_STATE)", "zh") == "内核：发送 RST（TCP_STATE）"
    assert tr("expected 2, got 3", "zh") == "预期 2，实际 3"
    assert tr("SYN takes seq 0, next 1; ack 1 = 0 + SYN", "zh") == (
        "SYN 占用序号 0，下一个是 1；ack 1 = 0 + SYN")
    got = tr("expected SYN-SENT → ESTABLISHED in order; got SYN-SENT", "zh")
    assert got.startswith("预期按顺序")
    assert tr("something no pattern knows", "zh") == "something no pattern knows"
    text = render_ladder(samples.handshake_close(), lang="zh")
    assert "状态：NAME = 内核 tracepoint" in text


def test_explain_is_wrapped_to_the_terminal_by_words_and_cjk_width() -> None:
    from click.testing import CliRunner

    from tcplab.cli import cli

    for lang in ("en", "zh"):
        result = CliRunner(env={"COLUMNS": "60"}).invoke(cli, ["explain", "time-wait",
                                                              "--lang", lang])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert all(display_width(line) <= 60 for line in lines), lang
        # No name is split at a line end (FIN-WAIT-⏎2, TCP_TIMEWAIT_⏎LEN).
        assert not [line for line in lines if re.search(r"[A-Za-z0-9_]-$|_$", line)], lang
        assert "FIN-WAIT-2" in result.output and "TCP_TIMEWAIT_LEN" in result.output
