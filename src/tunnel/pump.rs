//! The data phase of a tunnel: moving bytes or datagrams between a local end and a WebSocket
//! transport, answering pings, sending our own, and tearing down as upstream does (first EOF
//! or Close from either side ends both directions; there is no half-close).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::frame::{Chunk, FrameReader, FrameWriter, HEADER_ROOM, OpCode};

/// First read size from the local end; the buffer doubles each time a read fills it. Small,
/// because an idle tunnel keeps its buffer: 1000 idle tunnels hold 4 MiB of them; a bulk
/// transfer reaches large reads after a few doublings.
const INITIAL_READ: usize = 4 * 1024;
/// Largest local read (and so largest frame we send).
const MAX_READ: usize = 4 * 1024 * 1024;
/// How long the Close frame and TLS close_notify may take to go out at the end of a tunnel.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);
/// After this many unanswered pings the tunnel is dropped (upstream's rule).
const MAX_OUTSTANDING_PINGS: u32 = 3;

/// Why a tunnel ended, for the closing log line.
#[derive(Debug)]
pub enum Ending {
    /// The local end reached EOF.
    LocalClosed,
    /// The remote side sent Close or closed the connection.
    RemoteClosed,
    /// Three pings went unanswered.
    PingTimeout,
    /// The UDP peer was silent for the idle timeout.
    Idle,
    /// Stopped from outside (e.g. the client certificate was revoked).
    Cancelled(String),
    Error(io::Error),
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::LocalClosed => f.write_str("local end closed"),
            Ending::RemoteClosed => f.write_str("remote end closed"),
            Ending::PingTimeout => f.write_str("three pings unanswered"),
            Ending::Idle => f.write_str("idle timeout"),
            Ending::Cancelled(reason) => f.write_str(reason),
            Ending::Error(error) => write!(f, "error: {error}"),
        }
    }
}

/// Byte counts of a finished tunnel.
#[derive(Debug, Default)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
}

/// `EMSGSIZE` on Linux: a datagram larger than the socket can send.
const EMSGSIZE: i32 = 90;

/// Settings shared by both ends.
#[derive(Clone, Copy, Debug)]
pub struct PumpOptions {
    /// `None`: no pings.
    pub ping_every: Option<Duration>,
}

/// Control frames the reading side asks the writing side to send.
enum Control {
    Pong(Vec<u8>),
    CloseReply,
}

