//! The server watches its certificate, key, client CA and CRL files: new handshakes use new
//! files without a restart, and a CRL change closes the open tunnels of revoked clients.

#[path = "tunnel_common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn open_tunnel_of_a_client_revoked_while_connected_is_closed() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let echo = echo_server();
    let (server, port) = start_pki_server(temp.path(), &pki);
    let (revoked_port, valid_port) = (free_port(), free_port());
    let client = |name: &str, local: u16, certificate: &str| {
        start_client(
            &wstunnel(),
            temp.path(),
            name,
            args(&[
                "client",
                "-L",
                &format!("tcp://{local}:{echo}"),
                "--pki",
                s(&pki.dir),
                "--pki-client",
                certificate,
                &format!("wss://127.0.0.1:{port}"),
            ]),
            local,
        )
    };
    let _revoked_client = client("to-revoke", revoked_port, TO_REVOKE);
    let _valid_client = client("valid", valid_port, CLIENT);
    let mut revoked_stream = TcpStream::connect(("127.0.0.1", revoked_port)).unwrap();
    let mut valid_stream = TcpStream::connect(("127.0.0.1", valid_port)).unwrap();
    for stream in [&mut revoked_stream, &mut valid_stream] {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.write_all(b"hello").unwrap();
        let mut echo_back = [0u8; 5];
        stream.read_exact(&mut echo_back).unwrap();
    }

    pki.revoke(TO_REVOKE);
    server.wait_for_log("was revoked by the new CRL");
    let mut rest = Vec::new();
    let revoked_read = revoked_stream.read_to_end(&mut rest);
    valid_stream.write_all(b"still").unwrap();
    let mut still = [0u8; 5];
    valid_stream.read_exact(&mut still).unwrap();

    assert!(
        revoked_read.is_ok() && rest.is_empty(),
        "the revoked tunnel ends with EOF"
    );
    assert_eq!(&still, b"still", "the other client's tunnel stays open");
    let log = server.log();
    let line = log
        .lines()
        .find(|line| line.contains("was revoked by the new CRL"))
        .unwrap();
    assert!(line.contains(" WARN ") && line.contains("peer="), "{line}");
}

#[test]
fn new_server_certificate_is_used_by_new_handshakes_without_restart() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let (server, port) = start_pki_server(temp.path(), &pki);
    let fingerprint = |path: &std::path::Path| {
        let output = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", s(path)])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let original = fingerprint(&pki.cert(SERVER));
    let before = served_certificate_fingerprint(port, &pki);
    let replacement = pki_dir(&temp.path().join("second"));

    // Key first, then certificate: the watcher keeps the old pair while they disagree.
    std::fs::copy(replacement.key(SERVER), pki.key(SERVER)).unwrap();
    std::fs::copy(replacement.ca_cert(), pki.ca_cert()).unwrap();
    std::fs::copy(replacement.cert(SERVER), pki.cert(SERVER)).unwrap();
    std::fs::copy(replacement.crl(), pki.crl()).unwrap();
    server.wait_for_log("TLS files changed");
    let after = served_certificate_fingerprint(port, &replacement);

    assert_eq!(before, original);
    assert_eq!(after, fingerprint(&replacement.cert(SERVER)));
    assert_ne!(after, original);
}

/// The SHA-256 fingerprint of the certificate the server presents, as `openssl x509
/// -fingerprint` prints it (empty when none was shown).
fn served_certificate_fingerprint(port: u16, pki: &Pki) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-cert",
            s(&pki.cert(CLIENT)),
            "-key",
            s(&pki.key(CLIENT)),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    let _ = child.wait();
    let pem_start = output.find("-----BEGIN CERTIFICATE-----");
    let pem_end = output.find("-----END CERTIFICATE-----");
    match (pem_start, pem_end) {
        (Some(start), Some(end)) => {
            let pem = &output[start..end + "-----END CERTIFICATE-----".len()];
            let mut x509 = Command::new("openssl")
                .args(["x509", "-noout", "-fingerprint", "-sha256"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            x509.stdin
                .take()
                .unwrap()
                .write_all(pem.as_bytes())
                .unwrap();
            String::from_utf8(x509.wait_with_output().unwrap().stdout).unwrap()
        }
        _ => String::new(),
    }
}

#[test]
fn a_crl_published_after_start_is_picked_up_by_a_server_started_without_one() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    std::fs::remove_file(pki.crl()).unwrap();
    let echo = echo_server();
    let (server, port) = start_pki_server(temp.path(), &pki);
    let (_client, local) = start_pki_client(temp.path(), &pki, TO_REVOKE, port, echo);
    let before = round_trip_works(local);

    pki.revoke(TO_REVOKE);
    server.wait_for_log("TLS files changed");
    let after = round_trip_works(local);

    assert!(before, "no CRL yet: the certificate is accepted");
    assert!(!after, "the new CRL revokes it");
    server.wait_for_log("client certificate revoked");
}

#[test]
fn client_picks_up_a_renewed_certificate_without_restart() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let echo = echo_server();
    let (server, port) = start_pki_server(temp.path(), &pki);
    let (client, local) = start_pki_client(temp.path(), &pki, TO_REVOKE, port, echo);
    pki.revoke(TO_REVOKE);
    server.wait_for_log("TLS files changed");
    let while_revoked = round_trip_works(local);

    pki.issue_client("renewed", "wstunnel-client-to-revoke");
    std::fs::copy(pki.key("renewed"), pki.key(TO_REVOKE)).unwrap();
    std::fs::copy(pki.cert("renewed"), pki.cert(TO_REVOKE)).unwrap();
    client.wait_for_log("client TLS files changed: new connections use them");
    let after_renewal = round_trip_works(local);

    assert!(!while_revoked, "the revoked certificate is refused");
    assert!(
        after_renewal,
        "the renewed certificate (same CN) is accepted"
    );
}
