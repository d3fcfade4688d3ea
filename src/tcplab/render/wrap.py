"""Wrapping text for a terminal: by words, by display width, never inside a name.

A terminal gives a CJK character two columns (Unicode East Asian Width W
or F); ``len()`` counts one, so ``textwrap`` overfills Chinese lines and, not
knowing where a Chinese line may break, splits wherever a Latin token ends
up at the margin: ``FIN-WAIT-⏎2``, ``socket.end⏎()``.  Here a line is cut
into *tokens*: a run of Latin letters, digits and the punctuation that
belongs to names (``FIN-WAIT-2``, ``socket.end()``, ``SO_LINGER``,
``10.0.0.1:8080``) is one token and is never split unless it alone is wider
than the line; every CJK character is a token of its own, so Chinese breaks
between characters; spaces are breaks.  Closing punctuation (，。）、) never
starts a line and opening punctuation (（「) never ends one, the usual
line-breaking rules for Chinese (kinsoku).

Hard-wrapped source text (the scenario explanations are wrapped at about
95 columns) is first re-joined into paragraphs: a space between two Latin
lines, nothing between two CJK ones, then wrapped to the width asked for.
"""

from __future__ import annotations

import re
import unicodedata

_NO_START = set("，。、；：？！）」』】》〉,.;:?!)]}%…—")
_NO_END = set("（「『【《〈([{")


def char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    return sum(char_width(ch) for ch in text)


def is_cjk(ch: str) -> bool:
    return char_width(ch) == 2


def _tokens(text: str) -> list[str]:
    """Words, spaces and single wide characters, in order."""
    out: list[str] = []
    word = ""
    for ch in text:
        if ch.isspace():
            if word:
                out.append(word)
                word = ""
            if out and out[-1].isspace():
                continue
            out.append(" ")
        elif is_cjk(ch):
            if word:
                out.append(word)
                word = ""
            out.append(ch)
        else:
            word += ch
    if word:
        out.append(word)
    return out


def _split_long(token: str, width: int) -> list[str]:
    parts: list[str] = []
    piece = ""
    for ch in token:
        if piece and display_width(piece + ch) > width:
            parts.append(piece)
            piece = ""
        piece += ch
    if piece:
        parts.append(piece)
    return parts


def wrap(text: str, width: int) -> list[str]:
    """``text`` (one paragraph) as lines of at most ``width`` display columns."""
    width = max(width, 1)
    lines: list[str] = []
    line: list[str] = []
    used = 0
    tokens = _tokens(text.strip())
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == " ":
            if line:
                line.append(" ")
                used += 1
            i += 1
            continue
        # Keep closing punctuation with what precedes it, opening with what follows.
        group = [token]
        j = i + 1
        while group[-1] in _NO_END and j < len(tokens) and tokens[j] != " ":
            group.append(tokens[j])
            j += 1
        while j < len(tokens) and tokens[j] in _NO_START:
            group.append(tokens[j])
            j += 1
        size = display_width("".join(group))
        if used + size > width and any(t != " " for t in line):
            while line and line[-1] == " ":
                line.pop()
            lines.append("".join(line))
            line, used = [], 0
        if size > width:
            pieces = _split_long("".join(group), width)
            lines.extend(pieces[:-1])
            line, used = [pieces[-1]], display_width(pieces[-1])
        else:
            line.extend(group)
            used += size
        i = j
    while line and line[-1] == " ":
        line.pop()
    if line:
        lines.append("".join(line))
    return lines or [""]


def join_lines(lines: list[str]) -> str:
    """Re-join hard-wrapped lines: a space between Latin text, none between CJK."""
    out = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if out and not (is_cjk(out[-1]) and is_cjk(line[0])):
            out += " "
        out += line
    return out


_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def fill_paragraphs(text: str, width: int) -> str:
    """Hard-wrapped explanation text re-wrapped to ``width`` columns.

    Paragraphs (blank-line separated) and list items (``-``, ``*``, ``1.``)
    are kept; a list item's continuation lines are indented under its text.
    """
    blocks: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        if block.startswith("    ") or block.lstrip().startswith("$ "):
            blocks.append(block)  # a command or a table: kept as written
            continue
        block = block.strip()
        items: list[tuple[str, list[str]]] = []
        for raw in block.splitlines():
            match = _ITEM.match(raw)
            if match:
                items.append((match.group(0).strip() + " ", [raw[match.end():]]))
            elif items:
                items[-1][1].append(raw)
            else:
                items.append(("", [raw]))
        out: list[str] = []
        for bullet, lines in items:
            indent = " " * display_width(bullet)
            wrapped = wrap(join_lines(lines), width - len(indent))
            out.append(bullet + wrapped[0])
            out.extend(indent + line for line in wrapped[1:])
        blocks.append("\n".join(out))
    return "\n\n".join(blocks)


def pad(text: str, width: int, align: str = "<") -> str:
    """``text`` padded with spaces to ``width`` display columns."""
    gap = max(width - display_width(text), 0)
    if align == ">":
        return " " * gap + text
    if align == "^":
        return " " * (gap // 2) + text + " " * (gap - gap // 2)
    return text + " " * gap


__all__ = ["display_width", "fill_paragraphs", "is_cjk", "join_lines", "pad", "wrap"]
