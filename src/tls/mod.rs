//! TLS configuration for the tunnel: loading certificates and keys, verifying peers, reloading.
//!
//! - `files`: reading PEM certificates, keys and CRLs with errors that name the file.
//! - `identity`: who a client certificate names (CN, issuer, serial).
//! - `server`: the server's rustls configuration, mTLS with CRLs, and its file watcher.
//! - `client`: the client's rustls configuration (client certificate, server verification).
//! - `reasons`: TLS failures in plain words, for logs and for hints to the user.

pub mod client;
pub mod files;
pub mod identity;
pub mod reasons;
pub mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The one crypto provider used everywhere (aws-lc-rs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
