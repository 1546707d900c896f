//! The checked-in `pki-fixtures/` still behaves as its manifest says: with `openssl verify`,
//! with `wstunnel pki verify`, and against a running `wstunnel server`.

#[path = "tunnel_common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Process, args, echo_server, free_port, s, wstunnel};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pki-fixtures")
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures_dir().join("fixtures.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["fixtures"].as_array().unwrap().clone()
}

fn fixture(name: &str) -> Value {
    manifest()
        .into_iter()
        .find(|fixture| fixture["name"] == name)
        .unwrap_or_else(|| panic!("no fixture named {name}"))
}

fn path_of(fixture: &Value, field: &str) -> PathBuf {
    fixtures_dir().join(fixture[field].as_str().unwrap())
}

fn accepted(fixture: &Value) -> bool {
    match fixture["expected"].as_str().unwrap() {
        "accept" => true,
        "reject" => false,
        other => panic!("unknown expectation {other}"),
    }
}

/// `openssl verify` with the fixture's trust anchor, chain, CRLs, purpose and host.
fn openssl_accepts(fixture: &Value) -> (bool, String) {
    let purpose = match fixture["purpose"].as_str().unwrap() {
        "server" => "sslserver",
        _ => "sslclient",
    };
    let mut command = Command::new("openssl");
    command
        .arg("verify")
        .args(["-CAfile", s(&path_of(fixture, "trust_anchor"))])
        .args(["-purpose", purpose])
        .arg("-crl_check_all");
    for crl in fixture["crls"].as_array().unwrap() {
        command.args(["-CRLfile", s(&fixtures_dir().join(crl.as_str().unwrap()))]);
    }
    if let Some(chain) = fixture["chain"].as_str() {
        command.args(["-untrusted", s(&fixtures_dir().join(chain))]);
    }
    if let Some(host) = fixture["host"].as_str() {
        command.args(["-verify_hostname", host]);
    }
    let output = command.arg(path_of(fixture, "cert")).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_fixture_gets_the_openssl_verdict_its_manifest_states() {
    let fixtures = manifest();
    assert!(
        fixtures.len() >= 9,
        "the matrix lost fixtures: {}",
        fixtures.len()
    );

    for fixture in &fixtures {
        let (success, output) = openssl_accepts(fixture);

        assert_eq!(
            success,
            accepted(fixture),
            "fixture {} expected {} but openssl verify said:\n{output}",
            fixture["name"],
            fixture["expected"]
        );
    }
}

#[test]
fn manifest_covers_every_outcome_the_matrix_promises() {
    let reasons: Vec<String> = manifest()
        .iter()
        .filter_map(|fixture| fixture["reason"].as_str().map(str::to_string))
        .collect();

    for reason in [
        "revoked",
        "expired",
        "not-yet-valid",
        "unknown-issuer",
        "no-subject-alt-name",
        "wrong-purpose",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no fixture for {reason}: {reasons:?}"
        );
    }
}

#[test]
fn valid_fixtures_stay_valid_for_twenty_years() {
    let in_twenty_years = time::OffsetDateTime::now_utc() + time::Duration::days(366 * 20);

    for fixture in manifest().iter().filter(|fixture| accepted(fixture)) {
        let not_after = fixture["not_after"].as_str().unwrap();
        let not_after =
            time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339)
                .unwrap();

        assert!(
            not_after > in_twenty_years,
            "{} ends {not_after}",
            fixture["name"]
        );
    }
}

/// A server with the fixture CA as client CA, both CRLs, and `server_cert` as certificate.
fn start_server(tmp: &Path, server_cert: &Value) -> (Process, u16) {
    let port = free_port();
    let dir = fixtures_dir();
    let server = Process::start(
        &wstunnel(),
        &args(&[
            "server",
            "--tls-certificate",
            s(&path_of(server_cert, "cert")),
            "--tls-private-key",
            s(&path_of(server_cert, "key")),
            "--tls-client-ca-certs",
            s(&dir.join("certs/ca.cert.pem")),
            "--tls-client-crl",
            s(&dir.join("crl/ca.crl.pem")),
            "--tls-client-crl",
            s(&dir.join("intermediate/crl/ca.crl.pem")),
            &format!("wss://127.0.0.1:{port}"),
        ]),
        tmp.join(format!("server-{port}.log")),
    );
    common::wait_for_port(port, &server);
    (server, port)
}

/// Runs a stdio tunnel to an echo service with the given certificate and key; true when the
/// echo came back.
fn tunnel_works(tmp: &Path, port: u16, cert: &Path, key: &Path, server_name: &str) -> bool {
    let echo = echo_server();
    let output = Command::new(wstunnel())
        .args([
            "client",
            "--tls-certificate",
            s(cert),
            "--tls-private-key",
            s(key),
            "--tls-ca-certs",
            s(&fixtures_dir().join("certs/ca.cert.pem")),
            "--tls-sni-override",
            server_name,
            "-L",
            &format!("stdio://{echo}"),
            &format!("wss://127.0.0.1:{port}"),
        ])
        .env_remove("RUST_LOG")
        .current_dir(tmp)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child_with_timeout(output);
    let probe = b"fixture probe\n";
    use std::io::{Read, Write};
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let _ = stdin.write_all(probe);
    let mut echo = [0u8; 14];
    let works = stdout.read_exact(&mut echo).is_ok() && &echo == probe;
    let _ = child.kill();
    let _ = child.wait();
    works
}

/// Kills the child after 20 s so that a hung client fails the read instead of the suite.
fn child_with_timeout(child: std::process::Child) -> std::process::Child {
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(20));
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    child
}

#[test]
fn client_fixtures_get_their_expected_outcome_from_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start_server(tmp.path(), &fixture("server"));

    for fixture in manifest()
        .iter()
        .filter(|fixture| fixture["purpose"] == "client")
    {
        let cert = match fixture["chain"].as_str() {
            // The client presents its certificate followed by the intermediate.
            Some(chain) => {
                let bundle = tmp.path().join(format!("{}.bundle.pem", fixture["name"]));
                let mut pem = std::fs::read(path_of(fixture, "cert")).unwrap();
                pem.extend(std::fs::read(fixtures_dir().join(chain)).unwrap());
                std::fs::write(&bundle, pem).unwrap();
                bundle
            }
            None => path_of(fixture, "cert"),
        };

        let works = tunnel_works(
            tmp.path(),
            port,
            &cert,
            &path_of(fixture, "key"),
            "localhost",
        );

        assert_eq!(
            works,
            accepted(fixture),
            "client fixture {} expected {}; server log:\n{}",
            fixture["name"],
            fixture["expected"],
            server.log()
        );
    }
}

#[test]
fn server_fixtures_get_their_expected_outcome_from_our_client() {
    let tmp = tempfile::tempdir().unwrap();
    let client = fixture("client");

    for fixture in manifest()
        .iter()
        .filter(|fixture| fixture["purpose"] == "server")
    {
        let (_server, port) = start_server(tmp.path(), fixture);
        let host = fixture["host"].as_str().unwrap_or("localhost");

        let works = tunnel_works(
            tmp.path(),
            port,
            &path_of(&client, "cert"),
            &path_of(&client, "key"),
            host,
        );

        assert_eq!(
            works,
            accepted(fixture),
            "server fixture {}",
            fixture["name"]
        );
    }
}
