"""What a state, flag, option, concept or scenario means, in English and Chinese.

The texts are data: ``en.toml`` holds every topic with its kind, aliases,
references and related topics; ``zh.toml`` gives the Chinese title and text
for the same ids (and Chinese aliases, so ``tcplab explain 半关闭`` works).
Scenario explanations come from the scenario files themselves
(``[explain] en/zh``), so there is one place to edit each text.

Lookup is forgiving about spelling: states go through ``State.parse`` (any
of TIME_WAIT, time-wait, TCP_TIME_WAIT, FIN_WAIT2), everything else is
compared case-insensitively with ``_``, spaces and ``-`` treated alike.
An unknown word raises ``InputError`` naming the close matches.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

from tcplab.errors import InputError
from tcplab.states import State

LANGS = ("en", "zh")
KINDS = ("state", "flag", "option", "concept", "scenario")


@dataclass(frozen=True, slots=True)
class Explanation:
    id: str
    kind: str
    lang: str  # the language of title/text (en when a scenario has no zh text)
    title: str
    text: str
    refs: tuple[str, ...] = ()
    see: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "lang": self.lang,
            "title": self.title,
            "text": self.text,
            "refs": list(self.refs),
            "see": list(self.see),
        }

    def render(self, width: int | None = None) -> str:
        """Plain text for a terminal: title, text, references, related topics.

        ``width``: re-wrap everything to that many columns, by words and by
        display width (a CJK character is two), never inside a name.
        """
        text = self.text
        lines = [self.title, "", text]
        if self.refs:
            label = "参考：" if self.lang == "zh" else "References: "
            lines += ["", label + ", ".join(self.refs)]
        if self.see:
            label = "另见：" if self.lang == "zh" else "See also: "
            lines.append(label + ", ".join(self.see))
        if width:
            from tcplab.render.wrap import fill_paragraphs, wrap

            lines = ["\n".join(wrap(line, width)) if i != 2 else fill_paragraphs(line, width)
                     for i, line in enumerate(lines)]  # fmt: skip
        return "\n".join(lines) + "\n"


def _norm(word: str) -> str:
    return "-".join(word.strip().lower().replace("_", " ").replace("-", " ").split())


@cache
def _table(lang: str) -> dict[str, dict[str, Any]]:
    path = resources.files("tcplab.explain") / f"{lang}.toml"
    data: dict[str, dict[str, Any]] = tomllib.loads(path.read_text(encoding="utf-8"))
    return data


@cache
def _index() -> dict[str, str]:
    """Normalised word -> topic id, from ids and every language's aliases."""
    index: dict[str, str] = {}
    for lang in LANGS:
        for topic, entry in _table(lang).items():
            index.setdefault(_norm(topic), topic)
            for alias in entry.get("aliases", ()):
                index.setdefault(_norm(alias), topic)
    return index


def topics(kind: str | None = None) -> list[str]:
    """Every topic id (not scenarios), in file order, optionally of one kind."""
    return [t for t, e in _table("en").items() if kind in (None, e["kind"])]


def _scenario_ids() -> list[str]:
    from tcplab.scenario import builtin_ids

    return builtin_ids()


def _topic(topic: str, lang: str) -> Explanation:
    base = _table("en")[topic]
    local = _table(lang).get(topic, {}) if lang != "en" else base
    if "text" not in local:
        local, lang = base, "en"
    return Explanation(
        id=topic,
        kind=str(base["kind"]),
        lang=lang,
        title=str(local["title"]),
        text=str(local["text"]).strip(),
        refs=tuple(base.get("refs", ())),
        see=tuple(base.get("see", ())),
    )


def explain_state(state: State, lang: str = "en") -> Explanation:
    return _topic(state.value, lang)


def explain_scenario(scenario_id: str, lang: str = "en") -> Explanation:
    from tcplab.scenario import load

    scenario = load(scenario_id)
    text = scenario.explain.get(lang)
    used = lang
    if not text:
        text, used = scenario.explain.get("en", ""), "en"
    if not text:
        text = f"{scenario.title} (the scenario file {scenario.source} has no [explain] text)"
    return Explanation(
        id=scenario.id,
        kind="scenario",
        lang=used,
        title=scenario.title,
        text=text.strip(),
        refs=tuple(f"seed notes {seed}" for seed in scenario.seeds),
    )


def lookup(word: str, lang: str = "en") -> Explanation:
    """The explanation of ``word`` in ``lang``; ``InputError`` with close matches if unknown."""
    if lang not in LANGS:
        raise InputError(f"language {lang!r} not available (choose from {', '.join(LANGS)})")
    try:
        return explain_state(State.parse(word), lang)
    except ValueError:
        pass
    topic = _index().get(_norm(word))
    scenarios = _scenario_ids()
    if topic is not None:
        found = _topic(topic, lang)
        if _norm(word) in scenarios:
            # The concept and a built-in scenario share a name: point to both.
            found = replace(found, see=(*found.see, f"scenario {_norm(word)}"))
        return found
    if word in scenarios or _norm(word) in scenarios:
        return explain_scenario(word if word in scenarios else _norm(word), lang)
    raise InputError(f"no explanation for {word!r}; {suggestion(word)}")


def close_matches(word: str, limit: int = 5) -> list[str]:
    """Topic and scenario ids that look like ``word``, best first."""
    index = _index()
    candidates = {**index, **{_norm(s): s for s in _scenario_ids()}}
    key = _norm(word)
    found: list[str] = []
    for match in difflib.get_close_matches(key, list(candidates), n=limit * 2, cutoff=0.6):
        if candidates[match] not in found:
            found.append(candidates[match])
    # A fragment of a longer name ("wait", "reuse") is a match too.
    if len(key) >= 3:
        for name, topic in candidates.items():
            if key in name and topic not in found:
                found.append(topic)
    return found[:limit]


def suggestion(word: str) -> str:
    matches = close_matches(word)
    if matches:
        return "close matches: " + ", ".join(matches)
    return "see `tcplab explain --list` for every topic"


__all__ = [
    "KINDS",
    "LANGS",
    "Explanation",
    "close_matches",
    "explain_scenario",
    "explain_state",
    "lookup",
    "suggestion",
    "topics",
]
