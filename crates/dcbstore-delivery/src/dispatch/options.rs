//! [`EmitOptions`]: an emit's append condition, metadata and ids.

use serde_json::{Map, Value};
use uuid::Uuid;

use dcbstore::append::AppendCondition;

/// How to emit: an append condition, metadata, and ids to reuse on retries.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct EmitOptions {
    pub(super) condition: Option<AppendCondition>,
    pub(super) metadata: Map<String, Value>,
    pub(super) id: Option<Uuid>,
    pub(super) idempotency_key: Option<String>,
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
