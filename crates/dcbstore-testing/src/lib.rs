//! # dcbstore-testing
//!
//! Throwaway PostgreSQL for the tests and examples of applications built on
//! dcbstore.
//!
//! [`TestDatabase::create`] gives a fresh, empty database: in the server named
//! by `DATABASE_URL` when set, else in a [`TestCluster`] started once per
//! process from the local PostgreSQL binaries (found on `PATH`, through
//! `pg_config --bindir`, or under `/usr/lib/postgresql/*/bin`). The cluster
//! listens on 127.0.0.1 on a free port, lives in a temporary directory, runs
//! as the `postgres` user when the process is root (initdb refuses root), and
//! is stopped and removed when dropped, or by a watchdog when the process exits.
//!
//! With the `testcontainers` feature (needs Rust 1.88), when no local binaries
//! are found, [`TestCluster::start`] (and so [`shared_cluster`],
//! [`TestDatabase::create`] and [`Scratch`]) runs PostgreSQL 15 in a Docker
//! container instead, removed on drop or, for the shared one, by a watchdog
//! (`docker rm -f`) when the process exits.
//!
//! The parts: the binaries (`postgres_bindir`, `find_pg_regress`), the
//! [`TestCluster`], the [`TestDatabase`], [`Scratch`] for examples and
//! benchmarks, standbys for failover tests, and the container of the
//! `testcontainers` feature.

#![warn(missing_docs)]

mod binaries;
mod cluster;
#[cfg(feature = "testcontainers")]
mod container;
mod database;
mod scratch;
mod standby;

pub use binaries::{find_pg_regress, postgres_bindir};
pub use cluster::{shared_cluster, TestCluster};
pub use database::{to_key_value, TestDatabase};
pub use scratch::{server_settings, Scratch};
pub use standby::wait_for_replay;

use dcbstore::Error;

/// Whether this build falls back to a PostgreSQL container when no local
/// binaries are found (the `testcontainers` feature): a test that needs the
/// binaries themselves (pg_regress, psql) can skip instead of failing.
pub const CONTAINER_FALLBACK: bool = cfg!(feature = "testcontainers");

fn err(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> dcbstore::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| err(format!("no free port: {e}")))?;
    Ok(l.local_addr().map_err(|e| err(e.to_string()))?.port())
}
