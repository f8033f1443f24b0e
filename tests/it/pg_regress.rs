//! Runs the SQL-level suite in `pg_regress/` with PostgreSQL's own pg_regress,
//! each test file in its own freshly migrated database.

use std::path::Path;
use std::process::Command;

use dcbstore_testing::{find_pg_regress, postgres_bindir, TestDatabase};

#[tokio::test(flavor = "multi_thread")]
async fn pg_regress_suite() {
    if dcbstore_testing::CONTAINER_FALLBACK && postgres_bindir().is_none() {
        // The container fallback gives a server, not pg_regress and psql.
        eprintln!(
            "pg_regress_suite skipped: no local PostgreSQL binaries (testcontainers fallback)"
        );
        return;
    }
    let bindir = postgres_bindir().expect("PostgreSQL binaries (initdb, psql) are needed");
    let pg_regress = find_pg_regress(&bindir)
        .expect("pg_regress not found: install PostgreSQL's server packages (Debian: postgresql)");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pg_regress");
    let mut tests: Vec<String> = std::fs::read_dir(root.join("sql"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".sql")
                .map(String::from)
        })
        .collect();
    tests.sort();
    assert!(
        tests.len() >= 3,
        "the suite has append, conditional_append and read"
    );
    let out_root = std::env::temp_dir().join(format!("dcbstore-regress-{}", std::process::id()));
    let mut failures = Vec::new();
    for test in &tests {
        let db = TestDatabase::create().await.unwrap();
        db.migrate().await.unwrap();
        let c = db.config().unwrap();
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        let outdir = out_root.join(test);
        std::fs::create_dir_all(&outdir).unwrap();
        let output = Command::new(&pg_regress)
            .arg(format!("--bindir={}", bindir.display()))
            .arg(format!("--inputdir={}", root.display()))
            .arg(format!("--outputdir={}", outdir.display()))
            .arg("--use-existing")
            .arg(format!("--dbname={}", db.name()))
            .arg(format!("--host={host}"))
            .arg(format!(
                "--port={}",
                c.get_ports().first().copied().unwrap_or(5432)
            ))
            .arg(format!("--user={}", c.get_user().unwrap_or("postgres")))
            .arg(test)
            .env(
                "PGPASSWORD",
                c.get_password()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default(),
            )
            .env("PGTZ", "UTC")
            .output()
            .expect("run pg_regress");
        if !output.status.success() {
            let diffs =
                std::fs::read_to_string(outdir.join("regression.diffs")).unwrap_or_default();
            failures.push(format!(
                "{test}:\n{}\n{}\n{diffs}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&out_root);
    }
    assert!(
        failures.is_empty(),
        "pg_regress failed:\n{}",
        failures.join("\n")
    );
}
