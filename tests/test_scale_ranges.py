"""Stage 1 of the distributed run in C (tcplab.scale.ranges) against its
Python reference: the resynchronisation scan (``_engine.resync_scan`` vs
``_pcap_valid`` / ``_pcapng_valid``) at every offset, and the pieces the
engine writes from its partition buffers (``Engine.write_pieces``) vs the
rows the Python reader decodes, split by ``_engine.split_rows``: the same
bytes, on every trace of the suite as classic pcap (micro- and nanosecond,
both byte orders) and pcapng, with ranges cut at many offsets."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SHARED
from tcplab.analyze.synth import write_capture
from tcplab.scale import ranges
from tcplab.scale.columns import ROW
from tcplab.scale.engine import EngineOptions

pytestmark = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")

PARTITIONS = 5


def _big_endian(src: Path, dst: Path) -> None:
    """The same classic pcap with every header field big-endian."""
    data = src.read_bytes()
    head = struct.unpack_from("<IHHiIII", data, 0)
    out = [struct.pack(">IHHiIII", *head)]
    at = 24
    while at + 16 <= len(data):
        sec, frac, caplen, orig = struct.unpack_from("<IIII", data, at)
        out.append(struct.pack(">IIII", sec, frac, caplen, orig))
        out.append(data[at + 16 : at + 16 + caplen])
        at += 16 + caplen
    dst.write_bytes(b"".join(out))


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The suite's uncompressed traces, a synthetic capture, and each pcap as
    pcapng, nanosecond pcap and big-endian pcap too."""
    root = tmp_path_factory.mktemp("traces")
    synth = root / "synth.pcap"
    write_capture(synth, 3000, 40, seed=3, concurrency_seconds=20.0)
    here = Path(__file__).parent
    found = sorted(here.glob("data/**/*.pcap")) + sorted((SHARED / "peer-traces").rglob("*.pcap"))
    found += [*sorted((SHARED / "peer-traces").rglob("*.pcapng")), synth]
    out: list[Path] = []
    for i, path in enumerate(found):
        out.append(path)
        if path.suffix != ".pcap":
            continue
        for fmt, suffix in (("pcapng", ".pcapng"), ("nsecpcap", ".ns.pcap")):
            dst = root / f"{i}-{path.stem}{suffix}"
            subprocess.run(["editcap", "-F", fmt, str(path), str(dst)], check=True)
            out.append(dst)
        be = root / f"{i}-{path.stem}.be.pcap"
        _big_endian(path, be)
        out.append(be)
    assert len(out) > 80
    return out


def _layouts(traces: list[Path]) -> Iterator[ranges.FileLayout]:
    for i, path in enumerate(traces):
        lay = ranges.layout(str(path), i)
        assert lay.kind in ("pcap", "pcapng"), path
        yield lay


