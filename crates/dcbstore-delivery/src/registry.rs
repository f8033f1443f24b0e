//! [`Deliveries`]: an application's subscribers and relays, by name, for
//! starting them together and for the dead-letter tools.

use super::consumer::DeliveryRunner;
use super::dead_letters::{self, RetryReport, Selection};
use super::relay::Relay;
use super::sink::Consumer;
use super::subscriber::SubscriberConfig;
use dcbstore::store::Store;
use dcbstore::{Error, Result};

/// The durable subscribers and relays of an application.
#[derive(Debug, Clone, Default)]
pub struct Deliveries {
    subscriptions: Vec<SubscriberConfig>,
    relays: Vec<Relay>,
}

impl Deliveries {
    /// None yet.
    #[must_use]
    pub fn new() -> Self {
        Deliveries::default()
    }

    /// Adds a level-3 subscriber.
    #[must_use]
    pub fn subscription(mut self, s: SubscriberConfig) -> Self {
        self.subscriptions.push(s);
        self
    }

    /// Adds a level-4 relay.
    #[must_use]
    pub fn relay(mut self, r: Relay) -> Self {
        self.relays.push(r);
        self
    }

    /// The names, subscribers first.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.consumers().map(|c| c.name.as_str()).collect()
    }

    /// Whether a relay is configured (a level-4 event has somewhere to go).
    #[must_use]
    pub fn has_relay(&self) -> bool {
        !self.relays.is_empty()
    }

    /// Starts every subscriber and relay.
    pub fn start_all(&self, store: &Store) -> Vec<DeliveryRunner> {
        self.consumers()
            .map(|c| DeliveryRunner::start(store.clone(), c.clone()))
            .collect()
    }

    /// Retries the dead letters of the consumer named `name`.
    pub async fn retry(&self, store: &Store, name: &str, which: Selection) -> Result<RetryReport> {
        let consumer = self.consumers().find(|c| c.name == name).ok_or_else(|| {
            Error::invalid(format!(
                "no subscriber or relay named {name:?}; this application has: {}",
                self.names().join(", ")
            ))
        })?;
        dead_letters::retry(store, consumer, which).await
    }

    /// Retries the dead letters of every consumer (`which` per consumer).
    pub async fn retry_all(&self, store: &Store) -> Result<RetryReport> {
        let mut total = RetryReport::default();
        for c in self.consumers() {
            let r = dead_letters::retry(store, c, Selection::All).await?;
            total.tried += r.tried;
            total.delivered += r.delivered;
            total.failed += r.failed;
            total.skipped += r.skipped;
        }
        Ok(total)
    }

    fn consumers(&self) -> impl Iterator<Item = &Consumer> {
        self.subscriptions
            .iter()
            .map(SubscriberConfig::consumer)
            .chain(self.relays.iter().map(Relay::consumer))
    }
}
