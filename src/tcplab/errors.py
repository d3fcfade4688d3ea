"""The one boundary where problems become a single line for the user.

Library code raises ``TcplabError`` (or a subclass) with a message that
already names the file, the byte offset and what was wrong; the CLI prints
``tcplab: <message>`` and exits non-zero.  No traceback ever reaches a user.
"""

from __future__ import annotations


class TcplabError(Exception):
    """A problem the user can act on; ``str(err)`` is the whole message."""

    exit_code: int = 1


class InputError(TcplabError):
    """Bad input: a file that is not a capture, a malformed scenario, ..."""

    exit_code = 2


class PrivilegeError(TcplabError):
    """Something needs root (or a capability) that this process lacks."""

    exit_code = 77
