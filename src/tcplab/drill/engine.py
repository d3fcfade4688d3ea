"""Playing a script against a stack, with packetdrill's timing rules.

The loop is packetdrill's ``run_script`` (run.c): every event gets its time
(a relative time counts from the moment the previous event finished,
except that consecutive inbound packets anchor on the previous packet's
script time), then

* an inbound packet waits for its time, is checked for lateness, mapped
  onto the live connection and injected;
* an outbound packet is sniffed at once (the next packet the socket under
  test sent, within the time plus two seconds), checked field by field,
  then for its time;
* a system call waits for its time and runs; ``T1...T2`` calls run in the
  background and must return at ``T2``; the next call waits (at most one
  second) for a background call to finish;
* a backquoted command runs in the stack's namespace and must exit 0;
* a ``%{ }%`` block records the socket's ``tcp_info`` now and runs after
  the last event, as packetdrill runs its python at the end.

Times are checked with ``--tolerance_usecs`` (default 4 ms), grown to
``--tolerance_percent`` (12.5 %) of the gap since the previous event.
The stack (``Stack``) is the live kernel (``linux.LinuxStack``) or the
model (``modelstack.ModelStack``); the engine only sees calls, packets
and a clock.
"""

from __future__ import annotations

import math
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Protocol

from tcplab.drill import calls
from tcplab.drill.packets import (
    Actual,
    Config,
    Conn,
    LivePacket,
    PacketError,
    build_inbound,
    decode,
    map_outbound,
    verify_outbound,
)
from tcplab.drill.script import (
    NO_TIME,
    CodeSpec,
    CommandSpec,
    DrillError,
    Event,
    PacketSpec,
    Script,
    SyscallSpec,
    TimeType,
    Unsupported,
)
from tcplab.wire.flags import Flags

NONBLOCKING_CALL_LIMIT_US = 10_000_000  # a call written non-blocking that never returns
IDLE_WAIT_US = 1_000_000  # packetdrill's await_idle_thread
CODE_GRACE_US = 20_000
SNIFF_SLACK_US = 2_000_000  # packetdrill: expected time + 2 s
ANY_TIME_LIMIT_US = 60_000_000  # "*": packetdrill waits forever; we do not


@dataclass
class CallResult:
    ret: int
    errno: int
    out: dict[str, Any]
    started_us: int
    ended_us: int
    problem: str | None = None


class Stack(Protocol):
    """What the engine drives: the live kernel or the model."""

    family: int
    local_ip: str
    remote_ip: str

    def now_us(self) -> int: ...
    def sleep_until_us(self, t: int) -> None: ...
    def start_call(self, cmd: dict[str, Any]) -> int: ...
    def call_status(self, handle: int) -> str: ...  # running | blocked | done
    def wait_call(self, handle: int, until_us: int) -> CallResult | None: ...
    def inject(self, raw: bytes) -> None: ...
    def sniff(self, until_us: int) -> tuple[int, bytes] | None: ...
    def command(self, text: str) -> tuple[int, str]: ...


@dataclass
class Failure:
    kind: str  # packet | syscall | timing | command | code | unsupported | runtime
    line: int
    message: str

    def text(self, path: str) -> str:
        return f"{path}:{self.line}: {self.message}"


@dataclass
class Record:
    """One thing that happened, for the timeline and the ladder."""

    line: int
    kind: str  # inbound outbound syscall command code
    text: str  # the script line
    start_us: int  # live, relative to the run's start
    end_us: int
    raw: bytes = b""  # the packet
    result: str = ""  # a call's "= 0" / "= -1 (EINPROGRESS)"
    ok: bool = True


@dataclass
class Outcome:
    script: Script
    failure: Failure | None = None
    records: list[Record] = field(default_factory=list)
    unexpected: list[tuple[int, bytes]] = field(default_factory=list)  # sniffed, skipped

    @property
    def passed(self) -> bool:
        return self.failure is None


