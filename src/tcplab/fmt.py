"""Small text formatters every view shares, so a value reads the same everywhere.

* ``window_text``: a TCP window field, raw and scaled side by side
  (``502×128=64256``), the same in ladders, reports and ``analyze`` tables.
* ``window_shifts``: which shift applies to each segment's window field,
  from the connection's SYNs (RFC 7323 §2.2-2.3).
* ``value_text`` / ``list_text`` / ``path_text``: what a fact or an API call
  result says, as text a learner reads, never a Python repr
  (``"hello server" (12 bytes)``, not ``b'hello server'``).

Nothing here imports the rest of tcplab except ``states`` (for the names).
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Protocol

__all__ = [
    "SCALE_UNKNOWN",
    "list_text",
    "locale_lang",
    "path_text",
    "value_text",
    "window_shifts",
    "window_text",
]

# A shift is an int (0: no scaling; 1..14: RFC 7323 §2.3) or SCALE_UNKNOWN when the
# connection's SYNs were not seen (a capture that starts mid-stream).
SCALE_UNKNOWN: None = None


def window_text(raw: int, shift: int | None, *, syn: bool = False) -> str:
    """A window field as ``raw×factor=scaled``.

    A SYN's window is never scaled (RFC 7323 §2.2), nor is any window of a
    connection that did not negotiate scaling: those print as the raw number.
    With an unknown shift the factor is ``?`` (Wireshark's "window size
    scaling factor: -1 (unknown)").
    """
    if syn or shift == 0 or raw == 0:
        return str(raw)
    if shift is None:
        return f"{raw}×?"
    return f"{raw}×{1 << shift}={raw << shift}"


class _Segment(Protocol):
    @property
    def src(self) -> str: ...
    @property
    def sport(self) -> int: ...
    @property
    def dst(self) -> str: ...
    @property
    def dport(self) -> int: ...
    @property
    def flags(self) -> str: ...
    @property
    def options(self) -> str: ...


_WSCALE = re.compile(r"\bwscale (\d+)")


def window_shifts(packets: Iterable[_Segment]) -> list[int | None]:
    """The shift that applies to each packet's window field, in order.

    RFC 7323 §2.2: a SYN's window is never scaled (0 here); scaling is on
    in both directions only when both SYNs carried the option, each side
    shifting by the value *it* sent.  Before both SYNs are seen: unknown.
    ``options`` is tcpdump's option text (``mss 1460,...,wscale 7``).
    """
    sent: dict[tuple[str, int, str, int], int | None] = {}  # what each side's SYN said
    out: list[int | None] = []
    for p in packets:
        key = (p.src, p.sport, p.dst, p.dport)
        back = (p.dst, p.dport, p.src, p.sport)
        if "S" in p.flags:
            match = _WSCALE.search(p.options)
            sent[key] = min(int(match[1]), 14) if match else None  # §2.3: at most 14
            out.append(0)
            continue
        if key not in sent or back not in sent:
            out.append(SCALE_UNKNOWN)
            continue
        mine, theirs = sent[key], sent[back]
        out.append(mine if mine is not None and theirs is not None else 0)
    return out


_BYTES_REPR = re.compile(r"""^b(['"]).*\1$""", re.S)


def value_text(value: object) -> str:
    """One value as a learner reads it.

    Bytes (or the repr of bytes, which is how an actor reports what recv()
    returned) become quoted text with their length; ``b''`` is the end of the
    stream; enums (states) are their names; lists are comma-separated.
    """
    if isinstance(value, str) and _BYTES_REPR.match(value):
        try:
            literal = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        if isinstance(literal, bytes):
            value = literal
    if isinstance(value, (bytes, bytearray)):
        if not value:
            return '"" (0 bytes: end of stream)'
        text = bytes(value).decode("utf-8", "backslashreplace")
        unit = "byte" if len(value) == 1 else "bytes"
        return f'"{text}" ({len(value)} {unit})'
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {value_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return list_text(value)
    if value is None:
        return "nothing"
    return str(value)


def list_text(values: Iterable[object]) -> str:
    """``S, S., .`` — values comma-separated; ``(none)`` for an empty list."""
    items = [value_text(v) for v in values]
    return ", ".join(items) if items else "(none)"


def path_text(states: Sequence[object]) -> str:
    """A sequence of states as a path: ``CLOSED → SYN-SENT → ESTABLISHED``."""
    return " → ".join(value_text(s) for s in states) if states else "(none)"


def locale_lang() -> str:
    """``zh`` when the user's locale is Chinese (LC_ALL, LC_MESSAGES, LANG, read in
    gettext's order, e.g. ``zh_CN.UTF-8``), else ``en``."""
    for key in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(key, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"
