"""docs/catalog.md is generated from the scenario files and must stay in sync with them.

    .venv/bin/python tests/test_catalog_docs.py      # rewrite docs/catalog.md

One section per built-in scenario: what it shows (the scenario's English
explanation), where Linux differs from the seed notes
(``[extra.catalog] linux_vs_seeds``), the facts it checks (its ``[expect]``
table as written), the limits of inference from packets
(``[[extra.inference.limit]]``) and the model's differences
(``[extra.sim_vs_kernel]``) that tests/test_catalog_live.py honours.
"""

from __future__ import annotations

import re
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

from tcplab.model.sim import sim_can_play
from tcplab.scenario import builtin_dir, builtin_ids, load

DOC = Path(__file__).resolve().parent.parent / "docs" / "catalog.md"

INTRO = """\
# The scenario catalog

Every experiment the seed notes describe or ask about (../shared/SCENARIOS.md), as a
built-in scenario of the lab: `tcplab run ID` plays it on two real Linux endpoints
(network namespaces joined by the lab's TUN wire, states from the `inet_sock_set_state`
tracepoint and sock_diag snapshots), `tcplab run --all` plays the whole catalog and prints
the facts held and the time per scenario, `tcplab sim ID` plays it on the model.

Each scenario's facts are asserted against the live kernel (Linux 6.18 here) in
`tests/test_catalog_live.py`, which for every scenario also checks that

* the analyzer (`tcplab.analyze`), given only the run's pcapng, infers the per-endpoint
  state path the kernel reported -- except the **inference limits** listed below, each a
  state change no packet shows;
* `tcplab sim` with the `linux` profile puts the same segments on the wire (sender, flags,
  relative seq/ack, length, dropped) as the kernel did in the same test session -- except
  the **sim differences** listed below.

How the paths and segments are compared (the listener's own states left out, relative
numbers computed the same way for both, one sender's order only where a hold rule makes
the kernel's interleaving a matter of scheduling): `tests/test_catalog_compare.py`.
A listed limit or difference that no longer applies fails the test, so this page cannot
go stale; it is generated from the scenario files (`python tests/test_catalog_docs.py`).

TIME-WAIT lasts a fixed 60 s on Linux (TCP_TIMEWAIT_LEN): the catalog shows it in the
sock_diag snapshots (state and the `timewait` timer) and never waits it out.  Timing
(`bench/catalog_bench.py`): the whole catalog took 45 s on this 2-core machine, 23 s of
it apart from waits on timers (SYN and SYN-ACK backoff, keepalive, tcp_fin_timeout, the
wire's deliberate delays); the longest run is syn-timeout (7.7 s, 7.2 s of it the SYN
backoff to ETIMEDOUT).
"""


def _raw(sid: str) -> dict[str, Any]:
    with (builtin_dir() / f"{sid}.toml").open("rb") as fh:
        return tomllib.load(fh)


def _expect_text(sid: str) -> str:
    """The ``[expect]`` table as written in the file (comments included)."""
    text = (builtin_dir() / f"{sid}.toml").read_text(encoding="utf-8")
    start = text.find("[expect]")
    if start < 0:
        return ""
    rest = text[start:]
    nxt = re.search(r"^\s*(#[^\n]*\n\s*)*\[\[?extra", rest, re.M)
    return (rest[: nxt.start()] if nxt else rest).strip()


def _paragraphs(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()]
    return "\n".join(lines)


def section(sid: str) -> str:
    scenario = load(sid)
    raw = _raw(sid)
    extra = raw.get("extra", {})
    out = [f"## {sid}", "", f"**{scenario.title}**", ""]
    seeds = ", ".join(scenario.seeds) or "none"
    if sim_can_play(scenario):
        model = "yes"
    else:
        model = "no (needs " + ", ".join(scenario.needs or ("calls the model lacks",)) + ")"
    out += [f"Seed notes: {seeds}. The model can play it: {model}.", ""]
    out += ["### What it shows", "", _paragraphs(scenario.explain.get("en", "")), ""]
    vs = extra.get("catalog", {}).get("linux_vs_seeds", "")
    if vs:
        out += ["### Linux and the seed notes", "", _paragraphs(vs), ""]
    claim = extra.get("claim", {})
    if claim:
        out += ["### The notes' claim, checked live", "", f"The notes say: {claim['en']}.", "",
                f"Verdict on this kernel (when the facts below hold): {claim['verdict_en']}.",
                ""]  # fmt: skip
    out += ["### Facts checked on the kernel", "", "```toml", _expect_text(sid), "```", ""]
    limits = extra.get("inference", {}).get("limit", [])
    out += ["### Inference limits (the analyzer from the pcapng alone)", ""]
    if not limits:
        out += ["None: the analyzer infers exactly the kernel's state path for both endpoints.", ""]
    for lim in limits:
        parts = []
        if "kernel_only" in lim:
            parts.append(f"kernel only: {', '.join(lim['kernel_only'])}")
        if "inferred_only" in lim:
            parts.append(f"inferred only: {', '.join(lim['inferred_only'])}")
        if "connection" in lim:
            parts.append(f"the analyzer's connection {lim['connection']} left out")
        out += [f"* **{lim['endpoint']}** ({'; '.join(parts)}):",
                textwrap.indent(_paragraphs(lim["reason"]), "  "), ""]  # fmt: skip
    out += ["### Sim differences (tcplab sim, linux profile, against the kernel)", ""]
    simvs = extra.get("sim_vs_kernel", {})
    if not sim_can_play(scenario):
        out += ["Not compared: the model cannot play this scenario.", ""]
    elif not simvs:
        out += ["None: the same segments, one for one.", ""]
    for diff in simvs.get("difference", []):
        out += [f"* **{diff['kind']}**:", textwrap.indent(_paragraphs(diff["reason"]), "  "), ""]
    if simvs.get("model_defect"):
        defect = textwrap.indent(_paragraphs(simvs["model_defect"]), "  ")
        out += ["* **model defect** (the test expects this comparison to fail until the model "
                "is fixed):", defect, ""]  # fmt: skip
    return "\n".join(out)


def render() -> str:
    ids = builtin_ids()
    toc = [f"* [{sid}](#{sid}) -- {load(sid).title}" for sid in ids]
    body = [section(sid) for sid in ids]
    return INTRO + "\n" + "\n".join(toc) + "\n\n" + "\n".join(body).rstrip() + "\n"


def test_docs_catalog_is_generated_from_the_scenario_files() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/catalog.md is out of date: run .venv/bin/python tests/test_catalog_docs.py"
    )


def test_every_scenario_has_a_section_with_facts() -> None:
    text = render()
    for sid in builtin_ids():
        assert f"\n## {sid}\n" in text
        assert _expect_text(sid).startswith("[expect]"), sid


def test_every_limit_and_difference_gives_a_reason() -> None:
    for sid in builtin_ids():
        extra = _raw(sid).get("extra", {})
        for lim in extra.get("inference", {}).get("limit", []):
            assert lim.get("endpoint") in ("client", "server"), sid
            assert len(lim.get("reason", "")) > 40, sid
            assert {"kernel_only", "inferred_only", "connection"} & set(lim), sid
        for diff in extra.get("sim_vs_kernel", {}).get("difference", []):
            assert diff.get("kind") in ("kernel-only", "bulk"), sid
            assert len(diff.get("reason", "")) > 40, sid


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}", file=sys.stderr)
