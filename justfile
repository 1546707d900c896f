# Tasks for wstunnel. `just --list` shows them.

# Run the whole test suite (installs openssl and curl first if missing).
test:
    bash .ci/setup
    cargo test

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Regenerate the checked-in certificate matrix in pki-fixtures/.
fixtures:
    rm -rf pki-fixtures.new
    cargo run --release -- pki fixtures pki-fixtures.new
    rm -rf pki-fixtures
    mv pki-fixtures.new pki-fixtures

# Start a local mTLS environment (CA, server, client, echo service) until Ctrl-C.
dev-env *ARGS:
    cargo run --release -- dev-env {{ARGS}}

# Benchmarks against their baselines (set UPSTREAM_WSTUNNEL for the tunnel's upstream figures).
bench:
    cargo build --release
    bash bench/pki.sh
    bash bench/pki_fixtures.sh
    bash bench/tunnel.sh
