//! The certificate authority: `init`, `open`, issuing, signing requests, revoking and CRLs.
//!
//! Every file is written atomically; `index.txt`, `serial` and `crlnumber` change only under
//! the directory lock. Certificates are ordered so that an interrupted command leaves a
//! directory both we and `openssl ca` can use: the certificate copies and the counters are
//! written before `certs/NAME.cert.pem`, which marks a finished issue.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rcgen::{CertificateParams, Issuer, KeyPair, PublicKeyData, SerialNumber};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;

use super::database::{self, Index, IndexEntry, RevocationReason, Serial, Status};
use super::fsutil::{
    DirLock, FileMode, PreparedFile, Rollback, pem_text, remove_stale_temp_files, rename_new,
    write_atomic, write_new,
};
use super::keys::{self, KeyType, Passphrase};
use super::profile::{self, AltName, IssuerInfo, Profile};
use super::staging::Staging;
use super::subject::{Field, Subject};
use super::{config, layout};

/// Options of [`Ca::init`].
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// CN of the CA; by default `wstunnel Development Root CA`.
    pub common_name: Option<String>,
    /// The whole subject; by default the walkthrough's (C=GB, ST=England,
    /// O=wstunnel development) with the CN.
    pub subject: Option<Subject>,
    /// By default rsa4096, as in the walkthrough.
    pub key_type: KeyType,
    /// Validity in days; by default 7300.
    pub days: u32,
    /// Encrypts `private/ca.key.pem` with this passphrase; by default it is not encrypted.
    pub encrypt_key: Option<Passphrase>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            common_name: None,
            subject: None,
            key_type: KeyType::Rsa4096,
            days: 7300,
            encrypt_key: None,
        }
    }
}

/// Which subjectAltNames a server certificate gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SanPolicy {
    /// `localhost`, `127.0.0.1`, `::1` plus the requested ones (what rustls needs).
    ServerDefaults,
    /// Only the requested ones, possibly none (the walkthrough's server certificate).
    AsRequested,
}

/// An explicit validity window (for expired or not-yet-valid test fixtures).
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// What to issue with [`Ca::issue`].
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// File stem: `private/NAME.pem`, `csr/NAME.csr.pem`, `certs/NAME.cert.pem`.
    pub name: String,
    pub profile: Profile,
    /// CN; by default NAME (or the CN of `subject`).
    pub cn: Option<String>,
    /// The whole subject; by default the walkthrough's with the CN.
    pub subject: Option<Subject>,
    /// Extra subjectAltNames. Server certificates always get `localhost`, `127.0.0.1`, `::1`.
    pub sans: Vec<AltName>,
    /// Validity in days from now; by default 375. Ignored when `validity` is set.
    pub days: u32,
    /// By default rsa2048.
    pub key_type: KeyType,
    /// An explicit window instead of now..now+days.
    pub validity: Option<Validity>,
}

impl IssueRequest {
    /// A request with the walkthrough's defaults.
    pub fn new(name: impl Into<String>, profile: Profile) -> IssueRequest {
        IssueRequest {
            name: name.into(),
            profile,
            cn: None,
            subject: None,
            sans: Vec::new(),
            days: 375,
            key_type: KeyType::Rsa2048,
            validity: None,
        }
    }
}

/// A certificate that was issued.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Issued {
    pub name: String,
    #[serde(serialize_with = "serialize_display")]
    pub serial: Serial,
    pub subject: String,
    pub cert_path: PathBuf,
    /// None for `sign-csr`, where the key stays with whoever made the request.
    pub key_path: Option<PathBuf>,
    pub csr_path: PathBuf,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub not_after: OffsetDateTime,
}

/// Serialises a time as RFC 3339 (serde helper).
pub(crate) fn serialize_rfc3339<S: serde::Serializer>(
    value: &OffsetDateTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let text = value
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

/// Serialises an optional time as RFC 3339 or null (serde helper).
pub(crate) fn serialize_rfc3339_option<S: serde::Serializer>(
    value: &Option<OffsetDateTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serialize_rfc3339(value, serializer),
        None => serializer.serialize_none(),
    }
}