/// Bridges a byte stream (TCP, Unix, stdio) with a WebSocket transport until either side ends
/// or `cancel` resolves.
pub async fn bridge_stream<LR, LW, TR, TW, C>(
    mut local_read: LR,
    mut local_write: LW,
    mut frames_in: FrameReader<TR>,
    mut frames_out: FrameWriter<TW>,
    options: PumpOptions,
    cancel: C,
) -> (Ending, Totals)
where
    LR: AsyncRead + Unpin,
    LW: AsyncWrite + Unpin,
    TR: AsyncRead + Unpin,
    TW: AsyncWrite + Unpin,
    C: Future<Output = String>,
{
    let outstanding = AtomicU32::new(0);
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    let received = std::sync::atomic::AtomicU64::new(0);
    let mut sent = 0u64;

    let outgoing = async {
        let mut buffer = vec![0u8; HEADER_ROOM + INITIAL_READ];
        let mut ticker = ping_ticker(options.ping_every);
        loop {
            tokio::select! {
                read = local_read.read(&mut buffer[HEADER_ROOM..]) => {
                    let read = match read {
                        Ok(0) => {
                            let _ = frames_out.send_close().await;
                            return Ending::LocalClosed;
                        }
                        Ok(read) => read,
                        Err(error) => {
                            let _ = frames_out.send_close().await;
                            return Ending::Error(error);
                        }
                    };
                    let filled = read == buffer.len() - HEADER_ROOM;
                    if let Err(error) =
                        frames_out.send_in_place(OpCode::Binary, &mut buffer[..HEADER_ROOM + read]).await
                    {
                        return Ending::Error(error);
                    }
                    sent += read as u64;
                    if filled && buffer.len() - HEADER_ROOM < MAX_READ {
                        buffer.resize(HEADER_ROOM + (buffer.len() - HEADER_ROOM) * 2, 0);
                    }
                }
                control = control_rx.recv() => match control {
                    Some(Control::Pong(payload)) => {
                        if let Err(error) = frames_out.send(OpCode::Pong, &payload).await {
                            return Ending::Error(error);
                        }
                    }
                    Some(Control::CloseReply) | None => {
                        let _ = frames_out.send_close().await;
                        return Ending::RemoteClosed;
                    }
                },
                _ = tick(&mut ticker) => {
                    if outstanding.load(Ordering::Relaxed) >= MAX_OUTSTANDING_PINGS {
                        return Ending::PingTimeout;
                    }
                    outstanding.fetch_add(1, Ordering::Relaxed);
                    if let Err(error) = frames_out.send(OpCode::Ping, &[]).await {
                        return Ending::Error(error);
                    }
                }
            }
        }
    };

    let incoming = async {
        loop {
            match frames_in.next_chunk().await {
                Ok(Some(Chunk::Data(payload))) => {
                    let length = payload.len() as u64;
                    if let Err(error) = write_and_flush(&mut local_write, payload).await {
                        return Ending::Error(error);
                    }
                    received.fetch_add(length, Ordering::Relaxed);
                }
                Ok(Some(Chunk::Control(OpCode::Ping, payload))) => {
                    let _ = control_tx.send(Control::Pong(payload.to_vec()));
                }
                Ok(Some(Chunk::Control(OpCode::Pong, _))) => {
                    let _ = outstanding
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                }
                Ok(Some(Chunk::Control(_, _))) | Ok(None) => {
                    let _ = control_tx.send(Control::CloseReply);
                    // The outgoing side sends the Close reply and ends the tunnel.
                    std::future::pending::<()>().await;
                }
                Err(error) => return Ending::Error(error),
            }
        }
    };

    let ending = tokio::select! {
        ending = outgoing => ending,
        ending = incoming => ending,
        reason = cancel => Ending::Cancelled(reason),
    };
    if let Ending::Cancelled(_) = ending {
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, frames_out.send_close_policy()).await;
    }
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, frames_out.shutdown()).await;
    let _ = local_write.shutdown().await;
    (
        ending,
        Totals {
            sent,
            received: received.load(Ordering::Relaxed),
        },
    )
}

async fn write_and_flush<W: AsyncWrite + Unpin>(writer: &mut W, data: &[u8]) -> io::Result<()> {
    writer.write_all(data).await?;
    writer.flush().await
}

/// The local side of a UDP tunnel.
pub enum DatagramEnd {
    /// Server side: a socket connected to the destination.
    Connected(UdpSocket),
    /// Client side: datagrams of one local peer, routed by the listener, answered through the
    /// shared listening socket; `prefix` goes in front of every answer (the SOCKS5 UDP header,
    /// empty for plain UDP).
    Peer {
        inbound: mpsc::Receiver<Vec<u8>>,
        socket: Arc<UdpSocket>,
        peer: SocketAddr,
        prefix: Vec<u8>,
    },
}

impl DatagramEnd {
    async fn recv(&mut self, buffer: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            DatagramEnd::Connected(socket) => socket.recv(buffer).await.map(Some),
            DatagramEnd::Peer { inbound, .. } => Ok(inbound.recv().await.map(|datagram| {
                let length = datagram.len().min(buffer.len());
                buffer[..length].copy_from_slice(&datagram[..length]);
                length
            })),
        }
    }

    async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        match self {
            DatagramEnd::Connected(socket) => socket.send(datagram).await.map(|_| ()),
            DatagramEnd::Peer {
                socket,
                peer,
                prefix,
                ..
            } if prefix.is_empty() => socket.send_to(datagram, *peer).await.map(|_| ()),
            DatagramEnd::Peer {
                socket,
                peer,
                prefix,
                ..
            } => {
                let mut framed = Vec::with_capacity(prefix.len() + datagram.len());
                framed.extend_from_slice(prefix);
                framed.extend_from_slice(datagram);
                socket.send_to(&framed, *peer).await.map(|_| ())
            }
        }
    }
}

