//! The everyday commands: list, inspect, verify, sign-csr, export-p12, and the options of
//! init and issue.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

#[test]
fn list_shows_valid_revoked_and_expired_certificates_with_their_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-server"]);
    pki_ok(&dir, &["issue-client", "alice"]);
    pki_ok(&dir, &["revoke", "alice", "--reason", "affiliationChanged"]);
    openssl_ok(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "private/old.pem",
            "-out",
            "csr/old.csr.pem",
            "-subj",
            "/CN=old",
        ],
    );
    openssl_ok(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-extensions",
            "client_cert",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
            "-notext",
            "-in",
            "csr/old.csr.pem",
            "-out",
            "certs/old.cert.pem",
            "-batch",
        ],
    );

    let table = pki_ok(&dir, &["list"]).stdout;
    let json: serde_json::Value =
        serde_json::from_str(&pki_ok(&dir, &["list", "--json"]).stdout).unwrap();

    let rows = json.as_array().unwrap();
    let field = |i: usize, key: &str| rows[i][key].as_str().unwrap_or("").to_owned();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (field(0, "serial"), field(0, "status")),
        ("1000".into(), "valid".into())
    );
    assert_eq!(
        (field(1, "status"), field(1, "reason")),
        ("revoked".into(), "affiliationChanged".into())
    );
    assert_eq!(field(2, "status"), "expired");
    // Relative to DIR, like the table.
    assert_eq!(field(0, "file"), "certs/wstunnel-server.cert.pem");
    assert_eq!(field(1, "file"), "certs/alice.revoked-1001.cert.pem");
    assert!(table.contains("revoked") && table.contains("expired") && table.contains("/CN=old"));
}

#[test]
fn inspect_summarises_certificates_requests_crls_and_keys() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(
        &dir,
        &[
            "issue-server",
            "web",
            "--san",
            "*.example.test",
            "--san",
            "2001:db8::1",
        ],
    );
    pki_ok(&dir, &["issue-client", "alice", "--key-type", "ecdsa-p256"]);
    pki_ok(&dir, &["revoke", "alice", "--reason", "keyCompromise"]);
    let path = |p: &str| dir.join(p).to_str().unwrap().to_owned();

    let cert = pki_ok(&dir, &["inspect", &path("certs/web.cert.pem")]).stdout;
    let csr = pki_ok(&dir, &["inspect", &path("csr/web.csr.pem")]).stdout;
    let crl = pki_ok(&dir, &["inspect", &path("crl/ca.crl.pem")]).stdout;
    let key = pki_ok(&dir, &["inspect", &path("private/alice.revoked-1001.pem")]).stdout;

    assert!(
        cert.contains("CN=web") && cert.contains("serial       1000"),
        "{cert}"
    );
    assert!(
        cert.contains("DNS:localhost, IP:127.0.0.1, IP:::1, DNS:*.example.test, IP:2001:db8::1"),
        "{cert}"
    );
    assert!(
        cert.contains("serverAuth") && cert.contains("days left") && cert.contains("SHA-256"),
        "{cert}"
    );
    let fingerprint = openssl_ok(
        &dir,
        &[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            "certs/web.cert.pem",
        ],
    );
    assert!(
        cert.contains(fingerprint.trim().split('=').nth(1).unwrap()),
        "{cert}\n{fingerprint}"
    );
    assert!(
        csr.contains("signature    valid") && csr.contains("DNS:*.example.test"),
        "{csr}"
    );
    assert!(
        crl.contains("number       0x1001")
            && crl.contains("1001  ")
            && crl.contains("KeyCompromise"),
        "{crl}"
    );
    assert!(key.contains("ecdsa-p256"), "{key}");
}

