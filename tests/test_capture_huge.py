"""Huge records cost their head, not twice their size.

A 255 MiB pcap record or a 200 MiB pcapng block is streamed past: the
reader keeps the first KEEP_DATA bytes (every header the analysis needs)
and says so once per record; peak memory stays near that of a small file.
Files are sparse, so the test writes little to disk.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from conftest import SYN, ipv4_tcp, peak_rss_mb
from tcplab.capture import open_capture
from tcplab.capture.pcap import KEEP_DATA

FRAME = ipv4_tcp("10.0.0.1", "10.0.0.2", 1000, 80, 7, 0, SYN)
SMALL = ipv4_tcp("10.0.0.2", "10.0.0.1", 80, 1000, 9, 8, SYN | 0x10)


def huge_pcap(path: Path, caplen: int) -> None:
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 0xFFFFFFFF, 101))
        f.write(struct.pack("<IIII", 1, 0, caplen, caplen) + FRAME)
        f.seek(24 + 16 + caplen)  # the rest of the record: a hole of zeros
        f.write(struct.pack("<IIII", 2, 0, len(SMALL), len(SMALL)) + SMALL)


def _block(kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def huge_pcapng(path: Path, caplen: int) -> None:
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 101, 0, 0))
    total = 12 + 20 + caplen + (-caplen % 4)
    with path.open("wb") as f:
        f.write(shb + idb)
        f.write(struct.pack("<IIIIIII", 6, total, 0, 0, 1, caplen, caplen) + FRAME)
        f.seek(len(shb) + len(idb) + total - 4)
        f.write(struct.pack("<I", total))
        f.write(_block(6, struct.pack("<IIIII", 0, 0, 2, len(SMALL), len(SMALL)) + SMALL))


@pytest.mark.parametrize(("kind", "size"), [("pcap", 255 << 20), ("pcapng", 200 << 20)])
def test_a_huge_record_costs_its_head_not_its_size(tmp_path: Path, kind: str, size: int) -> None:
    path = tmp_path / f"huge.{kind}"
    (huge_pcap if kind == "pcap" else huge_pcapng)(path, size)
    small = tmp_path / f"small.{kind}"
    (huge_pcap if kind == "pcap" else huge_pcapng)(small, KEEP_DATA)
    with open_capture(path) as reader:
        records = list(reader)
        assert [len(r.data) for r in records] == [KEEP_DATA, len(SMALL)]
        assert records[0].data[: len(FRAME)] == FRAME and records[1].data == SMALL
        assert [p.offset for p in reader.problems if "only its first" in p.message] == \
            [records[0].offset]  # fmt: skip
    for view in (("packets",), ("packets", "--json"), ("analyze", "--json")):
        _, _, _, base = peak_rss_mb(*view, str(small))
        code, out, err, peak = peak_rss_mb(*view, str(path))
        assert code == 0, err
        assert "Traceback" not in err
        assert len(out.splitlines()) == (1 if view[0] == "analyze" else 2)
        # A copy of the record would be 200+ MiB; the head is 256 KiB.
        assert peak < base + 40, (view, peak, base)
        lines = err.splitlines()
        assert any("only its first 262144 bytes (the headers) are read" in ln for ln in lines)
