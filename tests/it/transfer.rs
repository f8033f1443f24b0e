//! `dcbstore export` and `dcbstore import` (and the `transfer` module under
//! them) against real PostgreSQL databases: a round trip of a varied log that
//! crosses page and batch boundaries, idempotent re-runs, resuming an
//! interrupted import, bad lines and conflicting ids, and the output streams.
//!
//! The test process never sets `DATABASE_URL`: each child gets `--database-url`.

use std::path::{Path, PathBuf};
use std::process::Command;

use dcbstore::transfer::{self, ExportOptions, ImportOptions, ImportSummary};
use dcbstore::{Event, EventStore, Query, ReadOptions, SequencePosition, Store};
use dcbstore_testing::TestDatabase;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::cli as runner;
use runner::{bin, run_cmd, Run};

/// `dcbstore --database-url URL ARGS...`, with `stdin` piped (closed when `None`).
fn cli(url: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(bin());
    cmd.env_remove("DATABASE_URL")
        .arg("--database-url")
        .arg(url)
        .args(args);
    run_cmd(cmd, stdin)
}

/// Asserts exit 1 with one line on stderr mentioning every needle.
#[track_caller]
fn fails_with(r: &Run, needles: &[&str]) {
    for n in needles {
        r.fails(1, n);
    }
}

