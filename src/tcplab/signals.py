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

import _thread
import signal
import sys
import threading
import time
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

received = 0  # the first signal that asked us to stop (0: none)
exiting = False  # the CLI is already printing its last line: ignore repeats
# Set by whoever tore something down on the way out (the lab: "the run was cleaned up").
after = ""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP asked the process to stop (SIGINT raises KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def handler(signum: int, _frame: FrameType | None) -> None:
    global received
    if exiting:
        return
    if not received:
        received = signum
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT/SIGTERM/SIGHUP to ``handler`` (main thread only).

    A signal the parent set to be ignored stays ignored (a background job of a
    non-interactive shell starts with SIGINT ignored, as Python itself respects).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in HANDLED:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, handler)
    threading.excepthook = _quiet_after_signal
    sys.unraisablehook = _redeliver


def hold() -> None:
    """Block SIGINT/SIGTERM/SIGHUP for the rest of the process (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)


def installed() -> bool:
    return signal.getsignal(signal.SIGTERM) is handler


def installed_in(pid: int) -> bool:
    """Whether process ``pid``'s tcplab handlers are in place: it catches SIGTERM
    (``SigCgt`` in proc(5); Python alone does not) from ``tcplab.entry``'s first
    line on.  Before that the signal meets the interpreter's own start-up, out
    of tcplab's reach.  A process already gone counts as ready."""
    from pathlib import Path  # (this module loads before the handlers: keep it light)

    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    caught = next(ln for ln in status.splitlines() if ln.startswith("SigCgt:")).split()[1]
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


_default_excepthook = threading.excepthook


def _quiet_after_signal(args: threading.ExceptHookArgs) -> None:
    """A thread that dies while the process is being stopped (a sock_diag reader
    whose namespace is already gone) is part of the teardown, not news."""
    if received:
        return
    _default_excepthook(args)


_default_unraisablehook = sys.unraisablehook


def _redeliver(unraisable: sys.UnraisableHookArgs) -> None:
    """The handler's exception landed where Python can only ignore it: a
    weakref callback (importlib's module locks), a ``__del__``.  Python would
    print "Exception ignored in ..." and carry on as if nothing was asked; the
    signal is delivered again instead (``_thread.interrupt_main``), and its
    exception raised at the main thread's next step, where the CLI ends it."""
    stop = isinstance(unraisable.exc_value, (Interrupted, KeyboardInterrupt))
    if received and not exiting and stop:
        # From another thread, a moment later: re-armed here, the handler would
        # run again before this hook returned, and be ignored once more.
        _thread.start_new_thread(_interrupt_soon, (signal.Signals(received),))
        return
    _default_unraisablehook(unraisable)


def _interrupt_soon(signum: signal.Signals) -> None:
    time.sleep(0.001)
    _thread.interrupt_main(signum)


def exit_status(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 SIGINT, 143 SIGTERM)."""
    return 128 + signum


def message(signum: int) -> str:
    text = f"interrupted by {signal.Signals(signum).name}"
    return f"{text}; {after}" if after else text
