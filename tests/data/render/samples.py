"""Hand-built, realistic timelines for the renderer tests.

Times, sequence numbers and options are shaped like what the lab records on
Linux 6.x over its TUN wire: tens of microseconds between a segment and the
state change it causes, a delayed ACK of tens of ms, a 200 ms minimum RTO
(Linux TCP_RTO_MIN) and a 1 s initial SYN RTO (RFC 6298 §2.1).
"""

from __future__ import annotations

import struct

from conftest import ipv4_tcp
from tcplab.states import State
from tcplab.timeline import (
    ApiCall,
    EndpointInfo,
    Event,
    Note,
    Packet,
    Snapshot,
    Source,
    StateChange,
    Timeline,
)

CLIENT = EndpointInfo("client", "10.0.0.1", 40000, "client")
SERVER = EndpointInfo("server", "10.0.0.2", 8080, "server")
ISS_C = 1_000_000_000
ISS_S = 3_000_000_000
T0 = 5000.0  # CLOCK_MONOTONIC-like


_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10}


def _raw(src: EndpointInfo, dst: EndpointInfo, flags: str, seq: int, ack: int, payload: bytes,
         window: int, syn_options: bool) -> bytes:
    """A real IPv4+TCP datagram with correct checksums (RFC 791, RFC 9293 §3.1)."""
    bits = sum(_FLAG_BITS[c] for c in flags)
    if syn_options:  # mss 1460,sackOK,TS val .. ecr ..,nop,wscale 7  (Linux's SYN layout)
        opts = (b"\x02\x04\x05\xb4" + b"\x04\x02" + b"\x08\x0a" + struct.pack("!II", 123456, 0)
                + b"\x01" + b"\x03\x03\x07")
    else:
        opts = b""
    return ipv4_tcp(src.address, dst.address, src.port, dst.port, seq & 0xFFFFFFFF,
                    ack & 0xFFFFFFFF, bits, payload, window, opts, ident=0x1234)


def _pkt(t: float, sender: str, flags: str, rel_seq: int, rel_ack: int, payload: bytes = b"",
         window: int = 502, options: str = "nop,nop,TS val 1 ecr 1", dropped: bool = False,
         annotations: tuple[str, ...] = (), with_raw: bool = True) -> Packet:
    src, dst = (CLIENT, SERVER) if sender == "client" else (SERVER, CLIENT)
    iss, irs = (ISS_C, ISS_S) if sender == "client" else (ISS_S, ISS_C)
    seq = (iss + rel_seq) % 2**32
    ack = (irs + rel_ack) % 2**32 if "." in flags else 0
    syn = "S" in flags
    if syn:
        options = "mss 1460,sackOK,TS val 123456 ecr 0,nop,wscale 7"
        window = 64240 if sender == "client" else 65160
    return Packet(
        time=T0 + t, sender=sender, receiver=dst.name, src=src.address, sport=src.port,
        dst=dst.address, dport=dst.port, flags=flags, seq=seq, ack=ack, length=len(payload),
        window=window, options=options, rel_seq=rel_seq, rel_ack=rel_ack if "." in flags else None,
        dropped=dropped, annotations=annotations,
        raw=_raw(src, dst, flags, seq, ack, payload, window, syn) if with_raw else b"",
    )


def _st(t: float, who: str, old: State | None, new: State, cause: str,
        source: Source = Source.KERNEL) -> StateChange:
    return StateChange(T0 + t, who, old, new, source, cause)


def _api(t: float, who: str, call: str, args: tuple[str, ...] = (), result: str | None = "0",
         errno: str | None = None, started: float | None = None) -> ApiCall:
    return ApiCall(T0 + t, who, call, args, result, errno,
                   None if started is None else T0 + started)


