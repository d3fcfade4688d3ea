"""A learner's loopback capture: tcpdump on lo, three real exchanges on 127.0.0.1.

Run inside a network namespace the test created (``ip netns exec NS python
loopback_tcpdump.py OUT.pcap``).  tcpdump writes OUT.pcap while, on real
sockets: a connection closed normally (FIN both ways), one the client aborts
(SO_LINGER 0: RST), and a connect to a port nobody listens on (RST to SYN).
Linux leaves such a capture's TCP checksums partial (CHECKSUM_PARTIAL).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time

PORT = 47000


def served(abort: bool) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", PORT))
    listener.listen(1)
    client = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    server, _ = listener.accept()
    client.sendall(b"hello")
    server.recv(100)
    server.sendall(b"world")
    client.recv(100)
    if abort:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # RST
        time.sleep(0.1)
        server.close()
    else:
        client.close()
        server.recv(100)
        server.close()
    listener.close()
    time.sleep(0.1)


def refused() -> None:
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", PORT + 1))
    except ConnectionRefusedError:
        pass
    finally:
        s.close()


def main(out: str) -> None:
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-n", "-w", out, "tcp"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert dump.stderr is not None
        dump.stderr.readline()  # "listening on lo ...": capturing from here on
        served(abort=False)
        served(abort=True)
        refused()
        time.sleep(1.5)  # what the capture still buffers reaches the file
    finally:
        dump.terminate()
        dump.wait(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1])
