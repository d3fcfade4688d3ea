"""Regenerate peer_baseline.json: what tshark and tcpdump say about every
frame of the Zeek traces in ../shared/peer-traces/zeek/traces.

Run by hand when the trace set changes (tshark 4.0 and tcpdump 4.99 as on
Debian 12); tests/test_wire_peers.py compares tcplab.wire's decoding with
the stored answers, so the tests do not need to start tshark 40 times.

    .venv/bin/python tests/data/wire/make_peer_baseline.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

# The shared folder sits beside the checkout (tests/data/wire/ is three levels down).
TRACES = Path(__file__).resolve().parents[3].parent / "shared/peer-traces/zeek/traces"
# The three big ssh captures add 3400 near-identical frames and nothing new.
SKIP = {
    "ssh/ssh.pcap",
    "ssh/ssh.server-side-half-duplex.pcap",
    "ssh/ssh.client-side-half-duplex.pcap",
}
FIELDS = [
    "frame.number",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "ip.ttl",
    "ipv6.hlim",
    "ip.len",
    "ip.frag_offset",
    "udp.srcport",
    "udp.dstport",
    "ipv6.plen",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "tcp.len",
    "tcp.hdr_len",
    "tcp.window_size_value",
    "tcp.checksum.status",
    "tcp.options",
]
# tcpdump -tt -nn -S prints "<time> IP(6) ... Flags [..], ..., options [...], length N".
OPTIONS = re.compile(r"options \[([^\]]*)\]")


def tshark_rows(path: Path) -> list[dict[str, str]]:
    # Teredo on any UDP port, as Zeek and tcplab.wire.tunnel detect it.
    cmd = ["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE"]
    cmd += ["-o", "teredo.heuristic_teredo:TRUE", "-T", "fields"]
    cmd += ["-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in out.splitlines()]


def tcpdump_options(path: Path) -> list[str | None]:
    """Per frame, the text inside options [...] (None when tcpdump printed none)."""
    out = subprocess.run(
        ["tcpdump", "-nn", "-S", "-tt", "-r", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: list[str | None] = []
    for line in out.splitlines():
        if not line[:1].isdigit():
            continue  # continuation lines (-v) never appear without -v
        match = OPTIONS.search(line)
        result.append(match.group(1) if match else None)
    return result


def main() -> int:
    files: dict[str, object] = {}
    total = 0
    for path in sorted(TRACES.rglob("*.pcap*")):
        name = str(path.relative_to(TRACES))
        if name in SKIP:
            continue
        rows = tshark_rows(path)
        options = tcpdump_options(path)
        aligned = len(options) == len(rows)
        if not aligned:
            print(f"{name}: tcpdump printed {len(options)} lines for {len(rows)} frames")
        lines = []
        for index, row in enumerate(rows):
            # Only the layers up to TCP matter here; certificates add kilobytes.
            protocols = row["frame.protocols"].split(":")
            if "tcp" in protocols:
                row["frame.protocols"] = ":".join(protocols[: protocols.index("tcp") + 1])
            text = options[index] if aligned else None
            lines.append("\t".join([*(row[f] for f in FIELDS), "" if text is None else text]))
        files[name] = {"tcpdump_aligned": aligned, "rows": lines}
        total += len(lines)
    out = Path(__file__).with_name("peer_baseline.json")
    document = {"fields": [*FIELDS, "tcpdump.options"], "files": files}
    out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} ({total} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
