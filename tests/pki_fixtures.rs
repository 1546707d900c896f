//! `pki fixtures OUT`: every fixture behaves as its manifest says with `openssl verify` and
//! with our own (rustls-webpki) `pki verify`, and valid ones last at least 20 years.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// The `openssl verify` error text for each manifest reason.
fn openssl_error(reason: &str) -> &'static str {
    match reason {
        "revoked" => "certificate revoked",
        "expired" => "certificate has expired",
        "not-yet-valid" => "certificate is not yet valid",
        "unknown-issuer" => "unable to get local issuer certificate",
        "wrong-purpose" => "unsuitable certificate purpose",
        "no-subject-alt-name" => "hostname mismatch",
        other => panic!("unknown reason {other}"),
    }
}

fn openssl_verify(out: &Path, fixture: &Value) -> Run {
    let purpose = match fixture["purpose"].as_str().unwrap() {
        "server" => "sslserver",
        _ => "sslclient",
    };
    let mut args = vec![
        "verify",
        "-CAfile",
        fixture["trust_anchor"].as_str().unwrap(),
        "-purpose",
        purpose,
    ];
    for crl in fixture["crls"].as_array().unwrap() {
        args.extend(["-CRLfile", crl.as_str().unwrap()]);
    }
    args.push("-crl_check_all");
    if let Some(chain) = fixture["chain"].as_str() {
        args.extend(["-untrusted", chain]);
    }
    if let Some(host) = fixture["host"].as_str() {
        args.extend(["-verify_hostname", host]);
    }
    args.push(fixture["cert"].as_str().unwrap());
    openssl(out, &args)
}

#[test]
fn every_fixture_behaves_as_its_manifest_says() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("fixtures");

    let run = wstunnel(&["pki", "fixtures", out.to_str().unwrap(), "--json"]);

    assert!(run.success, "{}", run.stderr);
    let printed: Value = serde_json::from_str(&run.stdout).unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fixtures.json")).unwrap()).unwrap();
    assert_eq!(printed, manifest);
    let fixtures = manifest["fixtures"].as_array().unwrap();
    let names: Vec<&str> = fixtures
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for required in [
        "server",
        "client",
        "client-revoked",
        "client-expired",
        "client-not-yet-valid",
        "client-untrusted",
        "server-as-client",
        "server-no-san",
        "client-intermediate",
    ] {
        assert!(
            names.contains(&required),
            "{required} missing from {names:?}"
        );
    }
    for fixture in fixtures {
        let name = fixture["name"].as_str().unwrap();
        let run = openssl_verify(&out, fixture);
        let output = format!("{}{}", run.stdout, run.stderr);
        match fixture["expected"].as_str().unwrap() {
            "accept" => assert!(run.success, "{name} should be accepted: {output}"),
            _ => {
                let reason = fixture["reason"].as_str().unwrap();
                assert!(!run.success, "{name} should be rejected");
                assert!(
                    output.contains(openssl_error(reason)),
                    "{name}: {reason} not in {output}"
                );
            }
        }
        assert!(
            out.join(fixture["key"].as_str().unwrap()).exists(),
            "{name} has no key"
        );
    }
}

