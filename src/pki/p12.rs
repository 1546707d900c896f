//! `pki export-p12`: a PKCS#12 bundle of NAME's key, certificate and the CA certificate, in
//! the format OpenSSL 3, curl (`--cert-type P12`) and browsers read (PBES2 with
//! PBKDF2-HMAC-SHA256 and AES-256-CBC, HMAC-SHA256 MAC).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
use x509_parser::prelude::FromDer;

use super::fsutil::{FileMode, write_atomic};
use super::keys::{self, Passphrase};
use super::{ca, layout};

/// Writes the bundle to `out` (by default `private/NAME.p12`, mode 0600) with the password
/// from the first line of `password_file`.
///
/// # Errors
/// Fails if NAME is invalid, its files are missing, the key does not match the certificate,
/// or the password file is unreadable or empty.
pub fn export(
    dir: &Path,
    name: &str,
    password_file: &Path,
    out: Option<PathBuf>,
    passin: Option<&Passphrase>,
) -> anyhow::Result<PathBuf> {
    layout::validate_name(name)?;
    let password = std::fs::read_to_string(password_file)
        .with_context(|| format!("cannot read the password file {}", password_file.display()))?;
    let password = password.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        bail!(
            "the password file {} is empty; browsers and curl need a password",
            password_file.display()
        );
    }
    let cert_path = layout::cert_path(dir, name);
    if !cert_path.exists() {
        bail!(
            "{} does not exist; issue it first with `wstunnel pki issue-client {name}`",
            cert_path.display()
        );
    }
    let cert_der = ca::read_certificate_pem(&cert_path)?;
    let ca_der = ca::read_certificate_pem(&layout::ca_cert_path(dir))?;
    let key_path = layout::key_path(dir, name);
    let key = keys::load_key(&key_path, passin)?;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&cert_der)
        .map_err(|e| anyhow::anyhow!("{} does not parse: {e}", cert_path.display()))?;
    if parsed.public_key().subject_public_key.data.as_ref() != key.key_pair.public_key_raw() {
        bail!(
            "{} does not match {}; export the key that belongs to the certificate",
            key_path.display(),
            cert_path.display()
        );
    }

    let leaf = Certificate::from_der(&cert_der)
        .map_err(|e| anyhow::anyhow!("{} cannot go in a PKCS#12 file: {e}", cert_path.display()))?;
    let ca_cert = Certificate::from_der(&ca_der)
        .map_err(|e| anyhow::anyhow!("the CA certificate cannot go in a PKCS#12 file: {e}"))?;
    let private_key = PrivateKey::from_der(&key.pkcs8_der)
        .map_err(|e| anyhow::anyhow!("{} cannot go in a PKCS#12 file: {e}", key_path.display()))?;
    let local_key_id = super::profile::key_id(key.key_pair.public_key_raw());
    let chain = PrivateKeyChain::new(local_key_id, private_key, [leaf, ca_cert]);
    let mut store = KeyStore::new();
    store.add_entry(name, KeyStoreEntry::PrivateKeyChain(chain));
    let bundle = store
        .writer(&password)
        .write()
        .map_err(|e| anyhow::anyhow!("cannot write the PKCS#12 bundle: {e}"))?;
    let out = out.unwrap_or_else(|| layout::p12_path(dir, name));
    // Other commands remove temporary files in DIR under this lock, so write under it too.
    let _lock = super::fsutil::DirLock::acquire(&layout::lock_path(dir))?;
    write_atomic(&out, &bundle, FileMode::Private)?;
    tracing::debug!(path = %out.display(), "exported a PKCS#12 bundle");
    Ok(out)
}
