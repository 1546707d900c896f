//! Command-line arguments of `wstunnel server` and `wstunnel client`.

#[derive(clap::Args)]
pub struct ServerArgs {}

#[derive(clap::Args)]
pub struct ClientArgs {}
