"""The ladder as a Mermaid ``sequenceDiagram``, to paste into Markdown notes.

Mermaid draws participants as columns and messages as arrows, which is a
ladder without a time axis: order is kept, distance is not.  So long
silences are written as a note across both columns, and every state change
is a ``Note over`` its endpoint.  A dropped segment uses Mermaid's lost
message arrow ``-x``.

Mermaid's message text is not free text: ``;`` ends a statement, ``#``
starts an entity code and ``<`` opens HTML, so those
characters are written as entity codes (``#59;``), which Mermaid supports.
"""

from __future__ import annotations

import re

from tcplab.render._common import (
    BREAK_GAP,
    SOURCE_LEGEND,
    SOURCE_MARK,
    WIRE_ACTOR,
    api_text,
    columns,
    connection_tag,
    format_gap,
    packet_label,
    several_connections,
    visible_events,
)
from tcplab.render.lanes import Badge, SnapshotDetail, lane_events
from tcplab.timeline import ApiCall, Note, Packet, Timeline

_ENTITY = {"#": "#35;", ";": "#59;", "<": "#lt;", "\n": " "}


def _text(text: str) -> str:
    return "".join(_ENTITY.get(ch, ch) for ch in text)


def _ident(name: str) -> str:
    """A participant id Mermaid accepts: letters, digits, underscore."""
    ident = re.sub(r"\W", "_", name)
    return ident if ident and not ident[0].isdigit() else f"p_{ident}"


def render_mermaid(timeline: Timeline, *, relative: bool = True) -> str:
    cols = columns(timeline)
    ids = {info.name: _ident(info.name) for info in (cols.left, cols.right)}
    lines: list[str] = []
    if timeline.title:
        lines += ["---", f"title: {_text(timeline.title)}", "---"]
    lines.append("sequenceDiagram")
    for info in (cols.left, cols.right):
        alias = info.name
        if info.address:
            alias += f" {info.address}:{info.port}" if info.port else f" {info.address}"
        lines.append(f"    participant {ids[info.name]} as {_text(alias)}")
    both = f"{ids[cols.left.name]},{ids[cols.right.name]}"
    tagged = several_connections(timeline)
    previous: float | None = None
    for event in lane_events(timeline, visible_events(timeline)):
        if previous is not None and event.time - previous >= BREAK_GAP:
            lines.append(f"    Note over {both}: ⋯ {format_gap(event.time - previous)} later ⋯")
        previous = event.time
        if isinstance(event, Packet):
            sender = ids.get(event.sender, ids[cols.left.name])
            receiver = ids.get(event.receiver, ids[cols.right.name])
            arrow = "-x" if event.dropped else "->>"
            tag = connection_tag(event, cols) if tagged else ""
            label = packet_label(event, relative=relative, with_options=False, tag=tag)
            extras = (["dropped"] if event.dropped else []) + list(event.annotations)
            if extras:
                label += f" ({', '.join(extras)})"
            lines.append(f"    {sender}{arrow}{receiver}: {_text(label)}")
        elif isinstance(event, Badge):
            who = ids.get(event.endpoint)
            if who is None:
                continue
            # One note per state per moment; a claim drawn aside says whose it is.
            text = f"{event.state.value}{SOURCE_MARK[event.source]}"
            if event.disagrees:
                text = f"{SOURCE_LEGEND[event.source]} says {event.state.value}"
            elif event.aside:
                text = f"listener {event.state.value}"
            lines.append(f"    Note over {who}: {_text(text)}")
        elif isinstance(event, SnapshotDetail):
            who = ids.get(event.endpoint)
            if who is not None:
                lines.append(f"    Note over {who}: {_text('ss: ' + event.detail)}")
        elif isinstance(event, ApiCall):
            if event.actor == WIRE_ACTOR:
                lines.append(f"    Note over {both}: {_text(api_text(event))}")
                continue
            who = ids.get(event.actor)
            if who is None:
                continue
            where = "left of" if who == ids[cols.left.name] else "right of"
            lines.append(f"    Note {where} {who}: {_text(api_text(event))}")
        elif isinstance(event, Note):
            who = ids.get(event.endpoint or "")
            lines.append(f"    Note over {who or both}: {_text(event.text)}")
    return "\n".join(lines) + "\n"


__all__ = ["render_mermaid"]
