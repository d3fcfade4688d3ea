#!/usr/bin/env bash
# make demo: the live lab plays handshake-close on two real Linux endpoints
# (two network namespaces joined by the lab's own wire), draws the ladder with
# the kernel's states, checks the scenario's facts, and writes
# out/handshake-close.{pcapng,json,svg,dot}.  Then `tcplab packets` reads the
# lab's own capture back, tcpdump-style with relative seq/ack.
# The lab removes its namespaces, TUN devices and tracefs instance itself,
# also on Ctrl-C; `tcplab cleanup` removes what a killed run left.
set -euo pipefail
cd "$(dirname "$0")/.."

TCPLAB=.venv/bin/tcplab
mkdir -p out

echo "== tcplab run handshake-close"
"$TCPLAB" run handshake-close --outdir out

echo
echo "== tcplab packets out/handshake-close.pcapng"
"$TCPLAB" packets out/handshake-close.pcapng
