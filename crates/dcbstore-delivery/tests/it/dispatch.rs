//! Emit and dispatch: validation against the schema file, routing by level,
//! typed subscribers, and the store as the level-5 handler (PostgreSQL).

use std::sync::{Arc, Mutex};

use dcbstore::projection::{DecisionModel, Fold};
use dcbstore::schema::{self, EventDefinition, Kind, Level, SchemaRegistry};
use dcbstore::{EventStore, HandlerError, Query, QueryItem, ReadOptions};
use dcbstore_delivery::dispatch::{
    append_envelopes_in, DispatchError, Dispatcher, EmitContext, EmitOptions, Envelope, Handler,
    Levels, SourcedHandler,
};
use dcbstore_test_support::store;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct CourseDefined {
    course_id: String,
    capacity: u32,
}

impl EventDefinition for CourseDefined {
    const NAME: &'static str = "course_defined";
    const LEVEL: Level = Level::Sourced;
    fn tags(&self) -> Vec<String> {
        vec![format!("course:{}", self.course_id)]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct WelcomeRequested {
    student_id: String,
    note: Option<String>,
}

impl EventDefinition for WelcomeRequested {
    const NAME: &'static str = "welcome_requested";
    const KIND: Kind = Kind::Integration;
    const LEVEL: Level = Level::Sync;
}

/// Same name as CourseDefined, another shape: a version the file lacks.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
struct CourseDefinedV2 {
    course_id: String,
    capacity: u32,
    title: String,
}

impl EventDefinition for CourseDefinedV2 {
    const NAME: &'static str = "course_defined";
    const LEVEL: Level = Level::Sourced;
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
struct NotInTheFile {
    x: i32,
}

impl EventDefinition for NotInTheFile {
    const NAME: &'static str = "not_in_the_file";
    const LEVEL: Level = Level::Sync;
}

fn schema_path(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dcbstore-dispatch-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.schema.json");
    let registry = SchemaRegistry::new()
        .register::<CourseDefined>()
        .register::<WelcomeRequested>();
    schema::dump(&registry, &path).unwrap();
    path
}

/// Records the order in which handlers ran.
#[derive(Clone)]
struct Recorder {
    label: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    fail: bool,
}

impl Handler for Recorder {
    async fn handle(&self, envelope: &Envelope, _: &EmitContext) -> Result<(), HandlerError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:{}", self.label, envelope.name));
        if self.fail {
            return Err("recorder failed on purpose".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn handlers_run_by_level_in_registration_order_and_stop_at_the_first_error() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let rec = |label, fail| Recorder {
        label,
        log: log.clone(),
        fail,
    };
    let dispatcher = Dispatcher::from_file(schema_path("order"))
        .unwrap()
        .handler(Levels::All, "all", rec("all", false))
        .handler(
            Levels::Range(Level::Sync..=Level::Outbox),
            "low",
            rec("low", false),
        )
        .handler(
            Levels::List(vec![Level::Sourced]),
            "five",
            rec("five", false),
        )
        .handler(Level::Sync, "one", rec("one", false));
    let env = dispatcher
        .emit(&CourseDefined {
            course_id: "c1".into(),
            capacity: 3,
        })
        .await
        .unwrap();
    assert_eq!(env.level, Level::Sourced);
    assert_eq!(env.version, 1);
    assert_eq!(env.tags, ["course:c1"]);
    assert_eq!(env.idempotency_key, env.id.to_string());
    assert_eq!(env.id.get_version_num(), 7);
    dispatcher
        .emit(&WelcomeRequested {
            student_id: "s1".into(),
            note: None,
        })
        .await
        .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "all:course_defined",
            "five:course_defined",
            "all:welcome_requested",
            "low:welcome_requested",
            "one:welcome_requested"
        ]
    );

    // The first error stops the chain and names its handler.
    log.lock().unwrap().clear();
    let failing = Dispatcher::from_file(schema_path("fail"))
        .unwrap()
        .handler(Levels::All, "first", rec("first", false))
        .handler(Levels::All, "broken", rec("broken", true))
        .handler(Levels::All, "never", rec("never", false));
    let err = failing
        .emit(&WelcomeRequested {
            student_id: "s1".into(),
            note: Some("hi".into()),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DispatchError::Handler { handler, .. } if handler == "broken"),
        "{err}"
    );
    assert_eq!(
        *log.lock().unwrap(),
        ["first:welcome_requested", "broken:welcome_requested"]
    );
}

#[tokio::test]
async fn unknown_events_and_versions_are_typed_errors() {
    let dispatcher = Dispatcher::from_file(schema_path("unknown")).unwrap();
    let err = dispatcher.emit(&NotInTheFile { x: 1 }).await.unwrap_err();
    assert!(
        matches!(err, DispatchError::UnknownEvent { ref name } if name == "not_in_the_file"),
        "{err}"
    );
    assert!(err.to_string().contains("schema dump"), "{err}");
    let err = dispatcher
        .emit(&CourseDefinedV2 {
            course_id: "c".into(),
            capacity: 1,
            title: "t".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::UnknownVersion { .. }), "{err}");
}

#[tokio::test]
async fn typed_subscribers_and_enrichers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let dispatcher = Dispatcher::from_file(schema_path("subscribers"))
        .unwrap()
        .enricher(|m| {
            m.insert("correlation_id".into(), json!("corr-1"));
        })
        .subscribe::<WelcomeRequested, _>(move |e, env| {
            s.lock()
                .unwrap()
                .push((e.clone(), env.metadata.get("correlation_id").cloned()));
            Ok(())
        });
    let event = WelcomeRequested {
        student_id: "s9".into(),
        note: Some("welcome".into()),
    };
    let env = dispatcher
        .emit_with(&event, EmitOptions::new().metadata("user", json!("u1")))
        .await
        .unwrap();
    assert_eq!(env.metadata["user"], "u1");
    assert_eq!(env.kind, Kind::Integration);
    assert_eq!(*seen.lock().unwrap(), [(event, Some(json!("corr-1")))]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_is_the_level_5_handler() {
    let (store, db) = store().await;
    let dispatcher = Dispatcher::from_file(schema_path("sourced"))
        .unwrap()
        .handler(Level::Sourced, "store", SourcedHandler::new(store.clone()));
    let c1 = CourseDefined {
        course_id: "c1".into(),
        capacity: 10,
    };
    let env = dispatcher.emit(&c1).await.unwrap();
    let stored = store
        .read_all(&Query::all(), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let e = &stored[0].event;
    assert_eq!(e.id, env.id, "the envelope id is the store id");
    assert_eq!(e.event_type, "course_defined");
    assert_eq!(e.tags, ["course:c1"]);
    assert_eq!(e.data, json!({"course_id": "c1", "capacity": 10}));
    assert_eq!(e.metadata["envelope"]["version"], 1);
    assert_eq!(e.metadata["envelope"]["level"], 5);

    // A retried emit (the same envelope again) is idempotent.
    dispatcher
        .dispatch(&env, &EmitContext::default())
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap().unwrap().get(), 1);

    // Decide, then emit: the decision model's condition travels with the emit.
    let exists = Fold::new(
        Query::item(QueryItem::types(["course_defined"]).and_tags(["course:c2"])),
        false,
        |_, _| true,
    );
    let model = DecisionModel::build(&store, &exists).await.unwrap();
    assert!(!model.state);
    // Someone defines c2 in between.
    dispatcher
        .emit(&CourseDefined {
            course_id: "c2".into(),
            capacity: 1,
        })
        .await
        .unwrap();
    let err = dispatcher
        .emit_with(
            &CourseDefined {
                course_id: "c2".into(),
                capacity: 5,
            },
            EmitOptions::new().condition(model.append_condition()),
        )
        .await
        .unwrap_err();
    let conflict = err
        .store_error()
        .and_then(|e| e.conflict())
        .expect("a conflict");
    assert_eq!(conflict.events.len(), 1);
    assert_eq!(
        store.head().await.unwrap().unwrap().get(),
        2,
        "nothing written"
    );

    // Emitting inside the caller's transaction: commits or rolls back with it.
    let mut client = dcbstore::connection::connect(&db.config().unwrap())
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE app_rows (x int)")
        .await
        .unwrap();
    let c3 = dispatcher
        .prepare(
            &CourseDefined {
                course_id: "c3".into(),
                capacity: 2,
            },
            &EmitOptions::new(),
        )
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO app_rows VALUES (1)", &[])
        .await
        .unwrap();
    let _ = append_envelopes_in(&tx, std::slice::from_ref(&c3), None)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        store.head().await.unwrap().unwrap().get(),
        2,
        "rolled back together"
    );
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO app_rows VALUES (1)", &[])
        .await
        .unwrap();
    let appended = append_envelopes_in(&tx, std::slice::from_ref(&c3), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(appended.position.get(), 3);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM app_rows", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}
