"""The ladder in Graphviz's DOT language (the seed notes ask for exactly this).

Theory of operation: Graphviz lays out ranks top to bottom, so every event
gets a rank (row) holding five nodes, left to right: the time, the client's
calls, the client's column point, the server's column point, the server's
calls.  ``rank=same`` keeps a row level; heavy invisible-free edges from
each column point to the next one down draw the two lifelines, coloured by
the state the endpoint is in (the same colours as the SVG ladder) and
dashed where the state is only inferred.  A segment is an edge from the
sender's point in its row to the receiver's point one row down
(``constraint=false`` so it does not bend the layout), so arrows slope the
way ladders are drawn.  A dropped segment ends in a small ``✗`` node placed
between the columns.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace

from tcplab.render._common import (
    BREAK_GAP,
    Arrival,
    api_text,
    arrives_later,
    columns,
    connection_tag,
    format_gap,
    format_ms,
    packet_label,
    several_connections,
    split_arrivals,
    start_time,
    visible_events,
)
from tcplab.render.lanes import Badge, lane_events
from tcplab.render.svg import FLAG_STROKE, STATE_FILL, segment_kind
from tcplab.states import State
from tcplab.timeline import ApiCall, Note, Packet, Source, Timeline


@dataclass(frozen=True, slots=True)
class _Edge:
    """A segment waiting for the row it lands on to exist."""

    source_node: str
    target_row: int
    rightward: bool
    dropped: bool
    label: str
    color: str


# The nodes of one row, left to right, and their id prefixes.  ``mid`` is a
# fixed-width spacer that holds the two columns apart and carries notes and
# the cross of a dropped segment.
_SLOTS = {"time": "t", "lapi": "la", "left": "l", "mid": "m", "right": "r", "rapi": "ra"}
_MID_WIDTH = 4.2  # inches: room for a 60-character label between the columns


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(timeline: Timeline, *, relative: bool = True) -> str:
    cols = columns(timeline)
    events = visible_events(timeline)
    t0 = start_time(events) if relative else 0.0
    out = [
        "digraph ladder {",
        "  graph [rankdir=TB, newrank=true, splines=false, nodesep=0.25, ranksep=0.18,"
        ' fontname="Helvetica", labelloc=t, fontsize=16'
        + (f", label={_q(timeline.title)}" if timeline.title else "")
        + "];",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Courier", fontsize=10, arrowsize=0.7];',
    ]
    rows: list[dict[str, str]] = []  # per row: slot -> node id

    def new_row(time_label: str) -> int:
        r = len(rows)
        ids = {slot: f"{prefix}{r}" for slot, prefix in _SLOTS.items()}
        out.append(f"  {ids['time']} [shape=plaintext, label={_q(time_label)}, fontcolor=gray40];")
        rows.append(ids)
        return r

    # state per column at each row, for colouring the lifelines.
    states: list[tuple[State | None, Source | None]] = [(None, None), (None, None)]
    column_style: list[list[tuple[State | None, Source | None]]] = [[], []]
    point_labels: dict[str, str] = {}
    slot_labels: dict[str, str] = {}
    extra: list[str] = []
    edges: list[_Edge] = []
    tagged = several_connections(timeline)
    previous: float | None = None
    items = split_arrivals(lane_events(timeline, events))
    held: dict[int, int] = {}  # id(packet) -> index in edges, until its arrival's row
    for event in items:
        if previous is not None and event.time - previous >= BREAK_GAP:
            r = new_row(f"⋯ {format_gap(event.time - previous)} ⋯")
            for side in (0, 1):
                column_style[side].append(states[side])
        previous = event.time
        r = new_row(format_ms(event.time - t0) if relative else f"{event.time:.6f}")
        ids = rows[r]
        if isinstance(event, Badge):
            column = cols.side(event.endpoint)
            if column is not None:
                # One box per state per moment; a claim drawn aside gets a mark, no lane colour.
                state, source = event.state, event.source
                mark = {Source.INFERRED: "?", Source.SNAPSHOT: "*"}.get(source, "")
                if event.aside:
                    mark += " ≠" if event.disagrees else " (listener)"
                slot = ids["left" if column == 0 else "right"]
                sampled = source in (Source.INFERRED, Source.SNAPSHOT)
                style = "filled,dashed" if sampled else "filled"
                point_labels[slot] = (
                    f"shape=box, style={_q(style + ',rounded')}, fillcolor={_q(STATE_FILL[state])},"
                    f" label={_q(state.value + mark)}, fontsize=9, height=0.2"
                )
                if not event.aside:
                    states[column] = (state, source)
        elif isinstance(event, ApiCall):
            slot = ids["rapi" if cols.side(event.actor) == 1 else "lapi"]
            color = "red3" if event.failed else "black"
            slot_labels[slot] = (
                f'label={_q(api_text(event))}, fontname="Courier", fontcolor={color}'
            )
        elif isinstance(event, Note):
            text = "\n".join(textwrap.wrap(event.text, 60))
            slot_labels[ids["mid"]] = f"label={_q(text)}, fontcolor=\"#713f12\""
        elif isinstance(event, Packet):
            rightward = cols.side(event.sender) != 1
            kind = segment_kind(event)
            tag = connection_tag(event, cols) if tagged else ""
            label = packet_label(event, relative=relative, with_options=False, tag=tag)
            label += "".join(f" ({a})" for a in event.annotations)
            src = ids["left" if rightward else "right"]
            # The arrow lands one row down, on a row made by the next event.
            if arrives_later(event, items):
                # Held by the wire: the arrow lands on its delivery's row, crossing.
                held[id(event)] = len(edges)
            edges.append(_Edge(src, r + 1, rightward, event.dropped, label, FLAG_STROKE[kind]))
        elif isinstance(event, Arrival):
            index = held.pop(id(event.packet), None)
            if index is not None:
                edges[index] = replace(edges[index], target_row=r)
        for side in (0, 1):
            column_style[side].append(states[side])
    # The last packet may land below the last row.
    new_row("")
    for side in (0, 1):
        column_style[side].append(states[side])
    for edge in edges:
        dst = rows[edge.target_row]["right" if edge.rightward else "left"]
        color = _q(edge.color)
        if edge.dropped:
            lost = rows[edge.target_row]["mid"]
            slot_labels[lost] = 'label="✗", fontcolor=red3, fontsize=16'
            extra.append(
                f"  {edge.source_node} -> {lost} [label={_q(edge.label + ' (dropped)')},"
                f" color={color}, fontcolor={color}, style=dashed, arrowhead=none,"
                " constraint=false];"
            )
        else:
            # A held segment spans rows: its label stays by the sender, dashed.
            spans = edge.target_row > int(edge.source_node.lstrip("lr")) + 1
            text = (f"taillabel={_q(edge.label)}, labelangle=0, labeldistance=12, style=dashed"
                    if spans else f"label={_q(edge.label)}")
            extra.append(
                f"  {edge.source_node} -> {dst} [{text}, color={color},"
                f" fontcolor={color}, constraint=false];"
            )
    for r, ids in enumerate(rows):
        for slot in ("left", "right"):
            node = ids[slot]
            attrs = point_labels.get(node, "shape=point, width=0.04, color=gray50")
            out.append(f"  {node} [{attrs}];")
        for slot in ("lapi", "rapi"):
            attrs = slot_labels.get(ids[slot], 'label=""')
            out.append(f"  {ids[slot]} [shape=plaintext, {attrs}];")
        attrs = slot_labels.get(ids["mid"], 'label=""')
        out.append(
            f"  {ids['mid']} [shape=plaintext, width={_MID_WIDTH}, fixedsize=true, {attrs}];"
        )
        chain = " -> ".join(ids[slot] for slot in _SLOTS)
        out.append(f"  {{ rank=same; {chain} [style=invis]; }}")
        if r + 1 < len(rows):
            nxt = rows[r + 1]
            for slot in ("time", "lapi", "mid", "rapi"):
                out.append(f"  {ids[slot]} -> {nxt[slot]} [style=invis, weight=100];")
            for side, slot in ((0, "left"), (1, "right")):
                shade, shade_source = column_style[side][r]
                if shade is None:
                    style = "color=gray70, penwidth=1"
                else:
                    dashed = ", style=dashed" if shade_source is Source.INFERRED else ""
                    style = f"color={_q(STATE_FILL[shade])}, penwidth=6{dashed}"
                out.append(
                    f"  {ids[slot]} -> {nxt[slot]} [{style}, arrowhead=none, weight=1000];"
                )
    # The column heads.
    first = rows[0]
    out.append(f"  head_l [shape=plaintext, label={_q(cols.left.name)}, fontsize=14];")
    out.append(f"  head_r [shape=plaintext, label={_q(cols.right.name)}, fontsize=14];")
    out.append("  head_t [shape=plaintext, label=\"ms\", fontcolor=gray40];")
    out.append('  head_la [shape=plaintext, label=""]; head_ra [shape=plaintext, label=""];')
    out.append(f'  head_m [shape=plaintext, label="", width={_MID_WIDTH}, fixedsize=true];')
    heads = {"time": "head_t", "lapi": "head_la", "left": "head_l", "mid": "head_m",
             "right": "head_r", "rapi": "head_ra"}
    out.append(f"  {{ rank=same; {' -> '.join(heads.values())} [style=invis]; }}")
    for slot, head in heads.items():
        out.append(f"  {head} -> {first[slot]} [style=invis, weight=100];")
    out += extra
    out.append("}")
    return "\n".join(out) + "\n"


__all__ = ["render_dot"]
