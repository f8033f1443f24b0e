//! The schema and dispatch core end to end: event definitions compiled into a
//! committed schema file (`examples/school.schema.json`), emits routed by level
//! (a level-1 in-process subscriber, the store at level 5), a "decide, then
//! emit" step carrying a DCB append condition, and a projection rebuilt from
//! the store.
//!
//! ```text
//! cargo run --release --example school                  # verify the schema file, then run
//! cargo run --release --example school -- schema dump   # after changing a definition
//! cargo run --release --example school -- schema verify | compat | catalog [--json]
//! ```
//! Uses `DATABASE_URL` when set, else a throwaway PostgreSQL.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dcbstore::projection::{replay, DecisionModel, Fold, Projection};
use dcbstore::schema::{self, Level, SchemaRegistry};
use dcbstore::{Event, Query, QueryItem, SequencedEvent, Store};
use dcbstore_delivery::dispatch::{Dispatcher, EmitOptions, SourcedHandler};
use dcbstore_testing::Scratch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize, JsonSchema)]
#[event(name = "course_defined", level = "sourced")]
struct CourseDefined {
    #[tag(prefix = "course")]
    course_id: String,
    capacity: u32,
}

#[derive(Event, Debug, Serialize, Deserialize, JsonSchema)]
#[event(name = "student_subscribed", level = "sourced")]
struct StudentSubscribed {
    #[tag(prefix = "course")]
    course_id: String,
    #[tag(prefix = "student")]
    student_id: String,
}

#[derive(Event, Debug, Serialize, Deserialize, JsonSchema)]
#[event(name = "welcome_requested", level = "sync", kind = "integration")]
struct WelcomeRequested {
    student_id: String,
    course_id: String,
    /// Free text for the e-mail.
    note: Option<String>,
}

fn registry() -> SchemaRegistry {
    SchemaRegistry::new()
        .register::<CourseDefined>()
        .register::<StudentSubscribed>()
        .register::<WelcomeRequested>()
}

/// Capacity and subscriptions of one course: the decision model of "subscribe".
fn course_model(course: &str) -> impl Projection<State = (u32, u32)> {
    let tag = format!("course:{course}");
    let capacity = Fold::new(
        Query::item(QueryItem::types(["course_defined"]).and_tags([tag.clone()])),
        0u32,
        |_, e: &SequencedEvent| e.event.data["capacity"].as_u64().unwrap_or(0) as u32,
    );
    let subscribed = Fold::new(
        Query::item(QueryItem::types(["student_subscribed"]).and_tags([tag])),
        0u32,
        |n, _| n + 1,
    );
    (capacity, subscribed)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/school.schema.json");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("schema") {
        std::process::exit(dcbstore_cli::kit::schema::run(
            &registry(),
            &path,
            args.into_iter().skip(1),
        ));
    }
    // The committed file is the contract: refuse to run on drift.
    if let Err(e) = schema::verify(&registry(), &path) {
        eprintln!("{e}\nrun: cargo run --example school -- schema dump");
        std::process::exit(1);
    }

    let scratch = Scratch::start(false).await?;
    let store = Store::connect(scratch.url()).await?;
    let welcomes = Arc::new(AtomicUsize::new(0));
    let counter = welcomes.clone();
    let dispatcher = Dispatcher::from_file(&path)?
        .enricher(|m| {
            m.insert("app".into(), "school-example".into());
        })
        .subscribe::<WelcomeRequested, _>(move |e, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            println!(
                "  (level 1) welcome e-mail for {} in {}",
                e.student_id, e.course_id
            );
            Ok(())
        })
        .handler(
            Level::Sourced,
            "dcbstore",
            SourcedHandler::new(store.clone()),
        );

    let run = uuid::Uuid::now_v7().simple().to_string()[24..].to_string();
    let course = format!("rust-{run}");
    dispatcher
        .emit(&CourseDefined {
            course_id: course.clone(),
            capacity: 2,
        })
        .await?;

    // Decide, then emit: the model's condition makes the step consistent.
    for student in ["ada", "grace", "linus"] {
        let model = course_model(&course);
        let decision = DecisionModel::build(&store, &model).await?;
        let (capacity, subscribed) = decision.state;
        if subscribed >= capacity {
            println!(
                "  {student} refused: course {course} is fully booked ({subscribed}/{capacity})"
            );
            continue;
        }
        let emitted = dispatcher
            .emit_with(
                &StudentSubscribed {
                    course_id: course.clone(),
                    student_id: student.into(),
                },
                EmitOptions::new().condition(decision.append_condition()),
            )
            .await?;
        println!("  (level 5) {student} subscribed (event {})", emitted.id);
        dispatcher
            .emit(&WelcomeRequested {
                student_id: student.into(),
                course_id: course.clone(),
                note: None,
            })
            .await?;
    }

    // Rebuild a projection from the store: subscriptions per course.
    let model = course_model(&course);
    let ((capacity, subscribed), last) = replay(&store, &model, (0, 0), None, |_| {}).await?;
    println!(
        "course {course}: {subscribed}/{capacity} seats taken (rebuilt up to position {}), {} welcome e-mails",
        last.map_or(0, |p| p.get()),
        welcomes.load(Ordering::SeqCst)
    );
    assert_eq!((subscribed, capacity), (2, 2));
    Ok(())
}
