//! Console benchmark C1 of BENCHMARKS.md: the server time of every page on
//! the 10,000,000-event benchmark log (B4's log: 1,000 account tags),
//! through the router in process (no network), each against a baseline
//! measured in the same run on the same server: the raw SQL round trip of
//! the page's main query.
//!
//! `cargo bench --bench console`; uses `DATABASE_URL` when set, else the
//! persistent cluster of `cargo bench --bench dcb` (target/dcbstore-bench-pg),
//! whose 10M-event log it reuses (or fills, server-side, once).

#[allow(dead_code)]
#[path = "dcb/setup.rs"]
mod setup;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use dcbstore::connection::{connect, parse_config};
use dcbstore::Store;
use dcbstore_console::{refresh, Console, ConsoleOptions};
use tower::ServiceExt;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// p50 and p99 of `samples`, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99))
}

/// The session cookie the console's printed URL (its generated token)
/// gives, as a browser would get it.
async fn session(router: &axum::Router, token: &str) -> String {
    let request = Request::get(format!("/?token={token}"))
        .header("host", "127.0.0.1:7433")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// The server time of `GET path`, `n` times after 3 warm-ups; checks 200.
async fn page(router: &axum::Router, cookie: &str, path: &str, n: usize) -> (f64, f64, usize) {
    let mut samples = Vec::with_capacity(n);
    let mut bytes = 0;
    for i in 0..n + 3 {
        let request = Request::get(path)
            .header("accept", "text/html")
            .header("host", "127.0.0.1:7433")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap();
        let started = Instant::now();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        bytes = body.len();
        if i >= 3 {
            samples.push(took);
        }
    }
    let (p50, p99) = percentiles(samples);
    (p50, p99, bytes)
}

/// The round trip of one SQL statement, `n` times after 3 warm-ups.
async fn sql(
    client: &tokio_postgres::Client,
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    n: usize,
) -> (f64, f64) {
    let prepared = client.prepare(statement).await.unwrap();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 3 {
        let started = Instant::now();
        let rows = client.query(&prepared, params).await.unwrap();
        let took = started.elapsed();
        assert!(!rows.is_empty(), "{statement}");
        if i >= 3 {
            samples.push(took);
        }
    }
    percentiles(samples)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = env("BENCH_PAGE_SAMPLES", 50);
    let big: i64 = env("BENCH_BIG_LOG", 10_000_000);
    let (_cluster, admin) = setup::server().await;
    let url = setup::database(&admin, &format!("bench_{big}"), false).await;
    let generated = setup::fill(&url, big).await;
    eprintln!("log of {big} events (filled in {generated:.0} s; 0: reused)");
    let store = Store::builder(&url).unwrap().build().await.unwrap();
    let client = connect(&parse_config(&url).unwrap()).await.unwrap();
    // A few consumers and dead letters, as a running system has.
    client
        .batch_execute(
            "INSERT INTO dcbstore.projections (name, checkpoint) VALUES
               ('balances', 9999000), ('statements', 5000000), ('relay:nats', 10000000)
             ON CONFLICT DO NOTHING;
             INSERT INTO dcbstore.dead_letters
             SELECT 'mailer', g, 3, 'smtp said 550', now(), now() FROM generate_series(1, 50) g
             ON CONFLICT DO NOTHING;",
        )
        .await
        .unwrap();

    // The statistics: the first refresh folds the whole log in; afterwards
    // each refresh folds only what is new.
    let started = Instant::now();
    let cursor = refresh(&store).await.unwrap();
    let first_refresh = started.elapsed().as_secs_f64();
    let started = Instant::now();
    refresh(&store).await.unwrap();
    let idle_refresh = started.elapsed().as_secs_f64() * 1000.0;
    eprintln!("statistics: cursor {cursor}, first refresh {first_refresh:.1} s, then {idle_refresh:.2} ms");

    let schema = dcbstore::schema::SchemaFile::load(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/school.schema.json"),
    )
    .unwrap();
    let console = Console::new(store.clone(), ConsoleOptions::new().schema(schema)).unwrap();
    let router = console.router();
    let cookie = session(&router, console.generated_token().unwrap()).await;

    let middle = big / 2;
    let deep = format!("/events?tag=account:500&before={middle}");
    let event = format!("/events/{middle}");
    let pages: Vec<(&str, String, &str)> = vec![
        ("overview", "/".into(), "stats"),
        ("events, newest page", "/events".into(), "range"),
        ("events of a type", "/events?type=Deposited".into(), "type"),
        (
            "a tag's first page",
            "/events?tag=account:500".into(),
            "tag",
        ),
        ("a tag's page in the middle of the log", deep, "tag-deep"),
        ("an event page", event, "event"),
        ("projections", "/projections".into(), "projections"),
        (
            "dead letters (50, with payloads)",
            "/dead-letters".into(),
            "dead",
        ),
        ("schema", "/schema".into(), "one"),
    ];
    let middle_i = middle;
    let tag = "account:500";
    println!(
        "| page | URL | p50 ms | p99 ms | HTML bytes | baseline | baseline p50 ms | ratio (p50) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, path, baseline) in pages {
        let (p50, p99, bytes) = page(&router, &cookie, &path, n).await;
        let (what, b50) = match baseline {
            "stats" => (
                "two of its statements (types, top tags)",
                sql(&client, "SELECT type, events FROM dcbstore.stats_types ORDER BY events DESC LIMIT 200", &[], n).await.0
                    + sql(&client, "SELECT tag, events FROM dcbstore.stats_tags ORDER BY events DESC, tag LIMIT 20", &[], n).await.0,
            ),
            "range" => (
                "51 newest rows by primary key",
                sql(&client, "SELECT * FROM dcbstore.events ORDER BY position DESC LIMIT 51", &[], n).await.0,
            ),
            "type" => (
                "51 newest rows of the type",
                sql(&client, "SELECT * FROM dcbstore.events WHERE type = 'Deposited' ORDER BY position DESC LIMIT 51", &[], n).await.0,
            ),
            "tag" => (
                "51 newest rows of the tag (event_tags, then rows)",
                sql(&client, "SELECT e.* FROM dcbstore.events e WHERE e.position = ANY (ARRAY(SELECT t.position FROM dcbstore.event_tags t WHERE t.tag = $1 ORDER BY t.position DESC LIMIT 51)) ORDER BY e.position DESC", &[&tag], n).await.0,
            ),
            "tag-deep" => (
                "the same below the middle",
                sql(&client, "SELECT e.* FROM dcbstore.events e WHERE e.position = ANY (ARRAY(SELECT t.position FROM dcbstore.event_tags t WHERE t.tag = $1 AND t.position < $2 ORDER BY t.position DESC LIMIT 51)) ORDER BY e.position DESC", &[&tag, &middle_i], n).await.0,
            ),
            "event" => (
                "one row by primary key",
                sql(&client, "SELECT * FROM dcbstore.events WHERE position = $1", &[&middle_i], n).await.0,
            ),
            "projections" => (
                "the projections' rows",
                sql(&client, "SELECT * FROM dcbstore.projections", &[], n).await.0,
            ),
            "dead" => (
                "the dead letters' rows",
                sql(&client, "SELECT * FROM dcbstore.dead_letters ORDER BY subscriber, position", &[], n).await.0,
            ),
            _ => ("SELECT 1", sql(&client, "SELECT 1", &[], n).await.0),
        };
        println!(
            "| {name} | `{path}` | {p50:.2} | {p99:.2} | {bytes} | {what} | {b50:.2} | {:.1} |",
            p50 / b50
        );
    }
    println!(
        "\n{n} samples per page after 3 warm-ups, server time through the router in process (no network). \
         Log of {big} events. Statistics: the first refresh folded {cursor} events in {first_refresh:.1} s \
         (once per store, in the background); a refresh with nothing new takes {idle_refresh:.2} ms."
    );
}
