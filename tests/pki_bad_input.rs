//! Bad input gives one clear error (naming the file or argument), a non-zero exit code, and
//! leaves the CA directory exactly as it was.

mod common;

use std::path::Path;

use common::*;

/// Runs `pki --dir DIR ARGS`, expecting failure with every fragment in the message and no
/// change anywhere under `dir`.
fn assert_refused(dir: &Path, args: &[&str], fragments: &[&str]) {
    let before = snapshot(dir);

    let stderr = pki_err(dir, args);

    for fragment in fragments {
        assert!(
            stderr.contains(fragment),
            "{args:?}: {fragment:?} not in {stderr:?}"
        );
    }
    assert_eq!(
        stderr.lines().count(),
        1,
        "one error line expected: {stderr:?}"
    );
    assert!(snapshot(dir) == before, "{args:?} changed the directory");
}

#[test]
fn names_that_could_leave_the_directory_are_refused_and_nothing_is_written_outside() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());

    for name in ["../escape", ".hidden", "a/b", "ca", "with space", "/etc/x"] {
        assert_refused(&dir, &["issue-client", name], &["NAME"]);
        assert_refused(&dir, &["issue-server", name], &["NAME"]);
    }

    let outside: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["ca"]);
}

#[test]
fn issuing_an_existing_name_again_says_how_to_revoke_and_reissue() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "alice"]);

    assert_refused(
        &dir,
        &["issue-client", "alice"],
        &[
            "alice.cert.pem",
            "already exists",
            "wstunnel pki revoke alice",
        ],
    );
    assert_refused(&dir, &["issue-server", "alice"], &["already exists"]);

    pki_ok(&dir, &["revoke", "alice"]);
    pki_ok(&dir, &["issue-client", "alice"]);
}

#[test]
fn garbage_truncated_and_wrong_type_pem_are_refused_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "alice"]);
    let key = dir.join("private/ca.key.pem");
    let cert = dir.join("certs/ca.cert.pem");
    let good_key = std::fs::read(&key).unwrap();
    let good_cert = std::fs::read(&cert).unwrap();

    std::fs::write(&key, b"this is not a key\n").unwrap();
    assert_refused(
        &dir,
        &["issue-client", "bob"],
        &["private/ca.key.pem", "no PEM block"],
    );
    std::fs::write(&key, &good_key[..good_key.len() / 2]).unwrap();
    assert_refused(&dir, &["issue-client", "bob"], &["private/ca.key.pem"]);
    std::fs::copy(dir.join("csr/alice.csr.pem"), &key).unwrap();
    assert_refused(
        &dir,
        &["issue-client", "bob"],
        &["private/ca.key.pem", "CERTIFICATE REQUEST"],
    );
    std::fs::write(&key, &good_key).unwrap();

    std::fs::write(&cert, &good_cert[..good_cert.len() / 2]).unwrap();
    assert_refused(&dir, &["issue-client", "bob"], &["certs/ca.cert.pem"]);
    std::fs::copy(dir.join("crl/ca.crl.pem"), &cert).unwrap();
    assert_refused(
        &dir,
        &["issue-client", "bob"],
        &["certs/ca.cert.pem", "X509 CRL"],
    );
    std::fs::write(&cert, &good_cert).unwrap();

    assert_refused(
        &dir,
        &["inspect", dir.join("index.txt").to_str().unwrap()],
        &["index.txt"],
    );
    pki_ok(&dir, &["issue-client", "bob"]);
}

#[test]
fn a_ca_key_that_does_not_match_the_certificate_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    openssl_ok(&dir, &["genrsa", "-out", "private/ca.key.pem", "2048"]);

    assert_refused(
        &dir,
        &["issue-client", "bob"],
        &["private/ca.key.pem", "does not match"],
    );
    assert_refused(&dir, &["gen-crl"], &["does not match"]);
}

#[test]
fn a_certificate_that_does_not_match_its_key_is_not_exported() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "alice"]);
    pki_ok(&dir, &["issue-client", "bob"]);
    std::fs::copy(dir.join("private/bob.pem"), dir.join("private/alice.pem")).unwrap();
    let password = root.path().join("pw");
    std::fs::write(&password, "pw\n").unwrap();

    assert_refused(
        &dir,
        &[
            "export-p12",
            "alice",
            "--password-file",
            password.to_str().unwrap(),
        ],
        &["private/alice.pem", "does not match", "alice.cert.pem"],
    );
}

