"""``--packets`` lines formatted by the engine (_engine.c ``packet_lines``)
against the readable reference: analyze/output.py's ``packet_line`` and
``packet_object`` as ``views.PacketsView`` calls them on the engine's packet
records.  Byte for byte, on every trace the suite has, as text and JSON,
relative and absolute times, with the view's filters, and on captures built
here for the odd cases: IPv6 (with and without extension headers), clocks
beyond 64-bit nanoseconds (if_tsresol), frames only the Python decoder takes
(tunnels, fragments), the lab's dropped-by-wire marker, unknown states and
every flags value, windows scaled by any shift.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ACK, FIN, SYN, assert_same_output, ipv4_tcp, run_tcplab
from tcplab.analyze import engine, views
from tcplab.analyze.frames import read_segments
from tcplab.capture import PcapngWriter
from tcplab.capture.pcapng import DROPPED_BY_WIRE
from tcplab.capture.writer import PcapWriter
from tcplab.wire.flags import Flags
from tcplab.wire.fragments import split_ipv4
from tcplab.wire.ip import IPv4Header, IPv6Header
from tcplab.wire.options import Mss, WindowScale
from tcplab.wire.tcp import TcpHeader, TcpOption
from test_engine import TRACES
from test_odd_captures import tsresol_capture
from test_wire_tunnels_ip import write_tunnel_capture

RAW = 101  # LINKTYPE_RAW
ETHERNET_V4 = bytes(6) + bytes.fromhex("020000000001") + b"\x08\x00"
EVERY = views.Filter()
FORMS = [(False, False), (True, False), (False, True), (True, True)]  # (json, absolute)


def lines(
    path: Path,
    as_json: bool,
    absolute: bool,
    keep: views.Filter = EVERY,
    in_engine: bool = True,
    jobs: int = 1,
) -> tuple[bytes, list[str]]:
    """The --packets output (bytes) and the read problems, one way or the other."""
    options = engine.Options(
        keep_packets=True, keep_stream=-1 if keep.conn is None else keep.conn
    )
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=False)
    view = views.PacketsView(out, keep, as_json, absolute)
    if in_engine:
        options = view.packet_options(options)
    report = views.run_view(str(path), options, view, jobs)
    out.flush()
    return raw.getvalue(), report.problems


def assert_same_lines(
    path: Path, as_json: bool, absolute: bool, keep: views.Filter = EVERY
) -> bytes:
    reference = lines(path, as_json, absolute, keep, in_engine=False)
    mine = lines(path, as_json, absolute, keep)
    return assert_same_output(mine, reference)


@pytest.mark.parametrize("path", TRACES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_trace_byte_identical(path: Path) -> None:
    for as_json, absolute in FORMS:
        assert_same_lines(path, as_json, absolute)


def test_synthetic_byte_identical(small_synth: Path) -> None:
    for as_json, absolute in FORMS:
        assert assert_same_lines(small_synth, as_json, absolute).count(b"\n") >= 5000


def _a_connection(path: Path) -> tuple[str, str, int]:
    obj = json.loads(lines(path, True, False)[0].splitlines()[0])
    return obj["src"], obj["dst"], obj["sport"]


def test_filters_byte_identical(small_synth: Path) -> None:
    src, dst, sport = _a_connection(small_synth)
    filters = [
        views.Filter(conn=3),
        views.Filter(conn=10**6),
        views.Filter(host=src),
        views.Filter(host=dst, port=sport),
        views.Filter(port=sport),
        views.Filter(port=80),
        views.Filter(port=-1),
        views.Filter(port=70000),
        views.Filter(host="no address"),
        views.Filter(host=src.replace(".", ".0", 1)),  # not the text the view compares
        views.Filter(conn=2, host=dst, port=80, problems=True),
    ]
    for keep in filters:
        for as_json, absolute in FORMS:
            assert_same_lines(small_synth, as_json, absolute, keep)
    assert lines(small_synth, False, False, views.Filter(host=src))[0]
    assert not lines(small_synth, False, False, views.Filter(port=70000))[0]


def test_jobs_2_byte_identical(small_synth: Path) -> None:
    for as_json, absolute in FORMS:
        one = lines(small_synth, as_json, absolute, in_engine=False)
        assert lines(small_synth, as_json, absolute, jobs=2) == one


def test_the_cli_formats_in_the_engine(small_synth: Path) -> None:
    runs = [
        (("--packets",), (False, False)),
        (("--packets", "--json"), (True, False)),
        (("--packets", "--absolute-time", "--port", "80"), (False, True)),
    ]
    for args, form in runs:
        keep = views.Filter(port=80) if "--port" in args else views.Filter()
        result = run_tcplab("analyze", *args, str(small_synth), timeout=300)
        assert result.code == 0, result.stderr
        assert result.stdout.encode() == lines(small_synth, *form, keep, in_engine=False)[0]


# -- odd captures --------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [0x80, 0x81, 0x00, 0xFF, 0x89, 0x06])
def test_odd_clocks(tmp_path: Path, resolution: int) -> None:
    """if_tsresol oddities: times beyond 64-bit nanoseconds (the engine's time
    base), beyond any date, and plain ones."""
    path = tmp_path / "clock.pcapng"
    path.write_bytes(tsresol_capture(resolution))
    for as_json, absolute in FORMS:
        assert assert_same_lines(path, as_json, absolute).count(b"\n") == 4


def test_tunnels_and_fragments(tmp_path: Path) -> None:
    """Frames the fast decoder hands to tcplab.wire."""
    path = tmp_path / "tunnels.pcap"
    write_tunnel_capture(path)
    for as_json, absolute in FORMS:
        assert assert_same_lines(path, as_json, absolute).count(b"\n") > 20
    header = TcpHeader.create(40000, 80, 1000, 2000, Flags.ACK | Flags.PSH, 65000)
    segment = header.build(b"y" * 200, src="10.0.0.1", dst="10.0.0.2")
    datagram = IPv4Header.create("10.0.0.1", "10.0.0.2", 6, len(segment), ident=9, flags=0)
    frames = [
        ETHERNET_V4 + ipv4_tcp("10.0.0.3", "10.0.0.4", 5000, 443, 7, 0, SYN),
        *(ETHERNET_V4 + f for f in split_ipv4(datagram.build(segment), [64, 128])),
        ETHERNET_V4 + ipv4_tcp("10.0.0.4", "10.0.0.3", 443, 5000, 9, 8, SYN | ACK),
    ]
    frag = tmp_path / "frag.pcap"
    with frag.open("wb") as stream:
        writer = PcapWriter(stream, linktype=1, nanosecond=False)
        for i, frame in enumerate(frames):
            writer.write(1_700_000_000_000_000_000 + i * 1_000_000, frame)
    for as_json, absolute in FORMS:
        assert assert_same_lines(frag, as_json, absolute).count(b"\n") == 3


def _v6(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int = 65535,
    options: tuple[TcpOption, ...] = (),
    ext: bool = False,
) -> bytes:
    header = TcpHeader.create(sport, dport, seq, ack, Flags(flags), window, options)
    segment = header.build(b"", src=src, dst=dst)
    hop_by_hop = ((0, bytes(6)),) if ext else ()
    return IPv6Header.create(src, dst, 6, len(segment), extension_headers=hop_by_hop).build(
        segment
    )


def test_ipv6_dropped_unknown_states_flags_and_windows(tmp_path: Path) -> None:
    """IPv6 (fast and fallback decoder), the lab's dropped-by-wire comment,
    a capture that starts midstream (unknown states, unknown window scale),
    every flags value, window scale shifts 0, 14 and beyond what 64 bits hold."""
    a, b = "2001:db8::1", "2001:db8::1:0:2"
    frames: list[tuple[bytes, str | None]] = [
        (_v6(a, b, 4000, 80, 100, 0, SYN, 1000, (Mss(1400), WindowScale(14))), None),
        (_v6(b, a, 80, 4000, 500, 101, SYN | ACK, 2000, (WindowScale(60),)), None),
        (_v6(a, b, 4000, 80, 101, 501, ACK, 3, ext=True), None),
        (_v6(b, a, 80, 4000, 501, 101, ACK, 7), f"{DROPPED_BY_WIRE}: fault 1"),
        (_v6(a, b, 4000, 80, 101, 501, ACK, 0), None),
        (_v6(a, b, 4000, 80, 101, 501, FIN | ACK, 5), None),
        # midstream: no handshake seen
        (ipv4_tcp("10.1.0.1", "10.1.0.2", 7000, 22, 10**9, 5, ACK, b"x" * 10, window=300), None),
        (ipv4_tcp("10.1.0.2", "10.1.0.1", 22, 7000, 5, 10**9 + 10, ACK, window=0), None),
    ]
    # unscaled SYNs without window scale, then every flags byte on one flow
    frames.append((ipv4_tcp("10.2.0.1", "10.2.0.2", 9000, 25, 1, 0, SYN), None))
    for flags in range(256):
        frames.append((ipv4_tcp("10.2.0.1", "10.2.0.2", 9000, 25, 2 + flags, 9, flags), None))
    path = tmp_path / "odd.pcapng"
    with path.open("wb") as stream:
        writer = PcapngWriter(stream)
        iface = writer.add_interface(RAW, "lab", tsresol=9)
        for i, (frame, comment) in enumerate(frames):
            writer.write(1_600_000_000_123_456_789 + i * 999_999_999, frame, iface, comment)
    for as_json, absolute in FORMS:
        text = assert_same_lines(path, as_json, absolute).decode()
        assert text.count("\n") == len(frames)
        if not as_json:
            assert "dropped_by_wire" in text and "client=unknown" in text
            assert "×16384=" in text and "×?" in text
            assert f"={7 << 60}" in text  # a shift no 64-bit integer holds
    keep = views.Filter(host=b)
    assert assert_same_lines(path, False, False, keep).count(b"\n") == 6
    keep = views.Filter(host="2001:db8:0:0:1::2")  # the view compares text: not the address
    assert assert_same_lines(path, False, False, keep) == b""


def test_times_every_way(tmp_path: Path) -> None:
    """Times the formatters round (``.6f``, JSON's ``round(x, 9)``): deltas of
    a nanosecond to days, out of order (negative), in the first 100 µs (JSON's
    exponent form), on microsecond and nanosecond clocks."""
    rng = random.Random(11)
    base = 10**15 + 7  # 11.6 days after the epoch: nanoseconds survive in a double
    stamps = [base, base + 1, base + 499, base + 500, base + 501, base + 99_999, base + 100_000]
    for scale in (10**3, 10**6, 10**9, 10**12, 10**14):
        stamps += [base + rng.randrange(-scale, scale) for _ in range(300)]
    stamps += [base + rng.randrange(0, 10**15) // 1000 * 1000 + 500 for _ in range(300)]
    stamps += [1_700_000_000_000_000_000 + rng.randrange(0, 10**12) for _ in range(300)]
    path = tmp_path / "times.pcapng"
    with path.open("wb") as stream:
        writer = PcapngWriter(stream)
        iface = writer.add_interface(RAW, "t", tsresol=9)
        for i, stamp in enumerate(stamps):
            frame = ipv4_tcp("10.3.0.1", "10.3.0.2", 1000 + i % 7, 80, i * 10, 0, SYN)
            writer.write(stamp, frame, iface, None)
    for as_json, absolute in FORMS:
        text = assert_same_lines(path, as_json, absolute)
        assert text.count(b"\n") == len(stamps)
        if as_json and not absolute:
            assert b'"time": 1e-09' in text and b'"time": -' in text


def test_gz_and_standard_input_give_the_same_lines(small_synth: Path, tmp_path: Path) -> None:
    """Python feeds the engine (.gz, a pipe): the lines are the file's."""
    gz = tmp_path / "synth.pcap.gz"
    gz.write_bytes(gzip.compress(small_synth.read_bytes(), compresslevel=1))
    for args in (("--packets",), ("--packets", "--json")):
        plain = run_tcplab("analyze", *args, str(small_synth), timeout=300)
        assert plain.code == 0 and plain.stdout, plain.stderr
        assert run_tcplab("analyze", *args, str(gz), timeout=300).stdout == plain.stdout
        with small_synth.open("rb") as stdin:
            piped = subprocess.run(
                [sys.executable, "-m", "tcplab", "analyze", *args, "-"],
                stdin=stdin,
                capture_output=True,
                text=True,
                timeout=300,
            )
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout == plain.stdout


def test_a_batch_out_of_frame_order(small_synth: Path) -> None:
    """Through the batch interface, segments may come with frame numbers out
    of order (and repeated): the engine's lines are sorted per batch by
    (frame, text), as the view sorts its rows."""
    segments = list(read_segments(small_synth))[:3000]
    rng = random.Random(5)
    numbers = [s.index for s in segments]
    rng.shuffle(numbers)
    numbers[1] = numbers[0]  # a tie: ordered by text
    scrambled = [s._replace(index=n) for s, n in zip(segments, numbers, strict=True)]
    for as_json, absolute in FORMS:
        view = views.PacketsView(io.StringIO(), EVERY, as_json, absolute)
        options = engine.Options(keep_packets=True)
        got: list[bytes] = []
        expected: list[str] = []
        for mine in (False, True):
            eng = engine.Engine(view.packet_options(options) if mine else options)
            for seg in scrambled:
                eng.feed_segment(seg)
            conns, zeek, packets = eng.finish()
            batch = engine.Batch(conns, zeek, packets, eng.engine.stats()["first_time"])
            if mine:
                lines = eng.engine.take_lines()
                assert lines is not None and lines[1] is None
                got.append(lines[0])
            else:
                view.base = None
                rows = view.render(batch)
                assert isinstance(rows, list)
                expected += [text for _, text in sorted(rows)]
        assert got[0].decode() == "".join(expected)
