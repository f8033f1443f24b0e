//! [`Scratch`]: a migrated database for examples and benchmarks, and the
//! server settings that decide benchmark figures.

use crate::cluster::TestCluster;
use crate::database::TestDatabase;
use crate::err;
use dcbstore::connection::{connect, ConnectOptions};
use dcbstore::PgResultExt;
use dcbstore::Result;

/// A migrated database for examples and benchmarks, and what keeps it alive.
pub struct Scratch {
    _cluster: Option<TestCluster>,
    _db: Option<TestDatabase>,
    url: String,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch").finish_non_exhaustive()
    }
}

impl Scratch {
    /// The database of `DATABASE_URL` when set (or, with `fresh`, a new
    /// database in that server), else a throwaway cluster that is removed
    /// when this value is dropped. Runs [`dcbstore::migrate()`] on it.
    pub async fn start(fresh: bool) -> Result<Scratch> {
        let scratch = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() && fresh => {
                let db = TestDatabase::create().await?;
                Scratch {
                    url: db.url().to_string(),
                    _cluster: None,
                    _db: Some(db),
                }
            }
            Ok(url) if !url.is_empty() => Scratch {
                url,
                _cluster: None,
                _db: None,
            },
            _ => {
                let cluster = tokio::task::spawn_blocking(TestCluster::start)
                    .await
                    .map_err(|e| err(e.to_string()))??;
                Scratch {
                    url: cluster.url("postgres"),
                    _cluster: Some(cluster),
                    _db: None,
                }
            }
        };
        let mut client = connect(&ConnectOptions::parse(&scratch.url)?).await?;
        let _ = dcbstore::migrate(&mut client).await?;
        Ok(scratch)
    }

    /// The connection string.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The server settings that decide benchmark figures (version, fsync,
/// synchronous_commit, wal_sync_method, shared_buffers), as `name=value, ...`.
pub async fn server_settings(client: &tokio_postgres::Client) -> Result<String> {
    let rows = client
        .query(
            "SELECT name || '=' || setting FROM pg_settings \
             WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers', 'server_version') \
             ORDER BY name",
            &[],
        )
        .await.db()?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<std::result::Result<Vec<_>, _>>()
        .db()?
        .join(", "))
}
