"""A time-disjoint capture set is read file after file by one engine.

``tcplab.scale.local.run_set`` takes that path (``concatenated``) when the
``_engine.span`` pre-pass is sure no file has a record earlier than the
latest record of the files before it, and otherwise merges the files by
order key.  Either way the output is the same, byte for byte: each test runs
``tcplab analyze`` in this process twice, once as it chooses and once with
the merge forced, and compares; ``local.PATHS`` says which path ran.
"""

from __future__ import annotations

import itertools
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tcplab.analyze import _engine
from tcplab.cli import cli
from tcplab.scale import local
from tcplab.scale.captureset import resolve

pytestmark = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")


def analyze(monkeypatch: pytest.MonkeyPatch, merged: bool, *args: str) -> tuple[bytes, str]:
    """stdout and the path taken (``merged``: the merge forced)."""
    before = local.PATHS.copy()
    with monkeypatch.context() as m:
        if merged:
            m.setattr(local, "time_disjoint", lambda capture: False)
        result = CliRunner().invoke(cli, ["analyze", *args])
    assert result.exit_code == 0, result.output
    taken = local.PATHS - before
    assert len(taken) == 1
    return result.stdout_bytes, next(iter(taken))


def same_both_ways(monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """The output with the path ``run_set`` picks equals the merge's; the path."""
    fast, path = analyze(monkeypatch, False, *args)
    slow, merged = analyze(monkeypatch, True, *args)
    assert merged == "merged"
    if fast != slow:
        for ours, theirs in zip(fast.splitlines(), slow.splitlines(), strict=False):
            assert ours == theirs
    assert fast == slow
    return path


def cut(one: Path, out: Path, files: int, pcapng: bool = True) -> list[Path]:
    """``one`` cut into ``files`` files by packet count, every other one pcapng."""
    count = int(
        subprocess.run(
            ["capinfos", "-Mc", str(one)], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
    )
    out.mkdir()
    subprocess.run(
        ["editcap", "-F", "pcap", "-c", str(-(-count // files)), str(one), str(out / "r.pcap")],
        check=True,
    )
    parts = sorted(out.iterdir())
    for i, part in enumerate(parts):
        if pcapng and i % 2:
            ng = part.with_suffix(".pcapng")
            subprocess.run(["editcap", "-F", "pcapng", str(part), str(ng)], check=True)
            part.unlink()
            parts[i] = ng
    return parts


def records(path: Path) -> list[tuple[int, int, bytes]]:
    """A classic little-endian µs pcap's records as (seconds, µs, rest)."""
    raw = path.read_bytes()
    out, pos = [], 24
    while pos < len(raw):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", raw, pos)
        out.append((sec, usec, raw[pos + 8 : pos + 16 + caplen]))
        pos += 16 + caplen
    return out


def write_records(path: Path, head: bytes, recs: list[tuple[int, int, bytes]]) -> None:
    path.write_bytes(head + b"".join(struct.pack("<II", s, u) + rest for s, u, rest in recs))


def test_disjoint_ring_is_concatenated(
    small_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = cut(small_synth, tmp_path / "ring", 5)
    ring = str(tmp_path / "ring")
    assert local.time_disjoint(resolve([ring], []))
    for args in (["--conn-log"], ["--json"], ["--packets"], ["--packets", "--json"], []):
        assert same_both_ways(monkeypatch, *args, ring) == "concatenated"
    # The frames say which file each packet came from.
    packets, _ = analyze(monkeypatch, False, "--packets", ring)
    assert f"{parts[3].name}:1 ".encode() in packets
    # Parquet: the same tables.
    for merged, name in ((False, "fast"), (True, "merged")):
        analyze(monkeypatch, merged, "--parquet", str(tmp_path / name), "--parquet-packets", ring)
    for table in ("connections", "packets"):
        fast = pq.read_table(tmp_path / "fast" / table).to_pylist()
        assert fast and fast == pq.read_table(tmp_path / "merged" / table).to_pylist()


def test_overlapping_set_is_merged(
    small_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "set"
    d.mkdir()
    # Every other packet in each file: both files span the whole capture.
    subprocess.run(
        [
            "editcap",
            "-F",
            "pcap",
            "-r",
            str(small_synth),
            str(d / "a.pcap"),
            *(str(i) for i in range(1, 6001, 2)),
        ],
        check=True,
    )
    subprocess.run(
        [
            "editcap",
            "-F",
            "pcap",
            str(small_synth),
            str(d / "b.pcap"),
            *(str(i) for i in range(1, 6001, 2)),
        ],
        check=True,
    )
    assert not local.time_disjoint(resolve([str(d)], []))
    assert same_both_ways(monkeypatch, "--conn-log", str(d)) == "merged"
    # A disjoint ring given in reverse time order overlaps too.
    parts = cut(small_synth, tmp_path / "ring", 3, pcapng=False)
    backwards = [str(p) for p in reversed(parts)]
    assert not local.time_disjoint(resolve(backwards, []))
    assert same_both_ways(monkeypatch, "--conn-log", *backwards) == "merged"


def test_equal_boundary_times(
    small_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last record of one file at the first time of the next: in order (the
    merge breaks a tie by file number), but not with the files the other way."""
    first, second = cut(small_synth, tmp_path / "ring", 2, pcapng=False)
    head = first.read_bytes()[:24]
    a, b = records(first), records(second)
    a[-1] = (b[0][0], b[0][1], a[-1][2])  # file one's last packet at file two's first time
    write_records(first, head, a)
    both = [str(first), str(second)]
    assert local.time_disjoint(resolve(both, []))
    assert same_both_ways(monkeypatch, "--conn-log", *both) == "concatenated"
    assert same_both_ways(monkeypatch, "--packets", *both) == "concatenated"
    # One µs later: file one ends after file two begins.
    a[-1] = (b[0][0], b[0][1] + 1, a[-1][2]) if b[0][1] < 999_999 else (b[0][0] + 1, 0, a[-1][2])
    write_records(first, head, a)
    assert not local.time_disjoint(resolve(both, []))
    assert same_both_ways(monkeypatch, "--conn-log", *both) == "merged"


def test_step_back_below_the_next_file_is_not_disjoint(
    small_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = cut(small_synth, tmp_path / "ring", 2, pcapng=False)
    head = first.read_bytes()[:24]
    a, b = records(first), records(second)
    both = [str(first), str(second)]
    # The first file's largest time is in its middle, past the second's first
    # record; its last record is earlier again (its clock stepped back).
    middle = len(a) // 2
    late = b[len(b) // 2]
    write_records(first, head, [*a[:middle], (late[0], late[1], a[middle][2]), *a[middle + 1 :]])
    assert (a[-1][0], a[-1][1]) < (b[0][0], b[0][1])
    assert not local.time_disjoint(resolve(both, []))
    assert same_both_ways(monkeypatch, "--conn-log", *both) == "merged"
    # The second file's clock stepping back below the first file's end, after
    # a first record that is later than it.
    write_records(first, head, a)
    assert local.time_disjoint(resolve(both, []))
    early = (a[-1][0] - 1, a[-1][1])
    write_records(second, head, [*b[:middle], (*early, b[middle][2]), *b[middle + 1 :]])
    assert not local.time_disjoint(resolve(both, []))
    assert same_both_ways(monkeypatch, "--conn-log", *both) == "merged"


def test_odd_files_are_merged(
    small_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anything the pre-pass is not sure of: the merge, as before."""
    parts = cut(small_synth, tmp_path / "ring", 3, pcapng=False)
    raw = parts[1].read_bytes()
    parts[1].write_bytes(raw[: len(raw) - 10])  # a record cut short
    assert _engine.span(os.open(parts[1], os.O_RDONLY)) is None
    assert same_both_ways(monkeypatch, "--conn-log", str(tmp_path / "ring")) == "merged"
    parts[1].write_bytes(b"not a capture at all, not at all")
    assert same_both_ways(monkeypatch, "--conn-log", str(tmp_path / "ring")) == "merged"


def _pcap(path: Path, recs: list[tuple[int, bytes]]) -> None:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    path.write_bytes(
        head
        + b"".join(struct.pack("<IIII", t // 10**6, t % 10**6, len(d), len(d)) + d for t, d in recs)
    )


def test_span_walks_many_chains_exactly(tmp_path: Path) -> None:
    """``span`` on files large enough to be walked as several chains: the
    count and times of a plain walk, also when a chain starts on a run of
    fake records inside a payload (then the file is walked again as one)."""
    sizes = [60 + (i * 7919) % 1440 for i in range(12_000)]
    times = [
        1_700_000_000_000_000 + i * 1000 - (500_000 if i % 997 == 0 else 0)
        for i in range(len(sizes))
    ]
    recs = [(t, bytes([i % 251]) * n) for i, (t, n) in enumerate(zip(times, sizes, strict=True))]
    plain = tmp_path / "plain.pcap"
    _pcap(plain, recs)
    assert plain.stat().st_size > 8 * 4 * (256 * 1024 + 16)
    # A 200 KB record of fake records where the third chain guesses a boundary.
    fake = b"".join(
        struct.pack("<IIII", 1_700_000_000, i % 10**6, 40, 40) + bytes(40) for i in range(3600)
    )
    size = plain.stat().st_size + 16 + len(fake)
    guess = 24 + (size - 24) // 8 * 2
    pos, k = 24, 0
    while pos + 16 + len(fake) <= guess + 1000:
        pos += 16 + len(recs[k][1])
        k += 1
    fooled = tmp_path / "fooled.pcap"
    fooled_recs = [*recs[:k], (times[k], fake), *recs[k:]]
    _pcap(fooled, fooled_recs)
    assert pos < guess < pos + 16 + len(fake)
    for path, got in ((plain, recs), (fooled, fooled_recs)):
        fd = os.open(path, os.O_RDONLY)
        try:
            t = [t * 1000 for t, _ in got]  # µs: ns
            assert _engine.span(fd) == (len(got), min(t), max(t))
        finally:
            os.close(fd)


def _fragment() -> bytes:
    """An Ethernet frame holding the first fragment of a TCP datagram whose
    rest never comes (the Python decoder reports it at the end of its file)."""
    ip = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            44,
            7,
            0x2000,
            64,
            6,
            0,
            bytes([10, 9, 0, 1]),
            bytes([10, 9, 0, 2]),
        )
    )
    total = sum(struct.unpack("!10H", bytes(ip)))
    total = (total & 0xFFFF) + (total >> 16)
    ip[10:12] = struct.pack("!H", ~total & 0xFFFF)
    return bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x00" + bytes(ip) + bytes(24)


def test_problem_lines_in_the_merges_order(
    small_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file's problems as the merge says them: the files without TCP
    packets first (the merge finishes them before any other), then the
    others in file order."""
    first, last = cut(small_synth, tmp_path / "ring", 2, pcapng=False)
    head = first.read_bytes()[:24]
    frag = _fragment()
    a, b = records(first), records(last)
    rest = struct.pack("<II", len(frag), len(frag)) + frag
    write_records(first, head, [*a, (a[-1][0], a[-1][1], rest)])
    write_records(last, head, [*b, (b[-1][0], b[-1][1], rest)])
    middle = tmp_path / "ring" / (first.stem + "b.pcap")  # between the two by name
    write_records(middle, head, [(a[-1][0], a[-1][1], rest)])
    ring = str(tmp_path / "ring")
    assert local.time_disjoint(resolve([ring], []))
    outputs = []
    for merged in (False, True):
        before = local.PATHS.copy()
        with monkeypatch.context() as m:
            if merged:
                m.setattr(local, "time_disjoint", lambda capture: False)
            result = CliRunner().invoke(cli, ["analyze", "--conn-log", ring])
        outputs.append((result.exit_code, result.stdout, result.stderr))
        assert list(local.PATHS - before) == ["merged" if merged else "concatenated"]
    assert outputs[0] == outputs[1]
    lines = outputs[0][2].splitlines()
    names = [next(n for n in (middle.name, first.name, last.name) if n in line) for line in lines]
    assert names == [middle.name, first.name, last.name], lines


def _stream(file_id: int, keys: list[int], started: list[int], chunk: int) -> Any:
    """A file's rows for ``columns.merge``: frames 0.., the given keys, in
    chunks; notes in ``started`` when it is first read."""
    import numpy as np

    from tcplab.scale.columns import ROW

    started.append(file_id)
    rows = np.zeros(len(keys), ROW)
    rows["index"] = np.arange(len(keys))
    rows["t"] = keys
    ks = np.array(keys, np.int64)
    frames = (file_id << 40) + np.arange(len(keys), dtype=np.int64)
    for at in range(0, len(keys), chunk):
        yield rows[at : at + chunk], ks[at : at + chunk], frames[at : at + chunk]


@pytest.mark.parametrize(
    "files",
    [
        [[1, 2, 3, 4], [5, 6, 7], [8, 9, 9, 10]],  # a ring: one after another
        [[1, 2, 3, 4], [4, 5, 6], [6, 7, 8]],  # equal boundary keys
        [[1, 5, 9], [2, 6, 10], [3, 4, 11]],  # overlapping throughout
        [[10, 11, 12], [1, 2, 3], [5, 5, 20]],  # later files first, one spans
        [[7], [], [1, 7, 7, 7], [7, 8]],  # ties on one key, an empty file
    ],
)
def test_a_file_joins_the_merge_at_its_first_key(files: list[list[int]]) -> None:
    """``columns.merge`` given each file's first key gives the rows in the
    same order as the merge that starts every file at once, and starts a
    file only once the merge reaches its first key: a ring's files are read
    one after another."""
    import numpy as np

    from tcplab.scale.columns import merge

    def merged(firsts: bool, chunk: int) -> tuple[list[int], list[int]]:
        started: list[int] = []
        live = [(i, keys) for i, keys in enumerate(files) if keys]
        streams = [(i, _stream(i, keys, started, chunk)) for i, keys in live]
        first_keys = [keys[0] for _, keys in live] if firsts else None
        out = [np.asarray(f).tolist() for _, _, f in merge(streams, first_keys)]
        return [f for part in out for f in part], started

    for chunk in (1, 2, 100):
        want, eager = merged(False, chunk)
        got, lazy = merged(True, chunk)
        assert got == want
        assert len(want) == sum(map(len, files))
        assert len(eager) == len(lazy)
    ring = all(a and b and a[-1] < b[0] for a, b in itertools.pairwise(files))
    if ring:  # each file starts only when the one before is read through
        started: list[int] = []
        streams = [(i, _stream(i, keys, started, 1)) for i, keys in enumerate(files)]
        merging = merge(streams, [keys[0] for keys in files])
        for _ in range(len(files[0])):
            next(merging)
        assert started == [0]
