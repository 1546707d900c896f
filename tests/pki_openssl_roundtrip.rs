//! The directory stays OpenSSL's: `openssl verify` accepts what we issue and sees our
//! revocations, `openssl ca` works on our directory and we continue after it, and we continue
//! on a directory the walkthrough's commands created.

mod common;

use std::path::Path;

use common::*;

fn verify(dir: &Path, purpose: &str, cert: &str) -> Run {
    openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "certs/ca.cert.pem",
            "-CRLfile",
            "crl/ca.crl.pem",
            "-crl_check",
            "-purpose",
            purpose,
            cert,
        ],
    )
}

#[test]
fn openssl_verify_accepts_our_certificates_and_rejects_revoked_ones_as_revoked() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-server"]);
    pki_ok(
        &dir,
        &[
            "issue-server",
            "edge",
            "--key-type",
            "ecdsa-p256",
            "--san",
            "*.example.test",
        ],
    );
    pki_ok(&dir, &["issue-client", "alice"]);
    pki_ok(&dir, &["issue-client", "bob", "--key-type", "ecdsa-p384"]);
    pki_ok(&dir, &["issue-client", "carol", "--key-type", "ed25519"]);
    pki_ok(&dir, &["issue-client", "mallory"]);

    pki_ok(&dir, &["revoke", "mallory", "--reason", "keyCompromise"]);

    for server in ["certs/wstunnel-server.cert.pem", "certs/edge.cert.pem"] {
        let run = verify(&dir, "sslserver", server);
        assert!(run.success, "{server}: {}{}", run.stdout, run.stderr);
    }
    for client in [
        "certs/alice.cert.pem",
        "certs/bob.cert.pem",
        "certs/carol.cert.pem",
    ] {
        let run = verify(&dir, "sslclient", client);
        assert!(run.success, "{client}: {}{}", run.stdout, run.stderr);
    }
    let revoked = verify(&dir, "sslclient", "newcerts/1005.pem");
    assert!(!revoked.success);
    assert!(
        revoked.stdout.contains("certificate revoked")
            || revoked.stderr.contains("certificate revoked")
    );
    let misused = verify(&dir, "sslclient", "certs/wstunnel-server.cert.pem");
    assert!(
        !misused.success,
        "a server certificate must not pass as a client"
    );
}

