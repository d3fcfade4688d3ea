"""What ``tcplab run`` prints: the explanation in the reader's language unless --quiet,
and, with '-', only the format asked for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [
    pytest.mark.root,
    pytest.mark.xdist_group("lab"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root"),
]


def _run(tmp_path: Path, *args: str, lang: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    env["LANG"] = lang
    proc = subprocess.run([sys.executable, "-m", "tcplab", "run", "handshake-close", "--outdir",
                           str(tmp_path), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)  # fmt: skip
    # What is printed is the point here, not whether a timing fact held on a busy
    # machine (a failed fact exits 1 after printing everything).
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_explanation_in_the_locale_language_and_quiet(tmp_path: Path) -> None:
    zh = _run(tmp_path, lang="zh_CN.UTF-8")
    assert "三次握手" in zh or "握手" in zh
    en = _run(tmp_path, lang="C.UTF-8")
    assert "handshake" in en.lower() and "握手" not in en
    quiet = _run(tmp_path, "--quiet", lang="zh_CN.UTF-8")
    # Quiet skips the explanation; the facts still follow the language (zh here).
    assert "握手" not in quiet and "预期事实" in quiet
    forced = _run(tmp_path, "--lang", "en", lang="zh_CN.UTF-8")
    assert "握手" not in forced


def test_mermaid_to_stdout_is_only_mermaid(tmp_path: Path) -> None:
    out = _run(tmp_path, "--mermaid", "-", lang="C.UTF-8")
    assert out.startswith("---") and "sequenceDiagram" in out
    assert "expected facts" not in out and "wrote " not in out and "│" not in out


def test_a_claim_of_the_notes_is_shown_with_its_verdict(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "tcplab", "run", "exit-without-close", "-q", "--width", "200",
            "--outdir", str(tmp_path)]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120,
                         env=os.environ | {"LANG": "C"})
    assert out.returncode == 0, out.stderr
    assert "The notes say: a program that never calls close() ends its connection with a RST" \
        in out.stdout  # fmt: skip
    assert "Verdict on this kernel: only half true on Linux" in out.stdout


def test_an_undecided_claim_says_so() -> None:
    from tcplab import scenario as scenarios
    from tcplab.commands.run import claim_lines

    sc = scenarios.load("shutdown-wr-keeps-data")
    assert claim_lines(sc, True, "en")[1].startswith("Verdict on this kernel: false on Linux")
    assert "not decided" in claim_lines(sc, False, "en")[1]
    assert claim_lines(sc, True, "zh")[0].startswith("笔记中的说法：")
    assert claim_lines(scenarios.load("handshake-close"), True, "en") == []