#[test]
fn verify_explains_each_rejection_in_one_sentence_with_the_fix() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    let other = root.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let foreign = our_ca(&other);
    pki_ok(&dir, &["issue-server"]);
    pki_ok(&dir, &["issue-client", "alice"]);
    pki_ok(&dir, &["issue-client", "mallory"]);
    pki_ok(&foreign, &["issue-client", "eve"]);
    pki_ok(&dir, &["revoke", "--serial", "1002"]);
    let server = dir.join("certs/wstunnel-server.cert.pem");
    let server = server.to_str().unwrap();

    let ok = pki_ok(
        &dir,
        &["verify", dir.join("certs/alice.cert.pem").to_str().unwrap()],
    )
    .stdout;
    let ok_host = pki_ok(&dir, &["verify", server, "--host", "127.0.0.1"]).stdout;
    let misuse = pki_err(&dir, &["verify", server, "--purpose", "client"]);
    let wrong_host = pki_err(&dir, &["verify", server, "--host", "example.com"]);
    let revoked = pki_err(
        &dir,
        &[
            "verify",
            dir.join("certs/mallory.cert.pem").to_str().unwrap(),
        ],
    );
    let stranger = pki_err(
        &dir,
        &[
            "verify",
            foreign.join("certs/eve.cert.pem").to_str().unwrap(),
        ],
    );

    assert!(
        ok.starts_with("OK:") && ok.contains("client") && ok.contains("not revoked"),
        "{ok}"
    );
    assert!(ok_host.contains("valid for 127.0.0.1"), "{ok_host}");
    assert!(
        misuse.contains("serverAuth only")
            && misuse.contains("cannot authenticate a client")
            && misuse.contains("issue-client"),
        "{misuse}"
    );
    assert!(
        wrong_host.contains("not valid for example.com")
            && wrong_host.contains("--san example.com"),
        "{wrong_host}"
    );
    assert!(
        revoked.contains("revoked") && revoked.contains("1002"),
        "{revoked}"
    );
    assert!(stranger.contains("was not issued by the CA"), "{stranger}");
    for message in [&misuse, &wrong_host, &revoked, &stranger] {
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}

#[test]
fn verify_reports_expired_and_not_yet_valid_certificates_and_an_old_crl() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    for (name, start, end) in [
        ("old", "20200101000000Z", "20210101000000Z"),
        ("future", "20400101000000Z", "20410101000000Z"),
    ] {
        openssl_ok(
            &dir,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("private/{name}.pem"),
                "-out",
                &format!("csr/{name}.csr.pem"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl_ok(
            &dir,
            &[
                "ca",
                "-config",
                "openssl.cnf",
                "-extensions",
                "client_cert",
                "-startdate",
                start,
                "-enddate",
                end,
                "-notext",
                "-in",
                &format!("csr/{name}.csr.pem"),
                "-out",
                &format!("certs/{name}.cert.pem"),
                "-batch",
            ],
        );
    }
    pki_ok(&dir, &["issue-client", "alice"]);

    let expired = pki_err(
        &dir,
        &["verify", dir.join("certs/old.cert.pem").to_str().unwrap()],
    );
    let early = pki_err(
        &dir,
        &[
            "verify",
            dir.join("certs/future.cert.pem").to_str().unwrap(),
        ],
    );
    openssl_ok(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-gencrl",
            "-crlsec",
            "1",
            "-out",
            "crl/ca.crl.pem",
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let stale = pki_err(
        &dir,
        &["verify", dir.join("certs/alice.cert.pem").to_str().unwrap()],
    );

    assert!(
        expired.contains("expired on 2021-01-01") && expired.contains("revoke old"),
        "{expired}"
    );
    assert!(early.contains("not valid before 2040"), "{early}");
    assert!(
        stale.contains("out of date") && stale.contains("gen-crl"),
        "{stale}"
    );
}

#[test]
fn sign_csr_signs_an_openssl_request_keeping_its_alt_names_and_a_copy() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    let work = root.path();
    openssl_ok(
        work,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "api.key.pem",
            "-out",
            "api.csr.pem",
            "-subj",
            "/O=Elsewhere/CN=api.internal/OU=Ops",
            "-addext",
            "subjectAltName=DNS:api.internal,IP:10.0.0.5",
        ],
    );

    let run = pki_ok(
        &dir,
        &[
            "sign-csr",
            work.join("api.csr.pem").to_str().unwrap(),
            "--profile",
            "server",
        ],
    );

    assert!(
        run.stdout
            .contains("issued api (serial 1000, /O=Elsewhere/OU=Ops/CN=api.internal)"),
        "{}",
        run.stdout
    );
    let text = openssl_ok(
        &dir,
        &["x509", "-noout", "-text", "-in", "certs/api.cert.pem"],
    );
    assert!(
        text.contains("DNS:api.internal, IP Address:10.0.0.5"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication"));
    assert!(dir.join("csr/api.csr.pem").exists() && dir.join("newcerts/1000.pem").exists());
    assert!(
        !dir.join("private/api.pem").exists(),
        "the key stays with the requester"
    );
    let verify = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "certs/ca.cert.pem",
            "-purpose",
            "sslserver",
            "certs/api.cert.pem",
        ],
    );
    assert!(verify.success);
}

