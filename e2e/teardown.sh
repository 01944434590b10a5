#!/usr/bin/env bash
# Stops the peers that e2e/setup.sh started (Postfix, rspamd, redis). Safe to run when they are not
# running or not installed. Only processes recorded in their own pid files are signalled.
set -euo pipefail

log() { printf 'e2e/teardown: %s\n' "$*" >&2; }

# wait_gone PID SECONDS: wait for a process to exit.
wait_gone() {
	local i
	for i in $(seq 1 $(($2 * 10))); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# stop_pidfile NAME FILE COMM: SIGTERM the process in FILE, SIGKILL it after 10 s. Only if
# its command name starts with COMM: a stale pid file may name a reused pid.
stop_pidfile() {
	local pid comm
	[ -s "$2" ] || return 0
	pid="$(tr -dc '0-9' <"$2")"
	[ -n "$pid" ] || return 0
	comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
	if [ "${comm#"$3"}" = "$comm" ]; then
		[ -z "$comm" ] || log "pid file $2 names pid $pid ($comm), not $3; leaving it alone"
		rm -f "$2"
		return 0
	fi
	if kill -0 "$pid" 2>/dev/null; then
		log "stopping $1 (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_gone "$pid" 10; then
			log "$1 (pid $pid) ignored SIGTERM; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone "$pid" 5 || true
		fi
	fi
	rm -f "$2"
}

if command -v postfix >/dev/null 2>&1 && postfix status >/dev/null 2>&1; then
	log "stopping postfix"
	postfix stop >/dev/null 2>&1 || true
	stop_pidfile postfix /var/spool/postfix/pid/master.pid master
fi
stop_pidfile rspamd /run/rspamd/rspamd.pid rspamd
stop_pidfile redis /run/mailjail-e2e-redis.pid redis-server
