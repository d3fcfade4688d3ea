"""``tcplab states``: the TCP state diagram, drawn from the model's transition table."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click

from tcplab.errors import InputError, TcplabError
from tcplab.model.diagram import LAYOUTS, render_dot
from tcplab.model.table import TRANSITIONS
from tcplab.timeline import StateChange, Timeline


def _load_highlight(path: str | None) -> list[StateChange]:
    if path is None:
        return []
    try:
        timeline = Timeline.from_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a tcplab timeline: {exc}") from None
    return timeline.state_changes()


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
@click.option("--layout", type=click.Choice(LAYOUTS), default="rfc", show_default=True,
              help="two-column: active (client) path left, passive (server) path right.")
def command(dot_out: str | None, svg_out: str | None, highlight: str | None, layout: str) -> None:
    """The TCP state diagram drawn from tcplab's transition table.

    \b
    Without options: the table itself, one edge a line.
      tcplab states --svg states.svg --layout two-column
      tcplab sim both-close --json run.json && tcplab states --highlight run.json --svg run.svg
    """
    changes = _load_highlight(highlight)
    dot_text = render_dot(layout=layout, highlight=changes)
    if dot_out is None and svg_out is None:
        click.echo(table_text(), nl=False)
        return
    if dot_out == "-":
        click.echo(dot_text, nl=False)
    elif dot_out is not None:
        Path(dot_out).write_text(dot_text, encoding="utf-8")
    if svg_out is not None:
        write_svg(dot_text, svg_out)
