//! Tunnel set-up shortcuts of our client against our server. `--connection-min-idle`: the
//! client keeps connections ready (TCP and TLS done) and a tunnel uses one of them; a pool
//! left stale by a server restart does not break new tunnels. First bytes the local peer has
//! already sent go out with the upgrade request.

#[path = "tunnel_common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Our server with `--pki` and debug logs (they record each TLS handshake with its peer).
fn debug_pki_server(temp: &std::path::Path, pki: &Pki, port: u16, name: &str) -> Process {
    start_server(
        &wstunnel(),
        temp,
        name,
        args(&[
            "server",
            "--log-lvl",
            "debug",
            "--pki",
            s(&pki.dir),
            &format!("wss://127.0.0.1:{port}"),
        ]),
        port,
    )
}

fn pooled_client(
    temp: &std::path::Path,
    pki: &Pki,
    server_port: u16,
    echo: std::net::SocketAddr,
) -> (Process, u16) {
    pooled_client_as(temp, pki, server_port, echo, CLIENT)
}

fn pooled_client_as(
    temp: &std::path::Path,
    pki: &Pki,
    server_port: u16,
    echo: std::net::SocketAddr,
    certificate: &str,
) -> (Process, u16) {
    let local = free_port();
    let client = start_client(
        &wstunnel(),
        temp,
        "client",
        args(&[
            "client",
            "--connection-min-idle",
            "2",
            "-L",
            &format!("tcp://{local}:{echo}"),
            "--pki",
            s(&pki.dir),
            "--pki-client",
            certificate,
            &format!("wss://127.0.0.1:{server_port}"),
        ]),
        local,
    );
    (client, local)
}

/// Peers (`127.0.0.1:PORT`) of the server log lines that contain `event`, in order.
fn peers_of(log: &str, event: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(event))
        .filter_map(|line| line.split("peer=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn wait_for_handshakes(server: &Process, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let peers = peers_of(&server.log(), "TLS handshake done");
        if peers.len() >= count {
            return peers;
        }
        assert!(
            Instant::now() < deadline,
            "{count} handshakes never happened; server log:\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tunnel_uses_a_connection_the_pool_prepared_before_it_was_asked_for() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let echo = echo_server();
    let server_port = free_port();
    let server = debug_pki_server(temp.path(), &pki, server_port, "server");
    let (client, local) = pooled_client(temp.path(), &pki, server_port, echo);
    // start_client's probe of the local port is a tunnel too: let it settle first.
    wait_for_handshakes(&server, 3);
    thread::sleep(Duration::from_millis(500));
    let handshaken = peers_of(&server.log(), "TLS handshake done");
    let used = peers_of(&server.log(), "tunnel opened");

    let data = random_bytes(1024 * 1024, 11);
    let echoed = echo_through(TcpStream::connect(("127.0.0.1", local)).unwrap(), &data);

    assert_eq!(sha256(&echoed), sha256(&data));
    let log = server.log();
    let tunnels = peers_of(&log, "tunnel opened");
    assert_eq!(tunnels.len(), used.len() + 1, "server log:\n{log}");
    let peer = &tunnels[used.len()];
    assert!(
        handshaken.contains(peer) && !used.contains(peer),
        "the tunnel came from {peer}, not from a connection prepared before it (unused ones: \
         {handshaken:?} minus {used:?}); server log:\n{log}"
    );
    wait_for_handshakes(&server, handshaken.len() + 1);
    assert!(!client.log().contains("ERROR"), "{}", client.log());
}

#[test]
fn pool_left_stale_by_a_server_restart_does_not_break_new_tunnels() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let echo = echo_server();
    let server_port = free_port();
    let first = debug_pki_server(temp.path(), &pki, server_port, "first-server");
    let (_client, local) = pooled_client(temp.path(), &pki, server_port, echo);
    wait_for_handshakes(&first, 2);

    drop(first);
    let second = debug_pki_server(temp.path(), &pki, server_port, "second-server");
    let data = random_bytes(64 * 1024, 12);
    let echoed = echo_through(TcpStream::connect(("127.0.0.1", local)).unwrap(), &data);

    assert_eq!(sha256(&echoed), sha256(&data));
    assert_eq!(
        peers_of(&second.log(), "tunnel opened").len(),
        1,
        "{}",
        second.log()
    );
}

#[test]
fn first_bytes_sent_with_the_upgrade_request_reach_the_destination() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let echo = echo_server();
    let (_server, server_port) = start_pki_server(temp.path(), &pki);
    let local = free_port();
    let client = start_client(
        &wstunnel(),
        temp.path(),
        "client",
        args(&[
            "client",
            "--log-lvl",
            "debug",
            "-L",
            &format!("tcp://{local}:{echo}"),
            "--pki",
            s(&pki.dir),
            "--pki-client",
            CLIENT,
            &format!("wss://127.0.0.1:{server_port}"),
        ]),
        local,
    );

    first_bytes_ride_with_the_upgrade_request(local, &client);
}

