//! Our certificates and CRLs are what `openssl ca` makes with the walkthrough's openssl.cnf:
//! `openssl x509 -noout -text` outputs are equal apart from serials, dates, keys, key
//! identifiers and signatures.

mod common;

use common::*;

const SERVER_SUBJECT: &str = "/C=GB/ST=England/O=wstunnel development/CN=wstunnel-server";
const CLIENT_SUBJECT: &str = "/C=GB/ST=England/O=wstunnel development/CN=client-1";

#[test]
fn server_certificate_matches_openssl_ca_with_the_server_cert_profile() {
    let theirs_root = tempfile::tempdir().unwrap();
    let ours_root = tempfile::tempdir().unwrap();
    // The walkthrough's server certificate has no subjectAltName, which rustls rejects, so
    // the request carries ours and openssl.cnf copies it (as our own openssl.cnf does).
    let theirs = walkthrough_ca(theirs_root.path(), "copy_extensions = copy", "2048");
    walkthrough_issue(
        &theirs,
        "wstunnel-server",
        "server_cert",
        SERVER_SUBJECT,
        &[
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
        ],
        false,
    );
    let ours = our_ca(ours_root.path());

    pki_ok(&ours, &["issue-server"]);

    let expected = masked_text(&theirs, &theirs.join("certs/wstunnel-server.cert.pem"));
    let actual = masked_text(&ours, &ours.join("certs/wstunnel-server.cert.pem"));
    assert_eq!(actual, expected);
    assert!(actual.contains(
        "DirName:/C=GB/ST=England/O=wstunnel development/CN=wstunnel Development Root CA"
    ));
}

#[test]
fn client_certificate_matches_openssl_ca_with_the_client_cert_profile() {
    let theirs_root = tempfile::tempdir().unwrap();
    let ours_root = tempfile::tempdir().unwrap();
    let theirs = walkthrough_ca(theirs_root.path(), "", "2048");
    walkthrough_issue(
        &theirs,
        "client-1",
        "client_cert",
        CLIENT_SUBJECT,
        &[],
        false,
    );
    let ours = our_ca(ours_root.path());

    pki_ok(&ours, &["issue-client", "client-1"]);

    let expected = masked_text(&theirs, &theirs.join("certs/client-1.cert.pem"));
    let actual = masked_text(&ours, &ours.join("certs/client-1.cert.pem"));
    assert_eq!(actual, expected);
    assert!(
        actual.contains("Netscape Comment: \n                OpenSSL Generated Client Certificate")
    );
}

#[test]
fn ca_certificate_matches_openssl_req_x509_with_the_v3_ca_profile() {
    let theirs_root = tempfile::tempdir().unwrap();
    let ours_root = tempfile::tempdir().unwrap();
    let theirs = walkthrough_ca(theirs_root.path(), "", "4096");
    let ours = ours_root.path().join("ca");

    let run = wstunnel(&["pki", "init", ours.to_str().unwrap()]);
    assert!(run.success, "{}", run.stderr);

    let expected = masked_text(&theirs, &theirs.join("certs/ca.cert.pem"));
    let actual = masked_text(&ours, &ours.join("certs/ca.cert.pem"));
    assert_eq!(actual, expected);
    assert!(actual.contains("Public-Key: (4096 bit)"));
}

#[test]
fn crl_matches_openssl_gencrl_with_the_crl_ext_profile() {
    let theirs_root = tempfile::tempdir().unwrap();
    let ours_root = tempfile::tempdir().unwrap();
    let theirs = walkthrough_ca(theirs_root.path(), "", "2048");
    walkthrough_issue(
        &theirs,
        "client-1",
        "client_cert",
        CLIENT_SUBJECT,
        &[],
        false,
    );
    walkthrough_issue(
        &theirs,
        "client-2",
        "client_cert",
        "/C=GB/ST=England/O=wstunnel development/CN=client-2",
        &[],
        false,
    );
    openssl_ok(
        &theirs,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-revoke",
            "certs/client-1.cert.pem",
            "-crl_reason",
            "keyCompromise",
        ],
    );
    openssl_ok(
        &theirs,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-revoke",
            "certs/client-2.cert.pem",
        ],
    );
    // Our init writes CRL 1000 and each revoke one more, so ours ends at 1002: match it.
    std::fs::write(theirs.join("crlnumber"), "1002\n").unwrap();
    openssl_ok(
        &theirs,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-gencrl",
            "-out",
            "crl/ca.crl.pem",
        ],
    );
    let ours = our_ca(ours_root.path());
    pki_ok(&ours, &["issue-client", "client-1"]);
    pki_ok(&ours, &["issue-client", "client-2"]);

    pki_ok(&ours, &["revoke", "client-1", "--reason", "keyCompromise"]);
    pki_ok(&ours, &["revoke", "client-2"]);

    let text = |dir: &std::path::Path| {
        mask(&openssl_ok(
            dir,
            &["crl", "-noout", "-text", "-in", "crl/ca.crl.pem"],
        ))
    };
    assert_eq!(text(&ours), text(&theirs));
    assert!(text(&ours).contains("X509v3 CRL Number: \n                4098"));
}

#[test]
fn index_serial_and_crlnumber_use_openssl_formats() {
    let root = tempfile::tempdir().unwrap();
    let ours = our_ca(root.path());

    pki_ok(
        &ours,
        &["issue-client", "client-1", "--subject", "/CN=c1/O=Org/C=GB"],
    );
    pki_ok(&ours, &["revoke", "client-1", "--reason", "superseded"]);

    let lines = index_lines(&ours);
    assert_eq!(lines.len(), 1);
    let fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(fields[0], "R");
    assert_eq!(
        fields[1].len(),
        13,
        "expiry as YYMMDDHHMMSSZ: {:?}",
        fields[1]
    );
    assert!(fields[1].ends_with('Z'));
    let (revoked_at, reason) = fields[2].split_once(',').unwrap();
    assert_eq!((revoked_at.len(), reason), (13, "superseded"));
    assert_eq!(&fields[3..], &["1000", "unknown", "/C=GB/O=Org/CN=c1"]);
    assert_eq!(counter(&ours, "serial"), "1001");
    assert_eq!(counter(&ours, "crlnumber"), "1002");
    assert_eq!(
        std::fs::read_to_string(ours.join("index.txt.attr")).unwrap(),
        "unique_subject = no\n"
    );
}
