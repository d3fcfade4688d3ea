"""Capture timestamps as dates, when they are dates.

A capture's timestamp is whatever its file says: a pcapng interface whose
if_tsresol is 0x80 (2**-0: whole seconds) turns a nanosecond count into a
time some 10**18 years away, past what ``time.gmtime`` can represent
(EOVERFLOW).  Views print such a time as a number instead of crashing; the
capture readers warn once per file, with the offset of the first such
record (``DATE_MIN_NS``/``DATE_MAX_NS``).
"""

from __future__ import annotations

import time
from typing import Final

# Years 1 to 9999: what strftime can show (a pcapng nanosecond stamp, 64 bits
# unsigned, ends in 2554: only an odd resolution goes beyond).
DATE_MIN_NS: Final = -62_135_596_800 * 1_000_000_000
DATE_MAX_NS: Final = 253_402_300_799 * 1_000_000_000


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
        f"timestamp {time_ns // 1_000_000_000} s is not a date (beyond years 1-9999: "
        "check the interface's if_tsresol/if_tsoffset); times are shown as numbers"
    )