/// Opens `count` tunnels through `local` at once and proves each with a round trip; they stay
/// open until all are up.
fn open_at_once(local: u16, count: usize) {
    let mut streams: Vec<TcpStream> = (0..count)
        .map(|_| TcpStream::connect(("127.0.0.1", local)).unwrap())
        .collect();
    for stream in &mut streams {
        stream.write_all(b"?").unwrap();
    }
    for stream in &mut streams {
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"?");
    }
}

#[test]
fn many_tunnels_opened_at_once_resume_their_tls_sessions() {
    const AT_ONCE: usize = 64;
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let echo = echo_server();
    let server_port = free_port();
    let server = debug_pki_server(temp.path(), &pki, server_port, "server");
    let local = free_port();
    let _client = start_client(
        &wstunnel(),
        temp.path(),
        "client",
        args(&[
            "client",
            "-L",
            &format!("tcp://{local}:{echo}"),
            "--pki",
            s(&pki.dir),
            "--pki-client",
            CLIENT,
            &format!("wss://127.0.0.1:{server_port}"),
        ]),
        local,
    );
    open_at_once(local, AT_ONCE);
    let before = wait_for_handshakes(&server, AT_ONCE).len();

    open_at_once(local, AT_ONCE);

    let log = server.log();
    let handshakes: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("TLS handshake done"))
        .skip(before)
        .collect();
    let resumed = handshakes
        .iter()
        .filter(|line| line.contains("Resumed"))
        .count();
    // rustls' own ticket store keeps 8 per server: then at most 8 of these could resume.
    assert!(
        handshakes.len() >= AT_ONCE && resumed >= AT_ONCE - 4,
        "{resumed} of {} handshakes resumed; server log:\n{log}",
        handshakes.len()
    );
}

#[test]
fn client_with_a_retry_window_waits_for_a_server_that_starts_late() {
    let temp = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let server_port = free_port();
    let local = free_port();
    let client = Process::start(
        &wstunnel(),
        &args(&[
            "client",
            "--connection-retry-max-backoff",
            "30s",
            "-L",
            &format!("tcp://{local}:{echo}"),
            &format!("ws://127.0.0.1:{server_port}"),
        ]),
        temp.path().join("client.log"),
    );
    client.wait_for_log("listening for");

    let data = random_bytes(64 * 1024, 13);
    let sender = {
        let data = data.clone();
        thread::spawn(move || {
            echo_through(TcpStream::connect(("127.0.0.1", local)).unwrap(), &data)
        })
    };
    thread::sleep(Duration::from_millis(1500));
    let _server = start_server(
        &wstunnel(),
        temp.path(),
        "server",
        args(&["server", &format!("ws://127.0.0.1:{server_port}")]),
        server_port,
    );
    let echoed = sender.join().unwrap();

    assert_eq!(sha256(&echoed), sha256(&data));
}

#[test]
fn a_refused_pool_backs_off_instead_of_redialing_every_sweep() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    pki.revoke(TO_REVOKE);
    let echo = echo_server();
    let server_port = free_port();
    let server = debug_pki_server(temp.path(), &pki, server_port, "server");

    let (client, _local) = pooled_client_as(temp.path(), &pki, server_port, echo, TO_REVOKE);
    thread::sleep(Duration::from_secs(12));

    // Redialing every 2 s sweep would make 3 x 7 = 21 attempts in 12 s; pauses of 1, 2, 4
    // and 8 s after each failed round allow 4 rounds (12).
    let refusals = server.log().matches("client certificate revoked").count();
    assert!(
        (3..=15).contains(&refusals),
        "{refusals} refusals:\n{}",
        server.log()
    );
    let warnings = client.log().matches("cannot prepare a connection").count();
    assert_eq!(warnings, 1, "{}", client.log());
}

#[test]
fn unused_pooled_connections_of_a_killed_client_leave_no_warning_on_the_server() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_dir(temp.path());
    let echo = echo_server();
    let server_port = free_port();
    let server = debug_pki_server(temp.path(), &pki, server_port, "server");
    let (client, _local) = pooled_client(temp.path(), &pki, server_port, echo);
    wait_for_handshakes(&server, 3);

    drop(client);
    thread::sleep(Duration::from_millis(500));

    assert!(!server.log().contains("WARN"), "{}", server.log());
}
