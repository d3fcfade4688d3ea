"""Script packets <-> live packets: mapping, building, checking.

The semantics are packetdrill's ``run_packet.c``:

* The remote side's sequence numbers are used as written (packetdrill keeps
  the live remote ISN equal to the script's); the local side's are offset
  by ``live ISN - script ISN``, learned from the first SYN or SYN-ACK the
  stack sends.  An inbound ACK and SACK blocks take that offset, an
  outbound seq loses it.
* An inbound TS ecr is the live TS val the stack sent for that script TS
  val (or interpolated from the first one with ``--tcp_ts_ecr_scaled``).
  An outbound TS val is checked only with ``--tcp_ts_tick_usecs`` set,
  within the tolerance grown by the script's elapsed time.
* An outbound packet is checked field by field in packetdrill's order
  (lengths, flags, seq, ack, window unless the script gave none, urgent
  pointer, options kind by kind unless ``<...>``, payload); the first
  mismatch is the error, ``live packet field tcp_psh: expected: 1 (0x1)
  vs actual: 0 (0x0)``.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from tcplab.drill.script import PacketSpec, TcpOptionSpec
from tcplab.wire.error import WireError
from tcplab.wire.flags import Flags
from tcplab.wire.ip import IPv4Header, IPv6Header
from tcplab.wire.options import (
    EOL,
    NOP,
    SACK_PERMITTED,
    Eol,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TfoCookie,
    Timestamps,
    UnknownOption,
    WindowScale,
)
from tcplab.wire.options import TcpOption as WireOption
from tcplab.wire.tcp import TcpHeader

IPPROTO_TCP = 6
U32 = 1 << 32

_FLAG_BITS = {
    "F": Flags.FIN,
    "S": Flags.SYN,
    "R": Flags.RST,
    "P": Flags.PSH,
    ".": Flags.ACK,
    "U": Flags.URG,
    "E": Flags.ECE,
    "W": Flags.CWR,
    "A": Flags.AE,
}


def spec_flags(letters: str) -> Flags:
    bits = Flags(0)
    for ch in letters:
        bits |= _FLAG_BITS[ch]
    return bits


def flags_text(flags: Flags) -> str:
    """packetdrill's flag letters (``packet_to_string.c``): ``FSRPUEWA`` then ``.``."""
    out = "".join(ch for ch in "FSRPUEWA" if flags & _FLAG_BITS[ch])
    if flags & Flags.ACK:
        out += "."
    return out or "-"  # packetdrill prints "-"... for no flags


@dataclass(frozen=True, slots=True)
class LivePacket:
    """A TCP/IP packet the stack sent or is given, decoded."""

    time_us: int
    version: int
    src: str
    dst: str
    ihl: int  # IPv4 header words, 0 for IPv6
    ip_total: int  # IPv4 total length or IPv6 payload length
    tcp: TcpHeader
    payload: bytes
    raw: bytes

    @property
    def options_len(self) -> int:
        return self.tcp.header_len - 20


def decode(raw: bytes, time_us: int) -> LivePacket | None:
    """A TCP packet, or None (not TCP, not decodable: the sniffer skips it)."""
    try:
        if not raw:
            return None
        if raw[0] >> 4 == 4:
            ip4, rest = IPv4Header.parse(raw)
            if ip4.protocol != IPPROTO_TCP or ip4.is_fragment:
                return None
            tcp, payload = TcpHeader.parse(rest[: max(0, ip4.total_length - ip4.header_len)])
            return LivePacket(
                time_us, 4, ip4.src, ip4.dst, ip4.ihl, ip4.total_length, tcp, payload, raw
            )
        if raw[0] >> 4 == 6:
            ip6, rest = IPv6Header.parse(raw)
            if ip6.protocol != IPPROTO_TCP or ip6.extension_headers:
                return None
            tcp, payload = TcpHeader.parse(rest[: ip6.payload_length])
            return LivePacket(
                time_us, 6, ip6.src, ip6.dst, 0, ip6.payload_length, tcp, payload, raw
            )
    except (WireError, ValueError, struct.error):
        return None
    return None


