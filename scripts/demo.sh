#!/usr/bin/env bash
# make demo: capture one short TCP conversation on loopback and show it with
# `tcplab packets` (handshake, "hello" echoed, both sides close).
# Every background process started here is stopped on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${TCPLAB_DEMO_PORT:-47123}"
PY=.venv/bin/python
mkdir -p out
rm -f out/demo.pcap

tcpdump_pid=""
tcpdump_log="$(mktemp)"
cleanup() {
  if [ -n "$tcpdump_pid" ] && kill -0 "$tcpdump_pid" 2>/dev/null; then
    kill -INT "$tcpdump_pid" 2>/dev/null || true
    wait "$tcpdump_pid" 2>/dev/null || true
  fi
  rm -f "$tcpdump_log"
}
trap cleanup EXIT INT TERM

tcpdump -i lo --immediate-mode -U -n -s 0 -w out/demo.pcap "tcp port $PORT" 2>"$tcpdump_log" &
tcpdump_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$tcpdump_log" && break
  kill -0 "$tcpdump_pid" 2>/dev/null || { cat "$tcpdump_log" >&2; exit 1; }
  sleep 0.05
done

"$PY" - "$PORT" <<'PYEOF'
import socket, sys, threading

port = int(sys.argv[1])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(1)

def echo() -> None:
    conn, _ = server.accept()
    with conn:
        conn.sendall(conn.recv(100))   # echo "hello"
        conn.recv(100)                 # b"": the client closed first

thread = threading.Thread(target=echo)
thread.start()
with socket.create_connection(("127.0.0.1", port)) as client:
    client.sendall(b"hello")
    assert client.recv(100) == b"hello"
thread.join()
server.close()
PYEOF

sleep 0.2   # let the last segments reach the capture file
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
tcpdump_pid=""

echo "== tcplab packets out/demo.pcap"
.venv/bin/tcplab packets out/demo.pcap
