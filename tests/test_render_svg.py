"""The SVG ladder: valid SVG, one arrow group per packet, states on both columns."""

from __future__ import annotations

import itertools
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import SHARED, data_module
from tcplab.render.svg import render_svg
from tcplab.timeline import Packet, Timeline

HERE = Path(__file__).parent
NS = {"svg": "http://www.w3.org/2000/svg"}


samples = data_module("render/samples.py")


def groups(root: ET.Element, css: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{{{NS['svg']}}}g") if css in (g.get("class") or "").split()]


def check_structure(tl: Timeline) -> ET.Element:
    text = render_svg(tl)
    root = ET.fromstring(text)
    assert root.tag == f"{{{NS['svg']}}}svg"
    assert re.fullmatch(r"0 0 \d+ [\d.]+", root.get("viewBox") or "")
    packets = sorted(tl.packets(), key=lambda p: p.time)  # drawn in time order
    arrows = groups(root, "packet")
    assert len(arrows) == len(packets)
    for arrow, packet in zip(arrows, packets, strict=True):
        assert arrow.get("data-flags") == packet.flags
        assert arrow.get("data-len") == str(packet.length)
        assert arrow.get("data-dropped") == ("1" if packet.dropped else "0")
        title = arrow.find("svg:title", NS)
        assert title is not None and f"seq {packet.seq}" in (title.text or "")
        if packet.dropped:
            assert groups(arrow, "lost"), "a dropped segment ends in a cross"
            assert arrow.find("svg:polygon", NS) is None, "and has no arrow head"
        else:
            assert arrow.find("svg:polygon", NS) is not None
    # Every url(#id) reference resolves to a pattern in <defs>.
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    for ref in re.findall(r"url\(#([\w-]+)\)", text):
        assert ref in ids, ref
    return root


@pytest.mark.parametrize("name", sorted(samples.ALL))
def test_sample_is_valid_svg_with_one_arrow_per_packet(name: str) -> None:
    check_structure(samples.ALL[name]())


def test_states_on_both_columns_and_sources_told_apart() -> None:
    root = check_structure(samples.lost_final_ack())
    states = groups(root, "state")
    by_endpoint = {g.get("data-endpoint") for g in states}
    assert by_endpoint == {"client", "server"}
    assert all(g.get("data-source") == "inferred" for g in states)
    bands = [r for r in root.iter(f"{{{NS['svg']}}}rect") if "band" in (r.get("class") or "")]
    assert bands and all((r.get("fill") or "").startswith("url(#hatch-") for r in bands)
    kernel = check_structure(samples.handshake_close())
    kernel_bands = [r for r in kernel.iter(f"{{{NS['svg']}}}rect")
                    if "band" in (r.get("class") or "") and "kernel" in (r.get("class") or "")]
    assert kernel_bands and all((r.get("fill") or "").startswith("#") for r in kernel_bands)
    # The kernel's LISTEN and TIME-WAIT, each confirmed by a dump: one badge
    # apiece, carrying both sources.
    for state in ("LISTEN", "TIME-WAIT"):
        (badge,) = [g for g in groups(kernel, "state") if g.get("data-state") == state]
        assert badge.get("data-sources") == "kernel snapshot"


def _y(group: ET.Element) -> float:
    line = group.find("svg:line", NS)
    assert line is not None
    return float(line.get("y1") or 0)


def test_time_goes_down_and_long_gaps_are_broken() -> None:
    tl = samples.refused_after_syn_loss()
    root = check_structure(tl)
    arrows = groups(root, "packet")
    ys = [_y(g) for g in arrows]
    assert ys == sorted(ys)
    breaks = groups(root, "axis-break")
    assert len(breaks) == 1
    assert float(breaks[0].get("data-gap") or 0) == pytest.approx(1.0, abs=1e-6)
    # The 1 s gap costs a fixed break, not 1000x the 50 µs one.
    assert ys[1] - ys[0] < 200


def test_microsecond_rows_stay_readable() -> None:
    root = check_structure(samples.handshake_close())
    arrows = groups(root, "packet")
    ys = [_y(g) for g in arrows]
    # 35 µs between SYN-ACK and ACK still leaves room for a label.
    assert min(b - a for a, b in itertools.pairwise(ys)) >= 20


def test_api_calls_beside_their_column_with_errno() -> None:
    root = check_structure(samples.refused_after_syn_loss())
    calls = groups(root, "api")
    assert [g.get("data-errno") for g in calls] == ["ECONNREFUSED"]
    assert "failed" in (calls[0].get("class") or "")
    text = calls[0].find("svg:text", NS)
    assert text is not None and text.get("text-anchor") == "end"  # left of the client column
    assert "ECONNREFUSED" in "".join(text.itertext())


def test_text_is_escaped() -> None:
    tl = samples.refused_after_syn_loss()
    tl.title = "a <b> & \"c\""
    tl.events.append(Packet(samples.T0 + 9, "client", "server", "1.1.1.1", 1, "2.2.2.2", 2,
                            "P.", 1, 1, 3, annotations=("<script>",)))
    root = check_structure(tl)
    assert any("<script>" in (t.text or "") for t in root.iter(f"{{{NS['svg']}}}text"))


def test_several_connections_are_tagged_with_the_client_port() -> None:
    tl = samples.handshake_close()
    first = tl.packets()[0]
    tl.events.append(Packet(first.time + 0.5, "client", "server", first.src, 40001, first.dst,
                            first.dport, "S", 7, 0, 0))
    text = render_svg(tl)
    assert ":40000 [S] seq 0" in text and ":40001 [S] seq 7" in text


def test_catalog_scenarios_from_the_model_are_valid_svg() -> None:
    sim = pytest.importorskip("tcplab.model.sim")
    from tcplab.scenario import builtin_ids, load

    played = 0
    for scenario_id in builtin_ids():
        scenario = load(scenario_id)
        if not sim.sim_can_play(scenario) or scenario_id == "mss-and-segmentation":
            continue  # the bulk transfer is 800 events: valid too, but slow to parse here
        check_structure(sim.run_scenario(scenario))
        played += 1
    assert played >= 10


@pytest.mark.parametrize("name", ["handshake_close", "lost_final_ack"])
def test_golden(name: str) -> None:
    text = render_svg(samples.ALL[name]())
    path = HERE / "golden" / f"ladder_{name}.svg"
    if os.environ.get("TCPLAB_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing; run with TCPLAB_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8")


def test_analyzer_timelines_from_real_captures_render() -> None:
    core = pytest.importorskip("tcplab.analyze.core")
    ladder = pytest.importorskip("tcplab.analyze.ladder")
    zeek = pytest.importorskip("tcplab.analyze.zeek")
    from tcplab.render.html import render_html

    traces = SHARED / "peer-traces/zeek/traces/tcp"
    if not traces.is_dir():
        pytest.skip("peer traces not present")
    for name in ("fin_retransmission.pcap", "retransmit-timeout.pcapng", "syn-then-rst.pcap"):
        analysis = core.analyze_file(traces / name, zeek.DEFAULT_LIKELY_SERVER_PORTS, False, True)
        for number, connection in enumerate(analysis.connections):
            packets = [p for p in analysis.packets if p.stream == number]
            tl = ladder.timeline_for(packets, connection)
            check_structure(tl)
            assert render_html(tl).count('<details id="pkt-') == len(tl.packets())


def test_snapshots_shade_only_states_nobody_else_reported() -> None:
    from tcplab.states import State
    from tcplab.timeline import Snapshot, Source, StateChange

    confirmed = check_structure(samples.handshake_close())
    band_classes = [r.get("class") or "" for r in confirmed.iter(f"{{{NS['svg']}}}rect")
                    if "band" in (r.get("class") or "")]
    assert band_classes and not any("snapshot" in c for c in band_classes)
    tl = samples.refused_after_syn_loss()
    t = tl.events[-1].time
    tl.events += [
        StateChange(t + 1, "server", None, State.ESTABLISHED, Source.KERNEL),
        Snapshot(t + 2, "server", State.CLOSE_WAIT, "10.0.0.2:8080", "10.0.0.1:40000"),
    ]
    root = check_structure(tl)
    server = [r for r in root.iter(f"{{{NS['svg']}}}rect") if "band" in (r.get("class") or "")
              and float(r.get("x") or 0) > 600]
    assert [(r.get("data-state"), (r.get("class") or "").split()[-1]) for r in server] == [
        ("ESTABLISHED", "kernel"), ("CLOSE-WAIT", "snapshot")]
