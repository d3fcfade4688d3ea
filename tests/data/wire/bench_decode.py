"""Time decode_frame on a typical frame (Ethernet / IPv4 / TCP with
nop,nop,TS and 100 bytes of payload), next to dpkt on the same bytes.

    .venv/bin/python tests/data/wire/bench_decode.py
"""

from __future__ import annotations

import time
import timeit

import dpkt

from tcplab.wire import Flags, IPv4Header, Nop, TcpHeader, Timestamps, decode_frame


def main() -> None:
    segment = TcpHeader.create(
        40000, 80, 1000, 2000, Flags.ACK | Flags.PSH, 512, (Nop(), Nop(), Timestamps(1, 2))
    ).build(b"x" * 100, src="10.0.0.1", dst="10.0.0.2")
    ip = IPv4Header.create("10.0.0.1", "10.0.0.2", 6, len(segment))
    frame = bytes(12) + b"\x08\x00" + ip.build(segment)

    def dpkt_decode() -> object:
        tcp = dpkt.ethernet.Ethernet(frame).data.data
        return dpkt.tcp.parse_opts(tcp.opts)

    runs = 50_000
    for name, call in (
        ("decode_frame", lambda: decode_frame(1, frame)),
        ("decode_frame, no checksum", lambda: decode_frame(1, frame, verify_checksum=False)),
        ("dpkt Ethernet+parse_opts", dpkt_decode),
    ):
        # CPU time, not wall time: the figure should not depend on other load.
        timer = timeit.Timer(call, timer=time.process_time)
        best = min(timer.repeat(number=runs, repeat=5)) / runs
        print(f"{name:28s} {best * 1e6:6.2f} µs/call")


if __name__ == "__main__":
    main()
