//! Emitting events: validate against the committed schema, build an
//! [`Envelope`], and dispatch it to the handlers registered for its [`Level`],
//! in registration order, stopping at the first error.
//!
//! The store is the level-5 handler ([`SourcedHandler`]): it appends sourced
//! events to the dcbstore log with their tags, the envelope in the metadata
//! and the envelope id as the event id, so re-dispatching an envelope is
//! idempotent, and it can carry an append condition from a decision model.

use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::append::AppendCondition;
use crate::error::HandlerError;
use crate::event::Event;
use crate::schema::{EventDefinition, Kind, Level, SchemaError, SchemaFile};
use crate::store::{EventStore, Store};

/// An emitted event with everything handlers need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id (UUID v7); the store's event id at level 5.
    pub id: Uuid,
    /// The event's name.
    pub name: String,
    /// Domain or integration.
    pub kind: Kind,
    /// The schema version the payload was validated against.
    pub version: u32,
    /// Where it is routed (from the schema file: authoritative at runtime).
    pub level: Level,
    /// The event, as JSON.
    pub payload: Value,
    /// Caller and enricher metadata.
    pub metadata: Map<String, Value>,
    /// When it was emitted.
    pub occurred_at: DateTime<Utc>,
    /// Deduplication key for handlers (default: the id).
    pub idempotency_key: String,
    /// Tags derived from the payload.
    pub tags: Vec<String>,
}

/// Which levels a handler receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Levels {
    /// Every level.
    All,
    /// An inclusive range, such as `Level::Job..=Level::Broker`.
    Range(RangeInclusive<Level>),
    /// These levels.
    List(Vec<Level>),
}

impl Levels {
    /// Whether `level` is selected.
    #[must_use]
    pub fn contains(&self, level: Level) -> bool {
        match self {
            Levels::All => true,
            Levels::Range(r) => r.contains(&level),
            Levels::List(l) => l.contains(&level),
        }
    }
}

impl From<Level> for Levels {
    fn from(l: Level) -> Self {
        Levels::List(vec![l])
    }
}

/// Per-emit context handed to every handler.
#[derive(Debug, Clone, Default)]
pub struct EmitContext {
    /// The append condition of a "decide, then emit" step (used at level 5).
    pub condition: Option<AppendCondition>,
}

/// A handler of envelopes at the levels it was registered for.
pub trait Handler: Send + Sync + 'static {
    /// Handles one envelope.
    fn handle(
        &self,
        envelope: &Envelope,
        context: &EmitContext,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

trait ErasedHandler: Send + Sync {
    fn handle<'a>(
        &'a self,
        envelope: &'a Envelope,
        context: &'a EmitContext,
    ) -> BoxFut<'a, Result<(), HandlerError>>;
}

impl<H: Handler> ErasedHandler for H {
    fn handle<'a>(
        &'a self,
        envelope: &'a Envelope,
        context: &'a EmitContext,
    ) -> BoxFut<'a, Result<(), HandlerError>> {
        Box::pin(Handler::handle(self, envelope, context))
    }
}

/// Why an emit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The event is not in the schema file.
    #[error("event {name} is not in the schema file: add its definition to the registry, run `schema dump` and commit the file")]
    UnknownEvent {
        /// The event's name.
        name: String,
    },
    /// The event's compiled contract matches no version in the schema file.
    #[error("event {name} does not match any version in the schema file (fingerprint {fingerprint}): run `schema dump` and commit the file")]
    UnknownVersion {
        /// The event's name.
        name: String,
        /// Fingerprint of the compiled contract.
        fingerprint: String,
    },
    /// The payload does not satisfy its schema version.
    #[error("payload of {name} v{version} does not match its schema: {reason}")]
    InvalidPayload {
        /// The event's name.
        name: String,
        /// The version checked.
        version: u32,
        /// What is wrong.
        reason: String,
    },
    /// The definition itself is invalid (name, reserved fields).
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A handler failed; later handlers did not run.
    #[error("handler {handler:?} failed for {name}: {source}")]
    Handler {
        /// The handler's label.
        handler: String,
        /// The event's name.
        name: String,
        /// The handler's error.
        source: HandlerError,
    },
}

impl DispatchError {
    /// The store error behind a failed level-5 handler (a
    /// [`Conflict`](crate::Error::Conflict), say), if that is what failed.
    #[must_use]
    pub fn store_error(&self) -> Option<&crate::error::Error> {
        match self {
            DispatchError::Handler { source, .. } => source.downcast_ref::<crate::error::Error>(),
            _ => None,
        }
    }
}

/// How to emit: an append condition, metadata, and ids to reuse on retries.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct EmitOptions {
    condition: Option<AppendCondition>,
    metadata: Map<String, Value>,
    id: Option<Uuid>,
    idempotency_key: Option<String>,
}

impl EmitOptions {
    /// Default options.
    pub fn new() -> Self {
        EmitOptions::default()
    }

    /// The append condition for the level-5 handler (from a decision model).
    pub fn condition(mut self, condition: AppendCondition) -> Self {
        self.condition = Some(condition);
        self
    }

    /// Adds a metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }

    /// Uses this envelope id (for a retry that must be recognised).
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = Some(id);
        self
    }

    /// Uses this idempotency key instead of the id.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

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
    /// caller's transaction with [`append_envelopes_in`]).
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
        let f = crate::schema::compile::<E>()?.fingerprint();
        self.lock_fingerprints().insert(key, f.clone());
        Ok(f)
    }

    fn lock_fingerprints(&self) -> std::sync::MutexGuard<'_, HashMap<TypeId, String>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.fingerprints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
}

struct Subscriber<E, F> {
    f: F,
    _event: std::marker::PhantomData<fn(&E)>,
}

impl<E, F> Handler for Subscriber<E, F>
where
    E: EventDefinition,
    F: Fn(&E, &Envelope) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    async fn handle(
        &self,
        envelope: &Envelope,
        _context: &EmitContext,
    ) -> Result<(), HandlerError> {
        if envelope.name != E::NAME {
            return Ok(());
        }
        let event: E = serde_json::from_value(envelope.payload.clone())?;
        (self.f)(&event, envelope)
    }
}

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
}

/// Appends envelopes to the log inside the caller's transaction (see
/// [`append_in`](crate::append::append_in)), for "write my rows and emit"
/// in one commit.
pub async fn append_envelopes_in<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    envelopes: &[Envelope],
    condition: Option<&AppendCondition>,
) -> crate::error::Result<crate::append::Appended> {
    crate::append::append_in(
        client,
        envelopes.iter().map(to_store_event).collect(),
        condition,
    )
    .await
}
