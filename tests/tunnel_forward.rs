//! Forward tunnels (`-L`) through our server and client over ws:// and wss://: data arrives
//! intact both ways, datagram boundaries hold, policies reject what they should.

#[path = "tunnel_common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::*;

const EIGHT_MIB: usize = 8 * 1024 * 1024;

fn plain_server(dir: &std::path::Path, extra: &[&str]) -> (Process, u16) {
    let port = free_port();
    let mut arguments = args(&["server", &format!("ws://127.0.0.1:{port}")]);
    arguments.extend(args(extra));
    (
        start_server(&wstunnel(), dir, "server", arguments, port),
        port,
    )
}

fn client(dir: &std::path::Path, server: &str, tunnel: &str, extra: &[&str], port: u16) -> Process {
    let mut arguments = args(&["client", "-L", tunnel]);
    arguments.extend(args(extra));
    arguments.push(server.to_string());
    start_client(&wstunnel(), dir, "client", arguments, port)
}

/// A client with a SOCKS5 listener on a free local port that asks for `login` and `password`,
/// through the plain server on `server_port`. Returns the client and its local port.
fn socks5_client(
    dir: &std::path::Path,
    server_port: u16,
    login: &str,
    password: &str,
) -> (Process, u16) {
    let local = free_port();
    let client = client(
        dir,
        &format!("ws://127.0.0.1:{server_port}"),
        &format!("socks5://127.0.0.1:{local}?login={login}&password={password}"),
        &[],
        local,
    );
    (client, local)
}

#[test]
fn tcp_tunnel_over_ws_carries_8_mib_both_ways_intact() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let (_server, server_port) = plain_server(temp.path(), &[]);
    let local = free_port();
    let _client = client(
        temp.path(),
        &format!("ws://127.0.0.1:{server_port}"),
        &format!("tcp://{local}:{echo}"),
        &[],
        local,
    );
    let data = random_bytes(EIGHT_MIB, 1);

    let received = echo_through(TcpStream::connect(("127.0.0.1", local)).unwrap(), &data);

    assert_eq!(sha256(&received), sha256(&data));
}

#[test]
fn masked_frames_from_our_client_are_unmasked_by_our_server() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let (_server, server_port) = plain_server(temp.path(), &[]);
    let local = free_port();
    let _client = client(
        temp.path(),
        &format!("ws://127.0.0.1:{server_port}"),
        &format!("tcp://{local}:{echo}"),
        &["--websocket-mask-frame"],
        local,
    );
    let data = random_bytes(1024 * 1024, 2);

    let received = echo_through(TcpStream::connect(("127.0.0.1", local)).unwrap(), &data);

    assert_eq!(sha256(&received), sha256(&data));
}

