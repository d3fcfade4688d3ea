"""IP Messenger (IPMsg) datagrams on UDP 2425, and FeiQ's variant of them.

One seed note watches IPMsg in Wireshark (``udp.port eq 2425``) and finds
that FeiQ (飞秋) writes its own marks where IPMsg's version belongs::

    1_lbt6_0#131#F46D04EE2666#1221#0#0#4001#9:1440897450:Guiyun:DEV6-GUIYUN-PC:0:

and stays compatible because IPMsg reads the version with ``atoi``, which
stops at the first non-digit: ``atoi("1_lbt6_0#...") == 1``.

The format (IP Messenger protocol 1.2, H. Shirouzu's ``ipmsg.h``, also in
the Mac and Linux ports) is one line of six ``:``-separated fields::

    Version:PacketNo:SenderName:SenderHost:Command:AdditionalSection

``Command`` is a decimal 32-bit number: the low byte is the mode
(``GET_MODE``: BR_ENTRY, SENDMSG, ...), the rest option bits (``GET_OPT``)
whose meaning depends on the mode (0x100 is ABSENCEOPT on an entry, but
SENDCHECKOPT on a message).  The additional section may hold NULs (a
message, then file attachments) and is kept as bytes.

``parse``/``build`` are a pair: ``build(parse(b)) == b`` for every datagram
``parse`` accepts.  Text fields are decoded as UTF-8 when valid (IPMsg's
UTF8OPT), else as GBK, what Chinese Windows clients such as FeiQ send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tcplab.wire.error import WireError

PORT: Final = 2425  # IPMSG_DEFAULT_PORT 0x0979

# Modes: the command's low byte (ipmsg.h, "command").
MODES: Final[dict[int, str]] = {
    0x00: "NOOPERATION", 0x01: "BR_ENTRY", 0x02: "BR_EXIT", 0x03: "ANSENTRY",
    0x04: "BR_ABSENCE", 0x10: "BR_ISGETLIST", 0x11: "OKGETLIST", 0x12: "GETLIST",
    0x13: "ANSLIST", 0x18: "BR_ISGETLIST2", 0x20: "SENDMSG", 0x21: "RECVMSG",
    0x30: "READMSG", 0x31: "DELMSG", 0x32: "ANSREADMSG", 0x40: "GETINFO",
    0x41: "SENDINFO", 0x50: "GETABSENCEINFO", 0x51: "SENDABSENCEINFO",
    0x60: "GETFILEDATA", 0x61: "RELEASEFILES", 0x62: "GETDIRFILES",
    0x72: "GETPUBKEY", 0x73: "ANSPUBKEY",
}  # fmt: skip

# Options any command may carry ("option for all command").
ALL_OPTIONS: Final[dict[int, str]] = {
    0x00010000: "DIALUPOPT", 0x00200000: "FILEATTACHOPT", 0x00400000: "ENCRYPTOPT",
    0x00800000: "UTF8OPT", 0x01000000: "CAPUTF8OPT", 0x02000000: "CAPIPDICTOPT",
    0x04000000: "ENCEXTMSGOPT", 0x08000000: "CLIPBOARDOPT", 0x10000000: "DIR_MASTER",
}  # fmt: skip
# The entry commands' presence options.
ENTRY_OPTIONS: Final[dict[int, str]] = {0x00000100: "ABSENCEOPT", 0x00000200: "SERVEROPT"}
# The send command's options ("option for send command").
SEND_OPTIONS: Final[dict[int, str]] = {
    0x00000100: "SENDCHECKOPT", 0x00000200: "SECRETOPT", 0x00000400: "BROADCASTOPT",
    0x00000800: "MULTICASTOPT", 0x00001000: "NOPOPUPOPT", 0x00002000: "AUTORETOPT",
    0x00004000: "RETRYOPT", 0x00008000: "PASSWORDOPT", 0x00020000: "NOLOGOPT",
    0x00040000: "NEWMUTIOPT", 0x00080000: "NOADDLISTOPT", 0x00100000: "READCHECKOPT",
}  # fmt: skip
_ENTRY_MODES: Final = {0x01, 0x02, 0x03, 0x04}
_SEND_MODES: Final = {0x20}


def mode_name(command: int) -> str:
    mode = command & 0xFF
    return MODES.get(mode, f"mode 0x{mode:02x}")


def option_names(command: int) -> list[str]:
    """The option bits set in ``command``, by name for its mode; unknown bits as hex."""
    mode = command & 0xFF
    table = dict(ALL_OPTIONS)
    if mode in _ENTRY_MODES:
        table |= ENTRY_OPTIONS
    elif mode in _SEND_MODES:
        table |= SEND_OPTIONS
    names: list[str] = []
    rest = command & 0xFFFFFF00
    for bit in range(8, 32):
        value = 1 << bit
        if rest & value:
            names.append(table.get(value, f"0x{value:08x}"))
    return names


def atoi(text: bytes) -> int:
    """C's atoi as the seed note quotes it: leading digits only, 0 when none.

    (The note's ``_ttoi`` skips no whitespace and takes no sign; neither does
    this one.)"""
    value = 0
    for byte in text:
        if not 0x30 <= byte <= 0x39:
            break
        value = value * 10 + (byte - 0x30)
    return value


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("gbk", "replace")


@dataclass(frozen=True, slots=True)
class FeiqPrefix:
    """FeiQ's marks in the version field: ``1_lbt6_0#131#F46D04EE2666#...``.

    Only what can be read off the field is named: the ``#``-separated parts
    and, when one is twelve hex digits, that it looks like a MAC address.
    """

    fields: tuple[str, ...]

    @property
    def mac(self) -> str | None:
        for part in self.fields:
            if len(part) == 12 and all(c in "0123456789abcdefABCDEF" for c in part):
                return ":".join(part[i:i + 2] for i in range(0, 12, 2)).upper()
        return None


@dataclass(frozen=True, slots=True)
class IpmsgPacket:
    """One IPMsg datagram: the six fields as sent (bytes), and what they mean."""

    version: bytes  # as sent; IPMsg itself only looks at atoi() of it
    packet_no: bytes
    user: bytes
    host: bytes
    command_text: bytes  # the decimal command as sent
    extra: bytes | None  # the additional section, NULs and all; None: no sixth field

    @classmethod
    def parse(cls, data: bytes) -> IpmsgPacket:
        """Split one datagram; a WireError (with its byte offset) if it is not IPMsg."""
        parts = data.split(b":", 5)
        if len(parts) < 5:
            raise WireError(f"IPMsg needs 5 ':'-separated fields before the extra, "
                            f"found {len(parts) - 1} ':'", len(data))  # fmt: skip
        offset = sum(len(p) + 1 for p in parts[:4])
        if not parts[4].isdigit():
            raise WireError(f'IPMsg command "{_text(parts[4][:20])}" is not a decimal number',
                            offset)  # fmt: skip
        if int(parts[4]) > 0xFFFFFFFF:
            raise WireError(f"IPMsg command {int(parts[4])} does not fit in 32 bits", offset)
        extra = parts[5] if len(parts) == 6 else None
        return cls(parts[0], parts[1], parts[2], parts[3], parts[4], extra)

    def build(self) -> bytes:
        fields = [self.version, self.packet_no, self.user, self.host, self.command_text]
        if self.extra is not None:
            fields.append(self.extra)
        return b":".join(fields)

    @classmethod
    def create(cls, version: str, packet_no: int, user: str, host: str, command: int,
               extra: bytes = b"", encoding: str = "utf-8") -> IpmsgPacket:  # fmt: skip
        return cls(version.encode(encoding), str(packet_no).encode(), user.encode(encoding),
                   host.encode(encoding), str(command).encode(), extra)  # fmt: skip

    @property
    def command(self) -> int:
        return int(self.command_text)

    # -- what the fields mean ------------------------------------------------

    @property
    def version_number(self) -> int:
        """What IPMsg makes of the version field: atoi()."""
        return atoi(self.version)

    @property
    def feiq(self) -> FeiqPrefix | None:
        """FeiQ's prefix, when the version field is more than a number."""
        if self.version.isdigit() or b"#" not in self.version:
            return None
        return FeiqPrefix(tuple(_text(p) for p in self.version.split(b"#")))

    @property
    def mode(self) -> str:
        return mode_name(self.command)

    @property
    def options(self) -> list[str]:
        return option_names(self.command)

    @property
    def user_text(self) -> str:
        return _text(self.user)

    @property
    def host_text(self) -> str:
        return _text(self.host)

    @property
    def message(self) -> str:
        """The extra's text: up to the first NUL (a SENDMSG's attachments follow it)."""
        return _text((self.extra or b"").split(b"\0", 1)[0])

    def describe(self) -> list[tuple[str, str]]:
        """(field, meaning) rows, in the datagram's order."""
        version = _text(self.version)
        rows = [("version", f"{version}  -> atoi() = {self.version_number}")]
        feiq = self.feiq
        if feiq is not None:
            mac = f"; {feiq.mac} looks like a MAC address" if feiq.mac else ""
            rows.append(("FeiQ prefix", " # ".join(feiq.fields) + mac))
        rows += [
            ("packet number", _text(self.packet_no)),
            ("user", self.user_text),
            ("host", self.host_text),
            ("command", f"{self.command} = 0x{self.command:08x} = {self.mode}"
                        + (" | " + " | ".join(self.options) if self.options else "")),
            ("extra", self.message if self.extra else "(empty)"),
        ]  # fmt: skip
        extra = self.extra or b""
        if b"\0" in extra.rstrip(b"\0"):
            after = extra.split(b"\0", 1)[1].rstrip(b"\0")
            rows.append(("after the NUL", _text(after).replace("\a", " | ")))
        return rows


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def udp_datagram(linktype: int, frame: bytes) -> UdpDatagram | None:
    """The UDP datagram of one captured frame (any link type ``wire.link`` reads),
    None when the frame holds no whole UDP datagram (another protocol, a fragment).
    A damaged header raises WireError with its offset."""
    from tcplab.wire.ip import IPv4Header, IPv6Header
    from tcplab.wire.link import locate_network
    from tcplab.wire.tunnel import UdpHeader

    located = locate_network(linktype, frame)
    if isinstance(located, str):
        return None
    version, offset, _ = located
    if version == 4:
        ip4, payload = IPv4Header.parse(frame, offset)
        if ip4.protocol != 17 or ip4.is_fragment:
            return None
        src, dst = ip4.src, ip4.dst
    elif version == 6:
        ip6, payload = IPv6Header.parse(frame, offset)
        if ip6.protocol != 17 or ip6.is_fragment:
            return None
        src, dst = ip6.src, ip6.dst
    else:
        return None
    udp = UdpHeader.parse(payload)
    # RFC 768: the length field bounds the datagram inside the IP payload.
    end = min(len(payload), udp.length)
    return UdpDatagram(src, udp.sport, dst, udp.dport, payload[UdpHeader.SIZE:end])
