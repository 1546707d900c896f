//! The certificate authority: directory layout, X.509 profiles, OpenSSL's database files, CRL.
//!
//! `wstunnel pki` reproduces the OpenSSL CA walkthrough (jamielinux's layout and openssl.cnf)
//! one command per step, in a directory that `openssl ca -config DIR/openssl.cnf` can keep
//! using. Other subsystems use the library side: [`Ca`], [`IssueRequest`], [`layout`].

pub mod ca;
pub mod cli;
mod commands;
pub mod config;
pub mod database;
mod der;
pub mod fixtures;
pub mod fsutil;
pub mod inspect;
pub mod keys;
pub mod layout;
pub mod p12;
pub mod profile;
pub mod staging;
pub mod subject;
pub mod verify;

#[allow(unused_imports)]
pub use ca::{
    Ca, CrlInfo, InitOptions, IssueRequest, Issued, Revocation, RevokeOutcome, RevokeTarget,
    Validity,
};
#[allow(unused_imports)]
pub use database::{RevocationReason, Serial};
#[allow(unused_imports)]
pub use keys::{KeyType, Passphrase};
#[allow(unused_imports)]
pub use profile::{AltName, Profile};
#[allow(unused_imports)]
pub use subject::Subject;

/// Runs one `wstunnel pki` subcommand.
pub fn run(args: cli::PkiArgs) -> anyhow::Result<()> {
    commands::run(args)
}
