//! A realistic DCB example, end to end: course subscriptions with capacity
//! and a per-student limit, decided with consistency boundaries that span
//! several "aggregates" (course, student), under concurrency.
//!
//! Uses `DATABASE_URL` when set (and migrates it), else starts a throwaway
//! PostgreSQL from the local binaries and removes it at the end:
//!
//! ```text
//! cargo run --release --example course_subscriptions
//! ```

use std::sync::Arc;

use dcbstore::{
    AppendCondition, Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencePosition,
    Store,
};
use dcbstore_testing::Scratch;
use serde_json::json;
use tokio::sync::Barrier;

/// The decision model of "subscribe student S to course C": everything the
/// rules need, read in one query, plus the last position read.
#[derive(Debug, Default)]
struct SubscriptionModel {
    course_exists: bool,
    capacity: u64,
    course_subscriptions: u64,
    student_subscriptions: u64,
    already_subscribed: bool,
    /// The position the model was read at: its append goes after it.
    read_at: Option<SequencePosition>,
}

fn course(c: &str) -> String {
    format!("course:{c}")
}

fn student(s: &str) -> String {
    format!("student:{s}")
}

/// The query of the model: the course's definition and capacity changes,
/// its subscriptions, and the student's subscriptions.
fn subscription_query(c: &str, s: &str) -> Query {
    Query::item(QueryItem::types(["CourseDefined", "CourseCapacityChanged"]).and_tags([course(c)]))
        .or(QueryItem::types(["StudentSubscribedToCourse"]).and_tags([course(c)]))
        .or(QueryItem::types(["StudentSubscribedToCourse"]).and_tags([student(s)]))
}

async fn load(store: &Store, c: &str, s: &str) -> dcbstore::Result<SubscriptionModel> {
    let mut m = SubscriptionModel::default();
    let seen = store
        .read_boundary(&subscription_query(c, s), ReadOptions::new())
        .await?;
    m.read_at = seen.after;
    for e in seen.events {
        let d = &e.event.data;
        match e.event.event_type.as_str() {
            "CourseDefined" => {
                m.course_exists = true;
                m.capacity = d["capacity"].as_u64().unwrap_or(0);
            }
            "CourseCapacityChanged" => m.capacity = d["newCapacity"].as_u64().unwrap_or(0),
            "StudentSubscribedToCourse" => {
                let for_course = d["courseId"] == c;
                let for_student = d["studentId"] == s;
                m.course_subscriptions += u64::from(for_course);
                m.student_subscriptions += u64::from(for_student);
                m.already_subscribed |= for_course && for_student;
            }
            _ => {}
        }
    }
    Ok(m)
}

fn decide(m: &SubscriptionModel, c: &str, s: &str) -> Result<Event, String> {
    if !m.course_exists {
        return Err(format!("Course \"{c}\" does not exist"));
    }
    if m.course_subscriptions >= m.capacity {
        return Err(format!("Course \"{c}\" is already fully booked"));
    }
    if m.already_subscribed {
        return Err("Student already subscribed to this course".into());
    }
    if m.student_subscriptions >= 5 {
        return Err("Student already subscribed to 5 courses".into());
    }
    Ok(Event::new(
        "StudentSubscribedToCourse",
        json!({"studentId": s, "courseId": c}),
    )
    .with_tags([course(c), student(s)]))
}

/// Read, decide, append with the model's query after the position it was
/// read at; on a
/// conflict, someone changed the boundary meanwhile: decide again.
async fn subscribe(store: &Store, c: &str, s: &str) -> Result<SequencePosition, String> {
    for _attempt in 0..20 {
        let model = load(store, c, s).await.map_err(|e| e.to_string())?;
        let event = decide(&model, c, s)?;
        let condition = AppendCondition::new(subscription_query(c, s), model.read_at);
        match store.append(vec![event], Some(condition)).await {
            Ok(a) => return Ok(a.position),
            Err(Error::Conflict(_)) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("gave up after 20 conflicts".into())
}

async fn define_course(store: &Store, c: &str, capacity: u64) -> dcbstore::Result<()> {
    let q = Query::item(QueryItem::types(["CourseDefined"]).and_tags([course(c)]));
    let event = Event::new(
        "CourseDefined",
        json!({"courseId": c, "capacity": capacity}),
    )
    .with_tag(course(c));
    match store
        .append(vec![event], Some(AppendCondition::new(q, None)))
        .await
    {
        Err(Error::Conflict(_)) => {
            println!("  course {c} already exists");
            Ok(())
        }
        other => other.map(|_| ()),
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
    let url = scratch.url();
    let store = Store::connect(url).await?;
    println!("store {}", store.store_id());

    // Names unique to this run, so the example can run again on the same database.
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_string();
    let popular = format!("dcb101-{run}");
    let other = format!("rust201-{run}");
    define_course(&store, &popular, 3).await?;
    define_course(&store, &other, 10).await?;
    define_course(&store, &popular, 99).await?; // refused: already exists

    // Twelve students try to get into a course with 3 seats, all at once.
    let barrier = Arc::new(Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (store, barrier, c) = (store.clone(), barrier.clone(), popular.clone());
            tokio::spawn(async move {
                let s = format!("s{i}-{}", c.len());
                barrier.wait().await;
                (s.clone(), subscribe(&store, &c, &s).await)
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        let (s, result) = t.await?;
        match result {
            Ok(p) => {
                admitted += 1;
                println!("  {s} subscribed to {popular} at position {p}");
            }
            Err(why) => println!("  {s} refused: {why}"),
        }
    }
    assert_eq!(admitted, 3, "capacity holds under concurrency");

    // The rules that cross boundaries.
    println!(
        "  s0 again: {:?}",
        subscribe(&store, &popular, "s0-14").await.err()
    );
    println!(
        "  unknown course: {:?}",
        subscribe(&store, "nope", "s0").await.err()
    );
    let s = "busy-student";
    for k in 0..6 {
        let c = format!("{other}-{k}");
        define_course(&store, &c, 10).await?;
        match subscribe(&store, &c, s).await {
            Ok(p) => println!("  {s} subscribed to {c} at {p}"),
            Err(why) => println!("  {s} refused for {c}: {why}"),
        }
    }

    let all = store
        .read_all(
            &Query::item(
                QueryItem::types(["StudentSubscribedToCourse"]).and_tags([course(&popular)]),
            ),
            ReadOptions::new(),
        )
        .await?;
    println!(
        "{popular}: {} subscriptions in the log; head at {:?}",
        all.len(),
        store.head().await?.map(|p| p.get())
    );
    Ok(())
}
