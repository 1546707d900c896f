//! `pki fixtures OUT`: a matrix of good and bad certificates for other projects' test suites,
//! in the CA directory layout, with a manifest (`fixtures.json`) giving each file's role and
//! the outcome a verifier (rustls, `openssl verify`) must reach.
//!
//! Valid fixtures (and the CRLs) stay valid for at least 20 years so checked-in copies do not
//! break CI later; the expired and not-yet-valid ones use fixed dates far in the past and
//! future.

use std::path::Path;

use anyhow::Context;
use time::{Date, Month, OffsetDateTime};

use super::ca::{NewDirCommand, SanPolicy, check_new_ca_dir, now_seconds};
use super::fsutil::{FileMode, write_atomic};
use super::staging::Staging;
use super::{
    Ca, InitOptions, IssueRequest, KeyType, Profile, RevocationReason, RevokeTarget, Validity,
    config, layout,
};

/// Days the fixture CA certificates last (40 years).
const CA_DAYS: u32 = 14_610;
/// Days the intermediate CA lasts (35 years).
const INTERMEDIATE_DAYS: u32 = 12_784;
/// Days valid leaf certificates and the CRLs last (30 years).
const LEAF_DAYS: u32 = 10_958;

/// What a verifier must do with a fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    Accept,
    Reject,
}

/// Why a fixture must be rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// Listed in the CRL.
    Revoked,
    /// Past its not-after date.
    Expired,
    /// Before its not-before date.
    NotYetValid,
    /// Issued by a CA the verifier does not trust.
    UnknownIssuer,
    /// Its extended key usage does not allow the purpose (a server certificate as a client).
    WrongPurpose,
    /// No subjectAltName matches the host (rustls ignores the CN).
    NoSubjectAltName,
}

/// One certificate of the matrix and how it must be verified. Paths are relative to OUT.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Fixture {
    pub name: String,
    pub description: String,
    pub cert: String,
    pub key: String,
    /// Intermediate certificates to send with `cert`, if any.
    pub chain: Option<String>,
    pub trust_anchor: String,
    /// CRLs to check against (the root's, and the intermediate's when there is one).
    pub crls: Vec<String>,
    pub purpose: Profile,
    /// Host name the certificate is checked for (server purposes).
    pub host: Option<String>,
    pub expected: Expected,
    pub reason: Option<RejectReason>,
    #[serde(serialize_with = "super::ca::serialize_rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(serialize_with = "super::ca::serialize_rfc3339")]
    pub not_after: OffsetDateTime,
}

/// The `fixtures.json` manifest.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Manifest {
    pub generator: String,
    /// How to use the CA directories with `openssl ca`.
    pub note: String,
    pub key_type: KeyType,
    pub trust_anchor: String,
    pub crl: String,
    pub fixtures: Vec<Fixture>,
}

/// The manifest's `note`.
const FIXTURES_NOTE: &str = "Each CA directory (., intermediate, untrusted) has an openssl.cnf \
    with `dir = .`: run `openssl ca -config openssl.cnf ...` from inside that directory. Paths \
    in this file are relative to the directory holding it.";

