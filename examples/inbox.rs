//! The inbox pattern on the log: an issue tracker records `issue_opened`,
//! `issue_assigned` and `comment_added` through the schema-first
//! dispatcher, and each reaction sits at its level:
//!
//! - an activity feed (level 1: in the emit, in process);
//! - notification e-mails (level 2: background jobs, a mailer that logs);
//! - a search-index sync (level 3: a durable subscriber, from the log);
//! - a webhook to an external service (level 4: a relay, signed POSTs to a
//!   local HTTP receiver started here).
//!
//! ```text
//! cargo run --release --example inbox                  # verify the schema file, then run
//! cargo run --release --example inbox -- schema dump   # after changing a definition
//! ```
//! Uses `DATABASE_URL` when set, else a throwaway PostgreSQL.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dcbstore::schema::{self, EventDefinition, Level, SchemaRegistry};
use dcbstore::{Event, HandlerError, Store};
use dcbstore_delivery::dispatch::{Dispatcher, Envelope, Levels, SourcedHandler};
use dcbstore_delivery::job::{JobConfig, Jobs};
use dcbstore_delivery::webhook::{self, WebhookTransport, ID_HEADER};
use dcbstore_delivery::{DeliveryConfig, DurableSubscriber, Relay, SubscriberConfig};
use dcbstore_testing::Scratch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A new issue: announced to the outside world (level 4, through the log).
#[derive(Event, Debug, Serialize, Deserialize, JsonSchema)]
#[event(name = "issue_opened", level = "broker", kind = "integration")]
struct IssueOpened {
    #[tag]
    issue: u32,
    title: String,
}

/// An assignment: mails the assignee (level 2, not durable).
#[derive(Event, Debug, Serialize, Deserialize, JsonSchema)]
#[event(name = "issue_assigned", level = "job", kind = "integration")]
struct IssueAssigned {
    issue: u32,
    assignee: String,
}

/// A comment: indexed for search (level 3, the outbox).
#[derive(Event, Debug, Serialize, Deserialize, JsonSchema)]
#[event(name = "comment_added", level = "outbox", kind = "integration")]
struct CommentAdded {
    #[tag]
    issue: u32,
    author: String,
    text: String,
}

fn registry() -> SchemaRegistry {
    SchemaRegistry::new()
        .register::<IssueOpened>()
        .register::<IssueAssigned>()
        .register::<CommentAdded>()
}

/// Level 3: the search index, kept from the log (issues and comments).
#[derive(Clone, Default)]
struct SearchIndex {
    documents: Arc<Mutex<BTreeMap<u32, Vec<String>>>>,
}

impl DurableSubscriber for SearchIndex {
    fn name(&self) -> &str {
        "search-index"
    }
    fn events(&self) -> Vec<String> {
        vec![IssueOpened::NAME.into(), CommentAdded::NAME.into()]
    }
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let issue = envelope.payload["issue"].as_u64().ok_or("no issue")? as u32;
        let text = envelope.payload["title"]
            .as_str()
            .or(envelope.payload["text"].as_str())
            .unwrap_or_default()
            .to_string();
        println!("  (level 3) search index: issue {issue} += {text:?}");
        self.documents
            .lock()
            .map_err(|_| "index poisoned")?
            .entry(issue)
            .or_default()
            .push(text);
        Ok(())
    }
}

