//! An HTTP service on axum and sqlx whose handlers decide, append their
//! events and update the application's own read model in one sqlx
//! transaction: both commit, or neither does (Marten's "inline
//! projections"). The events are Rust types (`#[derive(Event)]`), the
//! decisions typed; `dcbstore::sqlx::decide_in` reads the decision's
//! boundary and appends under its condition inside the handler's
//! transaction, and `dcbstore::sqlx::wake` wakes the store's followers when
//! it commits.
//!
//! ```text
//! cargo run --release --example enrolment_service              # serve, run a short demo against itself, exit
//! cargo run --release --example enrolment_service -- --serve   # serve until Ctrl-C (PORT, default 3000)
//!
//! curl -X POST localhost:3000/courses/c1 -d '{"capacity": 2}' -H 'content-type: application/json'
//! curl -X POST localhost:3000/courses/c1/students/ann
//! curl localhost:3000/courses/c1
//! ```
//!
//! Uses `DATABASE_URL` when set (the store's schema is created there if
//! missing, and the service's tables), else a throwaway PostgreSQL.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use dcbstore::projection::{CommandError, Executed};
use dcbstore::schema::EventDefinition;
use dcbstore::typed::{Decision, StateQuery};
use dcbstore::{Event, EventStore, Events, Query, QueryItem, ReadOptions, Store};
use dcbstore_testing::Scratch;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgPool;

// ---- Events ----

#[derive(Event, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "course_defined", level = "sourced")]
struct CourseDefined {
    #[tag(prefix = "course")]
    course_id: String,
    capacity: u32,
}

#[derive(Event, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "student_enrolled", level = "sourced")]
struct StudentEnrolled {
    #[tag(prefix = "course")]
    course_id: String,
    #[tag(prefix = "student")]
    student_id: String,
}

#[derive(Events, Debug)]
enum CourseEvent {
    Defined(CourseDefined),
    Enrolled(StudentEnrolled),
}

// ---- The decisions' state: one course's history ----

#[derive(Default)]
struct Course {
    capacity: Option<u32>,
    students: BTreeSet<String>,
}

struct CourseHistory(String);

impl StateQuery for CourseHistory {
    type Event = CourseEvent;
    type State = Course;
    fn tags(&self) -> Vec<String> {
        vec![CourseDefined::course_id_tag(&self.0)]
    }
    fn initial(&self) -> Course {
        Course::default()
    }
    fn apply(&self, mut course: Course, e: CourseEvent) -> Course {
        match e {
            CourseEvent::Defined(d) => course.capacity = Some(d.capacity),
            CourseEvent::Enrolled(e) => {
                course.students.insert(e.student_id);
            }
        }
        course
    }
}

// ---- Decisions ----

struct DefineCourse {
    course_id: String,
    capacity: u32,
}

impl Decision for DefineCourse {
    type Model = CourseHistory;
    type Emits = CourseDefined;
    type Error = String;
    fn model(&self) -> CourseHistory {
        CourseHistory(self.course_id.clone())
    }
    fn decide(&self, course: &Course) -> Result<Vec<CourseDefined>, String> {
        if course.capacity.is_some() {
            return Err(format!("course {} already exists", self.course_id));
        }
        Ok(vec![CourseDefined {
            course_id: self.course_id.clone(),
            capacity: self.capacity,
        }])
    }
}

struct Enrol {
    course_id: String,
    student_id: String,
}

impl Decision for Enrol {
    type Model = CourseHistory;
    type Emits = StudentEnrolled;
    type Error = String;
    fn model(&self) -> CourseHistory {
        CourseHistory(self.course_id.clone())
    }
    fn decide(&self, course: &Course) -> Result<Vec<StudentEnrolled>, String> {
        let Some(capacity) = course.capacity else {
            return Err(format!("no course {}", self.course_id));
        };
        if course.students.contains(&self.student_id) {
            return Err(format!("{} is already enrolled", self.student_id));
        }
        if course.students.len() >= capacity as usize {
            return Err(format!("course {} is full", self.course_id));
        }
        Ok(vec![StudentEnrolled {
            course_id: self.course_id.clone(),
            student_id: self.student_id.clone(),
        }])
    }
}

