#!/usr/bin/env bash
# Makes a systemd journal available for the watcher's journal tests on a host (or container)
# without systemd as init: installs Debian's systemd package if journalctl is missing, and starts
# systemd-journald if nothing answers on its socket. Idempotent: a second run finds journald up
# and does nothing. On a host where systemd runs, journald is already up and nothing is done.
#
# The journald started here stays running (like a service) with its output off the caller's
# pipes, so `make test | tee` and CI do not hang on it.
#
# Environment:
#   MAILJAIL_JOURNAL_SKIP_INSTALL=1   do not run apt-get even if systemd is missing
set -euo pipefail

SOCKET=/run/systemd/journal/socket
JOURNALD=/lib/systemd/systemd-journald

log() { printf 'watcher/journal_setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# journald_up: something receives datagrams on the socket. A socket file left by a dead journald
# refuses the connection; a connect is the only honest test. systemd-cat needs the socket too,
# but it would write an entry each time.
journald_up() {
	[ -S "$SOCKET" ] || return 1
	if command -v python3 >/dev/null 2>&1; then
		python3 - "$SOCKET" <<-'EOF' 2>/dev/null
			import socket, sys
			s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
			s.connect(sys.argv[1])
		EOF
		return
	fi
	pidof systemd-journald >/dev/null 2>&1
}

if ! command -v journalctl >/dev/null 2>&1 || ! command -v systemd-cat >/dev/null 2>&1 || [ ! -x "$JOURNALD" ]; then
	[ "${MAILJAIL_JOURNAL_SKIP_INSTALL:-0}" = 1 ] && die "systemd (journalctl, systemd-cat, $JOURNALD) is not installed"
	[ "$(id -u)" -eq 0 ] || die "systemd is not installed and installing it needs root"
	log "installing systemd"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends systemd
fi

if journald_up; then
	log "journald is running"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "systemd-journald is not running and starting it needs root"
install -d -m 0755 /run/systemd/journal
setsid "$JOURNALD" </dev/null >/dev/null 2>&1 &
log "started $JOURNALD (pid $!)"

for _ in $(seq 200); do
	journald_up && { log "journald is running"; exit 0; }
	sleep 0.05
done
die "started $JOURNALD but $SOCKET does not answer"
