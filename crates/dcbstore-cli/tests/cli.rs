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
use dcbstore_testing::TestDatabase;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use dcbstore_test_support::{run_cmd, Run};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_dcbstore");

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
    dcbstore_testing::to_key_value(&config)
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

// The tests, one file per topic (tests/cli/*.rs), in this one binary.
mod cli {
    mod conditions;
    mod connection;
    mod input;
    mod large;
    mod log;
    mod readme;
    mod roles;
    mod schema;
    mod usage;
}