fn serialize_display<S: serde::Serializer>(
    value: &impl std::fmt::Display,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Which certificate to revoke.
#[derive(Clone, Debug)]
pub enum RevokeTarget {
    /// The certificate in `certs/NAME.cert.pem`.
    Name(String),
    /// Any certificate in `index.txt`.
    Serial(Serial),
    /// A certificate file this CA issued, wherever it is; nothing is moved aside.
    File(PathBuf),
}

/// A CRL that was written.
#[derive(Clone, Debug)]
pub struct CrlInfo {
    pub path: PathBuf,
    pub number: Serial,
    pub revoked: usize,
}

/// An opened CA directory with its certificate and key.
pub struct Ca {
    dir: PathBuf,
    cert_der: Vec<u8>,
    key: KeyPair,
    issuer_info: IssuerInfo,
    subject_der: Vec<u8>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Creates a CA in `dir`: the walkthrough's layout, `openssl.cnf`, `serial` 1000,
    /// `crlnumber`, an empty `index.txt`, the CA key and self-signed certificate (`v3_ca`),
    /// and an initial empty CRL numbered 1000 (so `crlnumber` then holds 1001).
    ///
    /// The CA is built in a hidden sibling of `dir` and renamed to `dir` when complete (see
    /// [`Staging`]), so an interrupted init leaves either no CA or a complete one. `dir` may be
    /// missing (its parents are created) or an empty directory, which is replaced.
    ///
    /// # Errors
    /// Refuses a directory that already holds a CA, a path that is a file, a non-empty
    /// directory, or a parent that is not writable; in those cases nothing is written.
    pub fn init(dir: &Path, options: InitOptions) -> anyhow::Result<Ca> {
        check_new_ca_dir(dir, NewDirCommand::Init)?;
        check_days(options.days, "--days")?;
        let subject = init_subject(&options)?;
        let staging = Staging::begin(dir)?;
        let ca = Ca::build(staging.path(), staging.target(), &subject, options)?;
        let dir = staging.commit()?;
        tracing::debug!(dir = %dir.display(), "created the CA");
        Ok(ca.moved_to(dir))
    }

    /// Builds a CA in `build_dir` (created if missing; not yet the CA's final place) whose
    /// `openssl.cnf` names `final_dir`. The directory lock file stays in `build_dir`.
    ///
    /// # Errors
    /// As [`Ca::init`]; a failure leaves `build_dir` partly written, for the caller's
    /// [`Staging`] to remove.
    pub(crate) fn init_staged(
        build_dir: &Path,
        final_dir: &Path,
        options: InitOptions,
    ) -> anyhow::Result<Ca> {
        let subject = init_subject(&options)?;
        Ca::build(build_dir, final_dir, &subject, options)
    }

    fn build(
        build_dir: &Path,
        final_dir: &Path,
        subject: &Subject,
        options: InitOptions,
    ) -> anyhow::Result<Ca> {
        let lock = create_layout(build_dir, final_dir)?;
        let dir = build_dir;

        let key = options.key_type.generate()?;
        let key_pem = keys::key_to_pem(key.serialized_der(), options.encrypt_key.as_ref())?;
        let now = now_seconds();
        let mut params = CertificateParams::default();
        params.distinguished_name = subject.to_rcgen()?;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        params.not_before = now;
        params.not_after = add_days(now, options.days, "--days")?;
        params.custom_extensions = profile::ca_extensions(key.public_key_raw());
        let cert = params
            .self_signed(&key)
            .context("cannot sign the CA certificate")?;
        write_new(
            &layout::ca_key_path(dir),
            key_pem.as_bytes(),
            FileMode::Private,
        )?;
        write_new(
            &layout::ca_cert_path(dir),
            cert.pem().as_bytes(),
            FileMode::Public,
        )?;

        let ca = Ca::from_parts(dir, cert.der().to_vec(), key)?;
        ca.gen_crl_locked(30)?;
        drop(lock);
        Ok(ca)
    }

    /// The same CA after its directory was renamed to `dir`.
    pub(crate) fn moved_to(mut self, dir: PathBuf) -> Ca {
        self.dir = dir;
        self
    }

    /// Creates an intermediate CA in `build_dir` (its own layout, database and CRL, like
    /// [`Ca::init_staged`], with `openssl.cnf` naming `final_dir`) whose certificate this CA
    /// issues as `NAME` (recorded in this CA's `index.txt`), with the `v3_intermediate_ca`
    /// profile of the OpenSSL guide the walkthrough follows (`pathlen:0`).
    /// `certs/ca-chain.cert.pem` holds the intermediate then this CA's certificate.
    ///
    /// # Errors
    /// As [`Ca::init`], and refuses an invalid or existing NAME in this CA.
    pub(crate) fn init_intermediate(
        &self,
        build_dir: &Path,
        final_dir: &Path,
        name: &str,
        options: InitOptions,
    ) -> anyhow::Result<Ca> {
        layout::validate_new_name(name)?;
        self.check_name_free(name)?;
        check_new_ca_dir(build_dir, NewDirCommand::Init)?;
        let validity = days_from_now(options.days)?;
        let subject = init_subject(&options)?;
        let key = options.key_type.generate()?;
        let key_pem = keys::key_to_pem(key.serialized_der(), options.encrypt_key.as_ref())?;
        let extensions =
            profile::intermediate_ca_extensions(key.public_key_raw(), &self.issuer_info);
        let lock = create_layout(build_dir, final_dir)?;
        let dir = build_dir;

        let issued = {
            let _parent_lock = self.lock()?;
            self.check_name_free(name)?;
            self.sign_locked(name, &subject, &key, extensions, validity, &[])?
        };
        let cert_der = read_certificate_pem(&issued.cert_path)?;
        let cert_pem = pem_text("CERTIFICATE", &cert_der);
        let parent_pem = pem_text("CERTIFICATE", &self.cert_der);
        write_new(
            &layout::ca_key_path(dir),
            key_pem.as_bytes(),
            FileMode::Private,
        )?;
        write_new(
            &layout::ca_cert_path(dir),
            cert_pem.as_bytes(),
            FileMode::Public,
        )?;
        write_atomic(
            &layout::ca_chain_path(dir),
            format!("{cert_pem}{parent_pem}").as_bytes(),
            FileMode::Public,
        )?;

        let ca = Ca::from_parts(dir, cert_der, key)?;
        ca.gen_crl_locked(30)?;
        drop(lock);
        tracing::debug!(dir = %final_dir.display(), "created an intermediate CA");
        Ok(ca)
    }

    /// Opens the CA in `dir`, reading `certs/ca.cert.pem` and `private/ca.key.pem` (PKCS#8,
    /// PKCS#1, SEC1, or encrypted PKCS#8 with `passin`).
    ///
    /// # Errors
    /// Fails if `dir` holds no CA, a file is unreadable or damaged, the key is encrypted and
    /// no passphrase is given, or the key does not match the certificate.
    pub fn open(dir: &Path, passin: Option<&Passphrase>) -> anyhow::Result<Ca> {
        let cert_path = layout::ca_cert_path(dir);
        if !cert_path.exists() {
            bail!(
                "{} holds no CA ({} is missing); create one with `wstunnel pki init {}` or point \
                 --dir at an existing CA",
                dir.display(),
                cert_path.display(),
                dir.display()
            );
        }
        let cert_der = read_certificate_pem(&cert_path)?;
        let key_path = layout::ca_key_path(dir);
        let key = keys::load_key(&key_path, passin)?.key_pair;
        let ca = Ca::from_parts(dir, cert_der, key)?;
        Ok(ca)
    }

    fn from_parts(dir: &Path, cert_der: Vec<u8>, key: KeyPair) -> anyhow::Result<Ca> {
        let cert_path = layout::ca_cert_path(dir);
        let (_, cert) =
            x509_parser::certificate::X509Certificate::from_der(&cert_der).map_err(|e| {
                anyhow::anyhow!("{} is not a valid certificate: {e}", cert_path.display())
            })?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            bail!(
                "{} does not match the CA certificate {}; restore the key that belongs to it",
                layout::ca_key_path(dir).display(),
                cert_path.display()
            );
        }
        let issuer_info = IssuerInfo {
            key_id: profile::subject_key_id_of(&cert),
            issuer_name_der: cert.issuer().as_raw().to_vec(),
            serial: cert.raw_serial().to_vec(),
        };
        let subject_der = cert.subject().as_raw().to_vec();
        Ok(Ca {
            dir: dir.to_path_buf(),
            cert_der,
            key,
            issuer_info,
            subject_der,
        })
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// DER of the CA certificate.
    #[allow(dead_code)] // Library API for the tunnel and dev-env subsystems.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Issues a key, request and certificate for `request.name` with the server or client
    /// profile, taking the next serial and adding a line to `index.txt`.
    ///
    /// # Errors
    /// Refuses an invalid or existing NAME (saying how to revoke and reissue), a bad subject,
    /// or an unwritable directory.
    pub fn issue(&self, request: IssueRequest) -> anyhow::Result<Issued> {
        self.issue_with(request, SanPolicy::ServerDefaults)
    }

    /// [`Ca::issue`] with a choice of subjectAltNames (fixtures need the walkthrough's
    /// server certificate without any).
    pub(crate) fn issue_with(
        &self,
        request: IssueRequest,
        san_policy: SanPolicy,
    ) -> anyhow::Result<Issued> {
        layout::validate_new_name(&request.name)?;
        self.check_name_free(&request.name)?;
        let validity = match request.validity {
            Some(validity) => validity,
            None => days_from_now(request.days)?,
        };
        let subject = leaf_subject(
            &request.name,
            request.cn.as_deref(),
            request.subject.clone(),
        )?;
        let alt_names = match (request.profile, san_policy) {
            (Profile::Server, SanPolicy::ServerDefaults) => {
                profile::server_alt_names(&request.sans)
            }
            _ => request.sans.clone(),
        };
        let key = request.key_type.generate()?;
        let extensions = profile::leaf_extensions(
            request.profile,
            key.public_key_raw(),
            &self.issuer_info,
            &alt_names,
        )?;
        let csr_pem = make_request(&subject, &alt_names, &key)?;
        let key_pem = keys::key_to_pem(key.serialized_der(), None)?;

        let _lock = self.lock()?;
        self.check_name_free(&request.name)?;
        let key_path = layout::key_path(&self.dir, &request.name);
        let csr_path = layout::csr_path(&self.dir, &request.name);
        let mut issued = self.sign_locked(
            &request.name,
            &subject,
            &key,
            extensions,
            validity,
            &[
                (key_path.clone(), key_pem.into_bytes(), FileMode::Private),
                (csr_path.clone(), csr_pem.into_bytes(), FileMode::Public),
            ],
        )?;
        issued.key_path = Some(key_path);
        issued.csr_path = csr_path;
        tracing::debug!(name = %issued.name, serial = %issued.serial, "issued a certificate");
        Ok(issued)
    }

    /// Signs a PEM certificate request made elsewhere, after checking its signature, with
    /// the given profile; keeps a copy in `csr/NAME.csr.pem`. The request's subjectAltNames
    /// are kept (as `openssl ca` with `copy_extensions = copy`); a server certificate whose
    /// request has none gets `localhost`, `127.0.0.1`, `::1`, plus `extra_sans`.
    ///
    /// # Errors
    /// Fails on a file that is not a request, a bad signature, an invalid or existing NAME.
    pub fn sign_csr(
        &self,
        csr_pem: &[u8],
        profile: Profile,
        name: &str,
        extra_sans: &[AltName],
        days: u32,
    ) -> anyhow::Result<Issued> {
        layout::validate_new_name(name)?;
        self.check_cert_free(name)?;
        let validity = days_from_now(days)?;
        let blocks = pem::parse_many(csr_pem).context("the PEM armour is damaged")?;
        let Some(block) = blocks
            .iter()
            .find(|b| b.tag().ends_with("CERTIFICATE REQUEST"))
        else {
            match blocks.first() {
                Some(other) => bail!(
                    "it holds a {:?} PEM block, not a CERTIFICATE REQUEST",
                    other.tag()
                ),
                None => {
                    bail!("it holds no PEM block (expected -----BEGIN CERTIFICATE REQUEST-----)")
                }
            }
        };
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(
            block.contents(),
        )
        .map_err(|e| anyhow::anyhow!("the request is malformed: {e}"))?;
        csr.verify_signature().map_err(|_| {
            anyhow::anyhow!("the request's signature does not verify; it was altered or damaged")
        })?;
        let subject = Subject::from_x509(&csr.certification_request_info.subject)?;
        if subject.common_name().is_none() {
            bail!(
                "the request has no commonName (CN), which the walkthrough's policy requires; \
                 make it again with a CN (for example `openssl req -subj /CN=NAME`)"
            );
        }
        check_common_name(&subject).context("the request's subject is refused")?;
        let mut alt_names = profile::requested_alt_names(&csr)?;
        for extra in extra_sans {
            if !alt_names.contains(extra) {
                alt_names.push(extra.clone());
            }
        }
        if profile == Profile::Server && alt_names.is_empty() {
            alt_names = profile::server_alt_names(&[]);
        }
        let spki = &csr.certification_request_info.subject_pki;
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki.raw).map_err(|e| {
            anyhow::anyhow!(
                "the request's public key type is not supported ({e}); make the request with \
                     an RSA, ECDSA P-256/P-384 or Ed25519 key"
            )
        })?;
        let copy = pem_text("CERTIFICATE REQUEST", block.contents());
        let extensions = profile::leaf_extensions(
            profile,
            spki.subject_public_key.data.as_ref(),
            &self.issuer_info,
            &alt_names,
        )?;

        self.check_key_matches_request(name, spki.subject_public_key.data.as_ref())?;

        let _lock = self.lock()?;
        self.check_cert_free(name)?;
        let csr_path = layout::csr_path(&self.dir, name);
        // The walkthrough makes the request in csr/NAME.csr.pem itself: keep that file.
        let copy_file = if csr_path.exists() {
            self.check_same_request(&csr_path, block.contents())?;
            Vec::new()
        } else {
            vec![(csr_path.clone(), copy.into_bytes(), FileMode::Public)]
        };
        let mut issued = self.sign_locked(
            name,
            &subject,
            &public_key,
            extensions,
            validity,
            &copy_file,
        )?;
        issued.csr_path = csr_path;
        tracing::debug!(name = %issued.name, serial = %issued.serial, "signed a request");
        Ok(issued)
    }

    /// Refuses NAME if its certificate or key exists (issue writes both).
    fn check_name_free(&self, name: &str) -> anyhow::Result<()> {
        self.check_cert_free(name)?;
        let cert = layout::cert_path(&self.dir, name);
        let key = layout::key_path(&self.dir, name);
        if key.exists() {
            // validate_name keeps NAME's files apart from the CA's; never advise removing one.
            let advice = if layout::is_ca_file(&self.dir, &key) {
                "choose another NAME"
            } else {
                "move it away if it is not needed, or choose another NAME"
            };
            bail!(
                "{} exists without {} (an interrupted run?); {advice}",
                key.display(),
                cert.display()
            );
        }
        Ok(())
    }

    /// Refuses NAME if `certs/NAME.cert.pem` exists, saying how to revoke and reissue.
    fn check_cert_free(&self, name: &str) -> anyhow::Result<()> {
        let cert = layout::cert_path(&self.dir, name);
        if cert.exists() {
            bail!(
                "{} already exists; to replace it run `wstunnel pki revoke {name}` (which moves \
                 its files aside) and issue it again, or choose another NAME",
                cert.display()
            );
        }
        Ok(())
    }

    /// `sign-csr` writes no key, so an existing `private/NAME.pem` (the walkthrough makes it
    /// with `openssl genrsa` before the request) is fine if it holds the request's key.
    fn check_key_matches_request(&self, name: &str, request_key: &[u8]) -> anyhow::Result<()> {
        let key_path = layout::key_path(&self.dir, name);
        if !key_path.exists() {
            return Ok(());
        }
        let key = keys::load_key(&key_path, None).with_context(|| {
            format!(
                "cannot check that {} belongs to the request; move it away or sign with \
                 another --name",
                key_path.display()
            )
        })?;
        if key.key_pair.public_key_raw() != request_key {
            bail!(
                "{} is not the key of this request; sign the request made from that key, or \
                 give another --name",
                key_path.display()
            );
        }
        Ok(())
    }

    /// Refuses an existing `csr/NAME.csr.pem` that holds another request than `request_der`.
    fn check_same_request(&self, csr_path: &Path, request_der: &[u8]) -> anyhow::Result<()> {
        let text =
            fs::read(csr_path).with_context(|| format!("cannot read {}", csr_path.display()))?;
        let same = pem::parse_many(&text)
            .ok()
            .is_some_and(|blocks| blocks.iter().any(|b| b.contents() == request_der));
        if !same {
            bail!(
                "{} already exists and holds another request; move it away, or sign with \
                 another --name",
                csr_path.display()
            );
        }
        Ok(())
    }

    /// Takes the directory lock, then removes temporary files that killed runs left (every
    /// writer holds this lock, so none of them belongs to a live process).
    fn lock(&self) -> anyhow::Result<DirLock> {
        let lock = DirLock::acquire(&layout::lock_path(&self.dir))?;
        let taken = std::time::SystemTime::now();
        let mut dirs = vec![self.dir.clone()];
        dirs.extend(layout::SUBDIRS.iter().map(|sub| self.dir.join(sub)));
        remove_stale_temp_files(&dirs, taken);
        Ok(lock)
    }

    /// Signs under the lock, then writes the files (`extra_files` such as the key and request,
    /// `newcerts/SERIAL.pem`, `certs/NAME.cert.pem`; none replacing an existing file), and
    /// only then commits `serial` and last `index.txt`. A failure removes the files this run
    /// wrote and restores `serial`, so the directory is as it was.
    ///
    /// A run killed after writing files but before `index.txt` leaves them without an index
    /// line; the next run skips a serial whose `newcerts/SERIAL.pem` was left that way, and
    /// `revoke NAME` adds the certificate to `index.txt` as revoked, which frees NAME.
    #[allow(clippy::too_many_arguments)]
    fn sign_locked(
        &self,
        name: &str,
        subject: &Subject,
        public_key: &impl PublicKeyData,
        extensions: Vec<rcgen::CustomExtension>,
        validity: Validity,
        extra_files: &[(PathBuf, Vec<u8>, FileMode)],
    ) -> anyhow::Result<Issued> {
        let serial_path = layout::serial_path(&self.dir);
        let mut index = Index::load(&self.dir)?;
        let serial = self.next_serial(&index)?;

        let mut params = CertificateParams::default();
        params.distinguished_name = subject.to_rcgen()?;
        params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.custom_extensions = extensions;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der.as_slice().into(), &self.key)
            .context("cannot use the CA certificate as issuer")?;
        let cert = params
            .signed_by(public_key, &issuer)
            .context("cannot sign the certificate")?;
        self.check_issuer_name(cert.der())?;

        let pem_text = cert.pem();
        let cert_path = layout::cert_path(&self.dir, name);
        let newcert_path = layout::newcert_path(&self.dir, &serial.to_string());
        let mut rollback = Rollback::default();
        let files = extra_files
            .iter()
            .map(|(path, contents, mode)| (path, contents.as_slice(), *mode))
            .chain([
                (&newcert_path, pem_text.as_bytes(), FileMode::Public),
                (&cert_path, pem_text.as_bytes(), FileMode::Public),
            ]);
        for (path, contents, mode) in files {
            write_new(path, contents, mode)?;
            rollback.created(path.clone());
        }

        database::write_counter(&serial_path, &serial.next())?;
        index.entries.push(IndexEntry::valid(
            serial.clone(),
            validity.not_after,
            subject.oneline(),
        ));
        if let Err(error) = index.save(&self.dir) {
            if let Err(restore) = database::write_counter(&serial_path, &serial) {
                tracing::warn!(%restore, "cannot restore the serial file");
            }
            return Err(error);
        }
        rollback.keep();
        Ok(Issued {
            name: name.to_owned(),
            serial,
            subject: subject.oneline(),
            cert_path,
            key_path: None,
            csr_path: PathBuf::new(),
            not_after: validity.not_after,
        })
    }

    /// The serial to issue next: the `serial` file's, refusing 0 and one already in
    /// `index.txt`, and skipping one whose `newcerts/SERIAL.pem` an interrupted run left.
    fn next_serial(&self, index: &Index) -> anyhow::Result<Serial> {
        let serial_path = layout::serial_path(&self.dir);
        let mut serial = database::read_counter(&serial_path)?;
        if serial.is_zero() {
            bail!(
                "{} holds 0, but serials must be positive; write the next free serial (such as \
                 1000) into it",
                serial_path.display()
            );
        }
        // Bounded so a directory full of leftovers gives an error instead of a long search.
        for _ in 0..64 {
            if index.entries.iter().any(|e| e.serial == serial) {
                bail!(
                    "serial {serial} from {} is already in index.txt; set {} to a higher hex \
                     number",
                    serial_path.display(),
                    serial_path.display()
                );
            }
            let leftover = layout::newcert_path(&self.dir, &serial.to_string());
            if !leftover.exists() {
                return Ok(serial);
            }
            tracing::debug!(path = %leftover.display(), "skipping a serial an interrupted run took");
            serial = serial.next();
        }
        bail!(
            "{} and the following serials all have files in newcerts/ but no line in index.txt; \
             set {} to a free hex number",
            serial_path.display(),
            serial_path.display()
        )
    }

    /// OpenSSL and rustls chain by comparing the issuer name bytes with the CA's subject
    /// bytes, so a re-encoded name would break verification.
    fn check_issuer_name(&self, der: &[u8]) -> anyhow::Result<()> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|e| anyhow::anyhow!("the new certificate does not parse: {e}"))?;
        if cert.issuer().as_raw() != self.subject_der.as_slice() {
            bail!(
                "the CA subject in {} uses an encoding this tool cannot reproduce (multi-valued \
                 or unusual string types); issue with `openssl ca` instead",
                layout::ca_cert_path(&self.dir).display()
            );
        }
        Ok(())
    }

    /// Marks a certificate revoked in `index.txt` (now, with the reason) and regenerates the
    /// CRL (30 days). Revoking by NAME also moves its files aside
    /// (`NAME.revoked-SERIAL.cert.pem`, `.pem`, `.csr.pem`, `.p12`) so the NAME can be issued
    /// again; a NAME already revoked (by `--serial` or `openssl ca -revoke`) is only moved
    /// aside.
    ///
    /// The new `index.txt`, `crlnumber` and CRL are all prepared before any is renamed into
    /// place (in that order, see [`Ca::write_crl`]), and the files are moved last, so a failed
    /// or killed revoke leaves either nothing changed or a state that running the same command
    /// again completes: a serial that `index.txt` marks revoked but the current CRL does not
    /// list gets a new CRL instead of an error.
    ///
    /// # Errors
    /// Fails if the certificate is unknown, already revoked and listed in the CRL when given
    /// by serial, or if a file it would move aside to already exists.
    pub fn revoke(
        &self,
        target: &RevokeTarget,
        reason: Option<RevocationReason>,
    ) -> anyhow::Result<Revocation> {
        let _lock = self.lock()?;
        // The certificate of a NAME, kept to add it to index.txt if an interrupted issue left
        // it without a line there.
        let mut orphan_der = None;
        let serial = match target {
            RevokeTarget::Serial(serial) => serial.clone(),
            RevokeTarget::Name(_) | RevokeTarget::File(_) => {
                let path = match target {
                    RevokeTarget::Name(name) => {
                        layout::validate_name(name)?;
                        layout::cert_path(&self.dir, name)
                    }
                    _ => self.revoke_file_path(target),
                };
                if !path.exists() {
                    bail!(
                        "{} does not exist; see `wstunnel pki list` for what was issued, or \
                         revoke by --serial HEX",
                        path.display()
                    );
                }
                let der = read_certificate_pem(&path)?;
                let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)
                    .map_err(|e| anyhow::anyhow!("{} does not parse: {e}", path.display()))?;
                let serial = Serial::from_bytes(cert.raw_serial());
                orphan_der = Some(der);
                serial
            }
        };
        let moves = match target {
            RevokeTarget::Name(name) => self.aside_moves(name, &serial)?,
            RevokeTarget::Serial(_) | RevokeTarget::File(_) => Vec::new(),
        };
        let mut index = Index::load(&self.dir)?;
        if index.find_mut(&serial).is_none() {
            let Some(der) = orphan_der else {
                bail!(
                    "serial {serial} is not in index.txt; see `wstunnel pki list`, or revoke the \
                     certificate by its NAME or --cert FILE"
                );
            };
            // Like `openssl ca -revoke` for a certificate missing from its database: an issue
            // killed before index.txt leaves a signed certificate that must stay revocable.
            let entry = self.orphan_entry(&self.revoke_file_path(target), &der)?;
            tracing::info!(%serial, "adding a certificate missing from index.txt");
            index.entries.push(entry);
            // The killed issue may not have advanced `serial` either; `openssl ca` would then
            // pick this serial again and fail on the duplicate.
            let serial_path = layout::serial_path(&self.dir);
            if database::read_counter(&serial_path)? <= serial {
                database::write_counter(&serial_path, &serial.next())?;
            }
        }
        let Some(entry) = index.find_mut(&serial) else {
            bail!("serial {serial} is not in index.txt; see `wstunnel pki list`");
        };

        let (outcome, crl) = if entry.status == Status::Revoked {
            let listed = self.crl_lists(&serial);
            match target {
                RevokeTarget::Serial(_) | RevokeTarget::File(_) if listed => bail!(
                    "serial {serial} ({}) is already revoked and listed in {}; nothing to do \
                     (`wstunnel pki gen-crl` writes a fresh CRL)",
                    entry.subject,
                    layout::crl_path(&self.dir).display()
                ),
                // An earlier revoke stopped after index.txt: finish it.
                _ if !listed => (RevokeOutcome::CrlCompleted, self.gen_crl_locked(30)?),
                // Revoked earlier by --serial or by `openssl ca -revoke`: only free the NAME.
                _ => (RevokeOutcome::MovedAside, self.gen_crl_locked(30)?),
            }
        } else {
            entry.revoke(now_seconds(), reason);
            let new_index = index.prepare(&self.dir)?;
            let crl = self.write_crl(&index, Some(new_index), 30)?;
            (RevokeOutcome::Revoked, crl)
        };
        for (from, to) in moves {
            rename_new(&from, &to).with_context(|| {
                format!(
                    "serial {serial} is revoked and in the CRL, but its files were not all moved \
                     aside; run the same revoke again"
                )
            })?;
        }
        tracing::debug!(%serial, ?outcome, "revoked a certificate");
        Ok(Revocation {
            serial,
            outcome,
            crl,
        })
    }

    /// The certificate file a NAME or file target names (empty for a serial).
    fn revoke_file_path(&self, target: &RevokeTarget) -> PathBuf {
        match target {
            RevokeTarget::Name(name) => layout::cert_path(&self.dir, name),
            RevokeTarget::File(path) => path.clone(),
            RevokeTarget::Serial(_) => PathBuf::new(),
        }
    }

    /// The `index.txt` line (valid, to be revoked) of the certificate `der` read from `path`,
    /// which is not in `index.txt`.
    ///
    /// # Errors
    /// Fails if this CA did not issue it: the issuer name or the signature does not match.
    fn orphan_entry(&self, path: &Path, der: &[u8]) -> anyhow::Result<IndexEntry> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|e| anyhow::anyhow!("{} does not parse: {e}", path.display()))?;
        let (_, ca_cert) = x509_parser::certificate::X509Certificate::from_der(&self.cert_der)
            .map_err(|e| anyhow::anyhow!("the CA certificate does not parse: {e}"))?;
        let signed_by_ca = cert.issuer().as_raw() == self.subject_der.as_slice()
            && cert.verify_signature(Some(ca_cert.public_key())).is_ok();
        if !signed_by_ca {
            bail!(
                "{} is not in index.txt and was not issued by the CA {}; there is nothing to \
                 revoke here (move the file away if it does not belong to this CA)",
                path.display(),
                layout::ca_cert_path(&self.dir).display()
            );
        }
        let subject = Subject::from_x509(cert.subject()).with_context(|| {
            format!(
                "cannot write the subject of {} to index.txt",
                path.display()
            )
        })?;
        Ok(IndexEntry::valid(
            Serial::from_bytes(cert.raw_serial()),
            cert.validity().not_after.to_datetime(),
            subject.oneline(),
        ))
    }

    /// The files of NAME that exist, each with the name it is moved aside to; refuses if any
    /// of those already exists, so moving never replaces another certificate's files.
    fn aside_moves(&self, name: &str, serial: &Serial) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
        let aside = layout::revoked_name(name, &serial.to_string());
        // The certificate goes last: while it is in place, `revoke NAME` can finish a run
        // killed between two moves.
        let path_fns: [fn(&Path, &str) -> PathBuf; 4] = [
            layout::key_path,
            layout::csr_path,
            layout::p12_path,
            layout::cert_path,
        ];
        let mut moves = Vec::new();
        for path_of in path_fns {
            let (from, to) = (path_of(&self.dir, name), path_of(&self.dir, &aside));
            if !from.exists() {
                continue;
            }
            if to.exists() || to.is_symlink() {
                bail!(
                    "cannot move {} aside: {} already exists and belongs to another certificate; \
                     move that file elsewhere, then run the revoke again (nothing was changed)",
                    from.display(),
                    to.display()
                );
            }
            moves.push((from, to));
        }
        Ok(moves)
    }

    /// Whether the current CRL (`crl/ca.crl.pem`) lists `serial`; a missing or unreadable CRL
    /// lists nothing.
    fn crl_lists(&self, serial: &Serial) -> bool {
        read_crl_der(&layout::crl_path(&self.dir))
            .ok()
            .and_then(|der| {
                let (_, crl) =
                    x509_parser::revocation_list::CertificateRevocationList::from_der(&der).ok()?;
                Some(
                    crl.iter_revoked_certificates()
                        .any(|r| &Serial::from_bytes(r.raw_serial()) == serial),
                )
            })
            .unwrap_or(false)
    }

    /// Writes a v2 CRL (`crl_ext`: authorityKeyIdentifier keyid, then the CRL number from
    /// `crlnumber`, which is then incremented) listing every revoked serial of `index.txt`
    /// with its time and reason, valid for `days` (1 to 36500).
    ///
    /// # Errors
    /// Fails if `days` is out of range, the database or counter is damaged, or the directory
    /// is not writable.
    pub fn gen_crl(&self, days: u32) -> anyhow::Result<CrlInfo> {
        check_days(days, "--days")?;
        let _lock = self.lock()?;
        self.gen_crl_locked(days)
    }

    fn gen_crl_locked(&self, days: u32) -> anyhow::Result<CrlInfo> {
        let index = Index::load(&self.dir)?;
        self.write_crl(&index, None, days)
    }

    /// Writes the CRL of `index`, together with `new_index` (the prepared `index.txt` of
    /// `index` when it holds changes not yet saved) and the incremented `crlnumber`.
    ///
    /// Every file is prepared under a temporary name first, so a directory that refuses a file
    /// fails the command before anything changes. They are then renamed in the order
    /// `index.txt`, `crlnumber`, CRL, so that a run killed between two renames leaves a state
    /// the next command completes: a revocation in `index.txt` that the CRL lacks is listed by
    /// the next `revoke` or `gen-crl`, and a CRL number is skipped at worst, never reused.
    fn write_crl(
        &self,
        index: &Index,
        new_index: Option<PreparedFile>,
        days: u32,
    ) -> anyhow::Result<CrlInfo> {
        let number_path = layout::crlnumber_path(&self.dir);
        let number = self.next_crl_number()?;
        let revoked: Vec<rcgen::RevokedCertParams> = index
            .entries
            .iter()
            .filter_map(|entry| {
                let (time, reason) = entry.revoked?;
                Some(rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from_slice(entry.serial.as_bytes()),
                    revocation_time: time,
                    reason_code: reason.map(RevocationReason::to_rcgen),
                    invalidity_date: None,
                })
            })
            .collect();
        let now = now_seconds();
        let key_id = self
            .issuer_info
            .key_id
            .clone()
            .unwrap_or_else(|| profile::key_id(self.key.public_key_raw()));
        let params = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: add_days(now, days, "--days")?,
            crl_number: SerialNumber::from_slice(number.as_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: rcgen::KeyIdMethod::PreSpecified(key_id),
        };
        let issuer = Issuer::from_ca_cert_der(&self.cert_der.as_slice().into(), &self.key)
            .context("cannot use the CA certificate as issuer")?;
        let crl = params.signed_by(&issuer).context("cannot sign the CRL")?;
        let pem_text = crl.pem().context("cannot encode the CRL")?;
        let path = layout::crl_path(&self.dir);
        let new_number = database::prepare_counter(&number_path, &number.next())?;
        let new_crl = PreparedFile::write(&path, pem_text.as_bytes(), FileMode::Public)?;

        if let Some(new_index) = new_index {
            new_index.commit()?;
        }
        new_number.commit()?;
        new_crl.commit()?;
        Ok(CrlInfo {
            path,
            number,
            revoked: params.revoked_certs.len(),
        })
    }

    /// The next CRL number: the larger of `crlnumber`'s and one more than the current CRL's
    /// number, so CRL numbers always increase even after a run that published a CRL but was
    /// stopped before `crlnumber` (or after `crlnumber` was restored from a backup); 1000 when
    /// there is neither. An unreadable CRL counts only when `crlnumber` is missing too.
    fn next_crl_number(&self) -> anyhow::Result<Serial> {
        let number_path = layout::crlnumber_path(&self.dir);
        let crl_path = layout::crl_path(&self.dir);
        let from_file = if number_path.exists() {
            Some(database::read_counter(&number_path)?)
        } else {
            None
        };
        let from_crl = if crl_path.exists() {
            match self.current_crl_number(&crl_path) {
                Ok(current) => Some(current.next()),
                Err(error) if from_file.is_some() => {
                    tracing::warn!(crl = %crl_path.display(), %error, "cannot read the current CRL's number");
                    None
                }
                Err(error) => {
                    return Err(error).with_context(|| {
                        format!(
                            "{} is missing, so the next CRL number is unknown; write a number \
                             higher than any CRL issued so far into it",
                            number_path.display()
                        )
                    });
                }
            }
        } else {
            None
        };
        Ok(match (from_file, from_crl) {
            (Some(file), Some(crl)) => file.max(crl),
            (Some(number), None) | (None, Some(number)) => number,
            (None, None) => Serial::from_bytes(&[0x10, 0x00]),
        })
    }

    /// The CRL number of the CRL at `crl_path`.
    fn current_crl_number(&self, crl_path: &Path) -> anyhow::Result<Serial> {
        let der = read_crl_der(crl_path)?;
        let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
            .map_err(|e| anyhow::anyhow!("{} does not parse ({e})", crl_path.display()))?;
        let Some(current) = crl.crl_number() else {
            bail!("{} has no CRL number", crl_path.display());
        };
        Ok(Serial::from_bytes(&current.to_bytes_be()))
    }
}

