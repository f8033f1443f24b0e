//! Projections: folding events into state, decision models and the DCB
//! command pattern (from `dcbstore-core`, re-exported), and [`durable`]
//! projections, whose state is a read model in PostgreSQL.

pub use dcbstore_core::projection::*;

pub mod durable;
