"""``tcplab cleanup``: remove namespaces, tracefs instances and mounts of killed lab runs."""

from __future__ import annotations

import click

from tcplab.lab.cleanup import cleanup
from tcplab.lab.host import require_root


@click.command("cleanup")
@click.option("--all", "include_live", is_flag=True,
              help="Also tear down runs whose lab process is still alive.")  # fmt: skip
def command(include_live: bool) -> None:
    """Remove what killed `tcplab run`s left behind (only tcplab-* names)."""
    require_root()
    report = cleanup(include_live)
    for label, items in (
        ("killed actor pid", report.killed),
        ("removed namespace", report.namespaces),
        ("removed tracefs instance", report.instances),
        ("unmounted", report.mounts),
    ):
        for item in items:
            click.echo(f"{label} {item}")
    for problem in report.problems:
        click.echo(f"could not remove: {problem}", err=True)
    for run in report.live:
        click.echo(f"left alone: run {run} is still running (use --all to stop it too)")
    if report.empty:
        click.echo("nothing to clean up")
