//! A refused client tells its user what went wrong and what to do, naming real commands.

#[path = "tunnel_common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn client(temp: &Path, server_url: &str, extra: &[&str]) -> (Process, u16) {
    let local = free_port();
    let echo = echo_server();
    let mut arguments = args(&["client", "-L", &format!("tcp://{local}:{echo}")]);
    arguments.extend(args(extra));
    arguments.push(server_url.to_string());
    (
        start_client(&wstunnel(), temp, "client", arguments, local),
        local,
    )
}

#[test]
fn a_server_certificate_from_another_ca_with_the_same_name_gets_a_hint() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let other = pki_dir(&temp.path().join("other"));
    let (_server, port) = start_pki_server(temp.path(), &pki);
    let (client, local) = client(
        temp.path(),
        &format!("wss://127.0.0.1:{port}"),
        &[
            "--tls-certificate",
            s(&pki.cert(CLIENT)),
            "--tls-private-key",
            s(&pki.key(CLIENT)),
            "--tls-ca-certs",
            s(&other.ca_cert()),
        ],
    );

    let worked = round_trip_works(local);

    assert!(!worked);
    client.wait_for_log("is not issued by the CA given with --tls-ca-certs or --pki");
    assert!(
        client.log().contains("wstunnel pki issue-server"),
        "{}",
        client.log()
    );
}

#[test]
fn a_ws_client_towards_a_wss_server_is_told_to_use_wss() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let (_server, port) = start_pki_server(temp.path(), &pki);
    let (client, local) = client(temp.path(), &format!("ws://127.0.0.1:{port}"), &[]);

    let worked = round_trip_works(local);

    assert!(!worked);
    client.wait_for_log("use wss:// instead of ws://");
}

#[test]
fn a_pki_client_whose_files_were_moved_aside_by_revoke_is_told_what_to_do() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let aside = pki
        .dir
        .join(format!("certs/{TO_REVOKE}.revoked-1003.cert.pem"));
    std::fs::rename(pki.cert(TO_REVOKE), aside).unwrap();

    let mut child = Command::new(wstunnel())
        .args([
            "client",
            "-L",
            &format!("tcp://{}:127.0.0.1:9", free_port()),
            "--pki",
            s(&pki.dir),
            "--pki-client",
            TO_REVOKE,
            "wss://127.0.0.1:9",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the client started without its certificate");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("certs/{TO_REVOKE}.cert.pem is missing")),
        "{stderr}"
    );
    assert!(stderr.contains("wstunnel pki list"), "{stderr}");
    assert!(stderr.contains("wstunnel pki issue-client"), "{stderr}");
}

#[test]
fn every_pki_command_named_in_hints_and_docs_exists() {
    let help = Command::new(wstunnel())
        .args(["pki", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = [
        "src/tls/reasons.rs",
        "src/tls/server.rs",
        "src/tls/client.rs",
        "src/tunnel/mod.rs",
        "src/tunnel/http.rs",
        "src/tunnel/client.rs",
        "docs/tunnel.md",
        "docs/troubleshooting.md",
    ];

    let mut named = Vec::new();
    for source in sources {
        let text = std::fs::read_to_string(root.join(source)).unwrap();
        let text = text.replace(['\\', '\n'], " ");
        for (at, _) in text.match_indices("pki ") {
            let word: String = text[at + 4..]
                .trim_start()
                .chars()
                .take_while(|character| character.is_ascii_alphanumeric() || *character == '-')
                .collect();
            let before = text[..at].trim_end();
            let a_command = before.ends_with("wstunnel") || before.ends_with('`');
            if a_command && !word.is_empty() {
                named.push((source, word));
            }
        }
    }

    assert!(commands.contains(&"gen-crl"), "{help}");
    assert!(named.len() > 5, "{named:?}");
    for (source, word) in named {
        assert!(
            commands.contains(&word.as_str()),
            "{source} names `wstunnel pki {word}`"
        );
    }
}
