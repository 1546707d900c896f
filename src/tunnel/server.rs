//! `wstunnel server`: accepts connections, runs the TLS handshake (with mTLS when configured),
//! checks the upgrade request in upstream's order, connects the destination, answers `101`
//! and bridges the data.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use super::coalesce::Coalescing;
use super::descriptor::{Descriptor, TunnelKind};
use super::frame::{FrameReader, FrameWriter, Masking};
use super::http;
use super::printable;
use super::pump::{self, DatagramEnd, PumpOptions};
use super::restrictions::Restrictions;
use super::spec::Host;
use super::threads;
use crate::tls::identity::PeerIdentity;
use crate::tls::reasons;
use crate::tls::server::{Revocations, ServerTls};

/// Time allowed for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the upgrade request: two minutes for its first byte, because clients
/// with `--connection-min-idle` open connections ahead (upstream's pool hands out
/// connections up to about a minute old; its TLS server waits forever), then 30 seconds for
/// the rest of the head. A connection that sends nothing is closed without a word.
const REQUEST_TIMEOUTS: http::RequestTimeouts = http::RequestTimeouts {
    first_byte: Duration::from_secs(120),
    head: Duration::from_secs(30),
};
/// Time allowed to connect a TCP destination (as upstream).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Body of every rejection, as upstream (the client cannot tell why; the log says).
const REJECTION_BODY: &str = "Invalid request";

/// What every connection handler needs.
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub tls: Option<Arc<ServerTls>>,
    pub restrictions: Restrictions,
    pub pump: PumpOptions,
}

/// Listens and serves until the process is stopped, on `threads` threads (see `threads`).
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(settings: ServerSettings, threads: usize) -> anyhow::Result<()> {
    let listener = threads::bind_first(settings.bind)?;
    let mode = match &settings.tls {
        Some(tls) if tls.requires_client_certificates() => "wss, client certificates required",
        Some(_) => "wss",
        None => "ws",
    };
    let bound = listener.local_addr().unwrap_or(settings.bind);
    let plural = if threads == 1 { "" } else { "s" };
    tracing::info!("listening on {bound} ({mode}, {threads} thread{plural})");
    let settings = Arc::new(settings);
    let shared = Arc::clone(&settings);
    threads::spawn_extra(
        "server",
        threads.saturating_sub(1),
        bound,
        move |listener| accept_loop(Arc::clone(&shared), listener),
    );
    accept_loop(settings, listener).await;
    Ok(())
}

async fn accept_loop(settings: Arc<ServerSettings>, listener: TcpListener) {
    let mut last_accept_error: Option<tokio::time::Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning, and say it
                // once a second at most.
                let now = tokio::time::Instant::now();
                if last_accept_error.is_none_or(|last| now - last >= Duration::from_secs(1)) {
                    last_accept_error = Some(now);
                    let advice = super::accept_error_advice(&error);
                    tracing::error!("accept failed: {error}{advice}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let settings = Arc::clone(&settings);
        tokio::spawn(async move { handle_connection(settings, stream, peer).await });
    }
}

async fn handle_connection(settings: Arc<ServerSettings>, stream: TcpStream, peer: SocketAddr) {
    let Some(tls) = &settings.tls else {
        return handle_upgrade(&settings, stream, peer, None).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let accepting = acceptor.accept(Coalescing::new(stream));
    let mut stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accepting).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            match reasons::rustls_error(&error) {
                Some(rustls_error) => tracing::warn!(
                    %peer,
                    "TLS handshake rejected: {}",
                    reasons::server_side_reason(rustls_error)
                ),
                None if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                    tracing::debug!(%peer, "connection closed during the TLS handshake")
                }
                None => tracing::warn!(%peer, "TLS handshake failed: {error}"),
            }
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "TLS handshake rejected: not finished within 10 s");
            return;
        }
    };
    // TLS 1.3: the session ticket stays held and leaves with the answer to the upgrade
    // request. TLS 1.2: the server's Finished may be the last handshake record, which the
    // client waits for before it sends anything, so it goes now.
    stream.get_mut().0.release();
    if stream.get_ref().1.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3)
        && let Err(error) = stream.flush().await
    {
        tracing::debug!(%peer, "cannot finish the TLS 1.2 handshake: {error}");
        return;
    }
    let connection = stream.get_ref().1;
    tracing::debug!(%peer, handshake = ?connection.handshake_kind(), "TLS handshake done");
    let identity = connection
        .peer_certificates()
        .and_then(PeerIdentity::from_chain);
    let client = ClientCertificate {
        identity,
        revocations: tls
            .requires_client_certificates()
            .then(|| tls.revocations()),
    };
    handle_upgrade(&settings, stream, peer, Some(client)).await
}

