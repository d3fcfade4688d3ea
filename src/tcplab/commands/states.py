"""``tcplab states``: the TCP state diagram, drawn from the model's transition table."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click

from tcplab.errors import InputError, TcplabError
from tcplab.model.diagram import LAYOUTS, render_dot
from tcplab.model.table import TRANSITIONS
from tcplab.timeline import Timeline


def _load_highlight(path: str | None) -> Timeline | None:
    if path is None:
        return None
    try:
        return Timeline.from_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a tcplab timeline: {exc}") from None


def table_text() -> str:
    """The transition table, one edge a line, grouped by state."""
    rows = [("state", "trigger", "next", "sends", "RFC")]
    for edge in TRANSITIONS:
        trigger = edge.trigger.value + (f" [{edge.guard}]" if edge.guard else "")
        if edge.counterfactual:
            trigger += " (counterfactual)"
        rows.append((edge.state.value, trigger, edge.next.value, edge.action, edge.rfc))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] + "\n"
        for row in rows
    )


def write_svg(dot_text: str, out: str) -> None:
    dot = shutil.which("dot")
    if dot is None:
        raise TcplabError("Graphviz 'dot' is not installed; use --dot FILE and render it elsewhere")
    done = subprocess.run([dot, "-Tsvg", "-o", out], input=dot_text.encode(), capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise TcplabError(f"dot failed: {done.stderr.decode(errors='replace').strip()}")


@click.command("states")
@click.option("--dot", "dot_out", metavar="FILE|-", help="Write the diagram as Graphviz DOT.")
@click.option("--svg", "svg_out", metavar="FILE", help="Render SVG with Graphviz dot.")
@click.option("--highlight", metavar="TIMELINE.json",
              help="Mark the states and edges a run took (a tcplab timeline JSON).")
@click.option("--layout", type=click.Choice(LAYOUTS), default="two-column", show_default=True,
              help="two-column: the textbook picture, active (client) side left, passive "
              "(server) side right, CLOSED at the top and again at the bottom; rfc: every edge "
              "placed by Graphviz, like RFC 9293 Figure 5.")
@click.option("--all-edges", is_flag=True,
              help="two-column: also draw the abort, RST and timeout edges (by default they "
              "are listed in a legend).")
def command(dot_out: str | None, svg_out: str | None, highlight: str | None, layout: str,
            all_edges: bool) -> None:  # fmt: skip
    """The TCP state diagram drawn from tcplab's transition table.

    \b
    Without options: the table itself, one edge a line.
      tcplab states --svg states.svg
      tcplab states --svg all.svg --all-edges
      tcplab sim both-close --json run.json && tcplab states --highlight run.json --svg run.svg

    --highlight marks the states a run visited and exactly the edges it took:
    the kernel's tracepoint names only old and new state, so the edge is the
    one the segment received or the call made just before explains.
    """
    timeline = _load_highlight(highlight)
    changes = timeline.state_changes() if timeline is not None else []
    dot_text = render_dot(layout=layout, highlight=changes, timeline=timeline,
                          all_edges=all_edges)  # fmt: skip
    if dot_out is None and svg_out is None:
        click.echo(table_text(), nl=False)
        return
    if dot_out == "-":
        click.echo(dot_text, nl=False)
    elif dot_out is not None:
        Path(dot_out).write_text(dot_text, encoding="utf-8")
    if svg_out is not None:
        write_svg(dot_text, svg_out)
