"""Hostile captures: a hypothesis fuzz test over the readers and the analyzer, a
gzip bomb, and a pcapng that declares a million interfaces.

The mutations are bench/fuzz.py's (the 100,000-case campaign); here
hypothesis drives them for a few thousand cases through ``packets --json``,
``analyze --json`` and ``analyze --conn-log`` in process.  Every case must
end in the CLI's one-line boundary: no traceback, an exit status of the
README's rule (0/1/2, the views agreeing), every stderr line ``tcplab: ...``.
"""

from __future__ import annotations

import gzip
import importlib.util
import random
import struct
import sys
import zlib
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SYN, ipv4_tcp, peak_rss_mb

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fuzz.py"


def _fuzz_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tcplab_bench_fuzz", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fuzz = _fuzz_module()
pytestmark = pytest.mark.skipif(not fuzz.TRACES.is_dir(), reason="needs shared/peer-traces")
SEEDS: list[object] = []
VIEWS = (("packets", "--json"), ("analyze", "--json"), ("analyze", "--conn-log"))


@settings(max_examples=2000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(rng=st.randoms(use_true_random=False))
def test_mutated_captures_end_in_one_line_each(tmp_path_factory: pytest.TempPathFactory,
                                               rng: random.Random) -> None:  # fmt: skip
    if not SEEDS:
        SEEDS.extend(fuzz.load_seeds(max_bytes=7000, max_records=20))
    data, how = fuzz.mutate_with(SEEDS, rng)
    path = tmp_path_factory.getbasetemp() / "case.cap"
    path.write_bytes(data)
    outcomes = {view: fuzz.run_view([*view, str(path)], 30.0) for view in VIEWS}
    assert fuzz.judge(outcomes) == [], how


# -- a gzip bomb ---------------------------------------------------------------------------------


def _pcap_head() -> bytes:
    frame = ipv4_tcp("10.0.0.1", "10.0.0.2", 1000, 80, 1, 0, SYN)
    return (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
            + struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame)  # fmt: skip


def _member(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # a whole gzip member
    return packer.compress(data) + packer.flush()


def test_a_gzip_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """4 MiB of gzip members that expand to 16 GiB: stopped with one line."""
    zeros = _member(bytes(64 << 20))
    path = tmp_path / "bomb.pcap.gz"
    with path.open("wb") as out:
        out.write(_member(_pcap_head()))
        for _ in range(256):
            out.write(zeros)
    assert path.stat().st_size < 20 << 20
    assert len(gzip.decompress(_member(bytes(1000)))) == 1000
    for view in (("packets",), ("analyze", "--json")):
        code, out_text, err, peak = peak_rss_mb(*view, str(path))
        assert "Traceback" not in err
        assert code in (0, 1), err
        bomb = [ln for ln in err.splitlines() if "decompression bomb" in ln]
        assert len(bomb) == 1 and bomb[0].startswith(f"tcplab: {path}: offset "), err
        assert peak < 400, peak  # (16 GiB if it were held; the reader holds a chunk)
        if view == ("packets",):
            assert out_text.splitlines()[0].endswith("Flags [S], seq 0, win 65535, length 0")


def test_a_million_interfaces_cost_a_bounded_table(tmp_path: Path) -> None:
    def block(kind: int, body: bytes) -> bytes:
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    frame = ipv4_tcp("10.0.0.1", "10.0.0.2", 1000, 80, 1, 0, SYN)
    idb = block(1, struct.pack("<HHI", 101, 0, 0))
    epb = [block(6, struct.pack("<IIIII", iface, 0, 1, len(frame), len(frame)) + frame)
           for iface in (0, 999_999)]  # fmt: skip
    path = tmp_path / "interfaces.pcapng"
    with path.open("wb") as out:
        out.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        out.write(idb * 1_000_000)
        out.write(b"".join(epb))
    code, out_text, err, peak = peak_rss_mb("packets", str(path))
    assert code == 0, err
    assert len(out_text.splitlines()) == 1
    lines = err.splitlines()
    assert any("declares more than 65536 interfaces" in ln for ln in lines), lines
    assert any("for interface 999999" in ln for ln in lines), lines
    assert all(ln.startswith(f"tcplab: {path}: ") for ln in lines), lines
    assert peak < 200, peak
