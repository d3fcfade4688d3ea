"""The report's Chinese renders with a CJK font in a headless browser, not as boxes.

``document.fonts.check`` alone answers true for any local family name (a
system font is not in the document's font set), so the check loads each
family of the report's CJK stack through an ``@font-face { src: local() }``
probe: a family that is not installed fails to load.  The zh text's
computed font stack must hold a family that loaded, and a screenshot of the
report is written for a person to look at (its path is printed).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from data.render import samples
from tcplab.render.html import render_html
from tcplab.scenario import load

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")

_PROBE = """
<script>
(async () => {
  const el = document.querySelector('[lang="zh"] p, [lang="zh"]');
  const stack = getComputedStyle(el).fontFamily.split(',').map(s => s.trim().replace(/["']/g, ''));
  const loaded = [];
  for (const family of stack) {
    const face = new FontFace('probe-' + loaded.length + '-' + family.length, `local("${family}")`);
    try { await face.load(); document.fonts.add(face); loaded.push(family); } catch (e) {}
  }
  const checked = loaded.map((f, i) => document.fonts.check(`16px "probe-${i}-${f.length}"`));
  document.body.setAttribute('data-fonts', JSON.stringify({stack, loaded, checked,
    text: el.textContent.slice(0, 40)}));
})();
</script>
"""


def _report(tmp_path: Path) -> Path:
    text = render_html(samples.handshake_close(), scenario=load("handshake-close"))
    assert 'lang="zh"' in text
    # The probe is a test's script: a Content-Security-Policy of the report would refuse it.
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    path = tmp_path / "report-zh.html"
    path.write_text(text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    return path


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--virtual-time-budget=5000", *args],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_the_zh_report_renders_with_a_cjk_font(tmp_path: Path) -> None:
    page = _report(tmp_path)
    done = _chromium("--dump-dom", page.as_uri())
    match = re.search(r'data-fonts="([^"]*)"', done.stdout)
    assert match, done.stderr[-2000:]
    result = json.loads(html.unescape(match[1]))
    cjk = {"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC",
           "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei"}  # fmt: skip
    # The stack names the usual CJK fonts of macOS, Windows and Linux ...
    assert cjk <= set(result["stack"]), result["stack"]
    # ... and on this machine one of them is installed and loads (setup.sh: fonts-noto-cjk).
    assert set(result["loaded"]) & cjk, result
    assert all(result["checked"]), result
    assert re.search(r"[\u4e00-\u9fff]", result["text"])
    shot = tmp_path / "report-zh.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
