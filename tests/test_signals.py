"""Signals at any moment: one line, exit 128 + signal, no traceback, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import default_sigint
from tcplab.lab import host
from tcplab.signals import installed_in
from test_lab_cleanup import host_view, lab_leftovers


def start(argv: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip
    deadline = time.monotonic() + 30
    while not installed_in(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.001)
    return proc


def check_one_line(returncode: int, err: str, signum: int) -> None:
    """No traceback; either finished, or killed by the signal at the very end of
    interpreter shutdown, or one line and 128 + signal."""
    assert "Traceback" not in err and "Exception" not in err, err
    assert returncode in (0, -signum, 128 + signum), (returncode, err)
    lines = [ln for ln in err.splitlines() if ln.strip() and "reaped dead run" not in ln]
    if returncode == 128 + signum:
        assert len(lines) == 1, err
        assert lines[0].startswith(f"tcplab: interrupted by {signal.Signals(signum).name}"), err


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_is_one_line(signum: int, delay: float) -> None:
    """While Python imports click, rich and NumPy: no KeyboardInterrupt traceback."""
    proc = start([sys.executable, "-m", "tcplab", "explain", "TIME_WAIT"])
    time.sleep(delay)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    check_one_line(proc.returncode, err, signum)


EARLY = (
    "import os, sys\n"
    "import tcplab.entry as entry\n"  # its first lines: the remembering handlers
    "os.kill(os.getpid(), int(sys.argv[1]))\n"  # before signals.install()
    "entry.main(['explain', 'TIME_WAIT'])\n"
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_before_the_real_handlers_is_one_line(signum: int) -> None:
    """Between the executable's first line and signals.install() (``signal``
    building its enums, the signals module loading): remembered, then one line.
    The soak saw a KeyboardInterrupt traceback from enum.py and an exit of -15 there."""
    argv = [sys.executable, "-c", EARLY, str(int(signum))]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          preexec_fn=default_sigint, check=False)  # fmt: skip
    assert done.returncode == 128 + signum, (done.returncode, done.stderr)
    assert done.stderr == f"tcplab: interrupted by {signal.Signals(signum).name}\n"
    assert done.stdout == ""


def test_an_ignored_sigint_stays_ignored_from_the_first_line() -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored."""
    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    argv = [sys.executable, "-c", EARLY, str(int(signal.SIGINT))]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          preexec_fn=ignore_sigint, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "TIME-WAIT" in done.stdout


SWALLOWED = (
    "import os, sys, weakref\n"
    "from tcplab import signals\n"
    "signals.install()\n"
    "class Lock: pass\n"
    "def callback(_ref):\n"  # as importlib's module-lock callback: exceptions are 'ignored'
    "    os.kill(os.getpid(), int(sys.argv[1]))\n"
    "    for _ in range(10000): pass\n"  # the handler runs in here
    "lock = Lock(); ref = weakref.ref(lock, callback); del lock\n"
    "try:\n"
    "    for _ in range(10 ** 7): pass\n"
    "    print('carried on')\n"
    "except BaseException as exc:\n"
    "    print(type(exc).__name__, signals.received)\n"
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_whose_exception_python_ignores_is_delivered_again(signum: int) -> None:
    """The soak's early kills found a SIGTERM whose exception landed in importlib's
    weakref callback: printed as "Exception ignored in", and the run carried on."""
    argv = [sys.executable, "-c", SWALLOWED, str(int(signum))]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          preexec_fn=default_sigint, check=False)  # fmt: skip
    name = "KeyboardInterrupt" if signum == signal.SIGINT else "Interrupted"
    assert done.stdout == f"{name} {int(signum)}\n", (done.stdout, done.stderr)
    assert done.stderr == ""


@pytest.mark.root
@pytest.mark.xdist_group("lab")
@pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root")
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_any_moment_of_a_run(signum: int, delay: float, tmp_path: Path) -> None:
    """Imports, namespaces, tracefs, actors, steps, teardown: wherever the signal
    lands, one line, exit 128 + signal (or the run finished), nothing left."""
    before = host_view()
    argv = [sys.executable, "-m", "tcplab", "run", "handshake-close", "--outdir", str(tmp_path)]
    proc = start(argv)
    watch = host.RunWatch(proc.pid)
    time.sleep(delay)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    run_ids = watch.stop()
    check_one_line(proc.returncode, err, signum)
    for run_id in run_ids:
        assert lab_leftovers(run_id) == [], run_id
    assert host_view() == before
