"""The engine's TCP checksum against tcplab.wire's (RFC 1071), on segments of
every length: the engine sums 32 bytes a step with AVX2 where the CPU has it
and in plain C otherwise, so lengths around every step boundary and random
payloads are checked, each with its checksum right and with one bit wrong."""

from __future__ import annotations

import random
import struct
from pathlib import Path

from tcplab.analyze import engine
from tcplab.wire.checksum import internet_checksum, tcp_checksum

SRC, DST = "10.1.2.3", "10.4.5.6"


def frame(sport: int, payload: bytes, corrupt: bool) -> bytes:
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, 80, 1000, 0, 5 << 4, 0x18, 512, 0, 0))
    tcp += payload
    check = tcp_checksum(SRC, DST, bytes(tcp))
    if corrupt:
        check ^= 1 << random.Random(sport).randrange(16)
    struct.pack_into("!H", tcp, 16, check)
    ip = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                    bytes(map(int, SRC.split("."))), bytes(map(int, DST.split("."))))
    )  # fmt: skip
    struct.pack_into("!H", ip, 10, internet_checksum(bytes(ip)))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + bytes(ip) + bytes(tcp)


def test_checksums_of_every_length(tmp_path: Path) -> None:
    rng = random.Random(11)
    lengths = [*range(0, 200), *range(1400, 1500), *(rng.randrange(0, 9000) for _ in range(200))]
    path = tmp_path / "sums.pcap"
    bad = 0
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, n in enumerate(lengths):
            for corrupt in (False, True):
                # one connection per segment: its anomalies are its own
                data = frame(1024 + 2 * i + corrupt, rng.randbytes(n), corrupt)
                bad += corrupt
                f.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(data), len(data)))
                f.write(data)
    got = engine.collect(path, engine.Options(strict_checksums=True))
    counts = {t[0]: t[15][-1] for t in got.connections}  # bad_checksum is the last anomaly
    assert got.report.tcp == 2 * len(lengths)
    assert sum(counts.values()) == bad
    assert sorted(counts.values()) == [0] * len(lengths) + [1] * len(lengths)