#[test]
fn init_and_issue_options_set_subject_sans_days_and_key_type() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ca");
    let run = wstunnel(&[
        "pki",
        "init",
        dir.to_str().unwrap(),
        "--subject",
        "/C=NL/O=Test Org/CN=Test Root",
        "--key-type",
        "ecdsa-p384",
        "--days",
        "100",
    ]);
    assert!(run.success, "{}", run.stderr);

    pki_ok(
        &dir,
        &[
            "issue-server",
            "srv",
            "--cn",
            "Service",
            "--san",
            "svc.test",
            "--san",
            "::2",
            "--days",
            "10",
            "--key-type",
            "ecdsa-p256",
        ],
    );
    pki_ok(
        &dir,
        &[
            "issue-client",
            "cli",
            "--subject",
            "/C=NL/OU=Dev/CN=Cli/emailAddress=cli@example.test",
            "--key-type",
            "ed25519",
        ],
    );

    let ca = openssl_ok(
        &dir,
        &[
            "x509",
            "-noout",
            "-subject",
            "-enddate",
            "-text",
            "-in",
            "certs/ca.cert.pem",
        ],
    );
    let srv = openssl_ok(
        &dir,
        &["x509", "-noout", "-text", "-in", "certs/srv.cert.pem"],
    );
    let cli = openssl_ok(
        &dir,
        &["x509", "-noout", "-subject", "-in", "certs/cli.cert.pem"],
    );
    assert!(
        ca.contains("subject=C = NL, O = Test Org, CN = Test Root")
            && ca.contains("NIST CURVE: P-384"),
        "{ca}"
    );
    assert!(
        srv.contains("Subject: C = GB, ST = England, O = wstunnel development, CN = Service"),
        "{srv}"
    );
    assert!(srv.contains("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:svc.test, IP Address:0:0:0:0:0:0:0:2"), "{srv}");
    assert!(
        srv.contains("ecdsa-with-SHA384"),
        "a P-384 CA signs with SHA-384: {srv}"
    );
    assert!(
        cli.contains("subject=C = NL, OU = Dev, CN = Cli, emailAddress = cli@example.test"),
        "{cli}"
    );
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join(p)).unwrap().permissions(),
        ) & 0o777
    };
    assert_eq!(
        (
            mode("private"),
            mode("private/ca.key.pem"),
            mode("private/srv.pem")
        ),
        (0o700, 0o600, 0o600)
    );
    let cnf = std::fs::read_to_string(dir.join("openssl.cnf")).unwrap();
    assert!(cnf.contains(&format!(
        "dir               = {}\n",
        dir.canonicalize().unwrap().display()
    )));
}

/// An `openssl s_server` on 127.0.0.1 that requires a client certificate from `ca`.
fn mtls_server(dir: &Path) -> (Child, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "certs/wstunnel-server.cert.pem",
            "-key",
            "private/wstunnel-server.pem",
            "-CAfile",
            "certs/ca.cert.pem",
            "-Verify",
            "1",
            "-verify_return_error",
            "-www",
        ])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("openssl s_server did not start");
}

