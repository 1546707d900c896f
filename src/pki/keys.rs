//! Private keys: the key types we generate, reading the PEM forms OpenSSL writes (PKCS#8,
//! PKCS#1, SEC1, encrypted PKCS#8) and writing PKCS#8.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use aws_lc_rs::encoding::AsDer;
use pkcs8::der::Decode;
use rcgen::KeyPair;

/// Algorithm and size of a generated key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// RSA 2048 bits, SHA-256 signatures (the walkthrough's server and client keys).
    #[value(name = "rsa2048")]
    Rsa2048,
    /// RSA 4096 bits, SHA-256 signatures (the walkthrough's CA key).
    #[value(name = "rsa4096")]
    Rsa4096,
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256,
    /// ECDSA on P-384; certificates it signs use SHA-384 (rcgen pairs P-384 with SHA-384).
    EcdsaP384,
    /// Ed25519 (not accepted by every TLS client; fine with rustls and OpenSSL 3).
    Ed25519,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa4096 => "rsa4096",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Ed25519 => "ed25519",
        })
    }
}

impl KeyType {
    /// Generates a new key of this type.
    ///
    /// # Errors
    /// Fails only if the system's random source or the crypto library fails.
    pub fn generate(self) -> anyhow::Result<KeyPair> {
        let key = match self {
            KeyType::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
            KeyType::Rsa4096 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
            }
            KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        };
        key.with_context(|| format!("cannot generate a {self} key"))
    }
}

/// A passphrase given in one of OpenSSL's forms: `pass:TEXT`, `env:VAR` or `file:PATH` (first
/// line of the file).
#[derive(Clone)]
pub struct Passphrase(String);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Passphrase {
    /// Wraps a passphrase given directly (library callers).
    #[allow(dead_code)] // Library API for the tunnel and dev-env subsystems.
    pub fn new(text: impl Into<String>) -> Passphrase {
        Passphrase(text.into())
    }

