"""tcplab explain: lookup by any spelling, both languages, the TIME-WAIT facts, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tcplab import explain
from tcplab.errors import InputError
from tcplab.states import State


def test_every_topic_has_a_chinese_text_and_no_orphans() -> None:
    en = explain._table("en")
    zh = explain._table("zh")
    assert set(zh) == set(en)
    for topic in en:
        assert en[topic]["kind"] in explain.KINDS
        for lang in ("en", "zh"):
            found = explain.lookup(topic, lang)
            assert found.lang == lang and found.title and len(found.text) > 80, (topic, lang)
        for related in en[topic].get("see", []):
            assert explain.lookup(related).id, related


def test_every_state_explained() -> None:
    for state in State:
        assert explain.explain_state(state, "zh").id == state.value
        assert explain.lookup(state.linux_name).id == state.value


@pytest.mark.parametrize(
    ("word", "topic"),
    [
        ("TIME_WAIT", "TIME-WAIT"),
        ("time-wait", "TIME-WAIT"),
        ("TCP_TIME_WAIT", "TIME-WAIT"),
        ("fin_wait2", "FIN-WAIT-2"),
        ("SYN_RECV", "SYN-RECEIVED"),
        ("syn", "SYN"),
        ("rst", "RST"),
        ("wscale", "window-scale"),
        ("window scale", "window-scale"),
        ("sackOK", "SACK"),
        ("TS", "timestamps"),
        ("fast open", "TFO"),
        ("so_reuseaddr", "SO_REUSEADDR"),
        ("SO_LINGER", "SO_LINGER"),
        ("tcp_tw_reuse", "tcp_tw_reuse"),
        ("relative sequence numbers", "relative-seq"),
        ("delayed ACK", "delayed-ack"),
        ("2MSL", "2MSL"),
        ("half-open", "half-open"),
        ("半关闭", "half-close"),
        ("四次挥手", "active-close"),
        ("三次握手", "three-way-handshake"),
    ],
)
def test_spellings(word: str, topic: str) -> None:
    assert explain.lookup(word).id == topic


def test_every_flag_option_and_concept_the_issue_names() -> None:
    for word in ["SYN", "ACK", "FIN", "RST", "PSH", "URG", "ECE", "CWR", "MSS", "window scale",
                 "SACK", "timestamps", "TFO", "MSL", "2MSL", "half-close", "half-open", "ISN",
                 "relative sequence numbers", "delayed ACK", "backlog", "SO_REUSEADDR",
                 "SO_LINGER", "tcp_tw_reuse", "keepalive"]:
        assert explain.lookup(word, "zh").text


def test_time_wait_says_why_and_how_long() -> None:
    en = " ".join(explain.lookup("TIME_WAIT").text.split())
    # Both reasons: the lost last ACK and old duplicates.
    assert "will then retransmit its FIN" in en and "Old duplicates must die out" in en
    for fact in ["RFC 9293 §3.6.1", "60 seconds", "TCP_TIMEWAIT_LEN", "not a sysctl",
                 "tcp_fin_timeout", "FIN-WAIT-2", "TcpTimedWaitDelay", "default 120 s",
                 "240 s", "30 to 300 s", "net.inet.tcp.msl", "15000 ms, so 30 s",
                 "30000 ms, so 60 s"]:
        assert fact in en, fact
    zh = " ".join(explain.lookup("TIME_WAIT", "zh").text.split())
    for fact in ["主动关闭", "最长报文寿命", "TCP_TIMEWAIT_LEN", "60 秒", "TcpTimedWaitDelay",
                 "120 s", "net.inet.tcp.msl", "15000 ms", "FIN-WAIT-2"]:
        assert fact in zh, fact


def test_unknown_word_lists_close_matches() -> None:
    with pytest.raises(InputError) as err:
        explain.lookup("TIME_WAITT")
    assert "close matches: TIME-WAIT" in str(err.value)
    assert err.value.exit_code == 2


def test_scenario_ids_use_the_scenario_text() -> None:
    from tcplab.scenario import builtin_ids, load

    ids = [i for i in builtin_ids() if load(i).explain.get("zh")]
    if not ids:
        pytest.skip("no built-in scenario with a Chinese explanation yet")
    scenario = load(ids[0])
    if explain._index().get(explain._norm(scenario.id)):
        pytest.skip("first scenario shares its name with a concept")
    found = explain.lookup(scenario.id, "zh")
    assert found.kind == "scenario" and found.text == scenario.explain["zh"].strip()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", "explain", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_text_json_and_errors() -> None:
    done = _cli("CLOSE_WAIT", "--lang", "zh")
    assert done.returncode == 0 and done.stdout.startswith("CLOSE-WAIT：")
    done = _cli("mss", "--json")
    data = json.loads(done.stdout)
    assert data["id"] == "MSS" and data["kind"] == "option" and "1460" in data["text"]
    done = _cli("no-such-thing")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("tcplab: no explanation")
    done = _cli("--list")
    assert done.returncode == 0 and "TIME-WAIT" in done.stdout and "keepalive" in done.stdout
