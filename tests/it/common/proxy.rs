//! A TCP proxy between a client and PostgreSQL that can stop answering or
//! lose replies, for fault tests.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Pass everything through.
    Forward = 0,
    /// Hold every byte in both directions (a server that stops answering).
    Blackhole = 1,
    /// Pass requests to the server, but close the client's connection when
    /// the server answers (the reply is lost).
    LoseReplies = 2,
    /// Like `LoseReplies` for the next reply only, then `Forward`.
    LoseNextReply = 3,
}

/// The proxy; stops accepting when dropped.
pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Listens on a free 127.0.0.1 port, forwarding to `upstream_port`.
    pub async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(Mode::Forward as u8));
        let m = mode.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, m.clone(), false));
                tokio::spawn(pump(sr, cw, m.clone(), true));
            }
        });
        Proxy { port, mode, task }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<AtomicU8>,
    to_client: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while mode.load(Ordering::SeqCst) == Mode::Blackhole as u8 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            let m = mode.load(Ordering::SeqCst);
            if m == Mode::Blackhole as u8 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            if to_client
                && (m == Mode::LoseReplies as u8
                    || (m == Mode::LoseNextReply as u8
                        && mode
                            .compare_exchange(
                                m,
                                Mode::Forward as u8,
                                Ordering::SeqCst,
                                Ordering::SeqCst,
                            )
                            .is_ok()))
            {
                // Drop the reply and hang up on the client.
                let _ = to.shutdown().await;
                return;
            }
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
