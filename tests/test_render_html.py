"""The HTML report: self-contained, decoded packets, and it really opens in Chromium.

The browser test drives headless Chromium over the DevTools protocol on a
pipe (``--remote-debugging-pipe``: JSON messages separated by NUL on file
descriptors 3 and 4), so no port is opened and no websocket library is
needed.  It records every network request, console message, log entry and
uncaught exception while the report loads from disk, then counts elements
in the live DOM and takes a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import data_module
from tcplab.render.html import embed_svg, render_html, state_diagram_svg, text_to_html
from tcplab.scenario import FactResult

samples = data_module("render/samples.py")

FACTS = [
    FactResult("flags", True, "expected [...], wire had [...]"),
    FactResult("states.client", False, "expected TIME-WAIT, got nothing"),
]

DIAGRAM = (
    '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10" id="rfc-diagram">'
    '<rect class="taken" width="5" height="5"/></svg>'
)

# Anything that would make a browser fetch: an http(s) URL in src/href,
# CSS url()/@import, <link>, external scripts.
_FETCH = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import|<link\b|<script[^>]+src=""",
    re.I,
)


def test_report_is_self_contained() -> None:
    for factory in samples.ALL.values():
        page = render_html(factory(), facts=FACTS, state_diagram_svg=DIAGRAM)
        assert not _FETCH.search(page)
        assert "http://" not in page and "https://" not in page
        assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_report_sections_and_counts() -> None:
    tl = samples.handshake_close()
    page = render_html(tl, facts=FACTS)
    assert page.count('<g class="packet') == len(tl.packets())
    assert page.count('<details id="pkt-') == len(tl.packets())
    assert "✓ held" in page and "✗ failed" in page and "1 of 2 facts held" in page
    # Without a diagram, the visited states are highlighted chips per endpoint.
    assert page.count('class="chip on"') == len(set(tl.state_path("client"))) + len(
        set(tl.state_path("server"))
    )
    # The glossary carries the explain texts in both languages.
    assert 'data-topic="TIME-WAIT"' in page and "主动关闭" in page
    assert "connect(10.0.0.2, 8080)" in page
    assert "client-&gt;&gt;server: [S] seq 0 len 0 win 64240" in page  # the Mermaid source


def test_state_diagram_is_embedded_without_namespaces() -> None:
    page = render_html(samples.lost_final_ack(), state_diagram_svg=DIAGRAM)
    assert 'id="rfc-diagram"' in page and "<?xml" not in page
    assert embed_svg(DIAGRAM).startswith('<svg viewBox="0 0 10 10"')


def test_scenario_explanation_in_both_languages() -> None:
    from tcplab.scenario import builtin_ids, load

    with_zh = [i for i in builtin_ids() if load(i).explain.get("zh")]
    if not with_zh:
        pytest.skip("no built-in scenario with en and zh explanations yet")
    scenario = load(with_zh[0])
    page = render_html(samples.handshake_close(), scenario=scenario)
    assert '<div lang="en">' in page and '<div lang="zh">' in page
    assert scenario.title.replace("&", "&amp;") in page
    assert 'id="facts"' in page


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_model_state_diagram_embeds_cleanly() -> None:
    tl = samples.handshake_close()
    diagram = state_diagram_svg(tl)
    if diagram is None:
        pytest.skip("the model's diagram is not available")
    page = render_html(tl, state_diagram_svg=diagram)
    assert not _FETCH.search(page) and "http://" not in page
    assert 'class="diagram"' in page and "TIME-WAIT" in page


def test_packet_fields_decoded_from_raw_bytes() -> None:
    page = render_html(samples.handshake_close())
    syn = page[page.index('id="pkt-0"') : page.index('id="pkt-1"')]
    assert "Internet Protocol Version 4, Src: 10.0.0.1, Dst: 10.0.0.2" in syn
    assert "Time to live: 64" in syn
    assert f"Sequence number: {samples.ISS_C} (relative 0)" in syn
    assert "Maximum segment size: mss 1460" in syn
    assert "Window scale: wscale 7" in syn
    assert "1 = SYN (synchronize)" in syn and "0 = ACK (acknowledgment valid)" in syn
    data = page[page.index('id="pkt-3"') : page.index('id="pkt-4"')]
    assert "Data: 5 bytes" in data and "hello" in data