/// The verified client certificate of a TLS connection and the CRLs to hold it against.
struct ClientCertificate {
    identity: Option<PeerIdentity>,
    revocations: Option<watch::Receiver<Arc<Revocations>>>,
}

/// A request that passed every check, with its destination connected.
struct Accepted {
    descriptor: Descriptor,
    destination: Destination,
}

enum Destination {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

async fn handle_upgrade<S>(
    settings: &ServerSettings,
    mut stream: S,
    peer: SocketAddr,
    client: Option<ClientCertificate>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let head = match http::read_request(&mut stream, REQUEST_TIMEOUTS).await {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(reason) => {
            tracing::warn!(%peer, "request rejected: {}", printable(&reason));
            http::write_bad_request(&mut stream, REJECTION_BODY).await;
            return;
        }
    };
    let accepted = match check_and_connect(settings, &head, peer, client.as_ref()).await {
        Ok(accepted) => accepted,
        Err(reason) => {
            tracing::warn!(%peer, "request rejected: {}", printable(&reason));
            http::write_bad_request(&mut stream, REJECTION_BODY).await;
            return;
        }
    };
    // As upstream, the key and version are checked only after the destination is connected.
    let key = match (
        head.header("sec-websocket-key"),
        head.header("sec-websocket-version"),
    ) {
        (Some(key), Some(version)) if version.trim() == "13" => key.to_string(),
        _ => {
            tracing::warn!(%peer, "request rejected: missing Sec-WebSocket-Key or version 13");
            http::write_bad_request(&mut stream, REJECTION_BODY).await;
            return;
        }
    };
    if let Err(error) = http::write_switching_protocols(&mut stream, &key).await {
        tracing::debug!(%peer, "client left before the upgrade answer: {error}");
        return;
    }

    let Descriptor {
        id,
        p: kind,
        r: host,
        rp: port,
        ..
    } = &accepted.descriptor;
    // The id is whatever the client put in its token: keep it from forging log lines.
    let id = printable(id);
    tracing::info!(%peer, %id, "tunnel opened: {} to {host}:{port}", kind.name());
    let (read_half, write_half) = tokio::io::split(stream);
    let frames_in = FrameReader::new(read_half, &head.leftover);
    let frames_out = FrameWriter::new(write_half, Masking::Unmasked);
    let cancel = revoked_later(client);
    let (ending, totals) = match accepted.destination {
        Destination::Tcp(destination) => {
            let (destination_read, destination_write) = destination.into_split();
            pump::bridge_stream(
                destination_read,
                destination_write,
                frames_in,
                frames_out,
                settings.pump,
                cancel,
            )
            .await
        }
        Destination::Udp(socket) => {
            let local = DatagramEnd::Connected(socket);
            pump::bridge_datagrams(local, frames_in, frames_out, settings.pump, None, cancel).await
        }
    };
    match ending {
        pump::Ending::Cancelled(reason) => {
            tracing::warn!(%peer, %id, "tunnel closed: {reason}")
        }
        ending => tracing::info!(
            %peer,
            %id,
            "tunnel closed ({ending}): {} bytes to destination, {} bytes from it",
            totals.received,
            totals.sent
        ),
    }
}

/// Resolves when a CRL reload revokes the client certificate of this tunnel.
async fn revoked_later(client: Option<ClientCertificate>) -> String {
    if let Some(ClientCertificate {
        identity: Some(identity),
        revocations: Some(mut receiver),
    }) = client
    {
        while receiver.changed().await.is_ok() {
            if receiver.borrow_and_update().is_revoked(&identity) {
                return format!(
                    "client certificate serial {} was revoked by the new CRL",
                    identity.serial_hex
                );
            }
        }
    }
    std::future::pending().await
}

/// Runs upstream's checks in its order and connects the destination.
async fn check_and_connect(
    settings: &ServerSettings,
    head: &http::Head,
    peer: SocketAddr,
    client: Option<&ClientCertificate>,
) -> Result<Accepted, String> {
    if !head.header_has_token("connection", "upgrade")
        || !head.header_has_token("upgrade", "websocket")
    {
        return Err("not a WebSocket upgrade (Connection/Upgrade headers)".into());
    }

    let path_prefix = path_prefix(&head.target)?;
    let decoded_prefix = percent_decode_str(path_prefix)
        .decode_utf8()
        .map_err(|_| format!("path prefix `{path_prefix}` is not UTF-8 after percent-decoding"))?;

    if let Some(ClientCertificate {
        identity: Some(identity),
        revocations,
    }) = client
    {
        if let Some(common_name) = &identity.common_name
            && decoded_prefix != common_name.as_str()
        {
            return Err(format!(
                "CN/path mismatch: path prefix `{decoded_prefix}` is not the client certificate \
                 CN `{common_name}`"
            ));
        }
        // A resumed TLS session skips certificate verification: check the current CRLs here.
        if let Some(revocations) = revocations
            && revocations.borrow().is_revoked(identity)
        {
            return Err(format!(
                "client certificate revoked (serial {})",
                identity.serial_hex
            ));
        }
    }

    let token = tunnel_token(head).ok_or("no tunnel token in Sec-WebSocket-Protocol or Cookie")?;
    let descriptor = Descriptor::decode(token)?;
    let host = Host::parse(&descriptor.r).map_err(|error| format!("destination: {error}"))?;
    settings
        .restrictions
        .check(&decoded_prefix, &descriptor.p, &host, descriptor.rp)?;

    let destination = match &descriptor.p {
        TunnelKind::Tcp { proxy_protocol } => {
            let mut stream = connect_tcp(&host, descriptor.rp).await?;
            if *proxy_protocol {
                let header = proxy_protocol_v2(peer, stream.local_addr().ok());
                stream
                    .write_all(&header)
                    .await
                    .map_err(|error| format!("cannot send the PROXY header: {error}"))?;
            }
            Destination::Tcp(stream)
        }
        TunnelKind::Udp { .. } => Destination::Udp(connect_udp(&host, descriptor.rp).await?),
        other @ (TunnelKind::ReverseTcp
        | TunnelKind::ReverseUdp { .. }
        | TunnelKind::ReverseSocks5 { .. }
        | TunnelKind::ReverseHttpProxy { .. }
        | TunnelKind::ReverseUnix { .. }) => {
            return Err(format!(
                "{} tunnels are not supported by this server yet",
                other.name()
            ));
        }
        other => {
            return Err(format!(
                "{} is a client-side tunnel kind, not a request",
                other.name()
            ));
        }
    };
    Ok(Accepted {
        descriptor,
        destination,
    })
}

/// The text between the first and second `/`; the rest must end with `events`.
fn path_prefix(target: &str) -> Result<&str, String> {
    let path = target.split('?').next().unwrap_or_default();
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("path `{path}` is not absolute"))?;
    let (prefix, remainder) = rest
        .split_once('/')
        .ok_or_else(|| format!("path `{path}` is not /PREFIX/events"))?;
    if !remainder.ends_with("events") {
        return Err(format!("path `{path}` does not end with /events"));
    }
    Ok(prefix)
}

/// The JWT after `authorization.bearer.` in the first Sec-WebSocket-Protocol header, else the
/// whole first Cookie header.
fn tunnel_token(head: &http::Head) -> Option<&str> {
    const MARKER: &str = "authorization.bearer.";
    head.header("sec-websocket-protocol")
        .and_then(|value| value.find(MARKER).map(|at| &value[at + MARKER.len()..]))
        .or_else(|| head.header("cookie"))
        .map(|token| token.split(',').next().unwrap_or(token).trim())
}

async fn connect_tcp(host: &Host, port: u16) -> Result<TcpStream, String> {
    let connecting = async {
        match host {
            Host::Ip(ip) => TcpStream::connect((*ip, port)).await,
            Host::Domain(name) => TcpStream::connect((name.as_str(), port)).await,
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(error)) => Err(format!("destination {host}:{port} unreachable: {error}")),
        Err(_) => Err(format!(
            "destination {host}:{port} did not answer within 10 s"
        )),
    }
}

async fn connect_udp(host: &Host, port: u16) -> Result<UdpSocket, String> {
    let address = match host {
        Host::Ip(ip) => SocketAddr::new(*ip, port),
        Host::Domain(name) => tokio::net::lookup_host((name.as_str(), port))
            .await
            .ok()
            .and_then(|mut addresses| addresses.next())
            .ok_or_else(|| format!("destination {host} does not resolve"))?,
    };
    let bind: SocketAddr = match address.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|error| format!("cannot open a UDP socket: {error}"))?;
    socket
        .connect(address)
        .await
        .map_err(|error| format!("destination {address} unreachable: {error}"))?;
    Ok(socket)
}

/// A PROXY protocol v2 header (command PROXY, stream): source = tunnel client, destination =
/// our outgoing local address (upstream's choice), unspecified when the families differ.
fn proxy_protocol_v2(source: SocketAddr, local: Option<SocketAddr>) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(0x21);
    let destination = match (source, local) {
        (SocketAddr::V4(_), Some(local @ SocketAddr::V4(_)))
        | (SocketAddr::V6(_), Some(local @ SocketAddr::V6(_))) => local,
        (SocketAddr::V4(_), _) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (SocketAddr::V6(_), _) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    match (source, destination) {
        (SocketAddr::V4(source), SocketAddr::V4(destination)) => {
            header.push(0x11);
            header.extend_from_slice(&12u16.to_be_bytes());
            header.extend_from_slice(&source.ip().octets());
            header.extend_from_slice(&destination.ip().octets());
            header.extend_from_slice(&source.port().to_be_bytes());
            header.extend_from_slice(&destination.port().to_be_bytes());
        }
        (SocketAddr::V6(source), SocketAddr::V6(destination)) => {
            header.push(0x21);
            header.extend_from_slice(&36u16.to_be_bytes());
            header.extend_from_slice(&source.ip().octets());
            header.extend_from_slice(&destination.ip().octets());
            header.extend_from_slice(&source.port().to_be_bytes());
            header.extend_from_slice(&destination.port().to_be_bytes());
        }
        // Families always match after the choice above.
        _ => {}
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prefix_is_the_first_segment_before_events() {
        assert_eq!(path_prefix("/v1/events").unwrap(), "v1");
        assert_eq!(path_prefix("/p/a/b/events?x=1").unwrap(), "p");
        assert!(path_prefix("/p/events/").is_err());
        assert!(path_prefix("v1/events").is_err());
        assert!(path_prefix("/events").is_err());
    }

    #[test]
    fn peer_text_cannot_break_a_log_line() {
        assert_eq!(
            printable("id\n2026 WARN forged\u{1b}[31m"),
            "id?2026 WARN forged?[31m"
        );
        assert_eq!(printable(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn proxy_header_v4_is_28_bytes() {
        let header = proxy_protocol_v2(
            "10.0.0.1:1000".parse().unwrap(),
            Some("127.0.0.1:2000".parse().unwrap()),
        );
        assert_eq!(header.len(), 28);
        assert_eq!(header[13], 0x11);
    }
}
