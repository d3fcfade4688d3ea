"""Two TCP Fast Open connections on loopback, captured by tcpdump, with ss's view.

Run inside a network namespace the test created, whose tcp_fastopen sysctl
the test set to 3 (``ip netns exec NS python fastopen_live.py OUTDIR PORT``).
The first connection's sendto(MSG_FASTOPEN) asks for a cookie (RFC 7413
§4.2.1); the second one's SYN carries the cookie and the data (§4.2.2); the
third uses TCP_FASTOPEN_CONNECT: connect() sends nothing, the write sends the
SYN with the cookie and the data.
Writes OUTDIR/capture.pcap (tcpdump on lo) and OUTDIR/kernel.json: the
client ports, what each call returned, and ``ss -tanH`` rows at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

MSG_FASTOPEN = 0x20000000
TCP_FASTOPEN = 23
TCP_FASTOPEN_CONNECT = 30


def ss(port: int) -> list[tuple[str, str, str]]:
    out = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and str(port) in (parts[3].rsplit(":", 1)[1],
                                             parts[4].rsplit(":", 1)[1]):
            rows.append((parts[0], parts[3], parts[4]))
    return rows


def main(out: str, port: int) -> None:
    # --immediate-mode: without it TPACKET_V3 hands packets over in blocks, and
    # a short exchange still in an unfinished block is lost when tcpdump stops.
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-s", "0",
         "-w", os.path.join(out, "capture.pcap"), f"tcp port {port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert dump.stderr is not None
    while "listening on" not in dump.stderr.readline():  # the capture is running
        if dump.poll() is not None:
            raise SystemExit("tcpdump did not start")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, 5)
    listener.listen(5)
    record: dict[str, object] = {"clients": [], "sent": [], "read": []}
    for text in (b"GET /first", b"GET /second", b"GET /connect"):
        client = socket.socket()
        if text == b"GET /connect":
            # TCP_FASTOPEN_CONNECT: connect() returns at once, the SYN waits for the write.
            client.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
            client.connect(("127.0.0.1", port))
            record["connected"] = time.time()
            time.sleep(0.05)
            record["sent"].append(client.send(text))  # type: ignore[attr-defined]
        else:
            record["sent"].append(client.sendto(text, MSG_FASTOPEN, ("127.0.0.1", port)))  # type: ignore[attr-defined]
        record["clients"].append(client.getsockname()[1])  # type: ignore[attr-defined]
        server, _ = listener.accept()
        record["read"].append(server.recv(100).decode())  # type: ignore[attr-defined]
        server.sendall(b"200 OK")
        assert client.recv(100) == b"200 OK"
        time.sleep(0.1)
        client.close()
        assert server.recv(100) == b""
        time.sleep(0.1)
        server.close()
        time.sleep(0.2)
    record["ss"] = ss(port)
    listener.close()
    time.sleep(0.2)
    dump.send_signal(signal.SIGINT)  # tcpdump flushes on SIGINT
    dump.wait(timeout=10)
    with open(os.path.join(out, "kernel.json"), "w") as fh:
        json.dump(record, fh)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
