//! The `dcbstore` command-line tool, run as a real process against real
//! PostgreSQL databases: exit codes, exact output shapes, read windows and
//! filters, conditional appends, refusal of unmigrated databases, and
//! connection strings whose password never shows in any output.
//!
//! The test process never sets `DATABASE_URL` (other tests share the
//! environment): each child gets `--database-url`, or the variable on its own
//! `Command`.

use std::fmt;
use std::process::{Command, Stdio};

use dcbstore::migrate::{expected_version, MIGRATIONS};
use dcbstore::testing::TestDatabase;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

mod common;
use common::cli as runner;
use runner::{run_cmd, Run, BIN};

/// The keys of a `read` line, in the order the contract prints them.
const READ_KEYS: [&str; 7] = [
    "position",
    "id",
    "type",
    "data",
    "tags",
    "metadata",
    "recorded_at",
];

/// A password no test server uses, to look for in every output.
const SECRET: &str = "s3cr3t-pw-xyz";

// ---- Running the binary: tests/common/cli.rs ----

/// A `dcbstore` command without `DATABASE_URL` in its environment.
fn command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DATABASE_URL");
    // Nor libpq's variables, nor a `.env` of the working directory.
    for v in dcbstore::connection::LIBPQ_VARIABLES {
        cmd.env_remove(v);
    }
    cmd.env_remove("PGPASSFILE")
        .env_remove("DCBSTORE_LOG_FORMAT")
        .current_dir(std::env::temp_dir());
    cmd
}

/// `dcbstore [--database-url URL] ARGS...`
fn cli(url: Option<&str>, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = command();
    if let Some(u) = url {
        cmd.arg("--database-url").arg(u);
    }
    cmd.args(args);
    run_cmd(cmd, stdin)
}

/// Events as JSON lines.
fn jsonl(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

/// Appends `events` (one batch), expecting success; returns the position.
#[track_caller]
fn append(url: &str, args: &[&str], events: &[Value]) -> u64 {
    let mut all = vec!["append"];
    all.extend_from_slice(args);
    let out = cli(Some(url), &all, Some(&jsonl(events))).ok().json();
    assert_eq!(
        keys(&out),
        ["already_stored", "first_position", "ids", "position"],
        "{out}"
    );
    assert_eq!(
        out["ids"].as_array().map(Vec::len),
        Some(events.len()),
        "{out}"
    );
    out["position"].as_u64().expect("position is a number")
}

/// `dcbstore head`: `None` when it prints `null`.
#[track_caller]
fn head(url: &str) -> Option<u64> {
    let r = cli(Some(url), &["head"], None);
    r.ok();
    assert_eq!(r.stdout.lines().count(), 1, "{r:#?}");
    match r.stdout.trim() {
        "null" => None,
        s => Some(s.parse().unwrap_or_else(|e| panic!("head {s:?}: {e}"))),
    }
}

/// `dcbstore read ARGS...`: the lines, each checked for key order.
#[track_caller]
fn read(url: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["read"];
    all.extend_from_slice(args);
    let r = cli(Some(url), &all, None);
    r.ok();
    for line in r.stdout.lines() {
        assert_eq!(ordered_keys(line), READ_KEYS, "key order of {line}");
    }
    r.json_lines()
}

/// The positions `dcbstore read ARGS...` prints.
#[track_caller]
fn positions(url: &str, args: &[&str]) -> Vec<u64> {
    read(url, args)
        .iter()
        .map(|e| e["position"].as_u64().expect("position"))
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

async fn migrated() -> TestDatabase {
    let db = TestDatabase::create().await.expect("create test database");
    db.migrate().await.expect("migrate");
    db
}

/// A TCP port on 127.0.0.1 nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

// ---- JSON with its key order (serde_json's Value sorts keys) ----

#[derive(Debug)]
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Scalar,
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut fields = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    fields.push((k, m.next_value()?));
                }
                Ok(Ordered::Object(fields))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(x) = s.next_element()? {
                    items.push(x);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
        }
        d.deserialize_any(V)
    }
}

impl Ordered {
    fn keys(&self) -> Vec<&str> {
        match self {
            Ordered::Object(f) => f.iter().map(|(k, _)| k.as_str()).collect(),
            other => panic!("not an object: {other:?}"),
        }
    }

    fn get(&self, key: &str) -> &Ordered {
        match self {
            Ordered::Object(f) => &f.iter().find(|(k, _)| k == key).expect(key).1,
            other => panic!("not an object: {other:?}"),
        }
    }

    fn items(&self) -> &[Ordered] {
        match self {
            Ordered::Array(a) => a,
            other => panic!("not an array: {other:?}"),
        }
    }
}

