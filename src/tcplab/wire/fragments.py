"""IP fragment reassembly, sans-IO: fragments in, whole datagrams out.

RFC 791 §3.2 (IPv4) identifies the fragments of one datagram by (source,
destination, protocol, identification); RFC 8200 §4.5 (IPv6) by (source,
destination, identification).  ``fragment_in`` reads one captured frame's
outer IP header into a ``Fragment``; ``Reassembler.add`` collects them and
returns the whole datagram when its last hole fills, rebuilt as the
receiver would see it:

* IPv4: the header of the offset-0 fragment (RFC 791 §3.2: its options are
  the datagram's), MF and offset cleared, total length the whole datagram's,
  the header checksum recomputed when the first fragment's verified (a
  damaged one stays damaged, so a strict reader still sees it);
* IPv6: the unfragmentable part of the offset-0 fragment (RFC 8200 §4.5),
  the fragment header removed, the Next Header that pointed at it now
  pointing at the fragment header's Next Header, payload length updated.

Deliberate choices:

* Overlap: the bytes that arrived first win, later fragments only fill
  holes (Wireshark keeps the first data it saw too and flags a conflict).
  Linux drops the whole datagram instead (IPv6 must, RFC 5722; IPv4 since
  4.19, ``IPFRAG_OVERLAP``); a capture analyser keeps what it can show.
  Exact duplicates change nothing.
* Bounded memory: at most ``max_datagrams`` in progress (the oldest is given
  up to make room) and each is given up ``timeout_ns`` of capture time after
  its first fragment (60 s; Linux's ``ipfrag_time`` is 30 s, RFC 791's
  example timer 15 s, RFC 8200 §4.5 says 60 s).  A datagram is at most
  65,535 bytes of IPv4 payload after the header (RFC 791 total length); a
  fragment past that is not reassembled.  Given-up datagrams come back from
  ``take_incomplete``/``finish`` as ``Incomplete``, one per datagram.
* Only the outermost IP header is reassembled: a fragment inside a tunnel
  stays a fragment (the reference traces have none).
"""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from tcplab.wire.checksum import internet_checksum, ones_complement_sum
from tcplab.wire.ip import EXT_FRAGMENT, EXTENSION_HEADERS, IPV6_LEN, extension_length
from tcplab.wire.link import locate_network

__all__ = [
    "DEFAULT_MAX_DATAGRAMS",
    "DEFAULT_TIMEOUT_NS",
    "Completed",
    "Fragment",
    "FragmentKey",
    "Incomplete",
    "Reassembler",
    "fragment_in",
    "reassemble",
    "split_ipv4",
    "split_ipv6",
]

DEFAULT_TIMEOUT_NS: Final = 60 * 1_000_000_000
DEFAULT_MAX_DATAGRAMS: Final = 1024
MAX_IPV4_DATAGRAM: Final = 65535  # RFC 791 §3.1: Total Length is 16 bits
MAX_IPV6_PAYLOAD: Final = 65535  # RFC 8200 §4.5: the reassembled Payload Length field
_FRAGMENT_HEADER: Final = struct.Struct("!BBHI")  # next header, reserved, offset|res|M, id
_U16: Final = struct.Struct("!H")

# (IP version, source, destination, protocol (IPv4; 0 for IPv6), identification)
FragmentKey = tuple[int, bytes, bytes, int, int]


@dataclass(frozen=True, slots=True)
class Fragment:
    """One fragment: ``offset`` in bytes into the fragmentable part,
    ``more`` the MF / M flag, ``data`` the fragment's share of the payload;
    ``header`` the IP header as the reassembled datagram will carry it
    (before lengths are fixed): IPv4 with options, IPv6 with the
    unfragmentable extension headers and the fragment header left out."""

    key: FragmentKey
    offset: int
    more: bool
    data: bytes
    header: bytes
    # Where the header's "next header" byte sits (IPv6 only; -1 for IPv4).
    next_header_at: int = -1

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


