#!/usr/bin/env bash
# Tunnel benchmark: one TCP stream through `-L tcp://` over wss:// with mTLS vs direct, short
# tunnels per second (one at a time and 32 at once), server memory with 1000 idle tunnels.
# With UPSTREAM_WSTUNNEL=/path/to/upstream/wstunnel the same figures are measured for upstream
# in the same run and our/upstream ratios are printed. Everything runs on 127.0.0.1.
#
# Knobs (environment): BENCH_STREAM_MIB (256), BENCH_RUNS (5), BENCH_SEQUENTIAL (200),
# BENCH_PARALLEL_PER_WORKER (20), BENCH_IDLE (1000), WSTUNNEL (target/release/wstunnel).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${WSTUNNEL:-}" ]]; then
    cargo build --release --quiet
fi
exec python3 bench/tunnel_bench.py "$@"