#[test]
fn stdio_tunnel_carries_8_mib_both_ways_intact() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let (_server, server_port) = plain_server(temp.path(), &[]);
    let data = random_bytes(EIGHT_MIB, 3);
    let log = std::fs::File::create(temp.path().join("stdio.log")).unwrap();
    let mut child = Command::new(wstunnel())
        .args([
            "client",
            "-L",
            &format!("stdio://{echo}"),
            &format!("ws://127.0.0.1:{server_port}"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let to_send = data.clone();

    let writer = thread::spawn(move || {
        stdin.write_all(&to_send).unwrap();
        stdin
    });
    let mut received = vec![0u8; data.len()];
    stdout.read_exact(&mut received).unwrap();
    drop(writer.join().unwrap());
    let status = child.wait().unwrap();

    assert_eq!(sha256(&received), sha256(&data));
    assert!(
        status.success(),
        "stdio client exits cleanly when stdin closes"
    );
}

#[test]
fn unix_socket_tunnel_carries_8_mib_both_ways_intact() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let (_server, server_port) = plain_server(temp.path(), &[]);
    let socket_path = temp.path().join("app.sock");
    let process = Process::start(
        &wstunnel(),
        &args(&[
            "client",
            "-L",
            &format!("unix://{}:{echo}", socket_path.display()),
            &format!("ws://127.0.0.1:{server_port}"),
        ]),
        temp.path().join("client.log"),
    );
    process.wait_for_log("listening for");
    let data = random_bytes(EIGHT_MIB, 4);

    let mut stream = std::os::unix::net::UnixStream::connect(&socket_path).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let to_send = data.clone();
    let sender = thread::spawn(move || writer.write_all(&to_send).unwrap());
    let mut received = vec![0u8; data.len()];
    stream.read_exact(&mut received).unwrap();
    sender.join().unwrap();

    assert_eq!(sha256(&received), sha256(&data));
}

#[test]
fn a_socks5_domain_with_a_line_break_cannot_forge_a_client_log_line() {
    let temp = tempfile::tempdir().unwrap();
    let (_server, server_port) = plain_server(temp.path(), &[]);
    let local = free_port();
    let client = client(
        temp.path(),
        &format!("ws://127.0.0.1:{server_port}"),
        &format!("socks5://127.0.0.1:{local}"),
        &[],
        local,
    );
    let mut stream = TcpStream::connect(("127.0.0.1", local)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    stream.write_all(&[5, 1, 0]).unwrap();
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).unwrap();
    let domain = b"a\nFORGED ERROR line\x1b[31m";
    let mut request = vec![5, 1, 0, 3, domain.len() as u8];
    request.extend_from_slice(domain);
    request.extend_from_slice(&80u16.to_be_bytes());
    stream.write_all(&request).unwrap();
    let mut reply = [0u8; 2];
    let _ = stream.read(&mut reply);
    client.wait_for_log("SOCKS5 request refused");

    let log = client.log();
    assert!(!log.lines().any(|line| line.starts_with("FORGED")), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
}

#[test]
fn udp_tunnel_closes_after_its_idle_timeout_although_pings_keep_flowing() {
    let temp = tempfile::tempdir().unwrap();
    let echo = udp_echo_server();
    let (_server, server_port) = plain_server(temp.path(), &[]);
    let local = free_port();
    let process = Process::start(
        &wstunnel(),
        &args(&[
            "client",
            "--websocket-ping-frequency",
            "1s",
            "-L",
            &format!("udp://{local}:{echo}?timeout_sec=2"),
            &format!("ws://127.0.0.1:{server_port}"),
        ]),
        temp.path().join("client.log"),
    );
    wait_for_udp_port(local, &process);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.connect(("127.0.0.1", local)).unwrap();

    let mut buffer = [0u8; 16];
    let echoed = (0..5).find_map(|_| {
        socket.send(b"once").unwrap();
        socket.recv(&mut buffer).ok()
    });

    assert_eq!(echoed, Some(4));
    // wait_for_log gives up after 20 s: pings every second must not count as activity.
    process.wait_for_log("closed (idle timeout)");
}

#[test]
fn udp_tunnel_keeps_datagram_boundaries() {
    let temp = tempfile::tempdir().unwrap();
    let echo = udp_echo_server();
    let (_server, server_port) = plain_server(temp.path(), &[]);
    let local = free_port();
    let process = Process::start(
        &wstunnel(),
        &args(&[
            "client",
            "-L",
            &format!("udp://{local}:{echo}?timeout_sec=10"),
            &format!("ws://127.0.0.1:{server_port}"),
        ]),
        temp.path().join("client.log"),
    );
    wait_for_udp_port(local, &process);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    socket.connect(("127.0.0.1", local)).unwrap();
    let sizes = [1usize, 100, 1400, 9000, 30000, 60000];

    // The first datagram opens the tunnel; lost datagrams are retried so that the test
    // checks boundaries, not UDP delivery.
    let mut received_sizes = Vec::new();
    for (index, size) in sizes.iter().enumerate() {
        let datagram = random_bytes(*size, index as u64 + 10);
        let mut buffer = vec![0u8; 65536];
        let received = (0..5).find_map(|_| {
            socket.send(&datagram).unwrap();
            socket.recv(&mut buffer).ok()
        });
        let length = received.expect("no echo through the UDP tunnel");
        assert_eq!(&buffer[..length], &datagram[..], "datagram of {size} bytes");
        received_sizes.push(length);
    }

    assert_eq!(received_sizes, sizes);
}

#[test]
fn socks5_with_login_carries_8_mib_and_refuses_a_wrong_password() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let (_server, server_port) = plain_server(temp.path(), &[]);
    let (_client, local) = socks5_client(temp.path(), server_port, "alice", "s3cret");
    let data = random_bytes(EIGHT_MIB, 5);

    let good = socks5_connect(local, "alice", "s3cret", echo).expect("socks5 with the password");
    let received = echo_through(good, &data);
    let wrong = socks5_connect(local, "alice", "guess", echo);

    assert_eq!(sha256(&received), sha256(&data));
    assert!(wrong.is_err(), "a wrong password is refused");
}

#[test]
fn restrict_to_rejects_an_unlisted_destination() {
    let temp = tempfile::tempdir().unwrap();
    let allowed = echo_server();
    let unlisted = echo_server();
    let (server, server_port) = plain_server(temp.path(), &["--restrict-to", &allowed.to_string()]);
    let (allowed_port, unlisted_port) = (free_port(), free_port());
    let process = Process::start(
        &wstunnel(),
        &args(&[
            "client",
            "-L",
            &format!("tcp://{allowed_port}:{allowed}"),
            "-L",
            &format!("tcp://{unlisted_port}:{unlisted}"),
            &format!("ws://127.0.0.1:{server_port}"),
        ]),
        temp.path().join("client.log"),
    );
    wait_for_port(allowed_port, &process);
    wait_for_port(unlisted_port, &process);

    let allowed_works = round_trip_works(allowed_port);
    let unlisted_works = round_trip_works(unlisted_port);

    assert!(allowed_works);
    assert!(!unlisted_works);
    server.wait_for_log(&format!("destination {unlisted} not allowed"));
    assert!(
        server.log().contains(" WARN "),
        "rejections are logged at WARN:\n{}",
        server.log()
    );
}

#[test]
fn path_prefix_restriction_accepts_the_prefix_and_rejects_others() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let (server, server_port) = plain_server(temp.path(), &["-r", "team-a"]);
    let (good_port, bad_port) = (free_port(), free_port());
    let url = format!("ws://127.0.0.1:{server_port}");
    let good = Process::start(
        &wstunnel(),
        &args(&[
            "client",
            "-P",
            "team-a",
            "-L",
            &format!("tcp://{good_port}:{echo}"),
            &url,
        ]),
        temp.path().join("good.log"),
    );
    let bad = Process::start(
        &wstunnel(),
        &args(&[
            "client",
            "-P",
            "team-b",
            "-L",
            &format!("tcp://{bad_port}:{echo}"),
            &url,
        ]),
        temp.path().join("bad.log"),
    );
    wait_for_port(good_port, &good);
    wait_for_port(bad_port, &bad);

    let good_works = round_trip_works(good_port);
    let bad_works = round_trip_works(bad_port);

    assert!(good_works);
    assert!(!bad_works);
    server.wait_for_log("path prefix `team-b` not allowed");
    bad.wait_for_log("HTTP 400");
}

