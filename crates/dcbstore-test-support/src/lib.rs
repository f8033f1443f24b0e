//! The workspace's own test support (not published): what the tests of the
//! dcbstore crates share beyond a throwaway PostgreSQL (`dcbstore-testing`,
//! which applications use too): a migrated store per test, a `metrics`
//! recording, running the `dcbstore` binary, a `chromedriver` for the
//! console's browser tests, a `nats-server -js` for the NATS transport's.
#![warn(missing_docs)]

mod cli;
mod error;
mod nats;
pub mod recording;
mod store;
mod webdriver;

pub use cli::*;
pub use error::{Error, Result};
pub use nats::{nats_server_exe, NatsServer};
pub use recording::Recording;
pub use store::{ev, five_aged_events, sqlx_pool, sqlx_store, store, store_with};
pub use webdriver::{chromedriver_exe, chromium_exe, ChromeDriver};

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::new(format!("no free port: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| Error::new(format!("no free port: {e}")))?
        .port())
}
