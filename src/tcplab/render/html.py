"""One self-contained HTML report for a run, a sim or one analyzed connection.

Everything is inline (CSS, a few lines of JS, the SVG ladder, the state
diagram) and nothing is fetched: the file opens from disk, offline, and can
be mailed.  Sections, top to bottom: title and explanation (English and
Chinese when the scenario has both), the ladder, the states each endpoint
went through (the state diagram with the path highlighted when the caller
passes one, else a highlighted state list), the packets (one expandable
entry per segment, every header field decoded from the raw bytes the way
Wireshark's detail pane does, or from the Packet's own fields when there
are no raw bytes), the socket calls with their results, the facts checked,
the ladder as Mermaid source to paste into notes, and the meaning of
every state and flag that appears, in both languages.

Inline SVG in HTML needs no namespace declaration, so ``xmlns`` attributes
are dropped when an SVG is embedded: the report then holds no ``http://``
text at all unless the timeline's own text does.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from importlib import resources
from typing import Any, Protocol

from tcplab.render._common import columns, format_gap, format_ms, ordered_events, start_time
from tcplab.render.mermaid import render_mermaid
from tcplab.render.svg import STATE_FILL, render_svg
from tcplab.render.wrap import join_lines
from tcplab.states import State
from tcplab.timeline import Note, Packet, StateChange, Timeline


class FactLike(Protocol):
    """What ``tcplab.scenario.check`` returns per fact."""

    @property
    def fact(self) -> str: ...
    @property
    def held(self) -> bool: ...
    @property
    def detail(self) -> str: ...





def _asset(name: str) -> str:
    """The report's CSS and JS, shipped as package data next to this module."""
    return (resources.files("tcplab.render") / name).read_text(encoding="utf-8")


_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_PROLOG = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", re.S)


def embed_svg(svg: str) -> str:
    """An SVG document made fit to inline in HTML: no prolog, no namespaces."""
    svg = _PROLOG.sub("", svg)
    return _XMLNS.sub("", svg).strip()


def _e(text: object) -> str:
    return escape(str(text), quote=True)


# -- packet decoding -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    """One line of the detail tree, with children (Wireshark's pane)."""

    text: str
    children: tuple[_Node, ...] = ()


def _flag_nodes(bits: int) -> tuple[_Node, ...]:
    names = (
        (0x100, "AE (accurate ECN, was Nonce)"),
        (0x080, "CWR (congestion window reduced)"),
        (0x040, "ECE (ECN echo)"),
        (0x020, "URG (urgent pointer valid)"),
        (0x010, "ACK (acknowledgment valid)"),
        (0x008, "PSH (push)"),
        (0x004, "RST (reset)"),
        (0x002, "SYN (synchronize)"),
        (0x001, "FIN (no more data)"),
    )
    return tuple(_Node(f"{'1' if bits & bit else '0'} = {name}") for bit, name in names)


_OPTION_NAMES = {
    "Eol": "End of option list",
    "Nop": "No-operation (padding)",
    "Mss": "Maximum segment size",
    "WindowScale": "Window scale",
    "SackPermitted": "SACK permitted",
    "Sack": "SACK blocks",
    "Timestamps": "Timestamps",
    "TfoCookie": "Fast Open cookie",
    "UnknownOption": "Unknown option",
}


