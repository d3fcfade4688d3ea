"""A run's files: ``<id>.json`` (the timeline), ``<id>.pcapng`` (the wire, every
API call as a packet comment), and the ladder as SVG/DOT when a renderer exists.

pcapng: one interface, LINKTYPE_RAW (101: the TUN's bare IP datagrams),
nanosecond timestamps (if_tsresol 9).  The timeline's clock is
CLOCK_MONOTONIC; the file gets wall-clock time, as every capture tool writes
it (Wireshark shows dates), by adding ``meta["realtime_offset"]`` (seconds,
sampled at the start of the run; the section comment states it too).
Wireshark/tshark show EPB comments as ``frame.comment`` (``pkt_comment``
before 4.0).  A call's comment goes on the first packet
the wire saw after the call began (a connect() on its SYN); calls after the
last packet go on the last one; a run without packets keeps them in the
section header's comment.  Dropped packets are written too, commented.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tcplab.capture import PcapngWriter
from tcplab.capture.pcapng import DROPPED_BY_WIRE
from tcplab.errors import InputError
from tcplab.scenario_schema import NAME
from tcplab.timeline import ApiCall, Packet, Timeline

if TYPE_CHECKING:
    from tcplab.lab.runner import RunResult

LINKTYPE_RAW = 101


def call_text(call: ApiCall) -> str:
    return f"{call.actor}: {call.describe()}"


def write_pcapng(timeline: Timeline, path: Path) -> None:
    packets = [p for p in timeline.packets() if p.raw]
    comments: dict[int, list[str]] = {i: [] for i in range(len(packets))}
    leftover: list[str] = []
    for call in timeline.api_calls():
        began = call.started if call.started is not None else call.time
        index = next((i for i, p in enumerate(packets) if p.time >= began), None)
        if index is None:
            if packets:
                comments[len(packets) - 1].append("(after this packet) " + call_text(call))
            else:
                leftover.append(call_text(call))
        else:
            comments[index].append(call_text(call))
    for i, packet in enumerate(packets):
        if packet.dropped:
            comments[i].append(DROPPED_BY_WIRE + ": " + "; ".join(packet.annotations))
        elif packet.annotations:
            comments[i].append("wire: " + "; ".join(packet.annotations))
    offset = float(timeline.meta.get("realtime_offset", 0.0))
    header = f"tcplab run {timeline.meta.get('scenario', '')}"
    if offset:
        header += f" (times = CLOCK_MONOTONIC + {offset:.9f} s)"
    if leftover:
        header += "\n" + "\n".join(leftover)
    with path.open("wb") as fileobj:
        writer = PcapngWriter(fileobj, comment=header)
        iface = writer.add_interface(LINKTYPE_RAW, "tcplab-wire", tsresol=9)
        for i, packet in enumerate(packets):
            text = "\n".join(comments[i]) or None
            writer.write(round((packet.time + offset) * 1e9), packet.raw, iface, text)


def _renderer(module: str, names: tuple[str, ...]) -> Callable[[Timeline], str] | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    for name in names:
        fn: Any = getattr(mod, name, None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


def output_path(outdir: Path, name: str, suffix: str) -> Path:
    """``outdir/<name><suffix>``, refused when it would leave ``outdir``.

    ``name`` comes from a scenario file (its id, already checked to be a name
    by tcplab.scenario_schema); resolving the result catches whatever the
    check missed (a symlink planted in the output directory included).
    """
    if not NAME.fullmatch(name):
        raise InputError(f"id: {name!r:.60} is not a name (letters, digits, '-' or '_')")
    root = outdir.resolve()
    path = (outdir / f"{name}{suffix}").resolve()
    if path.parent != root:
        raise InputError(f"{outdir / (name + suffix)}: resolves to {path}, outside {root}")
    return path


def write_outputs(result: RunResult, outdir: Path, run_id: str) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    json_path = output_path(outdir, run_id, ".json")
    pcap_path = output_path(outdir, run_id, ".pcapng")
    json_path.write_text(result.timeline.to_json(), encoding="utf-8")
    result.json_path = outdir / json_path.name
    write_pcapng(result.timeline, pcap_path)
    result.pcapng_path = outdir / pcap_path.name
    for module, names, suffix in (
        ("tcplab.render.svg", ("render_ladder_svg", "render_svg", "ladder_svg"), ".svg"),
        ("tcplab.render.dot", ("render_ladder_dot", "render_dot", "ladder_dot"), ".dot"),
    ):
        render = _renderer(module, names)
        if render is not None:
            path = output_path(outdir, run_id, suffix)
            path.write_text(render(result.timeline), encoding="utf-8")
            result.extra_paths.append(outdir / path.name)


def packets_of(timeline: Timeline) -> list[Packet]:
    return timeline.packets()
