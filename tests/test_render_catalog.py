"""The ladder invariants, on every catalog scenario played live (root, as in CI).

A learner trusts the picture more than the prose, so for each scenario's
live timeline (with the analyzer's inferred states, as the report draws it):

a. no endpoint's drawn state goes backwards along an edge the table lacks,
   and the badges of one lane are on one clock;
b. a segment the wire held or delayed is drawn from its send to its
   delivery: its arrow ends on the delivery time's row (SVG and text);
c. ``tcplab states --highlight`` marks exactly the edges taken: one per
   state change, each explained by what the endpoint received or called;
d. at 80 columns every API result is printed whole, on the caller's side,
   and no line is wider than 80 columns.

The runs are shared with tests/test_catalog_live.py (one per scenario per
session, same xdist groups).
"""

from __future__ import annotations

import itertools
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tcplab.model.diagram import edge_taken, primary_changes, taken_edges
from tcplab.model.table import TRANSITIONS, TriggerKind
from tcplab.render._common import (
    Arrival,
    api_result_text,
    columns,
    format_ms,
    split_arrivals,
    start_time,
    visible_events,
)
from tcplab.render.lanes import Badge, drawn_path, lane_events
from tcplab.render.svg import render_svg
from tcplab.render.text import render_ladder
from tcplab.render.wrap import display_width
from tcplab.states import State
from tcplab.timeline import Source, Timeline
from test_catalog_live import PARAMS, live, outdir  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root"),
]

EDGES = {(e.state, e.next) for e in TRANSITIONS}
NS = {"svg": "http://www.w3.org/2000/svg"}


def lane_problems(timeline: Timeline) -> list[str]:
    """Where a drawn lane goes backwards (or repeats itself) along no table edge."""
    items = lane_events(timeline, visible_events(timeline))
    problems: list[str] = []
    for name in columns(timeline).names:
        path = drawn_path(items, name)
        for prev, cur in itertools.pairwise(path):
            if cur.time < prev.time:
                problems.append(f"{name}: {cur.state} at {cur.time} drawn after {prev.time}")
            if (prev.state, cur.state) in EDGES:
                continue
            # Another socket of the same endpoint (a listener's child, a new
            # incarnation) says where it came from, and that is a table edge.
            own = cur.source in (Source.KERNEL, Source.MODEL, Source.SNAPSHOT)
            if own and cur.old is not None and cur.old is not prev.state \
                    and (cur.old, cur.state) in EDGES:
                continue
            problems.append(f"{name}: drawn {prev.state} -> {cur.state} "
                            f"({cur.source.value}, old {cur.old}) is no table edge")  # fmt: skip
    return problems


def held_packets(timeline: Timeline) -> list[Arrival]:
    items = split_arrivals(lane_events(timeline, visible_events(timeline)))
    return [i for i in items if isinstance(i, Arrival)]


@pytest.mark.parametrize("sid", PARAMS)
def test_lanes_never_go_backwards(sid: str, outdir: Path) -> None:  # noqa: F811
    timeline = live(sid, outdir).timeline
    assert not lane_problems(timeline)
    # Every report is drawn or folded into a badge: nothing about a state is lost.
    items = lane_events(timeline, visible_events(timeline))
    badges = [i for i in items if isinstance(i, Badge)]
    assert badges, sid


@pytest.mark.parametrize("sid", PARAMS)
def test_held_packets_end_at_their_delivery(sid: str, outdir: Path) -> None:  # noqa: F811
    timeline = live(sid, outdir).timeline
    arrivals = held_packets(timeline)
    if sid in ("simultaneous-open", "simultaneous-close"):
        assert arrivals, f"{sid}: the wire holds packets here; none drawn from send to delivery"
    if not arrivals:
        return
    t0 = start_time(visible_events(timeline))
    root = ET.fromstring(render_svg(timeline))
    ticks: dict[str, list[float]] = {}
    for tick in root.iter(f"{{{NS['svg']}}}g"):
        if tick.get("class") == "tick":
            y = float(tick.get("data-y") or 0)
            ticks.setdefault(tick.get("data-label") or "", []).append(y)
    packets = [g for g in root.iter(f"{{{NS['svg']}}}g")
               if (g.get("class") or "").split()[:1] == ["packet"]
               and "held" in (g.get("class") or "").split()]
    assert len(packets) == len(arrivals)
    for group in packets:
        delivered = float(group.get("data-delivered") or 0)
        sent = float(group.get("data-time") or 0)
        y0, y1 = float(group.get("data-y0") or 0), float(group.get("data-y1") or 0)
        assert y1 in ticks[format_ms(delivered - t0)], (sid, delivered)
        assert y0 in ticks[format_ms(sent - t0)], (sid, sent)
        line = group.find("svg:line", NS)
        assert line is not None and float(line.get("y2") or 0) == y1
    text = render_ladder(timeline, width=100)
    for arrival in arrivals:
        row = format_ms(arrival.time - t0)
        assert re.search(rf"^\s*{re.escape(row)} .*arrives", text, re.M), (sid, row)


