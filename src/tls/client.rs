//! The client's TLS: an optional client certificate (mTLS) and how the server's certificate is
//! verified.
//!
//! The certificate, key and CA files are read again every 500 ms; new connections use new
//! files after a change (as upstream's client, the path prefix derived from the CN is not
//! recomputed: a renewed certificate must keep its CN).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::files;
use super::tickets::TicketStore;

/// Where the system's trusted CAs are read from for `--tls-verify-certificate` (Debian and
/// Ubuntu layout; other systems should pass `--tls-ca-certs`).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How the server certificate is checked.
#[derive(Clone, Debug)]
pub enum ServerVerification {
    /// Upstream's default: any certificate is accepted (the handshake signature is still
    /// checked, so the server must hold the key of the certificate it shows).
    Off,
    /// Against the system CA bundle.
    SystemRoots,
    /// Against the CAs of this PEM file (`--tls-ca-certs`, or `certs/ca.cert.pem` of --pki).
    CaFile(PathBuf),
}

/// What the client's TLS is made of.
#[derive(Clone, Debug)]
pub struct ClientTlsFiles {
    pub verification: ServerVerification,
    /// Certificate chain and key presented to the server.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Whether to send SNI (`--tls-sni-disable` turns it off).
    pub send_sni: bool,
}

/// How often the files are read and compared.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// The current client configuration, replaced when its files change.
pub struct ClientTls {
    files: ClientTlsFiles,
    config: RwLock<Arc<ClientConfig>>,
}

impl ClientTls {
    /// Builds the first configuration and starts watching the files (on the current runtime).
    ///
    /// # Errors
    /// As `build`.
    pub fn load(files: ClientTlsFiles) -> anyhow::Result<Arc<ClientTls>> {
        let config = build(&files)?;
        let snapshot = read_snapshot(&files);
        let tls = Arc::new(ClientTls {
            files,
            config: RwLock::new(config),
        });
        tokio::spawn(Arc::clone(&tls).watch(snapshot));
        Ok(tls)
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<ClientConfig> {
        match self.config.read() {
            Ok(config) => Arc::clone(&config),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    async fn watch(self: Arc<Self>, mut previous: Vec<Option<Vec<u8>>>) {
        let mut ticker = tokio::time::interval(POLL_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let snapshot = read_snapshot(&self.files);
            if snapshot == previous {
                continue;
            }
            match build(&self.files) {
                Ok(config) => {
                    if let Ok(mut current) = self.config.write() {
                        *current = config;
                    }
                    tracing::info!("client TLS files changed: new connections use them");
                }
                Err(error) => tracing::error!(
                    "client TLS files changed but cannot be used, keeping the old ones: {error:#}"
                ),
            }
            previous = snapshot;
        }
    }
}

/// Contents of the watched files (`None` for one that cannot be read right now).
fn read_snapshot(files: &ClientTlsFiles) -> Vec<Option<Vec<u8>>> {
    let mut paths: Vec<&Path> = Vec::new();
    if let Some((certificate, key)) = &files.identity {
        paths.push(certificate);
        paths.push(key);
    }
    if let ServerVerification::CaFile(path) = &files.verification {
        paths.push(path);
    }
    paths.iter().map(|path| std::fs::read(path).ok()).collect()
}

/// Builds the client configuration (ALPN `http/1.1`, as upstream's WebSocket client).
///
/// # Errors
/// When a file cannot be read or parsed, or the key does not match the certificate.
pub fn build(files: &ClientTlsFiles) -> anyhow::Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.verification {
        ServerVerification::Off => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate)),
        ServerVerification::SystemRoots => {
            builder.with_webpki_verifier(webpki_verifier(Path::new(SYSTEM_CA_BUNDLE))?)
        }
        ServerVerification::CaFile(path) => builder.with_webpki_verifier(webpki_verifier(path)?),
    };
    let mut config = match &files.identity {
        Some((certificate, key)) => {
            let chain = files::certificates(certificate)?;
            let key_der = files::private_key_from(&files::read(key)?, key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|error| files::pair_error(&error, certificate, key))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.enable_sni = files.send_sni;
    config.resumption = Resumption::store(Arc::new(TicketStore::default()));
    Ok(Arc::new(config))
}

fn webpki_verifier(path: &Path) -> anyhow::Result<Arc<WebPkiServerVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(files::certificates(path)?);
    if added == 0 {
        anyhow::bail!("{} holds no usable CA certificate", path.display());
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), super::provider())
        .build()
        .with_context(|| format!("cannot build a verifier from {}", path.display()))
}

/// Accepts any server certificate but still verifies handshake signatures.
#[derive(Debug)]
struct AnyServerCertificate;

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &super::provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &super::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        super::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
