"""``tcplab sockets``: this host's TCP sockets by process, with diagnoses.

The click command: options, help and usage errors.  What it does is
``tcplab.sockets.command.run``, which ``tcplab.entry`` also calls directly
(without click) for plain flags such as ``tcplab sockets --json -a``.
"""

from __future__ import annotations

import click

from tcplab.sockets.command import (
    diagnoses_text,
    run,
    snapshot_json,
    socket_filter,
    write_snapshot_json,
)
from tcplab.sockets.diagnose import DEFAULT_TIME_WAIT_THRESHOLD, Thresholds

__all__ = ["command", "diagnoses_text", "snapshot_json", "write_snapshot_json"]


@click.command(name="sockets")
@click.option("-a", "--all", "all_", is_flag=True, help="All states, listeners and TIME-WAIT too.")
@click.option("-l", "--listening", is_flag=True, help="Only listening sockets.")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="close-wait, TIME_WAIT, ESTAB... or a group: connected, synchronized, "
    "bucket, big, listening, all. Repeatable.",
)
@click.option(
    "--port",
    "ports",
    multiple=True,
    type=click.IntRange(0, 65535),
    help="Local or peer port. Repeatable.",
)
@click.option("--host", "hosts", multiple=True, help="Local or peer address. Repeatable.")
@click.option("--pid", "pids", multiple=True, type=int, help="Only sockets of this process.")
@click.option("--netns", metavar="NAME", help="A namespace name (/var/run/netns) or a path.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", is_flag=True, help="Refresh every second, changes highlighted.")
@click.option(
    "--interval",
    type=click.FloatRange(0.1),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.option("--no-processes", is_flag=True, help="Skip the /proc scan for owners (faster).")
@click.option("--limit", type=click.IntRange(0), default=0, metavar="N",
              help="At most N sockets per process, then a count of the rest (0: all).")
@click.option(
    "--time-wait-threshold",
    type=click.IntRange(1),
    default=DEFAULT_TIME_WAIT_THRESHOLD,
    show_default=True,
    help="TIME-WAIT sockets before they are diagnosed.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "zh"]),
    default=None,
    help="Language of the diagnoses (default: zh for zh_* locales, else en).",
)
def command(
    all_: bool,
    listening: bool,
    states: tuple[str, ...],
    ports: tuple[int, ...],
    hosts: tuple[str, ...],
    pids: tuple[int, ...],
    netns: str | None,
    as_json: bool,
    watch: bool,
    interval: float,
    no_processes: bool,
    limit: int,
    time_wait_threshold: int,
    lang: str | None,
) -> None:
    """This host's TCP sockets by process, with diagnoses (CLOSE-WAIT leaks, full queues...)."""
    if watch and as_json:
        raise click.UsageError("--watch and --json do not go together")
    run(
        socket_filter(all_, listening, states, ports, hosts, pids),
        Thresholds(time_wait=time_wait_threshold),
        netns=netns,
        as_json=as_json,
        watch=watch,
        interval=interval,
        owners=not no_processes,
        limit=limit,
        lang=lang,
    )
