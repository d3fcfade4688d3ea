"""Benchmark: one capture as one file and as a ring of 8, single process and on Dask.

A synthetic capture (tcplab.analyze.synth, default 4 M packets) is written
once and cut with ``editcap -c`` into a ring of 8 files.  Then, in one run,
side by side:

  single        tcplab analyze --conn-log ONE             (one process)
  single ring   tcplab analyze --conn-log RING/           (one process, merged)
  jobs 2        tcplab analyze --jobs 2 --conn-log ONE    (when the option exists)
  dask local:1  the ring on a LocalCluster of 1 worker    (in this process)
  dask local:2  the ring on a LocalCluster of 2 workers

Before the rounds every input's page cache is settled as a capture read
from disk has it (``settle_page_cache``): the one file and the ring are
then compared on the analysis, not on how their pages were written.  With
``--as-written`` they are not, and the one file is rewritten by editcap as
the ring's files are (small writes: a file just written by tcpdump).

Commands run as separate processes (wall time, peak RSS from wait4); the
Dask runs go through ``tcplab.scale.cluster.run`` in this process, so the
stage figures (read and analyse task seconds, shuffle bytes, each worker's
peak RSS) can be printed; cluster start-up is timed apart.  Every run's
conn.log must equal the single-process one.

Targets (issue 12): 2 workers >= 1.7x one worker; per-worker throughput
within 20% of the single-process engine; memory per worker bounded.
At the end: a projection for 1 TB over 32 workers from the measured
per-packet costs and shuffle volume (docs/scale.md states the assumptions).

Figures are wall time and CPU time: on a shared machine wall time measures
the neighbours too, so the scaling is also given by the busiest worker's
CPU seconds (what the wall time would be with a core per worker).

Medians of ``--rounds`` (5) interleaved rounds (a VM's figures move by
10% between runs); Dask CPU is the worker processes' own (tasks, Dask's
work and serialisation), peak RSS the largest of the rounds.

Run: ``.venv/bin/python bench/scale_bench.py [--packets 4000000] [--rounds 5]``,
or ``--capture FILE`` to cut an existing classic pcap instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class Row:
    name: str
    seconds: float  # wall
    cpu: float  # CPU seconds: the process's, or every worker's tasks
    packets: int
    workers: int
    rss: int  # bytes: the process's, or the largest worker's
    critical: float = 0.0  # CPU seconds of the busiest worker (Dask)
    note: str = ""


def _hwm(pid: int) -> int:
    """VmHWM of a live process (bytes); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_cmd(args: list[str], out: Path) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, peak RSS bytes, exit code) of one command.

    Peak RSS is VmHWM sampled while it runs: wait4's ru_maxrss would include
    this (large) process's high-water mark, inherited across fork and exec."""
    start = time.perf_counter()
    peak = 0
    with open(out, "wb") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.DEVNULL, cwd=ROOT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _hwm(proc.pid))
            time.sleep(0.05)
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, cpu, peak, os.waitstatus_to_exitcode(status)