/// What [`Ca::revoke`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// Marked revoked in `index.txt` and listed in a new CRL.
    Revoked,
    /// Already marked revoked in `index.txt` but missing from the CRL (an earlier revoke
    /// failed or was killed part-way): a new CRL now lists it.
    CrlCompleted,
    /// Already revoked and listed (by `--serial` or `openssl ca -revoke`): NAME's files were
    /// moved aside and the CRL renewed.
    MovedAside,
}

/// The result of [`Ca::revoke`].
#[derive(Clone, Debug)]
pub struct Revocation {
    pub serial: Serial,
    pub outcome: RevokeOutcome,
    pub crl: CrlInfo,
}

/// The DER of the first X509 CRL block of a PEM file.
fn read_crl_der(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let block =
        pem::parse(&text).with_context(|| format!("{} is not a PEM CRL", path.display()))?;
    Ok(block.into_contents())
}

/// The command that creates a new CA directory, named in its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NewDirCommand {
    Init,
    Fixtures,
}

/// Refuses a path that is a file or a directory that already holds a CA, naming `command`
/// in the advice.
pub(crate) fn check_new_ca_dir(dir: &Path, command: NewDirCommand) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{} exists and is not a directory; pick a directory for the CA",
            dir.display()
        );
    }
    for marker in [
        layout::ca_cert_path(dir),
        layout::ca_key_path(dir),
        layout::index_path(dir),
    ] {
        if marker.exists() {
            match command {
                NewDirCommand::Init => bail!(
                    "{} already holds a CA ({} exists); use it with --dir {}, or give `pki \
                     init` an empty directory",
                    dir.display(),
                    marker.display(),
                    dir.display()
                ),
                NewDirCommand::Fixtures => bail!(
                    "{} already holds a CA ({} exists); give `pki fixtures` a new or empty \
                     directory (or remove the old fixtures first)",
                    dir.display(),
                    marker.display()
                ),
            }
        }
    }
    Ok(())
}

