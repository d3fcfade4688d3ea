"""Seq: RFC 1982 serial-number arithmetic on 32-bit TCP sequence numbers
(RFC 9293 §3.4), above all across the 2**32 wrap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcplab.wire.seq import HALF, MOD, Seq, seq_max, seq_min

u32 = st.integers(min_value=0, max_value=MOD - 1)
step = st.integers(min_value=1, max_value=HALF - 1)


def test_addition_wraps_past_2_to_the_32() -> None:
    assert Seq(MOD - 1) + 1 == Seq(0)
    assert Seq(MOD - 10) + 1460 == Seq(1450)
    assert int(Seq(MOD - 10) + 1460) == 1450


def test_order_survives_wrap() -> None:
    before, after = Seq(MOD - 100), Seq(50)
    assert before < after
    assert after > before
    assert not after < before
    assert before <= after and after >= before
    # The raw integers say the opposite: the reason Seq exists.
    assert int(before) > int(after)


def test_difference_is_signed_across_wrap() -> None:
    assert Seq(50) - Seq(MOD - 100) == 150
    assert Seq(MOD - 100) - Seq(50) == -150
    assert Seq(0) - 1 == Seq(MOD - 1)
    assert Seq(7).back(8) == Seq(MOD - 1)


def test_half_space_boundary() -> None:
    # RFC 1982 §3.2: exactly 2**31 apart is undefined; Seq resolves it as "after".
    a = Seq(0)
    assert (a + HALF) - a == HALF
    assert (a + HALF + 1) - a == -(HALF - 1)
    assert a + (HALF - 1) > a
    assert a + (HALF + 1) < a


def test_between_is_the_window_test_across_wrap() -> None:
    low, high = Seq(MOD - 1000), Seq(1000)
    assert Seq(MOD - 1000).between(low, high)
    assert Seq(0).between(low, high)
    assert Seq(999).between(low, high)
    assert not Seq(1000).between(low, high)  # right edge exclusive
    assert not Seq(MOD - 1001).between(low, high)
    assert not Seq(5).between(Seq(5), Seq(5))  # empty window


def test_seq_max_min_across_wrap() -> None:
    assert seq_max(Seq(MOD - 1), Seq(3)) == Seq(3)
    assert seq_min(Seq(MOD - 1), Seq(3)) == Seq(MOD - 1)


def test_adding_two_seqs_is_refused() -> None:
    with pytest.raises(TypeError):
        Seq(1) + Seq(2)  # type: ignore[operator]


def test_immutable_and_hashable() -> None:
    s = Seq(MOD + 5)
    assert s.value == 5
    assert {Seq(5), s} == {Seq(5)}
    with pytest.raises(AttributeError):
        s.value = 6


@given(u32, step)
def test_adding_a_step_moves_forward(start: int, n: int) -> None:
    a = Seq(start)
    assert a + n > a
    assert (a + n) - a == n
    assert (a + n).back(n) == a


@given(u32, u32)
def test_diff_antisymmetric(x: int, y: int) -> None:
    a, b = Seq(x), Seq(y)
    d = a - b
    assert -HALF < d <= HALF
    assert b + d == a
    if d not in (0, HALF):
        assert (a < b) == (d < 0)
        assert (b - a) == -d
