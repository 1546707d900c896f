//! Helpers shared by the `pki` integration tests: running our binary and the real `openssl`,
//! building a CA with the walkthrough's own commands, and snapshots of a directory tree.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The walkthrough's openssl.cnf, verbatim, with `@DIR@` for its `dir`.
pub const WALKTHROUGH_CNF: &str = include_str!("walkthrough.cnf");

/// The walkthrough's answers to `openssl req`'s prompts, for each certificate.
pub const CA_SUBJECT: &str =
    "/C=GB/ST=England/O=wstunnel development/CN=wstunnel Development Root CA";

/// Result of a command: exit status, stdout and stderr as text.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `wstunnel ARGS` (logs off so stderr holds only the error line).
pub fn wstunnel(args: &[&str]) -> Run {
    wstunnel_env(args, &[])
}

/// Runs `wstunnel ARGS` with extra environment variables.
pub fn wstunnel_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args(args)
        .env_remove("WSTUNNEL_PKI_DIR")
        .env("RUST_LOG", "off")
        .envs(env.iter().copied())
        .output()
        .expect("run wstunnel")
        .into()
}

/// Runs `wstunnel ARGS` with the log level a user gets (no `RUST_LOG`), or `log_level`.
pub fn wstunnel_logging(args: &[&str], log_level: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wstunnel"));
    command
        .args(args)
        .env_remove("WSTUNNEL_PKI_DIR")
        .env_remove("RUST_LOG");
    if let Some(level) = log_level {
        command.env("RUST_LOG", level);
    }
    command.output().expect("run wstunnel").into()
}

