"""``tcplab drill``: packetdrill scripts against the live kernel or the model."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import click

from tcplab.errors import InputError
from tcplab.render.export import report_options, write_views


def _defines(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError(f"-D {item}: expected NAME=VALUE")
        out[name] = value
    return out


def _scripts(paths: tuple[Path, ...]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(path.rglob("*.pkt")))
        elif path.exists():
            out.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    if not out:
        raise InputError("no .pkt scripts found")
    return out


def _reason(verdict: dict[str, Any]) -> str:
    """Which side a failure is on: kernel, model, timing, unsupported, parse."""
    kind = str(verdict["kind"])
    if verdict["passed"]:
        return ""
    if kind in ("unsupported", "parse"):
        return kind
    if kind == "family":
        return "IPv4-only"
    if kind == "timing":
        return "timing (under load?)"
    return "model" if verdict["stack"] == "model" else "kernel"


def run_one(
    path: Path,
    family: int,
    model: bool,
    defines: dict[str, str],
    tracing: bool,
    tolerance: int | None,
    retries: int,
) -> tuple[Any, int]:
    """Run a script, again (up to ``retries`` times) while it fails on timing alone."""
    from tcplab.drill.runner import run_script

    attempts = 0
    while True:
        run = run_script(
            path, family, model=model, defines=defines, tracing=tracing, tolerance_usecs=tolerance
        )
        failure = run.failure
        if failure is None or failure.kind != "timing" or attempts >= retries:
            return run, attempts
        attempts += 1


@click.command(name="drill")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model", is_flag=True, help="Play the script against the sans-IO model (linux profile)."
)
@click.option(
    "-6", "--ipv6", is_flag=True, help="IPv6 (packetdrill's fd3d:... addresses, MTU 1520)."
)
@click.option(
    "-D",
    "--define",
    "defines",
    multiple=True,
    metavar="NAME=VALUE",
    help="A script symbol, as packetdrill's -D.",
)
@click.option(
    "--tolerance-usecs",
    type=int,
    default=None,
    help="At least this timing tolerance (packetdrill's default is 4000).",
)
@click.option(
    "--retries",
    type=int,
    default=None,
    help="Re-run a script that fails on timing alone (default 0, 2 for a directory).",
)
@click.option("--no-trace", is_flag=True, help="No tracefs (no kernel states in the ladder).")
@click.option(
    "--json",
    "json_out",
    metavar="PATH|-",
    help="One script: the timeline as JSON; several: the verdicts as JSON.",
)
@click.option(
    "--pcapng",
    "pcapng_out",
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="One script: the wire as pcapng, each packet commented with its script line.",
)
@click.option("--quiet", "-q", is_flag=True, help="No ladder, just the verdict.")
@report_options
def command(
    paths: tuple[Path, ...],
    model: bool,
    ipv6: bool,
    defines: tuple[str, ...],
    tolerance_usecs: int | None,
    retries: int | None,
    no_trace: bool,
    json_out: str | None,
    pcapng_out: Path | None,
    quiet: bool,
    report: str | None,
    mermaid: str | None,
    svg_out: str | None,
) -> None:
    """Run packetdrill scripts (SCRIPT.pkt or a DIR of them) against Linux or the model.

    \b
      tcplab drill close-on-syn-sent.pkt               the live kernel, in a fresh netns
      tcplab drill --model close-on-syn-sent.pkt       the model plays the local stack
      tcplab drill ../shared/peer-traces/packetdrill --json verdicts.json
    """
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    defs = _defines(defines)
    scripts = _scripts(paths)
    single = len(scripts) == 1 and not paths[0].is_dir()
    tries = retries if retries is not None else (0 if single else 2)
    if single:
        _single(
            scripts[0],
            family,
            model,
            defs,
            not no_trace,
            tolerance_usecs,
            tries,
            json_out,
            pcapng_out,
            quiet,
            report,
            mermaid,
            svg_out,
        )
        return
    _many(scripts, family, model, defs, not no_trace, tolerance_usecs, tries, json_out)


def _single(
    path: Path,
    family: int,
    model: bool,
    defines: dict[str, str],
    tracing: bool,
    tolerance: int | None,
    retries: int,
    json_out: str | None,
    pcapng_out: Path | None,
    quiet: bool,
    report: str | None,
    mermaid: str | None,
    svg_out: str | None,
) -> None:
    from tcplab.drill.result import build_timeline, write_pcapng
    from tcplab.render.text import render_ladder

    run, attempts = run_one(path, family, model, defines, tracing, tolerance, retries)
    timeline = build_timeline(run)
    if json_out == "-":
        click.echo(timeline.to_json())
    elif json_out:
        Path(json_out).write_text(timeline.to_json(), encoding="utf-8")
    if pcapng_out is not None:
        write_pcapng(run, timeline, pcapng_out)
    written = write_views(timeline, report=report, mermaid=mermaid, svg=svg_out)
    if not quiet and json_out != "-":
        click.echo(render_ladder(timeline))
    for item in written:
        click.echo(f"wrote {item}", err=True)
    stack = "model" if model else "Linux"
    again = f" (after {attempts} timing retries)" if attempts else ""
    if run.passed:
        click.echo(f"PASS {path} on {stack}{again} in {run.seconds:.2f} s", err=json_out == "-")
        return
    click.echo(run.message(), err=True)
    sys.exit(1)


def _many(
    scripts: list[Path],
    family: int,
    model: bool,
    defines: dict[str, str],
    tracing: bool,
    tolerance: int | None,
    retries: int,
    json_out: str | None,
) -> None:
    from tcplab.drill.result import verdict

    rows: list[dict[str, Any]] = []
    err = json_out == "-"
    for path in scripts:
        run, attempts = run_one(path, family, model, defines, tracing, tolerance, retries)
        row = verdict(run) | {"timing_retries": attempts}
        row["reason"] = _reason(row)
        rows.append(row)
        mark = "pass" if run.passed else "FAIL"
        reason = f"  [{row['reason']}] {run.message().splitlines()[0]}" if not run.passed else ""
        click.echo(f"{mark:4} {path}{reason}", err=err)
    passed = sum(1 for r in rows if r["passed"])
    summary = f"{passed}/{len(rows)} passed on {'the model' if model else 'Linux'}"
    click.echo(summary, err=err)
    if json_out:
        text = json.dumps({"verdicts": rows, "passed": passed, "total": len(rows)}, indent=1)
        if json_out == "-":
            click.echo(text)
        else:
            Path(json_out).write_text(text + "\n", encoding="utf-8")
    if passed != len(rows):
        sys.exit(1)
