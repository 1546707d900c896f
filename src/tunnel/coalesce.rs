//! Fewer, fuller packets while a TLS connection is set up.
//!
//! During a TLS 1.3 handshake each side writes a few small records that nothing waits for
//! right away: the client's Finished, and the server's session ticket. Sent on their own, each
//! costs a packet and a wake-up of the other side, which then finds nothing it can act on.
//! [`Coalescing`] holds writes back during the handshake until the connection has to wait for
//! the peer (a read that finds nothing); after it, until the next write, which then goes out
//! with them in one system call: the client's Finished leaves with the upgrade request, the
//! server's ticket with the answer to it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream whose writes are held: until a read would wait, or after
/// [`Coalescing::release`] until the next write or flush. What is still held when it is
/// dropped (the alert of a failed handshake) is sent if the socket takes it at once.
pub struct Coalescing {
    inner: TcpStream,
    held: Vec<u8>,
    /// Handshake phase: writes and flushes only add to `held`, and a read that would wait
    /// sends it. Afterwards writes and flushes send it, and reads leave it alone (nothing the
    /// peer waits for is held then).
    holding: bool,
}

impl Coalescing {
    /// Starts holding writes.
    pub fn new(inner: TcpStream) -> Coalescing {
        Coalescing {
            inner,
            held: Vec::new(),
            holding: true,
        }
    }

    /// Ends the handshake phase: what is held goes out with the next write or flush, and
    /// writes go straight through once nothing is held.
    pub fn release(&mut self) {
        self.holding = false;
    }

    fn poll_send_held(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(context, &self.held))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..written);
        }
        // Give the memory back: an open tunnel would otherwise keep a handshake's worth.
        self.held = Vec::new();
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Coalescing {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(read) = Pin::new(&mut this.inner).poll_read(context, buffer) {
            return Poll::Ready(read);
        }
        if !this.holding {
            return Poll::Pending;
        }
        // About to wait for the peer, which may be waiting for what is held: send it. The
        // read above registered this task for the answer.
        match this.poll_send_held(context) {
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            _ => Poll::Pending,
        }
    }
}

impl AsyncWrite for Coalescing {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.holding || !this.held.is_empty() {
            this.held.extend_from_slice(buffer);
            if !this.holding {
                // Accepted either way; what a full socket keeps back goes with the next flush.
                if let Poll::Ready(Err(error)) = this.poll_send_held(context) {
                    return Poll::Ready(Err(error));
                }
            }
            return Poll::Ready(Ok(buffer.len()));
        }
        Pin::new(&mut this.inner).poll_write(context, buffer)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.holding || !this.held.is_empty() {
            let mut accepted = 0;
            for buffer in buffers {
                this.held.extend_from_slice(buffer);
                accepted += buffer.len();
            }
            if !this.holding
                && let Poll::Ready(Err(error)) = this.poll_send_held(context)
            {
                return Poll::Ready(Err(error));
            }
            return Poll::Ready(Ok(accepted));
        }
        Pin::new(&mut this.inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.holding {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_send_held(context))?;
        Pin::new(&mut this.inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(context))?;
        Pin::new(&mut this.inner).poll_shutdown(context)
    }
}

impl Drop for Coalescing {
    fn drop(&mut self) {
        if !self.held.is_empty() {
            let _ = self.inner.try_write(&self.held);
        }
    }
}
