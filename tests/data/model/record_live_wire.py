"""Re-record tests/data/model/live-wire.json from the live lab (root, a few minutes).

    .venv/bin/python tests/data/model/record_live_wire.py [SCENARIO ...]

Runs `tcplab run <id>` for every built-in scenario the model can play (or the
ones named) in a temporary directory and stores, per scenario, the digest of its
steps/faults/sysctls and the wire's (sender, flags, length, dropped) sequence.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from tcplab.model.sim import sim_can_play
from tcplab.scenario import Scenario, builtin_ids, load
from tcplab.timeline import Timeline

HERE = Path(__file__).parent
TCPLAB = Path(sys.executable).with_name("tcplab")


def digest(scenario: Scenario) -> str:
    text = repr((scenario.steps, scenario.faults, sorted(scenario.sysctl.items()),
                 scenario.server_port))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main(ids: list[str]) -> None:
    target = HERE / "live-wire.json"
    data = json.loads(target.read_text()) if target.exists() else {"scenarios": {}}
    data.update(kernel=platform.release(), recorded_with="tcplab run <id> (live lab)",
                fields=["sender", "tcpdump flags", "payload length", "dropped by the wire"])
    ids = ids or [s for s in builtin_ids() if sim_can_play(load(s))]
    with tempfile.TemporaryDirectory() as tmp:
        for sid in ids:
            subprocess.run([str(TCPLAB), "run", sid], cwd=tmp, capture_output=True, check=False,
                           timeout=180)
            out = Path(tmp) / "out" / f"{sid}.json"
            if not out.exists():
                print(f"{sid}: no timeline written", file=sys.stderr)
                continue
            timeline = Timeline.from_json(out.read_text())
            data["scenarios"][sid] = {
                "digest": digest(load(sid)),
                "wire": [[p.sender, p.flags, p.length, p.dropped] for p in timeline.packets()],
            }
            print(f"{sid}: {len(timeline.packets())} segments")
    target.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
