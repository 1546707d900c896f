#!/usr/bin/env bash
# Times `wstunnel pki fixtures` (the whole matrix, ECDSA P-256 keys) and prints the median;
# the target is under one second. For scale, the same run times the walkthrough's openssl
# chain for ONE client certificate (genrsa 2048 + req + ca) and prints the ratio.
#
# Usage: bench/pki_fixtures.sh [RUNS]   (default 15; BIN=path/to/wstunnel skips the build)
set -euo pipefail

runs=${1:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${BIN:-}" ]]; then
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin wstunnel
    BIN="$root/target/release/wstunnel"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RUST_LOG=off

now_ns() { date +%s%N; }
median_ms() {
    sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f", m / 1e6 }'
}

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

matrix=() chain=()
for i in $(seq 1 "$runs"); do
    start=$(now_ns)
    "$BIN" pki fixtures "$work/fixtures-$i" >/dev/null
    matrix+=($(($(now_ns) - start)))

    start=$(now_ns)
    (
        cd "$theirs"
        openssl genrsa -out "private/c-$i.pem" 2048 2>/dev/null
        openssl req -config openssl.cnf -key "private/c-$i.pem" -new -sha256 \
            -out "csr/c-$i.csr.pem" -subj "/C=GB/ST=England/O=wstunnel development/CN=c-$i"
        openssl ca -config openssl.cnf -extensions client_cert -days 375 -notext -md sha256 \
            -in "csr/c-$i.csr.pem" -out "certs/c-$i.cert.pem" -batch 2>/dev/null
    )
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
