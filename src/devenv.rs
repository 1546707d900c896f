//! `wstunnel dev-env`: a complete local mTLS environment in one command.

#[derive(clap::Args)]
pub struct DevEnvArgs {}

/// Runs `wstunnel dev-env`.
pub fn run(args: DevEnvArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("`wstunnel dev-env` is not implemented yet")
}
