//! A client certificate from another CA that carries the server CA's name (two default
//! `wstunnel pki init`s) is refused, and both sides say what is going on.

#[path = "tunnel_common/mod.rs"]
mod common;

use std::process::{Command, Stdio};

use common::{Process, args, echo_server, free_port, s, wstunnel};

fn pki(args: &[&str]) {
    let output = Command::new(wstunnel())
        .arg("pki")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pki {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_client_from_another_ca_with_the_same_name_is_refused_with_a_useful_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    let other = tmp.path().join("other");
    for dir in [&ours, &other] {
        pki(&["init", s(dir), "--key-type", "ecdsa-p256"]);
    }
    pki(&[
        "issue-server",
        "--dir",
        s(&ours),
        "--key-type",
        "ecdsa-p256",
    ]);
    pki(&[
        "issue-client",
        "stranger",
        "--dir",
        s(&other),
        "--key-type",
        "ecdsa-p256",
    ]);
    let port = free_port();
    let server = Process::start(
        &wstunnel(),
        &args(&[
            "server",
            "--pki",
            s(&ours),
            &format!("wss://127.0.0.1:{port}"),
        ]),
        tmp.path().join("server.log"),
    );
    common::wait_for_port(port, &server);

    let client = Command::new(wstunnel())
        .args([
            "client",
            "--pki",
            s(&other),
            "--pki-client",
            "stranger",
            "--tls-ca-certs",
            s(&ours.join("certs/ca.cert.pem")),
            "-L",
            &format!("stdio://{}", echo_server()),
            &format!("wss://127.0.0.1:{port}"),
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();

    assert!(!client.status.success());
    server.wait_for_log("issued by another CA of the same name");
    let client_error = String::from_utf8_lossy(&client.stderr);
    assert!(
        client_error.contains("another CA with the same name"),
        "{client_error}"
    );
}