def _ipv4_fragment(packet: bytes) -> Fragment | None:
    if len(packet) < 20:
        return None
    header_len = (packet[0] & 0x0F) * 4
    (total_length,) = _U16.unpack_from(packet, 2)
    (flags_frag,) = _U16.unpack_from(packet, 6)
    if not flags_frag & 0x3FFF or header_len < 20 or total_length < header_len:
        return None  # not a fragment (RFC 791 §3.1: MF and offset both 0), or damaged
    if len(packet) < total_length:
        return None  # cut by the snap length: the datagram cannot be rebuilt
    (ident,) = _U16.unpack_from(packet, 4)
    key = (4, packet[12:16], packet[16:20], packet[9], ident)
    data = packet[header_len:total_length]
    more = bool(flags_frag & 0x2000)
    if more and len(data) % 8:
        return None  # RFC 791 §3.2: every fragment but the last is a multiple of 8
    return Fragment(key, (flags_frag & 0x1FFF) * 8, more, data, packet[:header_len])


def _ipv6_fragment(packet: bytes) -> Fragment | None:
    if len(packet) < IPV6_LEN:
        return None
    (payload_length,) = _U16.unpack_from(packet, 4)
    end = IPV6_LEN + payload_length
    if payload_length == 0 or len(packet) < end:
        return None  # a jumbogram never fragments (RFC 2675 §3); or cut short
    kind, pos, next_header_at = packet[6], IPV6_LEN, 6
    while kind in EXTENSION_HEADERS and kind != EXT_FRAGMENT:
        if pos + 2 > end:
            return None
        next_header_at = pos
        kind, pos = packet[pos], pos + extension_length(kind, packet, pos)
    if kind != EXT_FRAGMENT or pos + 8 > end:
        return None
    next_header, _, word, ident = _FRAGMENT_HEADER.unpack_from(packet, pos)
    if not word & 0xFFF9:
        return None  # an atomic fragment (RFC 6946) is a whole packet
    more = bool(word & 1)
    data = packet[pos + 8 : end]
    if more and len(data) % 8:
        return None  # RFC 8200 §4.5: a non-last fragment is a multiple of 8
    header = bytearray(packet[:pos])
    header[next_header_at] = next_header
    key = (6, packet[8:24], packet[24:40], 0, ident)
    return Fragment(key, word & 0xFFF8, more, data, bytes(header), next_header_at)


def fragment_in(linktype: int, frame: bytes) -> Fragment | None:
    """The outer IP header of a captured frame as a fragment, or None when it
    is not one (or one that cannot be reassembled: cut by the snap length,
    a non-last fragment not a multiple of 8 bytes long)."""
    located = locate_network(linktype, frame)
    if isinstance(located, str):
        return None
    version, ip_offset, link_end = located
    packet = frame[ip_offset:link_end] if link_end is not None else frame[ip_offset:]
    return _ipv4_fragment(packet) if version == 4 else _ipv6_fragment(packet)


@dataclass(frozen=True, slots=True)
class Completed:
    """A reassembled datagram and the frames its fragments came in, in
    arrival order (the last completed it)."""

    datagram: bytes
    frames: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Incomplete:
    """A datagram given up: ``why`` ("timed out", "evicted", "end of
    capture", "too long"), the frames of its fragments, the bytes received
    and the total when the last fragment said it (None before that)."""

    key: FragmentKey
    why: str
    frames: tuple[int, ...]
    received: int
    total: int | None

    def describe(self) -> str:
        version, src, dst, protocol, ident = self.key
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        what = f"IPv{version} datagram id {ident:#x} {socket.inet_ntop(family, src)} -> "
        what += socket.inet_ntop(family, dst)
        if version == 4:
            what += f" protocol {protocol}"
        total = "?" if self.total is None else str(self.total)
        frames = ", ".join(map(str, self.frames))
        return (
            f"{what}: fragments incomplete ({self.why}; {self.received} of {total} "
            f"bytes, frames {frames})"
        )


