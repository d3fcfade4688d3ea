"""The one exception the codecs raise.

A ``WireError`` is an *integrity* problem in the bytes (a length that runs
past the packet, a header length below the minimum): the record cannot be
decoded at all.  Problems a decoded record can carry (a malformed TCP
option, a bad checksum) are data on the record instead, so one odd packet
never stops the analysis of a capture.

It is an ``InputError`` too, so if one escapes to the CLI the user sees one
line, not a traceback; the capture layer prefixes the file and record.
"""

from __future__ import annotations

from tcplab.errors import InputError


class WireError(InputError, ValueError):
    """``str(err)`` is ``"offset 34: TCP data offset 3 < 5"``.

    ``offset`` is the byte offset inside the frame (or inside the buffer
    handed to a ``parse``) where the bad field or the missing bytes are.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"offset {offset}: {message}")
        self.message = message
        self.offset = offset
