"""The shared formatters: windows raw and scaled side by side, values as text."""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.fmt import list_text, path_text, value_text, window_shifts, window_text
from tcplab.states import State


@dataclass
class Seg:
    src: str
    sport: int
    dst: str
    dport: int
    flags: str
    options: str = ""


def test_window_text() -> None:
    assert window_text(502, 7) == "502×128=64256"
    assert window_text(65535, 0) == "65535"
    assert window_text(64240, 7, syn=True) == "64240"
    assert window_text(502, None) == "502×?"
    assert window_text(0, 7) == "0"


def test_window_shifts_follow_rfc7323() -> None:
    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 80)
    both = [
        Seg(*c, *s, "S", "mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7"),
        Seg(*s, *c, "S.", "mss 1460,nop,wscale 10"),
        Seg(*c, *s, "."),
        Seg(*s, *c, "."),
    ]
    assert window_shifts(both) == [0, 0, 7, 10]
    # Only one SYN carried the option: no scaling either way (§2.2).
    one = [Seg(*c, *s, "S", "wscale 7"), Seg(*s, *c, "S.", "mss 1460"), Seg(*c, *s, ".")]
    assert window_shifts(one) == [0, 0, 0]
    # A capture that starts mid-stream: unknown.
    assert window_shifts([Seg(*c, *s, ".")]) == [None]
    # §2.3: a shift above 14 is used as 14.
    big = [Seg(*c, *s, "S", "wscale 15"), Seg(*s, *c, "S.", "wscale 1"), Seg(*c, *s, ".")]
    assert window_shifts(big)[2] == 14


def test_values_read_as_text() -> None:
    assert value_text("b'hello server'") == '"hello server" (12 bytes)'
    assert value_text(b"") == '"" (0 bytes: end of stream)'
    assert value_text(b"x") == '"x" (1 byte)'
    assert value_text(State.TIME_WAIT) == "TIME-WAIT"
    assert value_text(["S", "S."]) == "S, S."
    assert value_text(None) == "nothing"
    assert value_text("b'unterminated") == "b'unterminated"
    assert list_text([]) == "(none)"
    assert path_text([State.CLOSED, State.SYN_SENT]) == "CLOSED → SYN-SENT"


def test_reports_show_windows_like_the_ladders() -> None:
    from conftest import data_module
    from tcplab.render.html import render_html
    from tcplab.render.text import render_ladder

    samples = data_module("render/samples.py")
    timeline = samples.lost_final_ack()
    assert "win 502×128=64256" in render_ladder(timeline, width=120)
    assert "<span>502×128=64256</span>" in render_html(timeline)
