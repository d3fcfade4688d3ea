"""The model is sans-IO and its docs are generated from it."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import tcplab.model
from tcplab.model.docs import render_model_doc
from tcplab.model.profile import LINUX, PARAMETERS, RFC, Profile, difference_table
from tcplab.model.sim import Simulation
from tcplab.scenario import load

FORBIDDEN = {"socket", "time", "threading", "asyncio", "random", "subprocess", "select"}
REPO = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_model_imports_no_io_modules() -> None:
    folder = Path(tcplab.model.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 10
    for path in files:
        bad = _imports(path) & FORBIDDEN
        assert not bad, f"{path.name} imports {bad}"


def test_model_imports_only_pure_tcplab_modules() -> None:
    # The lab's fault program is shared on purpose; it must stay pure too.
    faults = Path(tcplab.model.__file__).parent.parent / "lab" / "faults.py"
    assert not _imports(faults) & FORBIDDEN


def test_committed_docs_equal_the_generated_text() -> None:
    committed = (REPO / "docs" / "model.md").read_text(encoding="utf-8")
    hint = "regenerate: python -m tcplab.model.docs > docs/model.md"
    assert committed == render_model_doc(), hint


def test_every_profile_parameter_is_documented() -> None:
    switches = {"name", "time_wait", "two_way_handshake"}
    assert {f.name for f in fields(Profile)} - switches == set(PARAMETERS)


def test_difference_table_lists_differences_first() -> None:
    lines = difference_table().splitlines()[2:]
    differing = [n for n in PARAMETERS if getattr(RFC, n) != getattr(LINUX, n)]
    assert [line.split("`")[1] for line in lines[: len(differing)]] == differing
    assert "| `time_wait_seconds` |" in lines[0] and "240.0" in lines[0] and "60.0" in lines[0]


def test_same_seed_same_run_other_seed_other_isns() -> None:
    scenario = load("why-time-wait")
    one = Simulation(scenario, seed=7).run().to_json()
    two = Simulation(scenario, seed=7).run().to_json()
    other = Simulation(scenario, seed=8).run().to_json()
    assert one == two
    assert one != other
