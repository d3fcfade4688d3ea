"""TcpHeader and the TCP options: literal bytes both ways, named malformed
cases, property round trips (RFC 9293 §3.1, RFC 7323, RFC 2018, RFC 7413)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcplab.wire import (
    Control,
    Eol,
    Flags,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TcpHeader,
    TcpOption,
    TfoCookie,
    Timestamps,
    UnknownOption,
    WindowScale,
    WireError,
    build_options,
    format_options,
    parse_options,
)

# Real segments (TCP header only) from zeek's chksums/localhost-bad-chksum.pcap.
# Frame 1: macOS SYN 192.168.1.28:53246 -> 35.221.46.9:80, options end in EOL + padding.
MAC_SYN = bytes.fromhex(
    "cffe0050d186d41600000000b002ffff13dd0000020405b4010303060101080a43f0396e0000000004020000"
)
# Frame 2: the SYN-ACK back, checksum correct.
SYN_ACK = bytes.fromhex("0050cffebf4d3093d186d4178012ff28f68700000204058c0101040201030307")


def test_parse_real_syn() -> None:
    header, payload = TcpHeader.parse(MAC_SYN)
    assert payload == b""
    assert header == TcpHeader(
        sport=53246,
        dport=80,
        seq=3515274262,
        ack=0,
        data_offset=11,
        flags=Flags.SYN,
        window=65535,
        checksum=0x13DD,
        urgent=0,
        options=(
            Mss(1460),
            Nop(),
            WindowScale(6),
            Nop(),
            Nop(),
            Timestamps(1139816814, 0),
            SackPermitted(),
            Eol(),
        ),
        option_tail=b"\x00",
    )
    assert header.control is Control.SYN
    assert header.header_len == 44
    # tcpdump -nn prints exactly this for the frame (and stops at EOL).
    assert (
        header.option_text() == "mss 1460,nop,wscale 6,nop,nop,TS val 1139816814 ecr 0,sackOK,eol"
    )
    assert header.build() == MAC_SYN


def test_parse_real_syn_ack_and_rebuild_checksum() -> None:
    header, _ = TcpHeader.parse(SYN_ACK)
    assert header.flags == Flags.SYN | Flags.ACK
    assert header.options == (Mss(1420), Nop(), Nop(), SackPermitted(), Nop(), WindowScale(7))
    assert format_options(header.options) == "mss 1420,nop,nop,sackOK,nop,wscale 7"
    assert header.build() == SYN_ACK
    # With the addresses, build computes the checksum the sender put there.
    unsummed = TcpHeader.parse(SYN_ACK[:16] + b"\x12\x34" + SYN_ACK[18:])[0]
    assert unsummed.build(src="35.221.46.9", dst="192.168.1.28") == SYN_ACK


def test_build_literal_linux_syn() -> None:
    # Linux's SYN layout (tcp_options_write): mss, sackOK+TS, nop+wscale.
    header = TcpHeader.create(
        40000,
        8080,
        0x01020304,
        0,
        Flags.SYN,
        65495,
        (Mss(65495), SackPermitted(), Timestamps(383644, 0), Nop(), WindowScale(7)),
    )
    assert header.data_offset == 10
    expected = bytes.fromhex(
        "9c401f900102030400000000a002ffd7000000000204ffd70402080a0005da9c0000000001030307"
    )
    assert header.build() == expected
    assert TcpHeader.parse(expected) == (header, b"")
    assert format_options(header.options) == "mss 65495,sackOK,TS val 383644 ecr 0,nop,wscale 7"


def test_payload_split_and_flags_text() -> None:
    header = TcpHeader.create(
        1, 2, 100, 200, Flags.PSH | Flags.ACK, 502, (Nop(), Nop(), Timestamps(7, 8))
    )
    segment = header.build(b"hello")
    parsed, payload = TcpHeader.parse(segment)
    assert payload == b"hello"
    assert parsed == header
    assert parsed.flags.tcpdump() == "P."
    assert parsed.control is Control.NONE


def test_create_pads_with_eol_and_zeros() -> None:
    header = TcpHeader.create(1, 2, 0, 0, Flags.SYN, 0, (Mss(1460), WindowScale(7)))
    assert build_options(header.options) + header.option_tail == bytes.fromhex("020405b403030700")
    assert header.data_offset == 7
    with pytest.raises(ValueError, match="at most 40"):
        TcpHeader.create(1, 2, 0, 0, Flags.ACK, 0, (Sack(((1, 2),) * 5),))


def test_reserved_bits_and_ae_kept() -> None:
    # tcp/rst-inject-rae.pcap frame 2 has all reserved bits and AE set: flags 0xf14.
    raw = bytearray(SYN_ACK[:20])
    raw[12] = 0x5F
    raw[13] = 0x14
    header, _ = TcpHeader.parse(bytes(raw))
    assert header.reserved == 0b111
    assert header.flags == Flags.AE | Flags.RST | Flags.ACK
    assert header.build() == bytes(raw)


# -- malformed headers: integrity errors raise, with offset ----------------------


def test_truncated() -> None:
    with pytest.raises(WireError) as err:
        TcpHeader.parse(SYN_ACK[:19])
    assert err.value.offset == 19
    assert str(err.value) == "offset 19: truncated TCP header: 19 of 20 bytes"


def test_data_offset_below_5() -> None:
    bad = SYN_ACK[:12] + b"\x30" + SYN_ACK[13:]
    with pytest.raises(WireError) as err:
        TcpHeader.parse(bad, base=34)
    assert str(err.value) == "offset 46: TCP data offset 3 < 5"
    assert err.value.offset == 46


def test_data_offset_beyond_segment() -> None:
    with pytest.raises(WireError) as err:
        TcpHeader.parse(SYN_ACK[:28])
    assert err.value.offset == 12
    assert "TCP data offset 8 (32 bytes) runs past the segment (28 bytes)" in str(err.value)


# -- malformed options: recorded on the header, packet stays usable ------------


def header_with_options(option_bytes: bytes) -> bytes:
    fixed = bytearray(SYN_ACK[:20])
    fixed[12] = (5 + len(option_bytes) // 4) << 4
    return bytes(fixed) + option_bytes


def test_option_len_zero() -> None:
    raw = header_with_options(bytes.fromhex("010108000000000000000000"))
    header, payload = TcpHeader.parse(raw, base=34)
    assert header.options == (Nop(), Nop())
    assert header.option_error == "malformed option kind 8 at offset 56: length 0 < 2"
    assert header.option_tail == raw[22:]
    assert payload == b""
    assert header.option_text() == "nop,nop,[bad opt]"  # as tcpdump prints it
    assert header.build() == raw


def test_option_len_one() -> None:
    raw = header_with_options(bytes.fromhex("020105b4"))
    header, _ = TcpHeader.parse(raw)
    assert header.options == ()
    assert header.option_error == "malformed option kind 2 at offset 20: length 1 < 2"
    assert header.build() == raw


def test_option_runs_past_header() -> None:
    raw = header_with_options(bytes.fromhex("0101050e0000000100000000"))
    header, _ = TcpHeader.parse(raw)
    assert header.options == (Nop(), Nop())
    assert header.option_error == "malformed option kind 5 at offset 22: length 14 runs past header"
    assert header.build() == raw


def test_option_without_length_byte() -> None:
    raw = header_with_options(bytes.fromhex("01010102"))
    header, _ = TcpHeader.parse(raw)
    assert header.options == (Nop(), Nop(), Nop())
    assert header.option_error == "malformed option kind 2 at offset 23: no length byte"
    assert header.build() == raw


def test_known_kind_with_wrong_length_kept_raw() -> None:
    # Linux's tcp_parse_options skips an MSS whose length is not 4; so do we.
    parsed = parse_options(bytes.fromhex("0205ffff00030307"))
    assert parsed.options == (UnknownOption(2, b"\xff\xff\x00"), WindowScale(7))
    assert parsed.error is None
    assert format_options(parsed.options) == "mss 65535[len 5],wscale 7"


def test_sack_with_bad_length_kept_raw() -> None:
    parsed = parse_options(bytes.fromhex("050601020304"))
    assert parsed.options == (UnknownOption(5, bytes.fromhex("01020304")),)
    assert format_options(parsed.options) == "sack invalid sack"


# -- each option's bytes and tcpdump text ---------------------------------------

OPTION_CASES: list[tuple[TcpOption, str, str]] = [
    (Mss(1460), "020405b4", "mss 1460"),
    (WindowScale(14), "03030e", "wscale 14"),
    (SackPermitted(), "0402", "sackOK"),
    (Sack(((1001, 2001),)), "050a000003e9000007d1", "sack 1 {1001:2001}"),
    (
        Sack(((1, 2), (4294967295, 7))),
        "05120000000100000002ffffffff00000007",
        "sack 2 {1:2}{4294967295:7}",
    ),
    (Timestamps(4294957914, 0), "080affffdb5a00000000", "TS val 4294957914 ecr 0"),
    (
        TfoCookie(bytes.fromhex("0102030405060708")),
        "220a0102030405060708",
        "tfo  cookie 0102030405060708",
    ),
    (TfoCookie(b""), "2202", "tfo  cookiereq"),
    (
        TfoCookie(bytes.fromhex("01020304"), experimental=True),
        "fe08f98901020304",
        "exp-tfo cookie 01020304",
    ),
    (UnknownOption(99, b"\x01\x02"), "63040102", "unknown-99 0x0102"),
    (UnknownOption(99, b""), "6302", "unknown-99"),
    (UnknownOption(254, bytes.fromhex("abcd01")), "fe05abcd01", "exp-abcd"),
    (UnknownOption(28, bytes.fromhex("000a")), "1c04000a", "uto 0xa 5"),
    (UnknownOption(19, bytes(16)), "1312" + "00" * 16, "md5 0x" + "00" * 16),
    (Nop(), "01", "nop"),
    (Eol(), "00", "eol"),
]


@pytest.mark.parametrize(("option", "hex_bytes", "text"), OPTION_CASES)
def test_option_bytes_and_text(option: TcpOption, hex_bytes: str, text: str) -> None:
    raw = bytes.fromhex(hex_bytes)
    assert option.build() == raw
    parsed = parse_options(raw)
    assert parsed.options == (option,)
    assert parsed.error is None
    assert format_options((option,)) == text


def test_format_stops_at_eol_and_relative_sack() -> None:
    assert format_options((Nop(), Eol(), Mss(1))) == "nop,eol"
    assert (
        format_options((Nop(), Nop(), Sack(((1001, 2001),))), sack_base=1000)
        == "nop,nop,sack 1 {1:1001}"
    )
    assert format_options((Sack(((5, 10),)),), sack_base=4294967295) == "sack 1 {6:11}"


def test_linux_nop_nop_ts_fast_path_equals_general_parse() -> None:
    raw = bytes.fromhex("0101080a0005da9d0005dc1c")
    assert parse_options(raw).options == (Nop(), Nop(), Timestamps(383645, 384028))
    # Same bytes with a trailing NOP go the general way and agree.
    assert parse_options(raw + b"\x01" * 4).options[:3] == parse_options(raw).options


# -- properties -----------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
KNOWN_KINDS = {0, 1, 2, 3, 4, 5, 8, 34, 254}

options_strategy: st.SearchStrategy[TcpOption] = st.one_of(
    st.builds(Mss, u16),
    st.builds(WindowScale, st.integers(0, 255)),
    st.just(SackPermitted()),
    st.builds(Sack, st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(tuple)),
    st.builds(Timestamps, u32, u32),
    st.builds(
        TfoCookie,
        st.one_of(st.just(b""), st.binary(min_size=4, max_size=16)),
        st.booleans(),
    ),
    st.just(Nop()),
    st.builds(
        UnknownOption,
        st.integers(2, 255).filter(lambda k: k not in KNOWN_KINDS),
        st.binary(max_size=12),
    ),
)
flags_strategy = st.integers(0, 0x1FF).map(Flags)


@given(
    u16,
    u16,
    u32,
    u32,
    flags_strategy,
    u16,
    st.lists(options_strategy, max_size=8).filter(lambda o: len(build_options(o)) <= 40),
    st.binary(max_size=64),
)
def test_parse_build_roundtrip(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: Flags,
    window: int,
    options: list[TcpOption],
    payload: bytes,
) -> None:
    header = TcpHeader.create(sport, dport, seq, ack, flags, window, tuple(options))
    segment = header.build(payload)
    parsed, rest = TcpHeader.parse(segment)
    assert parsed == header
    assert rest == payload
    assert parsed.build(payload) == segment


@given(
    st.binary(min_size=12, max_size=12),
    st.integers(0, 0xFF),
    st.binary(min_size=6, max_size=6),
    st.integers(0, 10),
    st.binary(max_size=40),
    st.binary(max_size=16),
)
def test_any_bytes_build_back_identical(
    ports_seq_ack: bytes, flag_byte: int, rest: bytes, words: int, noise: bytes, payload: bytes
) -> None:
    """build(parse(bytes)) == bytes for any header, malformed options included."""
    option_bytes = (noise * 40)[: words * 4] if noise else bytes(words * 4)
    raw = ports_seq_ack + bytes([(5 + words) << 4 | (flag_byte & 0x0F), flag_byte]) + rest
    segment = raw + option_bytes + payload
    header, parsed_payload = TcpHeader.parse(segment)
    assert parsed_payload == payload
    assert header.build(parsed_payload) == segment
    assert TcpHeader.parse(header.build(parsed_payload)) == (header, payload)


@given(st.lists(options_strategy, max_size=6))
def test_options_roundtrip(options: list[TcpOption]) -> None:
    raw = build_options(options)
    parsed = parse_options(raw)
    assert parsed.options == tuple(options)
    assert parsed.tail == b""
    assert parsed.error is None
