//! `migrate`, `status` and `projections status`: the schema's state and the exit codes that report it.

use crate::*;

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
