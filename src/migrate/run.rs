//! `migrate` under its lock: one transaction that applies the pending
//! migrations (each after the function files it needs), then every function
//! file whose checksum changed, then drops the functions no file defines.

use tokio_postgres::Client;

use super::functions::{self, FUNCTIONS};
use super::migrations::MIGRATIONS;
use super::{status, MigrateReport, SchemaState};
use crate::error::{PgResultExt, Result};

pub(super) async fn migrate_locked(client: &mut Client) -> Result<MigrateReport> {
    let tx = client.transaction().await.db()?;
    // Every name in the SQL is qualified: a fixed search_path keeps the
    // catalog's names of functions (recorded, compared, dropped) the same in
    // every run, whatever the migrating role's path.
    tx.batch_execute(&format!(
        "SET LOCAL search_path = pg_catalog, pg_temp;
         CREATE SCHEMA IF NOT EXISTS dcbstore;
         CREATE TABLE IF NOT EXISTS dcbstore.schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             checksum   text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );
         {};",
        functions::CREATE_TABLE
    ))
    .await
    .db()?;
    let before = status::read(&tx).await?;
    if before.state == SchemaState::Ahead {
        before.require_up_to_date()?;
    }
    let mut to_apply = functions::out_of_date(&functions::applied(&tx).await?);
    let mut applied = Vec::new();
    let mut applied_files = Vec::new();
    for p in &before.pending {
        let Some(m) = MIGRATIONS.iter().find(|m| m.version == p.version) else {
            continue;
        };
        for need in m.needs {
            if let Some(i) = to_apply.iter().position(|f| f.name == *need) {
                let file = to_apply.remove(i);
                functions::apply(&tx, file).await?;
                applied_files.push(file.name.to_string());
            }
        }
        tx.batch_execute(m.sql).await.db()?;
        tx.execute(
            "INSERT INTO dcbstore.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &m.checksum()],
        )
        .await
        .db()?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        applied.push(p.clone());
    }
    // In the build's order: what a SQL function calls is created first.
    for file in FUNCTIONS.iter().filter(|f| to_apply.contains(f)) {
        functions::apply(&tx, file).await?;
        applied_files.push(file.name.to_string());
    }
    let dropped = functions::sweep(&tx).await?;
    tx.commit().await.db()?;
    let status = status::read(client).await?;
    Ok(MigrateReport {
        applied,
        functions: applied_files,
        dropped,
        status,
    })
}
