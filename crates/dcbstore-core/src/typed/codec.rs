//! Typed events to stored events and back: the data as JSON, the tags from
//! the type, the version kept in the metadata, and older versions upcast on
//! the way back.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::event::{Event, SequencedEvent};
use crate::schema::EventDefinition;

/// The metadata key that holds a typed event's envelope (`name`, `kind`,
/// `version`, `level`): the key the dispatcher's level-5 handler writes, so
/// that events appended by decisions and by the dispatcher read alike.
pub const ENVELOPE: &str = "envelope";

/// The stored event of `event`: its type the definition's name, its data
/// the JSON of `event`, its tags [`EventDefinition::tags`], and its
/// envelope (name, kind, version, level) in the metadata.
///
/// ```
/// use dcbstore_core::schema::{EventDefinition, Level};
/// use dcbstore_core::typed::{to_event, version_of};
/// # use schemars::JsonSchema;
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize, JsonSchema)]
/// struct CourseDefined { course_id: String, capacity: u32 }
/// impl EventDefinition for CourseDefined {
///     const NAME: &'static str = "course_defined";
///     const LEVEL: Level = Level::Sourced;
///     const VERSION: u32 = 2;
///     fn tags(&self) -> Vec<String> { vec![format!("course:{}", self.course_id)] }
/// }
/// let e = to_event(&CourseDefined { course_id: "c1".into(), capacity: 10 })?;
/// assert_eq!(e.event_type, "course_defined");
/// assert_eq!(e.tags, ["course:c1"]);
/// assert_eq!(version_of(&e), 2);
/// # Ok::<(), dcbstore_core::Error>(())
/// ```
pub fn to_event<E: EventDefinition>(event: &E) -> Result<Event> {
    let data = serde_json::to_value(event).map_err(|e| {
        Error::invalid(format!(
            "{} cannot be written as JSON: {e} (maps need string keys)",
            E::NAME
        ))
    })?;
    let mut metadata = Map::new();
    metadata.insert(
        ENVELOPE.into(),
        json!({
            "name": E::NAME,
            "kind": E::KIND,
            "version": E::VERSION,
            "level": E::LEVEL,
        }),
    );
    Ok(Event::new(E::NAME, data)
        .with_tags(event.tags())
        .with_metadata(metadata))
}

/// The version of `event`'s shape, as its envelope holds it; 1 for an event
/// without one (appended as plain JSON before it had versions).
#[must_use]
pub fn version_of(event: &Event) -> u32 {
    event
        .metadata
        .get(ENVELOPE)
        .and_then(|envelope| envelope.get("version"))
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(1)
}

/// The typed event of a stored one of type `E::NAME`: its data upcast from
/// its version to [`EventDefinition::VERSION`], one step at a time, then
/// decoded. Whatever fails is [`Error::Undecodable`], naming the event's
/// position, type and id, and what failed.
pub fn decode<E: EventDefinition>(stored: &SequencedEvent) -> Result<E> {
    let undecodable = |message: String| Error::Undecodable {
        position: stored.position,
        message: format!(
            "{} {} (id {}): {message}",
            E::NAME,
            version_label(version_of(&stored.event)),
            stored.event.id
        ),
    };
    if stored.event.event_type != E::NAME {
        return Err(undecodable(format!(
            "its type is {:?}, not {:?}",
            stored.event.event_type,
            E::NAME
        )));
    }
    let version = version_of(&stored.event);
    if version > E::VERSION {
        return Err(undecodable(format!(
            "this build knows versions up to {}: deploy the build that wrote it",
            E::VERSION
        )));
    }
    let data = upcast::<E>(version, stored.event.data.clone()).map_err(undecodable)?;
    serde_json::from_value(data).map_err(|e| undecodable(e.to_string()))
}

/// `data` of version `version` upcast to [`EventDefinition::VERSION`], one
/// step at a time through [`EventDefinition::upcast`]; unchanged when it is
/// not older. The error says which step failed or is missing. Delivery's
/// typed handlers decode envelopes through it too, so that every reader sees
/// the current shape.
pub fn upcast<E: EventDefinition>(
    mut version: u32,
    mut data: Value,
) -> std::result::Result<Value, String> {
    while version < E::VERSION {
        data = match E::upcast(version, data) {
            Some(Ok(next)) => next,
            Some(Err(why)) => return Err(format!("its upcast from version {version} failed: {why}")),
            None => {
                return Err(format!(
                    "no upcaster from version {version} to {}: add one (#[event(upcast(from = {version}, ...))])",
                    version + 1
                ))
            }
        };
        version += 1;
    }
    Ok(data)
}

fn version_label(v: u32) -> String {
    format!("v{v}")
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::{json, Value};

    use super::*;
    use crate::event::SequencePosition;
    use crate::schema::Level;

    #[derive(Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
    struct Renamed {
        full_name: String,
    }

    impl EventDefinition for Renamed {
        const NAME: &'static str = "renamed";
        const LEVEL: Level = Level::Sourced;
        const VERSION: u32 = 3;
        fn upcast(from: u32, mut data: Value) -> Option<Result<Value, String>> {
            match from {
                // v1 had `name`; v2 `full`; v3 `full_name`.
                1 => Some(Ok(json!({ "full": data["name"].take() }))),
                2 => Some(Ok(json!({ "full_name": data["full"].take() }))),
                _ => None,
            }
        }
    }

    fn stored(data: Value, version: Option<u32>) -> SequencedEvent {
        let mut event = Event::new("renamed", data);
        if let Some(v) = version {
            event
                .metadata
                .insert(ENVELOPE.into(), json!({ "version": v }));
        }
        SequencedEvent {
            position: SequencePosition::new(7),
            event,
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn old_versions_are_upcast_step_by_step_and_newer_or_broken_ones_name_the_event() {
        let want = Renamed {
            full_name: "Ada".into(),
        };
        assert_eq!(
            decode::<Renamed>(&stored(json!({"name": "Ada"}), None)).unwrap(),
            want
        );
        assert_eq!(
            decode::<Renamed>(&stored(json!({"full": "Ada"}), Some(2))).unwrap(),
            want
        );
        assert_eq!(
            decode::<Renamed>(&stored(json!({"full_name": "Ada"}), Some(3))).unwrap(),
            want
        );
        let e = to_event(&want).unwrap();
        assert_eq!(version_of(&e), 3);
        for (data, version, says) in [
            (json!({"full_name": "Ada"}), Some(4), "versions up to 3"),
            (json!({"other": 1}), Some(3), "missing field"),
        ] {
            let err = decode::<Renamed>(&stored(data, version)).unwrap_err();
            assert_eq!(err.position(), Some(SequencePosition::new(7)), "{err}");
            assert!(err.to_string().contains(says), "{err}");
            assert!(err.to_string().contains("renamed"), "{err}");
        }
    }
}
