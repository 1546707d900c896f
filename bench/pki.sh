#!/usr/bin/env bash
# Times one client certificate: `wstunnel pki issue-client` (rsa2048 and ecdsa-p256) against
# the walkthrough's openssl chain (genrsa 2048 + req + ca), in one run on the same machine,
# each against a CA with a 4096-bit RSA key (the walkthrough's). Prints medians and ratios.
#
# Usage: bench/pki.sh [RUNS]   (default 30; BIN=path/to/wstunnel to skip the release build)
set -euo pipefail

runs=${1:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# Our CA, and a CA made by the walkthrough's commands.
"$BIN" pki init "$work/ours" >/dev/null
walkthrough_ca

ours_rsa=() ours_ec=() openssl_chain=()
for i in $(seq 1 "$runs"); do
    start=$(now_ns)
    "$BIN" pki --dir "$work/ours" issue-client "rsa-$i" >/dev/null
    ours_rsa+=($(($(now_ns) - start)))

    start=$(now_ns)
    "$BIN" pki --dir "$work/ours" issue-client "ec-$i" --key-type ecdsa-p256 >/dev/null
    ours_ec+=($(($(now_ns) - start)))

    start=$(now_ns)
    walkthrough_client "$i"
    openssl_chain+=($(($(now_ns) - start)))
done

rsa=$(printf '%s\n' "${ours_rsa[@]}" | median_ms)
ec=$(printf '%s\n' "${ours_ec[@]}" | median_ms)
chain=$(printf '%s\n' "${openssl_chain[@]}" | median_ms)
echo "runs: $runs per command ($(nproc) CPUs, $(openssl version | cut -d' ' -f1-2))"
printf '%-48s %10s ms\n' "openssl genrsa 2048 + req + ca (walkthrough)" "$chain"
printf '%-48s %10s ms   %5.1fx faster\n' "wstunnel pki issue-client (rsa2048)" "$rsa" \
    "$(echo "$chain / $rsa" | bc -l)"
printf '%-48s %10s ms   %5.1fx faster\n' "wstunnel pki issue-client --key-type ecdsa-p256" "$ec" \
    "$(echo "$chain / $ec" | bc -l)"
