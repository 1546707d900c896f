//! Revocation information is never dropped silently: a CRL that disappears or turns bad keeps
//! the last good one in force, a CRL of another CA is refused, and each watched file reloads
//! on its own, so a missing server certificate does not hold up a CRL change.

#[path = "tunnel_common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A client forwarding a fresh local port to `echo` with `certificate` from `pki`.
fn echo_client(temp: &Path, pki: &Pki, server_port: u16, certificate: &str) -> (Process, u16) {
    let echo = echo_server();
    let local = free_port();
    let client = start_client(
        &wstunnel(),
        temp,
        &format!("client-{certificate}"),
        args(&[
            "client",
            "-L",
            &format!("tcp://{local}:{echo}"),
            "--pki",
            s(&pki.dir),
            "--pki-client",
            certificate,
            &format!("wss://127.0.0.1:{server_port}"),
        ]),
        local,
    );
    (client, local)
}

/// Runs our binary with `arguments`, expecting it to refuse to start: returns its stderr, or
/// kills it and panics when it is still running after 20 s.
fn start_failure(arguments: &[&str]) -> String {
    let mut child = Command::new(wstunnel())
        .args(arguments)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the server started although it should have refused to");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_older_crl_copied_back_is_refused_and_the_revocation_stays() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let before_revocation = std::fs::read(pki.crl()).unwrap();
    let (server, port) = start_pki_server(temp.path(), &pki);
    let (_client, local) = echo_client(temp.path(), &pki, port, TO_REVOKE);
    pki.revoke(TO_REVOKE);
    server.wait_for_log("TLS files changed");

    std::fs::write(pki.crl(), before_revocation).unwrap();
    server.wait_for_log("older than the CRL in use");
    let after_rollback = round_trip_works(local);

    assert!(!after_rollback, "the revoked client must stay out");
    let log = server.log();
    let warning = log
        .lines()
        .find(|line| line.contains("older than the CRL in use"))
        .unwrap();
    assert!(
        warning.contains(" WARN ") && warning.contains("CRL number"),
        "{warning}"
    );
}

#[test]
fn a_revoked_client_stays_rejected_after_the_crl_file_is_deleted() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let (server, port) = start_pki_server(temp.path(), &pki);
    let (_client, local) = echo_client(temp.path(), &pki, port, TO_REVOKE);
    pki.revoke(TO_REVOKE);
    server.wait_for_log("TLS files changed");

    std::fs::remove_file(pki.crl()).unwrap();
    server.wait_for_log("keeping the previous CRL");
    let after_delete = round_trip_works(local);

    assert!(!after_delete, "the revoked client must stay out");
    let log = server.log();
    let warning = log
        .lines()
        .find(|line| line.contains("keeping the previous CRL"))
        .unwrap();
    assert!(
        warning.contains(" WARN ") && warning.contains("ca.crl.pem"),
        "{warning}"
    );
    assert_eq!(log.matches("keeping the previous CRL").count(), 1, "{log}");
}

#[test]
fn a_revoked_client_stays_rejected_after_the_crl_file_is_garbled() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let (server, port) = start_pki_server(temp.path(), &pki);
    let (_client, local) = echo_client(temp.path(), &pki, port, TO_REVOKE);
    pki.revoke(TO_REVOKE);
    server.wait_for_log("TLS files changed");

    std::fs::write(pki.crl(), "not a CRL\n").unwrap();
    server.wait_for_log("keeping the previous CRL");
    let after_garble = round_trip_works(local);

    assert!(!after_garble, "the revoked client must stay out");
}

#[test]
fn a_server_started_without_a_crl_warns_how_to_publish_one() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    std::fs::remove_file(pki.crl()).unwrap();

    let (server, _port) = start_pki_server(temp.path(), &pki);

    server.wait_for_log("not checked for revocation");
    let log = server.log();
    let warning = log
        .lines()
        .find(|line| line.contains("not checked for revocation"))
        .unwrap();
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(
        warning.contains(&format!("wstunnel pki gen-crl --dir {}", pki.dir.display())),
        "{warning}"
    );
}

