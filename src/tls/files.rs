//! Reading PEM files, with errors that name the file and say what to do.

use std::path::Path;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// All certificates of a PEM file, in order.
///
/// # Errors
/// When the file cannot be read, is not PEM, or holds no certificate.
pub fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path)?;
    certificates_from(&bytes, path)
}

/// Like `certificates`, from bytes already read from `path`.
pub fn certificates_from(
    bytes: &[u8],
    path: &Path,
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a valid PEM certificate file", path.display()))?;
    if certificates.is_empty() {
        bail!(
            "{} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certificates)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
/// When the file cannot be read or holds no unencrypted private key.
pub fn private_key_from(bytes: &[u8], path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(bytes).with_context(|| {
        format!(
            "{} holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM; an encrypted key \
             must be decrypted first, e.g. with `openssl pkey -in KEY -out PLAIN`)",
            path.display()
        )
    })
}

/// All CRLs of a PEM file.
///
/// # Errors
/// When the file is not PEM or holds no `X509 CRL` block.
pub fn crls_from(
    bytes: &[u8],
    path: &Path,
) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
    let crls = CertificateRevocationListDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a valid PEM CRL file", path.display()))?;
    if crls.is_empty() {
        bail!(
            "{} holds no CRL (expected -----BEGIN X509 CRL-----)",
            path.display()
        );
    }
    Ok(crls)
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Why a certificate and a key cannot be used together, in words: rustls names a key that
/// belongs to another certificate `InconsistentKeys(KeyMismatch)`.
pub fn pair_error(error: &rustls::Error, certificate: &Path, key: &Path) -> anyhow::Error {
    match error {
        rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
            "{} is not the private key of {}: pass the key made with that certificate (`pki` \
             keeps it as private/NAME.pem beside certs/NAME.cert.pem)",
            key.display(),
            certificate.display()
        ),
        other => anyhow::anyhow!(
            "{} and {} do not form a usable certificate and key pair: {other}",
            certificate.display(),
            key.display()
        ),
    }
}
