#!/usr/bin/env bash
# Installs and starts the real peers of the mailjail end-to-end suite on loopback only:
# redis-server, rspamd (proxy worker in milter mode, ratelimit + multimap) and Postfix (XCLIENT test
# clients, milter to rspamd, logging to a file). Runs as root. Idempotent: a second run rewrites the
# configuration and restarts whatever this script started before.
#
# Environment:
#   MAILJAIL_E2E_MAP    map file that the multimap rule IP_BLACKLIST_RATELIMIT reads
#                       (default /var/lib/mailjail-e2e/ip_blacklist_ratelimit.map); the rule
#                       MAILJAIL_ACCOUNT_SUSPENDED (type "user") reads accounts.map beside it
#   MAILJAIL_E2E_SKIP_INSTALL=1   do not run apt-get even if a package is missing
set -euo pipefail

MAP_FILE="${MAILJAIL_E2E_MAP:-/var/lib/mailjail-e2e/ip_blacklist_ratelimit.map}"
MAP_DIR="$(dirname "$MAP_FILE")"
ACCOUNT_MAP_FILE="$MAP_DIR/accounts.map"
RSPAMD_LOG=/var/log/rspamd/rspamd.log
MAIL_LOG=/var/log/mail.log
PACKAGES=(rspamd redis-server postfix swaks)
# nftables target (issue 13): nft, and ip for the network namespaces its tests create.
PACKAGES+=(nftables iproute2)
# promtool (issue 15): the metrics exposition is checked with it (installs in ~8 s).
PACKAGES+=(prometheus)

