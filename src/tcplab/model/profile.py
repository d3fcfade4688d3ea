"""Profiles: the numbers and choices that make the model behave like the RFC or like Linux.

A profile is data.  ``RFC`` takes every value from the RFCs (RFC 9293,
RFC 1122, RFC 6298); ``LINUX`` takes them from the kernel tcplab is tested on
(shared/KERNEL-NOTES.md, each observed there).  ``PARAMETERS`` says what each
field means and where each profile's value comes from; ``difference_table``
renders the table in docs/model.md from it, so the docs cannot drift.

Two switches exist only for counterfactuals (``tcplab sim why-*``):
``time_wait = False`` (TIME-WAIT lasts zero seconds) and
``two_way_handshake = True`` (a listener trusts a bare SYN).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from tcplab.errors import InputError
from tcplab.model.fastopen import parse_key


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    msl: float  # seconds; TIME-WAIT lasts time_wait_seconds
    time_wait_seconds: float
    fin_wait_2_timeout: float | None  # orphaned FIN-WAIT-2 lifetime; None: forever
    syn_retries: int
    syn_linear_timeouts: int  # the first this many SYN retries keep the initial RTO
    synack_retries: int
    retries2: int  # data/FIN retransmissions before ETIMEDOUT
    rto_initial: float
    rto_min: float
    rto_max: float
    rto_min_added: bool  # Linux: RTO = SRTT + max(rto_min, 4*RTTVAR); RFC: max(rto_min, ...)
    delayed_ack: float  # the delayed-ACK timer
    delayed_ack_before_data: float  # the same before any data arrived (Linux: ato is 0)
    quickack_segments: int  # data segments ACKed at once at the start of a connection
    pingpong_threshold: int | None  # interactive mode after this many quick replies; None: off
    ack_every_full_segments: int  # ACK at once when more than (this - 1) full segments' bytes wait
    delay_ack_of_fin: bool  # Linux enters pingpong mode on FIN: its ACK is delayed
    rst_carries_ack: bool  # "R." (Linux) or "R" (RFC 9293 §3.10.5 <SEQ=SND.NXT><CTL=RST>)
    rst_on_close_with_unread: bool
    shut_rd_discards: bool  # data arriving after shutdown(SHUT_RD) is thrown away
    keepalive_idle: float
    keepalive_interval: float
    keepalive_probes: int
    keepalive_reset: bool  # send RST when keepalive gives up
    mss: int
    window: int  # receive window advertised (bytes)
    wscale: int | None  # window scale offered in SYN; None: option not sent
    sack_ok: bool
    timestamps: bool  # RFC 7323 timestamps offered
    backlog_overflow_drops: bool  # a full accept queue drops SYNs and final ACKs (Linux)
    oow_ack_interval: float  # at most one ACK per this many seconds answers bad segments
    reuseaddr_needs_both: bool  # bind() over TIME-WAIT: the old socket needs SO_REUSEADDR too
    syn_reopens_time_wait: bool  # a new SYN may reopen a connection in TIME-WAIT
    fastopen: int = 0  # net.ipv4.tcp_fastopen bits (tcplab.model.fastopen); 0: no Fast Open
    # net.ipv4.tcp_fastopen_key; Linux picks a random one per namespace, the model's is fixed.
    fastopen_key: str = "00000000-00000000-00000000-00000000"
    time_wait: bool = True  # counterfactual switch
    two_way_handshake: bool = False  # counterfactual switch

    def with_options(self, options: dict[str, Any], where: str = "profile") -> Profile:
        """This profile with some fields changed (``time_wait=False``...)."""
        names = {f.name for f in fields(self)}
        for key in options:
            if key not in names or key == "name":
                raise InputError(f"{where}: unknown model option {key!r} "
                                 f"(known: {', '.join(sorted(names - {'name'}))})")
        changed = replace(self, **options)
        if not changed.time_wait:
            changed = replace(changed, time_wait_seconds=0.0)
        return changed

    def with_sysctls(self, sysctls: dict[str, str], where: str = "sysctl") -> Profile:
        """Apply the scenario's per-host sysctls that the model knows."""
        options: dict[str, Any] = {}
        for key, raw in sysctls.items():
            target = SYSCTLS.get(key)
            if target is None:
                continue  # the model has no such knob (somaxconn, tw_reuse...): ignore
            field_name, convert = target
            try:
                options[field_name] = convert(raw)
            except ValueError:
                raise InputError(f"{where}: {key} = {raw!r} is not a number") from None
        return replace(self, **options) if options else self