#[test]
fn export_p12_is_read_by_openssl_and_accepted_by_curl_for_mtls() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-server"]);
    pki_ok(&dir, &["issue-client", "alice", "--key-type", "ecdsa-p256"]);
    let password = root.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();

    let run = pki_ok(
        &dir,
        &[
            "export-p12",
            "alice",
            "--password-file",
            password.to_str().unwrap(),
        ],
    );

    let bundle = dir.join("private/alice.p12");
    assert!(run.stdout.contains("alice.p12"));
    let info = openssl_ok(
        &dir,
        &[
            "pkcs12",
            "-info",
            "-in",
            bundle.to_str().unwrap(),
            "-passin",
            "pass:s3cret",
            "-nodes",
        ],
    );
    assert!(
        info.contains("subject=C = GB, ST = England, O = wstunnel development, CN = alice"),
        "{info}"
    );
    assert!(
        info.contains("CN = wstunnel Development Root CA") && info.contains("BEGIN PRIVATE KEY"),
        "{info}"
    );
    let (mut server, port) = mtls_server(&dir);
    let url = format!("https://localhost:{port}/");
    let with_p12 = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            "certs/ca.cert.pem",
            "--cert-type",
            "P12",
            "--cert",
            &format!("{}:s3cret", bundle.display()),
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            &url,
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let without = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--cacert",
            "certs/ca.cert.pem",
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            &url,
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        with_p12.status.success(),
        "{}",
        String::from_utf8_lossy(&with_p12.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&with_p12.stdout), "200");
    assert!(
        !without.status.success(),
        "the server must require a client certificate"
    );
}

#[test]
fn a_name_revoked_by_serial_or_by_openssl_is_freed_by_revoke_name_and_reissued() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "alice"]);
    pki_ok(&dir, &["issue-client", "bob"]);
    pki_ok(&dir, &["revoke", "--serial", "1000"]);
    openssl_ok(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-revoke",
            "certs/bob.cert.pem",
        ],
    );

    pki_ok(&dir, &["revoke", "alice"]);
    pki_ok(&dir, &["revoke", "bob"]);
    pki_ok(&dir, &["issue-client", "alice"]);
    pki_ok(&dir, &["issue-client", "bob"]);

    assert!(dir.join("certs/alice.revoked-1000.cert.pem").exists());
    assert!(dir.join("private/bob.revoked-1001.pem").exists());
    let lines = index_lines(&dir);
    let statuses: Vec<&str> = lines.iter().map(|l| &l[..1]).collect();
    assert_eq!(statuses, ["R", "R", "V", "V"]);
}

#[test]
fn pki_commands_print_results_on_stdout_and_log_nothing_at_the_default_level() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ca");
    let dir_arg = dir.to_str().unwrap();
    let password = root.path().join("password");
    std::fs::write(&password, "secret\n").unwrap();
    let commands: [(&[&str], &str); 6] = [
        (
            &["pki", "init", dir_arg, "--key-type", "ecdsa-p256"],
            "created the CA",
        ),
        (
            &["pki", "--dir", dir_arg, "issue-client", "alice"],
            "issued alice",
        ),
        (
            &["pki", "--dir", dir_arg, "issue-server"],
            "issued wstunnel-server",
        ),
        (
            &[
                "pki",
                "--dir",
                dir_arg,
                "export-p12",
                "alice",
                "--password-file",
                password.to_str().unwrap(),
            ],
            "alice.p12",
        ),
        (
            &["pki", "--dir", dir_arg, "revoke", "alice"],
            "revoked serial",
        ),
        (&["pki", "--dir", dir_arg, "gen-crl"], "CRL number"),
    ];

    for (args, result) in commands {
        let run = wstunnel_logging(args, None);

        assert!(run.success, "{args:?}: {}", run.stderr);
        assert!(run.stdout.contains(result), "{args:?}: {}", run.stdout);
        assert_eq!(run.stderr, "", "{args:?} logged at the default level");
    }
}

