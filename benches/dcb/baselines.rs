//! Raw PostgreSQL baselines, through tokio-postgres, on the same server:
//! R1 single-row INSERTs, R2 binary COPY into a bare table, R2s binary COPY
//! into copies of dcbstore's own tables (same indexes), R3 binary COPY out,
//! R4 a tag's rows by a prepared statement over dcbstore's indexes.

use std::sync::Arc;

use dcbstore::connection::{connect, parse_config};
use futures::StreamExt;
use serde_json::json;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::harness::{percentiles, run, timed, Figures, ServerCpu};

/// R1: one single-row INSERT per transaction on `conns` connections.
pub async fn raw_inserts(url: &str, cpu: &ServerCpu, conns: usize, secs: f64) -> Figures {
    let config = parse_config(url).unwrap();
    let admin = connect(&config).await.unwrap();
    admin
        .batch_execute(
            "DROP TABLE IF EXISTS bench_raw;
             CREATE TABLE bench_raw (position bigserial PRIMARY KEY, id uuid NOT NULL UNIQUE,
                 type text NOT NULL, data jsonb NOT NULL, tags text[] NOT NULL);",
        )
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..conns {
        let c = connect(&config).await.unwrap();
        let stmt = c
            .prepare("INSERT INTO bench_raw (id, type, data, tags) VALUES ($1, $2, $3, $4)")
            .await
            .unwrap();
        clients.push(Arc::new((c, stmt)));
    }
    let clients = Arc::new(clients);
    run(cpu, conns, secs, move |t, i| {
        let clients = clients.clone();
        async move {
            let (c, stmt) = &*clients[t];
            let tags = vec![format!("t{t}")];
            c.execute(
                stmt,
                &[&uuid::Uuid::now_v7(), &"Bench", &json!({"i": i}), &tags],
            )
            .await
            .unwrap();
            1
        }
    })
    .await
}

/// The rows B3 appends, as COPY sends them.
fn copy_row(k: i64) -> (i64, uuid::Uuid, serde_json::Value, Vec<String>) {
    (
        k + 1,
        uuid::Uuid::now_v7(),
        json!({"amount": k % 100}),
        vec![format!("account:{}", k % 1000)],
    )
}

/// R2: binary COPY of `n` rows into a bare table (primary key and unique
/// id only). Seconds.
pub async fn copy_bare(url: &str, cpu: &ServerCpu, n: i64) -> f64 {
    let client = connect(&parse_config(url).unwrap()).await.unwrap();
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_copy;
             CREATE TABLE bench_copy (position bigint PRIMARY KEY, id uuid NOT NULL UNIQUE,
                 type text NOT NULL, data jsonb NOT NULL, tags text[] NOT NULL);",
        )
        .await
        .unwrap();
    let ((), secs, _) = timed(cpu, async {
        let sink = client
            .copy_in("COPY bench_copy FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        let types = [
            Type::INT8,
            Type::UUID,
            Type::TEXT,
            Type::JSONB,
            Type::TEXT_ARRAY,
        ];
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures::pin_mut!(writer);
        for k in 0..n {
            let (p, id, data, tags) = copy_row(k);
            writer
                .as_mut()
                .write(&[&p, &id, &"Deposited", &data, &tags])
                .await
                .unwrap();
        }
        writer.finish().await.unwrap();
    })
    .await;
    secs
}

/// R2s: binary COPY of the same `n` rows into copies of dcbstore's tables
/// (every column, index and check), the events and their tag rows, in one
/// transaction. Seconds.
pub async fn copy_dcbstore_tables(url: &str, cpu: &ServerCpu, n: i64) -> f64 {
    let mut client = connect(&parse_config(url).unwrap()).await.unwrap();
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_copy_events, bench_copy_tags;
             CREATE TABLE bench_copy_events (LIKE dcbstore.events INCLUDING ALL);
             CREATE TABLE bench_copy_tags (LIKE dcbstore.event_tags INCLUDING ALL);",
        )
        .await
        .unwrap();
    let ((), secs, _) = timed(cpu, async {
        let tx = client.transaction().await.unwrap();
        let sink = tx
            .copy_in("COPY bench_copy_events (position, id, type, data, metadata, tags, recorded_at) FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        let types = [
            Type::INT8,
            Type::UUID,
            Type::TEXT,
            Type::JSONB,
            Type::JSONB,
            Type::TEXT_ARRAY,
            Type::TIMESTAMPTZ,
        ];
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures::pin_mut!(writer);
        let now = chrono::Utc::now();
        let empty = json!({});
        for k in 0..n {
            let (p, id, data, tags) = copy_row(k);
            let row: [&(dyn ToSql + Sync); 7] = [&p, &id, &"Deposited", &data, &empty, &tags, &now];
            writer.as_mut().write(&row).await.unwrap();
        }
        writer.finish().await.unwrap();
        let sink = tx
            .copy_in("COPY bench_copy_tags (tag, position, type) FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::INT8, Type::TEXT]);
        futures::pin_mut!(writer);
        for k in 0..n {
            let tag = format!("account:{}", k % 1000);
            writer
                .as_mut()
                .write(&[&tag, &(k + 1), &"Deposited"])
                .await
                .unwrap();
        }
        writer.finish().await.unwrap();
        tx.commit().await.unwrap();
    })
    .await;
    secs
}

/// R3: binary `COPY (SELECT ...) TO STDOUT` of a log. Seconds and bytes.
pub async fn copy_out(url: &str, cpu: &ServerCpu) -> (f64, usize) {
    let client = connect(&parse_config(url).unwrap()).await.unwrap();
    let (bytes, secs, _) = timed(cpu, async {
        let copy = client
            .copy_out("COPY (SELECT position, id, type, data, tags, metadata, recorded_at FROM dcbstore.events ORDER BY position) TO STDOUT (FORMAT binary)")
            .await
            .unwrap();
        futures::pin_mut!(copy);
        let mut bytes = 0usize;
        while let Some(chunk) = copy.next().await {
            bytes += chunk.unwrap().len();
        }
        bytes
    })
    .await;
    (secs, bytes)
}

/// An event row as R4 decodes it.
type RawEvent = (
    i64,
    uuid::Uuid,
    String,
    serde_json::Value,
    Vec<String>,
    serde_json::Value,
    chrono::DateTime<chrono::Utc>,
);

/// R4: p50 of a tag's first 10 events by a prepared raw statement over
/// dcbstore's indexes (the tag index for positions, the primary key for
/// rows), each row decoded.
pub async fn raw_tag_read(url: &str, cpu: &ServerCpu, rounds: usize) -> Figures {
    let client = connect(&parse_config(url).unwrap()).await.unwrap();
    let stmt = client
        .prepare(
            "SELECT e.position, e.id, e.type, e.data, e.tags, e.metadata, e.recorded_at
               FROM dcbstore.events e
              WHERE e.position = ANY (ARRAY(SELECT t.position FROM dcbstore.event_tags t
                                             WHERE t.tag = $1 ORDER BY t.position LIMIT 10))
              ORDER BY e.position",
        )
        .await
        .unwrap();
    let before = cpu.ticks();
    let start = std::time::Instant::now();
    let mut lat = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let tag = format!("account:{}", 7 + (i % 50));
        let s = std::time::Instant::now();
        let rows = client.query(&stmt, &[&tag]).await.unwrap();
        let decoded: Vec<RawEvent> = rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                )
            })
            .collect();
        lat.push(s.elapsed());
        assert_eq!(decoded.len(), 10);
    }
    let mut f = percentiles(lat, rounds as u64, start.elapsed().as_secs_f64());
    f.server_cpu = cpu.since(before);
    f
}
