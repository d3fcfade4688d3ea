"""Benchmark: the whole scenario catalog, live, one scenario after another (root).

    .venv/bin/python bench/catalog_bench.py [--repeat N] [SCENARIO ...]

For every built-in scenario (or the ones named): one ``Lab().run`` (namespaces,
TUN wire, tracefs, sock_diag, actors, teardown), no output files.  Prints per
scenario the wall time, the time spent waiting on timers, the rest, and
whether its facts held; then the totals.

"Waiting on timers" is measured, not estimated: the union of the intervals
during which a step was blocked on a timer the run cannot shorten -- a
``sleep`` or ``wait`` step of 0.5 s or more (they wait for a kernel timer:
a SYN-ACK or FIN retransmission, tcp_fin_timeout, or for a segment the wire
delays on purpose) and any call that ended in ETIMEDOUT (connect() through
the SYN backoff, recv() through the keepalive probes).  TIME-WAIT's fixed
60 s is never waited out: the catalog shows it in sock_diag snapshots.

Issue 6's target: the whole catalog in under 2 minutes on this 2-core
machine apart from those waits.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

from tcplab import scenario as scenarios
from tcplab.errors import TcplabError
from tcplab.lab.runner import Lab
from tcplab.timeline import Timeline

LONG_STEP = 0.5  # a sleep/wait at least this long waits on a timer, not for a round trip
TARGET = 120.0


@dataclass(frozen=True)
class Row:
    scenario: str
    seconds: float
    timer_waits: float
    held: int
    facts: int
    error: str = ""


def timer_waits(timeline: Timeline) -> float:
    """Seconds during which a step waited on a timer (overlaps counted once)."""
    spans: list[tuple[float, float]] = []
    for call in timeline.api_calls():
        if call.started is None:
            continue
        length = call.time - call.started
        waits = call.call in ("sleep", "wait") and length >= LONG_STEP
        if waits or call.errno == "ETIMEDOUT":
            spans.append((call.started, call.time))
    total = 0.0
    end = float("-inf")
    for start, stop in sorted(spans):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def run_one(lab: Lab, sid: str) -> Row:
    began = time.monotonic()
    try:
        result = lab.run(scenarios.load(sid))
    except TcplabError as exc:
        return Row(sid, time.monotonic() - began, 0.0, 0, 0, str(exc))
    held = sum(1 for f in result.facts if f.held)
    return Row(sid, result.seconds, timer_waits(result.timeline), held, len(result.facts))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help="built-in ids (default: the catalog)")
    parser.add_argument("--repeat", type=int, default=1, help="run the catalog N times")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("catalog_bench: the live lab needs root", file=sys.stderr)
        return 2
    ids = args.scenarios or scenarios.builtin_ids()
    failed = 0
    for round_ in range(args.repeat):
        rows: list[Row] = []
        wall = time.monotonic()
        with Lab(None) as lab:
            for sid in ids:
                row = run_one(lab, sid)
                rows.append(row)
                status = row.error or f"{row.held}/{row.facts} facts"
                rest = row.seconds - row.timer_waits
                print(f"{sid:24} {row.seconds:7.2f} s  timer waits {row.timer_waits:6.2f} s  "
                      f"rest {rest:6.2f} s  {status}", flush=True)  # fmt: skip
        wall = time.monotonic() - wall
        total = sum(r.seconds for r in rows)
        waits = sum(r.timer_waits for r in rows)
        bad = [r.scenario for r in rows if r.error or r.held != r.facts]
        failed += len(bad)
        print(f"round {round_ + 1}: {len(rows)} scenarios, wall {wall:.1f} s, sum of runs "
              f"{total:.1f} s, timer waits {waits:.1f} s, total minus timer waits "
              f"{wall - waits:.1f} s (target < {TARGET:.0f} s)"
              + (f"; facts failed in {', '.join(bad)}" if bad else ""))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
