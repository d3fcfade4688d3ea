"""A tiny external client for the lab: send one line, read the echo, close."""

import os
import socket

addr = os.environ.get("TCPLAB_SERVER_ADDR", "127.0.0.1")
port = int(os.environ.get("TCPLAB_PORT", "8080"))
with socket.create_connection((addr, port)) as sock:
    sock.sendall(b"hello from outside")
    echoed = sock.recv(4096)
    echoed_ok = echoed == b"hello from outside"
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(4096):
        pass
raise SystemExit(0 if echoed_ok else 3)
