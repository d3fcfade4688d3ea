"""The two-column ladder as SVG, drawn by tcplab itself (no Graphviz, no JS).

Theory of operation.  Events are laid out top to bottom in drawing order
(``_common.ordered_events``), each on its own row, so nothing overlaps.  The
vertical distance between two rows is a readable minimum plus a term
logarithmic in the time between them: a 20 µs round trip and a 40 ms
delayed ACK are both visible, and a 1 s retransmission timeout does not
push the rest of the ladder off the page.  A silence of ``BREAK_GAP`` or
more is drawn as a *broken axis* (zig-zag marks across the time axis and
both columns, labelled with the length of the gap), so a reader never takes
distance for time.  The time column on the left gives every row's exact
time in ms with µs precision.

What is drawn, and what a test (or a browser) can find by class:

* ``g.packet`` per segment: a line from the sender's column to the
  receiver's, sloping down a little the way ladders are drawn, its label
  (flags, relative seq/ack, length) above it, every header field and option
  in a ``<title>`` tooltip.  ``data-*`` attributes carry the fields.  A
  dropped segment (``data-dropped="1"``) stops past the middle at a cross.
* ``g.state`` per state change: a label on the endpoint's column; the
  column is shaded from there to the next change in the state's colour.
  Kernel (tracepoint) and model states are solid, states inferred from
  packets are hatched, sock_diag snapshots dotted.
* ``g.api`` per socket call, outside its column at the time it returned,
  red when it failed with an errno.
* ``g.note`` per note, ``g.axis-break`` per broken-axis gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from tcplab.fmt import window_text
from tcplab.render._common import (
    BREAK_GAP,
    SOURCE_LEGEND,
    WIRE_ACTOR,
    Arrival,
    Columns,
    RunSummary,
    api_text,
    arrives_later,
    columns,
    connection_tag,
    format_gap,
    format_ms,
    key_options,
    packet_label,
    several_connections,
    start_time,
)
from tcplab.render.lanes import SOURCE_LETTER, Badge, SnapshotDetail, ladder_items
from tcplab.render.wrap import wrap
from tcplab.states import State
from tcplab.timeline import ApiCall, Note, Packet, Source, Timeline

SVG_NS = "http://www.w3.org/2000/svg"

# Geometry (px).  12 px monospace is ~7.2 px a character: the outer areas
# hold a 40-character call, the middle a 60-character segment label.
WIDTH = 1140
TIME_X = 84  # right edge of the time labels
LEFT_X = 390
RIGHT_X = 810
BAND = 12  # width of a column's state shading
TOP = 96
SLOPE = 10  # how far an arrow drops between sender and receiver
BREAK_HEIGHT = 42
CHAR = 7.2

# One colour per state, light enough to write on.  The families follow the
# text ladder: opening yellow/amber, ESTABLISHED green, our close blue, the
# peer's close orange, TIME-WAIT violet, CLOSED grey.
STATE_FILL: dict[State, str] = {
    State.CLOSED: "#cbd5e1",
    State.LISTEN: "#fde68a",
    State.SYN_SENT: "#fcd34d",
    State.SYN_RECEIVED: "#fbbf24",
    State.ESTABLISHED: "#86efac",
    State.FIN_WAIT_1: "#93c5fd",
    State.FIN_WAIT_2: "#60a5fa",
    State.CLOSING: "#a5b4fc",
    State.TIME_WAIT: "#c4b5fd",
    State.CLOSE_WAIT: "#fdba74",
    State.LAST_ACK: "#fb923c",
}

# Segment colours by what the segment does (its control, RFC 9293 §3.1).
FLAG_STROKE: dict[str, str] = {
    "SYN": "#b45309",
    "FIN": "#1d4ed8",
    "RST": "#dc2626",
    "data": "#047857",
    "ACK": "#475569",
}

_STYLE = """
text { font-family: ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas,
  'Noto Sans Mono CJK SC', 'Microsoft YaHei', 'PingFang SC', 'Noto Sans CJK SC', monospace;
  font-size: 12px; fill: #1e293b; }
.title, .endpoint-name, .state text, .note text, .legend text {
  font-family: system-ui, 'DejaVu Sans', 'PingFang SC', 'Hiragino Sans GB', 'Microsoft YaHei',
  'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei', sans-serif; }
.title { font-size: 17px; font-weight: 600; }
.endpoint-name { font-size: 15px; font-weight: 600; }
.endpoint-addr { font-size: 11px; fill: #64748b; }
.time { font-size: 10.5px; fill: #64748b; }
.tick line { stroke: #e2e8f0; stroke-width: 1; }
.lifeline { stroke: #94a3b8; stroke-width: 1.5; }
.packet line { stroke-width: 1.8; }
.packet .label { font-size: 12px; }
.packet .opts { font-size: 10.5px; opacity: 0.85; }
.packet .ann { font-size: 10.5px; fill: #b91c1c; font-style: italic; }
.packet .seq { font-size: 10.5px; fill: #1e40af; }
.packet:hover line { stroke-width: 3.2; }
.packet:hover .label { font-weight: 700; }
.state rect { stroke: #334155; stroke-width: 0.8; }
.state.inferred rect { stroke-dasharray: 3 2; }
.state.snapshot rect { stroke-dasharray: 1 2; }
.state text { font-size: 11px; font-weight: 600; }
.state text .src { font-size: 8.5px; font-weight: 400; fill: #334155; }
.state.aside rect { stroke: #64748b; stroke-dasharray: 2 2; opacity: 0.75; }
.state.disagrees rect { stroke: #dc2626; stroke-width: 1.2; stroke-dasharray: 4 2; }
.api.wire text { fill: #7e22ce; font-style: italic; }
.run rect { fill: #f1f5f9; stroke: #94a3b8; stroke-dasharray: 3 3; }
.run text { font-size: 11.5px; fill: #334155; font-style: italic; }
.state text.detail { font-family: ui-monospace, 'DejaVu Sans Mono', monospace;
  font-weight: 400; fill: #475569; }
.api text { font-size: 12px; }
.api.failed text { fill: #b91c1c; font-weight: 700; }
.note rect { fill: #fefce8; stroke: #eab308; stroke-width: 0.8; }
.note text { font-size: 11.5px; fill: #713f12; }
.axis-break polyline { fill: none; stroke: #64748b; stroke-width: 1.2; }
.axis-break rect { fill: #f8fafc; }
.axis-break text { font-size: 11px; fill: #475569; font-style: italic; }
.legend text { font-size: 11px; fill: #475569; }
"""


def _esc(text: str) -> str:
    return escape(text)


def _attr(text: str | int | float) -> str:
    return quoteattr(str(text))


def _num(value: float) -> str:
    """Coordinates with at most one decimal, so the output is stable and small."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _css_name(state: State) -> str:
    return state.value.lower()


def segment_kind(packet: Packet) -> str:
    """Which colour family a segment belongs to: SYN, FIN, RST, data or ACK."""
    if "R" in packet.flags:
        return "RST"
    if "S" in packet.flags:
        return "SYN"
    if "F" in packet.flags:
        return "FIN"
    if packet.length:
        return "data"
    return "ACK"


def packet_tooltip(packet: Packet) -> str:
    """Every header field the Packet carries, one per line, for ``<title>``."""
    lines = [
        f"{packet.sender} → {packet.receiver}",
        f"{packet.src}:{packet.sport} → {packet.dst}:{packet.dport}",
        f"flags [{packet.flags}]",
        f"seq {packet.seq}" + _relative(packet.rel_seq),
        f"ack {packet.ack}" + _relative(packet.rel_ack),
        f"len {packet.length}",
        f"win {window_text(packet.window, packet.win_shift, syn='S' in packet.flags)}",
    ]
    if packet.options:
        lines.append(f"options {packet.options}")
    if packet.dropped:
        lines.append("dropped by the wire")
    lines += list(packet.annotations)
    if packet.comment:
        lines += ["comment: " + line for line in packet.comment.splitlines()]
    return "\n".join(lines)


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}"/>'


def _relative(value: int | None) -> str:
    return f" (relative {value})" if value is not None else ""


@dataclass(slots=True)
class _Band:
    """A stretch of a column shaded in one state."""

    y: float
    state: State
    source: Source


@dataclass(slots=True)
class _Canvas:
    cols: Columns
    parts: list[str] = field(default_factory=list)
    bands: tuple[list[_Band], list[_Band]] = field(default_factory=lambda: ([], []))
    ticks: list[float] = field(default_factory=list)  # the y of every row, for the time axis
    y: float = TOP
    held: dict[int, tuple[float, int]] = field(default_factory=dict)  # id(packet) -> (y0, index)

    def column_x(self, side: int) -> float:
        return LEFT_X if side == 0 else RIGHT_X


def _gap_space(gap: float) -> float:
    """Extra room for a silence shorter than a break: log-scaled, 10 µs ≈ 1 px."""
    if gap <= 0:
        return 0.0
    return 5.0 * math.log10(1.0 + gap / 1e-5)


def _draw_packet(
    canvas: _Canvas, packet: Packet, index: int, relative: bool, tagged: bool,
    seq_note: str = "", start: float | None = None,
) -> None:
    """A segment's arrow.  ``start``: the y of its send row when it is drawn at
    its delivery (a held segment: the arrow runs from send to delivery)."""
    side = canvas.cols.side(packet.sender)
    rightward = side != 1
    x0 = canvas.column_x(0 if rightward else 1) + (BAND / 2 if rightward else -BAND / 2)
    x1 = canvas.column_x(1 if rightward else 0) + (-BAND / 2 - 1 if rightward else BAND / 2 + 1)
    canvas.y += 16
    if start is None:
        y0 = canvas.y
        y1 = y0 + SLOPE
    else:
        y0 = start
        y1 = canvas.y
    kind = segment_kind(packet)
    stroke = FLAG_STROKE[kind]
    tag = connection_tag(packet, canvas.cols) if tagged else ""
    label = packet_label(packet, relative=relative, with_options=False, tag=tag)
    options = key_options(packet.options) if "S" in packet.flags else ""
    attrs = {
        "class": "packet" + (" dropped" if packet.dropped else "")
        + (" held" if start is not None else ""),
        "data-index": str(index),
        "data-time": repr(packet.time),
        "data-sender": packet.sender,
        "data-receiver": packet.receiver,
        "data-flags": packet.flags,
        "data-seq": str(packet.rel_seq if relative and packet.rel_seq is not None else packet.seq),
        "data-ack": str(packet.rel_ack if relative and packet.rel_ack is not None else packet.ack),
        "data-len": str(packet.length),
        "data-kind": kind,
        "data-dropped": "1" if packet.dropped else "0",
        "data-y0": _num(y0),
        "data-y1": _num(y1),
    }
    if packet.delivered is not None:
        attrs["data-delivered"] = repr(packet.delivered)
    out = ["<g " + " ".join(f"{k}={_attr(v)}" for k, v in attrs.items()) + ">"]
    out.append(f"<title>{_esc(packet_tooltip(packet))}</title>")
    # A lost segment's label sits over the part that was drawn; a held one's
    # near its start, where it left the sender.
    at = 0.29 if packet.dropped else (0.5 if start is None else 0.3)
    middle = x0 + (x1 - x0) * at
    label_y = y0 + (y1 - y0) * at - 4 if start is not None else y0 - 4
    out.append(
        f'<text class="label" x="{_num(middle)}" y="{_num(label_y)}" text-anchor="middle"'
        f' fill="{stroke}">{_esc(label)}</text>'
    )
    if packet.dropped:
        # The segment left the sender and never arrived: stop a little past
        # the middle and cross it out.
        reach = 0.58
        xe = x0 + (x1 - x0) * reach
        ye = y0 + (y1 - y0) * reach
        out.append(
            f'<line x1="{_num(x0)}" y1="{_num(y0)}" x2="{_num(xe)}" y2="{_num(ye)}"'
            f' stroke="{stroke}" stroke-dasharray="6 3"/>'
        )
        out.append(
            '<g class="lost" stroke="#dc2626" stroke-width="2.6">'
            + _line(xe - 7, ye - 7, xe + 7, ye + 7)
            + _line(xe - 7, ye + 7, xe + 7, ye - 7)
            + "</g>"
        )
    else:
        dash = ' stroke-dasharray="7 4"' if start is not None else ""
        out.append(
            f'<line x1="{_num(x0)}" y1="{_num(y0)}" x2="{_num(x1)}" y2="{_num(y1)}"'
            f' stroke="{stroke}"{dash}/>'
        )
        # Arrow head along the line's direction.
        dx, dy = x1 - x0, y1 - y0
        length = math.hypot(dx, dy)
        ux, uy = dx / length, dy / length
        bx, by = x1 - 10 * ux, y1 - 10 * uy
        px, py = -uy * 4.5, ux * 4.5
        out.append(
            f'<polygon points="{_num(x1)},{_num(y1)} {_num(bx + px)},{_num(by + py)}'
            f' {_num(bx - px)},{_num(by - py)}" fill="{stroke}"/>'
        )
    below = y1 + 8
    if options:
        # Negotiated in the SYNs (RFC 9293 §3.7.1 MSS, RFC 7323, RFC 2018).
        out.append(
            f'<text class="opts" x="{_num(middle)}" y="{_num(y1 + 12)}" text-anchor="middle"'
            f' fill="{stroke}">&lt;{_esc(options)}&gt;</text>'
        )
        below = y1 + 18
    said = any(a.startswith("the wire drops") for a in packet.annotations)
    notes = (["dropped by the wire"] if packet.dropped and not said else [])
    notes += list(packet.annotations)
    anchor_x = x0 + (30 if rightward else -30)
    anchor = "start" if rightward else "end"
    for css, text in [("ann", line) for line in wrap(", ".join(notes), 64)] if notes else []:
        out.append(
            f'<text class="{css}" x="{_num(anchor_x)}" y="{_num(below + 5)}"'
            f' text-anchor="{anchor}">{_esc(text)}</text>'
        )
        below += 12
    if seq_note:
        out.append(
            f'<text class="seq" x="{_num(anchor_x)}" y="{_num(below + 5)}"'
            f' text-anchor="{anchor}">{_esc(seq_note)}</text>'
        )
        below += 12
    out.append("</g>")
    canvas.parts.append("".join(out))
    canvas.ticks.append(y1 if start is not None else y0)
    canvas.y = below


def _packet_leaves(canvas: _Canvas, packet: Packet, index: int) -> None:
    """A held segment's send row: a stub at the sender; the arrow is drawn on arrival."""
    rightward = canvas.cols.side(packet.sender) != 1
    x0 = canvas.column_x(0 if rightward else 1) + (BAND / 2 if rightward else -BAND / 2)
    canvas.y += 16
    y0 = canvas.y
    stroke = FLAG_STROKE[segment_kind(packet)]
    canvas.parts.append(
        f'<g class="departure" data-index="{index}"><circle cx="{_num(x0)}" cy="{_num(y0)}"'
        f' r="3.5" fill="{stroke}"/></g>'
    )
    canvas.held[id(packet)] = (y0, index)
    canvas.ticks.append(y0)
    canvas.y = y0 + 4


def _draw_badge(canvas: _Canvas, badge: Badge) -> None:
    """One badge per state per moment, with the letters of every source that
    reported it; a claim drawn aside (a disagreement, a listener once the
    connection has a state) sits outside the lane and does not shade it."""
    side = canvas.cols.side(badge.endpoint)
    if side is None:
        return
    state, source = badge.state, badge.source
    lines = [f"{badge.endpoint}: {badge.state.value}"]
    if badge.old is not None:
        lines[0] = f"{badge.endpoint}: {badge.old.value} → {badge.state.value}"
    if badge.cause:
        lines.append(badge.cause)
    for seen_source, when in badge.seen:
        lines.append(f"reported by: {SOURCE_LEGEND[seen_source]} at {when!r}")
    if badge.disagrees:
        lines.append(
            "disagrees with the lane, which shows "
            + (badge.primary_state.value if badge.primary_state else "no state")
        )
    if badge.detail:
        lines.append(badge.detail)
    canvas.y += 12
    y = canvas.y
    x = canvas.column_x(side)
    letters = "·".join(SOURCE_LETTER[s] for s in badge.sources)
    text = state.value
    if badge.aside:
        text = ("≠ " if badge.disagrees else "listener ") + text
    width = len(text) * 7.0 + 14
    sub = len(letters) * 5.6 + 6 if letters else 0
    if badge.aside:
        # Outside the lane, on the far side from the other endpoint.
        x = x - width / 2 - BAND - 8 if side == 0 else x + width / 2 + BAND + 8
    css = f"state {source.value}" + (" aside" if badge.aside else "")
    css += " disagrees" if badge.disagrees else ""
    css += " listener" if badge.listener else ""
    old = f" data-old={_attr(badge.old.value)}" if badge.old is not None else ""
    canvas.parts.append(
        f"<g class={_attr(css)} data-endpoint={_attr(badge.endpoint)}"
        f' data-state="{state.value}" data-source="{source.value}"{old}'
        f' data-sources="{" ".join(s.value for s in badge.sources)}"'
        f" data-time={_attr(repr(badge.time))}><title>{_esc(chr(10).join(lines))}</title>"
        f'<rect x="{_num(x - width / 2)}" y="{_num(y - 9)}" width="{_num(width + sub)}"'
        ' height="18" rx="9"'
        f' fill="{STATE_FILL[state]}"/>'
        f'<text x="{_num(x + sub / 2)}" y="{_num(y + 4)}" text-anchor="middle">'
        f'{_esc(text)}<tspan class="src" dx="4">{_esc(letters)}</tspan></text>'
        + (_detail(canvas.column_x(side), y, side, f"ss: {badge.detail}")
           if badge.detail and not badge.aside else "")
        + "</g>"
    )
    canvas.ticks.append(y)
    band = canvas.bands[side]
    if not badge.aside and (not band or band[-1].state is not state
                            or band[-1].source is not source):
        band.append(_Band(y, state, source))
    canvas.y = y + 12


def _draw_detail(canvas: _Canvas, item: SnapshotDetail) -> None:
    side = canvas.cols.side(item.endpoint)
    if side is None:
        return
    canvas.y += 8
    y = canvas.y
    who = "ss listener" if item.listener else "ss"
    canvas.parts.append(
        f'<g class="snapshot-detail" data-endpoint={_attr(item.endpoint)}'
        f' data-state="{item.state.value}"><title>{_esc(f"sock_diag snapshot: {item.state.value}")}'
        f"</title>{_detail(canvas.column_x(side), y, side, f'{who}: {item.detail}')}</g>"
    )
    canvas.ticks.append(y)
    canvas.y = y + 8


def _detail(x: float, y: float, side: int, text: str) -> str:
    """Small text outside the column, next to a state label."""
    dx, anchor = (-72, "end") if side == 0 else (72, "start")
    return (
        f'<text class="detail" x="{_num(x + dx)}" y="{_num(y + 4)}" text-anchor="{anchor}">'
        f"{_esc(text)}</text>"
    )


def _fill(state: State, source: Source) -> str:
    if source is Source.INFERRED:
        return f"url(#hatch-{_css_name(state)})"
    if source is Source.SNAPSHOT:
        return f"url(#dots-{_css_name(state)})"
    return STATE_FILL[state]


def _draw_api(canvas: _Canvas, call: ApiCall) -> None:
    side = canvas.cols.side(call.actor)
    canvas.y += 8
    y = canvas.y
    text = api_text(call) if side is not None else f"{call.actor}: {api_text(call)}"
    if call.actor == WIRE_ACTOR:
        x, anchor = (LEFT_X + RIGHT_X) / 2, "middle"
        text = f"⚡ {text}"
    elif side == 1:
        x, anchor = RIGHT_X + BAND, "start"
    else:
        x, anchor = LEFT_X - BAND, "end"
    # The outer areas hold about 40 characters: a longer call wraps under itself.
    room = int((LEFT_X - TIME_X - 30) / CHAR) if call.actor != WIRE_ACTOR else 80
    lines = wrap(text, room)
    tip = f"{call.actor}: {text}\nreturned at {call.time!r}"
    if call.started is not None:
        tip += f" after {format_gap(call.time - call.started)}"
    css = "api failed" if call.failed else "api"
    css += " wire" if call.actor == WIRE_ACTOR else ""
    spans = "".join(
        f'<tspan x="{_num(x)}" dy="{0 if i == 0 else 14}">{_esc(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    canvas.parts.append(
        f"<g class={_attr(css)} data-actor={_attr(call.actor)} data-call={_attr(call.call)}"
        f" data-errno={_attr(call.errno or '')}><title>{_esc(tip)}</title>"
        f'<text x="{_num(x)}" y="{_num(y + 4)}" text-anchor="{anchor}">{spans}</text></g>'
    )
    canvas.ticks.append(y)
    canvas.y = y + 10 + 14 * (len(lines) - 1)


def _draw_note(canvas: _Canvas, note: Note) -> None:
    lines = wrap(note.text, 58)
    canvas.y += 8
    top = canvas.y
    height = 16 * len(lines) + 6
    left = LEFT_X + 24
    width = RIGHT_X - LEFT_X - 48
    out = [
        f"<g class=\"note\" data-endpoint={_attr(note.endpoint or '')}>",
        f'<rect x="{left}" y="{_num(top)}" width="{width}" height="{height}" rx="4"/>',
    ]
    for i, line in enumerate(lines):
        out.append(f'<text x="{left + 8}" y="{_num(top + 15 + 16 * i)}">{_esc(line)}</text>')
    out.append("</g>")
    canvas.parts.append("".join(out))
    canvas.ticks.append(top + 11)
    canvas.y = top + height + 6


def _draw_break(canvas: _Canvas, gap: float) -> None:
    top = canvas.y + 4
    mid = top + BREAK_HEIGHT / 2
    zig = []
    for x in (TIME_X - 30, LEFT_X, RIGHT_X):
        for dy in (-5, 5):
            zig.append(
                f'<polyline points="{x - 12},{_num(mid + dy + 3)} {x - 4},{_num(mid + dy - 3)}'
                f' {x + 4},{_num(mid + dy + 3)} {x + 12},{_num(mid + dy - 3)}"/>'
            )
    canvas.parts.append(
        f'<g class="axis-break" data-gap={_attr(repr(gap))}>'
        f"<title>{_esc(f'{format_gap(gap)} with nothing on the wire: axis broken')}</title>"
        f'<rect x="0" y="{_num(top)}" width="{WIDTH}" height="{BREAK_HEIGHT}" opacity="0.9"/>'
        + "".join(zig)
        + f'<text x="{(LEFT_X + RIGHT_X) / 2}" y="{_num(mid + 4)}" text-anchor="middle">'
        f"⋯ {_esc(format_gap(gap))} later ⋯</text></g>"
    )
    canvas.y = top + BREAK_HEIGHT + 4


def _defs(states: set[State]) -> str:
    out = ["<defs>"]
    for state in sorted(states, key=lambda s: list(State).index(s)):
        name, color = _css_name(state), STATE_FILL[state]
        out.append(
            f'<pattern id="hatch-{name}" width="6" height="6" patternUnits="userSpaceOnUse"'
            f' patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
            f'<rect width="3.2" height="6" fill="{color}"/></pattern>'
            f'<pattern id="dots-{name}" width="5" height="5" patternUnits="userSpaceOnUse">'
            f'<rect width="5" height="5" fill="#ffffff"/>'
            f'<circle cx="2.5" cy="2.5" r="1.7" fill="{color}"/></pattern>'
        )
    out.append("</defs>")
    return "".join(out)


def _columns_and_bands(canvas: _Canvas, bottom: float) -> str:
    out = ['<g class="columns">']
    for side in (0, 1):
        x = canvas.column_x(side)
        out.append(
            f'<line class="lifeline" x1="{x}" y1="{TOP - 16}" x2="{x}" y2="{_num(bottom)}"/>'
        )
        bands = canvas.bands[side]
        for i, band in enumerate(bands):
            end = bands[i + 1].y if i + 1 < len(bands) else bottom
            out.append(
                f'<rect class="band {band.source.value}" data-state="{band.state.value}"'
                f' x="{_num(x - BAND / 2)}" y="{_num(band.y)}" width="{BAND}"'
                f' height="{_num(end - band.y)}" fill="{_fill(band.state, band.source)}"'
                f' opacity="0.9"/>'
            )
    out.append("</g>")
    return "".join(out)


def _header(cols: Columns, title: str) -> str:
    out = []
    if title:
        out.append(f'<text class="title" x="16" y="26">{_esc(title)}</text>')
    out.append(f'<text class="time" x="{TIME_X}" y="{TOP - 24}" text-anchor="end">ms</text>')
    for info, x in ((cols.left, LEFT_X), (cols.right, RIGHT_X)):
        out.append(
            f'<text class="endpoint-name" x="{x}" y="{TOP - 44}" text-anchor="middle">'
            f"{_esc(info.name)}</text>"
        )
        if info.address or info.port:
            addr = f"{info.address}:{info.port}" if info.port else info.address
            out.append(
                f'<text class="endpoint-addr" x="{x}" y="{TOP - 28}" text-anchor="middle">'
                f"{_esc(addr)}</text>"
            )
    return "".join(out)


def _legend(
    y: float, states: list[State], sources: set[Source], kinds: list[str]
) -> tuple[str, float]:
    out = [f'<g class="legend" transform="translate(16 {_num(y)})">']
    x = 0.0
    for state in states:
        out.append(
            f'<rect x="{_num(x)}" y="0" width="12" height="12" rx="2" fill="{STATE_FILL[state]}"'
            f' stroke="#334155" stroke-width="0.5"/>'
            f'<text x="{_num(x + 16)}" y="10">{_esc(state.value)}</text>'
        )
        x += 16 + len(state.value) * 6.6 + 14
    line2 = 22.0
    x = 0.0
    samples = {
        Source.KERNEL: STATE_FILL[State.ESTABLISHED],
        Source.MODEL: STATE_FILL[State.ESTABLISHED],
        Source.INFERRED: f"url(#hatch-{_css_name(State.ESTABLISHED)})",
        Source.SNAPSHOT: f"url(#dots-{_css_name(State.ESTABLISHED)})",
    }
    for source in (Source.KERNEL, Source.MODEL, Source.SNAPSHOT, Source.INFERRED):
        if source not in sources:
            continue
        text = f"{SOURCE_LETTER[source]} {SOURCE_LEGEND[source]}"
        out.append(
            f'<rect x="{_num(x)}" y="{_num(line2)}" width="12" height="12" fill="{samples[source]}"'
            f' stroke="#334155" stroke-width="0.5"/>'
            f'<text x="{_num(x + 16)}" y="{_num(line2 + 10)}">{_esc(text)}</text>'
        )
        x += 16 + len(text) * 6.6 + 18
    for kind in kinds:
        out.append(
            f'<g stroke="{FLAG_STROKE[kind]}" stroke-width="2">'
            + _line(x, line2 + 6, x + 22, line2 + 6)
            + "</g>"
            f'<text x="{_num(x + 26)}" y="{_num(line2 + 10)}">{kind}</text>'
        )
        x += 26 + len(kind) * 6.6 + 14
    out.append("</g>")
    return "".join(out), y + line2 + 24


def _draw_run(canvas: _Canvas, run: RunSummary) -> None:
    canvas.y += 10
    top = canvas.y
    canvas.parts.append(
        f'<g class="run" data-segments="{run.segments}" data-acks="{run.acks}"'
        f' data-length="{run.length}"><title>{_esc(run.text())}</title>'
        f'<rect x="{LEFT_X + 8}" y="{_num(top)}" width="{RIGHT_X - LEFT_X - 16}" height="24"'
        f' rx="4"/><text x="{(LEFT_X + RIGHT_X) / 2}" y="{_num(top + 16)}"'
        f' text-anchor="middle">{_esc(run.text())}</text></g>'
    )
    canvas.ticks.append(top + 12)
    canvas.y = top + 30


def render_svg(timeline: Timeline, *, relative: bool = True, explain_seq: bool = False,
               collapse: bool = True) -> str:  # fmt: skip
    """The ladder as a standalone SVG document (UTF-8 text, no external references).

    ``explain_seq``: the arithmetic of each segment's numbers under its
    arrow.  ``collapse``: long runs of like data segments as one row.
    """
    cols = columns(timeline)
    ladder = ladder_items(timeline, collapse=collapse, explain_seq=explain_seq)
    events, items, seq_notes = ladder.events, ladder.items, ladder.seq_notes
    canvas = _Canvas(cols, y=TOP + (6 if timeline.title else 0))
    t0 = start_time(events) if relative else 0.0
    previous: float | None = None
    packet_index = 0
    indexes: dict[int, int] = {}
    tick_rows: list[tuple[float, str]] = []
    tagged = several_connections(timeline)
    for item in items:
        if previous is not None:
            gap = item.time - previous
            if gap >= BREAK_GAP:
                _draw_break(canvas, gap)
            else:
                canvas.y += _gap_space(gap)
        previous = item.end if isinstance(item, RunSummary) else item.time
        before = len(canvas.ticks)
        if isinstance(item, Packet):
            if arrives_later(item, items):
                _packet_leaves(canvas, item, packet_index)
            else:
                _draw_packet(canvas, item, packet_index, relative, tagged,
                             seq_notes.get(id(item), ""))  # fmt: skip
            indexes[id(item)] = packet_index
            packet_index += 1
        elif isinstance(item, Arrival):
            y0, index = canvas.held.pop(id(item.packet))
            _draw_packet(canvas, item.packet, index, relative, tagged,
                         seq_notes.get(id(item.packet), ""), start=y0)  # fmt: skip
        elif isinstance(item, Badge):
            _draw_badge(canvas, item)
        elif isinstance(item, SnapshotDetail):
            _draw_detail(canvas, item)
        elif isinstance(item, ApiCall):
            _draw_api(canvas, item)
        elif isinstance(item, Note):
            _draw_note(canvas, item)
        elif isinstance(item, RunSummary):
            _draw_run(canvas, item)
        label = format_ms(item.time - t0) if relative else f"{item.time:.6f}"
        tick_rows += [(y, label) for y in canvas.ticks[before:]]
    bottom = canvas.y + 16
    badges = [i for i in items if isinstance(i, Badge)]
    states_used = sorted(
        {b.state for bands in canvas.bands for b in bands} | {b.state for b in badges},
        key=lambda s: list(State).index(s),
    )
    sources = {s for b in badges for s in b.sources}
    kinds = [k for k in FLAG_STROKE if any(segment_kind(p) == k for p in timeline.packets())]
    legend, height = _legend(bottom + 14, states_used, sources, kinds)
    ticks = ['<g class="axis">']
    last_label = ""
    for y, label in tick_rows:
        ticks.append(
            f'<g class="tick" data-label="{label}" data-y="{_num(y)}">'
            f"{_line(TIME_X + 6, y, WIDTH - 16, y)}</g>"
        )
        # One label per distinct time: rows at the same µs share it.
        if label != last_label:
            ticks.append(
                f'<text class="time" x="{TIME_X}" y="{_num(y + 3.5)}"'
                f' text-anchor="end">{label}</text>'
            )
        last_label = label
    ticks.append("</g>")
    all_states = set(State) if sources & {Source.INFERRED, Source.SNAPSHOT} else set()
    parts = [
        f'<svg xmlns="{SVG_NS}" class="tcplab-ladder" viewBox="0 0 {WIDTH} {_num(height)}"'
        f' width="{WIDTH}" height="{_num(height)}" role="img"'
        f" aria-label={_attr('TCP ladder diagram: ' + (timeline.title or 'timeline'))}>",
        f"<style>{_STYLE}</style>",
        _defs(all_states),
        f'<rect class="background" width="{WIDTH}" height="{_num(height)}" fill="#ffffff"/>',
        _header(cols, timeline.title),
        "".join(ticks),
        _columns_and_bands(canvas, bottom),
        *canvas.parts,
        legend,
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


__all__ = ["FLAG_STROKE", "STATE_FILL", "packet_tooltip", "render_svg", "segment_kind"]
