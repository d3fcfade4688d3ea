"""``tcplab analyze FILE``: connections, inferred states and anomalies from a capture.

Modes (one at a time): the default connection table; ``--json`` (one object
per connection per line); ``--packets`` (one line per packet with relative
seq/ack, Wireshark's analysis flags and both endpoints' inferred states);
``--conn-log`` (Zeek's conn.log, TSV); ``--ladder N`` (connection N drawn as
a two-column ladder); ``--summary`` (the fast columnar pass, no per-packet
state).  Filters narrow the connections shown.  Capture problems are
reported on stderr as one line each; readable packets are still analysed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tcplab.errors import InputError
from tcplab.render.export import report_options

if TYPE_CHECKING:  # the fast summary must not pay for importing the detailed engine
    from tcplab.analyze.core import Analysis, Connection, PacketRecord
    from tcplab.analyze.frames import ReadReport
    from tcplab.analyze.zeek import ZeekView
    from tcplab.scale.captureset import CaptureSet


def _selected(
    conns: list[Connection], conn: int | None, host: str | None, port: int | None, problems: bool
) -> list[Connection]:
    out = []
    for c in conns:
        if conn is not None and c.number != conn:
            continue
        if host is not None and host not in (c.client.address, c.server.address):
            continue
        if port is not None and port not in (c.client.port, c.server.port):
            continue
        if problems and not c.has_problems:
            continue
        out.append(c)
    return out


def _zeek_selected(zconns: Sequence[ZeekView], chosen: list[Connection]) -> list[ZeekView]:
    """The Zeek connections the chosen connections' packets belong to."""
    ids = {i for c in chosen for i in c.zeek_ids}
    return [z for z in zconns if z.first_frame in ids]


def _run(
    paths: tuple[str, ...],
    bare: bool,
    ignore_checksums: bool,
    keep_packets: bool,
    strict_checksums: bool = False,
    keep_stream: int = -1,
) -> tuple[Analysis, CaptureSet]:
    """Analyse ``paths``: one file (or ``-``) straight through the engine's
    reader; several files, a directory or a URL as one capture merged by time
    (tcplab.scale.captureset)."""
    from tcplab.analyze.zeek import DEFAULT_LIKELY_SERVER_PORTS
    from tcplab.scale.captureset import CaptureSet, is_url

    ports = frozenset() if bare else DEFAULT_LIKELY_SERVER_PORTS
    if len(paths) == 1 and not is_url(paths[0]) and not Path(paths[0]).is_dir():
        from tcplab.analyze.core import analyze_file

        path = paths[0]
        size = Path(path).stat().st_size if path != "-" else 0
        if size < PROGRESS_THRESHOLD or not sys.stderr.isatty():
            analysis = analyze_file(
                path,
                ports,
                ignore_checksums,
                keep_packets,
                strict_checksums=strict_checksums,
                keep_stream=keep_stream,
            )
        else:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task(f"analysing {Path(path).name}", total=size)
                analysis = analyze_file(
                    path,
                    ports,
                    ignore_checksums,
                    keep_packets,
                    progress=lambda n: bar.advance(task, n),
                    strict_checksums=strict_checksums,
                    keep_stream=keep_stream,
                )
        if analysis.report.frames == 0 and analysis.report.problems:
            # Not a capture at all: one line, exit 2.  A capture whose first record
            # is already damaged is one with nothing readable: its problems, exit 1
            # (the README's rule, as `tcplab packets` has it).
            if path == "-":
                raise InputError(analysis.report.problems[0])
            from tcplab.capture import open_capture

            open_capture(path).close()  # raises the one line when it is no capture
        return analysis, CaptureSet((path,))
    from tcplab.scale.engine import EngineOptions
    from tcplab.scale.local import analyze_set

    return analyze_set(paths, EngineOptions(ports, ignore_checksums, keep_packets))


PROGRESS_THRESHOLD = 4 * 1024 * 1024  # bytes; smaller files finish before a bar helps


