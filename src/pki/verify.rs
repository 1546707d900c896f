//! `pki verify`: checks a certificate the way rustls will (rustls-webpki: chain to the CA,
//! dates, extended key usage, host name, revocation through the directory's CRL and any
//! given with --crl, through intermediates given with --chain), and turns
//! a failure into one sentence saying what is wrong and what to do.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use webpki::{EndEntityCert, KeyUsage, RevocationCheckDepth, RevocationOptionsBuilder};
use x509_parser::prelude::*;

use super::profile::Profile;
use super::{ca, layout};

/// What `pki verify` checks a certificate for, beyond the directory's CA and CRL.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// What it must be good for. By default the certificate's own extended key usage decides
    /// (serverAuth → server, otherwise client).
    pub purpose: Option<Profile>,
    /// The host name or IP address it must be valid for. By default none is checked.
    pub host: Option<String>,
    /// A PEM file of untrusted intermediate CA certificates to build the chain to the
    /// directory's CA with. By default the certificate must be issued by that CA directly.
    pub chain: Option<PathBuf>,
    /// More CRLs to check, besides the directory's `crl/ca.crl.pem` (for example an
    /// intermediate CA's). With a chain every certificate in it is checked against them.
    pub crls: Vec<PathBuf>,
}

/// Verifies `cert_path` against the CA and CRL of `dir` (and the chain and CRLs of
/// `options`).
///
/// # Errors
/// Fails with one sentence (what is wrong and what to do) when the certificate would be
/// rejected, or when a file cannot be read.
pub fn verify(dir: &Path, cert_path: &Path, options: &VerifyOptions) -> anyhow::Result<String> {
    let host = options.host.as_deref();
    let ca_path = layout::ca_cert_path(dir);
    if !ca_path.exists() {
        bail!(
            "{} holds no CA ({} is missing); pass --dir of the CA",
            dir.display(),
            ca_path.display()
        );
    }
    let ca_der = ca::read_certificate_pem(&ca_path)?;
    let leaf_der = ca::read_certificate_pem(cert_path)?;
    let (_, leaf) = X509Certificate::from_der(&leaf_der)
        .map_err(|e| anyhow::anyhow!("{} is not a valid certificate: {e}", cert_path.display()))?;
    let eku = leaf
        .extended_key_usage()
        .ok()
        .flatten()
        .map(|e| e.value.clone());
    let purpose = options.purpose.unwrap_or(match &eku {
        Some(eku) if eku.server_auth => Profile::Server,
        _ => Profile::Client,
    });
    let intermediates = match &options.chain {
        Some(path) => read_chain(path)?,
        None => Vec::new(),
    };

    let crl_path = layout::crl_path(dir);
    let mut crl_files = Vec::new();
    if crl_path.exists() {
        crl_files.push((crl_path.clone(), read_crl(&crl_path)?));
    }
    for path in &options.crls {
        crl_files.push((path.clone(), read_crl(path)?));
    }
    let crl_list = crl_files
        .iter()
        .map(|(path, der)| {
            webpki::BorrowedCertRevocationList::from_der(der)
                .map(webpki::CertRevocationList::from)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{} is not a valid CRL ({}); write a new one with `wstunnel pki gen-crl`",
                        path.display(),
                        error_kind(&e)
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let crls: Vec<&webpki::CertRevocationList<'_>> = crl_list.iter().collect();
    let crl_names = crl_files
        .iter()
        .map(|(path, _)| path.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    // Through an intermediate, each certificate of the chain needs its issuer's CRL, as
    // `openssl verify -crl_check_all` requires.
    let depth = if intermediates.is_empty() {
        RevocationCheckDepth::EndEntity
    } else {
        RevocationCheckDepth::Chain
    };
    let revocation = if crls.is_empty() {
        None
    } else {
        let builder = RevocationOptionsBuilder::new(&crls)
            .map_err(|_| anyhow::anyhow!("internal: no CRL given"))?;
        Some(
            builder
                .with_depth(depth)
                .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
                .build(),
        )
    };

    let ca_cert = CertificateDer::from(ca_der.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&ca_cert).map_err(|e| {
        anyhow::anyhow!(
            "{} cannot be a trust anchor ({}); check it with `wstunnel pki inspect`",
            ca_path.display(),
            error_kind(&e)
        )
    })?;
    let leaf_cert = CertificateDer::from(leaf_der.as_slice());
    let end_entity = EndEntityCert::try_from(&leaf_cert).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a certificate rustls can use ({}); check it with `wstunnel pki inspect`",
            cert_path.display(),
            error_kind(&e)
        )
    })?;
    let usage = match purpose {
        Profile::Server => KeyUsage::server_auth(),
        Profile::Client => KeyUsage::client_auth(),
    };
    let rejection = |error: webpki::Error| {
        anyhow::anyhow!(explain(
            &error,
            cert_path,
            dir,
            purpose,
            host,
            &leaf,
            &crl_names,
            !intermediates.is_empty()
        ))
    };
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &intermediates,
            UnixTime::now(),
            usage,
            revocation,
            None,
        )
        .map_err(rejection)?;
    let has_alt_names = leaf.subject_alternative_name().ok().flatten().is_some();
    if purpose == Profile::Server && !has_alt_names {
        bail!(
            "{} has no subjectAltName, so rustls, curl and browsers refuse it whatever the host \
             (they ignore the CN); issue a server certificate with `wstunnel pki issue-server \
             NAME` (it adds localhost, 127.0.0.1, ::1 and every --san) and use that",
            cert_path.display()
        );
    }
    if let Some(host) = host {
        // Accept the bracketed form of an IPv6 address, as in URLs: [::1].
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(host)
            .map_err(|_| anyhow::anyhow!("--host {host:?} is not a DNS name or IP address"))?;
        end_entity
            .verify_is_valid_for_subject_name(&name)
            .map_err(rejection)?;
    }

    check_index_agrees(dir, cert_path, &leaf, &ca_der, &crl_path)?;

    let revocation_note = if crls.is_empty() {
        format!(
            " (no CRL at {}: revocation not checked; run `wstunnel pki gen-crl`)",
            crl_path.display()
        )
    } else {
        format!(", not revoked (checked against {crl_names})")
    };
    let host_note = host.map(|h| format!(", valid for {h}")).unwrap_or_default();
    let chain_note = options
        .chain
        .as_ref()
        .map(|chain| format!(" through {}", chain.display()))
        .unwrap_or_default();
    Ok(format!(
        "OK: {} is valid as a {} certificate of this CA{chain_note}{host_note}{revocation_note}",
        cert_path.display(),
        match purpose {
            Profile::Server => "server",
            Profile::Client => "client",
        }
    ))
}

