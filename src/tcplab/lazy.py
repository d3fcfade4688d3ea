"""Package names that load their module on first use (PEP 562).

A command pays only for what it touches: ``tcplab analyze`` on a plain
capture never needs ``tcplab.wire``'s decoders or ``tcplab.capture``'s
Python reader, which its engine replaces, yet both packages re-export them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each name in ``where`` comes
    from the submodule ``where[name]``, imported the first time it is asked for."""
    namespace = vars(import_module(package))

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{module}"), name)
        namespace[name] = value  # later lookups are plain attribute reads
        return value

    return __getattr__
