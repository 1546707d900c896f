//! The server's TLS: certificate and key, mandatory client certificates (mTLS) checked by
//! rustls' webpki verifier against the client CA and the CRLs, and a watcher that reloads each
//! of those files on its own when it changes.
//!
//! Reload policy: a file that goes missing or becomes unusable never takes its last good
//! contents away. A broken certificate or key keeps the old identity, a broken CA keeps the old
//! CA, and a CRL can only be replaced by another valid CRL of the client CA: revocation
//! information is never dropped silently. Each refusal is logged once at WARN, naming the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use rustls::server::WebPkiClientVerifier;
use tokio::sync::watch;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::files;
use super::identity::PeerIdentity;

/// How often the watched files are read and compared (new files apply within 2 s).
const POLL_EVERY: Duration = Duration::from_millis(500);

/// Files the server's TLS is made of.
#[derive(Clone, Debug)]
pub struct ServerTlsFiles {
    pub identity: IdentitySource,
    /// Client CA bundle; `Some` turns on mandatory mTLS.
    pub client_ca: Option<PathBuf>,
    pub crls: Vec<CrlFile>,
}

/// Where the server's own certificate and key come from.
#[derive(Clone, Debug)]
pub enum IdentitySource {
    /// PEM files, watched and reloaded.
    Files {
        certificate: PathBuf,
        private_key: PathBuf,
    },
    /// A self-signed certificate for `localhost` made at start-up (upstream's default when no
    /// certificate is given); clients can only use it without verification.
    SelfSigned,
}

/// A CRL file and whether it must exist.
#[derive(Clone, Debug)]
pub struct CrlFile {
    pub path: PathBuf,
    /// `Optional`: a missing file at start-up means "no CRL published yet" (a fresh PKI
    /// directory has none until `wstunnel pki gen-crl`); the watcher picks it up when it
    /// appears. `Required`: a missing file is a start-up error.
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

/// What reading a file gave: its bytes or why not (compared between polls to notice changes).
type Seen = Result<Vec<u8>, String>;

fn see(path: &Path) -> Seen {
    std::fs::read(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => "it does not exist".to_string(),
        _ => error.to_string(),
    })
}

/// The server's certificate chain and key, known to match.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A CRL file's last good contents.
struct LoadedCrl {
    ders: Vec<CertificateRevocationListDer<'static>>,
}

/// Where a CRL stands in its issuer's sequence: the CRL number when it has one, and its
/// thisUpdate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CrlPosition {
    number: Option<x509_parser::num_bigint::BigUint>,
    this_update: i64,
}

impl LoadedCrl {
    /// Each CRL's issuer (raw name) with its position.
    fn positions(&self) -> Vec<(Vec<u8>, CrlPosition)> {
        self.ders
            .iter()
            .filter_map(|der| CertificateRevocationList::from_der(der.as_ref()).ok())
            .map(|(_, crl)| {
                let position = CrlPosition {
                    number: crl.crl_number().cloned(),
                    this_update: crl.last_update().timestamp(),
                };
                (crl.issuer().as_raw().to_vec(), position)
            })
            .collect()
    }

    /// Refuses a CRL older than the one it replaces for the same issuer: copying back an
    /// older CRL would lift every revocation made since.
    fn check_not_older_than(&self, previous: &LoadedCrl, path: &Path) -> anyhow::Result<()> {
        let before = previous.positions();
        for (issuer, now) in self.positions() {
            let older = before.iter().find(|(was_issuer, was)| {
                *was_issuer == issuer
                    && match (&now.number, &was.number) {
                        (Some(number), Some(was_number)) => number < was_number,
                        _ => now.this_update < was.this_update,
                    }
            });
            if let Some((_, was)) = older {
                let describe = |position: &CrlPosition| match &position.number {
                    // Hex, as `wstunnel pki`, `crlnumber` and openssl show CRL numbers.
                    Some(number) => {
                        format!("CRL number 0x{}", number.to_str_radix(16).to_uppercase())
                    }
                    None => format!("thisUpdate {}", position.this_update),
                };
                bail!(
                    "{} is older than the CRL in use ({} < {}): an older CRL would lift the \
                     revocations made since; publish a new one with `wstunnel pki gen-crl \
                     --dir DIR`",
                    path.display(),
                    describe(&now),
                    describe(was)
                );
            }
        }
        Ok(())
    }
}