/// Refuses a certificate of this CA that `index.txt` marks revoked while the CRL does not
/// list it yet (what `openssl ca -revoke` without `-gencrl` leaves): peers that check the CRL
/// still accept it. A missing or damaged `index.txt` is skipped (the CRL decided already).
///
/// # Errors
/// Says that the revocation is not published and to run `wstunnel pki gen-crl`.
fn check_index_agrees(
    dir: &Path,
    cert_path: &Path,
    leaf: &X509Certificate<'_>,
    ca_der: &[u8],
    crl_path: &Path,
) -> anyhow::Result<()> {
    let Ok((_, ca_cert)) = X509Certificate::from_der(ca_der) else {
        return Ok(());
    };
    // Serials are only unique per CA: a certificate through an intermediate is not in this
    // index.txt.
    if leaf.issuer().as_raw() != ca_cert.subject().as_raw() {
        return Ok(());
    }
    let Ok(mut index) = super::database::Index::load(dir) else {
        return Ok(());
    };
    let serial = super::database::Serial::from_bytes(leaf.raw_serial());
    let revoked_in_index = index
        .find_mut(&serial)
        .is_some_and(|entry| entry.status == super::database::Status::Revoked);
    if revoked_in_index {
        bail!(
            "{} (serial {serial}) is marked revoked in {}, but the CRL {} does not list it yet, \
             so peers still accept it; run `wstunnel pki gen-crl` to publish the revocation",
            cert_path.display(),
            layout::index_path(dir).display(),
            crl_path.display()
        );
    }
    Ok(())
}

/// The certificates of a PEM chain file (intermediates; a root in it is harmless).
///
/// # Errors
/// Fails naming the file if it cannot be read or holds no certificate.
fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let text =
        std::fs::read(path).with_context(|| format!("cannot read --chain {}", path.display()))?;
    let blocks = ::pem::parse_many(&text)
        .with_context(|| format!("--chain {} is not PEM", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = blocks
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| CertificateDer::from(block.into_contents()))
        .collect();
    if certs.is_empty() {
        bail!(
            "--chain {} holds no CERTIFICATE block; give the intermediate CA certificates \
             (such as intermediate/certs/ca-chain.cert.pem)",
            path.display()
        );
    }
    Ok(certs)
}

