"""Killing a run leaves nothing behind once ``tcplab cleanup`` has run; the host is unchanged."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import default_sigint
from tcplab.lab import host

pytestmark = [
    pytest.mark.root,
    pytest.mark.xdist_group("lab"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root"),
]

SLOW_SCENARIO = """
id = "kill-me"
title = "a run that lasts long enough to be killed"

[sysctl.client]
"net.ipv4.tcp_fin_timeout" = 7

[[step]]
actor = "server"
call = "listen"

[[step]]
actor = "server"
call = "accept"
background = true

[[step]]
actor = "client"
call = "connect"

[[step]]
actor = "client"
call = "sleep"
seconds = 20
"""


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def host_view() -> dict[str, object]:
    """What must not change on the host."""
    view: dict[str, object] = {
        "links": [
            (link["ifname"], link.get("operstate"), link.get("mtu"))
            for link in json.loads(_run("ip", "-j", "link"))
        ],
        "routes": _run("ip", "-j", "route"),
        "routes6": _run("ip", "-6", "-j", "route"),
        "sysctl": {
            name: Path("/proc/sys", *name.split(".")).read_text()
            for name in (
                "net.ipv4.tcp_fin_timeout",
                "net.ipv6.conf.default.disable_ipv6",
                "net.ipv4.tcp_syn_retries",
            )
        },
    }
    if shutil.which("nft"):
        view["nft"] = _run("nft", "list", "ruleset")
    return view


def lab_leftovers(run_id: str) -> list[str]:
    """Everything of one run that could be left: namespaces, links, mounts, tracefs, state."""
    left = [ns for ns in _run("ip", "netns", "list").split() if run_id in ns]
    left += [line for line in Path("/proc/mounts").read_text().splitlines() if run_id in line]
    left += [ln for ln in _run("ip", "-o", "link").splitlines() if f"tl{run_id}" in ln]
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if parts[2] == "tracefs" and (Path(parts[1]) / "instances" / f"tcplab-{run_id}").exists():
            left.append(f"tracefs instance in {parts[1]}")
    if (host.STATE_ROOT / run_id).exists():
        left.append(f"state dir {run_id}")
    return left


def start_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, list[int]]:
    scenario = tmp_path / "kill-me.toml"
    scenario.write_text(SLOW_SCENARIO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcplab", "run", str(scenario), "--outdir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for path in host.STATE_ROOT.glob("*/state.json"):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            started = len(state["pids"]) == 2 and state["tracefs_instance"]
            if state["lab_pid"] == proc.pid and started:
                time.sleep(0.5)  # into the sleep step: connected, actors up
                return proc, state["run_id"], [p for p, _ in state["pids"]]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the run never got going")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_killed_run_then_cleanup_leaves_nothing(signum: int, tmp_path: Path) -> None:
    before = host_view()
    proc, run_id, actor_pids = start_run(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{8}", run_id)
    assert any(run_id in ns for ns in _run("ip", "netns", "list").split())
    os.kill(proc.pid, signum)
    proc.wait(timeout=45)  # teardown (actors, namespaces, tracefs) is slow on a loaded machine
    assert proc.returncode != 0
    if signum != signal.SIGKILL:
        # The run cleaned up after itself, and said so in one line.
        assert lab_leftovers(run_id) == []
        err = proc.stderr.read().decode() if proc.stderr else ""
        # (click echoes an empty line on Ctrl-C before the CLI's own line; a run
        # another test killed with SIGKILL may have been reaped first, one line)
        lines = [x for x in err.strip().splitlines() if "reaped dead run(s)" not in x]
        assert "Traceback" not in err and len(lines) == 1, err
    cleaned = subprocess.run([sys.executable, "-m", "tcplab", "cleanup"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    if signum == signal.SIGKILL:
        # Removed by this cleanup, unless a run started meanwhile (another test,
        # another engineer's lab) reaped it first, as every run does.
        assert f"tcplab-{run_id}-c" in cleaned.stdout or lab_leftovers(run_id) == []
    else:
        assert f"tcplab-{run_id}" not in cleaned.stdout
    assert lab_leftovers(run_id) == []
    time.sleep(0.2)
    for pid in actor_pids:
        gone = host.proc_starttime(pid) == 0
        assert gone or "tcplab" not in Path(f"/proc/{pid}/cmdline").read_text()
    assert host_view() == before


def test_cleanup_spares_other_tools_namespaces() -> None:
    name = "tcplab-notalab"
    host.ip("netns", "add", name)
    try:
        subprocess.run([sys.executable, "-m", "tcplab", "cleanup"], check=True, capture_output=True)
        assert name in _run("ip", "netns", "list")
    finally:
        host.ip("netns", "del", name)


def test_two_runs_at_once_do_not_disturb_each_other(tmp_path: Path) -> None:
    import threading

    from tcplab import scenario as scenarios
    from tcplab.lab.runner import Lab, RunResult

    results: dict[str, RunResult] = {}
    errors: list[BaseException] = []

    def play(sid: str) -> None:
        try:
            results[sid] = Lab(tmp_path / sid).run(scenarios.load(sid))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=play, args=(s,)) for s in ("both-close", "shutdown-wr")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for sid, result in results.items():
        assert all(f.held for f in result.facts), (sid, [f for f in result.facts if not f.held])
        mine = {result.timeline.endpoint(ep).address for ep in ("client", "server")}
        assert {p.src for p in result.timeline.packets()} == mine
        # Each run mounted and removed its own tracefs; neither kept the other's alive.
        assert lab_leftovers(result.timeline.meta["run_id"]) == []


def test_a_run_holding_its_lock_is_live_whatever_its_pid_says() -> None:
    """Sessions in another pid namespace see other pids: the lock decides."""
    from tcplab.lab.cleanup import cleanup
    from tcplab.lab.host import RunState

    run_id = "0badc0de"
    state = RunState(run_id, lab_pid=2**22 + 7, lab_start=1,
                     namespaces=[f"tcplab-{run_id}-c"])  # fmt: skip
    fd = state.hold()
    try:
        state.save()
        host.ip("netns", "add", f"tcplab-{run_id}-c")
        report = cleanup()
        assert run_id in report.live
        assert f"tcplab-{run_id}-c" in _run("ip", "netns", "list")
    finally:
        os.close(fd)
    report = cleanup()
    # (a run starting meanwhile may have reaped it first: every run reaps dead ones)
    assert f"tcplab-{run_id}-c" in report.namespaces or run_id not in _run("ip", "netns", "list")
    assert lab_leftovers(run_id) == []


def test_a_killed_run_is_reaped_by_the_next_run(tmp_path: Path) -> None:
    """SIGKILL leaves everything behind; the next ``tcplab run`` removes it without
    being asked, says so in one line, and passes."""
    before = host_view()
    proc, run_id, actor_pids = start_run(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=45)
    if proc.stderr is not None:
        proc.stderr.close()
    assert lab_leftovers(run_id) != []  # SIGKILL: the run could not clean up
    nxt = subprocess.run(
        [sys.executable, "-m", "tcplab", "run", "handshake-close", "--outdir", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert nxt.returncode == 0, nxt.stderr
    assert "Traceback" not in nxt.stderr
    reaped = [line for line in nxt.stderr.splitlines() if "reaped dead run" in line]
    # One line, naming the run, unless another run on this machine reaped it first.
    assert len(reaped) <= 1, nxt.stderr
    if reaped:
        assert reaped[0].startswith("tcplab: reaped dead run(s)")
    if reaped and run_id in reaped[0]:
        assert f"tcplab-{run_id}-c" in reaped[0]
    assert lab_leftovers(run_id) == []
    for pid in actor_pids:
        gone = host.proc_starttime(pid) == 0
        assert gone or "tcplab" not in Path(f"/proc/{pid}/cmdline").read_text()
    assert host_view() == before


def test_reaping_never_touches_a_live_run(tmp_path: Path) -> None:
    """A run in progress (its lock held) survives another run's reaping intact."""
    proc, run_id, _ = start_run(tmp_path)
    try:
        other = subprocess.run(
            [sys.executable, "-m", "tcplab", "run", "handshake-close", "--outdir",
             str(tmp_path / "other")],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert other.returncode == 0, other.stderr
        assert run_id not in other.stderr
        assert proc.poll() is None
        assert f"tcplab-{run_id}-c" in _run("ip", "netns", "list")
        assert (host.STATE_ROOT / run_id / "state.json").exists()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=45)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == 143
    assert lab_leftovers(run_id) == []
