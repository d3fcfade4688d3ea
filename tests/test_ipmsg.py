"""IP Messenger and FeiQ datagrams: the parse/build pair on literal bytes, and
datagrams sent on loopback with real UDP sockets, captured by tcpdump, decoded
by ``tcplab packets --ipmsg``."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import time
from pathlib import Path

import pytest

from conftest import capturing, run_tcplab
from tcplab.wire.error import WireError
from tcplab.wire.ipmsg import IpmsgPacket, atoi, option_names

# The seed note's FeiQ datagram, as Wireshark showed it.
FEIQ = b"1_lbt6_0#131#F46D04EE2666#1221#0#0#4001#9:1440897450:Guiyun:DEV6-GUIYUN-PC:0:"
SENDMSG, SENDCHECKOPT, UTF8OPT, BR_ENTRY, ABSENCEOPT = 0x20, 0x100, 0x800000, 0x01, 0x100


def test_feiq_prefix_and_atoi() -> None:
    packet = IpmsgPacket.parse(FEIQ)
    assert packet.build() == FEIQ
    assert packet.version == b"1_lbt6_0#131#F46D04EE2666#1221#0#0#4001#9"
    assert packet.version_number == 1  # atoi stops at '_'
    assert packet.feiq is not None and packet.feiq.mac == "F4:6D:04:EE:26:66"
    assert packet.feiq.fields[:3] == ("1_lbt6_0", "131", "F46D04EE2666")
    assert (packet.packet_no, packet.user, packet.host) == (b"1440897450", b"Guiyun",
                                                           b"DEV6-GUIYUN-PC")  # fmt: skip
    assert (packet.command, packet.mode, packet.options, packet.extra) == (0, "NOOPERATION", [],
                                                                           b"")  # fmt: skip
    assert [atoi(b"42abc"), atoi(b"abc"), atoi(b""), atoi(b"7")] == [42, 0, 0, 7]


def test_commands_and_options_by_mode() -> None:
    command = str(SENDMSG | SENDCHECKOPT | UTF8OPT).encode()
    message = IpmsgPacket.parse(b"1:100:alice:pc1:" + command + b":" + "你好\0".encode())
    assert message.mode == "SENDMSG"
    assert message.options == ["SENDCHECKOPT", "UTF8OPT"]
    assert message.message == "你好"
    assert IpmsgPacket.parse(message.build()) == message
    # 0x100 is SENDCHECKOPT on a message but ABSENCEOPT on an entry.
    assert option_names(BR_ENTRY | ABSENCEOPT) == ["ABSENCEOPT"]
    assert option_names(0x13 | 0x40000000) == ["0x40000000"]  # unknown bits stay visible
    # GBK text (Chinese Windows clients) is decoded too; bytes are kept as sent.
    gbk = "1:7:小明:办公室:32:晚上好".encode("gbk")
    packet = IpmsgPacket.parse(gbk)
    assert (packet.user_text, packet.host_text, packet.message) == ("小明", "办公室", "晚上好")
    assert packet.build() == gbk
    # create() and parse() agree; a datagram without the sixth field round-trips.
    made = IpmsgPacket.create("1", 5, "bob", "box", BR_ENTRY, b"bob\0group")
    assert made.build() == b"1:5:bob:box:1:bob\0group"
    assert IpmsgPacket.parse(made.build()) == made
    assert IpmsgPacket.parse(b"1:5:bob:box:2").build() == b"1:5:bob:box:2"


@pytest.mark.parametrize(("data", "offset", "text"), [
    (b"1:2:3", 5, "needs 5"),
    (b"1:2:u:h:x20:hi", 8, "not a decimal"),
    (b"1:2:u:h:99999999999:", 8, "32 bits"),
])  # fmt: skip
def test_malformed_datagrams_say_where(data: bytes, offset: int, text: str) -> None:
    with pytest.raises(WireError) as caught:
        IpmsgPacket.parse(data)
    assert caught.value.offset == offset and text in caught.value.message


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("tcpdump") is None,
                    reason="capturing on lo needs root and tcpdump")  # fmt: skip
def test_datagrams_on_loopback_captured_and_decoded(tmp_path: Path) -> None:
    # A loopback address of this test's own (all of 127/8 is local): no other
    # test's datagrams in the capture, and port 2425 free on it.
    address = f"127.{random.randint(90, 250)}.{os.getpid() % 250 + 1}.{random.randint(2, 250)}"
    sent = [
        IpmsgPacket.create("1", 1001, "alice", "pc-1", BR_ENTRY, b"alice\0lab").build(),
        IpmsgPacket.create("1", 1002, "alice", "pc-1", SENDMSG | SENDCHECKOPT | UTF8OPT,
                           "你好, IPMsg\0".encode()).build(),
        FEIQ,
    ]
    out = tmp_path / "ipmsg.pcap"
    args = ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-s", "0", "-w", str(out),
            f"udp port 2425 and host {address}"]  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:  # fmt: skip
        receiver.bind((address, 2425))
        receiver.settimeout(5)
        with capturing(args, lambda line: b"listening on" in line):
            for data in sent:
                sender.sendto(data, (address, 2425))
                assert receiver.recvfrom(65535)[0] == data
            time.sleep(0.3)
    result = run_tcplab("packets", "--ipmsg", str(out))
    assert result.code == 0, result.stderr
    text = result.stdout
    assert text.count("IPMsg ") == 3
    assert "IPMsg BR_ENTRY" in text and "IPMsg SENDMSG" in text and "IPMsg NOOPERATION" in text
    assert "SENDMSG | SENDCHECKOPT | UTF8OPT" in text and "你好, IPMsg" in text
    assert "-> atoi() = 1" in text and "F4:6D:04:EE:26:66 looks like a MAC address" in text
    assert f"> {address}.2425" in text
    rows = [json.loads(line) for line in
            run_tcplab("packets", "--ipmsg", "--json", str(out)).stdout.splitlines()]  # fmt: skip
    assert [r["mode"] for r in rows] == ["BR_ENTRY", "SENDMSG", "NOOPERATION"]
    assert rows[1]["options"] == ["SENDCHECKOPT", "UTF8OPT"] and rows[1]["extra"] == "你好, IPMsg"
    assert rows[2]["version_atoi"] == 1 and rows[2]["feiq"]["mac"] == "F4:6D:04:EE:26:66"
    assert rows[2]["user"] == "Guiyun" and rows[2]["packet_no"] == "1440897450"
    assert all(r["dport"] == 2425 and r["dst"] == address for r in rows)
