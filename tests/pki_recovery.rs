//! A command that fails part-way (a directory it cannot write) or was killed leaves either the
//! directory as it was or a state that running the same command again completes; it never
//! overwrites another certificate's files, and leftovers of killed runs are cleaned up.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

#[test]
fn a_revoke_that_cannot_write_the_crl_changes_nothing_and_succeeds_when_retried() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "k1"]);
    let before = snapshot(&dir);

    let refused = {
        let _crl_dir = Immutable::new(&dir.join("crl"));
        pki_err(&dir, &["revoke", "k1"])
    };
    let unchanged = snapshot(&dir) == before;
    let retried = pki_ok(&dir, &["revoke", "k1"]);

    assert!(refused.contains("crl"), "{refused}");
    assert!(unchanged, "the failed revoke changed the directory");
    assert!(
        retried.stdout.contains("revoked serial 1000"),
        "{}",
        retried.stdout
    );
    assert!(index_lines(&dir)[0].starts_with("R\t"));
    let openssl = openssl_verify_crl(&dir, "sslclient", "certs/k1.revoked-1000.cert.pem");
    let said = format!("{}{}", openssl.stdout, openssl.stderr);
    assert!(
        !openssl.success && said.contains("certificate revoked"),
        "{said}"
    );
}

#[test]
fn a_revocation_recorded_without_its_crl_is_completed_by_revoking_again() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "k1"]);
    // What a revoke killed after index.txt and before the CRL leaves (and what
    // `openssl ca -revoke` without -gencrl leaves): index.txt says R, the CRL lists nothing.
    openssl_ok(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-revoke",
            "certs/k1.cert.pem",
        ],
    );
    assert!(openssl_verify_crl(&dir, "sslclient", "certs/k1.cert.pem").success);

    let completed = pki_ok(&dir, &["revoke", "--serial", "1000"]);
    let again = pki_err(&dir, &["revoke", "--serial", "1000"]);

    assert!(
        completed.stdout.contains("already revoked")
            && completed.stdout.contains("regenerated the CRL"),
        "{}",
        completed.stdout
    );
    assert!(
        completed.stdout.contains("1 revoked"),
        "{}",
        completed.stdout
    );
    let openssl = openssl_verify_crl(&dir, "sslclient", "certs/k1.cert.pem");
    let said = format!("{}{}", openssl.stdout, openssl.stderr);
    assert!(
        !openssl.success && said.contains("certificate revoked"),
        "{said}"
    );
    let cert = dir.join("certs/k1.cert.pem");
    let ours = pki_err(&dir, &["verify", cert.to_str().unwrap()]);
    assert!(ours.contains("is revoked"), "{ours}");
    assert!(again.contains("already revoked and listed"), "{again}");
}

#[test]
fn revoke_never_overwrites_a_file_it_would_move_aside_to() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "col"]);
    // Another certificate's key where `revoke col` would move col's key (serial 1000).
    std::fs::write(dir.join("private/col.revoked-1000.pem"), "another key\n").unwrap();
    let before = snapshot(&dir);

    let refused = pki_err(&dir, &["revoke", "col"]);

    assert!(
        refused.contains("private/col.revoked-1000.pem already exists")
            && refused.contains("nothing was changed"),
        "{refused}"
    );
    assert!(
        snapshot(&dir) == before,
        "the refused revoke changed the directory"
    );
    assert!(index_lines(&dir)[0].starts_with("V\t"));
}

#[test]
fn an_issue_that_cannot_write_one_directory_changes_nothing_and_can_be_retried() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());

    for blocked in [".", "private", "csr", "newcerts", "certs"] {
        let before = snapshot(&dir);

        let refused = {
            let _guard = Immutable::new(&dir.join(blocked));
            pki_err(&dir, &["issue-client", "imm1"])
        };

        assert!(!refused.is_empty(), "{blocked}");
        assert!(
            snapshot(&dir) == before,
            "an issue failing on {blocked}/ changed the directory: {refused}"
        );
    }
    let retried = pki_ok(&dir, &["issue-client", "imm1"]);
    assert!(retried.stdout.contains("serial 1000"), "{}", retried.stdout);
    assert_eq!(counter(&dir, "serial"), "1001");
    assert_eq!(index_lines(&dir).len(), 1);
}