def test_packet_fields_fall_back_without_raw_bytes() -> None:
    page = render_html(samples.refused_after_syn_loss())
    assert "decoded from the timeline" in page
    assert "1 = RST (reset)" in page


def test_text_to_html_rewraps_paragraphs_and_lists() -> None:
    html = text_to_html("One two\nthree.\n\n1. first\n   still first\n2. second\n\n中文\n文字")
    assert html == (
        "<p>One two three.</p><ol><li>first still first</li><li>second</li></ol><p>中文文字</p>"
    )


# -- the browser ----------------------------------------------------------------


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe``."""

    def __init__(self, profile: Path) -> None:
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        assert exe is not None
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # runs in the child before exec
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--hide-scrollbars",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=wire_fds,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    raise EOFError("chromium closed the pipe")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, TimeoutError, RuntimeError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.mark.skipif(
    shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
    reason="chromium not installed (scripts/setup.sh installs it)",
)
def test_report_opens_in_headless_chromium(tmp_path: Path) -> None:
    tl = samples.lost_final_ack()
    report = tmp_path / "report.html"
    report.write_text(
        render_html(tl, facts=FACTS, state_diagram_svg=state_diagram_svg(tl)), encoding="utf-8"
    )
    browser = Chromium(tmp_path / "profile")
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session)
        browser.call("Emulation.setDeviceMetricsOverride", session, width=1280, height=1600,
                     deviceScaleFactor=1, mobile=False)
        browser.call("Page.navigate", session, url=report.as_uri())
        browser.wait_for("Page.loadEventFired")
        browser.drain(0.5)
        counts = browser.call(
            "Runtime.evaluate", session, returnByValue=True,
            expression="""JSON.stringify({
              packets: document.querySelectorAll('.ladder g.packet').length,
              dropped: document.querySelectorAll('.ladder g.packet.dropped').length,
              clientStates: document.querySelectorAll(
                '.ladder g.state[data-endpoint="client"]').length,
              serverStates: document.querySelectorAll(
                '.ladder g.state[data-endpoint="server"]').length,
              details: document.querySelectorAll('.pkts details').length,
              svgWidth: document.querySelector('.ladder svg').getBoundingClientRect().width,
              opened: (function () {
                document.querySelector('.ladder g.packet[data-index="3"]')
                  .dispatchEvent(new MouseEvent('click', {bubbles: true}));
                return document.getElementById('pkt-3').open;
              })()
            })""",
        )
        dom = json.loads(counts["result"]["value"])
        shot = browser.call("Page.captureScreenshot", session, format="png")
        png = base64.b64decode(shot["data"])
        (tmp_path / "report.png").write_bytes(png)
    finally:
        browser.close()

    changes = tl.state_changes()
    assert dom["packets"] == len(tl.packets()) == dom["details"]
    assert dom["dropped"] == 1
    assert dom["clientStates"] == len([c for c in changes if c.endpoint == "client"])
    assert dom["serverStates"] == len([c for c in changes if c.endpoint == "server"])
    assert dom["svgWidth"] > 600
    assert dom["opened"] is True, "clicking an arrow opens its packet"
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000

    requests = [e["params"]["request"]["url"] for e in browser.events
                if e.get("method") == "Network.requestWillBeSent"]
    assert requests and all(url.startswith("file:") for url in requests), requests
    errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
    errors += [e for e in browser.events if e.get("method") == "Runtime.consoleAPICalled"
               and e["params"]["type"] in ("error", "assert", "warning")]
    errors += [e for e in browser.events if e.get("method") == "Log.entryAdded"
               and e["params"]["entry"]["level"] in ("error", "warning")]
    assert not errors, errors
