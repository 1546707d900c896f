//! TLS configuration for the tunnel: loading certificates and keys, verifying peers, reloading.