#[test]
fn a_request_with_a_bad_signature_or_garbage_is_not_signed() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    let work = root.path();
    openssl_ok(
        work,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "good.csr.pem",
            "-subj",
            "/CN=ext",
        ],
    );
    let der = std::process::Command::new("openssl")
        .args(["req", "-in", "good.csr.pem", "-outform", "DER"])
        .current_dir(work)
        .output()
        .unwrap()
        .stdout;
    let mut tampered = der.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let tampered = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", tampered));
    std::fs::write(work.join("bad.csr.pem"), tampered).unwrap();
    std::fs::write(work.join("junk.csr.pem"), "junk").unwrap();
    let bad = work.join("bad.csr.pem");
    let junk = work.join("junk.csr.pem");

    assert_refused(
        &dir,
        &["sign-csr", bad.to_str().unwrap(), "--profile", "client"],
        &["bad.csr.pem", "signature"],
    );
    assert_refused(
        &dir,
        &["sign-csr", junk.to_str().unwrap(), "--profile", "client"],
        &["junk.csr.pem"],
    );
    assert_refused(
        &dir,
        &[
            "sign-csr",
            dir.join("certs/ca.cert.pem").to_str().unwrap(),
            "--profile",
            "client",
            "--name",
            "x",
        ],
        &["CERTIFICATE"],
    );
    pki_ok(
        &dir,
        &[
            "sign-csr",
            work.join("good.csr.pem").to_str().unwrap(),
            "--profile",
            "client",
        ],
    );
}

#[test]
fn an_encrypted_ca_key_without_or_with_a_wrong_passphrase_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ca");
    let run = wstunnel(&[
        "pki",
        "init",
        dir.to_str().unwrap(),
        "--key-type",
        "ecdsa-p256",
        "--encrypt-key",
        "--passout",
        "pass:right",
    ]);
    assert!(run.success, "{}", run.stderr);

    assert_refused(
        &dir,
        &["issue-client", "bob"],
        &["private/ca.key.pem", "encrypted", "--passin"],
    );
    assert_refused(
        &dir,
        &["issue-client", "bob", "--passin", "pass:wrong"],
        &["private/ca.key.pem", "passphrase"],
    );
    assert_refused(
        &dir,
        &[
            "issue-client",
            "bob",
            "--passin",
            "env:WSTUNNEL_SURELY_UNSET",
        ],
        &["WSTUNNEL_SURELY_UNSET"],
    );
    assert_refused(
        &dir,
        &["issue-client", "bob", "--passin", "secret"],
        &["--passin"],
    );
    pki_ok(&dir, &["issue-client", "bob", "--passin", "pass:right"]);
}

#[test]
fn an_empty_directory_is_not_a_ca_and_stays_empty() {
    let root = tempfile::tempdir().unwrap();

    assert_refused(
        root.path(),
        &["issue-client", "bob"],
        &["holds no CA", "wstunnel pki init"],
    );
    assert_refused(root.path(), &["gen-crl"], &["holds no CA"]);
    assert_refused(root.path(), &["list"], &["not a CA directory"]);

    assert!(std::fs::read_dir(root.path()).unwrap().next().is_none());
}

#[test]
fn a_directory_that_cannot_be_written_is_refused_before_anything_is_created() {
    // /proc refuses new entries even to root, which chmod cannot simulate for root.
    let target = Path::new("/proc/wstunnel-pki-test/ca");

    let run = wstunnel(&["pki", "init", target.to_str().unwrap()]);

    assert!(!run.success);
    assert!(
        run.stderr.contains("/proc/wstunnel-pki-test"),
        "{}",
        run.stderr
    );
    assert!(!target.exists());
}

#[test]
fn an_existing_ca_is_not_overwritten_by_init() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    let before = snapshot(&dir);

    let run = wstunnel(&["pki", "init", dir.to_str().unwrap()]);

    assert!(!run.success);
    assert!(run.stderr.contains("already holds a CA"), "{}", run.stderr);
    assert!(snapshot(&dir) == before);
}

#[test]
fn bad_arguments_and_damaged_database_files_are_named() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "alice"]);

    assert_refused(
        &dir,
        &["issue-client", "bob", "--subject", "CN=no-slash"],
        &["--subject"],
    );
    assert_refused(
        &dir,
        &["issue-client", "bob", "--subject", "/XX=1/CN=b"],
        &["--subject", "XX"],
    );
    assert_refused(
        &dir,
        &["issue-server", "web", "--san", "bad name!"],
        &["--san"],
    );
    assert_refused(&dir, &["revoke", "--serial", "xyz"], &["--serial"]);
    assert_refused(
        &dir,
        &["revoke", "--serial", "ABCD"],
        &["ABCD", "not in index.txt"],
    );
    assert_refused(
        &dir,
        &["revoke", "nobody"],
        &["nobody.cert.pem", "does not exist"],
    );
    pki_ok(&dir, &["revoke", "--serial", "1000"]);
    assert_refused(&dir, &["revoke", "--serial", "1000"], &["already revoked"]);

    std::fs::write(dir.join("serial"), "not hex\n").unwrap();
    assert_refused(&dir, &["issue-client", "bob"], &["serial"]);
    std::fs::write(dir.join("serial"), "1001\n").unwrap();
    std::fs::write(dir.join("index.txt"), "V\tgarbage\n").unwrap();
    assert_refused(&dir, &["issue-client", "bob"], &["index.txt line 1"]);
    assert_refused(&dir, &["gen-crl"], &["index.txt line 1"]);
}

