#!/bin/bash
# CI check of the Debian package, run as root on a Debian 12 machine (or
# container): builds it (make deb), installs it with dpkg -i, checks the
# installed files, renders both man pages, verifies the installed unit and
# its security score (at most 3.0, "OK"), then purges it and checks what
# remains. Without systemd as PID 1 the postinst starts nothing, which is
# checked too. Leaves the machine as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."
max_score=3.0
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }

need=()
command -v man >/dev/null || need+=(man-db)
command -v systemd-analyze >/dev/null || need+=(systemd)
if ((${#need[@]})); then
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
dpkg -s mailjail >/dev/null 2>&1 && fail "mailjail is already installed here; this check would remove it"

maps=/etc/rspamd/local.d/maps
maps_existed=no
[ -d "$maps" ] && maps_existed=yes

make deb
deb=$(ls -t dist/mailjail_*_amd64.deb | head -1)
echo "check-deb: installing $deb"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"
cleanup_on_exit() { dpkg -s mailjail >/dev/null 2>&1 && dpkg --purge mailjail >/dev/null 2>&1 || true; }
trap cleanup_on_exit EXIT

for f in /usr/sbin/mailjail /lib/systemd/system/mailjail.service /etc/mailjail/mailjail.toml \
	/usr/share/man/man1/mailjail.1.gz /usr/share/man/man5/mailjail.toml.5.gz \
	/usr/share/bash-completion/completions/mailjail /usr/share/zsh/vendor-completions/_mailjail \
	/usr/share/fish/vendor_completions.d/mailjail.fish \
	/usr/share/doc/mailjail/examples/rspamd/multimap.conf /usr/share/doc/mailjail/examples/logrotate-rspamd \
	/usr/share/doc/mailjail/examples/postfix/main.cf /usr/share/doc/mailjail/examples/alerts/body.tmpl \
	/usr/share/doc/mailjail/examples/systemd/mailjail.service.d/nftables.conf; do
	[ -e "$f" ] || fail "$f not installed"
done
grep -qx /etc/mailjail/mailjail.toml /var/lib/dpkg/info/mailjail.conffiles || fail "mailjail.toml is not a conffile"
getent passwd mailjail >/dev/null || fail "no user mailjail"
[ "$(stat -c %U:%a /var/lib/mailjail)" = mailjail:750 ] || fail "/var/lib/mailjail: $(stat -c %U:%a /var/lib/mailjail)"
if getent group _rspamd >/dev/null; then
	id -nG mailjail | grep -qw _rspamd || fail "mailjail not in group _rspamd"
	[ -d /etc/rspamd ] && { [ "$(stat -c %G "$maps")" = _rspamd ] || fail "$maps not group _rspamd"; }
fi
id -nG mailjail | grep -qw adm || fail "mailjail not in group adm"
/usr/sbin/mailjail version >/dev/null || fail "mailjail version"
/usr/sbin/mailjail check >/dev/null || fail "mailjail check of the shipped config"
if [ ! -d /run/systemd/system ]; then
	pgrep -u mailjail -x mailjail >/dev/null && fail "started without systemd"
fi

for page in /usr/share/man/man1/mailjail.1.gz /usr/share/man/man5/mailjail.toml.5.gz; do
	out=$(MANWIDTH=80 man -l "$page" 2>&1) || fail "man -l $page"
	[ "$(wc -l <<<"$out")" -gt 20 ] || fail "man -l $page: too short"
	warn=$(man --warnings -l -Tutf8 "$page" 2>&1 >/dev/null) || true
	[ -z "$warn" ] || fail "man $page warnings: $warn"
done
man -l /usr/share/man/man5/mailjail.toml.5.gz | grep -q 'map_file' || fail "mailjail.toml(5) lacks map_file"

systemd-analyze verify /lib/systemd/system/mailjail.service || fail "systemd-analyze verify"
score=$(systemd-analyze security --offline=yes /lib/systemd/system/mailjail.service 2>/dev/null |
	sed -n 's/.*Overall exposure level for mailjail.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "no security score"
awk -v s="$score" -v m="$max_score" 'BEGIN { exit !(s <= m) }' || fail "security score $score > $max_score"
echo "check-deb: systemd-analyze security --offline: $score"

dpkg --purge mailjail
trap - EXIT
for f in /usr/sbin/mailjail /lib/systemd/system/mailjail.service /etc/mailjail /var/lib/mailjail; do
	[ ! -e "$f" ] || fail "$f remains after purge"
done
getent passwd mailjail >/dev/null && fail "user mailjail remains after purge"
# The emptied maps stay (rspamd may name them); on a machine that had no map
# directory before, remove what the package made.
if [ -d "$maps" ]; then
	grep -qv '^#' "$maps"/*.map 2>/dev/null && fail "a map still holds entries after purge"
	[ "$maps_existed" = no ] && rm -rf "$maps"
fi
echo "check-deb: ok ($deb)"
