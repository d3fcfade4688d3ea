"""Odd but readable captures through every view, and the one exit-status rule.

- A pcapng whose if_tsresol is 0x80 (2**-0: whole seconds) stamps its
  packets some 10**18 years away: every view prints the times raw, the
  reader warns once (``tcplab: FILE: offset N: ...``), nothing crashes.
- Nothing readable -> exit 1, for ``packets`` and ``analyze`` alike, in
  every output mode; a file that is no capture -> 2.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from conftest import ACK, FIN, SYN, ipv4_tcp, run_tcplab
from tcplab.capture import PcapngWriter, open_capture
from tcplab.clock import DATE_MAX_NS
from test_capture_malformed import FRAMES, good_pcap

A, B = "10.0.0.1", "10.0.0.2"


def tsresol_capture(resolution: int) -> bytes:
    """Four packets whose nanosecond stamps are read with if_tsresol ``resolution``."""
    buf = io.BytesIO()
    writer = PcapngWriter(buf, comment="odd clock")
    iface = writer.add_interface(101, "x", tsresol=9)
    frames = [ipv4_tcp(A, B, 1000, 80, 100, 0, SYN), ipv4_tcp(B, A, 80, 1000, 500, 101, SYN | ACK),
              ipv4_tcp(A, B, 1000, 80, 101, 501, ACK),
              ipv4_tcp(A, B, 1000, 80, 101, 501, FIN | ACK)]  # fmt: skip
    for n, frame in enumerate(frames):
        writer.write(1_700_000_000_000_000_000 + n * 1000, frame, iface, None)
    data = buf.getvalue()
    at = data.index(bytes([9, 0, 1, 0, 9]))  # if_tsresol option: code 9, length 1, value 9
    return data[: at + 4] + bytes([resolution]) + data[at + 5 :]


VIEWS = [
    ("packets",), ("packets", "--utc"), ("packets", "--time", "date"),
    ("packets", "--time", "epoch"), ("packets", "--time", "delta"), ("packets", "--json"),
    ("analyze",), ("analyze", "--conn-log"), ("analyze", "--json"), ("analyze", "--packets"),
    ("analyze", "--ladder", "0"), ("analyze", "--problems"),
]  # fmt: skip


@pytest.mark.parametrize("resolution", [0x80, 0x81, 0x00, 0xFF])
def test_the_reader_warns_once_with_the_offset(tmp_path: Path, resolution: int) -> None:
    path = tmp_path / "clock.pcapng"
    path.write_bytes(tsresol_capture(resolution))
    with open_capture(path) as reader:
        records = list(reader)
        odd = [p for p in reader.problems if "is not a date" in p.message]
    assert len(records) == 4
    beyond = [r for r in records if r.time_ns > DATE_MAX_NS]
    assert len(odd) == (1 if beyond else 0)
    if beyond:
        assert odd[0].offset == beyond[0].offset


@pytest.mark.parametrize("view", VIEWS, ids=[" ".join(v) for v in VIEWS])
def test_if_tsresol_0x80_through_every_view(tmp_path: Path, view: tuple[str, ...]) -> None:
    path = tmp_path / "tsresol80.pcapng"
    path.write_bytes(tsresol_capture(0x80))
    result = run_tcplab(*view, str(path))
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    with open_capture(path) as reader:
        first = next(iter(reader)).offset
    assert result.stderr.splitlines() == [
        f"tcplab: {path}: offset {first}: timestamp 1700000000000000000 s is not a date "
        "(beyond years 1-9999: check the interface's if_tsresol/if_tsoffset); times are shown "
        "as numbers"
    ]
    if view[0] == "packets" and len(view) == 1:
        assert result.stdout.splitlines()[0].startswith("1700000000000000000.000000 IP ")
    if "--conn-log" in view:  # (analyze's clock is 64-bit: the stamp is folded, not a crash)
        assert "\n#open\t" in result.stdout and "\n#close\t" in result.stdout
    assert result.stdout.strip()


def all_bad() -> bytes:
    bad = bytearray(FRAMES[0])
    bad[0] = 0x44  # IHL 4: no record decodes
    return good_pcap([bytes(bad), bytes(bad)])


EXIT_VIEWS = [("packets",), ("packets", "--json"), ("analyze",), ("analyze", "--json"),
              ("analyze", "--conn-log"), ("analyze", "--packets")]  # fmt: skip


@pytest.mark.parametrize("view", EXIT_VIEWS, ids=[" ".join(v) for v in EXIT_VIEWS])
def test_nothing_readable_is_exit_1_everywhere(tmp_path: Path, view: tuple[str, ...]) -> None:
    path = tmp_path / "allbad.pcap"
    path.write_bytes(all_bad())
    result = run_tcplab(*view, str(path))
    assert result.code == 1, (result.code, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith(f"tcplab: {path}: ") for line in lines), lines
    assert any(line.startswith(f"tcplab: {path}: offset ") for line in lines), lines


@pytest.mark.parametrize("view", EXIT_VIEWS, ids=[" ".join(v) for v in EXIT_VIEWS])
def test_a_readable_file_with_a_bad_record_is_exit_0(tmp_path: Path,
                                                     view: tuple[str, ...]) -> None:  # fmt: skip
    bad = bytearray(FRAMES[0])
    bad[0] = 0x44
    path = tmp_path / "onebad.pcap"
    path.write_bytes(good_pcap([*FRAMES, bytes(bad)]))
    result = run_tcplab(*view, str(path))
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith(f"tcplab: {path}: ") for line in lines), lines


@pytest.mark.parametrize("view", EXIT_VIEWS, ids=[" ".join(v) for v in EXIT_VIEWS])
def test_no_capture_at_all_is_exit_2(tmp_path: Path, view: tuple[str, ...]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a capture\n")
    result = run_tcplab(*view, str(path))
    assert result.code == 2
    assert result.stderr.splitlines() == [
        f"tcplab: {path}: offset 0: not a pcap or pcapng file (magic 0x6e6f7420)"]
