"""The sim runner: a scenario played on two model hosts over the model network.

This is the test harness promoted to a feature (h11's ``ConnectionPair``,
aioquic's ``client_and_server``): the tests and ``tcplab sim`` use the same
``Simulation``.  Theory of operation: the runner owns a virtual clock.
Each scenario step is one API call on a model socket; a call that would
block (connect, accept, recv, wait) advances the clock from one event to the
next (a segment arriving, a timer expiring) until it can return.  Between
steps the clock moves by ``step_gap`` (the lab's control round trip), and
after the last step the run ends as a live one does (the wire quiet for
0.25 s, at most 3 s), so, like the lab, a run ends with the active closer in
TIME-WAIT.  Everything lands in a ``Timeline``
(producer "sim"): API calls with results or errno, every segment with
Wireshark-style relative numbers (dropped ones marked), model state changes.

Nothing here reads a clock or a random generator: the seed feeds a
``SplitMix64`` that picks ISNs, ephemeral ports and random link effects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from tcplab.errors import InputError
from tcplab.fmt import value_text
from tcplab.model import fastopen
from tcplab.model import profile as profiles
from tcplab.model.host import Host
from tcplab.model.net import Link, Network, SplitMix64
from tcplab.model.profile import Profile
from tcplab.model.segment import Segment, to_packet
from tcplab.model.table import Trigger
from tcplab.model.tcb import (
    Connection,
    ConnError,
    Listener,
    Retransmitted,
    SocketError,
    StateChanged,
)
from tcplab.model.timers import TimerKind
from tcplab.scenario import WIRE, FaultRule, Scenario, Step
from tcplab.states import State
from tcplab.timeline import (
    ApiCall,
    EndpointInfo,
    Note,
    Snapshot,
    Source,
    StateChange,
    Timeline,
)
from tcplab.wire.flags import Flags
from tcplab.wire.seq import Seq

# A call in progress: has it returned, with what result, with what errno.
Poll = Callable[[], tuple[bool, str | None, str | None]]

ADDRESSES = {"client": "10.0.0.1", "server": "10.0.0.2"}
SUPPORTED_CALLS = frozenset(
    {"socket", "setsockopt", "bind", "listen", "accept", "connect", "send", "sendto", "recv",
     "shutdown", "close", "abort", "kill", "exit", "sleep", "wait", "blackhole", "heal",
     "release"}
)
# Options a scenario may give that are the runner's, not the profile's.
RUN_OPTIONS = {"isn", "step_gap", "delay", "loss", "duplicate", "reorder", "name", "verdict"}
STEP_GAP = 0.005
BLOCK_LIMIT = 600.0  # virtual seconds a blocking call may wait before it counts as hung
SETTLE_QUIET = 0.25  # as the lab: the wire must be quiet this long before a run ends
SETTLE_MAX = 3.0
STILL_BLOCKED = "still blocked at the end"  # the lab's result for a call that never returned


def sim_can_play(scenario: Scenario) -> bool:
    """The model can play a scenario that needs no kernel and uses calls it knows."""
    return scenario.model_can_play and all(s.call in SUPPORTED_CALLS for s in scenario.steps)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    verdict: str = ""  # what the scenario says this variant shows


def variants_of(scenario: Scenario) -> list[Variant]:
    """``[extra.sim] variants = [{name = "...", time_wait = false}, ...]``; else one run."""
    sim = scenario.extra.get("sim", {})
    raw = sim.get("variants") if isinstance(sim, dict) else None
    if not raw:
        base = dict(sim) if isinstance(sim, dict) else {}
        return [Variant("", base)]
    out: list[Variant] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "name" not in item:
            raise InputError(f"{scenario.source}: extra.sim.variants {i + 1}: needs a name")
        opts = {k: v for k, v in item.items() if k not in ("name", "verdict")}
        out.append(Variant(str(item["name"]), opts, str(item.get("verdict", ""))))
    return out


def _fnv1a(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


@dataclass
class _Socket:
    actor: str
    name: str
    fd: int
    port: int | None = None
    reuseaddr: bool = False
    linger_zero: bool = False
    keepalive: bool = False
    keepalive_opts: dict[str, float] = field(default_factory=dict)
    fastopen_qlen: int = 0  # setsockopt(TCP_FASTOPEN)
    fastopen_connect: bool = False  # setsockopt(TCP_FASTOPEN_CONNECT)
    conn: Connection | None = None
    listener: Listener | None = None
    closed: bool = False


@dataclass
class _Pending:
    step: Step
    started: float
    poll: Poll


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        *,
        profile: str | Profile = "linux",
        seed: int = 0,
        options: dict[str, Any] | None = None,
        links: dict[str, Link] | None = None,
        extra_rules: tuple[FaultRule, ...] = (),
    ) -> None:
        self.scenario = scenario
        options = dict(options or {})
        base = profiles.get(profile) if isinstance(profile, str) else profile
        model_opts = {k: v for k, v in options.items() if k not in RUN_OPTIONS}
        base = base.with_options(model_opts, f"{scenario.source or scenario.id}: extra.sim")
        self.profile = base
        self.seed = seed
        self.isn_mode = str(options.get("isn", "random"))
        if self.isn_mode not in ("random", "fixed"):
            raise InputError(f"{scenario.id}: isn={self.isn_mode!r} (known: random, fixed)")
        # Time between two steps: the live lab's control round trip is ~5 ms
        # (measured on `tcplab run`), and it decides whether a delayed ACK goes
        # out alone or rides on the next call's segment.
        self.step_gap = float(options.get("step_gap", STEP_GAP))
        self._rng = SplitMix64(seed)
        link = Link(
            delay=float(options.get("delay", 0.0005)),
            loss=float(options.get("loss", 0.0)),
            duplicate=float(options.get("duplicate", 0.0)),
            reorder=float(options.get("reorder", 0.0)),
        )
        self.net = Network(
            (*scenario.faults, *extra_rules),
            links=links or {"client": link, "server": link},
            rng=SplitMix64(seed ^ 0x5EED),
        )
        self.now = 0.0
        self.hosts: dict[str, Host] = {}
        for actor, address in ADDRESSES.items():
            prof = base.with_sysctls(scenario.sysctl.get(actor, {}), f"sysctl.{actor}")
            self.hosts[actor] = Host(actor, address, prof, isn=self._isn,
                                     ephemeral_port=self._ephemeral)
        self.sockets: dict[str, dict[str, _Socket]] = {a: {} for a in ADDRESSES}
        self._last_socket: dict[str, str] = {}
        self._fds: dict[str, int] = {a: 3 for a in ADDRESSES}
        self.pending: list[_Pending] = []
        self._bases: dict[tuple[str, int, str, int], Seq] = {}
        self._last_snapshot: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self.timeline = Timeline(
            title=scenario.title,
            producer="sim",
            endpoints=[
                EndpointInfo("client", ADDRESSES["client"], 0, "client"),
                EndpointInfo("server", ADDRESSES["server"], scenario.server_port, "server"),
            ],
            meta={"scenario": scenario.id, "profile": base.name, "seed": seed,
                  "options": {k: v for k, v in options.items() if k != "verdict"}},
        )

    # -- injected nondeterminism ----------------------------------------------

    def _isn(self, local: tuple[str, int], remote: tuple[str, int], now: float) -> int:
        if self.isn_mode == "fixed":
            # Same ISN for every incarnation of a port pair (why-2msl's premise).
            return _fnv1a(f"{self.seed}|{local}|{remote}") & 0xFFFFFFFF
        return self._rng.next_u64() & 0xFFFFFFFF

    def _ephemeral(self) -> int:
        return self._rng.randrange(32768, 61000)  # Linux ip_local_port_range

    # -- the clock -------------------------------------------------------------

    def _peer(self, actor: str) -> str:
        return "server" if actor == "client" else "client"

    def _next_event(self) -> float | None:
        times = [t for h in self.hosts.values() if (t := h.next_deadline()) is not None]
        net = self.net.next_deadline()
        if net is not None:
            times.append(net)
        return min(times, default=None)

    def _drain(self, actor: str) -> bool:
        """Move what one host produced onto the wire and into the timeline."""
        host = self.hosts[actor]
        for event in host.events():
            self._record_event(event)
        out = host.segments_to_send()
        for seg in out:
            self._transmit(actor, seg)
        return bool(out)

    def _flush(self) -> None:
        """Drain both hosts, then hand over every arrival that is due, one at a time.

        Each arrival's answer goes on the wire before the next arrival is
        processed, as a kernel answers in softirq: two crossing SYNs are
        answered in the order they arrive.  Calls still running (a background
        send(), a recv() waiting for more) are polled inside the loop, so what
        they make the socket say goes out at once: a recv() that empties the
        receive queue sends a window update (RFC 9293 §3.8.6.2.2), and a
        window update left in the queue stalls the peer until its RTO fires.
        """
        for _ in range(1000):
            self._poll_pending()
            moved = [self._drain(actor) for actor in self.hosts]
            arrived = self.net.due(self.now)
            for receiver, seg, sent_at in arrived:
                in_flight = self.now - sent_at
                if in_flight - self.net.link(self._peer(receiver)).delay > 0.05:
                    text = (f"a segment sent {in_flight:.3f} s ago arrives now: "
                            f"[{seg.flags.tcpdump()}] seq {seg.seq.value} len {len(seg.payload)}")
                    self.timeline.add(Note(self.now, text, receiver))
                self.hosts[receiver].receive(seg, self.now)
                self._drain(receiver)
            if not any(moved) and not arrived:
                break

    def _advance_to(self, when: float) -> None:
        self.now = max(self.now, when)
        for host in self.hosts.values():
            host.handle_timers(self.now)
        self._flush()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, handling everything that happens."""
        self.run_until(lambda: False, self.now + seconds)

    def run_until(self, done: Callable[[], bool], until: float) -> bool:
        self._flush()
        while True:
            finished = done()
            # done() may poll the call itself (a recv() that read): what it made
            # the socket send leaves now, not whenever the next event comes.
            self._flush()
            if finished:
                return True
            t = self._next_event()
            if t is None or t > until:
                self.now = max(self.now, until)
                self._flush()
                finished = done()
                self._flush()
                return finished
            self._advance_to(t)

    def settle(self) -> None:
        """End the run the way the lab does: once the wire has been quiet for
        ``SETTLE_QUIET`` seconds, at most ``SETTLE_MAX`` after the last step
        (tcplab.lab.runner), so a sim run and a live run cover the same span."""
        begin = self.now
        end = begin + SETTLE_MAX
        while self.now < end:
            packets = self.timeline.packets()
            quiet_at = (packets[-1].time if packets else begin) + SETTLE_QUIET
            if self.now >= quiet_at:
                break
            self.run_until(lambda: False, min(quiet_at, end))  # leaves now == that moment

    def run_to_the_end(self, limit: float = 3600.0) -> None:
        """Run until no timer at all is left, TIME-WAIT included (property tests)."""
        self.run_until(lambda: self._next_event() is None, self.now + limit)

    # -- recording -------------------------------------------------------------

    def _relative_base(self, seg: Segment) -> tuple[Seq | None, Seq | None]:
        # Wireshark (PEER-SEMANTICS.md §3.1): base = ISN from the SYN, else seq - 1;
        # a new pure SYN with a different ISN starts a new incarnation.
        fwd = (seg.src, seg.sport, seg.dst, seg.dport)
        rev = (seg.dst, seg.dport, seg.src, seg.sport)
        syn = bool(seg.flags & Flags.SYN)
        if syn and self._bases.get(fwd) != seg.seq:
            # Only a SYN that replaces an earlier ISN of this direction starts a new
            # incarnation; a first SYN from this side next to the other side's pure SYN
            # is a simultaneous open (RFC 9293 §3.5 figure 8) and keeps the other base.
            if not seg.has_ack and fwd in self._bases:
                self._bases.pop(rev, None)
            self._bases[fwd] = seg.seq
        elif fwd not in self._bases:
            self._bases[fwd] = seg.seq - 1
        return self._bases[fwd], self._bases.get(rev)

    def _transmit(self, actor: str, seg: Segment) -> None:
        receiver = self._peer(actor)
        base_seq, base_ack = self._relative_base(seg)
        tx = self.net.send(actor, receiver, seg, self.now)
        self.timeline.add(
            to_packet(seg, time=self.now, sender=actor, receiver=receiver, base_seq=base_seq,
                      base_ack=base_ack, dropped=tx.dropped, annotations=tx.notes)
        )

    def _record_event(self, event: object) -> None:
        if isinstance(event, StateChanged):
            cause = event.cause
            if event.socket.startswith("listener"):
                cause = f"{cause} [{event.socket}]"
            self.timeline.add(
                StateChange(event.time, event.endpoint, event.old, event.new, Source.MODEL, cause)
            )
        elif isinstance(event, Retransmitted):
            # Worded like the lab's tcp_retransmit_skb note, so scenario facts match both.
            self.timeline.add(Note(event.time, f"model: retransmission (in "
                                   f"{event.state.value})", event.endpoint))
        elif isinstance(event, ConnError):
            self.timeline.add(Note(event.time, f"{event.errno} pending for the application",
                                   event.endpoint))

    def _api(self, step: Step, started: float, result: str | None, errno: str | None) -> None:
        # Same text as the lab's ApiCall arguments, so timelines compare.
        args = tuple(f"{k}={v!r}" for k, v in step.args.items())
        if step.sock:
            args = (f"sock={step.sock}", *args)
        self.timeline.add(ApiCall(self.now, step.actor, step.call, args, result, errno, started))

    def snapshot(self) -> None:
        """What ``ss -tano`` would show now, for every socket that changed since last time.

        Like sock_diag: a LISTEN socket's Recv-Q is its accept queue and its
        Send-Q the backlog; a connection's Recv-Q counts unread bytes and an
        unread FIN, Send-Q the bytes not yet acknowledged.
        """
        timer_names = {TimerKind.RETRANSMIT: "on", TimerKind.KEEPALIVE: "keepalive",
                       TimerKind.TIME_WAIT: "timewait", TimerKind.FIN_WAIT_2: "timewait"}
        for actor, host in self.hosts.items():
            for machine in host.sockets():
                if machine.state is State.CLOSED:
                    continue
                local = f"{machine.local[0]}:{machine.local[1]}"
                if isinstance(machine, Listener):
                    peer, rq, wq, timer, timer_ms, retrans, shut = (
                        "*:*", len(machine.accept_queue), machine.backlog, "", 0, 0, 0)
                else:
                    peer = f"{machine.remote[0]}:{machine.remote[1]}"
                    rq = len(machine.rcv_queue) + (machine.peer_fin and not machine.fin_consumed)
                    wq = len(machine.send_queue) + (machine.snd_nxt - machine.snd_una)
                    if machine.state is State.TIME_WAIT:
                        rq = wq = 0  # a timewait mini-socket has no queues
                    running = [(timer_names[k], t.expires) for k, t in machine.timers.items()
                               if k in timer_names]
                    timer, expires = min(running, key=lambda r: r[1], default=("", self.now))
                    timer_ms = max(0, round((expires - self.now) * 1000))
                    retrans = machine.retransmits
                    shut = (1 if machine.read_shut or machine.peer_fin else 0) | (
                        2 if machine.write_shut else 0)
                key = (actor, local, peer)
                value = (machine.state, rq, wq, timer, shut)
                if self._last_snapshot.get(key) == value:
                    continue
                self._last_snapshot[key] = value
                self.timeline.add(Snapshot(self.now, actor, machine.state, local, peer, rq, wq,
                                           timer, timer_ms, retrans, 0, shut))

    # -- sockets ---------------------------------------------------------------

    def _new_socket(self, actor: str, name: str) -> _Socket:
        sock = _Socket(actor, name, self._fds[actor])
        self._fds[actor] += 1
        self.sockets[actor][name] = sock
        self._last_socket[actor] = name
        return sock

    def _socket(self, step: Step) -> _Socket:
        name = step.sock or self._last_socket.get(step.actor)
        if name is None or name not in self.sockets[step.actor]:
            if step.call in ("connect", "bind", "setsockopt", "listen", "sendto"):
                return self._new_socket(step.actor, name or "main")
            raise SocketError("EBADF", f"{step.actor} has no socket {name!r}")
        return self.sockets[step.actor][name]

    def _conn(self, sock: _Socket) -> Connection:
        if sock.conn is None:
            raise SocketError("ENOTCONN", f"socket {sock.name} is not connected")
        return sock.conn

    def _apply_options(self, sock: _Socket) -> None:
        for machine in (sock.conn, sock.listener):
            if machine is None:
                continue
            machine.reuseaddr = sock.reuseaddr
            machine.keepalive = sock.keepalive
        if sock.listener is not None and sock.fastopen_qlen:
            sock.listener.fastopen_qlen = sock.fastopen_qlen
        conn = sock.conn
        if conn is not None:
            conn.linger_zero = sock.linger_zero
            conn.keepalive_idle = sock.keepalive_opts.get("TCP_KEEPIDLE", conn.keepalive_idle)
            conn.keepalive_interval = sock.keepalive_opts.get("TCP_KEEPINTVL",
                                                              conn.keepalive_interval)
            conn.keepalive_probes = int(sock.keepalive_opts.get("TCP_KEEPCNT",
                                                                conn.keepalive_probes))
            conn.set_keepalive(sock.keepalive, self.now)

    # -- steps -----------------------------------------------------------------

    def run(self) -> Timeline:
        for step in self.scenario.steps:
            self.play(step)
            # Snapshot half-way through the gap, so it reads as "after this step".
            self.advance(self.step_gap / 2)
            self.snapshot()
            self.advance(self.step_gap / 2)
        self.settle()
        self.snapshot()
        self.net.release_held(self.now)
        self.settle()
        # Like the lab, give each call still running half a second to return.
        while self.pending:
            first = self.pending[0]

            def returned(call: _Pending = first) -> bool:
                return call not in self.pending

            self.run_until(returned, self.now + 0.5)
            if first in self.pending:
                self.pending.remove(first)
                self._api(first.step, first.started, STILL_BLOCKED, None)
        self.timeline.sort()
        return self.timeline

    def play(self, step: Step) -> None:
        started = self.now
        if step.actor == WIRE:
            self._wire_step(step)
            return
        try:
            poll = self._start(step)
        except SocketError as exc:
            self._api(step, started, None, exc.errno)
            return
        if step.background:
            done, result, errno = poll()
            if done:
                self._api(step, started, result, errno)
            else:
                self.pending.append(_Pending(step, started, poll))
            return
        limit = float(step.args.get("timeout", BLOCK_LIMIT)) if step.call == "wait" else BLOCK_LIMIT
        outcome: list[tuple[bool, str | None, str | None]] = []

        def finished() -> bool:
            outcome.append(poll())
            return outcome[-1][0]

        self.run_until(finished, started + limit)
        done, result, errno = outcome[-1]
        if not done:
            # wait() gives up like the lab's (result "timeout"); any other call is hung.
            result, errno = ("timeout", "ETIMEDOUT") if step.call == "wait" else (None, "EAGAIN")
        self._api(step, started, result, errno)

    def _poll_pending(self) -> None:
        still: list[_Pending] = []
        for pending in self.pending:
            try:
                done, result, errno = pending.poll()
            except SocketError as exc:
                done, result, errno = True, None, exc.errno
            if done:
                self._api(pending.step, pending.started, result, errno)
            else:
                still.append(pending)
        self.pending = still

    def _wire_step(self, step: Step) -> None:
        if step.call == "blackhole":
            self.net.blackholed.add(str(step.args["host"]))
        elif step.call == "heal":
            self.net.blackholed.discard(str(step.args["host"]))
        elif step.call == "release":
            self.net.release_held(self.now)
            self._flush()
        self.timeline.add(Note(self.now, f"wire: {step.describe()}"))

    def _start(self, step: Step) -> Poll:
        """Make the call; return a poll that says whether it has returned, and with what."""
        actor, args = step.actor, step.args
        host = self.hosts[actor]

        def now_done(result: str | None = "0") -> Poll:
            return lambda: (True, result, None)

        call = step.call
        if call == "socket":
            sock = self._new_socket(actor, step.sock or "main")
            return now_done(str(sock.fd))
        if call == "sleep":
            self.advance(float(args["seconds"]))
            return now_done(str(float(args["seconds"])))
        if call in ("kill", "exit"):
            # Either way the process is gone and the kernel closes what it held: the
            # exiting task's last fput()s run as task_work, last in first out since
            # Linux 4.3 (c82199061009 "task_work: remove fifo ordering guarantee"),
            # so the newest socket is closed first.
            for sock in reversed(list(self.sockets[actor].values())):
                self._close_socket(sock)
                self._drain(actor)  # each close's segment leaves before the next close
            return now_done("killed" if call == "kill" else "exited")
        sock = self._socket(step)
        if call == "setsockopt":
            self._setsockopt(sock, str(args["option"]), args["value"])
            return now_done()
        if call == "bind":
            port = int(args.get("port", self.scenario.server_port if actor == "server" else 0))
            if port == 0:
                port = host.ephemeral_port()
            elif host.port_in_use(port, sock.reuseaddr):
                raise SocketError("EADDRINUSE", f"port {port}")
            sock.port = port
            return now_done()
        if call == "listen":
            port = sock.port or self.scenario.server_port
            if sock.port is None and host.port_in_use(port, sock.reuseaddr):
                raise SocketError("EADDRINUSE", f"port {port}")
            sock.port = port
            sock.listener = host.listen(port, int(args.get("backlog", 5)), self.now)
            self._apply_options(sock)
            return now_done()
        if call == "accept":
            return self._accept(sock, str(args.get("into", "conn")))
        if call == "connect":
            return self._connect(sock, step)
        if call in ("send", "sendto"):
            data = str(args.get("data", "")).encode()
            if "size" in args:
                data = bytes(ord("a") + i % 26 for i in range(int(args["size"])))
            if call == "sendto" and str(args.get("flags", "")) == "MSG_FASTOPEN":
                return self._connect(sock, step, fastopen=data)
            conn = self._conn(sock)
            deferred = conn.deferred_connect
            sent = str(conn.send(data, self.now))
            if deferred:
                # The first write after TCP_FASTOPEN_CONNECT's connect() sent the SYN;
                # a blocking write returns once connected (seen live).
                return lambda: (conn.state is not State.SYN_SENT, sent, None)
            return now_done(sent)
        if call == "recv":
            return self._recv(sock, args)
        if call == "shutdown":
            self._conn(sock).shutdown(str(args["how"]), self.now)
            return now_done()
        if call == "close":
            self._close_socket(sock)
            return now_done()
        if call == "abort":
            sock.linger_zero = True
            self._close_socket(sock)
            return now_done()
        if call == "wait":
            return self._wait(sock, args)
        raise SocketError("ENOSYS", f"the model cannot play {call}()")

    def _setsockopt(self, sock: _Socket, option: str, value: Any) -> None:
        if option == "SO_REUSEADDR":
            sock.reuseaddr = bool(value)
        elif option == "SO_LINGER":
            onoff, seconds = (value if isinstance(value, list) else [value, 0])[:2]
            sock.linger_zero = bool(onoff) and int(seconds) == 0
        elif option == "SO_KEEPALIVE":
            sock.keepalive = bool(value)
        elif option in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"):
            sock.keepalive_opts[option] = float(value)
        elif option == "TCP_FASTOPEN":
            sock.fastopen_qlen = int(value)
        elif option == "TCP_FASTOPEN_CONNECT":
            if not self.hosts[sock.actor].profile.fastopen & fastopen.CLIENT_ENABLE:
                raise SocketError("EOPNOTSUPP", "net.ipv4.tcp_fastopen has no client bit (1)")
            sock.fastopen_connect = bool(value)
        # TCP_NODELAY, SO_RCVBUF, SO_SNDBUF: accepted, not modelled.
        self._apply_options(sock)

    def _close_socket(self, sock: _Socket) -> None:
        if sock.closed:
            return
        sock.closed = True
        if sock.listener is not None:
            sock.listener.close(self.now)
        if sock.conn is not None:
            sock.conn.linger_zero = sock.linger_zero
            sock.conn.close(self.now)

    def _accept(self, sock: _Socket, into: str) -> Poll:
        listener = sock.listener
        if listener is None:
            raise SocketError("EINVAL", "accept() on a socket that is not listening")

        def poll() -> tuple[bool, str | None, str | None]:
            child = listener.accept()
            if child is None:
                return False, None, None
            new = self._new_socket(sock.actor, into)
            new.conn, new.port = child, child.local[1]
            new.keepalive = sock.keepalive
            # Linux sk_clone_lock copies sk_reuse: the child (and later its TIME-WAIT
            # socket) has SO_REUSEADDR exactly when the listener had it.
            new.reuseaddr = sock.reuseaddr
            new.keepalive_opts = dict(sock.keepalive_opts)
            self._apply_options(new)
            self.timeline.endpoints[1 if sock.actor == "server" else 0] = EndpointInfo(
                sock.actor, child.local[0], child.local[1], sock.actor)
            return True, str(new.fd), None

        return poll

    def _connect(self, sock: _Socket, step: Step, fastopen: bytes | None = None) -> Poll:
        """connect(), or with ``fastopen`` sendto(MSG_FASTOPEN) of those bytes."""
        host = self.hosts[sock.actor]
        peer = self._peer(sock.actor)
        port = sock.port if sock.port is not None else host.ephemeral_port()
        sock.port = port
        remote = (ADDRESSES[peer], int(step.args.get("port", self.scenario.server_port)))
        conn = host.new_connection(port, remote, self.now)
        sock.conn = conn
        self._apply_options(sock)
        index = 0 if sock.actor == "client" else 1
        self.timeline.endpoints[index] = EndpointInfo(sock.actor, conn.local[0], port, sock.actor)
        nonblocking = bool(step.args.get("nonblocking"))
        if fastopen is None:
            if sock.fastopen_connect:
                conn.set_fastopen_connect(True)
            conn.connect(self.now)
            if conn.deferred_connect:
                return lambda: (True, "0", None)  # the SYN waits for the first write
        else:
            on_syn = conn.connect_fastopen(fastopen, self.now, blocking=not nonblocking)
            if nonblocking and on_syn:
                return lambda: (True, str(on_syn), None)
        if nonblocking:
            return lambda: (True, None, "EINPROGRESS")
        # A blocking sendto(MSG_FASTOPEN) returns once connected, all data queued.
        success = "0" if fastopen is None else str(len(fastopen))

        def poll() -> tuple[bool, str | None, str | None]:
            if conn.state is State.SYN_SENT or (
                conn.state is State.SYN_RECEIVED and conn.error is None
            ):
                return False, None, None
            if conn.state is State.CLOSED:
                errno = conn.error or "ECONNREFUSED"
                conn.error = None
                return True, None, errno
            return True, success, None

        return poll

    def _recv(self, sock: _Socket, args: dict[str, Any]) -> Poll:
        conn = self._conn(sock)
        bufsize = int(args.get("bufsize", 65536))
        until = args.get("until")
        want = int(args.get("size", 0))
        got = bytearray()

        def poll() -> tuple[bool, str | None, str | None]:
            while True:
                try:
                    data = conn.recv(bufsize, self.now)
                except SocketError as exc:
                    if got:
                        return True, repr(bytes(got)), None
                    return True, None, exc.errno
                if data is None:
                    return False, None, None
                got.extend(data)
                if until == "eof" and data:
                    continue
                if until == "size" and data and len(got) < want:
                    continue
                return True, repr(bytes(got)), None

        return poll

    def _wait(self, sock: _Socket, args: dict[str, Any]) -> Poll:
        target = State.parse(str(args["state"])) if "state" in args else None
        gone = bool(args.get("gone", False))

        def machine_state() -> State:
            if sock.conn is not None:
                return sock.conn.state
            if sock.listener is not None:
                return sock.listener.state
            return State.CLOSED

        def poll() -> tuple[bool, str | None, str | None]:
            state = machine_state()
            if target is not None and state is target:
                return True, str(state), None
            if gone and state is State.CLOSED:
                return True, "gone", None
            return False, None, None

        return poll


