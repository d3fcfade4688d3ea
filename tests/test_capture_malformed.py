"""Hand-made broken captures: every one gets exactly the expected one-line
problem (file, byte offset, what), the expected skipped count, every
readable packet, and the right exit status.  The files are generated here
from a known-good capture so each offset can be computed, not guessed."""

from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ACK, SYN, ipv4_tcp, run_tcplab
from tcplab.capture import PcapngWriter, PcapWriter, open_capture
from tcplab.capture.pcapng import (
    EnhancedPacket,
    InterfaceDescription,
    SectionHeader,
    SimplePacket,
    frame_block,
)
from tcplab.errors import InputError

A, B = "10.0.0.1", "10.0.0.2"
T0 = 1_700_000_000_000_000_000
MSS_1460 = b"\x02\x04\x05\xb4"
FRAMES = [
    ipv4_tcp(A, B, 40000, 8080, 1000, 0, SYN, options=MSS_1460),
    ipv4_tcp(B, A, 8080, 40000, 5000, 1001, SYN | ACK, options=MSS_1460),
    ipv4_tcp(A, B, 40000, 8080, 1001, 5001, ACK),
]
# record offsets in the classic pcap built from FRAMES
REC = [24, 24 + 16 + 44, 24 + 2 * 16 + 88]
END = 24 + 3 * 16 + 44 + 44 + 40


def good_pcap(frames: list[bytes] = FRAMES) -> bytes:
    buf = io.BytesIO()
    w = PcapWriter(buf, 101, nanosecond=False)
    for i, frame in enumerate(frames):
        w.write(T0 + i * 1000, frame)
    return buf.getvalue()


def good_pcapng() -> tuple[bytes, list[int]]:
    """The file and the offsets of its three EPBs."""
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    w.add_interface(101)
    offsets = []
    for i, frame in enumerate(FRAMES):
        offsets.append(buf.tell())
        w.write(T0 + i * 1000, frame)
    return buf.getvalue(), offsets


def set_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<I", value) + data[offset + 4 :]


@dataclass(frozen=True)
class Broken:
    name: str
    make: Callable[[], bytes]
    exit_code: int
    lines: list[str]  # expected problem lines, "{f}" is the file name
    packets: int  # TCP packets printed
    skipped: int | None  # None: no summary line expected


def _epb_offsets() -> list[int]:
    return good_pcapng()[1]


def _pcapng_with_odd_block() -> bytes:
    data, offsets = good_pcapng()
    # Make EPB 2 one byte longer in both length fields: frame consistent, not 4-aligned.
    start, end = offsets[1], offsets[2]
    block = data[start:end]
    total = len(block) + 1
    odd = struct.pack("<II", 6, total) + block[8:-4] + b"\0" + struct.pack("<I", total)
    return data[:start] + odd + data[end:]


def _pcapng_with_missing_interface() -> bytes:
    data, offsets = good_pcapng()
    epb = frame_block(EnhancedPacket(5, 0, FRAMES[1], len(FRAMES[1])))
    return data[: offsets[1]] + epb + data[offsets[2] :]


def _ihl4() -> bytes:
    bad = bytearray(FRAMES[1])
    bad[0] = 0x44
    return good_pcap([FRAMES[0], bytes(bad), FRAMES[2]])


def _tcp_offset(words: int) -> bytes:
    bad = ipv4_tcp(B, A, 8080, 40000, 5000, 1001, SYN | ACK, data_offset=words)
    return good_pcap([FRAMES[0], bad, FRAMES[2]])


def _option_past_header() -> bytes:
    # MSS option claiming length 10 in a 4-byte option area.
    bad = ipv4_tcp(B, A, 8080, 40000, 5000, 1001, SYN | ACK, options=b"\x02\x0a\x05\xb4")
    return good_pcap([FRAMES[0], bad, FRAMES[2]])


