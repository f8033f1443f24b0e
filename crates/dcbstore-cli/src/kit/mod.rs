//! Application kits: the commands an application mounts in
//! its own command line, for what only it can load (its event definitions,
//! its projections).
//!
//! Each kit is a clap [`Subcommand`](clap::Subcommand) with a `run` method,
//! and a `run` function that parses arguments itself for applications without
//! clap:
//!
//! ```no_run
//! use clap::{Parser, Subcommand};
//! use dcbstore_cli::kit::{ProjectionsCommand, SchemaCommand};
//! use dcbstore::projection::durable::ProjectionRegistry;
//! use dcbstore::schema::SchemaRegistry;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(subcommand)]
//!     command: Command,
//! }
//!
//! #[derive(Subcommand)]
//! enum Command {
//!     /// The committed event schema.
//!     #[command(subcommand)]
//!     Schema(SchemaCommand),
//!     /// The application's durable projections.
//!     #[command(subcommand)]
//!     Projections(ProjectionsCommand),
//! }
//!
//! # async fn f(store: dcbstore::Store) {
//! let code = match Cli::parse().command {
//!     Command::Schema(c) => c.run(
//!         &SchemaRegistry::new(),
//!         "events.schema.json".as_ref(),
//!         &mut std::io::stdout(),
//!         &mut std::io::stderr(),
//!     ),
//!     Command::Projections(c) => match c.run(&store, &ProjectionRegistry::new()).await {
//!         Ok(()) => 0,
//!         Err(e) => {
//!             eprintln!("error: {e}");
//!             1
//!         }
//!     },
//! };
//! std::process::exit(code);
//! # }
//! ```

pub mod dead_letters;
pub mod progress;
pub mod projections;
pub mod schema;

pub use dead_letters::DeadLettersCommand;
pub use projections::ProjectionsCommand;
pub use schema::SchemaCommand;
