"""pcap / pcapng records: literal bytes both ways, parse(build(x)) == x, and
files written by tcplab read back identically by tcplab and by tshark."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import needs_tshark, tshark_fields
from tcplab.capture import PcapngWriter, PcapWriter, open_capture, pcap, pcapng
from tcplab.capture.pcapng import (
    CB_COPY_TYPE,
    CB_NOCOPY_TYPE,
    DSB_TYPE,
    IF_TSOFFSET,
    IF_TSRESOL,
    ISB_TYPE,
    NRB_TYPE,
    EnhancedPacket,
    InterfaceDescription,
    ObsoletePacket,
    OpaqueBlock,
    SectionHeader,
    SimplePacket,
    frame_block,
)

T0 = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z


# -- literal bytes -----------------------------------------------------------------


def test_global_header_literal_little_endian_usec() -> None:
    raw = bytes.fromhex("d4c3b2a1 0200 0400 00000000 00000000 ffff0000 01000000".replace(" ", ""))
    header = pcap.GlobalHeader.parse(raw)
    assert header == pcap.GlobalHeader("<", False, 2, 4, 0, 0, 65535, 1)
    assert header.linktype == 1
    assert header.build() == raw


def test_global_header_literal_big_endian_nsec() -> None:
    raw = bytes.fromhex("a1b23c4d 0002 0004 00000000 00000000 00040000 00000071".replace(" ", ""))
    header = pcap.GlobalHeader.parse(raw)
    assert (header.byte_order, header.nanosecond, header.snaplen, header.linktype) == (
        ">",
        True,
        262144,
        113,
    )
    assert header.build() == raw


def test_global_header_linktype_ignores_fcs_bits() -> None:
    # draft-ietf-opsawg-pcap §4: bits 26-28 of the LinkType field carry FCS info.
    header = pcap.GlobalHeader("<", False, 2, 4, 0, 0, 65535, (1 << 28) | (2 << 26) | 1)
    assert header.linktype == 1
    assert pcap.GlobalHeader.parse(header.build()) == header


def test_record_header_literal() -> None:
    raw = bytes.fromhex("00f15365 40e20100 3c000000 4a000000".replace(" ", ""))
    rec = pcap.RecordHeader.parse(raw)
    assert rec == pcap.RecordHeader(1700000000, 123456, 60, 74)
    assert rec.build() == raw
    assert pcap.RecordHeader.parse(rec.build(">"), ">") == rec


def test_record_header_truncated() -> None:
    with pytest.raises(ValueError, match=r"truncated record header \(15 of 16 bytes\)"):
        pcap.RecordHeader.parse(bytes(15))


def test_shb_literal() -> None:
    # §4.1 SHB: type, length 28, magic, 1.0, section length -1, length.
    raw = bytes.fromhex(
        "0a0d0d0a 1c000000 4d3c2b1a 0100 0000 ffffffffffffffff 1c000000".replace(" ", "")
    )
    shb = SectionHeader.parse(raw[8:-4], "<")
    assert shb == SectionHeader("<", 1, 0, -1, ())
    assert frame_block(shb, "<") == raw


def test_idb_literal_with_options() -> None:
    # linktype 1, snaplen 262144, if_name "lo", if_tsresol 9, end of options
    body = bytes.fromhex("0100 0000 00000400 0200 0200 6c6f0000 0900 0100 09000000 0000 0000")
    idb = InterfaceDescription.parse(body, "<")
    assert idb == InterfaceDescription(1, 262144, ((2, b"lo"), (9, b"\x09")))
    assert idb.name == "lo"
    assert idb.tsresol() == (10, 9)
    assert idb.build("<") == body


def test_epb_literal_with_comment() -> None:
    body = bytes.fromhex(
        "00000000 01000000 02000000 03000000 05000000 616263 000100 0200 6869 0000 0000 0000"
    )
    epb = EnhancedPacket.parse(body, "<")
    assert epb == EnhancedPacket(0, (1 << 32) | 2, b"abc", 5, ((1, b"hi"),))
    assert epb.comment == "hi"
    assert epb.build("<") == body


def test_option_past_block_end_is_an_error() -> None:
    body = bytes.fromhex("0100 0000 00000400 0200 0900 6c6f0000")
    with pytest.raises(ValueError, match="option 2 of length 9 at body offset 8 runs past"):
        InterfaceDescription.parse(body, "<")


# -- parse(build(x)) == x ---------------------------------------------------------

orders = st.sampled_from(["<", ">"])
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
options = st.lists(st.tuples(st.integers(1, 2**16 - 1), st.binary(max_size=20)), max_size=4).map(
    tuple
)


@given(orders, st.booleans(), u16, u16, st.integers(-(2**31), 2**31 - 1), u32, u32, u32)
def test_global_header_roundtrip(order, nano, major, minor, zone, sigfigs, snaplen, network):  # type: ignore[no-untyped-def]
    header = pcap.GlobalHeader(order, nano, major, minor, zone, sigfigs, snaplen, network)
    assert pcap.GlobalHeader.parse(header.build()) == header


@given(orders, u32, u32, u32, u32)
def test_record_header_roundtrip(order, sec, frac, caplen, orig):  # type: ignore[no-untyped-def]
    rec = pcap.RecordHeader(sec, frac, caplen, orig)
    assert pcap.RecordHeader.parse(rec.build(order), order) == rec


@given(orders, u16, u16, st.integers(-(2**63), 2**63 - 1), options)
def test_shb_roundtrip(order, major, minor, length, opts):  # type: ignore[no-untyped-def]
    shb = SectionHeader(order, major, minor, length, opts)
    assert SectionHeader.parse(shb.build(order), order) == shb


@given(orders, u16, u32, options)
def test_idb_roundtrip(order, linktype, snaplen, opts):  # type: ignore[no-untyped-def]
    idb = InterfaceDescription(linktype, snaplen, opts)
    assert InterfaceDescription.parse(idb.build(order), order) == idb


@given(orders, u32, st.integers(0, 2**64 - 1), st.binary(max_size=70), u32, options)
def test_epb_roundtrip(order, iface, ts, data, orig, opts):  # type: ignore[no-untyped-def]
    epb = EnhancedPacket(iface, ts, data, orig, opts)
    framed = frame_block(epb, order)
    assert len(framed) % 4 == 0
    assert pcapng.parse_block(pcapng.EPB_TYPE, framed[8:-4], order) == epb


@given(orders, u16, u16, st.integers(0, 2**64 - 1), st.binary(max_size=70), u32, options)
def test_opb_roundtrip(order, iface, drops, ts, data, orig, opts):  # type: ignore[no-untyped-def]
    opb = ObsoletePacket(iface, drops, ts, data, orig, opts)
    assert ObsoletePacket.parse(opb.build(order), order) == opb


@given(orders, st.binary(max_size=70).filter(lambda b: len(b) % 4 == 0), u32)
def test_spb_roundtrip(order, data, orig):  # type: ignore[no-untyped-def]
    # The SPB stores no captured length, so only 4-aligned data is exact (§4.4).
    spb = SimplePacket(orig, data)
    assert SimplePacket.parse(spb.build(order), order) == spb


@settings(max_examples=50)
@given(
    orders,
    st.lists(
        st.tuples(st.integers(0, 2**63), st.binary(max_size=64), st.one_of(st.none(), st.text())),
        min_size=1,
        max_size=5,
    ),
)
def test_pcapng_writer_reader_roundtrip(order: str, packets: list) -> None:  # type: ignore[type-arg]
    buf = io.BytesIO()
    writer = PcapngWriter(buf)
    writer.add_interface(101, name="tun0")
    for time_ns, data, comment in packets:
        writer.write(time_ns, data, comment=comment)
    got, problems, skipped = _read_all(buf.getvalue())
    assert got == [(t, d, c) for t, d, c in packets]
    assert problems == [] and skipped == 0


def _read_all(data: bytes) -> tuple[list[tuple[int, bytes, str | None]], list[object], int]:
    """The records of ``data`` read back from a file (hypothesis examples cannot
    share pytest's per-test tmp_path; the directory goes when the read is done)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tcplab-test-") as directory:
        path = Path(directory) / "x.cap"
        path.write_bytes(data)
        with open_capture(path) as reader:
            got = [(r.time_ns, r.data, r.comment) for r in reader]
            return got, list(reader.problems), reader.skipped


# -- writers -> tcplab reader and tshark ---------------------------------------------


def _write_pcap(path: Path, nanosecond: bool) -> list[tuple[int, bytes, int]]:
    packets = [(T0, b"\x45" + bytes(59), 60), (T0 + 1_001_000, bytes(range(100)), 1500)]
    with path.open("wb") as f:
        w = PcapWriter(f, 101, nanosecond=nanosecond)
        for t, data, orig in packets:
            w.write(t, data, orig_len=orig)
    return packets


@pytest.mark.parametrize("nanosecond", [True, False])
def test_pcap_writer_roundtrip(tmp_path: Path, nanosecond: bool) -> None:
    path = tmp_path / "w.pcap"
    packets = _write_pcap(path, nanosecond)
    with open_capture(path) as reader:
        records = list(reader)
        assert reader.format == "pcap" and reader.linktypes == [101]
        assert reader.global_header is not None
        assert reader.global_header.nanosecond is nanosecond
    scale = 1 if nanosecond else 1000
    assert [(r.index, r.time_ns, r.data, r.orig_len, r.offset) for r in records] == [
        (1, packets[0][0] // scale * scale, packets[0][1], 60, 24),
        (2, packets[1][0] // scale * scale, packets[1][1], 1500, 24 + 16 + 60),
    ]
    assert [r.data_offset for r in records] == [40, 116]


@needs_tshark
@pytest.mark.parametrize("nanosecond", [True, False])
def test_pcap_writer_read_by_tshark(tmp_path: Path, nanosecond: bool) -> None:
    path = tmp_path / "w.pcap"
    packets = _write_pcap(path, nanosecond)
    rows = tshark_fields(path, ["frame.time_epoch", "frame.len", "frame.cap_len"])
    digits = 9 if nanosecond else 6
    expected = []
    for t, data, orig in packets:
        sec, frac = divmod(t, 10**9)
        expected.append(
            {
                "frame.time_epoch": f"{sec}.{frac // 10 ** (9 - digits):0{digits}d}"
                + "0" * (9 - digits),
                "frame.len": str(orig),
                "frame.cap_len": str(len(data)),
            }
        )
    assert rows == expected


def _write_pcapng(path: Path) -> list[tuple[int, bytes, int, str | None]]:
    packets = [
        (T0, b"\x45" + bytes(39), 0, "client: connect() -> 0"),
        (T0 + 5, bytes(range(60)), 1, None),
        (T0 + 10**9, b"\x60" + bytes(59), 0, "server: accept() -> 4\nsecond line, comma"),
        (T0 + 2 * 10**9 + 999, bytes(17), 2, "ünïcødé"),
    ]
    with path.open("wb") as f:
        w = PcapngWriter(f, comment="tcplab test run")
        assert w.add_interface(101, name="tun-client") == 0
        assert w.add_interface(1, name="eth0", tsresol=6) == 1
        assert w.add_interface(113, tsresol=3, snaplen=65535) == 2
        for t, data, iface, comment in packets:
            w.write(t, data, interface=iface, comment=comment)
    return packets


def test_pcapng_writer_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "w.pcapng"
    packets = _write_pcapng(path)
    with open_capture(path) as reader:
        records = list(reader)
        assert reader.format == "pcapng"
        assert reader.linktypes == [101, 1, 113]
        assert reader.problems == [] and reader.skipped == 0
    resolution = {0: 1, 1: 1000, 2: 1_000_000}
    assert [(r.time_ns, r.data, r.interface, r.comment, r.linktype) for r in records] == [
        (t // resolution[i] * resolution[i], d, i, c, [101, 1, 113][i]) for t, d, i, c in packets
    ]
    # SHB comment and application name (§4.1 opt_comment, shb_userappl)
    raw = path.read_bytes()
    (length,) = struct.unpack_from("<I", raw, 4)
    shb = SectionHeader.parse(raw[8 : length - 4], "<")
    assert shb.comment == "tcplab test run"
    assert shb.application is not None and shb.application.startswith("tcplab ")


@needs_tshark
def test_pcapng_writer_read_by_tshark(tmp_path: Path) -> None:
    path = tmp_path / "w.pcapng"
    packets = _write_pcapng(path)
    rows = tshark_fields(
        path,
        ["frame.time_epoch", "frame.cap_len", "frame.interface_id", "frame.comment"],
    )
    resolution = {0: 9, 1: 6, 2: 3}
    expected = []
    for t, data, iface, comment in packets:
        digits = resolution[iface]
        sec, frac = divmod(t, 10**9)
        expected.append(
            {
                "frame.time_epoch": f"{sec}.{frac // 10 ** (9 - digits):0{digits}d}"
                + "0" * (9 - digits),
                "frame.cap_len": str(len(data)),
                "frame.interface_id": str(iface),
                # tshark escapes newlines in field output as "\n"
                "frame.comment": (comment or "").replace("\n", "\\n"),
            }
        )
    assert rows == expected


def test_writer_rejects_unknown_interface_and_bad_lengths() -> None:
    w = PcapngWriter(io.BytesIO())
    with pytest.raises(ValueError, match="interface 0 was not added"):
        w.write(0, b"x")
    w.add_interface(1)
    with pytest.raises(ValueError, match="orig_len 1 is below the captured length 2"):
        w.write(0, b"xy", orig_len=1)
    p = PcapWriter(io.BytesIO(), 1)
    with pytest.raises(ValueError, match="before 1970"):
        p.write(-1, b"x")


# -- every pcapng block type the reader meets ----------------------------------------


def _idb(linktype: int, *opts: tuple[int, bytes]) -> InterfaceDescription:
    return InterfaceDescription(linktype, 0, tuple(opts))


def _every_block_file(order: str) -> bytes:
    blocks: list[pcapng.Block] = [
        SectionHeader(order, options=((1, b"first section"),)),
        _idb(101, (IF_TSRESOL, b"\x06")),
        OpaqueBlock(NRB_TYPE, struct.pack(order + "HH", 1, 8) + bytes([10, 0, 0, 1]) + b"a\0\0\0"),
        EnhancedPacket(0, 1_700_000_000_000_001, b"\x45" + bytes(19), 20, ((1, b"epb"),)),
        SimplePacket(20, b"\x45" + bytes(19)),
        ObsoletePacket(0, 3, 1_700_000_000_000_002, b"\x45" + bytes(23), 24, ((1, b"opb"),)),
        OpaqueBlock(ISB_TYPE, struct.pack(order + "III", 0, 0, 0)),
        OpaqueBlock(DSB_TYPE, struct.pack(order + "II", 0x544C534B, 4) + b"keys"),
        OpaqueBlock(CB_COPY_TYPE, struct.pack(order + "I", 32473) + b"custom!!"),
        OpaqueBlock(CB_NOCOPY_TYPE, struct.pack(order + "I", 32473)),
        OpaqueBlock(0x7FFF0001, b"unknown block type"),
        # A second section: interfaces restart; power-of-2 resolution and an offset.
        SectionHeader(order),
        _idb(1),
        _idb(
            228,
            (IF_TSRESOL, bytes([0x80 | 10])),  # 2**-10 s units
            (IF_TSOFFSET, struct.pack(order + "q", 1_000_000_000)),
        ),
        EnhancedPacket(1, 1024 * 5 + 512, b"\x45" + bytes(27), 28),
    ]
    return b"".join(frame_block(b, order) for b in blocks)


@pytest.mark.parametrize("order", ["<", ">"])
def test_reader_meets_every_block_type(tmp_path: Path, order: str) -> None:
    path = tmp_path / "blocks.pcapng"
    path.write_bytes(_every_block_file(order))
    with open_capture(path) as reader:
        records = list(reader)
        assert reader.problems == [] and reader.skipped == 0
        assert reader.linktypes == [101, 1, 228]
    # Frame numbers as Wireshark gives them: the two custom blocks are frames 4 and 5.
    assert [r.index for r in records] == [1, 2, 3, 6]
    assert [(r.linktype, r.interface, len(r.data), r.orig_len, r.comment) for r in records] == [
        (101, 0, 20, 20, "epb"),
        (101, 0, 20, 20, None),
        (101, 0, 24, 24, "opb"),
        (228, 1, 28, 28, None),
    ]
    assert [r.time_ns for r in records] == [
        1_700_000_000_000_001_000,
        0,  # SPBs carry no timestamp
        1_700_000_000_000_002_000,
        1_000_000_000 * 1_000_000_000 + 5_500_000_000,  # 5.5 s + if_tsoffset
    ]


@needs_tshark
@pytest.mark.parametrize("order", ["<", ">"])
def test_every_block_type_agrees_with_tshark(tmp_path: Path, order: str) -> None:
    path = tmp_path / "blocks.pcapng"
    path.write_bytes(_every_block_file(order))
    fields = ["frame.number", "frame.cap_len", "frame.comment", "frame.time_epoch"]
    # tshark lists the two custom blocks as frames 4 and 5 (no protocol, not packets).
    rows = [r for r in tshark_fields(path, fields) if r["frame.number"] not in ("4", "5")]
    with open_capture(path) as reader:
        ours = [
            {
                "frame.number": str(r.index),
                "frame.cap_len": str(len(r.data)),
                "frame.comment": r.comment or "",
                # An SPB has no timestamp: tshark prints none, we say 0.
                "frame.time_epoch": f"{r.time_ns // 10**9}.{r.time_ns % 10**9:09d}"
                if r.time_ns
                else "",
            }
            for r in reader
        ]
    assert ours == rows


def test_spb_is_trimmed_to_snaplen_and_orig_len(tmp_path: Path) -> None:
    blocks = [
        SectionHeader(),
        InterfaceDescription(101, 8),
        SimplePacket(30, bytes(range(12))),  # stored 12, snaplen 8 -> 8 bytes
        SimplePacket(6, bytes(range(8))),  # orig 6 -> 6 bytes, the rest is padding
    ]
    path = tmp_path / "spb.pcapng"
    path.write_bytes(b"".join(frame_block(b) for b in blocks))
    with open_capture(path) as reader:
        assert [(r.data, r.orig_len) for r in reader] == [
            (bytes(range(8)), 30),
            (bytes(range(6)), 6),
        ]


def test_gzip_is_detected_by_magic_not_name(tmp_path: Path) -> None:
    plain = tmp_path / "w.pcapng"
    _write_pcapng(plain)
    packed = tmp_path / "no-extension"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    with open_capture(plain) as a, open_capture(packed) as b:
        assert list(a) == list(b)
        assert b.compressed and not a.compressed


def test_big_endian_pcap(tmp_path: Path) -> None:
    header = pcap.GlobalHeader(">", True, 2, 4, 0, 0, 65535, 101)
    data = b"\x45" + bytes(19)
    record = pcap.RecordHeader(1_700_000_000, 5, len(data), len(data)).build(">")
    path = tmp_path / "be.pcap"
    path.write_bytes(header.build() + record + data)
    with open_capture(path) as reader:
        (rec,) = list(reader)
    assert (rec.time_ns, rec.data, rec.linktype) == (1_700_000_000_000_000_005, data, 101)


def test_raw_path_equals_records(tmp_path: Path) -> None:
    path = tmp_path / "w.pcapng"
    _write_pcapng(path)
    with open_capture(path) as a, open_capture(path) as b:
        assert list(a.raw()) == [(r.time_ns, r.linktype, r.data) for r in b]
    pcap_path = tmp_path / "w.pcap"
    _write_pcap(pcap_path, True)
    with open_capture(pcap_path) as a, open_capture(pcap_path) as b:
        assert list(a.raw()) == [(r.time_ns, r.linktype, r.data) for r in b]