def _gzip_cut() -> bytes:
    packed = gzip.compress(good_pcap(FRAMES * 40), compresslevel=1)
    return packed[: len(packed) // 2]


G = 16  # record header length
EPB = _epb_offsets()
CASES = [
    Broken(
        "wrong-magic",
        lambda: b"GET / HTTP/1.1\r\n\r\n",
        2,
        ["tcplab: {f}: offset 0: not a pcap or pcapng file (magic 0x47455420)"],
        0,
        None,
    ),
    Broken(
        "empty",
        lambda: b"",
        2,
        ["tcplab: {f}: offset 0: empty file; not a pcap or pcapng file"],
        0,
        None,
    ),
    Broken(
        "truncated-global-header",
        lambda: good_pcap()[:20],
        2,
        ["tcplab: {f}: offset 20: truncated pcap global header (20 of 24 bytes)"],
        0,
        None,
    ),
    Broken(
        "truncated-record-header",
        lambda: good_pcap() + bytes(10),
        0,
        [f"{{f}}: offset {END}: truncated record header (10 of 16 bytes) at end of file"],
        3,
        1,
    ),
    Broken(
        "truncated-record-data",
        lambda: good_pcap()[: REC[2] + G + 25],
        0,
        [f"{{f}}: offset {REC[2]}: record truncated: caplen 40 but only 25 bytes left in the file"],
        2,
        1,
    ),
    Broken(
        "caplen-300MiB",
        lambda: set_u32(good_pcap(), REC[1] + 8, 300 << 20),
        0,
        [
            f"{{f}}: offset {REC[1]}: record caplen 314572800 exceeds 256 MiB; "
            "record boundaries are lost, stopping here"
        ],
        1,
        1,
    ),
    Broken(
        "caplen-beyond-eof",
        lambda: set_u32(good_pcap(), REC[2] + 8, 1000),
        0,
        [
            f"{{f}}: offset {REC[2]}: record truncated: caplen 1000 but only 40 bytes "
            "left in the file"
        ],
        2,
        1,
    ),
    Broken(
        "nothing-readable",
        lambda: set_u32(good_pcap(), REC[0] + 8, 0xFFFFFFF0),
        1,
        [
            f"{{f}}: offset {REC[0]}: record caplen 4294967280 exceeds 256 MiB; "
            "record boundaries are lost, stopping here"
        ],
        0,
        1,
    ),
    Broken(
        "pcapng-length-mismatch",
        lambda: (
            lambda data, offs: set_u32(data, offs[2] - 4, 0x40)  # EPB 2's trailing length
        )(*good_pcapng()),
        0,
        [
            f"{{f}}: offset {EPB[1]}: enhanced packet block length mismatch: leading total "
            "length 76, trailing 64; block boundaries are lost, stopping here"
        ],
        1,
        1,
    ),
    Broken(
        "pcapng-length-not-multiple-of-4",
        _pcapng_with_odd_block,
        0,
        [
            f"{{f}}: offset {EPB[1]}: enhanced packet block total length 77 is not a "
            "multiple of 4; skipped"
        ],
        2,
        1,
    ),
    Broken(
        "pcapng-length-below-12",
        lambda: (lambda data, offs: set_u32(data, offs[1] + 4, 8))(*good_pcapng()),
        0,
        [
            f"{{f}}: offset {EPB[1]}: enhanced packet block total length 8 is below the "
            "minimum 12; stopping here"
        ],
        1,
        1,
    ),
    Broken(
        "pcapng-block-truncated",
        lambda: good_pcapng()[0][:-30],
        0,
        [
            f"{{f}}: offset {EPB[2]}: enhanced packet block truncated: total length 72 but only 42 "
            "bytes left in the file"
        ],
        2,
        1,
    ),
    Broken(
        "epb-missing-interface",
        _pcapng_with_missing_interface,
        0,
        [
            f"{{f}}: offset {EPB[1]}: enhanced packet block for interface 5, but the section "
            "defines 1 interface(s)"
        ],
        2,
        1,
    ),
    Broken(
        "ipv4-ihl-below-5",
        _ihl4,
        0,
        [f"{{f}}: offset {REC[1] + G}: frame 2: IPv4 IHL 4 < 5"],
        2,
        1,
    ),
    Broken(
        "tcp-data-offset-below-5",
        lambda: _tcp_offset(4),
        0,
        [f"{{f}}: offset {REC[1] + G + 20 + 12}: frame 2: TCP data offset 4 < 5"],
        2,
        1,
    ),
    Broken(
        "tcp-data-offset-beyond-packet",
        lambda: _tcp_offset(15),
        0,
        [
            f"{{f}}: offset {REC[1] + G + 32}: frame 2: TCP data offset 15 (60 bytes) "
            "runs past the IP packet (20 bytes)"
        ],
        2,
        1,
    ),
    Broken(
        "tcp-option-past-header",
        _option_past_header,
        0,
        [
            f"{{f}}: offset {REC[1] + G + 40}: frame 2: TCP malformed option kind 2: "
            "length 10 runs past header (packet kept, options cut there)"
        ],
        3,
        None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_file(tmp_path: Path, case: Broken) -> None:
    path = tmp_path / f"{case.name}.cap"
    path.write_bytes(case.make())
    result = run_tcplab("packets", "--utc", str(path))
    assert result.code == case.exit_code, result.stderr
    expected = [line.format(f=path) for line in case.lines]
    expected = [ln if ln.startswith("tcplab: ") else "tcplab: " + ln for ln in expected]
    if case.skipped is not None:
        expected.append(
            f"tcplab: {path}: read "
            f"{case.packets + (1 if 'frame 2' in case.lines[0] else 0)} packets "
            f"({case.packets} TCP), skipped {case.skipped} malformed records"
        )
    assert result.stderr.splitlines() == expected
    assert "Traceback" not in result.stderr
    assert len(result.stdout.splitlines()) == case.packets


def test_gzip_truncated_midway(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(_gzip_cut())
    result = run_tcplab("packets", str(path))
    assert result.code == 0
    printed = len(result.stdout.splitlines())
    assert 0 < printed < 120
    lines = result.stderr.splitlines()
    assert any(
        line.startswith(f"tcplab: {path}: offset ")
        and line.endswith("gzip data ends before its end-of-stream marker (truncated .gz file)")
        for line in lines
    ), lines
    assert lines[-1].startswith(f"tcplab: {path}: read {printed} packets ({printed} TCP), skipped ")
    with open_capture(path) as reader:
        assert len(list(reader)) == printed


def _gzip_cut_offsets(cut: bytes) -> tuple[int, int, int]:
    """Where the truncated record starts, its caplen, and where the decompressed
    data ends: computed from the bytes, not from tcplab."""
    data = zlib.decompressobj(wbits=31).decompress(cut)
    lengths = [len(f) for f in FRAMES * 40]
    offset, n = 24, 0
    while offset + G + lengths[n] <= len(data):
        offset += G + lengths[n]
        n += 1
    return offset, lengths[n], len(data)


GZ_VIEWS = [
    ("packets",),
    ("analyze",),
    ("analyze", "--json"),
    ("analyze", "--conn-log"),
    ("analyze", "--packets"),
    ("analyze", "--summary"),
    ("analyze", "--summary", "--json"),
    ("analyze", "--ladder", "0"),
    ("analyze", "--report", "{tmp}/r.html"),
]


@pytest.mark.parametrize("view", GZ_VIEWS, ids=" ".join)
def test_a_truncated_gz_names_its_offsets_in_every_view(tmp_path: Path, view: tuple[str]) -> None:
    """The decompressed offset where the record was cut and where the gzip data
    ends, the same in every command (they once said ``offset 0``)."""
    cut = _gzip_cut()
    record, caplen, end = _gzip_cut_offsets(cut)
    assert 24 < record < end < END * 40
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(cut)
    args = [a.format(tmp=tmp_path) for a in view]
    result = run_tcplab(*args, str(path))
    assert result.code == 0, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("wrote ")]
    assert lines[:2] == [
        f"tcplab: {path}: offset {record}: record truncated: caplen {caplen} but only "
        f"{end - record - G} bytes left in the file",
        f"tcplab: {path}: offset {end}: gzip data ends before its end-of-stream marker "
        "(truncated .gz file)",
    ]
    assert result.stdout or view[-1].endswith("r.html")


@pytest.mark.parametrize("view", [(), ("--json",), ("--conn-log",), ("--packets",), ("--summary",)],
                         ids=lambda v: " ".join(v) or "overview")  # fmt: skip
@pytest.mark.parametrize("packed", [True, False], ids=["gz", "pcap"])
def test_a_truncated_capture_on_standard_input(view: tuple[str, ...], packed: bool) -> None:
    """Standard input cannot be read twice: the engine says where the record it
    stopped at was cut, and the gzip guard where the data ended."""
    cut = _gzip_cut()
    record, _caplen, end = _gzip_cut_offsets(cut)
    data = cut if packed else zlib.decompressobj(wbits=31).decompress(cut)
    done = subprocess.run([sys.executable, "-m", "tcplab", "analyze", *view, "-"], input=data,
                          capture_output=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = [f"tcplab: -: offset {record}: record truncated: the stream ends "
                f"{end - record} bytes into it"]  # fmt: skip
    if packed:
        expected.append(f"tcplab: -: offset {end}: gzip data ends before its end-of-stream "
                        "marker (truncated .gz file)")  # fmt: skip
    assert done.stderr.decode().splitlines() == expected
    assert done.stdout


def test_not_a_capture_raises_input_error(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"\x00\x01\x02\x03 no capture")
    with pytest.raises(
        InputError, match=r"x\.txt: offset 0: not a pcap or pcapng file \(magic 0x00010203\)"
    ):
        open_capture(path)


def test_pcapng_bad_byte_order_magic(tmp_path: Path) -> None:
    data, _ = good_pcapng()
    path = tmp_path / "bom.pcapng"
    path.write_bytes(data[:8] + b"\xde\xad\xbe\xef" + data[12:])
    result = run_tcplab("packets", str(path))
    assert result.code == 2
    assert result.stderr.strip() == (
        f"tcplab: {path}: offset 8: pcapng section header has bad byte-order magic 0xdeadbeef"
    )


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    result = run_tcplab("packets", str(tmp_path / "nope.pcap"))
    assert result.code == 2
    assert (
        result.stderr.strip()
        == f"tcplab: {tmp_path / 'nope.pcap'}: cannot open: No such file or directory"
    )


def test_reader_api_counts_skipped_and_continues(tmp_path: Path) -> None:
    path = tmp_path / "odd.pcapng"
    path.write_bytes(_pcapng_with_missing_interface())
    with open_capture(path) as reader:
        records = list(reader)
        assert [r.index for r in records] == [1, 2]
        assert reader.skipped == 1
        assert [p.offset for p in reader.problems] == [_epb_offsets()[1]]


def test_snaplen_zero_is_accepted(tmp_path: Path) -> None:
    # Some writers leave snaplen 0 ("no limit"); Wireshark reads such files, so do we.
    pcap_file = tmp_path / "snap0.pcap"
    pcap_file.write_bytes(good_pcap()[:16] + struct.pack("<I", 0) + good_pcap()[20:])
    with open_capture(pcap_file) as reader:
        assert len(list(reader)) == 3 and reader.problems == []
        assert reader.global_header is not None and reader.global_header.snaplen == 0
    blocks = [SectionHeader(), InterfaceDescription(101, 0), SimplePacket(40, FRAMES[2])]
    pcapng_file = tmp_path / "snap0.pcapng"
    pcapng_file.write_bytes(b"".join(frame_block(b) for b in blocks))
    with open_capture(pcapng_file) as reader:
        assert [r.data for r in reader] == [FRAMES[2]]
        assert reader.problems == []


def test_every_record_malformed_is_a_failure(tmp_path: Path) -> None:
    bad = bytearray(FRAMES[0])
    bad[0] = 0x44  # IHL 4
    path = tmp_path / "allbad.pcap"
    path.write_bytes(good_pcap([bytes(bad)]))
    result = run_tcplab("packets", str(path))
    assert result.code == 1
    assert result.stderr.splitlines() == [
        f"tcplab: {path}: offset 40: frame 1: IPv4 IHL 4 < 5",
        f"tcplab: {path}: read 1 packets (0 TCP), skipped 1 malformed records",
    ]
