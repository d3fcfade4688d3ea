"""The seed notes' own Node programs, unchanged, as the lab's external actors.

tcp-server.js listens on 127.0.0.1:42181 and tcp-client.js connects there:
both fixed in the code.  The lab must run them as they are, on its wire and
with --loopback, put each end in its own column, and fail the run when a
program fails.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import SHARED, run_tcplab
from tcplab.states import State
from tcplab.timeline import Note, Timeline

pytestmark = [
    pytest.mark.root,
    pytest.mark.xdist_group("lab"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the live lab needs root"),
    pytest.mark.skipif(not (shutil.which("node") and shutil.which("strace")),
                       reason="node/strace not installed (scripts/setup.sh installs them)"),
]  # fmt: skip

SEED = Path(__file__).parent / "data" / "seed"
SERVER = f"node {SEED / 'tcp-server.js'}"
CLIENT = f"node {SEED / 'tcp-client.js'}"


def test_the_scripts_are_the_notes_own() -> None:
    notes = sorted((SHARED / "seeds").glob("*.txt"))
    if not notes:
        pytest.skip("the seed notes are not beside the checkout")
    text = "\n".join(n.read_text(encoding="utf-8") for n in notes)
    for name in ("tcp-server.js", "tcp-client.js"):
        block = re.search(re.escape(name) + r"\n\n```js\n(.*?)```", text, re.S)
        assert block is not None, name
        assert (SEED / name).read_text(encoding="utf-8") == block[1]


def _run(tmp_path: Path, *extra: str, client: str = CLIENT) -> tuple[int, Timeline | None, str]:
    out = tmp_path / "out.json"
    result = run_tcplab("run", "--server", SERVER, "--client", client, "--outdir",
                        str(tmp_path), "--json", str(out), "-q", *extra, timeout=120)  # fmt: skip
    timeline = Timeline.from_json(out.read_text()) if out.exists() else None
    return result.code, timeline, result.stdout + result.stderr


@pytest.mark.parametrize("mode", ["wire", "loopback"])
def test_seed_programs_run_unchanged(tmp_path: Path, mode: str) -> None:
    code, tl, output = _run(tmp_path, *(["--loopback"] if mode == "loopback" else []))
    assert code == 0, output
    assert tl is not None
    server, client = tl.endpoint("server"), tl.endpoint("client")
    # The server is where the script listens, the client one of the lab's own.
    assert (server.address, server.port) == ("127.0.0.1", 42181)
    assert client.address != "127.0.0.1" and client.port > 0
    packets = tl.packets()
    # Arrows both ways, each from its own end.
    assert {p.sender for p in packets} == {"client", "server"}
    for p in packets:
        assert (p.src, p.sport) == ((server.address, 42181) if p.sender == "server"
                                    else (client.address, client.port))  # fmt: skip
    assert [p.flags for p in packets][:3] == ["S", "S.", "."]
    data = [p for p in packets if p.length]
    assert [(p.sender, p.length) for p in data] == [("server", len("hello client"))]
    # socket.end() after write(): the server closes first, so TIME-WAIT is its.
    assert State.TIME_WAIT in tl.state_path("server")
    assert State.TIME_WAIT not in tl.state_path("client")
    assert State.CLOSE_WAIT in tl.state_path("client")
    texts = [e.text for e in tl.events if isinstance(e, Note)]
    assert any("client prints: Received : hello client" in t for t in texts), texts
    assert any("client exited with status 0" in t for t in texts), texts
    # The server never exits by itself: the lab stops it once the client is done.
    assert any("the lab stops the server" in t for t in texts), texts


def test_a_failing_program_fails_the_run(tmp_path: Path) -> None:
    # A client refused (nothing listens on port 1) throws, and node exits 1.
    refused = "node -e \"require('net').connect(1, '127.0.0.1')\""
    code, tl, output = _run(tmp_path, client=refused)
    assert code != 0, output
    assert "client program" in output and "exited with status 1" in output
    assert tl is not None
    assert any(p.flags.startswith("R") for p in tl.packets())


def test_a_server_that_exits_before_listening_fails_the_run(tmp_path: Path) -> None:
    result = run_tcplab("run", "--server", "node -e 'process.exit(4)'", "--client", CLIENT,
                        "--outdir", str(tmp_path), timeout=120)  # fmt: skip
    assert result.code != 0
    assert "exited with status 4 before it listened" in result.stderr
    assert "Traceback" not in result.stderr


def test_node_half_open_on_loopback(tmp_path: Path) -> None:
    # The seed's half-open example: a dual-stack (::) server, a client that connects
    # to TCPLAB_SERVER_ADDR; on lo both ends must still be told apart.
    from tcplab import scenario as scenarios
    from tcplab.lab.runner import Lab

    result = Lab(tmp_path, loopback=True).run(scenarios.load("node-half-open"))
    failed = [f"{f.fact}: {f.detail}" for f in result.facts if not f.held]
    assert not failed, failed
    tl = result.timeline
    assert {p.sender for p in tl.packets()} == {"client", "server"}
    assert State.TIME_WAIT in tl.state_path("client")
    assert State.LAST_ACK in tl.state_path("server")