def handshake_close() -> Timeline:
    """The lab's handshake-close: connect, echo "hello", client closes first."""
    s, c = "server", "client"
    events: list[Event] = [
        _api(0.000000, s, "socket", (), "3"),
        _api(0.000021, s, "bind", ("10.0.0.2", "8080")),
        _st(0.000035, s, State.CLOSED, State.LISTEN, "listen()"),
        _api(0.000036, s, "listen", ("5",)),
        _st(0.001502, c, State.CLOSED, State.SYN_SENT, "connect()"),
        _pkt(0.001510, c, "S", 0, 0),
        _pkt(0.001561, s, "S.", 0, 1),
        _st(0.001590, c, State.SYN_SENT, State.ESTABLISHED, "rcv SYN,ACK"),
        _pkt(0.001596, c, ".", 1, 1),
        _api(0.001601, c, "connect", ("10.0.0.2", "8080"), started=0.001490),
        _st(0.001630, s, State.SYN_RECEIVED, State.ESTABLISHED, "rcv ACK of SYN"),
        _api(0.001655, s, "accept", (), "4", started=0.000040),
        _api(0.002010, c, "send", ("b'hello'",), "5"),
        _pkt(0.002019, c, "P.", 1, 1, b"hello"),
        _pkt(0.002051, s, ".", 1, 6),
        _api(0.002070, s, "recv", ("65536",), "b'hello'"),
        _api(0.002110, s, "send", ("b'hello'",), "5"),
        _pkt(0.002118, s, "P.", 1, 6, b"hello"),
        _pkt(0.002140, c, ".", 6, 6),
        _api(0.002160, c, "recv", ("65536",), "b'hello'"),
        _st(0.003001, c, State.ESTABLISHED, State.FIN_WAIT_1, "close()"),
        _api(0.003010, c, "close"),
        _pkt(0.003012, c, "F.", 6, 6),
        _st(0.003060, s, State.ESTABLISHED, State.CLOSE_WAIT, "rcv FIN"),
        _api(0.003075, s, "recv", ("65536",), "b''"),
        _note(0.003076, "recv() returned 0: the peer has closed its sending side", s),
        _pkt(0.044310, s, ".", 6, 7),
        _st(0.044335, c, State.FIN_WAIT_1, State.FIN_WAIT_2, "rcv ACK of FIN"),
        _st(0.045001, s, State.CLOSE_WAIT, State.LAST_ACK, "close()"),
        _api(0.045010, s, "close"),
        _pkt(0.045012, s, "F.", 6, 7),
        _st(0.045040, c, State.FIN_WAIT_2, State.TIME_WAIT, "rcv FIN"),
        _pkt(0.045046, c, ".", 7, 7),
        _st(0.045070, s, State.LAST_ACK, State.CLOSED, "rcv ACK of FIN"),
        _snap(0.000040, s, State.LISTEN, "10.0.0.2:8080", "0.0.0.0:*"),
        _snap(0.002200, s, State.LISTEN, "10.0.0.2:8080", "0.0.0.0:*"),  # repeats: not drawn
        _snap(0.046000, c, State.TIME_WAIT, "10.0.0.1:40000", "10.0.0.2:8080",
              timer="timewait", timer_ms=59990),
    ]
    # The listener's child socket appears in SYN-RECEIVED when the SYN lands.
    events.insert(7, _st(0.001555, s, State.LISTEN, State.SYN_RECEIVED, "rcv SYN (child)"))
    tl = Timeline("handshake-close: connect, echo, close", "lab", [SERVER, CLIENT], events,
                  {"scenario": "handshake-close"})
    tl.sort()
    return tl


def _snap(t: float, who: str, state: State, local: str, peer: str, **kw: object) -> Snapshot:
    return Snapshot(T0 + t, who, state, local, peer, **kw)  # type: ignore[arg-type]


def _note(t: float, text: str, who: str | None = None) -> Note:
    return Note(T0 + t, text, who)


def lost_final_ack() -> Timeline:
    """The analyzer's view of lost-final-ack: states inferred, FIN retransmitted."""
    c, s = "client", "server"
    inf = Source.INFERRED
    events: list[Event] = [
        _pkt(0.000000, c, "S", 0, 0),
        _st(0.000000, c, None, State.SYN_SENT, "snd SYN", inf),
        _pkt(0.000048, s, "S.", 0, 1),
        _st(0.000048, s, State.LISTEN, State.SYN_RECEIVED, "rcv SYN", inf),
        _st(0.000048, c, State.SYN_SENT, State.ESTABLISHED, "rcv SYN,ACK", inf),
        _pkt(0.000071, c, ".", 1, 1),
        _st(0.000071, s, State.SYN_RECEIVED, State.ESTABLISHED, "rcv ACK", inf),
        _pkt(0.000502, c, "F.", 1, 1),
        _st(0.000502, c, State.ESTABLISHED, State.FIN_WAIT_1, "snd FIN", inf),
        _st(0.000502, s, State.ESTABLISHED, State.CLOSE_WAIT, "rcv FIN", inf),
        _pkt(0.000530, s, "F.", 1, 2),
        _st(0.000530, s, State.CLOSE_WAIT, State.LAST_ACK, "snd FIN", inf),
        _st(0.000530, c, State.FIN_WAIT_1, State.TIME_WAIT, "rcv FIN,ACK", inf),
        _pkt(0.000549, c, ".", 2, 2, dropped=True),
        _pkt(0.212731, s, "F.", 1, 2, annotations=("retransmission",)),
        _pkt(0.212760, c, ".", 2, 2, annotations=("dup ACK",)),
        _st(0.212760, s, State.LAST_ACK, State.CLOSED, "rcv ACK of FIN", inf),
        _note(0.212800, "TIME-WAIT let the client answer the retransmitted FIN "
              "(RFC 9293 §3.6.1): without it the server would get a RST."),
    ]
    return Timeline("lost-final-ack (from capture)", "analyze", [CLIENT, SERVER], events)


def refused_after_syn_loss() -> Timeline:
    """The model's view: first SYN lost, retransmitted after 1 s, answered by RST."""
    c, s = "client", "server"
    m = Source.MODEL
    events: list[Event] = [
        _st(0.0, c, State.CLOSED, State.SYN_SENT, "connect()", m),
        _pkt(0.0, c, "S", 0, 0, dropped=True, with_raw=False),
        _pkt(1.0, c, "S", 0, 0, annotations=("retransmission",), with_raw=False),
        _pkt(1.000050, s, "R.", 0, 1, window=0, options="", with_raw=False),
        _st(1.000050, c, State.SYN_SENT, State.CLOSED, "rcv RST", m),
        _api(1.000050, c, "connect", ("10.0.0.2", "8080"), None, "ECONNREFUSED", started=0.0),
    ]
    return Timeline("connect to a closed port, first SYN lost", "sim", [CLIENT, SERVER], events)


ALL = {
    "handshake_close": handshake_close,
    "lost_final_ack": lost_final_ack,
    "refused_after_syn_loss": refused_after_syn_loss,
}
