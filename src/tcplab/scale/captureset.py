"""A capture set is one capture: ``tcplab analyze FILE...`` and ``tcplab analyze DIR``.

Theory of operation.  Rotated rings (``tcpdump -C/-G -W``) and several
sensors' files are one capture cut into pieces, so the files are merged by
time into one packet stream and a connection that spans files is one
connection.  Files are numbered in the order given (a directory's regular
files by name), and every packet gets

* a frame number that says which file it came from: ``(file, frame)``,
  packed into the engine's integer frame index as ``file << 32 | frame``
  (``encode_frame``), so a single file keeps Wireshark's plain frame numbers;
* an *order key* ``(t, file, frame)`` where ``t`` is the largest timestamp
  seen so far in its file.  The capture is processed in key order.  ``t``
  is monotonic inside each file, so merging the files by key is a true
  sort, which has two consequences: inside one file the order is the file's
  own (as for a single capture, even when its timestamps step back), and
  the order restricted to any subset of the flows is that subset sorted by
  the same key.  That second property is what lets the distributed run
  (``tcplab.scale.cluster``) process flow-hash partitions independently and
  still give exactly the single-process result.

A file that is not a capture, or that breaks off, is reported as one line
(``FILE: offset N: problem``) and the rest of the set is analysed.  The
merge itself (every file through the engine's C reader, a k-way merge of
their rows by key) is ``tcplab.scale.columns.merged_rows``; when no file
has a record earlier than the files before it, the merge is a concatenation
and ``tcplab.scale.local.concatenated`` reads the files one after another.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from tcplab.errors import InputError

FRAME_BITS = 32
FRAME_MASK = (1 << FRAME_BITS) - 1

# (largest time so far in the packet's file in ns, file number, frame number in the file)
OrderKey = tuple[int, int, int]


def encode_frame(file_id: int, frame: int) -> int:
    """The engine's integer frame index for frame ``frame`` of file ``file_id``."""
    return (file_id << FRAME_BITS) | frame


def decode_frame(index: int) -> tuple[int, int]:
    """``(file number, frame number in that file)`` of an engine frame index."""
    return index >> FRAME_BITS, index & FRAME_MASK


def is_url(name: str) -> bool:
    """An fsspec URL (s3://, gs://, file://, ...), passed through to the readers."""
    return "://" in name


@dataclass(frozen=True, slots=True)
class CaptureSet:
    """The files of one capture, numbered (a file's number is its position)."""

    files: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Short names for the packets table's ``file`` column."""
        return tuple(os.path.basename(f.rstrip("/")) or f for f in self.files)

    def label(self, index: int) -> str:
        """A frame as text: ``17`` for a single file, ``ring_3.pcap:17`` in a set."""
        file_id, frame = decode_frame(index)
        if len(self.files) == 1:
            return str(frame)
        return f"{self.names[file_id]}:{frame}"


def resolve(inputs: Sequence[str], problems: list[str]) -> CaptureSet:
    """The files of ``inputs`` (files, directories, fsspec URLs).

    A directory stands for its regular files, by name (hidden files left
    out).  A path that does not exist is one line in ``problems``; when no
    file is left, ``InputError``.
    """
    files: list[str] = []
    for name in inputs:
        if is_url(name):
            files.append(name)
        elif os.path.isdir(name):
            entries = sorted(
                e.path for e in os.scandir(name) if e.is_file() and not e.name.startswith(".")
            )
            if not entries:
                problems.append(f"{name}: directory holds no files")
            files.extend(entries)
        elif os.path.exists(name):
            files.append(name)
        else:
            problems.append(f"{name}: no such file")
    if not files:
        raise InputError(problems[0] if problems else "no capture files given")
    if len(files) > 1 << 16:
        raise InputError(f"{len(files)} files: a capture set holds at most 65536")
    return CaptureSet(tuple(files))


def total_bytes(capture: CaptureSet) -> int:
    """Bytes of the set's local files (URLs count 0: no progress is shown for them)."""
    return sum(os.path.getsize(f) for f in capture.files if not is_url(f))
