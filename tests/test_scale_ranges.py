"""Stage 1 of the distributed run in C (tcplab.scale.ranges) against its
Python reference: the resynchronisation scan (``_engine.resync_scan`` vs
``_pcap_valid`` / ``_pcapng_valid``) at every offset, and the pieces the
engine packs in its partition buffers (``Engine.write_pieces``) vs the
rows the Python reader decodes, split and packed by ``_engine.pack_split``:
the same bytes, on every trace of the suite as classic pcap (micro- and nanosecond,
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
from tcplab.analyze import _engine
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
    for path, offset, _n, size, _first in refs:
        with open(path, "rb") as f:
            f.seek(offset)
            out.append(f.read(size))
    return out


def _read_back(refs: list[ranges.PieceRef]) -> tuple[Any, Any]:
    """Every piece's rows and times, unpacked, the pieces one after the other."""
    import numpy as np

    reader = ranges.PieceReader()
    rows, times = [], []
    for ref in refs:
        for r, t, frames in reader.chunks(ref, 1000):
            assert (frames == r["index"] + 1000).all()
            rows.append(r.copy())
            times.append(t.copy())
    if not rows:
        return np.zeros(0, ROW), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(times)


def test_pieces_from_the_partition_buffers_equal_the_python_split(
    traces: list[Path], tmp_path: Path
) -> None:
    """Each range of each trace, cut at many offsets: the pieces the C
    reader packs in its partition buffers are, byte for byte, the rows the
    Python reader decodes split by flow hash and packed, and the metadata
    are the ones of the range read into one array (``decode_range``).
    Unpacked (``PieceReader``), the pieces are those rows and times, each
    partition's in frame order."""
    import numpy as np

    options = EngineOptions()
    compared = rows = packed = 0
    for lay in _layouts(traces):
        cuts = {lay.size + 1, 997, 4099, max(lay.size // 3, 64), max(lay.size // 7, 64)}
        for cut in sorted(cuts):
            for spec_lay, spec in _plan(lay, cut):
                meta, refs = ranges.read_range(spec_lay, spec, PARTITIONS, options, str(tmp_path))
                _, chunks = ranges._python_range(spec_lay, spec, options)
                want_meta, _ = ranges.decode_range(spec_lay, spec, options)
                ref_path = tmp_path / "reference"
                with open(ref_path, "wb") as f:
                    counts, sizes, firsts = ranges._write_split(f.fileno(), chunks, PARTITIONS)
                assert meta.packets == counts, (lay.path, spec)
                assert [ref.size for ref in refs] == sizes and meta.shuffle_bytes == sum(sizes)
                assert [ref.first_key for ref in refs] == firsts, (lay.path, spec)
                at, want = 0, []
                data = ref_path.read_bytes()
                for size in sizes:
                    want.append(data[at : at + size])
                    at += size
                assert _pieces(refs) == want, (lay.path, spec)
                back, times = _read_back(refs)
                decoded = [r for r, _ in chunks]
                expect = np.concatenate(decoded) if decoded else np.zeros(0, ROW)
                expect_times = np.concatenate([t for _, t in chunks]) if decoded else times
                order = np.argsort(back["index"], kind="stable")
                assert back[order].tobytes() == expect.tobytes(), (lay.path, spec)
                assert times[order].tobytes() == expect_times.tobytes(), (lay.path, spec)
                at = 0
                for ref in refs:  # each piece in frame order, from its first key
                    part = slice(at, at + ref.rows)
                    assert np.all(np.diff(back["index"][part]) > 0), (lay.path, spec)
                    if ref.rows:
                        assert times[at] == ref.first_key, (lay.path, spec)
                    at += ref.rows
                skip = ("packets", "seconds", "worker", "shuffle_bytes")
                for name in (n for n in ranges.RangeMeta.__slots__ if n not in skip):
                    assert getattr(meta, name) == getattr(want_meta, name), (lay.path, spec, name)
                compared += 1
                rows += sum(counts)
                packed += sum(sizes)
                for f in tmp_path.iterdir():
                    f.unlink()
    assert compared > 300 and rows > 20_000
    assert packed < rows * (ROW.itemsize + 8) / 2  # what the packing is for


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
    """A scratch file shorter than its pieces (a full disk, another
    process) is one OSError when its pieces are read back."""
    lay = ranges.layout(str(traces[-1]), 0)  # a synthetic capture: every partition has rows
    spec = ranges.RangeSpec(0, 0, lay.data_start, ranges.WHOLE_FILE, exact=True)
    _meta, refs = ranges.read_range(lay, spec, PARTITIONS, EngineOptions(), str(tmp_path))
    path, offset, n, size, _first = refs[-1]
    assert n > 0
    with open(path, "r+b") as f:
        f.truncate(offset + size // 2)
    assert sum(len(r) for r, _, _ in ranges.PieceReader().chunks(refs[0])) == refs[0].rows
    with pytest.raises(OSError, match="ended early"):
        list(ranges.PieceReader().chunks(refs[-1]))


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


def _row(**fields: Any) -> Any:
    """One Row as the decoders make it: an IPv4 segment with timestamps,
    changed by ``fields``."""
    import numpy as np

    row = np.zeros(1, ROW)
    base = dict(index=1, t=1_700_000_000 * 10**9, ver=4, sport=40000, dport=443, seq=7, ack=9,
                flags=0x10, window=512, length=100, wire_length=166, captured=166, ip_len=152,
                ts_val=5, ts_ecr=6, has_ts=1, mss=-1, wscale=-1, sack_perm=-1, checksum_ok=1,
                ip_checksum_ok=1, has_options=1)  # fmt: skip
    for name, value in {**base, **fields}.items():
        row[name] = value
    row["src"][0][:4] = (10, 0, 0, 1)
    row["dst"][0][:4] = (10, 0, 0, 2)
    return row


def test_packed_rows_come_back_byte_for_byte_whatever_their_fields() -> None:
    """Every flag of the packing (_engine.c, "packed rows"), alone and
    beside the others, across blocks of 7 rows: unpacked, the rows and
    their order-key times are the bytes packed."""
    import numpy as np

    v6 = _row(ver=6, has_ts=-1, ts_val=0, ts_ecr=0)
    v6["src"][0] = list(range(1, 17))
    v6["dst"][0] = [0] * 10 + [0xFF, 0xFF, 192, 0, 2, 1]
    mapped = _row()
    mapped["src"][0][4:] = 1  # IPv4 with bytes past its 4: carried as they are
    sack = _row(nsack=4)
    sack["sack"][0] = [1, 2, 3, 4, 5, 6, 7, 2**32 - 1]
    rows = [
        _row(),
        _row(index=2, t=1_700_000_000 * 10**9 + 1),
        _row(index=3, t=1_700_000_000 * 10**9 - 10 * 10**9),  # the clock steps back 10 s
        _row(index=2**40),  # a frame number far on
        _row(index=5),  # and back
        v6,
        mapped,
        sack,
        _row(mss=1460, wscale=7, sack_perm=1, flags=0x02, length=0),
        _row(mss=-1, wscale=14, sack_perm=-1),
        _row(length=70_000, wire_length=70_066, captured=70_066, ip_len=70_052),
        _row(captured=96),  # cut by the snap length
        _row(checksum_ok=-1, ip_checksum_ok=0, has_ts=0, ts_val=0, ts_ecr=0, has_options=0),
        _row(checksum_ok=0, ip_checksum_ok=-1, dropped=1),
        _row(t=-(2**63), index=-1),
        _row(t=2**63 - 1, index=2**63 - 1, seq=2**32 - 1, ack=2**32 - 1, window=65535, flags=0xFFF),
    ]
    rows = np.concatenate(rows * 3)
    keys = rows["t"].copy()
    keys[1::4] += 10**9  # a key later than the row's time
    keys[-1] = 2**63 - 1
    keys[-2] = 2**63 - 1  # the largest time so far, past the smallest
    ((n, packed, first),) = _engine.pack_split(rows, keys, 1, 7)
    assert first == keys[0]
    assert n == len(rows) and len(packed) < len(rows) * (ROW.itemsize + 8) / 2
    back_rows, back_keys, at = [], [], 0
    out_rows, out_keys, frames = np.zeros(7, ROW), np.zeros(7, np.int64), np.zeros(7, np.int64)
    while at < len(packed):
        count, nbytes = struct.unpack_from("=II", packed, at)
        block = packed[at + 8 : at + 8 + nbytes]
        got = _engine.unpack_block(block, out_rows, out_keys, frames, 0, -(2**63))
        assert got == count <= 7
        assert frames[:got].tobytes() == out_rows["index"][:got].tobytes()
        back_rows.append(out_rows[:got].copy())
        back_keys.append(out_keys[:got].copy())
        at += 8 + nbytes
    assert np.concatenate(back_rows).tobytes() == rows.tobytes()
    assert np.concatenate(back_keys).tobytes() == keys.tobytes()
    # a frame base and a least time, as stage 2 gives them (frames wrap as int64 do)
    count, nbytes = struct.unpack_from("=II", packed, 0)
    least = int(keys[2]) + 1
    assert _engine.unpack_block(packed[8 : 8 + nbytes], out_rows, out_keys, frames, 5, least) == 7
    assert (frames == rows["index"][:7] + 5).all()
    assert (out_keys == np.maximum(keys[:7], least)).all()


def test_damaged_packed_rows_and_rows_no_decoder_makes_are_errors() -> None:
    """Packing takes rows as to_row makes them; unpacking takes whole rows."""
    import numpy as np

    good = np.concatenate([_row(), _row(index=2)])
    ((_, packed, _),) = _engine.pack_split(good, good["t"].copy(), 1)
    out = np.zeros(8, ROW), np.zeros(8, np.int64), np.zeros(8, np.int64)
    assert _engine.unpack_block(packed[8:], *out, 0, 0) == 2
    whole = []  # cuts that leave whole rows: the first row's end (the reader checks the count)
    for cut in range(9, len(packed)):
        try:
            whole.append((cut, _engine.unpack_block(packed[8:cut], *out, 0, 0)))
        except _engine.EngineError as exc:
            assert "cut or damaged" in str(exc)
    assert len(whole) == 1 and whole[0][1] == 1
    with pytest.raises(_engine.EngineError, match="more rows"):
        _engine.unpack_block(packed[8:], out[0][:1], out[1], out[2], 0, 0)
    junk = _row(nsack=1)
    junk["sack"][0][5] = 1  # a word past its one block
    for bad in (_row(ver=5), _row(nsack=5), _row(checksum_ok=2), junk):
        with pytest.raises(_engine.EngineError, match="not a decoded packet"):
            _engine.pack_split(bad, bad["t"].copy(), 1)
