//! `pki verify`: checks a certificate the way rustls will (rustls-webpki: chain to the CA,
//! dates, extended key usage, host name, revocation through the directory's CRL), and turns
//! a failure into one sentence saying what is wrong and what to do.

use std::path::Path;

use anyhow::{Context, bail};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use webpki::{EndEntityCert, KeyUsage, RevocationCheckDepth, RevocationOptionsBuilder};
use x509_parser::prelude::*;

use super::profile::Profile;
use super::{ca, layout};

/// Verifies `cert_path` against the CA and CRL of `dir`. Without `purpose` the certificate's
/// own extended key usage decides (serverAuth → server, otherwise client).
///
/// # Errors
/// Fails with one sentence (what is wrong and what to do) when the certificate would be
/// rejected, or when a file cannot be read.
pub fn verify(
    dir: &Path,
    cert_path: &Path,
    purpose: Option<Profile>,
    host: Option<&str>,
) -> anyhow::Result<String> {
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
    let purpose = purpose.unwrap_or(match &eku {
        Some(eku) if eku.server_auth => Profile::Server,
        _ => Profile::Client,
    });

    let crl_path = layout::crl_path(dir);
    let crl_der = match std::fs::read(&crl_path) {
        Ok(text) => {
            let block = ::pem::parse(&text)
                .with_context(|| format!("{} is not a PEM CRL", crl_path.display()))?;
            Some(block.into_contents())
        }
        Err(_) => None,
    };
    let crl = crl_der
        .as_deref()
        .map(webpki::BorrowedCertRevocationList::from_der)
        .transpose()
        .map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid CRL ({}); run `wstunnel pki gen-crl` to write a new one",
                crl_path.display(),
                error_kind(&e)
            )
        })?
        .map(webpki::CertRevocationList::from);
    let crls: Vec<&webpki::CertRevocationList<'_>> = crl.iter().collect();
    let revocation = if crls.is_empty() {
        None
    } else {
        let builder = RevocationOptionsBuilder::new(&crls)
            .map_err(|_| anyhow::anyhow!("internal: no CRL given"))?;
        Some(
            builder
                .with_depth(RevocationCheckDepth::EndEntity)
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
            &error, cert_path, dir, purpose, host, &leaf, &crl_path
        ))
    };
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
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

    let revocation_note = if crls.is_empty() {
        format!(
            " (no CRL at {}: revocation not checked; run `wstunnel pki gen-crl`)",
            crl_path.display()
        )
    } else {
        ", not revoked".to_owned()
    };
    let host_note = host.map(|h| format!(", valid for {h}")).unwrap_or_default();
    Ok(format!(
        "OK: {} is valid as a {} certificate of this CA{host_note}{revocation_note}",
        cert_path.display(),
        match purpose {
            Profile::Server => "server",
            Profile::Client => "client",
        }
    ))
}

fn explain(
    error: &webpki::Error,
    cert_path: &Path,
    dir: &Path,
    purpose: Profile,
    host: Option<&str>,
    leaf: &X509Certificate<'_>,
    crl_path: &Path,
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
            "{cert} was not issued by the CA {ca}; use a certificate issued from this directory \
             or pass --dir of the CA that issued it"
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
            "{cert} (serial {}) is revoked in {}; issue a new certificate and use that",
            super::database::Serial::from_bytes(leaf.raw_serial()),
            crl_path.display()
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
            "the CRL {} is out of date; run `wstunnel pki gen-crl` to renew it",
            crl_path.display()
        ),
        Error::UnknownRevocationStatus => format!(
            "the CRL {} is not from this CA, so {cert}'s revocation status is unknown; run \
             `wstunnel pki gen-crl`",
            crl_path.display()
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