class _Fail(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass
class _Pending:
    event: Event
    spec: SyscallSpec
    prep: calls.Prepared
    handle: int


class Engine:
    def __init__(
        self,
        script: Script,
        stack: Stack,
        config: Config,
        ports: tuple[int, int],
        ephemeral_base: int,
    ) -> None:
        self.script = script
        self.stack = stack
        self.config = config
        self.env = calls.Env(stack.family, stack.local_ip, stack.remote_ip, *ports)
        self.conns: list[Conn] = []
        self.sut: Conn | None = None
        self.next_port = ephemeral_base
        self.live_start = 0
        self.last_event: Event | None = None
        self.pending: _Pending | None = None
        self.codes: list[tuple[Event, dict[str, int] | None]] = []
        self.current: Event | None = None
        self.outcome = Outcome(script)

    # -- helpers ---------------------------------------------------------------------

    def now(self) -> int:
        """Live microseconds since the run's start (script time 0)."""
        return self.stack.now_us() - self.live_start

    def fail(self, kind: str, line: int, message: str) -> _Fail:
        return _Fail(Failure(kind, line, message))

    def tolerance(self, script_us: int, last_us: int) -> int:
        tol = self.config.tolerance_usecs
        if last_us != NO_TIME:
            tol = max(tol, int(self.config.tolerance_percent / 100.0 * (script_us - last_us)))
        return tol

    def verify_time(
        self,
        event: Event,
        time_type: TimeType,
        script_us: int,
        script_end_us: int,
        live_us: int,
        last_us: int,
        description: str,
    ) -> None:
        """packetdrill's ``verify_time``: raises a timing failure."""
        if time_type is TimeType.ANY:
            return
        tol = self.tolerance(script_us, last_us)
        if time_type in (TimeType.ABSOLUTE_RANGE, TimeType.RELATIVE_RANGE):
            if live_us < script_us - tol or live_us > script_end_us + tol:
                raise self.fail(
                    "timing",
                    event.line,
                    f"timing error: expected {description} in time range "
                    f"{script_us / 1e6:.6f}~{script_end_us / 1e6:.6f} sec but happened "
                    f"at {live_us / 1e6:.6f} sec; tolerance {tol / 1e6:.6f} sec",
                )
            return
        if live_us < script_us - tol or live_us > script_us + tol:
            raise self.fail(
                "timing",
                event.line,
                f"timing error: expected {description} at {script_us / 1e6:.6f} sec "
                f"but happened at {live_us / 1e6:.6f} sec; tolerance "
                f"{tol / 1e6:.6f} sec",
            )

    def last_time(self) -> int:
        return self.last_event.time_usecs if self.last_event is not None else NO_TIME

    def wait_for_event(self, event: Event, description: str) -> None:
        self.stack.sleep_until_us(self.live_start + event.time_usecs)
        if self.last_event is not None:  # packetdrill checks from the second event on
            self.verify_time(
                event,
                event.time_type,
                event.time_usecs,
                event.time_end_usecs,
                self.now(),
                self.last_time(),
                description,
            )

    def adjust(self, event: Event) -> None:
        """packetdrill's ``adjust_relative_event_times``."""
        if event.time_type not in (TimeType.ANY, TimeType.RELATIVE, TimeType.RELATIVE_RANGE):
            return
        last = self.last_event
        if last is not None and last.kind == "inbound" and event.kind == "inbound":
            offset = last.time_usecs
        else:
            offset = self.now()
        event.time_usecs += offset
        if event.time_type is TimeType.RELATIVE_RANGE:
            event.time_end_usecs += offset
        action = event.action
        if (
            event.time_type is TimeType.RELATIVE
            and isinstance(action, SyscallSpec)
            and action.blocking
        ):
            event.action = SyscallSpec(
                action.name,
                action.args,
                action.result,
                action.errno,
                action.note,
                action.end_usecs + offset,
            )

    # -- the run ---------------------------------------------------------------------

    def run(self) -> Outcome:
        events = self.script.events
        if events[0].time_usecs != 0:
            self.outcome.failure = Failure(
                "runtime", events[0].line, "first event should be at time 0"
            )
            return self.outcome
        self.live_start = self.stack.now_us()
        try:
            for event in events:
                self.current = event
                self.poll_pending()
                self.adjust(event)
                action = event.action
                if isinstance(action, PacketSpec):
                    if action.inbound:
                        self.inbound(event, action)
                    else:
                        self.outbound(event, action)
                elif isinstance(action, SyscallSpec):
                    self.syscall(event, action)
                elif isinstance(action, CommandSpec):
                    self.command(event, action)
                else:
                    self.code(event, action)
                self.last_event = event
            self.await_idle(final=True)
            self.run_codes()
        except _Fail as exc:
            self.outcome.failure = exc.failure
        except Unsupported as exc:
            self.outcome.failure = Failure("unsupported", exc.line, exc.message)
        except DrillError as exc:
            self.outcome.failure = Failure("runtime", exc.line, exc.message)
        except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
            # A bug here or a stack that cannot do what the line asks: one line, no traceback.
            line = self.current.line if self.current is not None else 0
            self.outcome.failure = Failure(
                "runtime", line, f"runtime error: {type(exc).__name__}: {exc}"
            )
        return self.outcome

    # -- packets ---------------------------------------------------------------------

    def _new_passive(self) -> Conn:
        self.next_port += 1
        conn = Conn(
            self.stack.family,
            local=(self.stack.local_ip, self.env.bind_port),
            remote=(self.stack.remote_ip, self.next_port),
            state="passive_received",
        )
        self.conns.append(conn)
        self.sut = conn
        return conn

    def inbound(self, event: Event, spec: PacketSpec) -> None:
        sut = self.sut
        if sut is None or sut.state == "listening":
            sut = self._new_passive()
            sut.remote_isn = spec.seq
        flags_ack = spec.has_ack_flag
        if sut.state == "synack_sent" and flags_ack:
            sut.state = "synack_acked"
        elif sut.state == "syn_sent" and "S" in spec.flags and flags_ack:
            sut.state = "syn_acked"
            sut.remote_isn = spec.seq
        if sut.state in ("new", "connecting") or not sut.local[1]:
            raise self.fail(
                "packet",
                event.line,
                "error handling packet: no connection yet for this inbound packet "
                "(the socket under test has sent no SYN)",
            )
        self.wait_for_event(event, "inbound packet")
        try:
            raw = build_inbound(spec, sut, self.config)
        except (PacketError, ValueError) as exc:
            raise self.fail("packet", event.line, f"error handling packet: {exc}") from None
        at = self.now()
        self.stack.inject(raw)
        self.outcome.records.append(Record(event.line, "inbound", event.source, at, at, raw))

    def _matches(self, pkt: LivePacket, sut: Conn) -> bool:
        tcp = pkt.tcp
        if (
            sut.local[1]
            and (pkt.src, tcp.sport) == sut.local
            and (pkt.dst, tcp.dport) == sut.remote
        ):
            return True
        # Deliberately stricter than packetdrill: a SYN from a socket that was under
        # test before (Linux 6.18 may still retransmit one) is not this socket's SYN.
        if any(c is not sut and c.local == (pkt.src, tcp.sport) for c in self.conns):
            return False
        if (
            sut.state == "syn_sent"
            and tcp.flags & Flags.SYN
            and not tcp.flags & Flags.ACK
            and (pkt.dst, tcp.dport) == (self.stack.remote_ip, self.env.connect_port)
            and pkt.src == self.stack.local_ip
        ):
            sut.local = (pkt.src, tcp.sport)
            sut.remote = (pkt.dst, tcp.dport)
            sut.live_local_isn = tcp.seq
            sut.have_local_isn = True
            return True
        return False

    def outbound(self, event: Event, spec: PacketSpec) -> None:
        sut = self.sut
        if sut is None:
            raise self.fail(
                "packet", event.line, "error handling packet: no matching socket for script packet"
            )
        is_syn = "S" in spec.flags
        if is_syn and not spec.has_ack_flag and sut.state == "connecting":
            sut.state = "syn_sent"
            sut.script_local_isn = spec.seq
        synack_expected = sut.state == "passive_received" and is_syn and spec.has_ack_flag
        if synack_expected:
            sut.script_local_isn = spec.seq
        expected = event.time_usecs - self.last_time() if self.last_event else event.time_usecs
        end = event.time_end_usecs - self.last_time() if event.time_end_usecs != NO_TIME else 0
        timeout = int(max(expected, end) / 1e6) * 1_000_000 + SNIFF_SLACK_US
        if event.time_type is TimeType.ANY:
            timeout = ANY_TIME_LIMIT_US
        deadline = self.stack.now_us() + timeout
        want = spec.length
        got: list[LivePacket] = []
        while True:
            sniffed = self.stack.sniff(deadline)
            if sniffed is None:
                raise self.fail(
                    "packet",
                    event.line,
                    "error handling packet: timed out waiting for packet "
                    f"(script packet: {spec.text()})",
                )
            t_us, raw = sniffed
            pkt = decode(raw, t_us - self.live_start)
            if pkt is None or not self._matches(pkt, sut):
                self.outcome.unexpected.append((t_us - self.live_start, raw))
                continue
            if synack_expected and sut.state == "passive_received":
                sut.state = "synack_sent"
                sut.live_local_isn = pkt.tcp.seq
                sut.have_local_isn = True
            if got:
                prev = got[-1]
                # packetdrill's aggregation of TSO/GSO-split segments (verify_packet_fragments).
                if (pkt.tcp.seq - prev.tcp.seq) % (1 << 32) != len(prev.payload) or (
                    sum(len(p.payload) for p in got) + len(pkt.payload) < want
                    and len(pkt.payload) != len(prev.payload)
                ):
                    self._record_outbound(event, got[0], "mismatch")
                    raise self.fail(
                        "packet",
                        event.line,
                        f"error handling packet: live packet payload: expected "
                        f"{want} bytes vs actual "
                        f"{sum(len(p.payload) for p in got)} bytes",
                    )
            got.append(pkt)
            if sum(len(p.payload) for p in got) >= want:
                break
        live = got[0] if len(got) == 1 else _aggregate(got)
        total = len(live.payload)
        self._record_outbound(event, live, "")
        if total != want:
            raise self.fail(
                "packet",
                event.line,
                f"error handling packet: live packet payload: expected {want} "
                f"bytes vs actual {total} bytes\n"
                + self._dump(spec, map_outbound(live, sut, spec), event, live),
            )
        actual = map_outbound(live, sut, spec)
        err = verify_outbound(spec, live, actual, self.config, event.time_usecs)
        if err:
            self.outcome.records[-1].ok = False
            raise self.fail(
                "packet",
                event.line,
                "error handling packet: " + err + "\n" + self._dump(spec, actual, event, live),
            )
        try:
            self.verify_time(
                event,
                event.time_type,
                event.time_usecs,
                event.time_end_usecs,
                live.time_us,
                self.last_time(),
                "outbound packet",
            )
        except _Fail as exc:
            self.outcome.records[-1].ok = False
            exc.failure.message = (
                "error handling packet: "
                + exc.failure.message
                + "\n"
                + self._dump(spec, actual, event, live)
            )
            raise

    def _record_outbound(self, event: Event, live: LivePacket, note: str) -> None:
        self.outcome.records.append(
            Record(
                event.line,
                "outbound",
                event.source,
                live.time_us,
                live.time_us,
                live.raw,
                note,
                not note,
            )
        )

    def _dump(self, spec: PacketSpec, actual: Actual, event: Event, live: LivePacket) -> str:
        return (
            f"script packet: {event.time_usecs / 1e6:9.6f} {spec.text()[2:]}\n"
            f"actual packet: {live.time_us / 1e6:9.6f} {actual.text()}"
        )

    # -- system calls ----------------------------------------------------------------

    def poll_pending(self) -> None:
        """A background call that has returned is finished at once (its fd mapped, its
        result checked), as packetdrill's syscall thread does when the call returns."""
        if self.pending is not None and self.stack.call_status(self.pending.handle) == "done":
            self.await_idle()

    def await_idle(self, final: bool = False, limit_us: int = IDLE_WAIT_US) -> None:
        pending = self.pending
        if pending is None:
            return
        result = self.stack.wait_call(pending.handle, self.stack.now_us() + limit_us)
        if result is None:
            if final:
                raise self.fail(
                    "syscall",
                    pending.event.line,
                    "runtime error: exiting while a blocking system call is in progress",
                )
            return  # packetdrill goes on after a second
        self.pending = None
        self.finish_call(pending.event, pending.spec, pending.prep, result)
        # The return time of a blocking call (dynamic tolerance from its start).
        self.verify_time(
            pending.event,
            pending.event.time_type,
            pending.spec.end_usecs,
            0,
            result.ended_us - self.live_start,
            pending.event.time_usecs,
            "system call return",
        )

    def syscall(self, event: Event, spec: SyscallSpec) -> None:
        self.await_idle()
        if spec.blocking and self.pending is not None:
            raise self.fail(
                "syscall",
                event.line,
                f"runtime error in {spec.name} call: blocking system call while "
                "another blocking system call is already in progress",
            )
        self.wait_for_event(event, "system call start")
        try:
            prep = calls.prepare(spec, self.env)
        except calls.CallUnsupported as exc:
            raise Unsupported(self.script.path, event.line, str(exc)) from None
        except calls.CallError as exc:
            raise self.fail(
                "syscall", event.line, f"runtime error in {spec.name} call: {exc}"
            ) from None
        self.before_call(spec, prep)
        handle = self.stack.start_call(prep.cmd)
        if spec.blocking:
            # Wait until the call sleeps in the kernel (or returns), as packetdrill's main
            # thread does, then go on with the next events.
            limit = self.stack.now_us() + NONBLOCKING_CALL_LIMIT_US
            while self.stack.call_status(handle) == "running" and self.stack.now_us() < limit:
                self.stack.sleep_until_us(self.stack.now_us() + 200)
            self.pending = _Pending(event, spec, prep, handle)
            return
        result = self.stack.wait_call(handle, self.stack.now_us() + NONBLOCKING_CALL_LIMIT_US)
        if result is None:
            raise self.fail(
                "syscall",
                event.line,
                f"runtime error in {spec.name} call: the call did not return "
                "(it blocks; a blocking call is written T1...T2)",
            )
        self.finish_call(event, spec, prep, result)

    def before_call(self, spec: SyscallSpec, prep: calls.Prepared) -> None:
        """Script-side socket bookkeeping before the call (packetdrill's run_syscall_connect:
        connect(), and sendto()/sendmsg() with MSG_FASTOPEN, start a connection)."""
        if spec.name not in ("connect", "sendto", "sendmsg") or not spec.args:
            return
        conn = self._conn_of(spec.args[0])
        if conn is None:
            return
        addr = prep.cmd.get("addr")
        fastopen = prep.cmd.get("flags", 0) & calls.SYMBOLS["MSG_FASTOPEN"]
        if addr is not None and addr[0] == 0:  # AF_UNSPEC: disconnect
            conn.state = "new"
        elif conn.state == "new" and (spec.name == "connect" or fastopen):
            conn.state = "connecting"
            conn.local = ("", 0)
            conn.remote = (self.stack.remote_ip, self.env.connect_port)
            self.sut = conn

    def _conn_of(self, fd_expr: Any) -> Conn | None:
        try:
            script_fd = calls.integer(fd_expr)
        except calls.CallError:
            return None
        for conn in reversed(self.conns):  # the newest holder of a reused fd number
            if conn.script_fd == script_fd:
                return conn
        return None

    def finish_call(
        self, event: Event, spec: SyscallSpec, prep: calls.Prepared, result: CallResult
    ) -> None:
        shown = str(result.ret) + (f" {calls.errno_name(result.errno)}" if result.ret < 0 else "")
        self.outcome.records.append(
            Record(
                event.line,
                "syscall",
                event.source,
                result.started_us - self.live_start,
                result.ended_us - self.live_start,
                b"",
                shown,
            )
        )
        if result.problem:
            raise self.fail(
                "runtime", event.line, f"runtime error in {spec.name} call: {result.problem}"
            )
        err = calls.result_error(spec, result.ret, result.errno)
        if err is None:
            err = calls.check_outputs(prep, result.out, self.env)
        if err is not None:
            self.outcome.records[-1].ok = False
            raise self.fail("syscall", event.line, f"runtime error in {spec.name} call: {err}")
        self.after_call(spec, prep, result)

    def after_call(self, spec: SyscallSpec, prep: calls.Prepared, result: CallResult) -> None:
        name = spec.name
        if name in calls.FD_RESULT and result.ret >= 0:
            script_fd = calls.integer(spec.result)
            self.env.fds[script_fd] = result.ret
            if name == "socket":
                conn = Conn(self.stack.family, script_fd=script_fd, live_fd=result.ret)
                self.conns.append(conn)
                self.sut = conn
            elif name == "accept":
                for conn in self.conns:
                    if conn.state in ("synack_sent", "synack_acked") and conn.live_fd < 0:
                        conn.script_fd, conn.live_fd = script_fd, result.ret
                        break
        elif name == "listen" and result.ret == 0:
            listener = self._conn_of(spec.args[0])
            if listener is not None:
                listener.state = "listening"
        elif name == "close" and result.ret == 0:
            closed = self._conn_of(spec.args[0])
            if closed is not None:
                closed.script_fd = -1
            self.env.fds.pop(calls.integer(spec.args[0]), None)

    # -- commands and code -----------------------------------------------------------

    def command(self, event: Event, spec: CommandSpec) -> None:
        self.wait_for_event(event, "command")
        start = self.now()
        status, output = self.stack.command(spec.command)
        self.outcome.records.append(
            Record(
                event.line,
                "command",
                event.source,
                start,
                self.now(),
                result=f"exit {status}",
                ok=status == 0,
            )
        )
        if status != 0:
            tail = f": {output.strip().splitlines()[-1]}" if output.strip() else ""
            raise self.fail(
                "command",
                event.line,
                f"error executing `{spec.command.strip()}` command: non-zero status {status}{tail}",
            )

    def code(self, event: Event, spec: CodeSpec) -> None:
        self.wait_for_event(event, "data collection for code")
        # A blocking call that has just returned (accept) may give the socket under
        # test its fd: let its reply cross the actor's pipe (packetdrill has no pipe).
        self.await_idle(limit_us=CODE_GRACE_US)
        info: dict[str, int] | None = None
        sut = self.sut
        if sut is not None and sut.live_fd >= 0:
            handle = self.stack.start_call({"op": "tcp_info", "fd": sut.live_fd})
            result = self.stack.wait_call(handle, self.stack.now_us() + NONBLOCKING_CALL_LIMIT_US)
            if result is not None and result.ret == 0 and "info" in result.out:
                info = dict(result.out["info"])  # the model's own fields
            elif result is not None and result.ret == 0:
                info = parse_tcp_info(bytes.fromhex(result.out.get("raw", "")))
        at = self.now()
        self.outcome.records.append(Record(event.line, "code", event.source, at, at))
        self.codes.append((event, info))

    def run_codes(self) -> None:
        for event, info in self.codes:
            assert isinstance(event.action, CodeSpec)
            err = run_python(event.action.code, info)
            if err is not None:
                for rec in self.outcome.records:
                    if rec.line == event.line and rec.kind == "code":
                        rec.ok = False
                raise self.fail("code", event.line, f"error in Python code: {err}")


def _aggregate(parts: list[LivePacket]) -> LivePacket:
    """packetdrill's ``aggregate_packets``: headers of the last, seq of the first."""
    first, last = parts[0], parts[-1]
    payload = b"".join(p.payload for p in parts)
    tcp = last.tcp
    from dataclasses import replace

    merged = replace(
        tcp, seq=first.tcp.seq, flags=(tcp.flags & ~Flags.CWR) | (first.tcp.flags & Flags.CWR)
    )
    extra = len(payload) - len(last.payload)
    return LivePacket(
        last.time_us,
        last.version,
        last.src,
        last.dst,
        last.ihl,
        last.ip_total + extra,
        merged,
        payload,
        first.raw,
    )


# struct tcp_info (include/uapi/linux/tcp.h), in order; "B" fields are the u8 head.
TCP_INFO_FIELDS: tuple[tuple[str, str], ...] = (
    ("state", "B"),
    ("ca_state", "B"),
    ("retransmits", "B"),
    ("probes", "B"),
    ("backoff", "B"),
    ("options", "B"),
    ("wscale", "B"),
    ("flags8", "B"),
    ("rto", "I"),
    ("ato", "I"),
    ("snd_mss", "I"),
    ("rcv_mss", "I"),
    ("unacked", "I"),
    ("sacked", "I"),
    ("lost", "I"),
    ("retrans", "I"),
    ("fackets", "I"),
    ("last_data_sent", "I"),
    ("last_ack_sent", "I"),
    ("last_data_recv", "I"),
    ("last_ack_recv", "I"),
    ("pmtu", "I"),
    ("rcv_ssthresh", "I"),
    ("rtt", "I"),
    ("rttvar", "I"),
    ("snd_ssthresh", "I"),
    ("snd_cwnd", "I"),
    ("advmss", "I"),
    ("reordering", "I"),
    ("rcv_rtt", "I"),
    ("rcv_space", "I"),
    ("total_retrans", "I"),
    ("pacing_rate", "Q"),
    ("max_pacing_rate", "Q"),
    ("bytes_acked", "Q"),
    ("bytes_received", "Q"),
    ("segs_out", "I"),
    ("segs_in", "I"),
    ("notsent_bytes", "I"),
    ("min_rtt", "I"),
    ("data_segs_in", "I"),
    ("data_segs_out", "I"),
    ("delivery_rate", "Q"),
    ("busy_time", "Q"),
    ("rwnd_limited", "Q"),
    ("sndbuf_limited", "Q"),
    ("delivered", "I"),
    ("delivered_ce", "I"),
    ("bytes_sent", "Q"),
    ("bytes_retrans", "Q"),
    ("dsack_dups", "I"),
    ("reord_seen", "I"),
    ("rcv_ooopack", "I"),
    ("snd_wnd", "I"),
    ("rcv_wnd", "I"),
    ("rehash", "I"),
    ("total_rto", "H"),
    ("total_rto_recoveries", "H"),
    ("total_rto_time", "I"),
)

# packetdrill's code.c constants (linux/tcp.h, linux/tcp_states.h)
CODE_CONSTANTS: dict[str, int] = {
    "TCP_ESTABLISHED": 1,
    "TCP_SYN_SENT": 2,
    "TCP_SYN_RECV": 3,
    "TCP_FIN_WAIT1": 4,
    "TCP_FIN_WAIT2": 5,
    "TCP_TIME_WAIT": 6,
    "TCP_CLOSE": 7,
    "TCP_CLOSE_WAIT": 8,
    "TCP_LAST_ACK": 9,
    "TCP_LISTEN": 10,
    "TCP_CLOSING": 11,
    "TCP_CA_Open": 0,
    "TCP_CA_Disorder": 1,
    "TCP_CA_CWR": 2,
    "TCP_CA_Recovery": 3,
    "TCP_CA_Loss": 4,
    "TCPI_OPT_TIMESTAMPS": 1,
    "TCPI_OPT_SACK": 2,
    "TCPI_OPT_WSCALE": 4,
    "TCPI_OPT_ECN": 8,
    "TCPI_OPT_ECN_SEEN": 16,
    "TCPI_OPT_SYN_DATA": 32,
    "TCPI_OPT_USEC_TS": 64,
    "TCPI_OPT_TFO_CHILD": 128,
}


def parse_tcp_info(raw: bytes) -> dict[str, int]:
    """``tcpi_*`` variables from getsockopt(TCP_INFO)'s bytes (as many as the kernel gave)."""
    out: dict[str, int] = {}
    pos = 0
    for name, fmt in TCP_INFO_FIELDS:
        size = struct.calcsize(fmt)
        pos = (pos + size - 1) // size * size  # natural alignment, as the C struct
        if pos + size > len(raw):
            break
        value = struct.unpack_from("=" + fmt, raw, pos)[0]
        pos += size
        if name == "wscale":
            out["tcpi_snd_wscale"], out["tcpi_rcv_wscale"] = value & 0xF, value >> 4
        elif name == "flags8":
            out["tcpi_delivery_rate_app_limited"] = value & 1
            out["tcpi_fastopen_client_fail"] = (value >> 1) & 3
        else:
            out["tcpi_" + name] = value
    return out


_SAFE_BUILTINS = {
    name: __builtins__[name] if isinstance(__builtins__, dict) else getattr(__builtins__, name)
    for name in (
        "abs",
        "min",
        "max",
        "len",
        "int",
        "bool",
        "float",
        "range",
        "round",
        "print",
        "AssertionError",
        "True",
        "False",
        "None",
        "all",
        "any",
        "sum",
        "hex",
    )
}


def run_python(code: str, info: dict[str, int] | None) -> str | None:
    """One ``%{ }%`` block with the recorded ``tcpi_*`` values; the error, or None.

    The namespace holds the tcp_info variables and packetdrill's constants and a
    few harmless builtins: no imports, no files, nothing of the lab.
    """
    text = code.strip()
    while text.endswith("\\"):
        text = text[:-1].rstrip()
    if info is None:
        return "no tcp_info for the socket under test (no socket yet, or not connected)"
    namespace: dict[str, Any] = {"__builtins__": _SAFE_BUILTINS, **CODE_CONSTANTS, **info}
    try:
        compiled = compile(text, "<code>", "exec")
        exec(compiled, namespace)
    except AssertionError as exc:
        return f"AssertionError: {exc}" if str(exc) else "AssertionError"
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg}"
    except NameError as exc:
        return f"NameError: {exc}"
    except Exception as exc:  # any other error in the script's python
        return f"{type(exc).__name__}: {exc}"
    return None


def ceil_seconds(us: int) -> int:
    return math.ceil(us / 1e6)


__all__ = ["CallResult", "Engine", "Failure", "Outcome", "Record", "Stack", "socket"]
