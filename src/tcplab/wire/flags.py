"""TCP header flag bits and their normalised control value.

The state machine never looks at raw flag bits: it dispatches on one
``Control`` (SYN, FIN, RST or NONE) plus whether ACK is set, the way
smoltcp's ``enum Control`` does.  Combinations RFC 9293 gives no meaning to
(SYN+FIN, SYN+RST, FIN+RST) normalise to ``Control.INVALID``: the model
drops them (§3.10.7), the analyzer reports them (Zeek's ``Q`` / ``I``).
"""

from __future__ import annotations

from enum import Enum, IntFlag


class Flags(IntFlag):
    FIN = 0x001
    SYN = 0x002
    RST = 0x004
    PSH = 0x008
    ACK = 0x010
    URG = 0x020
    ECE = 0x040
    CWR = 0x080
    AE = 0x100  # RFC 3540 nonce sum, now AccECN's AE (RFC 9768)

    def tcpdump(self) -> str:
        """tcpdump's flag text: ``S``, ``S.``, ``P.``, ``F.``, ``R.``, ``.`` ..."""
        letters = "".join(ch for bit, ch in TCPDUMP_LETTERS if self & bit)
        if self & Flags.ACK:
            letters += "."
        return letters or "none"

    @classmethod
    def from_tcpdump(cls, text: str) -> Flags:
        """``tcpdump()`` read back (``"S."`` -> SYN|ACK); other characters count nothing."""
        bits = cls(0)
        for ch in text:
            bits |= _TCPDUMP_BITS.get(ch, cls(0))
        return bits


# tcpdump's letters in the order it prints them; ACK is the trailing ".".
TCPDUMP_LETTERS = (
    (Flags.SYN, "S"),
    (Flags.FIN, "F"),
    (Flags.PSH, "P"),
    (Flags.RST, "R"),
    (Flags.URG, "U"),
    (Flags.ECE, "E"),
    (Flags.CWR, "W"),
    (Flags.AE, "e"),
)
_TCPDUMP_BITS = {ch: bit for bit, ch in TCPDUMP_LETTERS} | {".": Flags.ACK}


class Control(Enum):
    NONE = "none"
    SYN = "SYN"
    FIN = "FIN"
    RST = "RST"
    INVALID = "invalid"

    @classmethod
    def of(cls, flags: Flags | int) -> Control:
        # An int mask: ``Flags.SYN | ...`` per call would build enum members.
        return _CONTROL_BY_BITS.get(int(flags) & _CONTROL_MASK, Control.INVALID)


_CONTROL_MASK = int(Flags.SYN | Flags.FIN | Flags.RST)
_CONTROL_BY_BITS = {
    0: Control.NONE,
    int(Flags.SYN): Control.SYN,
    int(Flags.FIN): Control.FIN,
    int(Flags.RST): Control.RST,
}
