"""The live lab: scenarios played on two real Linux endpoints.

    from tcplab import scenario
    from tcplab.lab import Lab

    with Lab(outdir=Path("out")) as lab:
        result = lab.run(scenario.load("handshake-close"))
    result.timeline, result.facts, result.pcapng_path

Modules: ``host`` (namespaces, TUN, sysctls, the run's state file),
``wire`` (the forwarding thread that is the capture), ``faults`` (the
sans-IO fault program), ``tracer`` (tracefs), ``actor`` (the endpoint
process), ``external`` (programs under strace), ``timeline_build`` (records
-> Timeline), ``runner`` (``Lab``), ``output`` (pcapng/JSON/SVG files),
``cleanup`` (what killed runs left).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DROPPED_BY_WIRE", "Lab", "RunResult"]



def __getattr__(name: str) -> Any:
    # Lazy: the actor process imports nothing but the standard library.
    if name in ("Lab", "RunResult"):
        from tcplab.lab import runner

        return getattr(runner, name)
    if name == "DROPPED_BY_WIRE":
        # The marker belongs to the capture format (tcplab.capture.pcapng).
        from tcplab.capture.pcapng import DROPPED_BY_WIRE

        return DROPPED_BY_WIRE
    raise AttributeError(name)
