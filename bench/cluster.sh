#!/usr/bin/env bash
# Cluster-wide ban propagation on loopback: a ban made on node a (its control socket) until node
# b's map holds it, p50/p99, beside the same ban until a's own map holds it (the peer, same run).
# Two daemons and one redis-server (private, on a free port). CI runs it at -benchtime 20x.
#   bash bench/cluster.sh [BENCHTIME]   (default 2000x)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go test -run '^$' -bench ClusterPropagation -benchtime "${1:-2000x}" -timeout 30m ./internal/daemon/
