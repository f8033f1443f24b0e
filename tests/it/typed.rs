//! Typed decisions on every store (`typed::pg::`, `typed::sqlx::`, `typed::memory::`):
//! derived events, composed state queries, domain errors, events a decision
//! cannot decode, and a committed log of version-1 events
//! (`tests/fixtures/courses_v1.jsonl`) upcast on read.

use dcbstore::projection::{CommandError, Executed};
use dcbstore::typed::{decode, given, version_of, Decide, Decision, StateQuery};
use dcbstore::{Event, EventStore, Events, Query, ReadOptions, SequencePosition};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Version 2: version 1 said `seats`.
#[derive(Event, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(
    name = "course_defined",
    level = "sourced",
    version = 2,
    upcast(from = 1, with = seats_to_capacity)
)]
struct CourseDefined {
    #[tag(prefix = "course")]
    course_id: String,
    capacity: u32,
}

fn seats_to_capacity(mut v1: Value) -> Result<Value, String> {
    let o = v1.as_object_mut().ok_or("version 1 is an object")?;
    let seats = o.remove("seats").ok_or("version 1 has seats")?;
    o.insert("capacity".into(), seats);
    Ok(v1)
}

/// Version 2: version 1 said `student` and `course`.
#[derive(Event, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(
    name = "student_subscribed",
    level = "sourced",
    version = 2,
    upcast(from = 1, typed = SubscribedV1)
)]
struct StudentSubscribed {
    #[tag(prefix = "course")]
    course_id: String,
    #[tag(prefix = "student")]
    student_id: String,
}

#[derive(Deserialize)]
struct SubscribedV1 {
    student: String,
    course: String,
}

impl From<SubscribedV1> for StudentSubscribed {
    fn from(v1: SubscribedV1) -> Self {
        StudentSubscribed {
            course_id: v1.course,
            student_id: v1.student,
        }
    }
}

#[derive(Events, Debug, PartialEq)]
enum CourseEvent {
    Defined(CourseDefined),
    Subscribed(StudentSubscribed),
}

struct Capacity(String);

impl StateQuery for Capacity {
    type Event = CourseDefined;
    type State = Option<u32>;
    fn tags(&self) -> Vec<String> {
        vec![CourseDefined::course_id_tag(&self.0)]
    }
    fn initial(&self) -> Option<u32> {
        None
    }
    fn apply(&self, _: Option<u32>, e: CourseDefined) -> Option<u32> {
        Some(e.capacity)
    }
}

struct Subscribed(String);

impl StateQuery for Subscribed {
    type Event = StudentSubscribed;
    type State = Vec<String>;
    fn tags(&self) -> Vec<String> {
        vec![StudentSubscribed::course_id_tag(&self.0)]
    }
    fn initial(&self) -> Vec<String> {
        Vec::new()
    }
    fn apply(&self, mut s: Vec<String>, e: StudentSubscribed) -> Vec<String> {
        s.push(e.student_id);
        s
    }
}

#[derive(Clone)]
struct Subscribe {
    course: &'static str,
    student: &'static str,
}

impl Decision for Subscribe {
    type Model = (Capacity, Subscribed);
    type Emits = StudentSubscribed;
    type Error = String;
    fn model(&self) -> Self::Model {
        (Capacity(self.course.into()), Subscribed(self.course.into()))
    }
    fn decide(
        &self,
        (capacity, subscribed): &(Option<u32>, Vec<String>),
    ) -> Result<Vec<StudentSubscribed>, String> {
        let capacity = capacity.ok_or(format!("no course {}", self.course))?;
        if subscribed.len() >= capacity as usize {
            return Err(format!("course {} is full", self.course));
        }
        Ok(vec![StudentSubscribed {
            course_id: self.course.into(),
            student_id: self.student.into(),
        }])
    }
}

/// The committed log of version-1 events, as an older build stored them.
fn fixture() -> Vec<Event> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/courses_v1.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("the fixture log");
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            let tags = v["tags"].as_array().expect("tags").iter();
            let mut e = Event::new(v["type"].as_str().expect("type"), v["data"].clone())
                .with_tags(tags.map(|t| t.as_str().expect("a tag").to_string()));
            if let Some(m) = v["metadata"].as_object() {
                e = e.with_metadata(m.clone());
            }
            e
        })
        .collect()
}

async fn log<S: EventStore>(store: &S) -> Vec<dcbstore::SequencedEvent> {
    futures::TryStreamExt::try_collect(store.read(&Query::all(), ReadOptions::new()))
        .await
        .expect("read")
}

async fn typed_decisions_read_version_1_events_and_refuse_with_domain_errors<
    S: EventStore + Sync,
