"""External actors' printed lines land on the timeline when the program wrote them.

node-half-open's 'end' and 'close' events are printed by the seed's Node
programs; the lab reads their strace log, so each line is stamped with the time
its write(1, ...) returned, not the time the lab got round to reading the pipe.
"""

from __future__ import annotations

from tcplab.lab.external import StraceParser, _printed_notes, _strings

# strace -f -qq -ttt -s 4096 of `node -e 'console.log("event end"); console.log("event close")'`
# (Node 18 writes each console.log to a pipe with one write(2)); plus a writev.
LOG = """\
11901 1795295614.537297 write(5, "*", 1) = 1
11901 1795295614.602477 write(1, "event end\\n", 10) = 10
11901 1795295614.603467 write(1, "event close\\n", 12) = 12
11902 1795295614.604000 writev(1, [{iov_base="event data th", iov_len=13}, {iov_base="x\\n", \
iov_len=2}], 2) = 15
11901 1795295614.607356 write(13, "\\1\\0\\0\\0\\0\\0\\0\\0", 8) = 8
"""


def test_strace_string_literals_are_decoded() -> None:
    assert _strings('1, "event end\\n", 10') == ["event end\n"]
    assert _strings('1, "a\\tb\\"c\\303\\251", 7') == ['a\tb"cé']


def test_writes_to_stdout_are_kept_with_their_time() -> None:
    parser = StraceParser("server", offset=1795295000.0)
    for line in LOG.splitlines():
        parser.feed(line)
    assert [(round(t, 6), text) for t, text in parser.printed] == [
        (614.602477, "event end\n"), (614.603467, "event close\n"),
        (614.604, "event data thx\n"),
    ]  # fmt: skip
    # Nothing else became an API call: fd 1, 5 and 13 are not sockets.
    assert parser.calls == []
    arrived = [(700.0, "event end"), (700.1, "event close"), (700.2, "event data thx")]
    notes = _printed_notes("server", parser.printed, arrived)
    assert [(round(n.time, 6), n.text) for n in notes] == [
        (614.602477, "server prints: event end"), (614.603467, "server prints: event close"),
        (614.604, "server prints: event data thx"),
    ]  # fmt: skip


def test_lines_strace_did_not_show_keep_their_arrival_time() -> None:
    arrived = [(700.0, "event end"), (700.1, "event close")]
    notes = _printed_notes("client", [(1.0, "event end\n")], arrived)
    assert [(n.time, n.text) for n in notes] == [
        (700.0, "client prints: event end"), (700.1, "client prints: event close")]  # fmt: skip
