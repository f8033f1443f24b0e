//! Streaming replication between test clusters: a standby from a base
//! backup, promotion, and a clean stop, for failover tests.

use crate::cluster::{fresh_dir, TestCluster};
use crate::err;
use dcbstore::PgResultExt;
use dcbstore::Result;

impl TestCluster {
    /// A primary and its hot standby (see
    /// [`start_standby`](Self::start_standby)), both started.
    pub fn start_with_standby() -> Result<(TestCluster, TestCluster)> {
        let primary = TestCluster::start()?;
        let standby = primary.start_standby()?;
        Ok((primary, standby))
    }

    /// A streaming standby of this cluster: a base backup
    /// (`pg_basebackup -R -X stream`) with a replication slot of its own on
    /// this cluster (`-C -S`: the primary keeps the WAL a stopped standby
    /// has not received, so it catches up when restarted), started on a free
    /// port, replaying this cluster's WAL asynchronously (hot standby: it
    /// takes read-only connections). Dropped, it is stopped and removed like
    /// any cluster.
    pub fn start_standby(&self) -> Result<TestCluster> {
        let dir = fresh_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let standby = TestCluster {
            dir,
            bindir: self.bindir.clone(),
            host: self.host.clone(),
            port: 0,
            password: self.password.clone(),
            as_postgres: self.as_postgres,
            keep: false,
            #[cfg(feature = "testcontainers")]
            container: None,
        };
        standby.hand_over()?;
        let data = standby.data_dir();
        let slot = format!("dcbstore_standby_{}", uuid::Uuid::new_v4().simple());
        let source = format!(
            "host={} port={} user=postgres password={}",
            self.host, self.port, self.password
        );
        standby.run(
            "pg_basebackup",
            &[
                "-d".as_ref(),
                source.as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-R".as_ref(),
                "-X".as_ref(),
                "stream".as_ref(),
                "-C".as_ref(),
                "-S".as_ref(),
                slot.as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        standby.launch()
    }

    /// Promotes a standby to a primary (`pg_ctl promote -w`): it leaves
    /// recovery on a new WAL timeline.
    pub fn promote(&self) -> Result<()> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-w".as_ref(),
                "promote".as_ref(),
            ],
        )
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`); [`restart`](Self::restart)
    /// starts it again on the same port.
    pub fn stop(&self) -> Result<()> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
    }
}

/// Waits until `standby` has replayed the WAL `primary` has written so far
/// (`pg_current_wal_lsn()` on the primary, `pg_last_wal_replay_lsn()` on
/// the standby); fails after `timeout`.
pub async fn wait_for_replay(
    primary: &tokio_postgres::Client,
    standby: &tokio_postgres::Client,
    timeout: std::time::Duration,
) -> Result<()> {
    let target: String = primary
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .db()?
        .try_get(0)
        .db()?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let done: bool = standby
            .query_one(
                "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)",
                &[&target],
            )
            .await
            .db()?
            .try_get(0)
            .db()?;
        if done {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(err(format!(
                "the standby did not replay the primary's WAL up to {target} within {timeout:?}"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
