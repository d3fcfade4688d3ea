"""A drill run as a ``Timeline``, a pcapng, and a JSON verdict.

Two endpoints: ``local`` (the stack under test: the kernel in the lab
namespace, or the model) and ``remote`` (the script's peer, which the lab
plays).  Every packet and call carries its script line as an annotation
(``line 12: +0 > S. 0:0(0) ack 1 <...>``), the pcapng writes those lines as
packet comments, and the states are the kernel's tracepoints (Source.KERNEL)
or the model's (Source.MODEL).  A failing line is pinned as a Note.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from tcplab.capture import PcapngWriter
from tcplab.drill.engine import Record
from tcplab.drill.packets import decode
from tcplab.drill.runner import DrillRun
from tcplab.timeline import ApiCall, EndpointInfo, Note, Packet, StateChange, Timeline

LINKTYPE_RAW = 101


def _tag(rec: Record) -> str:
    return f"line {rec.line}: {rec.text}"


def build_timeline(run: DrillRun) -> Timeline:
    start = run.start_ns / 1e9
    fam = "IPv6" if run.family == socket.AF_INET6 else "IPv4"
    timeline = Timeline(
        title=f"{Path(run.path).name} ({'model' if run.model else 'Linux'}, {fam})",
        producer="sim" if run.model else "lab",
        endpoints=[
            EndpointInfo(
                "local", run.local[0], run.local[1], "client" if _active(run) else "server"
            ),
            EndpointInfo(
                "remote", run.remote[0], run.remote[1], "server" if _active(run) else "client"
            ),
        ],
        meta={
            "script": run.path,
            "stack": "model" if run.model else "linux",
            "family": fam,
            "passed": run.passed,
            "clock": "script seconds",
            "failure": run.message(),
            "run_id": run.run_id,
        },
    )
    by_packet: dict[bytes, str] = {}
    by_call: dict[tuple[int, int], str] = {}
    for rec in run.outcome.records:
        if rec.kind in ("inbound", "outbound") and rec.raw:
            by_packet.setdefault(rec.raw, _tag(rec))
        elif rec.kind == "syscall":
            name = rec.text.split("(", 1)[0].split()[-1] if "(" in rec.text else rec.text
            ret, _, err = rec.result.partition(" ")
            timeline.add(
                ApiCall(
                    rec.end_us / 1e6,
                    "local",
                    name,
                    (f"line {rec.line}",),
                    ret,
                    err or None,
                    rec.start_us / 1e6,
                )
            )
            by_call[(rec.line, rec.start_us)] = _tag(rec)
        elif rec.kind in ("command", "code"):
            timeline.add(Note(rec.start_us / 1e6, _tag(rec), "local"))
    isn: dict[str, int] = {}
    for ns, direction, raw in run.wire:
        pkt = decode(raw, 0)
        if pkt is None:
            continue
        sender = "remote" if direction == "in" else "local"
        if pkt.tcp.flags & 0x02:
            isn[sender] = pkt.tcp.seq
        other = "local" if sender == "remote" else "remote"
        tag = by_packet.get(raw)
        timeline.add(
            Packet(
                time=ns / 1e9 - start,
                sender=sender,
                receiver=other,
                src=pkt.src,
                sport=pkt.tcp.sport,
                dst=pkt.dst,
                dport=pkt.tcp.dport,
                flags=pkt.tcp.flags.tcpdump(),
                seq=pkt.tcp.seq,
                ack=pkt.tcp.ack,
                length=len(pkt.payload),
                window=pkt.tcp.window,
                options=pkt.tcp.option_text(),
                rel_seq=(pkt.tcp.seq - isn[sender]) % (1 << 32) if sender in isn else None,
                rel_ack=(pkt.tcp.ack - isn[other]) % (1 << 32) if other in isn else None,
                annotations=(tag,) if tag else ("not in the script",),
                raw=raw,
            )
        )
    timeline.extend(_states(run, start))
    failure = run.outcome.failure
    if failure is not None:
        last = max((e.time for e in timeline.events), default=0.0)
        timeline.add(
            Note(last, f"FAIL line {failure.line}: {failure.message.splitlines()[0]}", "local")
        )
    timeline.sort()
    timeline.meta["call_lines"] = {f"{k[0]}@{k[1]}": v for k, v in by_call.items()}
    return timeline


def _active(run: DrillRun) -> bool:
    return any(
        (r.kind == "syscall" and "connect(" in r.text) or "MSG_FASTOPEN" in r.text
        for r in run.outcome.records
    )


def _states(run: DrillRun, start: float) -> list[StateChange | Note]:
    if run.model:
        return [e for e in run.model_events if isinstance(e, StateChange)]
    if not run.kernel_events:
        return []
    from tcplab.lab.timeline_build import kernel_events

    hosts = {run.local[0]: "local", run.remote[0]: "remote"} if run.local[0] else {}
    out: list[StateChange | Note] = []
    for event in kernel_events(run.kernel_events, hosts, []):
        if isinstance(event, StateChange) and event.endpoint == "local":
            out.append(
                StateChange(
                    event.time - start,
                    event.endpoint,
                    event.old,
                    event.new,
                    event.source,
                    event.cause,
                )
            )
    return out


def write_pcapng(run: DrillRun, timeline: Timeline, path: Path) -> None:
    """Every datagram of the run; each script packet commented with its line."""
    header = (
        f"tcplab drill {run.path} ({timeline.meta.get('stack')}, {timeline.meta.get('family')})"
    )
    calls = sorted(timeline.api_calls(), key=lambda c: c.started or c.time)
    packets = [p for p in timeline.packets() if p.raw]
    pending = list(calls)
    with path.open("wb") as fileobj:
        writer = PcapngWriter(fileobj, comment=header)
        iface = writer.add_interface(LINKTYPE_RAW, "tcplab-drill", tsresol=9)
        for packet in packets:
            lines: list[str] = []
            while pending and (pending[0].started or pending[0].time) <= packet.time:
                call = pending.pop(0)
                lines.append(_call_comment(call, timeline))
            lines.extend(packet.annotations)
            writer.write(
                max(0, round(packet.time * 1e9)), packet.raw, iface, "\n".join(lines) or None
            )


def _call_comment(call: ApiCall, timeline: Timeline) -> str:
    key = f"{call.args[0].removeprefix('line ')}@{round((call.started or call.time) * 1e6)}"
    text = timeline.meta.get("call_lines", {}).get(key, call.args[0])
    got = f"{call.result} {call.errno}" if call.errno else call.result
    return f"{text}  [returned {got}]"


def verdict(run: DrillRun) -> dict[str, Any]:
    f = run.outcome.failure
    return {
        "script": run.path,
        "stack": "model" if run.model else "linux",
        "family": "ipv6" if run.family == socket.AF_INET6 else "ipv4",
        "passed": run.passed,
        "kind": f.kind if f else None,
        "line": f.line if f else None,
        "message": run.message() or None,
        "seconds": round(run.seconds, 3),
    }
