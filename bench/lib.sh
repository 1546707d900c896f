# Shared by the pki benchmarks (sourced, not run): the binary under test, a scratch directory,
# a median, and the walkthrough's CA with its openssl chain for one client certificate.
#
# Expects: runs, root. Sets: BIN, work.

if [[ -z "${BIN:-}" ]]; then
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin wstunnel
    BIN="$root/target/release/wstunnel"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RUST_LOG=off

now_ns() { date +%s%N; }

# Prints the median of the numbers on stdin (nanoseconds in, milliseconds with two decimals out).
median_ms() {
    sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f", m / 1e6 }'
}

# A CA in $work/theirs made by the walkthrough's own commands (RSA 4096 key, as it says).
walkthrough_ca() {
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
}

# The walkthrough's three commands for one client certificate c-$1 (genrsa 2048, req, ca).
walkthrough_client() {
    (
        cd "$theirs"
        openssl genrsa -out "private/c-$1.pem" 2048 2>/dev/null
        openssl req -config openssl.cnf -key "private/c-$1.pem" -new -sha256 \
            -out "csr/c-$1.csr.pem" -subj "/C=GB/ST=England/O=wstunnel development/CN=c-$1"
        openssl ca -config openssl.cnf -extensions client_cert -days 375 -notext -md sha256 \
            -in "csr/c-$1.csr.pem" -out "certs/c-$1.cert.pem" -batch 2>/dev/null
    )
}
