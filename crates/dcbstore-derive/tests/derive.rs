//! The derives, used as an application would (through `dcbstore-core`
//! here), and their misuse: each a compile error at the attribute, field
//! or variant at fault (`ui/fail_*.rs`, with the expected messages).

use dcbstore_core::schema::{EventDefinition, Kind, Level};
use dcbstore_core::typed::{decode, to_event, version_of, Events};
use dcbstore_core::{SequencePosition, SequencedEvent};
use dcbstore_derive::{Event, Events};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Event, Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
#[event(name = "course_defined", level = "sourced", crate = dcbstore_core)]
#[tag("course:{course_id}")]
struct CourseDefined {
    course_id: String,
    capacity: u32,
}

/// Version 3: `seat` became `seats`; version 1 had no `student_id` tag field name change.
#[derive(Event, Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
#[event(
    name = "student_subscribed",
    level = "outbox",
    kind = "integration",
    version = 3,
    crate = dcbstore_core,
    upcast(from = 1, typed = SubscribedV1, to = SubscribedV2),
    upcast(from = 2, with = seats_from_seat),
)]
struct StudentSubscribed {
    #[tag(prefix = "student")]
    student_id: String,
    #[tag(prefix = "course")]
    course_id: String,
    #[tag]
    term: u32,
    seats: u32,
}

#[derive(Deserialize)]
struct SubscribedV1 {
    student: String,
    course_id: String,
    term: u32,
}

#[derive(Serialize)]
struct SubscribedV2 {
    student_id: String,
    course_id: String,
    term: u32,
    seat: u32,
}

impl From<SubscribedV1> for SubscribedV2 {
    fn from(v1: SubscribedV1) -> Self {
        SubscribedV2 {
            student_id: v1.student,
            course_id: v1.course_id,
            term: v1.term,
            seat: 1,
        }
    }
}

fn seats_from_seat(mut v2: Value) -> Result<Value, String> {
    let object = v2.as_object_mut().ok_or("version 2 is an object")?;
    let seat = object.remove("seat").ok_or("version 2 has a seat")?;
    object.insert("seats".into(), seat);
    Ok(v2)
}

#[derive(Events, Debug, PartialEq)]
#[events(crate = dcbstore_core)]
enum CourseEvent {
    Defined(CourseDefined),
    Subscribed(StudentSubscribed),
}

fn stored(event: dcbstore_core::Event, position: u64) -> SequencedEvent {
    SequencedEvent {
        position: SequencePosition::new(position),
        event,
        recorded_at: chrono_now(),
    }
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[test]
fn attributes_give_the_definition_and_fields_give_the_tags() {
    assert_eq!(CourseDefined::NAME, "course_defined");
    assert_eq!(CourseDefined::KIND, Kind::Domain);
    assert_eq!(CourseDefined::LEVEL, Level::Sourced);
    assert_eq!(CourseDefined::VERSION, 1);
    assert_eq!(StudentSubscribed::KIND, Kind::Integration);
    assert_eq!(StudentSubscribed::LEVEL, Level::Outbox);
    assert_eq!(StudentSubscribed::VERSION, 3);
    let c = CourseDefined {
        course_id: "c1".into(),
        capacity: 10,
    };
    assert_eq!(c.tags(), ["course:c1"]);
    let s = StudentSubscribed {
        student_id: "s1".into(),
        course_id: "c1".into(),
        term: 2026,
        seats: 1,
    };
    assert_eq!(s.tags(), ["student:s1", "course:c1", "term:2026"]);
    assert_eq!(StudentSubscribed::course_id_tag("c1"), "course:c1");
    assert_eq!(StudentSubscribed::term_tag(2026), "term:2026");
}

#[test]
fn an_enum_of_events_decodes_each_by_its_type_and_upcasts_old_versions() {
    assert_eq!(
        CourseEvent::types(),
        ["course_defined", "student_subscribed"]
    );
    let defined = CourseEvent::from(CourseDefined {
        course_id: "c1".into(),
        capacity: 10,
    });
    let e = defined.to_event().unwrap();
    assert_eq!(CourseEvent::decode(&stored(e, 1)).unwrap(), defined);

    // A version-1 event, as an older build stored it.
    let mut v1 = dcbstore_core::Event::new(
        "student_subscribed",
        json!({"student": "s1", "course_id": "c1", "term": 2026}),
    );
    v1.metadata.insert("envelope".into(), json!({"version": 1}));
    let want = StudentSubscribed {
        student_id: "s1".into(),
        course_id: "c1".into(),
        term: 2026,
        seats: 1,
    };
    assert_eq!(
        decode::<StudentSubscribed>(&stored(v1.clone(), 2)).unwrap(),
        want
    );
    assert_eq!(
        CourseEvent::decode(&stored(v1, 2)).unwrap(),
        CourseEvent::Subscribed(want)
    );
    let now = to_event(&StudentSubscribed {
        student_id: "s2".into(),
        course_id: "c1".into(),
        term: 2026,
        seats: 2,
    })
    .unwrap();
    assert_eq!(version_of(&now), 3);

    let other = dcbstore_core::Event::new("course_archived", json!({}));
    let err = CourseEvent::decode(&stored(other, 9)).unwrap_err();
    assert_eq!(err.position(), Some(SequencePosition::new(9)));
    assert!(err.to_string().contains("CourseEvent"), "{err}");
}

#[test]
fn misuse_is_a_compile_error_at_the_attribute_field_or_variant_at_fault() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
