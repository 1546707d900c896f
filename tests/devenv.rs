//! `wstunnel dev-env --self-test`: the one-command environment proves itself.

#[path = "common/mod.rs"]
mod pki_common;

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

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|child| child.parse().unwrap())
        .collect()
}

fn is_running(pid: u32) -> bool {
    // A zombie is dead: only its exit status is left for the parent.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn sigterm_stops_the_environment_and_every_process_it_started() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut dev_env = Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args(["dev-env", tmp.path().join("ca").to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(dev_env.stdout.take().unwrap());
    let mut lines = stdout.lines();
    let running = lines.find(|line| line.as_ref().unwrap().contains("is running"));
    assert!(running.is_some(), "dev-env never said it was running");
    let children = children_of(dev_env.id());
    assert_eq!(
        children.len(),
        2,
        "expected a server and a client: {children:?}"
    );

    Command::new("kill")
        .args(["-TERM", &dev_env.id().to_string()])
        .status()
        .unwrap();
    let status = dev_env.wait().unwrap();

    assert!(status.success(), "dev-env exited with {status} on SIGTERM");
    // dev-env sends SIGKILL on its way out; the kernel finishes the children a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while children.iter().any(|&child| is_running(child)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for child in children {
        assert!(
            !is_running(child),
            "child {child} still runs 5 s after dev-env stopped"
        );
    }
}

#[test]
fn a_bad_tunnel_spec_fails_before_the_environment_says_it_runs() {
    let tmp = tempfile::tempdir().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args([
            "dev-env",
            tmp.path().join("ca").to_str().unwrap(),
            "-L",
            "bogus://x",
        ])
        .output()
        .unwrap();

    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("is running"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bogus://"));
}

#[test]
fn self_test_also_runs_with_extra_tunnels() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");

    let output = Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args([
            "dev-env",
            dir.to_str().unwrap(),
            "--self-test",
            "-L",
            "udp://127.0.0.1:0:127.0.0.1:9",
        ])
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ok      tunnel carries data"), "{stdout}");
}

#[test]
fn self_test_passes_on_a_ca_made_by_the_walkthroughs_openssl_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = pki_common::walkthrough_ca(tmp.path(), "", "2048");
    // The walkthrough's server certificate has no subjectAltName: dev-env must not rely on it.
    pki_common::walkthrough_issue(
        &dir,
        "wstunnel-server",
        "server_cert",
        "/C=GB/ST=England/O=wstunnel development/CN=wstunnel Development Server",
        &[],
        false,
    );

    let (success, output) = self_test(&dir);

    assert!(
        success,
        "self-test failed on a walkthrough directory:\n{output}"
    );
    assert!(output.contains("reusing the CA"), "{output}");
}

#[test]
fn self_test_unlocks_an_encrypted_ca_with_passin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let init = pki_common::wstunnel_env(
        &[
            "pki",
            "init",
            dir.to_str().unwrap(),
            "--key-type",
            "ecdsa-p256",
            "--encrypt-key",
            "--passout",
            "env:CA_PASSWORD",
        ],
        &[("CA_PASSWORD", "s3cret")],
    );
    assert!(init.success, "{}", init.stderr);

    let output = Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args([
            "dev-env",
            dir.to_str().unwrap(),
            "--self-test",
            "--passin",
            "env:CA_PASSWORD",
        ])
        .env("CA_PASSWORD", "s3cret")
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ok      revoked client refused"),
        "{stdout}"
    );
}

#[test]
fn a_server_port_in_use_is_refused_instead_of_testing_its_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let occupant = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = occupant.local_addr().unwrap().port().to_string();

    let output = Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args([
            "dev-env",
            tmp.path().join("ca").to_str().unwrap(),
            "--self-test",
            "--server-port",
            &port,
        ])
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("--server-port {port}")),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("ok "),
        "checks ran against the occupant"
    );
}

#[test]
fn a_stdio_tunnel_is_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args([
            "dev-env",
            tmp.path().join("ca").to_str().unwrap(),
            "-L",
            "stdio://127.0.0.1:22",
        ])
        .output()
        .unwrap();

    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("is running"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("stdio"));
}
