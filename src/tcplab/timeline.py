"""The one data model every producer shares: lab, analyzer, sim.

A ``Timeline`` is a time-ordered list of events about two (or more) named
endpoints.  Five kinds of event:

* ``ApiCall``     -- a socket-API call an actor made and what it returned;
* ``Packet``      -- a TCP segment on the wire (maybe dropped by the wire);
* ``StateChange`` -- an endpoint moved from one TCP state to another, and
                     who says so (the kernel, a sock_diag snapshot, the
                     analyzer's inference, the model);
* ``Snapshot``    -- one socket as a sock_diag dump showed it (state, queues,
                     timer): the lab's only source for TIME-WAIT;
* ``Note``        -- free text pinned to a moment (an explanation, a finding).

Times are seconds as floats on one clock per timeline (CLOCK_MONOTONIC for
the lab, capture time for the analyzer, virtual time for the sim).  The JSON
form is lossless: ``Timeline.from_json(t.to_json()) == t``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any, ClassVar, Literal

from tcplab.states import State

FORMAT_VERSION = 1


class Source(Enum):
    """Who reported a state change."""

    KERNEL = "kernel"  # tracepoint sock/inet_sock_set_state
    SNAPSHOT = "snapshot"  # a sock_diag dump (the only source for TIME_WAIT)
    INFERRED = "inferred"  # the analyzer, from packets alone
    MODEL = "model"  # the sans-IO model in tcplab sim


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """A named side of the conversation, e.g. client 10.0.0.1:40000."""

    name: str
    address: str = ""
    port: int = 0
    role: str = ""  # "client" (active opener) | "server" | "" when unknown


@dataclass(frozen=True, slots=True)
class ApiCall:
    kind: ClassVar[str] = "api"
    time: float
    actor: str
    call: str
    args: tuple[str, ...] = ()
    result: str | None = None  # return value as text ("0", "12", "b'hello'")
    errno: str | None = None  # "ECONNREFUSED" when the call failed
    started: float | None = None  # when the call was made (time = when it returned)

    @property
    def failed(self) -> bool:
        return self.errno is not None

    def describe(self) -> str:
        args = ", ".join(self.args)
        if self.errno:
            return f"{self.call}({args}) -> {self.errno}"
        if self.result is not None:
            from tcplab.fmt import value_text

            return f"{self.call}({args}) = {value_text(self.result)}"
        return f"{self.call}({args})"


@dataclass(frozen=True, slots=True)
class Packet:
    """One TCP segment as seen on the wire.

    ``time`` is when the wire saw it leave the sender; ``delivered`` when
    the wire handed it to the receiver, set only when the lab's wire held
    or delayed it (a fault), so a ladder can draw it crossing later ones.
    ``raw`` is the IP datagram (IPv4 or IPv6 header onwards) when the
    producer has it; the decoded fields are always filled so renderers need
    no codec.  ``rel_seq``/``rel_ack`` follow Wireshark's rules.
    """

    kind: ClassVar[str] = "packet"
    time: float
    sender: str
    receiver: str
    src: str
    sport: int
    dst: str
    dport: int
    flags: str  # tcpdump letters: "S", "S.", ".", "P.", "F.", "R", "R."
    seq: int
    ack: int
    length: int  # payload bytes
    window: int = 0
    options: str = ""  # tcpdump text: "mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7"
    rel_seq: int | None = None
    rel_ack: int | None = None
    dropped: bool = False
    annotations: tuple[str, ...] = ()
    raw: bytes = b""
    # The window scale shift that applies to ``window`` (RFC 7323): 0 on SYNs and
    # when scaling is off, None when unknown; renderers fill it (fmt.window_shifts).
    win_shift: int | None = None
    # When the receiver got it, if the wire held or delayed it (None: at ``time``).
    delivered: float | None = None
    # The capture's packet comment (pcapng opt_comment), text from the file:
    # renderers show it escaped, never as markup.
    comment: str | None = None

    @property
    def arrival(self) -> float:
        """When the segment reached its receiver (``time`` unless the wire kept it)."""
        return self.delivered if self.delivered is not None else self.time

    @property
    def has(self) -> frozenset[str]:
        return frozenset(self.flags.replace(".", "A"))

    def label(self, relative: bool = True) -> str:
        """The arrow label a ladder draws: ``[F.] seq 13 ack 1 len 0``."""
        seq = self.rel_seq if relative and self.rel_seq is not None else self.seq
        text = f"[{self.flags}] seq {seq}"
        if "." in self.flags:
            ack = self.rel_ack if relative and self.rel_ack is not None else self.ack
            text += f" ack {ack}"
        return text + f" len {self.length}"


@dataclass(frozen=True, slots=True)
class StateChange:
    kind: ClassVar[str] = "state"
    time: float
    endpoint: str
    old: State | None  # None: not known (capture started midstream, first snapshot)
    new: State
    source: Source
    cause: str = ""  # "rcv FIN", "close()", "2MSL timer", "LISTEN child" ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One socket as a sock_diag dump showed it (what ``ss -tanoi`` prints).

    The lab takes one of every socket of both hosts after each step; it is
    the only source for TIME-WAIT and for queue lengths (a LISTEN socket's
    rqueue is its accept queue, an ESTABLISHED one's is unread bytes).
    """

    kind: ClassVar[str] = "snapshot"
    time: float
    endpoint: str
    state: State
    local: str  # "10.89.0.1:40000"
    peer: str
    rqueue: int = 0
    wqueue: int = 0
    timer: str = ""  # "on", "keepalive", "timewait", "persist", "" = off
    timer_ms: int = 0
    retrans: int = 0
    inode: int = 0
    shutdown: int = 0  # 1 = SHUT_RD seen, 2 = SHUT_WR, 3 = both