/// The last good contents of every piece, and what each file looked like at the last poll.
struct Pieces {
    identity: Identity,
    identity_seen: Option<(Seen, Seen)>,
    client_ca: Option<Vec<CertificateDer<'static>>>,
    client_ca_seen: Option<Seen>,
    crls: Vec<Option<LoadedCrl>>,
    crls_seen: Vec<Seen>,
}

/// The current server TLS configuration, replaced as files change.
pub struct ServerTls {
    files: ServerTlsFiles,
    config: RwLock<Arc<ServerConfig>>,
    revocations: watch::Sender<Arc<Revocations>>,
}

impl ServerTls {
    /// Loads every file and builds the first configuration; starts the watcher.
    ///
    /// # Errors
    /// When a file cannot be read or parsed, the key does not match the certificate, or a CRL
    /// is not signed by the client CA. A missing `Optional` CRL is only a WARN.
    pub fn load(files: ServerTlsFiles) -> anyhow::Result<Arc<ServerTls>> {
        let pieces = load_pieces(&files)?;
        let (config, revocations) = build(&pieces)?;
        let (sender, _) = watch::channel(Arc::new(revocations));
        let tls = Arc::new(ServerTls {
            files,
            config: RwLock::new(config),
            revocations: sender,
        });
        let watcher = Arc::clone(&tls);
        tokio::spawn(async move { watcher.watch(pieces).await });
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

    /// Polls the files and swaps in a new configuration after a usable change.
    async fn watch(self: Arc<Self>, mut pieces: Pieces) {
        let mut ticker = tokio::time::interval(POLL_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let files = self.files.clone();
            let polled = tokio::task::spawn_blocking(move || {
                let changed = poll(&files, &mut pieces);
                (pieces, changed)
            })
            .await;
            let Ok((polled_pieces, changed)) = polled else {
                // The poll panicked: the pieces are lost with it, nothing sensible can go on.
                tracing::error!("the TLS file watcher stopped; restart the server to reload");
                return;
            };
            pieces = polled_pieces;
            if changed.is_empty() {
                continue;
            }
            match build(&pieces) {
                Ok((config, revocations)) => {
                    if let Ok(mut current) = self.config.write() {
                        *current = config;
                    }
                    self.revocations.send_replace(Arc::new(revocations));
                    tracing::info!(
                        "TLS files changed: new handshakes use the new certificates ({})",
                        changed.join(", ")
                    );
                }
                Err(error) => {
                    tracing::error!(
                        "TLS files changed but cannot be used, keeping the old ones: {error:#}"
                    );
                }
            }
        }
    }
}

/// The first load: every configured file must be usable, except an `Optional` CRL that does
/// not exist yet.
fn load_pieces(files: &ServerTlsFiles) -> anyhow::Result<Pieces> {
    let (identity, identity_seen) = match &files.identity {
        IdentitySource::Files {
            certificate,
            private_key,
        } => {
            let seen = (see(certificate), see(private_key));
            let identity = identity_from(&seen, certificate, private_key)?;
            (identity, Some(seen))
        }
        IdentitySource::SelfSigned => (self_signed()?, None),
    };

    let client_ca_seen = files.client_ca.as_deref().map(see);
    let client_ca = match (&files.client_ca, &client_ca_seen) {
        (Some(path), Some(seen)) => Some(client_ca_from(seen, path)?),
        _ => None,
    };

    let mut crls = Vec::new();
    let mut crls_seen = Vec::new();
    for crl in &files.crls {
        let seen = see(&crl.path);
        let loaded = match (&seen, crl.presence) {
            (Err(_), Presence::Optional) if !crl.path.exists() => {
                tracing::warn!(
                    "{} does not exist: client certificates are not checked for revocation \
                     until a CRL is published there (`wstunnel pki gen-crl --dir {}`); the \
                     server picks it up without a restart",
                    crl.path.display(),
                    pki_dir_of(&crl.path).display()
                );
                None
            }
            _ => Some(crl_from(
                &seen,
                &crl.path,
                client_ca.as_deref().unwrap_or_default(),
            )?),
        };
        crls.push(loaded);
        crls_seen.push(seen);
    }
    Ok(Pieces {
        identity,
        identity_seen,
        client_ca,
        client_ca_seen,
        crls,
        crls_seen,
    })
}

/// Reads every file again and takes each usable change; returns what changed. Unusable
/// changes are logged once (when the file's state changes) and the last good piece stays.
fn poll(files: &ServerTlsFiles, pieces: &mut Pieces) -> Vec<String> {
    let mut changed = Vec::new();

    if let (
        IdentitySource::Files {
            certificate,
            private_key,
        },
        Some(previous),
    ) = (&files.identity, &mut pieces.identity_seen)
    {
        let seen = (see(certificate), see(private_key));
        if seen != *previous {
            match identity_from(&seen, certificate, private_key) {
                Ok(identity) => {
                    pieces.identity = identity;
                    changed.push("server certificate and key".to_string());
                }
                Err(error) => {
                    tracing::warn!("keeping the previous server certificate and key: {error:#}")
                }
            }
            *previous = seen;
        }
    }

    let mut ca_changed = false;
    if let (Some(path), Some(previous)) = (&files.client_ca, &mut pieces.client_ca_seen) {
        let seen = see(path);
        if seen != *previous {
            match client_ca_from(&seen, path) {
                Ok(roots) => {
                    pieces.client_ca = Some(roots);
                    ca_changed = true;
                    changed.push("client CA".to_string());
                }
                Err(error) => tracing::warn!("keeping the previous client CA: {error:#}"),
            }
            *previous = seen;
        }
    }
    let roots = pieces.client_ca.clone().unwrap_or_default();

    for (index, crl) in files.crls.iter().enumerate() {
        let seen = see(&crl.path);
        let file_changed = seen != pieces.crls_seen[index];
        if !file_changed && !ca_changed {
            continue;
        }
        let had_one = pieces.crls[index].is_some();
        let loaded = crl_from(&seen, &crl.path, &roots).and_then(|loaded| {
            if let (Some(previous), false) = (&pieces.crls[index], ca_changed) {
                loaded.check_not_older_than(previous, &crl.path)?;
            }
            Ok(loaded)
        });
        match loaded {
            Ok(loaded) => {
                pieces.crls[index] = Some(loaded);
                changed.push(format!("CRL {}", crl.path.display()));
            }
            // A CRL of the previous CA says nothing about the new CA's certificates, and one
            // with the new CA's name but another key would make the verifier refuse everyone.
            Err(error) if ca_changed && had_one => {
                pieces.crls[index] = None;
                changed.push(format!("CRL {} dropped", crl.path.display()));
                tracing::warn!(
                    "the client CA changed and {} no longer matches it, so it is not used: \
                     revocation is not checked until a CRL of the new CA is published there: \
                     {error:#}",
                    crl.path.display()
                );
            }
            Err(_) if !had_one && !file_changed => {}
            Err(error) if had_one => tracing::warn!(
                "keeping the previous CRL of {} (revocations stay in force): {error:#}",
                crl.path.display()
            ),
            Err(error) => tracing::warn!("{error:#}"),
        }
        pieces.crls_seen[index] = seen;
    }
    changed
}

/// Refuses a leaf certificate whose extended key usage leaves out serverAuth (a client
/// certificate passed as the server's): every client would refuse it, each with a TLS error,
/// while the server itself would look healthy. No extension means any purpose.
fn check_server_purpose(chain: &[CertificateDer<'static>], path: &Path) -> anyhow::Result<()> {
    let Some(leaf) = chain.first() else {
        return Ok(());
    };
    let Ok((_, parsed)) = X509Certificate::from_der(leaf.as_ref()) else {
        return Ok(());
    };
    let Ok(Some(usage)) = parsed.extended_key_usage() else {
        return Ok(());
    };
    if usage.value.server_auth || usage.value.any {
        return Ok(());
    }
    let mut purposes = Vec::new();
    if usage.value.client_auth {
        purposes.push("clientAuth".to_string());
    }
    purposes.extend(usage.value.other.iter().map(|oid| oid.to_id_string()));
    bail!(
        "{} is not a server certificate (extended key usage: {}): clients would refuse it; \
         issue one with `wstunnel pki issue-server --dir DIR` (or pick it with --pki-server \
         NAME)",
        path.display(),
        purposes.join(", ")
    )
}

fn identity_from(seen: &(Seen, Seen), certificate: &Path, key: &Path) -> anyhow::Result<Identity> {
    let certificate_bytes = seen
        .0
        .as_ref()
        .map_err(|why| anyhow::anyhow!("cannot read {}: {why}", certificate.display()))?;
    let key_bytes = seen
        .1
        .as_ref()
        .map_err(|why| anyhow::anyhow!("cannot read {}: {why}", key.display()))?;
    let identity = Identity {
        chain: files::certificates_from(certificate_bytes, certificate)?,
        key: files::private_key_from(key_bytes, key)?,
    };
    check_server_purpose(&identity.chain, certificate)?;
    // Pairing the two in a throw-away configuration proves the key matches the certificate.
    ServerConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|error| super::files::pair_error(&error, certificate, key))?;
    Ok(identity)
}

fn self_signed() -> anyhow::Result<Identity> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .context("cannot generate a self-signed certificate")?;
    Ok(Identity {
        chain: vec![generated.cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        )),
    })
}

