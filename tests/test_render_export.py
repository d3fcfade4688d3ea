"""Mermaid and DOT exports of the ladder."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import data_module
from tcplab.render import install_notebook_repr, render_dot, render_mermaid
from tcplab.timeline import Note

samples = data_module("render/samples.py")


def test_mermaid_participants_arrows_states() -> None:
    tl = samples.lost_final_ack()
    text = render_mermaid(tl)
    lines = text.splitlines()
    body = lines[lines.index("sequenceDiagram") + 1 :]
    assert body[0].startswith("    participant client as client 10.0.0.1:40000")
    assert body[1].startswith("    participant server as server")
    arrows = [line for line in body if "->>" in line or "-x" in line]
    assert len(arrows) == len(tl.packets())
    assert "    client->>server: [S] seq 0 len 0 win 64240" in body
    assert "    client-xserver: [.] seq 2 ack 2 len 0 win 502×128=64256 (dropped)" in body
    assert "    Note over client: SYN-SENT?" in body
    assert any(line.startswith("    Note over client,server: ⋯ 212.2 ms later") for line in body)


def test_mermaid_escapes_statement_breakers() -> None:
    tl = samples.refused_after_syn_loss()
    tl.events.append(Note(tl.events[-1].time, "a;b #c <d>", "client"))
    text = render_mermaid(tl)
    assert "a#59;b #35;c #lt;d>" in text
    assert "    Note left of client: connect(10.0.0.2, 8080) -> ECONNREFUSED" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
@pytest.mark.parametrize("name", sorted(samples.ALL))
def test_dot_renders_with_graphviz(name: str) -> None:
    tl = samples.ALL[name]()
    source = render_dot(tl)
    done = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    root = ET.fromstring(done.stdout)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for packet in tl.packets():
        assert packet.label() in texts
    edges = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "edge"]
    labelled = [g for g in edges if "seq" in "".join(t.text or "" for t in g.iter())]
    assert len(labelled) == len(tl.packets())


def test_dot_marks_sources_and_drops() -> None:
    source = render_dot(samples.lost_final_ack())
    assert 'label="TIME-WAIT?"' in source and "dashed" in source
    assert 'label="✗"' in source


def test_notebook_repr_without_ipython_is_a_no_op() -> None:
    # No IPython shell is running under pytest: nothing to register.
    assert install_notebook_repr() is False


def test_every_renderer_accepts_an_empty_timeline() -> None:
    import xml.etree.ElementTree as ET

    from tcplab.render import render_html, render_ladder, render_svg
    from tcplab.timeline import Timeline

    for tl in (Timeline(), Timeline(events=[Note(1.0, "only a note")])):
        assert ET.fromstring(render_svg(tl)).tag.endswith("svg")
        assert "No packets in this timeline" in render_html(tl)
        assert render_mermaid(tl).startswith("sequenceDiagram")
        assert render_dot(tl).startswith("digraph ladder {")
        assert "client" in render_ladder(tl)