@dataclass
class Conn:
    """packetdrill's ``struct socket``: one connection's script and live view."""

    family: int
    local: tuple[str, int] = ("", 0)  # live
    remote: tuple[str, int] = ("", 0)  # live
    state: str = "new"  # new listening connecting syn_sent passive_received synack_sent ...
    script_fd: int = -1
    live_fd: int = -1
    script_local_isn: int = 0
    live_local_isn: int = 0
    have_local_isn: bool = False
    ts_map: dict[int, int] = field(default_factory=dict)  # script TS val -> live
    first_ts: tuple[int, int] | None = None  # (script, live) of the first outbound TS val

    remote_isn: int = 0  # the peer's ISN: the script's SYN or SYN-ACK seq, live = script

    def local_offset(self, is_syn: bool) -> int:
        """script -> live for our own sequence numbers (packetdrill's socket.h): a SYN's
        numbers map ISN to ISN, every other packet's count from the live ISN."""
        if is_syn:
            return (self.live_local_isn - self.script_local_isn) % U32
        return self.live_local_isn

    def remote_offset(self, is_syn: bool) -> int:
        """script -> live for the peer's numbers: relative to its ISN except on a SYN."""
        return 0 if is_syn else self.remote_isn


@dataclass
class Config:
    tolerance_usecs: int = 4000
    tolerance_percent: float = 12.5
    tcp_ts_tick_usecs: int = 0
    tcp_ts_ecr_scaled: bool = False


class PacketError(Exception):
    """An inbound packet that cannot be built (a TS ecr with nothing to map to)."""


def _wire_option(opt: TcpOptionSpec, ack_offset: int) -> WireOption:
    if opt.kind == "nop":
        return NOP
    if opt.kind == "eol":
        return EOL
    if opt.kind == "mss":
        return Mss(opt.value)
    if opt.kind == "wscale":
        return WindowScale(opt.value)
    if opt.kind == "sackOK":
        return SACK_PERMITTED
    if opt.kind == "sack":
        return Sack(tuple(((a + ack_offset) % U32, (b + ack_offset) % U32) for a, b in opt.blocks))
    if opt.kind == "TS":
        return Timestamps(*opt.ts)
    return TfoCookie(opt.cookie, experimental=opt.kind == "FOEXP")


def build_inbound(spec: PacketSpec, conn: Conn, config: Config) -> bytes:
    """The IP datagram for a ``<`` line, mapped onto the live connection."""
    flags = spec_flags(spec.flags)
    is_syn = bool(flags & Flags.SYN)
    ack_offset = conn.local_offset(is_syn)
    seq = (spec.seq + conn.remote_offset(is_syn)) % U32
    ack = 0
    if spec.ack is not None:
        ack = (spec.ack + ack_offset) % U32 if flags & Flags.ACK else spec.ack
    options: list[WireOption] = []
    for opt in spec.options or ():
        wire = _wire_option(opt, ack_offset)
        if isinstance(wire, Timestamps) and flags & Flags.ACK:
            wire = Timestamps(wire.val, _live_ecr(wire.ecr, conn, config))
        options.append(wire)
    tcp = TcpHeader.create(
        conn.remote[1],
        conn.local[1],
        seq,
        ack,
        flags,
        spec.window or 0,
        tuple(options),
        spec.urgent,
    )
    payload = bytes(spec.length)
    segment = tcp.build(payload, src=conn.remote[0], dst=conn.local[0])
    if conn.family == socket.AF_INET6:
        ip6 = IPv6Header.create(conn.remote[0], conn.local[0], IPPROTO_TCP, len(segment))
        return ip6.build(segment)
    ip4 = IPv4Header.create(conn.remote[0], conn.local[0], IPPROTO_TCP, len(segment))
    return ip4.build(segment)


