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

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tcplab.render._common import (
    BREAK_GAP,
    SOURCE_LEGEND,
    SOURCE_MARK,
    WIRE_ACTOR,
    Arrival,
    Columns,
    RunSummary,
    api_call_text,
    api_result_text,
    api_text,
    arrives_later,
    columns,
    connection_tag,
    format_gap,
    format_ms,
    packet_label,
    several_connections,
    start_time,
)
from tcplab.render.i18n import tr
from tcplab.render.lanes import Badge, SnapshotDetail, ladder_items
from tcplab.render.wrap import display_width, join_lines, pad, wrap
from tcplab.states import State
from tcplab.timeline import ApiCall, Note, Packet, Source, Timeline
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
HELD = "╌"  # a segment the wire held: dashed from its send to its delivery

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
    lang: str = "en"

    @classmethod
    def for_width(cls, width: int, longest_time: int = TIME_CELL - 1,
                  lang: str = "en") -> _Layout:  # fmt: skip
        width = max(width, MIN_WIDTH)
        time_cell = max(TIME_CELL, longest_time + 1)
        return cls(width, width - time_cell - 2 * MARGIN_CELL - 4, time_cell, lang)

    def t(self, text: str) -> str:
        """``text`` in the ladder's language."""
        return tr(text, self.lang)


def _fit(text: str, size: int) -> str:
    """Only for cells that hold one short token (a state name, a time)."""
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


