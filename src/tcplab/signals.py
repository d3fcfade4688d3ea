"""SIGINT, SIGTERM and SIGHUP at any moment: one line, exit 128 + signal, nothing left.

Theory of operation.  ``tcplab.entry`` installs ``handler`` before it
imports anything heavy, so a Ctrl-C during start-up is handled like any
other.  The handler remembers the first signal (``received``) and raises
into the main thread: ``KeyboardInterrupt`` for SIGINT (so code that stops
on Ctrl-C, ``tcplab sockets --watch``, keeps doing so) and ``Interrupted``
for SIGTERM/SIGHUP.  ``Interrupted`` is a ``BaseException``: an ``except
Exception`` meant for an I/O error must not swallow a request to stop.

An exception raised by a handler lands between two bytecodes, wherever the
main thread is: inside ``threading.Thread.start`` it can surface as a
``KeyError`` from the threading module's bookkeeping, inside a sock_diag
dump as a later EBUSY.  So the CLI does not decide by the exception's type:
once a signal was received, whatever ends the command ends it as that
signal (``exit_status``), with one line and no traceback.  Teardown holds
the signals (``pthread_sigmask``) and is idempotent; after the first
signal, further ones only repeat the request (``exiting``) and threads that
die in the teardown die quietly (``quiet_threads``).
"""

from __future__ import annotations

# Only the C module behind ``signal`` at import: ``signal`` loads ``enum`` and
# ``threading`` is bigger still, together about 17 ms of start-up (more on a
# loaded machine) in which a Ctrl-C used to end in a traceback from enum.py.
# With ``_signal`` the handlers are in place at tcplab's first line; what is
# left is the interpreter's own start-up (site), where a signal kills the
# process the way it kills any program (the shell reports 128 + N).
import sys

TYPE_CHECKING = False  # typing itself costs 17 ms: mypy reads this name as typing's
if TYPE_CHECKING:
    import signal as _signal  # the same functions and constants, typed
    import threading
    from collections.abc import Callable
    from types import FrameType
else:
    import _signal

HANDLED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)

received = 0  # the first signal that asked us to stop (0: none)
exiting = False  # the CLI is already printing its last line: ignore repeats
# Set by whoever tore something down on the way out (the lab: "the run was cleaned up").
after = ""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP asked the process to stop (SIGINT raises KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {_name(signum)}")
        self.signum = signum


def handler(signum: int, _frame: FrameType | None) -> None:
    global received
    if exiting:
        return
    if not received:
        received = signum
    _quiet_threads()
    if signum == _signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT/SIGTERM/SIGHUP to ``handler`` (main thread only).

    A signal the parent set to be ignored stays ignored (a background job of a
    non-interactive shell starts with SIGINT ignored, as Python itself respects).
    """
    for sig in HANDLED:
        try:
            if _signal.getsignal(sig) is not _signal.SIG_IGN:
                _signal.signal(sig, handler)
        except ValueError:  # not the main thread: signals are the main thread's
            return


def _quiet_threads() -> None:
    """From the first signal on, threads that die in the teardown die quietly.
    Set here rather than in ``install``: importing threading there would open
    the start-up window again (and a thread that dies before any signal is news)."""
    global _default_excepthook
    if "threading" not in sys.modules:
        return
    import threading  # loaded already: a dictionary look-up

    try:
        if threading.excepthook is not _quiet_after_signal:
            _default_excepthook = threading.excepthook
            threading.excepthook = _quiet_after_signal
    except AttributeError:  # the signal came while threading loads: no thread of ours yet
        return


def hold() -> None:
    """Block SIGINT/SIGTERM/SIGHUP for the rest of the process (main thread only)."""
    if "threading" in sys.modules:  # else only the main thread exists
        import threading  # loaded already: a dictionary look-up

        if threading.current_thread() is not threading.main_thread():
            return
    _signal.pthread_sigmask(_signal.SIG_BLOCK, HANDLED)


def installed() -> bool:
    return _signal.getsignal(_signal.SIGTERM) is handler


_default_excepthook: Callable[[threading.ExceptHookArgs], object] | None = None


def _quiet_after_signal(args: threading.ExceptHookArgs) -> None:
    """A thread that dies while the process is being stopped (a sock_diag reader
    whose namespace is already gone) is part of the teardown, not news."""
    if received:
        return
    if _default_excepthook is not None:
        _default_excepthook(args)


def exit_status(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 SIGINT, 143 SIGTERM)."""
    return 128 + signum


def _name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def message(signum: int) -> str:
    text = f"interrupted by {_name(signum)}"
    return f"{text}; {after}" if after else text