    /// Parses `pass:TEXT`, `env:VAR` or `file:PATH`.
    ///
    /// # Errors
    /// Fails on another form, an unset variable, an unreadable file or an empty passphrase.
    pub fn parse(source: &str) -> anyhow::Result<Passphrase> {
        let text = if let Some(text) = source.strip_prefix("pass:") {
            text.to_owned()
        } else if let Some(var) = source.strip_prefix("env:") {
            std::env::var(var)
                .with_context(|| format!("--passin env:{var}: the variable {var} is not set"))?
        } else if let Some(path) = source.strip_prefix("file:") {
            let contents = std::fs::read_to_string(path)
                .with_context(|| format!("--passin file:{path}: cannot read the file"))?;
            contents.lines().next().unwrap_or_default().to_owned()
        } else {
            bail!("--passin must be pass:TEXT, env:VAR or file:PATH (OpenSSL's forms)");
        };
        if text.is_empty() {
            bail!("the passphrase given with --passin is empty");
        }
        Ok(Passphrase(text))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A private key read from a file: the rcgen key pair and its PKCS#8 DER.
pub struct LoadedKey {
    pub key_pair: KeyPair,
    pub pkcs8_der: Vec<u8>,
}

/// Reads a private key in any of the PEM forms OpenSSL writes: `PRIVATE KEY` (PKCS#8),
/// `RSA PRIVATE KEY` (PKCS#1, `openssl genrsa` in 1.1), `EC PRIVATE KEY` (SEC1) and
/// `ENCRYPTED PRIVATE KEY` (needs `passin`).
///
/// # Errors
/// Names `path` and says what is wrong: not PEM, not a key, encrypted without a passphrase,
/// a wrong passphrase, or legacy (`Proc-Type: 4,ENCRYPTED`) encryption.
pub fn load_key(path: &Path, passin: Option<&Passphrase>) -> anyhow::Result<LoadedKey> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_key_pem(&text, passin)
        .with_context(|| format!("{} is not a usable private key", path.display()))
}

/// Parses a private key PEM; see [`load_key`].
pub fn parse_key_pem(text: &[u8], passin: Option<&Passphrase>) -> anyhow::Result<LoadedKey> {
    let blocks = pem::parse_many(text).context("the PEM armour is damaged")?;
    let Some(block) = blocks.iter().find(|b| b.tag().ends_with("PRIVATE KEY")) else {
        match blocks.first() {
            Some(other) => bail!("it holds a {:?} PEM block, not a private key", other.tag()),
            None => bail!("it holds no PEM block (expected -----BEGIN PRIVATE KEY-----)"),
        }
    };
    if block.headers().get("Proc-Type").is_some() {
        bail!(
            "it uses OpenSSL's legacy PEM encryption; convert it with `openssl pkcs8 -topk8 -in \
             KEY -out KEY.p8` and pass the passphrase with --passin"
        );
    }
    let der = block.contents();
    let pkcs8_der = match block.tag() {
        "PRIVATE KEY" => der.to_vec(),
        "RSA PRIVATE KEY" => {
            let key = aws_lc_rs::rsa::KeyPair::from_der(der)
                .map_err(|e| anyhow::anyhow!("the RSA (PKCS#1) key is invalid: {e}"))?;
            key.as_der()
                .map_err(|e| anyhow::anyhow!("cannot convert the RSA key to PKCS#8: {e}"))?
                .as_ref()
                .to_vec()
        }
        "EC PRIVATE KEY" => sec1_to_pkcs8(der)?,
        "ENCRYPTED PRIVATE KEY" => {
            let Some(passphrase) = passin else {
                bail!(
                    "it is encrypted (ENCRYPTED PRIVATE KEY); give its passphrase with --passin pass:TEXT|env:VAR|file:PATH"
                );
            };
            let encrypted = pkcs8::EncryptedPrivateKeyInfo::from_der(der)
                .map_err(|e| anyhow::anyhow!("the encrypted key is malformed: {e}"))?;
            let document = encrypted.decrypt(passphrase.as_str()).map_err(|_| {
                anyhow::anyhow!("the passphrase given with --passin does not decrypt it")
            })?;
            document.as_bytes().to_vec()
        }
        other => bail!(
            "it holds a {other:?} block, a key format this tool does not read; convert it to \
             PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`"
        ),
    };
    let key_pair = KeyPair::try_from(pkcs8_der.as_slice()).map_err(|e| {
        anyhow::anyhow!(
            "the key is not RSA, ECDSA P-256/P-384 or Ed25519 ({e}); use a key of one of \
                 those types"
        )
    })?;
    Ok(LoadedKey {
        key_pair,
        pkcs8_der,
    })
}

fn sec1_to_pkcs8(der: &[u8]) -> anyhow::Result<Vec<u8>> {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    };
    for alg in [
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &ECDSA_P384_SHA384_ASN1_SIGNING,
    ] {
        if let Ok(key) = EcdsaKeyPair::from_private_key_der(alg, der) {
            let pkcs8 = key
                .to_pkcs8v1()
                .map_err(|e| anyhow::anyhow!("cannot convert the EC key to PKCS#8: {e}"))?;
            return Ok(pkcs8.as_ref().to_vec());
        }
    }
    bail!("the EC (SEC1) key is invalid or not on P-256/P-384")
}

/// PKCS#8 PEM of a key, encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) when a
/// passphrase is given, like `openssl pkcs8 -topk8 -v2 aes-256-cbc`.
///
/// # Errors
/// Fails only if the crypto library fails.
pub fn key_to_pem(pkcs8_der: &[u8], passphrase: Option<&Passphrase>) -> anyhow::Result<String> {
    let v1 = pkcs8_v1(pkcs8_der)?;
    let Some(passphrase) = passphrase else {
        return Ok(super::fsutil::pem_text("PRIVATE KEY", &v1));
    };
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)
        .and_then(|()| aws_lc_rs::rand::fill(&mut iv))
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(100_000, &salt, &iv)
        .map_err(|e| anyhow::anyhow!("cannot set up key encryption: {e}"))?;
    let info = pkcs8::PrivateKeyInfo::try_from(v1.as_slice())
        .map_err(|e| anyhow::anyhow!("the key is not valid PKCS#8: {e}"))?;
    let encrypted = info
        .encrypt_with_params(params, passphrase.as_str())
        .map_err(|e| anyhow::anyhow!("cannot encrypt the key: {e}"))?;
    Ok(super::fsutil::pem_text(
        "ENCRYPTED PRIVATE KEY",
        encrypted.as_bytes(),
    ))
}

