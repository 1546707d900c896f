//! `--connection-min-idle N`: connections to the server kept ready, TCP and TLS handshakes
//! done, so that a new tunnel only sends its upgrade request.
//!
//! The upgrade request names the tunnel's destination, so a connection can be prepared but
//! not upgraded in advance, and it serves one tunnel only (as upstream). A connection that
//! waited [`MAX_IDLE`] is closed and replaced, well before a server gives up waiting for its
//! request (30 seconds on ours and upstream's).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::client::Transport;
use super::coalesce::Coalescing;
use super::http;
use super::spec::ServerUrl;
use crate::tls::client::ClientTls;

/// How long a prepared connection may wait for a tunnel before it is replaced.
pub const MAX_IDLE: Duration = Duration::from_secs(20);

/// How often idle connections are checked for age and for having been closed by the server.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// The server could not be reached at all (name, route or TCP connection): the one failure
/// that `--connection-retry-max-backoff` retries.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the server {0}")]
pub struct Unreachable(String);

/// Opens a transport to the server: TCP, then TLS for wss://.
#[derive(Clone)]
pub struct Dialer {
    pub url: ServerUrl,
    /// `Some` for wss://.
    pub tls: Option<(Arc<ClientTls>, ServerName<'static>)>,
}

impl Dialer {
    /// # Errors
    /// When the server cannot be reached or the TLS handshake fails (the message carries the
    /// server's alert and a hint).
    pub async fn dial(&self) -> anyhow::Result<Box<dyn Transport>> {
        let (server_host, server_port) = self.url.connect_target();
        let tcp = TcpStream::connect((server_host.as_str(), server_port))
            .await
            .map_err(|error| Unreachable(format!("{server_host}:{server_port}: {error}")))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((tls, server_name)) => {
                let mut stream = tokio_rustls::TlsConnector::from(tls.current())
                    .connect(server_name.clone(), Coalescing::new(tcp))
                    .await
                    .map_err(|error| {
                        anyhow::anyhow!("TLS handshake failed: {}", http::describe_io(error))
                    })?;
                // The Finished record stays held and leaves with the upgrade request.
                stream.get_mut().0.release();
                Ok(Box::new(stream))
            }
            None => Ok(Box::new(tcp)),
        }
    }
}

/// Prepared connections, shared by every thread of the client.
pub struct Pool {
    dialer: Dialer,
    /// `--connection-min-idle`: how many prepared connections to keep.
    size: usize,
    state: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    idle: Mutex<VecDeque<Prepared>>,
    /// Connections being prepared, counted so that refills do not overshoot `size`.
    dialing: AtomicUsize,
}

struct Prepared {
    since: Instant,
    transport: Box<dyn Transport>,
}

impl Pool {
    /// A pool of `size` connections; empty until [`Pool::start`] or the first tunnel.
    pub fn new(dialer: Dialer, size: usize) -> Pool {
        Pool {
            dialer,
            size,
            state: Arc::new(Shared::default()),
        }
    }

    /// Fills the pool and keeps it fresh: connections older than [`MAX_IDLE`] or closed by
    /// the server are dropped and replaced. Runs until the client stops.
    pub async fn maintain(self: Arc<Self>) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            sweep.tick().await;
            let mut stale = Vec::new();
            {
                let mut idle = self.state.lock();
                for mut prepared in std::mem::take(&mut *idle) {
                    match prepared.is_fresh() {
                        true => idle.push_back(prepared),
                        false => stale.push(prepared),
                    }
                }
            }
            for prepared in stale {
                tokio::spawn(prepared.close());
            }
            self.refill();
        }
    }

    /// A prepared connection, or `None` when none is ready (the caller dials its own).
    /// Starts preparing a replacement either way.
    pub fn take(&self) -> Option<Box<dyn Transport>> {
        let taken = loop {
            let Some(mut prepared) = self.state.lock().pop_front() else {
                break None;
            };
            if prepared.is_fresh() {
                break Some(prepared.transport);
            }
            tokio::spawn(prepared.close());
        };
        self.refill();
        taken
    }

    /// Starts dialing until ready and dialing connections add up to the pool's size. A failed
    /// dial is logged at debug level only: the tunnel that needs the server reports the error.
    fn refill(&self) {
        let ready = self.state.lock().len();
        let dialing = self.state.dialing.load(Ordering::Relaxed);
        for _ in (ready + dialing)..self.size {
            self.state.dialing.fetch_add(1, Ordering::Relaxed);
            let (dialer, state) = (self.dialer.clone(), Arc::clone(&self.state));
            tokio::spawn(async move {
                let dialed = match dialer.dial().await {
                    // Finish the handshake now: the server does not wait for it forever.
                    Ok(mut transport) => transport
                        .flush()
                        .await
                        .map(|()| transport)
                        .map_err(|error| anyhow::anyhow!("TLS handshake failed: {error}")),
                    Err(error) => Err(error),
                };
                state.dialing.fetch_sub(1, Ordering::Relaxed);
                match dialed {
                    Ok(transport) => state.lock().push_back(Prepared {
                        since: Instant::now(),
                        transport,
                    }),
                    Err(error) => {
                        tracing::debug!("cannot prepare a connection to the server: {error:#}")
                    }
                }
            });
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Prepared>> {
        // A panic while the lock was held cannot leave the queue inconsistent: every
        // operation on it is a single push, pop or swap.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Prepared {
    /// Younger than [`MAX_IDLE`] and still open: the server has neither closed it nor sent
    /// anything (TLS session tickets are consumed by the TLS layer and do not count).
    fn is_fresh(&mut self) -> bool {
        if self.since.elapsed() >= MAX_IDLE {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut buffer = ReadBuf::new(&mut probe);
        let mut context = Context::from_waker(Waker::noop());
        matches!(
            Pin::new(&mut self.transport).poll_read(&mut context, &mut buffer),
            Poll::Pending
        )
    }

    /// Ends the connection politely (TLS close_notify, then FIN), so that the server sees a
    /// client that left rather than an error.
    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.transport.shutdown()).await;
    }
}
