//! `wstunnel dev-env --self-test`: the one-command environment proves itself.

use std::process::Command;

fn self_test(dir: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args(["dev-env", dir.to_str().unwrap(), "--self-test"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (
        output.status.success(),
        format!("{stdout}\n--- stderr ---\n{stderr}"),
    )
}

#[test]
fn self_test_passes_every_check_on_a_fresh_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");

    let (success, output) = self_test(&dir);

    assert!(success, "self-test failed:\n{output}");
    for check in [
        "ok      tunnel carries data",
        "ok      client without certificate refused",
        "ok      client from a foreign CA refused",
        "ok      revoked client refused",
    ] {
        assert!(output.contains(check), "missing `{check}` in:\n{output}");
    }
    assert!(output.contains("no client certificate"), "{output}");
    assert!(output.contains("unknown issuer"), "{output}");
    assert!(output.contains("revoked"), "{output}");
    assert!(dir.join("certs/ca.cert.pem").exists());
}

#[test]
fn self_test_reuses_an_existing_ca_and_passes_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let (first, output) = self_test(&dir);
    assert!(first, "first run failed:\n{output}");
    let ca_before = std::fs::read(dir.join("certs/ca.cert.pem")).unwrap();

    let (second, output) = self_test(&dir);

    assert!(second, "second run failed:\n{output}");
    assert!(output.contains("reusing the CA"), "{output}");
    assert_eq!(
        ca_before,
        std::fs::read(dir.join("certs/ca.cert.pem")).unwrap()
    );
}

#[test]
fn self_test_fails_when_the_ca_directory_is_not_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_dir = tmp.path().join("file");
    std::fs::write(&not_a_dir, "not a CA").unwrap();

    let (success, output) = self_test(&not_a_dir);

    assert!(!success, "self-test passed on a plain file:\n{output}");
    assert!(output.contains("error:"), "{output}");
}
