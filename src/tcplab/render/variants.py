"""One HTML report for a scenario played in several variants, side by side.

``tcplab sim why-time-wait --report wtw.html`` plays the same close twice,
with and without TIME-WAIT; the point is the difference, so the report puts
the two ladders next to each other, each under its verdict, and keeps each
variant's full report (state diagram, packets, facts) below, one per
column.  The file is self-contained like every report: the ladders are
inline SVG and each full report is an ``iframe srcdoc``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tcplab.timeline import Timeline

__all__ = ["VariantView", "render_variants_html"]


@dataclass(frozen=True, slots=True)
class VariantView:
    name: str
    timeline: Timeline
    verdict: str  # how this run ended (model.sim.verdict)
    meaning: str = ""  # what the scenario says this variant shows


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC",
       "PingFang SC", "Microsoft YaHei", sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.4rem; margin-bottom: .3rem; }
.explain { max-width: 70rem; line-height: 1.45; white-space: pre-wrap; }
.variants { display: grid; gap: 1rem; grid-template-columns: repeat(var(--n), minmax(0, 1fr)); }
.variant { border: 1px solid #ccc; border-radius: 6px; padding: .6rem; min-width: 0; }
.variant h2 { font-size: 1.1rem; margin: 0 0 .3rem 0; }
.verdict { font-family: ui-monospace, monospace; font-size: .85rem; margin: .2rem 0 .6rem 0; }
.meaning { font-style: italic; margin: 0 0 .4rem 0; }
.ladder svg { width: 100%; height: auto; }
iframe { width: 100%; height: 80vh; border: 1px solid #ddd; }
"""


def render_variants_html(title: str, variants: Sequence[VariantView], *,
                         explanation: str = "", scenario: Any = None) -> str:  # fmt: skip
    """The side-by-side report as one HTML document (UTF-8 text)."""
    from tcplab.render.html import render_html, state_diagram_svg
    from tcplab.render.svg import render_svg

    columns: list[str] = []
    details: list[str] = []
    for v in variants:
        name = html.escape(v.name or "run")
        meaning = f'<p class="meaning">{html.escape(v.meaning)}</p>' if v.meaning else ""
        columns.append(
            f'<section class="variant"><h2>{name}</h2>{meaning}'
            f'<p class="verdict">verdict: {html.escape(v.verdict)}</p>'
            f'<div class="ladder">{_inline(render_svg(v.timeline))}</div></section>'
        )
        full = render_html(v.timeline, scenario=scenario,
                           state_diagram_svg=state_diagram_svg(v.timeline))  # fmt: skip
        details.append(
            f'<section class="variant"><h2>{name}: the whole report</h2>'
            f'<iframe title="{name}" srcdoc="{html.escape(full, quote=True)}"></iframe></section>'
        )
    n = max(1, len(variants))
    explain = (f'<div class="explain">{html.escape(explanation.strip())}</div>'
               if explanation else "")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{explain}"
        f'<h2>The variants side by side</h2><div class="variants" style="--n: {n}">'
        + "".join(columns) + "</div>"
        f'<h2>Each variant in full</h2><div class="variants" style="--n: {n}">'
        + "".join(details) + "</div></body></html>\n"
    )


def _inline(svg: str) -> str:
    """An SVG document as an inline element: no XML declaration."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg
