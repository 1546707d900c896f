//! Interoperability with upstream wstunnel v10, with mTLS, both directions: our client against
//! its server and its client against our server, for tcp, udp, socks5 and stdio tunnels.
//!
//! Runs only when `UPSTREAM_WSTUNNEL` names an upstream binary; otherwise each test prints that
//! it was skipped.

#[path = "tunnel_common/mod.rs"]
mod common;

use std::net::{SocketAddr, TcpStream};

use common::*;

const PAYLOAD: usize = 8 * 1024 * 1024;

/// Which binary plays which role.
#[derive(Clone, Copy, Debug)]
enum Direction {
    OurClientUpstreamServer,
    UpstreamClientOurServer,
}

struct Setup {
    _temp: tempfile::TempDir,
    dir: std::path::PathBuf,
    _server: Process,
    server_url: String,
    client_program: String,
    client_identity: Vec<String>,
    tcp_echo: SocketAddr,
    udp_echo: SocketAddr,
}

fn setup(direction: Direction) -> Option<Setup> {
    let Some(upstream) = upstream() else {
        println!("skipped: set UPSTREAM_WSTUNNEL to an upstream wstunnel v10 binary to run this");
        return None;
    };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_path_buf();
    let pki = pki_dir(&dir);
    let port = free_port();
    let server_url = format!("wss://127.0.0.1:{port}");
    let (server_program, server_args) = match direction {
        Direction::OurClientUpstreamServer => (
            upstream.clone(),
            args(&[
                "server",
                "--tls-certificate",
                s(&pki.cert(SERVER)),
                "--tls-private-key",
                s(&pki.key(SERVER)),
                "--tls-client-ca-certs",
                s(&pki.ca_cert()),
                &server_url,
            ]),
        ),
        Direction::UpstreamClientOurServer => (
            wstunnel(),
            args(&["server", "--pki", s(&pki.dir), &server_url]),
        ),
    };
    let server = start_server(&server_program, &dir, "server", server_args, port);
    // The CN `wstunnel-client-2` is a valid path segment, which upstream's client needs.
    let (client_program, client_identity) = match direction {
        Direction::OurClientUpstreamServer => (
            wstunnel(),
            args(&["--pki", s(&pki.dir), "--pki-client", PLAIN_CLIENT]),
        ),
        Direction::UpstreamClientOurServer => (
            upstream,
            args(&[
                "--tls-certificate",
                s(&pki.cert(PLAIN_CLIENT)),
                "--tls-private-key",
                s(&pki.key(PLAIN_CLIENT)),
            ]),
        ),
    };
    Some(Setup {
        _temp: temp,
        dir,
        _server: server,
        server_url,
        client_program,
        client_identity,
        tcp_echo: echo_server(),
        udp_echo: udp_echo_server(),
    })
}

impl Setup {
    fn client_args(&self, tunnel: &str) -> Vec<String> {
        let mut arguments = args(&["client", "-L", tunnel]);
        arguments.extend(self.client_identity.iter().cloned());
        arguments.push(self.server_url.clone());
        arguments
    }

    fn tcp(&self) {
        let local = free_port();
        let arguments = self.client_args(&format!("tcp://{local}:{}", self.tcp_echo));
        let _client = start_client(
            &self.client_program,
            &self.dir,
            "tcp-client",
            arguments,
            local,
        );
        let data = random_bytes(PAYLOAD, 21);
        let received = echo_through(TcpStream::connect(("127.0.0.1", local)).unwrap(), &data);
        assert_eq!(sha256(&received), sha256(&data));
    }

    /// Our client only: first bytes sent behind the upgrade request, and connections prepared
    /// by `--connection-min-idle`, are both accepted by the server.
    fn early_bytes_and_pool(&self) {
        let local = free_port();
        let mut arguments = self.client_args(&format!("tcp://{local}:{}", self.tcp_echo));
        arguments.splice(
            1..1,
            args(&["--log-lvl", "debug", "--connection-min-idle", "2"]),
        );
        let client = start_client(
            &self.client_program,
            &self.dir,
            "early-client",
            arguments,
            local,
        );
        first_bytes_ride_with_the_upgrade_request(local, &client);
        let data = random_bytes(PAYLOAD, 23);
        let received = echo_through(TcpStream::connect(("127.0.0.1", local)).unwrap(), &data);
        assert_eq!(sha256(&received), sha256(&data));
    }

