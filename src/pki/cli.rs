//! Command-line arguments of `wstunnel pki`.

#[derive(clap::Args)]
pub struct PkiArgs {}
