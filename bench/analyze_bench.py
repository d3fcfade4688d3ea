"""Benchmark: the engine's full analysis against tshark, tcptrace, argus and a dpkt loop.

Inputs (made in one run, in a private work directory):

  synthetic 1M  tcplab.analyze.synth, about 1.2 M packets over 55 k connections
                (full lifecycles, data, retransmissions, RST aborts, refused
                connects, unanswered SYNs), classic pcap, Ethernet/IPv4
  pcapng        the same capture as pcapng (editcap -F pcapng)
  gz            the same capture gzip-compressed
  loopback      tcpdump on the loopback of a network namespace created for the
                run (removed at the end, also on failure) while Python sockets
                talk on 127.0.0.1: >= 1 M packets
  synthetic 5M  the synthetic generator at 5 M packets over 275 k connections,
                started over 3,000 s instead of 600 s: the same connection rate
                (and connections open at once) as the 1 M file, a capture five
                times as long (memory: RSS flat from 1 M to 5 M)
  tiny          one connection (start-up cost: no compile or JIT per run)

Tools, each a separate process (wall time and peak RSS from wait4), rounds
interleaved, the median of ``--repeat`` (3) rounds:

  tcplab            python -m tcplab analyze FILE > /dev/null   (full analysis)
  tcplab conn-log   ... --conn-log        tcplab json  ... --json
  tcplab packets    ... --packets         tcplab jobs 2 ... --jobs 2
  tcplab pkts json  ... --packets --json
  tshark conv,tcp   tshark -q -z conv,tcp -r FILE
  tshark fields     tshark -T fields with tcp.stream/seq/ack and the
                    tcp.analysis flags (the peer of --packets)
  tcptrace -n       tcptrace -n FILE
  argus + ra        argus -r FILE -w OUT; ra -r OUT   (Debian argus-server,
                    argus-client: installed here when missing, as root)
  dpkt loop         a dpkt loop building a per-connection table

Targets (issue 11): full analysis >= 1 M packets/s on one core, >= 10x tshark
conv,tcp, faster than tcptrace and argus; >= 1.7 M packets/s with --jobs 2;
--packets >= 10x tshark fields; peak RSS < 300 MB on 5 M packets and flat
from 1 M; under 0.3 s on a tiny file.  The machine is shared: CPU seconds
(user + sys of the tool and its children) are printed next to wall seconds.

tcplab's bytecode is compiled once before the rounds (compileall), as an
installed package has it: with PYTHONDONTWRITEBYTECODE set, an editable
checkout would otherwise compile its modules again in every run.

Run as root: ``.venv/bin/python bench/analyze_bench.py`` (``--quick``: the 1 M
synthetic capture only).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


# --- the tools ----------------------------------------------------------------


def measure(argv: list[str]) -> tuple[float, int, bytes]:
    """Run one tool; (wall seconds, peak RSS in KiB, its stdout).

    The tool is started by a small fresh helper process (``--measure``) with
    posix_spawn, so its peak RSS is its own, not inherited pages of this
    (large) process; the helper reports wall time and ru_maxrss from wait4.
    """
    helper = subprocess.run([PY, __file__, "--measure", *argv], capture_output=True, check=True)
    wall_text, rss_text, cpu_text = helper.stderr.decode().strip().splitlines()[-1].split()
    CPU[tuple(argv)] = float(cpu_text)
    return float(wall_text), int(rss_text), helper.stdout


CPU: dict[tuple[str, ...], float] = {}  # the last run's CPU seconds per command


def measure_inner(argv: list[str]) -> None:
    start = time.perf_counter()
    r, w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_CLOSE, r)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    actions.append((os.POSIX_SPAWN_DUP2, devnull, 2))
    path = shutil.which(argv[0]) or argv[0]
    pid = os.posix_spawn(path, argv, os.environ, file_actions=actions)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        while chunk := pipe.read(1 << 20):
            sys.stdout.buffer.write(chunk)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed with status {status}")
    sys.stdout.flush()
    sys.stderr.write(f"{wall:.6f} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime:.6f}\n")


def jobs_cpu(argv: list[str]) -> None:
    """``--jobs-cpu ARGS``: ``tcplab ARGS`` in this fresh process, each
    process's CPU seconds on stderr: this one's (start-up, imports, the fork,
    the merge, the output) and each shard's, from wait4 as multiprocessing
    reaps it.  Their sum is what ``measure`` sees; this one's plus the busiest
    shard's is the run's critical path, its wall time on idle cores."""
    shards: list[float] = []
    waitpid = os.waitpid

    def reap(pid: int, options: int) -> tuple[int, int]:
        got, status, usage = os.wait4(pid, options)
        if got:
            shards.append(usage.ru_utime + usage.ru_stime)
        return got, status

    os.waitpid = reap
    from tcplab.cli import main

    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            main(argv)
    except SystemExit as exc:
        if exc.code:
            raise
    finally:
        os.waitpid = waitpid
    me = resource.getrusage(resource.RUSAGE_SELF)
    sys.stderr.write(f"{me.ru_utime + me.ru_stime:.6f} {' '.join(f'{c:.6f}' for c in shards)}\n")


def critical_path(path: Path, jobs: int, repeat: int) -> tuple[float, float, list[float]]:
    """(median critical-path CPU s, its main process's, its shards') of
    ``tcplab analyze --jobs N`` (``jobs_cpu``)."""
    runs = []
    for _ in range(repeat):
        argv = ["analyze", "--jobs", str(jobs), str(path)]
        got = subprocess.run([PY, __file__, "--jobs-cpu", *argv], capture_output=True, check=True)
        main_cpu, *shards = map(float, got.stderr.decode().split("\n")[-2].split())
        runs.append((main_cpu + max(shards), main_cpu, shards))
    runs.sort()
    return runs[len(runs) // 2]


def dpkt_loop(path: str) -> None:
    """The per-connection table built with dpkt, packet by packet (the baseline)."""
    import dpkt

    conns: dict[tuple[object, ...], dict[str, object]] = {}
    with open(path, "rb") as fh:
        for ts, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            a, b = (ip.src, tcp.sport), (ip.dst, tcp.dport)
            key = (a, b) if a <= b else (b, a)
            d = 0 if a == key[0] else 1
            c = conns.get(key)
            flags = tcp.flags
            if c is None or (flags & 0x12 == 0x02 and c["syn_seq"] not in (None, tcp.seq)):
                if c is not None:
                    conns[(key, ts)] = c  # keep the old incarnation
                c = {
                    "pkts": [0, 0],
                    "bytes": [0, 0],
                    "first": ts,
                    "last": ts,
                    "syn": None,
                    "syn_seq": None,
                    "synack": None,
                    "fin": [None, None],
                    "rst": [None, None],
                    "hs": None,
                    "client": None,
                    "maxend": [None, None],
                    "rx": [0, 0],
                }
                conns[key] = c
            plen = len(tcp.data)
            c["pkts"][d] += 1  # type: ignore[index]
            c["bytes"][d] += plen  # type: ignore[index]
            c["last"] = ts
            if flags & 0x12 == 0x02 and c["syn"] is None:
                c["syn"], c["syn_seq"], c["client"] = ts, tcp.seq, d
            if flags & 0x12 == 0x12 and c["synack"] is None:
                c["synack"] = ts
            if (
                flags & 0x17 == 0x10
                and c["synack"] is not None
                and c["hs"] is None
                and d == c["client"]
            ):
                c["hs"] = ts
            if flags & 0x01 and c["fin"][d] is None:  # type: ignore[index]
                c["fin"][d] = ts  # type: ignore[index]
            if flags & 0x04 and c["rst"][d] is None:  # type: ignore[index]
                c["rst"][d] = ts  # type: ignore[index]
            end = tcp.seq + plen + (1 if flags & 0x03 else 0)
            top = c["maxend"][d]  # type: ignore[index]
            if (
                top is not None
                and (plen or flags & 0x03)
                and ((top - tcp.seq) & 0xFFFFFFFF) - 1 < 0x7FFFFFFF
            ):
                c["rx"][d] += 1  # type: ignore[index]
            if top is None or (end - top) & 0xFFFFFFFF < 0x80000000:
                c["maxend"][d] = end & 0xFFFFFFFF  # type: ignore[index]
    out = []
    for key, c in conns.items():
        out.append(f"{key} {c['pkts']} {c['bytes']} {c['rx']} {c['first']} {c['last']}")
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.write(f"connections {len(conns)}\n")


# --- the loopback capture ------------------------------------------------------


def traffic(port: int, connections: int, rounds: int) -> None:
    """Runs inside the namespace: an echo server and clients over loopback."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(512)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data * 3)

    threading.Thread(target=serve, daemon=True).start()
    import struct

    for i in range(connections):
        if i % 50 == 49:
            refused = socket.socket()
            with contextlib.suppress(OSError):
                refused.connect(("127.0.0.1", port + 1))  # nobody listens: RST
            refused.close()
            continue
        c = socket.create_connection(("127.0.0.1", port))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for r in range(rounds):
            msg = b"q" * (50 + (r * 37 + i) % 900)
            c.sendall(msg)
            want = len(msg) * 3
            got = 0
            while got < want:
                got += len(c.recv(65536))
        if i % 20 == 19:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    server.close()