/// Creates `build_dir` (if missing), its lock, subdirectories, openssl.cnf (naming
/// `final_dir`, where the directory will be renamed to) and database files; returns the held
/// lock.
fn create_layout(build_dir: &Path, final_dir: &Path) -> anyhow::Result<DirLock> {
    let cnf = config::openssl_cnf(final_dir)?;
    fs::create_dir_all(build_dir)
        .with_context(|| format!("cannot create {}", build_dir.display()))?;
    let dir = build_dir;
    let lock = DirLock::acquire(&layout::lock_path(dir))?;
    for sub in layout::SUBDIRS {
        let path = dir.join(sub);
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    }
    let private = dir.join("private");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} mode 0700", private.display()))?;
    write_atomic(&layout::config_path(dir), cnf.as_bytes(), FileMode::Public)?;
    let first = Serial::from_bytes(&[0x10, 0x00]);
    database::write_counter(&layout::serial_path(dir), &first)?;
    database::write_counter(&layout::crlnumber_path(dir), &first)?;
    write_atomic(&layout::index_path(dir), b"", FileMode::Public)?;
    write_atomic(
        &layout::index_attr_path(dir),
        b"unique_subject = no\n",
        FileMode::Public,
    )?;
    Ok(lock)
}

fn init_subject(options: &InitOptions) -> anyhow::Result<Subject> {
    let common_name = options
        .common_name
        .as_deref()
        .unwrap_or("wstunnel Development Root CA");
    let mut subject = match &options.subject {
        Some(subject) => subject.clone(),
        None => Subject::walkthrough_default(common_name),
    };
    if options.common_name.is_some() || subject.common_name().is_none() {
        subject.set(Field::CommonName, common_name);
    }
    check_common_name(&subject)?;
    subject.check_no_control_characters()?;
    subject.to_rcgen()?;
    Ok(subject)
}

