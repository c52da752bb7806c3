//! The listener: connections accepted up to a cap, each served by hyper's HTTP/1 with a time
//! limit on its request heads; over TLS, the handshake within its own time limit. axum's
//! `serve` has neither (a client that trickles its request head, or never finishes a TLS
//! handshake, held its connection and file descriptor for as long as it liked), hence this
//! loop. Request bodies have their own time limit, in the predict route (`server`).

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
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
            match tls {
                None => serve_connection(stream, app, limits.header_read).await,
                Some(acceptor) => {
                    // A handshake that fails or takes too long ends the connection, nothing else.
                    if let Ok(Ok(stream)) = tokio::time::timeout(limits.tls_handshake, acceptor.accept(stream)).await {
                        serve_connection(stream, app, limits.header_read).await;
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

/// Serves HTTP/1 requests on `io` until the client or the server closes it.
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S, app: Router, header_read: Duration) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read);
    // Errors here are the connection's (reset, a head too slow or malformed): hyper has already
    // answered what could be answered.
    let _ = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app)).await;
}
