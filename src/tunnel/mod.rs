//! The tunnel: upstream wstunnel v10 protocol, server, client and local listeners.

pub mod cli;

/// Runs `wstunnel server` until it is stopped.
pub fn run_server(args: cli::ServerArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("`wstunnel server` is not implemented yet")
}

/// Runs `wstunnel client` until it is stopped.
pub fn run_client(args: cli::ClientArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("`wstunnel client` is not implemented yet")
}
