//! Malformed upgrade requests, tokens and frames from a raw TCP peer get an HTTP 400 or a
//! closed connection, and never take the server down.

#[path = "tunnel_common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;

fn token(header: &str, payload: &str) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

fn tcp_token(port: u16) -> String {
    token(
        r#"{"typ":"JWT","alg":"HS256"}"#,
        &format!(
            r#"{{"id":"t","p":{{"Tcp":{{"proxy_protocol":false}}}},"r":"127.0.0.1","rp":{port}}}"#
        ),
    )
}

fn upgrade(path: &str, protocol: &str, key: bool) -> Vec<u8> {
    let key = if key {
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    } else {
        ""
    };
    format!(
        "GET {path} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n{key}\
         sec-websocket-version: 13\r\nsec-websocket-protocol: {protocol}\r\n\r\n"
    )
    .into_bytes()
}

/// Sends `bytes` and returns everything the server answers until it closes.
fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let _ = stream.write_all(bytes);
    // Half-close so that a truncated frame ends in EOF instead of waiting for more bytes.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Opens a tunnel to `target_port` with a raw upgrade, then sends `frame` after the 101.
fn frames_after_upgrade(port: u16, target_port: u16, frame: &[u8]) -> String {
    let mut bytes = upgrade(
        "/v1/events",
        &format!("v1, authorization.bearer.{}", tcp_token(target_port)),
        true,
    );
    bytes.extend_from_slice(frame);
    exchange(port, &bytes)
}

