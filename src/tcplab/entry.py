"""The ``tcplab`` executable: signal handlers first, then everything else.

The first lines install, through ``_signal`` (the C module under ``signal``:
it imports nothing and builds no enums), a handler that only remembers a
SIGINT, SIGTERM or SIGHUP.  ``signals.install()`` then puts the real handler
in place, and a remembered signal is acted on as if it came that moment.  So
a Ctrl-C or a SIGTERM while click, rich and NumPy load, or while ``signal``
itself builds its enums, ends in one line and exit 128+N, never a traceback.
Only the interpreter's own start-up, before this file runs, is out of reach:
there the signal meets Python's defaults (``/proc/PID/status`` shows SIGTERM
caught once this file has run; the tests and bench/soak.py look there).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub: the C half of signal

_early: list[int] = []  # a signal that came before the real handlers


def _remember(signum: int, _frame: object) -> None:
    if not _early:
        _early.append(signum)


for _sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
    if _signal.getsignal(_sig) != _signal.SIG_IGN:  # an ignored signal stays ignored
        _signal.signal(_sig, _remember)

import os  # noqa: E402 - after the handlers, on purpose
import sys  # noqa: E402

# tcplab does no linear algebra, but NumPy's OpenBLAS starts a thread per
# core when it is imported, and they spin: 0.05 to 0.1 s of CPU time in every
# command that loads NumPy (Dask's workers set the same for the same reason).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from tcplab import signals  # noqa: E402
from tcplab.plain_sockets import plain_sockets_flags  # noqa: E402


def _plain_sockets(flags: dict[str, bool]) -> None:
    try:
        if _early:
            signals.handler(_early[0], None)  # raises, as had it come now
        import gc

        gc.disable()  # (run() would: one snapshot, then the process ends; imports too)
        from tcplab.sockets.command import run_plain

        run_plain(flags)
    except BaseException as exc:
        from tcplab.cli import end_with

        end_with(exc)


def _exit_written() -> None:
    """End the process now that the command's output is flushed.

    The interpreter's teardown would free the snapshot (20,000 rows and their
    fields) one object at a time, then every module: a tenth of `tcplab
    sockets --json -a`'s CPU time on the issue-15 table.  Nothing is left to
    do (the plain path starts no thread and registers no atexit handler), so
    the process ends without it.  A reader that went away (`| head`) ends
    the command as it does on the click path.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException as exc:
        from tcplab.cli import end_with

        end_with(exc)
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    signals.install()
    flags = plain_sockets_flags(sys.argv[1:] if argv is None else argv)
    if flags is not None:
        try:
            _plain_sockets(flags)
        finally:
            signals.hold()
        if argv is None:  # the executable, not a caller that expects main() to return
            _exit_written()
        return
    try:
        if _early:
            signals.handler(_early[0], None)  # raises, as had it come now
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
