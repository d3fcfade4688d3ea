"""``tcplab packets --ipmsg FILE``: IP Messenger / FeiQ datagrams, field by field."""

from __future__ import annotations

import json
from typing import Any, TextIO

from tcplab.capture import open_capture
from tcplab.wire.error import WireError
from tcplab.wire.ipmsg import IpmsgPacket, udp_datagram


def ipmsg_json(index: int, time: float, src: str, sport: int, dst: str, dport: int,
               packet: IpmsgPacket) -> dict[str, Any]:  # fmt: skip
    feiq = packet.feiq
    return {
        "frame": index, "time": time, "src": src, "sport": sport, "dst": dst, "dport": dport,
        "version": packet.version.decode("latin-1"), "version_atoi": packet.version_number,
        "feiq": None if feiq is None else {"fields": list(feiq.fields), "mac": feiq.mac},
        "packet_no": packet.packet_no.decode("latin-1"),
        "user": packet.user_text, "host": packet.host_text,
        "command": packet.command, "mode": packet.mode, "options": packet.options,
        "extra": packet.message,
    }  # fmt: skip


def list_ipmsg(path: str, out: TextIO, err: TextIO, *, as_json: bool, count: int | None,
               ports: tuple[int, ...]) -> int:  # fmt: skip
    """Print every IPMsg datagram of the capture; 1 when none could be read at all."""
    shown = problems = 0
    first: float | None = None
    with open_capture(path) as reader:
        for record in reader:
            try:
                datagram = udp_datagram(record.linktype, record.data)
            except WireError as exc:
                err.write(f"{path}: frame {record.index}: offset "
                          f"{record.data_offset + exc.offset}: {exc.message}\n")  # fmt: skip
                problems += 1
                continue
            if datagram is None or not {datagram.sport, datagram.dport} & set(ports):
                continue
            try:
                packet = IpmsgPacket.parse(datagram.payload)
            except WireError as exc:
                err.write(f"{path}: frame {record.index}: not IPMsg: {exc.message}\n")
                problems += 1
                continue
            first = record.time if first is None else first
            where = (datagram.src, datagram.sport, datagram.dst, datagram.dport)
            if as_json:
                out.write(json.dumps(ipmsg_json(record.index, record.time, *where, packet),
                                     ensure_ascii=False) + "\n")  # fmt: skip
            else:
                out.write(f"{record.index} {record.time - first:.6f} "
                          f"{datagram.src}.{datagram.sport} > {datagram.dst}.{datagram.dport}: "
                          f"IPMsg {packet.mode}\n")  # fmt: skip
                for name, meaning in packet.describe():
                    out.write(f"    {name:<14} {meaning}\n")
            shown += 1
            if count is not None and shown >= count:
                break
    if not shown and problems:
        return 1
    if not shown:
        err.write(f"{path}: no IPMsg datagram on UDP port {', '.join(map(str, ports))}\n")
    return 0
