"""The two-column ladder for a terminal.

Theory of operation: one row per event, time going down.  The row is cut
into fixed cells::

    time(ms) | client states | │ middle │ | server states

* a ``Packet`` fills the middle with an arrow from the sender's bar to the
  receiver's, its label (``[S.] seq 0 ack 1 len 0 win 65160``) inside the
  shaft; a dropped segment's arrow stops past the middle with ``✗``;
* a ``StateChange`` writes the new state in its endpoint's margin, marked by
  source (no mark: kernel or model, ``*`` snapshot, ``?`` inferred);
* an ``ApiCall`` is written inside the middle against its endpoint's bar, at
  the time it *returned*, with its result or errno;
* a ``Note`` is wrapped across the middle.

A silence of ``BREAK_GAP`` or more (delayed ACK, retransmission timeout)
gets its own row with dotted bars and the length of the gap, so microsecond
handshakes and one-second timeouts read on the same page.

Widths are counted in characters; every character used is single-width in
a terminal (box drawing, ▶ ◀ ✗), so a row is exactly ``width`` long.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tcplab.render._common import (
    BREAK_GAP,
    SOURCE_LEGEND,
    SOURCE_MARK,
    Columns,
    api_text,
    columns,
    connection_tag,
    format_gap,
    format_ms,
    packet_label,
    several_connections,
    snapshot_detail,
    start_time,
    state_text,
    visible_events,
)
from tcplab.states import State
from tcplab.timeline import ApiCall, Note, Packet, Snapshot, Source, StateChange, Timeline
from tcplab.wire.ip import host_text

if TYPE_CHECKING:
    from rich.text import Text

DEFAULT_WIDTH = 100
MIN_WIDTH = 60
TIME_CELL = 11  # "  12345.678" + space; wider when a timeline runs past 10^6 ms
MARGIN_CELL = 14  # fits "SYN-RECEIVED?" and "ESTABLISHED*"

BAR = "│"
BREAK_BAR = "┊"
SHAFT = "─"
HEAD_RIGHT = "▶"
HEAD_LEFT = "◀"
LOST = "✗"

# ANSI SGR codes, used only when color=True.
_RESET = "\x1b[0m"
_STYLE: dict[str, str] = {
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
    "red": "\x1b[31m",
    "green": "\x1b[32m",
    "yellow": "\x1b[33m",
    "blue": "\x1b[34m",
    "magenta": "\x1b[35m",
    "cyan": "\x1b[36m",
}
# A colour per state family: opening (yellow), data (green), closing by us
# (cyan), closing by the peer (blue), the 2MSL wait (magenta), nothing (dim).
STATE_STYLE: dict[State, str] = {
    State.CLOSED: "dim",
    State.LISTEN: "yellow",
    State.SYN_SENT: "yellow",
    State.SYN_RECEIVED: "yellow",
    State.ESTABLISHED: "green",
    State.FIN_WAIT_1: "cyan",
    State.FIN_WAIT_2: "cyan",
    State.CLOSING: "cyan",
    State.TIME_WAIT: "magenta",
    State.CLOSE_WAIT: "blue",
    State.LAST_ACK: "blue",
}


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    style: str = ""


_Row = list[_Piece]


@dataclass(frozen=True, slots=True)
class _Layout:
    width: int
    middle: int
    time_cell: int = TIME_CELL

    @classmethod
    def for_width(cls, width: int, longest_time: int = TIME_CELL - 1) -> _Layout:
        width = max(width, MIN_WIDTH)
        time_cell = max(TIME_CELL, longest_time + 1)
        return cls(width, width - time_cell - 2 * MARGIN_CELL - 4, time_cell)


def _fit(text: str, size: int) -> str:
    return text if len(text) <= size else text[: max(size - 1, 0)] + "…"


def _row(
    layout: _Layout,
    time: str = "",
    left: _Piece | None = None,
    middle: list[_Piece] | None = None,
    right: _Piece | None = None,
    bar: str = BAR,
) -> _Row:
    left = left or _Piece("")
    right = right or _Piece("")
    mid = middle or [_Piece(" " * layout.middle)]
    return [
        _Piece(time.rjust(layout.time_cell - 1) + " ", "dim"),
        _Piece(_fit(left.text, MARGIN_CELL).rjust(MARGIN_CELL), left.style),
        _Piece(" " + bar),
        *mid,
        _Piece(bar + " "),
        _Piece(_fit(right.text, MARGIN_CELL).ljust(MARGIN_CELL), right.style),
    ]


def _arrow(layout: _Layout, label: str, rightward: bool, dropped: bool) -> list[_Piece]:
    """The middle cell of a packet row, exactly ``layout.middle`` wide."""
    size = layout.middle
    inner = f" {label} " if label else ""
    if not dropped:
        fill = size - 1 - len(inner)
        before = fill // 2
        after = fill - before
        if rightward:
            body = SHAFT * before + inner + SHAFT * after + HEAD_RIGHT
        else:
            body = HEAD_LEFT + SHAFT * after + inner + SHAFT * before
        return [_Piece(body)]
    # Lost on the wire: the shaft stops a little past the middle, so the
    # eye reads "left the sender, never reached the receiver".
    reach = min(max(size // 2 + 4, len(inner) + 4), size - 2)
    shaft = reach - 1 - len(inner)
    if rightward:
        body = SHAFT * 2 + inner + SHAFT * (shaft - 2) + LOST + " " * (size - reach)
    else:
        body = " " * (size - reach) + LOST + SHAFT * (shaft - 2) + inner + SHAFT * 2
    return [_Piece(body, "red")]


def _beside(layout: _Layout, text: str, side: int | None, style: str = "") -> list[_Piece]:
    """Text inside the middle cell, against the bar of its endpoint."""
    text = _fit(text, layout.middle - 2)
    if side == 1:
        return [_Piece((text + " ").rjust(layout.middle), style)]
    return [_Piece((" " + text).ljust(layout.middle), style)]


def _packet_rows(
    layout: _Layout, cols: Columns, packet: Packet, time: str, relative: bool, tagged: bool
) -> list[_Row]:
    rightward = cols.side(packet.sender) != 1
    tag = connection_tag(packet, cols) if tagged else ""
    label = packet_label(packet, relative=relative, tag=tag)
    rows: list[_Row] = []
    notes: list[str] = []
    # Leave at least four shaft characters so it still reads as an arrow.
    if len(label) + 6 > layout.middle:
        short = packet_label(packet, relative=relative, with_options=False, tag=tag)
        if len(short) + 6 <= layout.middle:
            # The options move to the line under the arrow.
            notes.append(label[len(short) :].strip())
            label = short
        else:
            rows.append(_row(layout, middle=_beside(layout, label, 0 if rightward else 1)))
            label = ""
    style = "red" if "R" in packet.flags else ""
    middle = _arrow(layout, label, rightward, packet.dropped)
    if style and not packet.dropped:
        middle = [_Piece(p.text, style) for p in middle]
    rows.append(_row(layout, time, middle=middle))
    if packet.dropped:
        notes.append("✗ dropped by the wire")
    notes += [f"({a})" for a in packet.annotations]
    side = 0 if rightward else 1
    if notes and len(" ".join(notes)) <= layout.middle - 2:
        rows.append(_row(layout, middle=_beside(layout, " ".join(notes), side, "dim")))
    else:
        for note in notes:
            rows.append(_row(layout, middle=_beside(layout, note, side, "dim")))
    return rows


def _state_rows(
    layout: _Layout, cols: Columns, change: StateChange | Snapshot, time: str
) -> list[_Row]:
    state = change.state if isinstance(change, Snapshot) else change.new
    piece = _Piece(state_text(change), STATE_STYLE[state])
    side = cols.side(change.endpoint)
    detail = snapshot_detail(change) if isinstance(change, Snapshot) else ""
    if side is None:
        text = f"{change.endpoint}: {piece.text} {detail}".rstrip()
        return [_row(layout, time, middle=_beside(layout, text, 0))]
    middle = _beside(layout, f"ss: {detail}", side, "dim") if detail else None
    if side == 0:
        return [_row(layout, time, left=piece, middle=middle)]
    return [_row(layout, time, right=piece, middle=middle)]


def _note_rows(layout: _Layout, cols: Columns, note: Note, time: str) -> list[_Row]:
    side = cols.side(note.endpoint)
    lines = textwrap.wrap(note.text, layout.middle - 4) or [""]
    rows: list[_Row] = []
    for i, line in enumerate(lines):
        prefix = "» " if i == 0 else "  "
        middle = _beside(layout, prefix + line, side, "dim")
        rows.append(_row(layout, time if i == 0 else "", middle=middle))
    return rows


def _header(layout: _Layout, cols: Columns, timeline: Timeline, relative: bool) -> list[_Row]:
    rows: list[_Row] = []
    if timeline.title:
        rows.append([_Piece(_fit(timeline.title, layout.width), "bold")])
    left_bar = layout.time_cell + MARGIN_CELL + 1
    right_bar = left_bar + 1 + layout.middle
    names = (cols.left.name, cols.right.name)
    addresses = (
        _address(cols.left.address, cols.left.port),
        _address(cols.right.address, cols.right.port),
    )
    unit = "ms" if relative else "s"
    for texts, style, corner in ((names, "bold", unit), (addresses, "dim", "")):
        if not any(texts):
            continue
        line = list(corner.rjust(layout.time_cell - 1).ljust(layout.width))
        for text, bar in zip(texts, (left_bar, right_bar), strict=True):
            text = _fit(text, 2 * MARGIN_CELL)
            start = min(max(bar - len(text) // 2, 0), layout.width - len(text))
            line[start : start + len(text)] = text
        rows.append([_Piece("".join(line).rstrip(), style)])
    return rows


def _address(address: str, port: int) -> str:
    if not address:
        return f":{port}" if port else ""
    host = host_text(address)
    return f"{host}:{port}" if port else host


def _ladder_rows(timeline: Timeline, width: int, relative: bool) -> list[_Row]:
    cols = columns(timeline)
    events = visible_events(timeline)
    t0 = start_time(events) if relative else 0.0

    def stamp(time: float) -> str:
        return format_ms(time - t0) if relative else f"{time:.6f}"

    last = stamp(events[-1].time) if events else ""
    layout = _Layout.for_width(width, len(last))
    rows = _header(layout, cols, timeline, relative)
    tagged = several_connections(timeline)
    previous: float | None = None
    for event in events:
        if previous is not None and event.time - previous >= BREAK_GAP:
            gap = _fit(f" {format_gap(event.time - previous)} later ", layout.middle)
            middle = [_Piece(gap.center(layout.middle, "·"), "dim")]
            rows.append(_row(layout, middle=middle, bar=BREAK_BAR))
        previous = event.time
        time = stamp(event.time)
        if isinstance(event, Packet):
            rows += _packet_rows(layout, cols, event, time, relative, tagged)
        elif isinstance(event, StateChange | Snapshot):
            rows += _state_rows(layout, cols, event, time)
        elif isinstance(event, ApiCall):
            side = cols.side(event.actor)
            text = api_text(event) if side is not None else f"{event.actor}: {api_text(event)}"
            style = "red" if event.failed else "bold"
            rows.append(_row(layout, time, middle=_beside(layout, text, side, style)))
        elif isinstance(event, Note):
            rows += _note_rows(layout, cols, event, time)
    sources = {e.source for e in events if isinstance(e, StateChange)}
    if any(isinstance(e, Snapshot) for e in events):
        sources.add(Source.SNAPSHOT)
    legend = [
        f"NAME{SOURCE_MARK[s]} = {SOURCE_LEGEND[s]}"
        for s in (Source.KERNEL, Source.MODEL, Source.SNAPSHOT, Source.INFERRED)
        if s in sources
    ]
    if legend:
        rows.append([_Piece(_fit("states: " + "; ".join(legend), layout.width), "dim")])
    return rows


def _plain(row: _Row) -> str:
    return "".join(p.text for p in row).rstrip()


def _ansi(row: _Row) -> str:
    out: list[str] = []
    for piece in row:
        code = _STYLE.get(piece.style, "")
        core = piece.text.strip()
        if not code or not core:
            out.append(piece.text)
            continue
        # Style only the visible text so padding stays plain and rstrip works.
        lead = piece.text[: len(piece.text) - len(piece.text.lstrip())]
        trail = piece.text[len(lead) + len(core) :]
        out.append(f"{lead}{code}{core}{_RESET}{trail}")
    return "".join(out).rstrip()


def render_ladder(
    timeline: Timeline, *, width: int | None = None, relative: bool = True, color: bool = False
) -> str:
    """The ladder as text, ``width`` columns (default 100, at least 60).

    ``relative``: times in ms since the first event and relative seq/ack
    (Wireshark's); otherwise the timeline's own clock in seconds and the raw
    32-bit numbers.  ``color`` adds ANSI escapes.
    """
    rows = _ladder_rows(timeline, width or DEFAULT_WIDTH, relative)
    join = _ansi if color else _plain
    return "\n".join(join(row) for row in rows) + "\n"


def render_ladder_rich(
    timeline: Timeline, *, width: int | None = None, relative: bool = True
) -> Text:
    """The coloured ladder as a ``rich.text.Text`` for ``Console.print``."""
    from rich.text import Text

    return Text.from_ansi(render_ladder(timeline, width=width, relative=relative, color=True))


__all__ = ["DEFAULT_WIDTH", "render_ladder", "render_ladder_rich"]
