//! The console's own HTTP/1 server: hyper under a bounded accept loop.
//!
//! - At most `max_connections` connections are served. Past them a few
//!   spare connections (one request each, a short header timeout) answer
//!   `/healthz` and `/readyz` and give 503 to anything else, so probes get
//!   their answer while the console is full; past those, a new connection
//!   is closed at once. File descriptors stay bounded whatever clients do.
//! - A client has `header_timeout` to send a request's headers, and a
//!   kept-alive connection that sends no new request within it is closed
//!   (slow headers, idle sockets).
//! - On shutdown it stops accepting, lets requests in flight finish for a
//!   few seconds, and closes what is left (live streams never finish).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::bounds::Bounds;
use super::host::LocalAddr;
use super::reads::busy;

/// Connections served past the cap, for the probes only.
const SPARE: usize = 16;

/// How long a spare connection may take to send its request.
const SPARE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// How long requests in flight may go on after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` within `bounds` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    bounds: Bounds,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let connections = Arc::new(Semaphore::new(bounds.max_connections));
    let spare = Arc::new(Semaphore::new(SPARE));
    let graceful = GracefulShutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            Some(_) = tasks.join_next() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset
                    // before it was accepted: wait a moment, go on.
                    tracing::warn!(error = %e, "the console could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (permit, full) = match connections.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => match spare.clone().try_acquire_owned() {
                Ok(p) => (p, true),
                Err(_) => {
                    tracing::warn!(
                        max = bounds.max_connections,
                        "console connection refused: at its connection limit"
                    );
                    drop(stream);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            if let Some(l) = local {
                request.extensions_mut().insert(LocalAddr(l));
            }
            let app = app.clone();
            async move {
                if full && !matches!(request.uri().path(), "/healthz" | "/readyz") {
                    return Ok::<_, Infallible>(busy(
                        "the console is at its connection limit; try again shortly",
                    ));
                }
                app.oneshot(request).await
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(if full {
                SPARE_HEADER_TIMEOUT
            } else {
                bounds.header_timeout
            })
            .keep_alive(!full);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tasks.spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::info!("console connections still open after the grace period are closed");
        },
    }
    tasks.abort_all();
}