/// The DER of the PEM CRL at `path`.
///
/// # Errors
/// Fails naming the file if it cannot be read or is not PEM.
fn read_crl(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let block =
        ::pem::parse(&text).with_context(|| format!("{} is not a PEM CRL", path.display()))?;
    Ok(block.into_contents())
}

/// The one-sentence reason for a rejection; `chained` says intermediates were given.
#[allow(clippy::too_many_arguments)]
fn explain(
    error: &webpki::Error,
    cert_path: &Path,
    dir: &Path,
    purpose: Profile,
    host: Option<&str>,
    leaf: &X509Certificate<'_>,
    crl_names: &str,
    chained: bool,
) -> String {
    use webpki::Error;
    let cert = cert_path.display();
    let ca = layout::ca_cert_path(dir);
    let ca = ca.display();
    let stem = cert_path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".cert.pem"))
        .unwrap_or("NAME");
    match error {
        // A foreign CA with the same name but another key type fails on the signature
        // algorithm rather than on the issuer name: it is the same mistake.
        Error::UnknownIssuer
        | Error::InvalidSignatureForPublicKey
        | Error::UnsupportedSignatureAlgorithmContext(_)
        | Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | Error::IssuerNotCrlSigner => format!(
            "{cert} was not issued by the CA {ca}; use a certificate issued from this directory, \
             pass --dir of the CA that issued it, or, if an intermediate CA issued it, pass its \
             certificates with --chain FILE (and its CRL with --crl FILE)"
        ),
        Error::CertExpired { .. } => format!(
            "{cert} expired on {}; run `wstunnel pki revoke {stem}` and issue it again",
            leaf.validity().not_after.to_datetime().date()
        ),
        Error::CertNotValidYet { .. } => format!(
            "{cert} is not valid before {}; check this machine's clock or wait",
            super::inspect::format_utc(leaf.validity().not_before.to_datetime())
        ),
        Error::CertRevoked => format!(
            "{cert} (serial {}){} is revoked in {crl_names}; issue a new certificate and use \
             that",
            super::database::Serial::from_bytes(leaf.raw_serial()),
            if chained {
                " or a CA certificate of its chain"
            } else {
                ""
            }
        ),
        Error::RequiredEkuNotFoundContext(_) => match purpose {
            Profile::Client => format!(
                "{cert} is a server certificate (extended key usage serverAuth only) and cannot \
                 authenticate a client; use a client certificate made by `wstunnel pki \
                 issue-client NAME` (certs/NAME.cert.pem)"
            ),
            Profile::Server => format!(
                "{cert} is a client certificate (extended key usage clientAuth) and cannot \
                 authenticate a server; use certs/wstunnel-server.cert.pem made by `wstunnel \
                 pki issue-server`"
            ),
        },
        Error::CertNotValidForName(_) => format!(
            "{cert} is not valid for {}; it has no matching subjectAltName (the CN is \
             ignored), so issue it again with --san {}",
            host.unwrap_or("that name"),
            host.unwrap_or("NAME")
        ),
        Error::CrlExpired { .. } => format!(
            "a CRL ({crl_names}) is out of date; run `wstunnel pki gen-crl` on its CA to renew it"
        ),
        Error::UnknownRevocationStatus => format!(
            "none of the CRLs checked ({crl_names}) is from the CA that issued {cert} or a CA \
             certificate of its chain, so its revocation status is unknown; run `wstunnel pki gen-crl`, or pass \
             the issuing CA's CRL with --crl FILE"
        ),
        Error::CaUsedAsEndEntity => format!(
            "{cert} is a CA certificate and cannot be used as a server or client certificate; \
             issue one with `wstunnel pki issue-server` or `issue-client`"
        ),
        other => format!(
            "{cert} is rejected by the checks rustls makes ({}); compare it with `wstunnel pki \
             inspect` and issue it again from this CA",
            error_kind(other)
        ),
    }
}

/// The name of a webpki error without its details (which can hold raw OIDs and bytes).
fn error_kind(error: &webpki::Error) -> String {
    let debug = format!("{error:?}");
    let end = debug
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    debug[..end].to_owned()
}
