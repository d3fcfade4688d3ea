"""The two-column state diagram: what a textbook draws, checked on Graphviz's own layout.

``dot -Tplain`` gives every node's centre and size and every edge's label
position in inches (y grows upwards); the invariants are read from there.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from tcplab.model.diagram import (
    ACTIVE,
    CLOSED_BOTTOM,
    CLOSED_TOP,
    NORMAL,
    PASSIVE,
    ROWS,
    drawn_edges,
    is_abnormal,
    is_normal,
    legend_rows,
    render_dot,
)
from tcplab.model.table import TRANSITIONS
from tcplab.states import State

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: Box) -> bool:
        return (abs(self.x - other.x) * 2 < self.w + other.w
                and abs(self.y - other.y) * 2 < self.h + other.h)  # fmt: skip


def layout(dot_text: str) -> tuple[dict[str, Box], list[tuple[str, str, str]]]:
    plain = subprocess.run(["dot", "-Tplain"], input=dot_text.encode(), capture_output=True,
                           check=True).stdout.decode()  # fmt: skip
    nodes: dict[str, Box] = {}
    edges: list[tuple[str, str, str]] = []
    lines: list[str] = []
    for raw in plain.splitlines():
        # A two-line label continues the line (its quotes are then unbalanced).
        if lines and lines[-1].count('"') % 2 and not lines[-1].startswith("node legend"):
            lines[-1] += " " + raw
        else:
            lines.append(raw)
    for line in lines:
        if line.startswith("node legend"):
            nodes["legend"] = Box(*(float(v) for v in line.split()[2:6]))
            continue
        parts = shlex.split(line)
        if parts[0] == "node" and parts[7] != "invis":
            nodes[parts[1]] = Box(*(float(v) for v in parts[2:6]))
        elif parts[0] == "edge":
            n = int(parts[3])
            rest = parts[4 + 2 * n :]
            style = rest[-2]
            if style != "invis":
                label = rest[0] if len(rest) > 4 else ""
                edges.append((parts[1], parts[2], label))
    return nodes, edges


@pytest.fixture(scope="module")
def picture() -> tuple[dict[str, Box], list[tuple[str, str, str]]]:
    return layout(render_dot())


def test_active_side_left_passive_side_right(picture: tuple[dict[str, Box], list]) -> None:
    nodes, _ = picture
    left = [nodes[s.name] for s in ACTIVE if s is not State.CLOSING]  # CLOSING sits between
    right = [nodes[s.name] for s in PASSIVE]
    assert max(b.x + b.w / 2 for b in left) < min(b.x - b.w / 2 for b in right)
    middle = nodes[State.ESTABLISHED.name].x
    assert all(b.x < middle for b in left) and all(b.x > middle for b in right)
    assert nodes["side_a"].x < middle < nodes["side_p"].x  # the column captions


def test_closed_at_the_top_and_again_at_the_bottom(picture: tuple[dict[str, Box], list]) -> None:
    nodes, _ = picture
    top, bottom = nodes[CLOSED_TOP], nodes[CLOSED_BOTTOM]
    states = [b for name, b in nodes.items() if name not in (CLOSED_TOP, CLOSED_BOTTOM, "legend")
              and not name.startswith("side_")]  # fmt: skip
    assert all(top.y > b.y for b in states)
    assert all(bottom.y < b.y for b in states)


def test_rows_go_down_in_the_textbook_order(picture: tuple[dict[str, Box], list]) -> None:
    nodes, _ = picture
    heights = []
    for row in ROWS:
        ys = {round(nodes[CLOSED_TOP if s is State.CLOSED else s.name].y, 3)
              for s in row if s is not None}  # fmt: skip
        assert len(ys) == 1, row  # one row, one height
        heights.append(ys.pop())
    heights.append(nodes[CLOSED_BOTTOM].y)
    assert heights == sorted(heights, reverse=True) and len(set(heights)) == len(heights)


def test_no_two_boxes_overlap(picture: tuple[dict[str, Box], list]) -> None:
    nodes, _ = picture
    names = sorted(nodes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not nodes[a].overlaps(nodes[b]), (a, b)


def test_every_drawn_edge_says_event_and_what_is_sent(picture: tuple[dict[str, Box], list]) -> None:
    _, edges = picture
    drawn = drawn_edges()
    assert len(edges) == len(drawn)
    assert all(" / " in label for _, _, label in edges)
    assert sorted(label for _, _, label in edges) == sorted(e.label for e in drawn)


def test_normal_paths_bold_and_abnormal_edges_in_the_legend() -> None:
    dot = render_dot()
    bold = [line for line in dot.splitlines() if "penwidth=2.4" in line]
    assert len(bold) == len(NORMAL) == sum(is_normal(e) for e in TRANSITIONS)
    legend = legend_rows()
    hidden = [e for e in TRANSITIONS if is_abnormal(e)]
    assert sum(len(states.split(", ")) for _, states, _ in legend) == len(hidden)
    # Every edge of the table is either drawn or listed: the picture is the table.
    assert len(drawn_edges()) + len(hidden) == len(TRANSITIONS)
    assert any(label.startswith("rcv RST") for label, _, _ in legend)


def test_all_edges_draws_every_edge_and_no_legend() -> None:
    nodes, edges = layout(render_dot(all_edges=True))
    assert len(edges) == len(TRANSITIONS) and "legend" not in nodes


def test_a_highlighted_abnormal_edge_is_drawn(picture: tuple[dict[str, Box], list]) -> None:
    from tcplab.timeline import Source, StateChange

    reset = StateChange(1.0, "client", State.ESTABLISHED, State.CLOSED, Source.MODEL, "rcv RST")
    dot = render_dot(highlight=[reset])
    red = [line for line in dot.splitlines() if 'color="red"' in line and "->" in line]
    assert len(red) == 1 and "rcv RST" in red[0] and CLOSED_BOTTOM in red[0]
    _, edges = layout(dot)
    assert len(edges) == len(picture[1]) + 1
