#!/usr/bin/env bash
# Times `wstunnel pki fixtures` (the whole matrix, ECDSA P-256 keys) and prints the median;
# the target is under one second. For scale, the same run times the walkthrough's openssl
# chain for ONE client certificate (genrsa 2048 + req + ca) and prints the ratio.
#
# Usage: bench/pki_fixtures.sh [RUNS]   (default 15; BIN=path/to/wstunnel skips the build)
set -euo pipefail

runs=${1:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

walkthrough_ca

matrix=() chain=()
for i in $(seq 1 "$runs"); do
    start=$(now_ns)
    "$BIN" pki fixtures "$work/fixtures-$i" >/dev/null
    matrix+=($(($(now_ns) - start)))

    start=$(now_ns)
    walkthrough_client "$i"
    chain+=($(($(now_ns) - start)))
done

fixtures_ms=$(printf '%s\n' "${matrix[@]}" | median_ms)
chain_ms=$(printf '%s\n' "${chain[@]}" | median_ms)
echo "runs: $runs ($(nproc) CPUs, $(openssl version | cut -d' ' -f1-2))"
printf '%-58s %10s ms\n' "openssl genrsa + req + ca, one client (walkthrough)" "$chain_ms"
printf '%-58s %10s ms   %5.2fx the single openssl chain\n' \
    "wstunnel pki fixtures (3 CAs, 8 leaves, 3 CRLs)" "$fixtures_ms" \
    "$(echo "$fixtures_ms / $chain_ms" | bc -l)"
if (($(echo "$fixtures_ms < 1000" | bc -l))); then
    echo "under one second: yes"
else
    echo "under one second: NO"
fi
