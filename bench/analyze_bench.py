"""Benchmark: tcplab's connection summary against tshark, tcptrace, a dpkt loop and cat.

Two captures are made, then every tool reads the same file in one run:

  synthetic  >= 5 million packets over tens of thousands of connections
             (tcplab.analyze.synth: full lifecycles, data, retransmissions,
             RST aborts, refused connects, unanswered SYNs), Ethernet/IPv4,
             written column-wise with NumPy
  loopback   tcpdump on the loopback of a network namespace created for the
             run (removed at the end, also on failure) while Python sockets
             talk: request/response connections, some reset (SO_LINGER 0),
             some refused

Tools, each a separate process (wall time, peak RSS from wait4):

  tcplab     python -m tcplab analyze --summary FILE     (the columnar pass)
  detailed   python -m tcplab analyze --json FILE        (per-packet: Wireshark
             flags, Zeek state machine, inferred states; --detailed)
  tshark     tshark -q -z conv,tcp -r FILE
  tcptrace   tcptrace -n -l FILE
  dpkt       a dpkt loop building the same per-connection table
  cat        cat FILE > /dev/null

Issue 4's targets: tcplab >= 10x tshark conv,tcp and >= 5x the dpkt loop in
packets/s (stretch: faster than tcptrace), peak RSS < 1 GiB on 5 M packets.
Run as root: ``.venv/bin/python bench/analyze_bench.py [--packets 5000000]``;
``--packets 500000`` for a quick run during development.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
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
    wall_text, rss_text = helper.stderr.decode().strip().splitlines()[-1].split()
    return float(wall_text), int(rss_text), helper.stdout


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
    sys.stderr.write(f"{wall:.6f} {usage.ru_maxrss}\n")


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


def _write_in_child(path: Path, packets: int, connections: int) -> dict[str, int]:
    """Write the synthetic capture in a child process: its large NumPy
    buffers must not inflate this process (and the tools it starts)."""
    import json

    code = (
        "import json, sys; from tcplab.analyze.synth import write_capture; "
        "print(json.dumps(write_capture(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))"
    )
    out = subprocess.run(
        [PY, "-c", code, str(path), str(packets), str(connections)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info: dict[str, int] = json.loads(out)
    return info


def bench_file(label: str, path: Path, packets: int, detailed: bool, repeat: int = 1) -> None:
    size = path.stat().st_size
    best = f", best of {repeat} runs" if repeat > 1 else ""
    print(f"\n{label}: {path.name}, {packets:,} packets, {size / 1e6:.0f} MB{best}")
    tools: list[tuple[str, list[str]]] = [
        ("tcplab summary", [PY, "-m", "tcplab", "analyze", "--summary", str(path)]),
    ]
    if detailed:
        tools.append(("tcplab detailed", [PY, "-m", "tcplab", "analyze", "--json", str(path)]))
    tools += [
        ("tshark conv,tcp", ["tshark", "-q", "-z", "conv,tcp", "-r", str(path)]),
        ("tcptrace -n -l", ["tcptrace", "-n", "-l", str(path)]),
        ("dpkt loop", [PY, __file__, "--dpkt-loop", str(path)]),
        ("cat > /dev/null", ["cat", str(path)]),
    ]
    # Warm the page cache first so no tool pays for the disk and the first
    # one measured is not penalised.
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    results: list[tuple[str, float, int, str]] = []
    for name, argv in tools:
        if shutil.which(argv[0]) is None and argv[0] != PY:
            print(f"  {name}: not installed")
            continue
        # Best of ``repeat`` runs: the machine is shared, noise only adds time.
        runs = [measure(argv) for _ in range(repeat)]
        wall = min(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        out = runs[0][2]
        text = out.decode(errors="replace")
        if name == "tcplab summary":
            conns = str(max(0, text.count("\n") - 1))
        elif name.startswith("tshark"):
            conns = str(text.count("<->"))
        elif name.startswith("tcptrace"):
            conns = str(text.count("TCP connection "))
        elif name == "dpkt loop":
            conns = text.strip().rsplit(" ", 1)[-1]
        elif name == "tcplab detailed":
            conns = str(text.count("\n"))
        else:
            conns = "-"
        results.append((name, wall, rss, conns))
    base = next(w for n, w, _, _ in results if n == "tcplab summary")
    print(
        f"  {'tool':<18} {'seconds':>9} {'packets/s':>12} {'vs tcplab':>10} "
        f"{'peak RSS MB':>12} {'connections':>12}"
    )
    for name, wall, rss, conns in results:
        ratio = wall / base
        print(
            f"  {name:<18} {wall:>9.2f} {packets / wall:>12,.0f} {ratio:>9.2f}x "
            f"{rss / 1024:>12.0f} {conns:>12}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--packets", type=int, default=5_000_000, help="synthetic capture size")
    ap.add_argument("--connections", type=int, default=0, help="default: packets / 125")
    ap.add_argument("--loopback-packets", type=int, default=300_000)
    ap.add_argument(
        "--detailed",
        action="store_true",
        help="also time the per-packet mode (slow on millions of packets)",
    )
    ap.add_argument("--keep", metavar="DIR", help="write the captures here and keep them")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool on the synthetic file")
    ap.add_argument("--reuse", action="store_true", help="reuse the captures in --keep DIR")
    ap.add_argument("--traffic", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dpkt-loop", metavar="FILE", help=argparse.SUPPRESS)
    ap.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure_inner(args.measure)
        return
    if args.dpkt_loop:
        dpkt_loop(args.dpkt_loop)
        return
    if args.traffic:
        traffic(47000, *args.traffic)
        return
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tcplab-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        synthetic = workdir / "synthetic.pcap"
        loopback = workdir / "loopback.pcap"
        if args.reuse and synthetic.exists() and loopback.exists():
            from tcplab.analyze.fast import summarize_file

            info = {"packets": summarize_file(synthetic)[1].frames}
            lo_packets = summarize_file(loopback)[1].frames
            print(f"reusing {synthetic} and {loopback}")
        else:
            connections = args.connections or max(100, args.packets // 125)
            t0 = time.perf_counter()
            info = _write_in_child(synthetic, args.packets, connections)
            if info["packets"] < args.packets:
                raise SystemExit(f"synthetic capture: {info['packets']} packets, too few")
            kinds = ", ".join(
                f"{k} {v}" for k, v in info.items() if k not in ("packets", "connections", "bytes")
            )
            print(
                f"synthetic capture: {info['packets']:,} packets, {connections:,} connections "
                f"({kinds}) written in {time.perf_counter() - t0:.1f} s"
            )
            t0 = time.perf_counter()
            lo_packets = record_loopback(loopback, args.loopback_packets)
            print(
                f"loopback capture: {lo_packets:,} packets recorded in "
                f"{time.perf_counter() - t0:.1f} s"
            )
        bench_file("synthetic", synthetic, info["packets"], args.detailed, args.repeat)
        bench_file("loopback", loopback, lo_packets, True, 3)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