def _live_ecr(script_ecr: int, conn: Conn, config: Config) -> int:
    if script_ecr in conn.ts_map:
        return conn.ts_map[script_ecr]
    if config.tcp_ts_ecr_scaled and conn.first_ts is not None:
        first_script, first_live = conn.first_ts
        return (script_ecr - first_script + first_live) % U32
    raise PacketError(
        f"unable to infer live TS ecr for script TS ecr {script_ecr};  "
        "no matching or preceding outbound TS val"
    )


# -- outbound ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Actual:
    """A live outbound packet mapped into script space (what the error shows)."""

    flags: Flags
    seq: int
    ack: int
    window: int
    length: int
    options: tuple[WireOption, ...]
    urgent: int

    def text(self) -> str:
        end = (self.seq + self.length) % U32
        out = f"{flags_text(self.flags)} {self.seq}:{end}({self.length})"
        if self.flags & Flags.ACK:
            out += f" ack {self.ack}"
        out += f" win {self.window}"
        if self.options:
            out += " <" + ",".join(option_text(o) for o in self.options) + ">"
        return out


def option_text(opt: WireOption) -> str:
    if isinstance(opt, Nop):
        return "nop"
    if isinstance(opt, Eol):
        return "eol"
    if isinstance(opt, Mss):
        return f"mss {opt.value}"
    if isinstance(opt, WindowScale):
        return f"wscale {opt.shift}"
    if isinstance(opt, SackPermitted):
        return "sackOK"
    if isinstance(opt, Sack):
        return "sack " + " ".join(f"{a}:{b}" for a, b in opt.blocks)
    if isinstance(opt, Timestamps):
        return f"TS val {opt.val} ecr {opt.ecr}"
    if isinstance(opt, TfoCookie):
        return ("FOEXP" if opt.experimental else "FO") + (
            f" {opt.cookie.hex()}" if opt.cookie else ""
        )
    return f"opt-{opt.kind} {opt.data.hex()}"


def _kind(opt: WireOption | TcpOptionSpec) -> int:
    if isinstance(opt, TcpOptionSpec):
        return {
            "eol": 0,
            "nop": 1,
            "mss": 2,
            "wscale": 3,
            "sackOK": 4,
            "sack": 5,
            "TS": 8,
            "FO": 34,
            "FOEXP": 254,
        }[opt.kind]
    if isinstance(opt, UnknownOption):
        return opt.kind
    return {Eol: 0, Nop: 1, Mss: 2, WindowScale: 3, SackPermitted: 4, Sack: 5, Timestamps: 8}.get(
        type(opt), 254 if isinstance(opt, TfoCookie) and opt.experimental else 34
    )


def _field(name: str, expected: int, actual: int) -> str | None:
    if expected == actual:
        return None
    return (
        f"live packet field {name}: expected: {expected} ({expected:#x}) "
        f"vs actual: {actual} ({actual:#x})"
    )


def _script_options_len(spec: PacketSpec) -> int:
    from tcplab.drill.parser import option_size

    return sum(option_size(o) for o in spec.options or ())


def map_outbound(live: LivePacket, conn: Conn, spec: PacketSpec) -> Actual:
    """Live -> script space; learns the TS val mapping as packetdrill's
    ``map_outbound_live_packet`` does."""
    tcp = live.tcp
    is_syn = bool(tcp.flags & Flags.SYN)
    seq = (tcp.seq - conn.local_offset(is_syn)) % U32
    remote = conn.remote_offset(is_syn)
    ack = (tcp.ack - remote) % U32 if tcp.flags & Flags.ACK else tcp.ack
    options = tuple(
        Sack(tuple(((a - remote) % U32, (b - remote) % U32) for a, b in o.blocks))
        if isinstance(o, Sack)
        else o
        for o in tcp.options
    )
    script_ts = next((o for o in spec.options or () if o.kind == "TS"), None)
    live_ts = next((o for o in options if isinstance(o, Timestamps)), None)
    if script_ts is not None and live_ts is not None:
        conn.ts_map[script_ts.ts[0]] = live_ts.val
        if conn.first_ts is None:
            conn.first_ts = (script_ts.ts[0], live_ts.val)
        first_script, first_live = conn.first_ts
        mapped = (first_script + (live_ts.val - first_live)) % U32
        options = tuple(
            Timestamps(mapped, o.ecr) if isinstance(o, Timestamps) else o for o in options
        )
    return Actual(tcp.flags, seq, ack, tcp.window, len(live.payload), options, tcp.urgent)


