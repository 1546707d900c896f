//! `wstunnel client`: opens one WebSocket connection to the server per tunnel (as upstream;
//! connections are never reused, though `--connection-min-idle` prepares them ahead) and
//! serves the `-L` listeners.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::mpsc;

use super::descriptor::{Descriptor, TunnelKind};
use super::frame::{FrameReader, FrameWriter, Masking, OpCode, encode_frame};
use super::http;
use super::pool::{Dialer, Pool, Unreachable};
use super::pump::{self, DatagramEnd, PumpOptions};
use super::socks5;
use super::spec::{Host, LocalTunnelSpec, Scheme, ServerUrl};

/// Any transport to the server: TCP or TLS over TCP.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

pub type FramesIn = FrameReader<ReadHalf<Box<dyn Transport>>>;
pub type FramesOut = FrameWriter<WriteHalf<Box<dyn Transport>>>;

/// Everything needed to open a tunnel to the server.
pub struct Connector {
    pub url: ServerUrl,
    /// Opens the TCP (and TLS) connection of each tunnel.
    pub dialer: Dialer,
    /// `--connection-min-idle`: connections prepared ahead. `None` for 0, the default.
    pub pool: Option<Arc<Pool>>,
    /// Already percent-encoded path segment.
    pub path_prefix: String,
    /// `-H` headers, in order (the last of a name wins).
    pub headers: Vec<(String, String)>,
    /// `--http-headers-file`, read for every tunnel; its headers replace same-named `-H` ones.
    pub headers_file: Option<std::path::PathBuf>,
    /// `--http-upgrade-credentials`, as given.
    pub credentials: Option<String>,
    pub masking: Masking,
    pub pump: PumpOptions,
    pub connect_timeout: Duration,
    /// `--connection-retry-max-backoff`: how long to keep retrying a server that cannot be
    /// reached (TCP connection refused or failing). Zero: one attempt.
    pub retry_window: Duration,
}

/// First pause between attempts to reach the server; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(200);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

