"""32-bit TCP sequence numbers (RFC 9293 §3.4).

Sequence space is modular: ``a < b`` means "a comes before b" when the
distance from a to b, taken mod 2**32, is below 2**31 (RFC 1982 serial
number arithmetic).  A raw ``<`` on ints is wrong after wrap-around, so the
model and the analyzer use ``Seq`` and never compare raw numbers.
"""

from __future__ import annotations

from typing import Final, overload

MOD: Final = 1 << 32
HALF: Final = 1 << 31


class Seq:
    __slots__ = ("value",)

    value: int

    def __init__(self, value: int) -> None:
        object.__setattr__(self, "value", value % MOD)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Seq is immutable")

    def __repr__(self) -> str:
        return f"Seq({self.value})"

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Seq):
            return self.value == other.value
        return NotImplemented

    def __add__(self, n: int) -> Seq:
        if isinstance(n, Seq):
            raise TypeError("adding two sequence numbers has no meaning; add a length")
        return Seq(self.value + n)

    def __radd__(self, n: int) -> Seq:
        return self.__add__(n)

    @overload
    def __sub__(self, other: Seq) -> int: ...
    @overload
    def __sub__(self, other: int) -> Seq: ...
    def __sub__(self, other: Seq | int) -> int | Seq:
        """``seq - seq`` is a signed distance; ``seq - n`` steps back n numbers."""
        if isinstance(other, Seq):
            return self.diff(other)
        return Seq(self.value - other)

    def diff(self, other: Seq) -> int:
        """Signed distance ``self - other`` in (-2**31, 2**31]."""
        d = (self.value - other.value) % MOD
        return d - MOD if d > HALF else d

    def back(self, n: int) -> Seq:
        return Seq(self.value - n)

    def __lt__(self, other: Seq) -> bool:
        return self.diff(other) < 0

    def __le__(self, other: Seq) -> bool:
        return self.diff(other) <= 0

    def __gt__(self, other: Seq) -> bool:
        return self.diff(other) > 0

    def __ge__(self, other: Seq) -> bool:
        return self.diff(other) >= 0

    def between(self, low: Seq, high: Seq) -> bool:
        """``low <= self < high`` in sequence space (the RFC's window test)."""
        return (self.value - low.value) % MOD < (high.value - low.value) % MOD


def seq_max(a: Seq, b: Seq) -> Seq:
    return a if a >= b else b


def seq_min(a: Seq, b: Seq) -> Seq:
    return a if a <= b else b