/// The external service's receiver: checks each POST's Standard Webhooks
/// signature (id, timestamp and body; an old timestamp is refused).
#[derive(Clone)]
struct Receiver {
    secret: Vec<u8>,
    got: Arc<Mutex<Vec<(String, String)>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if webhook::verify(&r.secret, &headers, &body).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    let key = headers
        .get(ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Ok(envelope) = serde_json::from_slice::<Envelope>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    println!(
        "  (level 4) webhook received {} (webhook-id {key}), signature valid",
        envelope.name
    );
    if let Ok(mut got) = r.got.lock() {
        got.push((envelope.name, key));
    }
    StatusCode::NO_CONTENT
}

async fn wait_for(what: &str, done: impl Fn() -> bool) -> Result<(), String> {
    for _ in 0..400 {
        if done() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("timed out waiting for {what}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/inbox.schema.json");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("schema") {
        std::process::exit(dcbstore_cli::kit::schema::run(
            &registry(),
            &path,
            args.into_iter().skip(1),
        ));
    }
    if let Err(e) = schema::verify(&registry(), &path) {
        eprintln!("{e}\nrun: cargo run --example inbox -- schema dump");
        std::process::exit(1);
    }

    let scratch = Scratch::start(false).await?;
    let store = Store::connect(scratch.url()).await?;

    // The external service (level 4's destination).
    let receiver = Receiver {
        secret: b"shared-secret-of-the-example".to_vec(),
        got: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks/issues", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/hooks/issues", axum::routing::post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Level 1: the activity feed, in the emit.
    let feed: Arc<Mutex<Vec<String>>> = Arc::default();
    // Level 2: mails, in the background.
    let mails: Arc<Mutex<Vec<String>>> = Arc::default();
    let sent = mails.clone();
    let jobs = Jobs::builder(JobConfig::default())
        .on::<IssueAssigned, _, _>("assignment mail", move |e, _| {
            let sent = sent.clone();
            async move {
                let mail = format!("to {}: you now own issue {}", e.assignee, e.issue);
                println!("  (level 2) mailer: {mail}");
                sent.lock().map_err(|_| "mailer poisoned")?.push(mail);
                Ok(())
            }
        })
        .start();
    // Level 3 and 4 run from the log, in the background.
    let index = SearchIndex::default();
    let fast = DeliveryConfig {
        poll_interval: Duration::from_millis(200),
        ..DeliveryConfig::default()
    };
    let indexer = SubscriberConfig::new(index.clone(), fast).start(&store);
    let schema_file = schema::SchemaFile::load(&path)?;
    let hook = WebhookTransport::new(url, receiver.secret.clone())?;
    let relay = Relay::new(hook, &schema_file, fast);
    let relay_name = relay.name().to_string();
    let relaying = relay.start(&store);

    let f = feed.clone();
    let dispatcher = Dispatcher::from_file(&path)?
        .handler(Levels::All, "activity feed", FeedHandler(f))
        .handler(Level::Job, "jobs", jobs.clone())
        .handler(
            Level::Outbox..=Level::Sourced,
            "dcbstore",
            SourcedHandler::new(store.clone()),
        )
        .relayed_by(relay_name);
    for warning in dispatcher.check()? {
        eprintln!("warning: {warning}");
    }

    dispatcher
        .emit(&IssueOpened {
            issue: 1,
            title: "Login fails on Safari".into(),
        })
        .await?;
    dispatcher
        .emit(&IssueAssigned {
            issue: 1,
            assignee: "ada".into(),
        })
        .await?;
    dispatcher
        .emit(&CommentAdded {
            issue: 1,
            author: "grace".into(),
            text: "Reproduced with Safari 18".into(),
        })
        .await?;

    wait_for("the search index", || {
        index
            .documents
            .lock()
            .map(|d| d.get(&1).map_or(0, Vec::len) == 2)
            .unwrap_or(false)
    })
    .await?;
    wait_for("the webhook", || {
        receiver.got.lock().map(|g| g.len() == 1).unwrap_or(false)
    })
    .await?;
    let report = jobs.shutdown(Duration::from_secs(5)).await;
    indexer.stop().await;
    relaying.stop().await;

    let feed = feed.lock().map_err(|_| "feed poisoned")?.clone();
    let mails = mails.lock().map_err(|_| "mailer poisoned")?.clone();
    let docs = index
        .documents
        .lock()
        .map_err(|_| "index poisoned")?
        .clone();
    let hooks = receiver
        .got
        .lock()
        .map_err(|_| "receiver poisoned")?
        .clone();
    println!("what each reaction saw:");
    println!("  level 1, activity feed: {feed:?}");
    println!(
        "  level 2, mails: {mails:?} ({} completed, {} dropped)",
        report.completed, report.dropped
    );
    println!("  level 3, search index: {docs:?}");
    println!("  level 4, webhook: {hooks:?}");
    assert_eq!(feed.len(), 3, "the feed sees every event");
    assert_eq!(mails.len(), 1);
    assert_eq!(docs[&1].len(), 2);
    assert_eq!(hooks[0].0, "issue_opened");
    Ok(())
}

/// Level 1: appends a line to the activity feed for every event.
struct FeedHandler(Arc<Mutex<Vec<String>>>);

impl dcbstore_delivery::dispatch::Handler for FeedHandler {
    async fn handle(
        &self,
        envelope: &Envelope,
        _context: &dcbstore_delivery::dispatch::EmitContext,
    ) -> Result<(), HandlerError> {
        let line = format!("{} on issue {}", envelope.name, envelope.payload["issue"]);
        println!("  (level 1) activity feed: {line}");
        self.0.lock().map_err(|_| "feed poisoned")?.push(line);
        Ok(())
    }
}
