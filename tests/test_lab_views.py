"""``tcplab run --report/--mermaid/--svg``: the shareable views of a live run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.xdist_group("lab"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root"),
]


def test_run_writes_report_mermaid_and_svg(tmp_path: Path) -> None:
    report, mermaid, svg = tmp_path / "r.html", tmp_path / "l.md", tmp_path / "l.svg"
    proc = subprocess.run(
        [sys.executable, "-m", "tcplab", "run", "both-close", "--outdir", str(tmp_path),
         "--report", str(report), "--mermaid", str(mermaid), "--svg", str(svg)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {report}, {mermaid}, {svg}" in proc.stdout
    timeline = json.loads((tmp_path / "both-close.json").read_text())
    packets = [e for e in timeline["events"] if e["kind"] == "packet"]

    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count('class="packet"') >= len(packets)
    assert "Both sides close" in html and "http://" not in html and "https://" not in html

    lines = mermaid.read_text().splitlines()
    assert "sequenceDiagram" in lines
    arrows = [ln for ln in lines if "->>" in ln or "-x" in ln]
    assert len(arrows) == len(packets)
    # The plain ladders show what the terminal shows: no inferred ("?") states.
    assert not any(ln.strip().startswith("Note over") and ln.rstrip().endswith("?")
                   for ln in lines)

    root = ET.fromstring(svg.read_text())
    groups = [g for g in root.iter("{http://www.w3.org/2000/svg}g")
              if "packet" in g.get("class", "").split()]
    assert len(groups) == len(packets)