#[test]
fn pki_events_are_still_logged_at_debug_level() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ca");

    let run = wstunnel_logging(
        &[
            "pki",
            "init",
            dir.to_str().unwrap(),
            "--key-type",
            "ecdsa-p256",
        ],
        Some("debug"),
    );

    assert!(run.success, "{}", run.stderr);
    assert!(run.stderr.contains("created the CA"), "{}", run.stderr);
    assert!(!run.stdout.contains("DEBUG"), "{}", run.stdout);
}

#[test]
fn verify_says_a_certificate_from_a_ca_with_another_key_type_was_not_issued_by_this_ca() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    // Same CA name (the default), another key type: the signature algorithm cannot match.
    let foreign = root.path().join("foreign");
    pki_ok(
        &foreign,
        &[
            "init",
            foreign.to_str().unwrap(),
            "--key-type",
            "ecdsa-p256",
        ],
    );
    pki_ok(
        &foreign,
        &["issue-client", "eve", "--key-type", "ecdsa-p256"],
    );
    let eve = foreign.join("certs/eve.cert.pem");

    let stranger = pki_err(&dir, &["verify", eve.to_str().unwrap()]);

    assert!(stranger.contains("was not issued by the CA"), "{stranger}");
    assert!(stranger.contains("pass --dir"), "{stranger}");
    assert!(
        !stranger.contains("Context") && !stranger.contains('['),
        "{stranger}"
    );
    assert_eq!(stranger.lines().count(), 1, "{stranger}");
}

#[test]
fn verify_accepts_a_bracketed_ipv6_host_and_refuses_a_server_certificate_without_alt_names() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-server"]);
    // The walkthrough's server certificate: openssl ca with server_cert, no subjectAltName.
    openssl_ok(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "private/w.pem",
            "-out",
            "csr/w.csr.pem",
            "-subj",
            "/CN=www.example.com",
        ],
    );
    openssl_ok(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-extensions",
            "server_cert",
            "-notext",
            "-in",
            "csr/w.csr.pem",
            "-out",
            "certs/w.cert.pem",
            "-batch",
        ],
    );
    let server = dir.join("certs/wstunnel-server.cert.pem");
    let walkthrough = dir.join("certs/w.cert.pem");

    let bracketed = pki_ok(
        &dir,
        &["verify", server.to_str().unwrap(), "--host", "[::1]"],
    );
    let no_san = pki_err(&dir, &["verify", walkthrough.to_str().unwrap()]);
    let no_san_host = pki_err(
        &dir,
        &[
            "verify",
            walkthrough.to_str().unwrap(),
            "--host",
            "www.example.com",
        ],
    );

    assert!(
        bracketed.stdout.contains("valid for"),
        "{}",
        bracketed.stdout
    );
    for message in [&no_san, &no_san_host] {
        assert!(
            message.contains("has no subjectAltName")
                && message.contains("whatever the host")
                && message.contains("pki issue-server"),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}

#[test]
fn sign_csr_accepts_the_walkthrough_layout_with_the_key_in_private_and_checks_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    for name in ["w", "other"] {
        openssl_ok(
            &dir,
            &["genrsa", "-out", &format!("private/{name}.pem"), "2048"],
        );
    }
    openssl_ok(
        &dir,
        &[
            "req",
            "-new",
            "-key",
            "private/w.pem",
            "-out",
            "csr/w.csr.pem",
            "-subj",
            "/CN=w",
        ],
    );
    std::fs::copy(dir.join("csr/w.csr.pem"), root.path().join("other.csr.pem")).unwrap();
    let csr = dir.join("csr/w.csr.pem");
    let other_csr = root.path().join("other.csr.pem");
    let before_mismatch = {
        let signed = pki_ok(
            &dir,
            &["sign-csr", csr.to_str().unwrap(), "--profile", "client"],
        );
        assert!(signed.stdout.contains("issued w"), "{}", signed.stdout);
        snapshot(&dir)
    };

    let mismatch = pki_err(
        &dir,
        &[
            "sign-csr",
            other_csr.to_str().unwrap(),
            "--profile",
            "client",
        ],
    );
    let again = pki_err(
        &dir,
        &["sign-csr", csr.to_str().unwrap(), "--profile", "client"],
    );

    assert!(
        mismatch.contains("private/other.pem is not the key of this request"),
        "{mismatch}"
    );
    assert!(again.contains("certs/w.cert.pem already exists"), "{again}");
    assert!(
        snapshot(&dir) == before_mismatch,
        "a refused sign-csr changed the directory"
    );
    let openssl = openssl_verify_crl(&dir, "sslclient", "certs/w.cert.pem");
    assert!(openssl.success, "{}{}", openssl.stdout, openssl.stderr);
}

