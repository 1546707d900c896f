//! The client's local SOCKS5 server (`-L socks5://`): learns the destination from each
//! CONNECT and opens an ordinary TCP tunnel to it; UDP ASSOCIATE is served on a UDP socket of
//! the same address and port, with one UDP tunnel per (local peer, destination).
//!
//! The UDP relay is not tied to the TCP connection that asked for it: it serves any local
//! peer, and a peer's tunnels end after the idle timeout rather than when its TCP connection
//! closes. Fragmented SOCKS5 datagrams are dropped (as upstream).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::client::{Connector, forward_datagrams, forward_stream};
use super::descriptor::TunnelKind;
use super::pump::DatagramEnd;
use super::spec::{Credentials, Host};

/// Time a SOCKS5 client has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0x00;
const USERNAME_PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE_METHOD: u8 = 0xFF;
const REPLY_SUCCEEDED: u8 = 0x00;
const REPLY_COMMAND_NOT_SUPPORTED: u8 = 0x07;
const REPLY_ADDRESS_NOT_SUPPORTED: u8 = 0x08;

/// What a SOCKS5 client asked for.
enum Request {
    Connect(Host, u16),
    UdpAssociate,
}

/// Serves one SOCKS5 client: handshake, tunnel, bridge. Failures are logged, not returned.
/// `udp_relay`: address of the UDP socket answering UDP ASSOCIATE.
pub async fn serve(
    connector: &Connector,
    mut stream: TcpStream,
    peer: SocketAddr,
    credentials: Option<&Credentials>,
    udp_relay: SocketAddr,
) {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream, credentials));
    let request = match handshake.await {
        Ok(Ok(request)) => request,
        Ok(Err(reason)) => {
            tracing::warn!(%peer, "SOCKS5 request refused: {}", super::printable(&reason));
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "SOCKS5 request refused: handshake not done within 10 s");
            return;
        }
    };
    let (host, port) = match request {
        Request::Connect(host, port) => (host, port),
        Request::UdpAssociate => {
            let mut reply = vec![VERSION, REPLY_SUCCEEDED, 0];
            reply.extend_from_slice(&encode_address(&Host::Ip(udp_relay.ip()), udp_relay.port()));
            if stream.write_all(&reply).await.is_ok() {
                // The association lasts while the client keeps this connection open.
                let mut sink = [0u8; 512];
                while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
            }
            return;
        }
    };
    // Success is answered before the tunnel opens (as upstream): a failed tunnel then shows
    // up as an immediately closed connection.
    let reply = [VERSION, REPLY_SUCCEEDED, 0, 1, 0, 0, 0, 0, 0, 0];
    if stream.write_all(&reply).await.is_err() {
        return;
    }
    let (read, write) = stream.into_split();
    let kind = TunnelKind::Tcp {
        proxy_protocol: false,
    };
    forward_stream(connector, kind, &host, port, read, write, peer.to_string()).await;
}

/// Tunnels of the UDP relay, by local peer and destination.
type RelayTunnels = Arc<Mutex<HashMap<(SocketAddr, Host, u16), mpsc::Sender<Vec<u8>>>>>;

/// Serves the UDP side of `-L socks5://`: each datagram carries a SOCKS5 UDP header naming
/// its destination; answers go back with the destination's address in that header.
pub async fn serve_udp(
    connector: Arc<Connector>,
    socket: UdpSocket,
    timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let socket = Arc::new(socket);
    let tunnels: RelayTunnels = Arc::default();
    let mut buffer = vec![0u8; 65536];
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(error) => return Err(anyhow::Error::new(error).context("SOCKS5 UDP relay")),
        };
        let Some((host, port, header_length)) = parse_udp_header(&buffer[..length]) else {
            tracing::debug!(%peer, "SOCKS5 UDP datagram dropped (fragmented or malformed)");
            continue;
        };
        let datagram = buffer[header_length..length].to_vec();
        let key = (peer, host.clone(), port);
        let existing = tunnels.lock().ok().and_then(|map| map.get(&key).cloned());
        let sender = match existing {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                let (sender, inbound) = mpsc::channel(256);
                if let Ok(mut map) = tunnels.lock() {
                    map.insert(key.clone(), sender.clone());
                }
                let local = DatagramEnd::Peer {
                    inbound,
                    socket: Arc::clone(&socket),
                    peer,
                    prefix: udp_header(&host, port),
                };
                let connector = Arc::clone(&connector);
                let tunnels = Arc::clone(&tunnels);
                tokio::spawn(async move {
                    forward_datagrams(&connector, local, &host, port, timeout, peer).await;
                    if let Ok(mut map) = tunnels.lock() {
                        map.remove(&key);
                    }
                });
                sender
            }
        };
        let _ = sender.try_send(datagram);
    }
}

/// Parses `RSV(2) FRAG ATYP ADDR PORT`; returns the destination and the header length.
/// Fragments (FRAG != 0) are refused.
fn parse_udp_header(datagram: &[u8]) -> Option<(Host, u16, usize)> {
    if datagram.len() < 4 || datagram[2] != 0 {
        return None;
    }
    let (host, at) = match datagram[3] {
        1 => {
            let octets: [u8; 4] = datagram.get(4..8)?.try_into().ok()?;
            (Host::Ip(IpAddr::V4(Ipv4Addr::from(octets))), 8)
        }
        4 => {
            let octets: [u8; 16] = datagram.get(4..20)?.try_into().ok()?;
            (Host::Ip(IpAddr::V6(Ipv6Addr::from(octets))), 20)
        }
        3 => {
            let length = *datagram.get(4)? as usize;
            let name = std::str::from_utf8(datagram.get(5..5 + length)?).ok()?;
            (Host::parse(name).ok()?, 5 + length)
        }
        _ => return None,
    };
    let port = u16::from_be_bytes(datagram.get(at..at + 2)?.try_into().ok()?);
    Some((host, port, at + 2))
}

