"""Type stub of the C engine (_engine.c); tcplab.analyze.engine is its Python side."""

from typing import Any

FIXED_TEXTS: int

class EngineError(Exception): ...

class Engine:
    def __init__(
        self,
        server_ports: bytes = ...,
        ignore_checksums: bool = ...,
        strict_checksums: bool = ...,
        keep_packets: bool = ...,
        keep_stream: int = ...,
        shard: int = ...,
        shards: int = ...,
        marker: bytes = ...,
        evict: bool = ...,
    ) -> None: ...
    def feed(self, chunk: bytes, final: bool = ...) -> tuple[Any, ...] | None: ...
    def feed_fd(self, fd: int) -> tuple[Any, ...] | None: ...
    def packet(self, *fields: Any) -> None: ...
    def count(self, frames: int, not_tcp: int, frame_index: int) -> None: ...
    def take(
        self,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]: ...
    def finish(
        self,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]: ...
    def stats(self) -> dict[str, int]: ...
    def numbering(self) -> tuple[bytes, bytes]: ...
    def set_time_base(self, ns: int) -> None: ...
    def overview(self, page: int, worst: int, problem_mask: int) -> None: ...
    def packet_lines(
        self,
        as_json: bool,
        absolute: bool,
        host: bytes | None,
        port: int,
        flag_texts: list[str],
        states: list[str],
        analysis_names: list[str],
        order: list[int],
        dupack_bit: int,
    ) -> None: ...
    def take_lines(self) -> tuple[bytes, bytes | None] | None: ...
    def tally(
        self,
    ) -> tuple[int, int, dict[str, int], dict[str, int], tuple[int, ...]] | None: ...
    # decode-only and the batch feed (tcplab.scale.columns)
    def decode_only(
        self,
        range_end: int = ...,
        base_offset: int = ...,
        head_end: int = ...,
        index_base: int = ...,
        partitions: int = ...,
    ) -> None: ...
    def columns(self) -> tuple[bytes, int]: ...
    def write_pieces(self, fd: int) -> tuple[list[int], int]: ...
    def feed_columns(self, rows: Any, frames: Any = ...) -> None: ...

def load_table(
    trigger_text: list[int],
    edges: list[tuple[int, int, int, int]],
    none_rfc: list[tuple[int, int, int]],
    rst: list[tuple[int, int]],
) -> None: ...
def table() -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int]]]: ...
def flow_hash(version: int, src: bytes, sport: int, dst: bytes, dport: int) -> int: ...
def packet_layout() -> tuple[int, list[tuple[str, int, str, int]]]: ...
def merge_lines(parts: list[tuple[bytes, bytes]], numbers: dict[int, int], json: bool) -> bytes: ...
def split_rows(rows: Any, latest: Any, parts: int) -> list[tuple[bytes, bytes]]: ...
def resync_scan(
    buf: bytes,
    start: int,
    limit: int,
    step: int,
    eof: bool,
    pcapng: bool,
    le: bool,
    a: int,
    b: int,
    first_time: int,
    chain: int,
    max_gap: int,
    max_span: int,
) -> int: ...
