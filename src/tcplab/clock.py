"""Capture timestamps as dates, when they are dates.

A capture's timestamp is whatever its file says: a pcapng interface whose
if_tsresol is 0x80 (2**-0: whole seconds) turns a nanosecond count into a
time some 10**18 years away, past what ``time.gmtime`` can represent
(EOVERFLOW) and past the analysis engine's 64-bit clock.  Views print such a
time as a number (``packets``: the exact seconds; ``analyze``: folded into
64 bits, gaps kept) instead of crashing; the capture readers warn once per
file, with the offset of the first such record (``DATE_MIN_NS``/``DATE_MAX_NS``).
"""

from __future__ import annotations

import time
from typing import Final

# What a signed 64-bit count of nanoseconds holds (1677-09-21 to 2262-04-11):
# the analysis engine's clock, and far more than any real capture needs.
DATE_MIN_NS: Final = -(1 << 63)
DATE_MAX_NS: Final = (1 << 63) - 1


def calendar(seconds: float, pattern: str, utc: bool = True) -> str | None:
    """``strftime(pattern)`` of ``seconds``, or None when it is no date."""
    if not DATE_MIN_NS <= seconds * 1e9 <= DATE_MAX_NS:
        return None
    try:
        return time.strftime(pattern, time.gmtime(seconds) if utc else time.localtime(seconds))
    except (OverflowError, OSError, ValueError):
        return None


def out_of_range_text(time_ns: int) -> str:
    return (
        f"timestamp {time_ns // 1_000_000_000} s is not a date (beyond 1677-2262: "
        "check the interface's if_tsresol/if_tsoffset); times are shown as numbers"
    )


def wrapped_ns(time_ns: int) -> int:
    """``time_ns`` folded into a signed 64-bit count (the engine's clock), keeping the
    gaps between nearby packets: for times the reader already warned about."""
    return ((time_ns + (1 << 63)) % (1 << 64)) - (1 << 63)
