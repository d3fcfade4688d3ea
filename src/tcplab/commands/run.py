"""``tcplab run``: play a scenario live on two real Linux endpoints."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tcplab import scenario as scenarios
from tcplab.errors import InputError, TcplabError
from tcplab.fmt import locale_lang
from tcplab.render.export import (
    explain_seq_default,
    ladder_options,
    report_options,
    write_views,
)

if TYPE_CHECKING:
    from tcplab.lab.runner import Lab, RunResult


def _list() -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "title", "faults", box=None)
    for sid in scenarios.builtin_ids():
        sc = scenarios.load(sid)
        table.add_row(sid, sc.title, ", ".join(f.action for f in sc.faults))
    Console().print(table)


@click.command("run")
@click.argument("scenario", required=False)
@click.option("--list", "list_", is_flag=True, help="List the built-in scenarios.")
@click.option("--all", "all_", is_flag=True,
              help="Run every built-in scenario; print facts held and time per scenario.")
@click.option("--outdir", type=click.Path(path_type=Path), default=Path("out"), show_default=True,
              help="Where <id>.pcapng, <id>.json and the ladder files go.")  # fmt: skip
@click.option("--json", "json_out", metavar="PATH|-",
              help="Also write the timeline JSON here ('-': stdout, instead of the ladder); "
              "with --all, the table of facts and times.")
@click.option("--loopback", is_flag=True,
              help="Both actors on lo in one namespace, captured with AF_PACKET (no faults).")
@click.option("--no-trace", is_flag=True, help="Do not use tracefs: sock_diag snapshots only.")
@click.option("--server", "server_cmd", metavar="CMD",
              help="Run CMD as the server (under strace, as root, in the lab's namespace).")
@click.option("--client", "client_cmd", metavar="CMD",
              help="Run CMD as the client (under strace, as root, in the lab's namespace).")
@click.option("--trust", is_flag=True,
              help="Run a scenario file even if others could have written it "
              "(group/other-writable, or owned by another user).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Server port for --server/--client programs (default: the port the "
              "server listens on).")
@click.option("--width", type=int, default=None, help="Ladder width in columns.")
@click.option("--inferred", is_flag=True,
              help="Also draw the analyzer's states inferred from the packets (NAME?).")
@click.option("--lang", type=click.Choice(["en", "zh"]), default=None,
              help="The explanation's language (default: zh for zh_* locales, else en).")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the scenario's explanation.")
@click.option("--facts", "facts_view", type=click.Choice(["short", "full"]), default="short",
              show_default=True,
              help="short: one line per fact; full: every fact's whole detail.")
@ladder_options
@report_options
def command(
    scenario: str | None, list_: bool, all_: bool, outdir: Path, json_out: str | None,
    loopback: bool, no_trace: bool, server_cmd: str | None, client_cmd: str | None, port: int,
    width: int | None, inferred: bool, lang: str | None, quiet: bool, trust: bool,
    facts_view: str, explain_seq: bool | None, all_segments: bool,
    report: str | None, mermaid: str | None, svg_out: str | None,
) -> None:  # fmt: skip
    """Run SCENARIO (a built-in id or a .toml file) and draw what happened.

    \b
    tcplab run --list
    tcplab run handshake-close
    tcplab run my-experiment.toml --outdir out
    tcplab run --server 'node tcp-server.js' --client 'node tcp-client.js'
    tcplab run both-close --report both-close.html   (one self-contained file to share)

    A scenario file is a program: the lab plays it as root, and it can start
    external programs ([extra.external], like --server/--client).  Run only
    files you trust; one that is writable by group or others, or owned by
    another user, is refused unless --trust is given (as ssh does with keys).
    Every problem in a file is reported before anything runs.

    \b
    With --server/--client, each program runs in its host's namespace under
    strace and finds in its environment:
    {env}
    A program that connects to 127.0.0.1 (the seed's tcp-client.js) reaches
    the server unchanged: the lab routes the server's loopback address to it.
    A program that exits non-zero on its own fails the run; the server is
    stopped (SIGTERM) as soon as the client is done.
    """
    if list_:
        _list()
        return
    from tcplab.lab.runner import Lab

    to_stdout = [name for name, target in (("--json", json_out), ("--report", report),
                 ("--mermaid", mermaid), ("--svg", svg_out)) if target == "-"]  # fmt: skip
    if len(to_stdout) > 1:
        raise InputError(f"only one view can go to stdout ('-'): {' and '.join(to_stdout)}")
    lab = Lab(outdir, loopback=loopback, tracing=not no_trace)
    if all_:
        _run_all(lab, json_out)
        return
    result: RunResult
    if server_cmd or client_cmd:
        if not (server_cmd and client_cmd):
            raise InputError("--server and --client go together")
        from tcplab.lab.external import run_external

        result = run_external(lab, server_cmd, client_cmd, port)
        sc = None
    else:
        if scenario is None:
            raise InputError("which scenario? give an id (tcplab run --list) or a .toml file")
        sc = scenarios.load(scenario, trust=trust)
        result = lab.run(sc)
    if json_out == "-":
        click.echo(result.timeline.to_json())
    else:
        if json_out:
            Path(json_out).write_text(result.timeline.to_json(), encoding="utf-8")
        if not to_stdout:  # with '-', stdout carries the requested format and nothing else
            _show(result, sc, width, None if quiet else (lang or locale_lang()), inferred,
                  _Looks(explain_seq_default(explain_seq, sc), not all_segments,
                         facts_view == "full", lang or locale_lang()))  # fmt: skip
    from tcplab.lab.runner import without_inferred

    # The report tells kernel and inferred states apart; the plain ladders show
    # what the terminal shows.
    shown = result.timeline if inferred else without_inferred(result.timeline)
    written = write_views(result.timeline, report=report, scenario=sc, facts=result.facts)
    written += write_views(shown, mermaid=mermaid, svg=svg_out)
    if written and not to_stdout:
        click.echo(f"wrote {', '.join(written)}")
    if not result.ok:
        raise _FactsFailed(sum(1 for f in result.facts if not f.held))


def _env_help() -> str:
    from tcplab.lab.external import ENVIRONMENT

    return "\n    ".join(f"  {k:<19} {v}" for k, v in ENVIRONMENT.items())


if command.help:
    command.help = command.help.replace("{env}", _env_help())


def _run_all(lab: Lab, json_out: str | None) -> None:
    """Every built-in scenario in turn: facts held and seconds per scenario.

    ``json_out``: also write the table as JSON there ('-': stdout, the table and
    the progress lines then go to stderr).  Exits non-zero when any fact fails.
    """
    import json
    import time

    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=json_out == "-")
    table = Table("scenario", "facts held", "seconds", box=None, title="tcplab run --all")
    rows: list[dict[str, object]] = []
    began = time.monotonic()
    for sid in scenarios.builtin_ids():
        start = time.monotonic()
        try:
            result = lab.run(scenarios.load(sid))
        except TcplabError as exc:
            seconds = time.monotonic() - start
            rows.append({"scenario": sid, "held": 0, "facts": 0, "seconds": round(seconds, 3),
                         "ok": False, "error": str(exc), "failed": []})  # fmt: skip
            table.add_row(sid, f"[red]error[/]: {exc}", f"{seconds:.2f}")
            console.print(f"{sid}: error: {exc}")
            continue
        held = sum(1 for f in result.facts if f.held)
        failed = [f"{f.fact}: {f.detail}" for f in result.facts if not f.held]
        rows.append({"scenario": sid, "held": held, "facts": len(result.facts),
                     "seconds": round(result.seconds, 3), "ok": result.ok, "error": "",
                     "failed": failed})  # fmt: skip
        mark = "" if result.ok else "[red]"
        table.add_row(sid, f"{mark}{held}/{len(result.facts)}", f"{result.seconds:.2f}")
        console.print(f"{sid}: {held}/{len(result.facts)} facts held, {result.seconds:.2f} s")
    total = time.monotonic() - began
    console.print(table)
    console.print(f"{len(rows)} scenarios in {total:.1f} s")
    if json_out:
        text = json.dumps({"scenarios": rows, "seconds": round(total, 3)}, indent=1)
        if json_out == "-":
            click.echo(text)
        else:
            Path(json_out).write_text(text + "\n", encoding="utf-8")
    bad = [str(r["scenario"]) for r in rows if not r["ok"]]
    if bad:
        raise TcplabError(f"{len(bad)} scenario(s) did not hold all their facts: {', '.join(bad)}")


class _FactsFailed(TcplabError):
    def __init__(self, n: int) -> None:
        super().__init__(f"{n} expected fact(s) did not hold")


@dataclass(frozen=True, slots=True)
class _Looks:
    """How the terminal view is drawn (``--explain-seq``, ``--all-segments``, ``--facts``)."""

    explain_seq: bool = False
    collapse: bool = True
    full_facts: bool = False
    lang: str = "en"  # the ladder's notes and the fact lines (--lang, else the locale)


def _fact_line(detail: str, width: int) -> str:
    """A fact's detail on one line (``--facts full`` prints it whole)."""
    from tcplab.render.wrap import display_width, wrap

    line = " ".join(detail.split())
    if display_width(line) <= width:
        return line
    return wrap(line, max(width - 18, 10))[0] + " … (--facts full)"


def claim_lines(sc: scenarios.Scenario, ok: bool, lang: str) -> list[str]:
    """A scenario that checks a claim of the seed notes (``[extra.claim]``) says
    the claim and the verdict this run gives: the scenario's verdict when every
    fact held on this kernel, else that the run did not decide it."""
    claim = sc.extra.get("claim")
    if not isinstance(claim, dict):
        return []
    zh = lang == "zh"
    said = str(claim.get("zh" if zh else "en") or claim.get("en", ""))
    if ok:
        verdict = str(claim.get("verdict_zh" if zh else "verdict_en")
                      or claim.get("verdict_en", ""))  # fmt: skip
    else:
        verdict = ("未能判定：本次运行中有事实不成立（见上表）" if zh
                   else "not decided: some facts did not hold in this run (see above)")
    if zh:
        return [f"笔记中的说法：{said}", f"本机内核上的结论：{verdict}"]
    return [f"The notes say: {said}", f"Verdict on this kernel: {verdict}"]


def _show(result: RunResult, sc: scenarios.Scenario | None, width: int | None,
          lang: str | None, inferred: bool, looks: _Looks = _Looks()) -> None:  # fmt: skip
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from tcplab.lab.runner import without_inferred
    from tcplab.render.text import render_ladder_rich

    # --width is the width of everything printed, also into a pipe (rich's default 80
    # would re-wrap a wider ladder).
    console = Console(file=sys.stdout, width=width)
    shown = result.timeline if inferred else without_inferred(result.timeline)
    console.print(render_ladder_rich(shown, width=width or console.width,
                                     explain_seq=looks.explain_seq, collapse=looks.collapse,
                                     lang=looks.lang))
    if sc is not None and lang and sc.explain.get(lang):
        from tcplab.render.wrap import fill_paragraphs

        # Re-wrapped by words and display width: never split a name like FIN-WAIT-2.
        text = fill_paragraphs(sc.explain[lang], min(width or console.width, 100))
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    if result.facts:
        from tcplab.render.i18n import tr

        def t(text: str) -> str:
            return tr(text, looks.lang)

        table = Table(t("fact"), t("held"), t("detail"), title=t("expected facts"), box=None)
        longest = max(len(f.fact) for f in result.facts)
        for fact in result.facts:
            mark = f"[green]{t('yes')}[/]" if fact.held else f"[red]{t('NO')}[/]"
            detail = t(fact.detail)
            if not looks.full_facts:
                detail = _fact_line(detail, max((width or console.width) - longest - 14, 30))
            table.add_row(fact.fact, mark, escape(detail))
        console.print(table)
    if sc is not None:
        for line in claim_lines(sc, result.ok, lang or looks.lang or "en"):
            console.print(line, markup=False, highlight=False)
    files = [p for p in (result.pcapng_path, result.json_path) if p]
    files += result.extra_paths
    if files:
        console.print("wrote " + ", ".join(str(p) for p in files) +
                      f"  ({result.seconds:.2f} s)")  # fmt: skip
    if not result.timeline.meta.get("tracing"):
        console.print("note: no tracefs — kernel states come from sock_diag snapshots only")
