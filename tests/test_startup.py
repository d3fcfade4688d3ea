"""What ``tcplab analyze`` loads for a small plain capture.

The engine reads a plain pcap itself; tcplab.capture's Python reader,
tcplab.wire's decoders and the renderers load only when a frame or a view
needs them (docs/engine.md, start-up).  The modules a run imported are a
fact, unlike its time: this test keeps the cut from coming back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ACK, FIN, SYN, ipv4_tcp
from tcplab.capture import PcapWriter

PROBE = (
    "import json, sys\n"
    "from tcplab.cli import main\n"
    "try:\n    main(sys.argv[1:])\n"
    "except SystemExit:\n    pass\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('tcplab'))),"
    " file=sys.stderr)\n"
)
NOT_NEEDED = (
    "tcplab.capture.reader",  # the Python reader (the engine reads the file)
    "tcplab.capture.decoded",
    "tcplab.wire.decode",  # the frame decoders (the engine decodes plain TCP/IP)
    "tcplab.wire.tunnel",
    "tcplab.timeline",  # the renderers' model
    "tcplab.render.html",
    "tcplab.lab.host",
)


def loaded(*argv: str) -> tuple[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    *_, last = done.stderr.splitlines()
    return done.stdout, json.loads(last)


def test_a_tiny_capture_loads_neither_the_python_reader_nor_the_decoders(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pcap"
    a, b = "10.0.0.1", "10.0.0.2"
    frames = [ipv4_tcp(a, b, 40000, 80, 100, 0, SYN),
              ipv4_tcp(b, a, 80, 40000, 500, 101, SYN | ACK),
              ipv4_tcp(a, b, 40000, 80, 101, 501, ACK),
              ipv4_tcp(a, b, 40000, 80, 101, 501, FIN | ACK),
              ipv4_tcp(b, a, 80, 40000, 501, 102, FIN | ACK),
              ipv4_tcp(a, b, 40000, 80, 102, 502, ACK)]  # fmt: skip
    with path.open("wb") as out:
        writer = PcapWriter(out, 101)
        for i, frame in enumerate(frames):
            writer.write(1_700_000_000_000_000_000 + i * 1000, frame)
    out, modules = loaded("analyze", str(path))
    assert "10.0.0.1:40000 -> 10.0.0.2:80  FIN both ways" in out, out
    assert "tcplab.analyze.engine" in modules
    assert [m for m in NOT_NEEDED if m in modules] == []
    # The same names still load on demand, for the views that need them.
    out, modules = loaded("analyze", "--ladder", "0", str(path))
    assert "tcplab.timeline" in modules and "SYN" in out


def test_help_loads_no_command() -> None:
    out, modules = loaded("--help")
    assert "analyze" in out and "sockets" in out
    heavy = ("tcplab.analyze", "tcplab.lab", "tcplab.wire", "tcplab.capture")
    assert [m for m in modules if m.startswith(heavy)] == []