/// Generates the matrix into `out` (which must be missing or an empty directory) and writes
/// `out/fixtures.json`. Everything is built in a hidden sibling of `out` and renamed to `out`
/// when complete, so an interrupted run leaves no `out` (or `out` still empty). The output is
/// meant to be checked in, so it holds no `.wstunnel-pki.lock` files.
///
/// # Errors
/// Fails if `out` holds a CA or other files, or its parent cannot be written; nothing is left
/// behind then.
pub fn generate(out: &Path, key_type: KeyType) -> anyhow::Result<Manifest> {
    check_new_ca_dir(out, NewDirCommand::Fixtures)?;
    let staging = Staging::begin(out)?;
    let build = staging.path().to_path_buf();
    let target = staging.target().to_path_buf();
    let ca = Ca::init_staged(
        &build,
        &target,
        InitOptions {
            common_name: Some("wstunnel Fixtures Root CA".to_owned()),
            key_type,
            days: CA_DAYS,
            ..InitOptions::default()
        },
    )?;
    let out = build.clone();
    let untrusted = Ca::init_staged(
        &build.join("untrusted"),
        &target.join("untrusted"),
        InitOptions {
            common_name: Some("wstunnel Untrusted Root CA".to_owned()),
            key_type,
            days: CA_DAYS,
            ..InitOptions::default()
        },
    )?;
    let intermediate = ca.init_intermediate(
        &build.join("intermediate"),
        &target.join("intermediate"),
        "intermediate",
        InitOptions {
            common_name: Some("wstunnel Fixtures Intermediate CA".to_owned()),
            key_type,
            days: INTERMEDIATE_DAYS,
            ..InitOptions::default()
        },
    )?;

    let relative = |path: &Path| -> String {
        path.strip_prefix(&out)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let root_crl = relative(&layout::crl_path(&out));
    let anchor = relative(&layout::ca_cert_path(&out));
    let now = now_seconds();
    let long = Validity {
        not_before: now,
        not_after: now + time::Duration::days(LEAF_DAYS.into()),
    };
    let expired = Validity {
        not_before: utc_date(2020, Month::January, 1)?,
        not_after: utc_date(2021, Month::January, 1)?,
    };
    let future = Validity {
        not_before: utc_date(2060, Month::January, 1)?,
        not_after: utc_date(2061, Month::January, 1)?,
    };

    struct Plan<'a> {
        ca: &'a Ca,
        name: &'a str,
        profile: Profile,
        validity: Validity,
        sans: SanPolicy,
        cn: Option<&'a str>,
        description: &'a str,
        purpose: Profile,
        host: Option<&'a str>,
        reason: Option<RejectReason>,
    }
    let plans = [
        Plan {
            ca: &ca,
            name: "server",
            profile: Profile::Server,
            validity: long,
            sans: SanPolicy::ServerDefaults,
            cn: None,
            description: "server certificate with subjectAltNames localhost, 127.0.0.1, ::1",
            purpose: Profile::Server,
            host: Some("localhost"),
            reason: None,
        },
        Plan {
            ca: &ca,
            name: "client",
            profile: Profile::Client,
            validity: long,
            sans: SanPolicy::ServerDefaults,
            cn: None,
            description: "valid client certificate",
            purpose: Profile::Client,
            host: None,
            reason: None,
        },
        Plan {
            ca: &ca,
            name: "client-revoked",
            profile: Profile::Client,
            validity: long,
            sans: SanPolicy::ServerDefaults,
            cn: None,
            description: "client certificate revoked (keyCompromise) in crl/ca.crl.pem",
            purpose: Profile::Client,
            host: None,
            reason: Some(RejectReason::Revoked),
        },
        Plan {
            ca: &ca,
            name: "client-expired",
            profile: Profile::Client,
            validity: expired,
            sans: SanPolicy::ServerDefaults,
            cn: None,
            description: "client certificate that expired on 2021-01-01",
            purpose: Profile::Client,
            host: None,
            reason: Some(RejectReason::Expired),
        },
        Plan {
            ca: &ca,
            name: "client-not-yet-valid",
            profile: Profile::Client,
            validity: future,
            sans: SanPolicy::ServerDefaults,
            cn: None,
            description: "client certificate valid only from 2060-01-01",
            purpose: Profile::Client,
            host: None,
            reason: Some(RejectReason::NotYetValid),
        },
        Plan {
            ca: &untrusted,
            name: "client-untrusted",
            profile: Profile::Client,
            validity: long,
            sans: SanPolicy::ServerDefaults,
            cn: None,
            description: "client certificate from a second CA (untrusted/) that the server does not trust",
            purpose: Profile::Client,
            host: None,
            reason: Some(RejectReason::UnknownIssuer),
        },
        Plan {
            ca: &ca,
            name: "server-no-san",
            profile: Profile::Server,
            validity: long,
            sans: SanPolicy::AsRequested,
            cn: Some("wstunnel Development Server"),
            description: "server certificate without subjectAltName, as the walkthrough makes it (rustls rejects it)",
            purpose: Profile::Server,
            host: Some("localhost"),
            reason: Some(RejectReason::NoSubjectAltName),
        },
        Plan {
            ca: &intermediate,
            name: "client-intermediate",
            profile: Profile::Client,
            validity: long,
            sans: SanPolicy::ServerDefaults,
            cn: None,
            description: "client certificate issued by the intermediate CA; send intermediate/certs/ca-chain.cert.pem with it",
            purpose: Profile::Client,
            host: None,
            reason: None,
        },
    ];

    let mut fixtures = Vec::new();
    for plan in &plans {
        let mut request = IssueRequest::new(plan.name, plan.profile);
        request.key_type = key_type;
        request.validity = Some(plan.validity);
        request.cn = plan.cn.map(str::to_owned);
        let issued = plan
            .ca
            .issue_with(request, plan.sans)
            .with_context(|| format!("cannot issue the fixture {}", plan.name))?;
        let via_intermediate = std::ptr::eq(plan.ca, &intermediate);
        let mut crls = vec![root_crl.clone()];
        if via_intermediate {
            crls.push(relative(&layout::crl_path(intermediate.dir())));
        }
        fixtures.push(Fixture {
            name: plan.name.to_owned(),
            description: plan.description.to_owned(),
            cert: relative(&issued.cert_path),
            key: issued.key_path.as_deref().map(relative).unwrap_or_default(),
            chain: via_intermediate.then(|| relative(&layout::ca_chain_path(intermediate.dir()))),
            trust_anchor: anchor.clone(),
            crls,
            purpose: plan.purpose,
            host: plan.host.map(str::to_owned),
            expected: if plan.reason.is_some() {
                Expected::Reject
            } else {
                Expected::Accept
            },
            reason: plan.reason,
            not_before: plan.validity.not_before,
            not_after: plan.validity.not_after,
        });
    }
    // The server certificate, presented by a client.
    if let Some(server) = fixtures.iter().find(|f| f.name == "server").cloned() {
        fixtures.push(Fixture {
            name: "server-as-client".to_owned(),
            description: "the server certificate presented as a client certificate (extended key usage serverAuth only)".to_owned(),
            purpose: Profile::Client,
            host: None,
            expected: Expected::Reject,
            reason: Some(RejectReason::WrongPurpose),
            ..server
        });
    }

    ca.revoke(
        &RevokeTarget::Serial(serial_of(&out, "client-revoked")?),
        Some(RevocationReason::KeyCompromise),
    )?;
    ca.gen_crl(LEAF_DAYS)?;
    intermediate.gen_crl(LEAF_DAYS)?;
    untrusted.gen_crl(LEAF_DAYS)?;

    let manifest = Manifest {
        generator: format!("wstunnel {} pki fixtures", env!("CARGO_PKG_VERSION")),
        note: FIXTURES_NOTE.to_owned(),
        key_type,
        trust_anchor: anchor,
        crl: root_crl,
        fixtures,
    };
    let json = serde_json::to_string_pretty(&manifest)?;
    write_atomic(
        &out.join("fixtures.json"),
        format!("{json}\n").as_bytes(),
        FileMode::Public,
    )?;
    // Every command on these CAs has finished, so nothing holds their locks any more; and
    // the output is checked in or moved, so no file may name where it was generated.
    let cnf = config::relative_openssl_cnf();
    for dir in [ca.dir(), untrusted.dir(), intermediate.dir()] {
        remove_lock_file(dir)?;
        write_atomic(&layout::config_path(dir), cnf.as_bytes(), FileMode::Public)?;
    }
    staging.commit()?;
    Ok(manifest)
}

fn remove_lock_file(dir: &Path) -> anyhow::Result<()> {
    let path = layout::lock_path(dir);
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn serial_of(dir: &Path, name: &str) -> anyhow::Result<super::Serial> {
    use x509_parser::prelude::FromDer;
    let der = super::ca::read_certificate_pem(&layout::cert_path(dir, name))?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|e| anyhow::anyhow!("the fixture {name} does not parse: {e}"))?;
    Ok(super::Serial::from_bytes(cert.raw_serial()))
}

fn utc_date(year: i32, month: Month, day: u8) -> anyhow::Result<OffsetDateTime> {
    Ok(Date::from_calendar_date(year, month, day)?
        .midnight()
        .assume_utc())
}