/// The SOCKS5 UDP header for answers from `host:port`.
fn udp_header(host: &Host, port: u16) -> Vec<u8> {
    let mut header = vec![0, 0, 0];
    header.extend_from_slice(&encode_address(host, port));
    header
}

/// `ATYP ADDR PORT` as SOCKS5 encodes addresses.
fn encode_address(host: &Host, port: u16) -> Vec<u8> {
    let mut encoded = Vec::new();
    match host {
        Host::Ip(IpAddr::V4(ip)) => {
            encoded.push(1);
            encoded.extend_from_slice(&ip.octets());
        }
        Host::Ip(IpAddr::V6(ip)) => {
            encoded.push(4);
            encoded.extend_from_slice(&ip.octets());
        }
        Host::Domain(name) => {
            encoded.push(3);
            // Host names are at most 253 bytes (checked by Host::parse).
            encoded.push(name.len().min(255) as u8);
            encoded.extend_from_slice(name.as_bytes());
        }
    }
    encoded.extend_from_slice(&port.to_be_bytes());
    encoded
}

/// Runs method negotiation, authentication and the request.
async fn handshake(
    stream: &mut TcpStream,
    credentials: Option<&Credentials>,
) -> Result<Request, String> {
    let io = |error: std::io::Error| format!("connection error: {error}");
    let mut greeting = [0u8; 2];
    stream.read_exact(&mut greeting).await.map_err(io)?;
    if greeting[0] != VERSION {
        return Err(format!("not SOCKS5 (version byte {})", greeting[0]));
    }
    let mut methods = vec![0u8; greeting[1] as usize];
    stream.read_exact(&mut methods).await.map_err(io)?;
    let wanted = if credentials.is_some() {
        USERNAME_PASSWORD
    } else {
        NO_AUTHENTICATION
    };
    if !methods.contains(&wanted) {
        let _ = stream.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await;
        return Err(match credentials {
            Some(_) => "client does not offer username/password authentication".into(),
            None => "client does not offer the no-authentication method".into(),
        });
    }
    stream.write_all(&[VERSION, wanted]).await.map_err(io)?;

    if let Some(expected) = credentials {
        let mut version_and_length = [0u8; 2];
        stream
            .read_exact(&mut version_and_length)
            .await
            .map_err(io)?;
        let mut login = vec![0u8; version_and_length[1] as usize];
        stream.read_exact(&mut login).await.map_err(io)?;
        let mut password_length = [0u8; 1];
        stream.read_exact(&mut password_length).await.map_err(io)?;
        let mut password = vec![0u8; password_length[0] as usize];
        stream.read_exact(&mut password).await.map_err(io)?;
        let accepted =
            login == expected.login.as_bytes() && password == expected.password.as_bytes();
        stream
            .write_all(&[1, if accepted { 0 } else { 1 }])
            .await
            .map_err(io)?;
        if !accepted {
            return Err(format!(
                "wrong login or password for `{}`",
                String::from_utf8_lossy(&login)
            ));
        }
    }

    let mut request = [0u8; 4];
    stream.read_exact(&mut request).await.map_err(io)?;
    let [version, command, _reserved, address_type] = request;
    if version != VERSION {
        return Err(format!("bad request version {version}"));
    }
    let host = match address_type {
        1 => {
            let mut octets = [0u8; 4];
            stream.read_exact(&mut octets).await.map_err(io)?;
            Host::Ip(Ipv4Addr::from(octets).into())
        }
        3 => {
            let mut length = [0u8; 1];
            stream.read_exact(&mut length).await.map_err(io)?;
            let mut name = vec![0u8; length[0] as usize];
            stream.read_exact(&mut name).await.map_err(io)?;
            let name =
                String::from_utf8(name).map_err(|_| "domain name is not UTF-8".to_string())?;
            Host::parse(&name)?
        }
        4 => {
            let mut octets = [0u8; 16];
            stream.read_exact(&mut octets).await.map_err(io)?;
            Host::Ip(Ipv6Addr::from(octets).into())
        }
        other => {
            let _ = stream
                .write_all(&reply_with(REPLY_ADDRESS_NOT_SUPPORTED))
                .await;
            return Err(format!("unknown address type {other}"));
        }
    };
    let mut port = [0u8; 2];
    stream.read_exact(&mut port).await.map_err(io)?;
    match command {
        1 => Ok(Request::Connect(host, u16::from_be_bytes(port))),
        3 => Ok(Request::UdpAssociate),
        _ => {
            let _ = stream
                .write_all(&reply_with(REPLY_COMMAND_NOT_SUPPORTED))
                .await;
            Err(format!(
                "command {command} not supported (only CONNECT and UDP ASSOCIATE are)"
            ))
        }
    }
}

fn reply_with(code: u8) -> [u8; 10] {
    [VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_header_round_trips_and_fragments_are_refused() {
        let host = Host::parse("db.lan").unwrap();
        let mut datagram = udp_header(&host, 5353);
        datagram.extend_from_slice(b"payload");

        let (parsed, port, length) = parse_udp_header(&datagram).unwrap();
        let mut fragment = datagram.clone();
        fragment[2] = 1;

        assert_eq!((parsed, port), (host, 5353));
        assert_eq!(&datagram[length..], b"payload");
        assert!(parse_udp_header(&fragment).is_none());
        assert!(parse_udp_header(&[0, 0, 0, 1, 127]).is_none());
    }
}