@click.command(name="analyze")
@click.argument("files", nargs=-1, required=True, metavar="FILE...|DIR")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per connection.")
@click.option(
    "--packets",
    "per_packet",
    is_flag=True,
    help="One line per packet: flags, relative seq/ack, analysis flags, states.",
)
@click.option(
    "--conn-log", "conn_log", is_flag=True, help="Zeek conn.log (TSV, zeek-cut readable)."
)
@click.option("--ladder", "ladder", type=int, metavar="N", help="Draw connection N as a ladder.")
@click.option(
    "--summary",
    "summary",
    is_flag=True,
    help="The overview, as the default view shows it (with --json: one short line per connection).",
)
@click.option("--conn", "conn", type=int, metavar="N", help="Only connection N.")
@click.option("--host", "host", metavar="ADDR", help="Only connections with this endpoint address.")
@click.option("--port", "port", type=int, metavar="PORT", help="Only connections using this port.")
@click.option("--problems", is_flag=True, help="Only connections with anomalies or abnormal ends.")
@click.option(
    "-b", "--bare", is_flag=True, help="Zeek bare mode: no likely-server-port role flips (zeek -b)."
)
@report_options
@click.option(
    "-C",
    "--ignore-checksums",
    is_flag=True,
    help="Like zeek -C: analyse packets with bad checksums normally.",
)
@click.option(
    "--strict-checksums",
    is_flag=True,
    help="Zeek's default exactly: a partial (offloaded) TCP checksum is bad too.",
)
@click.option("--all", "all_rows", is_flag=True, help="Every connection's row, not one page.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 64),
    default=1,
    help="Processes, flows sharded by hash; output as one process's.  One plain file "
    "only (standard input, pipes, capture sets and --conn run in one process).",
)
@click.option(
    "--absolute-time", is_flag=True, help="--packets: times since the epoch, not the first packet."
)
@click.option("--width", type=click.IntRange(40, 400), help="--ladder: width in columns.")
@click.option("--parquet", "parquet", metavar="DIR", help="Write the connections table as Parquet.")
@click.option("--parquet-packets", is_flag=True, help="With --parquet: also the packets table.")
@click.option(
    "--dask",
    "dask",
    metavar="local:N|tcp://HOST:PORT",
    help="Run on Dask: a LocalCluster of N workers, or a running scheduler (docs/scale.md).",
)
@click.option(
    "--scratch",
    "scratch",
    metavar="DIR",
    help="--dask: the shuffle's files go in a directory made here (default: /dev/shm when"
    " it has room, else the temp dir); with a scheduler, shared storage every worker"
    " mounts at the same path.",
)
def command(
    files: tuple[str, ...],
    as_json: bool,
    per_packet: bool,
    conn_log: bool,
    ladder: int | None,
    summary: bool,
    conn: int | None,
    host: str | None,
    port: int | None,
    problems: bool,
    bare: bool,
    ignore_checksums: bool,
    report: str | None = None,
    mermaid: str | None = None,
    svg_out: str | None = None,
    strict_checksums: bool = False,
    all_rows: bool = False,
    jobs: int = 1,
    absolute_time: bool = False,
    width: int | None = None,
    parquet: str | None = None,
    parquet_packets: bool = False,
    dask: str | None = None,
    scratch: str | None = None,
) -> None:
    """Connections, per-endpoint TCP states and anomalies in FILE (pcap or pcapng).

    Several files, or a directory, are one capture merged by time
    (docs/scale.md)."""
    # --summary --json: the summary as JSON lines.
    # --packets --json: the packets as JSON lines.
    modes = [
        as_json and not summary and not per_packet,
        per_packet,
        conn_log,
        ladder is not None,
        summary,
    ]
    if sum(bool(m) for m in modes) > 1:
        raise InputError("choose one of --json, --packets, --conn-log, --ladder, --summary")
    if parquet_packets and parquet is None:
        raise InputError("--parquet-packets needs --parquet DIR")
    if dask is not None:
        from tcplab.scale.cluster import run_cli

        run_cli(
            files,
            dask,
            parquet,
            parquet_packets,
            conn_log,
            as_json,
            bare,
            ignore_checksums,
            scratch,
        )
        return
    if scratch is not None:
        raise InputError("--scratch goes with --dask")
    first = files[0]
    if len(files) == 1 and first != "-" and not Path(first).exists() and "://" not in first:
        raise InputError(f"{files[0]}: no such file")
    file = Path(files[0])
    if summary and (len(files) > 1 or file.is_dir()):
        raise InputError("--summary reads one file")
    views = any(v is not None for v in (report, mermaid, svg_out))
    single = len(files) == 1 and (first == "-" or not (file.is_dir() or "://" in first))
    # One file, or a capture set for the views that need no per-packet frames
    # (a set's frames are file:frame labels), streamed through the engine.
    streamed = single or not (per_packet or summary)
    if streamed and not views and ladder is None and parquet is None:
        _stream(
            first,
            bare,
            ignore_checksums,
            strict_checksums,
            jobs,
            as_json,
            per_packet,
            conn_log,
            all_rows,
            absolute_time,
            (conn, host, port, problems),
            summary,
            () if single else files,
        )
        return
    keep_packets = per_packet or ladder is not None or views or parquet_packets
    # --ladder N / --report with --conn N keep only that connection's packets.
    one = ladder if ladder is not None else conn if views and not parquet_packets else None
    analysis, capture = _run(
        files, bare, ignore_checksums, keep_packets, strict_checksums, -1 if one is None else one
    )
    for problem in analysis.report.problems:
        click.echo(f"tcplab: {problem}", err=True)
    if analysis.report.nothing_readable:
        raise SystemExit(1)  # the rule of every command (README): nothing readable -> 1
    if parquet is not None:
        from tcplab.scale.local import write_parquet

        write_parquet(analysis, capture, parquet, parquet_packets)
        if not (as_json or per_packet or conn_log or ladder is not None or views):
            return
    if views:
        number = ladder if ladder is not None else conn
        _write_views(analysis, capture, number, report, mermaid, svg_out)
        if ladder is None and not (as_json or per_packet or conn_log):
            return
    if ladder is not None:
        conn = ladder
    chosen = _selected(analysis.connections, conn, host, port, problems)
    if ladder is not None:
        _print_ladder(analysis, chosen, ladder, width)
    elif conn_log:
        from tcplab.analyze.output import conn_log as render_conn_log

        zconns = analysis.zeek
        if any(x is not None for x in (conn, host, port)) or problems:
            zconns = _zeek_selected(zconns, chosen)
        sys.stdout.write(render_conn_log(zconns))
    elif as_json:
        from tcplab.analyze.output import json_lines

        sys.stdout.write(json_lines(chosen))
    elif per_packet:
        from tcplab.analyze.output import packet_line

        numbers = {c.number: c for c in chosen}
        for p in analysis.packets:
            if p.stream in numbers:
                line = packet_line(p, numbers[p.stream])
                if len(capture.files) > 1:  # the frame says which file it came from
                    line = f"{capture.label(p.index):>6}" + line[len(f"{p.index:>6}") :]
                click.echo(line)
    else:
        from rich.console import Console

        from tcplab.analyze.output import connection_table

        console = Console()
        name = file.name if len(capture.files) == 1 else f"{len(capture.files)} files"
        title = f"{name}: {len(chosen)} of {len(analysis.connections)} TCP connections"
        console.print(connection_table(chosen, title))
        notes = [(c.number, n) for c in chosen for n in c.notes]
        for number, note in notes[:40]:
            console.print(f"  conn {number}: {note}", highlight=False)
        bad = sum(c.anomalies["bad_checksum"] for c in analysis.connections)
        if bad and not ignore_checksums:
            console.print(
                f"{bad} packets have bad TCP checksums (checksum offloading on the capturing "
                "host?); like zeek without -C they only count as C/c: rerun with -C to analyse "
                "them",
                highlight=False,
            )
        if not analysis.connections and analysis.report.tcp == 0:
            console.print(f"no TCP packets in {analysis.report.frames} frames")