def _seconds_from_us(text: str) -> float:
    return int(text) / 1_000_000


def _integer(text: str) -> int:
    return int(text, 0)  # tcp_fastopen is often written in hex: 0x403


def _fastopen_key(text: str) -> str:
    parse_key(text)  # refuse a key Linux would refuse, at load time
    return text


# sysctl name -> (profile field, converter); the sysctl's meaning is the field's.
SYSCTLS: dict[str, tuple[str, Any]] = {
    "net.ipv4.tcp_fin_timeout": ("fin_wait_2_timeout", float),
    "net.ipv4.tcp_syn_retries": ("syn_retries", int),
    "net.ipv4.tcp_synack_retries": ("synack_retries", int),
    "net.ipv4.tcp_syn_linear_timeouts": ("syn_linear_timeouts", int),
    "net.ipv4.tcp_retries2": ("retries2", int),
    "net.ipv4.tcp_rto_min_us": ("rto_min", _seconds_from_us),
    "net.ipv4.tcp_keepalive_time": ("keepalive_idle", float),
    "net.ipv4.tcp_keepalive_intvl": ("keepalive_interval", float),
    "net.ipv4.tcp_keepalive_probes": ("keepalive_probes", int),
    "net.ipv4.tcp_fastopen": ("fastopen", _integer),
    "net.ipv4.tcp_fastopen_key": ("fastopen_key", _fastopen_key),
}


RFC = Profile(
    name="rfc",
    msl=120.0,
    time_wait_seconds=240.0,
    fin_wait_2_timeout=None,
    syn_retries=7,
    syn_linear_timeouts=0,
    synack_retries=7,
    retries2=15,
    rto_initial=1.0,
    rto_min=1.0,
    rto_max=60.0,
    rto_min_added=False,
    delayed_ack=0.2,
    delayed_ack_before_data=0.2,
    quickack_segments=0,
    pingpong_threshold=None,
    ack_every_full_segments=2,
    delay_ack_of_fin=False,
    rst_carries_ack=False,
    rst_on_close_with_unread=True,
    shut_rd_discards=True,
    keepalive_idle=7200.0,
    keepalive_interval=75.0,
    keepalive_probes=9,
    keepalive_reset=False,
    mss=1460,
    window=65535,
    wscale=None,
    sack_ok=False,
    timestamps=False,
    backlog_overflow_drops=False,
    oow_ack_interval=0.5,
    # RFC 9293 has no bind() or SO_REUSEADDR; the rfc profile takes the BSD sockets
    # rule (4.4BSD in_pcbbind, Stevens UNP §7.5): SO_REUSEADDR on the new socket alone.
    reuseaddr_needs_both=False,
    # RFC 9293 §3.6 MAY-2 is optional; the rfc profile keeps to §3.10.7.4 fourth
    # (RFC 5961 §4): a SYN in TIME-WAIT gets a challenge ACK.
    syn_reopens_time_wait=False,
)

LINUX = Profile(
    name="linux",
    msl=30.0,
    time_wait_seconds=60.0,
    fin_wait_2_timeout=60.0,
    syn_retries=6,
    syn_linear_timeouts=4,
    synack_retries=5,
    retries2=15,
    rto_initial=1.0,
    rto_min=0.2,
    rto_max=120.0,
    rto_min_added=True,
    delayed_ack=0.04,
    delayed_ack_before_data=0.004,
    quickack_segments=16,
    pingpong_threshold=1,
    ack_every_full_segments=2,
    delay_ack_of_fin=True,
    rst_carries_ack=True,
    rst_on_close_with_unread=True,
    shut_rd_discards=False,
    keepalive_idle=7200.0,
    keepalive_interval=75.0,
    keepalive_probes=9,
    keepalive_reset=True,
    mss=1460,
    window=64240,
    wscale=7,
    sack_ok=True,
    timestamps=True,
    backlog_overflow_drops=True,
    oow_ack_interval=0.5,
    reuseaddr_needs_both=True,
    syn_reopens_time_wait=True,
    fastopen=1,  # the kernel default: client side on, server side off
)

