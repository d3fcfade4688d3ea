"""format_options against the real tcpdump, on hand-made option lists.

One pcap of crafted Ethernet/IPv4/TCP frames, one tcpdump run; each frame's
``options [...]`` text must equal ``TcpHeader.option_text()``.  The Zeek
traces cover what real stacks send (tests/test_wire_peers.py); this covers
the rarities: TFO both encodings, unknown and experimental kinds, invalid
SACK, wrong-length MSS, user timeout, malformed lists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest

from tcplab.wire import Flags, IPv4Header, TcpHeader, decode_frame
from tcplab.wire.decode import TcpPacket

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")

OPTION_BYTES = [
    "020405b40402080a0005da9c0000000001030307",  # Linux SYN
    "0101080a0005da9d0005dc1c",  # Linux data segment
    "0101050a000003e9000007d1",  # one SACK block
    "01010512000000010000000200000004000000050000",  # two blocks, EOL pad
    "220a0102030405060708",  # TFO cookie (RFC 7413)
    "22020101",  # TFO cookie request
    "2204010201010101",  # TFO with an invalid 2-byte cookie
    "fe0cf9890102030405060708",  # experimental TFO (kind 254, magic 0xF989)
    "fe04f989",  # experimental TFO cookie request
    "fe06abcd01020101",  # experimental, other magic
    "63040102",  # unknown kind 99
    "63020101",  # unknown kind 99, no data
    "0506010203040101",  # SACK length not 2 + 8n
    "1c04000a",  # user timeout 5 s
    "1c04000b",  # user timeout 5 min
    "0101080000000000",  # TS with length 0: malformed
    "01010502",  # SACK with no blocks
    "010105",  # kind 5, no length byte: malformed
    "0103030700000000",  # wscale then EOL and padding
    "00000000",  # EOL only
]


def frame_for(index: int, options: bytes) -> bytes:
    options += bytes(-len(options) % 4)
    fixed = bytearray(TcpHeader.create(1000 + index, 80, 1, 0, Flags.SYN, 100).build())
    fixed[12] = (5 + len(options) // 4) << 4
    segment = bytes(fixed) + options
    ip = IPv4Header.create("10.0.0.1", "10.0.0.2", 6, len(segment))
    return bytes(6) + bytes(6) + b"\x08\x00" + ip.build(segment)


def test_option_text_equals_tcpdump(tmp_path: Path) -> None:
    frames = [frame_for(i, bytes.fromhex(h)) for i, h in enumerate(OPTION_BYTES)]
    path = tmp_path / "options.pcap"
    with path.open("wb") as stream:
        writer = dpkt.pcap.Writer(stream, linktype=1)
        for i, frame in enumerate(frames):
            writer.writepkt(frame, ts=float(i))
    out = subprocess.run(
        ["tcpdump", "-nn", "-S", "-r", str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(out) == len(frames)
    for line, frame, hex_options in zip(out, frames, OPTION_BYTES, strict=True):
        match = re.search(r"options \[(.*)\]", line)
        assert match, line
        packet = decode_frame(1, frame)
        assert isinstance(packet, TcpPacket)
        assert packet.tcp.option_text() == match.group(1), hex_options
        assert packet.tcp.build() == frame[34:]
