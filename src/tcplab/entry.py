"""The ``tcplab`` executable: signal handlers first, then everything else.

Nothing but the standard library's ``signal`` is imported before the
handlers are in place, so a Ctrl-C in the first moments (while click, rich
and NumPy load) ends in one line and exit 130, never a traceback.
"""

from __future__ import annotations

import sys

from tcplab import signals


def main(argv: list[str] | None = None) -> None:
    signals.install()
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
