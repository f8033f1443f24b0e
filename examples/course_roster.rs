//! A durable read model: the roster of every course (who subscribed, in which
//! order), kept in a PostgreSQL table by a projection runner while students
//! subscribe concurrently, then rebuilt from the log.
//!
//! ```text
//! cargo run --release --example course_roster                 # the demo
//! cargo run --release --example course_roster -- projections status
//! cargo run --release --example course_roster -- projections rebuild course_roster
//! ```
//!
//! The `projections ...` form shows how an application exposes the projection
//! commands through its own binary (the `dcbstore` tool cannot load them).
//! Uses `DATABASE_URL` when set, else a throwaway PostgreSQL.

use std::time::Duration;

use dcbstore::projection::durable::{
    self, DurableProjection, ProjectionRegistry, Runner, RunnerConfig,
};
use dcbstore::HandlerError;
use dcbstore::{Event, EventStore, Query, QueryItem, SequencedEvent, Store};
use dcbstore_cli::kit::projections;
use dcbstore_testing::Scratch;
use deadpool_postgres::Transaction;
use serde_json::json;

/// `course_roster(course, student, position)`: one row per subscription.
struct CourseRoster;

impl DurableProjection for CourseRoster {
    fn name(&self) -> &str {
        "course_roster"
    }

    fn query(&self) -> Query {
        Query::item(QueryItem::types(["StudentSubscribedToCourse"]))
    }

    async fn setup(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS course_roster (
                 course text NOT NULL, student text NOT NULL, position bigint NOT NULL,
                 PRIMARY KEY (course, student))",
        )
        .await?;
        Ok(())
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
        tx.batch_execute("TRUNCATE course_roster").await?;
        Ok(())
    }

    async fn apply(&self, tx: &Transaction<'_>, e: &SequencedEvent) -> Result<(), HandlerError> {
        let course = e.event.data["courseId"]
            .as_str()
            .ok_or("courseId missing")?;
        let student = e.event.data["studentId"]
            .as_str()
            .ok_or("studentId missing")?;
        let stmt = tx
            .prepare_cached("INSERT INTO course_roster VALUES ($1, $2, $3)")
            .await?;
        tx.execute(&stmt, &[&course, &student, &(e.position.get() as i64)])
            .await?;
        Ok(())
    }
}

async fn roster(store: &Store) -> Result<Vec<(String, i64)>, Box<dyn std::error::Error>> {
    let client = store.pool().get().await?;
    Ok(client
        .query(
            "SELECT course, count(*) FROM course_roster GROUP BY course ORDER BY course",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // DATABASE_URL, else a throwaway PostgreSQL (removed when `scratch` drops).
    let scratch = Scratch::start(false).await?;
    let url = scratch.url();
    let store = Store::connect(url).await?;
    let registry = ProjectionRegistry::new().with(CourseRoster);

    // The application's own command line: `... -- projections <command>`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("projections") {
        let code = projections::run(&store, &registry, args.into_iter().skip(1)).await;
        std::process::exit(code);
    }

    // Live: the runner follows the log while four writers subscribe students.
    let runner = Runner::start(store.clone(), CourseRoster, RunnerConfig::default());
    let run = uuid::Uuid::now_v7().simple().to_string()[24..].to_string();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, run) = (store.clone(), run.clone());
            tokio::spawn(async move {
                for i in 0..250 {
                    let course = format!("c{}-{run}", i % 5);
                    let student = format!("s{w}-{i}");
                    let e = Event::new(
                        "StudentSubscribedToCourse",
                        json!({"courseId": course, "studentId": student}),
                    )
                    .with_tags([format!("course:{course}"), format!("student:{student}")]);
                    let _ = store.append(vec![e], None).await?;
                }
                Ok::<(), dcbstore::Error>(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    let head = store.head().await?.map_or(0, |p| p.get());
    loop {
        let s = durable::status(&store).await?;
        if s.iter()
            .any(|s| s.name == "course_roster" && s.checkpoint == head)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live = roster(&store).await?;
    println!("live read model (head {head}):");
    for (course, n) in &live {
        println!("  {course}: {n} students");
    }
    runner.stop().await;
    projections::print_status(&store, false).await?;

    // Rebuild from the log: same read model.
    let applied = durable::rebuild(
        &store,
        &CourseRoster,
        &RunnerConfig::default(),
        Duration::from_secs(10),
        |p| {
            if p.checkpoint == p.head {
                println!(
                    "rebuild reached the head ({}), {} events applied",
                    p.head, p.applied
                );
            }
        },
    )
    .await?;
    let rebuilt = roster(&store).await?;
    assert_eq!(live, rebuilt, "a rebuild gives the same read model");
    println!("rebuilt from the log: {applied} events, same read model");
    Ok(())
}