    fn udp(&self) {
        let local = free_port();
        let arguments =
            self.client_args(&format!("udp://{local}:{}?timeout_sec=30", self.udp_echo));
        let client = Process::start(&self.client_program, &arguments, self.dir.join("udp.log"));
        wait_for_udp_port(local, &client);
        udp_boundaries_hold(local);
    }

    fn socks5(&self) {
        let local = free_port();
        let arguments = self.client_args(&format!(
            "socks5://127.0.0.1:{local}?login=alice&password=s3cret"
        ));
        let _client = start_client(
            &self.client_program,
            &self.dir,
            "socks5-client",
            arguments,
            local,
        );
        let stream = socks5_connect(local, "alice", "s3cret", self.tcp_echo).unwrap();
        let data = random_bytes(PAYLOAD, 22);
        let received = echo_through(stream, &data);
        assert_eq!(sha256(&received), sha256(&data));
    }

    fn socks5_udp(&self) {
        let local = free_port();
        let arguments = self.client_args(&format!(
            "socks5://127.0.0.1:{local}?login=alice&password=s3cret"
        ));
        let _client = start_client(
            &self.client_program,
            &self.dir,
            "socks5-udp-client",
            arguments,
            local,
        );
        let (_control, relay) = socks5_udp_associate(local, "alice", "s3cret");
        socks5_udp_boundaries_hold(relay, self.udp_echo);
    }

    fn stdio(&self) {
        let arguments = self.client_args(&format!("stdio://{}", self.tcp_echo));
        stdio_round_trip(
            &self.client_program,
            &arguments,
            &self.dir.join("stdio.log"),
            PAYLOAD,
        );
    }
}

fn run(direction: Direction, check: fn(&Setup)) {
    if let Some(setup) = setup(direction) {
        check(&setup);
        println!("{direction:?}: ok");
    }
}

#[test]
fn our_client_tcp_through_upstream_server_with_mtls() {
    run(Direction::OurClientUpstreamServer, Setup::tcp);
}

#[test]
fn our_client_early_bytes_and_pool_through_upstream_server_with_mtls() {
    run(
        Direction::OurClientUpstreamServer,
        Setup::early_bytes_and_pool,
    );
}

#[test]
fn our_client_udp_through_upstream_server_with_mtls() {
    run(Direction::OurClientUpstreamServer, Setup::udp);
}

#[test]
fn our_client_socks5_through_upstream_server_with_mtls() {
    run(Direction::OurClientUpstreamServer, Setup::socks5);
}

#[test]
fn our_client_stdio_through_upstream_server_with_mtls() {
    run(Direction::OurClientUpstreamServer, Setup::stdio);
}

#[test]
fn upstream_client_tcp_through_our_server_with_mtls() {
    run(Direction::UpstreamClientOurServer, Setup::tcp);
}

#[test]
fn upstream_client_udp_through_our_server_with_mtls() {
    run(Direction::UpstreamClientOurServer, Setup::udp);
}

#[test]
fn upstream_client_socks5_through_our_server_with_mtls() {
    run(Direction::UpstreamClientOurServer, Setup::socks5);
}

#[test]
fn upstream_client_stdio_through_our_server_with_mtls() {
    run(Direction::UpstreamClientOurServer, Setup::stdio);
}

#[test]
fn our_client_socks5_udp_through_upstream_server_with_mtls() {
    run(Direction::OurClientUpstreamServer, Setup::socks5_udp);
}

#[test]
fn upstream_client_socks5_udp_through_our_server_with_mtls() {
    run(Direction::UpstreamClientOurServer, Setup::socks5_udp);
}