def _arrow(layout: _Layout, label: str, rightward: bool, dropped: bool,
           part: str = "whole") -> list[_Piece]:  # fmt: skip
    """The middle cell of a packet row, exactly ``layout.middle`` wide.

    ``part``: ``whole`` (sender to receiver), ``leaves`` (a held segment
    leaving: the shaft turns dashed and has no head) or ``arrives`` (the held
    segment reaching the receiver, dashed up to the head).
    """
    size = layout.middle
    inner = f" {label} " if label else ""
    if part != "whole":
        fill = size - 1 - display_width(inner)
        before = fill // 2
        after = fill - before
        if part == "leaves":
            body = SHAFT * before + inner + HELD * after + HELD
            if not rightward:
                body = HELD + HELD * after + inner + SHAFT * before
        else:
            body = HELD * before + inner + HELD * after + HEAD_RIGHT
            if not rightward:
                body = HEAD_LEFT + HELD * after + inner + HELD * before
        return [_Piece(body, "yellow")]
    if not dropped:
        fill = size - 1 - display_width(inner)
        before = fill // 2
        after = fill - before
        if rightward:
            body = SHAFT * before + inner + SHAFT * after + HEAD_RIGHT
        else:
            body = HEAD_LEFT + SHAFT * after + inner + SHAFT * before
        return [_Piece(body)]
    # Lost on the wire: the shaft stops a little past the middle, so the
    # eye reads "left the sender, never reached the receiver".
    reach = min(max(size // 2 + 4, display_width(inner) + 4), size - 2)
    shaft = reach - 1 - display_width(inner)
    if rightward:
        body = SHAFT * 2 + inner + SHAFT * (shaft - 2) + LOST + " " * (size - reach)
    else:
        body = " " * (size - reach) + LOST + SHAFT * (shaft - 2) + inner + SHAFT * 2
    return [_Piece(body, "red")]


def _beside(layout: _Layout, text: str, side: int | None, style: str = "") -> list[_Piece]:
    """One line inside the middle cell, against the bar of its endpoint (centred
    for neither).  The caller wraps: a line wider than the cell is cut."""
    room = layout.middle - 2
    if display_width(text) > room:
        text = wrap(text, room)[0]
    if side == 1:
        return [_Piece(pad(text + " ", layout.middle, ">"), style)]
    if side is None:
        return [_Piece(pad(text, layout.middle, "^"), style)]
    return [_Piece(pad(" " + text, layout.middle), style)]


def _block(lines: list[str]) -> list[str]:
    """Lines padded to the widest, so a block against the right bar stays left-aligned."""
    size = max(display_width(line) for line in lines)
    return [pad(line, size) for line in lines]


def _text_rows(layout: _Layout, text: str, side: int | None, style: str = "",
               time: str = "", indent: str = "") -> list[_Row]:  # fmt: skip
    """``text`` wrapped by words inside the middle cell against ``side``'s bar;
    continuation lines indented by ``indent``.  Nothing is cut."""
    room = layout.middle - 2
    lines = wrap(text, room)
    if lines[1:]:
        lines = [lines[0]] + [indent + line for line in
                              wrap(join_lines(lines[1:]), room - len(indent))]  # fmt: skip
    rows: list[_Row] = []
    for i, line in enumerate(_block(lines)):
        rows.append(_row(layout, time if i == 0 else "", middle=_beside(layout, line, side, style)))
    return rows


def _packet_rows(layout: _Layout, cols: Columns, packet: Packet, time: str, relative: bool,
                 tagged: bool, part: str = "whole", seq_note: str = "") -> list[_Row]:  # fmt: skip
    rightward = cols.side(packet.sender) != 1
    side = 0 if rightward else 1
    tag = connection_tag(packet, cols) if tagged else ""
    label = packet_label(packet, relative=relative, tag=tag)
    rows: list[_Row] = []
    notes: list[str] = []
    if part == "arrives":
        label = layout.t(f"{packet.label(relative).split(' len')[0]} arrives")
    # Leave at least four shaft characters so it still reads as an arrow.
    if display_width(label) + 6 > layout.middle:
        short = packet_label(packet, relative=relative, with_options=False, tag=tag)
        if part == "whole" and display_width(short) + 6 <= layout.middle:
            # The options move to the line under the arrow.
            notes.append(label[len(short) :].strip())
            label = short
        else:
            # The label goes whole above the arrow, wrapped by words.
            rows += _text_rows(layout, label, side, indent="  ")
            label = ""
    style = "red" if "R" in packet.flags else ""
    middle = _arrow(layout, label, rightward, packet.dropped, part)
    if style and not packet.dropped:
        middle = [_Piece(p.text, style) for p in middle]
    rows.append(_row(layout, time, middle=middle))
    if part == "arrives":
        return rows
    said = any(a.startswith("the wire drops") for a in packet.annotations)
    if packet.dropped and not said:
        notes.append("✗ dropped by the wire")
    notes += [f"✗ {a}" if said and a.startswith("the wire drops") else f"({a})"
              for a in packet.annotations]
    if part == "leaves" and packet.delivered is not None and not packet.annotations:
        notes.append(f"(arrives {format_gap(packet.delivered - packet.time)} later)")
    if seq_note:
        notes.append(seq_note)
    notes = [layout.t(note.strip("()")) if note.startswith("(") and note.endswith(")")
             and layout.lang == "zh" and not note.startswith("(arrives")
             else layout.t(note) for note in notes]
    if notes and display_width(" ".join(notes)) <= layout.middle - 2:
        rows.append(_row(layout, middle=_beside(layout, " ".join(notes), side, "dim")))
    else:
        for note in notes:
            rows += _text_rows(layout, note, side, "dim", indent="  ")
    return rows


def _badge_text(badge: Badge) -> str:
    return f"{badge.state.value}{SOURCE_MARK[badge.source]}"


def _badge_rows(layout: _Layout, cols: Columns, badge: Badge, time: str) -> list[_Row]:
    side = cols.side(badge.endpoint)
    piece = _Piece(_badge_text(badge), STATE_STYLE[badge.state])
    if side is None:
        return _text_rows(layout, f"{badge.endpoint}: {piece.text} {badge.detail}".rstrip(), 0,
                          time=time)  # fmt: skip
    if badge.aside:
        if badge.disagrees:
            said = layout.t(SOURCE_LEGEND[badge.source])
            text = f"{said} says {badge.state.value}"
            if badge.primary_state is not None:
                text += f"; the lane shows {badge.primary_state.value}"
        else:
            text = f"listener {badge.state.value}"
        return _text_rows(layout, layout.t(text), side, "dim", time=time, indent="  ")
    detail = f"ss: {badge.detail}" if badge.detail else ""
    if badge.listener and detail:
        detail = f"ss listener: {badge.detail}"
    middle = _beside(layout, layout.t(detail), side, "dim") if detail else None
    if side == 0:
        return [_row(layout, time, left=piece, middle=middle)]
    return [_row(layout, time, right=piece, middle=middle)]


def _detail_rows(layout: _Layout, cols: Columns, item: SnapshotDetail, time: str) -> list[_Row]:
    side = cols.side(item.endpoint)
    who = "ss listener" if item.listener else "ss"
    return _text_rows(layout, layout.t(f"{who}: {item.detail}"), side, "dim", time=time,
                      indent="  ")


def _note_rows(layout: _Layout, cols: Columns, note: Note, time: str) -> list[_Row]:
    side = cols.side(note.endpoint)
    lines = _block([("» " if i == 0 else "  ") + line
                    for i, line in enumerate(wrap(layout.t(note.text), layout.middle - 4))])
    rows: list[_Row] = []
    for i, line in enumerate(lines):
        middle = _beside(layout, line, side, "dim")
        rows.append(_row(layout, time if i == 0 else "", middle=middle))
    return rows


def _api_rows(layout: _Layout, cols: Columns, call: ApiCall, time: str) -> list[_Row]:
    """A call against its caller's bar; a result that does not fit goes on the
    line under the call, on the same side, never cut."""
    style = "red" if call.failed else "bold"
    if call.actor == WIRE_ACTOR:
        return _text_rows(layout, f"⚡ {layout.t(api_text(call))}", None, "magenta", time=time)
    side = cols.side(call.actor)
    head = layout.t(api_call_text(call))
    head = head if side is not None else f"{call.actor}: {head}"
    result = api_result_text(call)
    room = layout.middle - 2
    whole = f"{head} {result}".rstrip()
    if display_width(whole) <= room:
        return [_row(layout, time, middle=_beside(layout, whole, side, style))]
    # The call wrapped by words, the result on the lines under it, indented:
    # one block against the caller's bar, nothing cut.
    lines = wrap(head, room)
    if lines[1:]:
        lines = [lines[0]] + ["  " + line for line in wrap(join_lines(lines[1:]), room - 2)]
    calls = len(lines)
    lines = _block(lines)
    if result:
        # Indented under the call on the left; hugging the bar on the right.
        lines += [("  " + line) if side != 1 else line for line in wrap(result, room - 2)]
    rows: list[_Row] = []
    for i, line in enumerate(lines):
        piece_style = "bold" if i < calls else style
        rows.append(_row(layout, time if i == 0 else "",
                         middle=_beside(layout, line, side, piece_style)))  # fmt: skip
    return rows


def _header(layout: _Layout, cols: Columns, timeline: Timeline, relative: bool) -> list[_Row]:
    rows: list[_Row] = []
    if timeline.title:
        rows += [[_Piece(line, "bold")] for line in wrap(timeline.title, layout.width)]
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


def _ladder_rows(timeline: Timeline, width: int, relative: bool, explain_seq: bool,
                 collapse: bool, lang: str = "en") -> list[_Row]:  # fmt: skip
    cols = columns(timeline)
    ladder = ladder_items(timeline, collapse=collapse, explain_seq=explain_seq)
    items, seq_notes = ladder.items, ladder.seq_notes
    t0 = start_time(ladder.events) if relative else 0.0

    def stamp(time: float) -> str:
        return format_ms(time - t0) if relative else f"{time:.6f}"

    last = stamp(max((i.time for i in items), default=0.0)) if items else ""
    layout = _Layout.for_width(width, len(last), lang)
    rows = _header(layout, cols, timeline, relative)
    tagged = several_connections(timeline)
    previous: float | None = None
    for item in items:
        if previous is not None and item.time - previous >= BREAK_GAP:
            gap = _fit(layout.t(f" {format_gap(item.time - previous)} later "), layout.middle)
            middle = [_Piece(gap.center(layout.middle, "·"), "dim")]
            rows.append(_row(layout, middle=middle, bar=BREAK_BAR))
        previous = item.end if isinstance(item, RunSummary) else item.time
        time = stamp(item.time)
        if isinstance(item, Packet):
            part = "leaves" if arrives_later(item, items) else "whole"
            rows += _packet_rows(layout, cols, item, time, relative, tagged, part,
                                 layout.t(seq_notes.get(id(item), "")))  # fmt: skip
        elif isinstance(item, Arrival):
            rows += _packet_rows(layout, cols, item.packet, time, relative, tagged, "arrives")
        elif isinstance(item, Badge):
            rows += _badge_rows(layout, cols, item, time)
        elif isinstance(item, SnapshotDetail):
            rows += _detail_rows(layout, cols, item, time)
        elif isinstance(item, ApiCall):
            rows += _api_rows(layout, cols, item, time)
        elif isinstance(item, Note):
            rows += _note_rows(layout, cols, item, time)
        elif isinstance(item, RunSummary):
            rows += _text_rows(layout, layout.t(item.text()), None, "dim", time=time)
            rows.append(_row(layout, stamp(item.end), middle=_beside(layout, "", None)))
    sources = {i.source for i in items if isinstance(i, Badge)}
    legend = [
        f"NAME{SOURCE_MARK[s]} = {SOURCE_LEGEND[s]}"
        for s in (Source.KERNEL, Source.MODEL, Source.SNAPSHOT, Source.INFERRED)
        if s in sources
    ]
    if legend:
        text = layout.t("states: " + "; ".join(legend))
        rows += [[_Piece(line, "dim")] for line in wrap(text, layout.width)]
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
    timeline: Timeline, *, width: int | None = None, relative: bool = True, color: bool = False,
    explain_seq: bool = False, collapse: bool = True, lang: str = "en",
) -> str:
    """The ladder as text, ``width`` columns (default 100, at least 60).

    ``relative``: times in ms since the first event and relative seq/ack
    (Wireshark's); otherwise the timeline's own clock in seconds and the raw
    32-bit numbers.  ``color`` adds ANSI escapes.  ``explain_seq``: under
    each segment, the arithmetic of its numbers (``ack 13 = 1 + 12``).
    ``collapse``: long runs of like data segments become one summary row.
    ``lang``: ``zh`` says the notes, the wire's doings and the legend in
    Chinese (``tcplab.render.i18n``); names, numbers and calls stay as they are.
    """
    rows = _ladder_rows(timeline, width or DEFAULT_WIDTH, relative, explain_seq, collapse, lang)
    join = _ansi if color else _plain
    return "\n".join(join(row) for row in rows) + "\n"


def render_ladder_rich(
    timeline: Timeline, *, width: int | None = None, relative: bool = True,
    explain_seq: bool = False, collapse: bool = True, lang: str = "en",
) -> Text:
    """The coloured ladder as a ``rich.text.Text`` for ``Console.print``."""
    from rich.text import Text

    return Text.from_ansi(render_ladder(timeline, width=width, relative=relative, color=True,
                                        explain_seq=explain_seq, collapse=collapse, lang=lang))


__all__ = ["DEFAULT_WIDTH", "render_ladder", "render_ladder_rich"]
