"""Real Linux TCP exchanges, captured, with the kernel's own view of the states.

Run inside a network namespace the test created (``ip netns exec NS python
live_scenarios.py SCENARIO OUTDIR [PEER_NS]``).  Captures every frame on the
namespace's interface with an AF_PACKET socket into OUTDIR/capture.pcap and
writes OUTDIR/kernel.json: ``ss -tanH`` snapshots taken at quiet points
(label, time, [(state, local, peer)]) and, for simultaneous close, the
sequence of states ``ss`` showed while polling each end.

Scenarios: normal (client closes first), half (client shutdown(SHUT_WR),
the server keeps sending, then closes), rst (client aborts with SO_LINGER
0), simultaneous (both ends shutdown(SHUT_WR) while the FINs are held in
token-bucket queues, so they cross; the server end lives in PEER_NS).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

ETH_P_ALL = 0x0003
PORT = 45678


class Capture(threading.Thread):
    def __init__(self, ifname: str) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.sock.settimeout(0.1)
        self.frames: list[tuple[float, bytes]] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(262144)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] == socket.PACKET_OUTGOING and addr[0] == "lo":
                continue  # loopback shows each frame twice: keep the incoming copy
            self.frames.append((time.time(), data))

    def stop(self, path: str) -> None:
        time.sleep(0.2)
        self.running = False
        self.join()
        with open(path, "wb") as fh:
            fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
            for t, data in self.frames:
                sec = int(t)
                fh.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(data), len(data)))
                fh.write(data)


def ss(ns: str | None = None) -> list[tuple[str, str, str]]:
    cmd = ["ss", "-tanH"]
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and str(PORT) in (
            parts[3].rsplit(":", 1)[1],
            parts[4].rsplit(":", 1)[1],
        ):
            rows.append((parts[0], parts[3], parts[4]))
    return rows


def loopback(scenario: str, out: str) -> None:
    cap = Capture("lo")
    cap.start()
    time.sleep(0.1)
    snaps: list[tuple[str, float, list[tuple[str, str, str]]]] = []

    def snap(label: str) -> None:
        time.sleep(0.15)
        snaps.append((label, time.time(), ss()))

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", PORT))
    listener.listen(1)
    client = socket.create_connection(("127.0.0.1", PORT))
    server, _ = listener.accept()
    listener.close()
    client.sendall(b"hello")
    assert server.recv(100) == b"hello"
    server.sendall(b"world")
    assert client.recv(100) == b"world"
    snap("established")
    if scenario == "normal":
        client.close()
        assert server.recv(100) == b""
        snap("client closed")
        server.close()
        snap("both closed")
    elif scenario == "half":
        client.shutdown(socket.SHUT_WR)
        assert server.recv(100) == b""
        snap("client shut down writing")
        server.sendall(b"more data after the client's FIN")
        assert client.recv(100) == b"more data after the client's FIN"
        snap("server sent after half-close")
        server.close()
        assert client.recv(100) == b""
        snap("server closed")
        client.close()
        snap("both closed")
    elif scenario == "rst":
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        time.sleep(0.1)
        try:
            server.recv(100)
            error = ""
        except ConnectionResetError as exc:
            error = exc.__class__.__name__
        snap("client aborted")
        snaps.append(("server recv error", time.time(), [(error, "", "")]))
        server.close()
    cap.stop(os.path.join(out, "capture.pcap"))
    with open(os.path.join(out, "kernel.json"), "w") as fh:
        json.dump({"snapshots": snaps}, fh)


def simultaneous(out: str, peer_ns: str) -> None:
    """Client here (10.9.0.1 on va), server in peer_ns (10.9.0.2 on vb)."""
    cap = Capture("va")
    cap.start()
    server_code = f"""
import socket, sys, time
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("10.9.0.2", {PORT})); l.listen(1)
print("ready", flush=True)
c, _ = l.accept()
assert c.recv(100) == b"go"
sys.stdin.readline()           # the signal: shut down now
c.shutdown(socket.SHUT_WR)
assert c.recv(100) == b""
time.sleep(3)
"""
    server = subprocess.Popen(
        ["ip", "netns", "exec", peer_ns, sys.executable, "-c", server_code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    assert server.stdout.readline().strip() == "ready"
    client = socket.create_connection(("10.9.0.2", PORT))
    client.sendall(b"go")
    time.sleep(0.3)
    # Fill both directions' token-bucket queues so the FINs wait behind filler
    # and cross on the wire; keep filling so the ACKs are held back too.
    stop = threading.Event()

    def filler(ns: str | None, dest: str) -> None:
        cmd = [
            sys.executable,
            "-c",
            (
                "import socket, sys, time\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "end = time.time() + 1.5\n"
                "while time.time() < end:\n"
                f"    s.sendto(b'x' * 1000, ('{dest}', 9))\n"
                "    time.sleep(0.004)\n"
            ),
        ]
        if ns:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        subprocess.run(cmd, check=True)

    fills = [
        threading.Thread(target=filler, args=(None, "10.9.0.2")),
        threading.Thread(target=filler, args=(peer_ns, "10.9.0.1")),
    ]
    for f in fills:
        f.start()
    time.sleep(0.3)
    seen: dict[str, list[str]] = {"client": [], "server": []}

    def poll(role: str, ns: str | None) -> None:
        while not stop.is_set():
            for state, _local, _peer in ss(ns):
                if not seen[role] or seen[role][-1] != state:
                    seen[role].append(state)
            time.sleep(0.01)

    pollers = [
        threading.Thread(target=poll, args=("client", None)),
        threading.Thread(target=poll, args=("server", peer_ns)),
    ]
    for p in pollers:
        p.start()
    time.sleep(0.1)
    server.stdin.write("now\n")
    server.stdin.flush()
    client.shutdown(socket.SHUT_WR)
    assert client.recv(100) == b""
    for f in fills:
        f.join()
    time.sleep(1.0)
    stop.set()
    for p in pollers:
        p.join()
    client.close()
    server.wait(timeout=10)
    cap.stop(os.path.join(out, "capture.pcap"))
    with open(os.path.join(out, "kernel.json"), "w") as fh:
        json.dump({"polled": seen}, fh)


if __name__ == "__main__":
    scenario, outdir = sys.argv[1], sys.argv[2]
    if scenario == "simultaneous":
        simultaneous(outdir, sys.argv[3])
    else:
        loopback(scenario, outdir)