fn client_ca_from(seen: &Seen, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = seen
        .as_ref()
        .map_err(|why| anyhow::anyhow!("cannot read {}: {why}", path.display()))?;
    let certificates = files::certificates_from(bytes, path)?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in &certificates {
        roots.add(certificate.clone()).with_context(|| {
            format!(
                "{} holds a certificate that is not a usable CA",
                path.display()
            )
        })?;
    }
    Ok(certificates)
}

/// Reads a CRL file and checks that each CRL in it is issued and signed by one of the client
/// CAs, or by an intermediate CA that one of them signed (an intermediate's certificate is
/// looked for where the PKI layout puts it: `certs/ca.cert.pem` beside the CRL's `crl/`
/// folder). A CRL of another CA with a client CA's name would make the verifier refuse every
/// client. Warns when a CRL's nextUpdate has passed: it is still used, but it is stale.
fn crl_from(
    seen: &Seen,
    path: &Path,
    roots: &[CertificateDer<'static>],
) -> anyhow::Result<LoadedCrl> {
    let bytes = seen
        .as_ref()
        .map_err(|why| anyhow::anyhow!("cannot read CRL {}: {why}", path.display()))?;
    let ders = files::crls_from(bytes, path)?;
    let intermediates = std::fs::read(pki_dir_of(path).join("certs/ca.cert.pem"))
        .ok()
        .and_then(|bytes| files::certificates_from(&bytes, path).ok())
        .unwrap_or_default();
    for der in &ders {
        check_crl(der.as_ref(), path, roots, &intermediates)?;
    }
    Ok(LoadedCrl { ders })
}

fn check_crl(
    der: &[u8],
    path: &Path,
    roots: &[CertificateDer<'static>],
    beside: &[CertificateDer<'static>],
) -> anyhow::Result<()> {
    let (_, crl) = CertificateRevocationList::from_der(der)
        .map_err(|error| anyhow::anyhow!("{}: CRL does not parse: {error}", path.display()))?;
    let issuer = crl.issuer();
    let cas = parse_certificates(roots);
    // Intermediates count when a client CA signed them.
    let intermediates: Vec<X509Certificate<'_>> = parse_certificates(beside)
        .into_iter()
        .filter(|candidate| {
            cas.iter().any(|ca| {
                ca.subject().as_raw() == candidate.issuer().as_raw()
                    && candidate.verify_signature(Some(ca.public_key())).is_ok()
            })
        })
        .collect();
    let same_name: Vec<&X509Certificate<'_>> = cas
        .iter()
        .chain(&intermediates)
        .filter(|ca| ca.subject().as_raw() == issuer.as_raw())
        .collect();
    if same_name.is_empty() {
        let known = cas
            .iter()
            .map(|ca| format!("`{}`", ca.subject()))
            .collect::<Vec<_>>()
            .join(", ");
        bail!(
            "{} is a CRL of `{issuer}`, not of the client CA ({known}) nor of an intermediate \
             CA it signed: use the CRL that the client CA publishes (`wstunnel pki gen-crl \
             --dir DIR` writes DIR/crl/ca.crl.pem)",
            path.display()
        );
    }
    if !same_name
        .iter()
        .any(|ca| crl.verify_signature(ca.public_key()).is_ok())
    {
        bail!(
            "{}: the CRL names the client CA `{issuer}` as its issuer but is not signed by \
             that CA's key (another CA with the same name made it): use the CRL that the \
             client CA publishes (`wstunnel pki gen-crl --dir DIR`)",
            path.display()
        );
    }
    if let Some(next_update) = crl.next_update()
        && next_update < x509_parser::time::ASN1Time::now()
    {
        tracing::warn!(
            "{}: the CRL's nextUpdate ({next_update}) has passed; it is still used, but publish \
             a fresh one (`wstunnel pki gen-crl --dir DIR`)",
            path.display()
        );
    }
    Ok(())
}

fn parse_certificates<'a>(certificates: &'a [CertificateDer<'static>]) -> Vec<X509Certificate<'a>> {
    certificates
        .iter()
        .filter_map(|der| {
            X509Certificate::from_der(der.as_ref())
                .ok()
                .map(|(_, ca)| ca)
        })
        .collect()
}

/// `DIR` for `DIR/crl/ca.crl.pem`, for the hint; the file's folder otherwise.
fn pki_dir_of(crl: &Path) -> PathBuf {
    let folder = crl.parent().unwrap_or(Path::new("."));
    match folder.file_name() {
        Some(name) if name == "crl" => folder.parent().unwrap_or(Path::new(".")).to_path_buf(),
        _ => folder.to_path_buf(),
    }
}

fn build(pieces: &Pieces) -> anyhow::Result<(Arc<ServerConfig>, Revocations)> {
    let builder = ServerConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;

    let mut revocations = Revocations::default();
    let builder = match &pieces.client_ca {
        Some(certificates) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates {
                roots
                    .add(certificate.clone())
                    .context("a client CA certificate became unusable")?;
            }
            let mut crls = Vec::new();
            for loaded in pieces.crls.iter().flatten() {
                for der in &loaded.ders {
                    add_revoked_serials(&mut revocations, der.as_ref())?;
                    crls.push(der.clone());
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
        None => builder.with_no_client_auth(),
    };

    let mut config = builder
        .with_single_cert(
            pieces.identity.chain.clone(),
            pieces.identity.key.clone_key(),
        )
        .context("the server certificate and key do not form a usable pair")?;
    // One connection carries one tunnel, and the client resumes the next connection with one
    // ticket: a second ticket (rustls' default) would be computed and stored for nothing.
    // Each rebuild starts a new session cache, so no session outlives a CRL change.
    config.send_tls13_tickets = 1;
    // HTTP/2 is not served: offering only http/1.1 keeps h2-capable clients on WebSocket.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), revocations))
}

fn add_revoked_serials(revocations: &mut Revocations, der: &[u8]) -> anyhow::Result<()> {
    let (_, crl) = CertificateRevocationList::from_der(der)
        .map_err(|error| anyhow::anyhow!("a loaded CRL does not parse any more: {error}"))?;
    let issuer = crl.issuer().as_raw().to_vec();
    for revoked in crl.iter_revoked_certificates() {
        revocations
            .revoked
            .insert((issuer.clone(), revoked.raw_serial().to_vec()));
    }
    Ok(())
}
