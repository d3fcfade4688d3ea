"""Write a timeline's shareable views to files: the one place the CLI commands share.

``tcplab run``, ``tcplab analyze`` and ``tcplab sim`` all offer ``--report
FILE.html``, ``--mermaid FILE|-`` and ``--svg FILE``; this module turns
those options into files so the three commands behave the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tcplab.errors import InputError

if TYPE_CHECKING:  # `tcplab analyze` takes the options without loading the renderers
    from tcplab.timeline import Timeline


def report_options(func: Any) -> Any:
    """The click options every timeline-producing command takes."""
    func = click.option(
        "--report",
        metavar="FILE.html",
        help="Write a self-contained HTML report (ladder, state diagram, packets, facts).",
    )(func)
    func = click.option(
        "--mermaid", metavar="FILE|-", help="Write the ladder as a Mermaid sequenceDiagram."
    )(func)
    func = click.option("--svg", "svg_out", metavar="FILE", help="Write the ladder as SVG.")(func)
    return func


def _write(target: str, text: str) -> None:
    if target == "-":
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        Path(target).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {exc.strerror}") from None


def write_views(
    timeline: Timeline,
    *,
    report: str | None = None,
    mermaid: str | None = None,
    svg: str | None = None,
    scenario: Any = None,
    facts: Sequence[Any] | None = None,
) -> list[str]:
    """Write the requested views; returns the paths written (for a "wrote ..." line)."""
    written: list[str] = []
    if report:
        from tcplab.render.html import render_html, state_diagram_svg

        html = render_html(
            timeline,
            scenario=scenario,
            facts=facts,
            state_diagram_svg=state_diagram_svg(timeline),
        )
        _write(report, html)
        written.append(report)
    if mermaid:
        from tcplab.render.mermaid import render_mermaid

        _write(mermaid, render_mermaid(timeline))
        if mermaid != "-":
            written.append(mermaid)
    if svg:
        from tcplab.render.svg import render_svg

        _write(svg, render_svg(timeline))
        written.append(svg)
    return written


def ladder_options(func: Any) -> Any:
    """The text ladder's options, shared by ``run``, ``sim`` and ``analyze --ladder``."""
    func = click.option(
        "--all-segments", is_flag=True,
        help="Draw every segment of a bulk transfer (by default a run of like data "
        "segments is one row: '… 712 data segments of 1448 bytes, ACKed every 2 …').",
    )(func)
    func = click.option(
        "--explain-seq/--no-explain-seq", default=None,
        help="Under each segment, the arithmetic of its numbers: which bytes it carries, "
        "which it acknowledges ('ack 13 = 1 + 12'), a SYN or FIN taking one number "
        "(on by default where the scenario teaches it, e.g. seq-ack-walkthrough).",
    )(func)
    return func


def explain_seq_default(explain_seq: bool | None, scenario: Any) -> bool:
    """``--explain-seq`` as given, else the scenario's ``[extra.ladder] explain_seq``."""
    if explain_seq is not None:
        return explain_seq
    ladder = (getattr(scenario, "extra", None) or {}).get("ladder", {})
    return bool(isinstance(ladder, dict) and ladder.get("explain_seq"))
