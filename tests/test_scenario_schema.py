"""Broken scenario files: every problem as ``FILE: KEY: problem``, before anything runs.

The kinds of broken file issue 15 found (26 in its first set, 32 in its
second) and more: wrong types, out-of-range ports and durations, unknown
enum values, names that are paths, non-UTF-8, oversized files, too many
steps.  Each gets exactly one line naming the file and the key; none a
traceback, none a hang.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcplab.errors import InputError
from tcplab.scenario import Scenario, Step, load, load_file

BASE = 'id = "t"\n'
STEP = '\n[[step]]\nactor = "server"\ncall = "listen"\n'


def step(body: str) -> str:
    return BASE + STEP + "\n[[step]]\n" + body + "\n"


def fault(body: str) -> str:
    return BASE + STEP + '\n[[fault]]\naction = "drop"\n' + body + "\n"


def expect(body: str) -> str:
    return BASE + STEP + "\n[expect]\n" + body + "\n"


# (name, file text, the KEY its one line must name)
CASES: list[tuple[str, str, str]] = [
    # -- issue 15, first set: tracebacks and hangs
    ("server_port-string", 'id = "t"\nserver_port = "http"\n' + STEP, "server_port"),
    ("sleep-negative", step('actor = "client"\ncall = "sleep"\nseconds = -5'), "step[2].seconds"),
    ("sysctl-int", 'id = "t"\nsysctl = 5\n' + STEP, "sysctl"),
    ("step-string", 'id = "t"\nstep = "listen"\n', "step"),
    ("server_port-huge", 'id = "t"\nserver_port = 99999999999\n' + STEP, "server_port"),
    ("fault-nth-string", fault('nth = "first"'), "fault[1].nth"),
    ("wait-timeout-1e300", step('actor = "client"\ncall = "wait"\ngone = true\ntimeout = 1e300'),
     "step[2].timeout"),
    ("wait-timeout-negative", step('actor = "client"\ncall = "wait"\ngone = true\ntimeout = -1'),
     "step[2].timeout"),
    ("id-path", 'id = "../../../tmp/x"\n' + STEP, "id"),
    # -- issue 15, second set
    ("step-single-table", 'id = "t"\n[step]\nactor = "server"\ncall = "listen"\n', "step"),
    ("max_payload-string", expect('max_payload = "big"'), "expect.max_payload"),
    ("explain-string", 'id = "t"\nexplain = "text"\n' + STEP, "explain"),
    ("flag_counts-array", expect('flag_counts = ["S"]'), "expect.flag_counts"),
    ("flag_counts-value", expect('flag_counts = { S = "one" }'), "expect.flag_counts.S"),
    ("seeds-string", 'id = "t"\nseeds = "000"\n' + STEP, "seeds"),
    ("seeds-ints", 'id = "t"\nseeds = [1]\n' + STEP, "seeds[1]"),
    ("wait-unknown-state", step('actor = "client"\ncall = "wait"\nstate = "HALF-OPEN"'),
     "step[2].state"),
    ("server_port-70000", 'id = "t"\nserver_port = 70000\n' + STEP, "server_port"),
    ("server_port-negative", 'id = "t"\nserver_port = -1\n' + STEP, "server_port"),
    ("server_port-zero", 'id = "t"\nserver_port = 0\n' + STEP, "server_port"),
    ("connect-port-70000", step('actor = "client"\ncall = "connect"\nport = 70000'),
     "step[2].port"),
    # -- names
    ("id-slash", 'id = "a/b"\n' + STEP, "id"),
    ("id-empty", 'id = ""\n' + STEP, "id"),
    ("id-int", "id = 5\n" + STEP, "id"),
    ("id-missing", 'title = "x"\n' + STEP, "id"),
    ("sock-path", step('actor = "client"\ncall = "close"\nsock = "../x"'), "step[2].sock"),
    ("accept-into-path", step('actor = "server"\ncall = "accept"\ninto = "a b"'), "step[2].into"),
    # -- top level
    ("title-int", 'id = "t"\ntitle = 5\n' + STEP, "title"),
    ("needs-unknown", 'id = "t"\nneeds = ["gpu"]\n' + STEP, "needs[1]"),
    ("explain-language", 'id = "t"\nexplain = { fr = "x" }\n' + STEP, "explain.fr"),
    ("unknown-key", 'id = "t"\ncolour = 1\n' + STEP, "colour"),
    ("extra-external-int", BASE + STEP + '\n[extra.external]\nserver = 5\nclient = "x"\n',
     "extra.external.server"),
    # -- expect
    ("expect-unknown-state", expect('states = { client = ["HALF"] }'), "expect.states.client[1]"),
    ("expect-final-endpoint", expect('final_states = { robot = "CLOSED" }'),
     "expect.final_states.robot"),
    ("expect-errno-unknown", expect('errno = { "client.connect" = "ENOPE" }'),
     "expect.errno.client.connect"),
    ("expect-dropped-negative", expect("dropped = -1"), "expect.dropped"),
    ("expect-snapshot-endpoint", expect('snapshot = [{ state = "LISTEN" }]'),
     "expect.snapshot[1].endpoint"),
    ("expect-segment-key", expect("segments = [{ colour = 1 }]"), "expect.segments[1].colour"),
    ("expect-unknown-fact", expect("weather = 1"), "expect.weather"),
    ("expect-silent-after", expect('silent_after = ["client"]'), "expect.silent_after[1]"),
    ("expect-flags-int", expect("flags = 5"), "expect.flags"),
    ("expect-string", 'id = "t"\nexpect = "all good"\n' + STEP, "expect"),
    # -- steps
    ("sleep-1e300", step('actor = "client"\ncall = "sleep"\nseconds = 1e300'), "step[2].seconds"),
    ("sleep-nan", step('actor = "client"\ncall = "sleep"\nseconds = nan'), "step[2].seconds"),
    ("sleep-inf", step('actor = "client"\ncall = "sleep"\nseconds = inf'), "step[2].seconds"),
    ("sleep-string", step('actor = "client"\ncall = "sleep"\nseconds = "1"'), "step[2].seconds"),
    ("sleep-missing", step('actor = "client"\ncall = "sleep"'), "step[2].seconds"),
    ("actor-unknown", step('actor = "router"\ncall = "listen"'), "step[2].actor"),
    ("call-unknown", step('actor = "client"\ncall = "teleport"'), "step[2].call"),
    ("backlog-string", step('actor = "server"\ncall = "listen"\nbacklog = "five"'),
     "step[2].backlog"),
    ("bind-port-negative", step('actor = "client"\ncall = "bind"\nport = -1'), "step[2].port"),
    ("send-size-negative", step('actor = "client"\ncall = "send"\nsize = -1'), "step[2].size"),
    ("send-data-int", step('actor = "client"\ncall = "send"\ndata = 5'), "step[2].data"),
    ("setsockopt-option", step('actor = "client"\ncall = "setsockopt"\noption = "SO_MAGIC"\n'
                               "value = 1"), "step[2].option"),
    ("setsockopt-value", step('actor = "client"\ncall = "setsockopt"\noption = "SO_REUSEADDR"\n'
                              'value = "yes"'), "step[2].value"),
    ("shutdown-how", step('actor = "client"\ncall = "shutdown"\nhow = "SHUT_UP"'),
     "step[2].how"),
    ("recv-until", step('actor = "client"\ncall = "recv"\nuntil = "forever"'), "step[2].until"),
    ("expect_errno-unknown", step('actor = "client"\ncall = "close"\nexpect_errno = "ENOPE"'),
     "step[2].expect_errno"),
    ("background-string", step('actor = "client"\ncall = "close"\nbackground = "yes"'),
     "step[2].background"),
    ("step-extra-argument", step('actor = "server"\ncall = "close"\ncolour = 1'),
     "step[2].colour"),
    ("wire-host", step('actor = "wire"\ncall = "blackhole"\nhost = "router"'), "step[2].host"),
    ("step-not-table", 'id = "t"\nstep = [5]\n', "step[1]"),
    ("steps-empty", 'id = "t"\nstep = []\n', "step"),
    # -- faults
    ("fault-action", BASE + STEP + '\n[[fault]]\naction = "explode"\n', "fault[1].action"),
    ("fault-action-missing", BASE + STEP + '\n[[fault]]\nsender = "client"\n',
     "fault[1].action"),
    ("fault-seconds-negative", fault("seconds = -2"), "fault[1].seconds"),
    ("fault-after-1e300", fault("after = 1e300"), "fault[1].after"),
    ("fault-when", fault('when = "sometime"'), "fault[1].when"),
    ("fault-release_after-zero", fault("release_after = 0"), "fault[1].release_after"),
    ("fault-sender", fault('sender = "router"'), "fault[1].sender"),
    # -- sysctls
    ("sysctl-not-net", BASE + STEP + '\n[sysctl.client]\n"kernel.panic" = 1\n',
     "sysctl.client.kernel.panic"),
    ("sysctl-path", BASE + STEP + '\n[sysctl.client]\n"net.ipv4/../../kernel/x" = 1\n',
     "sysctl.client.net.ipv4/../../kernel/x"),
    ("sysctl-actor", BASE + STEP + '\n[sysctl.router]\n"net.ipv4.tcp_fin_timeout" = 1\n',
     "sysctl.router"),
    ("sysctl-value-array", BASE + STEP + '\n[sysctl.client]\n"net.ipv4.tcp_fin_timeout" = [1]\n',
     "sysctl.client.net.ipv4.tcp_fin_timeout"),
    ("sysctl-value-newline",
     BASE + STEP + '\n[sysctl.client]\n"net.ipv4.tcp_fin_timeout" = "1\\n2"\n',
     "sysctl.client.net.ipv4.tcp_fin_timeout"),
]


@pytest.mark.parametrize(("name", "text", "key"), CASES, ids=[c[0] for c in CASES])
def test_each_broken_file_gets_its_one_line(tmp_path: Path, name: str, text: str,
                                            key: str) -> None:  # fmt: skip
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_file(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: {key}: "), lines[0]


def test_there_are_as_many_kinds_as_the_issue_found() -> None:
    assert len(CASES) >= 26 + 32


def test_every_problem_of_a_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "many.toml"
    path.write_text('id = "a/b"\nserver_port = 70000\n' + STEP +
                    '\n[[step]]\nactor = "client"\ncall = "sleep"\nseconds = -1\n')  # fmt: skip
    with pytest.raises(InputError) as info:
        load_file(path)
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["id", "server_port", "step[2].seconds"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'id = "t"\ntitle = "caf\xe9"\n' + STEP.encode())
    with pytest.raises(InputError, match=r"latin1\.toml: offset 21: not UTF-8 \(byte 0xe9\)"):
        load_file(path)


def test_a_10_mb_file_of_20000_steps_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    body = '\n[[step]]\nactor = "client"\ncall = "send"\ndata = "' + "x" * 480 + '"\n'
    path.write_text(BASE + body * 20000)
    assert path.stat().st_size > 10_000_000
    with pytest.raises(InputError, match=r"huge\.toml: file: larger than 1048576 bytes"):
        load_file(path)


def test_too_many_steps(tmp_path: Path) -> None:
    path = tmp_path / "long.toml"
    path.write_text(BASE + STEP * 1001)
    with pytest.raises(InputError, match=r"long\.toml: step: has 1001 entries; at most 1000"):
        load_file(path)


def test_not_toml_and_empty(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("id = \n")
    with pytest.raises(InputError, match=r"bad\.toml: not valid TOML"):
        load_file(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(InputError) as info:
        load_file(empty)
    assert str(info.value).splitlines() == [
        f"{empty}: id: missing", f"{empty}: step: a scenario needs at least one [[step]]"]


def test_builtin_lookup_is_by_name_only() -> None:
    with pytest.raises(InputError, match="no scenario"):
        load("../scenarios/both-close")


# -- through the commands: one line each, exit 2, nothing run ---------------------------

CLI_CASES = ["server_port-huge", "sleep-1e300", "step-single-table", "id-path", "fault-nth-string",
             "wait-unknown-state", "connect-port-70000"]  # fmt: skip


@pytest.mark.parametrize("command", ["sim", "run"])
@pytest.mark.parametrize("name", CLI_CASES)
def test_run_and_sim_share_the_check(tmp_path: Path, command: str, name: str) -> None:
    text, key = next((t, k) for n, t, k in CASES if n == name)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    began = time.monotonic()
    argv = [sys.executable, "-m", "tcplab", command, str(path)]
    if command == "run":
        argv += ["--outdir", str(tmp_path / "out")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [line for line in done.stderr.splitlines()
                                        if line.startswith(f"tcplab: {path}: {key}: ")]
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written
    assert time.monotonic() - began < 60


# -- output paths ------------------------------------------------------------------------------

def test_an_id_that_is_a_path_never_reaches_the_output_dir(tmp_path: Path) -> None:
    from tcplab.lab.output import output_path

    with pytest.raises(InputError, match="is not a name"):
        output_path(tmp_path, "../../../tmp/x", ".json")
    assert output_path(tmp_path, "ok-name_1", ".json") == (tmp_path / "ok-name_1.json").resolve()


def test_a_symlink_out_of_the_output_dir_is_refused(tmp_path: Path) -> None:
    from tcplab.lab.output import output_path

    out = tmp_path / "out"
    out.mkdir()
    (out / "x.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(InputError, match="outside"):
        output_path(out, "x", ".json")


@pytest.mark.skipif(os.geteuid() != 0, reason="Lab.run checks for root first")
def test_lab_refuses_a_bad_id_before_building_anything(tmp_path: Path) -> None:
    from tcplab.lab.runner import Lab

    sc = Scenario(id="../escape", title="x", steps=(Step("server", "listen"),))
    began = time.monotonic()
    with pytest.raises(InputError, match="is not a name"):
        Lab(tmp_path / "out").run(sc)
    assert not (tmp_path / "out").exists()
    assert time.monotonic() - began < 30


# -- scenario files are programs ---------------------------------------------------------------

@pytest.mark.parametrize(("mode", "who"), [(0o664, "its group"), (0o646, "others"),
                                           (0o666, "group and others")])  # fmt: skip
def test_a_file_others_could_write_is_refused(tmp_path: Path, mode: int, who: str) -> None:
    path = tmp_path / "shared.toml"
    path.write_text(BASE + STEP)
    path.chmod(mode)
    with pytest.raises(InputError, match=f"permissions: writable by {who}"):
        load(str(path), trust=False)
    assert load(str(path), trust=True).id == "t"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "theirs.toml"
    path.write_text(BASE + STEP)
    os.chown(path, 65534, 65534)
    with pytest.raises(InputError, match=r"owner: uid 65534 owns it"):
        load(str(path), trust=False)
    assert load(str(path), trust=True).id == "t"


def test_run_refuses_it_unless_trust(tmp_path: Path) -> None:
    path = tmp_path / "shared.toml"
    # A fault with --loopback is refused before anything is built: it shows the
    # file got past the permission check without running anything.
    path.write_text(fault(""))
    path.chmod(0o666)
    argv = [sys.executable, "-m", "tcplab", "run", str(path), "--loopback",
            "--outdir", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"tcplab: {path}: permissions: writable by group and others (mode 0666); "
        "a scenario runs programs as root: chmod go-w it, or pass --trust"]
    trusted = subprocess.run([*argv, "--trust"], capture_output=True, text=True, timeout=60,
                             check=False)  # fmt: skip
    assert "permissions" not in trusted.stderr
    assert trusted.returncode != 0 and "faults need the lab's wire" in trusted.stderr


def test_help_says_scenario_files_are_programs() -> None:
    done = subprocess.run([sys.executable, "-m", "tcplab", "run", "--help"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert "A scenario file is a program" in done.stdout
    assert "--trust" in done.stdout