def verify_outbound(
    spec: PacketSpec, live: LivePacket, actual: Actual, config: Config, elapsed_script_us: int
) -> str | None:
    """The first difference between the script packet and the live one, or None."""
    tcp = live.tcp
    script_opt_len = _script_options_len(spec)
    allowance = live.options_len if spec.options is None else 0
    if live.version == 4:
        expected_total = 20 + 20 + script_opt_len + spec.length + allowance
        err = _field("ipv4_header_length", 5, live.ihl) or _field(
            "ipv4_total_length", expected_total, live.ip_total
        )
    else:
        expected_total = 20 + script_opt_len + spec.length + allowance
        err = _field("ipv6_payload_len", expected_total, live.ip_total)
    if err:
        return err
    want = spec_flags(spec.flags)
    checks: list[tuple[str, int, int]] = [
        ("tcp_data_offset", 5 + (script_opt_len + allowance) // 4, tcp.data_offset),
    ]
    for name, bit in (
        ("tcp_fin", Flags.FIN),
        ("tcp_syn", Flags.SYN),
        ("tcp_rst", Flags.RST),
        ("tcp_psh", Flags.PSH),
        ("tcp_ack", Flags.ACK),
        ("tcp_urg", Flags.URG),
        ("tcp_ece", Flags.ECE),
        ("tcp_cwr", Flags.CWR),
        ("tcp_ae", Flags.AE),
    ):
        checks.append((name, int(bool(want & bit)), int(bool(actual.flags & bit))))
    checks.append(("tcp_reserved_bits", 0, tcp.reserved))
    checks.append(("tcp_seq", spec.seq, actual.seq))
    checks.append(("tcp_ack_seq", spec.ack if spec.ack is not None else 0, actual.ack))
    if spec.window is not None:
        checks.append(("tcp_window", spec.window, actual.window))
    checks.append(("tcp_urg_ptr", spec.urgent, actual.urgent))
    for name, expected, got in checks:
        if err := _field(name, expected, got):
            return err
    if spec.options is not None:
        err = _verify_options(spec.options, actual.options, config, elapsed_script_us)
        if err:
            return err
    if any(live.payload):
        return "incorrect outbound data payload"
    return None


def _verify_options(
    script: tuple[TcpOptionSpec, ...],
    actual: tuple[WireOption, ...],
    config: Config,
    elapsed_script_us: int,
) -> str | None:
    if len(script) != len(actual) or any(
        _kind(s) != _kind(a) for s, a in zip(script, actual, strict=False)
    ):
        return "bad outbound TCP options"
    tolerance = max(
        config.tolerance_usecs, int(config.tolerance_percent / 100.0 * elapsed_script_us)
    )
    for s, a in zip(script, actual, strict=True):
        if isinstance(a, (Nop, Eol)):
            continue
        if isinstance(a, Timestamps):
            tick = config.tcp_ts_tick_usecs
            delta = ((a.val - s.ts[0] + (1 << 31)) % U32) - (1 << 31)
            if tick and abs(delta) * tick > tolerance:
                return f"bad outbound TCP timestamp value, tolerance {tolerance}"
            continue
        expected_bytes = _wire_option(s, 0).build()
        got = a.build()
        problem = ""
        if len(expected_bytes) != len(got):
            problem = "bad length"
        elif expected_bytes != got:
            problem = "bad value"
        if problem:
            return (
                f"{problem} in outbound TCP option (kind={_kind(s)}): "
                f"expected: {s.text()} actual: {option_text(a)}"
            )
    return None
