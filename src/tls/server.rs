//! The server's TLS: certificate and key, mandatory client certificates (mTLS) checked by
//! rustls' webpki verifier against the client CA and the CRLs, and a watcher that rebuilds
//! the configuration when any of those files change.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::sync::watch;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::files;
use super::identity::PeerIdentity;

/// How often the watched files are read and compared (new files apply within 2 s).
const POLL_EVERY: Duration = Duration::from_millis(500);

/// Files the server's TLS is made of.
#[derive(Clone, Debug)]
pub struct ServerTlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// Client CA bundle; `Some` turns on mandatory mTLS.
    pub client_ca: Option<PathBuf>,
    pub crls: Vec<CrlFile>,
}

/// A CRL file and whether it must exist.
#[derive(Clone, Debug)]
pub struct CrlFile {
    pub path: PathBuf,
    /// `Optional`: a missing file means "no revocations yet" (a fresh PKI directory has no
    /// CRL until the first `gencrl`); the watcher picks it up when it appears.
    pub presence: Presence,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
}

/// Serial numbers revoked by the current CRLs, keyed by issuer name.
#[derive(Debug, Default)]
pub struct Revocations {
    revoked: HashSet<(Vec<u8>, Vec<u8>)>,
}

impl Revocations {
    pub fn is_revoked(&self, identity: &PeerIdentity) -> bool {
        self.revoked
            .contains(&(identity.issuer.clone(), identity.serial.clone()))
    }
}

/// The contents of every watched file, compared to detect changes.
#[derive(Clone, PartialEq, Eq)]
struct Snapshot {
    certificate: Vec<u8>,
    private_key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
    crls: Vec<Option<Vec<u8>>>,
}

/// The current server TLS configuration, replaced as files change.
pub struct ServerTls {
    files: ServerTlsFiles,
    config: RwLock<Arc<ServerConfig>>,
    revocations: watch::Sender<Arc<Revocations>>,
}

impl ServerTls {
    /// Loads every file and builds the first configuration.
    ///
    /// # Errors
    /// When a file cannot be read or parsed, or the key does not match the certificate.
    pub fn load(files: ServerTlsFiles) -> anyhow::Result<Arc<ServerTls>> {
        let snapshot = read_snapshot(&files)?;
        let (config, revocations) = build(&files, &snapshot)?;
        let (sender, _) = watch::channel(Arc::new(revocations));
        let tls = Arc::new(ServerTls {
            files,
            config: RwLock::new(config),
            revocations: sender,
        });
        let watcher = Arc::clone(&tls);
        tokio::spawn(async move { watcher.watch(snapshot).await });
        Ok(tls)
    }

    /// The configuration new handshakes must use.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.config.read() {
            Ok(config) => Arc::clone(&config),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Whether client certificates are required.
    pub fn requires_client_certificates(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The revocations in force now; the receiver sees each CRL reload.
    pub fn revocations(&self) -> watch::Receiver<Arc<Revocations>> {
        self.revocations.subscribe()
    }

    /// Polls the files and swaps in a new configuration after a change. A broken file is
    /// logged and the previous configuration stays.
    async fn watch(self: Arc<Self>, mut previous: Snapshot) {
        let mut ticker = tokio::time::interval(POLL_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let files = self.files.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                read_snapshot(&files).map(|snapshot| (files, snapshot))
            })
            .await;
            let snapshot = match loaded {
                Ok(Ok((_, snapshot))) => snapshot,
                Ok(Err(error)) => {
                    tracing::debug!("TLS files not reloadable yet: {error:#}");
                    continue;
                }
                Err(_) => continue,
            };
            if snapshot == previous {
                continue;
            }
            match build(&self.files, &snapshot) {
                Ok((config, revocations)) => {
                    if let Ok(mut current) = self.config.write() {
                        *current = config;
                    }
                    self.revocations.send_replace(Arc::new(revocations));
                    tracing::info!("TLS files changed: new handshakes use the new certificates");
                }
                Err(error) => {
                    tracing::error!(
                        "TLS files changed but cannot be used, keeping the old ones: {error:#}"
                    );
                }
            }
            previous = snapshot;
        }
    }
}

fn read_snapshot(files: &ServerTlsFiles) -> anyhow::Result<Snapshot> {
    let crls = files
        .crls
        .iter()
        .map(|crl| match (std::fs::read(&crl.path), crl.presence) {
            (Ok(bytes), _) => Ok(Some(bytes)),
            (Err(error), Presence::Optional) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            (Err(error), _) => {
                Err(error).with_context(|| format!("cannot read CRL {}", crl.path.display()))
            }
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Snapshot {
        certificate: files::read(&files.certificate)?,
        private_key: files::read(&files.private_key)?,
        client_ca: files.client_ca.as_deref().map(files::read).transpose()?,
        crls,
    })
}

fn build(
    files: &ServerTlsFiles,
    snapshot: &Snapshot,
) -> anyhow::Result<(Arc<ServerConfig>, Revocations)> {
    let chain = files::certificates_from(&snapshot.certificate, &files.certificate)?;
    let key = files::private_key_from(&snapshot.private_key, &files.private_key)?;
    let builder = ServerConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;

    let mut revocations = Revocations::default();
    let builder = match (&files.client_ca, &snapshot.client_ca) {
        (Some(ca_path), Some(ca_bytes)) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in files::certificates_from(ca_bytes, ca_path)? {
                roots.add(certificate).with_context(|| {
                    format!(
                        "{} holds a certificate that is not a usable CA",
                        ca_path.display()
                    )
                })?;
            }
            let mut crls = Vec::new();
            for (crl, bytes) in files.crls.iter().zip(&snapshot.crls) {
                if let Some(bytes) = bytes {
                    for der in files::crls_from(bytes, &crl.path)? {
                        add_revoked_serials(&mut revocations, der.as_ref(), &crl.path)?;
                        crls.push(der);
                    }
                }
            }
            // A CA without a CRL is not locked out: revocation is checked where a CRL exists.
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::provider())
                    .with_crls(crls)
                    .allow_unknown_revocation_status()
                    .build()
                    .context("cannot build the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };

    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "{} and {} do not form a usable certificate and key pair",
            files.certificate.display(),
            files.private_key.display()
        )
    })?;
    // One connection carries one tunnel, and the client resumes the next connection with one
    // ticket: a second ticket (rustls' default) would be computed and stored for nothing.
    config.send_tls13_tickets = 1;
    // HTTP/2 is not served: offering only http/1.1 keeps h2-capable clients on WebSocket.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), revocations))
}

fn add_revoked_serials(
    revocations: &mut Revocations,
    der: &[u8],
    path: &Path,
) -> anyhow::Result<()> {
    let (_, crl) = CertificateRevocationList::from_der(der)
        .map_err(|error| anyhow::anyhow!("{}: CRL does not parse: {error}", path.display()))?;
    let issuer = crl.issuer().as_raw().to_vec();
    for revoked in crl.iter_revoked_certificates() {
        revocations
            .revoked
            .insert((issuer.clone(), revoked.raw_serial().to_vec()));
    }
    Ok(())
}
