//! The [`Dispatcher`]: validates an emit against the committed schema file,
//! builds its envelope, and routes it to the handlers of its level.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::{Map, Value};
use tracing::Instrument;
use uuid::Uuid;

use super::envelope::{EmitContext, Envelope, Levels};
use super::error::DispatchError;
use super::handler::{ErasedHandler, Handler, Subscriber};
use super::options::EmitOptions;
use dcbstore::schema::{EventDefinition, Level, SchemaError, SchemaFile};
use dcbstore::HandlerError;

type Enricher = dyn Fn(&mut Map<String, Value>) + Send + Sync;

/// Validates, builds envelopes, and routes them to handlers by level.
#[derive(Clone)]
pub struct Dispatcher {
    schema: Arc<SchemaFile>,
    /// Fingerprints of the compiled definitions, by payload type: compiling
    /// derives a JSON schema, too costly for every emit.
    fingerprints: Arc<Mutex<HashMap<TypeId, String>>>,
    handlers: Vec<(Levels, String, Arc<dyn ErasedHandler>)>,
    enricher: Option<Arc<Enricher>>,
    /// Relays declared to publish level-4 events.
    relays: Vec<String>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field(
                "handlers",
                &self
                    .handlers
                    .iter()
                    .map(|h| (&h.0, &h.1))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher for the events of `schema` (the committed schema file).
    #[must_use]
    pub fn new(schema: SchemaFile) -> Self {
        Dispatcher {
            schema: Arc::new(schema),
            fingerprints: Arc::default(),
            handlers: Vec::new(),
            enricher: None,
            relays: Vec::new(),
        }
    }

    /// Loads the committed schema file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, SchemaError> {
        Ok(Dispatcher::new(SchemaFile::load(path.as_ref())?))
    }

    /// Registers `handler` for `levels`; handlers run in registration order.
    #[must_use]
    pub fn handler(
        mut self,
        levels: impl Into<Levels>,
        label: impl Into<String>,
        handler: impl Handler,
    ) -> Self {
        self.handlers
            .push((levels.into(), label.into(), Arc::new(handler)));
        self
    }

    /// A typed in-process subscriber (level 1) to events named `E::NAME`.
    #[must_use]
    pub fn subscribe<E, F>(self, f: F) -> Self
    where
        E: EventDefinition,
        F: Fn(&E, &Envelope) -> Result<(), HandlerError> + Send + Sync + 'static,
    {
        self.handler(
            Level::Sync,
            format!("subscriber of {}", E::NAME),
            Subscriber::<E, F> {
                f,
                _event: std::marker::PhantomData,
            },
        )
    }

    /// Adds metadata to every envelope (correlation ids, the user, ...).
    #[must_use]
    pub fn enricher(mut self, f: impl Fn(&mut Map<String, Value>) + Send + Sync + 'static) -> Self {
        self.enricher = Some(Arc::new(f));
        self
    }

    /// Validates `event` against its schema version and builds its envelope,
    /// without dispatching it (to dispatch later, or to append it in the
    /// caller's transaction with [`append_envelopes_in`](super::append_envelopes_in)).
    pub fn prepare<E: EventDefinition>(
        &self,
        event: &E,
        options: &EmitOptions,
    ) -> Result<Envelope, DispatchError> {
        let fingerprint = self.fingerprint::<E>()?;
        let versions: Vec<_> = self.schema.versions(E::NAME).collect();
        if versions.is_empty() {
            return Err(DispatchError::UnknownEvent {
                name: E::NAME.to_string(),
            });
        }
        let Some(version) = versions.iter().rev().find(|v| v.fingerprint == fingerprint) else {
            return Err(DispatchError::UnknownVersion {
                name: E::NAME.to_string(),
                fingerprint,
            });
        };
        let payload = serde_json::to_value(event).map_err(|e| DispatchError::InvalidPayload {
            name: E::NAME.to_string(),
            version: version.version,
            reason: e.to_string(),
        })?;
        if let Err(reason) = version.check_payload(&payload) {
            return Err(DispatchError::InvalidPayload {
                name: E::NAME.to_string(),
                version: version.version,
                reason,
            });
        }
        let mut metadata = options.metadata.clone();
        if let Some(enrich) = &self.enricher {
            enrich(&mut metadata);
        }
        let id = options.id.unwrap_or_else(Uuid::now_v7);
        Ok(Envelope {
            id,
            name: E::NAME.to_string(),
            kind: version.kind,
            version: version.version,
            level: version.level,
            payload,
            metadata,
            occurred_at: Utc::now(),
            idempotency_key: options
                .idempotency_key
                .clone()
                .unwrap_or_else(|| id.to_string()),
            tags: event.tags(),
        })
    }

