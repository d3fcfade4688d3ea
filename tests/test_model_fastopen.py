"""The Fast Open cookie (RFC 7413 §4.1.2) the model's server issues, against known values.

Linux computes it as SipHash-2-4 of the SYN's addresses under the
tcp_fastopen_key (net/ipv4/tcp_fastopen.c); packetdrill's scripts carry
literal cookies for fixed keys and addresses, so the model must produce
exactly those.  The SipHash vectors are the reference implementation's
(Aumasson and Bernstein, vectors.h: key 00..0f, message 00..len-1).
"""

from __future__ import annotations

import pytest

from tcplab.errors import InputError
from tcplab.model.fastopen import cookie_for, parse_key, siphash24
from tcplab.model.profile import LINUX
from tcplab.model.segment import Options

KEY = (int.from_bytes(bytes(range(8)), "little"), int.from_bytes(bytes(range(8, 16)), "little"))


@pytest.mark.parametrize("length, digest", [
    (0, "310e0edd47db6f72"),
    (1, "fd67dc93c539f874"),
    (7, "37d1018bf50002ab"),
    (8, "6224939a79f5f593"),
    (15, "e545be4961ca29a1"),
])
def test_siphash24_reference_vectors(length: int, digest: str) -> None:
    assert siphash24(*KEY, bytes(range(length))).to_bytes(8, "little").hex() == digest


def test_cookie_matches_packetdrill_opt34_basic_rw() -> None:
    # tcp/fastopen/server/opt34/basic-rw.pkt: defaults.sh's key, 192.0.2.1 -> 192.168.0.1.
    key = parse_key("a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4")
    assert cookie_for(key, "192.0.2.1", "192.168.0.1").hex() == "3021b9d889017eeb"


def test_cookie_matches_packetdrill_simple1() -> None:
    # tcp/fastopen/server/simple1.pkt: its own key, 10.248.0.2 -> 192.168.0.2.
    key = parse_key("a0bf63f7-ed803d81-cd641d30-cebc4a90")
    assert cookie_for(key, "10.248.0.2", "192.168.0.2").hex() == "00abaaabe8e954c2"


def test_bad_key_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="four 32-bit hex words"):
        parse_key("a1a1a1a1-b2b2b2b2")
    with pytest.raises(InputError, match="tcp_fastopen_key"):
        LINUX.with_sysctls({"net.ipv4.tcp_fastopen_key": "zz-zz-zz-zz"})


def test_sysctls_reach_the_profile() -> None:
    p = LINUX.with_sysctls({"net.ipv4.tcp_fastopen": "0x403",
                            "net.ipv4.tcp_fastopen_key": "1-2-3-4"})
    assert (p.fastopen, p.fastopen_key) == (0x403, "1-2-3-4")


@pytest.mark.parametrize("options, text", [
    (Options(fastopen=b""), "tfo  cookiereq,nop,nop"),
    (Options(fastopen=bytes.fromhex("1db1eb10300d35c8")), "tfo  cookie 1db1eb10300d35c8,nop,nop"),
    (Options(fastopen=b"", fastopen_exp=True), "exp-tfo cookiereq"),
    (Options(fastopen=bytes(8), fastopen_exp=True), "exp-tfo cookie 0000000000000000"),
])
def test_option_text_is_tcpdumps(options: Options, text: str) -> None:
    # tcpdump on the live lab: "...,wscale 10,tfo  cookie 1db1eb10300d35c8,nop,nop".
    assert options.tcpdump() == text


def test_packetdrill_server_basic_rw_on_the_model() -> None:
    """tcp/fastopen/server/basic-rw.pkt, line by line, on a model host.

    defaults.sh: tcp_fastopen=0x70403 (client, server, every listener) and its
    key; the script's local 192.168.0.1 listens, 192.0.2.1 sends a SYN with 10
    bytes and the experimental-encoding cookie packetdrill computes."""
    from dataclasses import replace

    from tcplab.model.host import Host
    from tcplab.model.segment import Segment
    from tcplab.wire.flags import Flags
    from tcplab.wire.seq import Seq

    key = "a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4"
    profile = LINUX.with_sysctls({"net.ipv4.tcp_fastopen": "0x70403",
                                  "net.ipv4.tcp_fastopen_key": key})
    host = Host("server", "192.168.0.1", replace(profile, window=65535),
                isn=lambda local, remote, now: 0, ephemeral_port=lambda: 40000)
    listener = host.listen(8080, 1, 0.1)  # listen(3, 1)
    cookie = bytes.fromhex("3021b9d889017eeb")
    syn = Segment("192.0.2.1", 50000, "192.168.0.1", 8080, Seq(0), None, Flags.SYN, 32792,
                  Options(mss=1460, sack_ok=True, fastopen=cookie, fastopen_exp=True),
                  b"x" * 10)
    host.receive(syn, 0.1)  # +0 < S 0:10(10) ... <mss 1460,sackOK,nop,nop,FOEXP TFO_COOKIE>
    (synack,) = host.segments_to_send()  # +0 > S. 0:0(0) ack 11 <mss 1460,nop,nop,sackOK>
    assert (synack.flags, synack.seq, synack.ack) == (Flags.SYN | Flags.ACK, Seq(0), Seq(11))
    assert synack.options.fastopen is None and synack.options.ts is None
    child = listener.accept()  # +.1 accept(3, ...) = 4
    assert child is not None and child.fastopen_child and child.syn_data_acked  # TCPI_OPT_SYN_DATA
    assert child.recv(512, 0.2) == b"x" * 10  # read(4, ..., 512) = 10
    child.send(b"y" * 100, 0.3)  # write(4, ..., 100) = 100
    (data,) = host.segments_to_send()  # +0 > P. 1:101(100) ack 11
    assert (data.flags, data.seq, data.ack, len(data.payload)) == (
        Flags.PSH | Flags.ACK, Seq(1), Seq(11), 100)