#[test]
fn private_keys_are_written_with_unix_line_endings() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "lf", "--key-type", "ecdsa-p256"]);

    for key in ["private/lf.pem", "private/ca.key.pem"] {
        let text = std::fs::read(dir.join(key)).unwrap();

        assert!(!text.contains(&b'\r'), "{key} holds CR characters");
        assert!(text.starts_with(b"-----BEGIN PRIVATE KEY-----\n"), "{key}");
    }
}

#[test]
fn list_names_the_damaged_line_of_index_txt() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "alice"]);
    let mut index = std::fs::read_to_string(dir.join("index.txt")).unwrap();
    index.push_str("V\tgarbage\n");
    std::fs::write(dir.join("index.txt"), index).unwrap();

    let stderr = pki_err(&dir, &["list"]);

    assert!(stderr.contains("index.txt line 2"), "{stderr}");
    assert!(!stderr.contains("not a CA directory"), "{stderr}");
}

#[test]
fn gen_crl_without_a_crlnumber_file_continues_from_the_current_crl_number() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["gen-crl"]);
    pki_ok(&dir, &["gen-crl"]);
    std::fs::remove_file(dir.join("crlnumber")).unwrap();

    let run = pki_ok(&dir, &["gen-crl"]);

    assert!(run.stdout.contains("CRL number 0x1003"), "{}", run.stdout);
    let text = openssl_ok(
        &dir,
        &["crl", "-in", "crl/ca.crl.pem", "-noout", "-crlnumber"],
    );
    assert!(text.contains("crlNumber=0x1003"), "{text}");
    assert_eq!(counter(&dir, "crlnumber"), "1004");
}

#[test]
fn verify_says_to_run_gen_crl_when_index_revokes_what_the_crl_does_not_list() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "k1"]);
    let cert = dir.join("certs/k1.cert.pem");
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

    let refused = pki_err(&dir, &["verify", cert.to_str().unwrap()]);
    pki_ok(&dir, &["gen-crl"]);
    let revoked = pki_err(&dir, &["verify", cert.to_str().unwrap()]);

    assert!(
        refused.contains("marked revoked") && refused.contains("wstunnel pki gen-crl"),
        "{refused}"
    );
    assert!(revoked.contains("is revoked in"), "{revoked}");
}

#[test]
fn fixtures_over_an_existing_ca_name_the_fixtures_command() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());

    let refused = wstunnel(&["pki", "fixtures", dir.to_str().unwrap()]);

    assert!(!refused.success);
    assert!(
        refused.stderr.contains("already holds a CA")
            && refused
                .stderr
                .contains("give `pki fixtures` a new or empty directory")
            && !refused.stderr.contains("pki init"),
        "{}",
        refused.stderr
    );
}

#[test]
fn usage_lines_show_dir_as_optional() {
    for command in ["sign-csr", "export-p12", "revoke", "verify"] {
        let help = wstunnel(&["pki", command, "--help"]);

        let usage = help
            .stdout
            .lines()
            .find(|l| l.starts_with("Usage:"))
            .unwrap();
        assert!(!usage.contains("--dir"), "{command}: {usage}");
        assert!(help.stdout.contains("--dir <DIR>"), "{command}");
    }
}
