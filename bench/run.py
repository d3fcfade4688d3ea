"""Run every tcplab benchmark in turn (``make bench``).

Each benchmark prints tcplab's figures side by side with the peer tools on
the same input in one run; this script only runs them one after another so
they do not compete for the machine's two cores.  Extra arguments go to
every benchmark that accepts them, e.g. ``bench/run.py --only analyze``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "analyze": ["analyze_bench.py"],  # tcplab analyze vs tshark, tcptrace, dpkt, cat
    "sockets": ["sockets_bench.py"],  # sock_diag snapshot vs ss -tan / -tanp
    "catalog": ["catalog_bench.py"],  # the live scenario catalog, time per scenario
    "scale": ["scale_bench.py"],  # one file vs a ring of 8: single, --jobs 2, Dask local:1/2
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    args = parser.parse_args()
    status = 0
    for name in args.only or list(BENCHMARKS):
        script = HERE / BENCHMARKS[name][0]
        print(f"\n=== {name}: {script.name} ===", flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)])
        print(f"=== {name}: exit {rc}, {time.monotonic() - start:.1f} s ===", flush=True)
        status = status or rc
    return status


if __name__ == "__main__":
    sys.exit(main())
