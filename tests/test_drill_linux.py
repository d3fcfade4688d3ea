"""``tcplab drill`` against the live kernel: the corpus scripts that pass must keep passing.

Each script runs in its own fresh namespace (parallel-safe), in one xdist
group so their timing is not fought over by each other.  A script that fails
on timing alone is re-run (``--retries``), as a busy machine makes events
late; a failure on anything else fails the test at once.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, SHARED, default_sigint, run_tcplab
from tcplab.commands.drill import run_one

CORPUS = SHARED / "peer-traces/packetdrill"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the drill runner needs root"),
    pytest.mark.skipif(
        not CORPUS.is_dir(), reason="the packetdrill corpus is not beside the checkout"
    ),
    pytest.mark.xdist_group("drill-live"),
]

# Scripts that pass on Linux for both IPv4 and IPv6 (docs/drill.md has the table).
PASSING = [
    "close/close-local-close-then-remote-fin.pkt",
    "close/close-on-syn-sent.pkt",
    "close/close-remote-fin-then-close.pkt",
    "shutdown/shutdown-rd-close.pkt",
    "shutdown/shutdown-rd-wr-close.pkt",
    "shutdown/shutdown-rdwr-close.pkt",
    "shutdown/shutdown-wr-close.pkt",
    "blocking/blocking-accept.pkt",
    "blocking/blocking-connect.pkt",
    "blocking/blocking-read.pkt",
    "validate/validate-established-no-flags.pkt",
    "inq/client.pkt",
    "inq/server.pkt",
    "mss/mss-getsockopt-tcp_maxseg-server.pkt",
    "mss/mss-setsockopt-tcp_maxseg-client.pkt",
    "mss/mss-setsockopt-tcp_maxseg-server.pkt",
    "nagle/sendmsg_msg_more.pkt",
    "nagle/sockopt_cork_nodelay.pkt",
    "epoll/epoll_in_edge.pkt",
    "syscall_bad_arg/sendmsg-empty-iov.pkt",
    "syscall_bad_arg/syscall-invalid-buf-ptr.pkt",
]
# Long timer waits (TCP_USER_TIMEOUT, 1 s TS ticks): the slow group, still run by make test.
SLOW = [
    "ts_recent/fin_tsval.pkt",
    "ts_recent/reset_tsval.pkt",
    "user_timeout/user-timeout-probe.pkt",
    "user_timeout/user_timeout.pkt",
]
RETRIES = 3


def _check(rel: str, family: int) -> None:
    run, attempts = run_one(CORPUS / "tcp" / rel, family, False, {}, True, None, RETRIES)
    assert run.passed, f"{run.message()} (after {attempts} timing retries)"
    # What the run saw is real: the script's packets were on the wire, both ways.
    directions = {d for _, d, _ in run.wire}
    assert directions == {"in", "out"}


@pytest.mark.parametrize("rel", PASSING)
def test_passes_on_linux_ipv4(rel: str) -> None:
    _check(rel, socket.AF_INET)


@pytest.mark.parametrize("rel", PASSING)
def test_passes_on_linux_ipv6(rel: str) -> None:
    _check(rel, socket.AF_INET6)


@pytest.mark.slow
@pytest.mark.parametrize("rel", SLOW)
def test_slow_scripts_pass_on_linux(rel: str) -> None:
    _check(rel, socket.AF_INET)


def test_a_wrong_expectation_fails_on_its_line(tmp_path: Path) -> None:
    """A script mutated to expect a wrong ack: packetdrill's message, the line, exit 1."""
    source = (CORPUS / "tcp/close/close-local-close-then-remote-fin.pkt").read_text()
    lines = source.splitlines()
    index = next(i for i, text in enumerate(lines) if "F. 1001:1001(0) ack 1" in text)
    lines[index] = lines[index].replace("ack 1", "ack 2")
    script = tmp_path / "close" / "mutated.pkt"
    script.parent.mkdir()
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "defaults.sh").write_text((CORPUS / "common/defaults.sh").read_text())
    script.write_text("\n".join(lines) + "\n")
    result = run_tcplab("drill", "-q", "--retries", str(RETRIES), str(script), timeout=120)
    assert result.code == 1
    first = result.stderr.strip().splitlines()[0]
    assert first == (
        f"{script}:{index + 1}: error handling packet: live packet field "
        "tcp_ack_seq: expected: 2 (0x2) vs actual: 1 (0x1)"
    )
    assert "script packet:" in result.stderr and "actual packet:" in result.stderr


def test_outputs_pcapng_json_and_nothing_left(tmp_path: Path) -> None:
    from tcplab.timeline import Timeline

    pcap = tmp_path / "run.pcapng"
    js = tmp_path / "run.json"
    before = _drill_namespaces()
    result = run_tcplab(
        "drill",
        "-q",
        "--retries",
        str(RETRIES),
        "--pcapng",
        str(pcap),
        "--json",
        str(js),
        str(CORPUS / "tcp/close/close-on-syn-sent.pkt"),
        timeout=120,
    )
    assert result.code == 0, result.stderr
    timeline = Timeline.from_json(js.read_text())
    lines = [a for p in timeline.packets() for a in p.annotations]
    assert "line 10: +0 > S 0:0(0) <...>" in lines and "line 20: +0 > R 1:1(0)" in lines
    assert [c.call for c in timeline.api_calls()] == ["socket", "fcntl", "connect", "close"]
    comments = subprocess.run(
        ["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.comment"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    if comments:  # tshark installed: it reads the script lines back
        assert "line 20: +0 > R 1:1(0)" in comments
    assert _drill_namespaces() <= before


def _drill_namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return {m for m in re.findall(r"tcplab-[0-9a-f]{8}-d", out.stdout)}


def test_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    before = _drill_namespaces()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tcplab",
            "drill",
            "-q",
            str(CORPUS / "tcp/user_timeout/user_timeout.pkt"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    ours: set[str] = set()
    deadline = time.monotonic() + 30
    while not ours and time.monotonic() < deadline and proc.poll() is None:
        ours = _drill_namespaces() - before
        time.sleep(0.05)
    assert ours, "the run never created its namespace"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert not (ours & _drill_namespaces())