def test_resync_scan_equals_the_python_checks_at_every_offset(traces: list[Path]) -> None:
    """Every candidate offset of the head and the tail of each trace (and of
    buffers cut short of the file's end): the C scan finds a boundary there
    exactly when the Python checks accept it."""
    checked = accepted = 0
    for lay in _layouts(traces):
        data = Path(lay.path).read_bytes()
        valid = ranges._pcap_valid if lay.kind == "pcap" else ranges._pcapng_valid
        scan = ranges._scanner(lay)
        step = 1 if lay.kind == "pcap" else 4
        tail = max(0, len(data) - 3000) & ~3
        windows = [(0, min(len(data), 6000), True), (tail, len(data), True)]
        windows += [(0, min(len(data), 2000), False), (0, len(data) // 2, False)]
        for lo, hi, whole in windows:
            buf = data[lo:hi]
            eof = whole and hi == len(data)
            for p in range(0, len(buf) if len(buf) < 6000 else 3000, step):
                want = valid(lay, buf, p, eof)
                got, cut = scan(buf, p + 1, eof, p)
                assert (got == p) == want and not (cut and want), (lay.path, lo, p, eof)
                checked += 1
                accepted += want
            # ... and the scan over the whole window finds the first of them.
            first = next((p for p in range(0, len(buf), step) if valid(lay, buf, p, eof)), -1)
            assert scan(buf, len(buf), eof, 0)[0] == first, (lay.path, lo)
    assert checked > 100_000 and accepted > 1000


def _resync_reference(lay: ranges.FileLayout, data: bytes, start: int, end: int) -> int | None:
    """``ranges.resync`` as it was written first: the Python checks over
    ``SCAN_WINDOW`` windows."""
    valid = ranges._pcap_valid if lay.kind == "pcap" else ranges._pcapng_valid
    step = 1 if lay.kind == "pcap" else 4
    base = start + ((-start) % 4 if lay.kind == "pcapng" else 0)
    while base < end:
        buf = data[base : base + ranges.SCAN_WINDOW]
        eof = base + len(buf) >= lay.size
        limit = min(len(buf), end - base)
        for p in range(0, limit, step):
            if valid(lay, buf, p, eof):
                return base + p
        if eof:
            return None
        base += max(limit - 2 * (1 << 18), step) if limit == len(buf) else limit
    return None


@pytest.mark.parametrize("first_look", [48, 4096, ranges.FIRST_LOOK])
def test_resync_with_a_first_look_equals_the_reference(
    traces: list[Path], first_look: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the first look's size (records longer than it included), the
    boundary found is the one the Python checks find over whole windows,
    from starts all over each trace."""
    monkeypatch.setattr(ranges, "FIRST_LOOK", first_look)
    found = 0
    for lay in _layouts(traces):
        if lay.size > 100_000:  # (the reference is slow)
            continue
        data = Path(lay.path).read_bytes()
        starts = sorted({*range(lay.data_start, len(data), max(len(data) // 11, 1)), len(data) - 5})
        with open(lay.path, "rb") as f:
            for start in (s for s in starts if s >= 0):
                for end in (start + 1, start + 3000, len(data) + 1):
                    want = _resync_reference(lay, data, start, end)
                    assert ranges.resync(lay, f, start, end) == want, (lay.path, start, end)
                    found += want is not None
    assert found > 500


def _pieces(refs: list[ranges.PieceRef]) -> list[bytes]:
    out = []
    for path, offset, n in refs:
        with open(path, "rb") as f:
            f.seek(offset)
            out.append(f.read(n * (ROW.itemsize + 8)))
    return out


def test_pieces_from_the_partition_buffers_equal_the_python_split(
    traces: list[Path], tmp_path: Path
) -> None:
    """Each range of each trace, cut at many offsets: the pieces the C
    reader writes from its partition buffers are, byte for byte, the rows
    the Python reader decodes split by flow hash, and the metadata are the
    ones of the range read into one array (``decode_range``); read back a
    few rows at a time (``piece_chunks``), the pieces are those bytes."""
    options = EngineOptions()
    compared = rows = 0
    for lay in _layouts(traces):
        cuts = {lay.size + 1, 997, 4099, max(lay.size // 3, 64), max(lay.size // 7, 64)}
        for cut in sorted(cuts):
            for spec_lay, spec in _plan(lay, cut):
                meta, refs = ranges.read_range(spec_lay, spec, PARTITIONS, options, str(tmp_path))
                _, chunks = ranges._python_range(spec_lay, spec, options)
                want_meta, _ = ranges.decode_range(spec_lay, spec, options)
                ref_path = tmp_path / "reference"
                with open(ref_path, "wb") as f:
                    counts = ranges._write_split(f.fileno(), chunks, PARTITIONS)
                assert meta.packets == counts, (lay.path, spec)
                at, want = 0, []
                data = ref_path.read_bytes()
                for n in counts:
                    want.append(data[at : at + n * (ROW.itemsize + 8)])
                    at += n * (ROW.itemsize + 8)
                assert _pieces(refs) == want, (lay.path, spec)
                for ref, piece in zip(refs, want, strict=True):  # read back, in chunks of 7 rows
                    got = [(r.tobytes(), t.tobytes()) for r, t in ranges.piece_chunks(ref, 7)]
                    back = b"".join(r for r, _ in got) + b"".join(t for _, t in got)
                    assert back == piece, (lay.path, spec)
                skip = ("packets", "seconds", "worker", "shuffle_bytes")
                for name in (n for n in ranges.RangeMeta.__slots__ if n not in skip):
                    assert getattr(meta, name) == getattr(want_meta, name), (lay.path, spec, name)
                compared += 1
                rows += sum(counts)
                for f in tmp_path.iterdir():
                    f.unlink()
    assert compared > 300 and rows > 20_000


def _plan(lay: ranges.FileLayout, cut: int) -> list[tuple[ranges.FileLayout, ranges.RangeSpec]]:
    from tcplab.scale.cluster import plan_ranges

    return plan_ranges([lay], cut)


def test_a_field_the_row_cannot_hold_is_refused() -> None:
    """The shuffle's row is narrower than the engine's packet: a value that
    does not fit is an error, never a silently truncated field."""
    import numpy as np

    from tcplab.analyze import _engine
    from tcplab.scale.columns import decoder, rows_of

    def packet(window: int, wire_length: int, mss: int | None) -> tuple[Any, ...]:
        src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
        opts = (mss, 7, True, 5, 6, ((100, 200),))
        return (3, 10**18, 4, src, dst, 40000, 443, 1, 2, 0x12, window, 10, wire_length, 10,
                50, 1, 1, opts, 0)  # fmt: skip

    eng = decoder(EngineOptions())
    eng.decode_only()
    eng.packet(*packet(65535, 2**32 - 1, 1460))
    row = rows_of(eng.columns()[0])
    assert len(row) == 1
    assert (int(row["window"][0]), int(row["wire_length"][0]), int(row["mss"][0])) == (
        65535,
        2**32 - 1,
        1460,
    )
    assert int(row["wscale"][0]) == 7 and list(row["sack"][0][:2]) == [100, 200]
    assert not np.any(row["sack"][0][2:])
    for bad in (packet(65536, 60, 1460), packet(100, 2**32, 1460), packet(100, 60, 65536)):
        with pytest.raises(_engine.EngineError, match="does not fit"):
            eng.packet(*bad)
    assert len(rows_of(eng.columns()[0])) == 0


def test_a_scratch_file_cut_short_is_an_error_not_a_crash(
    traces: list[Path], tmp_path: Path
) -> None:
    """Pieces are read back mapped: a scratch file shorter than its pieces
    (a full disk, another process) is one OSError, not a SIGBUS."""
    lay = ranges.layout(str(traces[-1]), 0)  # a synthetic capture: every partition has rows
    spec = ranges.RangeSpec(0, 0, lay.data_start, ranges.WHOLE_FILE, exact=True)
    _meta, refs = ranges.read_range(lay, spec, PARTITIONS, EngineOptions(), str(tmp_path))
    path, offset, n = refs[-1]
    assert n > 0
    with open(path, "r+b") as f:
        f.truncate(offset + n * ROW.itemsize)  # its rows, not their times
    assert sum(len(r) for r, _ in ranges.piece_chunks(refs[0], 1000)) == refs[0][2]
    with pytest.raises(OSError, match="ended early"):
        list(ranges.piece_chunks(refs[-1], 1000))


def test_a_file_that_shrinks_while_its_range_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The range's reader maps the capture; a file cut short under it (a
    ring's file reused) is read by the Python reader instead, which reports
    the truncated tail as a problem: no crash, no exception, the records
    before the cut kept."""
    from tcplab.scale import columns

    path = tmp_path / "shrinks.pcap"
    write_capture(path, 60_000, 200, seed=5, concurrency_seconds=30.0)
    size = path.stat().st_size
    assert size > 12 << 20  # more than two of the reader's 4 MiB windows
    cut = (4 << 20) - (64 << 10)  # inside the first window, before where its reading stopped
    real = columns.Decode.run_fd

    def shrinking(self: columns.Decode, fd: int, prefix: bytes = b"") -> Iterator[Any]:
        for n, rows in enumerate(real(self, fd, prefix)):
            yield rows
            if n == 0:
                with open(path, "r+b") as f:
                    f.truncate(cut)

    monkeypatch.setattr(columns.Decode, "run_fd", shrinking)
    lay = ranges.layout(str(path), 0)
    spec = ranges.RangeSpec(0, 0, lay.data_start, ranges.WHOLE_FILE, exact=True)
    meta, _refs = ranges.read_range(lay, spec, PARTITIONS, EngineOptions(), str(tmp_path))
    assert sum(meta.packets) > 1000 and meta.lost
    assert any("truncated" in message for _offset, message in meta.problems), meta.problems