#[test]
fn an_explicit_crl_that_is_missing_stops_the_start() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let missing = temp.path().join("missing.crl.pem");

    let stderr = start_failure(&[
        "server",
        "--pki",
        s(&pki.dir),
        "--tls-client-crl",
        s(&missing),
        &format!("wss://127.0.0.1:{}", free_port()),
    ]);

    assert!(stderr.contains("missing.crl.pem"), "{stderr}");
}

#[test]
fn a_crl_change_applies_while_the_server_certificate_is_missing() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let (server, port) = start_pki_server(temp.path(), &pki);
    let (_revoked, revoked_local) = echo_client(temp.path(), &pki, port, TO_REVOKE);
    let (_valid, valid_local) = echo_client(temp.path(), &pki, port, CLIENT);
    let aside = temp.path().join("server.cert.pem.aside");

    std::fs::rename(pki.cert(SERVER), &aside).unwrap();
    server.wait_for_log("keeping the previous server certificate and key");
    pki.revoke(TO_REVOKE);
    server.wait_for_log("TLS files changed");
    let revoked_after = round_trip_works(revoked_local);
    let valid_after = round_trip_works(valid_local);

    assert!(
        !revoked_after,
        "the CRL applies without the server certificate file"
    );
    assert!(valid_after, "the old server certificate keeps serving");
    let log = server.log();
    let warning = log
        .lines()
        .find(|line| line.contains("keeping the previous server certificate"))
        .unwrap();
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(warning.contains(&format!("{SERVER}.cert.pem")), "{warning}");
    assert_eq!(
        log.matches("keeping the previous server certificate")
            .count(),
        1,
        "warned once: {log}"
    );
}

#[test]
fn a_crl_of_another_ca_with_the_same_name_stops_the_start() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let other = pki_dir(&temp.path().join("other"));

    let stderr = start_failure(&[
        "server",
        "--pki",
        s(&pki.dir),
        "--tls-client-crl",
        s(&other.crl()),
        &format!("wss://127.0.0.1:{}", free_port()),
    ]);

    assert!(stderr.contains(s(&other.crl())), "{stderr}");
    assert!(stderr.contains("not signed by"), "{stderr}");
}

#[test]
fn a_crl_of_another_ca_is_refused_on_reload_and_the_old_one_stays() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let other = pki_dir(&temp.path().join("other"));
    let (server, port) = start_pki_server(temp.path(), &pki);
    let (_revoked, revoked_local) = echo_client(temp.path(), &pki, port, TO_REVOKE);
    let (_valid, valid_local) = echo_client(temp.path(), &pki, port, CLIENT);
    pki.revoke(TO_REVOKE);
    server.wait_for_log("TLS files changed");

    std::fs::copy(other.crl(), pki.crl()).unwrap();
    server.wait_for_log("keeping the previous CRL");
    let valid_after = round_trip_works(valid_local);
    let revoked_after = round_trip_works(revoked_local);

    assert!(
        valid_after,
        "a valid client is not locked out by the foreign CRL"
    );
    assert!(!revoked_after, "the previous CRL stays in force");
    assert!(server.log().contains("not signed by"), "{}", server.log());
}

/// Runs `openssl s_client` with `TO_REVOKE`'s certificate, saving the session to `session`
/// (and resuming from it when `resume`), sends `request` and returns everything it printed.
/// Killed (and the test failed) when the server keeps the connection open for 20 s.
fn s_client_session(port: u16, pki: &Pki, session: &Path, resume: bool, request: &str) -> String {
    use std::io::{Read, Write};

    let session_flag = if resume { "-sess_in" } else { "-sess_out" };
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_3",
            "-cert",
            s(&pki.cert(TO_REVOKE)),
            "-key",
            s(&pki.key(TO_REVOKE)),
            "-CAfile",
            s(&pki.ca_cert()),
            session_flag,
            s(session),
            "-ign_eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(request.as_bytes());
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the server kept the connection open: a tunnel was opened");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    output
}