#[test]
fn openssl_ca_issues_revokes_and_gencrls_on_our_directory_and_we_continue() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "ours-1"]);
    openssl_ok(&dir, &["genrsa", "-out", "private/theirs.pem", "2048"]);
    openssl_ok(
        &dir,
        &[
            "req",
            "-config",
            "openssl.cnf",
            "-key",
            "private/theirs.pem",
            "-new",
            "-sha256",
            "-out",
            "csr/theirs.csr.pem",
            "-subj",
            "/CN=theirs",
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
            "-days",
            "375",
            "-notext",
            "-md",
            "sha256",
            "-in",
            "csr/theirs.csr.pem",
            "-out",
            "certs/theirs.cert.pem",
            "-batch",
        ],
    );
    openssl_ok(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-revoke",
            "certs/ours-1.cert.pem",
            "-crl_reason",
            "superseded",
        ],
    );
    openssl_ok(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-gencrl",
            "-out",
            "crl/ca.crl.pem",
        ],
    );
    let issued = pki_ok(&dir, &["issue-client", "ours-2"]);
    pki_ok(
        &dir,
        &["revoke", "theirs", "--reason", "cessationOfOperation"],
    );

    assert!(issued.stdout.contains("serial 1002"), "{}", issued.stdout);
    let lines = index_lines(&dir);
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("R\t") && lines[0].contains(",superseded\t1000\t"));
    assert!(lines[1].starts_with("R\t") && lines[1].contains(",cessationOfOperation\t1001\t"));
    assert!(lines[2].starts_with("V\t") && lines[2].contains("\t1002\tunknown\t"));
    assert_eq!(counter(&dir, "serial"), "1003");
    // init used 1000, openssl's -gencrl 1001, our revoke 1002.
    assert_eq!(counter(&dir, "crlnumber"), "1003");
    let crl = openssl_ok(&dir, &["crl", "-noout", "-text", "-in", "crl/ca.crl.pem"]);
    assert!(
        crl.contains("X509v3 CRL Number: \n                4098"),
        "{crl}"
    );
    assert!(
        crl.contains("Superseded") && crl.contains("Cessation Of Operation"),
        "{crl}"
    );
    assert!(verify(&dir, "sslclient", "certs/ours-2.cert.pem").success);
    assert!(!verify(&dir, "sslclient", "newcerts/1001.pem").success);
    let list = pki_ok(&dir, &["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let statuses: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["revoked", "revoked", "valid"]);
}

#[test]
fn we_continue_on_a_walkthrough_directory_with_pkcs1_and_pkcs8_keys() {
    for traditional_ca_key in [true, false] {
        let root = tempfile::tempdir().unwrap();
        let dir = walkthrough_ca_with_key_form(root.path(), "", "2048", traditional_ca_key);
        walkthrough_issue(
            &dir,
            "wstunnel-server",
            "server_cert",
            "/C=GB/ST=England/O=wstunnel development/CN=wstunnel Development Server",
            &[],
            false,
        );
        walkthrough_issue(
            &dir,
            "wstunnel-client-1",
            "client_cert",
            "/C=GB/ST=England/O=wstunnel development/CN=wstunnel Development Client 1",
            &[],
            true,
        );
        let ca_key = std::fs::read_to_string(dir.join("private/ca.key.pem")).unwrap();
        let client_key =
            std::fs::read_to_string(dir.join("private/wstunnel-client-1.pem")).unwrap();
        assert_eq!(
            ca_key.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
            traditional_ca_key
        );
        assert!(client_key.starts_with("-----BEGIN RSA PRIVATE KEY-----"));

        let issued = pki_ok(&dir, &["issue-client", "client-2"]);
        pki_ok(&dir, &["revoke", "wstunnel-client-1"]);
        std::fs::write(root.path().join("pw"), "secret\n").unwrap();
        pki_ok(
            &dir,
            &[
                "export-p12",
                "wstunnel-server",
                "--password-file",
                root.path().join("pw").to_str().unwrap(),
            ],
        );

        assert!(issued.stdout.contains("serial 1002"), "{}", issued.stdout);
        assert_eq!(counter(&dir, "serial"), "1003");
        assert!(verify(&dir, "sslclient", "certs/client-2.cert.pem").success);
        assert!(verify(&dir, "sslserver", "certs/wstunnel-server.cert.pem").success);
        let revoked = verify(&dir, "sslclient", "newcerts/1001.pem");
        assert!(!revoked.success);
        let lines = index_lines(&dir);
        assert!(
            lines[1].starts_with("R\t") && lines[1].contains("\t1001\t"),
            "{lines:?}"
        );
        // openssl carries on after us.
        openssl_ok(
            &dir,
            &[
                "ca",
                "-config",
                "openssl.cnf",
                "-gencrl",
                "-out",
                "crl/ca.crl.pem",
            ],
        );
        openssl_ok(
            &dir,
            &[
                "ca",
                "-config",
                "openssl.cnf",
                "-revoke",
                "certs/client-2.cert.pem",
            ],
        );
        assert_eq!(index_lines(&dir).len(), 3);
    }
}

#[test]
fn openssl_ca_uses_our_encrypted_ca_key_and_we_use_it_with_passin() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ca");
    let run = wstunnel(&[
        "pki",
        "init",
        dir.to_str().unwrap(),
        "--key-type",
        "ecdsa-p256",
        "--encrypt-key",
        "--passout",
        "pass:correct horse",
    ]);
    assert!(run.success, "{}", run.stderr);
    let key = std::fs::read_to_string(dir.join("private/ca.key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));

    openssl_ok(
        &dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "private/t.pem",
        ],
    );
    openssl_ok(
        &dir,
        &[
            "req",
            "-config",
            "openssl.cnf",
            "-key",
            "private/t.pem",
            "-new",
            "-out",
            "csr/t.csr.pem",
            "-subj",
            "/CN=t",
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
            "-notext",
            "-in",
            "csr/t.csr.pem",
            "-out",
            "certs/t.cert.pem",
            "-batch",
            "-passin",
            "pass:correct horse",
        ],
    );
    let ours = wstunnel_env(
        &[
            "pki",
            "--dir",
            dir.to_str().unwrap(),
            "issue-client",
            "u",
            "--passin",
            "env:CA_PASS",
        ],
        &[("CA_PASS", "correct horse")],
    );

    assert!(ours.success, "{}", ours.stderr);
    assert_eq!(counter(&dir, "serial"), "1002");
    assert!(verify(&dir, "sslclient", "certs/t.cert.pem").success);
    assert!(verify(&dir, "sslclient", "certs/u.cert.pem").success);
}

#[test]
fn an_interrupted_issue_leaves_a_directory_both_tools_continue_on() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "alice"]);
    // What an issue killed at each step can leave: a temporary file of an atomic write, a key
    // written before its certificate, and a serial taken whose index line was never written.
    std::fs::write(dir.join(".tmp-interrupted"), "partial").unwrap();
    std::fs::write(dir.join("certs/.tmp-interrupted"), "partial").unwrap();
    std::fs::copy(dir.join("private/alice.pem"), dir.join("private/carol.pem")).unwrap();
    std::fs::copy(
        dir.join("certs/alice.cert.pem"),
        dir.join("newcerts/1001.pem"),
    )
    .unwrap();
    std::fs::write(dir.join("serial"), "1002\n").unwrap();
    openssl_ok(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "private/t.pem",
            "-out",
            "csr/t.csr.pem",
            "-subj",
            "/CN=t",
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
            "-notext",
            "-in",
            "csr/t.csr.pem",
            "-out",
            "certs/t.cert.pem",
            "-batch",
        ],
    );
    let ours = pki_ok(&dir, &["issue-client", "dave"]);
    let carol = pki_err(&dir, &["issue-client", "carol"]);
    pki_ok(&dir, &["gen-crl"]);
    openssl_ok(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-gencrl",
            "-out",
            "crl/ca.crl.pem",
        ],
    );

    assert!(ours.stdout.contains("serial 1003"), "{}", ours.stdout);
    assert!(
        carol.contains("private/carol.pem") && carol.contains("interrupted"),
        "{carol}"
    );
    let serials: Vec<String> = index_lines(&dir)
        .iter()
        .map(|l| l.split('\t').nth(3).unwrap().to_owned())
        .collect();
    assert_eq!(serials, ["1000", "1002", "1003"]);
    assert!(verify(&dir, "sslclient", "certs/dave.cert.pem").success);
    assert!(verify(&dir, "sslclient", "certs/t.cert.pem").success);
}

