"""``tcplab sim``: play a scenario on the sans-IO model and draw the ladder."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from tcplab import scenario as scenarios
from tcplab.errors import InputError
from tcplab.fmt import locale_lang
from tcplab.model.sim import Variant, run_scenario, sim_can_play, variants_of, verdict
from tcplab.render.export import (
    explain_seq_default,
    ladder_options,
    report_options,
    write_views,
)
from tcplab.render.text import render_ladder
from tcplab.states import State
from tcplab.timeline import Event, Note, Snapshot, Timeline


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
@click.option("--lang", type=click.Choice(["en", "zh"]), default=None,
              help="The ladder's notes in this language (default: zh for zh_* locales).")
@ladder_options
@report_options
def command(scenario: str | None, profile: str, json_out: str | None, seed: int,
            variant: str | None, width: int | None, list_only: bool, lang: str | None,
            explain_seq: bool | None, all_segments: bool,
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
    to_stdout = [name for name, target in (("--json", json_out), ("--report", report),
                 ("--mermaid", mermaid), ("--svg", svg_out)) if target == "-"]  # fmt: skip
    if len(to_stdout) > 1:
        raise InputError(f"only one view can go to stdout ('-'): {' and '.join(to_stdout)}")
    # With '-', stdout carries the requested format and nothing else.
    echo_ladder = not to_stdout
    if len(chosen) > 1 and (mermaid == "-" or svg_out == "-"):
        names = ", ".join(v.name for v in chosen)
        raise InputError(f"{sc.id} plays {len(chosen)} variants ({names}); stdout holds one "
                         "diagram: choose one with --variant NAME, or write files")
    timelines: list[Timeline] = []
    for v in chosen:
        timeline = run_scenario(sc, profile=profile, seed=seed, variant=v)
        timelines.append(timeline)
        if echo_ladder:
            if v.name:
                click.echo(f"=== {v.name} ===")
            shown = model_view(timeline)
            click.echo(render_ladder(shown, width=width, color=sys.stdout.isatty(),
                                     explain_seq=explain_seq_default(explain_seq, sc),
                                     collapse=not all_segments, lang=lang or locale_lang()),
                       nl=False)  # fmt: skip
            label = f"{v.name}: " if v.name else ""
            click.echo(f"verdict: {label}{verdict(timeline)}")
            if v.verdict:
                click.echo(f"  ({v.verdict})")
            click.echo()
    if json_out is not None:
        _write_json(timelines, json_out)
    written: list[str] = []
    if report is not None and len(timelines) > 1:
        written += _write_variants_report(sc, chosen, timelines, report)
        report = None
    for timeline in timelines:
        suffix = f".{_slug(timeline.meta.get('variant', ''))}" if len(timelines) > 1 else ""
        written += write_views(
            model_view(timeline),
            report=report,
            mermaid=_variant_path(mermaid, suffix),
            svg=_variant_path(svg_out, suffix),
            scenario=sc,
        )
    if written and echo_ladder:
        click.echo(f"wrote {', '.join(written)}")


def _write_variants_report(sc: scenarios.Scenario, chosen: list[Variant],
                           timelines: list[Timeline], target: str) -> list[str]:  # fmt: skip
    """Every variant in ONE report, side by side (render.variants)."""
    from tcplab.render.variants import VariantView, render_variants_html

    views = [VariantView(v.name, model_view(t), verdict(t), v.verdict)
             for v, t in zip(chosen, timelines, strict=True)]  # fmt: skip
    text = render_variants_html(sc.title, views, explanation=sc.explain.get(locale_lang(), ""),
                                scenario=sc)  # fmt: skip
    if target == "-":
        click.echo(text, nl=False)
        return []
    try:
        Path(target).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {exc.strerror}") from None
    return [target]


_TIMER_NAMES = {"on": "retransmission timer", "keepalive": "keepalive timer",
                "timewait": "TIME-WAIT timer", "persist": "persist timer"}  # fmt: skip


def model_view(timeline: Timeline) -> Timeline:
    """The sim's timeline as the ladders show it: the model's own socket dumps are
    not sock_diag snapshots (no ``ss:``, no ``NAME*``), so each dump that says more
    than the state (queues, a running timer) becomes a note labelled as the
    model's, and the state itself is the model's state change already drawn."""
    events: list[Event] = []
    for event in timeline.events:
        if not isinstance(event, Snapshot):
            events.append(event)
            continue
        parts = []
        if event.rqueue:
            parts.append(f"{'accept queue' if event.state is State.LISTEN else 'Recv-Q'} "
                         f"{event.rqueue}")  # fmt: skip
        if event.wqueue and event.state is not State.LISTEN:
            parts.append(f"Send-Q {event.wqueue}")
        if event.timer:
            name = _TIMER_NAMES.get(event.timer, f"{event.timer} timer")
            if event.timer == "timewait" and event.state is State.FIN_WAIT_2:
                name = "FIN-WAIT-2 timer"  # Linux's tcp_fin_timeout, on the same timer
            parts.append(f"{name}: {event.timer_ms / 1000:.3g} s left")
        if parts:
            events.append(Note(event.time, "model: " + ", ".join(parts), event.endpoint))
    return timeline.with_events(events)


def _variant_path(target: str | None, suffix: str) -> str | None:
    """``report.html`` -> ``report.with-time-wait.html`` when a scenario has variants."""
    if target is None or target == "-" or not suffix:
        return target
    path = Path(target)
    return str(path.with_name(f"{path.stem}{suffix}{path.suffix}"))
