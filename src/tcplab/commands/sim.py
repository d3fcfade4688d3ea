"""``tcplab sim``: play a scenario on the sans-IO model and draw the ladder."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from tcplab import scenario as scenarios
from tcplab.errors import InputError
from tcplab.model.sim import run_scenario, sim_can_play, variants_of, verdict
from tcplab.render.export import report_options, write_views
from tcplab.render.text import render_ladder
from tcplab.timeline import Timeline


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "variant"


def _write_json(timelines: list[Timeline], target: str) -> None:
    if target == "-":
        for timeline in timelines:
            click.echo(timeline.to_json(indent=None))
        return
    path = Path(target)
    for timeline in timelines:
        out = path
        if len(timelines) > 1:
            out = path.with_name(f"{path.stem}.{_slug(timeline.meta.get('variant', ''))}"
                                 f"{path.suffix or '.json'}")
        out.write_text(timeline.to_json(), encoding="utf-8")


@click.command("sim")
@click.argument("scenario", required=False)
@click.option("--profile", type=click.Choice(["linux", "rfc"]), default="linux",
              show_default=True, help="Model Linux (KERNEL-NOTES) or the RFCs.")
@click.option("--json", "json_out", metavar="FILE|-", help="Write the timeline(s) as JSON.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds ISNs, ports and random link effects.")
@click.option("--variant", help="Play only the variant with this name.")
@click.option("--width", type=int, help="Ladder width in columns (default 100).")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios the model can play.")
@report_options
def command(scenario: str | None, profile: str, json_out: str | None, seed: int,
            variant: str | None, width: int | None, list_only: bool,
            report: str | None, mermaid: str | None, svg_out: str | None) -> None:
    """Run SCENARIO on two model endpoints over a simulated network.

    \b
    Views: --report FILE.html (self-contained report), --mermaid FILE|-,
    --svg FILE, --json FILE|- (the timeline).

    \b
    Counterfactual scenarios play several variants one after the other:
      tcplab sim why-time-wait      (final ACK lost, with and without TIME-WAIT)
      tcplab sim why-three-way      (an old duplicate SYN, three-way vs two-way)
      tcplab sim why-2msl           (a stale segment meets a new incarnation)
    """
    if list_only:
        for sid in scenarios.builtin_ids():
            sc = scenarios.load(sid)
            if sim_can_play(sc):
                click.echo(f"{sid:24} {sc.title}")
        return
    if scenario is None:
        raise InputError("sim: give a SCENARIO (tcplab sim --list shows them)")
    sc = scenarios.load(scenario)
    if not sim_can_play(sc):
        raise InputError(f"{sc.id}: the model cannot play this scenario "
                         f"(needs: {', '.join(sc.needs) or 'a call the model lacks'})")
    chosen = variants_of(sc)
    if variant is not None:
        chosen = [v for v in chosen if v.name == variant]
        if not chosen:
            names = ", ".join(v.name for v in variants_of(sc))
            raise InputError(f"{sc.id}: no variant {variant!r} (variants: {names})")
    timelines: list[Timeline] = []
    echo_ladder = json_out != "-"
    for v in chosen:
        timeline = run_scenario(sc, profile=profile, seed=seed, variant=v)
        timelines.append(timeline)
        if echo_ladder:
            if v.name:
                click.echo(f"=== {v.name} ===")
            click.echo(render_ladder(timeline, width=width, color=sys.stdout.isatty()), nl=False)
            label = f"{v.name}: " if v.name else ""
            click.echo(f"verdict: {label}{verdict(timeline)}")
            if v.verdict:
                click.echo(f"  ({v.verdict})")
            click.echo()
    if json_out is not None:
        _write_json(timelines, json_out)
    for timeline in timelines:
        suffix = f".{_slug(timeline.meta.get('variant', ''))}" if len(timelines) > 1 else ""
        written = write_views(
            timeline,
            report=_variant_path(report, suffix),
            mermaid=_variant_path(mermaid, suffix),
            svg=_variant_path(svg_out, suffix),
            scenario=sc,
        )
        if written and echo_ladder:
            click.echo(f"wrote {', '.join(written)}")


def _variant_path(target: str | None, suffix: str) -> str | None:
    """``report.html`` -> ``report.with-time-wait.html`` when a scenario has variants."""
    if target is None or target == "-" or not suffix:
        return target
    path = Path(target)
    return str(path.with_name(f"{path.stem}{suffix}{path.suffix}"))
