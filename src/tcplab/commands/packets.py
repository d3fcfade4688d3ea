"""``tcplab packets FILE``: one line per TCP packet, like ``tcpdump -nn``.

The difference from tcpdump is the numbering: seq/ack are relative by
Wireshark's rules (``tcplab.flows``), so the numbers match what Wireshark
shows and what ``tcplab analyze`` reasons with; ``--absolute`` prints the raw
ones.  ``--json`` prints every decoded field, one object per line.

Problems never stop the listing: a malformed record in the file or a
malformed IP/TCP header inside a readable record becomes one line on
stderr at the end, ``FILE: offset N: problem``, with the byte offset in the
file.  The exit status is non-zero only when nothing could be read.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import Any, Final, TextIO

import click

from tcplab.capture import CaptureProblem, Record, TcpRecords, open_capture
from tcplab.capture.source import MAX_KEPT_PROBLEMS
from tcplab.clock import calendar
from tcplab.flows import FlowTracker, FlowView
from tcplab.wire.decode import TcpPacket
from tcplab.wire.flags import Flags
from tcplab.wire.options import (
    KIND_EOL,
    KIND_EXPERIMENT,
    KIND_MSS,
    KIND_NOP,
    KIND_SACK,
    KIND_SACK_PERMITTED,
    KIND_TFO,
    KIND_TIMESTAMPS,
    KIND_WSCALE,
    Eol,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TcpOption,
    TfoCookie,
    Timestamps,
    WindowScale,
)

_BATCH: Final = 256
TIME_FORMATS: Final = ("clock", "epoch", "delta", "date", "relative", "none")

# JSON names of option records: tshark's field names where it has one.
_OPTION_NAMES: Final[dict[type, tuple[int, str]]] = {
    Eol: (KIND_EOL, "eol"),
    Nop: (KIND_NOP, "nop"),
    Mss: (KIND_MSS, "mss"),
    WindowScale: (KIND_WSCALE, "wscale"),
    SackPermitted: (KIND_SACK_PERMITTED, "sack_perm"),
    Sack: (KIND_SACK, "sack"),
    Timestamps: (KIND_TIMESTAMPS, "timestamp"),
    TfoCookie: (KIND_TFO, "tfo"),
}


def option_json(option: TcpOption) -> dict[str, Any]:
    """An option as a JSON object: kind, name, then its fields (bytes as hex,
    SACK blocks as [left, right] pairs of raw sequence numbers)."""
    kind, name = _OPTION_NAMES.get(type(option), (-1, "unknown"))
    out: dict[str, Any] = {"kind": kind, "name": name}
    for f in fields(option):
        value = getattr(option, f.name)
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[f.name] = value  # UnknownOption's own ``kind`` replaces the -1
    if isinstance(option, TfoCookie) and option.experimental:
        out["kind"] = KIND_EXPERIMENT  # RFC 7413 §4.1.1: kind 254 with magic 0xF989
    return out


def flag_names(flags: Flags) -> list[str]:
    return [f.name for f in Flags if f & flags and f.name is not None]


class TimeFormatter:
    """tcpdump's -t family: clock (default), -tt epoch, -ttt delta, -tttt date,
    -ttttt relative, -t none; microseconds unless ``nano``."""

    def __init__(self, mode: str, utc: bool, nano: bool) -> None:
        self.mode = mode
        self.utc = utc
        self.digits = 9 if nano else 6
        self.first: int | None = None
        self.previous: int | None = None
        self._cached_second: tuple[int, str] | None = None

    def _frac(self, ns: int) -> str:
        frac = ns % 1_000_000_000
        return f"{frac:09d}" if self.digits == 9 else f"{frac // 1000:06d}"

    def _clock(self, sec: int, with_date: bool) -> str:
        if self._cached_second is None or self._cached_second[0] != sec:
            pattern = "%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S"
            # A time that is no date (if_tsresol 0x80...) is printed raw (the
            # epoch seconds); the reader warned once with the offset.
            text = calendar(sec, pattern, self.utc) or str(sec)
            self._cached_second = (sec, text)
        return self._cached_second[1]

    def _span(self, ns: int) -> str:
        sign = "-" if ns < 0 else ""
        sec, rest = divmod(abs(ns), 1_000_000_000)
        hours, sec = divmod(sec, 3600)
        minutes, sec = divmod(sec, 60)
        return f"{sign}{hours:02d}:{minutes:02d}:{sec:02d}.{self._frac(rest)}"

    def __call__(self, time_ns: int) -> str:
        if self.first is None:
            self.first = time_ns
        previous, self.previous = self.previous, time_ns
        match self.mode:
            case "none":
                return ""
            case "epoch":
                return f"{time_ns // 1_000_000_000}.{self._frac(time_ns)} "
            case "delta":
                return self._span(time_ns - (previous if previous is not None else time_ns)) + " "
            case "relative":
                return self._span(time_ns - self.first) + " "
            case "date":
                return f"{self._clock(time_ns // 1_000_000_000, True)}.{self._frac(time_ns)} "
            case _:
                return f"{self._clock(time_ns // 1_000_000_000, False)}.{self._frac(time_ns)} "


_FLAG_TEXT: dict[int, str] = {}
_SYN_FIN_RST: Final = int(Flags.SYN | Flags.FIN | Flags.RST)
_ACK: Final = int(Flags.ACK)
_URG: Final = int(Flags.URG)


def _flag_text(bits: int) -> str:
    """``Flags.tcpdump()`` memoised: at most 512 values, asked once per packet."""
    text = _FLAG_TEXT.get(bits)
    if text is None:
        text = _FLAG_TEXT[bits] = Flags(bits).tcpdump()
    return text


def tcpdump_line(pkt: TcpPacket, view: FlowView, absolute: bool, stamp: str) -> str:
    """The text of print-tcp.c for one segment, with Wireshark-relative numbers."""
    tcp = pkt.tcp
    flags = int(tcp.flags)
    length = pkt.length
    ack: int | None
    if absolute:
        seq, ack, sack_base = tcp.seq, tcp.ack, None
    else:
        seq, ack, sack_base = view.rel_seq, view.rel_ack, view.base_ack
    proto = "IP" if pkt.ip_version == 4 else "IP6"
    parts = [
        f"{stamp}{proto} {pkt.src}.{tcp.sport} > {pkt.dst}.{tcp.dport}: Flags [{_flag_text(flags)}]"
    ]
    if length > 0 or flags & _SYN_FIN_RST:
        parts.append(f", seq {seq}" + (f":{(seq + length) % (1 << 32)}" if length > 0 else ""))
    if flags & _ACK and ack is not None:
        parts.append(f", ack {ack}")
    parts.append(f", win {tcp.window}")
    if flags & _URG:
        parts.append(f", urg {tcp.urgent}")
    if tcp.options or tcp.option_error:
        # tcpdump marks a malformed option list, not one the snap length cut short.
        parts.append(f", options [{tcp.option_text(sack_base)}]")
    parts.append(f", length {length}")
    return "".join(parts)


def _with_relative_sack(obj: dict[str, Any], view: FlowView) -> dict[str, Any]:
    """SACK edges also relative to the peer's base, as Wireshark shows them
    (``tcp.options.sack_le`` / ``sack_re``): they are sequence numbers of the
    data flowing the other way (RFC 2018 §3)."""
    if obj["name"] == "sack" and view.base_ack is not None:
        base = view.base_ack
        obj["blocks_rel"] = [
            [(le - base) % (1 << 32), (re - base) % (1 << 32)] for le, re in obj["blocks"]
        ]
    return obj


def packet_json(record: Record, pkt: TcpPacket, view: FlowView) -> dict[str, Any]:
    tcp = pkt.tcp
    return {
        "frame": record.index,
        "time": f"{record.time_ns // 1_000_000_000}.{record.time_ns % 1_000_000_000:09d}",
        "time_ns": record.time_ns,
        "offset": record.offset,
        "linktype": record.linktype,
        "interface": record.interface,
        "caplen": len(record.data),
        "orig_len": record.orig_len,
        "comment": record.comment,
        "ip_version": pkt.ip_version,
        "src": pkt.src,
        "dst": pkt.dst,
        "ttl": pkt.ttl,
        "ip_len": pkt.ip_len,
        "ip_header_len": pkt.ip_header_len or (20 if pkt.ip_version == 4 else 40),
        "sport": tcp.sport,
        "dport": tcp.dport,
        "stream": view.stream,
        "direction": view.direction,
        "seq": view.rel_seq,
        "ack": view.rel_ack,
        "nxtseq": view.nxtseq_rel,
        "seq_raw": tcp.seq,
        "ack_raw": tcp.ack,
        "len": pkt.length,
        "captured_payload": len(pkt.payload),
        "header_len": tcp.header_len,
        "flags": flag_names(tcp.flags),
        "flags_text": tcp.flags.tcpdump(),
        "flags_value": int(tcp.flags),
        "reserved": tcp.reserved,  # the 3 reserved bits (RFC 9293 §3.1), kept as seen
        "window": tcp.window,
        "checksum": tcp.checksum,
        "checksum_ok": pkt.checksum_ok,
        "urgent": tcp.urgent,
        "options": [_with_relative_sack(option_json(o), view) for o in tcp.options],
        "option_error": tcp.option_error,
        "reused_ports": view.reused_ports,
        # Encapsulations around it, outermost first ("gre", "ipip/ipip", "vxlan"),
        # the outermost IP addresses and UDP tunnel ports (tcplab.wire.decode).
        "tunnel": pkt.tunnel,
        "outer_src": pkt.outer_src,
        "outer_dst": pkt.outer_dst,
        "outer_sport": pkt.outer_sport,
        "outer_dport": pkt.outer_dport,
    }


_AT_OFFSET: Final = re.compile(r" at offset (\d+)")


def option_problem(record: Record, pkt: TcpPacket) -> CaptureProblem:
    """A malformed-option finding with its file offset.

    The wire layer words it with an offset inside the frame ("malformed
    option kind 2 at offset 54: ..."); the line prefix carries the file
    offset instead.
    """
    message = pkt.tcp.option_error or ""
    match = _AT_OFFSET.search(message)
    frame_offset = int(match.group(1)) if match else pkt.tcp_offset + 20
    if match:
        message = message[: match.start()] + message[match.end() :]
    return CaptureProblem(
        record.data_offset + frame_offset,
        f"frame {record.index}: TCP {message} (packet kept, options cut there)",
    )


def _host_matcher(hosts: tuple[str, ...]) -> Callable[[TcpPacket], bool] | None:
    if not hosts:
        return None
    wanted = set()
    for host in hosts:
        try:
            wanted.add(str(ipaddress.ip_address(host)))
        except ValueError:
            raise click.BadParameter(
                f"{host!r} is not an IP address", param_hint="--host"
            ) from None
    return lambda pkt: pkt.src in wanted or pkt.dst in wanted


def list_packets(
    path: str,
    out: TextIO,
    err: TextIO,
    *,
    absolute: bool = False,
    as_json: bool = False,
    count: int | None = None,
    time_format: str = "clock",
    utc: bool = False,
    nano: bool = False,
    ports: tuple[int, ...] = (),
    hosts: tuple[str, ...] = (),
) -> int:
    """Print the packets of ``path``; returns the exit status."""
    host_ok = _host_matcher(hosts)
    port_set = set(ports)
    stamp = TimeFormatter(time_format, utc, nano)
    tracker = FlowTracker()
    option_problems: list[CaptureProblem] = []
    printed = 0
    write = out.write
    # Lines go out in batches: a stream that is line-buffered (a terminal, or
    # PYTHONUNBUFFERED) would otherwise cost one write(2) per packet.
    pending: list[str] = []
    with open_capture(path) as reader:
        records = TcpRecords(reader, verify_checksum=as_json)
        for record, pkt in records:
            if pkt.tcp.option_error is not None and len(option_problems) < MAX_KEPT_PROBLEMS:
                # The segment is still usable (and printed); the options are reported.
                option_problems.append(option_problem(record, pkt))
            view = tracker.observe(pkt)
            if port_set and pkt.sport not in port_set and pkt.dport not in port_set:
                continue
            if host_ok is not None and not host_ok(pkt):
                continue
            if as_json:
                pending.append(json.dumps(packet_json(record, pkt, view)))
            else:
                pending.append(tcpdump_line(pkt, view, absolute, stamp(record.time_ns)))
            printed += 1
            if len(pending) >= _BATCH:
                write("\n".join(pending) + "\n")
                pending.clear()
            if count is not None and printed >= count:
                break
        if pending:
            write("\n".join(pending) + "\n")
        out.flush()
        problems = sorted([*records.problems, *option_problems], key=lambda p: p.offset)
        for problem in problems:
            err.write(f"tcplab: {problem.line(path)}\n")
        if records.dropped:
            err.write(f"tcplab: {path}: {records.dropped} more problems not shown\n")
        if records.skipped:
            err.write(
                f"tcplab: {path}: read {records.frames} packets ({records.tcp} TCP), "
                f"skipped {records.skipped} malformed records\n"
            )
        if records.frames == records.undecodable and problems:  # nothing at all could be read
            return 1
    return 0


@click.command("packets")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--absolute", "-S", is_flag=True, help="Raw sequence numbers (tcpdump -S).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per packet, every field.")
@click.option("-c", "--count", type=click.IntRange(min=1), help="Stop after N packets.")
@click.option(
    "--time",
    "time_format",
    type=click.Choice(TIME_FORMATS),
    default="clock",
    show_default=True,
    help="clock | epoch (-tt) | delta (-ttt) | date (-tttt) | relative (-ttttt) | none (-t).",
)
@click.option("--utc", is_flag=True, help="Clock and date times in UTC, not local time.")
@click.option("--nano", is_flag=True, help="Nanosecond timestamps.")
@click.option(
    "--port", "ports", type=click.IntRange(0, 65535), multiple=True, help="Only this port."
)
@click.option("--host", "hosts", multiple=True, help="Only packets from or to this address.")
@click.option("--ipmsg", is_flag=True,
              help="Decode IP Messenger / FeiQ datagrams on UDP 2425 (or --port) instead of TCP.")
def command(
    file: str,
    absolute: bool,
    as_json: bool,
    count: int | None,
    time_format: str,
    utc: bool,
    nano: bool,
    ports: tuple[int, ...],
    hosts: tuple[str, ...],
    ipmsg: bool,
) -> None:
    """One line per TCP packet of FILE (pcap, pcapng, .gz; - for standard
    input, as in `tcpdump -w - | tcplab packets -`), tcpdump -nn style,
    with Wireshark's relative seq/ack and stream numbering.

    With --ipmsg: each IP Messenger datagram (UDP 2425), field by field:
    version (and what atoi makes of FeiQ's prefix), packet number, user,
    host, command (mode and option bits by name) and the extra section.
    """
    if ipmsg:
        from tcplab.commands.ipmsg import list_ipmsg

        # (a reader that goes away, `| head`, is tcplab.cli's: exit 0)
        status = list_ipmsg(file, sys.stdout, sys.stderr, as_json=as_json, count=count,
                            ports=ports or (2425,))  # fmt: skip
        if status:
            sys.exit(status)
        return
    status = list_packets(
        file,
        sys.stdout,
        sys.stderr,
        absolute=absolute,
        as_json=as_json,
        count=count,
        time_format=time_format,
        utc=utc,
        nano=nano,
        ports=ports,
        hosts=hosts,
    )
    if status:
        sys.exit(status)
