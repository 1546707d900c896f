//! `--connection-min-idle N`: connections to the server kept ready, TCP and TLS handshakes
//! done, so that a new tunnel only sends its upgrade request.
//!
//! The upgrade request names the tunnel's destination, so a connection can be prepared but
//! not upgraded in advance, and it serves one tunnel only (as upstream). A connection that
//! waited [`MAX_IDLE`] is closed and replaced, well before a server gives up waiting for its
//! request (two minutes on ours; upstream's TLS server waits without limit).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
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

/// Most connections `--connection-min-idle` may ask for (upstream's pool holds at most 1000).
pub const MAX_SIZE: u16 = 1000;

/// After a failed dial the pool waits this long before dialing again, doubling with each
/// further failure up to [`MAX_PAUSE`]; a success resets it. Without it a server that refuses
/// the client (a revoked certificate) would get `size` handshakes every sweep, forever.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Prepared connections, shared by every thread of the client.
pub struct Pool {
    dialer: Dialer,
    /// `--connection-min-idle`: how many prepared connections to keep.
    size: usize,
    /// `--connect-timeout`, for each preparation.
    connect_timeout: Duration,
    state: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    idle: Mutex<VecDeque<Prepared>>,
    /// Connections being prepared, counted so that refills do not overshoot `size`.
    dialing: AtomicUsize,
    failures: Mutex<Failures>,
}

/// Failed preparations in a row, and when to try again.
#[derive(Default)]
struct Failures {
    count: u32,
    retry_at: Option<Instant>,
}

struct Prepared {
    since: Instant,
    transport: Box<dyn Transport>,
}

/// What [`Prepared::state`] found.
enum Freshness {
    Fresh,
    /// Unused for [`MAX_IDLE`]: closed and replaced, nothing wrong.
    Expired,
    /// Closed or refused by the server: counts as a failed preparation.
    Closed(String),
}

impl Pool {
    /// A pool of `size` connections, each prepared within `connect_timeout`; empty until
    /// [`Pool::maintain`] runs.
    pub fn new(dialer: Dialer, size: usize, connect_timeout: Duration) -> Pool {
        Pool {
            dialer,
            size,
            connect_timeout,
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
                    match prepared.state() {
                        Freshness::Fresh => idle.push_back(prepared),
                        Freshness::Expired => stale.push(prepared),
                        Freshness::Closed(reason) => {
                            self.state.record_failure(&anyhow::anyhow!(reason));
                            stale.push(prepared);
                        }
                    }
                }
            }
            for prepared in stale {
                tokio::spawn(prepared.close());
            }
            self.refill();
        }
    }

    /// A prepared connection, or `None` when none is ready (the caller dials its own). The
    /// caller calls [`Pool::tunnel_accepted`] once its tunnel is up: by then the server's session
    /// ticket has arrived and the replacement can resume the TLS session.
    pub fn take(&self) -> Option<Box<dyn Transport>> {
        loop {
            let mut prepared = self.state.lock().pop_front()?;
            match prepared.state() {
                Freshness::Fresh => return Some(prepared.transport),
                Freshness::Expired => {}
                Freshness::Closed(reason) => self.state.record_failure(&anyhow::anyhow!(reason)),
            }
            tokio::spawn(prepared.close());
        }
    }

    /// A tunnel was accepted: the server takes this client, so failures are over; prepares
    /// the replacement of the connection the tunnel used.
    pub fn tunnel_accepted(&self) {
        self.state.record_success();
        self.refill();
    }

    /// Starts dialing until ready and dialing connections add up to the pool's size, unless
    /// the last preparations failed and their pause is not over. The first failure of a run is
    /// logged as a warning, the next ones at debug level.
    fn refill(&self) {
        let waiting = self
            .state
            .failures()
            .retry_at
            .is_some_and(|retry_at| Instant::now() < retry_at);
        if waiting {
            return;
        }
        let ready = self.state.lock().len();
        let dialing = self.state.dialing.load(Ordering::Relaxed);
        for _ in (ready + dialing)..self.size {
            self.state.dialing.fetch_add(1, Ordering::Relaxed);
            let (dialer, state) = (self.dialer.clone(), Arc::clone(&self.state));
            let connect_timeout = self.connect_timeout;
            tokio::spawn(async move {
                let preparing = async {
                    let mut transport = dialer.dial().await?;
                    // Finish the handshake now: the server does not wait for it forever.
                    transport
                        .flush()
                        .await
                        .map_err(|error| anyhow::anyhow!("TLS handshake failed: {error}"))?;
                    Ok::<_, anyhow::Error>(transport)
                };
                let prepared = tokio::time::timeout(connect_timeout, preparing)
                    .await
                    .unwrap_or_else(|_| {
                        Err(anyhow::anyhow!(
                            "not connected within {} s",
                            connect_timeout.as_secs()
                        ))
                    });
                state.dialing.fetch_sub(1, Ordering::Relaxed);
                match prepared {
                    // Success is recorded when a tunnel is accepted on a connection (see
                    // `Pool::tunnel_accepted`): with TLS 1.3 a refused certificate only shows after the
                    // handshake, and would otherwise reset the pause every round.
                    Ok(transport) => state.lock().push_back(Prepared {
                        since: Instant::now(),
                        transport,
                    }),
                    Err(error) => state.record_failure(&error),
                }
            });
        }
    }
}

impl Shared {
    fn failures(&self) -> MutexGuard<'_, Failures> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record_success(&self) {
        *self.failures() = Failures::default();
    }

    fn record_failure(&self, error: &anyhow::Error) {
        let mut failures = self.failures();
        failures.count += 1;
        let pause = FIRST_PAUSE
            .saturating_mul(1 << (failures.count - 1).min(6))
            .min(MAX_PAUSE);
        failures.retry_at = Some(Instant::now() + pause);
        if failures.count == 1 {
            tracing::warn!(
                "--connection-min-idle: cannot prepare a connection to the server: {error:#}; \
                 trying again in {} s, then less often",
                pause.as_secs()
            );
        } else {
            tracing::debug!("cannot prepare a connection to the server: {error:#}");
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Prepared>> {
        // A panic while the lock was held cannot leave the queue inconsistent: every
        // operation on it is a single push, pop or swap.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Prepared {
    /// Whether the connection can still carry a tunnel: younger than [`MAX_IDLE`], and the
    /// server has neither closed it nor sent anything (TLS session tickets are consumed by
    /// the TLS layer and do not count).
    fn state(&mut self) -> Freshness {
        if self.since.elapsed() >= MAX_IDLE {
            return Freshness::Expired;
        }
        let mut probe = [0u8; 1];
        match super::read_now(&mut self.transport, &mut probe) {
            Poll::Pending => Freshness::Fresh,
            Poll::Ready(Ok(0)) => {
                Freshness::Closed("the server closed a prepared connection".to_string())
            }
            Poll::Ready(Ok(_)) => {
                Freshness::Closed("the server sent data before any request".to_string())
            }
            // With TLS 1.3 a refused client certificate shows up here, after the handshake.
            Poll::Ready(Err(error)) => Freshness::Closed(http::describe_io(error)),
        }
    }

    /// Ends the connection politely (TLS close_notify, then FIN), so that the server sees a
    /// client that left rather than an error.
    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.transport.shutdown()).await;
    }
}