#[test]
fn malformed_requests_tokens_and_frames_get_400_or_a_close_and_no_panic() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let port = free_port();
    let server = start_server(
        &wstunnel(),
        temp.path(),
        "server",
        args(&["server", &format!("ws://127.0.0.1:{port}")]),
        port,
    );
    let bad_requests: Vec<(&str, Vec<u8>)> = vec![
        ("binary garbage", vec![0, 1, 2, 255, 254, 13, 10, 13, 10]),
        (
            "not an upgrade",
            b"GET /v1/events HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        ),
        (
            "bad path",
            upgrade(
                "/nope",
                &format!("v1, authorization.bearer.{}", tcp_token(echo.port())),
                true,
            ),
        ),
        ("no token", upgrade("/v1/events", "v1", true)),
        (
            "token not base64",
            upgrade("/v1/events", "v1, authorization.bearer.%%%.***.x", true),
        ),
        (
            "alg none",
            upgrade(
                "/v1/events",
                &format!(
                    "v1, authorization.bearer.{}",
                    token(
                        r#"{"alg":"none"}"#,
                        r#"{"id":"a","p":{"Tcp":{"proxy_protocol":false}},"r":"127.0.0.1","rp":1}"#
                    )
                ),
                true,
            ),
        ),
        (
            "payload not JSON",
            upgrade(
                "/v1/events",
                &format!(
                    "v1, authorization.bearer.{}",
                    token(r#"{"alg":"HS256"}"#, "{{{{")
                ),
                true,
            ),
        ),
        (
            "missing claims",
            upgrade(
                "/v1/events",
                &format!(
                    "v1, authorization.bearer.{}",
                    token(r#"{"alg":"HS256"}"#, r#"{"id":"a"}"#)
                ),
                true,
            ),
        ),
        (
            "bad host",
            upgrade(
                "/v1/events",
                &format!(
                    "v1, authorization.bearer.{}",
                    token(
                        r#"{"alg":"HS256"}"#,
                        r#"{"id":"a","p":{"Tcp":{"proxy_protocol":false}},"r":"::1","rp":1}"#
                    )
                ),
                true,
            ),
        ),
        (
            "port out of range",
            upgrade(
                "/v1/events",
                &format!(
                    "v1, authorization.bearer.{}",
                    token(
                        r#"{"alg":"HS256"}"#,
                        r#"{"id":"a","p":{"Tcp":{"proxy_protocol":false}},"r":"a","rp":70000}"#
                    )
                ),
                true,
            ),
        ),
        (
            "local-only kind",
            upgrade(
                "/v1/events",
                &format!(
                    "v1, authorization.bearer.{}",
                    token(
                        r#"{"alg":"HS256"}"#,
                        r#"{"id":"a","p":"TProxyTcp","r":"a","rp":1}"#
                    )
                ),
                true,
            ),
        ),
        (
            "reverse kind",
            upgrade(
                "/v1/events",
                &format!(
                    "v1, authorization.bearer.{}",
                    token(
                        r#"{"alg":"HS256"}"#,
                        r#"{"id":"a","p":"ReverseTcp","r":"127.0.0.1","rp":1}"#
                    )
                ),
                true,
            ),
        ),
        (
            "no websocket key",
            upgrade(
                "/v1/events",
                &format!("v1, authorization.bearer.{}", tcp_token(echo.port())),
                false,
            ),
        ),
        ("header over 16 KiB", {
            let mut request = b"GET /v1/events HTTP/1.1\r\nx-big: ".to_vec();
            request.extend(std::iter::repeat_n(b'a', 20_000));
            request
        }),
    ];

    for (what, bytes) in &bad_requests {
        let answer = exchange(port, bytes);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400 Bad Request"),
            "{what}: unexpected answer {answer:?}"
        );
    }
    let bad_frames: Vec<(&str, Vec<u8>)> = vec![
        ("reserved bits", vec![0xF2, 0x00]),
        ("unknown opcode", vec![0x83, 0x00]),
        ("length 2^63", vec![0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        ("ping of 200 bytes", vec![0x89, 0x7E, 0x00, 0xC8]),
        ("truncated frame", vec![0x82, 0x7E, 0xFF]),
    ];
    for (what, frame) in &bad_frames {
        let answer = frames_after_upgrade(port, echo.port(), frame);
        assert!(answer.starts_with("HTTP/1.1 101"), "{what}: {answer:?}");
    }

    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("request rejected: not a WebSocket upgrade"),
        "{log}"
    );
    assert!(
        log.contains("request rejected: tunnel token header has no known `alg`"),
        "{log}"
    );
    assert!(
        log.contains("reverse tcp tunnels are not supported by this server yet"),
        "{log}"
    );
    assert!(
        log.contains("WebSocket protocol error: reserved bits set"),
        "{log}"
    );
    let valid = upgrade(
        "/v1/events",
        &format!("v1, authorization.bearer.{}", tcp_token(echo.port())),
        true,
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(&valid).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(
        &head, b"HTTP/1.1 101",
        "the server still serves after all of the above"
    );
}

#[test]
fn tls_listener_closes_non_tls_bytes_without_panicking() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let (server, port) = start_pki_server(temp.path(), &pki);

    let answer = exchange(port, b"GET /v1/events HTTP/1.1\r\n\r\n");
    let garbage = exchange(port, &random_bytes(5000, 9));

    assert!(!answer.contains("HTTP/1.1 101"));
    assert!(!garbage.contains("HTTP"));
    server.wait_for_log("TLS handshake rejected");
    assert!(!server.log().contains("panicked"));
}

#[test]
fn client_refuses_a_101_answer_whose_accept_key_does_not_match_its_key() {
    let temp = tempfile::tempdir().unwrap();
    let fake = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_port = fake.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in fake.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).is_ok() {
                head.push(byte[0]);
            }
            // The RFC 6455 example's answer, whatever key the client sent.
            let _ = stream.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\
                  Upgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            );
        }
    });
    let local = free_port();
    let client = start_client(
        &wstunnel(),
        temp.path(),
        "client",
        args(&[
            "client",
            "-L",
            &format!("tcp://{local}:127.0.0.1:9"),
            &format!("ws://127.0.0.1:{fake_port}"),
        ]),
        local,
    );

    let worked = round_trip_works(local);

    assert!(!worked);
    client.wait_for_log("does not match our key");
}