fn leaf_subject(name: &str, cn: Option<&str>, subject: Option<Subject>) -> anyhow::Result<Subject> {
    let mut subject = subject.unwrap_or_else(|| Subject::walkthrough_default(name));
    if let Some(cn) = cn {
        subject.set(Field::CommonName, cn);
    } else if subject.common_name().is_none() {
        subject.set(Field::CommonName, name);
    }
    check_common_name(&subject)?;
    subject.check_no_control_characters()?;
    subject.to_rcgen()?;
    Ok(subject)
}

/// The longest commonName RFC 5280 allows (ub-common-name).
const MAX_COMMON_NAME: usize = 64;

/// Refuses an empty commonName (the walkthrough's policy requires one) and one longer than
/// 64 characters (RFC 5280's upper bound, which OpenSSL enforces too).
///
/// # Errors
/// Says which rule the CN breaks and how to fix it.
fn check_common_name(subject: &Subject) -> anyhow::Result<()> {
    let Some(cn) = subject.common_name() else {
        return Ok(());
    };
    if cn.trim().is_empty() {
        bail!(
            "the commonName (CN) is empty, but the walkthrough's policy requires one; give a \
             non-empty --cn (by default NAME)"
        );
    }
    let length = cn.chars().count();
    if length > MAX_COMMON_NAME {
        bail!(
            "the commonName (CN) is {length} characters long, more than the {MAX_COMMON_NAME} \
             RFC 5280 allows; give a shorter --cn"
        );
    }
    Ok(())
}

