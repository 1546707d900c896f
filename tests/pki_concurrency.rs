//! Database updates are serialised by the directory lock: concurrent issues never share a
//! serial or lose an index line.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;

#[test]
fn sixteen_concurrent_issue_client_runs_get_sixteen_distinct_serials_and_lines() {
    let root = tempfile::tempdir().unwrap();
    let dir = our_ca(root.path());

    let children: Vec<_> = (0..16)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_wstunnel"))
                .args([
                    "pki",
                    "--dir",
                    dir.to_str().unwrap(),
                    "issue-client",
                    &format!("client-{i}"),
                ])
                .args(["--key-type", "ecdsa-p256"])
                .env("RUST_LOG", "off")
                .spawn()
                .unwrap()
        })
        .collect();
    let statuses: Vec<_> = children
        .into_iter()
        .map(|mut c| c.wait().unwrap())
        .collect();

    assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
    let lines = index_lines(&dir);
    assert_eq!(lines.len(), 16, "{lines:?}");
    let serials: BTreeSet<String> = lines
        .iter()
        .map(|l| l.split('\t').nth(3).unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = (0x1000..0x1010).map(|s| format!("{s:04X}")).collect();
    assert_eq!(serials, expected);
    assert_eq!(counter(&dir, "serial"), "1010");
    for i in 0..16 {
        let cert = format!("certs/client-{i}.cert.pem");
        let run = openssl(
            &dir,
            &[
                "verify",
                "-CAfile",
                "certs/ca.cert.pem",
                "-purpose",
                "sslclient",
                &cert,
            ],
        );
        assert!(run.success, "{cert}: {}", run.stderr);
    }
    for serial in &serials {
        assert!(dir.join(format!("newcerts/{serial}.pem")).exists());
    }
}
