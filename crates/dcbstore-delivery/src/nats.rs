//! [`NatsTransport`] (feature `nats`): a relay publishes to NATS JetStream.
//!
//! Each envelope is one JetStream message:
//!
//! - **subject**: the [subject prefix](NatsTransportBuilder::subject_prefix)
//!   (default `dcbstore.`) followed by the event name, such as
//!   `dcbstore.CourseDefined`;
//! - **header `Nats-Msg-Id`**: the envelope's `idempotency_key`, so the
//!   stream drops the resends of at-least-once delivery within its duplicate
//!   window (two minutes by default), and consumers can dedup beyond it;
//! - **header `Nats-Expected-Last-Msg-Id`** (every message of a batch but
//!   its first): the previous envelope's `idempotency_key`, so that the
//!   stream stores a message only right after the one before it;
//! - **header `Content-Type`**: `application/json`;
//! - **body**: the [`Envelope`] as JSON (its `serde` form).
//!
//! A batch is pipelined: every message is sent, then the acks are awaited in
//! order; the first that fails ends the batch, and the relay resends from
//! there (the stream drops the duplicates among those that went through).
//! Because each message expects the one before it as the stream's last, none
//! after a failed one is stored, and the resend keeps the relay's order: the
//! stream never holds an event before an earlier one of the relay. When
//! another publisher writes to the stream between two messages of a batch,
//! the next one is refused and sent again at once, unchained. (The stream
//! should be the relay's own, or its subjects: other publishers cost a
//! round trip each time they interleave.)
//!
//! A relay's runner asks its lease ([`Fence`]) with a round trip before each
//! batch, and, without one, before each message: a runner whose lease's
//! connection closed sends nothing more.
//!
//! Credentials may be given in the URL (`nats://user:password@host`,
//! `nats://token@host`): they are handed to the client as options, and no
//! error, log or `Debug` output shows them.
//!
//! How a publish fails ([`FailureKind`]):
//!
//! | cause | kind |
//! | --- | --- |
//! | not connected, the connection broke, no ack within the [ack timeout](NatsTransportBuilder::ack_timeout) | `Unavailable` (waited out) |
//! | no stream takes the subject, another JetStream error for the message | `Retryable` (then the relay's failure policy) |
//! | a body over the server's `max_payload`, an event name that is no subject token | `Permanent` |
//!
//! The stream is the operator's: the transport never creates one. Create a
//! stream whose subjects cover the prefix (`dcbstore.>`) before the relay
//! starts, else every event fails as `Retryable` and ends as a dead letter.

use std::time::Duration;

mod publish;
mod servers;

use async_nats::connection::State;

#[cfg(doc)]
use super::fence::Fence;
#[cfg(doc)]
use super::transport::{FailureKind, Transport};
#[cfg(doc)]
use crate::dispatch::Envelope;
use dcbstore::{Error, Result};

/// A [`Transport`] to NATS JetStream: subject = prefix + event name, header
/// `Nats-Msg-Id` = the idempotency key, body = the envelope as JSON (see the
/// [module](self) for the failure kinds).
///
/// The client reconnects by itself; while it is disconnected a publish fails
/// as [`FailureKind::Unavailable`] and the relay backs off.
#[derive(Clone)]
pub struct NatsTransport {
    name: String,
    prefix: String,
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
}

impl std::fmt::Debug for NatsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsTransport")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`NatsTransport`], from [`NatsTransport::builder`].
#[derive(Clone)]
pub struct NatsTransportBuilder {
    url: String,
    name: String,
    prefix: String,
    ack_timeout: Duration,
    connect_timeout: Duration,
    reconnect_max: Duration,
}

impl std::fmt::Debug for NatsTransportBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsTransportBuilder")
            .field("url", &servers::redacted(&self.url))
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("ack_timeout", &self.ack_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_max", &self.reconnect_max)
            .finish()
    }
}

/// The default subject prefix.
pub const DEFAULT_SUBJECT_PREFIX: &str = "dcbstore.";

impl NatsTransport {
    /// Settings for a transport to the NATS server(s) at `url`
    /// (`nats://host:4222`, or several, comma-separated), with credentials
    /// in the URL if the server wants them (`nats://user:password@host`,
    /// `nats://token@host`; never shown in errors, logs or `Debug`).
    #[must_use]
    pub fn builder(url: impl Into<String>) -> NatsTransportBuilder {
        NatsTransportBuilder {
            url: url.into(),
            name: "nats".into(),
            prefix: DEFAULT_SUBJECT_PREFIX.into(),
            ack_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            reconnect_max: Duration::from_secs(2),
        }
    }

