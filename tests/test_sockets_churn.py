"""``tcplab sockets`` reads a table that changes under it (issue 15's churn).

In a namespace of its own, connections open and close as fast as a thread
can make them, and short-lived processes fork, connect and exit (so fd
directories vanish in the middle of the /proc scan).  Ten reads through the
click-free path and one through click (``--netns``) must each succeed with
a well-formed document: no error, no traceback, every listed socket counted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from tcplab.sockets.diag import entered_netns

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs ip"),
]

FORKER = r"""
import os, socket, sys, time
port, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    pid = os.fork()
    if pid == 0:
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        os._exit(0)
    os.waitpid(pid, 0)
"""


def check(doc: dict[str, object]) -> int:
    processes = doc["processes"]
    assert isinstance(processes, list)
    listed = 0
    for group in processes:
        counts, sockets = group["counts"], group["sockets"]
        assert sockets, group
        for row in sockets:
            assert row["state"] in counts
        listed += len(sockets)
        assert sum(counts.values()) >= len(sockets)
    assert isinstance(doc["diagnoses"], list)
    return listed


def test_reads_under_churn() -> None:
    name = f"tcplab-sockets-churn-{os.getpid()}"
    path = f"/var/run/netns/{name}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    forker: subprocess.Popen[bytes] | None = None
    made = [0]
    listener: socket.socket | None = None
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        with entered_netns(path):
            listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
        port = listener.getsockname()[1]
        listener.settimeout(0.2)
        accept = listener.accept

        def serve() -> None:
            kept: list[socket.socket] = []
            while not stop.is_set():
                try:
                    conn, _ = accept()
                except OSError:
                    continue
                kept.append(conn)  # half stay open a while (CLOSE-WAIT when the client goes)
                if len(kept) > 200:
                    for old in kept[:100]:
                        old.close()
                    del kept[:100]
            for conn in kept:
                conn.close()

        def churn() -> None:
            with entered_netns(path):
                while not stop.is_set():
                    try:
                        client = socket.create_connection(("127.0.0.1", port), timeout=2)
                    except OSError:
                        continue
                    client.close()
                    made[0] += 1

        threads = [threading.Thread(target=serve), threading.Thread(target=churn)]
        for t in threads:
            t.start()
        with entered_netns(path):
            forker = subprocess.Popen([sys.executable, "-c", FORKER, str(port), "600"])
            cli = [sys.executable, "-m", "tcplab", "sockets", "--json", "-a"]
            for _ in range(10):
                done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
                assert (done.returncode, done.stderr) == (0, ""), done.stderr
                check(json.loads(done.stdout))
        done = subprocess.run([*cli, "--netns", name], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        assert check(json.loads(done.stdout)) > 0
        assert made[0] > 10  # the table did change while it was read
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        if forker is not None:
            forker.kill()
            forker.wait(timeout=30)
        if listener is not None:
            listener.close()
        subprocess.run(["ip", "netns", "del", name], check=False)
