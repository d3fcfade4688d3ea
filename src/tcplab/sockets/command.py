"""``tcplab sockets`` without its option parsing: what the command does.

``tcplab.commands.sockets`` is the click command (options, help, errors);
it calls ``run`` here.  ``tcplab.entry`` calls ``run`` directly, without
importing click at all, when the arguments are plain flags only (``tcplab
sockets --json -a``): on a 20,000-socket table the command is compared with
``ss -tanp`` (issue 15), and click's import was a sixth of its time.  So this
module and everything it imports at the top stay light: no click, rich,
dataclasses or locale tables until a path needs them.

Like ``ss -tanp`` / ``netstat -anop``, organised by application.  Defaults
follow ss: without ``-a`` the listing shows connected full sockets (no
LISTEN, TIME-WAIT or SYN-RECV); diagnoses always look at the whole table.
"""

from __future__ import annotations

import gc
import io
import json
import os
import sys
import time
from typing import Any, TextIO

from tcplab.sockets.diag import SockDiag
from tcplab.sockets.diagnose import (
    Diagnosis,
    SocketKey,
    Thresholds,
    diagnose_filtered,
    socket_key,
)
from tcplab.sockets.view import (
    DEFAULT_STATES,
    STATE_GROUPS,
    ChangeMark,
    Row,
    Snapshot,
    SocketFilter,
    diff_rows,
    group_by_process,
    groups_json_text,
    normalise_host,
    parse_states,
    render_plain,
    summary_line,
    take_snapshot,
)


def socket_filter(
    all_: bool,
    listening: bool,
    states: tuple[str, ...],
    ports: tuple[int, ...],
    hosts: tuple[str, ...],
    pids: tuple[int, ...],
) -> SocketFilter:
    if states:
        chosen = parse_states(states)
    elif all_:
        chosen = STATE_GROUPS["all"]
    elif listening:
        chosen = STATE_GROUPS["listening"]
    else:
        chosen = DEFAULT_STATES
    return SocketFilter(
        states=chosen,
        ports=frozenset(ports),
        hosts=frozenset(normalise_host(h) for h in hosts),
        pids=frozenset(pids),
        explicit_states=bool(states),
    )


def snapshot_json(snapshot: Snapshot, keep: SocketFilter, diagnoses: list[Diagnosis]) -> str:
    """The --json document: ``{"netns", "time", "processes", "diagnoses"}``."""
    out = io.StringIO()
    write_snapshot_json(out, snapshot, keep, diagnoses)
    return out.getvalue()


def write_snapshot_json(out: TextIO, snapshot: Snapshot, keep: SocketFilter,
                        diagnoses: list[Diagnosis]) -> None:  # fmt: skip
    """``snapshot_json`` written to ``out`` piece by piece (20,000 sockets make a
    12 MB document: it is never held whole, nor copied).

    The processes and their sockets are written as text directly
    (``groups_json_text``: the same bytes as ``json.dumps`` of ``groups_json``,
    a test holds them together).  No indent: pipe through `python -m json.tool`.
    """
    out.write(f'{{"netns": {json.dumps(snapshot.netns)}, '
              f'"time": {json.dumps(snapshot.wall_time)}, "processes": ')  # fmt: skip
    groups_json_text(group_by_process(snapshot, keep), out.write)
    diags = json.dumps([d.to_json() for d in diagnoses], ensure_ascii=False)
    out.write(f', "diagnoses": {diags}}}')


def _console() -> Any:
    from rich.console import Console

    # Like ss, never wrap a table when the output goes to a file or a pipe.
    return Console(width=None if sys.stdout.isatty() else 200)


def _render_diagnoses(diagnoses: list[Diagnosis], lang: str, explain: bool) -> Any:
    from rich.console import Group
    from rich.text import Text

    lines: list[Any] = [Text("诊断" if lang == "zh" else "Diagnoses", style="bold underline")]
    for d in diagnoses:
        lines.append(Text(f"• {d.headline(lang)}", style="bold red"))
        if not explain:
            continue
        for s in d.sockets:
            lines.append(Text(f"    {s}", style="dim"))
        text = d.explanation_zh if lang == "zh" else d.explanation
        lines.append(Text(f"  {text}"))
    return Group(*lines)


def _screen(
    snapshot: Snapshot,
    keep: SocketFilter,
    diagnoses: list[Diagnosis],
    lang: str,
    changes: dict[int, ChangeMark] | None = None,
    gone: list[Row] | None = None,
    watching: bool = False,
) -> Any:
    """The table, then the diagnoses with explanations.

    While watching, the diagnoses come first as one line each: a live
    screen is cut at the terminal's height, and they matter most.
    """
    from rich.console import Group
    from rich.text import Text

    table = Text.from_ansi(render_plain(group_by_process(snapshot, keep), changes, gone or [],
                                       color=True))  # fmt: skip
    if not diagnoses:
        return table
    if watching:
        return Group(_render_diagnoses(diagnoses, lang, explain=False), table)
    return Group(table, _render_diagnoses(diagnoses, lang, explain=True))


