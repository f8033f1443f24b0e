//! The store as the level-5 handler: sourced events appended to the log,
//! with their tags, the envelope in the metadata and its id as the event id.

use serde_json::Map;

use super::envelope::{EmitContext, Envelope};
use super::handler::Handler;
use dcbstore::append::{AppendCondition, Appended};
use dcbstore::event::{Event, SequencedEvent};
use dcbstore::store::{EventStore, Store};
use dcbstore::HandlerError;

/// The store event an envelope becomes at level 5: its id, name, payload and
/// tags, and the envelope (less the payload) in the metadata.
#[must_use]
pub fn to_store_event(envelope: &Envelope) -> Event {
    let mut meta = Map::new();
    meta.insert(
        "envelope".into(),
        serde_json::json!({
            "name": envelope.name,
            "kind": envelope.kind,
            "version": envelope.version,
            "level": envelope.level,
            "occurred_at": envelope.occurred_at,
            "idempotency_key": envelope.idempotency_key,
            "metadata": envelope.metadata,
        }),
    );
    Event {
        id: envelope.id,
        event_type: envelope.name.clone(),
        data: envelope.payload.clone(),
        tags: envelope.tags.clone(),
        metadata: meta,
    }
}

/// The envelope a stored event carries back: the inverse of
/// [`to_store_event`] for events the dispatcher appended; for other events
/// (appended directly), an envelope of their type and data, at level 5,
/// keyed by the event id.
#[must_use]
pub fn from_store_event(e: &SequencedEvent) -> Envelope {
    fn parse<T: serde::de::DeserializeOwned>(
        meta: Option<&serde_json::Value>,
        k: &str,
    ) -> Option<T> {
        meta.and_then(|m| m.get(k))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
    let meta = e.event.metadata.get("envelope");
    Envelope {
        id: e.event.id,
        name: e.event.event_type.clone(),
        kind: parse(meta, "kind").unwrap_or(dcbstore::schema::Kind::Domain),
        version: parse(meta, "version").unwrap_or(1),
        level: parse(meta, "level").unwrap_or(dcbstore::schema::Level::Sourced),
        payload: e.event.data.clone(),
        metadata: parse(meta, "metadata").unwrap_or_default(),
        occurred_at: parse(meta, "occurred_at").unwrap_or(e.recorded_at),
        idempotency_key: parse(meta, "idempotency_key").unwrap_or_else(|| e.event.id.to_string()),
        tags: e.event.tags.clone(),
    }
}

/// The level-5 handler: appends sourced events to the dcbstore log, with the
/// emit's append condition when there is one.
#[derive(Debug, Clone)]
pub struct SourcedHandler {
    store: Store,
}

impl SourcedHandler {
    /// Appends through `store`.
    #[must_use]
    pub fn new(store: Store) -> Self {
        SourcedHandler { store }
    }
}

impl Handler for SourcedHandler {
    async fn handle(&self, envelope: &Envelope, context: &EmitContext) -> Result<(), HandlerError> {
        let _ = self
            .store
            .append(vec![to_store_event(envelope)], context.condition.clone())
            .await?;
        Ok(())
    }

    fn records(&self) -> bool {
        true
    }
}

/// Appends envelopes to the log inside the caller's transaction (see
/// [`append_in`](dcbstore::append::append_in)), for "write my rows and emit"
/// in one commit.
pub async fn append_envelopes_in<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    envelopes: &[Envelope],
    condition: Option<&AppendCondition>,
) -> dcbstore::Result<Appended> {
    dcbstore::append::append_in(
        client,
        envelopes.iter().map(to_store_event).collect(),
        condition,
    )
    .await
}
