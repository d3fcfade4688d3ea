"""Hostile strings in the HTML report: text, never code.

Packet comments, payload bytes, API results, notes, titles and explanations
come from captures and scenario files.  A report built from strings that
carry ``<script>``, ``onerror=`` and ``</svg>`` is opened in headless
Chromium (the DevTools-pipe driver of test_render_html): no script of theirs
runs, no request leaves, and the text is on the page, escaped.  The
Content-Security-Policy allows the report's own script by its hash, and a
control page shows it blocks one slipped in.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import ACK, FIN, PSH, SYN, data_module, ipv4_tcp
from tcplab.capture import PcapngWriter
from tcplab.render.html import render_html
from tcplab.scenario import FactResult
from tcplab.timeline import ApiCall, Note, Packet, Timeline
from test_render_html import Chromium

samples = data_module("render/samples.py")

EVIL = ("<script>window.__pwned=1;fetch('http://127.0.0.1:9/x')</script>"
        '<img src=x onerror="window.__pwned=2"></svg><svg onload="window.__pwned=3">'
        "</title></style></textarea>\"'><b onmouseover=window.__pwned=4>x</b>")  # fmt: skip

FACTS = [FactResult(EVIL, False, EVIL), FactResult("flags", True, EVIL)]

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
    reason="chromium not installed (scripts/setup.sh installs it)",
)


def hostile_timeline() -> Timeline:
    base = samples.handshake_close()
    events: list[Any] = []
    for event in base.events:
        if isinstance(event, Packet) and event.length:
            t = event.time - samples.T0
            events.append(samples._pkt(t, event.sender, event.flags, event.rel_seq or 1,
                                       event.rel_ack or 1, EVIL.encode(), annotations=(EVIL,)))
        elif isinstance(event, ApiCall):
            events.append(replace(event, args=(EVIL,), result=EVIL))
        elif isinstance(event, Note):
            events.append(replace(event, text=EVIL))
        else:
            events.append(event)
    events.append(Note(samples.T0 + 0.05, "comment: " + EVIL))
    return Timeline(EVIL, "lab", base.endpoints, events, {"scenario": "x"})


PAGE_FACTS = """JSON.stringify({
  pwned: typeof window.__pwned === 'undefined' ? null : window.__pwned,
  scripts: document.scripts.length,
  images: document.images.length,
  handlers: Array.from(document.querySelectorAll('*')).filter(
    el => Array.from(el.attributes).some(a => a.name.startsWith('on'))).length,
  bold: document.querySelectorAll('b[onmouseover]').length,
  text: document.body.innerText,
  title: document.title,
  opened: (function () {
    var arrow = document.querySelector('.ladder g.packet[data-index="3"]');
    if (!arrow) { return null; }
    arrow.dispatchEvent(new MouseEvent('click', {bubbles: true}));
    return document.getElementById('pkt-3').open;
  })(),
  details: (function () {
    document.querySelectorAll('details').forEach(function (d) { d.open = true; });
    return document.body.innerText;
  })()
})"""

# A standalone SVG document: no body, its text is in <text> and <title>.
SVG_FACTS = """JSON.stringify({
  pwned: typeof window.__pwned === 'undefined' ? null : window.__pwned,
  root: document.documentElement.localName,
  scripts: document.querySelectorAll('script').length,
  foreign: document.querySelectorAll('foreignObject, image, img, iframe').length,
  handlers: Array.from(document.querySelectorAll('*')).filter(
    el => Array.from(el.attributes).some(a => a.name.startsWith('on'))).length,
  titles: Array.from(document.querySelectorAll('title')).map(t => t.textContent),
  text: document.documentElement.textContent
})"""


def open_in_chromium(
    page: Path, profile: Path, expression: str = PAGE_FACTS
) -> tuple[dict[str, Any], list[Any]]:
    browser = Chromium(profile)
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session)
        browser.call("Page.navigate", session, url=page.as_uri())
        browser.wait_for("Page.loadEventFired")
        browser.drain(0.5)
        found = browser.call(
            "Runtime.evaluate", session, returnByValue=True, expression=expression
        )
        browser.drain(0.3)
    finally:
        browser.close()
    return json.loads(found["result"]["value"]), browser.events


def requests_and_problems(events: list[Any]) -> tuple[list[str], list[Any]]:
    urls = [e["params"]["request"]["url"] for e in events
            if e.get("method") == "Network.requestWillBeSent"]  # fmt: skip
    problems = [e for e in events if e.get("method") == "Runtime.exceptionThrown"]
    problems += [e for e in events if e.get("method") == "Log.entryAdded"
                 and e["params"]["entry"]["level"] in ("error", "warning")]  # fmt: skip
    problems += [e for e in events if e.get("method") == "Runtime.consoleAPICalled"
                 and e["params"]["type"] in ("error", "warning")]  # fmt: skip
    return urls, problems


def test_the_report_names_its_own_script_by_hash() -> None:
    import base64
    import hashlib
    import re

    page = render_html(samples.handshake_close())
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert policy is not None
    script = page[page.rindex("<script>") + len("<script>") : page.rindex("</script>")]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy[1]
    assert "default-src 'none'" in policy[1]
    assert page.index("Content-Security-Policy") < page.index("<style>")


def test_hostile_strings_are_escaped_in_the_html() -> None:
    page = render_html(hostile_timeline(), scenario=SimpleNamespace(
        id="evil", title=EVIL, explain={"en": EVIL, "zh": EVIL}), facts=FACTS)  # fmt: skip
    assert EVIL not in page
    assert page.count("<script") == 1  # the report's own
    for tag in ("<img", "<svg onload", "<b onmouseover", "</textarea>"):
        assert tag not in page, tag
    assert "&lt;script&gt;window.__pwned=1" in page


@needs_chromium
def test_hostile_report_runs_no_script_and_makes_no_request(tmp_path: Path) -> None:
    report = tmp_path / "hostile.html"
    report.write_text(render_html(hostile_timeline(), scenario=SimpleNamespace(
        id="evil", title=EVIL, explain={"en": EVIL, "zh": EVIL}), facts=FACTS),
        encoding="utf-8")  # fmt: skip
    dom, events = open_in_chromium(report, tmp_path / "profile")
    urls, problems = requests_and_problems(events)
    assert dom["pwned"] is None
    assert dom["scripts"] == 1 and dom["images"] == 0
    assert dom["handlers"] == 0 and dom["bold"] == 0
    assert "<script>window.__pwned=1" in dom["text"]  # shown, as text
    assert 'onerror="window.__pwned=2"' in dom["text"] and "</svg>" in dom["text"]
    assert dom["title"].startswith("<script>")
    assert dom["opened"] is True  # the report's own script runs under the policy
    assert urls and all(url.startswith("file:") for url in urls), urls
    assert not problems, problems


@needs_chromium
def test_a_script_slipped_in_is_blocked_by_the_policy(tmp_path: Path) -> None:
    """The control: were escaping ever to fail, the CSP still refuses the script."""
    page = render_html(samples.handshake_close())
    injected = page.replace("<h1>", "<script>window.__pwned=9</script>"
                                    "<img src=x onerror=\"window.__pwned=8\"><h1>", 1)  # fmt: skip
    report = tmp_path / "injected.html"
    report.write_text(injected, encoding="utf-8")
    dom, events = open_in_chromium(report, tmp_path / "profile")
    urls, problems = requests_and_problems(events)
    assert dom["pwned"] is None
    assert dom["opened"] is True
    assert all(url.startswith("file:") for url in urls), urls
    assert any("Content Security Policy" in json.dumps(p) for p in problems), problems


def hostile_capture(path: Path) -> None:
    a, b = "10.0.0.1", "10.0.0.2"
    n = len(EVIL.encode())
    frames = [ipv4_tcp(a, b, 40000, 80, 100, 0, SYN),
              ipv4_tcp(b, a, 80, 40000, 500, 101, SYN | ACK),
              ipv4_tcp(a, b, 40000, 80, 101, 501, ACK),
              ipv4_tcp(a, b, 40000, 80, 101, 501, PSH | ACK, payload=EVIL.encode()),
              ipv4_tcp(b, a, 80, 40000, 501, 101 + n, ACK),
              ipv4_tcp(a, b, 40000, 80, 101 + n, 501, FIN | ACK),
              ipv4_tcp(b, a, 80, 40000, 501, 102 + n, FIN | ACK),
              ipv4_tcp(a, b, 40000, 80, 102 + n, 502, ACK)]  # fmt: skip
    with path.open("wb") as out:
        writer = PcapngWriter(out, comment="section " + EVIL)
        iface = writer.add_interface(101, "eth0 " + EVIL, tsresol=9)
        for i, frame in enumerate(frames):
            writer.write(1_700_000_000_000_000_000 + i * 1_000_000, frame, iface,
                         f"comment {i} {EVIL}")  # fmt: skip


@needs_chromium
def test_a_hostile_capture_through_analyze_report(tmp_path: Path) -> None:
    """The full path: a pcapng whose packet comments and TCP payload are hostile,
    through ``tcplab analyze --report --svg``, opened in Chromium."""
    capture = tmp_path / "hostile.pcapng"
    hostile_capture(capture)
    report, svg = tmp_path / "analyze.html", tmp_path / "analyze.svg"
    done = subprocess.run([sys.executable, "-m", "tcplab", "analyze", str(capture), "--report",
                           str(report), "--svg", str(svg)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = report.read_text(encoding="utf-8")
    assert EVIL not in html and html.count("<script") == 1
    dom, events = open_in_chromium(report, tmp_path / "profile")
    urls, problems = requests_and_problems(events)
    assert dom["pwned"] is None and dom["scripts"] == 1 and dom["handlers"] == 0
    assert dom["images"] == 0 and dom["bold"] == 0
    assert all(url.startswith("file:") for url in urls), urls
    assert not problems, problems
    # Every packet's comment is on its row, as text...
    for i in range(8):
        assert f"comment: comment {i} {EVIL}" in dom["text"], i
    # ...and in its detail tree, with the payload's bytes in the hex dump.
    assert dom["details"].count("Packet comments") == 8
    assert "<script>window._" in dom["details"]  # the hex dump's text column
    assert "Data: " + str(len(EVIL.encode())) + " bytes" in dom["details"]

    image = svg.read_text(encoding="utf-8")
    assert EVIL not in image and "<script" not in image
    dom, events = open_in_chromium(svg, tmp_path / "profile-svg", SVG_FACTS)
    urls, problems = requests_and_problems(events)
    assert dom["root"] == "svg" and dom["pwned"] is None
    assert dom["scripts"] == 0 and dom["foreign"] == 0 and dom["handlers"] == 0
    assert all(url.startswith("file:") for url in urls), urls
    assert not problems, problems
    tips = [t for t in dom["titles"] if "comment: comment" in t]
    assert len(tips) == 8 and all(f"comment: comment {i} {EVIL}" in tips[i] for i in range(8))
