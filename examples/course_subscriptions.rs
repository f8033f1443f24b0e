//! A realistic DCB example, end to end: course subscriptions with capacity
//! and a per-student limit, decided with consistency boundaries that span
//! several "aggregates" (course, student), under concurrency. Events are
//! Rust types (`#[derive(Event)]`), the state is typed, and each decision
//! composes the state queries it needs; `decide` reads, decides, appends
//! under the condition and decides again after a conflict.
//!
//! Uses `DATABASE_URL` when set (and migrates it), else starts a throwaway
//! PostgreSQL from the local binaries and removes it at the end:
//!
//! ```text
//! cargo run --release --example course_subscriptions
//! ```

use std::sync::Arc;

use dcbstore::projection::CommandError;
use dcbstore::typed::{Decide, Decision, StateQuery};
use dcbstore::{Event, EventStore, Events, ReadOptions, Store};
use dcbstore_testing::Scratch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

// ---- Events ----

#[derive(Event, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "course_defined", level = "sourced")]
struct CourseDefined {
    #[tag(prefix = "course")]
    course_id: String,
    capacity: u32,
}

#[derive(Event, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "course_capacity_changed", level = "sourced")]
struct CourseCapacityChanged {
    #[tag(prefix = "course")]
    course_id: String,
    new_capacity: u32,
}

#[derive(Event, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "student_subscribed_to_course", level = "sourced")]
struct StudentSubscribed {
    #[tag(prefix = "student")]
    student_id: String,
    #[tag(prefix = "course")]
    course_id: String,
}

/// The events of a course's own life.
#[derive(Events, Debug)]
enum CourseEvent {
    Defined(CourseDefined),
    CapacityChanged(CourseCapacityChanged),
}

// ---- State queries ----

/// The course's capacity, `None` until it is defined.
struct CourseCapacity(String);

impl StateQuery for CourseCapacity {
    type Event = CourseEvent;
    type State = Option<u32>;
    fn tags(&self) -> Vec<String> {
        vec![CourseDefined::course_id_tag(&self.0)]
    }
    fn initial(&self) -> Option<u32> {
        None
    }
    fn apply(&self, _: Option<u32>, e: CourseEvent) -> Option<u32> {
        Some(match e {
            CourseEvent::Defined(d) => d.capacity,
            CourseEvent::CapacityChanged(c) => c.new_capacity,
        })
    }
}

/// Who subscribed to a course.
struct CourseSubscriptions(String);

impl StateQuery for CourseSubscriptions {
    type Event = StudentSubscribed;
    type State = Vec<String>;
    fn tags(&self) -> Vec<String> {
        vec![StudentSubscribed::course_id_tag(&self.0)]
    }
    fn initial(&self) -> Vec<String> {
        Vec::new()
    }
    fn apply(&self, mut students: Vec<String>, e: StudentSubscribed) -> Vec<String> {
        students.push(e.student_id);
        students
    }
}

/// How many courses a student subscribed to.
struct StudentSubscriptions(String);

impl StateQuery for StudentSubscriptions {
    type Event = StudentSubscribed;
    type State = u32;
    fn tags(&self) -> Vec<String> {
        vec![StudentSubscribed::student_id_tag(&self.0)]
    }
    fn initial(&self) -> u32 {
        0
    }
    fn apply(&self, n: u32, _: StudentSubscribed) -> u32 {
        n + 1
    }
}

// ---- Decisions ----

struct DefineCourse {
    course_id: String,
    capacity: u32,
}

impl Decision for DefineCourse {
    type Model = CourseCapacity;
    type Emits = CourseDefined;
    type Error = String;
    fn model(&self) -> CourseCapacity {
        CourseCapacity(self.course_id.clone())
    }
    fn decide(&self, capacity: &Option<u32>) -> Result<Vec<CourseDefined>, String> {
        if capacity.is_some() {
            return Err(format!("course {} already exists", self.course_id));
        }
        Ok(vec![CourseDefined {
            course_id: self.course_id.clone(),
            capacity: self.capacity,
        }])
    }
}

/// Subscribe a student: one consistency boundary across the course and the
/// student, composed of three state queries.
struct Subscribe {
    student_id: String,
    course_id: String,
}

