"""Which ``tcplab sockets`` command lines run without click (``tcplab.entry``).

A module of its own, outside ``tcplab.sockets`` (whose package imports the
sock_diag reader: every command would pay for it), with no side effects, so
the parsing can be imported and tested in-process (``tcplab.entry``
installs signal handlers as it is imported).
"""

from __future__ import annotations

# `tcplab sockets` with these flags and nothing else runs without click: its
# import was a sixth of `tcplab sockets --json -a` on a 20,000-socket table,
# which is held to 1.5x `ss -tanp` (issue 15).  Anything else (a value, a
# combined `-al`, --help, a typo) goes through click as before.
SOCKETS_FLAGS: dict[str, str] = {
    "-a": "all_",
    "--all": "all_",
    "-l": "listening",
    "--listening": "listening",
    "--json": "as_json",
    "--no-processes": "no_processes",
}


def plain_sockets_flags(argv: list[str]) -> dict[str, bool] | None:
    """``{"all_": True, ...}`` for ``sockets`` and plain flags only, else None."""
    if not argv or argv[0] != "sockets":
        return None
    flags = {name: False for name in SOCKETS_FLAGS.values()}
    for arg in argv[1:]:
        if arg not in SOCKETS_FLAGS:
            return None
        flags[SOCKETS_FLAGS[arg]] = True
    return flags