// ---- The service's own tables: its read model ----

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS course_seats (
    course_id text PRIMARY KEY,
    capacity  int  NOT NULL,
    taken     int  NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS course_roster (
    course_id  text NOT NULL REFERENCES course_seats,
    student_id text NOT NULL,
    PRIMARY KEY (course_id, student_id)
);";

// ---- Handlers ----

type Reply = (StatusCode, Json<Value>);

#[derive(Deserialize)]
struct NewCourse {
    capacity: u32,
}

/// Defines a course: its event and its row, one transaction.
async fn define_course(
    State(pool): State<PgPool>,
    Path(course_id): Path<String>,
    Json(body): Json<NewCourse>,
) -> Reply {
    let define = DefineCourse {
        course_id: course_id.clone(),
        capacity: body.capacity,
    };
    let result = in_transaction(&pool, &define, |tx| {
        Box::pin(async move {
            sqlx::query("INSERT INTO course_seats (course_id, capacity) VALUES ($1, $2)")
                .bind(&course_id)
                .bind(i32::try_from(body.capacity).unwrap_or(i32::MAX))
                .execute(&mut **tx)
                .await
                .map(drop)
        })
    })
    .await;
    reply(result, StatusCode::CREATED)
}

/// Enrols a student: the decision's event, the seat count and the roster
/// row, one transaction.
async fn enrol(
    State(pool): State<PgPool>,
    Path((course_id, student_id)): Path<(String, String)>,
) -> Reply {
    let enrol = Enrol {
        course_id: course_id.clone(),
        student_id: student_id.clone(),
    };
    let result = in_transaction(&pool, &enrol, |tx| {
        Box::pin(async move {
            sqlx::query("UPDATE course_seats SET taken = taken + 1 WHERE course_id = $1")
                .bind(&course_id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("INSERT INTO course_roster (course_id, student_id) VALUES ($1, $2)")
                .bind(&course_id)
                .bind(&student_id)
                .execute(&mut **tx)
                .await
                .map(drop)
        })
    })
    .await;
    reply(result, StatusCode::CREATED)
}

/// The read model of a course, from the service's own tables.
async fn course(State(pool): State<PgPool>, Path(course_id): Path<String>) -> Reply {
    let seats: Result<Option<(i32, i32)>, _> =
        sqlx::query_as("SELECT capacity, taken FROM course_seats WHERE course_id = $1")
            .bind(&course_id)
            .fetch_optional(&pool)
            .await;
    let roster: Result<Vec<String>, _> = sqlx::query_scalar(
        "SELECT student_id FROM course_roster WHERE course_id = $1 ORDER BY student_id",
    )
    .bind(&course_id)
    .fetch_all(&pool)
    .await;
    match (seats, roster) {
        (Ok(Some((capacity, taken))), Ok(students)) => (
            StatusCode::OK,
            Json(json!({"capacity": capacity, "taken": taken, "students": students})),
        ),
        (Ok(None), _) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no course {course_id}")})),
        ),
        (Err(e), _) | (_, Err(e)) => unavailable(&e),
    }
}

/// What went wrong in a transaction.
enum Failure {
    Rejected(String),
    Failed(String),
}

/// Runs `decision` and then the application's own `writes` in one
/// transaction, wakes the store's followers at its commit, and commits:
/// the events and the rows, or neither.
async fn in_transaction<D>(
    pool: &PgPool,
    decision: &D,
    writes: impl for<'t> FnOnce(
        &'t mut sqlx::Transaction<'static, sqlx::Postgres>,
    ) -> futures::future::BoxFuture<'t, Result<(), sqlx::Error>>,
) -> Result<Executed, Failure>
where
    D: Decision<Error = String>,
{
    let failed = |e: &dyn std::fmt::Display| Failure::Failed(e.to_string());
    let mut tx = pool.begin().await.map_err(|e| failed(&e))?;
    let executed = match dcbstore::sqlx::decide_in(&mut tx, decision).await {
        Ok(executed) => executed,
        Err(CommandError::Rejected(why)) => return Err(Failure::Rejected(why)),
        Err(e) => return Err(failed(&e)),
    };
    writes(&mut tx).await.map_err(|e| failed(&e))?;
    dcbstore::sqlx::wake(&mut tx)
        .await
        .map_err(|e| failed(&e))?;
    tx.commit().await.map_err(|e| failed(&e))?;
    Ok(executed)
}