#[test]
fn temporary_files_left_by_a_killed_run_are_never_listed_and_are_removed_by_the_next_command() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "alice"]);
    pki_ok(&dir, &["issue-client", "bob"]);
    // A run killed while renaming bob's certificate into place, and one killed while
    // writing a key.
    std::fs::rename(
        dir.join("certs/bob.cert.pem"),
        dir.join("certs/.tmp-killed"),
    )
    .unwrap();
    std::fs::copy(dir.join("private/alice.pem"), dir.join("private/.tmp-key")).unwrap();
    std::fs::write(dir.join(".tmp-index"), "partial").unwrap();

    let listed = pki_ok(&dir, &["list"]);
    pki_ok(&dir, &["issue-client", "carol"]);

    assert!(!listed.stdout.contains(".tmp-"), "{}", listed.stdout);
    assert!(
        listed.stdout.contains("newcerts/1001.pem"),
        "{}",
        listed.stdout
    );
    for leftover in ["certs/.tmp-killed", "private/.tmp-key", ".tmp-index"] {
        assert!(!dir.join(leftover).exists(), "{leftover} was left");
    }
}

/// The CRL number of `DIR/crl/ca.crl.pem` (read from `openssl crl -crlnumber`, which prints hex).
fn crl_number(dir: &Path) -> u64 {
    let text = openssl_ok(
        dir,
        &["crl", "-in", "crl/ca.crl.pem", "-noout", "-crlnumber"],
    );
    let hex = text.trim().strip_prefix("crlNumber=0x").unwrap();
    u64::from_str_radix(hex, 16).unwrap()
}

/// Whether `DIR/crl/ca.crl.pem` lists the hex `serial`.
fn crl_lists(dir: &Path, serial: &str) -> bool {
    let text = openssl_ok(dir, &["crl", "-in", "crl/ca.crl.pem", "-noout", "-text"]);
    text.contains(&format!("Serial Number: {serial}"))
}

/// Runs `wstunnel pki ARGS --dir DIR` under strace, killing it with SIGKILL on entering its
/// `nth` renameat call; says whether the kill landed.
fn pki_killed_at_rename(dir: &Path, args: &[&str], nth: u32) -> bool {
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("inject=renameat:signal=SIGKILL:when={nth}"))
        .arg(env!("CARGO_BIN_EXE_wstunnel"))
        .arg("pki")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run strace (install it: apt-get install strace)");
    status.signal() == Some(9) || status.code() == Some(128 + 9)
}

#[test]
fn a_revoke_that_cannot_write_the_ca_directory_publishes_no_crl() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "a"]);
    let before = snapshot(&dir);

    let refused = {
        let _ca_dir = Immutable::new(&dir);
        pki_err(&dir, &["revoke", "a"])
    };
    let unchanged = snapshot(&dir) == before;
    pki_ok(&dir, &["revoke", "a"]);

    assert!(
        refused.contains("lsattr -d") && refused.contains("chattr -i"),
        "{refused}"
    );
    assert!(unchanged, "the failed revoke changed the directory");
    assert!(index_lines(&dir)[0].starts_with("R\t"));
    assert_eq!(crl_number(&dir), 0x1001);
    assert!(crl_lists(&dir, "1000"));
}

#[test]
fn a_gen_crl_that_cannot_write_the_ca_directory_leaves_the_crl_unchanged() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    let before = snapshot(&dir);

    let refused = {
        let _ca_dir = Immutable::new(&dir);
        pki_err(&dir, &["gen-crl"])
    };

    assert!(refused.contains("chattr -i"), "{refused}");
    assert!(
        snapshot(&dir) == before,
        "the failed gen-crl changed the directory"
    );
}

