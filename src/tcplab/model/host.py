"""One host's TCP: demultiplexing arriving segments to sockets, and closed ports.

Sans-IO like the rest of the model: ``receive(seg, now)`` finds the
connection by its 4-tuple, else a listener on the port, else answers the
way RFC 9293 §3.10.7.1 says a CLOSED port must (RST).  ISNs and ephemeral
ports come from functions the caller injects.
"""

from __future__ import annotations

from collections.abc import Callable

from tcplab.model.fastopen import CacheEntry
from tcplab.model.profile import Profile
from tcplab.model.segment import Segment
from tcplab.model.tcb import Connection, Listener, ModelEvent, SocketError, reset_for
from tcplab.states import State

IsnFunction = Callable[[tuple[str, int], tuple[str, int], float], int]


class Host:
    def __init__(
        self,
        name: str,
        address: str,
        profile: Profile,
        *,
        isn: IsnFunction,
        ephemeral_port: Callable[[], int],
    ) -> None:
        self.name = name
        self.address = address
        self.profile = profile
        self._isn = isn
        self._ephemeral = ephemeral_port
        self.connections: list[Connection] = []
        self.listeners: dict[int, Listener] = {}
        self._out: list[Segment] = []
        self.closed_port_resets = 0
        # The Fast Open cookies this host learned, per server address (RFC 7413 §4.1.3).
        self.fastopen_cache: dict[str, CacheEntry] = {}

    # -- sockets -------------------------------------------------------------------

    def port_in_use(self, port: int, reuseaddr: bool = False) -> bool:
        """bind(): a port is busy while a listener or any connection holds it.

        A port whose only users are connections (in TIME-WAIT, or accepted from
        a listener that has since closed) may be bound again with SO_REUSEADDR:
        on Linux only if the old socket had it too (a TIME-WAIT socket inherits
        sk_reuse; inet_csk_bind_conflict), under the BSD rule the rfc profile
        takes, the new socket's flag is enough.  A listener always conflicts.
        """
        listener = self.listeners.get(port)
        if listener is not None and listener.state is State.LISTEN:
            return True
        for conn in self.connections:
            if conn.local[1] != port or conn.state is State.CLOSED:
                continue
            # Linux inet_csk_bind_conflict: only a listener, or a socket without
            # SO_REUSEADDR, conflicts with a new socket that has it; a connection
            # (TIME-WAIT, or one an old listener accepted) does not.
            if reuseaddr and (conn.reuseaddr or not self.profile.reuseaddr_needs_both):
                continue
            return True
        return False

    def ephemeral_port(self) -> int:
        for _ in range(1000):
            port = self._ephemeral()
            if not self.port_in_use(port):
                return port
        raise SocketError("EADDRNOTAVAIL", "no free ephemeral port")

    def listen(self, port: int, backlog: int, now: float) -> Listener:
        listener = Listener(
            profile=self.profile, endpoint=self.name, local=(self.address, port),
            backlog=backlog, isn=self._isn, spawn=self.connections.append,
        )
        self.listeners[port] = listener
        listener.listen(now)
        return listener

    def new_connection(self, port: int, remote: tuple[str, int], now: float) -> Connection:
        local = (self.address, port)
        for conn in self.connections:
            if conn.local == local and conn.remote == remote and conn.state is not State.CLOSED:
                raise SocketError("EADDRINUSE", f"{local} -> {remote} is in {conn.state}")
        conn = Connection(
            profile=self.profile, endpoint=self.name, local=local, remote=remote,
            iss=self._isn(local, remote, now), now=now, fastopen_cache=self.fastopen_cache,
        )
        self.connections.append(conn)
        return conn

    # -- input ---------------------------------------------------------------------

    def find(self, seg: Segment) -> Connection | None:
        local, remote = (seg.dst, seg.dport), (seg.src, seg.sport)
        for conn in reversed(self.connections):
            if conn.local == local and conn.remote == remote and conn.state not in (
                State.CLOSED, State.LISTEN
            ):
                return conn
        return None

    def receive(self, seg: Segment, now: float) -> None:
        conn = self.find(seg)
        listener = self.listeners.get(seg.dport)
        listening = listener is not None and listener.state is State.LISTEN
        if conn is not None and listener is not None and listening and conn.syn_is_newer(seg):
            # RFC 9293 §3.6 MAY-2, RFC 6191; Linux tcp_v4_rcv TCP_TW_SYN: the TIME-WAIT
            # connection goes and the listener takes the SYN as a new connection.
            listener.receive(seg, now, iss=conn.end_time_wait(now))
            return
        if conn is not None:
            conn.receive(seg, now)
            return
        if listener is not None and listening:
            listener.receive(seg, now)
            return
        # RFC 9293 §3.10.7.1: the port is CLOSED.
        reply = reset_for(seg)
        if reply is not None:
            self.closed_port_resets += 1
            self._out.append(reply)

    # -- output and time ------------------------------------------------------------

    def sockets(self) -> list[Connection | Listener]:
        """Every listener and connection this host still knows (CLOSED ones too)."""
        return self._machines()

    def _machines(self) -> list[Connection | Listener]:
        return [*self.listeners.values(), *self.connections]

    def segments_to_send(self) -> list[Segment]:
        out, self._out = self._out, []
        for machine in self._machines():
            out.extend(machine.segments_to_send())
        return out

    def events(self) -> list[ModelEvent]:
        out: list[ModelEvent] = []
        for machine in self._machines():
            out.extend(machine.events())
        out.sort(key=lambda e: e.time)
        return out

    def next_deadline(self) -> float | None:
        times = [t for c in self.connections if (t := c.next_deadline()) is not None]
        return min(times, default=None)

    def handle_timers(self, now: float) -> None:
        for conn in list(self.connections):
            deadline = conn.next_deadline()
            if deadline is not None and deadline <= now:
                was_syn_received = conn.state is State.SYN_RECEIVED
                conn.handle_timers(now)
                if was_syn_received and conn.state is State.CLOSED and conn.listener is not None:
                    conn.listener.child_gone(conn)
