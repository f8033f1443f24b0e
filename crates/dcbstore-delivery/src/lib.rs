//! Dispatch and delivery on the log: the [`dispatch`]er routes each event by
//! its level (1 sync, 2 job, 3 outbox, 4 broker, 5 sourced), and delivery
//! carries out levels 2 to 4, for real.
//!
//! **The log is the outbox.** An event emitted at level 3 (outbox) or 4
//! (broker) is appended to the log by the level-5 handler
//! ([`SourcedHandler`](crate::dispatch::SourcedHandler)): it is durable the
//! moment its append commits, in the same transaction as the application's
//! own writes when it goes through
//! [`append_envelopes_in`](crate::dispatch::append_envelopes_in). Delivery
//! then reads it back from the log:
//!
//! - **Level 3**: each [`DurableSubscriber`] ([`SubscriberConfig`]) has its own
//!   checkpoint (a row of `dcbstore.projections`) and lease, catches up from
//!   it and follows live on the store's listening connection, like a durable
//!   projection.
//! - **Level 4**: a [`Relay`] publishes through a [`Transport`] (NATS
//!   JetStream with feature `nats`, an HTTP webhook with feature `webhook`),
//!   in position order, with its own checkpoint and lease.
//! - **Level 2** ([`job`]): not on the log; a bounded pool of background
//!   tasks in the process, with retries. Not durable.
//!
//! Delivery from the log is **at least once**: the checkpoint moves after the
//! destination took the events, so a crash in between delivers them again,
//! with the same `idempotency_key`. A failed event is retried with backoff
//! and jitter ([`DeliveryConfig`]); after its attempts it is dead-lettered
//! (`dcbstore.dead_letters`, in the transaction that moves the checkpoint
//! past it) and the consumer moves on, or, with [`OnFailure::Block`], it
//! blocks until the event goes through. A destination that is down
//! ([`FailureKind::Unavailable`]) is waited out without using attempts.
//! [`list`], [`discard`] and `retry_dead_letters` handle the dead letters;
//! each dead letter is retried by one caller at a time (its row is locked,
//! `FOR UPDATE SKIP LOCKED`, until it is deleted in the same transaction).
//!
//! **One runner per consumer.** A consumer holds a lease (a row of
//! `dcbstore.leases` that only the dcbstore functions take, held through a
//! dedicated connection; no other role can take it first or hold it back).
//! Its sink asks the lease before each send ([`Fence`]): a runner whose
//! lease's connection closed stops at its next send, and a checkpoint moves
//! only while the lease is still at the runner's generation.
//!
//! Spans: `deliver`, `publish_batch`, `dead_letter` (and `emit` in the
//! dispatcher). Metrics, through the `metrics` facade: see
//! [`dcbstore::metrics`] (delivered, published, failed and dead-lettered
//! counts, batch durations, commit-to-delivery latency, and each
//! consumer's lag).

#![warn(missing_docs)]

mod advance;
mod config;
mod consumer;
mod dead_letters;
pub mod dispatch;
mod fence;
pub mod job;
mod meter;
#[cfg(feature = "nats")]
pub mod nats;
mod registry;
mod relay;
mod sink;
mod subscriber;
mod transport;
#[cfg(feature = "webhook")]
pub mod webhook;

pub use config::{DeliveryConfig, OnFailure};
pub use consumer::DeliveryRunner;
pub use dead_letters::{discard, list, DeadLetter, RetryReport, Selection};
pub use fence::Fence;
pub use registry::Deliveries;
pub use relay::{broker_events, Relay};
pub use subscriber::{DurableSubscriber, Permanent, SubscriberConfig};
pub use transport::{FailureKind, PublishError, Transport};

#[cfg(feature = "nats")]
pub use nats::{NatsTransport, NatsTransportBuilder};
#[cfg(feature = "webhook")]
pub use webhook::{WebhookTransport, WebhookTransportBuilder};
