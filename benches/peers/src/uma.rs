//! UmaDB, through its own Rust client (`umadb-client`) against its own
//! server (`umadb`, `cargo install umadb --version 0.7.8`): the server as a
//! child process on a fresh database directory, and the workloads as
//! `ours.rs` runs them on dcbstore.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use umadb_client::{AsyncUmaDbClient, UmaDbClient};
use umadb_dcb::{DcbAppendCondition, DcbEvent, DcbEventStoreAsync, DcbQuery, DcbQueryItem};

use crate::harness::{percentiles, run, Figures, ServerCpu};

/// A running UmaDB server on a fresh database; stopped (and its files
/// removed) when dropped.
pub struct Server {
    child: Child,
    dir: std::path::PathBuf,
    pub url: String,
    pub cpu: ServerCpu,
}

impl Server {
    /// Starts `bin` (`UMADB_BIN`, else `umadb` on the PATH) on a free port
    /// of 127.0.0.1 and a new directory under `scratch`, and waits until it
    /// answers.
    pub async fn start(bin: &str, scratch: &std::path::Path, name: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
            .port();
        let dir = scratch.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the scratch directory");
        let child = Command::new(bin)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--db-path")
            .arg(dir.join("uma.db"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): cargo install umadb --version 0.7.8, or set UMADB_BIN")
            });
        let pid = child.id().expect("the server's pid");
        let server = Server {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
            cpu: ServerCpu::process(pid),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(c) = UmaDbClient::new(server.url.clone()).connect_async().await {
                if c.head().await.is_ok() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "umadb did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    pub async fn client(&self) -> AsyncUmaDbClient {
        UmaDbClient::new(self.url.clone())
            .connect_async()
            .await
            .expect("a client of the bench's umadb")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn event(kind: &str, tag: String, amount: u64) -> DcbEvent {
    DcbEvent {
        event_type: kind.to_string(),
        tags: vec![tag],
        data: serde_json::to_vec(&serde_json::json!({ "amount": amount })).expect("JSON"),
        uuid: None,
        metadata: Vec::new(),
    }
}

fn tag_query(tag: &str) -> DcbQuery {
    DcbQuery::new().item(DcbQueryItem::new().tags([tag.to_string()]))
}

/// The decide loop: read a boundary (one tag of `boundaries`, taken in
/// turn), append one event under the condition that nothing matching it
/// came after the read. One client connection per task.
pub async fn decide_loop(server: &Server, tasks: usize, secs: f64, boundaries: u64) -> Figures {
    let mut clients = Vec::new();
    for _ in 0..tasks {
        clients.push(Arc::new(server.client().await));
    }
    let clients = Arc::new(clients);
    let next = Arc::new(AtomicU64::new(0));
    run(&server.cpu, tasks, secs, move |t, i| {
        let (clients, next) = (clients.clone(), next.clone());
        async move {
            let client = &clients[t];
            let k = next.fetch_add(1, Ordering::Relaxed) % boundaries;
            let tag = format!("loop:{k}");
            let boundary = tag_query(&tag);
            let mut read = client
                .read(Some(boundary.clone()), None, false, None)
                .await
                .expect("umadb read");
            let (_events, head) = read.collect_with_head().await.expect("umadb read");
            client
                .append(
                    vec![event("Deposited", tag, i % 100)],
                    Some(DcbAppendCondition {
                        fail_if_events_match: boundary,
                        after: head,
                    }),
                    None,
                )
                .await
                .expect("a boundary no other cycle touches never conflicts");
            1
        }
    })
    .await
}

/// Unconditional batches of `size` events from one client; counts events.
pub async fn batches(server: &Server, size: u64, secs: f64) -> Figures {
    let client = Arc::new(server.client().await);
    run(&server.cpu, 1, secs, move |_, i| {
        let client = client.clone();
        async move {
            let batch = (0..size)
                .map(|k| event("Deposited", format!("account:{}", k % 1000), (i + k) % 100))
                .collect();
            client
                .append(batch, None, None)
                .await
                .expect("umadb append");
            size
        }
    })
    .await
}

/// Fills the log with `n` events, event g tagged `account:{g % 1000}` (as
/// the dcb bench's `fill`), in appends of 1,000.
pub async fn fill(server: &Server, n: u64) {
    let client = server.client().await;
    let mut g = 1;
    while g <= n {
        let hi = (g + 999).min(n);
        let batch = (g..=hi)
            .map(|g| event("Deposited", format!("account:{}", g % 1000), g % 100))
            .collect();
        client.append(batch, None, None).await.expect("umadb fill");
        g = hi + 1;
    }
}

/// A decision's read of a tag's first `limit` events with the head, as the
/// dcb bench's L3 reads them on dcbstore (`account:7` to `account:56` in
/// turn), `reads` times: the latency of each.
pub async fn tag_reads(server: &Server, reads: u64, limit: u32) -> Figures {
    let client = server.client().await;
    let before = server.cpu.ticks();
    let start = Instant::now();
    let mut all = Vec::new();
    for r in 0..reads {
        let s = Instant::now();
        let mut read = client
            .read(
                Some(tag_query(&format!("account:{}", 7 + r % 50))),
                None,
                false,
                Some(limit),
            )
            .await
            .expect("umadb read");
        let (events, head) = read.collect_with_head().await.expect("umadb read");
        all.push(s.elapsed());
        assert_eq!(
            events.len(),
            limit as usize,
            "a tag of the filled log holds {limit} events"
        );
        assert!(head.is_some());
    }
    let mut f = percentiles(all, reads, start.elapsed().as_secs_f64());
    f.server_cpu = server.cpu.since(before);
    f
}
