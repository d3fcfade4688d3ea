"""The ``tcplab`` command.

Each subcommand lives in its own module under ``tcplab.commands`` and is
imported only when it is invoked, so ``tcplab packets`` does not pay for
loading the lab or the renderers.  Errors become one line here, at the
single boundary between library and user (STYLE.md rule 11).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any, NoReturn

import click

from tcplab import __version__, signals
from tcplab.errors import TcplabError

# name -> (module, one-line help).  The module defines ``command: click.Command``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "tcplab.commands.run",
        "Run a scenario live on real Linux sockets and draw the ladder.",
    ),
    "analyze": (
        "tcplab.commands.analyze",
        "Connections, states and anomalies from a pcap/pcapng.",
    ),
    "packets": (
        "tcplab.commands.packets",
        "One line per TCP packet, tcpdump-style, relative seq/ack.",
    ),
    "sim": (
        "tcplab.commands.sim",
        "Run a scenario on the sans-IO TCP model (counterfactuals too).",
    ),
    "drill": (
        "tcplab.commands.drill",
        "Run packetdrill scripts against the live kernel or the model.",
    ),
    "states": (
        "tcplab.commands.states",
        "The TCP state diagram, drawn from the transition table.",
    ),
    "sockets": (
        "tcplab.commands.sockets",
        "This host's TCP sockets by process, with diagnoses.",
    ),
    "explain": (
        "tcplab.commands.explain",
        "What a state, flag, option or scenario means (en/zh).",
    ),
    "cleanup": (
        "tcplab.commands.cleanup",
        "Remove namespaces/TUN/tracefs left by killed lab runs.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        try:
            module = importlib.import_module(entry[0])
        except ModuleNotFoundError as exc:
            if exc.name != entry[0]:
                raise
            return None
        command: click.Command = module.command
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # `tcplab packets big.pcap | head`, for every command: the reader
            # went away, which is not an error (README: exit status).  click
            # would end it with exit 1; stdout now points at /dev/null so the
            # interpreter's last flush does not complain either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise click.exceptions.Exit(0) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tcplab")
def cli() -> None:
    """tcplab makes TCP's connection lifecycle visible and checkable.

    \b
    Learn:     tcplab run handshake-close      (live, two real Linux endpoints)
               tcplab sim why-time-wait        (the model shows what Linux can't)
               tcplab states --svg states.svg  (the RFC 9293 state diagram)
               tcplab explain TIME_WAIT --lang zh
    Diagnose:  tcplab analyze capture.pcapng   (handshake, teardown, states, anomalies)
               tcplab packets capture.pcap     (tcpdump -nn lines, relative seq/ack)
               tcplab sockets --state close-wait
    """


def main(argv: list[str] | None = None) -> None:
    try:
        rv: Any = cli.main(args=argv, prog_name="tcplab", standalone_mode=False)
    except BaseException as exc:
        end_with(exc)
    if isinstance(rv, int) and rv != 0:
        sys.exit(rv)


def end_with(exc: BaseException) -> NoReturn:
    """Whatever ended a command, as its one line and exit status (also for
    ``tcplab.entry``'s click-free ``sockets``)."""
    if isinstance(exc, SystemExit) and not signals.received:
        raise exc
    sys.exit(_fail(exc))


def _fail(exc: BaseException) -> int:
    """The one line for whatever ended the command, and its exit status.

    After a signal, whatever surfaced (the signal's own exception, or a
    KeyError from a thread start it cut short) ends the command as that
    signal: see tcplab.signals.
    """
    received = signals.received
    if not received and (isinstance(exc, KeyboardInterrupt) or (
            isinstance(exc, click.exceptions.Abort)
            and isinstance(exc.__context__, KeyboardInterrupt))):  # fmt: skip
        received = signal.SIGINT  # (a Ctrl-C that reached click before our handler)
    if received:
        signals.exiting = True
        click.echo(f"tcplab: {signals.message(received)}", err=True)
        return signals.exit_status(received)
    if isinstance(exc, click.ClickException):
        exc.show()
        return exc.exit_code
    if isinstance(exc, TcplabError):
        # Several problems (a scenario file's): one line each, each prefixed.
        for line in str(exc).splitlines() or [""]:
            click.echo(f"tcplab: {line}", err=True)
        return exc.exit_code
    if isinstance(exc, click.exceptions.Abort):
        # click turns an EOFError into Abort: input that ended where it should not.
        cause = exc.__context__
        click.echo(f"tcplab: input ended unexpectedly ({cause or 'end of file'})", err=True)
        return 1
    if isinstance(exc, BrokenPipeError):
        # `tcplab packets big.pcap | head`: the reader went away; not an error.
        sys.stderr.close()
        return 0
    raise exc