@pytest.mark.parametrize("sid", PARAMS)
def test_highlight_marks_exactly_the_edges_taken(sid: str, outdir: Path) -> None:  # noqa: F811
    timeline = live(sid, outdir).timeline
    changes = primary_changes(timeline.state_changes())
    _, marked = taken_edges(timeline.state_changes(), timeline)
    expected = set()
    for change in changes:
        if change.old is None:
            continue
        edge = edge_taken(change, timeline)
        assert edge is not None, f"{sid}: {change.endpoint} {change.old} -> {change.new}"
        assert (edge.state, edge.next) == (change.old, change.new)
        expected.add(edge)
        # The edge is explained by what happened to that endpoint.
        if edge.trigger.kind is TriggerKind.SEGMENT:
            got = [p for p in timeline.packets() if p.receiver == change.endpoint
                   and not p.dropped and p.arrival <= change.time + 5e-5]
            assert got, f"{sid}: {edge.label} with nothing received"
            if edge.trigger.value == "rcv RST":
                assert any("R" in p.flags for p in got), f"{sid}: {edge.label} without an RST"
        elif edge.trigger.kind is TriggerKind.API:
            calls = {c.call for c in timeline.api_calls(change.endpoint)}
            assert calls & {"close", "abort", "connect", "listen", "shutdown", "kill"}, sid
    assert marked == expected
    shut_wr = any(c.call == "shutdown" and re.search("SHUT_(RD)?WR", " ".join(c.args))
                  for c in timeline.api_calls())  # fmt: skip
    if not shut_wr:
        assert not any(e.trigger.value == "shutdown(SHUT_WR)" for e in marked), sid
    if not any("R" in p.flags for p in timeline.packets()):
        assert not any("RST" in e.label for e in marked), sid


def test_handshake_close_highlights_only_the_normal_path(outdir: Path) -> None:  # noqa: F811
    timeline = live("handshake-close", outdir).timeline
    _, marked = taken_edges(timeline.state_changes(), timeline)
    assert {(e.state, e.trigger.value, e.next) for e in marked} == {
        (State.CLOSED, "listen()", State.LISTEN), (State.CLOSED, "connect()", State.SYN_SENT),
        (State.LISTEN, "rcv SYN", State.SYN_RECEIVED),
        (State.SYN_SENT, "rcv SYN-ACK", State.ESTABLISHED),
        (State.SYN_RECEIVED, "rcv ACK of SYN", State.ESTABLISHED),
        (State.ESTABLISHED, "close()", State.FIN_WAIT_1),
        (State.ESTABLISHED, "rcv FIN", State.CLOSE_WAIT),
        (State.FIN_WAIT_1, "rcv ACK of FIN", State.FIN_WAIT_2),
        (State.FIN_WAIT_2, "rcv FIN", State.TIME_WAIT),
        (State.CLOSE_WAIT, "close()", State.LAST_ACK),
        (State.LAST_ACK, "rcv ACK of FIN", State.CLOSED),
    }  # fmt: skip


@pytest.mark.parametrize("sid", PARAMS)
def test_80_columns_keep_every_api_result_whole(sid: str, outdir: Path) -> None:  # noqa: F811
    timeline = live(sid, outdir).timeline
    text = render_ladder(timeline, width=80)
    lines = text.splitlines()
    assert all(display_width(line) <= 80 for line in lines), sid
    # Nothing is cut short with an ellipsis (a collapsed run says "… N segments …").
    cut = [line for line in lines if "…" in line
           and not re.search(r"… \d+ data segments", line)]  # fmt: skip
    assert not cut, (sid, cut)
    cols = columns(timeline)
    for call in timeline.api_calls():
        result = api_result_text(call)
        side = cols.side(call.actor)
        if not result or side is None:
            continue
        # Whole: every word of it is printed (a long result wraps by words).
        assert all(word in text for word in result.split()), f"{sid}: {result!r} cut"
        first = result.split()[0] + " " + result.split()[1] if " " in result else result
        hits = [line for line in lines if first in line]
        assert hits, f"{sid}: {call.call} {result!r} not printed"
        # On the caller's side: against its bar, never in the other endpoint's half.
        near = []
        for line in hits:
            bars = [i for i, ch in enumerate(line) if ch in "│┊"]
            middle = line[bars[0] + 1 : bars[-1]]
            gap = len(middle) - len(middle.lstrip()) if side == 0 else \
                len(middle) - len(middle.rstrip())
            near.append(gap <= 6)
        assert any(near), (sid, call.call, hits)