def _write_views(
    analysis: Analysis,
    capture: CaptureSet,
    number: int | None,
    report: str | None,
    mermaid: str | None,
    svg_out: str | None,
) -> None:
    """--report/--mermaid/--svg: one connection's timeline through the renderers."""
    from tcplab.analyze.ladder import timeline_for
    from tcplab.render.export import write_views

    if number is None:
        if len(analysis.connections) != 1:
            raise InputError(
                f"{len(analysis.connections)} connections: choose one with --conn N for the views"
            )
        number = analysis.connections[0].number
    chosen = [c for c in analysis.connections if c.number == number]
    if not chosen:
        raise InputError(f"no connection {number} (there are {len(analysis.connections)})")
    packets = [p for p in analysis.packets if p.stream == number]
    timeline = timeline_for(packets, chosen[0], _frame_details(capture, packets))
    for path in write_views(timeline, report=report, mermaid=mermaid, svg=svg_out):
        click.echo(f"wrote {path}", err=True)


def _frame_details(
    capture: CaptureSet, packets: Sequence[PacketRecord]
) -> dict[int, tuple[bytes, str | None]]:
    """The packets' IP datagrams and comments, read again from their files
    (standard input cannot be read twice: its packets go without)."""
    from tcplab.analyze.frames import frame_details
    from tcplab.scale.captureset import decode_frame, encode_frame, is_url

    by_file: dict[int, list[int]] = {}
    for p in packets:
        file_id, frame = decode_frame(p.index)
        by_file.setdefault(file_id, []).append(frame)
    out: dict[int, tuple[bytes, str | None]] = {}
    for file_id, frames in by_file.items():
        name = capture.files[file_id]
        if name == "-" or is_url(name):
            continue
        for frame, got in frame_details(name, frames).items():
            out[encode_frame(file_id, frame)] = got
    return out


