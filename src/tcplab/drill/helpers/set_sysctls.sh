#!/bin/sh
# tcplab drill's stand-in for packetdrill's common/set_sysctls.py (absent from
# the corpus): "set_sysctls.sh /proc/sys/net/ipv4/tcp_timestamps=0 ...".
# Each PATH=VALUE is written after its old value is saved to
# $TCPLAB_DRILL_TMP/sysctl_restore.sh (what a script's
# `/tmp/sysctl_restore_${PPID}.sh` line runs).  It runs inside the drill's own
# network namespace, and only /proc/sys/net/ files (per namespace) are written.
set -e
restore="${TCPLAB_DRILL_TMP:?}/sysctl_restore.sh"
for arg in "$@"; do
    path="${arg%%=*}"
    value="${arg#*=}"
    case "$path" in
        /proc/sys/net/*) ;;
        *) echo "set_sysctls: $path: only /proc/sys/net/ (per network namespace)" >&2; exit 1 ;;
    esac
    case "$path" in *..*) echo "set_sysctls: $path: no .. in paths" >&2; exit 1 ;; esac
    old="$(cat "$path")"
    printf 'echo "%s" > %s\n' "$old" "$path" >> "$restore"
    echo "$value" > "$path"
done
