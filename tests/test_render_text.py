"""The terminal ladder: layout, arrows, states, calls, breaks, goldens."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import data_module
from tcplab.render.text import render_ladder, render_ladder_rich
from tcplab.states import State
from tcplab.timeline import EndpointInfo, Packet, Source, StateChange, Timeline

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"


samples = data_module("render/samples.py")


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TCPLAB_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing; run with TCPLAB_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(samples.ALL))
def test_every_row_fits_the_width(name: str) -> None:
    for width in (60, 80, 100, 140):
        text = render_ladder(samples.ALL[name](), width=width)
        for line in text.splitlines():
            assert len(line) <= width, (width, line)


def test_client_column_is_left_even_when_server_is_listed_first() -> None:
    tl = samples.handshake_close()
    assert tl.endpoints[0].name == "server"
    header = render_ladder(tl).splitlines()[1]
    assert header.index("client") < header.index("server")


def test_arrows_point_from_sender_to_receiver() -> None:
    lines = render_ladder(samples.handshake_close()).splitlines()
    syn = next(line for line in lines if "[S] seq 0" in line)
    synack = next(line for line in lines if "[S.] seq 0 ack 1" in line)
    assert syn.rstrip().endswith("▶│")
    assert "│◀" in synack and "▶" not in synack


def test_one_arrow_row_per_packet() -> None:
    for factory in samples.ALL.values():
        tl = factory()
        text = render_ladder(tl)
        arrows = [line for line in text.splitlines() if re.search(r"\[[SFPR.]+\] seq", line)]
        assert len(arrows) == len(tl.packets())


def test_dropped_segment_stops_midway_with_a_cross() -> None:
    lines = render_ladder(samples.lost_final_ack(), width=100).splitlines()
    lost = next(line for line in lines if "✗" in line and "seq 2 ack 2" in line)
    bar_left, bar_right = lost.index("│"), lost.rindex("│")
    cross = lost.index("✗")
    assert bar_left < cross < bar_right
    assert "▶" not in lost and "◀" not in lost
    # The arrow stops well short of the receiver's bar, label and all.
    assert bar_right - cross > 8


def test_states_are_on_their_own_side_with_source_marks() -> None:
    lines = render_ladder(samples.lost_final_ack()).splitlines()
    client = next(line for line in lines if "TIME-WAIT?" in line)
    server = next(line for line in lines if "LAST-ACK?" in line)
    assert client.index("TIME-WAIT?") < client.index("│")
    assert server.index("LAST-ACK?") > server.rindex("│")
    assert "inferred from packets" in lines[-1]


def test_snapshot_marked_and_repeats_dropped() -> None:
    text = render_ladder(samples.handshake_close())
    # The LISTEN dumps confirm the kernel's LISTEN: one badge, no second "LISTEN*".
    assert text.count("LISTEN") == 1 and "LISTEN*" not in text
    assert "TIME-WAIT" in text and "ss: timer timewait" in text


def test_api_call_with_errno_and_long_gap_break() -> None:
    lines = render_ladder(samples.refused_after_syn_loss()).splitlines()
    gap = next(i for i, line in enumerate(lines) if "1.000 s later" in line)
    assert "┊" in lines[gap]
    refused = next(i for i, line in enumerate(lines) if "ECONNREFUSED" in line)
    rst = next(i for i, line in enumerate(lines) if "[R.]" in line)
    # connect() was woken by the RST: it is drawn after it.
    assert rst < refused
    assert "1000.050" in lines[refused]


def test_microseconds_are_kept_in_the_time_column() -> None:
    lines = render_ladder(samples.handshake_close()).splitlines()
    assert any(line.lstrip().startswith("1.561 ") for line in lines)


def test_absolute_numbers_without_relative() -> None:
    text = render_ladder(samples.handshake_close(), relative=False)
    assert f"seq {samples.ISS_C}" in text
    assert "5000.001510" in text


def test_color_adds_ansi_and_rich_strips_it() -> None:
    tl = samples.lost_final_ack()
    colored = render_ladder(tl, color=True)
    assert "\x1b[" in colored
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == render_ladder(tl)
    assert render_ladder_rich(tl).plain.rstrip() == render_ladder(tl).rstrip()


def test_timeline_with_unknown_endpoints_still_draws() -> None:
    tl = Timeline(events=[
        StateChange(0.0, "a", None, State.LISTEN, Source.MODEL),
        Packet(0.1, "b", "a", "1.1.1.1", 1, "2.2.2.2", 2, "S", 5, 0, 0),
    ])
    text = render_ladder(tl)
    assert "LISTEN" in text and "[S] seq 5 len 0" in text


def test_empty_timeline() -> None:
    assert render_ladder(Timeline(endpoints=[EndpointInfo("c"), EndpointInfo("s")])).strip()


@pytest.mark.parametrize("name", ["handshake_close", "lost_final_ack"])
def test_golden(name: str) -> None:
    check_golden(f"ladder_{name}.txt", render_ladder(samples.ALL[name](), width=100))


def test_hour_long_timeline_widens_the_time_column() -> None:
    tl = samples.refused_after_syn_loss()
    last = tl.events[-1]
    tl.events.append(Packet(last.time + 7200.0, "server", "client", "10.0.0.2", 8080,
                            "10.0.0.1", 40000, "R", 1, 0, 0))
    lines = render_ladder(tl, width=80).splitlines()
    row = next(line for line in lines if line.lstrip().startswith("7201000.050"))
    assert "[R] seq 1 len 0" in row
    assert all(len(line) <= 80 for line in lines)
    bars = {line.index("│") for line in lines if "│" in line}
    assert len(bars) == 1  # the client column stays straight