def _decoded_tree(packet: Packet) -> tuple[_Node, ...] | None:
    """The header fields decoded from ``packet.raw``; None when that is not possible."""
    if not packet.raw:
        return None
    try:
        from tcplab.wire.ip import IPv4Header, IPv6Header
        from tcplab.wire.options import format_options
        from tcplab.wire.tcp import TcpHeader
    except ImportError:
        return None
    try:
        version = packet.raw[0] >> 4
        ip_node: _Node
        if version == 4:
            ip4, segment = IPv4Header.parse(packet.raw)
            flags = ", ".join(n for b, n in ((2, "DF"), (1, "MF")) if ip4.flags & b) or "none"
            ip_node = _Node(
                f"Internet Protocol Version 4, Src: {ip4.src}, Dst: {ip4.dst}",
                (
                    _Node(f"Header length: {ip4.ihl * 4} bytes ({ip4.ihl})"),
                    _Node(
                        f"Type of service: 0x{ip4.tos:02x}"
                        f" (DSCP {ip4.tos >> 2}, ECN {ip4.tos & 3})"
                    ),
                    _Node(f"Total length: {ip4.total_length}"),
                    _Node(f"Identification: 0x{ip4.ident:04x} ({ip4.ident})"),
                    _Node(f"Flags: {flags}; fragment offset {ip4.frag_offset}"),
                    _Node(f"Time to live: {ip4.ttl}"),
                    _Node(f"Protocol: {ip4.protocol}"),
                    _Node(f"Header checksum: 0x{ip4.checksum:04x}"),
                    _Node(f"Source address: {ip4.src}"),
                    _Node(f"Destination address: {ip4.dst}"),
                ),
            )
        elif version == 6:
            ip6, segment = IPv6Header.parse(packet.raw)
            ip_node = _Node(
                f"Internet Protocol Version 6, Src: {ip6.src}, Dst: {ip6.dst}",
                (
                    _Node(f"Traffic class: 0x{ip6.traffic_class:02x}"),
                    _Node(f"Flow label: 0x{ip6.flow_label:05x}"),
                    _Node(f"Payload length: {ip6.payload_length}"),
                    _Node(f"Next header: {ip6.next_header}"),
                    _Node(f"Hop limit: {ip6.hop_limit}"),
                    _Node(f"Extension headers: {len(ip6.extension_headers)}"),
                ),
            )
            segment = packet.raw[ip6.header_len :]
        else:
            return None
        tcp, payload = TcpHeader.parse(segment)
    except (ValueError, IndexError):
        return None
    rel = (
        (f" (relative {packet.rel_seq})" if packet.rel_seq is not None else ""),
        (f" (relative {packet.rel_ack})" if packet.rel_ack is not None else ""),
    )
    options = tuple(
        _Node(f"{_OPTION_NAMES.get(type(opt).__name__, type(opt).__name__)}: "
              f"{format_options((opt,))}")
        for opt in tcp.options
    )
    if tcp.option_error:
        options += (_Node(f"Problem: {tcp.option_error}"),)
    tcp_node = _Node(
        f"Transmission Control Protocol, Src Port: {tcp.sport}, Dst Port: {tcp.dport}, "
        f"Seq: {packet.rel_seq if packet.rel_seq is not None else tcp.seq}, Len: {len(payload)}",
        (
            _Node(f"Source port: {tcp.sport}"),
            _Node(f"Destination port: {tcp.dport}"),
            _Node(f"Sequence number: {tcp.seq}{rel[0]}"),
            _Node(f"Acknowledgment number: {tcp.ack}{rel[1]}"),
            _Node(f"Header length: {tcp.header_len} bytes ({tcp.data_offset})"),
            _Node(f"Flags: 0x{int(tcp.flags):03x} [{packet.flags}]", _flag_nodes(int(tcp.flags))),
            _Node(f"Window: {_window(packet)}"),
            _Node(f"Checksum: 0x{tcp.checksum:04x}"),
            _Node(f"Urgent pointer: {tcp.urgent}"),
            _Node(f"Options: {tcp.header_len - 20} bytes", options),
        ),
    )
    nodes = [ip_node, tcp_node]
    if payload:
        nodes.append(_Node(f"Data: {len(payload)} bytes", (_Node(_hexdump(payload)),)))
    return tuple(nodes)


def _window(packet: Packet) -> str:
    """Raw and scaled side by side, as every view shows a window (tcplab.fmt)."""
    from tcplab.fmt import window_text

    return window_text(packet.window, packet.win_shift, syn="S" in packet.flags)