def _stream(
    path: str,
    bare: bool,
    ignore_checksums: bool,
    strict_checksums: bool,
    jobs: int,
    as_json: bool,
    per_packet: bool,
    conn_log: bool,
    all_rows: bool,
    absolute_time: bool,
    filters: tuple[int | None, str | None, int | None, bool],
    summary: bool = False,
    capture_set: tuple[str, ...] = (),
) -> None:
    """One capture through the engine, its output streamed as connections end
    (memory bounded by the connections open at once).  ``capture_set``: the
    files (directories, URLs) of a set, merged by time (tcplab.scale)."""
    from tcplab.analyze import engine, views
    from tcplab.analyze.zeek import DEFAULT_LIKELY_SERVER_PORTS

    keep = views.Filter(*filters)
    if keep.conn is not None:
        # --conn N names a stream by its number, which a shard of --jobs N
        # learns only in the merge: one process (the engine keeps only that
        # stream's packets).
        jobs = 1
    options = engine.Options(
        frozenset() if bare else DEFAULT_LIKELY_SERVER_PORTS,
        ignore_checksums,
        strict_checksums,
        keep_packets=per_packet,
        keep_stream=keep.conn if per_packet and keep.conn is not None else -1,
    )
    out = sys.stdout
    view: views.View
    overview: views.Overview | None = None
    if summary and as_json:
        view = views.SummaryJsonView(out, keep)
    elif per_packet:
        view = packets = views.PacketsView(out, keep, as_json, absolute_time)
        options = packets.packet_options(options)  # lines formatted by the engine
    elif conn_log:
        view = conn_log_view = views.ConnLogView(out, keep)
        options = conn_log_view.engine_options(options)  # rows formatted by the engine
    elif as_json:
        view = views.JsonView(out, keep)
    else:
        view = overview = views.Overview(None if all_rows else views.PAGE, keep)
        if not keep.active:  # the engine counts; records only for the rows shown
            options = replace(options, overview=(-1 if all_rows else views.PAGE, views.WORST))

    def read_all(progress: Callable[[int], None] | None = None) -> ReadReport:
        if not capture_set:
            return views.run_view(path, options, view, jobs, progress=progress)
        from tcplab.scale.engine import EngineOptions
        from tcplab.scale.local import stream_set

        scale = EngineOptions(
            options.likely_server_ports, ignore_checksums, strict_checksums=strict_checksums
        )
        return stream_set(capture_set, scale, view, progress, options)

    if capture_set:
        from tcplab.scale.captureset import is_url

        local = [f for f in capture_set if not is_url(f)]
        size = sum(f.stat().st_size for d in map(Path, local) for f in _files_of(d))
    else:
        size = Path(path).stat().st_size if path != "-" else 0
    if size < PROGRESS_THRESHOLD or not sys.stderr.isatty():
        read = read_all()
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"analysing {Path(path).name}", total=size)
            read = read_all(lambda n: bar.advance(task, n))
    for problem in read.problems:
        click.echo(f"tcplab: {problem}", err=True)
    if read.nothing_readable:
        raise SystemExit(1)  # the rule of every command (README): nothing readable -> 1
    if overview is not None:
        name = "standard input" if path == "-" else Path(path).name
        if len(capture_set) > 1:
            name = f"{len(capture_set)} files"
        out.write(overview.text(name, read))
        bad = overview.anomalies["bad_checksum"]
        if bad and not ignore_checksums:
            out.write(
                f"{bad} packets have bad TCP checksums; like zeek without -C they only count "
                "as C/c: rerun with -C to analyse them\n"
            )


def _files_of(path: Path) -> list[Path]:
    """A set's argument as files (a directory: its files), for the progress bar."""
    if path.is_dir():
        return [f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")]
    return [path] if path.exists() else []


def _print_ladder(
    analysis: Analysis, chosen: list[Connection], number: int, width: int | None = None
) -> None:
    if not chosen:
        raise InputError(f"no connection {number} (there are {len(analysis.connections)})")
    from tcplab.analyze.ladder import timeline_for

    connection = chosen[0]
    packets = [p for p in analysis.packets if p.stream == number]
    timeline = timeline_for(packets, connection)
    try:
        from tcplab.render.text import render_ladder
    except ImportError:
        for p in packets:
            click.echo(
                f"{p.time:.6f} {p.sender} [{p.flag_text}] seq {p.rel_seq} "
                f"client={p.client_state} server={p.server_state}"
            )
        return
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    click.echo(render_ladder(timeline, color=color, width=width), nl=False)