impl Connector {
    /// Connects to the server and asks for a tunnel of `kind` to `host:port`. `early` bytes
    /// (possibly none) are sent as a first data frame right behind the upgrade request, in
    /// the same write, instead of one round trip later: the server keeps bytes that follow
    /// the request (ours and upstream's alike) and forwards them once the tunnel is up.
    ///
    /// # Errors
    /// When the server cannot be reached, the TLS handshake fails (the message carries the
    /// server's alert and a hint) or the server answers anything but `101`.
    pub async fn open(
        &self,
        kind: TunnelKind,
        host: &Host,
        port: u16,
        early: &[u8],
    ) -> anyhow::Result<(FramesIn, FramesOut)> {
        let started = tokio::time::Instant::now();
        let give_up_at = started + self.retry_window;
        let mut pause = FIRST_RETRY_PAUSE;
        let mut attempts = 1u32;
        loop {
            let attempt = tokio::time::timeout(
                self.connect_timeout,
                self.open_within(kind.clone(), host, port, early),
            )
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "no tunnel from {}:{} within {} s",
                    self.url.host,
                    self.url.port,
                    self.connect_timeout.as_secs()
                ))
            });
            let now = tokio::time::Instant::now();
            match attempt {
                Err(error) if error.is::<Unreachable>() && now < give_up_at => {
                    tracing::debug!("{error:#}; trying again in {} ms", pause.as_millis());
                    tokio::time::sleep(pause.min(give_up_at - now)).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    attempts += 1;
                }
                Err(error) if attempts > 1 && error.is::<Unreachable>() => {
                    return Err(error.context(format!(
                        "gave up after {attempts} attempts in {} s \
                         (--connection-retry-max-backoff)",
                        (now - started).as_secs()
                    )));
                }
                attempt => return attempt,
            }
        }
    }

    async fn open_within(
        &self,
        kind: TunnelKind,
        host: &Host,
        port: u16,
        early: &[u8],
    ) -> anyhow::Result<(FramesIn, FramesOut)> {
        let mut transport = match self.pool.as_ref().and_then(|pool| pool.take()) {
            Some(prepared) => prepared,
            None => self.dialer.dial().await?,
        };

        let file_headers = match &self.headers_file {
            Some(path) => super::cli::read_headers_file(path)?,
            None => Vec::new(),
        };
        let descriptor = Descriptor::new(kind, host, port);
        let (request, key) = self.upgrade_request(&descriptor.encode(), &file_headers);
        let mut bytes = request.into_bytes();
        if !early.is_empty() {
            bytes.extend_from_slice(&encode_frame(OpCode::Binary, early, self.masking));
        }
        transport.write_all(&bytes).await.map_err(|error| {
            anyhow::anyhow!(
                "cannot send the upgrade request: {}",
                http::describe_io(error)
            )
        })?;
        let head = http::read_response(&mut transport)
            .await
            .map_err(|reason| {
                anyhow::anyhow!(
                    "no upgrade answer from the server {}:{}: {reason}",
                    self.url.host,
                    self.url.port
                )
            })?;
        if head.target != "101" {
            let body = super::printable(&String::from_utf8_lossy(&head.leftover));
            anyhow::bail!(
                "the server refused the tunnel to {host}:{port} with HTTP {} `{}` (the server \
                 log says why)",
                head.target,
                body.trim()
            );
        }
        http::check_accept_key(&head, &key).map_err(|reason| anyhow::anyhow!("{reason}"))?;
        if let Some(pool) = &self.pool {
            pool.tunnel_accepted();
        }
        tracing::debug!(id = %descriptor.id, "tunnel accepted by the server");
        let (read_half, write_half) = tokio::io::split(transport);
        Ok((
            FrameReader::new(read_half, &head.leftover),
            FrameWriter::new(write_half, self.masking),
        ))
    }

    /// The upgrade request: built-in headers, then `-H`, then `file_headers` (each replacing
    /// same-named ones), then credentials. Returns the request and the `Sec-WebSocket-Key` it
    /// carries (which a header option may have replaced), to check the server's answer against.
    fn upgrade_request(&self, token: &str, file_headers: &[(String, String)]) -> (String, String) {
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), self.url.host_header()),
            ("upgrade".into(), "websocket".into()),
            ("connection".into(), "upgrade".into()),
            ("sec-websocket-key".into(), http::new_websocket_key()),
            ("sec-websocket-version".into(), "13".into()),
            (
                "sec-websocket-protocol".into(),
                format!("v1, authorization.bearer.{token}"),
            ),
        ];
        let mut set = |name: &str, value: String| match headers
            .iter_mut()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
        {
            Some(existing) => existing.1 = value,
            None => headers.push((name.to_string(), value)),
        };
        for (name, value) in self.headers.iter().chain(file_headers) {
            set(name, value.clone());
        }
        if let Some(credentials) = &self.credentials {
            set(
                "authorization",
                format!("Basic {}", STANDARD.encode(credentials.trim())),
            );
        }
        let mut request = format!("GET /{}/events HTTP/1.1\r\n", self.path_prefix);
        let key = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"))
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        (request, key)
    }
}

