#!/usr/bin/env bash
# Measures every enforcement target the same way (internal/enforce/enforcetest), in one run so
# that the figures compare: one more ban over 1,000 (Sync p50/p99), commit → enforced through a
# started enforcer (p50/p99), 10,000 bans from empty in one Sync, and a 10,000-ban burst
# committed in batches of 100 (syncs it took). Needs root (nftables in a network namespace the
# benchmark makes), postmap (Postfix) and redis-server; a target whose peer is missing is
# skipped. CI runs the same benchmarks at -benchtime 20x; this runs them longer.
#   bash bench/targets.sh [BENCHTIME]   (default 200x)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go test -run '^$' -bench 'Sync1|Enforced|Burst' -benchtime "${1:-200x}" -timeout 30m \
	./internal/enforce/ ./internal/target/...
