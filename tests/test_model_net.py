"""The simulated wire: delay, random effects from an injected source, fault rules."""

from __future__ import annotations

from tcplab.model.net import Link, Network, SplitMix64
from tcplab.model.segment import Segment
from tcplab.scenario import FaultRule
from tcplab.wire.flags import Flags
from tcplab.wire.seq import Seq


def _seg(flags: Flags, payload: bytes = b"") -> Segment:
    return Segment("10.0.0.1", 1, "10.0.0.2", 2, Seq(1), Seq(1), flags, 100, payload=payload)


def test_splitmix_is_deterministic_and_uniformish() -> None:
    a, b = SplitMix64(42), SplitMix64(42)
    xs = [a.random() for _ in range(2000)]
    assert xs == [b.random() for _ in range(2000)]
    assert 0.45 < sum(xs) / len(xs) < 0.55 and all(0 <= x < 1 for x in xs)
    assert all(32768 <= a.randrange(32768, 61000) < 61000 for _ in range(100))


def test_delay_orders_arrivals() -> None:
    net = Network(links={"client": Link(delay=0.01), "server": Link(delay=0.001)})
    net.send("client", "server", _seg(Flags.SYN), 0.0)
    net.send("server", "client", _seg(Flags.ACK), 0.0)
    assert net.next_deadline() == 0.001
    assert [r for r, _, _ in net.due(0.005)] == ["client"]
    assert net.due(0.009) == []
    assert [r for r, _, _ in net.due(0.01)] == ["server"]


def test_random_loss_duplication_reordering_use_the_injected_source() -> None:
    class Always:
        def random(self) -> float:
            return 0.0

    lossy = Network(links={"client": Link(loss=0.5)}, rng=Always())
    tx = lossy.send("client", "server", _seg(Flags.ACK), 0.0)
    assert tx.dropped and "lost (random loss)" in tx.notes
    dup = Network(links={"client": Link(duplicate=0.5)}, rng=Always())
    tx = dup.send("client", "server", _seg(Flags.ACK), 0.0)
    assert not tx.dropped and len(dup.due(1.0)) == 2
    late = Network(links={"client": Link(reorder=0.5, reorder_delay=0.1)}, rng=Always())
    late.send("client", "server", _seg(Flags.ACK), 0.0)
    deadline = late.next_deadline()
    assert deadline is not None and deadline > 0.1
    calm = Network(links={"client": Link(loss=0.5)})  # no source: no randomness at all
    assert not calm.send("client", "server", _seg(Flags.ACK), 0.0).dropped


def test_fault_rules_drop_and_hold_until_both_cross() -> None:
    net = Network((FaultRule("drop", sender="client", flags="P.", nth=1),
                   FaultRule("hold", flags="F.", release_after=2)))
    assert net.send("client", "server", _seg(Flags.PSH | Flags.ACK, b"x"), 0.0).dropped
    assert not net.send("client", "server", _seg(Flags.PSH | Flags.ACK, b"x"), 0.1).dropped
    net.due(1.0)
    net.send("client", "server", _seg(Flags.FIN | Flags.ACK), 1.0)
    assert net.due(2.0) == []  # held
    net.send("server", "client", _seg(Flags.FIN | Flags.ACK), 3.0)
    assert sorted(r for r, _, _ in net.due(3.1)) == ["client", "server"]


def test_blackhole_drops_both_directions() -> None:
    net = Network()
    net.blackholed.add("server")
    assert net.send("client", "server", _seg(Flags.SYN), 0.0).dropped
    assert net.send("server", "client", _seg(Flags.ACK), 0.0).dropped
    net.blackholed.clear()
    assert not net.send("client", "server", _seg(Flags.SYN), 0.0).dropped