/// An upgrade request for a TCP tunnel to `destination` from `TO_REVOKE` (its CN as prefix).
fn upgrade_request(destination: std::net::SocketAddr) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = format!(
        r#"{{"id":"resumed","p":{{"Tcp":{{"proxy_protocol":false}}}},"r":"{}","rp":{}}}"#,
        destination.ip(),
        destination.port()
    );
    let token = format!(
        "{}.{}.",
        engine.encode(r#"{"alg":"HS256"}"#),
        engine.encode(claims)
    );
    format!(
        "GET /{TO_REVOKE}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: v1, authorization.bearer.{token}\r\n\r\n"
    )
}

#[test]
fn a_tunnel_on_a_resumed_tls_session_is_refused_after_the_certificate_is_revoked() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let (server, port) = start_pki_server(temp.path(), &pki);
    let session = temp.path().join("session.pem");
    // A request the server refuses with 400 and closes: s_client ends and saves its ticket.
    let refused = "GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let first = s_client_session(port, &pki, &session, false, refused);
    let resumed_before = s_client_session(port, &pki, &session, true, refused);

    pki.revoke(TO_REVOKE);
    server.wait_for_log("TLS files changed");
    let after = s_client_session(port, &pki, &session, true, &upgrade_request(echo_server()));

    assert!(first.contains("HTTP/1.1 400"), "{first}");
    assert!(
        resumed_before.contains("Reused, TLSv1.3"),
        "sessions resume before the CRL change: {resumed_before}"
    );
    assert!(!after.contains("HTTP/1.1 101"), "{after}");
    let log = server.log();
    if after.contains("Reused, TLSv1.3") {
        // The session survived the reload: the per-request CRL check must refuse the tunnel.
        assert!(after.contains("HTTP/1.1 400"), "{after}");
        assert!(
            log.contains("request rejected: client certificate revoked"),
            "{log}"
        );
    } else {
        // The rebuilt configuration forgot the session: a full handshake checks the CRL.
        assert!(
            log.contains("TLS handshake rejected: client certificate revoked"),
            "{log}"
        );
    }
}

#[test]
fn a_crl_past_its_next_update_is_used_with_a_warning() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    pki.revoke(TO_REVOKE);
    let stale = Command::new("openssl")
        .args([
            "ca",
            "-config",
            s(&pki.dir.join("openssl.cnf")),
            "-batch",
            "-gencrl",
            "-crl_lastupdate",
            "20200101000000Z",
            "-crl_nextupdate",
            "20200201000000Z",
            "-out",
            s(&pki.crl()),
        ])
        .output()
        .unwrap();
    assert!(
        stale.status.success(),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );

    let (server, port) = start_pki_server(temp.path(), &pki);
    let (_client, local) = echo_client(temp.path(), &pki, port, TO_REVOKE);

    server.wait_for_log("nextUpdate");
    assert!(!round_trip_works(local), "a stale CRL still revokes");
    let log = server.log();
    let warning = log
        .lines()
        .find(|line| line.contains("nextUpdate"))
        .unwrap();
    assert!(
        warning.contains(" WARN ") && warning.contains("ca.crl.pem"),
        "{warning}"
    );
    assert!(warning.contains("wstunnel pki gen-crl"), "{warning}");
}

#[test]
fn revoking_and_reissuing_the_server_certificate_keeps_the_server_serving() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let (server, port) = start_pki_server(temp.path(), &pki);
    let (_valid, valid_local) = echo_client(temp.path(), &pki, port, CLIENT);
    let dir = s(&pki.dir).to_string();

    // Moves certs/wstunnel-server.cert.pem and its key aside and rewrites the CRL.
    wstunnel_pki(&["revoke", SERVER, "--dir", &dir]);
    server.wait_for_log("keeping the previous server certificate and key");
    server.wait_for_log("TLS files changed");
    let between = round_trip_works(valid_local);
    wstunnel_pki(&[
        "issue-server",
        SERVER,
        "--key-type",
        "ecdsa-p256",
        "--dir",
        &dir,
    ]);
    server.wait_for_log("TLS files changed: new handshakes use the new certificates (server");
    let after = round_trip_works(valid_local);

    assert!(between, "the old identity serves until the reissue");
    assert!(after, "the reissued certificate serves");
}