@dataclass(slots=True)
class _Partial:
    started_ns: int
    frames: list[int]
    buffer: bytearray = field(default_factory=bytearray)
    covered: list[tuple[int, int]] = field(default_factory=list)  # sorted, disjoint
    total: int | None = None
    first: Fragment | None = None

    def received(self) -> int:
        return sum(end - start for start, end in self.covered)

    def fill(self, fragment: Fragment) -> None:
        """Write the bytes of ``fragment`` no earlier fragment supplied
        (first wins), and merge its range into ``covered``."""
        start, end = fragment.offset, fragment.end
        if len(self.buffer) < end:
            self.buffer.extend(bytes(end - len(self.buffer)))
        cursor = start
        for have_start, have_end in self.covered:
            if have_end <= cursor or have_start >= end:
                continue
            if have_start > cursor:
                self.buffer[cursor:have_start] = fragment.data[cursor - start : have_start - start]
            cursor = max(cursor, have_end)
        if cursor < end:
            self.buffer[cursor:end] = fragment.data[cursor - start :]
        merged: list[tuple[int, int]] = []
        for have in sorted([*self.covered, (start, end)]):
            if merged and have[0] <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], have[1]))
            else:
                merged.append(have)
        self.covered = merged

    def complete(self) -> bool:
        return (
            self.total is not None
            and self.covered == [(0, self.total)]
            and (self.first is not None)
        )


class Reassembler:
    """Fragments in capture order in, whole datagrams out (see the module
    docstring for the rules).  Time is the capture's, in nanoseconds."""

    def __init__(
        self,
        *,
        timeout_ns: int = DEFAULT_TIMEOUT_NS,
        max_datagrams: int = DEFAULT_MAX_DATAGRAMS,
    ) -> None:
        if max_datagrams < 1:
            raise ValueError("max_datagrams must be at least 1")
        self.timeout_ns = timeout_ns
        self.max_datagrams = max_datagrams
        self._partials: dict[FragmentKey, _Partial] = {}  # insertion order = age
        self._given_up: list[Incomplete] = []
        self.completed = 0

    @property
    def in_progress(self) -> int:
        return len(self._partials)

    def _give_up(self, key: FragmentKey, why: str) -> None:
        partial = self._partials.pop(key)
        self._given_up.append(
            Incomplete(key, why, tuple(partial.frames), partial.received(), partial.total)
        )

    def add(self, fragment: Fragment, time_ns: int, frame: int) -> Completed | None:
        """Take one fragment (seen at ``time_ns`` in frame ``frame``); the
        whole datagram when this one fills its last hole."""
        # RFC 791 §3.2 / RFC 8200 §4.5: a reassembly timer per datagram,
        # started by its first fragment.  Oldest first, so stop at the first
        # still running (a capture's clock can step back; then some wait).
        while self._partials:
            oldest = next(iter(self._partials))
            if time_ns - self._partials[oldest].started_ns <= self.timeout_ns:
                break
            self._give_up(oldest, "timed out")
        partial = self._partials.get(fragment.key)
        if partial is None:
            if len(self._partials) >= self.max_datagrams:
                self._give_up(next(iter(self._partials)), "evicted")
            partial = self._partials[fragment.key] = _Partial(time_ns, [])
        partial.frames.append(frame)
        limit = (
            MAX_IPV4_DATAGRAM - len(fragment.header)
            if fragment.key[0] == 4
            else (MAX_IPV6_PAYLOAD - (len(fragment.header) - IPV6_LEN))
        )
        if fragment.end > limit or (partial.total is not None and fragment.end > partial.total):
            self._give_up(fragment.key, "too long")
            return None
        if not fragment.more:
            if partial.total is not None and partial.total != fragment.end:
                self._give_up(fragment.key, "two different last fragments")
                return None
            if any(end > fragment.end for _, end in partial.covered):
                self._give_up(fragment.key, "too long")
                return None
            partial.total = fragment.end
        if fragment.offset == 0 and partial.first is None:
            partial.first = fragment
        partial.fill(fragment)
        if not partial.complete():
            return None
        del self._partials[fragment.key]
        self.completed += 1
        if partial.first is None:  # complete() checked; for the type checker
            raise RuntimeError("reassembled datagram without a first fragment")
        return Completed(_rebuild(partial.first, bytes(partial.buffer)), tuple(partial.frames))

    def take_incomplete(self) -> list[Incomplete]:
        """The datagrams given up since the last call (timed out, evicted)."""
        given_up, self._given_up = self._given_up, []
        return given_up

    def finish(self) -> list[Incomplete]:
        """End of the capture: every datagram still in progress, given up."""
        for key in list(self._partials):
            self._give_up(key, "end of capture")
        return self.take_incomplete()