/// The head of the next upgrade request that reaches `listener` (a raw stand-in for the server).
fn next_request_head(listener: &std::net::TcpListener) -> String {
    let (mut request_stream, _) = listener.accept().unwrap();
    request_stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        let read = request_stream.read(&mut byte).unwrap();
        assert!(read > 0, "request ended early");
        request.push(byte[0]);
    }
    String::from_utf8(request).unwrap()
}

#[test]
fn headers_file_is_read_for_every_tunnel_and_replaces_same_named_flags() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = listener.local_addr().unwrap().port();
    let temp = tempfile::tempdir().unwrap();
    let headers_file = temp.path().join("headers.txt");
    std::fs::write(
        &headers_file,
        "# team headers\nX-Team: from-file\n\nX-Extra: 1\n",
    )
    .unwrap();
    let local = free_port();
    let _client = client(
        temp.path(),
        &format!("ws://127.0.0.1:{server_port}"),
        &format!("tcp://{local}:127.0.0.1:9"),
        &["-H", "X-Team: a", "--http-headers-file", s(&headers_file)],
        local,
    );
    // start_client's probe of the local port was a tunnel too.
    let probe = next_request_head(&listener);

    std::fs::write(&headers_file, "X-Team: edited\n").unwrap();
    let _local_stream = TcpStream::connect(("127.0.0.1", local)).unwrap();
    let edited = next_request_head(&listener);

    assert!(probe.contains("X-Team: from-file\r\n"), "{probe}");
    assert!(probe.contains("X-Extra: 1\r\n"), "{probe}");
    assert!(!probe.contains("X-Team: a\r\n"), "{probe}");
    assert!(edited.contains("X-Team: edited\r\n"), "{edited}");
    assert!(!edited.contains("X-Extra"), "{edited}");
}

