//! The listener: connections accepted up to a cap, each served by hyper's HTTP/1 with a time
//! limit on its request heads and on answers the client does not take; over TLS, the handshake
//! within its own time limit. axum's `serve` has none of these (a client that trickles its
//! request head, never finishes a TLS handshake, or stops reading its answers held its
//! connection and file descriptor for as long as it liked), hence this loop. Request bodies
//! have their own time limit, in the predict route (`server`).

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What one connection may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// From the start of waiting for a request head (a new connection's first, or the next
    /// on a kept-alive connection) to its last header line.
    pub header_read: Duration,
    /// From accepting the connection to the end of the TLS handshake.
    pub tls_handshake: Duration,
    /// Longest time an answer may wait for the client to take any of it (a client that stops
    /// reading: hyper then reads no further request head, so the header timeout never starts).
    pub write_stall: Duration,
    /// Connections open at once; beyond, new ones wait in the kernel's backlog.
    pub max_connections: usize,
}

/// Accepts connections on `listener` until the process ends, serving `app` on each (through
/// `tls` when given).
pub(crate) async fn run(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, app: Router, limits: ConnectionLimits) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A slot first: at the cap, connections wait in the backlog rather than take descriptors.
        let Ok(slot) = slots.clone().acquire_owned().await else { return Ok(()) };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) if is_per_connection(&e) => continue,
            Err(_) => {
                // Out of descriptors or memory: the process's problem, not this client's; try
                // again shortly rather than spin or stop serving.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (app, tls) = (app.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let stream = Watched { io: stream, stalled: Arc::new(Stall::default()) };
            let stall = stream.stalled.clone();
            match tls {
                None => serve_connection(stream, app, limits, stall).await,
                Some(acceptor) => {
                    // A handshake that fails or takes too long ends the connection, nothing else.
                    if let Ok(Ok(stream)) = tokio::time::timeout(limits.tls_handshake, acceptor.accept(stream)).await {
                        serve_connection(stream, app, limits, stall).await;
                    }
                }
            }
        });
    }
}

/// Errors of one accepted connection (it went away before we took it), not of the listener.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// Serves HTTP/1 requests on `io` until the client or the server closes it, or until an answer
/// has waited `limits.write_stall` for the client to take any of it (`stall` tells).
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S, app: Router, limits: ConnectionLimits, stall: Arc<Stall>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    let connection = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    tokio::pin!(connection);
    let mut tick = tokio::time::interval((limits.write_stall / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    loop {
        tokio::select! {
            // Errors here are the connection's (reset, a head too slow or malformed): hyper has
            // already answered what could be answered.
            _ = &mut connection => return,
            _ = tick.tick() => {
                if stall.longer_than(limits.write_stall) {
                    // Dropped: the socket is closed, the request's work stops with it.
                    return;
                }
            }
        }
    }
}

/// Since when a connection's writes have waited for the client (0: not waiting), in
/// milliseconds from `origin`.
struct Stall {
    origin: std::time::Instant,
    since_ms: AtomicU64,
}

impl Default for Stall {
    fn default() -> Self {
        Stall { origin: std::time::Instant::now(), since_ms: AtomicU64::new(0) }
    }
}

impl Stall {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }
    /// A write could not go out: the wait starts now, unless it already runs.
    fn waiting(&self) {
        let _ = self.since_ms.compare_exchange(0, self.now_ms(), Ordering::Relaxed, Ordering::Relaxed);
    }
    /// Bytes went out (or nothing is left to write).
    fn moved(&self) {
        self.since_ms.store(0, Ordering::Relaxed);
    }
    fn longer_than(&self, limit: Duration) -> bool {
        let since = self.since_ms.load(Ordering::Relaxed);
        since != 0 && self.now_ms().saturating_sub(since) > limit.as_millis() as u64
    }
}

/// A socket whose writes are watched: [`Stall`] knows whether, and since when, the client has
/// taken nothing of what the server writes.
struct Watched<S> {
    io: S,
    stalled: Arc<Stall>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> Watched<S> {
    /// Notes what a write's outcome says of the client.
    fn note<T>(&self, r: &Poll<std::io::Result<T>>, progressed: impl Fn(&T) -> bool) {
        match r {
            Poll::Pending => self.stalled.waiting(),
            Poll::Ready(Ok(v)) if progressed(v) => self.stalled.moved(),
            Poll::Ready(_) => {}
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(&r, |n| *n > 0);
        r
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(&r, |n| *n > 0);
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.note(&r, |_| true);
        r
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
