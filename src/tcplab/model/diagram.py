"""The TCP state diagram as Graphviz DOT, drawn from ``TRANSITIONS``.

Every edge is one row of the table, labelled ``event / sends`` (the
trigger, its guard, what is sent); counterfactual edges are dashed.
``highlight`` takes the state changes of a run (a ``Timeline``) and marks
the states visited and exactly the edges taken (``taken_edges``).

Two layouts.  ``two-column`` (the default) is the picture a textbook draws
(Stevens, TCP/IP Illustrated vol. 1, figure 18.12; the seed notes ask for
it): CLOSED at the top, the active opener's and closer's states in the
left column, the passive side's in the right, ESTABLISHED between them,
and CLOSED again at the bottom where the closing paths end.  The normal
paths (client: connect, close first; server: listen, close second) are
bold.  The edges that end a connection abnormally (RST, abort, timers
giving up, close() with unread data, a full accept queue) would run
dozens of crossing curves into CLOSED, so they are listed in a legend
instead, unless ``all_edges`` asks for them or a highlighted run took
one.  ``rfc`` lets Graphviz place every edge freely, like RFC 9293
Figure 5.  Pure text out; running ``dot`` is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tcplab.model.table import TRANSITIONS, Transition, Trigger, TriggerKind, states_in_table
from tcplab.states import State
from tcplab.timeline import ApiCall, Packet, Source, StateChange, Timeline

LAYOUTS = ("two-column", "rfc")

# The textbook's rows, top to bottom: (left = active side, middle, right = passive side).
ROWS: tuple[tuple[State | None, State | None, State | None], ...] = (
    (None, State.CLOSED, None),
    (None, None, State.LISTEN),
    (State.SYN_SENT, None, State.SYN_RECEIVED),
    (None, State.ESTABLISHED, None),
    (State.FIN_WAIT_1, None, State.CLOSE_WAIT),
    (State.FIN_WAIT_2, State.CLOSING, State.LAST_ACK),
    (State.TIME_WAIT, None, None),
)
ACTIVE = (State.SYN_SENT, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING, State.TIME_WAIT)
PASSIVE = (State.LISTEN, State.SYN_RECEIVED, State.CLOSE_WAIT, State.LAST_ACK)
# CLOSED is drawn twice: where connections start and where they end.
CLOSED_TOP = "CLOSED"
CLOSED_BOTTOM = "CLOSED_END"
_OPENING = (State.LISTEN, State.SYN_SENT, State.SYN_RECEIVED)

# The normal paths: the client opens and closes first, the server listens and closes second.
NORMAL: tuple[tuple[State, Trigger, State], ...] = (
    (State.CLOSED, Trigger.CONNECT, State.SYN_SENT),
    (State.CLOSED, Trigger.LISTEN, State.LISTEN),
    (State.LISTEN, Trigger.RCV_SYN, State.SYN_RECEIVED),
    (State.SYN_SENT, Trigger.RCV_SYN_ACK, State.ESTABLISHED),
    (State.SYN_RECEIVED, Trigger.RCV_ACK_OF_SYN, State.ESTABLISHED),
    (State.ESTABLISHED, Trigger.CLOSE, State.FIN_WAIT_1),
    (State.ESTABLISHED, Trigger.RCV_FIN, State.CLOSE_WAIT),
    (State.FIN_WAIT_1, Trigger.RCV_ACK_OF_FIN, State.FIN_WAIT_2),
    (State.FIN_WAIT_2, Trigger.RCV_FIN, State.TIME_WAIT),
    (State.TIME_WAIT, Trigger.TIMEOUT_2MSL, State.CLOSED),
    (State.CLOSE_WAIT, Trigger.CLOSE, State.LAST_ACK),
    (State.LAST_ACK, Trigger.RCV_ACK_OF_FIN, State.CLOSED),
)
# Triggers and guards whose edges go to the legend in the two-column picture.
_ABNORMAL_TRIGGERS = frozenset({
    Trigger.RCV_RST, Trigger.ABORT, Trigger.RETRIES_EXHAUSTED, Trigger.KEEPALIVE_EXHAUSTED,
    Trigger.TIMEOUT_FIN_WAIT_2, Trigger.RCV_DATA_AFTER_CLOSE,
})  # fmt: skip
_ABNORMAL_GUARDS = frozenset({"unread_data", "accept_queue_full", "syn_is_newer"})
# Extensions to the classic picture (RFC 7413 Fast Open): listed, not drawn.
_EXTENSION_RFCS = ("RFC 7413",)


def is_normal(edge: Transition) -> bool:
    return (edge.state, edge.trigger, edge.next) in NORMAL and not is_abnormal(edge)


def is_abnormal(edge: Transition) -> bool:
    """An edge the two-column picture lists in its legend (``--all-edges`` draws it):
    the abnormal endings, the counterfactuals and the extensions (Fast Open)."""
    return (edge.trigger in _ABNORMAL_TRIGGERS or edge.guard in _ABNORMAL_GUARDS
            or edge.counterfactual or any(r in edge.rfc for r in _EXTENSION_RFCS))  # fmt: skip


def _node_id(state: State) -> str:
    return state.name


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- which edge did a run take? -------------------------------------------------------

# The wire stamps a segment before the receiving kernel handles it, and a call
# starts before the state change it causes: one clock, so only the
# tracepoint's own granularity is allowed.
_EPS = 5e-5
_LOOKBACK = 5.0  # s: how far back a received segment or a call may explain a change
_API_TRIGGER = {
    "close": Trigger.CLOSE, "abort": Trigger.ABORT, "connect": Trigger.CONNECT,
    "listen": Trigger.LISTEN, "kill": Trigger.CLOSE,
}  # fmt: skip


def _segment_fits(trigger: Trigger, packet: Packet) -> bool:
    flags = set(packet.flags)
    if trigger is Trigger.RCV_RST:
        return "R" in flags
    if "R" in flags:
        return False
    if trigger is Trigger.RCV_SYN:
        return "S" in flags and "." not in flags
    if trigger is Trigger.RCV_SYN_ACK:
        return "S" in flags and "." in flags
    if trigger in (Trigger.RCV_ACK_OF_SYN, Trigger.RCV_ACK_OF_FIN):
        return "." in flags and "S" not in flags
    if trigger is Trigger.RCV_FIN:
        return "F" in flags
    if trigger is Trigger.RCV_DATA_AFTER_CLOSE:
        return packet.length > 0
    return False


def _api_fits(trigger: Trigger, call: ApiCall) -> bool:
    if call.call == "sendto" and "MSG_FASTOPEN" in " ".join(call.args):
        return trigger.name == "CONNECT_FASTOPEN"
    if call.call == "shutdown":
        how = " ".join(call.args)
        return trigger is Trigger.SHUTDOWN_WR and ("SHUT_WR" in how or "SHUT_RDWR" in how)
    return _API_TRIGGER.get(call.call) is trigger


def _explained_at(edge: Transition, change: StateChange, timeline: Timeline) -> float | None:
    """When the latest event that could fire ``edge`` for this change happened, or None."""
    t = change.time
    trigger = edge.trigger
    if trigger.kind is TriggerKind.SEGMENT:
        times = [p.arrival for p in timeline.packets()
                 if p.receiver == change.endpoint and not p.dropped
                 and t - _LOOKBACK <= p.arrival <= t + _EPS and _segment_fits(trigger, p)]
        return max(times, default=None)
    if trigger.kind is TriggerKind.API:
        times = [c.started if c.started is not None else c.time
                 for c in timeline.api_calls(change.endpoint)
                 if _api_fits(trigger, c)
                 and t - _LOOKBACK <= (c.started if c.started is not None else c.time) <= t + _EPS]
        return max(times, default=None)
    return None


def _timer_fits(edge: Transition, change: StateChange, timeline: Timeline) -> bool:
    """Between timers: keepalive gives up on an idle connection, retransmission on data."""
    if edge.trigger not in (Trigger.KEEPALIVE_EXHAUSTED, Trigger.RETRIES_EXHAUSTED):
        return True
    sent = [p for p in timeline.packets() if p.sender == change.endpoint and p.time <= change.time]
    busy = bool(sent) and (sent[-1].length > 0 or bool(set(sent[-1].flags) & {"S", "F"}))
    return busy == (edge.trigger is Trigger.RETRIES_EXHAUSTED)


def edge_taken(change: StateChange, timeline: Timeline | None = None) -> Transition | None:
    """The table edge a state change took, or None when the table has none.

    A change that names its cause (the model's and the analyzer's do:
    ``rcv FIN``, ``close()``) takes the edge with that trigger.  The kernel's
    tracepoint says only old and new state, so the run tells which: the
    latest segment the endpoint received or call it made that fits an edge
    between the two states; a timer when neither explains it.
    """
    if change.old is None:
        return None
    between = [e for e in TRANSITIONS if e.state is change.old and e.next is change.new]
    if not between:
        return None
    named = [e for e in between if change.cause.startswith(e.trigger.value)]
    if named:
        return next((e for e in named if not e.counterfactual), named[0])
    real = [e for e in between if not e.counterfactual]
    between = real or between
    if "new SYN" in change.cause:
        syn = [e for e in between if e.trigger is Trigger.RCV_SYN]
        if syn:
            return syn[0]
    if len(between) == 1 or timeline is None:
        return between[0]
    scored = [(at, e) for e in between if (at := _explained_at(e, change, timeline)) is not None]
    if scored:
        latest = max(at for at, _ in scored)
        best = [e for at, e in scored if at == latest]
        # A segment and a call at one instant: the RST decides over the data it rides with.
        best.sort(key=lambda e: (e.trigger is not Trigger.RCV_RST, e.guard is not None))
        return best[0]
    timers = [e for e in between if e.trigger.kind is TriggerKind.TIMER]
    fitting = [e for e in timers if _timer_fits(e, change, timeline)]
    return (fitting or timers or between)[0]


def primary_changes(changes: Sequence[StateChange]) -> list[StateChange]:
    """The reports a run's path is read from: the kernel's (or the model's) and the
    snapshot hand-offs; the analyzer's inference only when there are none."""
    main = [c for c in changes if c.source is not Source.INFERRED]
    return main or list(changes)


def taken_edges(
    changes: Iterable[StateChange], timeline: Timeline | None = None
) -> tuple[set[State], set[Transition]]:
    """The states and table edges a run's state changes went through: one edge per
    change (``edge_taken``), read from the primary reports only."""
    states: set[State] = set()
    edges: set[Transition] = set()
    for change in primary_changes(list(changes)):
        states.add(change.new)
        if change.old is None:
            continue
        states.add(change.old)
        edge = edge_taken(change, timeline)
        if edge is not None:
            edges.add(edge)
    return states, edges


# -- drawing ---------------------------------------------------------------------------


def render_dot(
    *,
    layout: str = "two-column",
    highlight: Iterable[StateChange] = (),
    timeline: Timeline | None = None,
    all_edges: bool = False,
    title: str = "TCP connection states (RFC 9293), from tcplab.model.table",
) -> str:
    """The diagram as DOT.  ``highlight``: a run's state changes (``timeline``, the
    run itself, tells the kernel's changes apart); ``all_edges``: draw the abort,
    RST and timeout edges instead of listing them (two-column layout)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} (known: {', '.join(LAYOUTS)})")
    visited, taken = taken_edges(highlight, timeline)
    if layout == "rfc":
        return _rfc(visited, taken, title)
    return _two_column(visited, taken, all_edges, title)


def _edge_attrs(edge: Transition, taken: set[Transition], label: str) -> list[str]:
    attrs = [f"label={_quote(label)}", f"tooltip={_quote(edge.label + ' — ' + edge.rfc)}"]
    if edge.counterfactual:
        attrs.append('style=dashed, color="gray50", fontcolor="gray50"')
    if edge in taken:
        attrs.append('color="red", fontcolor="red", penwidth=2.5')
    return attrs


def _rfc(visited: set[State], taken: set[Transition], title: str) -> str:
    lines = [
        "digraph tcp_states {",
        f"  label={_quote(title)}; labelloc=t; fontname=Helvetica;",
        "  node [shape=box, style=rounded, fontname=Helvetica];",
        "  edge [fontname=Helvetica, fontsize=9];",
    ]
    for state in states_in_table():
        style = _node_style(state, visited)
        lines.append(f"  {_node_id(state)} [label={_quote(state.value)}{style}];")
    for edge in TRANSITIONS:
        # Two label lines: "trigger [guard] / action" and the RFC section (DOT's \n).
        attrs = _edge_attrs(edge, taken, "")
        attrs[0] = f"label={_quote(edge.label)[:-1]}\\n{_quote(edge.rfc)[1:]}"
        lines.append(f"  {_node_id(edge.state)} -> {_node_id(edge.next)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_style(state: State, visited: set[State]) -> str:
    if state in visited:
        return ', style="rounded,filled", fillcolor="#ffd6d6", color="red", penwidth=2'
    return ""


def _endpoints(edge: Transition) -> tuple[str, str]:
    """Node ids: CLOSED is the top node as a source and for an opening state
    giving up; a connection that ends goes to the bottom CLOSED."""
    src = CLOSED_TOP if edge.state is State.CLOSED else _node_id(edge.state)
    if edge.next is State.CLOSED:
        dst = CLOSED_TOP if edge.state in _OPENING else CLOSED_BOTTOM
    else:
        dst = _node_id(edge.next)
    return src, dst


def drawn_edges(all_edges: bool = False,
                taken: set[Transition] | None = None) -> list[Transition]:  # fmt: skip
    """The table edges the two-column picture draws (the rest are in its legend)."""
    taken = taken or set()
    return [e for e in TRANSITIONS if all_edges or not is_abnormal(e) or e in taken]


def _two_column(visited: set[State], taken: set[Transition], all_edges: bool,
                title: str) -> str:  # fmt: skip
    lines = [
        "digraph tcp_states {",
        f"  label={_quote(title)}; labelloc=t; fontname=Helvetica; fontsize=16;",
        "  rankdir=TB; newrank=true; nodesep=0.9; ranksep=0.55; splines=true;",
        '  node [shape=box, style=rounded, fontname=Helvetica, width=1.6, height=0.45];',
        "  edge [fontname=Helvetica, fontsize=10];",
    ]

    def node(ident: str, state: State, extra: str = "") -> str:
        return f"  {ident} [label={_quote(state.value)}{_node_style(state, visited)}{extra}];"

    # Rows top to bottom, each left to right; no clusters (they let dot swap the
    # columns).  A column of invisible spacers keeps the sides apart.
    ranks: list[list[str]] = []
    for r, (left, middle, right) in enumerate(ROWS):
        row: list[str] = []
        for col, state in enumerate((left, middle, right)):
            if state is None:
                ident = f"gap{r}_{col}"
                lines.append(f'  {ident} [label="", style=invis, width=1.6];')
            elif state is State.CLOSED:
                ident = CLOSED_TOP
                lines.append(node(ident, state, ", group=mid"))
            else:
                ident = _node_id(state)
                group = ("left", "mid", "right")[col]
                lines.append(node(ident, state, f", group={group}"))
            row.append(ident)
        ranks.append(row)
    bottom_style = _node_style(State.CLOSED, visited)
    lines.append(f'  {CLOSED_BOTTOM} [label="CLOSED"{bottom_style}, group=mid];')
    lines.append('  gapb_0 [label="", style=invis, width=1.6]; gapb_2 [label="", style=invis,'
                 " width=1.6];")  # fmt: skip
    ranks.append(["gapb_0", CLOSED_BOTTOM, "gapb_2"])
    for row in ranks:
        lines.append(f"  {{ rank=same; {' -> '.join(row)} [style=invis, weight=50]; }}")
    for col in range(3):
        chain = [row[col] for row in ranks]
        lines.append(f"  {' -> '.join(chain)} [style=invis, weight=50];")
    lines.append('  side_a [shape=plaintext, label="active side\n(the client: connect(),'
                 ' closes first)", fontcolor="gray30"];')  # fmt: skip
    lines.append('  side_p [shape=plaintext, label="passive side\n(the server: listen(),'
                 ' closes second)", fontcolor="gray30"];')  # fmt: skip
    lines.append(f"  {{ rank=same; side_a -> {ranks[0][0]} [style=invis]; }}")
    lines.append(f"  {{ rank=same; {ranks[0][2]} -> side_p [style=invis]; }}")
    for edge in drawn_edges(all_edges, taken):
        src, dst = _endpoints(edge)
        label = edge.label
        attrs = _edge_attrs(edge, taken, label)
        if is_normal(edge):
            attrs.append("penwidth=2.4, weight=8")
        else:
            attrs.append("weight=1")
        if is_abnormal(edge) and edge not in taken:
            attrs.append('color="gray45", fontcolor="gray35"')
        if dst == CLOSED_TOP and src != CLOSED_TOP:
            attrs.append("constraint=false")
        lines.append(f"  {src} -> {dst} [{', '.join(attrs)}];")
    if not all_edges:
        lines.append(_legend(taken))
        lines.append(f"  {CLOSED_BOTTOM} -> legend [style=invis];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def legend_rows(taken: set[Transition] | None = None) -> list[tuple[str, str, str]]:
    """The collapsed edges as (event, from states, to): one row per event."""
    taken = taken or set()
    rows: dict[tuple[str, str], list[str]] = {}
    for edge in TRANSITIONS:
        if not is_abnormal(edge) or edge in taken:
            continue
        key = (edge.label, edge.next.value)
        rows.setdefault(key, []).append(edge.state.value)
    return [(label, ", ".join(states), to) for (label, to), states in rows.items()]


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _legend(taken: set[Transition]) -> str:
    cells = ['<TR><TD COLSPAN="3" ALIGN="LEFT"><B>Also in the table, not drawn'
             " (tcplab states --all-edges draws them)</B></TD></TR>",
             '<TR><TD ALIGN="LEFT"><I>event / sends</I></TD><TD ALIGN="LEFT"><I>from</I></TD>'
             '<TD ALIGN="LEFT"><I>to</I></TD></TR>']  # fmt: skip
    for label, states, to in legend_rows(taken):
        cells.append(f'<TR><TD ALIGN="LEFT">{_html(label)}</TD>'
                     f'<TD ALIGN="LEFT">{_html(states)}</TD>'
                     f'<TD ALIGN="LEFT">{to}</TD></TR>')
    table = "".join(cells)
    return ("  legend [shape=plaintext, fontsize=9, label=<<TABLE BORDER=\"0\" CELLBORDER=\"0\""
            f' CELLSPACING="0" CELLPADDING="2">{table}</TABLE>>];')