impl Decision for Subscribe {
    type Model = (CourseCapacity, CourseSubscriptions, StudentSubscriptions);
    type Emits = StudentSubscribed;
    type Error = String;
    fn model(&self) -> Self::Model {
        (
            CourseCapacity(self.course_id.clone()),
            CourseSubscriptions(self.course_id.clone()),
            StudentSubscriptions(self.student_id.clone()),
        )
    }
    fn decide(
        &self,
        (capacity, subscribed, courses): &(Option<u32>, Vec<String>, u32),
    ) -> Result<Vec<StudentSubscribed>, String> {
        let Some(capacity) = capacity else {
            return Err(format!("course {} does not exist", self.course_id));
        };
        if subscribed.len() >= *capacity as usize {
            return Err(format!("course {} is already fully booked", self.course_id));
        }
        if subscribed.contains(&self.student_id) {
            return Err("student already subscribed to this course".into());
        }
        if *courses >= 5 {
            return Err("student already subscribed to 5 courses".into());
        }
        Ok(vec![StudentSubscribed {
            student_id: self.student_id.clone(),
            course_id: self.course_id.clone(),
        }])
    }
}

/// The outcome of a decision, as one line: the domain's refusal, or where
/// the events went.
fn outcome(r: Result<dcbstore::projection::Executed, CommandError<String>>) -> String {
    match r {
        Ok(dcbstore::projection::Executed::Appended {
            appended, attempts, ..
        }) => {
            format!("at position {} ({attempts} attempt(s))", appended.position)
        }
        Ok(dcbstore::projection::Executed::NothingToDo) => "nothing to do".into(),
        Err(CommandError::Rejected(why)) => format!("refused: {why}"),
        Err(e) => format!("failed: {e}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // DATABASE_URL (migrated), else a throwaway PostgreSQL that is removed
    // when `scratch` is dropped at the end.
    if std::env::var("DATABASE_URL").is_err() {
        println!("DATABASE_URL not set: starting a throwaway PostgreSQL");
    }
    let scratch = Scratch::start(false).await?;
    let store = Store::connect(scratch.url()).await?;
    println!("store {}", store.store_id());

    // Names unique to this run, so the example can run again on the same database.
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_string();
    let popular = format!("dcb101-{run}");
    let other = format!("rust201-{run}");
    for (course_id, capacity) in [(&popular, 3), (&other, 10), (&popular, 99)] {
        let define = DefineCourse {
            course_id: course_id.clone(),
            capacity,
        };
        println!(
            "  define {course_id}: {}",
            outcome(store.decide(&define).await)
        );
    }

    // Twelve students try to get into a course with 3 seats, all at once.
    let barrier = Arc::new(Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (store, barrier, course_id) = (store.clone(), barrier.clone(), popular.clone());
            tokio::spawn(async move {
                let student_id = format!("s{i}-{run_len}", run_len = course_id.len());
                let subscribe = Subscribe {
                    student_id: student_id.clone(),
                    course_id,
                };
                barrier.wait().await;
                (student_id, store.decide(&subscribe).await)
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        let (student, result) = t.await?;
        admitted += usize::from(result.is_ok());
        println!("  {student} into {popular}: {}", outcome(result));
    }
    assert_eq!(admitted, 3, "capacity holds under concurrency");

    // The rules that cross boundaries.
    let again = Subscribe {
        student_id: format!("s0-{}", popular.len()),
        course_id: popular.clone(),
    };
    println!("  s0 again: {}", outcome(store.decide(&again).await));
    let unknown = Subscribe {
        student_id: "s0".into(),
        course_id: "nope".into(),
    };
    println!(
        "  unknown course: {}",
        outcome(store.decide(&unknown).await)
    );
    let busy = format!("busy-student-{run}");
    for k in 0..6 {
        let course_id = format!("{other}-{k}");
        let define = DefineCourse {
            course_id: course_id.clone(),
            capacity: 10,
        };
        let _ = store.decide(&define).await;
        let subscribe = Subscribe {
            student_id: busy.clone(),
            course_id: course_id.clone(),
        };
        println!(
            "  {busy} into {course_id}: {}",
            outcome(store.decide(&subscribe).await)
        );
    }

    // Everything of the popular course, read back as the typed events.
    let query = CourseSubscriptions(popular.clone()).query();
    let all = store.read_all(&query, ReadOptions::new()).await?;
    let students: Vec<String> = all
        .iter()
        .map(|e| dcbstore::typed::decode::<StudentSubscribed>(e).map(|s| s.student_id))
        .collect::<Result<_, _>>()?;
    println!(
        "{popular}: {students:?} in the log; head at {:?}",
        store.head().await?.map(|p| p.get())
    );
    Ok(())
}