fn make_request(subject: &Subject, alt_names: &[AltName], key: &KeyPair) -> anyhow::Result<String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.to_rcgen()?;
    for name in alt_names {
        params.subject_alt_names.push(match name {
            AltName::Dns(dns) => rcgen::SanType::DnsName(
                dns.as_str()
                    .try_into()
                    .context("a DNS subjectAltName is not ASCII")?,
            ),
            AltName::Ip(ip) => rcgen::SanType::IpAddress(*ip),
        });
    }
    let csr = params
        .serialize_request(key)
        .context("cannot make the certificate request")?;
    csr.pem().context("cannot encode the certificate request")
}

/// Reads the first CERTIFICATE block of a PEM file.
///
/// # Errors
/// Names the file if it is unreadable or holds no certificate.
pub fn read_certificate_pem(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let blocks = pem::parse_many(&text)
        .with_context(|| format!("{} is not PEM (its armour is damaged)", path.display()))?;
    match blocks.iter().find(|b| b.tag() == "CERTIFICATE") {
        Some(block) => Ok(block.contents().to_vec()),
        None => match blocks.first() {
            Some(other) => bail!(
                "{} holds a {:?} block, not a CERTIFICATE",
                path.display(),
                other.tag()
            ),
            None => bail!(
                "{} holds no PEM block (expected a CERTIFICATE)",
                path.display()
            ),
        },
    }
}

