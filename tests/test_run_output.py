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
    assert proc.returncode == 0, proc.stderr
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
