"""The engine through ``tcplab analyze``: one process equals N, every input
path agrees, a learner's loopback capture reads as it happened, and memory
stays bounded by the connections open at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import PEAK_RSS_CHILD, REPO, pcapng_and_gz, run_tcplab
from tcplab.analyze.synth import write_capture

HELPER = Path(__file__).parent / "data" / "analyze" / "loopback_tcpdump.py"
MODES = [
    (),
    ("--all",),
    ("--json",),
    ("--summary", "--json"),
    ("--conn-log",),
    ("--packets",),
    ("--packets", "--json"),
]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engine") / "synth.pcap"
    # Connections spread over 20 minutes: TIME-WAIT and idle ones leave the
    # engine while others are open, so batches hold real evictions.
    write_capture(path, 30000, 900, seed=11, concurrency_seconds=1200)
    return path


@pytest.mark.parametrize("mode", MODES, ids=lambda m: " ".join(m) or "default")
def test_jobs_2_equals_jobs_1(synth: Path, mode: tuple[str, ...]) -> None:
    one = run_tcplab("analyze", *mode, str(synth), timeout=300)
    two = run_tcplab("analyze", *mode, "--jobs", "2", str(synth), timeout=300)
    assert one.code == two.code == 0, (one.stderr, two.stderr)
    assert one.stdout and one.stdout == two.stdout


def test_pcap_pcapng_gz_stdin_same_output(synth: Path, tmp_path: Path) -> None:
    pcapng, gz = pcapng_and_gz(synth, tmp_path)
    for mode in (("--json",), ("--conn-log",)):
        base = run_tcplab("analyze", *mode, str(synth), timeout=300).stdout
        assert base
        for other in (pcapng, gz):
            assert run_tcplab("analyze", *mode, str(other), timeout=300).stdout == base
        code = "import sys; from tcplab.cli import main; main(sys.argv[1:])"
        with pcapng.open("rb") as stdin:
            piped = subprocess.run(
                [sys.executable, "-c", code, "analyze", *mode, "-"],
                stdin=stdin,
                capture_output=True,
                text=True,
                timeout=300,
            )
        assert piped.stdout == base, piped.stderr


def test_memory_is_bounded_by_open_connections(tmp_path: Path) -> None:
    """2M packets, 100k connections over hours: the engine's peak RSS stays
    under a fixed ceiling (connections leave as they end)."""
    path = tmp_path / "big.pcap"
    # Written in a child: the generator builds the file in memory, and peak RSS
    # survives exec, so neither this process nor the measured one should hold it.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tcplab.analyze.synth import write_capture;"
            "write_capture(sys.argv[1], 2_000_000, 100_000, seed=2, concurrency_seconds=600)",
            str(path),
        ],
        check=True,
        timeout=600,
    )
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tcplab.analyze import engine\n"
        # Reset the peak RSS inherited through fork and exec (proc(5): clear_refs 5).
        "Path('/proc/self/clear_refs').write_text('5')\n"
        "n = 0\n"
        "for item in engine.run(sys.argv[1]):\n"
        "    if isinstance(item, engine.Batch):\n"
        "        n += len(item.connections)\n"
        "hwm = [l for l in Path('/proc/self/status').read_text().splitlines()"
        " if l.startswith('VmHWM')][0]\n"
        "print(n, int(hwm.split()[1]) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    conns, rss_mb = map(int, out.stdout.split())
    assert conns >= 100_000
    assert rss_mb < 200, rss_mb
    # --packets streams its lines (formatted in the engine) as it reads: one
    # line per packet comes out, and memory stays as bounded.
    with subprocess.Popen(
        [sys.executable, "-c", PEAK_RSS_CHILD, "analyze", "--packets", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: child.stdout.read(1 << 20), b""))
        err = child.stderr.read().decode()
    assert child.returncode == 0, err
    assert lines >= 1_900_000
    assert int(err.splitlines()[-1]) / 1024 < 200, err


@pytest.mark.root
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tcpdump") is None,
    reason="needs root, iproute2 and tcpdump",
)
def test_loopback_tcpdump_capture_reads_sf_rsto_rej(tmp_path: Path) -> None:
    """tcpdump on lo leaves checksums partial; by default they are not
    verifiable, not bad, so the connections read as they happened."""
    ns = f"tcplab-eng-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        capture = tmp_path / "lo.pcap"
        subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, str(HELPER), str(capture)],
            check=True,
            timeout=60,
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    result = run_tcplab("analyze", "--conn-log", str(capture))
    assert result.code == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines() if not line.startswith("#")]
    assert Counter(row[11] for row in rows) == Counter({"SF": 1, "RSTO": 1, "REJ": 1})
    assert not any(set(row[15]) & {"C", "c"} for row in rows)
    # Zeek's default (without -C) rejects the partial checksums: C/c letters
    # (the kernel's RST to the refused SYN has a full checksum: r).
    strict = run_tcplab("analyze", "--conn-log", "--strict-checksums", str(capture))
    histories = [line.split("\t")[15] for line in strict.stdout.splitlines() if line[:1] != "#"]
    assert histories and all(set(h) & {"C", "c"} for h in histories)
    default = run_tcplab("analyze", str(capture))
    assert "bad_checksum" not in default.stdout


@pytest.mark.parametrize("argv", [("analyze", "--packets"), ("analyze", "--json"),
                                  ("analyze", "--packets", "--json"), ("packets",)])  # fmt: skip
def test_a_reader_that_goes_away_is_not_an_error(synth: Path, argv: tuple[str, ...]) -> None:
    # `tcplab analyze --packets big.pcap | head -1`: exit 0, nothing on stderr
    # (click alone would end a write to a closed pipe with exit 1).
    proc = subprocess.Popen([sys.executable, "-m", "tcplab", *argv, str(synth)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0 and err == b"", err