/// The current time truncated to whole seconds (X.509 times have no fractions).
pub fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// The longest validity `--days` accepts: 100 years.
pub const MAX_DAYS: u32 = 36_500;

/// Refuses a validity outside 1..=[`MAX_DAYS`] days, naming `option`.
///
/// # Errors
/// Says the range, for 0 (a certificate or CRL that is already out of date) and for anything
/// above 100 years.
pub fn check_days(days: u32, option: &str) -> anyhow::Result<()> {
    if !(1..=MAX_DAYS).contains(&days) {
        bail!("{option} {days} is out of range; give a number of days from 1 to {MAX_DAYS}");
    }
    Ok(())
}

/// `start` plus `days` days, refusing a date X.509 cannot hold instead of overflowing.
fn add_days(start: OffsetDateTime, days: u32, option: &str) -> anyhow::Result<OffsetDateTime> {
    check_days(days, option)?;
    start
        .checked_add(Duration::days(i64::from(days)))
        .filter(|end| end.year() <= 9999)
        .with_context(|| format!("{option} {days} reaches past the year 9999; give fewer days"))
}

fn days_from_now(days: u32) -> anyhow::Result<Validity> {
    let now = now_seconds();
    Ok(Validity {
        not_before: now,
        not_after: add_days(now, days, "--days")?,
    })
}

fn random_serial() -> anyhow::Result<[u8; 20]> {
    let mut serial = [0u8; 20];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| anyhow::anyhow!("the random source failed"))?;
    // 159 random bits like `openssl req -x509`: positive and at most 20 bytes.
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    Ok(serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_counts_outside_the_range_are_errors_not_panics() {
        let now = now_seconds();

        assert!(add_days(now, 0, "--days").is_err());
        assert!(add_days(now, MAX_DAYS + 1, "--days").is_err());
        assert!(add_days(now, u32::MAX, "--days").is_err());
        assert!(days_from_now(u32::MAX).is_err());
        assert_eq!(
            add_days(now, MAX_DAYS, "--days").unwrap() - now,
            Duration::days(36_500)
        );
    }
}
