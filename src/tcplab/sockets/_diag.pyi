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
