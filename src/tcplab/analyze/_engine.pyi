"""Type stub of the C engine (_engine.c); tcplab.analyze.engine is its Python side."""

from typing import Any, Literal, overload

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
    def set_time_base(self, ns: int) -> None: ...
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
    @overload
    def take_lines(self) -> bytes: ...
    @overload
    def take_lines(self, with_frames: Literal[True]) -> tuple[bytes, bytes]: ...

def load_table(
    trigger_text: list[int],
    edges: list[tuple[int, int, int, int]],
    none_rfc: list[tuple[int, int, int]],
    rst: list[tuple[int, int]],
) -> None: ...
def table() -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int]]]: ...
def flow_hash(version: int, src: bytes, sport: int, dst: bytes, dport: int) -> int: ...