def record_loopback(path: Path, packets: int) -> int:
    """Capture about ``packets`` packets of loopback traffic in a private namespace."""
    ns = f"tcplab-bench-{os.getpid()}"
    rounds = 40
    # Each round is about two packets (the echo carries the ACK) plus the
    # handshake and close.
    connections = max(10, packets // (rounds * 2 + 8))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    dump: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        dump = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "tcpdump",
                "-i",
                "lo",
                "-w",
                str(path),
                "-s",
                "0",
                "-U",
                "-n",
                "tcp",
            ],
            stderr=subprocess.PIPE,
        )
        assert dump.stderr is not None
        dump.stderr.readline()  # "listening on lo ..."
        subprocess.run(
            ["ip", "netns", "exec", ns, PY, __file__, "--traffic", str(connections), str(rounds)],
            check=True,
        )
        time.sleep(0.5)
    finally:
        if dump is not None:
            dump.send_signal(signal.SIGINT)
            dump.wait(timeout=30)
        subprocess.run(["ip", "netns", "del", ns], check=False)
    count = subprocess.run(
        ["tcpdump", "-r", str(path), "-n", "-q"], capture_output=True, text=True
    ).stdout.count("\n")
    return count


# --- the run ---------------------------------------------------------------------


# The synthetic captures' connections start evenly over this many seconds
# per 55,000 connections: a larger file is a longer capture of the same
# traffic (the same connection rate, the same connections open at once), not
# five times the connections packed into the same ten minutes.
SECONDS_PER_55K = 600.0


