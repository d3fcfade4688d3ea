#!/usr/bin/env bash
# Install everything tcplab and its tests need, idempotently.
# Debian packages only when missing (non-interactive); Python packages into
# the git-ignored .venv in the repo.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have tcpdump   || need+=(tcpdump)
have tshark    || need+=(tshark)
have tcptrace  || need+=(tcptrace)
have dot       || need+=(graphviz)
have strace    || need+=(strace)
have node      || need+=(nodejs)
have ip        || need+=(iproute2)
have ss        || need+=(iproute2)
have ethtool   || need+=(ethtool)   # tcplab drill: scripts that turn off TSO on tun0
have nft       || need+=(nftables)
have chromium  || need+=(chromium)
have gcc       || need+=(gcc)  # the analysis engine is a C extension (setup.py)
python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
               || need+=(python3-dev)
# A CJK font, so the reports' Chinese renders (in a headless browser too).
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${need[*]}); run as root to install them" >&2
  else
    export DEBIAN_FRONTEND=noninteractive
    echo "setup: installing Debian packages: ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.tcplab-installed
# Rebuilt also when a C source changed (pip builds the extensions in place).
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
   || [ src/tcplab/analyze/_engine.c -nt "$stamp" ] \
   || [ src/tcplab/sockets/_diag.c -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
