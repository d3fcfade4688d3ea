"""Type stub of the C loops of ``tcplab sockets`` (_diag.c); diag.py configures it."""

from collections.abc import Callable, Sequence
from typing import Any

def configure(
    sockinfo: type,
    states: tuple[Any, ...],
    timers: tuple[str, ...],
    error: type[Exception],
    netlink_error: Callable[[bytes, int, int], None],
    listen: Any,
) -> None: ...
def parse_dump(data: Any, seq: int | None = ...) -> tuple[list[Any], bool]: ...
def socket_owners(
    proc: str, process_of: Callable[[int], Any], owner: type
) -> dict[int, list[Any]]: ...
def rows_json(rows: Sequence[Any]) -> str: ...
def attach_rows(
    sockets: Sequence[Any], owner_map: dict[int, list[Any]], row: type, queue_states: Any
) -> tuple[list[Any], list[int]]: ...
def group_rows(
    rows: Sequence[Any], kept_states: Any, in_scope: Callable[[Any], bool] | None, group: type
) -> list[Any]: ...
def sort_rows(rows: list[Any], order: dict[Any, int]) -> bool: ...
