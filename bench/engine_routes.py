"""Two routes to a compiled hot path, measured on one core loop (docs/engine.md).

The loop: walk a classic pcap's records, decode Ethernet/IPv4/TCP, verify the
TCP checksum, and count packets per unordered 5-tuple in an open-addressing
hash table, the skeleton of the engine's per-packet work.

  C       the loop in C (compiled here with the flags setup.py uses), one call
          per file through ctypes: what the C extension runs
  numba   the same loop as a numba @njit kernel over a NumPy memmap of the
          file; its JIT compile is timed separately (paid by every process
          unless cached on disk)

Usage: python bench/engine_routes.py FILE.pcap  (numba from $NUMBA_PATH or the
environment; the route is skipped when it cannot be imported).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

C_LOOP = r"""
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
typedef struct { uint32_t a, b; uint16_t pa, pb; uint32_t count; uint32_t used; } Slot;
static uint32_t sum_be(const uint8_t *d, size_t n, uint32_t s) {
    uint64_t acc = s; size_t i = 0;
    for (; i + 1 < n; i += 2) acc += (uint32_t)(d[i] << 8 | d[i + 1]);
    if (i < n) acc += (uint32_t)(d[i] << 8);
    while (acc >> 16) acc = (acc & 0xFFFF) + (acc >> 16);
    return (uint32_t)acc;
}
long long core_loop(const uint8_t *f, size_t size, long long *flows, long long *bad) {
    size_t cap = 1 << 20, pos = 24; long long n = 0; *flows = 0; *bad = 0;
    Slot *t = calloc(cap, sizeof(Slot));
    while (pos + 16 <= size) {
        uint32_t caplen; memcpy(&caplen, f + pos + 8, 4);
        const uint8_t *p = f + pos + 16; pos += 16 + caplen;
        if (pos > size || caplen < 54 || p[12] != 8 || p[13] != 0) continue;
        const uint8_t *ip = p + 14; size_t ihl = (ip[0] & 15) * 4;
        if (ip[9] != 6) continue;
        size_t total = (size_t)(ip[2] << 8 | ip[3]), seglen = total - ihl;
        const uint8_t *tcp = ip + ihl;
        uint32_t s = sum_be(ip + 12, 8, 0) + 6 + (uint32_t)seglen;
        if (sum_be(tcp, seglen, s) != 0xFFFF) (*bad)++;
        uint32_t a, b;
        memcpy(&a, ip + 12, 4);
        memcpy(&b, ip + 16, 4);
        uint16_t pa = (uint16_t)(tcp[0] << 8 | tcp[1]);
        uint16_t pb = (uint16_t)(tcp[2] << 8 | tcp[3]);
        if (a > b || (a == b && pa > pb)) {
            uint32_t x = a; a = b; b = x;
            uint16_t y = pa; pa = pb; pb = y;
        }
        uint64_t h = ((uint64_t)a * 0x9E3779B97F4A7C15ULL)
                   ^ ((uint64_t)b * 0xC2B2AE3D27D4EB4FULL) ^ ((uint64_t)pa << 16 | pb);
        size_t i = (h ^ (h >> 29)) & (cap - 1);
        while (t[i].used && !(t[i].a == a && t[i].b == b && t[i].pa == pa && t[i].pb == pb))
            i = (i + 1) & (cap - 1);
        if (!t[i].used) {
            t[i].used = 1; t[i].a = a; t[i].b = b; t[i].pa = pa; t[i].pb = pb;
            (*flows)++;
        }
        t[i].count++; n++;
    }
    free(t);
    return n;
}
"""


def c_route(path: Path) -> tuple[float, int, int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        src, lib = Path(tmp) / "loop.c", Path(tmp) / "loop.so"
        src.write_text(C_LOOP)
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
        so = ctypes.CDLL(str(lib))
        data = path.read_bytes()
        flows, bad = ctypes.c_longlong(), ctypes.c_longlong()
        so.core_loop.restype = ctypes.c_longlong
        t0 = time.process_time()
        n = so.core_loop(data, len(data), ctypes.byref(flows), ctypes.byref(bad))
        return time.process_time() - t0, n, flows.value, bad.value


def numba_route(path: Path) -> tuple[float, float, int, int, int] | None:
    t0 = time.process_time()
    try:
        import numba
        import numpy as np
    except ImportError:
        return None

    @numba.njit(cache=False)  # type: ignore[misc]
    def sum_be(d: np.ndarray, start: int, n: int, s: int) -> int:  # type: ignore[type-arg]
        acc = s
        i = 0
        while i + 1 < n:
            acc += (np.uint32(d[start + i]) << 8) | d[start + i + 1]
            i += 2
        if i < n:
            acc += np.uint32(d[start + i]) << 8
        while acc >> 16:
            acc = (acc & 0xFFFF) + (acc >> 16)
        return acc

    @numba.njit(cache=False)  # type: ignore[misc]
    def core_loop(f: np.ndarray) -> tuple[int, int, int]:  # type: ignore[type-arg]
        cap = 1 << 20
        keys = np.zeros((cap, 4), dtype=np.uint32)
        used = np.zeros(cap, dtype=np.uint8)
        counts = np.zeros(cap, dtype=np.uint32)
        pos, n, flows, bad, size = 24, 0, 0, 0, f.shape[0]
        while pos + 16 <= size:
            caplen = (
                np.uint32(f[pos + 8])
                | (np.uint32(f[pos + 9]) << 8)
                | (np.uint32(f[pos + 10]) << 16)
                | (np.uint32(f[pos + 11]) << 24)
            )
            p = pos + 16
            pos += 16 + caplen
            if pos > size or caplen < 54 or f[p + 12] != 8 or f[p + 13] != 0:
                continue
            ip = p + 14
            ihl = (f[ip] & 15) * 4
            if f[ip + 9] != 6:
                continue
            total = (np.uint32(f[ip + 2]) << 8) | f[ip + 3]
            seglen = total - ihl
            tcp = ip + ihl
            s = sum_be(f, ip + 12, 8, 0) + 6 + seglen
            if sum_be(f, tcp, seglen, s) != 0xFFFF:
                bad += 1
            a = (np.uint32(f[ip + 12]) << 24) | (np.uint32(f[ip + 13]) << 16) | (
                np.uint32(f[ip + 14]) << 8
            ) | f[ip + 15]
            b = (np.uint32(f[ip + 16]) << 24) | (np.uint32(f[ip + 17]) << 16) | (
                np.uint32(f[ip + 18]) << 8
            ) | f[ip + 19]
            pa = (np.uint32(f[tcp]) << 8) | f[tcp + 1]
            pb = (np.uint32(f[tcp + 2]) << 8) | f[tcp + 3]
            if a > b or (a == b and pa > pb):
                a, b, pa, pb = b, a, pb, pa
            h = (np.uint64(a) * np.uint64(0x9E3779B97F4A7C15)) ^ (
                np.uint64(b) * np.uint64(0xC2B2AE3D27D4EB4F)
            ) ^ ((np.uint64(pa) << np.uint64(16)) | np.uint64(pb))
            i = (h ^ (h >> np.uint64(29))) & np.uint64(cap - 1)
            while used[i] and not (
                keys[i, 0] == a and keys[i, 1] == b and keys[i, 2] == pa and keys[i, 3] == pb
            ):
                i = (i + np.uint64(1)) & np.uint64(cap - 1)
            if not used[i]:
                used[i] = 1
                keys[i, 0], keys[i, 1], keys[i, 2], keys[i, 3] = a, b, pa, pb
                flows += 1
            counts[i] += 1
            n += 1
        return n, flows, bad

    data = np.memmap(path, dtype=np.uint8, mode="r")
    small = np.frombuffer(bytes(data[:24]) + bytes(16), dtype=np.uint8)
    core_loop(small)  # compile
    compile_s = time.process_time() - t0
    t1 = time.process_time()
    n, flows, bad = core_loop(data)
    return compile_s, time.process_time() - t1, n, flows, bad


def main() -> None:
    path = Path(sys.argv[1])
    if os.environ.get("NUMBA_PATH"):
        sys.path.insert(0, os.environ["NUMBA_PATH"])
    cpu, n, flows, bad = c_route(path)
    print(f"C (ctypes, one call): {cpu:.3f} s CPU, {n / cpu:,.0f} pkts/s, {flows} flows, {bad} bad")
    got = numba_route(path)
    if got is None:
        print("numba: not installed")
        return
    compile_s, cpu, n, flows, bad = got
    print(
        f"numba @njit: {cpu:.3f} s CPU, {n / cpu:,.0f} pkts/s, {flows} flows, {bad} bad; "
        f"import + JIT compile {compile_s:.2f} s CPU per process"
    )


if __name__ == "__main__":
    main()
