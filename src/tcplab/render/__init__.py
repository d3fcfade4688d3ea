"""Views of a Timeline: text ladder, SVG ladder, DOT, Mermaid, HTML report.

Every renderer takes a ``tcplab.timeline.Timeline`` and returns text; none
writes files or talks to a terminal, so the CLI decides where output goes.

    render_ladder(t)     the two-column ladder for a terminal (text.py)
    render_svg(t)        the same ladder as standalone SVG (svg.py)
    render_dot(t)        Graphviz DOT (dot.py)
    render_mermaid(t)    a Mermaid sequenceDiagram for Markdown (mermaid.py)
    render_html(t, ...)  one self-contained HTML report (html.py)

The names are loaded on first use so ``import tcplab.render`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "render_ladder": "tcplab.render.text",
    "render_ladder_rich": "tcplab.render.text",
    "render_svg": "tcplab.render.svg",
    "render_dot": "tcplab.render.dot",
    "render_mermaid": "tcplab.render.mermaid",
    "render_html": "tcplab.render.html",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tcplab.render' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def install_notebook_repr() -> bool:
    """Make IPython/Jupyter display a ``Timeline`` as its SVG ladder.

    Registers an ``image/svg+xml`` formatter for ``Timeline`` with the running
    IPython shell, if there is one; returns whether it did.  IPython is looked
    up at call time, so tcplab never depends on it.  (A ``_repr_svg_`` method
    on ``Timeline`` delegating to ``render_svg`` does the same without this
    call.)
    """
    try:
        ipython_module = importlib.import_module("IPython")
    except ImportError:
        return False
    shell = ipython_module.get_ipython()
    if shell is None:
        return False
    from tcplab.render.svg import render_svg
    from tcplab.timeline import Timeline

    formatter = shell.display_formatter.formatters["image/svg+xml"]
    formatter.for_type(Timeline, render_svg)
    return True


__all__ = [
    "install_notebook_repr",
    "render_dot",
    "render_html",
    "render_ladder",
    "render_ladder_rich",
    "render_mermaid",
    "render_svg",
]