    fn fingerprint<E: EventDefinition>(&self) -> Result<String, SchemaError> {
        let key = TypeId::of::<E>();
        if let Some(f) = self.lock_fingerprints().get(&key) {
            return Ok(f.clone());
        }
        let f = dcbstore::schema::compile::<E>()?.fingerprint();
        self.lock_fingerprints().insert(key, f.clone());
        Ok(f)
    }

    fn lock_fingerprints(&self) -> std::sync::MutexGuard<'_, HashMap<TypeId, String>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.fingerprints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Declares that `relay` (a [`Relay`](crate::Relay)'s name)
    /// publishes the level-4 events from the log. Without one, a level-4
    /// emit fails with [`DispatchError::NoTransport`] and [`check`](Self::check)
    /// warns.
    #[must_use]
    pub fn relayed_by(mut self, relay: impl Into<String>) -> Self {
        self.relays.push(relay.into());
        self
    }

    /// The startup check of the routes: an error when a level-3 or level-4
    /// event of the schema would not be recorded in the log (no handler that
    /// records is registered for its level); warnings (logged, and returned)
    /// for level-4 events that no declared relay publishes.
    pub fn check(&self) -> Result<Vec<String>, DispatchError> {
        let mut warnings = Vec::new();
        for level in [Level::Outbox, Level::Broker] {
            let mut names: Vec<&str> = self
                .schema
                .latest_versions()
                .into_iter()
                .filter(|v| v.level == level)
                .map(|v| v.name.as_str())
                .collect();
            if names.is_empty() {
                continue;
            }
            names.sort_unstable();
            if !self.records(level) {
                return Err(DispatchError::NotRecorded {
                    level: level.into(),
                    names: names.join(", "),
                });
            }
            if level == Level::Broker && self.relays.is_empty() {
                let w = format!(
                    "level-4 (broker) events have no relay: {} (start a dcbstore_delivery::Relay and declare it with Dispatcher::relayed_by); emitting one fails",
                    names.join(", ")
                );
                tracing::warn!("{w}");
                warnings.push(w);
            }
        }
        Ok(warnings)
    }

    fn records(&self, level: Level) -> bool {
        self.handlers
            .iter()
            .any(|(levels, _, h)| levels.contains(level) && h.records())
    }

    /// Validates, builds the envelope and dispatches it.
    pub async fn emit<E: EventDefinition>(&self, event: &E) -> Result<Envelope, DispatchError> {
        self.emit_with(event, EmitOptions::new()).await
    }

    /// [`emit`](Self::emit) with options (an append condition, metadata, ids).
    pub async fn emit_with<E: EventDefinition>(
        &self,
        event: &E,
        options: EmitOptions,
    ) -> Result<Envelope, DispatchError> {
        let envelope = self.prepare(event, &options)?;
        let context = EmitContext {
            condition: options.condition,
        };
        self.dispatch(&envelope, &context).await?;
        Ok(envelope)
    }

    /// Dispatches an envelope to the handlers of its level, in registration
    /// order, stopping at the first error. Dispatching the same envelope
    /// again is how a failed emit is retried.
    pub async fn dispatch(
        &self,
        envelope: &Envelope,
        context: &EmitContext,
    ) -> Result<(), DispatchError> {
        let span =
            tracing::info_span!("emit", name = %envelope.name, level = u8::from(envelope.level));
        async move {
            if matches!(envelope.level, Level::Outbox | Level::Broker) && !self.records(envelope.level) {
                return Err(DispatchError::NotRecorded {
                    level: envelope.level.into(),
                    names: envelope.name.clone(),
                });
            }
            if envelope.level == Level::Broker && self.relays.is_empty() {
                return Err(DispatchError::NoTransport {
                    name: envelope.name.clone(),
                });
            }
            ::metrics::counter!(dcbstore::metrics::EMITTED_TOTAL, "level" => u8::from(envelope.level).to_string())
                .increment(1);
            for (levels, label, handler) in &self.handlers {
                if levels.contains(envelope.level) {
                    handler.handle(envelope, context).await.map_err(|source| {
                        DispatchError::Handler {
                            handler: label.clone(),
                            name: envelope.name.clone(),
                            source,
                        }
                    })?;
                }
            }
            Ok(())
        }
        .instrument(span)
        .await
    }
}
