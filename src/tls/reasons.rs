//! TLS failures in plain words: why the server refused a client (for its WARN log), and what
//! the user of a refused client should do.

use std::io;

use rustls::{AlertDescription, CertificateError, Error};

/// Why a handshake failed, as the server logs it.
pub fn server_side_reason(error: &Error) -> String {
    match error {
        Error::NoCertificatesPresented => "no client certificate presented".into(),
        Error::InvalidCertificate(certificate) => certificate_reason(certificate),
        Error::AlertReceived(alert) => format!("the client aborted the handshake ({alert:?})"),
        Error::InvalidMessage(_) | Error::InappropriateHandshakeMessage { .. } => {
            "not a valid TLS handshake".into()
        }
        Error::NoApplicationProtocol => "no common ALPN protocol (expected http/1.1)".into(),
        Error::PeerIncompatible(incompatible) => {
            format!("client TLS settings incompatible: {incompatible:?}")
        }
        other => format!("TLS error: {other}"),
    }
}

fn certificate_reason(error: &CertificateError) -> String {
    match error {
        CertificateError::UnknownIssuer => {
            "client certificate not issued by a trusted CA (unknown issuer)".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "client certificate expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "client certificate not yet valid".into()
        }
        CertificateError::Revoked => "client certificate revoked".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "wrong extended key usage: the certificate is not for client authentication \
             (a server certificate?)"
                .into()
        }
        // webpki finds the issuer by name: a certificate from another CA with the same name
        // (two default `pki init`s) fails here rather than as an unknown issuer.
        CertificateError::BadSignature => "client certificate signature does not verify with the \
             trusted CA: issued by another CA of the same name (unknown issuer), or corrupted"
            .into(),
        CertificateError::BadEncoding => "client certificate does not parse".into(),
        CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => {
                "client certificate is a CA certificate (self-signed?), not a client certificate \
                 issued by a trusted CA (unknown issuer)"
                    .into()
            }
            Some(error) => format!("client certificate rejected: {error}"),
            None => format!("client certificate rejected: {other}"),
        },
        other => format!("client certificate rejected: {other:?}"),
    }
}

/// The rustls error inside an I/O error from tokio-rustls, if any.
pub fn rustls_error(error: &io::Error) -> Option<&Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
}

/// What a refused client should be told: the server's alert or our verifier's verdict and a
/// hint. `None` when the error is not a TLS verdict.
pub fn client_side_hint(error: &io::Error) -> Option<String> {
    let hint = match rustls_error(error)? {
        Error::AlertReceived(alert) => match alert {
            AlertDescription::UnsupportedCertificate => {
                "the server does not accept this certificate: its extended key usage does not \
                 allow client authentication (is it a server certificate?); use a client \
                 certificate from `wstunnel pki issue-client`"
            }
            AlertDescription::CertificateRevoked => {
                "the server says this client certificate is revoked; issue a new one with \
                 `wstunnel pki issue-client`"
            }
            AlertDescription::CertificateExpired => {
                "the server says this client certificate is expired or not yet valid; issue a \
                 new one with `wstunnel pki issue-client`"
            }
            AlertDescription::UnknownCA => {
                "the server does not trust the CA that issued this client certificate; use a \
                 certificate from the server's PKI directory"
            }
            AlertDescription::CertificateRequired => {
                "the server requires a client certificate; pass --pki DIR --pki-client NAME or \
                 --tls-certificate and --tls-private-key"
            }
            // TLS 1.2 servers send this for a missing certificate, but also for other
            // failures (a server that cannot check the certificate): do not claim more.
            AlertDescription::HandshakeFailure => {
                "the server refused the handshake: it requires a client certificate (pass --pki \
                 DIR --pki-client NAME or --tls-certificate and --tls-private-key) or could \
                 not accept this one; the server's log says why"
            }
            AlertDescription::BadCertificate | AlertDescription::CertificateUnknown => {
                "the server refused this client certificate (self-signed, or not a client \
                 certificate issued by the server's CA?)"
            }
            AlertDescription::DecryptError => {
                "the server could not verify the client certificate's signature: most often the \
                 certificate comes from another CA with the same name as the server's (two \
                 default `wstunnel pki init`s); use a certificate from the server's PKI \
                 directory, or check that the key matches the certificate"
            }
            _ => return Some(format!("the server aborted the TLS handshake ({alert:?})")),
        },
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not issued by a CA in --tls-ca-certs (or the PKI \
             directory's certs/ca.cert.pem)"
        }
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            "the server's certificate does not name the host in the URL; use --tls-sni-override \
             NAME with a name from the certificate"
        }
        Error::InvalidCertificate(CertificateError::BadSignature) => {
            "the server's certificate is not issued by the CA given with --tls-ca-certs or \
             --pki (its signature does not verify against that CA: another CA, perhaps with \
             the same name); pass the CA of the server's PKI directory (`--pki DIR` or \
             `--tls-ca-certs DIR/certs/ca.cert.pem`), or reissue the server certificate from \
             this CA with `wstunnel pki issue-server --dir DIR`"
        }
        Error::InvalidCertificate(
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
        ) => {
            "the server presents a certificate that is not for servers (a client certificate?); \
             the server needs one from `wstunnel pki issue-server`"
        }
        Error::InvalidCertificate(other) => {
            return Some(format!(
                "the server's certificate is not acceptable: {other:?}"
            ));
        }
        other => return Some(format!("TLS failed: {other}")),
    };
    let alert = match rustls_error(error) {
        Some(Error::AlertReceived(alert)) => format!("server alert {alert:?}: "),
        _ => String::new(),
    };
    Some(format!("{alert}{hint}"))
}