#[test]
fn credentials_and_extra_headers_reach_the_server() {
    // A raw listener stands in for the server to see the request exactly as sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = listener.local_addr().unwrap().port();
    let temp = tempfile::tempdir().unwrap();
    let local = free_port();
    let _client = client(
        temp.path(),
        &format!("ws://127.0.0.1:{server_port}"),
        &format!("tcp://{local}:127.0.0.1:9"),
        &[
            "--http-upgrade-credentials",
            "user:pass",
            "-H",
            "X-Team: a",
            "-H",
            "Host: example.org",
        ],
        local,
    );

    let _local_stream = TcpStream::connect(("127.0.0.1", local)).unwrap();
    let request = next_request_head(&listener);

    assert!(
        request.starts_with("GET /v1/events HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("authorization: Basic dXNlcjpwYXNz\r\n"),
        "{request}"
    );
    assert!(request.contains("X-Team: a\r\n"), "{request}");
    assert!(request.contains("host: example.org\r\n") || request.contains("Host: example.org\r\n"));
    assert!(
        request.contains("sec-websocket-protocol: v1, authorization.bearer.ey"),
        "{request}"
    );
}

#[test]
fn pings_are_answered_so_an_idle_tunnel_outlives_four_ping_periods() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let (server, server_port) = plain_server(temp.path(), &["--websocket-ping-frequency", "1s"]);
    let local = free_port();
    let _client = client(
        temp.path(),
        &format!("ws://127.0.0.1:{server_port}"),
        &format!("tcp://{local}:{echo}"),
        &["--websocket-ping-frequency", "1"],
        local,
    );
    let mut stream = TcpStream::connect(("127.0.0.1", local)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(b"before").unwrap();
    let mut buffer = [0u8; 6];
    stream.read_exact(&mut buffer).unwrap();

    // Five ping periods without data: a side that did not answer pings would be dropped.
    thread::sleep(Duration::from_secs(5));
    stream.write_all(b"after!").unwrap();
    stream.read_exact(&mut buffer).unwrap();

    assert_eq!(&buffer, b"after!");
    assert!(
        !server.log().contains("three pings unanswered"),
        "{}",
        server.log()
    );
}

#[test]
fn a_peer_that_never_answers_pings_is_dropped() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let (server, server_port) = plain_server(temp.path(), &["--websocket-ping-frequency", "1s"]);
    let token = descriptor_for(echo);
    let mut stream = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    let request = format!(
        "GET /v1/events HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\
         sec-websocket-protocol: v1, authorization.bearer.{token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut everything = Vec::new();
    let ended = stream.read_to_end(&mut everything);

    assert!(ended.is_ok(), "the server closes the connection");
    assert!(everything.starts_with(b"HTTP/1.1 101"));
    let pings = everything
        .windows(2)
        .filter(|pair| pair == &[0x89, 0x00])
        .count();
    assert!(pings >= 3, "{pings} pings seen");
    server.wait_for_log("three pings unanswered");
}

fn descriptor_for(destination: std::net::SocketAddr) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = format!(
        r#"{{"id":"raw","p":{{"Tcp":{{"proxy_protocol":false}}}},"r":"{}","rp":{}}}"#,
        destination.ip(),
        destination.port()
    );
    format!(
        "{}.{}.",
        engine.encode(r#"{"alg":"HS256"}"#),
        engine.encode(payload)
    )
}

#[test]
fn socks5_udp_associate_keeps_datagram_boundaries() {
    let temp = tempfile::tempdir().unwrap();
    let echo = udp_echo_server();
    let (_server, server_port) = plain_server(temp.path(), &[]);
    let (_client, local) = socks5_client(temp.path(), server_port, "alice", "s3cret");

    let (_control, relay) = socks5_udp_associate(local, "alice", "s3cret");

    assert_eq!(relay.port(), local, "the relay shares the SOCKS5 port");
    socks5_udp_boundaries_hold(relay, echo);
}

#[test]
fn a_second_server_on_a_busy_port_fails_instead_of_sharing_it() {
    let temp = tempfile::tempdir().unwrap();
    let (_first, port) = plain_server(temp.path(), &[]);

    let second = Command::new(wstunnel())
        .args(["server", &format!("ws://127.0.0.1:{port}")])
        .output()
        .unwrap();

    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn proxy_protocol_option_sends_a_v2_header_naming_the_tunnel_client() {
    let temp = tempfile::tempdir().unwrap();
    let destination = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let destination_address = destination.local_addr().unwrap();
    let (_server, server_port) = plain_server(temp.path(), &[]);
    let local = free_port();
    let _client = client(
        temp.path(),
        &format!("ws://127.0.0.1:{server_port}"),
        &format!("tcp://{local}:{destination_address}?proxy_protocol"),
        &[],
        local,
    );

    let mut stream = TcpStream::connect(("127.0.0.1", local)).unwrap();
    stream.write_all(b"after the header").unwrap();
    // The client's readiness probe made a tunnel of its own that closed at once: skip it.
    let mut received = [0u8; 44];
    loop {
        let (mut accepted, _) = destination.accept().unwrap();
        accepted
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        if accepted.read_exact(&mut received).is_ok() {
            break;
        }
    }
    let (header, data) = received.split_at(28);

    assert_eq!(&header[..12], b"\r\n\r\n\0\r\nQUIT\n", "PROXY v2 signature");
    assert_eq!(header[12], 0x21, "version 2, command PROXY");
    assert_eq!(header[13], 0x11, "TCP over IPv4");
    assert_eq!(
        &header[16..20],
        &[127, 0, 0, 1],
        "source: the tunnel client"
    );
    assert_eq!(data, b"after the header");
}

#[test]
fn a_server_that_never_answers_the_upgrade_fails_the_tunnel_after_the_connect_timeout() {
    // A listener that accepts (through its backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let temp = tempfile::tempdir().unwrap();
    let local = free_port();
    let client = client(
        temp.path(),
        &format!("ws://127.0.0.1:{silent_port}"),
        &format!("tcp://{local}:127.0.0.1:9"),
        &["--connect-timeout", "1s"],
        local,
    );

    let works = round_trip_works(local);

    assert!(!works);
    client.wait_for_log(&format!(
        "no tunnel from 127.0.0.1:{silent_port} within 1 s"
    ));
    drop(silent);
}

#[test]
fn a_wss_server_without_a_certificate_serves_a_self_signed_one_and_says_so() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let server_port = free_port();
    let server = start_server(
        &wstunnel(),
        temp.path(),
        "server",
        args(&["server", &format!("wss://127.0.0.1:{server_port}")]),
        server_port,
    );
    let local = free_port();
    let _client = client(
        temp.path(),
        &format!("wss://127.0.0.1:{server_port}"),
        &format!("tcp://{local}:{echo}"),
        &[],
        local,
    );
    let data = random_bytes(64 * 1024, 7);

    let received = echo_through(TcpStream::connect(("127.0.0.1", local)).unwrap(), &data);

    assert_eq!(sha256(&received), sha256(&data));
    let log = server.log();
    let warning = log
        .lines()
        .find(|line| line.contains("self-signed"))
        .unwrap();
    assert!(
        warning.contains(" WARN ") && warning.contains("--pki"),
        "{warning}"
    );
}
