"""A tiny external server for the lab: accept one client, echo until EOF, close."""

import os
import socket

addr = os.environ.get("TCPLAB_SERVER_ADDR", "127.0.0.1")
port = int(os.environ.get("TCPLAB_PORT", "8080"))
with socket.socket() as listener:
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen(1)
    conn, _ = listener.accept()
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)
