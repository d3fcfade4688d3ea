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