#[test]
fn errors_on_damaged_files_and_repeated_requests_say_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "alice"]);
    pki_ok(&dir, &["revoke", "--serial", "1000"]);
    openssl_ok(
        root.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "nocn.key",
            "-out",
            "nocn.csr.pem",
            "-subj",
            "/O=no common name",
        ],
    );
    let csr = root.path().join("nocn.csr.pem");

    assert_refused(
        &dir,
        &["revoke", "--serial", "1000"],
        &["already revoked", "nothing to do", "gen-crl"],
    );
    assert_refused(
        &dir,
        &["sign-csr", csr.to_str().unwrap(), "--profile", "client"],
        &["nocn.csr.pem", "no commonName", "-subj /CN=NAME"],
    );
    assert_refused(
        &dir,
        &["issue-client", &"x".repeat(65)],
        &["longer than 64 characters", "use a shorter one"],
    );
    std::fs::write(dir.join("serial"), "not hex\n").unwrap();
    assert_refused(
        &dir,
        &["issue-client", "bob"],
        &["serial is damaged", "write the next free number"],
    );
    std::fs::write(dir.join("serial"), "1001\n").unwrap();
    std::fs::write(dir.join("index.txt"), "V\tgarbage\n").unwrap();
    assert_refused(
        &dir,
        &["gen-crl"],
        &["index.txt line 1", "fix or remove that line"],
    );
}

#[test]
fn days_outside_one_to_36500_are_refused_without_a_panic_or_a_partial_ca() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    let before = snapshot(&dir);
    let new_ca = root.path().join("ca2");

    let refusals = [
        pki_err(&dir, &["issue-client", "x", "--days", "99999999"]),
        pki_err(&dir, &["issue-client", "x", "--days", "0"]),
        pki_err(&dir, &["issue-server", "--days", "36501"]),
        pki_err(&dir, &["gen-crl", "--days", "0"]),
        pki_err(&dir, &["gen-crl", "--days", "99999999"]),
        wstunnel(&[
            "pki",
            "init",
            new_ca.to_str().unwrap(),
            "--days",
            "99999999",
        ])
        .stderr,
        wstunnel(&["pki", "init", new_ca.to_str().unwrap(), "--days", "0"]).stderr,
    ];
    let help = wstunnel(&["pki", "issue-client", "--help"]).stdout;

    for stderr in &refusals {
        assert!(stderr.contains("1..=36500"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(
        snapshot(&dir) == before,
        "a refused --days changed the directory"
    );
    assert!(!new_ca.exists());
    assert!(help.contains("from 1 to 36500"), "{help}");
}

#[test]
fn names_whose_files_would_be_the_cas_are_reserved_and_no_ca_file_is_ever_to_be_removed() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());

    for name in ["ca", "ca.key", "ca-chain"] {
        let before = snapshot(&dir);

        let stderr = pki_err(&dir, &["issue-client", name]);

        assert!(stderr.contains("is reserved"), "{name}: {stderr}");
        assert!(!stderr.contains("remove"), "{name}: {stderr}");
        assert!(snapshot(&dir) == before, "{name} changed the directory");
    }
}

#[test]
fn names_with_the_revoked_marker_are_refused_at_issue_time() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());

    assert_refused(
        &dir,
        &["issue-client", "col.revoked-100B"],
        &["\".revoked-\"", "pick a NAME without it"],
    );
}

#[test]
fn an_empty_or_overlong_common_name_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    let long = "c".repeat(65);

    assert_refused(
        &dir,
        &["issue-client", "e", "--cn", ""],
        &["commonName (CN) is empty"],
    );
    assert_refused(
        &dir,
        &["issue-client", "e", "--cn", &long],
        &["65 characters", "64"],
    );
    pki_ok(&dir, &["issue-client", "e", "--cn", &long[..64]]);
}

#[test]
fn a_serial_file_holding_zero_is_refused_because_serials_are_positive() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    std::fs::write(dir.join("serial"), "00\n").unwrap();

    assert_refused(
        &dir,
        &["issue-client", "zero"],
        &["serial holds 0", "serials must be positive"],
    );
}
