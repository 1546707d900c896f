//! Command-line arguments of `wstunnel pki`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::database::RevocationReason;
use super::keys::KeyType;
use super::profile::Profile;

/// Every `--days`: at least 1 (0 would be out of date at once), at most 100 years.
fn days() -> clap::builder::RangedU64ValueParser<u32> {
    clap::builder::RangedU64ValueParser::new().range(1..=u64::from(super::ca::MAX_DAYS))
}

/// `wstunnel pki`: the OpenSSL CA walkthrough as one command per step.
#[derive(Args)]
pub struct PkiArgs {
    /// The CA directory. By default `~/wstunnel/ca`.
    #[arg(long, env = "WSTUNNEL_PKI_DIR", global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Passphrase of an encrypted CA key (or, for export-p12, of NAME's key), in OpenSSL's
    /// forms: pass:TEXT, env:VAR, file:PATH.
    #[arg(long, global = true, value_name = "SOURCE")]
    pub passin: Option<String>,

    #[command(subcommand)]
    pub command: PkiCommand,
}

#[derive(Subcommand)]
pub enum PkiCommand {
    /// Create a CA: layout, openssl.cnf, serial, index.txt, CA key and certificate, CRL.
    Init(InitArgs),
    /// Issue a server key and certificate (server_cert profile, with subjectAltNames).
    IssueServer(IssueArgs),
    /// Issue a client key and certificate (client_cert profile).
    IssueClient(IssueClientArgs),
    /// Sign a certificate request made elsewhere (for example by `openssl req`).
    SignCsr(SignCsrArgs),
    /// Revoke a certificate and regenerate the CRL.
    Revoke(RevokeArgs),
    /// Write a new CRL (crl/ca.crl.pem) from index.txt.
    GenCrl(GenCrlArgs),
    /// List issued certificates: serial, status, not-after, subject, file.
    List(ListArgs),
    /// Summarise a certificate, request, CRL or key.
    Inspect(InspectArgs),
    /// Check a certificate against the CA and CRL (chain, dates, purpose, host, revocation).
    Verify(VerifyArgs),
    /// Bundle NAME's key, certificate and the CA certificate into a PKCS#12 file.
    ExportP12(ExportP12Args),
    /// Generate a matrix of good and bad certificates with a manifest, for test suites.
    Fixtures(FixturesArgs),
}

#[derive(Args)]
pub struct FixturesArgs {
    /// Output directory (created; must not already hold a CA).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Key type of every fixture.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    pub key_type: KeyType,
    /// Print the manifest (fixtures.json) instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct InitArgs {
    /// The CA directory (overrides --dir).
    #[arg(value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Common name of the CA. By default `wstunnel Development Root CA`.
    #[arg(long)]
    pub cn: Option<String>,
    /// Whole subject in OpenSSL's form, such as `/C=GB/O=Org/CN=My CA`.
    #[arg(long)]
    pub subject: Option<String>,
    /// Key type of the CA. By default rsa4096, as in the walkthrough.
    #[arg(long, value_enum, default_value_t = KeyType::Rsa4096)]
    pub key_type: KeyType,
    /// Validity of the CA certificate in days, from 1 to 36500.
    #[arg(long, default_value_t = 7300, value_parser = days())]
    pub days: u32,
    /// Encrypt the CA key (ENCRYPTED PRIVATE KEY) with the passphrase given by --passout.
    #[arg(long, requires = "passout")]
    pub encrypt_key: bool,
    /// Passphrase for --encrypt-key: pass:TEXT, env:VAR or file:PATH.
    #[arg(long, value_name = "SOURCE")]
    pub passout: Option<String>,
}

#[derive(Args)]
pub struct IssueArgs {
    /// File stem of the key, request and certificate.
    #[arg(default_value = "wstunnel-server")]
    pub name: String,
    #[command(flatten)]
    pub options: IssueOptions,
}

#[derive(Args)]
pub struct IssueClientArgs {
    /// File stem of the key, request and certificate; also the default CN.
    pub name: String,
    #[command(flatten)]
    pub options: IssueOptions,
}

#[derive(Args)]
pub struct IssueOptions {
    /// Common name. By default NAME.
    #[arg(long)]
    pub cn: Option<String>,
    /// Whole subject in OpenSSL's form, such as `/C=GB/O=Org/CN=name`.
    #[arg(long)]
    pub subject: Option<String>,
    /// Extra subjectAltName (DNS name, wildcard, IPv4 or IPv6); repeatable.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// Validity in days, from 1 to 36500.
    #[arg(long, default_value_t = 375, value_parser = days())]
    pub days: u32,
    /// Key type.
    #[arg(long, value_enum, default_value_t = KeyType::Rsa2048)]
    pub key_type: KeyType,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SignCsrArgs {
    /// The request (PEM).
    pub file: PathBuf,
    /// Profile to sign with.
    #[arg(long, value_enum)]
    pub profile: Profile,
    /// File stem of the certificate. By default the request's file name without
    /// `.csr.pem`.
    #[arg(long)]
    pub name: Option<String>,
    /// Extra subjectAltName; repeatable.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// Validity in days, from 1 to 36500.
    #[arg(long, default_value_t = 375, value_parser = days())]
    pub days: u32,
}

#[derive(Args)]
pub struct RevokeArgs {
    /// NAME of the certificate (certs/NAME.cert.pem).
    #[arg(required_unless_present_any = ["serial", "cert"], conflicts_with_all = ["serial", "cert"])]
    pub name: Option<String>,
    /// Serial number in hex, as in index.txt.
    #[arg(long, value_name = "HEX", conflicts_with = "cert")]
    pub serial: Option<String>,
    /// A certificate file of this CA, anywhere (like `openssl ca -revoke FILE`); its files in
    /// the CA directory are not moved aside.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// RFC 5280 reason.
    #[arg(long, value_enum)]
    pub reason: Option<RevocationReason>,
}

#[derive(Args)]
pub struct GenCrlArgs {
    /// Days until the CRL's nextUpdate, from 1 to 36500.
    #[arg(long, default_value_t = 30, value_parser = days())]
    pub days: u32,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    /// A PEM certificate, request, CRL or private key.
    pub file: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The certificate to check.
    pub cert: PathBuf,
    /// What it must be good for. By default taken from its extended key usage.
    #[arg(long, value_enum)]
    pub purpose: Option<Profile>,
    /// Host name or IP address the certificate must be valid for.
    #[arg(long)]
    pub host: Option<String>,
    /// Untrusted intermediate CA certificates (PEM) leading to the directory's CA, such as
    /// intermediate/certs/ca-chain.cert.pem. By default the CA must have issued CERT itself.
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// Another CRL to check (repeatable), such as an intermediate CA's crl/ca.crl.pem; the
    /// directory's own CRL is always checked.
    #[arg(long = "crl", value_name = "FILE")]
    pub crls: Vec<PathBuf>,
}

#[derive(Args)]
pub struct ExportP12Args {
    /// NAME of the certificate (certs/NAME.cert.pem, private/NAME.pem).
    pub name: String,
    /// File whose first line is the bundle's password.
    #[arg(long, value_name = "FILE")]
    pub password_file: PathBuf,
    /// Output file. By default private/NAME.p12.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}
