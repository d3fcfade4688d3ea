"""The TCP state diagram as Graphviz DOT, drawn from ``TRANSITIONS``.

Every edge is one row of the table, labelled ``trigger [guard] / action``
and its RFC section; counterfactual edges are dashed.  ``highlight`` takes
the state changes of a run (a ``Timeline``) and marks the states visited
and the edges taken.  Two layouts: ``rfc`` (Graphviz places the nodes,
like RFC 9293 Figure 5) and ``two-column`` (the active opener's / closer's
path on the left, the passive side's on the right, as the seed notes asked).
Pure text out; running ``dot`` is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Iterable

from tcplab.model.table import TRANSITIONS, Transition, states_in_table
from tcplab.states import State
from tcplab.timeline import StateChange

LAYOUTS = ("rfc", "two-column")

# The two columns: (left, right) per row; None leaves the cell empty.
_ROWS: tuple[tuple[State | None, State | None], ...] = (
    (State.CLOSED, State.LISTEN),
    (State.SYN_SENT, State.SYN_RECEIVED),
    (State.ESTABLISHED, None),
    (State.FIN_WAIT_1, State.CLOSE_WAIT),
    (State.FIN_WAIT_2, State.LAST_ACK),
    (State.CLOSING, None),
    (State.TIME_WAIT, None),
)


def _node_id(state: State) -> str:
    return state.name


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def taken_edges(changes: Iterable[StateChange]) -> tuple[set[State], set[Transition]]:
    """The states and table edges a run's state changes went through.

    A change names its cause (``rcv FIN``...); the edge with that trigger is
    marked, or every edge between the two states when the cause is not one.
    """
    states: set[State] = set()
    edges: set[Transition] = set()
    for change in changes:
        states.add(change.new)
        if change.old is None:
            continue
        states.add(change.old)
        between = [e for e in TRANSITIONS if e.state is change.old and e.next is change.new]
        named = [e for e in between if change.cause.startswith(e.trigger.value)]
        edges.update(named or between)
    return states, edges


def render_dot(
    *,
    layout: str = "rfc",
    highlight: Iterable[StateChange] = (),
    title: str = "TCP connection states (RFC 9293), from tcplab.model.table",
) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} (known: {', '.join(LAYOUTS)})")
    visited, taken = taken_edges(highlight)
    lines = [
        "digraph tcp_states {",
        f"  label={_quote(title)}; labelloc=t; fontname=Helvetica;",
        "  node [shape=box, style=rounded, fontname=Helvetica];",
        "  edge [fontname=Helvetica, fontsize=9];",
    ]
    if layout == "two-column":
        lines.extend(_two_column_nodes(visited))
    else:
        for state in states_in_table():
            style = _node_style(state, visited)
            lines.append(f"  {_node_id(state)} [label={_quote(state.value)}{style}];")
    for edge in TRANSITIONS:
        # Two label lines: "trigger [guard] / action" and the RFC section (DOT's \n).
        attrs = [f"label={_quote(edge.label)[:-1]}\\n{_quote(edge.rfc)[1:]}"]
        if edge.counterfactual:
            attrs.append('style=dashed, color="gray50", fontcolor="gray50"')
        if edge in taken:
            attrs.append('color="red", fontcolor="red", penwidth=2.5')
        lines.append(
            f"  {_node_id(edge.state)} -> {_node_id(edge.next)} [{', '.join(attrs)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_style(state: State, visited: set[State]) -> str:
    if state in visited:
        return ', style="rounded,filled", fillcolor="#ffd6d6", color="red", penwidth=2'
    return ""


def _two_column_nodes(visited: set[State]) -> list[str]:
    lines = ["  rankdir=TB; newrank=true;"]
    columns = (
        ("active", "client side: active open, active close", 0),
        ("passive", "server side: passive open, passive close", 1),
    )
    for key, label, index in columns:
        lines.append(f"  subgraph cluster_{key} {{")
        lines.append(f"    label={_quote(label)}; style=dashed;")
        column = [row[index] for row in _ROWS if row[index] is not None]
        for state in column:
            if state is None:
                continue
            lines.append(
                f"    {_node_id(state)} [label={_quote(state.value)}{_node_style(state, visited)}];"
            )
        # Invisible edges keep each column in its top-to-bottom order.
        ids = [_node_id(s) for s in column if s is not None]
        if len(ids) > 1:
            lines.append(f"    {' -> '.join(ids)} [style=invis, weight=10];")
        lines.append("  }")
    for left, right in _ROWS:
        if left is not None and right is not None:
            lines.append(f"  {{ rank=same; {_node_id(left)}; {_node_id(right)}; }}")
    return lines
