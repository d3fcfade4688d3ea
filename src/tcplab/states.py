"""The eleven TCP connection states (RFC 9293 §3.3.2), shared by every producer.

The enum's value is the RFC spelling ("FIN-WAIT-1"); ``State.parse`` accepts
the spellings the other tools print: Linux's tracepoint (TCP_FIN_WAIT1),
ss (FIN-WAIT-1, ESTAB, SYN-RECV), netstat (FIN_WAIT1) and the seed notes
(FIN_WAIT_1, SYN_RECV, SYN_RCVD).
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    # Members are singletons compared by identity, so they hash by identity
    # too, in C: Enum's own __hash__ is a Python call (hash of the name, which
    # is no more stable across runs), and a 20,000-socket table is counted,
    # filtered and sorted by State (``tcplab sockets``, issue 15).
    __hash__ = object.__hash__

    def __str__(self) -> str:
        return self.value

    @property
    def linux_name(self) -> str:
        """The name ss and the seed notes use: SYN_RECV, FIN_WAIT1, TIME_WAIT..."""
        return _LINUX_NAMES[self]

    @classmethod
    def parse(cls, text: str) -> State:
        key = text.strip().upper().replace("-", "_")
        key = key.removeprefix("TCP_")
        try:
            return _ALIASES[key]
        except KeyError:
            raise ValueError(f"unknown TCP state {text!r}") from None

    @property
    def synchronized(self) -> bool:
        """RFC 9293 §3.5.2: ESTABLISHED and later are the synchronized states."""
        return self not in (State.CLOSED, State.LISTEN, State.SYN_SENT, State.SYN_RECEIVED)


_LINUX_NAMES: dict[State, str] = {
    State.CLOSED: "CLOSE",
    State.LISTEN: "LISTEN",
    State.SYN_SENT: "SYN_SENT",
    State.SYN_RECEIVED: "SYN_RECV",
    State.ESTABLISHED: "ESTABLISHED",
    State.FIN_WAIT_1: "FIN_WAIT1",
    State.FIN_WAIT_2: "FIN_WAIT2",
    State.CLOSE_WAIT: "CLOSE_WAIT",
    State.CLOSING: "CLOSING",
    State.LAST_ACK: "LAST_ACK",
    State.TIME_WAIT: "TIME_WAIT",
}

_ALIASES: dict[str, State] = {s.name: s for s in State}
_ALIASES.update({name: s for s, name in _LINUX_NAMES.items()})
_ALIASES.update(
    {
        "CLOSE": State.CLOSED,
        "ESTAB": State.ESTABLISHED,
        "SYN_RECV": State.SYN_RECEIVED,
        "SYN_RCVD": State.SYN_RECEIVED,
        "NEW_SYN_RECV": State.SYN_RECEIVED,
        "SYN_SEND": State.SYN_SENT,
        "FIN_WAIT1": State.FIN_WAIT_1,
        "FIN_WAIT2": State.FIN_WAIT_2,
        "CLOSED": State.CLOSED,
        "UNCONN": State.CLOSED,
    }
)