/// Runs `wstunnel pki --dir DIR ARGS`, asserting success.
pub fn pki_ok(dir: &Path, args: &[&str]) -> Run {
    let mut full = vec!["pki", "--dir", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    let run = wstunnel(&full);
    assert!(run.success, "wstunnel {full:?} failed: {}", run.stderr);
    run
}

/// Runs `wstunnel pki --dir DIR ARGS`, asserting failure, and returns stderr.
pub fn pki_err(dir: &Path, args: &[&str]) -> String {
    let mut full = vec!["pki", "--dir", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    let run = wstunnel(&full);
    assert!(
        !run.success,
        "wstunnel {full:?} succeeded but should fail: {}",
        run.stdout
    );
    run.stderr
}

/// Runs `openssl ARGS` in `cwd`.
pub fn openssl(cwd: &Path, args: &[&str]) -> Run {
    Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run openssl")
        .into()
}

/// Runs `openssl ARGS` in `cwd`, asserting success, and returns stdout.
pub fn openssl_ok(cwd: &Path, args: &[&str]) -> String {
    let run = openssl(cwd, args);
    assert!(
        run.success,
        "openssl {args:?} failed: {}{}",
        run.stdout, run.stderr
    );
    run.stdout
}

/// A fresh CA made by `wstunnel pki init` (RSA 2048 to keep tests quick) in `parent/ca`.
pub fn our_ca(parent: &Path) -> PathBuf {
    let dir = parent.join("ca");
    let run = wstunnel(&[
        "pki",
        "init",
        dir.to_str().unwrap(),
        "--key-type",
        "rsa2048",
    ]);
    assert!(run.success, "pki init failed: {}", run.stderr);
    dir
}

/// Builds a CA in `parent/ca` with the walkthrough's own commands, made non-interactive with
/// `-subj` and `-batch`. `extra_ca_default` is appended to `[ CA_default ]` (for example
/// `copy_extensions = copy`). `ca_key_bits` is the walkthrough's 4096 or less for speed. The
/// CA key is PKCS#8 (OpenSSL 3's genrsa); see [`walkthrough_ca_with_key_form`].
pub fn walkthrough_ca(parent: &Path, extra_ca_default: &str, ca_key_bits: &str) -> PathBuf {
    walkthrough_ca_with_key_form(parent, extra_ca_default, ca_key_bits, false)
}

/// [`walkthrough_ca`] with the CA key as PKCS#1 (`BEGIN RSA PRIVATE KEY`, OpenSSL 1.1's
/// genrsa) when `traditional`.
pub fn walkthrough_ca_with_key_form(
    parent: &Path,
    extra_ca_default: &str,
    ca_key_bits: &str,
    traditional: bool,
) -> PathBuf {
    let dir = parent.join("ca");
    for sub in ["certs", "csr", "crl", "newcerts", "private"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    let mut cnf = WALKTHROUGH_CNF.replace("@DIR@", dir.to_str().unwrap());
    if !extra_ca_default.is_empty() {
        cnf = cnf.replace(
            "policy            = policy_loose\n",
            &format!("policy            = policy_loose\n{extra_ca_default}\n"),
        );
    }
    std::fs::write(dir.join("openssl.cnf"), cnf).unwrap();
    let mut genrsa = vec!["genrsa", "-out", "private/ca.key.pem", ca_key_bits];
    if traditional {
        genrsa.insert(1, "-traditional");
    }
    openssl_ok(&dir, &genrsa);
    openssl_ok(
        &dir,
        &[
            "req",
            "-config",
            "openssl.cnf",
            "-key",
            "private/ca.key.pem",
            "-new",
            "-x509",
            "-days",
            "7300",
            "-sha256",
            "-extensions",
            "v3_ca",
            "-out",
            "certs/ca.cert.pem",
            "-subj",
            CA_SUBJECT,
        ],
    );
    dir
}

/// The walkthrough's genrsa + req + ca for one certificate. `traditional` writes the key as
/// PKCS#1 (`BEGIN RSA PRIVATE KEY`, like OpenSSL 1.1's genrsa) instead of PKCS#8.
pub fn walkthrough_issue(
    dir: &Path,
    name: &str,
    profile_section: &str,
    subject: &str,
    extra_req_args: &[&str],
    traditional: bool,
) {
    let key = format!("private/{name}.pem");
    let csr = format!("csr/{name}.csr.pem");
    let cert = format!("certs/{name}.cert.pem");
    let mut genrsa = vec!["genrsa", "-out", key.as_str()];
    if traditional {
        genrsa.insert(1, "-traditional");
    }
    genrsa.push("2048");
    openssl_ok(dir, &genrsa);
    let mut req = vec![
        "req",
        "-config",
        "openssl.cnf",
        "-key",
        key.as_str(),
        "-new",
        "-sha256",
        "-out",
        csr.as_str(),
        "-subj",
        subject,
    ];
    req.extend_from_slice(extra_req_args);
    openssl_ok(dir, &req);
    openssl_ok(
        dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-extensions",
            profile_section,
            "-days",
            "375",
            "-notext",
            "-md",
            "sha256",
            "-in",
            csr.as_str(),
            "-out",
            cert.as_str(),
            "-batch",
        ],
    );
}

/// `openssl x509 -noout -text` with serials, dates, keys, key identifiers and signatures
/// masked, so two certificates of the same profile compare equal.
pub fn masked_text(dir: &Path, cert: &Path) -> String {
    let text = openssl_ok(
        dir,
        &["x509", "-noout", "-text", "-in", cert.to_str().unwrap()],
    );
    mask(&text)
}

/// Masks the values that differ between any two certificates of one profile.
pub fn mask(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let is_hex_row = !trimmed.is_empty()
            && trimmed.len() >= 2
            && trimmed
                .split(':')
                .all(|part| part.len() <= 2 && part.chars().all(|c| c.is_ascii_hexdigit()));
        if is_hex_row {
            continue;
        }
        let masked = if let Some((head, _)) = line.split_once("Serial Number:") {
            format!("{head}Serial Number: <serial>")
        } else if let Some((head, _)) = line.split_once("Not Before:") {
            format!("{head}Not Before: <date>")
        } else if let Some((head, _)) = line.split_once("Not After :") {
            format!("{head}Not After : <date>")
        } else if let Some((head, _)) = line.split_once("Last Update:") {
            format!("{head}Last Update: <date>")
        } else if let Some((head, _)) = line.split_once("Next Update:") {
            format!("{head}Next Update: <date>")
        } else if let Some((head, _)) = line.split_once("Revocation Date:") {
            format!("{head}Revocation Date: <date>")
        } else if let Some((head, _)) = line.split_once("keyid:") {
            format!("{head}keyid:<keyid>")
        } else if trimmed.starts_with("serial:") {
            let head = &line[..line.len() - trimmed.len()];
            format!("{head}serial:<serial>")
        } else {
            line.to_owned()
        };
        out.push(masked);
    }
    out.join("\n")
}

/// Every file under `dir`: relative path → (mode, contents). Directories are recorded with
/// their mode and empty contents.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(dir).unwrap().to_path_buf();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                files.insert(relative, (mode, Vec::new()));
                stack.push(path);
            } else {
                files.insert(relative, (mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    files
}

/// Lines of `DIR/index.txt`.
pub fn index_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("index.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Content of a counter file without the newline.
pub fn counter(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .trim()
        .to_owned()
}

/// Makes a directory immutable (`chattr +i`: not even root can add, remove or rename entries
/// in it) until dropped. Needs root and a file system with attributes (ext4, xfs, btrfs);
/// the test fails, rather than passing vacuously, where that is not available.
pub struct Immutable(PathBuf);

impl Immutable {
    pub fn new(dir: &Path) -> Immutable {
        let status = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .expect("run chattr");
        assert!(status.success(), "chattr +i {} failed", dir.display());
        Immutable(dir.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// `openssl verify -crl_check` of `cert` (relative to `dir`) against the directory's CA and
/// CRL for `purpose` (`sslserver`, `sslclient`).
pub fn openssl_verify_crl(dir: &Path, purpose: &str, cert: &str) -> Run {
    openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "certs/ca.cert.pem",
            "-CRLfile",
            "crl/ca.crl.pem",
            "-crl_check",
            "-purpose",
            purpose,
            cert,
        ],
    )
}