def has_jobs() -> bool:
    text = subprocess.run(
        [PY, "-m", "tcplab", "analyze", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    return "--jobs" in text


def _cpu() -> float:
    """This process's CPU seconds, all threads (run on every Dask worker)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def dask_run(workers: int, ring: Path, want: str) -> tuple[Row, float, Any]:
    """The ring on a LocalCluster.  CPU is each worker process's own
    (getrusage before and after: the tasks, Dask's own work, serialisation);
    the tasks' share is in ``result.worker_cpu``.  The client's CPU (this
    process: the scheduler's threads and the merge of the conn.log runs) is
    in the note."""
    from tcplab.scale.cluster import ClusterSpec, connect, run
    from tcplab.scale.engine import EngineOptions

    started = time.perf_counter()
    with connect(ClusterSpec(workers, None)) as client:
        startup = time.perf_counter() - started
        before = client.run(_cpu)
        t0, client0 = time.perf_counter(), _cpu()
        result = run(client, [str(ring)], EngineOptions(), want_log=True)
        seconds = time.perf_counter() - t0
        client_cpu = _cpu() - client0
        after = client.run(_cpu)
    per_worker = [after[k] - before[k] for k in after]
    note = "conn.log equal" if result.conn_log == want else "conn.log DIFFERS"
    note += f"; client {client_cpu:.1f} CPU s"
    name = f"dask local:{workers}"
    row = Row(
        name,
        seconds,
        sum(per_worker),
        result.packets,
        workers,
        result.worker_peak_rss,
        max(per_worker),
        note,
    )
    return row, startup, result


def settle_page_cache(paths: list[Path]) -> None:
    """Put every input in the page cache as a capture read from disk is:
    its own cached pages dropped (``posix_fadvise``, this file's only) and
    read back in order, so the kernel's readahead fills the cache in large
    folios.  A file just written in small writes (``editcap``'s ring) sits
    in small pages, and mapping those cost up to 0.1 s of system time per
    GB that a file written in large writes (the synthetic one.pcap) does
    not: the one file and the ring would be compared on how they were
    written, not on the analysis."""
    buf = bytearray(1 << 20)
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # (dirty pages stay)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            while os.readv(fd, [buf]):
                pass
        finally:
            os.close(fd)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=4_000_000)
    parser.add_argument("--capture", type=Path, help="use this classic pcap instead of a new one")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians)")
    parser.add_argument("--keep", type=Path, help="keep the captures in this directory")
    parser.add_argument(
        "--as-written",
        action="store_true",
        help="leave the inputs' page cache as writing them left it, the one file "
        "rewritten by editcap as the ring is (see settle_page_cache)",
    )
    args = parser.parse_args()
    if shutil.which("editcap") is None:
        print("editcap (Wireshark) is needed to cut the ring", file=sys.stderr)
        return 1
    from tcplab.analyze.synth import write_capture

    work = Path(args.keep or tempfile.mkdtemp(prefix="tcplab-scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        one, ring = work / "one.pcap", work / "ring"
        t0 = time.perf_counter()
        if args.capture is not None:
            one = args.capture
            packets = _count_packets(one)
            connections = "?"
        else:
            written = write_capture(one, args.packets, max(args.packets // 20, 1), seed=11)
            packets, connections = written["packets"], f"{written['connections']:,}"
        if ring.exists():
            shutil.rmtree(ring)
        ring.mkdir()
        subprocess.run(
            [
                "editcap",
                "-F",
                "pcap",
                "-c",
                str(-(-packets // 8)),
                str(one),
                str(ring / "ring.pcap"),
            ],
            check=True,
        )
        size = one.stat().st_size
        if args.as_written:  # the one file written as the ring was (by editcap), too
            written_one = work / "one-as-written.pcap"
            subprocess.run(["editcap", "-F", "pcap", str(one), str(written_one)], check=True)
            one = written_one
        else:
            settle_page_cache([one, *sorted(ring.iterdir())])
        print(
            f"capture: {packets:,} packets, {connections} connections, "
            f"{mb(size)}; ring of {len(list(ring.iterdir()))} files "
            f"(made in {time.perf_counter() - t0:.1f} s); {args.rounds} interleaved rounds\n",
            flush=True,
        )
        tcplab = [PY, "-m", "tcplab", "analyze", "--conn-log"]
        jobs = has_jobs()
        runs: dict[str, list[Row]] = {}
        results: dict[int, list[Any]] = {1: [], 2: []}
        startups: list[float] = []
        want = ""
        for round_ in range(args.rounds):
            secs, cpu, rss, rc = run_cmd([*tcplab, str(one)], work / "single.log")
            want = want or (work / "single.log").read_text()
            same = (work / "single.log").read_text() == want
            note = f"exit {rc}" if same else "conn.log DIFFERS between rounds"
            runs.setdefault("single", []).append(
                Row("single", secs, cpu, packets, 1, rss, cpu, note)
            )
            secs, cpu, rss, rc = run_cmd([*tcplab, str(ring)], work / "ring.log")
            same = (work / "ring.log").read_text() == want
            note = "conn.log equal" if same else "conn.log DIFFERS"
            runs.setdefault("single ring", []).append(
                Row("single ring", secs, cpu, packets, 1, rss, cpu, note)
            )
            if jobs:
                secs, cpu, rss, rc = run_cmd(
                    [PY, "-m", "tcplab", "analyze", "--jobs", "2", "--conn-log", str(one)],
                    work / "jobs.log",
                )
                same = (work / "jobs.log").read_text() == want
                note = "conn.log equal" if same else "conn.log DIFFERS"
                runs.setdefault("jobs 2", []).append(
                    Row("jobs 2", secs, cpu, packets, 2, rss, float("nan"), note)
                )
            for workers in (1, 2):
                row, startup, result = dask_run(workers, ring, want)
                startups.append(startup)
                runs.setdefault(row.name, []).append(row)
                results[workers].append(result)
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{k} {v[-1].seconds:.1f} s" for k, v in runs.items()),
                flush=True,
            )

        load = os.getloadavg()[0]
        rows = [_median_row(v) for v in runs.values()]
        print(f"\nload average at the end: {load:.1f} on {os.cpu_count()} cores")
        print(f"Dask cluster start-up (not in the figures): {median(startups):.1f} s")
        print(f"medians of {args.rounds} rounds:")
        print(
            f"\n{'run':<14}{'wall s':>8}{'CPU s':>8}{'pkts/s':>11}{'pkts/CPU-s':>12}"
            f"{'busiest worker CPU s':>22}{'peak RSS':>10}  note"
        )
        for r in rows:
            ok = r.seconds == r.seconds and r.seconds > 0
            rate = r.packets / r.seconds if ok else 0
            per_cpu = r.packets / r.cpu if ok and r.cpu else 0
            print(
                f"{r.name:<14}{r.seconds:>8.1f}{r.cpu:>8.1f}{rate:>11,.0f}{per_cpu:>12,.0f}"
                f"{r.critical:>22.1f}{mb(r.rss):>10}  {r.note}"
            )
        single = rows[0]
        d1 = next(r for r in rows if r.name == "dask local:1")
        d2 = next(r for r in rows if r.name == "dask local:2")
        r1, r2 = results[1][-1], results[2][-1]
        wall_speedup = d1.seconds / d2.seconds
        cpu_speedup = d1.critical / d2.critical
        per_worker = single.cpu / d2.cpu
        task_cpu = median([sum(r.worker_cpu.values()) for r in results[2]])
        per_worker_tasks = single.cpu / task_cpu
        print("\ntargets:")
        print(
            f"  2 workers vs 1 worker: {wall_speedup:.2f}x by wall time, {cpu_speedup:.2f}x by the "
            f"busiest worker's CPU time (target >= 1.7x): "
            f"{'met' if min(wall_speedup, cpu_speedup) >= 1.7 else 'NOT met'}"
            + ("" if wall_speedup >= 1.7 else f" (wall time under load {load:.1f})")
        )
        print(
            f"  per-worker throughput (local:2, packets per CPU second of the worker processes) "
            f"vs single process: {per_worker:.0%} (target >= 80%) "
            f"{'met' if per_worker >= 0.8 else 'NOT met'}; counting the tasks' CPU only: "
            f"{per_worker_tasks:.0%}"
        )
        print(
            f"  largest worker peak RSS: {mb(d2.rss)} (local:1: {mb(d1.rss)}) over "
            f"{r2.partitions} partitions of ~{mb(size / r2.partitions)} of capture each"
        )

        # Projection: 1 TB over 32 workers, from this run's per-unit costs.
        read_per_byte = median([r.read_seconds for r in results[2]]) / size
        analyse_per_packet = median([sum(r.partition_seconds) for r in results[2]]) / packets
        overhead = max(d2.cpu - task_cpu, 0.0) / packets  # Dask's own work, stage 3
        shuffle_per_byte = r2.shuffle_bytes / size
        tb = 1e12
        tb_packets = tb / (size / packets)
        cpu = read_per_byte * tb + (analyse_per_packet + overhead) * tb_packets
        print("\nmeasured per-unit costs (dask local:2, medians):")
        print(f"  read+decode+partition: {read_per_byte * 1e9:.2f} CPU s per GB of capture")
        print(f"  analyse: {analyse_per_packet * 1e6:.2f} CPU us per packet")
        print(f"  the rest of the worker processes' CPU: {overhead * 1e6:.2f} us per packet")
        print(
            f"  shuffle: {shuffle_per_byte:.2f} bytes of rows per byte of capture "
            f"({mb(r2.shuffle_bytes)}; {r1.partitions} partitions with 1 worker)"
        )
        print("projection, 1 TB over 32 workers (perfect balance, storage and network keep up):")
        print(
            f"  {tb_packets / 1e9:.2f} G packets, {cpu / 3600:,.2f} CPU hours "
            f"({cpu / 32:,.0f} CPU s per worker), shuffle {shuffle_per_byte * tb / 1e12:.2f} TB "
            f"({shuffle_per_byte * tb / 32 / 1e9:,.1f} GB per worker)"
        )
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _median_row(rows: list[Row]) -> Row:
    first = rows[0]
    notes = sorted({r.note for r in rows})
    return Row(
        first.name,
        median([r.seconds for r in rows]),
        median([r.cpu for r in rows]),
        first.packets,
        first.workers,
        max(r.rss for r in rows),
        median([r.critical for r in rows]),
        "; ".join(notes),
    )


def _count_packets(path: Path) -> int:
    from tcplab.capture import open_capture

    with open_capture(path) as reader:
        return sum(1 for _ in reader)


if __name__ == "__main__":
    sys.exit(main())