/// Runs every `-L` listener until one fails, or until a stdio tunnel ends.
///
/// `-L tcp://` listeners are served by `threads` threads (see `threads`); the others by the
/// calling thread.
pub async fn run(
    connector: Connector,
    specs: Vec<LocalTunnelSpec>,
    threads: usize,
) -> anyhow::Result<()> {
    let connector = Arc::new(connector);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(pool) = &connector.pool {
        tokio::spawn(Arc::clone(pool).maintain());
    }
    let mut stdio = None;
    for spec in specs {
        match spec {
            LocalTunnelSpec::Stdio {
                host,
                port,
                proxy_protocol,
            } => {
                if stdio.is_some() {
                    anyhow::bail!("only one -L stdio:// can be given: there is one stdin");
                }
                stdio = Some((host, port, proxy_protocol));
            }
            spec => {
                let listener = Listener::bind(&spec).await?;
                if let Listener::Tcp(tcp) = &listener
                    && let (Ok(address), LocalTunnelSpec::Tcp { .. }) = (tcp.local_addr(), &spec)
                {
                    let (connector, spec) = (Arc::clone(&connector), spec.clone());
                    super::threads::spawn_extra("client", threads - 1, address, move |tcp| {
                        let (connector, spec) = (Arc::clone(&connector), spec.clone());
                        async move {
                            if let Err(error) =
                                serve_listener(connector, spec, Listener::Tcp(tcp)).await
                            {
                                tracing::error!("listener stopped: {error:#}");
                            }
                        }
                    });
                }
                tasks.spawn(serve_listener(Arc::clone(&connector), spec, listener));
            }
        }
    }
    if let Some((host, port, proxy_protocol)) = stdio {
        return run_stdio(&connector, host, port, proxy_protocol).await;
    }
    if tasks.is_empty() {
        anyhow::bail!("no tunnel given: add at least one -L SPEC");
    }
    match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(error)) => Err(anyhow::anyhow!("a listener stopped: {error}")),
        None => Ok(()),
    }
}

/// A bound local listener.
enum Listener {
    Tcp(TcpListener),
    /// SOCKS5: TCP for requests, UDP on the same address for UDP ASSOCIATE.
    Socks5(TcpListener, UdpSocket),
    Unix(UnixListener),
    Udp(UdpSocket),
}

impl Listener {
    async fn bind(spec: &LocalTunnelSpec) -> anyhow::Result<Listener> {
        let listener = match spec {
            LocalTunnelSpec::Tcp { bind, .. } => Listener::Tcp(super::threads::bind_first(*bind)?),
            LocalTunnelSpec::Socks5 { bind, .. } => {
                let tcp = TcpListener::bind(bind)
                    .await
                    .with_context(|| format!("cannot listen on {bind}"))?;
                // Same port for UDP, also when the spec asked for port 0.
                let udp_address = tcp.local_addr().unwrap_or(*bind);
                let udp = UdpSocket::bind(udp_address)
                    .await
                    .with_context(|| format!("cannot listen on udp {udp_address} for SOCKS5"))?;
                Listener::Socks5(tcp, udp)
            }
            LocalTunnelSpec::Udp { bind, .. } => Listener::Udp(
                UdpSocket::bind(bind)
                    .await
                    .with_context(|| format!("cannot listen on udp {bind}"))?,
            ),
            LocalTunnelSpec::Unix { path, .. } => {
                Listener::Unix(UnixListener::bind(path).map_err(|error| {
                    let hint = match error.kind() {
                        std::io::ErrorKind::AddrInUse => {
                            " (a socket file is there: remove it if no program uses it)"
                        }
                        std::io::ErrorKind::NotFound => " (its directory does not exist)",
                        _ => "",
                    };
                    anyhow::anyhow!("cannot listen on {}{hint}: {error}", path.display())
                })?)
            }
            LocalTunnelSpec::Stdio { .. } => anyhow::bail!("stdio has no listener"),
        };
        tracing::info!("listening for {spec}");
        Ok(listener)
    }
}