>(
    store: &S,
) {
    let _ = store.append(fixture(), None).await.expect("the fixture");
    // c1: capacity 2 (v1 `seats`), s1 in it (v1 `student`): one seat left.
    let first = store
        .decide(&Subscribe {
            course: "c1",
            student: "s2",
        })
        .await
        .expect("a seat was left");
    let Executed::Appended { appended, .. } = first else {
        panic!("expected an append, got {first:?}");
    };
    assert_eq!(appended.position, SequencePosition::new(4));
    let full = store
        .decide(&Subscribe {
            course: "c1",
            student: "s3",
        })
        .await
        .unwrap_err();
    assert_eq!(
        full.rejected().map(String::as_str),
        Some("course c1 is full")
    );
    // c2 was stored without an envelope (version 1 too).
    let c2 = store
        .decide(&Subscribe {
            course: "c2",
            student: "s3",
        })
        .await;
    assert!(matches!(c2, Ok(Executed::Appended { .. })), "{c2:?}");
    let missing = store
        .decide(&Subscribe {
            course: "c3",
            student: "s3",
        })
        .await
        .unwrap_err();
    assert_eq!(missing.rejected().map(String::as_str), Some("no course c3"));

    // The whole log reads as the current shapes; the new events are version 2.
    let log = log(store).await;
    let typed: Vec<CourseEvent> = log
        .iter()
        .map(|e| CourseEvent::decode(e).expect("every event decodes"))
        .collect();
    assert_eq!(
        typed[1],
        CourseEvent::Subscribed(StudentSubscribed {
            course_id: "c1".into(),
            student_id: "s1".into()
        })
    );
    assert_eq!(
        typed[2],
        CourseEvent::Defined(CourseDefined {
            course_id: "c2".into(),
            capacity: 5
        })
    );
    assert_eq!(version_of(&log[0].event), 1);
    assert_eq!(version_of(&log[3].event), 2);
    assert_eq!(log[3].event.tags, ["course:c1", "student:s2"]);
    assert_eq!(
        decode::<StudentSubscribed>(&log[4])
            .expect("decodes")
            .student_id,
        "s3"
    );
}

async fn an_event_a_decision_cannot_decode_stops_it_and_names_its_position<S: EventStore + Sync>(
    store: &S,
) {
    let _ = store.append(fixture(), None).await.expect("the fixture");
    let mut broken = Event::new(
        "course_defined",
        json!({"course_id": "c9", "capacity": "many"}),
    )
    .with_tag("course:c9");
    broken
        .metadata
        .insert("envelope".into(), json!({"version": 2}));
    let at = store
        .append(vec![broken], None)
        .await
        .expect("append")
        .position;
    let err = store
        .decide(&Subscribe {
            course: "c9",
            student: "s1",
        })
        .await
        .unwrap_err();
    match err {
        CommandError::Undecodable { position, message } => {
            assert_eq!(position, at);
            assert!(message.contains("course_defined"), "{message}");
        }
        other => panic!("expected Undecodable, got {other:?}"),
    }
    assert_eq!(store.head().await.unwrap(), Some(at), "nothing appended");
}

crate::common::on_every_store! {
    typed_decisions_read_version_1_events_and_refuse_with_domain_errors,
    an_event_a_decision_cannot_decode_stops_it_and_names_its_position,
}

#[tokio::test]
async fn deciders_are_tested_in_memory_given_when_then() {
    let c1 = CourseDefined {
        course_id: "c1".into(),
        capacity: 1,
    };
    let s1 = StudentSubscribed {
        course_id: "c1".into(),
        student_id: "s1".into(),
    };
    given([c1.clone()])
        .when(Subscribe {
            course: "c1",
            student: "s1",
        })
        .then([s1.clone()])
        .await;
    given([c1])
        .and([s1])
        .when(Subscribe {
            course: "c1",
            student: "s2",
        })
        .then_error("course c1 is full".to_string())
        .await;
}

/// Version 1 of `course_defined`, as the committed schema file knows it.
#[derive(Event, Serialize, Deserialize, JsonSchema)]
#[event(name = "course_defined", level = "sourced")]
struct CourseDefinedV1 {
    course_id: String,
    seats: u32,
}

/// The same change of shape as [`CourseDefined`]'s, without an upcaster.
#[derive(Event, Serialize, Deserialize, JsonSchema)]
#[event(name = "course_defined", level = "sourced", version = 2)]
struct CourseDefinedWithoutUpcaster {
    course_id: String,
    capacity: u32,
}

#[test]
fn schema_compat_refuses_a_breaking_change_without_an_upcaster() {
    use dcbstore::schema::{compat_between, compile, merge, BreakingChange, SchemaFile};
    let committed = merge(
        &[compile::<CourseDefinedV1>().expect("compiles")],
        &SchemaFile::default(),
    );
    let bare = compile::<CourseDefinedWithoutUpcaster>().expect("compiles");
    let changes = compat_between(&[bare], &committed);
    assert!(
        changes.iter().any(
            |c| matches!(c, BreakingChange::RequiredFieldRemoved { field, .. } if field == "seats")
        ),
        "{changes:?}"
    );
    let upcast = compile::<CourseDefined>().expect("compiles");
    assert_eq!(upcast.upcasts, [1]);
    assert_eq!(compat_between(&[upcast], &committed), []);
}