/// The key as PKCS#8 v1 (RFC 5208 PrivateKeyInfo, without the public key), the only form
/// OpenSSL 3.0 reads for Ed25519; a v2 key (RFC 5958, as Ed25519 keys are generated) loses
/// its optional public key, which is derived from the private key anyway.
fn pkcs8_v1(pkcs8_der: &[u8]) -> anyhow::Result<Vec<u8>> {
    use pkcs8::der::Encode;
    let mut info = pkcs8::PrivateKeyInfo::try_from(pkcs8_der)
        .map_err(|e| anyhow::anyhow!("the key is not valid PKCS#8: {e}"))?;
    info.public_key = None;
    info.to_der()
        .map_err(|e| anyhow::anyhow!("cannot encode the key as PKCS#8: {e}"))
}

/// The key type of a key pair, when it is one we generate.
pub fn key_type_of(key: &KeyPair) -> Option<KeyType> {
    let alg = key.algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        Some(KeyType::EcdsaP256)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        Some(KeyType::EcdsaP384)
    } else if alg == &rcgen::PKCS_ED25519 {
        Some(KeyType::Ed25519)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        // The RSAPublicKey DER is about 270 bytes for 2048 bits and 526 for 4096.
        Some(if key.public_key_raw().len() > 400 {
            KeyType::Rsa4096
        } else {
            KeyType::Rsa2048
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encrypted_key_reads_back_only_with_its_passphrase() {
        let key = KeyType::EcdsaP256.generate().unwrap();
        let passphrase = Passphrase::new("correct horse");

        let pem = key_to_pem(key.serialized_der(), Some(&passphrase)).unwrap();

        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let read = parse_key_pem(pem.as_bytes(), Some(&passphrase)).unwrap();
        assert_eq!(read.key_pair.public_key_raw(), key.public_key_raw());
        let without = parse_key_pem(pem.as_bytes(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(without.contains("--passin"), "{without}");
        let wrong = parse_key_pem(pem.as_bytes(), Some(&Passphrase::new("wrong")))
            .err()
            .unwrap();
        assert!(wrong.to_string().contains("does not decrypt"), "{wrong}");
    }

    #[test]
    fn passphrase_sources_follow_openssl_forms() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "from file\nsecond line\n").unwrap();

        let from_file = Passphrase::parse(&format!("file:{}", file.display())).unwrap();
        let literal = Passphrase::parse("pass:literal").unwrap();

        assert_eq!(from_file.as_str(), "from file");
        assert_eq!(literal.as_str(), "literal");
        assert!(Passphrase::parse("literal").is_err());
        assert!(Passphrase::parse("pass:").is_err());
        assert!(Passphrase::parse("env:WSTUNNEL_TEST_SURELY_UNSET_VARIABLE").is_err());
    }

    #[test]
    fn keys_are_written_as_pkcs8_v1_without_the_public_key() {
        for key_type in [KeyType::Rsa2048, KeyType::EcdsaP256, KeyType::Ed25519] {
            let key = key_type.generate().unwrap();

            let pem = key_to_pem(key.serialized_der(), None).unwrap();

            let der = pem::parse(pem).unwrap().into_contents();
            let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap();
            assert_eq!(info.version(), pkcs8::Version::V1, "{key_type}");
        }
    }

    #[test]
    fn pkcs8_v2_ed25519_keys_with_their_public_key_are_still_read() {
        let key = KeyType::Ed25519.generate().unwrap();
        let v2_pem = crate::pki::fsutil::pem_text("PRIVATE KEY", key.serialized_der());

        let loaded = parse_key_pem(v2_pem.as_bytes(), None).unwrap();

        assert_eq!(loaded.key_pair.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn generated_key_types_are_recognised_when_read_back() {
        for key_type in [
            KeyType::EcdsaP256,
            KeyType::EcdsaP384,
            KeyType::Ed25519,
            KeyType::Rsa2048,
        ] {
            let key = key_type.generate().unwrap();
            let pem = key_to_pem(key.serialized_der(), None).unwrap();

            let read = parse_key_pem(pem.as_bytes(), None).unwrap();

            assert_eq!(key_type_of(&read.key_pair), Some(key_type));
        }
    }
}