def _fields_tree(packet: Packet) -> tuple[_Node, ...]:
    """The same tree from the Packet's own fields, when there are no raw bytes."""
    from tcplab.wire.flags import Flags

    bits = 0
    letters = {"S": Flags.SYN, "F": Flags.FIN, "R": Flags.RST, "P": Flags.PSH, ".": Flags.ACK,
               "U": Flags.URG, "E": Flags.ECE, "W": Flags.CWR, "e": Flags.AE}
    for ch in packet.flags:
        bits |= int(letters.get(ch, 0))
    rel_seq = f" (relative {packet.rel_seq})" if packet.rel_seq is not None else ""
    rel_ack = f" (relative {packet.rel_ack})" if packet.rel_ack is not None else ""
    return (
        _Node(f"Addresses: {packet.src} → {packet.dst}"),
        _Node(
            f"Transmission Control Protocol, Src Port: {packet.sport}, Dst Port: {packet.dport}",
            (
                _Node(f"Sequence number: {packet.seq}{rel_seq}"),
                _Node(f"Acknowledgment number: {packet.ack}{rel_ack}"),
                _Node(f"Flags: [{packet.flags}]", _flag_nodes(bits)),
                _Node(f"Window: {_window(packet)}"),
                _Node(f"Options: {packet.options or 'none'}"),
                _Node(f"Payload length: {packet.length}"),
            ),
        ),
        _Node("(decoded from the timeline's fields: the producer kept no raw bytes)"),
    )


def _hexdump(data: bytes, limit: int = 512) -> str:
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:04x}  {hexes:<47}  {text}")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit} more bytes")
    return "\n".join(lines)


def _tree_html(nodes: Iterable[_Node]) -> str:
    out = ["<ul>"]
    for node in nodes:
        if node.text.startswith(("Internet Protocol", "Transmission Control", "Addresses")):
            css = ' class="layer"'
        elif "\n" in node.text:
            css = ' class="hex"'
        else:
            css = ""
        out.append(f"<li{css}>{_e(node.text)}")
        if node.children:
            out.append(_tree_html(node.children))
        out.append("</li>")
    out.append("</ul>")
    return "".join(out)


# -- sections -----------------------------------------------------------------------


def _packets_section(timeline: Timeline, t0: float) -> str:
    head = (
        '<div class="row head"><span>#</span><span>time ms</span><span>direction</span>'
        "<span>flags</span><span>seq</span><span>ack</span><span>len</span><span>win</span>"
        "<span>options · notes</span></div>"
    )
    rows = [head]
    packets = [e for e in ordered_events(timeline) if isinstance(e, Packet)]  # win_shift set
    for index, packet in enumerate(packets):
        seq = packet.rel_seq if packet.rel_seq is not None else packet.seq
        ack: int | str = ""
        if "." in packet.flags:
            ack = packet.rel_ack if packet.rel_ack is not None else packet.ack
        notes = [packet.options] if packet.options else []
        if packet.dropped:
            notes.insert(0, "✗ dropped by the wire")
        notes += list(packet.annotations)
        tree = _decoded_tree(packet) or _fields_tree(packet)
        if packet.comment:
            # Wireshark's detail pane starts with the packet's comments; the
            # row says it too.  Text from the capture: escaped like all text.
            lines = packet.comment.splitlines() or [packet.comment]
            notes.append("comment: " + " ⏎ ".join(lines))
            tree = (_Node("Packet comments", tuple(_Node(ln) for ln in lines)), *tree)
        css = ' class="dropped"' if packet.dropped else ""
        rows.append(
            f'<details id="pkt-{index}" data-index="{index}"{css}><summary>'
            f"<span>{index + 1}</span><span>{format_ms(packet.time - t0)}</span>"
            f"<span>{_e(packet.sender)} → {_e(packet.receiver)}</span>"
            f"<span>[{_e(packet.flags)}]</span><span>{seq}</span><span>{ack}</span>"
            f"<span>{packet.length}</span><span>{_e(_window(packet))}</span>"
            f"<span>{_e(' · '.join(notes))}</span></summary>"
            f'<div class="tree">{_tree_html(tree)}</div></details>'
        )
    if len(rows) == 1:
        rows.append("<p class='meta'>No packets in this timeline.</p>")
    return '<div class="pkts">' + "".join(rows) + "</div>"


