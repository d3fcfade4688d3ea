"""Benchmark: a 10,000-socket table read by tcplab and by ss, side by side.

In a network namespace of its own (removed at the end, also on failure) the
benchmark opens 5,000 connected pairs on loopback (10,000 sockets plus the
listener), then times, interleaved in one run:

  snapshot   tcplab.sockets.diag.dump_tcp()                      (the sock_diag read)
  view       take_snapshot + diagnose + group + JSON, in process (what --json does)
  cli        python -m tcplab sockets --json -a                  (a whole process)
  cli table  python -m tcplab sockets -a   (the text table, into a pipe)
  ss -tan    ss -tan   (output read through a pipe)
  ss -tanp   ss -tanp  (with the /proc scan for owners)

Target (issue 7): snapshot within 3x ``ss -tan``.  Run as root:
``.venv/bin/python bench/sockets_bench.py [--pairs 5000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from tcplab.commands.sockets import snapshot_json
from tcplab.sockets.diag import dump_tcp, entered_netns
from tcplab.sockets.diagnose import diagnose
from tcplab.sockets.view import STATE_GROUPS, SocketFilter, take_snapshot


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    new_hard = max(hard, need)
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, new_hard))


def open_pairs(pairs: int) -> list[socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    kept = [listener]
    for _ in range(pairs):
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        kept += (client, server)
    return kept


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def run_ss(*args: str) -> None:
    subprocess.run(["ss", *args], stdout=subprocess.PIPE, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("sockets_bench: needs root (it creates a network namespace)", file=sys.stderr)
        return 77
    raise_fd_limit(2 * args.pairs + 1024)
    name = f"tcplab-sockets-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    kept: list[socket.socket] = []
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        # The whole measurement runs with this thread inside the namespace, so
        # ss (forked from it) and dump_tcp() see the same table.
        with entered_netns(f"/var/run/netns/{name}"):
            start = time.perf_counter()
            kept = open_pairs(args.pairs)
            opened = time.perf_counter() - start
            count = len(dump_tcp())
            print(f"{count} TCP sockets in namespace {name} (opened in {opened:.2f} s)")
            keep_all = SocketFilter(STATE_GROUPS["all"])

            def view() -> None:
                snap = take_snapshot()
                snapshot_json(snap, keep_all, diagnose(snap))

            cli = [sys.executable, "-m", "tcplab", "sockets", "--json", "-a"]
            table = [sys.executable, "-m", "tcplab", "sockets", "-a"]
            results: dict[str, list[float]] = {
                "snapshot (dump_tcp)": [],
                "view (--json, in process)": [],
                "cli (tcplab sockets --json -a)": [],
                "cli table (tcplab sockets -a)": [],
                "ss -tan": [],
                "ss -tanp": [],
            }
            for _ in range(args.rounds):  # interleaved, so load affects all alike
                results["snapshot (dump_tcp)"] += timed(dump_tcp, 1)
                results["ss -tan"] += timed(lambda: run_ss("-tan"), 1)
                results["view (--json, in process)"] += timed(view, 1)
                results["ss -tanp"] += timed(lambda: run_ss("-tanp"), 1)
                results["cli (tcplab sockets --json -a)"] += timed(
                    lambda: subprocess.run(cli, stdout=subprocess.PIPE, check=True), 1
                )
                results["cli table (tcplab sockets -a)"] += timed(
                    lambda: subprocess.run(table, stdout=subprocess.PIPE, check=True), 1
                )
    finally:
        for s in kept:
            s.close()
        subprocess.run(["ip", "netns", "del", name], check=False)
    print(f"{'':34} {'min':>9} {'median':>9}   ({args.rounds} rounds)")
    for label, times in results.items():
        print(f"{label:34} {min(times) * 1000:8.1f}ms {statistics.median(times) * 1000:8.1f}ms")
    ratio = statistics.median(results["snapshot (dump_tcp)"]) / statistics.median(
        results["ss -tan"]
    )
    verdict = "OK" if ratio <= 3.0 else "OVER TARGET"
    print(f"snapshot / ss -tan (median) = {ratio:.2f}x  (target <= 3x: {verdict})")
    return 0 if ratio <= 3.0 else 1


if __name__ == "__main__":
    sys.exit(main())
