"""One state per lane per moment: how every ladder turns state reports into badges.

Theory of operation.  A lab timeline has up to four reports of an
endpoint's state: the kernel's tracepoint (or, in the sim, the model),
``sock_diag`` snapshots, the timewait hand-off the snapshots resolve, and
the analyzer's inference from packets.  They are stamped on one clock but
at different moments: the analyzer dates a state by the packet's time on
the wire, the kernel when its socket code ran (a request socket becomes a
full SYN-RECEIVED socket only when the handshake's ACK arrives, Linux
``tcp_check_req``), and a snapshot when its dump completed, possibly after
the state had moved on.  Drawn naively, one after the other, they make a
lane go ESTABLISHED -> SYN-RECEIVED -> ESTABLISHED, which TCP never does.

So each lane has one *primary* path: the authoritative reports (kernel,
model and the hand-off, ``Source.SNAPSHOT`` state changes), or, for an
endpoint nobody traced, the inferred changes, or failing those the
snapshots.  Every other report is a *claim* about that path and is matched
to the primary visit of the same state nearest in time (distance 0 when
it falls inside the visit):

* a match *confirms* the visit: the badge gains the claim's source (one
  badge, its sources marked) and nothing new is drawn; a snapshot taken
  after the state had already changed is a late confirmation, never a new
  state;
* a snapshot of a state nobody reported, later than every primary report,
  is news (the tracepoint was off or missed it) and moves the lane;
* any other claim no visit of its state is near (``AGREE_WINDOW``) is a
  *disagreement*: drawn beside the lane, marked as such, and the lane's
  state does not change.

A snapshot that adds queue or timer detail (``Recv-Q 12``) keeps that
detail as a ``SnapshotDetail`` at its own time, without a badge.

Every renderer draws ``lane_events(timeline)``; the ladder invariants in
tests/test_render_lanes.py are checked on the same list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tcplab.render._common import (
    collapse_runs,
    seq_explanations,
    snapshot_detail,
    split_arrivals,
    visible_events,
)
from tcplab.states import State
from tcplab.timeline import Event, Packet, Snapshot, Source, StateChange, Timeline

# A claim within this many seconds of a visit of its state confirms it.  The
# widest honest gap is a packet the wire held (the analyzer dates the state
# by the send, the kernel by the delivery): the catalog holds for < 1 s.
AGREE_WINDOW = 2.0

PRIMARY_SOURCES = (Source.KERNEL, Source.MODEL, Source.SNAPSHOT)

# One letter per source, for badges that carry several.
SOURCE_LETTER: dict[Source, str] = {
    Source.KERNEL: "K",
    Source.MODEL: "M",
    Source.SNAPSHOT: "S",
    Source.INFERRED: "I",
}


@dataclass(slots=True)
class Badge:
    """A state on a lane at a moment, with every source that reported it.

    ``time`` is the primary report's time (where it is drawn); ``seen``
    holds (source, time) for each report, the primary first.  ``old`` is
    the state the report says it came from (None: not known).
    ``disagrees``: a claim that matches no visit of the primary path, drawn
    beside the lane; ``primary_state`` is what the lane shows then.
    ``listener``: the report is about a listening socket, not the connection;
    once the connection has a state, a listener's badge is drawn ``aside``.
    """

    time: float
    endpoint: str
    state: State
    old: State | None
    event: StateChange | Snapshot
    seen: list[tuple[Source, float]] = field(default_factory=list)
    disagrees: bool = False
    primary_state: State | None = None
    listener: bool = False
    aside: bool = False  # drawn beside the lane; the lane's state does not change
    detail: str = ""

    kind = "badge"

    @property
    def source(self) -> Source:
        return self.seen[0][0]

    @property
    def sources(self) -> list[Source]:
        out: list[Source] = []
        for source, _ in self.seen:
            if source not in out:
                out.append(source)
        return out

    @property
    def cause(self) -> str:
        return self.event.cause if isinstance(self.event, StateChange) else "sock_diag"


@dataclass(frozen=True, slots=True)
class SnapshotDetail:
    """What a confirming snapshot adds (queues, timer), drawn without a badge."""

    time: float
    endpoint: str
    state: State
    detail: str
    listener: bool
    snapshot: Snapshot

    kind = "snapshot-detail"


LaneEvent = Event | Badge | SnapshotDetail


def _state_of(event: StateChange | Snapshot) -> State:
    return event.state if isinstance(event, Snapshot) else event.new


def _source_of(event: StateChange | Snapshot) -> Source:
    return Source.SNAPSHOT if isinstance(event, Snapshot) else event.source


def is_listener(event: StateChange | Snapshot) -> bool:
    """A report about a listening socket: the kernel's ``listener :8080`` cause,
    or a snapshot whose peer is ``*``."""
    if isinstance(event, Snapshot):
        return "*" in event.peer
    return event.cause.startswith("listener")


@dataclass(slots=True)
class _Visit:
    badge: Badge
    end: float  # when the next primary visit began (inf for the last)

    def distance(self, t: float) -> float:
        if t < self.badge.time:
            return self.badge.time - t
        if t >= self.end:
            return t - self.end
        return 0.0


def _primary(reports: list[StateChange | Snapshot]) -> list[StateChange | Snapshot]:
    changes = [r for r in reports if isinstance(r, StateChange)]
    authoritative = [c for c in changes if c.source in PRIMARY_SOURCES]
    if authoritative:
        return list(authoritative)
    inferred = [c for c in changes if c.source is Source.INFERRED]
    if inferred:
        return list(inferred)
    return [r for r in reports if isinstance(r, Snapshot)]


def _visits(primary: list[StateChange | Snapshot]) -> list[_Visit]:
    """The primary reports as visits; a listener's and the connection's are separate
    sub-lanes (one endpoint may hold a listening socket and its accepted child)."""
    visits: list[_Visit] = []
    last: dict[bool, _Visit] = {}
    connection_started = False
    for report in primary:
        state = _state_of(report)
        listener = is_listener(report)
        previous = last.get(listener)
        if previous is not None and previous.badge.state is state:
            # Two primaries agreeing in a row (a snapshot path repeating itself).
            previous.badge.seen.append((_source_of(report), report.time))
            continue
        old = report.old if isinstance(report, StateChange) else None
        detail = snapshot_detail(report) if isinstance(report, Snapshot) else ""
        badge = Badge(report.time, report.endpoint, state, old, report,
                      [(_source_of(report), report.time)], listener=listener,
                      aside=listener and connection_started, detail=detail)  # fmt: skip
        if previous is not None:
            previous.end = report.time
        visit = _Visit(badge, float("inf"))
        last[listener] = visit
        visits.append(visit)
        connection_started = connection_started or not listener
    return visits


def lane_badges(reports: list[StateChange | Snapshot]) -> tuple[list[Badge], list[SnapshotDetail]]:
    """One endpoint's reports (in drawing order) -> its badges and snapshot details."""
    primary = _primary(reports)
    chosen = {id(r) for r in primary}
    visits = _visits(primary)
    disagreements: list[Badge] = []
    details: list[SnapshotDetail] = []
    for report in reports:
        if id(report) in chosen:
            continue
        state, source = _state_of(report), _source_of(report)
        listener = is_listener(report)
        candidates = [v for v in visits if v.badge.state is state]
        same_kind = [v for v in candidates if v.badge.listener == listener]
        candidates = same_kind or candidates
        best = min(candidates, key=lambda v: v.distance(report.time), default=None)
        if best is not None and best.distance(report.time) <= AGREE_WINDOW:
            if source not in best.badge.sources:
                best.badge.seen.append((source, report.time))
            late = report.time >= best.end
            if isinstance(report, Snapshot) and not late:
                detail = snapshot_detail(report)
                if detail:
                    details.append(SnapshotDetail(report.time, report.endpoint, state, detail,
                                                  listener, report))  # fmt: skip
            continue
        if (isinstance(report, Snapshot) and not listener and best is None
                and all(v.badge.time < report.time for v in visits)):
            # A state nobody else reported, after everything they did: news (the
            # tracepoint was off or missed it), so it moves the lane.
            connection = [v for v in visits if not v.badge.listener]
            if connection:
                connection[-1].end = report.time
            badge = Badge(report.time, report.endpoint, state, None, report,
                          [(source, report.time)], detail=snapshot_detail(report))  # fmt: skip
            visits.append(_Visit(badge, float("inf")))
            chosen.add(id(report))
            continue
        if isinstance(report, Snapshot) and listener:
            # A listener nobody else reported (no tracing of it): its dump is
            # detail about the listener, not the connection's state.
            details.append(SnapshotDetail(report.time, report.endpoint, state,
                                          snapshot_detail(report), True, report))  # fmt: skip
            continue
        current = max((v for v in visits if v.badge.time <= report.time and not v.badge.aside),
                      key=lambda v: v.badge.time, default=None)  # fmt: skip
        old = report.old if isinstance(report, StateChange) else None
        disagreements.append(
            Badge(report.time, report.endpoint, state, old, report, [(source, report.time)],
                  disagrees=True, aside=True,
                  primary_state=current.badge.state if current else None, listener=listener,
                  detail=snapshot_detail(report) if isinstance(report, Snapshot) else "")
        )  # fmt: skip
    badges = [v.badge for v in visits] + disagreements
    badges.sort(key=lambda b: b.time)
    return badges, details