def _rebuild(first: Fragment, payload: bytes) -> bytes:
    """The datagram's header (from the offset-0 fragment) and its payload."""
    header = bytearray(first.header)
    if first.key[0] == 4:
        checksum_ok = ones_complement_sum(first.header) == 0xFFFF
        _U16.pack_into(header, 2, len(header) + len(payload))  # total length
        _U16.pack_into(header, 6, _U16.unpack_from(header, 6)[0] & 0xC000)  # MF, offset := 0
        if checksum_ok:  # RFC 791 §3.1: recompute over the changed header
            _U16.pack_into(header, 10, 0)
            _U16.pack_into(header, 10, internet_checksum(bytes(header)))
    else:
        _U16.pack_into(header, 4, len(header) - IPV6_LEN + len(payload))  # payload length
    return bytes(header) + payload


def reassemble(fragments: Iterable[Fragment]) -> bytes | None:
    """The datagram the fragments make up (in any order), or None if they
    leave a hole; for tests and one-off use."""
    reassembler = Reassembler()
    for frame, fragment in enumerate(fragments, 1):
        done = reassembler.add(fragment, 0, frame)
        if done is not None:
            return done.datagram
    return None


def split_ipv4(datagram: bytes, cuts: Iterable[int]) -> list[bytes]:
    """The inverse of reassembly, for tests: an unfragmented IPv4 datagram
    cut at the given payload offsets (multiples of 8, RFC 791 §3.2) into
    fragments, in order, each with the whole header (options included) and
    a fresh header checksum."""
    header_len = (datagram[0] & 0x0F) * 4
    header, payload = datagram[:header_len], datagram[header_len:]
    bounds = [0, *sorted(set(cuts) - {0, len(payload)}), len(payload)]
    pieces = []
    for start, end in itertools.pairwise(bounds):
        if start % 8:
            raise ValueError(f"fragment offset {start} is not a multiple of 8")
        piece = bytearray(header)
        _U16.pack_into(piece, 2, header_len + end - start)
        more = 0x2000 if end < len(payload) else 0
        _U16.pack_into(piece, 6, (_U16.unpack_from(header, 6)[0] & 0x4000) | more | start // 8)
        _U16.pack_into(piece, 10, 0)
        _U16.pack_into(piece, 10, internet_checksum(bytes(piece)))
        pieces.append(bytes(piece) + payload[start:end])
    return pieces


def split_ipv6(packet: bytes, cuts: Iterable[int], ident: int) -> list[bytes]:
    """An IPv6 packet without extension headers cut into fragments (RFC 8200
    §4.5: each a copy of the header plus a fragment header), for tests."""
    header, payload = bytearray(packet[:IPV6_LEN]), packet[IPV6_LEN:]
    next_header = header[6]
    header[6] = EXT_FRAGMENT
    bounds = [0, *sorted(set(cuts) - {0, len(payload)}), len(payload)]
    pieces = []
    for start, end in itertools.pairwise(bounds):
        if start % 8:
            raise ValueError(f"fragment offset {start} is not a multiple of 8")
        piece = bytearray(header)
        _U16.pack_into(piece, 4, 8 + end - start)
        more = 1 if end < len(payload) else 0
        piece += _FRAGMENT_HEADER.pack(next_header, 0, start | more, ident)
        pieces.append(bytes(piece) + payload[start:end])
    return pieces