/// Bridges datagrams with a WebSocket transport: one datagram per frame in each direction.
/// `idle`: end the tunnel when no datagram came from the local end for that long.
pub async fn bridge_datagrams<TR, TW, C>(
    mut local: DatagramEnd,
    mut frames_in: FrameReader<TR>,
    mut frames_out: FrameWriter<TW>,
    options: PumpOptions,
    idle: Option<Duration>,
    cancel: C,
) -> (Ending, Totals)
where
    TR: AsyncRead + Unpin,
    TW: AsyncWrite + Unpin,
    C: Future<Output = String>,
{
    let mut totals = Totals::default();
    let mut buffer = vec![0u8; HEADER_ROOM + 65536];
    let mut ticker = ping_ticker(options.ping_every);
    let mut outstanding = 0u32;
    tokio::pin!(cancel);
    // Only datagrams from the local end count as activity: pings, pongs and datagrams from
    // the remote end would otherwise keep an abandoned tunnel open for ever.
    let mut last_local = tokio::time::Instant::now();
    let ending = loop {
        let idle_timer = async {
            match idle {
                Some(period) => tokio::time::sleep_until(last_local + period).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = local.recv(&mut buffer[HEADER_ROOM..]) => match received {
                Ok(Some(length)) => {
                    last_local = tokio::time::Instant::now();
                    let frame = &mut buffer[..HEADER_ROOM + length];
                    if let Err(error) = frames_out.send_in_place(OpCode::Binary, frame).await {
                        break Ending::Error(error);
                    }
                    totals.sent += length as u64;
                }
                Ok(None) => break Ending::LocalClosed,
                // A refused datagram (ICMP port unreachable) must not end the tunnel.
                Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(error) => break Ending::Error(error),
            },
            frame = frames_in.next_frame() => match frame {
                Ok(Some((OpCode::Binary | OpCode::Text | OpCode::Continuation, payload))) => {
                    totals.received += payload.len() as u64;
                    match local.send(payload).await {
                        Ok(()) => {}
                        // An ICMP refusal, or a frame too big for one datagram (a peer can
                        // send frames up to 64 MiB): that datagram is lost, not the tunnel.
                        Err(error)
                            if error.kind() == io::ErrorKind::ConnectionRefused
                                || error.raw_os_error() == Some(EMSGSIZE) =>
                        {
                            tracing::debug!("datagram of {} bytes dropped: {error}", payload.len());
                        }
                        Err(error) => break Ending::Error(error),
                    }
                }
                Ok(Some((OpCode::Ping, payload))) => {
                    let payload = payload.to_vec();
                    if let Err(error) = frames_out.send(OpCode::Pong, &payload).await {
                        break Ending::Error(error);
                    }
                }
                Ok(Some((OpCode::Pong, _))) => outstanding = outstanding.saturating_sub(1),
                Ok(Some((OpCode::Close, _))) | Ok(None) => break Ending::RemoteClosed,
                Err(error) => break Ending::Error(error),
            },
            _ = tick(&mut ticker) => {
                if outstanding >= MAX_OUTSTANDING_PINGS {
                    break Ending::PingTimeout;
                }
                outstanding += 1;
                if let Err(error) = frames_out.send(OpCode::Ping, &[]).await {
                    break Ending::Error(error);
                }
            }
            _ = idle_timer => break Ending::Idle,
            reason = &mut cancel => break Ending::Cancelled(reason),
        }
    };
    let goodbye = async {
        match ending {
            Ending::Cancelled(_) => frames_out.send_close_policy().await?,
            _ => frames_out.send_close().await?,
        }
        frames_out.shutdown().await
    };
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, goodbye).await;
    (ending, totals)
}

fn ping_ticker(every: Option<Duration>) -> Option<tokio::time::Interval> {
    every.filter(|period| !period.is_zero()).map(|period| {
        // The first ping goes out one period after the tunnel opens.
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    })
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
