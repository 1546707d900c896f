//! The X.509 extension profiles of the walkthrough's openssl.cnf (`v3_ca`, `server_cert`,
//! `client_cert`), encoded byte for byte as `openssl ca` emits them: same extensions, order,
//! criticality and values.
//!
//! rcgen would write its own extensions in its own order, so every extension is passed to it
//! as a custom extension (with no rcgen-native extension enabled, rcgen writes only those, in
//! the given order).

use std::net::IpAddr;

use anyhow::bail;
use rcgen::CustomExtension;

use super::der;

/// Which `openssl.cnf` profile a leaf certificate gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// `server_cert`: TLS server (extended key usage serverAuth), with subjectAltNames.
    Server,
    /// `client_cert`: TLS client and e-mail (clientAuth, emailProtection).
    Client,
}

const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const OID_NS_CERT_TYPE: &[u64] = &[2, 16, 840, 1, 113730, 1, 1];
const OID_NS_COMMENT: &[u64] = &[2, 16, 840, 1, 113730, 1, 13];
const OID_SUBJECT_KEY_ID: &[u64] = &[2, 5, 29, 14];
const OID_AUTHORITY_KEY_ID: &[u64] = &[2, 5, 29, 35];
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const OID_SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];
const KP_SERVER_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
const KP_CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];
const KP_EMAIL_PROTECTION: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 4];

// keyUsage bit numbers (RFC 5280) and nsCertType bit numbers (Netscape).
const KU_DIGITAL_SIGNATURE: u8 = 0;
const KU_NON_REPUDIATION: u8 = 1;
const KU_KEY_ENCIPHERMENT: u8 = 2;
const KU_KEY_CERT_SIGN: u8 = 5;
const KU_CRL_SIGN: u8 = 6;
const NS_CLIENT: u8 = 0;
const NS_SERVER: u8 = 1;
const NS_EMAIL: u8 = 2;

/// What the profiles need to know about the issuing CA.
pub struct IssuerInfo {
    /// The CA certificate's subjectKeyIdentifier value, if it has one.
    pub key_id: Option<Vec<u8>>,
    /// DER of the CA certificate's issuer Name (for `issuer:always`).
    pub issuer_name_der: Vec<u8>,
    /// The CA certificate's serial (big-endian magnitude).
    pub serial: Vec<u8>,
}

/// A subjectAltName entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AltName {
    Dns(String),
    Ip(IpAddr),
}

impl AltName {
    /// Parses a `--san` value: an IPv4/IPv6 address, or a DNS name (wildcards allowed in the
    /// first label).
    ///
    /// # Errors
    /// Fails on anything that is neither.
    pub fn parse(text: &str) -> anyhow::Result<AltName> {
        let text = text.trim();
        let text = text
            .strip_prefix("DNS:")
            .or_else(|| text.strip_prefix("IP:"))
            .unwrap_or(text);
        let unbracketed = text.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(AltName::Ip(ip));
        }
        let valid_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        let name = text.trim_end_matches('.');
        let mut labels = name.split('.');
        let first_ok = match labels.next() {
            Some("*") => name.contains('.'),
            Some(label) => valid_label(label),
            None => false,
        };
        if name.is_empty() || name.len() > 253 || !first_ok || !labels.all(valid_label) {
            bail!(
                "--san {text:?} is neither an IP address nor a DNS name (letters, digits, '-', \
                 dots, optional leading '*.')"
            );
        }
        Ok(AltName::Dns(name.to_ascii_lowercase()))
    }

    fn to_der(&self) -> Vec<u8> {
        match self {
            AltName::Dns(name) => der::tlv(0x82, name.as_bytes()),
            AltName::Ip(IpAddr::V4(ip)) => der::tlv(0x87, &ip.octets()),
            AltName::Ip(IpAddr::V6(ip)) => der::tlv(0x87, &ip.octets()),
        }
    }
}

