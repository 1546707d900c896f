//! `pki list` and `pki inspect`: human summaries of the database and of PEM files.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ::time::OffsetDateTime;
use anyhow::{Context, bail};
use x509_parser::prelude::*;

use super::database::{Index, Serial, Status};
use super::{keys, layout};

#[derive(serde::Serialize)]
struct ListRow {
    serial: String,
    status: Status,
    #[serde(serialize_with = "super::ca::serialize_rfc3339")]
    not_after: OffsetDateTime,
    #[serde(serialize_with = "super::ca::serialize_rfc3339_option")]
    revoked_at: Option<OffsetDateTime>,
    reason: Option<super::database::RevocationReason>,
    subject: String,
    file: Option<PathBuf>,
}

/// Prints every certificate of `index.txt` with its effective status (a valid certificate
/// past its not-after is shown as expired) and the file that holds it, relative to `dir`.
///
/// # Errors
/// Fails if `index.txt` is missing or damaged.
pub fn list(dir: &Path, json: bool) -> anyhow::Result<()> {
    if !layout::index_path(dir).exists() {
        bail!(
            "{} is not a CA directory ({} is missing); create one with `wstunnel pki init`",
            dir.display(),
            layout::index_path(dir).display()
        );
    }
    // A damaged index.txt is named with its line by Index::load.
    let index = Index::load(dir)?;
    let files = certificate_files(dir);
    let now = OffsetDateTime::now_utc();
    let rows: Vec<ListRow> = index
        .entries
        .iter()
        .map(|entry| ListRow {
            serial: entry.serial.to_string(),
            status: entry.effective_status(now),
            not_after: entry.expiry,
            revoked_at: entry.revoked.map(|(time, _)| time),
            reason: entry.revoked.and_then(|(_, reason)| reason),
            subject: entry.subject.clone(),
            // Relative to DIR, in the text and the JSON alike.
            file: files
                .get(&entry.serial)
                .cloned()
                .or_else(|| {
                    let copy = layout::newcert_path(dir, &entry.serial.to_string());
                    copy.exists().then_some(copy)
                })
                .map(|f| f.strip_prefix(dir).map(Path::to_path_buf).unwrap_or(f)),
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|r| r.subject.len())
        .max()
        .unwrap_or(0)
        .max(7);
    println!(
        "{:<8} {:<8} {:<11} {:<width$} FILE",
        "SERIAL", "STATUS", "NOT AFTER", "SUBJECT"
    );
    for row in rows {
        let status = match row.status {
            Status::Valid => "valid",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        };
        let file = row
            .file
            .as_deref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "-".to_owned());
        println!(
            "{:<8} {:<8} {:<11} {:<width$} {file}",
            row.serial,
            status,
            row.not_after.date(),
            row.subject
        );
    }
    Ok(())
}

/// Serial → `certs/*.cert.pem` holding it (unreadable files are skipped).
fn certificate_files(dir: &Path) -> HashMap<Serial, PathBuf> {
    let mut files = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir.join("certs")) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Half-written leftovers of killed runs are nobody's certificate file.
        if super::fsutil::is_temp_file(&path) {
            continue;
        }
        let Ok(der) = super::ca::read_certificate_pem(&path) else {
            continue;
        };
        if let Ok((_, cert)) = X509Certificate::from_der(&der) {
            files.insert(Serial::from_bytes(cert.raw_serial()), path);
        }
    }
    files
}

/// Prints a short summary of a PEM certificate, request, CRL or private key.
///
/// # Errors
/// Names the file if it is unreadable, not PEM, or of a type this does not know.
pub fn inspect(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let summary = summarize(&text).with_context(|| format!("cannot inspect {}", path.display()))?;
    print!("{summary}");
    Ok(())
}

fn summarize(text: &[u8]) -> anyhow::Result<String> {
    let blocks = ::pem::parse_many(text).context("the PEM armour is damaged")?;
    let Some(block) = blocks.first() else {
        bail!("it holds no PEM block (expected a certificate, request, CRL or key)");
    };
    let der = block.contents();
    match block.tag() {
        "CERTIFICATE" => certificate_summary(der),
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => request_summary(der),
        "X509 CRL" => crl_summary(der),
        tag if tag.ends_with("PRIVATE KEY") => key_summary(text, tag),
        other => bail!("it holds a {other:?} block, which inspect does not know"),
    }
}

fn certificate_summary(der: &[u8]) -> anyhow::Result<String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| anyhow::anyhow!("not a certificate: {e}"))?;
    let mut out = String::new();
    writeln!(out, "certificate")?;
    writeln!(out, "  subject      {}", cert.subject())?;
    writeln!(out, "  issuer       {}", cert.issuer())?;
    writeln!(
        out,
        "  serial       {}",
        Serial::from_bytes(cert.raw_serial())
    )?;
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    writeln!(out, "  not before   {}", format_utc(not_before))?;
    writeln!(
        out,
        "  not after    {} ({})",
        format_utc(not_after),
        time_left(not_before, not_after)
    )?;
    writeln!(out, "  key          {}", key_description(cert.public_key()))?;
    let ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    writeln!(out, "  CA           {}", if ca { "yes" } else { "no" })?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        let names: Vec<String> = san.value.general_names.iter().map(general_name).collect();
        writeln!(out, "  alt names    {}", names.join(", "))?;
    }
    if let Ok(Some(ku)) = cert.key_usage() {
        writeln!(out, "  key usage    {}", ku.value)?;
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        writeln!(out, "  ext. usage   {}", eku_names(eku.value).join(", "))?;
    }
    let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    writeln!(out, "  SHA-256      {}", colon_hex(fingerprint.as_ref()))?;
    Ok(out)
}