#[test]
fn our_verify_agrees_with_the_manifest_for_every_fixture_given_its_chain_and_crls() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("fixtures");
    let run = wstunnel(&["pki", "fixtures", out.to_str().unwrap()]);
    assert!(run.success, "{}", run.stderr);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fixtures.json")).unwrap()).unwrap();

    let mut chained = 0;
    for fixture in manifest["fixtures"].as_array().unwrap() {
        let cert = out.join(fixture["cert"].as_str().unwrap());
        let mut args = vec![
            "verify".to_owned(),
            cert.to_str().unwrap().to_owned(),
            "--purpose".to_owned(),
            fixture["purpose"].as_str().unwrap().to_owned(),
        ];
        if let Some(host) = fixture["host"].as_str() {
            args.extend(["--host".to_owned(), host.to_owned()]);
        }
        if let Some(chain) = fixture["chain"].as_str() {
            args.extend(["--chain".to_owned(), out.join(chain).display().to_string()]);
            chained += 1;
        }
        for crl in fixture["crls"].as_array().unwrap() {
            let crl = out.join(crl.as_str().unwrap());
            args.extend(["--crl".to_owned(), crl.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut full = vec!["pki", "--dir", out.to_str().unwrap()];
        full.extend(args);
        let run = wstunnel(&full);
        let name = fixture["name"].as_str().unwrap();
        assert_eq!(
            run.success,
            fixture["expected"] == "accept",
            "{name}: {}{}",
            run.stdout,
            run.stderr
        );
        let words = match fixture["reason"].as_str() {
            None => "OK:",
            Some("revoked") => "is revoked",
            Some("expired") => "expired on 2021-01-01",
            Some("not-yet-valid") => "not valid before 2060-01-01",
            Some("unknown-issuer") => "was not issued by the CA",
            Some("wrong-purpose") => "cannot authenticate a client",
            // Without any subjectAltName no host can match, whatever --host says.
            Some("no-subject-alt-name") if name == "server-no-san" => "has no subjectAltName",
            Some("no-subject-alt-name") => "no matching subjectAltName",
            Some(other) => panic!("unknown reason {other}"),
        };
        assert!(
            format!("{}{}", run.stdout, run.stderr).contains(words),
            "{name}: {words:?}: {}{}",
            run.stdout,
            run.stderr
        );
    }
    assert!(chained > 0, "no fixture goes through the intermediate");
}

#[test]
fn verify_through_an_intermediate_checks_both_crls() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("fixtures");
    let run = wstunnel(&["pki", "fixtures", out.to_str().unwrap()]);
    assert!(run.success, "{}", run.stderr);
    let path = |relative: &str| out.join(relative).display().to_string();
    let cert = &path("intermediate/certs/client-intermediate.cert.pem");
    let chain = &path("intermediate/certs/ca-chain.cert.pem");
    let intermediate_crl = &path("intermediate/crl/ca.crl.pem");
    let with_both = pki_ok(
        &out,
        &["verify", cert, "--chain", chain, "--crl", intermediate_crl],
    );
    let without_intermediate_crl = pki_err(&out, &["verify", cert, "--chain", chain]);
    // Revoke the intermediate CA itself in the root's CRL.
    pki_ok(&out, &["revoke", "intermediate"]);

    let intermediate_revoked = pki_err(
        &out,
        &["verify", cert, "--chain", chain, "--crl", intermediate_crl],
    );

    assert!(
        with_both.stdout.contains("OK:") && with_both.stdout.contains(intermediate_crl.as_str()),
        "{}",
        with_both.stdout
    );
    assert!(
        without_intermediate_crl.contains("revocation status is unknown")
            && without_intermediate_crl.contains("--crl"),
        "{without_intermediate_crl}"
    );
    assert!(
        intermediate_revoked.contains("or a CA certificate of its chain is revoked"),
        "{intermediate_revoked}"
    );
}

#[test]
fn valid_fixtures_and_crls_last_at_least_twenty_years() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("fixtures");
    let run = wstunnel(&["pki", "fixtures", out.to_str().unwrap()]);
    assert!(run.success, "{}", run.stderr);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fixtures.json")).unwrap()).unwrap();
    // 20 years from now, as openssl's -attime wants it (seconds since the epoch).
    let in_twenty_years = (time::OffsetDateTime::now_utc() + time::Duration::days(7305))
        .unix_timestamp()
        .to_string();

    for fixture in manifest["fixtures"].as_array().unwrap() {
        if fixture["expected"] != "accept" {
            continue;
        }
        let mut args = vec![
            "verify",
            "-attime",
            &in_twenty_years,
            "-CAfile",
            fixture["trust_anchor"].as_str().unwrap(),
            "-crl_check_all",
        ];
        for crl in fixture["crls"].as_array().unwrap() {
            args.extend(["-CRLfile", crl.as_str().unwrap()]);
        }
        if let Some(chain) = fixture["chain"].as_str() {
            args.extend(["-untrusted", chain]);
        }
        args.push(fixture["cert"].as_str().unwrap());

        let run = openssl(&out, &args);

        assert!(
            run.success,
            "{} fails in 20 years: {}{}",
            fixture["name"], run.stdout, run.stderr
        );
    }
}

#[test]
fn fixture_output_holds_no_lock_files() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("fixtures");

    let run = wstunnel(&["pki", "fixtures", out.to_str().unwrap()]);

    assert!(run.success, "{}", run.stderr);
    let files = snapshot(&out);
    let locks: Vec<_> = files
        .keys()
        .filter(|path| path.to_string_lossy().contains(".lock"))
        .collect();
    assert!(locks.is_empty(), "lock files in the fixtures: {locks:?}");
    assert!(files.contains_key(Path::new("intermediate/certs/ca-chain.cert.pem")));
}

#[test]
fn moved_fixture_cas_work_with_openssl_ca_run_from_inside_each_directory() {
    let root = tempfile::tempdir().unwrap();
    let generated = root.path().join("generated");
    let run = wstunnel(&["pki", "fixtures", generated.to_str().unwrap()]);
    assert!(run.success, "{}", run.stderr);
    let moved = root.path().join("checked-out");
    std::fs::rename(&generated, &moved).unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(moved.join("fixtures.json")).unwrap())
            .unwrap();

    for ca in [".", "intermediate", "untrusted"] {
        let dir = moved.join(ca);
        let cnf = std::fs::read_to_string(dir.join("openssl.cnf")).unwrap();

        let gencrl = openssl(
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

        assert!(cnf.contains("\ndir               = .\n"), "{ca}: {cnf}");
        assert!(!cnf.contains(root.path().to_str().unwrap()), "{ca}: {cnf}");
        assert!(gencrl.success, "{ca}: {}", gencrl.stderr);
    }
    let note = manifest["note"].as_str().unwrap();
    assert!(
        note.contains("openssl ca -config openssl.cnf") && note.contains("from inside"),
        "{note}"
    );
}
