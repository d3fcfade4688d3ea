"""Timers as data (STYLE.md rule 2): one small record per running timer.

A connection keeps at most one ``Timer`` per ``TimerKind``; its
``next_deadline()`` is the earliest expiry, and the caller calls
``handle_timers(now)`` when that moment comes.  The model never sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class TimerKind(Enum):
    RETRANSMIT = "retransmit"  # RFC 6298; also SYN and SYN-ACK retries (RFC 1122 §4.2.3.5)
    DELAYED_ACK = "delayed-ack"  # RFC 9293 §3.8.6.3
    KEEPALIVE = "keepalive"  # RFC 1122 §4.2.3.6
    FIN_WAIT_2 = "fin-wait-2"  # Linux tcp_fin_timeout for orphaned sockets
    TIME_WAIT = "time-wait"  # RFC 9293 §3.10.8: 2*MSL


@dataclass(frozen=True, slots=True)
class Timer:
    kind: TimerKind
    expires: float
