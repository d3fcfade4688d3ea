"""Soak: the live lab under load, killed at random, and crowded.

Three phases, each counted in failures, flakes and leftovers:

1. ``--rounds`` times ``tcplab run --all --json -`` in a row while a CPU
   burner this script starts (one busy process per core) keeps the cores
   busy; stopped at the end of the phase.  A scenario that did not hold its
   facts is run again alone: held on the rerun -> a flake, failed again ->
   a failure.
2. ``--kills`` runs of a random scenario, each sent SIGKILL, SIGTERM or
   SIGINT after a random delay; the next run reaps what a SIGKILL left
   (``tcplab run`` reaps dead runs first).  A failure: a traceback, an exit
   status other than 0 (finished first), 128+signal or -9, more than one
   line on stderr after SIGINT/SIGTERM, or a leftover once reaped.  A
   SIGINT/SIGTERM sent before tcplab's handlers exist (``/proc/PID/status``
   does not show SIGTERM caught: the interpreter is still starting, before
   ``tcplab.entry``'s first line) meets Python's defaults, out of tcplab's
   reach: it is counted apart ("before the handlers"), and its run must
   still leave nothing behind.
3. ``--concurrent`` runs at once of different scenarios; each must pass.

Leftovers are counted per run this script started (its run ids are read from
``/run/tcplab/*/state.json`` while it lives): a namespace, TUN link, tracefs
instance or mount, or state directory of that run still there once it is
over and reaped.  Other users' runs on the machine are never looked at or
touched.  Run as root:

    .venv/bin/python bench/soak.py                      (10 rounds, 100 kills, 8 at once)
    .venv/bin/python bench/soak.py --rounds 2 --kills 20 --concurrent 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tcplab.lab.host import RunWatch
from tcplab.signals import installed_in

STATE_ROOT = Path("/run/tcplab")
TCPLAB = [sys.executable, "-m", "tcplab"]


@dataclass
class Tally:
    failures: list[str] = field(default_factory=list)
    flakes: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    early: list[str] = field(default_factory=list)  # signalled before tcplab's handlers
    runs: int = 0


def leftovers(run_id: str) -> list[str]:
    """What of one run is still on the host."""
    left: list[str] = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left += [f"namespace {n}" for n in ns.split() if n.startswith(f"tcplab-{run_id}-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left += [f"link {ln.split(':')[1].strip()}" for ln in links.splitlines() if f"tl{run_id}" in ln]
    mounts = Path("/proc/mounts").read_text().splitlines()
    left += [f"mount {m.split()[1]}" for m in mounts if run_id in m]
    for line in mounts:
        parts = line.split()
        if parts[2] == "tracefs" and (Path(parts[1]) / "instances" / f"tcplab-{run_id}").exists():
            left.append(f"tracefs instance tcplab-{run_id} in {parts[1]}")
    if (STATE_ROOT / run_id).exists():
        left.append(f"state dir {STATE_ROOT / run_id}")
    return left


def start(argv: list[str], watch: RunWatch) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*TCPLAB, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)  # fmt: skip
    watch.pids.add(proc.pid)
    return proc


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # (a background job starts with it ignored)


def scenarios() -> list[str]:
    from tcplab.scenario import builtin_ids

    return builtin_ids()


# -- phase 1 ---------------------------------------------------------------------------------


def burner(cores: int, nice: int) -> list[subprocess.Popen[bytes]]:
    code = f"import os\nos.nice({nice})\nwhile True:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(cores)]


def phase_all(rounds: int, nice: int, watch: RunWatch, tally: Tally) -> None:
    cores = os.cpu_count() or 2
    burners = burner(cores, nice)
    try:
        for n in range(rounds):
            began = time.monotonic()
            proc = start(["run", "--all", "--json", "-", "--outdir", "/tmp/tcplab-soak"], watch)
            out, err = proc.communicate(timeout=3600)
            tally.runs += 1
            if "Traceback" in err:
                tally.failures.append(f"round {n + 1}: traceback: {err[-300:]}")
            try:
                rows = json.loads(out)["scenarios"]
            except (ValueError, KeyError):
                tally.failures.append(f"round {n + 1}: no JSON table (exit {proc.returncode})")
                continue
            bad = [r for r in rows if not r["ok"]]
            print(f"  round {n + 1}: {len(rows) - len(bad)}/{len(rows)} scenarios held, "
                  f"{time.monotonic() - began:.0f} s under load", flush=True)  # fmt: skip
            for row in bad:
                why = row["error"] or "; ".join(row["failed"])[:300]
                again = start(["run", row["scenario"], "--outdir", "/tmp/tcplab-soak"], watch)
                again.communicate(timeout=600)
                tally.runs += 1
                entry = f"round {n + 1}: {row['scenario']}: {why}"
                (tally.flakes if again.returncode == 0 else tally.failures).append(entry)
    finally:
        for b in burners:
            b.kill()  # our own burner, by pid
            b.wait()


# -- phase 2 ---------------------------------------------------------------------------------


def phase_kills(kills: int, names: list[str], rng: random.Random, watch: RunWatch,
                tally: Tally) -> None:  # fmt: skip
    signals = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
    for n in range(kills):
        name, signum, delay = rng.choice(names), rng.choice(signals), rng.uniform(0.0, 2.0)
        proc = start(["run", name, "--outdir", "/tmp/tcplab-soak"], watch)
        time.sleep(delay)
        ready = installed_in(proc.pid)
        proc.send_signal(signum)  # our own child, by pid
        _, err = proc.communicate(timeout=120)
        tally.runs += 1
        code = proc.returncode
        what = f"kill {n + 1}: {name} {signal.Signals(signum).name} at {delay:.2f} s"
        lines = [ln for ln in err.splitlines() if ln.strip() and "reaped dead run" not in ln]
        if not ready and signum != signal.SIGKILL and code in (-signum, 1):
            # Python's defaults: death by the signal, or KeyboardInterrupt (exit 1)
            # raised in the interpreter's own start-up.
            tally.early.append(f"{what}: exit {code}")
        elif "Traceback" in err:
            tally.failures.append(f"{what}: traceback: {err[-300:]}")
        elif signum == signal.SIGKILL:
            if code not in (-9, 0, 1):
                tally.failures.append(f"{what}: exit {code}")
        elif code not in (0, 1, 128 + signum):
            tally.failures.append(f"{what}: exit {code}: {err[-200:]}")
        elif code == 128 + signum and len(lines) != 1:
            tally.failures.append(f"{what}: {len(lines)} lines on stderr: {lines}")
    # One more run reaps what the last SIGKILL left.
    last = start(["run", "handshake-close", "--outdir", "/tmp/tcplab-soak"], watch)
    _, err = last.communicate(timeout=300)
    tally.runs += 1
    if last.returncode != 0:
        tally.failures.append(f"the reaping run after the kills: exit {last.returncode}: "
                              f"{err[-300:]}")  # fmt: skip


# -- phase 3 ---------------------------------------------------------------------------------


def phase_concurrent(count: int, names: list[str], rng: random.Random, watch: RunWatch,
                     tally: Tally) -> None:  # fmt: skip
    quick = [n for n in names if n not in ("keepalive-dead-peer", "backlog-full")] or names
    chosen = rng.sample(quick, min(count, len(quick)))
    procs = {name: start(["run", name, "--outdir", f"/tmp/tcplab-soak/{name}"], watch)
             for name in chosen}  # fmt: skip
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=900)
        tally.runs += 1
        if proc.returncode == 0:
            continue
        again = start(["run", name, "--outdir", f"/tmp/tcplab-soak/{name}"], watch)
        again.communicate(timeout=600)
        tally.runs += 1
        entry = f"{name} (with {len(chosen) - 1} others): exit {proc.returncode}: {err[-300:]}"
        (tally.flakes if again.returncode == 0 else tally.failures).append(entry)
    print(f"  {len(chosen)} at once: {', '.join(chosen)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="tcplab run --all under load")
    parser.add_argument("--kills", type=int, default=100, help="random kills and reaps")
    parser.add_argument("--concurrent", type=int, default=8, help="runs at once")
    parser.add_argument("--burner-nice", type=int, default=0,
                        help="niceness of the CPU burner (a shared machine: 10)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("soak: needs root (the live lab)", file=sys.stderr)
        return 77
    rng = random.Random(args.seed)
    names = scenarios()
    watch = RunWatch()
    phases: dict[str, Tally] = {}
    began = time.monotonic()
    try:
        plan: list[tuple[str, Callable[[Tally], None]]] = [
            (f"run --all x{args.rounds} under a CPU burner",
             lambda t: phase_all(args.rounds, args.burner_nice, watch, t)),
            (f"{args.kills} random kills and reaps",
             lambda t: phase_kills(args.kills, names, rng, watch, t)),
            (f"{args.concurrent} concurrent runs",
             lambda t: phase_concurrent(args.concurrent, names, rng, watch, t)),
        ]  # fmt: skip
        for label, run in plan:
            print(f"{label} ...", flush=True)
            started = time.monotonic()
            tally = phases[label] = Tally()
            ids_before = set(watch.ids)
            run(tally)
            time.sleep(0.5)
            for run_id in sorted(watch.ids - ids_before):
                tally.leftovers += [f"{run_id}: {item}" for item in leftovers(run_id)]
            print(f"  {tally.runs} runs, {time.monotonic() - started:.0f} s", flush=True)
    finally:
        watch.stop()
    print()
    print(f"{'phase':45} {'runs':>6} {'failures':>9} {'flakes':>7} {'leftovers':>10}")
    for label, t in phases.items():
        print(f"{label:45} {t.runs:>6} {len(t.failures):>9} {len(t.flakes):>7} "
              f"{len(t.leftovers):>10}")  # fmt: skip
    print(f"{len(watch.ids)} lab runs seen, {time.monotonic() - began:.0f} s")
    early = [item for t in phases.values() for item in t.early]
    if early:
        print(f"{len(early)} signals arrived before tcplab's handlers (the interpreter was "
              "still starting; Python's defaults; leftovers still counted):")
        print("".join(f"  {item}\n" for item in early), end="")
    for t in phases.values():
        for kind, items in (("failure", t.failures), ("flake", t.flakes),
                            ("leftover", t.leftovers)):  # fmt: skip
            for item in items:
                print(f"{kind}: {item}")
    worst = [t for t in phases.values() if t.failures or t.leftovers]
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