def run_scenario(
    scenario: Scenario,
    *,
    profile: str = "linux",
    seed: int = 0,
    variant: Variant | None = None,
) -> Timeline:
    """Play a scenario (one variant of it) on the model; the timeline it produced."""
    options = dict(variant.options) if variant is not None else {}
    sim = Simulation(scenario, profile=profile, seed=seed, options=options)
    timeline = sim.run()
    if variant is not None and variant.name:
        timeline.meta["variant"] = variant.name
        timeline.title = f"{scenario.title} — {variant.name}"
    return timeline


def verdict(timeline: Timeline) -> str:
    """One line saying how the run ended: resets, errors, final states, what was read."""
    resets = [f"{p.sender} [{p.flags}]" for p in timeline.packets() if "R" in p.flags]
    errors = [f"{c.actor}.{c.call} -> {c.errno}" for c in timeline.api_calls()
              if c.errno and c.errno != "EINPROGRESS"]
    accepts: list[str] = []
    for name in ("client", "server"):
        calls = [c for c in timeline.api_calls(name) if c.call == "accept"]
        done = sum(1 for c in calls if c.result not in (None, STILL_BLOCKED))
        if done:
            accepts.append(f"{name} accepted {done} connection{'s' if done > 1 else ''}")
        if any(c.result == STILL_BLOCKED for c in calls):
            accepts.append(f"{name} accept() still waiting at the end")
    finals = []
    for name in ("client", "server"):
        path = timeline.state_path(name)
        if path:
            finals.append(f"{name} ends {path[-1]}")
    reads = [f"{c.actor} read {value_text(c.result)}" for c in timeline.api_calls()
             if c.call == "recv" and c.result not in (None, "b''")]
    parts = [
        ("RST: " + ", ".join(resets)) if resets else "no RST",
        ("errors: " + ", ".join(errors)) if errors else "no errors",
        *accepts,
        *finals,
        *reads,
    ]
    return "; ".join(parts)


def profile_fields() -> list[str]:
    return [f.name for f in fields(Profile)]


__all__ = [
    "Simulation",
    "Trigger",
    "Variant",
    "run_scenario",
    "sim_can_play",
    "variants_of",
    "verdict",
]
