//! # dcbstore-cli
//!
//! The `dcbstore` command-line tool (its binary: `cargo install dcbstore-cli`)
//! and the application kits ([`kit`]): the clap subcommands an application
//! mounts in its own command line for what only it can load (its event
//! definitions, its projections, its dead letters).
#![warn(missing_docs)]

pub mod kit;
