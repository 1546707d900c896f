//! One single-threaded runtime per CPU, each with its own listening socket on a shared port.
//!
//! A tunnel then lives on one thread from accept to close. On a multi-threaded runtime the
//! worker threads wake each other for every new connection; profiling short tunnels showed
//! those wake-ups (futex calls, context switches) costing more CPU than the tunnel's own work.
//! The kernel spreads connections over the listeners (`SO_REUSEPORT`). Another process of the
//! same user could join the port the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;

use anyhow::Context;
use tokio::net::TcpListener;

/// `--nb-worker-threads`, when given.
static CHOSEN: OnceLock<usize> = OnceLock::new();

/// Sets the thread count (`--nb-worker-threads`); the first call wins.
pub fn set_count(threads: usize) {
    let _ = CHOSEN.set(threads);
}

/// Threads to use: `--nb-worker-threads`, else `TOKIO_WORKER_THREADS` (as upstream honours
/// it), else one per CPU.
pub fn count() -> usize {
    if let Some(threads) = CHOSEN.get() {
        return *threads;
    }
    let from_environment = std::env::var("TOKIO_WORKER_THREADS").ok().and_then(|value| {
        let parsed = value.trim().parse::<usize>().ok().filter(|threads| *threads > 0);
        if parsed.is_none() {
            tracing::warn!(
                "TOKIO_WORKER_THREADS=`{}` is not a positive number: one thread per CPU is used",
                value.escape_debug()
            );
        }
        parsed
    });
    from_environment
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|threads| threads.get())
        })
        .unwrap_or(1)
}

/// Binds the first listener of `address` with `SO_REUSEPORT`, after checking that nobody
/// listens there yet: without the check a second server (or client) started on the same port
/// by the same user would silently share the connections instead of failing.
///
/// # Errors
/// When the address is in use or cannot be bound (no such local address, no permission).
pub fn bind_first(address: SocketAddr) -> anyhow::Result<TcpListener> {
    let probe = std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen on {address}"))?;
    let address = probe.local_addr().unwrap_or(address);
    drop(probe);
    bind_shared(address)
}

/// Binds `address` with `SO_REUSEPORT`, so that every thread can have its own listener.
///
/// # Errors
/// When the address cannot be bound.
pub fn bind_shared(address: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .context("cannot create a TCP socket")?;
    socket.set_reuseaddr(true).context("SO_REUSEADDR")?;
    socket.set_reuseport(true).context("SO_REUSEPORT")?;
    socket
        .bind(address)
        .with_context(|| format!("cannot listen on {address}"))?;
    socket
        .listen(1024)
        .with_context(|| format!("cannot listen on {address}"))
}

/// Runs `serve(listener)` on `extra` more threads, each with its own runtime and its own
/// listener on `address`. Failures are logged: the first listener, bound by the caller, keeps
/// serving.
pub fn spawn_extra<F, Fut>(name: &str, extra: usize, address: SocketAddr, serve: F)
where
    F: Fn(TcpListener) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()>,
{
    for index in 1..=extra {
        let serve = serve.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => return tracing::error!("cannot start thread {index}: {error}"),
                };
                runtime.block_on(async move {
                    match bind_shared(address) {
                        Ok(listener) => serve(listener).await,
                        Err(error) => tracing::error!("thread {index}: {error:#}"),
                    }
                })
            });
        if let Err(error) = spawned {
            tracing::error!("cannot start thread {index}: {error}");
        }
    }
}
