//! The integration tests of `dcbstore`: one binary (linked once, one shared
//! throwaway cluster), a module per guarantee. Each test gets its own
//! database, so they run in parallel; `cargo test --test it semantics::`
//! runs one module.

mod common;

mod batch_model;
mod concurrency;
mod decide_loop;
mod failover;
mod faults;
mod follow;
mod limits;
mod metrics;
mod migrate;
mod pg_regress;
mod projections;
mod properties;
mod replicas;
mod scenarios;
mod schema;
mod security;
mod semantics;
mod sqlx;
mod subscribe;
mod tls;
mod transfer;
mod typed;
mod upgrade;
