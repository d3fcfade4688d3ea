"""The explain entries learners look for (seed notes' loose ends), in both languages."""

from __future__ import annotations

import pytest

from tcplab import explain
from tcplab.wire.checksum import offload_partial_sum

WORDS = {
    "quiet-time": ["quiet time", "平静时间"],
    "tcp-header": ["tcp header", "TCP首部", "data offset"],
    "ack-number": ["acknowledgment number", "确认号", "acknowledgement-number"],
    "checksum": ["CHECKSUM_PARTIAL", "校验和", "checksum"],
    "SO_REUSEPORT": ["so_reuseport", "reuseport"],
    "conn_state": ["OTH", "SF", "ShADadFf", "history", "conn_state"],
    "ipmsg": ["ipmsg", "飞秋", "FeiQ", "2425"],
}


@pytest.mark.parametrize("topic", sorted(WORDS))
def test_found_by_the_words_a_learner_uses(topic: str) -> None:
    for word in WORDS[topic]:
        assert explain.lookup(word).id == topic, word
    for lang in ("en", "zh"):
        found = explain.lookup(topic, lang)
        assert found.lang == lang and len(found.text) > 300


def test_the_texts_say_what_linux_does() -> None:
    en = {t: explain.lookup(t, "en").text for t in ("MSS", "ISN", "quiet-time", "conn_state")}
    assert "536" in en["MSS"] and "non-local" in en["MSS"] and "route's MTU" in en["MSS"]
    assert "4 microseconds" in en["ISN"] and "64-ns" in en["ISN"] and "RFC 6528" in en["ISN"]
    assert "RFC 9293 §3.4.3" in en["quiet-time"] and "Linux has no quiet time" in en["quiet-time"]
    assert "SF" in en["conn_state"] and "OTH" in en["conn_state"]
    zh = explain.lookup("MSS", "zh").text
    assert "536" in zh and "非本地" in zh


def test_the_loopback_checksum_quoted_is_the_pseudo_header_sum() -> None:
    # explain checksum quotes tcpdump's "cksum 0xfe30" for a 40-byte SYN from
    # 127.0.0.1 to 127.0.0.1: the pseudo-header sum CHECKSUM_PARTIAL leaves there.
    assert offload_partial_sum("127.0.0.1", "127.0.0.1", 40) == 0xFE30
    assert "0xfe30" in explain.lookup("checksum").text
