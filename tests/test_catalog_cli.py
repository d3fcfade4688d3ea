"""``tcplab run --all``: the catalog table, its JSON, and the exit status (root)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcplab import scenario as scenarios
from tcplab.cli import cli

pytestmark = [
    pytest.mark.root,
    pytest.mark.xdist_group("catalog-0"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root"),
]

# Two quick scenarios stand in for the whole catalog (the catalog itself runs in
# tests/test_catalog_live.py; bench/catalog_bench.py times it).
QUICK = ["connect-closed-port", "linger-abort"]


def test_run_all_prints_the_table_and_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scenarios, "builtin_ids", lambda: list(QUICK))
    result = CliRunner().invoke(cli, ["run", "--all", "--outdir", str(tmp_path),
                                      "--json", str(tmp_path / "all.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "tcplab run --all" in result.output
    for sid in QUICK:
        assert sid in result.output
    data = json.loads((tmp_path / "all.json").read_text())
    rows = {r["scenario"]: r for r in data["scenarios"]}
    assert sorted(rows) == QUICK
    for row in rows.values():
        assert row["ok"] is True and row["held"] == row["facts"] > 0
        assert 0 < row["seconds"] < 30 and row["failed"] == []
    assert data["seconds"] >= sum(r["seconds"] for r in rows.values())


def test_run_all_fails_when_a_fact_does_not_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = scenarios.load

    def load(name: str) -> scenarios.Scenario:
        sc = real_load(name)
        # A false statement about Linux: a refused connect() has no SYN-ACK.
        wrong = dataclasses.replace(sc.expect, flags=("S", "S.", "R."))
        return dataclasses.replace(sc, expect=wrong)

    monkeypatch.setattr(scenarios, "builtin_ids", lambda: ["connect-closed-port"])
    monkeypatch.setattr(scenarios, "load", load)
    result = CliRunner().invoke(cli, ["run", "--all", "--outdir", str(tmp_path), "--json", "-"])
    assert result.exit_code != 0
    data = json.loads(result.stdout[result.stdout.index("{"):])
    (row,) = data["scenarios"]
    assert row["ok"] is False and row["held"] == row["facts"] - 1
    assert row["failed"] and row["failed"][0].startswith("flags")