fn request_summary(der: &[u8]) -> anyhow::Result<String> {
    let (_, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| anyhow::anyhow!("not a certificate request: {e}"))?;
    let mut out = String::new();
    writeln!(out, "certificate request")?;
    writeln!(
        out,
        "  subject      {}",
        csr.certification_request_info.subject
    )?;
    writeln!(
        out,
        "  key          {}",
        key_description(&csr.certification_request_info.subject_pki)
    )?;
    let signature = if csr.verify_signature().is_ok() {
        "valid"
    } else {
        "INVALID"
    };
    writeln!(out, "  signature    {signature}")?;
    let names = super::profile::requested_alt_names(&csr).unwrap_or_default();
    if !names.is_empty() {
        let names: Vec<String> = names
            .iter()
            .map(|n| match n {
                super::AltName::Dns(d) => format!("DNS:{d}"),
                super::AltName::Ip(ip) => format!("IP:{ip}"),
            })
            .collect();
        writeln!(out, "  alt names    {}", names.join(", "))?;
    }
    Ok(out)
}

fn crl_summary(der: &[u8]) -> anyhow::Result<String> {
    let (_, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| anyhow::anyhow!("not a CRL: {e}"))?;
    let mut out = String::new();
    writeln!(out, "certificate revocation list")?;
    writeln!(out, "  issuer       {}", crl.issuer())?;
    if let Some(number) = crl.crl_number() {
        writeln!(out, "  number       0x{number:X}")?;
    }
    writeln!(
        out,
        "  this update  {}",
        format_utc(crl.last_update().to_datetime())
    )?;
    if let Some(next) = crl.next_update() {
        let next = next.to_datetime();
        let state = if next < OffsetDateTime::now_utc() {
            " (OUT OF DATE)"
        } else {
            ""
        };
        writeln!(out, "  next update  {}{state}", format_utc(next))?;
    }
    let revoked: Vec<_> = crl.iter_revoked_certificates().collect();
    writeln!(out, "  revoked      {}", revoked.len())?;
    for entry in revoked {
        let reason = entry
            .reason_code()
            .map(|(_, code)| format!(" {code}"))
            .unwrap_or_default();
        writeln!(
            out,
            "    {}  {}{reason}",
            Serial::from_bytes(entry.raw_serial()),
            format_utc(entry.revocation_date.to_datetime())
        )?;
    }
    Ok(out)
}

fn key_summary(text: &[u8], tag: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "private key ({tag})")?;
    if tag == "ENCRYPTED PRIVATE KEY" {
        writeln!(out, "  encrypted    yes (PKCS#8); give --passin to use it")?;
        return Ok(out);
    }
    let key = keys::parse_key_pem(text, None)?;
    let kind = keys::key_type_of(&key.key_pair)
        .map(|k| k.to_string())
        .unwrap_or_else(|| "other".to_owned());
    writeln!(out, "  type         {kind}")?;
    let id = super::profile::key_id(key.key_pair.public_key_raw());
    writeln!(out, "  key id       {}", colon_hex(&id))?;
    Ok(out)
}

fn key_description(spki: &SubjectPublicKeyInfo<'_>) -> String {
    match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => format!("RSA {} bits", rsa.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(ec)) => format!("ECDSA {} bits", ec.key_size()),
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => "Ed25519".to_owned(),
        _ => spki.algorithm.algorithm.to_id_string(),
    }
}

fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => format!(
                "IP:{}",
                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default())
            ),
            16 => format!(
                "IP:{}",
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default())
            ),
            _ => "IP:?".to_owned(),
        },
        other => format!("{other}"),
    }
}

fn eku_names(eku: &ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut names = Vec::new();
    let flags = [
        (eku.any, "any"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ];
    for (present, name) in flags {
        if present {
            names.push(name.to_owned());
        }
    }
    names.extend(eku.other.iter().map(|oid| oid.to_id_string()));
    names
}

fn time_left(not_before: OffsetDateTime, not_after: OffsetDateTime) -> String {
    let now = OffsetDateTime::now_utc();
    if now < not_before {
        return format!(
            "not valid for another {} days",
            (not_before - now).whole_days()
        );
    }
    if now >= not_after {
        return format!("EXPIRED {} days ago", (now - not_after).whole_days());
    }
    format!("{} days left", (not_after - now).whole_days())
}

/// `2026-12-04 15:43:46 UTC`.
pub fn format_utc(time: OffsetDateTime) -> String {
    let time = time.to_offset(::time::UtcOffset::UTC);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        time.date(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// `AB:CD:...` uppercase hex.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