@dataclass(frozen=True, slots=True)
class Note:
    kind: ClassVar[str] = "note"
    time: float
    text: str
    endpoint: str | None = None


Event = ApiCall | Packet | StateChange | Snapshot | Note
EVENT_TYPES: dict[str, Any] = {
    "api": ApiCall,
    "packet": Packet,
    "state": StateChange,
    "snapshot": Snapshot,
    "note": Note,
}
# When two events share a time, draw the call before the packet it caused
# and the packet before the state change it caused.
_KIND_ORDER = {"api": 0, "packet": 1, "state": 2, "snapshot": 3, "note": 4}


@dataclass(slots=True)
class Timeline:
    title: str = ""
    producer: Literal["lab", "analyze", "sim", ""] = ""
    endpoints: list[EndpointInfo] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, event: Event) -> None:
        self.events.append(event)

    def extend(self, events: Iterable[Event]) -> None:
        self.events.extend(events)

    def sort(self) -> None:
        """Stable sort by time; insertion order breaks ties within a kind."""
        self.events.sort(key=lambda e: (e.time, _KIND_ORDER[e.kind]))

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def packets(self) -> list[Packet]:
        return [e for e in self.events if isinstance(e, Packet)]

    def api_calls(self, actor: str | None = None) -> list[ApiCall]:
        return [e for e in self.events if isinstance(e, ApiCall) and actor in (None, e.actor)]

    def state_changes(
        self, endpoint: str | None = None, source: Source | None = None
    ) -> list[StateChange]:
        return [
            e
            for e in self.events
            if isinstance(e, StateChange)
            and endpoint in (None, e.endpoint)
            and source in (None, e.source)
        ]

    def state_path(self, endpoint: str, source: Source | None = None) -> list[State]:
        """The states an endpoint went through, e.g. [SYN-SENT, ESTABLISHED, ...]."""
        path: list[State] = []
        for change in self.state_changes(endpoint, source):
            if change.old is not None and not path:
                path.append(change.old)
            if not path or path[-1] is not change.new:
                path.append(change.new)
        return path

    def snapshots(self, endpoint: str | None = None) -> list[Snapshot]:
        return [
            e for e in self.events if isinstance(e, Snapshot) and endpoint in (None, e.endpoint)
        ]

    def endpoint(self, name: str) -> EndpointInfo:
        for info in self.endpoints:
            if info.name == name:
                return info
        raise KeyError(name)

    # -- JSON ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "tcplab-timeline",
            "version": FORMAT_VERSION,
            "title": self.title,
            "producer": self.producer,
            "endpoints": [_to_plain(e) for e in self.endpoints],
            "events": [{"kind": e.kind, **_to_plain(e)} for e in self.events],
            "meta": self.meta,
        }

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        if data.get("format") != "tcplab-timeline":
            raise ValueError("not a tcplab timeline (missing format: tcplab-timeline)")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"timeline version {data.get('version')!r} not supported")
        events: list[Event] = []
        for i, raw in enumerate(data.get("events", [])):
            kind = raw.get("kind")
            if kind not in EVENT_TYPES:
                raise ValueError(f"event {i}: unknown kind {kind!r}")
            events.append(_from_plain(EVENT_TYPES[kind], raw))
        return cls(
            title=data.get("title", ""),
            producer=data.get("producer", ""),
            endpoints=[_from_plain(EndpointInfo, e) for e in data.get("endpoints", [])],
            events=events,
            meta=dict(data.get("meta", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> Timeline:
        return cls.from_dict(json.loads(text))

    def _repr_svg_(self) -> str:
        """Jupyter shows a timeline as its SVG ladder."""
        from tcplab.render.svg import render_svg  # the renderers import this module

        return render_svg(self)

    def with_events(self, events: list[Event]) -> Timeline:
        return Timeline(self.title, self.producer, list(self.endpoints), events, dict(self.meta))


def _to_plain(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def _from_plain(cls: Any, raw: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        value = raw[f.name]
        hint = str(f.type)
        if value is None:
            pass
        elif hint in ("State", "State | None"):
            value = State(value)
        elif hint == "Source":
            value = Source(value)
        elif hint == "bytes":
            value = bytes.fromhex(value)
        elif hint.startswith("tuple"):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


__all__ = [
    "ApiCall",
    "EndpointInfo",
    "Event",
    "Note",
    "Packet",
    "Snapshot",
    "Source",
    "StateChange",
    "Timeline",
    "replace",
]