def _write_in_child(path: Path, packets: int, connections: int) -> dict[str, int]:
    """Write the synthetic capture in a child process: its large NumPy
    buffers must not inflate this process (and the tools it starts)."""
    import json

    seconds = SECONDS_PER_55K * max(connections, 1) / 55_000
    code = (
        "import json, sys; from tcplab.analyze.synth import write_capture; "
        "print(json.dumps(write_capture(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), "
        "concurrency_seconds=float(sys.argv[4]))))"
    )
    out = subprocess.run(
        [PY, "-c", code, str(path), str(packets), str(connections), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info: dict[str, int] = json.loads(out)
    return info


TSHARK_FIELDS = [
    "-T", "fields", "-e", "frame.number", "-e", "tcp.stream", "-e", "tcp.seq", "-e", "tcp.ack",
    "-e", "tcp.len", "-e", "tcp.analysis.retransmission", "-e", "tcp.analysis.out_of_order",
    "-e", "tcp.analysis.duplicate_ack", "-e", "tcp.analysis.lost_segment",
    "-e", "tcp.analysis.ack_lost_segment", "-e", "tcp.analysis.fast_retransmission",
    "-e", "tcp.analysis.window_update", "-e", "tcp.analysis.zero_window",
]  # fmt: skip


def tools_for(path: Path, work: Path, full: bool) -> list[tuple[str, list[str]]]:
    tcplab = [PY, "-m", "tcplab", "analyze"]
    tools = [("tcplab", [*tcplab, str(path)])]
    if full:
        tools += [
            ("tcplab conn-log", [*tcplab, "--conn-log", str(path)]),
            ("tcplab json", [*tcplab, "--json", str(path)]),
            ("tcplab packets", [*tcplab, "--packets", str(path)]),
            ("tcplab pkts json", [*tcplab, "--packets", "--json", str(path)]),
        ]
    tools.append(("tcplab jobs 2", [*tcplab, "--jobs", "2", str(path)]))
    if full:
        argus_out = str(work / "argus.out")
        tools += [
            ("tshark conv,tcp", ["tshark", "-q", "-z", "conv,tcp", "-r", str(path)]),
            ("tshark fields", ["tshark", "-r", str(path), *TSHARK_FIELDS]),
            ("tcptrace -n", ["tcptrace", "-n", str(path)]),
            (
                "argus + ra",
                ["sh", "-c", f"argus -r {path} -w {argus_out} && ra -n -r {argus_out}"],
            ),
            ("dpkt loop", [PY, __file__, "--dpkt-loop", str(path)]),
        ]
    return tools


def bench_file(
    label: str, path: Path, packets: int, work: Path, full: bool, repeat: int
) -> dict[str, tuple[float, float, int]]:
    """Every tool on ``path``, rounds interleaved: name -> (median wall s,
    median CPU s, peak RSS KiB)."""
    size = path.stat().st_size
    print(f"\n{label}: {path.name}, {packets:,} packets, {size / 1e6:.0f} MB, median of {repeat}")
    tools = [
        (n, a)
        for n, a in tools_for(path, work, full)
        if shutil.which(a[0]) is not None or a[0] == PY
    ]
    if full:
        for name in ("argus", "ra", "tshark", "tcptrace"):
            if shutil.which(name) is None:
                print(f"  {name}: not installed")
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
    runs: dict[str, list[tuple[float, float, int]]] = {n: [] for n, _ in tools}
    for _round in range(repeat):
        for name, argv in tools:
            try:
                wall, rss, _out = measure(argv)
            except (subprocess.CalledProcessError, SystemExit) as exc:
                print(f"  {name}: failed ({exc})")
                continue
            runs[name].append((wall, CPU[tuple(argv)], rss))
    results: dict[str, tuple[float, float, int]] = {}
    for name, got in runs.items():
        if got:
            results[name] = (
                statistics.median(r[0] for r in got),
                statistics.median(r[1] for r in got),
                max(r[2] for r in got),
            )
    print(
        f"  {'tool':<17} {'wall s':>8} {'pkts/s (wall)':>14} {'cpu s':>7} "
        f"{'pkts/s (cpu)':>13} {'RSS MB':>7}"
    )
    for name, (wall, cpu, rss) in results.items():
        print(
            f"  {name:<17} {wall:>8.2f} {packets / wall:>14,.0f} {cpu:>7.2f} "
            f"{packets / max(cpu, 1e-9):>13,.0f} {rss / 1024:>7.0f}"
        )
    if "tcplab jobs 2" in results:
        # --jobs 2's CPU above is every process's; what bounds its wall time is
        # the critical path: the main process plus the busiest shard.
        crit, main_cpu, shards = critical_path(path, 2, repeat)
        wall, _, rss = results["tcplab jobs 2"]
        results["tcplab jobs 2 (critical path)"] = (wall, crit, rss)
        print(
            f"  {'tcplab jobs 2':<17} critical path {crit:.2f} s CPU = "
            f"{packets / crit:,.0f} pkts/s (main process {main_cpu:.2f} s, shards "
            + " ".join(f"{c:.2f}" for c in shards)
            + " s)"
        )
    return results


def targets(results: dict[str, tuple[float, float, int]], packets: int) -> None:
    """The issue's targets, met or not, on wall time (and on CPU time)."""

    def rate(name: str, cpu: bool = False) -> float | None:
        got = results.get(name)
        return None if got is None else packets / (got[1] if cpu else got[0])

    for cpu in (False, True):
        kind = "CPU" if cpu else "wall"
        full = rate("tcplab", cpu)
        jobs = rate("tcplab jobs 2 (critical path)" if cpu else "tcplab jobs 2", cpu)
        checks = [
            ("full analysis >= 1M pkt/s", full is not None and full >= 1e6),
            ("--jobs 2 >= 1.7M pkt/s", jobs is not None and jobs >= 1.7e6),
        ]
        for peer, factor in (("tshark conv,tcp", 10), ("tcptrace -n", 1), ("argus + ra", 1)):
            other = rate(peer, cpu)
            if other is not None and full is not None:
                checks.append((f"full >= {factor}x {peer}", full >= factor * other))
        packets_rate, fields = rate("tcplab packets", cpu), rate("tshark fields", cpu)
        if packets_rate is not None and fields is not None:
            checks.append(("--packets >= 10x tshark fields", packets_rate >= 10 * fields))
        print(
            f"  targets ({kind} time): "
            + "; ".join(f"{text}: {'met' if ok else 'NOT met'}" for text, ok in checks)
        )


def compile_package() -> None:
    """tcplab's .pyc files, written once (an installed package ships them)."""
    import tcplab

    package = Path(tcplab.__file__).resolve().parent
    compileall = [PY, "-m", "compileall", "-q", str(package)]
    subprocess.run(compileall, stdout=subprocess.DEVNULL, check=False)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--loopback-packets", type=int, default=1_000_000)
    ap.add_argument("--keep", metavar="DIR", help="write the captures here and keep them")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds (median)")
    ap.add_argument("--quick", action="store_true", help="the 1M synthetic capture only")
    ap.add_argument("--traffic", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dpkt-loop", metavar="FILE", help=argparse.SUPPRESS)
    ap.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ap.add_argument("--jobs-cpu", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure_inner(args.measure)
        return
    if args.jobs_cpu:
        jobs_cpu(args.jobs_cpu)
        return
    if args.dpkt_loop:
        dpkt_loop(args.dpkt_loop)
        return
    if args.traffic:
        traffic(47000, *args.traffic)
        return
    setup_argus()
    compile_package()
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tcplab-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        one = workdir / "synthetic-1m.pcap"
        info = _write_in_child(one, 1_000_000, 55_000)
        print(f"synthetic capture: {info['packets']:,} packets, 55,000 connections")
        results = bench_file("synthetic 1M", one, info["packets"], workdir, True, args.repeat)
        targets(results, info["packets"])
        rss_1m = results["tcplab"][2]
        if args.quick:
            return
        pcapng = workdir / "synthetic-1m.pcapng"
        subprocess.run(["editcap", "-F", "pcapng", str(one), str(pcapng)], check=True)
        gz = workdir / "synthetic-1m.pcap.gz"
        with one.open("rb") as src, gzip.open(gz, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        for label, path in (("pcapng", pcapng), ("gz", gz)):
            bench_file(label, path, info["packets"], workdir, False, args.repeat)
        loopback = workdir / "loopback.pcap"
        lo_packets = record_loopback(loopback, args.loopback_packets)
        results = bench_file("loopback", loopback, lo_packets, workdir, True, args.repeat)
        targets(results, lo_packets)
        five = workdir / "synthetic-5m.pcap"
        info5 = _write_in_child(five, 5_000_000, 275_000)
        results = bench_file("synthetic 5M", five, info5["packets"], workdir, False, args.repeat)
        rss_5m = results["tcplab"][2]
        print(
            f"  peak RSS 1M {rss_1m / 1024:.0f} MB, 5M {rss_5m / 1024:.0f} MB: "
            f"{'met' if rss_5m < 300 * 1024 else 'NOT met'} (< 300 MB)"
        )
        tiny = workdir / "tiny.pcap"
        _write_in_child(tiny, 10, 1)
        walls = sorted(measure([PY, "-m", "tcplab", "analyze", str(tiny)])[0] for _ in range(5))
        print(
            f"\ntiny file: median {walls[2]:.3f} s "
            f"({'met' if walls[2] < 0.3 else 'NOT met'}: < 0.3 s)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def setup_argus() -> None:
    """argus and ra (Debian argus-server, argus-client) for the comparison:
    installed by the benchmark, not by the test set-up."""
    if shutil.which("argus") and shutil.which("ra"):
        return
    if os.geteuid() != 0:
        print("argus/ra not installed (run as root to install argus-server argus-client)")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "argus-server",
         "argus-client"],
        check=False,
        env=env,
    )  # fmt: skip


if __name__ == "__main__":
    main()