def _api_section(timeline: Timeline, t0: float) -> str:
    calls = timeline.api_calls()
    if not calls:
        return "<p class='meta'>No socket calls in this timeline (a capture has none).</p>"
    rows = [
        "<table><tr><th>returned ms</th><th>actor</th><th>call</th><th>result</th>"
        "<th>took</th></tr>"
    ]
    for call in sorted(calls, key=lambda c: c.time):
        result = (
            f'<span class="bad">{_e(call.errno)}</span>' if call.errno
            else _e(call.result if call.result is not None else "")
        )
        took = format_gap(call.time - call.started) if call.started is not None else ""
        rows.append(
            f"<tr><td class='mono'>{format_ms(call.time - t0)}</td><td>{_e(call.actor)}</td>"
            f"<td class='mono'>{_e(call.call)}({_e(', '.join(call.args))})</td>"
            f"<td class='mono'>{result}</td><td class='mono'>{took}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _facts_section(facts: Sequence[FactLike] | None) -> str:
    if facts is None:
        return "<p class='meta'>No facts were checked for this timeline.</p>"
    if not facts:
        return "<p class='meta'>The scenario states no facts.</p>"
    held = sum(1 for f in facts if f.held)
    rows = [
        f"<p>{held} of {len(facts)} facts held.</p>"
        "<table><tr><th></th><th>fact</th><th>detail</th></tr>"
    ]
    for fact in facts:
        mark = (
            '<span class="ok">✓ held</span>' if fact.held else '<span class="bad">✗ failed</span>'
        )
        rows.append(
            f"<tr class='fact {'held' if fact.held else 'failed'}'><td>{mark}</td>"
            f"<td class='mono'>{_e(fact.fact)}</td><td>{_e(fact.detail)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _state_paths(timeline: Timeline) -> str:
    cols = columns(timeline)
    out = ['<div class="paths">']
    for info in (cols.left, cols.right):
        changes = [e for e in ordered_events(timeline) if isinstance(e, StateChange)
                   and e.endpoint == info.name]
        path = timeline.state_path(info.name)
        order: dict[State, list[int]] = {}
        for i, state in enumerate(path, start=1):
            order.setdefault(state, []).append(i)
        chips = []
        for state in State:
            numbers = order.get(state)
            style = f' style="background:{STATE_FILL[state]}"' if numbers else ""
            n = f'<span class="n">{",".join(map(str, numbers))}</span>' if numbers else ""
            chips.append(
                f'<span class="chip{" on" if numbers else ""}" data-state="{state.value}"{style}>'
                f"{state.value}{n}</span>"
            )
        sources = sorted({c.source.value for c in changes})
        out.append(
            f'<div class="endpoint-path" data-endpoint="{_e(info.name)}"><h3>{_e(info.name)}</h3>'
            f'<div class="states">{"".join(chips)}</div>'
            f'<div class="path">{" → ".join(s.value for s in path) or "no state changes"}</div>'
            f'<div class="meta">reported by: {_e(", ".join(sources) or "nobody")}</div></div>'
        )
    out.append("</div>")
    return "".join(out)


_ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s+")


def text_to_html(text: str) -> str:
    """Explanation text (hard-wrapped, blank-line paragraphs, ``-``/``1.`` lists) as HTML."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        items: list[list[str]] = []
        lead: list[str] = []
        for line in block.splitlines():
            if _ITEM.match(line):
                items.append([_ITEM.sub("", line)])
            elif items:
                items[-1].append(line)
            else:
                lead.append(line)
        if lead:
            out.append(f"<p>{_e(join_lines(lead))}</p>")
        if items:
            tag = "ol" if re.match(r"^\s*\d", block.splitlines()[len(lead)]) else "ul"
            lis = "".join(f"<li>{_e(join_lines(item))}</li>" for item in items)
            out.append(f"<{tag}>{lis}</{tag}>")
    return "".join(out)


def _explain_pair(texts: dict[str, str]) -> str:
    blocks = []
    for lang, label in (("en", "English"), ("zh", "ZH · 中文")):
        text = texts.get(lang)
        if text:
            blocks.append(
                f'<div lang="{lang}"><div class="lang">{label}</div>{text_to_html(text)}</div>'
            )
    return '<div class="explain">' + "".join(blocks) + "</div>" if blocks else ""


def _glossary(timeline: Timeline) -> str:
    """The explain texts for every state and flag this timeline shows, en and zh."""
    from tcplab import explain

    words: list[str] = []
    for state in State:
        if any(isinstance(e, StateChange) and e.new is state for e in timeline.events):
            words.append(state.value)
    flags = "".join(p.flags for p in timeline.packets())
    for letter, flag in (("S", "SYN"), (".", "ACK"), ("F", "FIN"), ("R", "RST"), ("P", "PSH"),
                         ("U", "URG"), ("E", "ECE"), ("W", "CWR")):
        if letter in flags:
            words.append(flag)
    if any(p.rel_seq is not None for p in timeline.packets()):
        words.append("relative-seq")
    out = []
    for word in words:
        en = explain.lookup(word, "en")
        zh = explain.lookup(word, "zh")
        out.append(
            f'<details data-topic="{_e(en.id)}"><summary>{_e(en.title)}'
            f' <span class="meta" lang="zh">{_e(zh.title)}</span></summary>'
            f"{_explain_pair({'en': en.text, 'zh': zh.text})}"
            f'<div class="meta">{_e(", ".join(en.refs))}</div></details>'
        )
    return '<div class="glossary">' + "".join(out) + "</div>"


def _notes_section(timeline: Timeline, t0: float) -> str:
    notes = [e for e in ordered_events(timeline) if isinstance(e, Note)]
    if not notes:
        return ""
    items = "".join(
        f"<li><span class='mono'>{format_ms(n.time - t0)} ms</span>"
        f"{' · ' + _e(n.endpoint) if n.endpoint else ''}: {_e(n.text)}</li>"
        for n in notes
    )
    return f'<h2 id="notes">Notes</h2><ul class="notes">{items}</ul>'


def state_diagram_svg(timeline: Timeline, *, layout: str = "two-column") -> str | None:
    """The model's RFC state diagram with this timeline's path highlighted, as SVG.

    ``tcplab.model.diagram`` draws the diagram from the transition table as
    DOT; Graphviz lays it out.  None when Graphviz (``dot``) is not
    installed or fails, so the report falls back to its state list.  This
    is the one place in ``tcplab.render`` that runs a program.
    """
    import shutil
    import subprocess

    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        from tcplab.model.diagram import render_dot
    except ImportError:
        return None
    source = render_dot(layout=layout, highlight=timeline.state_changes(), timeline=timeline)
    try:
        done = subprocess.run(
            [exe, "-Tsvg"], input=source.encode(), capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace")


def content_security_policy(script: str) -> str:
    """The report's CSP: nothing loads, nothing but its own inline script runs.

    Every string in a report comes from a capture or a scenario (packet
    comments, payload bytes, addresses) and is escaped as text; should one
    ever slip through, the browser still runs only the script whose SHA-256
    is named here (CSP Level 2 hash source) and fetches nothing
    (``default-src 'none'``).  Styles stay inline ('unsafe-inline' for style
    runs no code).
    """
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            "img-src data:; font-src data:; base-uri 'none'; form-action 'none'")  # fmt: skip


def _ladder_section(timeline: Timeline, explain_seq: bool) -> str:
    """The ladder, long runs of like segments collapsed; every segment one click away."""
    short = render_svg(timeline, explain_seq=explain_seq)
    out = f'<div class="ladder">{embed_svg(short)}</div>'
    if 'class="run"' in short:
        full = render_svg(timeline, explain_seq=explain_seq, collapse=False)
        n = len(timeline.packets())
        out += (f'<details class="ladder-all"><summary>Every segment ({n}), one row each'
                f'</summary><div class="ladder">{embed_svg(full)}</div></details>')
    return out


def render_html(
    timeline: Timeline,
    *,
    scenario: Any = None,
    facts: Sequence[FactLike] | None = None,
    state_diagram_svg: str | None = None,
    explain_seq: bool | None = None,
) -> str:
    """The report as one HTML document (UTF-8 text).

    ``scenario``: a ``tcplab.scenario.Scenario`` for the title, explanation
    and, when ``facts`` is None, the facts (checked here with
    ``tcplab.scenario.check``).  ``state_diagram_svg``: the RFC state
    diagram with the path highlighted, as ``tcplab states`` draws it; when
    absent the report lists the states with the visited ones highlighted.
    """
    events = ordered_events(timeline)
    t0 = start_time(events)
    title = (getattr(scenario, "title", "") or timeline.title or "TCP timeline")
    if explain_seq is None:
        ladder = (getattr(scenario, "extra", None) or {}).get("ladder", {})
        explain_seq = bool(isinstance(ladder, dict) and ladder.get("explain_seq"))
    if facts is None and scenario is not None:
        from tcplab.scenario import check

        facts = check(scenario, timeline)
    cols = columns(timeline)
    explain_texts: dict[str, str] = dict(getattr(scenario, "explain", {}) or {})
    sources = sorted({e.source.value for e in events if isinstance(e, StateChange)})
    producer = {"lab": "live lab (Linux kernel)", "analyze": "capture analyzer",
                "sim": "tcplab model"}.get(timeline.producer, timeline.producer or "unknown")
    meta = (
        f"{_e(cols.left.name)} {_e(cols.left.address)}:{cols.left.port} ⇄ "
        f"{_e(cols.right.name)} {_e(cols.right.address)}:{cols.right.port} · "
        f"from: {_e(producer)} · {len(timeline.packets())} packets · states from: "
        f"{_e(', '.join(sources) or 'none')}"
    )
    diagram = (
        f'<div class="diagram">{embed_svg(state_diagram_svg)}</div>'
        if state_diagram_svg else ""
    )
    scenario_id = getattr(scenario, "id", "")
    script = _asset("report.js")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy(script)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)} · tcplab</title>",
        f"<style>{_asset('report.css')}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<div class="meta">{meta}'
        + (f" · scenario <code>{_e(scenario_id)}</code>" if scenario_id else "")
        + "</div>",
        '<nav><a href="#ladder">ladder</a><a href="#states">states</a>'
        '<a href="#packets">packets</a><a href="#calls">socket calls</a>'
        '<a href="#facts">facts</a><a href="#mermaid">mermaid</a>'
        '<a href="#glossary">what it means</a></nav>',
    ]
    if explain_texts:
        parts += ['<h2 id="explanation">What this shows</h2>', _explain_pair(explain_texts)]
    parts += [
        '<h2 id="ladder">Ladder</h2>',
        "<p class='meta'>Time goes down; hover an arrow for every header field, click it to "
        "open the packet below. Solid state labels come from the kernel (or the model), "
        "dashed and hatched ones are inferred from packets, dotted ones are sock_diag "
        "snapshots.</p>",
        _ladder_section(timeline, explain_seq),
        '<h2 id="states">States</h2>',
        diagram,
        _state_paths(timeline),
        '<h2 id="packets">Packets</h2>',
        _packets_section(timeline, t0),
        '<h2 id="calls">Socket calls</h2>',
        _api_section(timeline, t0),
        '<h2 id="facts">Facts checked</h2>',
        _facts_section(facts),
        _notes_section(timeline, t0),
        '<h2 id="mermaid">Mermaid</h2>',
        "<details><summary>The ladder as a Mermaid sequenceDiagram, to paste into Markdown"
        f"</summary><pre class='mermaid-source'>{_e(render_mermaid(timeline))}</pre></details>",
        '<h2 id="glossary">What it means <span class="meta" lang="zh">术语解释</span></h2>',
        _glossary(timeline),
        "<footer>Made by tcplab. Self-contained: this file loads nothing from the network."
        "</footer>",
        f"</main><script>{script}</script></body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


__all__ = ["FactLike", "embed_svg", "render_html", "state_diagram_svg", "text_to_html"]