fn ordered(line: &str) -> Ordered {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// The top-level keys of a JSON object line, in the printed order.
fn ordered_keys(line: &str) -> Vec<String> {
    ordered(line).keys().into_iter().map(String::from).collect()
}

// ---- Schema: migrate and status ----

#[tokio::test(flavor = "multi_thread")]
async fn status_json_before_and_after_migrate() {
    let db = TestDatabase::create().await.unwrap();
    let url = db.url();
    let all_pending: Vec<Value> = MIGRATIONS
        .iter()
        .map(|m| json!({"version": m.version, "name": m.name}))
        .collect();

    let fresh = cli(Some(url), &["status", "--json"], None).ok().json();
    assert_eq!(
        keys(&fresh),
        [
            "expected_version",
            "installed_version",
            "pending",
            "state",
            "store_id"
        ]
    );
    assert_eq!(
        fresh,
        json!({
            "state": "fresh",
            "installed_version": null,
            "expected_version": expected_version(),
            "pending": all_pending,
            "store_id": null,
        })
    );
    let human = cli(Some(url), &["status"], None);
    human.ok();
    assert!(human.stdout.contains("fresh"), "{human:#?}");
    assert!(human.stdout.contains("dcbstore migrate"), "{human:#?}");
    // Status reads; it does not migrate.
    let again = cli(Some(url), &["status", "--json"], None).ok().json();
    assert_eq!(again, fresh);

    let m = cli(Some(url), &["migrate"], None);
    m.ok();
    for mig in MIGRATIONS {
        assert!(
            m.stdout
                .contains(&format!("applied migration {} ({})", mig.version, mig.name)),
            "{m:#?}"
        );
    }

    let up = cli(Some(url), &["status", "--json"], None).ok().json();
    assert_eq!(up["state"], "up_to_date", "{up}");
    assert_eq!(up["installed_version"], json!(expected_version()));
    assert_eq!(up["expected_version"], json!(expected_version()));
    assert_eq!(up["pending"], json!([]));
    let id: Uuid = up["store_id"]
        .as_str()
        .expect("store_id is a string after migrate")
        .parse()
        .expect("store_id is a UUID");
    assert!(!id.is_nil());

    let up2 = cli(Some(url), &["status", "--json"], None).ok().json();
    assert_eq!(up2, up, "status is stable across calls");

    let m2 = cli(Some(url), &["migrate"], None);
    m2.ok();
    assert!(m2.stdout.contains("already up to date"), "{m2:#?}");
    let up3 = cli(Some(url), &["status", "--json"], None).ok().json();
    assert_eq!(up3, up, "a second migrate keeps the store id");

    let human = cli(Some(url), &["status"], None);
    human.ok();
    assert!(human.stdout.contains("up to date"), "{human:#?}");
    assert!(human.stdout.contains(&id.to_string()), "{human:#?}");
    assert!(!human.stdout.contains("dcbstore migrate"), "{human:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_pending_and_ahead_and_commands_refuse_them() {
    // Pending: a schema_migrations table at an older version (0).
    let db = TestDatabase::create().await.unwrap();
    let client = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE SCHEMA dcbstore;
             CREATE TABLE dcbstore.schema_migrations (
                 version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO dcbstore.schema_migrations (version, name, checksum) VALUES (0, 'old', 'x');",
        )
        .await
        .unwrap();
    let s = cli(Some(db.url()), &["status", "--json"], None).ok().json();
    assert_eq!(s["state"], "pending", "{s}");
    assert_eq!(s["installed_version"], 0);
    assert_eq!(
        s["pending"],
        json!([
            {"version": 1, "name": "init"},
            {"version": 2, "name": "projections"},
            {"version": 3, "name": "throughput"},
            {"version": 4, "name": "append_only"},
            {"version": 5, "name": "limits"},
            {"version": 6, "name": "hardening"},
            {"version": 7, "name": "delivery"},
            {"version": 8, "name": "stats"},
            {"version": 9, "name": "guards"},
            {"version": 10, "name": "leases"},
            {"version": 11, "name": "row_checks"}
        ])
    );
    assert_eq!(s["store_id"], Value::Null);
    let human = cli(Some(db.url()), &["status"], None);
    human.ok();
    assert!(human.stdout.contains("dcbstore migrate"), "{human:#?}");
    cli(Some(db.url()), &["head"], None).fails(1, "dcbstore migrate");
    cli(Some(db.url()), &["read"], None).fails(1, "dcbstore migrate");
    cli(Some(db.url()), &["migrate"], None).ok();
    let s = cli(Some(db.url()), &["status", "--json"], None).ok().json();
    assert_eq!(s["state"], "up_to_date", "{s}");
    assert_eq!(head(db.url()), None);
    drop(client);

    // Ahead: a version newer than this build.
    let db = migrated().await;
    let client = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO dcbstore.schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')",
        )
        .await
        .unwrap();
    let s = cli(Some(db.url()), &["status", "--json"], None).ok().json();
    assert_eq!(s["state"], "ahead", "{s}");
    assert_eq!(s["installed_version"], 999);
    assert_eq!(s["pending"], json!([]));
    assert!(s["store_id"].is_string(), "{s}");
    let human = cli(Some(db.url()), &["status"], None);
    human.ok();
    assert!(human.stdout.contains("upgrade dcbstore"), "{human:#?}");
    cli(Some(db.url()), &["head"], None).fails(1, "upgrade dcbstore");
    cli(Some(db.url()), &["read"], None).fails(1, "upgrade dcbstore");
    cli(
        Some(db.url()),
        &["append"],
        Some(&jsonl(&[json!({"type": "A"})])),
    )
    .fails(1, "upgrade dcbstore");
    cli(Some(db.url()), &["migrate"], None).fails(1, "upgrade dcbstore");
}

#[tokio::test(flavor = "multi_thread")]
async fn unmigrated_database_is_refused_except_by_migrate_and_status() {
    let db = TestDatabase::create().await.unwrap();
    let url = db.url();
    cli(Some(url), &["head"], None).fails(1, "dcbstore migrate");
    cli(Some(url), &["read"], None).fails(1, "dcbstore migrate");
    cli(Some(url), &["read", "--type", "A", "--tag", "x"], None).fails(1, "dcbstore migrate");
    cli(
        Some(url),
        &["read", "--query", r#"[{"tags":["x"]}]"#, "--after", "1"],
        None,
    )
    .fails(1, "dcbstore migrate");
    cli(
        Some(url),
        &["append"],
        Some(&jsonl(&[json!({"type": "A", "tags": ["x"]})])),
    )
    .fails(1, "dcbstore migrate");
    cli(
        Some(url),
        &["append", "--fail-if", "\"all\""],
        Some(&jsonl(&[json!({"type": "A"})])),
    )
    .fails(1, "dcbstore migrate");
    cli(Some(url), &["status"], None).ok();
    cli(Some(url), &["status", "--json"], None).ok();

    // The refused append wrote nothing (not even a schema).
    let s = cli(Some(url), &["status", "--json"], None).ok().json();
    assert_eq!(s["state"], "fresh", "{s}");
    cli(Some(url), &["migrate"], None).ok();
    assert_eq!(head(url), None);
    assert!(read(url, &[]).is_empty());
}

// ---- head, append, read ----

#[tokio::test(flavor = "multi_thread")]
async fn head_is_null_when_empty_then_the_last_position() {
    let db = migrated().await;
    let url = db.url();
    let r = cli(Some(url), &["head"], None);
    r.ok();
    assert_eq!(r.stdout, "null\n");
    assert!(r.stderr.is_empty(), "{r:#?}");
    assert!(read(url, &[]).is_empty(), "empty store reads nothing");

    let p1 = append(url, &[], &[json!({"type": "A"})]);
    assert_eq!(p1, 1, "positions start at 1");
    assert_eq!(head(url), Some(p1));
    let p2 = append(url, &[], &[json!({"type": "B"}), json!({"type": "C"})]);
    assert_eq!(p2, p1 + 2, "a batch takes consecutive positions");
    let r = cli(Some(url), &["head"], None);
    r.ok();
    assert_eq!(r.stdout, format!("{p2}\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn append_one_batch_and_read_exact_lines_in_key_order() {
    let db = migrated().await;
    let url = db.url();
    let id1 = Uuid::new_v4();
    let data1 = json!({"courseId": "c1", "capacity": 10, "name": "Ünïcode \"q\" \\ /", "nested": {"z": [1, 2.5, null, true]}});
    let meta1 = json!({"user": "u1", "n": [1, 2.5, null]});
    let events = [
        json!({"type": "CourseDefined", "data": data1, "tags": ["course:c1", "b", "course:c1"], "metadata": meta1, "id": id1}),
        json!({"type": "Bare"}),
        json!({"type": "X", "data": [1, "two", false], "tags": ["t"]}),
    ];
    let before = chrono::Utc::now();
    // One batch: the output is the last event's position.
    let r = cli(Some(url), &["append"], Some(&jsonl(&events)));
    r.ok();
    let ids: Vec<String> = r.json()["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|i| format!("{i}"))
        .collect();
    assert_eq!(ids[0], format!("\"{id1}\""), "ids in input order");
    assert_eq!(
        r.stdout,
        format!(
            "{{\"position\":3,\"first_position\":1,\"ids\":[{}],\"already_stored\":false}}\n",
            ids.join(",")
        ),
        "exact output"
    );
    assert!(r.stderr.is_empty(), "{r:#?}");
    let after = chrono::Utc::now();

    let raw = cli(Some(url), &["read"], None);
    raw.ok();
    for line in raw.stdout.lines() {
        assert_eq!(ordered_keys(line), READ_KEYS, "key order of {line}");
    }
    let lines = raw.json_lines();
    assert_eq!(lines.len(), 3, "{raw:#?}");
    for l in &lines {
        assert_eq!(keys(l).len(), READ_KEYS.len(), "no extra keys: {l}");
    }
    let pos: Vec<u64> = lines
        .iter()
        .map(|l| l["position"].as_u64().unwrap())
        .collect();
    assert_eq!(pos, [1, 2, 3], "consecutive, in the order given");

    assert_eq!(lines[0]["id"], json!(id1.to_string()));
    assert_eq!(lines[0]["type"], "CourseDefined");
    assert_eq!(lines[0]["data"], data1);
    assert_eq!(
        lines[0]["tags"],
        json!(["b", "course:c1"]),
        "duplicate tags removed"
    );
    assert_eq!(lines[0]["metadata"], meta1);

    assert_eq!(lines[1]["type"], "Bare");
    assert_eq!(lines[1]["data"], Value::Null, "data defaults to null");
    assert_eq!(lines[1]["tags"], json!([]), "no tags");
    assert_eq!(lines[1]["metadata"], json!({}), "metadata defaults to {{}}");
    let generated: Uuid = lines[1]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(generated.get_version_num(), 7, "generated ids are v7");

    assert_eq!(lines[2]["data"], json!([1, "two", false]));
    assert_eq!(lines[2]["tags"], json!(["t"]));
    let id3: Uuid = lines[2]["id"].as_str().unwrap().parse().unwrap();
    assert_ne!(id3, generated);

    let times: Vec<chrono::DateTime<chrono::Utc>> = lines
        .iter()
        .map(|l| {
            chrono::DateTime::parse_from_rfc3339(l["recorded_at"].as_str().unwrap())
                .expect("recorded_at is RFC 3339")
                .into()
        })
        .collect();
    for t in &times {
        let slack = chrono::Duration::seconds(5);
        assert!(
            *t >= before - slack && *t <= after + slack,
            "{t} not within the append ({before} .. {after})"
        );
    }
    assert!(
        times.iter().all(|t| *t == times[0]),
        "one batch, one transaction time: {times:?}"
    );
    assert_eq!(head(url), Some(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn re_append_of_the_same_ids_is_idempotent() {
    let db = migrated().await;
    let url = db.url();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(url, &[], &[json!({"type": "Before"})]);
    let batch = [
        json!({"type": "A", "data": {"n": 1}, "tags": ["x", "y"], "metadata": {"m": 1}, "id": a}),
        json!({"type": "B", "tags": ["x"], "id": b}),
    ];
    let p = append(url, &[], &batch);
    assert_eq!(head(url), Some(p));

    // The same batch again: same position, nothing new.
    let r = cli(Some(url), &["append"], Some(&jsonl(&batch)));
    r.ok();
    assert_eq!(
        r.json(),
        json!({"position": p, "first_position": p - 1, "ids": [a, b], "already_stored": true})
    );
    assert_eq!(head(url), Some(p), "nothing new written");
    assert_eq!(read(url, &[]).len(), 3);
    // Tags given in another order or repeated are the same set.
    let reordered = [
        json!({"type": "A", "data": {"n": 1}, "tags": ["y", "x", "x"], "metadata": {"m": 1}, "id": a}),
        json!({"type": "B", "tags": ["x"], "id": b}),
    ];
    assert_eq!(append(url, &[], &reordered), p);
    // A retry of part of the batch returns that part's last position.
    assert_eq!(append(url, &[], &batch[..1]), p - 1);
    assert_eq!(head(url), Some(p));

    // The same id with other content is an error naming the id.
    let changed =
        [json!({"type": "A", "data": {"n": 2}, "tags": ["x", "y"], "metadata": {"m": 1}, "id": a})];
    cli(Some(url), &["append"], Some(&jsonl(&changed))).fails(1, &a.to_string());
    assert_eq!(head(url), Some(p), "nothing written");

    // A batch mixing a stored id with a new one is an error naming the
    // stored id (ids are unique in the store), and writes nothing.
    let c = Uuid::new_v4();
    let mixed = [
        json!({"type": "B", "tags": ["x"], "id": b}),
        json!({"type": "New", "id": c}),
    ];
    cli(Some(url), &["append"], Some(&jsonl(&mixed))).fails(1, &b.to_string());
    assert_eq!(head(url), Some(p), "nothing written");
    assert!(read(url, &["--type", "New"]).is_empty());

    // Without ids, each run generates new ones: two appends, two events.
    let no_ids = [json!({"type": "C"})];
    let q1 = append(url, &[], &no_ids);
    let q2 = append(url, &[], &no_ids);
    assert!(q2 > q1 && q1 > p);
    assert_eq!(head(url), Some(q2));
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_of_a_conditional_append_is_idempotent_not_a_conflict() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "Other", "tags": ["course:c8"]})]);
    let id = Uuid::new_v4();
    let batch = [json!({"type": "CourseDefined", "tags": ["course:c9"], "id": id})];
    let guard = ["--fail-if", r#"[{"tags":["course:c9"]}]"#];
    let p = append(url, &guard, &batch);
    // The client lost the answer and retries the same command: the stored
    // events now match its own guard, but it is the same append.
    let r = cli(
        Some(url),
        &["append", guard[0], guard[1]],
        Some(&jsonl(&batch)),
    );
    assert_eq!(r.code, 0, "idempotent retry, not a conflict: {r:#?}");
    assert_eq!(
        r.json(),
        json!({"position": p, "first_position": p, "ids": [id], "already_stored": true})
    );
    assert_eq!(head(url), Some(p));
}

/// 1: A[x]  2: B[x,y]  3: C[y]  4: A[x,y,z]  5: B[]  6: C[z], one append each.
/// Returns the six positions.
fn seed(url: &str) -> Vec<u64> {
    [
        ("A", &["x"][..]),
        ("B", &["x", "y"]),
        ("C", &["y"]),
        ("A", &["x", "y", "z"]),
        ("B", &[]),
        ("C", &["z"]),
    ]
    .iter()
    .map(|(t, tags)| append(url, &[], &[json!({"type": t, "tags": tags})]))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn read_windows_after_from_to_backwards_limit() {
    let db = migrated().await;
    let url = db.url();
    let ps = seed(url);
    assert!(ps.windows(2).all(|w| w[0] < w[1]), "{ps:?}");
    let s = |i: usize| ps[i].to_string();
    let pick = |idx: &[usize]| idx.iter().map(|&i| ps[i]).collect::<Vec<u64>>();

    assert_eq!(positions(url, &[]), ps);
    assert_eq!(positions(url, &["--after", &s(1)]), pick(&[2, 3, 4, 5]));
    assert_eq!(positions(url, &["--from", &s(1)]), pick(&[1, 2, 3, 4, 5]));
    assert_eq!(positions(url, &["--to", &s(3)]), pick(&[0, 1, 2, 3]));
    assert_eq!(
        positions(url, &["--from", &s(1), "--to", &s(3)]),
        pick(&[1, 2, 3])
    );
    assert_eq!(
        positions(url, &["--after", &s(1), "--to", &s(3)]),
        pick(&[2, 3])
    );
    assert_eq!(positions(url, &["--after", &s(5)]), pick(&[]));
    assert_eq!(positions(url, &["--from", &s(5)]), pick(&[5]));
    // Positions start at 1: `--to 0` is a usage error (only --after takes 0).
    assert_eq!(cli(Some(url), &["read", "--to", "0"], None).code, 2);

    assert_eq!(positions(url, &["--backwards"]), pick(&[5, 4, 3, 2, 1, 0]));
    // The window bounds positions the same way in both directions.
    assert_eq!(
        positions(url, &["--backwards", "--after", &s(1), "--to", &s(4)]),
        pick(&[4, 3, 2])
    );
    assert_eq!(
        positions(url, &["--backwards", "--from", &s(1), "--to", &s(4)]),
        pick(&[4, 3, 2, 1])
    );
    assert_eq!(
        positions(url, &["--backwards", "--to", &s(3)]),
        pick(&[3, 2, 1, 0])
    );

    assert_eq!(positions(url, &["--limit", "2"]), pick(&[0, 1]));
    assert_eq!(
        positions(url, &["--backwards", "--limit", "2"]),
        pick(&[5, 4])
    );
    assert_eq!(
        positions(url, &["--after", &s(0), "--to", &s(4), "--limit", "2"]),
        pick(&[1, 2])
    );
    assert_eq!(
        positions(
            url,
            &[
                "--backwards",
                "--after",
                &s(0),
                "--to",
                &s(4),
                "--limit",
                "2"
            ]
        ),
        pick(&[4, 3])
    );
    assert_eq!(positions(url, &["--limit", "0"]), pick(&[]));
    assert_eq!(positions(url, &["--limit", "100"]), ps);
    // Windows combine with filters.
    assert_eq!(
        positions(url, &["--tag", "x", "--backwards", "--limit", "2"]),
        pick(&[3, 1])
    );

    // --after and --from are two forms of one bound.
    cli(Some(url), &["read", "--after", "1", "--from", "2"], None).fails(2, "--from");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_type_and_tag_filters_or_types_and_tags() {
    let db = migrated().await;
    let url = db.url();
    let ps = seed(url);
    let pick = |idx: &[usize]| idx.iter().map(|&i| ps[i]).collect::<Vec<u64>>();

    assert_eq!(positions(url, &["--type", "A"]), pick(&[0, 3]));
    assert_eq!(
        positions(url, &["--type", "A", "--type", "B"]),
        pick(&[0, 1, 3, 4]),
        "types are OR'd"
    );
    assert_eq!(positions(url, &["--tag", "x"]), pick(&[0, 1, 3]));
    assert_eq!(
        positions(url, &["--tag", "x", "--tag", "y"]),
        pick(&[1, 3]),
        "tags are AND'd"
    );
    assert_eq!(
        positions(url, &["--tag", "x", "--tag", "y", "--tag", "z"]),
        pick(&[3])
    );
    assert_eq!(
        positions(url, &["--type", "A", "--tag", "y"]),
        pick(&[3]),
        "type AND tags"
    );
    assert_eq!(
        positions(url, &["--type", "B", "--type", "C", "--tag", "y"]),
        pick(&[1, 2])
    );
    assert_eq!(
        positions(url, &["--tag", "x", "--tag", "x"]),
        pick(&[0, 1, 3]),
        "a repeated tag is harmless"
    );
    assert_eq!(positions(url, &["--type", "Nope"]), pick(&[]));
    assert_eq!(positions(url, &["--tag", "nope"]), pick(&[]));
    let types: Vec<Value> = read(url, &["--type", "C"])
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(types, [json!("C"), json!("C")]);

    // --query: items OR'd.
    assert_eq!(
        positions(url, &["--query", r#"[{"types":["C"]},{"tags":["x","y"]}]"#]),
        pick(&[1, 2, 3, 5])
    );
    assert_eq!(
        positions(url, &["--query", r#"[{"types":["A","B"],"tags":["y"]}]"#]),
        pick(&[1, 3])
    );
    assert_eq!(positions(url, &["--query", r#""all""#]), ps);
    assert_eq!(
        positions(url, &["--query", r#"[{"tags":["z"]}]"#, "--backwards"]),
        pick(&[5, 3])
    );
    // --query excludes --type/--tag.
    cli(
        Some(url),
        &["read", "--query", r#""all""#, "--type", "A"],
        None,
    )
    .fails(2, "--type");
    cli(
        Some(url),
        &["read", "--query", r#""all""#, "--tag", "x"],
        None,
    )
    .fails(2, "--tag");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_query_or_condition_is_a_usage_error() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "A", "tags": ["x"]})]);
    let ev = jsonl(&[json!({"type": "A", "tags": ["x"]})]);

    for (q, says) in [
        ("[{}]", "all"),
        ("[]", "all"),
        ("not json", "query"),
        (r#"{"types":["A"]}"#, "all"),
        (r#""everything""#, "all"),
        (r#"[{"type":["A"]}]"#, "type"),
        (r#"[{"types":[""]}]"#, "empty"),
        (r#"[{"tags":[""]}]"#, "empty"),
    ] {
        cli(Some(url), &["read", "--query", q], None).fails(2, says);
        cli(Some(url), &["append", "--fail-if", q], Some(&ev)).fails(2, says);
    }
    for c in [
        "[]",
        "not json",
        r#"[{"query":[{}]}]"#,
        r#"[{"after":1}]"#,
        r#"[{"query":"all","afterr":1}]"#,
        r#"{"query":"all"}"#,
        r#"[{"query":"all","after":-1}]"#,
    ] {
        let r = cli(Some(url), &["append", "--condition", c], Some(&ev));
        r.fails(2, "--condition");
    }
    assert_eq!(head(url), Some(1), "nothing written");
}

// ---- Conditional appends ----

#[tokio::test(flavor = "multi_thread")]
async fn fail_if_conflict_prints_the_events_and_exits_3() {
    let db = migrated().await;
    let url = db.url();
    let (i1, i2) = (Uuid::new_v4(), Uuid::new_v4());
    let p1 = append(
        url,
        &[],
        &[
            json!({"type": "CourseDefined", "data": {"cap": 10}, "tags": ["course:c1"], "metadata": {"by": "u"}, "id": i1}),
        ],
    );
    append(
        url,
        &[],
        &[json!({"type": "Unrelated", "tags": ["course:c2"]})],
    );
    let p2 = append(
        url,
        &[],
        &[json!({"type": "CourseCapacityChanged", "tags": ["course:c1"], "id": i2})],
    );
    let h = head(url).unwrap();
    let c1 = r#"[{"tags":["course:c1"]}]"#;
    let new = jsonl(&[json!({"type": "StudentSubscribed", "tags": ["course:c1", "student:s1"]})]);

    // No --after: any matching event conflicts.
    let r = cli(Some(url), &["append", "--fail-if", c1], Some(&new));
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(
        r.stderr.is_empty(),
        "a conflict is an answer on stdout: {r:#?}"
    );
    let line = r.stdout.lines().next().unwrap();
    let o = ordered(line);
    assert_eq!(o.keys(), ["conflict"]);
    assert_eq!(o.get("conflict").keys(), ["position", "events", "head"]);
    for e in o.get("conflict").get("events").items() {
        assert_eq!(e.keys(), READ_KEYS, "conflict events print like read lines");
    }
    let out = r.json();
    assert_eq!(out["conflict"]["position"], json!(p2));
    assert_eq!(
        out["conflict"]["head"],
        json!(h),
        "checked against the head"
    );
    let evs = out["conflict"]["events"].as_array().unwrap();
    let stored = read(url, &["--tag", "course:c1"]);
    assert_eq!(
        evs, &stored,
        "the conflicting events, in position order, as read prints them"
    );
    assert_eq!(evs[0]["id"], json!(i1.to_string()));
    assert_eq!(evs[0]["position"], json!(p1));
    assert_eq!(evs[1]["id"], json!(i2.to_string()));
    assert_eq!(head(url), Some(h), "nothing written");

    // --after below the latest match: only later matches are reported.
    let r = cli(
        Some(url),
        &["append", "--fail-if", c1, "--after", &p1.to_string()],
        Some(&new),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    let out = r.json();
    assert_eq!(out["conflict"]["position"], json!(p2));
    let evs = out["conflict"]["events"].as_array().unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["id"], json!(i2.to_string()));
    assert_eq!(head(url), Some(h), "nothing written");

    // --after at the latest match: success.
    let p = append(
        url,
        &["--fail-if", c1, "--after", &p2.to_string()],
        &[json!({"type": "StudentSubscribed", "tags": ["course:c1", "student:s1"]})],
    );
    assert_eq!(p, h + 1);
    // A query nothing matches never conflicts.
    let p = append(
        url,
        &["--fail-if", r#"[{"types":["Nope"]}]"#],
        &[json!({"type": "A"})],
    );
    assert_eq!(p, h + 2);
    // "all" after the head: success; "all" without --after: conflict.
    let p = append(
        url,
        &["--fail-if", r#""all""#, "--after", &p.to_string()],
        &[json!({"type": "A"})],
    );
    assert_eq!(p, h + 3);
    let r = cli(
        Some(url),
        &["append", "--fail-if", r#""all""#],
        Some(&jsonl(&[json!({"type": "A"})])),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    assert_eq!(r.json()["conflict"]["position"], json!(p));
    assert_eq!(head(url), Some(p));

    // --after needs --fail-if; --condition excludes both.
    cli(Some(url), &["append", "--after", "3"], Some(&new)).fails(2, "--fail-if");
    cli(
        Some(url),
        &[
            "append",
            "--fail-if",
            c1,
            "--condition",
            r#"[{"query":"all"}]"#,
        ],
        Some(&new),
    )
    .fails(2, "--condition");
    assert_eq!(head(url), Some(p), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn condition_with_several_guards() {
    let db = migrated().await;
    let url = db.url();
    let c = append(
        url,
        &[],
        &[json!({"type": "CourseDefined", "tags": ["course:c1"]})],
    );
    let s = append(
        url,
        &[],
        &[json!({"type": "StudentRegistered", "tags": ["student:s1"]})],
    );
    let other = append(
        url,
        &[],
        &[json!({"type": "CourseDefined", "tags": ["course:c2"]})],
    );
    let guards = |course_after: u64, student_after: u64| {
        format!(
            r#"[{{"query":[{{"tags":["course:c1"]}}],"after":{course_after}}},{{"query":[{{"tags":["student:s1"]}}],"after":{student_after}}}]"#
        )
    };
    let ev = [json!({"type": "StudentSubscribed", "tags": ["course:c1", "student:s1"]})];

    // Second guard violated (student event after 1): conflict, its events only.
    let r = cli(
        Some(url),
        &["append", "--condition", &guards(c, c)],
        Some(&jsonl(&ev)),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    let out = r.json();
    assert_eq!(keys(&out), ["conflict"]);
    assert_eq!(out["conflict"]["position"], json!(s));
    let ps: Vec<&Value> = out["conflict"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["position"])
        .collect();
    assert_eq!(ps, [&json!(s)]);
    assert_eq!(head(url), Some(other), "nothing written");

    // Both guards violated: the events of both, in position order.
    let r = cli(
        Some(url),
        &[
            "append",
            "--condition",
            r#"[{"query":[{"tags":["student:s1"]}]},{"query":[{"tags":["course:c1"]}]}]"#,
        ],
        Some(&jsonl(&ev)),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    let out = r.json();
    assert_eq!(out["conflict"]["position"], json!(s));
    let ps: Vec<u64> = out["conflict"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(ps, [c, s]);
    assert_eq!(head(url), Some(other), "nothing written");

    // Each guard at its own position, neither violated: success (even though
    // the course guard alone at `c` would miss the student event at `s`).
    let p = append(url, &["--condition", &guards(c, s)], &ev);
    assert_eq!(p, other + 1);
    // A guard without "after" counts every position.
    let r = cli(
        Some(url),
        &[
            "append",
            "--condition",
            &format!(
                r#"[{{"query":[{{"types":["Nope"]}}],"after":{p}}},{{"query":[{{"tags":["course:c2"]}}]}}]"#
            ),
        ],
        Some(&jsonl(&ev)),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    assert_eq!(r.json()["conflict"]["position"], json!(other));
    // The batch is never checked against its own events.
    let p2 = append(
        url,
        &[
            "--condition",
            &format!(r#"[{{"query":[{{"tags":["fresh"]}}],"after":{p}}}]"#),
        ],
        &[
            json!({"type": "A", "tags": ["fresh"]}),
            json!({"type": "B", "tags": ["fresh"]}),
        ],
    );
    assert_eq!(p2, p + 2);
    assert_eq!(head(url), Some(p2));
}

// ---- Bad input on stdin ----

#[tokio::test(flavor = "multi_thread")]
async fn malformed_stdin_line_names_the_line_and_writes_nothing() {
    let db = migrated().await;
    let url = db.url();
    let h = append(url, &[], &[json!({"type": "Seed"})]);
    let good = json!({"type": "A", "tags": ["x"]}).to_string();

    let cases: Vec<(String, &str)> = vec![
        (format!("{good}\n{{\"type\":\"B\"\n{good}\n"), "line 2"),
        (format!("{good}\n{good}\nnot json\n"), "line 3"),
        // Blank lines are skipped but still counted.
        (format!("\n{good}\n\n[1,2]\n"), "line 4"),
        // Unknown field (a typo of "tags").
        (
            format!("{{\"type\":\"A\",\"tag\":[\"x\"]}}\n{good}\n"),
            "line 1",
        ),
        // No type.
        (format!("{good}\n{{\"data\":1}}\n"), "line 2"),
        // Metadata not an object; tags not strings; id not a UUID.
        ("{\"type\":\"A\",\"metadata\":[]}\n".to_string(), "line 1"),
        (
            format!("{good}\n{{\"type\":\"A\",\"tags\":[1]}}\n"),
            "line 2",
        ),
        (
            format!("{good}\n{{\"type\":\"A\",\"id\":\"nope\"}}\n"),
            "line 2",
        ),
    ];
    for (input, says) in &cases {
        let r = cli(Some(url), &["append"], Some(input));
        r.fails(1, says);
        assert_eq!(head(url), Some(h), "nothing written for {input:?}");
    }
    // Valid JSON, invalid event: rejected before anything is written.
    for (input, says) in [
        (format!("{good}\n{{\"type\":\"\"}}\n"), "type"),
        (
            format!("{good}\n{{\"type\":\"A\",\"tags\":[\"\"]}}\n"),
            "tag",
        ),
    ] {
        cli(Some(url), &["append"], Some(&input)).fails(1, says);
        assert_eq!(head(url), Some(h), "nothing written for {input:?}");
    }
    // NUL bytes, which PostgreSQL cannot store.
    for input in [
        format!("{good}\n{{\"type\":\"A\",\"tags\":[\"a\\u0000b\"]}}\n"),
        format!("{good}\n{{\"type\":\"A\",\"data\":{{\"s\":\"a\\u0000b\"}}}}\n"),
        format!("{good}\n{{\"type\":\"A\\u0000\"}}\n"),
    ] {
        cli(Some(url), &["append"], Some(&input)).fails(1, "NUL");
        assert_eq!(head(url), Some(h), "nothing written for {input:?}");
    }
    let id = Uuid::new_v4();
    let twice = jsonl(&[
        json!({"type": "A", "id": id}),
        json!({"type": "B", "id": id}),
    ]);
    cli(Some(url), &["append"], Some(&twice)).fails(1, &id.to_string());
    assert_eq!(head(url), Some(h));
    assert_eq!(read(url, &[]).len(), 1);

    // CRLF line ends and blank lines are fine.
    let r = cli(
        Some(url),
        &["append"],
        Some("{\"type\":\"A\"}\r\n\r\n{\"type\":\"B\"}\r\n"),
    );
    assert_eq!(r.ok().json()["position"], json!(h + 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_stdin_is_an_error() {
    let db = migrated().await;
    let url = db.url();
    for input in ["", "\n", "\n  \n\t\n"] {
        cli(Some(url), &["append"], Some(input)).fails(1, "no events");
        cli(Some(url), &["append", "--fail-if", "\"all\""], Some(input)).fails(1, "no events");
    }
    // stdin closed (not a pipe): same.
    cli(Some(url), &["append"], None).fails(1, "no events");
    assert_eq!(head(url), None, "nothing written");
}

// ---- Connection strings ----

#[tokio::test(flavor = "multi_thread")]
async fn database_url_comes_from_the_flag_or_the_environment() {
    let db = TestDatabase::create().await.unwrap();
    let url = db.url();

    // DATABASE_URL on the child only.
    let mut cmd = command();
    cmd.env("DATABASE_URL", url).arg("migrate");
    run_cmd(cmd, None).ok();
    let mut cmd = command();
    cmd.env("DATABASE_URL", url).arg("append");
    let r = run_cmd(cmd, Some(&jsonl(&[json!({"type": "A"})])));
    assert_eq!(r.ok().json()["position"], json!(1));
    let mut cmd = command();
    cmd.env("DATABASE_URL", url).arg("head");
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");

    // The flag wins over the environment.
    let bad = format!(
        "host=127.0.0.1 port={} user=postgres password={SECRET} dbname=x connect_timeout=5",
        closed_port()
    );
    let mut cmd = command();
    cmd.env("DATABASE_URL", &bad)
        .args(["--database-url", url, "head"]);
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");
    // The flag may follow the subcommand.
    let r = cli(None, &["head", "--database-url", url], None);
    assert_eq!(r.ok().stdout, "1\n");
    // The environment alone, when wrong, fails (and hides the password).
    let mut cmd = command();
    cmd.env("DATABASE_URL", &bad).arg("head");
    run_cmd(cmd, None).fails(1, "cannot connect").hides(SECRET);

    // Neither: an error saying how to give one.
    for args in [&["head"][..], &["read"], &["status"], &["migrate"]] {
        cli(None, args, None).fails(1, "--database-url");
        let mut cmd = command();
        cmd.env("DATABASE_URL", "").args(args);
        run_cmd(cmd, None).fails(1, "DATABASE_URL");
    }
}

/// Every command that connects, with the input it needs.
fn connecting_commands() -> Vec<(Vec<&'static str>, Option<String>)> {
    let ev = Some(jsonl(&[json!({"type": "A"})]));
    vec![
        (vec!["migrate"], None),
        (vec!["status"], None),
        (vec!["status", "--json"], None),
        (vec!["head"], None),
        (vec!["read"], None),
        (vec!["read", "--type", "A", "--tag", "x"], None),
        (vec!["append"], ev.clone()),
        (vec!["append", "--fail-if", "\"all\"", "--after", "1"], ev),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_fails_clearly_without_showing_the_password() {
    let port = closed_port();
    let urls = [
        format!("host=127.0.0.1 port={port} user=postgres password={SECRET} dbname=app connect_timeout=5"),
        format!("host=127.0.0.1 port={port} user=postgres password='{SECRET}' dbname=app"),
        format!("postgresql://postgres:{SECRET}@127.0.0.1:{port}/app"),
        format!("postgres://postgres:{SECRET}@127.0.0.1:{port}/app?connect_timeout=5"),
    ];
    for url in &urls {
        for (args, input) in connecting_commands() {
            let r = cli(Some(url), &args, input.as_deref());
            r.fails(1, "cannot connect").hides(SECRET);
            assert!(
                r.stderr.contains(&format!("127.0.0.1:{port}")),
                "says where: {r:#?}"
            );
            // Through the environment too.
            let mut cmd = command();
            cmd.env("DATABASE_URL", url).args(&args);
            run_cmd(cmd, input.as_deref())
                .fails(1, "cannot connect")
                .hides(SECRET);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_on_the_real_server_fails_without_showing_it() {
    let db = migrated().await;
    let config = db.config().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("test server not on TCP: {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().expect("user");
    let dbname = config.get_dbname().expect("dbname");
    let urls = [
        format!("host={host} port={port} user={user} password={SECRET} dbname={dbname}"),
        format!("postgresql://{user}:{SECRET}@{host}:{port}/{dbname}"),
    ];
    // The throwaway cluster checks passwords (scram-sha-256); a server given
    // by DATABASE_URL may trust everyone.
    let checks_passwords = std::env::var("DATABASE_URL").is_err();
    for url in &urls {
        for (args, input) in connecting_commands() {
            let r = cli(Some(url), &args, input.as_deref());
            r.hides(SECRET);
            if checks_passwords {
                r.fails(1, "password authentication failed");
            }
        }
    }
    assert_eq!(head(db.url()), None, "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_connection_strings_and_help_never_show_the_password() {
    let port = closed_port();
    for url in [
        format!("host=127.0.0.1 port=notaport password={SECRET}"),
        format!("host=127.0.0.1 password='{SECRET}"),
        format!("host=127.0.0.1 password={SECRET} bogus_option=1"),
        format!("host=127.0.0.1 password={SECRET} sslmode=bogus"),
        format!("postgresql://postgres:{SECRET}@127.0.0.1:notaport/app"),
        format!("postgresql://postgres:{SECRET}@127.0.0.1:99999/app"),
        format!("postgresql://postgres:{SECRET}@127.0.0.1:{port}/app?bogus=1"),
    ] {
        for (args, input) in connecting_commands() {
            cli(Some(&url), &args, input.as_deref())
                .fails(1, "invalid")
                .hides(SECRET);
        }
    }

    // --help and usage errors, with the password in the flag or the environment.
    let url = format!("host=127.0.0.1 port={port} user=postgres password={SECRET}");
    let helps: [&[&str]; 6] = [
        &["--help"],
        &["help"],
        &["append", "--help"],
        &["read", "--help"],
        &["status", "--help"],
        &["--version"],
    ];
    for args in helps {
        let mut cmd = command();
        cmd.env("DATABASE_URL", &url).args(args);
        let r = run_cmd(cmd, None);
        r.ok().hides(SECRET);
        assert!(!r.stdout.is_empty(), "{r:#?}");
        let r = cli(Some(&url), args, None);
        r.ok().hides(SECRET);
    }
    let mut cmd = command();
    cmd.env("DATABASE_URL", &url).arg("--help");
    let r = run_cmd(cmd, None);
    assert!(r.stdout.contains("--database-url"), "{r:#?}");
    assert!(r.stdout.contains("DATABASE_URL"), "{r:#?}");

    let usage: [&[&str]; 6] = [
        &[],
        &["bogus"],
        &["read", "--limit", "many"],
        &["read", "--after", "1", "--from", "1"],
        &["append", "--after", "1"],
        &["head", "--database-url"],
    ];
    for args in usage {
        let mut cmd = command();
        cmd.env("DATABASE_URL", &url).args(args);
        let r = run_cmd(cmd, None);
        assert_eq!(r.code, 2, "{r:#?}");
        r.hides(SECRET);
        let r = cli(Some(&url), args, None);
        assert_eq!(r.code, 2, "{r:#?}");
        r.hides(SECRET);
    }
    // The flag given twice.
    let r = cli(Some(&url), &["--database-url", &url, "head"], None);
    assert_eq!(r.code, 2, "{r:#?}");
    r.hides(SECRET);
}

// ---- Usage ----

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    for args in [
        &[][..],
        &["bogus"],
        &["head", "extra"],
        &["status", "--yaml"],
        &["read", "--limit", "-1"],
        &["read", "--limit", "many"],
        &["read", "--after", "x"],
        &["read", "--to"],
        &["read", "--query"],
        &["read", "--after", "1", "--from", "2"],
        &["read", "--query", "\"all\"", "--type", "A"],
        &["append", "--after", "1"],
        &[
            "append",
            "--fail-if",
            "\"all\"",
            "--condition",
            "[{\"query\":\"all\"}]",
        ],
        &["append", "--fail-if", "[{}]"],
        &["append", "--condition", "[]"],
        &[
            "append",
            "--fail-if",
            "\"all\"",
            "--after",
            "9223372036854775808",
        ],
    ] {
        let r = cli(Some("host=127.0.0.1 port=1"), args, Some(""));
        assert_eq!(r.code, 2, "usage error for {args:?}: {r:#?}");
        assert!(r.stdout.is_empty(), "{r:#?}");
        assert!(!r.stderr.is_empty(), "{r:#?}");
    }
    for args in [&["--help"][..], &["read", "--help"], &["--version"]] {
        let r = cli(None, args, None);
        r.ok();
        assert!(!r.stdout.is_empty(), "{r:#?}");
    }
    let r = cli(None, &["--help"], None);
    for sub in ["migrate", "status", "head", "append", "read"] {
        assert!(r.stdout.contains(sub), "--help lists {sub}: {r:#?}");
    }
    let r = cli(None, &["read", "--help"], None);
    for flag in [
        "--query",
        "--type",
        "--tag",
        "--after",
        "--from",
        "--to",
        "--backwards",
        "--limit",
    ] {
        assert!(r.stdout.contains(flag), "read --help lists {flag}: {r:#?}");
    }
    let r = cli(None, &["append", "--help"], None);
    for flag in ["--fail-if", "--after", "--condition"] {
        assert!(
            r.stdout.contains(flag),
            "append --help lists {flag}: {r:#?}"
        );
    }
}

// ---- Large logs ----

#[tokio::test(flavor = "multi_thread")]
async fn large_reads_page_through_and_conflicts_are_capped_and_closed_pipes_are_fine() {
    let db = migrated().await;
    let url = db.url();
    let n: u64 = 2500;
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": if i % 2 == 0 { "Even" } else { "Odd" }, "data": {"i": i, "pad": "x".repeat(100)}, "tags": [format!("k{}", i % 3)]}))
        .collect();
    let last = append(url, &[], &events);
    assert_eq!(last, n);

    // More than one page (1000), in both directions, with and without limits.
    let all = positions(url, &[]);
    assert_eq!(all, (1..=n).collect::<Vec<_>>());
    let back = positions(url, &["--backwards", "--limit", "1500"]);
    assert_eq!(back, (n - 1499..=n).rev().collect::<Vec<_>>());
    let window = positions(url, &["--after", "700", "--to", "2300", "--limit", "1200"]);
    assert_eq!(window, (701..=1900).collect::<Vec<_>>());
    let odd = read(url, &["--type", "Odd", "--tag", "k0"]);
    let expect: Vec<u64> = (1..=n)
        .filter(|p| (p - 1) % 2 == 1 && (p - 1) % 3 == 0)
        .collect();
    assert_eq!(
        odd.iter()
            .map(|e| e["position"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        expect
    );
    assert_eq!(odd[0]["data"]["i"], json!(expect[0] - 1));

    // A conflict reports the latest position and at most 100 events (the earliest).
    let r = cli(
        Some(url),
        &["append", "--fail-if", "\"all\""],
        Some(&jsonl(&[json!({"type": "A"})])),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out["conflict"]["position"], json!(n));
    let ps: Vec<u64> = out["conflict"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(ps, (1..=100).collect::<Vec<_>>());
    assert_eq!(head(url), Some(n), "nothing written");

    // `dcbstore read | head -1`: a reader that stops early is not an error.
    let mut child = command()
        .args(["--database-url", url, "read"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    {
        use std::io::BufRead;
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(&first).unwrap()["position"],
        1
    );
}

// ---- Known bug ----

/// An empty `host=`, `user=` or `dbname=` value (an unset shell variable:
/// `"host=$PGHOST password=$PW"`) makes the parser take the next token,
/// `password=...`, as that value, and the connection error prints it.
#[tokio::test(flavor = "multi_thread")]
async fn empty_parameter_before_the_password_does_not_show_it() {
    let port = closed_port();
    for url in [
        format!("host= password={SECRET}"),
        format!("host=127.0.0.1 port={port} user= password={SECRET}"),
        format!("host=127.0.0.1 port={port} dbname= password={SECRET}"),
    ] {
        let r = cli(Some(&url), &["head"], None);
        assert_eq!(r.code, 1, "{r:#?}");
        r.hides(SECRET);
    }
}

// ---- Issue 13, part 2: the CLI as psql and sqlx-cli users expect ----

/// A superuser client of `db`.
async fn admin(db: &TestDatabase) -> tokio_postgres::Client {
    dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap()
}

/// A login role with a password (cluster-wide, a random name).
async fn login_role(admin: &tokio_postgres::Client, prefix: &str) -> (String, String) {
    let name = format!("{prefix}_{}", Uuid::new_v4().simple());
    let password = Uuid::new_v4().simple().to_string();
    admin
        .batch_execute(&format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
        .await
        .unwrap();
    (name, password)
}

/// `db`'s connection string for `user` with `password`.
fn url_as(db: &TestDatabase, user: &str, password: &str) -> String {
    let mut config = db.config().unwrap();
    config.user(user).password(password);
    dcbstore::testing::to_key_value(&config)
}

/// The host and port of `db` (TCP).
fn host_port(db: &TestDatabase) -> (String, u16) {
    let config = db.config().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        other => panic!("a TCP host: {other:?}"),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

#[tokio::test(flavor = "multi_thread")]
async fn bare_all_works_for_query_and_fail_if_and_errors_name_cli_syntax() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "A"}), json!({"type": "B"})]);
    assert_eq!(positions(url, &["--query", "all"]), [1, 2]);
    assert_eq!(
        positions(url, &["--query", "\"all\""]),
        [1, 2],
        "quoted JSON still works"
    );
    let r = cli(
        Some(url),
        &["append", "--fail-if", "all", "--after", "1"],
        Some(&jsonl(&[json!({"type": "C"})])),
    );
    assert_eq!(r.code, 3, "an event after 1 matches all: {r:#?}");
    append(
        url,
        &["--fail-if", "all", "--after", "2"],
        &[json!({"type": "C"})],
    );
    for args in [
        &["read", "--query", "[]"][..],
        &["read", "--query", "[{}]"],
        &["append", "--fail-if", "[]"],
        &["append", "--condition", r#"[{"query":[]}]"#],
    ] {
        let r = cli(Some(url), args, Some(""));
        assert_eq!(r.code, 2, "{args:?}: {r:#?}");
        assert!(!r.stderr.contains("Query::"), "no Rust names: {r:#?}");
        assert!(r.stderr.contains("all"), "{r:#?}");
    }
    let r = cli(Some(url), &["read", "--query", "[]"], None);
    assert!(r.stderr.contains("--query all"), "{r:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn append_prints_first_and_last_position_ids_in_input_order_and_already_stored() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "Before"})]);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let input = format!(
        "{}\n\n{}\n{}\n",
        json!({"type": "A", "id": b}),
        json!({"type": "B"}),
        json!({"type": "C", "id": a})
    );
    let out = cli(Some(url), &["append"], Some(&input)).ok().json();
    assert_eq!(out["position"], 4, "{out}");
    assert_eq!(out["first_position"], 2, "{out}");
    assert_eq!(out["already_stored"], false, "{out}");
    let ids = out["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], json!(b));
    assert_eq!(ids[2], json!(a));
    let generated = ids[1].as_str().unwrap();
    assert_eq!(read(url, &["--type", "B"])[0]["id"], json!(generated));

    // The documented retry from the CLI: resend the same ids.
    let retry = format!(
        "{}\n{}\n{}\n",
        json!({"type": "A", "id": b}),
        json!({"type": "B", "id": generated}),
        json!({"type": "C", "id": a})
    );
    let again = cli(Some(url), &["append"], Some(&retry)).ok().json();
    assert_eq!(
        again,
        json!({"position": 4, "first_position": 2, "ids": [b, generated, a], "already_stored": true})
    );
    assert_eq!(head(url), Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn status_check_exit_codes_and_the_full_report_on_a_checksum_mismatch() {
    let db = TestDatabase::create().await.unwrap();
    let url = db.url();
    // Fresh: 4, with the report.
    let r = cli(Some(url), &["status", "--check"], None);
    assert_eq!(r.code, 4, "{r:#?}");
    assert!(r.stdout.contains("dcbstore migrate"), "{r:#?}");
    let r = cli(Some(url), &["status", "--check", "--json"], None);
    assert_eq!(r.code, 4, "{r:#?}");
    assert_eq!(r.json()["state"], "fresh");
    cli(Some(url), &["migrate"], None).ok();
    cli(Some(url), &["status", "--check"], None).ok();
    // Without --check the exit status stays 0 whatever the state.
    let client = admin(&db).await;

    // A checksum mismatch: 5, and the full report naming the version and what to do.
    client
        .batch_execute(
            "UPDATE dcbstore.schema_migrations SET checksum = 'tampered' WHERE version = 2",
        )
        .await
        .unwrap();
    let r = cli(Some(url), &["status", "--check"], None);
    assert_eq!(r.code, 5, "{r:#?}");
    for needle in [
        "state:             checksum mismatch",
        "store id:",
        "migration 2 (projections) has checksum tampered",
        "restore",
    ] {
        assert!(r.stdout.contains(needle), "{needle}: {r:#?}");
    }
    let r = cli(Some(url), &["status", "--check", "--json"], None);
    assert_eq!(r.code, 5, "{r:#?}");
    let s = r.json();
    assert_eq!(s["checksum_mismatches"][0]["version"], 2, "{s}");
    assert_eq!(s["checksum_mismatches"][0]["applied"], "tampered", "{s}");
    // Without --check: the report, then the error (exit 1).
    let r = cli(Some(url), &["status"], None);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.contains("migration 2 (projections)"), "{r:#?}");
    assert!(r.stderr.contains("checksum"), "{r:#?}");
    let expected = MIGRATIONS
        .iter()
        .find(|m| m.version == 2)
        .unwrap()
        .checksum();
    client
        .execute(
            "UPDATE dcbstore.schema_migrations SET checksum = $1 WHERE version = 2",
            &[&expected],
        )
        .await
        .unwrap();
    cli(Some(url), &["status", "--check"], None).ok();

    // Ahead: 5.
    client
        .batch_execute(
            "INSERT INTO dcbstore.schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')",
        )
        .await
        .unwrap();
    let r = cli(Some(url), &["status", "--check"], None);
    assert_eq!(r.code, 5, "ahead: {r:#?}");
    assert!(r.stdout.contains("upgrade dcbstore"), "{r:#?}");
    cli(Some(url), &["status"], None).ok();

    // Pending (migrations at an older version): 4.
    let db = TestDatabase::create().await.unwrap();
    admin(&db)
        .await
        .batch_execute(
            "CREATE SCHEMA dcbstore;
             CREATE TABLE dcbstore.schema_migrations (
                 version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO dcbstore.schema_migrations (version, name, checksum) VALUES (0, 'old', 'x');",
        )
        .await
        .unwrap();
    let r = cli(Some(db.url()), &["status", "--check"], None);
    assert_eq!(r.code, 4, "pending: {r:#?}");
    assert!(r.stdout.contains("dcbstore migrate"), "{r:#?}");
    cli(Some(db.url()), &["status"], None).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn projections_status_check_failed_or_lagging_and_aligned_tables() {
    let db = migrated().await;
    let url = db.url();
    append(
        url,
        &[],
        &[
            json!({"type": "A"}),
            json!({"type": "B"}),
            json!({"type": "C"}),
        ],
    );
    let client = admin(&db).await;
    client
        .batch_execute(
            "INSERT INTO dcbstore.projections (name, checkpoint, state) VALUES
               ('p', 2, 'running'),
               ('a_much_longer_projection_name', 0, 'idle')",
        )
        .await
        .unwrap();
    cli(Some(url), &["projections", "status", "--check"], None).ok();
    let r = cli(
        Some(url),
        &["projections", "status", "--check", "--max-lag", "2"],
        None,
    );
    assert_eq!(r.code, 4, "lag 3 > 2: {r:#?}");
    cli(
        Some(url),
        &["projections", "status", "--check", "--max-lag", "3"],
        None,
    )
    .ok();
    client
        .batch_execute(
            "UPDATE dcbstore.projections SET state = 'failed', last_error = 'boom', error_position = 3,
                    failures = 2 WHERE name = 'p'",
        )
        .await
        .unwrap();
    let r = cli(Some(url), &["projections", "status", "--check"], None);
    assert_eq!(r.code, 4, "failed: {r:#?}");
    // The table: text columns start where their header does, numbers end
    // where theirs does.
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{r:#?}");
    let at = |column: &str| {
        lines[0]
            .find(column)
            .unwrap_or_else(|| panic!("{column}: {r:#?}"))
    };
    for column in ["state", "last update", "last error"] {
        for line in &lines[1..] {
            assert!(
                line[..at(column)].ends_with("  ") && !line[at(column)..].starts_with(' '),
                "{column} aligned in {line:?}: {r:#?}"
            );
        }
    }
    for column in ["checkpoint", "head", "lag", "failures"] {
        let end = at(column) + column.len();
        for line in &lines[1..] {
            assert!(
                line[..end].ends_with(|c: char| c.is_ascii_digit())
                    && line[end..].starts_with("  "),
                "{column} aligned in {line:?}: {r:#?}"
            );
        }
    }
    assert!(r.stdout.contains("at position 3: boom"), "{r:#?}");
    assert!(r.stdout.contains("failed"), "{r:#?}");
    let rows = cli(Some(url), &["projections", "status", "--json"], None)
        .ok()
        .json_lines();
    assert!(rows[0]["updated_at"].is_string(), "{rows:?}");
    assert!(
        cli(
            Some(url),
            &["projections", "status", "--max-lag", "1"],
            None
        )
        .code
            == 2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn permission_errors_say_what_to_grant_and_grant_keeps_redact() {
    let db = TestDatabase::create().await.unwrap();
    let client = admin(&db).await;
    let (owner, owner_pw) = login_role(&client, "dcb_owner").await;
    let (app, app_pw) = login_role(&client, "dcb_app").await;
    client
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE {} TO {owner}",
            db.name()
        ))
        .await
        .unwrap();
    let (as_owner, as_app) = (url_as(&db, &owner, &owner_pw), url_as(&db, &app, &app_pw));
    let r = cli(Some(&as_app), &["migrate"], None);
    r.fails(1, "CREATE on database").hides(&app_pw);
    cli(Some(&as_owner), &["migrate"], None).ok();
    append(
        &as_owner,
        &[],
        &[json!({"type": "A", "data": {"email": "x@y"}})],
    );

    // Not granted: the privilege, and the command that gives it.
    let r = cli(Some(&as_app), &["read"], None);
    r.fails(1, "USAGE on schema dcbstore")
        .fails(1, &format!("dcbstore grant {app}"))
        .hides(&app_pw);
    // Only the owner can grant.
    cli(Some(&as_app), &["grant", &app], None).fails(1, "only the schema's owner");
    cli(Some(&as_owner), &["grant", &app], None).ok();
    assert_eq!(read(&as_app, &[]).len(), 1);
    let redact = [
        "redact",
        "--position",
        "1",
        "--data",
        "null",
        "--reason",
        "gdpr",
    ];
    cli(Some(&as_app), &redact, None)
        .fails(1, "EXECUTE on dcbstore.redact")
        .fails(1, &format!("dcbstore grant {app} --redact"));

    // grant without --redact never takes redact back.
    cli(Some(&as_owner), &["grant", &app, "--redact"], None).ok();
    cli(Some(&as_owner), &["grant", &app], None).ok();
    cli(Some(&as_app), &redact, None).ok();

    // A missing event is a usage error.
    let r = cli(
        Some(&as_app),
        &[
            "redact",
            "--position",
            "99",
            "--data",
            "null",
            "--reason",
            "x",
        ],
        None,
    );
    r.fails(2, "no event at position 99");
}

#[tokio::test(flavor = "multi_thread")]
async fn grant_read_only_lets_a_role_read_but_not_append_or_redact_and_refuses_redact_with_it() {
    let db = TestDatabase::create().await.unwrap();
    let client = admin(&db).await;
    let (owner, owner_pw) = login_role(&client, "dcb_owner").await;
    let (reader, reader_pw) = login_role(&client, "dcb_reader").await;
    client
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE {} TO {owner}",
            db.name()
        ))
        .await
        .unwrap();
    let (as_owner, as_reader) = (
        url_as(&db, &owner, &owner_pw),
        url_as(&db, &reader, &reader_pw),
    );
    cli(Some(&as_owner), &["migrate"], None).ok();
    append(&as_owner, &[], &[json!({"type": "A", "tags": ["t:1"]})]);

    // The help says what the role is for.
    let help = cli(None, &["grant", "--help"], None);
    help.ok();
    assert!(
        help.stdout
            .contains("operations console and reporting tools"),
        "{help:#?}"
    );

    // Both together are a contradiction: a usage error, nothing granted.
    cli(
        Some(&as_owner),
        &["grant", &reader, "--read-only", "--redact"],
        None,
    )
    .fails(2, "cannot be used with");
    cli(Some(&as_reader), &["read"], None).fails(1, "USAGE on schema dcbstore");

    // An application role with redact, downgraded: read only, redact gone.
    let r = cli(Some(&as_owner), &["grant", &reader, "--redact"], None);
    r.ok();
    assert_eq!(
        r.stdout,
        format!("granted {reader:?} append and read and redact\n")
    );
    let r = cli(Some(&as_owner), &["grant", &reader, "--read-only"], None);
    r.ok();
    assert_eq!(r.stdout, format!("granted {reader:?} read only\n"));
    assert_eq!(positions(&as_reader, &["--tag", "t:1"]), [1]);
    assert_eq!(head(&as_reader), Some(1));
    cli(Some(&as_reader), &["status", "--check"], None).ok();
    // (Not `fails`: the writer also logs the failed batch as a warning.)
    let r = cli(
        Some(&as_reader),
        &["append"],
        Some(&jsonl(&[json!({"type": "B"})])),
    );
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.is_empty(), "{r:#?}");
    assert!(
        r.stderr
            .contains("lacks EXECUTE on function dcbstore.append_batch_typed"),
        "{r:#?}"
    );
    r.hides(&reader_pw);
    cli(
        Some(&as_reader),
        &[
            "redact",
            "--position",
            "1",
            "--data",
            "null",
            "--reason",
            "gdpr",
        ],
        None,
    )
    .fails(1, "EXECUTE on dcbstore.redact");
    assert_eq!(head(&as_owner), Some(1), "the refused append wrote nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_settings_come_from_libpq_variables_the_password_file_and_dotenv() {
    let db = migrated().await;
    let config = db.config().unwrap();
    let (host, port) = host_port(&db);
    let user = config.get_user().unwrap().to_string();
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
    append(db.url(), &[], &[json!({"type": "A"})]);
    let dir = std::env::temp_dir().join(format!("dcbstore-cli-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let pg = |cmd: &mut Command| {
        cmd.env("PGHOST", &host)
            .env("PGPORT", port.to_string())
            .env("PGUSER", &user)
            .env("PGDATABASE", db.name())
            .env("PGSSLMODE", "disable");
    };

    // The PG* variables alone, as psql; the password never shown, even in debug logs.
    let mut cmd = command();
    pg(&mut cmd);
    cmd.env("PGPASSWORD", &password)
        .env("DCBSTORE_LOG", "debug")
        .env("PGAPPNAME", "dcbstore-test")
        .arg("head");
    let r = run_cmd(cmd, None);
    assert_eq!(r.ok().stdout, "1\n");
    r.hides(&password);
    // A wrong PGPASSWORD fails without showing it.
    let mut cmd = command();
    pg(&mut cmd);
    cmd.env("PGPASSWORD", SECRET).arg("head");
    run_cmd(cmd, None).fails(1, "password").hides(SECRET);
    // Bad variables are clear errors.
    let mut cmd = command();
    pg(&mut cmd);
    cmd.env("PGCONNECT_TIMEOUT", "soon").arg("head");
    run_cmd(cmd, None).fails(1, "PGCONNECT_TIMEOUT");
    let mut cmd = command();
    pg(&mut cmd);
    cmd.env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", dir.join("no-such-ca.pem"))
        .arg("head");
    run_cmd(cmd, None).fails(1, "no-such-ca.pem");

    // A URL without a password (the README's recipe): the password file.
    let pgpass = dir.join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "other:1:*:*:nope\n{host}:{port}:{}:{user}:{password}\n",
            db.name()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let bare = format!(
        "postgres://{user}@{host}:{port}/{}?sslmode=disable",
        db.name()
    );
    let mut cmd = command();
    cmd.env("PGPASSFILE", &pgpass)
        .env("DATABASE_URL", &bare)
        .arg("head");
    let r = run_cmd(cmd, None);
    assert_eq!(r.ok().stdout, "1\n");
    r.hides(&password);
    // ~/.pgpass when PGPASSFILE is unset.
    std::fs::copy(&pgpass, dir.join(".pgpass")).unwrap();
    let mut cmd = command();
    cmd.env("HOME", &dir)
        .args(["--database-url", &bare, "head"]);
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");
    // PGPASSWORD comes before the file; the string's password before both.
    let mut cmd = command();
    cmd.env("PGPASSFILE", &pgpass)
        .env("PGPASSWORD", SECRET)
        .args(["--database-url", &bare, "head"]);
    run_cmd(cmd, None).fails(1, "password").hides(SECRET);
    let mut cmd = command();
    cmd.env("PGPASSWORD", SECRET)
        .args(["--database-url", db.url(), "head"]);
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");
    // The string wins over a variable: its sslmode over PGSSLMODE.
    let mut cmd = command();
    cmd.env("PGSSLMODE", "verify-full")
        .env("PGPASSFILE", &pgpass)
        .args(["--database-url", &bare, "head"]);
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");

    // DATABASE_URL from ./.env, after the flag and the environment.
    let work = dir.join("project");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join(".env"),
        format!(
            "# settings\nOTHER=1\nDATABASE_URL=\"{}\"\n",
            db.url().replace('"', "\\\"")
        ),
    )
    .unwrap();
    let mut cmd = command();
    cmd.current_dir(&work).arg("head");
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");
    let bad = format!(
        "host=127.0.0.1 port={} user=postgres password={SECRET} dbname=x connect_timeout=5",
        closed_port()
    );
    let mut cmd = command();
    cmd.current_dir(&work).env("DATABASE_URL", &bad).arg("head");
    run_cmd(cmd, None).fails(1, "cannot connect").hides(SECRET);
    std::fs::write(work.join(".env"), format!("DATABASE_URL='{bad}'\n")).unwrap();
    let mut cmd = command();
    cmd.current_dir(&work)
        .args(["--database-url", db.url(), "head"]);
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");
    let mut cmd = command();
    cmd.current_dir(&work).arg("head");
    run_cmd(cmd, None).fails(1, "cannot connect").hides(SECRET);
    // A malformed .env is an error that never shows its lines.
    std::fs::write(
        work.join(".env"),
        format!("DATABASE_URL='host=h password={SECRET}\n"),
    )
    .unwrap();
    let mut cmd = command();
    cmd.current_dir(&work).arg("head");
    run_cmd(cmd, None)
        .fails(1, "cannot read .env")
        .hides(SECRET);

    // The library's Store::connect follows the same rules (this process's
    // environment is shared with other tests: only the password file, by
    // a URL that names it).
    let with_file = format!(
        "postgres://{user}@{host}:{port}/{}?sslmode=disable",
        db.name()
    );
    let resolved = dcbstore::connection::ConnectOptions::resolve_with(&with_file, &|k| {
        (k == "PGPASSFILE").then(|| pgpass.display().to_string())
    })
    .unwrap();
    let store = dcbstore::Store::builder(&with_file)
        .unwrap()
        .tls(resolved.tls.clone());
    drop(store);
    let store = dcbstore::StoreBuilder::new(resolved.config)
        .tls(resolved.tls)
        .build()
        .await
        .unwrap();
    use dcbstore::EventStore;
    assert_eq!(store.head().await.unwrap().map(|p| p.get()), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn help_shows_global_options_once_and_the_line_format_and_messages_count_lines() {
    let r = cli(None, &["append", "--help"], None);
    r.ok();
    assert_eq!(
        r.stdout.matches("Global options").count(),
        2,
        "one heading, one for limits: {r:#?}"
    );
    assert_eq!(r.stdout.matches("--database-url <").count(), 1, "{r:#?}");
    let options =
        &r.stdout[r.stdout.find("Options:").unwrap()..r.stdout.find("Global options").unwrap()];
    assert!(
        options.contains("--fail-if")
            && !options.contains("--database-url")
            && !options.contains("--max-"),
        "{r:#?}"
    );
    assert!(
        r.stdout.contains(r#"{"type": "T", "data": JSON"#),
        "line format: {r:#?}"
    );
    assert!(
        r.stdout.contains("Example:") && r.stdout.contains("| dcbstore append"),
        "{r:#?}"
    );
    let r = cli(None, &["--help"], None);
    assert_eq!(r.stdout.matches("--database-url <").count(), 1, "{r:#?}");

    let db = migrated().await;
    let url = db.url();
    // A JSON array: what it is, and the remedy.
    cli(
        Some(url),
        &["append"],
        Some("[{\"type\":\"A\"},{\"type\":\"B\"}]\n"),
    )
    .fails(1, "expected one JSON object per line, got an array")
    .fails(1, "jq -c '.[]'");
    cli(Some(url), &["append"], Some("\n[\n  {\"type\":\"A\"}\n]\n")).fails(1, "line 2");
    // Blank lines count, in the tool's checks and in the store's.
    cli(
        Some(url),
        &["append"],
        Some("\n{\"type\":\"A\"}\n\n{\"type\":\n"),
    )
    .fails(1, "line 4");
    cli(
        Some(url),
        &["append"],
        Some("\n{\"type\":\"A\"}\n\n{\"type\":\"B\",\"tags\":[\"\"]}\n"),
    )
    .fails(1, "line 4");
    cli(
        Some(url),
        &["--max-tags-per-event", "1", "append"],
        Some("\n\n{\"type\":\"A\"}\n\n\n{\"type\":\"B\",\"tags\":[\"a\",\"b\"]}\n"),
    )
    .fails(1, "line 6");
    assert_eq!(head(url), None);

    // --log-format json: the final error is a JSON record too.
    let bad = format!(
        "host=127.0.0.1 port={} user=u password={SECRET} dbname=x",
        closed_port()
    );
    let r = cli(Some(&bad), &["--log-format", "json", "head"], None);
    assert_eq!(r.code, 1, "{r:#?}");
    r.hides(SECRET);
    let last: Value =
        serde_json::from_str(r.stderr.lines().last().unwrap()).expect("a JSON record");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert_eq!(last["fields"]["exit_status"], 1, "{last}");
    assert!(
        last["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{last}"
    );
    let r = cli(
        Some(url),
        &["--log-format", "json", "read", "--from", "0"],
        None,
    );
    assert_eq!(r.code, 2, "{r:#?}");
    let last: Value = serde_json::from_str(r.stderr.trim()).expect("a JSON usage error");
    assert_eq!(last["fields"]["exit_status"], 2, "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn export_keeps_recorded_at_and_refuses_to_overwrite_without_force() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "A"}), json!({"type": "B"})]);
    let dir = std::env::temp_dir().join(format!("dcbstore-export-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("backup.jsonl");
    let f = file.to_str().unwrap();
    cli(Some(url), &["export", "--output", f], None).ok();
    let exported = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines.iter().all(|l| l["recorded_at"].is_string()),
        "{exported}"
    );
    // An existing file is refused (usage), kept as it was; --force overwrites.
    std::fs::write(&file, "precious\n").unwrap();
    cli(Some(url), &["export", "--output", f], None).fails(2, "--force");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious\n");
    assert!(!dir.join("backup.jsonl.partial").exists());
    cli(Some(url), &["export", "--output", f, "--force"], None).ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), exported);
    assert_eq!(
        cli(Some(url), &["export", "--force"], None).code,
        2,
        "--force needs --output"
    );

    // Imported into an empty store, the export is the same log: positions,
    // ids, content and recorded_at; exported again, the same bytes.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let target = migrated().await;
    cli(Some(target.url()), &["import", "--input", f], None).ok();
    let again = cli(Some(target.url()), &["export"], None);
    assert_eq!(again.ok().stdout, exported, "the same log");
    // A time that would go back along positions is refused, naming the
    // line; a line without one gets the import time.
    let later = lines[1]["recorded_at"].as_str().unwrap().to_string();
    let old = json!({"id": Uuid::new_v4(), "type": "Old", "recorded_at": "2001-01-01T00:00:00Z"});
    let none = json!({"id": Uuid::new_v4(), "type": "NoTime"});
    cli(Some(target.url()), &["import"], Some(&jsonl(&[old]))).fails(1, "line 1: recorded_at");
    cli(Some(target.url()), &["import"], Some(&jsonl(&[none]))).ok();
    let tail = cli(Some(target.url()), &["read", "--from", "3"], None)
        .ok()
        .json_lines();
    assert_eq!(tail.len(), 1, "{tail:?}");
    assert!(
        tail[0]["recorded_at"].as_str().unwrap() > later.as_str(),
        "the import time: {tail:?}"
    );
    cli(
        Some(target.url()),
        &["import"],
        Some(&jsonl(&[
            json!({"id": Uuid::new_v4(), "type": "X", "recorded_at": "soon"}),
        ])),
    )
    .fails(1, "line 1");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_marks_redacted_events_and_redactions_lists_the_audit_rows() {
    let db = migrated().await;
    let url = db.url();
    append(
        url,
        &[],
        &[
            json!({"type": "A", "data": {"email": "x@y"}}),
            json!({"type": "B"}),
        ],
    );
    let before = chrono::Utc::now();
    cli(
        Some(url),
        &[
            "redact",
            "--position",
            "1",
            "--data",
            "null",
            "--reason",
            "erasure request",
        ],
        None,
    )
    .ok();
    let lines = cli(Some(url), &["read"], None).ok().json_lines();
    assert_eq!(lines[0]["data"], Value::Null);
    assert_eq!(
        lines[0]["redacted"]["reason"], "erasure request",
        "{}",
        lines[0]
    );
    let at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(lines[0]["redacted"]["at"].clone()).unwrap();
    assert!(at >= before - chrono::Duration::seconds(5), "{at}");
    assert!(
        lines[1].get("redacted").is_none(),
        "only redacted events are marked"
    );
    assert_eq!(
        ordered_keys(cli(Some(url), &["read", "--from", "2"], None).stdout.trim()),
        READ_KEYS
    );
    // A window that leaves it out does not mark it; one with it does.
    assert!(read(url, &["--after", "1"])
        .iter()
        .all(|l| l.get("redacted").is_none()));
    assert!(cli(Some(url), &["read", "--to", "1"], None)
        .ok()
        .json_lines()[0]["redacted"]
        .is_object());

    cli(
        Some(url),
        &[
            "redact",
            "--position",
            "1",
            "--data",
            "{}",
            "--reason",
            "second",
        ],
        None,
    )
    .ok();
    let rows = cli(Some(url), &["redactions"], None).ok().json_lines();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["position"], 1);
    assert_eq!(rows[0]["reason"], "erasure request");
    assert_eq!(rows[1]["reason"], "second");
    for key in [
        "redaction",
        "redacted_at",
        "redacted_by",
        "erased_sha256",
        "replacement_sha256",
    ] {
        assert!(rows[0].get(key).is_some(), "{key}: {rows:?}");
    }
    assert_eq!(
        cli(Some(url), &["read", "--to", "1"], None)
            .ok()
            .json_lines()[0]["redacted"]["reason"],
        "second",
        "the latest"
    );
    assert_eq!(
        cli(Some(url), &["redactions", "--position", "2"], None)
            .ok()
            .stdout,
        ""
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn positions_are_1_to_i64_max_and_after_also_0_in_every_command() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "A"}), json!({"type": "B"})]);
    let over = "9223372036854775808";
    for args in [
        &["read", "--after", "-1"][..],
        &["read", "--after", over],
        &["read", "--from", "0"],
        &["read", "--from", over],
        &["read", "--to", "0"],
        &["read", "--to", "-3"],
        &["read", "--to", over],
        &["export", "--after", "-1"],
        &["export", "--after", over],
        &[
            "redact",
            "--position",
            "0",
            "--data",
            "null",
            "--reason",
            "r",
        ],
        &[
            "redact",
            "--position",
            over,
            "--data",
            "null",
            "--reason",
            "r",
        ],
        &[
            "redact",
            "--position",
            "-1",
            "--data",
            "null",
            "--reason",
            "r",
        ],
        &["redactions", "--position", "0"],
        &["append", "--fail-if", "all", "--after", "-1"],
        &["append", "--fail-if", "all", "--after", over],
        &["append", "--condition", r#"[{"query":"all","after":-1}]"#],
        &[
            "append",
            "--condition",
            r#"[{"query":"all","after":9223372036854775808}]"#,
        ],
    ] {
        let r = cli(Some(url), args, Some(&jsonl(&[json!({"type": "X"})])));
        assert_eq!(r.code, 2, "usage error for {args:?}: {r:#?}");
        assert!(r.stdout.is_empty(), "{r:#?}");
    }
    assert_eq!(head(url), Some(2), "nothing appended");
    let max = "9223372036854775807";
    assert_eq!(positions(url, &["--after", "0"]), [1, 2]);
    assert_eq!(positions(url, &["--from", "1", "--to", max]), [1, 2]);
    assert!(positions(url, &["--after", "2"]).is_empty(), "at the head");
    assert!(
        positions(url, &["--after", "1000"]).is_empty(),
        "beyond the head: nothing"
    );
    assert!(positions(url, &["--after", max]).is_empty());
    let r = cli(Some(url), &["export", "--after", "0"], None);
    assert_eq!(r.ok().stdout.lines().count(), 2);
    append(
        url,
        &["--fail-if", "all", "--after", max],
        &[json!({"type": "C"})],
    );
    let r = cli(
        Some(url),
        &["append", "--fail-if", "all", "--after", "0"],
        Some(&jsonl(&[json!({"type": "D"})])),
    );
    assert_eq!(r.code, 3, "after 0: every event conflicts: {r:#?}");
}

/// The README is the front door (at most 250 lines); the manual is the guide
/// in docs/guide, whose every chapter is in its SUMMARY and compiled as
/// doctests; no relative link of either points at a file that is not there.
#[test]
fn the_readme_is_short_and_every_link_of_it_and_the_guide_resolves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 250,
        "README.md has {} lines",
        readme.lines().count()
    );
    let guide = root.join("docs/guide");
    let summary = std::fs::read_to_string(guide.join("SUMMARY.md")).unwrap();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let mut pages = vec![(root.join("README.md"), readme)];
    for entry in std::fs::read_dir(&guide).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("({name})")),
                "{name} is not in SUMMARY.md"
            );
            if name != "introduction.md" {
                assert!(
                    lib.contains(&format!("include_str!(\"../docs/guide/{name}\")")),
                    "{name}'s code blocks are not compiled (src/lib.rs)"
                );
            }
        }
        pages.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
    }
    for (page, text) in &pages {
        let dir = page.parent().unwrap();
        for link in text.split("](").skip(1) {
            let target = &link[..link.find(')').unwrap()];
            let file = target.split('#').next().unwrap();
            if file.is_empty() || file.contains("://") {
                continue;
            }
            assert!(
                dir.join(file).exists(),
                "{}: the link ({target}) points at no file",
                page.display()
            );
        }
    }
}

/// The README's quickstart, run as written against an empty database (its
/// `export` and `createdb` lines stand for the test database; `read --follow`
/// runs until it has printed the history, then gets Ctrl-C), and Cargo's
/// metadata has no placeholder.
#[tokio::test(flavor = "multi_thread")]
async fn readme_quickstart_runs_as_written_from_an_empty_database() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("From an empty PostgreSQL")
        .expect("the quickstart");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    let lines: Vec<&str> = block.lines().collect();
    assert!(lines.len() <= 10, "ten lines at most: {block}");
    for step in [
        "createdb",
        "dcbstore migrate",
        "dcbstore append",
        "dcbstore read",
        "--follow",
    ] {
        assert!(block.contains(step), "the quickstart shows {step}: {block}");
    }
    let install = &readme[readme.find("## Install").unwrap()..start];
    assert!(
        install.contains("cargo install --path .") && install.contains("cargo install dcbstore")
    );
    assert!(install.contains("PostgreSQL 14 or newer"), "{install}");

    let db = TestDatabase::create().await.unwrap();
    let config = db.config().unwrap();
    let (host, port) = host_port(&db);
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut outputs = Vec::new();
    for line in lines {
        let command = line.split("  #").next().unwrap().trim();
        if command.starts_with("export ") || command.starts_with("createdb") {
            continue;
        }
        let follow = command.contains("--follow");
        // `exec`: the signal goes to dcbstore itself, not to the shell.
        let mut cmd = command_in_shell(&format!("exec {command}"));
        cmd.env("PATH", &path)
            .env("PGHOST", &host)
            .env("PGPORT", port.to_string())
            .env("PGUSER", config.get_user().unwrap())
            .env(
                "PGPASSWORD",
                String::from_utf8(config.get_password().unwrap().to_vec()).unwrap(),
            )
            .env("PGDATABASE", db.name())
            .env("PGSSLMODE", "disable");
        if follow {
            outputs.push(follow_until_interrupted(cmd, 2));
            continue;
        }
        let r = run_cmd(cmd, None);
        assert_eq!(r.code, 0, "{command}: {r:#?}");
        outputs.push(r.stdout);
    }
    let followed = outputs.pop().unwrap();
    assert_eq!(
        followed.lines().count(),
        2,
        "read --follow prints the history: {followed}"
    );
    let last = outputs.last().unwrap();
    assert_eq!(last.lines().count(), 2, "the history: {last}");
    assert!(
        last.contains("CourseDefined") && last.contains("StudentSubscribed"),
        "{last}"
    );

    let cargo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    for placeholder in [
        "example.com",
        "example.org",
        "your-org",
        "yourname",
        "TODO",
        "FIXME",
        "<",
        "XXX",
    ] {
        assert!(
            !cargo.contains(placeholder),
            "placeholder {placeholder:?} in Cargo.toml"
        );
    }
}

/// Runs a `read --follow` command until it printed `lines` lines, then sends
/// it SIGINT (Ctrl-C): it must exit 0 with nothing on stderr. Its stdout.
fn follow_until_interrupted(mut cmd: Command, lines: usize) -> String {
    use std::io::{BufRead, BufReader, Read};
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the follow command");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    for _ in 0..lines {
        assert!(out.read_line(&mut printed).unwrap() > 0, "{printed}");
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "Ctrl-C ends --follow with 0: {stderr}"
    );
    assert_eq!(stderr, "");
    printed
}

/// `sh -c COMMAND` without the test's connection settings.
fn command_in_shell(command: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).env_remove("DATABASE_URL");
    for v in dcbstore::connection::LIBPQ_VARIABLES {
        cmd.env_remove(v);
    }
    cmd.env_remove("PGPASSFILE")
        .current_dir(std::env::temp_dir());
    cmd
}
