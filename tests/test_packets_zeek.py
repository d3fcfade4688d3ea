"""Every Zeek trace: ``tcplab packets --json`` agrees with tshark 4.0 on every
TCP packet (stream, relative and raw seq/ack, nxtseq, length, flags, window,
options, time).

TCP inside UDP tunnels (Teredo, GTP-U) is compared too, against tshark with
its Teredo heuristic on (``teredo.heuristic_teredo``: Teredo peers use any
UDP port, and Zeek detects Teredo the same way), and TCP that tshark finds
only by reassembling the outer IPv4 fragments of a GTP-U datagram (tcplab
reassembles them too, ``tcplab.wire.fragments``, and shows the packet on
the last fragment's frame as tshark does).  Still excluded: TCP quoted in
ICMP errors.
See ``compare_with_tshark`` in conftest.py for the one field-level
exception, PPPoE frames whose IP length exceeds the frame.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import (
    PACKET_FIELDS,
    ZEEK_TRACES,
    compare_with_tshark,
    expected_view,
    needs_tshark,
    packets_json,
)

TRACES = sorted(
    p.relative_to(ZEEK_TRACES).as_posix()
    for p in [*ZEEK_TRACES.rglob("*.pcap"), *ZEEK_TRACES.rglob("*.pcapng")]
)

# Tunnelled TCP frames per trace, as measured: (decapsulated and compared,
# of which in a datagram reassembled from outer IPv4 fragments).
TUNNELLED = {
    "tunnels/Teredo.pcap": (22, 0),
    "tunnels/gtp/gtp2_different_udp_port.pcap": (78, 42),
}


def tshark_tunnel_rows(path: Path) -> list[dict[str, str]]:
    """tshark's TCP rows with the Teredo heuristic on, plus the outer IPv4
    fragment offset that marks a reassembled datagram."""
    fields = [*PACKET_FIELDS, "ip.frag_offset"]
    args = ["tshark", "-n", "-r", str(path), "-o", "teredo.heuristic_teredo:TRUE", "-Y", "tcp"]
    args += ["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in fields:
        args += ["-e", field]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]


def compare_tunnelled(path: Path) -> tuple[int, int]:
    """Every tshark TCP frame, tunnelled ones included, against our JSON;
    returns (tunnelled frames compared, of which reassembled)."""
    rows = tshark_tunnel_rows(path)
    reassembled = {
        int(r["frame.number"]) for r in rows if r["ip.frag_offset"].split(",")[0] not in ("", "0")
    }
    reference = {int(r["frame.number"]): r for r in rows}
    ours = packets_json(path)
    assert sorted(ours) == sorted(reference), "TCP packet sets differ"
    mismatches = []
    for frame, mine_json in ours.items():
        mine = expected_view(mine_json, clamp=False)
        theirs = {k: reference[frame][k] for k in mine}
        if mine != theirs:
            mismatches.append(
                (frame, {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]})
            )
    assert mismatches == []
    tunnelled = sum(1 for r in rows if r["udp.port"] and int(r["frame.number"]) in ours)
    return tunnelled, len(reassembled & set(ours))


@needs_tshark
@pytest.mark.parametrize("trace", TRACES)
def test_trace_matches_tshark(trace: str) -> None:
    if trace in TUNNELLED:
        assert compare_tunnelled(ZEEK_TRACES / trace) == TUNNELLED[trace]
        return
    comparison = compare_with_tshark(ZEEK_TRACES / trace)
    assert len(comparison.tunneled) == 0
    assert sorted(comparison.ours) == sorted(comparison.reference), "TCP packet sets differ"
    assert comparison.mismatches == []


def test_every_trace_is_listed() -> None:
    assert len(TRACES) == 40
    assert "tcp/http-on-irc-port-missing-syn.pcapng" in TRACES
