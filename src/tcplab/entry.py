"""The ``tcplab`` executable: signal handlers first, then everything else.

Nothing but the standard library's ``signal`` is imported before the
handlers are in place, so a Ctrl-C in the first moments (while click, rich
and NumPy load) ends in one line and exit 130, never a traceback.
"""

from __future__ import annotations

import sys

from tcplab import signals

# `tcplab sockets` with these flags and nothing else runs without click: its
# import was a sixth of `tcplab sockets --json -a` on a 20,000-socket table,
# which is held to 1.5x `ss -tanp` (issue 15).  Anything else (a value, a
# combined `-al`, --help, a typo) goes through click as before.
SOCKETS_FLAGS: dict[str, str] = {
    "-a": "all_",
    "--all": "all_",
    "-l": "listening",
    "--listening": "listening",
    "--json": "as_json",
    "--no-processes": "no_processes",
}


def plain_sockets_flags(argv: list[str]) -> dict[str, bool] | None:
    """``{"all_": True, ...}`` for ``sockets`` and plain flags only, else None."""
    if not argv or argv[0] != "sockets":
        return None
    flags = {name: False for name in SOCKETS_FLAGS.values()}
    for arg in argv[1:]:
        if arg not in SOCKETS_FLAGS:
            return None
        flags[SOCKETS_FLAGS[arg]] = True
    return flags


def _plain_sockets(flags: dict[str, bool]) -> None:
    try:
        from tcplab.sockets.command import run, socket_filter
        from tcplab.sockets.diagnose import Thresholds

        keep = socket_filter(flags["all_"], flags["listening"], (), (), (), ())
        run(keep, Thresholds(), as_json=flags["as_json"], owners=not flags["no_processes"])
    except BaseException as exc:
        from tcplab.cli import end_with

        end_with(exc)


def main(argv: list[str] | None = None) -> None:
    signals.install()
    flags = plain_sockets_flags(sys.argv[1:] if argv is None else argv)
    if flags is not None:
        try:
            _plain_sockets(flags)
        finally:
            signals.hold()
        return
    try:
        from tcplab.cli import main as cli_main
    except BaseException:
        if not signals.received:
            raise
        signals.exiting = True
        sys.stderr.write(f"tcplab: {signals.message(signals.received)}\n")
        sys.exit(signals.exit_status(signals.received))
    try:
        cli_main(argv)
    finally:
        # The command is over (its run torn down, its files written): a signal
        # from now on would only kill the interpreter's shutdown, exiting -15
        # after a success.  It is held instead, and dies with the process.
        signals.hold()
