"""How the catalog tests compare the kernel with the analyzer and with the model.

Shared by tests/test_catalog_*.py and bench/catalog_bench.py (no pytest here).

State paths (the analyzer against the kernel)
    Both sides are reduced the same way: each endpoint's state changes in
    time order, a change whose old state is not the last state written
    first writes that old state (another socket of the same host took
    over), repeated states written once.  The kernel side takes the
    tracepoint's and the snapshots' changes (Source.KERNEL, Source.SNAPSHOT)
    except the listening socket's own (cause "listener :PORT"): no packet
    ever shows a listen() or the listener's close(), and the analyzer starts
    a SYN's receiver in LISTEN "before capture".  The analyzer side is
    ``tcplab.analyze`` run on the run's pcapng alone, every connection's
    inferred changes merged per endpoint (an address belongs to one host).

    A scenario lists what inference from packets cannot know in
    ``[[extra.inference.limit]]``: ``endpoint``, ``kernel_only`` (states the
    kernel went through that no packet shows), ``inferred_only`` (states the
    analyzer infers that the kernel never reported), ``connection`` (leave out
    the analyzer's view of this endpoint on its Nth connection, 1-based),
    ``reason``.  Each listed state is removed once from its path, matched
    from the end backwards; every one must be there to remove, the two paths
    must then be equal, and they must differ without the limits (a limit
    that no longer applies is stale).

Segment sequences (the model against the kernel)
    (sender, flags, relative seq, relative ack, length, dropped) for every
    segment, relative numbers computed here the same way for both (each
    direction of each port pair counts from its SYN, or from its first
    segment when it sent no SYN, as Wireshark does).  Where a hold rule
    releases segments together, the kernel's interleaving of the two
    senders depends on scheduling: each sender's own order is compared.
    ``[[extra.sim_vs_kernel.difference]]`` lists deliberate differences:
    ``kind = "kernel-only"`` with ``segments = [[sender, flags], ...]``:
    segments the kernel sends and the model does not (removed from the
    kernel's sequence, last matches first); ``kind = "bulk"``: the data
    segments of a bulk transfer and the receiver's pure ACKs between them
    are compared as totals (bytes covered, largest segment), not one by one.
    Each must be needed, as above.
    Before comparing, a pure ACK that the same side's very next segment
    repeats (data carrying the same seq and ack) is dropped from both
    sequences: whether Linux sends the ACK alone or on the data depends on
    whether its delayed-ACK timer fired before the application wrote, which
    on a loaded machine is scheduling, not TCP (RFC 9293 §3.8.6.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcplab.scenario import Scenario
from tcplab.states import State
from tcplab.timeline import Source, StateChange, Timeline

MOD = 1 << 32


# -- state paths ----------------------------------------------------------------


def path_of(changes: Iterable[StateChange]) -> list[State]:
    path: list[State] = []
    for change in sorted(changes, key=lambda c: c.time):
        if change.old is not None and (not path or path[-1] is not change.old):
            path.append(change.old)
        if not path or path[-1] is not change.new:
            path.append(change.new)
    return path


def kernel_paths(timeline: Timeline) -> dict[str, list[State]]:
    out: dict[str, list[State]] = {}
    for endpoint in ("client", "server"):
        changes = [
            c for c in timeline.state_changes(endpoint)
            if c.source in (Source.KERNEL, Source.SNAPSHOT) and not c.cause.startswith("listener")
        ]  # fmt: skip
        out[endpoint] = path_of(changes)
    return out


def inferred_paths(pcapng: Path, timeline: Timeline,
                   scenario: Scenario | None = None) -> dict[str, list[State]]:  # fmt: skip
    """The analyzer's per-endpoint paths from the capture file alone.

    A limit with ``connection = N`` leaves out what the analyzer inferred for
    that endpoint on its Nth connection (1-based, in order of first packet).
    """
    from tcplab.analyze import analyze_file, timeline_for
    from tcplab.analyze.core import iter_packets

    skip = {(lim["endpoint"], int(lim["connection"]))
            for lim in (inference_limits(scenario) if scenario else []) if "connection" in lim}
    # Every lab host has its own address: who sent a packet says whose address it is.
    host_of = {e.address: e.name for e in timeline.endpoints}
    host_of.update({p.src: p.sender for p in timeline.packets()})
    analysis = analyze_file(pcapng)
    changes: dict[str, list[StateChange]] = {"client": [], "server": []}
    ordered = sorted(analysis.connections, key=lambda c: (c.start, c.number))
    for n, conn in enumerate(ordered, start=1):
        inferred = timeline_for(list(iter_packets(analysis, conn.number)), conn)
        role_address = {"client": conn.client.address, "server": conn.server.address}
        for change in inferred.state_changes():
            host = host_of.get(role_address.get(change.endpoint, ""))
            if host in changes and (host, n) not in skip:
                changes[host].append(change)
    return {endpoint: path_of(c) for endpoint, c in changes.items()}


def _remove_in_order(path: list[State], states: Sequence[str]) -> tuple[list[State], list[str]]:
    """``path`` without one occurrence of each state, matched from the end backwards (the
    last listed state is the path's last occurrence of it, the one before it precedes it...);
    repeated neighbours left by a removal are written once.  Also the states not found."""
    out = list(path)
    missing: list[str] = []
    end = len(out)
    for name in reversed(states):
        state = State.parse(name)
        i = next((j for j in range(end - 1, -1, -1) if out[j] is state), None)
        if i is None:
            missing.append(name)
            continue
        del out[i]
        end = i
    collapsed = [s for j, s in enumerate(out) if j == 0 or out[j - 1] is not s]
    return collapsed, missing


@dataclass(frozen=True)
class PathVerdict:
    endpoint: str
    ok: bool
    detail: str


def compare_paths(scenario: Scenario, kernel: dict[str, list[State]],
                  inferred: dict[str, list[State]],
                  inferred_unlimited: dict[str, list[State]] | None = None,
                  ) -> list[PathVerdict]:  # fmt: skip
    """``inferred`` with the scenario's connection limits applied, ``inferred_unlimited``
    without them (to tell a stale limit)."""
    limits = inference_limits(scenario)
    verdicts: list[PathVerdict] = []
    for endpoint in ("client", "server"):
        k, i = kernel[endpoint], inferred[endpoint]
        shown = f"kernel {[str(s) for s in k]}, inferred {[str(s) for s in i]}"
        mine = [lim for lim in limits if lim["endpoint"] == endpoint]
        if not mine:
            verdicts.append(PathVerdict(endpoint, k == i, shown))
            continue
        unlimited = inferred_unlimited[endpoint] if inferred_unlimited else i
        if k == unlimited:
            verdicts.append(PathVerdict(endpoint, False, f"stale inference limit: {shown}"))
            continue
        kernel_only = [s for lim in mine for s in lim.get("kernel_only", [])]
        inferred_only = [s for lim in mine for s in lim.get("inferred_only", [])]
        k2, k_missing = _remove_in_order(k, kernel_only)
        i2, i_missing = _remove_in_order(i, inferred_only)
        ok = k2 == i2 and not k_missing and not i_missing
        detail = shown
        if k_missing or i_missing:
            detail += f"; limit states not found: kernel {k_missing}, inferred {i_missing}"
        verdicts.append(PathVerdict(endpoint, ok, detail))
    return verdicts


def inference_limits(scenario: Scenario) -> list[dict[str, Any]]:
    section = scenario.extra.get("inference", {})
    limits = section.get("limit", []) if isinstance(section, dict) else []
    return [dict(x) for x in limits]


# -- segment sequences -----------------------------------------------------------

Seg = tuple[str, str, int, int | None, int, bool]


def segments(timeline: Timeline) -> list[Seg]:
    """(sender, flags, rel seq, rel ack, length, dropped), relative numbers computed here."""
    isn: dict[tuple[str, int, int], int] = {}
    out: list[Seg] = []
    for p in timeline.packets():
        key = (p.sender, p.sport, p.dport)
        back = ("server" if p.sender == "client" else "client", p.dport, p.sport)
        if "S" in p.flags or key not in isn:
            isn[key] = p.seq
        rel_seq = (p.seq - isn[key]) % MOD
        rel_ack = (p.ack - isn[back]) % MOD if "." in p.flags and back in isn else None
        out.append((p.sender, p.flags, rel_seq, rel_ack, p.length, p.dropped))
    return out


def model_defect(scenario: Scenario) -> str:
    """``[extra.sim_vs_kernel] model_defect``: a known difference that is a bug in the model
    (not a deliberate simplification); the test expects it to fail until the model is fixed."""
    section = scenario.extra.get("sim_vs_kernel", {})
    return str(section.get("model_defect", "")) if isinstance(section, dict) else ""


def sim_differences(scenario: Scenario) -> list[dict[str, Any]]:
    section = scenario.extra.get("sim_vs_kernel", {})
    diffs = section.get("difference", []) if isinstance(section, dict) else []
    return [dict(x) for x in diffs]


def _bulk(seq: list[Seg]) -> list[Any]:
    """Data segments and the peer's pure ACKs from the first data segment until the sender's
    next segment after the last one -> totals: (sender, bytes covered, largest segment).
    How many pure ACKs the receiver sends, and what each covers, depends on when the
    kernel's delayed-ACK timer and the reader run, during the transfer and right after it
    (tcp_cleanup_rbuf ACKs on read).  Segments sent again are not compared either: on a
    loaded machine the lab's Python wire can fall behind the TUN queue, and the kernel then
    retransmits; that the model never resends on a loss-free net is asserted on its own
    (tests/test_model_bulk.py)."""
    data = [i for i, s in enumerate(seq) if s[4] > 0]
    if not data:
        return list(seq)
    first, last = data[0], data[-1]
    sender = seq[first][0]
    middle = seq[first : last + 1]
    kept = [s for s in middle if s[0] != sender and not (s[1] == "." and s[4] == 0)]
    sent = [s for s in middle if s[0] == sender]
    starts = [s[2] for s in sent]
    covered = max(s[2] + s[4] for s in sent) - min(starts)
    total = ("bulk", sender, covered, max(s[4] for s in sent))
    tail = last + 1
    while tail < len(seq) and seq[tail][0] != sender and seq[tail][1] == "." and seq[tail][4] == 0:
        tail += 1
    return [*seq[:first], total, *kept, *seq[tail:]]


def _drop_kernel_only(seq: list[Seg], wanted: list[list[str]]) -> tuple[list[Seg], list[Any]]:
    out = list(seq)
    missing: list[Any] = []
    for sender, flags in reversed(wanted):
        for i in range(len(out) - 1, -1, -1):
            if out[i][0] == sender and out[i][1] == flags:
                del out[i]
                break
        else:
            missing.append([sender, flags])
    return out, missing


def _same(a: list[Any], b: list[Any], per_sender: bool) -> bool:
    if not per_sender:
        return a == b
    return all([x for x in a if x[0] == s or x[1] == s] == [x for x in b if x[0] == s or x[1] == s]
               for s in ("client", "server"))  # fmt: skip


def _fold_piggyback_acks(seq: list[Seg]) -> list[Seg]:
    """Drop a pure ACK when the next segment is the same side's data with the same seq and ack."""
    out: list[Seg] = []
    for i, seg in enumerate(seq):
        following = seq[i + 1] if i + 1 < len(seq) else None
        if (following is not None and seg[1] == "." and seg[4] == 0 and not seg[5]
                and following[0] == seg[0] and following[4] > 0
                and (following[2], following[3]) == (seg[2], seg[3])):  # fmt: skip
            continue
        out.append(seg)
    return out


def compare_segments(scenario: Scenario, kernel: list[Seg], model: list[Seg]) -> tuple[bool, str]:
    per_sender = any(rule.action == "hold" for rule in scenario.faults)
    diffs = sim_differences(scenario)
    k: list[Any] = _fold_piggyback_acks(list(kernel))
    m: list[Any] = _fold_piggyback_acks(list(model))
    shown = f"kernel {len(kernel)} segments, model {len(model)}"
    if not diffs:
        ok = _same(k, m, per_sender)
        return ok, shown if ok else f"{shown}\n{_first_difference(k, m)}"
    if _same(k, m, per_sender):
        return False, f"stale sim difference (the sequences are equal): {shown}"
    for diff in diffs:
        if diff["kind"] == "bulk":
            k, m = _bulk(k), _bulk(m)
        elif diff["kind"] == "kernel-only":
            k, missing = _drop_kernel_only(k, diff["segments"])
            if missing:
                return False, f"kernel-only segments not in the kernel's sequence: {missing}"
        else:
            return False, f"unknown sim difference kind {diff['kind']!r}"
    ok = _same(k, m, per_sender)
    return ok, shown if ok else f"{shown} (after the listed differences)\n{_first_difference(k, m)}"


def _first_difference(a: list[Any], b: list[Any]) -> str:
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x != y:
            return f"first difference at {i}: kernel {x} model {y}"
    return "equal"


# -- the comparison rules themselves (no root) ----------------------------------------


def _change(t: float, old: str | None, new: str, who: str = "client") -> StateChange:
    return StateChange(t, who, State.parse(old) if old else None, State.parse(new),
                       Source.KERNEL)  # fmt: skip


def test_a_new_socket_writes_its_old_state_first() -> None:
    # Two connections of one host: the second starts from CLOSED again, and says so.
    changes = [_change(1, "CLOSED", "SYN-SENT"), _change(2, "SYN-SENT", "TIME-WAIT"),
               _change(3, "CLOSED", "SYN-SENT"), _change(4, "SYN-SENT", "SYN-SENT")]  # fmt: skip
    assert [str(s) for s in path_of(changes)] == [
        "CLOSED", "SYN-SENT", "TIME-WAIT", "CLOSED", "SYN-SENT"]  # fmt: skip


def test_a_pure_ack_the_next_data_segment_repeats_is_folded() -> None:
    alone = [("server", ".", 1, 30, 0, False), ("server", "P.", 1, 30, 40, False)]
    riding = [("server", "P.", 1, 30, 40, False)]
    assert _fold_piggyback_acks(alone) == riding
    # Not folded: a different ack (the ACK covered more than the data repeats), or the
    # other side spoke in between.
    moved = [("server", ".", 1, 30, 0, False), ("server", "P.", 1, 31, 40, False)]
    between = [("server", ".", 1, 30, 0, False), ("client", ".", 30, 1, 0, False),
               ("server", "P.", 1, 30, 40, False)]  # fmt: skip
    assert _fold_piggyback_acks(moved) == moved
    assert _fold_piggyback_acks(between) == between


def test_limits_remove_the_last_occurrences_and_must_all_be_found() -> None:
    path = [State.parse(s) for s in ("CLOSED", "SYN-SENT", "CLOSED")]
    assert _remove_in_order(path, ["CLOSED"]) == ([State.CLOSED, State.SYN_SENT], [])
    rest, missing = _remove_in_order(path, ["LISTEN"])
    assert rest == path and missing == ["LISTEN"]
    # Neighbours left equal by a removal are written once.
    path = [State.parse(s) for s in ("ESTABLISHED", "TIME-WAIT", "CLOSED", "ESTABLISHED")]
    assert _remove_in_order(path, ["TIME-WAIT", "CLOSED"])[0] == [State.ESTABLISHED]


def _scenario(extra: dict[str, Any], faults: list[dict[str, Any]] | None = None) -> Scenario:
    from tcplab.scenario import parse_scenario

    return parse_scenario({"id": "t", "step": [{"actor": "client", "call": "connect"}],
                           "fault": faults or [], "extra": extra})  # fmt: skip


def test_a_limit_that_no_longer_applies_fails() -> None:
    limit = {"inference": {"limit": [
        {"endpoint": "client", "kernel_only": ["CLOSED"], "reason": "x"}]}}  # fmt: skip
    same = {"client": [State.CLOSED, State.SYN_SENT], "server": []}
    verdicts = compare_paths(_scenario(limit), same, same)
    assert [v.ok for v in verdicts] == [False, True]
    assert "stale" in verdicts[0].detail
    kernel = {"client": [State.CLOSED, State.SYN_SENT, State.CLOSED], "server": []}
    assert all(v.ok for v in compare_paths(_scenario(limit), kernel, same))


def test_segment_differences_are_honoured_exactly() -> None:
    base: list[Seg] = [("client", "S", 0, None, 0, False), ("server", "S.", 0, 1, 0, False)]
    extra: list[Seg] = [*base, ("server", "S.", 0, 1, 0, False)]
    kernel_only = {"sim_vs_kernel": {"difference": [
        {"kind": "kernel-only", "segments": [["server", "S."]], "reason": "x"}]}}  # fmt: skip
    assert compare_segments(_scenario({}), base, base)[0]
    assert not compare_segments(_scenario({}), extra, base)[0]
    assert compare_segments(_scenario(kernel_only), extra, base)[0]
    stale = compare_segments(_scenario(kernel_only), base, base)
    assert not stale[0] and "stale" in stale[1]


def test_bulk_totals_count_bytes_covered_and_the_largest_segment() -> None:
    seq: list[Seg] = [
        ("client", "P.", 1, 1, 100, False), ("server", ".", 1, 101, 0, False),
        ("client", ".", 101, 1, 100, False), ("client", ".", 101, 1, 100, False),
        ("client", "F.", 201, 1, 0, False),
    ]  # fmt: skip
    assert _bulk(seq) == [("bulk", "client", 200, 100), ("client", "F.", 201, 1, 0, False)]


def test_relative_numbers_restart_at_each_syn() -> None:
    from tcplab.timeline import EndpointInfo, Packet

    tl = Timeline(endpoints=[EndpointInfo("client", "10.0.0.1", 1000, "client"),
                             EndpointInfo("server", "10.0.0.2", 80, "server")])  # fmt: skip
    raw = [("client", "S", 500, 0), ("server", "R.", 0, 501)]
    for i, (who, flags, seq, ack) in enumerate(raw):
        sport, dport = (1000, 80) if who == "client" else (80, 1000)
        other = "server" if who == "client" else "client"
        tl.add(Packet(float(i), who, other, "", sport, "", dport, flags, seq, ack, 0))
    # The RST's direction sent no SYN: it counts from its own first segment, as Wireshark does.
    assert segments(tl) == [("client", "S", 0, None, 0, False), ("server", "R.", 0, 1, 0, False)]
