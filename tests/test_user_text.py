"""What users read says things in words: no internal file names, no rule ids, one
spelling of state names (issue 14: "as KERNEL-NOTES observed", "seed notes 000",
``when = "final-ack"``, SYN_SENT beside SYN-SENT)."""

from __future__ import annotations

import re

import pytest

from tcplab import explain, scenario

INTERNAL = re.compile(r"KERNEL-NOTES|PEER-SEMANTICS|SCENARIOS\.md|DESIGN\.md|"
                      r"[Ss]eeds? (notes? )?\d{3}|笔记 ?\d{3}|when = \"")  # fmt: skip
# Linux's spellings of states, outside code identifiers (TCP_TIMEWAIT_LEN) and
# quotations of what the kernel itself prints ("reports ... FIN_WAIT2 -> CLOSE").
LINUX_STATE = re.compile(r"(?<![\w-])(SYN_SENT|SYN_RECV|SYN_RCVD|FIN_WAIT_?[12]|TIME_WAIT|"
                         r"CLOSE_WAIT|LAST_ACK)(?![\w-])")  # fmt: skip


@pytest.mark.parametrize("sid", scenario.builtin_ids())
def test_scenario_texts_name_no_internal_files(sid: str) -> None:
    sc = scenario.load(sid)
    catalog = sc.extra.get("catalog", {})
    texts = [sc.title, *sc.explain.values(), *(v for v in catalog.values() if isinstance(v, str))]
    for text in texts:
        assert not INTERNAL.search(text), (sid, INTERNAL.search(text))
    assert not LINUX_STATE.search(sc.title), (sid, sc.title)


def test_explain_texts_name_no_internal_files() -> None:
    for lang in ("en", "zh"):
        for kind in explain.KINDS:
            for topic in explain.topics(kind):
                found = explain.lookup(topic, lang)
                assert not INTERNAL.search(found.text), (lang, topic)
