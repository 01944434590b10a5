#!/usr/bin/env bash
# bench/run.sh — mailjail against its floor (grep) and its peer
# (fail2ban-regex), in one go on the same generated rspamd log.
#
#   bash bench/run.sh                    # 1M lines, 1% events
#   LINES=200000 RUNS=1 bash bench/run.sh
#
# Environment: LINES (1000000), EVENTS (0.01), CLIENTS (5000), V6 (0.2),
# HOSTILE (0.02), SEED (1), RUNS (3: each tool's median of RUNS runs;
# fail2ban-regex runs F2B_RUNS times, default 1, since it takes a while),
# MAILJAIL (a mailjail binary to use instead of building ./cmd/mailjail).
# Needs Go; installs Debian's fail2ban with apt-get when fail2ban-regex is
# missing. Everything is written under bench/out/ (gitignored); the table
# goes to stdout and bench/out/results.md.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=$PWD/bench/out
mkdir -p "$OUT"
LINES=${LINES:-1000000}
EVENTS=${EVENTS:-0.01}
CLIENTS=${CLIENTS:-5000}
V6=${V6:-0.2}
HOSTILE=${HOSTILE:-0.02}
SEED=${SEED:-1}
RUNS=${RUNS:-3}
F2B_RUNS=${F2B_RUNS:-1}
LOG=$OUT/rspamd-1M.log
[ "$LINES" = 1000000 ] || LOG=$OUT/rspamd-$LINES.log

if ! command -v fail2ban-regex >/dev/null; then
	echo "installing fail2ban (for fail2ban-regex)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q fail2ban >&2
fi

echo "building mailjail and the generator" >&2
MJ=${MAILJAIL:-}
if [ -z "$MJ" ]; then
	go build -o "$OUT/mailjail" ./cmd/mailjail
	MJ=$OUT/mailjail
fi
go build -o "$OUT/gen" ./bench/gen

echo "generating $LOG" >&2
"$OUT/gen" -lines "$LINES" -events "$EVENTS" -clients "$CLIENTS" -v6 "$V6" -hostile "$HOSTILE" \
	-seed "$SEED" -kind rspamd -out "$LOG" 2>"$OUT/gen.txt"
cat "$OUT/gen.txt" >&2
sed "s|@OUT@|$OUT|g; s|$OUT/rspamd-1M.log|$LOG|" bench/mailjail-bench.toml >"$OUT/mailjail-bench.toml"
"$MJ" check --config "$OUT/mailjail-bench.toml" >/dev/null
cat "$LOG" >/dev/null # every tool reads it from the page cache

# timeit NAME CMD... runs CMD once and appends NAME and its wall-clock
# seconds to $OUT/times.
timeit() {
	local name=$1
	shift
	local t0 t1
	t0=$(date +%s.%N)
	"$@"
	t1=$(date +%s.%N)
	echo "$name $(echo "$t1 - $t0" | bc -l)" >>"$OUT/times"
}

# median NAME prints the median of NAME's times.
median() {
	awk -v n="$1" '$1 == n { print $2 }' "$OUT/times" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

: >"$OUT/times"
for _ in $(seq "$RUNS"); do
	# GNU grep stops at the first match when its output is /dev/null, even
	# with -c: write the count to a file so it reads the whole log.
	timeit grep grep -c 'Ratelimit "' "$LOG" >"$OUT/grep.out" || true
	timeit test-filter "$MJ" test-filter rspamd-ratelimit "$LOG" --json >"$OUT/test-filter.json"
	timeit replay "$MJ" --config "$OUT/mailjail-bench.toml" replay "$LOG" --json >"$OUT/replay.json"
done
for _ in $(seq "$F2B_RUNS"); do
	timeit fail2ban-regex fail2ban-regex "$LOG" bench/fail2ban-rspamd-ratelimit.conf >"$OUT/fail2ban-regex.out" 2>&1
done

lines=$(wc -l <"$LOG")
g=$(median grep)
f=$(median fail2ban-regex)
grep_n=$(cat "$OUT/grep.out")
f2b_n=$(sed -n 's/^Lines: .* \([0-9]*\) matched.*/\1/p' "$OUT/fail2ban-regex.out")
tf_n=$(sed -n 's/^  "matched": \([0-9]*\).*/\1/p' "$OUT/test-filter.json")
rp_n=$(sed -n 's/^  "matches": \([0-9]*\).*/\1/p' "$OUT/replay.json")
rp_bans=$(sed -n 's/^  "addresses_banned": \([0-9]*\).*/\1/p' "$OUT/replay.json")
rp_strikes=$(sed -n 's/^  "strikes": \([0-9]*\).*/\1/p' "$OUT/replay.json")

row() { # tool seconds matches
	awk -v t="$1" -v s="$2" -v m="$3" -v l="$lines" -v g="$g" -v f="$f" 'BEGIN {
		printf "| %s | %.3f | %.0f | %.2f× | %.1f× | %s |\n", t, s, l / s, s / g, f / s, m }'
}
{
	echo "### bench/run.sh — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo
	echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr), $(go version | cut -d' ' -f3), $(grep --version | head -1), fail2ban-regex $(fail2ban-regex --version 2>&1 | awk '{ print $NF }')"
	echo
	echo "Log: $(du -h "$LOG" | cut -f1), $(sed 's/^gen: //' "$OUT/gen.txt"); median of $RUNS runs (fail2ban-regex: $F2B_RUNS)"
	echo
	echo "| tool | seconds | lines/s | time ÷ grep | fail2ban-regex time ÷ time | lines matched |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: |"
	row "grep -c 'Ratelimit \"'" "$g" "$grep_n (any line with the text)"
	row "fail2ban-regex (bench/fail2ban-rspamd-ratelimit.conf)" "$f" "$f2b_n"
	row "mailjail test-filter rspamd-ratelimit" "$(median test-filter)" "$tf_n"
	row "mailjail replay (SQLite, bans, map)" "$(median replay)" "$rp_n ($rp_strikes strikes, $rp_bans addresses banned)"
	echo
	echo "Targets (issue 7): test-filter ≥ 100× faster than fail2ban-regex and ≤ 2× grep; replay ≤ 3× grep."
} | tee "$OUT/results.md"