/// subjectAltNames of every server certificate: `localhost`, `127.0.0.1`, `::1`, then the
/// extra ones, without duplicates.
pub fn server_alt_names(extra: &[AltName]) -> Vec<AltName> {
    let mut names = vec![
        AltName::Dns("localhost".to_owned()),
        AltName::Ip(IpAddr::from([127, 0, 0, 1])),
        AltName::Ip(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
    ];
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The subjectKeyIdentifier `hash` method: SHA-1 of the subjectPublicKey BIT STRING value.
pub fn key_id(subject_public_key: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        subject_public_key,
    )
    .as_ref()
    .to_vec()
}

fn extension(oid: &[u64], critical: bool, value: Vec<u8>) -> CustomExtension {
    let mut ext = CustomExtension::from_oid_content(oid, value);
    ext.set_criticality(critical);
    ext
}

fn key_usage(bits: &[u8]) -> CustomExtension {
    extension(OID_KEY_USAGE, true, der::named_bits(bits))
}

fn ns_comment(text: &str) -> CustomExtension {
    extension(
        OID_NS_COMMENT,
        false,
        der::tlv(der::IA5_STRING, text.as_bytes()),
    )
}

fn subject_key_id(subject_public_key: &[u8]) -> CustomExtension {
    extension(
        OID_SUBJECT_KEY_ID,
        false,
        der::tlv(der::OCTET_STRING, &key_id(subject_public_key)),
    )
}

fn extended_key_usage(purposes: &[&[u64]]) -> CustomExtension {
    let oids: Vec<Vec<u8>> = purposes.iter().map(|p| der::oid(p)).collect();
    extension(OID_EXT_KEY_USAGE, false, der::sequence(&oids))
}

/// authorityKeyIdentifier: keyid ([0]) when known; the CA's issuer name and serial ([1], [2])
/// when `with_issuer` or when there is no key id (OpenSSL's `issuer` without `always`).
fn authority_key_id(issuer: &IssuerInfo, issuer_always: bool) -> CustomExtension {
    let mut parts = Vec::new();
    if let Some(key_id) = &issuer.key_id {
        parts.push(der::tlv(0x80, key_id));
    }
    if issuer_always || issuer.key_id.is_none() {
        let directory_name = der::tlv(0xA4, &issuer.issuer_name_der);
        parts.push(der::tlv(0xA1, &directory_name));
        parts.push(der::tlv(
            0x82,
            &der::unsigned_integer_content(&issuer.serial),
        ));
    }
    extension(OID_AUTHORITY_KEY_ID, false, der::sequence(&parts))
}

/// `v3_ca` for a self-signed CA: subjectKeyIdentifier=hash,
/// authorityKeyIdentifier=keyid:always,issuer (the key id alone, since it is known),
/// basicConstraints=critical,CA:true, keyUsage=critical,digitalSignature,cRLSign,keyCertSign.
pub fn ca_extensions(subject_public_key: &[u8]) -> Vec<CustomExtension> {
    let own_key_id = key_id(subject_public_key);
    vec![
        subject_key_id(subject_public_key),
        extension(
            OID_AUTHORITY_KEY_ID,
            false,
            der::sequence(&[der::tlv(0x80, &own_key_id)]),
        ),
        extension(
            OID_BASIC_CONSTRAINTS,
            true,
            der::sequence(&[der::tlv(der::BOOLEAN, &[0xFF])]),
        ),
        key_usage(&[KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, KU_CRL_SIGN]),
    ]
}

/// `v3_intermediate_ca` of the OpenSSL guide the walkthrough follows:
/// subjectKeyIdentifier=hash, authorityKeyIdentifier=keyid:always,issuer (the parent's key id
/// alone when it has one), basicConstraints=critical,CA:true,pathlen:0,
/// keyUsage=critical,digitalSignature,cRLSign,keyCertSign.
pub fn intermediate_ca_extensions(
    subject_public_key: &[u8],
    issuer: &IssuerInfo,
) -> Vec<CustomExtension> {
    vec![
        subject_key_id(subject_public_key),
        authority_key_id(issuer, false),
        extension(
            OID_BASIC_CONSTRAINTS,
            true,
            der::sequence(&[
                der::tlv(der::BOOLEAN, &[0xFF]),
                der::tlv(der::INTEGER, &[0]),
            ]),
        ),
        key_usage(&[KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, KU_CRL_SIGN]),
    ]
}

/// `server_cert` or `client_cert`, plus subjectAltName last when there are names (where
/// `openssl ca` puts the names it copies from a request with `copy_extensions = copy`).
///
/// # Errors
/// Never fails today; the Result leaves room for profiles that validate their input.
pub fn leaf_extensions(
    profile: Profile,
    subject_public_key: &[u8],
    issuer: &IssuerInfo,
    alt_names: &[AltName],
) -> anyhow::Result<Vec<CustomExtension>> {
    let basic_constraints = extension(OID_BASIC_CONSTRAINTS, false, der::sequence(&[]));
    let mut extensions = match profile {
        Profile::Server => vec![
            basic_constraints,
            extension(OID_NS_CERT_TYPE, false, der::named_bits(&[NS_SERVER])),
            ns_comment("OpenSSL Generated Server Certificate"),
            subject_key_id(subject_public_key),
            authority_key_id(issuer, true),
            key_usage(&[KU_DIGITAL_SIGNATURE, KU_KEY_ENCIPHERMENT]),
            extended_key_usage(&[KP_SERVER_AUTH]),
        ],
        Profile::Client => vec![
            basic_constraints,
            extension(
                OID_NS_CERT_TYPE,
                false,
                der::named_bits(&[NS_CLIENT, NS_EMAIL]),
            ),
            ns_comment("OpenSSL Generated Client Certificate"),
            subject_key_id(subject_public_key),
            authority_key_id(issuer, false),
            key_usage(&[
                KU_DIGITAL_SIGNATURE,
                KU_NON_REPUDIATION,
                KU_KEY_ENCIPHERMENT,
            ]),
            extended_key_usage(&[KP_CLIENT_AUTH, KP_EMAIL_PROTECTION]),
        ],
    };
    if !alt_names.is_empty() {
        let names: Vec<Vec<u8>> = alt_names.iter().map(AltName::to_der).collect();
        extensions.push(extension(
            OID_SUBJECT_ALT_NAME,
            false,
            der::sequence(&names),
        ));
    }
    Ok(extensions)
}

/// Reads the subjectKeyIdentifier value of a parsed certificate.
pub fn subject_key_id_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(id.0.to_vec())
            }
            _ => None,
        })
}

/// The subjectAltNames a request asks for (DNS names and IP addresses only).
///
/// # Errors
/// Fails on a malformed extension request.
pub fn requested_alt_names(
    csr: &x509_parser::certification_request::X509CertificationRequest<'_>,
) -> anyhow::Result<Vec<AltName>> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let mut names = Vec::new();
    let Some(extensions) = csr.requested_extensions() else {
        return Ok(names);
    };
    for ext in extensions {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push(AltName::parse(dns)?),
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => IpAddr::from(<[u8; 4]>::try_from(*bytes)?),
                            16 => IpAddr::from(<[u8; 16]>::try_from(*bytes)?),
                            n => bail!("the request has an IP subjectAltName of {n} bytes"),
                        };
                        names.push(AltName::Ip(ip));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(names)
}