async fn serve_listener(
    connector: Arc<Connector>,
    spec: LocalTunnelSpec,
    listener: Listener,
) -> anyhow::Result<()> {
    match (listener, spec) {
        (
            Listener::Tcp(listener),
            LocalTunnelSpec::Tcp {
                host,
                port,
                proxy_protocol,
                ..
            },
        ) => loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    pause_after_accept_error("tcp", error).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let kind = TunnelKind::Tcp { proxy_protocol };
            let connector = Arc::clone(&connector);
            let host = host.clone();
            tokio::spawn(async move {
                let (read, write) = stream.into_split();
                forward_stream(&connector, kind, &host, port, read, write, peer.to_string()).await
            });
        },
        (
            Listener::Unix(listener),
            LocalTunnelSpec::Unix {
                host,
                port,
                proxy_protocol,
                ..
            },
        ) => loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    pause_after_accept_error("unix", error).await;
                    continue;
                }
            };
            let kind = TunnelKind::Tcp { proxy_protocol };
            let connector = Arc::clone(&connector);
            let host = host.clone();
            tokio::spawn(async move {
                let (read, write) = stream.into_split();
                forward_stream(
                    &connector,
                    kind,
                    &host,
                    port,
                    read,
                    write,
                    "unix peer".into(),
                )
                .await
            });
        },
        (
            Listener::Socks5(listener, udp),
            LocalTunnelSpec::Socks5 {
                credentials,
                timeout,
                ..
            },
        ) => {
            let udp_relay = udp.local_addr().context("SOCKS5 UDP socket address")?;
            tokio::spawn(socks5::serve_udp(Arc::clone(&connector), udp, timeout));
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        pause_after_accept_error("socks5", error).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connector = Arc::clone(&connector);
                let credentials = credentials.clone();
                tokio::spawn(async move {
                    socks5::serve(&connector, stream, peer, credentials.as_ref(), udp_relay).await
                });
            }
        }
        (
            Listener::Udp(socket),
            LocalTunnelSpec::Udp {
                host,
                port,
                timeout,
                ..
            },
        ) => serve_udp(connector, socket, host, port, timeout).await,
        _ => anyhow::bail!("internal error: listener and tunnel spec do not match"),
    }
}

/// Opens a tunnel for one local stream and bridges it; logs the outcome.
pub async fn forward_stream<R, W>(
    connector: &Connector,
    kind: TunnelKind,
    host: &Host,
    port: u16,
    read: R,
    write: W,
    peer: String,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut read = read;
    let early = ready_bytes(&mut read);
    let (frames_in, frames_out) = match connector.open(kind, host, port, &early).await {
        Ok(frames) => frames,
        Err(error) => {
            tracing::error!(%peer, "cannot open a tunnel to {host}:{port}: {error:#}");
            return;
        }
    };
    tracing::info!(%peer, "tunnel opened to {host}:{port}");
    if !early.is_empty() {
        tracing::debug!(%peer, "{} first bytes went with the upgrade request", early.len());
    }
    let (ending, mut totals) = pump::bridge_stream(
        read,
        write,
        frames_in,
        frames_out,
        connector.pump,
        std::future::pending(),
    )
    .await;
    totals.sent += early.len() as u64;
    tracing::info!(
        %peer,
        "tunnel to {host}:{port} closed ({ending}): {} bytes sent, {} received",
        totals.sent,
        totals.received
    );
}

