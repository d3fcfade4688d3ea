"""``tcplab drill --model``: the corpus against the sans-IO model, and model vs kernel verdicts.

The model needs no root and no time (virtual clock).  The lifecycle families
(close, shutdown, blocking, validate) must get the same verdict from the model
as from the kernel, or the difference is listed here with its reason (and in
docs/model.md).
"""

from __future__ import annotations

import socket

import pytest

from conftest import SHARED
from tcplab.drill.runner import ipv4_only, load, run_script

CORPUS = SHARED / "peer-traces/packetdrill"

pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(), reason="the packetdrill corpus is not beside the checkout"
)

LIFECYCLE = ("close", "shutdown", "blocking", "validate")

# Scripts the model passes today: they must keep passing (IPv6 lacks the IPv4-only ones).
MODEL_PASSING = [
    "fastopen/client/sendto-af-unspec.pkt",
    "fastopen/server/listener-closed-trigger-rst.pkt",
    "fastopen/server/opt34/listener-closed-trigger-rst.pkt",
    "blocking/blocking-accept.pkt",
    "blocking/blocking-connect.pkt",
    "blocking/blocking-read.pkt",
    "close/close-local-close-then-remote-fin.pkt",
    "close/close-on-syn-sent.pkt",
    "close/close-remote-fin-then-close.pkt",
    "fastopen/client/cookie-req-timeout.pkt",
    "fastopen/client/nonblocking-sendto-empty-buf.pkt",
    "fastopen/client/nonblocking-sendto-over-mss.pkt",
    "fastopen/client/syn-data-rtt-from-syn-data.pkt",
    "fastopen/server/basic-cookie-not-reqd.pkt",
    "fastopen/server/basic-non-tfo-listener.pkt",
    "fastopen/server/basic-rw.pkt",
    "fastopen/server/basic-zero-payload.pkt",
    "fastopen/server/opt34/basic-cookie-not-reqd.pkt",
    "fastopen/server/opt34/basic-non-tfo-listener.pkt",
    "fastopen/server/opt34/basic-rw.pkt",
    "fastopen/server/opt34/basic-zero-payload.pkt",
    "fastopen/server/opt34/reset-after-accept.pkt",
    "fastopen/server/opt34/reset-before-accept.pkt",
    "fastopen/server/opt34/reset-close-with-unread-data.pkt",
    "fastopen/server/opt34/reset-non-tfo-socket.pkt",
    "fastopen/server/opt34/simple1.pkt",
    "fastopen/server/opt34/simple2.pkt",
    "fastopen/server/opt34/unread-data-closed-trigger-rst.pkt",
    "fastopen/server/reset-after-accept.pkt",
    "fastopen/server/reset-before-accept.pkt",
    "fastopen/server/reset-close-with-unread-data.pkt",
    "fastopen/server/reset-non-tfo-socket.pkt",
    "fastopen/server/simple2.pkt",
    "fastopen/server/unread-data-closed-trigger-rst.pkt",
    "shutdown/shutdown-rd-close.pkt",
    "shutdown/shutdown-rd-wr-close.pkt",
    "shutdown/shutdown-rdwr-close.pkt",
    "shutdown/shutdown-wr-close.pkt",
    "syscall_bad_arg/syscall-invalid-buf-ptr.pkt",
    "ts_recent/fin_tsval.pkt",
    "validate/validate-established-no-flags.pkt",
]
# IPv6: the same less the IPv4-only scripts (their header pins IPv4 addresses).
MODEL_PASSING_V6 = (
    [r for r in MODEL_PASSING if not ipv4_only(load(CORPUS / "tcp" / r, socket.AF_INET))]
    if CORPUS.is_dir()
    else []
)

# Lifecycle scripts whose verdict differs between the kernel and the model, and why
# (docs/model.md "packetdrill scripts" lists the same).  Kernel verdicts: test_drill_linux.
DIFFERENT: dict[str, str] = {
    "shutdown/shutdown-rdwr-send-queue-ack-close.pkt": (
        "line 22: the model has no congestion window: it sends the whole 20000-byte write at "
        "once, PSH on its last segment only, where Linux sends IW10 (10000 bytes, PSH)"
    ),
}
# Lifecycle scripts both fail (so the verdict is the same), with the model's reason.
BOTH_FAIL: dict[str, str] = {
    "shutdown/shutdown-rdwr-write-queue-close.pkt": (
        "Linux (6.18) holds the FIN until the loss-probe timer (cwnd full after IW10) and fails "
        "line 25; the model sends the FIN at once but has no tail loss probe (line 36: it "
        "retransmits the first segment on RTO)"
    ),
    "blocking/blocking-write.pkt": "the model has no SO_SNDBUF (no send buffer limit)",
}


@pytest.mark.parametrize(
    ("rel", "family"),
    [(r, socket.AF_INET) for r in MODEL_PASSING] + [(r, socket.AF_INET6) for r in MODEL_PASSING_V6],
)
def test_passes_on_the_model(rel: str, family: int) -> None:
    run = run_script(CORPUS / "tcp" / rel, family, model=True)
    assert run.passed, run.message()
    # The model really played: the script's packets went both ways (when it has
    # packets in both directions) and the model changed state.
    assert run.script is not None
    kinds = {e.kind for e in run.script.events}
    expected = {d for k, d in (("inbound", "in"), ("outbound", "out")) if k in kinds}
    assert expected <= {d for _, d, _ in run.wire}
    assert run.model_events or not expected


def test_lifecycle_verdicts_match_the_kernel_or_are_listed() -> None:
    scripts = sorted(p for fam in LIFECYCLE for p in (CORPUS / "tcp" / fam).glob("*.pkt"))
    assert len(scripts) == 14
    for path in scripts:
        rel = f"{path.parent.name}/{path.name}"
        run = run_script(path, socket.AF_INET, model=True)
        if rel in MODEL_PASSING:
            assert run.passed, run.message()
        elif rel in DIFFERENT or rel in BOTH_FAIL:
            assert not run.passed, f"{rel} passes on the model now: update the lists"
        else:
            pytest.fail(f"{rel}: not classified ({run.message() or 'passes'})")


def test_a_wrong_expectation_fails_on_its_line_on_the_model(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    source = (CORPUS / "tcp/close/close-remote-fin-then-close.pkt").read_text().splitlines()
    index = next(i for i, text in enumerate(source) if "> R 2:2(0)" in text)
    source[index] = source[index].replace("> R 2:2(0)", "> R. 2:2(0) ack 2")
    script = tmp_path / "mutated.pkt"
    script.write_text("\n".join(source) + "\n")
    run = run_script(script, socket.AF_INET, model=True)
    assert run.failure is not None and run.failure.line == index + 1
    assert run.failure.message.splitlines()[0] == (
        "error handling packet: live packet field tcp_ack: expected: 1 (0x1) vs actual: 0 (0x0)"
    )
