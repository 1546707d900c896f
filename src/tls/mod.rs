//! TLS configuration for the tunnel: loading certificates and keys, verifying peers, reloading.
//!
//! - `files`: reading PEM certificates, keys and CRLs with errors that name the file.
//! - `identity`: who a client certificate names (CN, issuer, serial).
//! - `server`: the server's rustls configuration, mTLS with CRLs, and its file watcher.
//! - `client`: the client's rustls configuration (client certificate, server verification).
//! - `reasons`: TLS failures in plain words, for logs and for hints to the user.
//! - `tickets`: the client's store of session tickets, sized for many connections at once.

pub mod client;
pub mod files;
pub mod identity;
pub mod reasons;
pub mod server;
pub mod tickets;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::cipher_suite;

/// The one crypto provider used everywhere: aws-lc-rs with its default algorithms, except that
/// TLS 1.3 prefers AES-128-GCM-SHA256. Its key schedule uses SHA-256, which CPUs accelerate
/// (SHA-NI) while SHA-384 runs in software; every tunnel is a new TLS connection, so handshake
/// cost is tunnel setup cost. The server follows the client's order, so this applies whenever
/// our client is one end.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        let preferred = cipher_suite::TLS13_AES_128_GCM_SHA256;
        provider
            .cipher_suites
            .retain(|suite| suite.suite() != preferred.suite());
        provider.cipher_suites.insert(0, preferred);
        Arc::new(provider)
    });
    Arc::clone(provider)
}
