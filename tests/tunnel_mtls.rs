//! mTLS against one running server started with `--pki`: who gets in, who is refused, and
//! what the server log and the client say about it. Also the seed walkthrough's "Testing"
//! section (openssl s_client, curl) against our server.

#[path = "tunnel_common/mod.rs"]
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

struct MtlsServer {
    process: Process,
    port: u16,
}

fn mtls_server(temp: &Path, pki: &Pki) -> MtlsServer {
    let port = free_port();
    let arguments = args(&[
        "server",
        "--pki",
        s(&pki.dir),
        &format!("wss://127.0.0.1:{port}"),
    ]);
    let process = start_server(&wstunnel(), temp, "server", arguments, port);
    process.wait_for_log("client certificates required");
    MtlsServer { process, port }
}

/// Starts a client with `identity` arguments and a `-L tcp://` to `target`; returns it and
/// its local port.
fn mtls_client(
    temp: &Path,
    name: &str,
    server_port: u16,
    target: std::net::SocketAddr,
    identity: &[&str],
) -> (Process, u16) {
    let local = free_port();
    let mut arguments = args(&["client", "-L", &format!("tcp://{local}:{target}")]);
    arguments.extend(args(identity));
    arguments.push(format!("wss://127.0.0.1:{server_port}"));
    (
        start_client(&wstunnel(), temp, name, arguments, local),
        local,
    )
}

#[test]
fn mtls_matrix_accepts_a_valid_client_and_rejects_each_bad_one_with_a_reason() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let echo = echo_server();
    let server = mtls_server(temp.path(), &pki);
    let dir = s(&pki.dir).to_string();
    let client_with = |name: &str, certificate: &str| {
        mtls_client(
            temp.path(),
            name,
            server.port,
            echo,
            &["--pki", &dir, "--pki-client", certificate],
        )
    };

    // Valid client, CN with spaces (percent-encoded path prefix), 8 MiB both ways.
    let (_valid, valid_port) = client_with("valid", CLIENT);
    let data = random_bytes(8 * 1024 * 1024, 7);
    let received = echo_through(
        TcpStream::connect(("127.0.0.1", valid_port)).unwrap(),
        &data,
    );
    assert_eq!(sha256(&received), sha256(&data));

    // No certificate at all.
    let ca = s(&pki.ca_cert()).to_string();
    let (none, none_port) = mtls_client(
        temp.path(),
        "none",
        server.port,
        echo,
        &["--tls-ca-certs", &ca],
    );
    assert!(!round_trip_works(none_port));
    server
        .process
        .wait_for_log("TLS handshake rejected: no client certificate presented");
    none.wait_for_log("the server requires a client certificate");

    // Issued by a foreign CA.
    let (foreign, foreign_port) = client_with("foreign", FOREIGN);
    assert!(!round_trip_works(foreign_port));
    server
        .process
        .wait_for_log("client certificate not issued by a trusted CA (unknown issuer)");
    foreign.wait_for_log("does not trust the CA that issued this client certificate");

    // Expired.
    let (expired, expired_port) = client_with("expired", EXPIRED);
    assert!(!round_trip_works(expired_port));
    server
        .process
        .wait_for_log("TLS handshake rejected: client certificate expired");
    expired.wait_for_log("expired or not yet valid");

    // The server's own certificate used as a client certificate.
    let (as_client, as_client_port) = client_with("server-as-client", SERVER);
    assert!(!round_trip_works(as_client_port));
    server.process.wait_for_log("wrong extended key usage");
    as_client.wait_for_log("use a client certificate from `wstunnel pki issue-client`");

    // A valid certificate with a path prefix that is not its CN.
    let (mismatch, mismatch_port) = mtls_client(
        temp.path(),
        "mismatch",
        server.port,
        echo,
        &["--pki", &dir, "--pki-client", CLIENT, "-P", "someone-else"],
    );
    assert!(!round_trip_works(mismatch_port));
    server.process.wait_for_log(
        "CN/path mismatch: path prefix `someone-else` is not the client certificate CN \
         `wstunnel Development Client 1`",
    );
    mismatch.wait_for_log("HTTP 400");

    // Revoked while the server runs: works before, refused after the CRL changes.
    let (_to_revoke, to_revoke_port) = client_with("to-revoke", TO_REVOKE);
    assert!(round_trip_works(to_revoke_port));
    pki.revoke(TO_REVOKE);
    server.process.wait_for_log("TLS files changed");
    assert!(!round_trip_works(to_revoke_port));
    server.process.wait_for_log("client certificate revoked");

    // The valid client is still accepted after the reload.
    assert!(round_trip_works(valid_port));
    for line in server
        .process
        .log()
        .lines()
        .filter(|line| line.contains("rejected"))
    {
        assert!(
            line.contains(" WARN ") && line.contains("peer="),
            "WARN with peer: {line}"
        );
    }
}

#[test]
fn client_refuses_a_server_certificate_from_another_ca() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let echo = echo_server();
    let server = mtls_server(temp.path(), &pki);
    let foreign_ca = temp.path().join("foreign/ca.pem");

    let (client, port) = mtls_client(
        temp.path(),
        "client",
        server.port,
        echo,
        &[
            "--tls-certificate",
            s(&pki.cert(CLIENT)),
            "--tls-private-key",
            s(&pki.key(CLIENT)),
            "--tls-ca-certs",
            s(&foreign_ca),
        ],
    );

    assert!(!round_trip_works(port));
    client.wait_for_log("the server's certificate is not issued by a CA in --tls-ca-certs");
}

