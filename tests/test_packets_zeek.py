"""Every Zeek trace: ``tcplab packets --json`` agrees with tshark 4.0 on every
TCP packet (stream, relative and raw seq/ack, nxtseq, length, flags, window,
options, time).

Excluded, and counted so the exclusion cannot grow silently: TCP that
tshark finds inside UDP tunnels (GTP-U) or ICMP errors, which tcplab does
not decapsulate (see ``compare_with_tshark`` in conftest.py for the one
field-level exception, PPPoE frames whose IP length exceeds the frame).
"""

from __future__ import annotations

import pytest

from conftest import ZEEK_TRACES, compare_with_tshark, needs_tshark

TRACES = sorted(
    p.relative_to(ZEEK_TRACES).as_posix()
    for p in [*ZEEK_TRACES.rglob("*.pcap"), *ZEEK_TRACES.rglob("*.pcapng")]
)

# Frames excluded per trace, as measured: the test fails if this changes.
TUNNELED = {"tunnels/gtp/gtp2_different_udp_port.pcap": 78}


@needs_tshark
@pytest.mark.parametrize("trace", TRACES)
def test_trace_matches_tshark(trace: str) -> None:
    comparison = compare_with_tshark(ZEEK_TRACES / trace)
    assert len(comparison.tunneled) == TUNNELED.get(trace, 0)
    assert sorted(comparison.ours) == sorted(comparison.reference), "TCP packet sets differ"
    assert comparison.mismatches == []


def test_every_trace_is_listed() -> None:
    assert len(TRACES) == 40
    assert "tcp/http-on-irc-port-missing-syn.pcapng" in TRACES