#[test]
fn a_revoke_killed_between_any_two_renames_is_completed_by_the_next_revoke() {
    // The revoke renames index.txt, crlnumber and the CRL, in that order.
    for nth in 1..=3 {
        let root = tempfile::tempdir().unwrap();
        let dir = our_ca(root.path());
        pki_ok(&dir, &["issue-client", "a"]);
        let first_number = crl_number(&dir);

        let killed = pki_killed_at_rename(&dir, &["revoke", "a"], nth);
        let number_after_kill = crl_number(&dir);
        let completed = pki_ok(&dir, &["revoke", "a"]);
        let completed_number = crl_number(&dir);
        pki_ok(&dir, &["gen-crl"]);

        assert!(killed, "rename {nth}: the kill did not land");
        assert_eq!(
            number_after_kill, first_number,
            "rename {nth}: a CRL was published"
        );
        assert!(
            completed.stdout.contains("serial 1000"),
            "rename {nth}: {}",
            completed.stdout
        );
        assert!(completed_number > first_number, "rename {nth}");
        assert!(
            crl_number(&dir) > completed_number,
            "rename {nth}: a CRL number was reused"
        );
        assert!(
            crl_lists(&dir, "1000"),
            "rename {nth}: the revocation was dropped"
        );
        assert!(index_lines(&dir)[0].starts_with("R\t"), "rename {nth}");
    }
}

#[test]
fn gen_crl_never_reuses_a_crl_number_even_when_crlnumber_lags_behind_the_crl() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["gen-crl"]);
    pki_ok(&dir, &["gen-crl"]);
    let published = crl_number(&dir);
    // What a run stopped after publishing the CRL but before crlnumber leaves behind.
    std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();

    pki_ok(&dir, &["gen-crl"]);

    assert_eq!(crl_number(&dir), published + 1);
    assert_eq!(counter(&dir, "crlnumber"), format!("{:X}", published + 2));
}

#[test]
fn a_certificate_left_out_of_index_by_a_killed_issue_can_be_revoked_by_name() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    // The issue writes its files, then renames `serial` and last `index.txt` into place.
    let killed = pki_killed_at_rename(&dir, &["issue-client", "orphan"], 1);
    assert!(killed, "the kill did not land");
    assert!(dir.join("certs/orphan.cert.pem").exists());
    assert!(index_lines(&dir).is_empty());

    let revoked = pki_ok(&dir, &["revoke", "orphan"]);
    let next = pki_ok(&dir, &["issue-client", "next"]);

    assert!(
        revoked.stdout.contains("revoked serial 1000"),
        "{}",
        revoked.stdout
    );
    let lines = index_lines(&dir);
    assert!(
        lines[0].starts_with("R\t") && lines[0].ends_with("/CN=orphan"),
        "{lines:?}"
    );
    assert!(crl_lists(&dir, "1000"));
    let openssl = openssl_verify_crl(&dir, "sslclient", "certs/orphan.revoked-1000.cert.pem");
    assert!(
        !openssl.success && openssl.stderr.contains("certificate revoked"),
        "{}{}",
        openssl.stdout,
        openssl.stderr
    );
    assert!(next.stdout.contains("serial 1001"), "{}", next.stdout);
    openssl_ok(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-gencrl",
            "-out",
            "crl/o.crl.pem",
        ],
    );
}

#[test]
fn revoking_a_name_whose_certificate_another_ca_issued_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    let other = root.path().join("other");
    pki_ok(
        &other,
        &["init", other.to_str().unwrap(), "--key-type", "ecdsa-p256"],
    );
    pki_ok(&other, &["issue-client", "stranger"]);
    std::fs::copy(
        other.join("certs/stranger.cert.pem"),
        dir.join("certs/stranger.cert.pem"),
    )
    .unwrap();
    let before = snapshot(&dir);

    let refused = pki_err(&dir, &["revoke", "stranger"]);

    assert!(refused.contains("was not issued by the CA"), "{refused}");
    assert!(
        snapshot(&dir) == before,
        "the refused revoke changed the directory"
    );
}

#[test]
fn a_certificate_file_left_out_of_index_can_be_revoked_with_cert() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    let killed = pki_killed_at_rename(&dir, &["issue-client", "lost"], 1);
    assert!(killed, "the kill did not land");
    let copy = root.path().join("lost-copy.pem");
    std::fs::copy(dir.join("certs/lost.cert.pem"), &copy).unwrap();

    let revoked = pki_ok(&dir, &["revoke", "--cert", copy.to_str().unwrap()]);
    let again = pki_err(&dir, &["revoke", "--cert", copy.to_str().unwrap()]);

    assert!(
        revoked.stdout.contains("revoked serial 1000"),
        "{}",
        revoked.stdout
    );
    assert!(index_lines(&dir)[0].starts_with("R\t"));
    assert!(crl_lists(&dir, "1000"));
    assert!(again.contains("already revoked and listed"), "{again}");
}
