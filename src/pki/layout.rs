//! The directory layout of the walkthrough (`certs/ crl/ csr/ newcerts/ private/`, `serial`,
//! `index.txt`, `crlnumber`, `openssl.cnf`) and the rules for certificate names.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// Subdirectories created by `pki init`; `private/` is made mode 0700.
pub const SUBDIRS: [&str; 5] = ["certs", "crl", "csr", "newcerts", "private"];

/// Certificate of the CA: `certs/ca.cert.pem`.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join("certs").join("ca.cert.pem")
}

/// Chain of an intermediate CA (its certificate, then its issuer's):
/// `certs/ca-chain.cert.pem`.
pub fn ca_chain_path(dir: &Path) -> PathBuf {
    dir.join("certs").join("ca-chain.cert.pem")
}

/// Private key of the CA: `private/ca.key.pem`.
pub fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join("private").join("ca.key.pem")
}

/// Certificate of NAME: `certs/NAME.cert.pem`.
pub fn cert_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("certs").join(format!("{name}.cert.pem"))
}

/// Private key of NAME: `private/NAME.pem`.
pub fn key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("private").join(format!("{name}.pem"))
}

/// Certificate request of NAME: `csr/NAME.csr.pem`.
pub fn csr_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("csr").join(format!("{name}.csr.pem"))
}

/// PKCS#12 bundle of NAME: `private/NAME.p12` (it holds the private key).
pub fn p12_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("private").join(format!("{name}.p12"))
}

/// OpenSSL's copy of every issued certificate: `newcerts/SERIAL.pem` (uppercase hex).
pub fn newcert_path(dir: &Path, serial_hex: &str) -> PathBuf {
    dir.join("newcerts").join(format!("{serial_hex}.pem"))
}

/// The current CRL: `crl/ca.crl.pem`.
pub fn crl_path(dir: &Path) -> PathBuf {
    dir.join("crl").join("ca.crl.pem")
}

/// OpenSSL's certificate database.
pub fn index_path(dir: &Path) -> PathBuf {
    dir.join("index.txt")
}

/// Attributes of the database (`unique_subject = no`).
pub fn index_attr_path(dir: &Path) -> PathBuf {
    dir.join("index.txt.attr")
}

/// Next certificate serial, uppercase hex.
pub fn serial_path(dir: &Path) -> PathBuf {
    dir.join("serial")
}

/// Next CRL number, uppercase hex.
pub fn crlnumber_path(dir: &Path) -> PathBuf {
    dir.join("crlnumber")
}

/// The walkthrough's OpenSSL configuration with `dir` set to the CA directory.
pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("openssl.cnf")
}

/// Lock file taken exclusively while `index.txt`, `serial` or `crlnumber` change. It stays in
/// a CA directory made by `pki init`; `pki fixtures` removes it from its output.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join(".wstunnel-pki.lock")
}

/// Checks that NAME is a safe file stem: letters, digits, `.`, `_`, `-`, not starting with
/// `.`, at most 64 characters, and none whose files would be the CA's own (`ca`, `ca.key`,
/// `ca-chain`).
///
/// # Errors
/// Names anything else, so that no file can be written outside the directory.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() {
        bail!("the certificate NAME is empty; use letters, digits, '.', '_' or '-'");
    }
    if name.len() > 64 {
        bail!("the certificate NAME {name:?} is longer than 64 characters; use a shorter one");
    }
    if name.starts_with('.') {
        bail!("the certificate NAME {name:?} starts with '.'; start it with a letter or digit");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        bail!(
            "the certificate NAME {name:?} contains {bad:?}; use only letters, digits, '.', '_' \
             and '-'"
        );
    }
    if let Some(ca_file) = ca_file_of(name) {
        bail!(
            "the certificate NAME {name:?} is reserved: its files would be the CA's own {ca_file}; \
             pick another NAME"
        );
    }
    Ok(())
}

/// Checks a NAME about to be issued: [`validate_name`], and not containing `.revoked-`, the
/// marker of the names that `pki revoke` moves files aside to (so a new certificate can
/// never take, or be overwritten by, a revoked one's files).
///
/// # Errors
/// Names the rule that NAME breaks.
pub fn validate_new_name(name: &str) -> anyhow::Result<()> {
    validate_name(name)?;
    if name.contains(REVOKED_MARKER) {
        bail!(
            "the certificate NAME {name:?} contains {REVOKED_MARKER:?}, which `pki revoke` uses \
             for the files it moves aside; pick a NAME without it"
        );
    }
    Ok(())
}

/// What `pki revoke NAME` inserts between NAME and the serial when it moves files aside.
pub const REVOKED_MARKER: &str = ".revoked-";

/// The name `pki revoke NAME` moves NAME's files aside to: `NAME.revoked-SERIAL`.
pub fn revoked_name(name: &str, serial_hex: &str) -> String {
    format!("{name}{REVOKED_MARKER}{serial_hex}")
}

/// The CA file (certificate, key, chain or CRL) that one of NAME's files would be, if any.
fn ca_file_of(name: &str) -> Option<String> {
    let dir = Path::new("");
    let ca_files = [
        ca_cert_path(dir),
        ca_key_path(dir),
        ca_chain_path(dir),
        crl_path(dir),
    ];
    let own_files = [
        cert_path(dir, name),
        key_path(dir, name),
        csr_path(dir, name),
        p12_path(dir, name),
    ];
    ca_files
        .into_iter()
        .find(|ca_file| own_files.contains(ca_file))
        .map(|ca_file| ca_file.display().to_string())
}

/// Whether `path` is one of the CA's own files in `dir` (certificate, key, chain, CRL).
pub fn is_ca_file(dir: &Path, path: &Path) -> bool {
    [
        ca_cert_path(dir),
        ca_key_path(dir),
        ca_chain_path(dir),
        crl_path(dir),
    ]
    .iter()
    .any(|ca_file| ca_file == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_directory_are_refused() {
        for bad in ["../x", "a/b", ".hidden", "", "a b", "x\0", "ca", "é"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        for ca_file in ["ca", "ca.key", "ca-chain"] {
            let error = validate_name(ca_file).unwrap_err().to_string();
            assert!(error.contains("reserved"), "{ca_file}: {error}");
        }
        assert!(validate_new_name("col.revoked-100B").is_err());
        validate_name("col.revoked-100B").unwrap();
        for good in ["wstunnel-server", "client_1", "a.b-c", "X9"] {
            validate_name(good).unwrap();
        }
    }
}
