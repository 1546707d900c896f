//! The certificate authority: directory layout, X.509 profiles, OpenSSL's database files, CRL.

pub mod cli;

/// Runs one `wstunnel pki` subcommand.
pub fn run(args: cli::PkiArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("`wstunnel pki` is not implemented yet")
}