#[test]
fn we_issue_from_an_openssl_ca_with_a_sec1_ec_key_and_refuse_legacy_encryption_clearly() {
    let root = tempfile::tempdir().unwrap();
    let dir = walkthrough_ca(root.path(), "", "2048");
    openssl_ok(
        &dir,
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            "private/ca.key.pem",
        ],
    );
    openssl_ok(
        &dir,
        &[
            "req",
            "-config",
            "openssl.cnf",
            "-key",
            "private/ca.key.pem",
            "-new",
            "-x509",
            "-days",
            "7300",
            "-extensions",
            "v3_ca",
            "-out",
            "certs/ca.cert.pem",
            "-subj",
            CA_SUBJECT,
        ],
    );
    assert!(
        std::fs::read_to_string(dir.join("private/ca.key.pem"))
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );

    pki_ok(&dir, &["issue-server"]);
    pki_ok(&dir, &["gen-crl"]);
    openssl_ok(
        &dir,
        &[
            "genrsa",
            "-traditional",
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "private/ca.key.pem",
            "2048",
        ],
    );
    let legacy = pki_err(&dir, &["issue-client", "alice", "--passin", "pass:x"]);

    let server = verify(&dir, "sslserver", "certs/wstunnel-server.cert.pem");
    assert!(server.success, "{}{}", server.stdout, server.stderr);
    assert!(
        legacy.contains("private/ca.key.pem") && legacy.contains("openssl pkcs8 -topk8"),
        "{legacy}"
    );
}

#[test]
fn openssl_reads_our_keys_of_every_type() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    let key_types = ["rsa2048", "rsa4096", "ecdsa-p256", "ecdsa-p384", "ed25519"];
    for key_type in key_types {
        pki_ok(&dir, &["issue-client", key_type, "--key-type", key_type]);
    }

    for key_type in key_types {
        let key = format!("private/{key_type}.pem");
        let read = openssl(&dir, &["pkey", "-in", &key, "-noout"]);

        assert!(
            read.success,
            "openssl pkey cannot read {key}: {}",
            read.stderr
        );
    }
}

#[test]
fn openssl_ca_signs_a_crl_with_our_ed25519_ca_key() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ed");
    pki_ok(
        &dir,
        &["init", dir.to_str().unwrap(), "--key-type", "ed25519"],
    );
    pki_ok(&dir, &["issue-client", "alice", "--key-type", "ed25519"]);
    pki_ok(&dir, &["revoke", "alice"]);

    openssl_ok(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-gencrl",
            "-out",
            "crl/openssl.crl.pem",
        ],
    );

    let crl = openssl_ok(
        &dir,
        &["crl", "-in", "crl/openssl.crl.pem", "-noout", "-text"],
    );
    assert!(
        crl.contains("ED25519") && crl.contains("Serial Number: 1000"),
        "{crl}"
    );
}

#[test]
fn openssl_ca_revokes_our_certificate_whose_cn_holds_a_slash() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());
    pki_ok(&dir, &["issue-client", "n3", "--cn", "a/CN=root"]);

    let revoked = openssl(
        &dir,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-revoke",
            "certs/n3.cert.pem",
        ],
    );

    assert!(revoked.success, "{}", revoked.stderr);
    let line = &index_lines(&dir)[0];
    assert!(line.starts_with("R\t"), "{line}");
    assert!(
        line.ends_with("/O=wstunnel development/CN=a\\/CN=root"),
        "{line}"
    );
}

#[test]
fn control_characters_in_a_subject_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());

    let tab = pki_err(&dir, &["issue-client", "t1", "--cn", "a\tb"]);
    let newline = pki_err(&dir, &["issue-client", "t2", "--subject", "/O=x\ny/CN=t2"]);

    assert!(
        tab.contains("control character") && tab.contains("--cn"),
        "{tab}"
    );
    assert!(newline.contains("control character"), "{newline}");
    assert!(index_lines(&dir).is_empty());
}
