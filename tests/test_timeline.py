"""The shared Timeline: ordering, state paths and a lossless JSON round trip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcplab.states import State
from tcplab.timeline import ApiCall, EndpointInfo, Note, Packet, Source, StateChange, Timeline


def handshake_timeline() -> Timeline:
    t = Timeline("handshake", "lab", [EndpointInfo("client", "10.0.0.1", 40000, "client"),
                                      EndpointInfo("server", "10.0.0.2", 8080, "server")])
    t.add(StateChange(0.0, "client", State.CLOSED, State.SYN_SENT, Source.KERNEL, "connect()"))
    t.add(Packet(0.0, "client", "server", "10.0.0.1", 40000, "10.0.0.2", 8080, "S", 100, 0, 0,
                 rel_seq=0, raw=b"\x45\x00"))
    t.add(ApiCall(0.0, "client", "connect", ("10.0.0.2:8080",), "0", started=-0.001))
    t.add(Note(0.5, "the final ACK rides alone", "client"))
    t.add(StateChange(0.2, "client", State.SYN_SENT, State.ESTABLISHED, Source.KERNEL))
    t.add(StateChange(0.9, "client", None, State.TIME_WAIT, Source.SNAPSHOT))
    return t


def test_json_round_trip_is_lossless() -> None:
    t = handshake_timeline()
    again = Timeline.from_json(t.to_json())
    assert again == t
    assert again.to_json() == t.to_json()


def test_sort_puts_call_before_packet_before_state_at_equal_time() -> None:
    t = handshake_timeline()
    t.sort()
    kinds = [e.kind for e in t.events if e.time == 0.0]
    assert kinds == ["api", "packet", "state"]


def test_state_path_starts_at_the_first_known_old_state() -> None:
    t = handshake_timeline()
    assert t.state_path("client") == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED,
                                      State.TIME_WAIT]
    assert t.state_path("client", Source.SNAPSHOT) == [State.TIME_WAIT]


def test_packet_label_uses_relative_numbers_and_omits_ack_without_ack_flag() -> None:
    syn = handshake_timeline().packets()[0]
    assert syn.label() == "[S] seq 0 len 0"
    assert syn.label(relative=False) == "[S] seq 100 len 0"
    fin = Packet(1.0, "client", "server", "a", 1, "b", 2, "F.", 113, 501, 0, rel_seq=13, rel_ack=1)
    assert fin.label() == "[F.] seq 13 ack 1 len 0"


def test_from_json_rejects_other_documents() -> None:
    with pytest.raises(ValueError, match="not a tcplab timeline"):
        Timeline.from_json(json.dumps({"events": []}))
    bad = json.loads(handshake_timeline().to_json())
    bad["events"][0]["kind"] = "bogus"
    with pytest.raises(ValueError, match="event 0: unknown kind 'bogus'"):
        Timeline.from_dict(bad)


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1e6, allow_nan=False),
            st.sampled_from(list(State)),
            st.sampled_from(list(Source)),
            st.binary(max_size=40),
            st.text(max_size=20),
        ),
        max_size=20,
    )
)
def test_round_trip_property(rows: list[tuple[float, State, Source, bytes, str]]) -> None:
    t = Timeline("p", "sim")
    for time, state, source, raw, text in rows:
        t.add(StateChange(time, "client", None, state, source, text))
        t.add(Packet(time, "client", "server", "::1", 1, "::1", 2, "P.", 1, 2, len(raw), raw=raw,
                     annotations=(text,)))
        t.add(ApiCall(time, "server", "recv", (text,), repr(raw), None))
    assert Timeline.from_json(t.to_json()) == t
