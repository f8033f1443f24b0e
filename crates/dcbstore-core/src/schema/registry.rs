//! [`SchemaRegistry`]: an application's event definitions, compiled.
//! (Durable projections have their own registry,
//! `dcbstore::projection::durable::ProjectionRegistry`.)

use super::compile::{compile, CompiledEvent};
use super::error::SchemaError;
use super::EventDefinition;

/// The event definitions of an application, compiled.
///
/// [`register`](Self::register) is a builder: an invalid definition (bad
/// name, reserved field, duplicate name) is recorded and reported by
/// [`compiled`](Self::compiled), and so by every schema operation. Use
/// [`try_register`](Self::try_register) to fail at once instead.
#[derive(Debug, Clone, Default)]
pub struct SchemaRegistry {
    /// Sorted by name; `types[i]` declared `events[i]`.
    events: Vec<CompiledEvent>,
    types: Vec<&'static str>,
    errors: Vec<SchemaError>,
}

impl SchemaRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        SchemaRegistry::default()
    }

    /// Registers the event definition `T`.
    #[must_use]
    pub fn register<T: EventDefinition>(mut self) -> Self {
        if let Err(e) = self.add::<T>() {
            self.errors.push(e);
        }
        self
    }

    /// Registers `T`, failing at once when its definition is invalid.
    pub fn try_register<T: EventDefinition>(mut self) -> Result<Self, SchemaError> {
        self.add::<T>()?;
        Ok(self)
    }

    fn add<T: EventDefinition>(&mut self) -> Result<(), SchemaError> {
        let compiled = compile::<T>()?;
        let type_name = std::any::type_name::<T>();
        match self
            .events
            .binary_search_by(|e| e.name.as_str().cmp(&compiled.name))
        {
            Ok(i) => Err(SchemaError::DuplicateName {
                name: compiled.name,
                first: self.types[i].to_owned(),
                second: type_name.to_owned(),
            }),
            Err(i) => {
                self.events.insert(i, compiled);
                self.types.insert(i, type_name);
                Ok(())
            }
        }
    }

    /// The compiled events, sorted by name, or the first registration error.
    pub fn compiled(&self) -> Result<&[CompiledEvent], SchemaError> {
        match self.errors.first() {
            Some(e) => Err(e.clone()),
            None => Ok(&self.events),
        }
    }

    /// Every registration error, in registration order.
    #[must_use]
    pub fn errors(&self) -> &[SchemaError] {
        &self.errors
    }

    /// The compiled event named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&CompiledEvent> {
        self.events
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.events[i])
    }

    /// The number of valid registered events.
    #[must_use]
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no valid event is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