/// A failed accept (out of file descriptors, a connection reset before it was accepted) ends
/// neither the listener nor the client: it is logged and the listener pauses briefly, so that
/// a lack of descriptors does not turn into a busy loop.
async fn pause_after_accept_error(kind: &str, error: std::io::Error) {
    let advice = super::accept_error_advice(&error);
    tracing::warn!("accept on a -L {kind} listener failed: {error}{advice}; trying again");
    // Five warnings a second at most.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

/// Most bytes sent as early data with the upgrade request: what fits in one TLS record with
/// the request.
const EARLY_BYTES: usize = 8 * 1024;

/// The bytes the local peer has already sent, read without waiting: a client that speaks
/// first (HTTP, TLS, SSH) has usually sent its first message by the time the connection is
/// accepted. An end of stream or an error is left for the pump to see on its next read.
fn ready_bytes<R: AsyncRead + Unpin>(read: &mut R) -> Vec<u8> {
    let mut early = vec![0u8; EARLY_BYTES];
    let length = match super::read_now(read, &mut early) {
        std::task::Poll::Ready(Ok(length)) => length,
        _ => 0,
    };
    early.truncate(length);
    early
}

async fn run_stdio(
    connector: &Connector,
    host: Host,
    port: u16,
    proxy_protocol: bool,
) -> anyhow::Result<()> {
    let (frames_in, frames_out) = connector
        .open(TunnelKind::Tcp { proxy_protocol }, &host, port, &[])
        .await?;
    let (ending, totals) = pump::bridge_stream(
        tokio::io::stdin(),
        tokio::io::stdout(),
        frames_in,
        frames_out,
        connector.pump,
        std::future::pending(),
    )
    .await;
    tracing::info!(
        "stdio tunnel to {host}:{port} closed ({ending}): {} bytes sent, {} received",
        totals.sent,
        totals.received
    );
    match ending {
        pump::Ending::Error(error) => Err(error).context("stdio tunnel failed"),
        _ => Ok(()),
    }
}

/// Datagrams queued per local peer while its tunnel opens or is busy; more are dropped.
const UDP_QUEUE: usize = 256;

/// One tunnel per local peer address, closed after `timeout` without a datagram from it.
async fn serve_udp(
    connector: Arc<Connector>,
    socket: UdpSocket,
    host: Host,
    port: u16,
    timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let socket = Arc::new(socket);
    let peers: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>> = Arc::default();
    let mut buffer = vec![0u8; 65536];
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            // ICMP errors from earlier replies surface here; they concern one peer only.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(error) => return Err(error).context("receive on a -L udp listener"),
        };
        let datagram = buffer[..length].to_vec();
        let existing = peers.lock().ok().and_then(|map| map.get(&peer).cloned());
        let sender = match existing {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                let (sender, inbound) = mpsc::channel(UDP_QUEUE);
                if let Ok(mut map) = peers.lock() {
                    map.insert(peer, sender.clone());
                }
                let local = DatagramEnd::Peer {
                    inbound,
                    socket: Arc::clone(&socket),
                    peer,
                    prefix: Vec::new(),
                };
                let connector = Arc::clone(&connector);
                let host = host.clone();
                let peers = Arc::clone(&peers);
                tokio::spawn(async move {
                    forward_datagrams(&connector, local, &host, port, timeout, peer).await;
                    if let Ok(mut map) = peers.lock() {
                        map.remove(&peer);
                    }
                });
                sender
            }
        };
        // A full queue means the tunnel is stuck or still opening: drop, as UDP may.
        let _ = sender.try_send(datagram);
    }
}

pub async fn forward_datagrams(
    connector: &Connector,
    local: DatagramEnd,
    host: &Host,
    port: u16,
    timeout: Option<Duration>,
    peer: SocketAddr,
) {
    let kind = TunnelKind::Udp { timeout };
    let (frames_in, frames_out) = match connector.open(kind, host, port, &[]).await {
        Ok(frames) => frames,
        Err(error) => {
            tracing::error!(%peer, "cannot open a UDP tunnel to {host}:{port}: {error:#}");
            return;
        }
    };
    tracing::info!(%peer, "udp tunnel opened to {host}:{port}");
    let (ending, totals) = pump::bridge_datagrams(
        local,
        frames_in,
        frames_out,
        connector.pump,
        timeout,
        std::future::pending(),
    )
    .await;
    tracing::info!(
        %peer,
        "udp tunnel to {host}:{port} closed ({ending}): {} bytes sent, {} received",
        totals.sent,
        totals.received
    );
}

/// The TLS server name: the SNI override, else the URL host.
pub fn server_name(
    url: &ServerUrl,
    sni_override: Option<&str>,
) -> anyhow::Result<ServerName<'static>> {
    let name = match (sni_override, &url.host) {
        (Some(name), _) => name.to_string(),
        (None, Host::Ip(ip)) => ip.to_string(),
        (None, Host::Domain(name)) => name.clone(),
    };
    ServerName::try_from(name.clone())
        .with_context(|| format!("`{name}` is not a valid TLS server name"))
}

/// Whether the URL wants TLS.
pub fn uses_tls(url: &ServerUrl) -> bool {
    url.scheme == Scheme::Wss
}