fn reply(result: Result<Executed, Failure>, created: StatusCode) -> Reply {
    match result {
        Ok(Executed::Appended { appended, .. }) => {
            (created, Json(json!({"position": appended.position.get()})))
        }
        Ok(Executed::NothingToDo) => (StatusCode::OK, Json(json!({}))),
        Err(Failure::Rejected(why)) => (StatusCode::CONFLICT, Json(json!({"error": why}))),
        Err(Failure::Failed(e)) => unavailable(&e),
    }
}

/// Nothing was committed (the transaction rolled back, or its connection
/// died before the commit): the client may retry.
fn unavailable(e: &dyn std::fmt::Display) -> Reply {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": format!("not done, retry: {e}")})),
    )
}

fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/courses/{course_id}", post(define_course).get(course))
        .route("/courses/{course_id}/students/{student_id}", post(enrol))
        .with_state(pool)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve = std::env::args().any(|a| a == "--serve");
    let scratch = Scratch::start(false).await?;
    // The store creates (or checks) its schema; the service itself runs on
    // its own sqlx pool, from the same connection string.
    let store = Store::connect(scratch.url()).await?;
    let options =
        dcbstore::sqlx::connect_options(scratch.url())?.application_name("enrolment_service");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::raw_sql(TABLES).execute(&pool).await?;

    let port = std::env::var("PORT").map_or(Ok(if serve { 3000 } else { 0 }), |p| p.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let address = listener.local_addr()?;
    println!("listening on http://{address}");
    let server = tokio::spawn(async move { axum::serve(listener, router(pool)).await });
    if serve {
        server.await??;
        return Ok(());
    }

    // The demo: a follower of the store sees each enrolment when its
    // transaction commits, and the service answers a few requests.
    let enrolled = Query::item(QueryItem::types([StudentEnrolled::NAME]));
    let head = store.head().await?;
    let mut follower = store.subscribe(
        &enrolled,
        dcbstore::subscribe::SubscribeOptions::new().after_opt(head),
    );
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_string();
    let course = format!("dcb101-{run}");
    let http = reqwest::Client::new();
    let base = format!("http://{address}/courses/{course}");
    let define = http
        .post(&base)
        .header("content-type", "application/json")
        .body(r#"{"capacity": 2}"#)
        .send()
        .await?;
    println!("define {course} (2 seats): {}", define.status());
    let mut created = 0;
    for student in ["ann", "bob", "cy", "ann"] {
        let r = http
            .post(format!("{base}/students/{student}"))
            .send()
            .await?;
        let status = r.status();
        created += usize::from(status == StatusCode::CREATED);
        println!("  enrol {student}: {status} {}", r.text().await?);
    }
    assert_eq!(created, 2, "two seats");
    for _ in 0..created {
        let e = follower.next().await.ok_or("the follower ended")??;
        println!("  followed: {} {}", e.event.event_type, e.event.data);
    }
    let read_model = http.get(&base).send().await?.text().await?;
    println!("read model: {read_model}");
    let events: Vec<_> = store
        .read(
            &Query::item(QueryItem::tags([CourseDefined::course_id_tag(&course)])),
            ReadOptions::default(),
        )
        .collect()
        .await;
    println!("the course's events in the log: {}", events.len());
    assert_eq!(events.len(), 3, "one definition, two enrolments");
    server.abort();
    Ok(())
}
