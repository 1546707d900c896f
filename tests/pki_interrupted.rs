//! `pki init` and `pki fixtures` never leave a half-written directory: killed at any moment or
//! failing part-way, they leave either nothing or a complete CA, and the next run then works or
//! refuses with "already holds a CA".

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Starts `wstunnel ARGS`, kills it with SIGKILL after `delay`, and says whether the kill
/// landed (the process had not finished by itself).
fn run_and_kill(args: &[&str], delay: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args(args)
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The pause only chooses the moment of the kill; no assertion depends on how long
    // anything takes.
    std::thread::sleep(delay);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    status.signal() == Some(9)
}

/// Names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Asserts that `dir` is a complete CA: the right modes, `openssl.cnf` naming `dir` itself,
/// and `openssl ca -config DIR/openssl.cnf` able to sign a CRL with it.
fn assert_complete_ca(dir: &Path) {
    let absolute = dir.canonicalize().unwrap();
    assert_complete_ca_with_dir(dir, &absolute.display().to_string());
}

/// Like [`assert_complete_ca`] for a fixture CA, whose `openssl.cnf` says `dir = .`.
fn assert_complete_fixture_ca(dir: &Path) {
    assert_complete_ca_with_dir(dir, ".");
}

fn assert_complete_ca_with_dir(dir: &Path, cnf_dir: &str) {
    assert_eq!(mode(&dir.join("private")), 0o700, "{}", dir.display());
    assert_eq!(mode(&dir.join("private/ca.key.pem")), 0o600);
    let cnf = std::fs::read_to_string(dir.join("openssl.cnf")).unwrap();
    assert!(
        cnf.contains(&format!("dir               = {cnf_dir}\n")),
        "openssl.cnf in {} does not name {cnf_dir}",
        dir.display()
    );
    let crl = dir.parent().unwrap().join("check.crl.pem");
    openssl_ok(
        dir,
        &[
            "ca",
            "-config",
            dir.join("openssl.cnf").to_str().unwrap(),
            "-gencrl",
            "-out",
            crl.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(crl).unwrap();
}

/// Asserts that `out` is a complete fixture set: a manifest, a client certificate the root
/// accepts, and three CAs that `openssl ca` can use.
fn assert_complete_fixtures(out: &Path) {
    assert!(
        out.join("fixtures.json").exists(),
        "{} has no manifest",
        out.display()
    );
    assert_complete_fixture_ca(out);
    assert_complete_fixture_ca(&out.join("intermediate"));
    assert_complete_fixture_ca(&out.join("untrusted"));
    openssl_ok(
        out,
        &[
            "verify",
            "-CAfile",
            "certs/ca.cert.pem",
            "-purpose",
            "sslclient",
            "certs/client.cert.pem",
        ],
    );
}

/// Kills `command DIR` at growing delays until it has been interrupted part-way `wanted`
/// times; after each kill checks DIR with `assert_complete`, then runs `rerun DIR` (the same
/// command, perhaps with a quicker key type).
fn kill_repeatedly(
    command: &[&str],
    rerun: &[&str],
    assert_complete: fn(&Path),
    step: Duration,
    wanted: usize,
) -> usize {
    let root = tempfile::tempdir().unwrap();
    let mut interrupted_part_way = 0;
    for attempt in 0..60u32 {
        let parent = root.path().join(format!("attempt-{attempt}"));
        std::fs::create_dir(&parent).unwrap();
        let dir = parent.join("out");
        let mut args = command.to_vec();
        args.insert(2, dir.to_str().unwrap());

        let killed = run_and_kill(&args, step * attempt);

        let left = entries(&parent);
        if killed && left.iter().any(|name| name.contains("wstunnel-staging")) {
            interrupted_part_way += 1;
        }
        let complete = dir.exists();
        if complete {
            assert_complete(&dir);
        }
        let mut rerun_args = rerun.to_vec();
        rerun_args.insert(2, dir.to_str().unwrap());
        let again = wstunnel(&rerun_args);
        if complete {
            assert!(!again.success, "a second run over a complete CA succeeded");
            assert!(
                again.stderr.contains("already holds a CA"),
                "{}",
                again.stderr
            );
        } else {
            assert!(again.success, "rerun after a kill failed: {}", again.stderr);
            assert_complete(&dir);
        }
        assert_eq!(
            entries(&parent),
            ["out"],
            "the rerun left something beside DIR"
        );
        if interrupted_part_way >= wanted {
            break;
        }
    }
    interrupted_part_way
}

#[test]
fn init_killed_at_any_moment_leaves_no_ca_or_a_complete_one() {
    let interrupted = kill_repeatedly(
        &["pki", "init", "--key-type", "rsa4096"],
        &["pki", "init", "--key-type", "ecdsa-p256"],
        assert_complete_ca,
        Duration::from_millis(20),
        3,
    );

    assert!(interrupted >= 1, "no kill landed while init was running");
}

#[test]
fn fixtures_killed_at_any_moment_leave_no_output_or_a_complete_set() {
    let interrupted = kill_repeatedly(
        &["pki", "fixtures", "--key-type", "rsa2048"],
        &["pki", "fixtures", "--key-type", "ecdsa-p256"],
        assert_complete_fixtures,
        Duration::from_millis(40),
        3,
    );

    assert!(
        interrupted >= 1,
        "no kill landed while fixtures was running"
    );
}

#[test]
fn init_failing_part_way_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    // openssl.cnf cannot name a directory holding '$', which is found only after the
    // missing parents and the staging directory were created.
    let dir: PathBuf = root.path().join("new").join("a$b").join("ca");

    let run = wstunnel(&[
        "pki",
        "init",
        dir.to_str().unwrap(),
        "--key-type",
        "ecdsa-p256",
    ]);

    assert!(!run.success);
    assert!(run.stderr.contains("openssl.cnf"), "{}", run.stderr);
    assert!(
        entries(root.path()).is_empty(),
        "left {:?}",
        entries(root.path())
    );
}

#[test]
fn init_fills_an_existing_empty_directory_keeping_its_mode() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ca");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();

    let run = wstunnel(&[
        "pki",
        "init",
        dir.to_str().unwrap(),
        "--key-type",
        "ecdsa-p256",
    ]);

    assert!(run.success, "{}", run.stderr);
    assert_complete_ca(&dir);
    assert_eq!(mode(&dir), 0o750);
    assert_eq!(entries(root.path()), ["ca"]);
}

#[test]
fn init_refuses_a_directory_holding_other_files_and_leaves_it_untouched() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ca");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine\n").unwrap();
    let before = snapshot(&dir);

    let run = wstunnel(&[
        "pki",
        "init",
        dir.to_str().unwrap(),
        "--key-type",
        "ecdsa-p256",
    ]);

    assert!(!run.success);
    assert!(
        run.stderr.contains("is not empty") && run.stderr.contains("notes.txt"),
        "{}",
        run.stderr
    );
    assert!(snapshot(&dir) == before);
    assert_eq!(entries(root.path()), ["ca"]);
}
