"""Remove what killed lab runs left behind: namespaces, tracefs instances, mounts, actors.

A run records everything it creates in ``/run/tcplab/<runid>/state.json``
before creating it.  A run is *live* while its lab process (pid + start
time, so a reused pid does not count) still exists; live runs are left
alone.  For a dead run: its actor processes are killed by recorded pid,
only if the pid still has the recorded start time (it is still ours); then
its namespaces, tracefs instance and private tracefs mount are removed.
Orphans without a state file are found by name (``tcplab-*`` namespaces
and ``instances/tcplab-*`` tracefs instances) and removed when no live run
owns them.  Nothing else is touched.

Every ``tcplab run`` reaps first (``reap_dead``) and says in one line what
it removed; ``tcplab cleanup`` is the explicit form.  Reapers take
``/run/tcplab/.reap.lock`` so two starting runs never reap the same run twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tcplab.lab import host
from tcplab.lab.host import STATE_ROOT, LabError, RunState
from tcplab.lab.tracer import remove_instance, unmount


@dataclass
class CleanupReport:
    runs: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    live: list[str] = field(default_factory=list)

    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.namespaces or self.instances or self.mounts or self.killed or self.runs)

    def summary(self) -> str:
        """One line: what reaping removed (for the command that reaped first)."""
        parts = [
            f"{len(items)} {noun if len(items) == 1 else plural} ({', '.join(map(str, items))})"
            for noun, plural, items in (
                ("namespace", "namespaces", self.namespaces),
                ("tracefs instance", "tracefs instances", self.instances),
                ("tracefs mount", "tracefs mounts", self.mounts),
                ("leftover process", "leftover processes", self.killed),
            )
            if items
        ]  # fmt: skip
        runs = ", ".join(self.runs) if self.runs else "runs without a state file"
        text = f"reaped dead run(s) {runs}: removed {'; '.join(parts) or 'their state'}"
        if self.problems:
            text += f" (could not remove: {'; '.join(self.problems)})"
        return text


def _reap_lock() -> AbstractContextManager[None]:
    """One reaper at a time: two runs starting together must not both delete
    the same dead run's namespace (the second ``ip netns del`` would fail)."""
    return host.state_lock(".reap.lock")


def reap_dead() -> CleanupReport:
    """What ``tcplab run`` does before it creates anything: ``cleanup`` of dead runs
    only (a run whose liveness lock is held is never touched)."""
    return cleanup(include_live=False)


def _del_namespace(name: str, report: CleanupReport) -> None:
    """Kill what still runs inside (a dead run's actors and their children; only a
    run puts processes in its own namespaces), then delete it."""
    with suppress(LabError):
        report.killed.extend(host.kill_namespace_processes(name))
    try:
        host.ip("netns", "del", name)
    except LabError as exc:
        if (host.NETNS_DIR / name).exists():
            report.problems.append(str(exc))
            return
    report.namespaces.append(name)


def remove_own_tracefs(state: RunState, report: CleanupReport | None = None) -> None:
    """A run's own tracefs instance and private mount, if they still exist; only
    paths of the run's own form, whatever the state file says."""
    instance = Path(state.tracefs_instance) if state.tracefs_instance else None
    if instance and instance.name == f"tcplab-{state.run_id}" and instance.is_dir():
        remove_instance(instance)
        if report is not None:
            report.instances.append(str(instance))
    own_mount = str(state.dir / "tracefs")
    if state.tracefs_mount == own_mount and own_mount in _tracefs_mounts():
        unmount(Path(own_mount))
        if report is not None:
            report.mounts.append(own_mount)


def _alive(state: RunState) -> bool:
    """A run is live while its lab holds the run's lock (or, for a run without
    one, while its lab process, same pid and start time, exists)."""
    if RunState.held(state.dir):
        return True
    if (state.dir / "lock").exists():
        return False
    return state.lab_pid > 0 and host.proc_starttime(state.lab_pid) == state.lab_start != 0


def _tracefs_mounts() -> list[str]:
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "tracefs":
            out.append(parts[1])
    return out


def cleanup(include_live: bool = False) -> CleanupReport:
    with _reap_lock():
        return _cleanup(include_live)


def _cleanup(include_live: bool) -> CleanupReport:
    report = CleanupReport()
    live_names: set[str] = set()
    states: list[RunState] = []
    if STATE_ROOT.is_dir():
        for path in sorted(STATE_ROOT.glob("*/state.json")):
            if not host.RUN_ID.match(path.parent.name):
                continue  # not a lab run's directory (other tools share /run/tcplab)
            try:
                state = RunState.load(path)
            except (OSError, ValueError, TypeError):
                continue
            if state.run_id != path.parent.name:
                continue
            if _alive(state) and not include_live:
                report.live.append(state.run_id)
                live_names.add(f"tcplab-{state.run_id}")
                continue
            states.append(state)
    for state in states:
        for pid, start in state.pids:
            # Still ours: the same process (pid and start time) the run recorded.
            if start and host.proc_starttime(pid) == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                    report.killed.append(pid)
                except ProcessLookupError:
                    pass
        # Only names of this run's own form, whatever the file says.
        try:
            remove_own_tracefs(state, report)
        except LabError as exc:
            report.problems.append(str(exc))
        for name in state.namespaces:
            match = host.RUN_NAMESPACE.match(name)
            if match and match[1] == state.run_id and (host.NETNS_DIR / name).exists():
                _del_namespace(name, report)
        shutil.rmtree(state.dir, ignore_errors=True)
        report.runs.append(state.run_id)
    # Orphans by name, for a run killed before it wrote its state file.  Only
    # names of exactly the lab's form; a live run's things are left alone.
    live_ids = {name.removeprefix("tcplab-") for name in live_names}
    if host.NETNS_DIR.is_dir():
        for ns in sorted(host.NETNS_DIR.iterdir()):
            match = host.RUN_NAMESPACE.match(ns.name)
            if match and match[1] not in live_ids and not RunState.held(STATE_ROOT / match[1]):
                _del_namespace(ns.name, report)
    for mount in _tracefs_mounts():
        instances = Path(mount) / "instances"
        for inst in sorted(instances.iterdir()) if instances.is_dir() else []:
            match = host.RUN_INSTANCE.match(inst.name)
            if match and match[1] not in live_ids and not RunState.held(STATE_ROOT / match[1]):
                try:
                    remove_instance(inst)
                except LabError as exc:
                    report.problems.append(str(exc))
                    continue
                report.instances.append(str(inst))
        parts = Path(mount).relative_to(STATE_ROOT).parts if mount.startswith(
            str(STATE_ROOT) + "/") else ()  # fmt: skip
        if len(parts) == 2 and host.RUN_ID.match(parts[0]) and parts[1] == "tracefs" \
                and parts[0] not in live_ids:  # fmt: skip
            unmount(Path(mount))
            report.mounts.append(mount)
    # State directories of runs that never got far enough to write state.json.
    # (A directory whose lock is held belongs to a run that is starting.)
    if STATE_ROOT.is_dir():
        for entry in sorted(STATE_ROOT.iterdir()):
            abandoned = (
                host.RUN_ID.match(entry.name) is not None
                and entry.name not in live_ids
                and not (entry / "state.json").exists()
                and not RunState.held(entry)
                # (a run writing its first state file right now is not abandoned)
                and time.time() - entry.stat().st_mtime > 60
                and not any(m.startswith(f"{entry}/") for m in _tracefs_mounts())
            )
            if abandoned:
                shutil.rmtree(entry, ignore_errors=True)
    return report