    /// A transport to `url` with the default settings (name `nats`, prefix
    /// `dcbstore.`, ack timeout 5 s).
    pub async fn connect(url: impl Into<String>) -> Result<NatsTransport> {
        NatsTransport::builder(url).connect().await
    }

    /// The subject an event of this name is published on.
    #[must_use]
    pub fn subject(&self, event_name: &str) -> String {
        format!("{}{event_name}", self.prefix)
    }

    /// The NATS client (to create the stream, or to read it back).
    #[must_use]
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

impl NatsTransportBuilder {
    /// The transport's name (default `nats`): its relay is `relay:<name>`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Prepended to the event name to make the subject (default
    /// `dcbstore.`; may be empty).
    #[must_use]
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a publish waits for its ack (default 5 s) before it counts as
    /// [`FailureKind::Unavailable`].
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// How long one connection attempt may take (default 5 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest wait between reconnection attempts (default 2 s).
    #[must_use]
    pub fn reconnect_max(mut self, delay: Duration) -> Self {
        self.reconnect_max = delay;
        self
    }

    /// Builds the transport, waiting up to the
    /// [connect timeout](Self::connect_timeout) for the first connection.
    /// The connection is made in the background and remade whenever it
    /// breaks: a server that is down now is not an error (publishes wait it
    /// out as unavailable); a malformed URL is (its error shows the URL
    /// without credentials).
    pub async fn connect(self) -> Result<NatsTransport> {
        if !valid_prefix(&self.prefix) {
            return Err(Error::Config(format!(
                "the NATS subject prefix {:?} is not a subject prefix (tokens without spaces, '*' or '>', separated by single dots)",
                self.prefix
            )));
        }
        let servers = servers::parse(&self.url).map_err(Error::Config)?;
        let max = self.reconnect_max;
        let mut options = async_nats::ConnectOptions::new();
        // Out of the URLs, which the client logs (at debug level) as given.
        options = match servers.credentials {
            servers::Credentials::None => options,
            servers::Credentials::Token(token) => options.token(token),
            servers::Credentials::UserPassword(user, password) => {
                options.user_and_password(user, password)
            }
        };
        let client = options
            .name("dcbstore relay")
            .connection_timeout(self.connect_timeout)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| {
                let exp = u32::try_from(attempts.min(10)).unwrap_or(10);
                (Duration::from_millis(50) * 2u32.pow(exp)).min(max)
            })
            .connect(servers.addrs)
            .await
            .map_err(|e| {
                Error::Config(format!("NATS server {}: {e}", servers::redacted(&self.url)))
            })?;
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        while client.connection_state() != State::Connected
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let jetstream = async_nats::jetstream::context::ContextBuilder::new()
            .timeout(self.ack_timeout)
            .build(client.clone());
        Ok(NatsTransport {
            name: self.name,
            prefix: self.prefix,
            client,
            jetstream,
        })
    }
}

/// A NATS subject token: not empty, no whitespace, no dot, no wildcard.
fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && !t
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>'))
}

/// A subject prefix: empty, or tokens separated by single dots, the last of
/// which may be empty (`dcbstore.`).
fn valid_prefix(p: &str) -> bool {
    if p.is_empty() {
        return true;
    }
    let tokens: Vec<&str> = p.split('.').collect();
    let (last, rest) = tokens.split_last().unwrap_or((&"", &[]));
    rest.iter().all(|t| valid_token(t)) && (last.is_empty() || valid_token(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(valid_token("CourseDefined"));
        assert!(valid_token("course-defined_2"));
        assert!(!valid_token(""));
        assert!(!valid_token("a b"));
        assert!(!valid_token("a.b"));
        assert!(!valid_token("a*"));
        assert!(!valid_token(">"));
        assert!(valid_prefix(""));
        assert!(valid_prefix("dcbstore."));
        assert!(valid_prefix("a.b."));
        assert!(valid_prefix("ab"));
    }

    #[tokio::test]
    async fn bad_prefix_is_refused() {
        for p in ["a..b.", ".a", "a b.", "x.*."] {
            let r = NatsTransport::builder("nats://127.0.0.1:1")
                .subject_prefix(p)
                .connect()
                .await;
            assert!(r.is_err(), "{p:?} accepted");
        }
    }
}
