//! `dcbstore read --follow` as a user runs it: the history then live lines,
//! flushed one by one; exit 0 on SIGINT, SIGTERM and a closed stdout; and
//! memory that stays bounded while its reader stalls.

use crate::common::cli as runner;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::ev;
use dcbstore::{Event, EventStore, Store};
use dcbstore_testing::TestDatabase;
use runner::bin;
use serde_json::{json, Value};

async fn migrated() -> (TestDatabase, Store) {
    let db = TestDatabase::create().await.unwrap();
    db.migrate().await.unwrap();
    let store = Store::connect(db.url()).await.unwrap();
    (db, store)
}

/// `dcbstore --database-url URL read --follow ARGS...`, stdout piped.
fn follow(url: &str, args: &[&str]) -> Child {
    Command::new(bin())
        .env_remove("DATABASE_URL")
        .args(["--database-url", url, "read", "--follow"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dcbstore")
}

/// stdout's lines, parsed, as they come (read on a thread).
fn lines(stdout: ChildStdout) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let v: Value = serde_json::from_str(&line).expect("a JSON line");
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next `n` positions printed, failing after 20 s.
fn take(rx: &mpsc::Receiver<Value>, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(20))
                .expect("a line within 20 s")["position"]
                .as_u64()
                .expect("a position")
        })
        .collect()
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{name}");
}

/// Waits for the exit (at most 20 s): its code and stderr.
fn finish(mut child: Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            return (status.code().expect("exited, not killed"), stderr);
        }
        assert!(
            Instant::now() < deadline,
            "dcbstore did not exit within 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn put(store: &Store, events: Vec<Event>) {
    let _ = store.append(events, None).await.unwrap();
}

#[tokio::test]
async fn follow_prints_the_history_then_each_new_event_and_exits_0_on_sigint() {
    let (db, store) = migrated().await;
    put(
        &store,
        vec![ev("A", &["t"]), ev("B", &["u"]), ev("A", &["t"])],
    )
    .await;
    let mut child = follow(db.url(), &["--tag", "t"]);
    let rx = lines(child.stdout.take().unwrap());
    assert_eq!(take(&rx, 2), vec![1, 3], "the history first");
    for _ in 0..3 {
        put(&store, vec![ev("C", &["u"]), ev("D", &["t"])]).await;
    }
    // Each line is flushed as it is printed: they arrive while it runs.
    assert_eq!(take(&rx, 3), vec![5, 7, 9]);
    signal(&child, "INT");
    let (code, stderr) = finish(child);
    assert_eq!((code, stderr.as_str()), (0, ""), "SIGINT ends it cleanly");
}

#[tokio::test]
async fn sigterm_ends_follow_with_exit_0() {
    let (db, store) = migrated().await;
    put(&store, vec![ev("A", &["t"])]).await;
    let mut child = follow(db.url(), &[]);
    let rx = lines(child.stdout.take().unwrap());
    assert_eq!(take(&rx, 1), vec![1]);
    signal(&child, "TERM");
    let (code, stderr) = finish(child);
    assert_eq!((code, stderr.as_str()), (0, ""));
}

#[tokio::test]
async fn a_closed_stdout_ends_follow_quietly() {
    let (db, store) = migrated().await;
    put(&store, vec![ev("A", &["t"])]).await;
    let mut child = follow(db.url(), &[]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.contains("\"position\":1"), "{first}");
    // The reader goes away (`| head -1`); the next line finds the pipe closed.
    drop(out);
    put(&store, vec![ev("B", &["t"])]).await;
    let (code, stderr) = finish(child);
    assert_eq!(code, 0, "a broken pipe is not an error: {stderr}");
    assert_eq!(stderr, "", "and says nothing");
}

#[tokio::test]
async fn follow_ends_at_to_or_limit_and_waits_past_the_head() {
    let (db, store) = migrated().await;
    put(&store, vec![ev("A", &["t"])]).await;
    // --after beyond the head is valid: it waits for the log to get there.
    let mut to = follow(db.url(), &["--after", "2", "--to", "4"]);
    let mut limited = follow(db.url(), &["--limit", "3"]);
    let to_rx = lines(to.stdout.take().unwrap());
    let limited_rx = lines(limited.stdout.take().unwrap());
    assert_eq!(take(&limited_rx, 1), vec![1]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(to.try_wait().unwrap().is_none(), "waits for position 3");
    assert!(limited.try_wait().unwrap().is_none(), "waits for 2 more");
    put(
        &store,
        vec![
            ev("B", &["t"]),
            ev("C", &["t"]),
            ev("D", &["t"]),
            ev("E", &["t"]),
            ev("F", &["t"]),
        ],
    )
    .await;
    assert_eq!(take(&to_rx, 2), vec![3, 4]);
    assert_eq!(take(&limited_rx, 2), vec![2, 3]);
    for child in [to, limited] {
        let (code, stderr) = finish(child);
        assert_eq!(
            (code, stderr.as_str()),
            (0, ""),
            "ends by itself at its end"
        );
    }
    assert!(
        to_rx.try_recv().is_err() && limited_rx.try_recv().is_err(),
        "nothing past the end"
    );
}

#[test]
fn follow_refuses_backwards() {
    let out = Command::new(bin())
        .env_remove("DATABASE_URL")
        .args([
            "--database-url",
            "postgres://nobody@127.0.0.1:1/x",
            "read",
            "--follow",
            "--backwards",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--backwards"), "{stderr}");
}

/// The resident set high-water mark of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_follower_keeps_its_memory_bounded_then_catches_up() {
    const EVENTS: usize = 100_000;
    let (db, store) = migrated().await;
    put(&store, vec![ev("A", &["t"])]).await;
    let mut child = follow(db.url(), &[]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let before = peak_rss_kib(child.id());
    // The reader stalls (stdout is not read) while 100,000 events of about
    // 1 KiB each, some 110 MB of lines, are appended.
    let pad = "x".repeat(1000);
    for chunk in 0..EVENTS / 1000 {
        let events = (0..1000)
            .map(|i| Event::new("Big", json!({"i": chunk * 1000 + i, "pad": pad})).with_tag("t"))
            .collect();
        put(&store, events).await;
    }
    // Time to read ahead, if it would.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = peak_rss_kib(child.id());
    eprintln!("peak RSS: {before} KiB before, {stalled} KiB stalled");
    assert!(
        stalled < before + 48 * 1024,
        "memory stays bounded while the reader stalls: peak {stalled} KiB, {before} KiB before"
    );
    // Then it catches up: every event, in order, once.
    let mut last = 1u64;
    let mut count = 0usize;
    let mut line = String::new();
    while count < EVENTS {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "stdout open");
        let v: Value = serde_json::from_str(&line).unwrap();
        let p = v["position"].as_u64().unwrap();
        assert!(
            p == last + 1,
            "position {p} after {last}: none skipped or repeated"
        );
        last = p;
        count += 1;
    }
    let after = peak_rss_kib(child.id());
    assert!(
        after < before + 48 * 1024,
        "and while it catches up: {after} KiB"
    );
    signal(&child, "TERM");
    drop(out);
    let (code, stderr) = finish(child);
    assert_eq!((code, stderr.as_str()), (0, ""));
}
