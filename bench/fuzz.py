"""Fuzz campaign: mutated captures through every reading view, counted.

Seeds are the small Zeek traces in ``../shared/peer-traces`` (Ethernet,
VLAN/MPLS/PPPoE, IPv6, tunnels, pcapng), each rewritten as classic pcap
(little- and big-endian) and as pcapng with packet comments, so every
structural mutation has a file of its kind to work on.  A case is one seed
with one to three mutations (``MUTATORS``): bit flips, byte overwrites,
truncations, removed or duplicated records and blocks, pcapng block-length
and interface-id corruption, absurd caplen and if_tsresol, IPv4 IHL, IP
length, TCP data-offset and option-length corruption inside valid packets,
header corruption, and gzip wrapping (whole, corrupted or cut).

Every case goes through ``VIEWS`` (``packets --json``, ``packets``, and
``analyze`` in every output mode including ``--summary``), in process, in
forked workers that each take batches of cases.  A worker runs under
RLIMIT_AS (``--memory-mb``) and every view under a timer (``--time-limit``).
Counted per case (a case counts once per kind whatever the view):

  tracebacks         an exception escaped the CLI's one-line boundary
  hangs              a view exceeded the time limit
  over-memory        MemoryError, or the worker's peak RSS grew past the limit
  wrong-exit-status  a status outside {0, 1, 2}, or views disagreeing on the
                     README's rule (nothing readable -> 1; not a capture -> 2)
  bad-warning-lines  a stderr line without the ``tcplab: FILE:`` form

``.venv/bin/python bench/fuzz.py --cases 100000 --workers 2`` (the issue's
campaign); failing cases are saved under ``--save`` for replay with
``tcplab packets FILE``.  Target: zero of each.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import resource
import select
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRACES = HERE.parent.parent / "shared" / "peer-traces" / "zeek" / "traces"

VIEWS: tuple[tuple[str, ...], ...] = (
    ("packets", "--json"),
    ("packets",),
    ("analyze",),
    ("analyze", "--json"),
    ("analyze", "--conn-log"),
    ("analyze", "--packets"),
    ("analyze", "--ladder", "0"),
    ("analyze", "--summary"),
)
KINDS = ("tracebacks", "hangs", "over-memory", "wrong-exit-status", "bad-warning-lines")


# -- seeds -----------------------------------------------------------------------------------


@dataclass
class Seed:
    name: str
    data: bytes
    kind: str  # "pcap" | "pcapng"
    order: str = "<"
    # pcap: (record offset, caplen-field offset, data offset, caplen);
    # pcapng: (block offset, total length) for every block.
    records: list[tuple[int, int, int, int]] = field(default_factory=list)
    blocks: list[tuple[int, int]] = field(default_factory=list)
    # Absolute offsets of IP headers (version, offset) and TCP headers.
    ip: list[tuple[int, int]] = field(default_factory=list)
    tcp: list[int] = field(default_factory=list)


def _locate(data: bytes, linktype: int, frame: bytes, data_offset: int, seed: Seed) -> None:
    from tcplab.wire.link import locate_network

    where = locate_network(linktype, frame)
    if isinstance(where, str):
        return
    version, at = where[0], where[1]
    seed.ip.append((version, data_offset + at))
    if version == 4 and len(frame) >= at + 20 and frame[at + 9] == 6:
        seed.tcp.append(data_offset + at + (frame[at] & 0x0F) * 4)
    elif version == 6 and len(frame) >= at + 40 and frame[at + 6] == 6:
        seed.tcp.append(data_offset + at + 40)


def _index(seed: Seed) -> Seed:
    """Fill in record/block/header offsets by reading the seed back."""
    from tcplab.capture import open_capture

    path = Path(f"/dev/shm/tcplab-fuzz-seed-{os.getpid()}")
    path.write_bytes(seed.data)
    try:
        with open_capture(path) as reader:
            for record in reader:
                if seed.kind == "pcap":
                    seed.records.append((record.offset, record.offset + 8, record.data_offset,
                                         len(record.data)))  # fmt: skip
                _locate(seed.data, record.linktype, record.data, record.data_offset, seed)
    finally:
        path.unlink()
    if seed.kind == "pcapng":
        pos = 0
        while pos + 12 <= len(seed.data):
            (total,) = struct.unpack_from("<I", seed.data, pos + 4)
            seed.blocks.append((pos, total))
            pos += total
    return seed


def load_seeds(max_bytes: int = 12_500, max_records: int = 40) -> list[Seed]:
    from tcplab.capture import PcapngWriter, PcapWriter, open_capture

    seeds: list[Seed] = []
    files = sorted(p for p in TRACES.rglob("*") if p.suffix in (".pcap", ".pcapng", ".trace"))
    for path in files:
        if path.stat().st_size > max_bytes:
            continue
        try:
            with open_capture(path) as reader:
                records = [r for _, r in zip(range(max_records), reader, strict=False)]
        except Exception:
            continue
        if not records:
            continue
        linktype = records[0].linktype
        records = [r for r in records if r.linktype == linktype]
        pcap_buf = io.BytesIO()
        writer = PcapWriter(pcap_buf, linktype, nanosecond=False)
        for r in records:
            writer.write(r.time_ns, r.data)
        little = pcap_buf.getvalue()
        seeds.append(_index(Seed(f"{path.stem}.pcap", little, "pcap")))
        seeds.append(_index(Seed(f"{path.stem}.be.pcap", _big_endian(little), "pcap", ">")))
        ng_buf = io.BytesIO()
        ngw = PcapngWriter(ng_buf, comment=f"fuzz seed <b>{path.stem}</b>")
        first = ngw.add_interface(linktype, "eth0", tsresol=9)
        second = ngw.add_interface(linktype, "eth1", tsresol=6)
        for i, r in enumerate(records):
            comment = f"packet {i} <script>x</script>" if i % 3 == 0 else None
            ngw.write(r.time_ns, r.data, first if i % 2 == 0 else second, comment)
        seeds.append(_index(Seed(f"{path.stem}.pcapng", ng_buf.getvalue(), "pcapng")))
    return seeds


def _big_endian(little: bytes) -> bytes:
    """The same classic pcap with every header in big-endian byte order."""
    out = bytearray(struct.pack(">IHHiIII", *struct.unpack_from("<IHHiIII", little)))
    pos = 24
    while pos + 16 <= len(little):
        sec, frac, caplen, orig = struct.unpack_from("<IIII", little, pos)
        out += struct.pack(">IIII", sec, frac, caplen, orig) + little[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
    return bytes(out)


# -- mutations ---------------------------------------------------------------------------------

Mutator = Callable[[bytearray, Seed, random.Random], bytearray]
INTERESTING32 = (
    0, 1, 3, 4, 11, 12, 13, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF,
    0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x0FFFFFFF, 256 << 20, (256 << 20) + 4,
)  # fmt: skip


def _u32(buf: bytearray, pos: int, value: int, order: str = "<") -> None:
    if 0 <= pos <= len(buf) - 4:
        struct.pack_into(order + "I", buf, pos, value & 0xFFFFFFFF)


def bitflip(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return buf


def overwrite(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(buf))
        if rng.random() < 0.5:
            buf[i] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        else:
            _u32(buf, i - i % 4, rng.choice(INTERESTING32), seed.order)
    return buf


def truncate(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    bounds = [r[0] for r in seed.records] + [b[0] for b in seed.blocks]
    if bounds and rng.random() < 0.5:
        cut = rng.choice(bounds) + rng.randint(-4, 20)
    else:
        cut = rng.randrange(len(buf))
    return buf[: max(0, cut)]


def _units(seed: Seed) -> list[tuple[int, int]]:
    """(offset, length) of every record (pcap) or block (pcapng)."""
    if seed.kind == "pcap":
        return [(r[0], 16 + r[3]) for r in seed.records]
    return list(seed.blocks)


def remove_record(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    units = _units(seed)
    if not units:
        return buf
    at, length = rng.choice(units)
    return buf[:at] + buf[at + length :]


def duplicate_record(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    units = _units(seed)
    if not units:
        return buf
    at, length = rng.choice(units)
    return buf[: at + length] + buf[at : at + length] * rng.randint(1, 3) + buf[at + length :]


def block_length(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    if not seed.blocks:
        return caplen(buf, seed, rng)
    at, total = rng.choice(seed.blocks)
    value = rng.choice((*INTERESTING32, total + rng.choice((-8, -4, -1, 1, 2, 4, 8))))
    where = rng.choice(("lead", "trail", "both"))
    if where in ("lead", "both"):
        _u32(buf, at + 4, value)
    if where in ("trail", "both"):
        _u32(buf, at + total - 4, value)
    return buf


def _epbs(seed: Seed, buf: bytearray) -> list[int]:
    return [at for at, _ in seed.blocks if at + 28 <= len(buf) and buf[at] == 6 and
            buf[at + 1 : at + 4] == b"\0\0\0"]  # fmt: skip


def interface_id(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    epbs = _epbs(seed, buf)
    if not epbs:
        return bitflip(buf, seed, rng)
    _u32(buf, rng.choice(epbs) + 8, rng.choice((1, 2, 3, 5, 255, 0xFFFF, 0xFFFFFFFF)))
    return buf


def caplen(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    value = rng.choice((*INTERESTING32, rng.randrange(1 << 32)))
    if seed.kind == "pcap" and seed.records:
        _u32(buf, rng.choice(seed.records)[1], value, seed.order)
    elif seed.kind == "pcapng" and _epbs(seed, buf):
        _u32(buf, rng.choice(_epbs(seed, buf)) + 20, value)
    return buf


def tsresol(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    """if_tsresol (option 9, one byte) of an IDB set to something absurd (or if_tsoffset)."""
    hits = [i for i in range(len(buf) - 5) if buf[i : i + 4] == b"\x09\x00\x01\x00"]
    if not hits:
        return caplen(buf, seed, rng)
    buf[rng.choice(hits) + 4] = rng.choice((0x80, 0x81, 0x8F, 0xBF, 0xFF, 0x00, 0x13, 0x14,
                                             0x3F, 0x7F, rng.randrange(256)))  # fmt: skip
    return buf


def ip_header(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    """IPv4 IHL or IP length fields of a valid packet."""
    if not seed.ip:
        return bitflip(buf, seed, rng)
    version, at = rng.choice(seed.ip)
    if at + 8 > len(buf):
        return buf
    if version == 4 and rng.random() < 0.6:
        buf[at] = 0x40 | rng.randrange(16)
    elif version == 4:
        struct.pack_into(">H", buf, at + 2, rng.choice((0, 1, 19, 20, 21, 39, 40, 0xFFFF)))
    else:
        struct.pack_into(">H", buf, at + 4, rng.choice((0, 1, 8, 0xFFFF, rng.randrange(1 << 16))))
    return buf


def tcp_offset(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    if not seed.tcp:
        return bitflip(buf, seed, rng)
    at = rng.choice(seed.tcp)
    if at + 13 <= len(buf):
        buf[at + 12] = (rng.randrange(16) << 4) | (buf[at + 12] & 0x0F)
    return buf


def tcp_option(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    """An option length (or kind) inside the TCP options of a valid packet."""
    with_options = [at for at in seed.tcp if at + 21 <= len(buf) and buf[at + 12] >> 4 > 5]
    if not with_options:
        return tcp_offset(buf, seed, rng)
    at = rng.choice(with_options)
    end = min(len(buf), at + (buf[at + 12] >> 4) * 4)
    pos = rng.randrange(at + 20, end)
    buf[pos] = rng.choice((0, 1, 2, 3, 4, 5, 8, 10, 30, 34, 40, 253, 254, 255))
    return buf


def file_header(buf: bytearray, seed: Seed, rng: random.Random) -> bytearray:
    if seed.kind == "pcap":
        field_at = rng.choice((4, 16, 20))  # version, snaplen, linktype
        _u32(buf, field_at, rng.choice(INTERESTING32), seed.order)
    else:
        _u32(buf, rng.choice((8, 12, 16, 20)), rng.choice(INTERESTING32))  # magic, version, len
    return buf


STRUCTURAL: tuple[Mutator, ...] = (remove_record, duplicate_record)
IN_PLACE: tuple[Mutator, ...] = (block_length, interface_id, caplen, tsresol, ip_header,
                                 tcp_offset, tcp_option, file_header)  # fmt: skip
BYTES: tuple[Mutator, ...] = (bitflip, overwrite)


def gzipped(buf: bytes, rng: random.Random) -> bytes:
    packed = bytearray(gzip.compress(buf, compresslevel=1, mtime=0))
    roll = rng.random()
    if roll < 0.3:
        return bytes(packed[: rng.randrange(2, len(packed))])
    if roll < 0.6:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(10, len(packed)) if len(packed) > 10 else 2
            packed[i] ^= 1 << rng.randrange(8)
    return bytes(packed)


def mutate(seeds: list[Seed], case: int, master: int) -> tuple[bytes, str]:
    """Case ``case`` of campaign ``master``: the bytes and what was done."""
    return mutate_with(seeds, random.Random(master * 1_000_003 + case))


def mutate_with(seeds: list[Seed], rng: random.Random) -> tuple[bytes, str]:
    """One seed, one to three mutations, all choices from ``rng`` (hypothesis
    hands in its own, so a failing case shrinks)."""
    seed = rng.choice(seeds)
    buf = bytearray(seed.data)
    done = [seed.name]
    for mutator in rng.sample(IN_PLACE, rng.choice((0, 1, 1, 2))):
        buf = mutator(buf, seed, rng)
        done.append(mutator.__name__)
    if rng.random() < 0.3:
        mutator = rng.choice(STRUCTURAL)
        buf = mutator(buf, seed, rng)
        done.append(mutator.__name__)
    if len(done) == 1 or rng.random() < 0.4:
        mutator = rng.choice(BYTES)
        buf = mutator(buf, seed, rng) if buf else buf
        done.append(mutator.__name__)
    if rng.random() < 0.15:
        buf = truncate(buf, seed, rng) if buf else buf
        done.append("truncate")
    data = bytes(buf)
    if rng.random() < 0.1:
        data = gzipped(data, rng)
        done.append("gzip")
    return data, "+".join(done)


# -- running -------------------------------------------------------------------------------


class Hang(BaseException):
    """The view ran past the time limit."""


def _alarm(_signum: int, _frame: object) -> None:
    raise Hang


@dataclass
class Outcome:
    code: int | None
    err: str
    problem: str = ""  # "" | one of KINDS
    detail: str = ""


def run_view(argv: list[str], limit: float) -> Outcome:
    from tcplab.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        try:
            main(argv)
            code: int | None = 0
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            sys.stdout, sys.stderr = saved
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Hang:
        return Outcome(None, err.getvalue(), "hangs", f"over {limit:g} s")
    except MemoryError:
        return Outcome(None, err.getvalue(), "over-memory", "MemoryError")
    except BaseException:
        return Outcome(None, err.getvalue(), "tracebacks", traceback.format_exc(limit=-4))
    return Outcome(code, err.getvalue())


def judge(outcomes: dict[tuple[str, ...], Outcome]) -> list[tuple[str, str]]:
    """Per kind, the first problem of this case (view + detail)."""
    found: dict[str, str] = {}
    for view, o in outcomes.items():
        name = " ".join(view)
        if o.problem:
            found.setdefault(o.problem, f"{name}: {o.detail}")
            continue
        if o.code not in (0, 1, 2):
            found.setdefault("wrong-exit-status", f"{name}: exit {o.code}")
        for line in o.err.splitlines():
            if not line.startswith("tcplab: "):
                found.setdefault("bad-warning-lines", f"{name}: {line[:160]}")
                break
    reference = outcomes.get(("packets", "--json"))
    if reference is not None and not reference.problem:
        for view, o in outcomes.items():
            if o.problem or o.code == reference.code:
                continue
            # --summary reads uncompressed classic pcap only; on anything else it
            # says so in one line (2): its documented limit, not a disagreement.
            if view[-1] == "--summary" and o.code == 2 and "--summary reads" in o.err:
                continue
            # --ladder 0 asks for a connection; a file without one says so (2).
            if "--ladder" in view and o.code == 2 and "no connection 0" in o.err:
                continue
            found.setdefault(
                "wrong-exit-status",
                f"{' '.join(view)}: exit {o.code}, packets --json: exit {reference.code}",
            )
    return sorted(found.items())


def worker(seeds: list[Seed], cases: range, master: int, limit: float, memory_mb: int,
           write_fd: int) -> None:  # fmt: skip
    """In a forked child: every case of ``cases``, one JSON line per case to ``write_fd``."""
    signal.signal(signal.SIGALRM, _alarm)
    soft = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (soft, soft))
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workdir = Path(f"/dev/shm/tcplab-fuzz-{os.getpid()}")
    workdir.mkdir(exist_ok=True)
    out = os.fdopen(write_fd, "w", buffering=1)
    try:
        for case in cases:
            data, how = mutate(seeds, case, master)
            path = workdir / ("case.pcap.gz" if data[:2] == b"\x1f\x8b" else "case.cap")
            path.write_bytes(data)
            outcomes = {view: run_view([*view, str(path)], limit) for view in VIEWS}
            found = judge(outcomes)
            grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_rss) >> 10
            if grown > memory_mb // 2:
                found.append(("over-memory", f"peak RSS grew {grown} MB"))
            out.write(json.dumps({"case": case, "how": how, "found": found}) + "\n")
            path.unlink()
            if found and any(k == "over-memory" for k, _ in found):
                break  # a fresh worker for the rest
    finally:
        for leftover in workdir.iterdir():
            leftover.unlink()
        workdir.rmdir()
        out.close()


@dataclass
class Totals:
    tried: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})


def campaign(seeds: list[Seed], total: int, workers: int, batch: int, master: int, limit: float,
             memory_mb: int, save: Path | None) -> Totals:  # fmt: skip
    totals = Totals()
    pending: Iterator[range] = (range(s, min(s + batch, total)) for s in range(0, total, batch))
    # read fd -> (pid, its cases, the pipe, the next case it will report)
    running: dict[int, tuple[int, range, io.TextIOWrapper, int]] = {}
    began = time.monotonic()
    last_report = 0

    def spawn() -> bool:
        nxt = next(pending, None)
        if nxt is None:
            return False
        start(nxt)
        return True

    def start(cases: range) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            code = 0
            try:
                worker(seeds, cases, master, limit, memory_mb, write_fd)
            except BaseException:
                code = 3
            os._exit(code)
        os.close(write_fd)
        running[read_fd] = (pid, cases, os.fdopen(read_fd), cases.start)

    for _ in range(workers):
        spawn()
    while running:
        ready, _, _ = select.select(list(running), [], [], 5)
        for fd in ready:
            pid, cases, stream, nxt = running[fd]
            line = stream.readline()
            if line:
                record = json.loads(line)
                totals.tried += 1
                running[fd] = (pid, cases, stream, record["case"] + 1)
                for kind, detail in record["found"]:
                    totals.counts[kind] += 1
                    if len(totals.examples[kind]) < 5:
                        totals.examples[kind].append(f"case {record['case']} "
                                                     f"({record['how']}): {detail}")  # fmt: skip
                    if save is not None and totals.counts[kind] <= 20:
                        save.mkdir(parents=True, exist_ok=True)
                        data, _ = mutate(seeds, record["case"], master)
                        (save / f"{kind}-{record['case']}.bin").write_bytes(data)
                continue
            stream.close()
            del running[fd]
            _, status = os.waitpid(pid, 0)
            if nxt < cases.stop:
                if status != 0:  # died mid-case (a signal, the rlimit): that case is a crash
                    totals.tried += 1
                    kind = "over-memory" if os.WIFSIGNALED(status) else "tracebacks"
                    totals.counts[kind] += 1
                    if len(totals.examples[kind]) < 5:
                        totals.examples[kind].append(f"case {nxt}: worker died (status {status})")
                    nxt += 1
                if nxt < cases.stop:
                    start(range(nxt, cases.stop))
                    continue
            spawn()
        if totals.tried - last_report >= max(1000, total // 20):
            last_report = totals.tried
            rate = totals.tried / (time.monotonic() - began)
            counts = ", ".join(f"{k} {v}" for k, v in totals.counts.items())
            print(f"  {totals.tried}/{total} cases, {rate:.0f}/s, {counts}", flush=True)
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=250, help="cases per worker process")
    parser.add_argument("--seed", type=int, default=1, help="the campaign's master seed")
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds per view")
    parser.add_argument("--memory-mb", type=int, default=1536, help="address space per worker")
    parser.add_argument("--save", type=Path, default=None, help="keep failing cases here")
    args = parser.parse_args()

    # Everything a view needs is imported before the workers fork.
    import tcplab.commands.analyze
    import tcplab.commands.packets
    from tcplab.cli import main as _cli  # noqa: F401

    del tcplab
    seeds = load_seeds()
    print(f"tcplab fuzz: {len(seeds)} seed files, {args.cases} cases x {len(VIEWS)} views "
          f"({', '.join(' '.join(v) for v in VIEWS)}), {args.workers} workers, "
          f"{args.time_limit:g} s and {args.memory_mb} MB per view", flush=True)  # fmt: skip
    began = time.monotonic()
    totals = campaign(seeds, args.cases, args.workers, args.batch, args.seed, args.time_limit,
                      args.memory_mb, args.save)  # fmt: skip
    seconds = time.monotonic() - began
    print()
    print(f"{'tried':>8} " + " ".join(f"{k:>18}" for k in KINDS))
    print(f"{totals.tried:>8} " + " ".join(f"{totals.counts[k]:>18}" for k in KINDS))
    print(f"{seconds:.0f} s, {totals.tried * len(VIEWS) / seconds:.0f} view runs/s")
    for kind in KINDS:
        for example in totals.examples[kind]:
            print(f"{kind}: {example}")
    return 1 if any(totals.counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
