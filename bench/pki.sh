#!/usr/bin/env bash
# Times one client certificate: `wstunnel pki issue-client` (rsa2048 and ecdsa-p256) against
# the walkthrough's openssl chain (genrsa 2048 + req + ca), in one run on the same machine,
# each against a CA with a 4096-bit RSA key (the walkthrough's). Prints medians and ratios.
#
# Usage: bench/pki.sh [RUNS]   (default 30; BIN=path/to/wstunnel to skip the release build)
set -euo pipefail

runs=${1:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${BIN:-}" ]]; then
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin wstunnel
    BIN="$root/target/release/wstunnel"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RUST_LOG=off

now_ns() { date +%s%N; }

# Prints the median of the numbers on stdin (milliseconds with two decimals).
median_ms() {
    sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f", m / 1e6 }'
}

# Our CA, and a CA made by the walkthrough's commands.
"$BIN" pki init "$work/ours" >/dev/null
theirs="$work/theirs"
mkdir -p "$theirs"/{certs,csr,crl,newcerts,private}
echo 1000 >"$theirs/serial"
: >"$theirs/index.txt"
sed "s#@DIR@#$theirs#" "$root/tests/common/walkthrough.cnf" >"$theirs/openssl.cnf"
(
    cd "$theirs"
    openssl genrsa -out private/ca.key.pem 4096 2>/dev/null
    openssl req -config openssl.cnf -key private/ca.key.pem -new -x509 -days 7300 -sha256 \
        -extensions v3_ca -out certs/ca.cert.pem \
        -subj "/C=GB/ST=England/O=wstunnel development/CN=wstunnel Development Root CA"
)

ours_rsa=() ours_ec=() openssl_chain=()
for i in $(seq 1 "$runs"); do
    start=$(now_ns)
    "$BIN" pki --dir "$work/ours" issue-client "rsa-$i" >/dev/null
    ours_rsa+=($(($(now_ns) - start)))

    start=$(now_ns)
    "$BIN" pki --dir "$work/ours" issue-client "ec-$i" --key-type ecdsa-p256 >/dev/null
    ours_ec+=($(($(now_ns) - start)))

    start=$(now_ns)
    (
        cd "$theirs"
        openssl genrsa -out "private/c-$i.pem" 2048 2>/dev/null
        openssl req -config openssl.cnf -key "private/c-$i.pem" -new -sha256 \
            -out "csr/c-$i.csr.pem" -subj "/C=GB/ST=England/O=wstunnel development/CN=c-$i"
        openssl ca -config openssl.cnf -extensions client_cert -days 375 -notext -md sha256 \
            -in "csr/c-$i.csr.pem" -out "certs/c-$i.cert.pem" -batch 2>/dev/null
    )
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
