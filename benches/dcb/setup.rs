//! The bench's databases and server: logs filled server-side, boundaries for
//! the decide loop, and the settings that keep checkpoints out of timed
//! workloads.

use std::time::Instant;

use dcbstore::connection::{connect, parse_config};
use dcbstore_testing::{to_key_value, TestCluster};

/// The bench's server: `DATABASE_URL` when set, else the persistent cluster
/// under `target/dcbstore-bench-pg` (kept between runs, so the large logs
/// are filled once). Returns the cluster (keep it alive) and an admin URL.
pub async fn server() -> (Option<TestCluster>, String) {
    match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => (None, u),
        _ => {
            let dir = std::env::current_dir()
                .unwrap()
                .join("target/dcbstore-bench-pg");
            let cluster = tokio::task::spawn_blocking(move || TestCluster::start_persistent(dir))
                .await
                .unwrap()
                .unwrap();
            let url = cluster.url("postgres");
            (Some(cluster), url)
        }
    }
}

/// A migrated database `name` on the server of `admin` (dropped first when
/// `fresh`); returns its connection string.
pub async fn database(admin: &str, name: &str, fresh: bool) -> String {
    let config = parse_config(admin).unwrap();
    let client = connect(&config).await.unwrap();
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    if exists && fresh {
        client
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
    if !exists || fresh {
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    }
    let mut c = config.clone();
    c.dbname(name);
    let url = to_key_value(&c);
    let mut client = connect(&c).await.unwrap();
    let _ = dcbstore::migrate(&mut client).await.unwrap();
    url
}

/// Fills a log with `n` events server-side (1,000 accounts as tags), unless
/// it already holds them. Returns the seconds it took (0 when reused).
pub async fn fill(url: &str, n: i64) -> f64 {
    let client = connect(&parse_config(url).unwrap()).await.unwrap();
    let head: Option<i64> = client
        .query_one("SELECT dcbstore.head()", &[])
        .await
        .unwrap()
        .get(0);
    // B6 appends a few events to the logs it measures: more is fine.
    if head.is_some_and(|h| h >= n) {
        return 0.0;
    }
    assert!(
        head.is_none(),
        "a partial bench log: drop the database and run again"
    );
    let start = Instant::now();
    let chunk = 1_000_000i64;
    let mut lo = 1;
    while lo <= n {
        let hi = (lo + chunk - 1).min(n);
        insert_tagged(&client, lo, hi, "account:", 1000).await;
        lo = hi + 1;
    }
    analyze(&client).await;
    start.elapsed().as_secs_f64()
}

/// Events lo..=hi, event g tagged `{prefix}{g % modulo}`.
async fn insert_tagged(
    client: &tokio_postgres::Client,
    lo: i64,
    hi: i64,
    prefix: &str,
    modulo: i64,
) {
    client
        .execute(
            "INSERT INTO dcbstore.events (position, id, type, data, metadata, tags)
             SELECT g, gen_random_uuid(), 'Deposited', jsonb_build_object('amount', g % 100), '{}',
                    ARRAY[$3 || (g % $4)]
               FROM generate_series($1::bigint, $2::bigint) g",
            &[&lo, &hi, &prefix, &modulo],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO dcbstore.event_tags (tag, position, type)
             SELECT $3 || (g % $4), g, 'Deposited' FROM generate_series($1::bigint, $2::bigint) g",
            &[&lo, &hi, &prefix, &modulo],
        )
        .await
        .unwrap();
}

async fn analyze(client: &tokio_postgres::Client) {
    // One statement per call: VACUUM cannot run in the implicit transaction
    // of a multi-statement query.
    for table in ["dcbstore.events", "dcbstore.event_tags"] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .unwrap();
    }
}

/// The decide loop's boundaries: `tags` tags `loop:0`.. with `per_tag`
/// events each, spread over the log.
pub async fn fill_boundaries(url: &str, tags: i64, per_tag: i64) {
    let client = connect(&parse_config(url).unwrap()).await.unwrap();
    insert_tagged(&client, 1, tags * per_tag, "loop:", tags).await;
    analyze(&client).await;
}

/// What the bench could set on its server, for the report.
pub struct ServerSetup {
    pub checkpoints: bool,
    pub note: String,
}

/// Raises `max_wal_size` (and the checkpoint timeout) so that no checkpoint
/// is triggered inside a timed workload; [`checkpoint`] runs one before
/// each. Needs a superuser: on another server the bench says what it could
/// not set.
pub async fn tune_server(admin: &str) -> ServerSetup {
    let client = connect(&parse_config(admin).unwrap()).await.unwrap();
    // One statement per call: ALTER SYSTEM cannot run in the implicit
    // transaction of a multi-statement query.
    let mut set = Ok(());
    for statement in [
        "ALTER SYSTEM SET max_wal_size = '8GB'",
        "ALTER SYSTEM SET checkpoint_timeout = '1h'",
        "SELECT pg_reload_conf()",
    ] {
        if set.is_ok() {
            set = client.batch_execute(statement).await;
        }
    }
    let checkpoints = client.batch_execute("CHECKPOINT").await.is_ok();
    let shown: String = client
        .query_one(
            "SELECT format('max_wal_size %s, checkpoint_timeout %s', current_setting('max_wal_size'), current_setting('checkpoint_timeout'))",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or_default();
    let note = match (set, checkpoints) {
        (Ok(()), true) => format!("{shown}, CHECKPOINT before each timed workload"),
        (Err(e), true) => {
            format!("{shown} (could not raise: {e}), CHECKPOINT before each timed workload")
        }
        (Ok(()), false) => format!("{shown}, no CHECKPOINT allowed"),
        (Err(e), false) => format!("{shown} (could not raise: {e}), no CHECKPOINT allowed"),
    };
    ServerSetup { checkpoints, note }
}

/// A checkpoint now, so that none falls inside the next timed workload.
pub async fn checkpoint(admin: &tokio_postgres::Client, setup: &ServerSetup) {
    if setup.checkpoints {
        admin.batch_execute("CHECKPOINT").await.unwrap();
    }
}