def _watch(
    netns: str | None,
    keep: SocketFilter,
    limits: Thresholds,
    lang: str,
    interval: float,
    owners: bool,
) -> None:
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    first_seen: dict[SocketKey, float] = {}
    previous: dict[int, Row] | None = None
    console = _console()
    # On a terminal the screen is redrawn in place; into a pipe or a file each
    # refresh is appended, so a log of a watch reads top to bottom.
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    import contextlib

    with SockDiag(netns) as diag, live if live is not None else contextlib.nullcontext():
        try:
            while True:
                snap = take_snapshot(netns, owners=owners, diag=diag)
                current = {r.sock.cookie: r for r in snap.rows}
                for row in snap.rows:
                    first_seen.setdefault(socket_key(row.sock), snap.monotonic)
                live_keys = {socket_key(r.sock) for r in snap.rows}
                for key in [k for k in first_seen if k not in live_keys]:
                    del first_seen[key]
                changes: dict[int, ChangeMark] = {}
                gone: list[Row] = []
                if previous is not None:
                    changes, gone = diff_rows(previous, current)
                    gone = [r for r in gone if keep(r)]
                diagnoses = diagnose_filtered(snap, keep, first_seen, limits)
                stamp = time.strftime("%H:%M:%S", time.localtime(snap.wall_time))
                frame = Group(
                    Text(
                        f"tcplab sockets — {stamp} — every {interval:g}s, Ctrl-C to stop",
                        style="dim",
                    ),
                    _screen(snap, keep, diagnoses, lang, changes, gone, watching=True),
                )
                if live is not None:
                    live.update(frame, refresh=True)
                else:
                    console.print(frame)
                    console.file.flush()
                previous = current
                time.sleep(interval)
        except KeyboardInterrupt:
            return


def run(
    keep: SocketFilter,
    limits: Thresholds,
    *,
    netns: str | None = None,
    as_json: bool = False,
    watch: bool = False,
    interval: float = 1.0,
    owners: bool = True,
    limit: int = 0,
    lang: str | None = None,
) -> None:
    """The command, its options parsed (``tcplab.commands.sockets`` has their help)."""
    if lang is None and not as_json:
        from tcplab.fmt import locale_lang

        lang = locale_lang()
    if watch:
        _watch(netns, keep, limits, lang or "en", interval, owners=owners)
        return
    # One snapshot, written out, and the process ends: the cyclic collector
    # would only re-scan its 20,000 rows (acyclic tuples) again and again.
    gc.disable()
    snap = take_snapshot(netns, owners=owners)
    diagnoses = diagnose_filtered(snap, keep, None, limits)
    if as_json:
        write_snapshot_json(sys.stdout, snap, keep, diagnoses)
        sys.stdout.write("\n")
        return
    tty = sys.stdout.isatty()
    color = tty and "NO_COLOR" not in os.environ
    groups = group_by_process(snap, keep)
    text = render_plain(groups, limit=limit, color=color)
    text += diagnoses_text(diagnoses, lang or "en", color)
    text += summary_line(snap, sum(len(g.rows) for g in groups)) + "\n"
    if tty:
        import shutil

        if text.count("\n") > shutil.get_terminal_size().lines:
            import click

            click.echo_via_pager(text, color=color)  # $PAGER, else less -R: like git
            return
    sys.stdout.write(text)


def diagnoses_text(diagnoses: list[Diagnosis], lang: str, color: bool) -> str:
    """The diagnoses as plain text: headline, sockets, explanation (``--lang``)."""
    if not diagnoses:
        return ""

    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color else text

    out = [paint("诊断" if lang == "zh" else "Diagnoses", "1;4")]
    for d in diagnoses:
        out.append(paint(f"• {d.headline(lang)}", "1;31"))
        out += [paint(f"    {s}", "2") for s in d.sockets]
        out.append("  " + (d.explanation_zh if lang == "zh" else d.explanation))
    return "\n".join(out) + "\n\n"


def run_plain(flags: dict[str, bool]) -> None:
    """``run`` for the click-free command line (``tcplab.plain_sockets``)."""
    keep = socket_filter(flags["all_"], flags["listening"], (), (), (), ())
    run(keep, Thresholds(), as_json=flags["as_json"], owners=not flags["no_processes"])
