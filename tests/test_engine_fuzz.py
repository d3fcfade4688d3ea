"""The engine's reader and decoder against damaged captures.

Mutated pcap and pcapng files (bit flips, truncations, record and block
lengths and caplen overwritten) go through the engine: every run ends,
without a crash or a traceback, either with an analysis (problems as lines
in the report) or with ``InputError`` for a file that is no capture at all;
memory stays bounded (a corrupt length never becomes an allocation).
"""

from __future__ import annotations

import random
import resource
import struct
import subprocess
from pathlib import Path

import pytest

from tcplab.analyze.engine import collect
from tcplab.analyze.synth import write_capture
from tcplab.errors import InputError


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("fuzz")
    pcap = root / "base.pcap"
    write_capture(pcap, 400, 12, seed=5, concurrency_seconds=2)
    files = {"pcap": pcap.read_bytes()}
    pcapng = root / "base.pcapng"
    done = subprocess.run(["editcap", "-F", "pcapng", str(pcap), str(pcapng)], check=False)
    if done.returncode == 0:
        files["pcapng"] = pcapng.read_bytes()
    return files


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 20)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncation
        del buf[rng.randrange(len(buf)) :]
    elif kind == 2:  # a length field (pcap caplen, pcapng block length) overwritten
        i = rng.randrange(0, max(1, len(buf) - 4)) & ~3
        buf[i : i + 4] = struct.pack("<I", rng.choice([0, 1, 12, 0xFFFF, 1 << 28, 0xFFFFFFFF]))
    elif kind == 3:  # a slice of bytes replaced by random ones
        i = rng.randrange(len(buf))
        n = rng.randint(1, 64)
        buf[i : i + n] = bytes(rng.randrange(256) for _ in range(min(n, len(buf) - i)))
    else:  # a slice duplicated (records out of step)
        i = rng.randrange(len(buf))
        buf[i:i] = buf[i : i + rng.randint(1, 200)]
    return bytes(buf)


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_mutated_captures_end_cleanly(
    originals: dict[str, bytes], tmp_path: Path, kind: str
) -> None:
    if kind not in originals:
        pytest.skip("editcap (wireshark) not installed")
    rng = random.Random(f"engine-fuzz-{kind}")
    path = tmp_path / f"fuzz.{kind}"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(150):
        path.write_bytes(mutate(originals[kind], rng))
        try:
            got = collect(path)
        except InputError:
            continue  # not a capture at all: one line, exit 2 in the CLI
        assert got.report.frames >= 0
        for line in got.report.problems:
            assert "\n" not in line and line.startswith(str(path))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, grown_mb