def lane_events(timeline: Timeline, events: list[Event]) -> list[LaneEvent]:
    """``events`` (in drawing order) with every state report replaced by badges.

    Badges and snapshot details go where their time puts them; at one
    instant a badge comes after the packet and before the call, as the
    state change it replaces did.
    """
    by_endpoint: dict[str, list[StateChange | Snapshot]] = {}
    out: list[tuple[float, int, int, LaneEvent]] = []
    for index, event in enumerate(events):
        if isinstance(event, StateChange | Snapshot):
            by_endpoint.setdefault(event.endpoint, []).append(event)
        else:
            out.append((event.time, index, 0, event))
    position = {id(e): i for i, e in enumerate(events)}
    for reports in by_endpoint.values():
        badges, details = lane_badges(reports)
        for badge in badges:
            out.append((badge.time, position[id(badge.event)], 0, badge))
        for detail in details:
            out.append((detail.time, position[id(detail.snapshot)], 1, detail))
    out.sort(key=lambda item: (item[0], item[1], item[2]))
    return [item[3] for item in out]


@dataclass(frozen=True, slots=True)
class Ladder:
    """What every ladder renderer draws, in order: the visible events, then the
    items (badges for states, arrivals for held segments, summaries for bulk
    runs) and the seq arithmetic per segment (by ``id``) when asked."""

    events: list[Event]
    items: list[Any]
    seq_notes: dict[int, str]


def ladder_items(timeline: Timeline, *, collapse: bool = True,
                 explain_seq: bool = False) -> Ladder:  # fmt: skip
    events = visible_events(timeline)
    items: list[Any] = split_arrivals(lane_events(timeline, events))
    if collapse:
        items = collapse_runs(items)
    packets = [e for e in events if isinstance(e, Packet)]
    return Ladder(events, items, seq_explanations(packets) if explain_seq else {})


def drawn_path(items: list[LaneEvent], endpoint: str) -> list[Badge]:
    """The badges that move ``endpoint``'s lane, in drawing order (nothing drawn aside)."""
    return [i for i in items if isinstance(i, Badge) and i.endpoint == endpoint
            and not i.aside]  # fmt: skip


__all__ = [
    "AGREE_WINDOW",
    "SOURCE_LETTER",
    "Badge",
    "Ladder",
    "LaneEvent",
    "SnapshotDetail",
    "drawn_path",
    "is_listener",
    "ladder_items",
    "lane_badges",
    "lane_events",
]