#[test]
fn seed_testing_section_holds_openssl_s_client_with_the_client_certificate() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let server = mtls_server(temp.path(), &pki);

    let output = s_client(
        server.port,
        &pki.key(CLIENT),
        &pki.cert(CLIENT),
        &pki.ca_cert(),
    );

    assert!(
        output.contains("Acceptable client certificate CA names"),
        "{output}"
    );
    assert!(
        output.contains("CN = wstunnel Development Root CA"),
        "{output}"
    );
    assert!(output.contains("Verify return code: 0 (ok)") || output.contains("Verification: OK"));
    // The request reached the HTTP layer: the handshake with the certificate completed.
    assert!(output.contains("HTTP/1.1 400 Bad Request"), "{output}");
}

#[test]
fn a_tls_1_2_client_completes_the_handshake_and_reaches_http() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let server = mtls_server(temp.path(), &pki);

    let output = s_client_with(
        server.port,
        &pki.key(CLIENT),
        &pki.cert(CLIENT),
        &pki.ca_cert(),
        &["-tls1_2"],
    );

    assert!(output.contains("TLSv1.2"), "{output}");
    assert!(output.contains("HTTP/1.1 400 Bad Request"), "{output}");
}

#[test]
fn seed_testing_section_holds_a_faux_self_signed_certificate_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let server = mtls_server(temp.path(), &pki);

    let output = s_client(server.port, &pki.key(FAUX), &pki.cert(FAUX), &pki.ca_cert());

    assert!(output.contains("alert"), "{output}");
    assert!(!output.contains("HTTP/1.1 400"), "{output}");
    server.process.wait_for_log("unknown issuer");
}

#[test]
fn seed_testing_section_holds_curl_without_a_client_certificate_fails() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let server = mtls_server(temp.path(), &pki);

    let output = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            s(&pki.ca_cert()),
            &format!("https://127.0.0.1:{}", server.port),
        ])
        .output()
        .unwrap();

    assert!(
        !output.status.success(),
        "curl must fail without a client certificate"
    );
    server
        .process
        .wait_for_log("no client certificate presented");
}

/// Runs the walkthrough's `openssl s_client` and sends one HTTP request so that it ends.
fn s_client(port: u16, key: &Path, cert: &Path, chain: &Path) -> String {
    s_client_with(port, key, cert, chain, &[])
}

/// `s_client` with `extra` options, ended by `timeout` after 30 s if it hangs.
fn s_client_with(port: u16, key: &Path, cert: &Path, chain: &Path, extra: &[&str]) -> String {
    let mut child = Command::new("timeout")
        .args([
            "30",
            "openssl",
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-key",
            s(key),
            "-cert",
            s(cert),
            "-cert_chain",
            s(chain),
            "-CAfile",
            s(chain),
            "-state",
            "-ign_eof",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn upstream_style_flags_with_an_explicit_crl_reject_a_revoked_client() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    pki.revoke(TO_REVOKE);
    let echo = echo_server();
    let port = free_port();
    let server = start_server(
        &wstunnel(),
        temp.path(),
        "server",
        args(&[
            "server",
            "--tls-certificate",
            s(&pki.cert(SERVER)),
            "--tls-private-key",
            s(&pki.key(SERVER)),
            "--tls-client-ca-certs",
            s(&pki.ca_cert()),
            "--tls-client-crl",
            s(&pki.crl()),
            &format!("wss://127.0.0.1:{port}"),
        ]),
        port,
    );
    let client_with = |name: &str, certificate: &str| {
        let (cert, key) = (pki.cert(certificate), pki.key(certificate));
        let identity = ["--tls-certificate", s(&cert), "--tls-private-key", s(&key)];
        mtls_client(temp.path(), name, port, echo, &identity)
    };

    let (_valid, valid_port) = client_with("valid", PLAIN_CLIENT);
    let (_revoked, revoked_port) = client_with("revoked", TO_REVOKE);

    assert!(round_trip_works(valid_port));
    assert!(!round_trip_works(revoked_port));
    server.wait_for_log("TLS handshake rejected: client certificate revoked");
}

#[test]
fn a_walkthrough_directory_made_by_openssl_serves_its_clients_and_enforces_its_crl() {
    let temp = tempfile::tempdir().unwrap();
    let pki = openssl_pki_dir(temp.path());
    let echo = echo_server();
    let server = mtls_server(temp.path(), &pki);
    let dir = s(&pki.dir).to_string();
    let (_valid, valid_port) = mtls_client(
        temp.path(),
        "valid",
        server.port,
        echo,
        &["--pki", &dir, "--pki-client", CLIENT],
    );
    let (_revoked, revoked_port) = mtls_client(
        temp.path(),
        "to-revoke",
        server.port,
        echo,
        &["--pki", &dir, "--pki-client", TO_REVOKE],
    );
    let before = round_trip_works(revoked_port);

    pki.revoke(TO_REVOKE);
    server.process.wait_for_log("TLS files changed");

    assert!(before);
    assert!(round_trip_works(valid_port));
    assert!(!round_trip_works(revoked_port));
    server.process.wait_for_log("client certificate revoked");
}

#[test]
fn a_client_certificate_given_as_the_server_certificate_is_refused_at_start() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());

    let output = Command::new(wstunnel())
        .args([
            "server",
            "--pki",
            s(&pki.dir),
            "--pki-server",
            CLIENT,
            &format!("wss://127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();

    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains(&format!("{CLIENT}.cert.pem is not a server certificate")),
        "{message}"
    );
    assert!(message.contains("clientAuth"), "{message}");
}

#[test]
fn a_key_of_another_certificate_is_named_as_such_at_start() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());

    let output = Command::new(wstunnel())
        .args([
            "server",
            "--tls-certificate",
            s(&pki.cert(SERVER)),
            "--tls-private-key",
            s(&pki.key(CLIENT)),
            &format!("wss://127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();

    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("is not the private key of"), "{message}");
    assert!(!message.contains("KeyMismatch"), "{message}");
}