async fn migrated() -> (Store, TestDatabase) {
    let db = TestDatabase::create().await.expect("create test database");
    db.migrate().await.expect("migrate");
    let store = Store::connect(db.url()).await.expect("connect");
    (store, db)
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("dcbstore-transfer-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Event `i` of a varied log: several types, no/one/many tags, metadata,
/// unicode, escapes, nested JSON, numbers of every kind, null data.
fn varied(i: usize) -> Event {
    let data = match i % 6 {
        0 => json!({
            "n": i,
            "name": "Zürich 🚀 日本語 \"quoted\" \\ back\\slash",
            "nested": {"a": [1, 2.5, -3, {"b": null}], "deep": {"x": {"y": {"z": [true, false]}}}},
        }),
        1 => Value::Null,
        2 => json!([i, "x", 1e-7, 12_345_678_901_234_567_890_u64, -0.5]),
        3 => json!("a string with a newline\n, a tab\t and \u{1F600}"),
        4 => json!(-12.75),
        _ => json!({}),
    };
    let mut e = Event::new(format!("Type{}", i % 5), data);
    if i % 3 != 0 {
        e = e.with_tags([format!("entity:{}", i % 50), "tenant:ünï".to_string()]);
    }
    if i % 7 == 0 {
        e = e.with_tags(["zeta", "alpha", "alpha"]);
    }
    if i % 4 == 0 {
        let m = json!({"correlation": i, "user": "Łukasz", "trace": {"span": [1, 2]}});
        e = e.with_metadata(m.as_object().cloned().unwrap_or_default());
    }
    e
}

/// Appends `n` varied events in appends of up to 300.
async fn seed(store: &Store, n: usize) {
    let mut i = 0;
    while i < n {
        let end = (i + 300).min(n);
        let _ = store
            .append((i..end).map(varied).collect(), None)
            .await
            .expect("seed append");
        i = end;
    }
}

/// Every stored event: (position, event), recorded_at left out.
async fn log(store: &Store) -> Vec<(SequencePosition, Event)> {
    store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .expect("read")
        .into_iter()
        .map(|e| (e.position, e.event))
        .collect()
}

/// The log exported to `path` with the CLI; returns its lines.
fn export_file(url: &str, path: &Path) -> Vec<String> {
    cli(url, &["export", "--output", s(path)], None).ok();
    std::fs::read_to_string(path)
        .expect("export file")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn import_json(url: &str, args: &[&str], stdin: Option<&str>) -> Value {
    let mut all = vec!["import", "--json"];
    all.extend_from_slice(args);
    cli(url, &all, stdin).ok().json()
}

fn counts(summary: &Value) -> (u64, u64, u64) {
    let n = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {summary}"))
    };
    (n("lines_read"), n("imported"), n("already_present"))
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_then_import_into_an_empty_store_reproduces_the_log() {
    let (source, source_db) = migrated().await;
    seed(&source, 2_600).await;
    let scratch = Scratch::new();
    let file = scratch.path("backup.jsonl");
    let lines = export_file(source_db.url(), &file);
    assert_eq!(lines.len(), 2_600);
    assert!(
        !scratch.path("backup.jsonl.partial").exists(),
        "the partial file is renamed"
    );

    let (target, target_db) = migrated().await;
    let summary = import_json(
        target_db.url(),
        &["--input", s(&file), "--batch-size", "700"],
        None,
    );
    assert_eq!(counts(&summary), (2_600, 2_600, 0), "{summary}");
    assert_eq!(summary["last_line"], 2_600, "{summary}");

    let want = log(&source).await;
    let got = log(&target).await;
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "same position, id, type, data, tags and metadata");
    }
    assert_eq!(
        target.head().await.expect("head"),
        Some(SequencePosition::new(2_600))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn re_running_an_import_imports_nothing_and_changes_nothing() {
    let (source, source_db) = migrated().await;
    seed(&source, 1_200).await;
    let scratch = Scratch::new();
    let lines = export_file(source_db.url(), &scratch.path("e.jsonl"));
    let input = joined(&lines);

    let (target, target_db) = migrated().await;
    let first = import_json(target_db.url(), &["--batch-size", "500"], Some(&input));
    assert_eq!(counts(&first), (1_200, 1_200, 0));
    let before = target
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .expect("read");

    for batch in ["500", "1000", "7"] {
        let again = import_json(target_db.url(), &["--batch-size", batch], Some(&input));
        assert_eq!(counts(&again), (1_200, 0, 1_200), "batch size {batch}");
    }
    let after = target
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .expect("read");
    assert_eq!(after, before, "nothing changed, recorded_at included");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_import_resumes_without_duplicates() {
    let (source, source_db) = migrated().await;
    seed(&source, 1_500).await;
    let scratch = Scratch::new();
    let lines = export_file(source_db.url(), &scratch.path("e.jsonl"));

    let (target, target_db) = migrated().await;
    // Stopped after 700 lines (mid-batch for the second run's batches of 300).
    let half = import_json(
        target_db.url(),
        &["--batch-size", "300"],
        Some(&joined(&lines[..700])),
    );
    assert_eq!(counts(&half), (700, 700, 0));
    let whole = import_json(
        target_db.url(),
        &["--batch-size", "300"],
        Some(&joined(&lines)),
    );
    assert_eq!(counts(&whole), (1_500, 800, 700));

    let got = log(&target).await;
    let mut ids: Vec<Uuid> = got.iter().map(|(_, e)| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1_500, "no duplicates");
    assert_eq!(got, log(&source).await, "complete, positions included");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_line_stops_the_import_after_the_batches_before_it() {
    let (source, source_db) = migrated().await;
    seed(&source, 1_000).await;
    let scratch = Scratch::new();
    let lines = export_file(source_db.url(), &scratch.path("e.jsonl"));
    let id_450: Value = serde_json::from_str::<Value>(&lines[449]).expect("line")["id"].clone();

    let bad_lines = [
        (
            format!(r#"{{"id":{id_450},"type":"A","tagz":[]}}"#),
            "unknown field \"tagz\"",
        ),
        (r#"{"type":"A","data":{}}"#.to_string(), "no \"id\""),
        (
            format!(r#"{{"id":{id_450},"type":"A","tags":"x"}}"#),
            "\"tags\" must be an array of strings",
        ),
        (
            format!(r#"{{"id":{id_450},"type":"A""#),
            "invalid JSON at column",
        ),
        (
            format!(r#"{{"id":{id_450},"type":""}}"#),
            "must not be empty",
        ),
    ];
    for (bad, reason) in bad_lines {
        let (target, target_db) = migrated().await;
        let mut input = lines.clone();
        input[449] = bad.clone();
        let file = scratch.path("bad.jsonl");
        std::fs::write(&file, joined(&input)).expect("write input");
        let r = cli(
            target_db.url(),
            &["import", "--input", s(&file), "--batch-size", "200"],
            None,
        );
        fails_with(&r, &["line 450", reason, "lines 1 to 400 are imported"]);

        // Batches 1-200 and 201-400 are stored, nothing of 401-600.
        let got = log(&target).await;
        let want = log(&source).await;
        assert_eq!(got, want[..400].to_vec(), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixed_input_resumes_after_a_bad_line() {
    let (source, source_db) = migrated().await;
    seed(&source, 600).await;
    let scratch = Scratch::new();
    let lines = export_file(source_db.url(), &scratch.path("e.jsonl"));
    let (target, target_db) = migrated().await;
    let mut input = lines.clone();
    input[349] = "{not json".into();
    let r = cli(
        target_db.url(),
        &["import", "--batch-size", "100"],
        Some(&joined(&input)),
    );
    fails_with(&r, &["line 350", "lines 1 to 300 are imported"]);
    let fixed = import_json(
        target_db.url(),
        &["--batch-size", "100"],
        Some(&joined(&lines)),
    );
    assert_eq!(counts(&fixed), (600, 300, 300));
    assert_eq!(log(&target).await, log(&source).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_stored_with_other_content_is_an_error_and_its_batch_is_not_written() {
    let (target, target_db) = migrated().await;
    let taken = Uuid::now_v7();
    let _ = target
        .append(
            vec![Event::new("Original", json!({"v": 1})).with_id(taken)],
            None,
        )
        .await
        .expect("append");

    let line = |i: usize, id: Uuid, data: Value| {
        json!({"id": id, "type": "Imported", "data": data, "tags": [format!("n:{i}")]}).to_string()
    };
    let mut lines: Vec<String> = (1..=300)
        .map(|i| line(i, Uuid::now_v7(), json!({"i": i})))
        .collect();
    lines[149] = json!({"id": taken, "type": "Original", "data": {"v": 2}}).to_string();
    let r = cli(
        target_db.url(),
        &["import", "--batch-size", "100"],
        Some(&joined(&lines)),
    );
    fails_with(
        &r,
        &[
            "line 150",
            &taken.to_string(),
            "already stored with different content",
            "data differs",
            "lines 1 to 100 are imported",
        ],
    );
    let got = log(&target).await;
    assert_eq!(
        got.len(),
        101,
        "the original event and the first batch only"
    );
    assert_eq!(
        got[0].1.data,
        json!({"v": 1}),
        "the stored event is unchanged"
    );
    assert!(got[1..].iter().all(|(_, e)| e.event_type == "Imported"));

    // The same id twice in one input, with different content.
    let (other, other_db) = migrated().await;
    let id = Uuid::now_v7();
    let twice = joined(&[
        line(1, id, json!(1)),
        line(2, Uuid::now_v7(), json!(2)),
        line(1, id, json!(3)),
    ]);
    fails_with(
        &cli(other_db.url(), &["import"], Some(&twice)),
        &["line 3", "line 1", &id.to_string()],
    );
    assert_eq!(
        other.head().await.expect("head"),
        None,
        "nothing of the batch is written"
    );
    // Identical repeats are "already present".
    let same = joined(&[line(1, id, json!(1)), line(1, id, json!(1))]);
    let summary = import_json(other_db.url(), &[], Some(&same));
    assert_eq!(counts(&summary), (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn export_prints_only_json_lines_and_after_exports_the_tail() {
    let (source, db) = migrated().await;
    let url = db.url();

    // An empty store: nothing on stdout, a summary on stderr.
    let r = cli(url, &["export"], None);
    r.ok();
    assert!(r.stdout.is_empty(), "{r:#?}");
    assert!(r.stderr.contains("exported 0 events"), "{r:#?}");

    seed(&source, 2_100).await;
    let r = cli(url, &["export"], None);
    r.ok();
    let read = cli(url, &["read"], None);
    read.ok();
    assert_eq!(r.stdout, read.stdout, "exactly the lines `read` prints");
    assert_eq!(r.stdout.lines().count(), 2_100);
    for l in r.stdout.lines() {
        let v: Value = serde_json::from_str(l).expect("every stdout line is JSON");
        assert!(
            v["position"].is_u64() && v["recorded_at"].is_string(),
            "{l}"
        );
    }
    assert!(r.stderr.contains("exported 2100 events"), "{r:#?}");
    assert!(!r.stderr.contains("\"position\""), "no events on stderr");

    let tail = cli(url, &["export", "--after", "2000"], None);
    tail.ok();
    let positions: Vec<u64> = tail
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["position"]
                .as_u64()
                .expect("n")
        })
        .collect();
    assert_eq!(positions, (2_001..=2_100).collect::<Vec<_>>());
    let all_lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(tail.stdout.lines().collect::<Vec<_>>(), all_lines[2_000..]);

    let none = cli(url, &["export", "--after", "5000"], None);
    none.ok();
    assert!(none.stdout.is_empty(), "{none:#?}");

    // --output writes the same bytes and nothing to stdout.
    let scratch = Scratch::new();
    let file = scratch.path("out.jsonl");
    let f = cli(url, &["export", "-o", s(&file)], None);
    f.ok();
    assert!(f.stdout.is_empty(), "{f:#?}");
    assert_eq!(std::fs::read_to_string(&file).expect("file"), r.stdout);

    // An unwritable destination is an error, leaving nothing behind.
    let missing = scratch.path("no/such/dir/out.jsonl");
    cli(url, &["export", "--output", s(&missing)], None).fails(1, "cannot create");

    // Import's stdout is empty without --json; the summary goes to stderr.
    let (_target, target_db) = migrated().await;
    let i = cli(target_db.url(), &["import", "--input", s(&file)], None);
    i.ok();
    assert!(i.stdout.is_empty(), "{i:#?}");
    assert!(
        i.stderr
            .contains("2100 lines read, 2100 imported, 0 already present"),
        "{i:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn library_import_accepts_lines_from_other_stores_and_reports_progress() {
    let (store, _db) = migrated().await;
    let a = Uuid::now_v7();
    let b = Uuid::now_v7();
    let input = format!(
        "{}\n\n{}\n   \n{}\n",
        json!({"id": a, "type": "Legacy", "tags": ["z", "a", "z"]}),
        json!({"id": b, "type": "Legacy", "data": {"x": 1e2}, "metadata": {"src": "old"}}),
        // A time at or after the previous event's (here a minute ahead, within
        // the skew the store allows): kept.
        json!({"id": Uuid::now_v7(), "type": "Legacy", "position": 99,
               "recorded_at": chrono::Utc::now() + chrono::Duration::seconds(60)}),
    );
    let mut reports = Vec::new();
    let summary = transfer::import(
        &store,
        input.as_bytes(),
        &ImportOptions::new().batch_size(2),
        |s: &ImportSummary| reports.push(*s),
    )
    .await
    .expect("import");
    assert_eq!(
        (
            summary.lines_read,
            summary.imported,
            summary.already_present
        ),
        (3, 3, 0)
    );
    assert_eq!(summary.last_line, 5);
    assert_eq!(summary.bytes_read, input.len() as u64);
    assert_eq!(reports.len(), 2, "one report per batch: {reports:?}");
    assert_eq!(reports[0].imported, 2);

    let events = log(&store).await;
    assert_eq!(events[0].1.tags, ["a", "z"]);
    assert_eq!(events[0].1.data, Value::Null);
    assert_eq!(
        events[2].0,
        SequencePosition::new(3),
        "positions are the store's"
    );

    // `1e2` is stored as jsonb 100: re-importing it is "already present".
    let again = transfer::import(&store, input.as_bytes(), &ImportOptions::new(), |_| {})
        .await
        .expect("re-import");
    assert_eq!((again.imported, again.already_present), (0, 3));

    // Library export: the same lines as the store's read, with progress.
    let mut out = Vec::new();
    let mut seen = 0;
    let exported = transfer::export(
        &store,
        &ExportOptions::new().after(SequencePosition::new(1)),
        &mut out,
        |s| seen = s.exported,
    )
    .await
    .expect("export");
    assert_eq!(exported.exported, 2);
    assert_eq!(seen, 2);
    assert_eq!(exported.head, Some(SequencePosition::new(3)));
    assert_eq!(exported.last_position, Some(SequencePosition::new(3)));
    let text = String::from_utf8(out).expect("UTF-8");
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids, [b.to_string(), events[2].1.id.to_string()]);
}

/// Batches stay within an append's limits: one over 64 MiB of JSON is cut
/// before the line that would overflow it (that line starts the next batch),
/// and a batch size above 10,000 is lowered to it.
#[tokio::test(flavor = "multi_thread")]
async fn import_batches_stay_within_the_append_limits() {
    let (store, _db) = migrated().await;
    // 100 events of ~0.9 MiB: about 90 MiB in all, two appends.
    let blob = "x".repeat(900 * 1024);
    let input: String = (0..100)
        .map(|i| {
            format!(
                "{}\n",
                json!({"id": Uuid::now_v7(), "type": "Big", "data": {"i": i, "blob": blob}})
            )
        })
        .collect();
    let mut reports = Vec::new();
    let summary = transfer::import(
        &store,
        input.as_bytes(),
        &ImportOptions::new().batch_size(1_000_000),
        |s: &ImportSummary| reports.push(*s),
    )
    .await
    .expect("an import larger than one append");
    assert_eq!((summary.lines_read, summary.imported), (100, 100));
    assert_eq!(reports.len(), 2, "split by size: {reports:?}");
    assert!(reports[0].imported < 100 && reports[0].imported > 50);
    assert_eq!(
        reports[0].last_line, reports[0].imported,
        "the carried line is not counted as stored"
    );
    assert_eq!(summary.last_line, 100);
    let events = log(&store).await;
    assert_eq!(events.len(), 100);
    assert!(events
        .iter()
        .enumerate()
        .all(|(i, (_, e))| e.data["i"] == i as u64));
}

#[test]
fn help_describes_both_commands() {
    let help = cli("host=127.0.0.1 port=1", &["--help"], None);
    help.ok();
    assert!(
        help.stdout.contains("export") && help.stdout.contains("import"),
        "{help:#?}"
    );
    let e = cli("host=127.0.0.1 port=1", &["export", "--help"], None);
    e.ok();
    for flag in ["--after", "--output", "snapshot"] {
        assert!(
            e.stdout.contains(flag),
            "export --help mentions {flag}: {e:#?}"
        );
    }
    let i = cli("host=127.0.0.1 port=1", &["import", "--help"], None);
    i.ok();
    for flag in ["--input", "--batch-size", "--json", "id"] {
        assert!(
            i.stdout.contains(flag),
            "import --help mentions {flag}: {i:#?}"
        );
    }
    for args in [
        &["import", "--batch-size", "0"][..],
        &["export", "--after", "x"],
    ] {
        let r = cli("host=127.0.0.1 port=1", args, None);
        assert_eq!(r.code, 2, "{args:?}: {r:#?}");
    }
}

/// Every value jsonb holds comes back with the same bytes: numbers beyond a
/// double (30 digits, 1e-400) keep every digit, scale is kept (`1.50`),
/// strings keep their escapes. A full export imported into an empty store
/// exports the same bytes, through the library and the CLI, and importing
/// the export into its own source finds every event already present.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_export_imported_into_an_empty_store_exports_the_same_bytes() {
    let (source, source_db) = migrated().await;
    let owner = dcbstore::connection::connect(source_db.options().expect("options"))
        .await
        .expect("connect");
    // Through the SQL API, which takes any JSON text jsonb holds.
    for data in [
        r#"{"big": 123456789012345678901234567890, "neg": -98765432109876543210.123456789}"#,
        r#"[1.50, 1e-400, -0, 0.1, 1e2, 1.7976931348623157e308, 100000000000000000000000]"#,
        r#"{"s": "tab\there \"quoted\" \\ \u00e9 \ud83d\ude00 \u0001 a: b, c", "": {}, "x": []}"#,
        r#""a string""#,
        "null",
    ] {
        owner
            .execute(
                "SELECT dcbstore.append(jsonb_build_array(jsonb_build_object('type', 'V', 'data', $1::text::jsonb,
                        'metadata', jsonb_build_object('n', 1e30, 'k', 'v'), 'tags', jsonb_build_array('t:1'))))",
                &[&data],
            )
            .await
            .expect(data);
    }
    let export = |store: Store| async move {
        let mut out = Vec::new();
        transfer::export(&store, &ExportOptions::new(), &mut out, |_| {})
            .await
            .expect("export");
        String::from_utf8(out).expect("UTF-8")
    };
    let first = export(source.clone()).await;
    assert!(first.contains("123456789012345678901234567890"), "{first}");
    assert!(first.contains("-98765432109876543210.123456789"), "{first}");
    assert!(first.contains("1.50,"), "{first}");
    assert!(first.contains("1000000000000000000000000000000"), "{first}");

    let (target, target_db) = migrated().await;
    let imported = transfer::import(&target, first.as_bytes(), &ImportOptions::new(), |_| {})
        .await
        .expect("import");
    assert_eq!(imported.imported, 5);
    let second = export(target.clone()).await;
    assert_eq!(first, second, "the same bytes");

    // The CLI writes the same bytes as the library.
    let r = cli(target_db.url(), &["export"], None);
    r.ok();
    assert_eq!(r.stdout, first);
    let r = cli(target_db.url(), &["read"], None);
    r.ok();
    assert_eq!(r.stdout, first, "read prints what export writes");

    // Into its own source: everything is already there, with the same content.
    let again = transfer::import(&source, first.as_bytes(), &ImportOptions::new(), |_| {})
        .await
        .expect("re-import into the source");
    assert_eq!((again.imported, again.already_present), (0, 5));
    // A line that differs from what is stored only beyond a double's
    // precision is different content.
    let changed = first.replacen(
        "123456789012345678901234567890",
        "123456789012345678901234567891",
        1,
    );
    let err = transfer::import(&source, changed.as_bytes(), &ImportOptions::new(), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("data differs"), "{err}");
}
