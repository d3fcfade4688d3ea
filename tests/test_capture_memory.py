"""Streaming: reading a file never holds more than a chunk, whatever its size.

Each file is read in a fresh interpreter that reports how much its peak RSS
grew during the read (after imports), so the figure is the reader's alone.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.capture import PcapngWriter, PcapWriter

RECORDS = 200_000
FRAME = bytes(range(256))[:200]
GROWTH_LIMIT = 8 * 1024 * 1024  # bytes; one 1 MiB chunk plus interpreter noise

_PROBE = """
import json, resource, sys
from tcplab.capture import open_capture
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
count = total = 0
with open_capture(sys.argv[1]) as reader:
    for record in (reader.raw() if sys.argv[2] == "raw" else reader):
        count += 1
        total += len(record[2] if sys.argv[2] == "raw" else record.data)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"count": count, "bytes": total, "growth": (after - before) * 1024}))
"""


def _read_in_fresh_process(path: Path, mode: str) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, int] = json.loads(proc.stdout)
    return result


@pytest.fixture(scope="module")
def big_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.pcap"
    with path.open("wb") as f:
        writer = PcapWriter(f, 1)
        for i in range(RECORDS):
            writer.write(i * 1000, FRAME)
    return path


@pytest.mark.parametrize("mode", ["raw", "records"])
def test_pcap_streams_in_bounded_memory(big_pcap: Path, mode: str) -> None:
    size = big_pcap.stat().st_size
    assert size > 40 * 1024 * 1024
    result = _read_in_fresh_process(big_pcap, mode)
    assert result["count"] == RECORDS
    assert result["bytes"] == RECORDS * len(FRAME)
    assert result["growth"] < GROWTH_LIMIT, result


def test_pcapng_gzip_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.pcapng.gz"
    records = RECORDS // 2
    with gzip.open(path, "wb", compresslevel=1) as f:
        writer = PcapngWriter(f)  # type: ignore[arg-type]
        writer.add_interface(1)
        for i in range(records):
            writer.write(i * 1000, FRAME, comment="c" if i % 1000 == 0 else None)
    result = _read_in_fresh_process(path, "records")
    assert result["count"] == records
    assert result["growth"] < GROWTH_LIMIT, result
