"""The model's own segment record, and its conversion to a timeline ``Packet``.

The model does not use the wire codec: a ``Segment`` holds exactly what
RFC 9293 §3.10.7 reasons about (SEG.SEQ, SEG.ACK, SEG.LEN, SEG.WND, the
control bits, the options a SYN negotiates) plus the endpoint addresses.
``control`` normalises the flag bits into one ``Control`` before the state
machine looks at them; SYN+FIN and the like are ``Control.INVALID`` and
dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcplab.timeline import Packet
from tcplab.wire.flags import Control, Flags
from tcplab.wire.seq import Seq


@dataclass(frozen=True, slots=True)
class Options:
    """The TCP options the model negotiates (RFC 9293 §3.7.1, RFC 7323, RFC 2018)."""

    mss: int | None = None
    wscale: int | None = None
    sack_ok: bool = False
    ts: tuple[int, int] | None = None
    # RFC 7413 §4.1.1 Fast Open: None no option, b"" a cookie request, else the cookie;
    # ``fastopen_exp``: the pre-IANA encoding (kind 254, magic 0xF989).
    fastopen: bytes | None = None
    fastopen_exp: bool = False

    def tcpdump(self) -> str:
        """tcpdump's text: ``mss 1460,sackOK,nop,wscale 7``."""
        parts: list[str] = []
        if self.mss is not None:
            parts.append(f"mss {self.mss}")
        if self.sack_ok:
            parts.append("sackOK")
        if self.ts is not None:
            if not parts:
                parts.extend(["nop", "nop"])  # Linux aligns a lone timestamp option
            parts.append(f"TS val {self.ts[0]} ecr {self.ts[1]}")
        if self.wscale is not None:
            parts.extend(["nop", f"wscale {self.wscale}"])
        if self.fastopen is not None:
            # print-tcp.c: "tfo" plus a space, then " cookiereq" or " cookie HEX";
            # Linux pads an option of length 4n+2 with two NOPs (tcp_options_write).
            text = " cookiereq" if not self.fastopen else " cookie " + self.fastopen.hex()
            parts.append(("exp-tfo" if self.fastopen_exp else "tfo ") + text)
            if ((4 if self.fastopen_exp else 2) + len(self.fastopen)) % 4 == 2:
                parts.extend(["nop", "nop"])
        return ",".join(parts)


@dataclass(frozen=True, slots=True)
class Segment:
    src: str
    sport: int
    dst: str
    dport: int
    seq: Seq
    ack: Seq | None  # None: the ACK bit is off
    flags: Flags
    window: int = 0  # the raw 16-bit field (scaled by the receiver unless SYN)
    options: Options = field(default_factory=Options)
    payload: bytes = b""

    @property
    def control(self) -> Control:
        return Control.of(self.flags)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & Flags.ACK)

    @property
    def seg_len(self) -> int:
        """RFC 9293 §3.4 SEG.LEN: payload plus one for SYN and one for FIN."""
        return len(self.payload) + bool(self.flags & Flags.SYN) + bool(self.flags & Flags.FIN)

    @property
    def end(self) -> Seq:
        return self.seq + self.seg_len

    def describe(self) -> str:
        ack = f" ack {self.ack.value}" if self.ack is not None else ""
        return (
            f"{self.src}:{self.sport} > {self.dst}:{self.dport} [{self.flags.tcpdump()}]"
            f" seq {self.seq.value}{ack} win {self.window} len {len(self.payload)}"
        )


def make_flags(control: Control, ack: bool, psh: bool = False) -> Flags:
    flags = Flags(0)
    if control is Control.SYN:
        flags |= Flags.SYN
    elif control is Control.FIN:
        flags |= Flags.FIN
    elif control is Control.RST:
        flags |= Flags.RST
    if ack:
        flags |= Flags.ACK
    if psh:
        flags |= Flags.PSH
    return flags


def to_packet(
    seg: Segment,
    *,
    time: float,
    sender: str,
    receiver: str,
    base_seq: Seq | None = None,
    base_ack: Seq | None = None,
    dropped: bool = False,
    annotations: tuple[str, ...] = (),
) -> Packet:
    """A timeline ``Packet`` for ``seg``.

    ``base_seq`` is the sender's ISN and ``base_ack`` the receiver's, as
    Wireshark takes them (PEER-SEMANTICS.md §3.1): relative seq/ack are the
    raw numbers minus those; None leaves the relative field empty.
    """
    ack = seg.ack.value if seg.ack is not None else 0
    return Packet(
        time=time,
        sender=sender,
        receiver=receiver,
        src=seg.src,
        sport=seg.sport,
        dst=seg.dst,
        dport=seg.dport,
        flags=seg.flags.tcpdump(),
        seq=seg.seq.value,
        ack=ack,
        length=len(seg.payload),
        window=seg.window,
        options=seg.options.tcpdump(),
        rel_seq=(seg.seq - base_seq) % (1 << 32) if base_seq is not None else None,
        rel_ack=(
            (seg.ack - base_ack) % (1 << 32)
            if base_ack is not None and seg.ack is not None
            else None
        ),
        dropped=dropped,
        annotations=annotations,
    )