start_ts=$(date +%s.%N)
elapsed() { awk -v s="$start_ts" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f s", e-s}'; }
log() { printf 'e2e/setup: [%s] %s\n' "$(elapsed)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# --- packages -------------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	[ "${MAILJAIL_E2E_SKIP_INSTALL:-0}" = 1 ] && die "missing packages: ${missing[*]}"
	log "installing ${missing[*]}"
	# Postfix asks two debconf questions; answer them before it is unpacked.
	debconf-set-selections <<-'EOF'
		postfix postfix/main_mailer_type select Local only
		postfix postfix/mailname string mailjail-e2e.localdomain
	EOF
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
	log "packages installed"
fi

# --- stop what an earlier run started (idempotence) -----------------------------------------------
bash "$here/teardown.sh"

# --- map file the test controls -------------------------------------------------------------------
install -d -m 0755 "$MAP_DIR"
for f in "$MAP_FILE" "$ACCOUNT_MAP_FILE"; do
	[ -f "$f" ] || install -m 0644 /dev/null "$f"
	chmod 0644 "$f"
done

log "configuring and starting services"
# --- redis ----------------------------------------------------------------------------------------
# Every daemon is started with stdin/stdout/stderr off the caller's: a daemon that keeps a pipe
# open would hang whoever reads this script's output (`setup.sh | tee`, make, CI) forever.
START_LOG=/var/log/mailjail-e2e-start.log
: >"$START_LOG"
# run_detached CMD...: run a command that daemonizes, its output into $START_LOG.
run_detached() {
	printf '\n$ %s\n' "$*" >>"$START_LOG"
	if ! "$@" </dev/null >>"$START_LOG" 2>&1; then
		cat "$START_LOG" >&2
		die "$1 failed to start"
	fi
}
run_detached redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
	--pidfile /run/mailjail-e2e-redis.pid --logfile /var/log/mailjail-e2e-redis.log

# --- rspamd ---------------------------------------------------------------------------------------
L=/etc/rspamd/local.d
install -d -m 0755 "$L"
cat >"$L/redis.conf" <<'EOF'
# mailjail e2e: ratelimit keeps its buckets here.
servers = "127.0.0.1:6379";
EOF
cat >"$L/options.inc" <<'EOF'
# mailjail e2e: there is no DNS in CI. Point the resolver at a closed loopback port so every lookup
# (RBLs, SPF, DKIM, ...) fails at once instead of timing out per message.
dns {
  nameserver = ["127.0.0.1:5399"];
  timeout = 0.1s;
  retransmits = 1;
}
EOF
cat >"$L/greylist.conf" <<'EOF'
enabled = false;
EOF
cat >"$L/logging.inc" <<EOF
type = "file";
filename = "$RSPAMD_LOG";
level = "info";
EOF
cat >"$L/worker-proxy.inc" <<'EOF'
# mailjail e2e: Postfix talks milter to this worker, which scans the message itself.
milter = yes;
bind_socket = "127.0.0.1:11332";
timeout = 120s;
upstream "local" {
  default = yes;
  self_scan = yes;
}
EOF
cat >"$L/worker-normal.inc" <<'EOF'
bind_socket = "127.0.0.1:11333";
EOF
cat >"$L/worker-controller.inc" <<'EOF'
bind_socket = "127.0.0.1:11334";
EOF
cat >"$L/worker-fuzzy.inc" <<'EOF'
count = -1;
EOF
cat >"$L/ratelimit.conf" <<'EOF'
# mailjail e2e: a small burst so a test client is limited after a few messages.
# allow_local is needed: without it loopback and XCLIENT-from-loopback mail is never limited.
allow_local = true;
rates {
  ip = {
    burst = 3;
    rate = "1 / 1min";
  }
  user = {
    burst = 5;
    rate = "1 / 1min";
  }
}
EOF
cat >"$L/multimap.conf" <<EOF
# mailjail e2e: the map mailjail rewrites.
IP_BLACKLIST_RATELIMIT {
  type = "ip";
  map = "$MAP_FILE";
  action = "reject";
  description = "Banned by mailjail after repeated ratelimit events";
}
MAILJAIL_ACCOUNT_SUSPENDED {
  type = "user";
  map = "$ACCOUNT_MAP_FILE";
  action = "reject";
  message = "account suspended";
  description = "Account suspended by mailjail";
}
EOF
# --- rspamd-redis target (issue 13): the hashes mailjail's rspamd-redis target writes, read by
# rspamd with no map file from the redis.conf servers above. Keys are the default key_prefix
# "mailjail_" + [rspamd_redis] bans/accounts.
cat >>"$L/multimap.conf" <<'EOF'
MAILJAIL_BANS_REDIS {
  type = "ip";
  map = "redis://mailjail_bans";
  action = "reject";
  message = "banned by mailjail (redis)";
}
MAILJAIL_ACCOUNTS_REDIS {
  type = "user";
  map = "redis://mailjail_accounts";
  action = "reject";
  message = "account suspended (redis)";
}
EOF
# --- end of the rspamd-redis block
cat >"$L/actions.conf" <<'EOF'
# mailjail e2e: test mail is never rejected or greylisted for its score; only ratelimit (soft
# reject) and the multimap rule (reject) decide, so replies do not depend on scoring details.
reject = 1000;
add_header = 999;
rewrite_subject = null;
greylist = null;
EOF
# Modules that only cost time here: without DNS each lookup waits for its timeout, and a passing
# message would wait for several in a row (asn, spf, dkim, dmarc, rdns, hfilter, RBLs).
for m in asn spf dkim dmarc arc hfilter once_received rbl surbl emails fuzzy_check neural \
	phishing url_redirector replies spamassassin mx_check whitelist reputation; do
	printf 'enabled = false;\n' >"$L/$m.conf"
done

install -d -o _rspamd -g _rspamd -m 0755 /var/log/rspamd /run/rspamd /var/lib/rspamd
rspamadm configtest >/dev/null 2>&1 || { rspamadm configtest >&2 || true; die "rspamadm configtest failed"; }
log "starting rspamd"
run_detached rspamd -u _rspamd -g _rspamd

# --- postfix --------------------------------------------------------------------------------------
touch "$MAIL_LOG"
postconf -e \
	'myhostname = mailjail-e2e.localdomain' \
	'mydestination = $myhostname, localhost.localdomain, localhost' \
	'inet_interfaces = loopback-only' \
	'inet_protocols = all' \
	'mynetworks = 127.0.0.0/8 [::1]/128' \
	'smtpd_authorized_xclient_hosts = 127.0.0.0/8, [::1]/128' \
	'smtpd_milters = inet:127.0.0.1:11332' \
	'non_smtpd_milters =' \
	'milter_protocol = 6' \
	'milter_default_action = accept' \
	'local_recipient_maps =' \
	'local_transport = discard:mailjail-e2e' \
	'relayhost =' \
	'smtp_dns_support_level = disabled' \
	'smtpd_peername_lookup = no' \
	"maillog_file = $MAIL_LOG" \
	'maillog_file_prefixes = /var, /dev/stdout'
# --- mailjail postfix target (issue 13) -------------------------------------------------------------
# The access table the postfix target writes (e2e/target_postfix_test.go): smtpd asks it about every
# client (at RCPT, as smtpd_delay_reject = yes). It starts empty, and an empty table rejects nothing,
# so the other tests are not affected; postmap builds the .db that Postfix needs to start.
POSTFIX_ACCESS="$MAP_DIR/postfix_access"
install -m 0644 /dev/null "$POSTFIX_ACCESS"
postmap "hash:$POSTFIX_ACCESS"
postconf -e "smtpd_client_restrictions = check_client_access hash:$POSTFIX_ACCESS"
# --- end of the postfix target block ----------------------------------------------------------------
# --- alert mailboxes (issue 14, e2e/alerts_test.go) -------------------------------------------------
# Alerts are delivered for real: the virtual mailbox domain alerts.mailjail-e2e.test is delivered by
# virtual(8) into Maildirs under /var/mail/mailjail-e2e/ (owned by the system user mailjail-e2e-mail),
# while every other test domain is still discarded by local_transport. The tests mail
# postmaster@alerts.mailjail-e2e.test, as README "Alerts through the local Postfix and rspamd"
# advises: rspamd's ratelimit skips mail to postmaster (whitelisted_rcpts' default), so alerts from
# 127.0.0.1 are not counted in its `ip` bucket (burst 3 above), which would answer 451.
ALERT_DOMAIN=alerts.mailjail-e2e.test
ALERT_BASE=/var/mail/mailjail-e2e
ALERT_MAILBOXES=/etc/postfix/mailjail-e2e-mailboxes
id -u mailjail-e2e-mail >/dev/null 2>&1 ||
	useradd --system --no-create-home --home-dir "$ALERT_BASE" --shell /usr/sbin/nologin mailjail-e2e-mail
alert_uid=$(id -u mailjail-e2e-mail)
alert_gid=$(id -g mailjail-e2e-mail)
install -d -o "$alert_uid" -g "$alert_gid" -m 0750 "$ALERT_BASE" "$ALERT_BASE/$ALERT_DOMAIN"
cat >"$ALERT_MAILBOXES" <<EOF
postmaster@$ALERT_DOMAIN $ALERT_DOMAIN/postmaster/
admin@$ALERT_DOMAIN $ALERT_DOMAIN/admin/
EOF
postmap "hash:$ALERT_MAILBOXES"
postconf -e \
	"virtual_mailbox_domains = $ALERT_DOMAIN" \
	"virtual_mailbox_base = $ALERT_BASE" \
	"virtual_mailbox_maps = hash:$ALERT_MAILBOXES" \
	"virtual_uid_maps = static:$alert_uid" \
	"virtual_gid_maps = static:$alert_gid" \
	'virtual_transport = virtual'
# --- end of the alert mailboxes block ---------------------------------------------------------------
# maillog_file needs the postlogd service; Debian's master.cf may not enable it.
if ! postconf -M postlog/unix-dgram >/dev/null 2>&1 || [ -z "$(postconf -M postlog/unix-dgram)" ]; then
	postconf -M postlog/unix-dgram='postlog unix-dgram n - n - 1 postlogd'
fi
# Not chrooted: nothing copies /etc files into the chroot when postfix is started by hand.
postconf -F '*/*/chroot = n'
postfix check || die "postfix check failed"
log "starting postfix"
run_detached postfix start

# --- wait for the ports ---------------------------------------------------------------------------
wait_port() { # host port name
	local i
	for i in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	cat "$START_LOG" >&2
	die "$3 does not answer on $1:$2 after 30 s"
}
wait_port 127.0.0.1 6379 redis
wait_port 127.0.0.1 11332 "rspamd proxy"
wait_port 127.0.0.1 25 postfix
# Smoke test of the whole chain: a message through Postfix must be scanned by rspamd (with
# milter_default_action = accept, Postfix would accept it even if the milter were broken).
smoke_id="smoke-$$-$(date +%s%N)@mailjail-e2e"
# The reply may be 250 or 451 (127.0.0.1 has a ratelimit bucket too); rspamd's line is the proof.
smoke_out=/var/log/mailjail-e2e-smoke.txt
swaks --server 127.0.0.1 --port 25 --from smoke@example.org --to e2e@localhost \
	--header "Message-Id: <$smoke_id>" </dev/null >"$smoke_out" 2>&1 || true
for i in $(seq 1 100); do
	grep -q "rspamd_task_write_log: id: <$smoke_id>" "$RSPAMD_LOG" && break
	if [ "$i" -eq 100 ]; then
		cat "$smoke_out" >&2
		die "rspamd did not log the smoke message <$smoke_id> (milter or Postfix broken?)"
	fi
	sleep 0.1
done

log "ready: rspamd $(rspamd --version 2>/dev/null | head -1 | tr -dc '0-9.' || true)," \
	"postfix $(postconf -h mail_version), redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')" \
	"(map $MAP_FILE, rspamd log $RSPAMD_LOG, mail log $MAIL_LOG)"