PROFILES: dict[str, Profile] = {"linux": LINUX, "rfc": RFC}


def get(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})") from None


# field -> (meaning, where the rfc value comes from, where the linux value comes from)
PARAMETERS: dict[str, tuple[str, str, str]] = {
    "time_wait_seconds": ("how long TIME-WAIT lasts", "2*MSL, MSL = 2 min (RFC 9293 §3.4.2)",
                          "TCP_TIMEWAIT_LEN, fixed 60 s"),
    "msl": ("maximum segment lifetime (s)", "RFC 9293 §3.4.2", "half of TCP_TIMEWAIT_LEN"),
    "fin_wait_2_timeout": ("an orphaned FIN-WAIT-2 is dropped after", "no timer in RFC 9293",
                           "net.ipv4.tcp_fin_timeout"),
    "syn_retries": ("SYN retransmissions before ETIMEDOUT", "RFC 1122 §4.2.3.5: >= 3 min",
                    "net.ipv4.tcp_syn_retries"),
    "syn_linear_timeouts": ("SYN retries that keep the initial RTO (no doubling)",
                            "RFC 6298 (5.5): always double", "net.ipv4.tcp_syn_linear_timeouts"),
    "synack_retries": ("SYN-ACK retransmissions", "RFC 1122 §4.2.3.5",
                       "net.ipv4.tcp_synack_retries"),
    "retries2": ("retransmissions of data/FIN before ETIMEDOUT", "RFC 1122 §4.2.3.5 R2",
                 "net.ipv4.tcp_retries2"),
    "rto_initial": ("initial RTO (s)", "RFC 6298 (2.1)", "TCP_TIMEOUT_INIT"),
    "rto_min": ("minimum RTO (s)", "RFC 6298 (2.4)", "TCP_RTO_MIN / tcp_rto_min_us"),
    "rto_max": ("maximum RTO (s)", "RFC 6298 (2.5)", "TCP_RTO_MAX"),
    "rto_min_added": ("RTO = SRTT + max(rto_min, 4*RTTVAR) instead of max(rto_min, SRTT+4*RTTVAR)",
                      "RFC 6298 (2.3)", "tcp_set_rto: ~205 ms seen on a fast link"),
    "delayed_ack": ("delayed-ACK timer (s)", "RFC 9293 §3.8.6.3: < 0.5 s", "TCP_DELACK_MIN 40 ms"),
    "delayed_ack_before_data": ("delayed-ACK timer while no data has arrived yet (s)",
                                "RFC 9293 §3.8.6.3", "ato 0: the next timer tick (1-10 ms seen)"),
    "quickack_segments": ("data segments ACKed at once after the handshake", "none",
                          "TCP_MAX_QUICKACKS (quick-ack mode)"),
    "pingpong_threshold": ("replies sent within the delayed-ACK time before ACKs are delayed"
                           " (interactive mode)", "none", "net.ipv4.tcp_pingpong_thresh"),
    "ack_every_full_segments": ("ACK at once when more data than this many full-sized"
                                " segments less one is unACKed",
                                "RFC 9293 §3.8.6.3", "__tcp_ack_snd_check"),
    "delay_ack_of_fin": ("the ACK of a FIN waits for the delayed-ACK timer",
                         "RFC 9293 §3.10.7.4: ACK the FIN", "tcp_fin enters pingpong mode"),
    "rst_carries_ack": ("a reset sent by close/abort has ACK set (R.)",
                        "RFC 9293 §3.10.5 <SEQ=SND.NXT><CTL=RST>", "tcp_send_active_reset"),
    "rst_on_close_with_unread": ("close() with unread data sends RST", "RFC 9293 §3.6 SHLD-3",
                                 "TCP_ABORT_ON_CLOSE"),
    "shut_rd_discards": ("data arriving after shutdown(SHUT_RD) is discarded",
                         "no SHUT_RD in RFC 9293; 4.4BSD discards", "kept, ACKed and readable"),
    "keepalive_idle": ("keepalive idle time (s)", "RFC 1122 §4.2.3.6: >= 2 h",
                       "net.ipv4.tcp_keepalive_time"),
    "keepalive_interval": ("between keepalive probes (s)", "RFC 1122 §4.2.3.6",
                           "net.ipv4.tcp_keepalive_intvl"),
    "keepalive_probes": ("unanswered probes before ETIMEDOUT", "RFC 1122 §4.2.3.6",
                         "net.ipv4.tcp_keepalive_probes"),
    "keepalive_reset": ("send RST when keepalive gives up", "RFC 1122 §4.2.3.6: not said",
                        "tcp_keepalive_timer"),
    "mss": ("MSS offered in SYN", "RFC 9293 §3.7.1", "1500-byte MTU link"),
    "window": ("receive window advertised (bytes)", "65535 without scaling", "64240 (44*MSS)"),
    "wscale": ("window scale offered", "RFC 7323 optional", "7"),
    "sack_ok": ("SACK-permitted offered", "RFC 2018 optional", "net.ipv4.tcp_sack"),
    "timestamps": ("timestamps offered (12 bytes of every segment)", "RFC 7323 optional",
                   "net.ipv4.tcp_timestamps"),
    "oow_ack_interval": ("at most one ACK per interval answers out-of-window segments",
                         "RFC 5961 §7 (rate-limit challenge ACKs)",
                         "net.ipv4.tcp_invalid_ratelimit 500 ms"),
    "backlog_overflow_drops": ("a full accept queue drops SYNs and final ACKs",
                               "not specified", "listen overflow"),
    "reuseaddr_needs_both": ("bind() to a port held only by TIME-WAIT needs SO_REUSEADDR on the"
                             " old socket too, not just the new one",
                             "no bind() in RFC 9293; BSD sockets: the new socket's flag",
                             "inet_csk_bind_conflict: the TIME-WAIT socket inherits sk_reuse"),
    "syn_reopens_time_wait": ("a SYN newer than the TIME-WAIT connection (SEG.SEQ > RCV.NXT or"
                              " a newer TSval) ends TIME-WAIT and opens a new connection",
                              "RFC 9293 §3.6 MAY-2 not taken: challenge ACK (RFC 5961 §4)",
                              "tcp_timewait_state_process: TCP_TW_SYN"),
    "fastopen": ("TCP Fast Open bits: 1 client, 2 server, 4 client without cookie, 0x200"
                 " server without cookie, 0x400 every listener (RFC 7413)",
                 "RFC 7413 is experimental, optional: off",
                 "net.ipv4.tcp_fastopen, default 1"),
    "fastopen_key": ("the server's cookie key (SipHash-2-4 of the addresses)",
                     "RFC 7413 §4.1.2: any secret", "net.ipv4.tcp_fastopen_key (random per netns)"),
}


def difference_table(a: Profile = RFC, b: Profile = LINUX) -> str:
    """Markdown: every parameter, both values, where each comes from; differences first."""

    def show(value: object) -> str:
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    rows_diff: list[str] = []
    rows_same: list[str] = []
    for name, (meaning, rfc_src, linux_src) in PARAMETERS.items():
        va, vb = getattr(a, name), getattr(b, name)
        row = (f"| `{name}` | {meaning} | {show(va)} ({rfc_src}) | {show(vb)} ({linux_src}) |")
        (rows_diff if va != vb else rows_same).append(row)
    head = [
        f"| parameter | meaning | {a.name} | {b.name} |",
        "|---|---|---|---|",
    ]
    return "\n".join([*head, *rows_diff, *rows_same]) + "\n"
