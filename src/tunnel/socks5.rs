//! The client's local SOCKS5 server (`-L socks5://`): learns the destination from each
//! CONNECT and opens an ordinary TCP tunnel to it.
//!
//! UDP ASSOCIATE is not implemented yet: such requests are answered "command not supported".

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::{Connector, forward_stream};
use super::descriptor::TunnelKind;
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

/// Serves one SOCKS5 client: handshake, tunnel, bridge. Failures are logged, not returned.
pub async fn serve(
    connector: &Connector,
    mut stream: TcpStream,
    peer: SocketAddr,
    credentials: Option<&Credentials>,
) {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream, credentials));
    let (host, port) = match handshake.await {
        Ok(Ok(destination)) => destination,
        Ok(Err(reason)) => {
            tracing::warn!(%peer, "SOCKS5 request refused: {reason}");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "SOCKS5 request refused: handshake not done within 10 s");
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

/// Runs method negotiation, authentication and the request; returns the destination.
async fn handshake(
    stream: &mut TcpStream,
    credentials: Option<&Credentials>,
) -> Result<(Host, u16), String> {
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
    if command != 1 {
        let _ = stream
            .write_all(&reply_with(REPLY_COMMAND_NOT_SUPPORTED))
            .await;
        return Err(format!("command {command} not supported (only CONNECT is)"));
    }
    Ok((host, u16::from_be_bytes(port)))
}

fn reply_with(code: u8) -> [u8; 10] {
    [VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]
}
