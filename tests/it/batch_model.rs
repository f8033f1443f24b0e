//! Randomized model-based test of `dcbstore.append_batch`, called directly
//! through SQL with parallel arrays, against an in-memory model of
//! dcb-semantics.md.
//!
//! Every round builds a batch of 1..12 requests (random types, tags, guards,
//! `after` positions, reused ids) and computes the expected row of every
//! request with the model: requests are decided in order, each against the
//! log plus the earlier appended requests of the batch:
//!
//! 1. every id stored with identical content (type, data, metadata, tags as a
//!    set): `duplicate`, position = the last of their positions;
//! 2. some id stored: `rejected`, the error names an offending id;
//! 3. a guard matches an event after its `after`: `conflict`, with the latest
//!    such position and the first 100 such events (union over the guards),
//!    reported against the log as the whole batch leaves it;
//! 4. else `appended` at consecutive positions from the head.
//!
//! The rows, and then the tables `dcbstore.events` and `dcbstore.event_tags`,
//! must agree with the model. So must the reader's statement,
//! `dcbstore.read_pages`, asked for several random requests at once (the
//! decisions read together): each request's page is what the model reads
//! alone, at the statement's one head. The test counts which path of `append_batch`
//! (a single request decided in place, set-based or sequential) ran and which outcomes happened, and fails if
//! any of them never did, so that it cannot pass vacuously.
//!
//! The same model holds every store to the rules through the store API
//! (`EventStore::append`, one request at a time, then a read of the whole
//! log): `appends_through_the_store_api_agree_with_the_model`, on
//! PostgreSQL, on the sqlx path and on `MemoryStore`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use dcbstore::connection::connect;
use dcbstore_testing::TestDatabase;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio_postgres::Client;
use uuid::Uuid;

const TYPES: [&str; 3] = ["A", "B", "C"];
const TAGS: [&str; 4] = ["t1", "t2", "t3", "t4"];
const CONFLICT_CAP: usize = 100;
const SEEDS: [u64; 4] = [1, 7, 42, 20_240_611];
const ROUNDS: usize = 150;

// ---------------------------------------------------------------------------
// What is sent

#[derive(Debug, Clone)]
struct SentEvent {
    /// `None` is sent as SQL NULL: the store generates the id.
    id: Option<Uuid>,
    ty: String,
    data: Value,
    /// `None` is sent as SQL NULL, which means `{}`.
    metadata: Option<Value>,
    /// As sent: in any order, duplicates allowed.
    tags: Vec<String>,
}

#[derive(Debug, Clone)]
struct Item {
    types: Vec<String>,
    tags: Vec<String>,
}

#[derive(Debug, Clone)]
enum Query {
    All,
    Items(Vec<Item>),
}

#[derive(Debug, Clone)]
struct Guard {
    query: Query,
    after: Option<i64>,
    /// Leave the "after" key out instead of sending null.
    omit_after: bool,
}

#[derive(Debug, Clone)]
struct Request {
    events: Vec<SentEvent>,
    guards: Option<Vec<Guard>>,
}

impl Query {
    /// The library's query of this one.
    fn to_query(&self) -> dcbstore::Query {
        match self {
            Query::All => dcbstore::Query::all(),
            Query::Items(items) => {
                let mut items = items.iter().map(|it| {
                    if it.types.is_empty() {
                        dcbstore::QueryItem::tags(it.tags.iter().cloned())
                    } else {
                        dcbstore::QueryItem::types(it.types.iter().cloned())
                            .and_tags(it.tags.iter().cloned())
                    }
                });
                let first = items.next().expect("a query has an item");
                items.fold(dcbstore::Query::item(first), |q, it| q.or(it))
            }
        }
    }

    /// `layout[i]`: send item i's empty list ("types" or "tags") as `[]`
    /// rather than leaving the key out (both mean "no constraint").
    fn to_json(&self, layout: &[bool]) -> Value {
        match self {
            Query::All => json!("all"),
            Query::Items(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| {
                        let explicit_empty = layout.get(i).copied().unwrap_or(false);
                        let mut m = serde_json::Map::new();
                        if !it.types.is_empty() || explicit_empty {
                            m.insert("types".into(), json!(it.types));
                        }
                        if !it.tags.is_empty() || explicit_empty {
                            m.insert("tags".into(), json!(it.tags));
                        }
                        Value::Object(m)
                    })
                    .collect(),
            ),
        }
    }
}

fn guards_json(guards: &[Guard], layout: &[bool]) -> Value {
    Value::Array(
        guards
            .iter()
            .map(|g| {
                let mut m = serde_json::Map::new();
                m.insert("query".into(), g.query.to_json(layout));
                if !g.omit_after {
                    m.insert("after".into(), json!(g.after));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// The eight parallel arrays of `append_batch`.
#[derive(Debug)]
struct Arrays {
    ids: Vec<Option<Uuid>>,
    types: Vec<String>,
    data: Vec<Value>,
    metadata: Vec<Option<Value>>,
    tag_ends: Vec<i32>,
    tags: Vec<String>,
    request_ends: Vec<i32>,
    conditions: Vec<Option<Value>>,
}

fn to_arrays(batch: &[Request], layout: &[bool]) -> Arrays {
    let mut a = Arrays {
        ids: vec![],
        types: vec![],
        data: vec![],
        metadata: vec![],
        tag_ends: vec![],
        tags: vec![],
        request_ends: vec![],
        conditions: vec![],
    };
    for r in batch {
        for e in &r.events {
            a.ids.push(e.id);
            a.types.push(e.ty.clone());
            a.data.push(e.data.clone());
            a.metadata.push(e.metadata.clone());
            a.tags.extend(e.tags.iter().cloned());
            a.tag_ends.push(i32::try_from(a.tags.len()).unwrap());
        }
        a.request_ends.push(i32::try_from(a.ids.len()).unwrap());
        a.conditions
            .push(r.guards.as_ref().map(|g| guards_json(g, layout)));
    }
    a
}

// ---------------------------------------------------------------------------
// The model

#[derive(Debug, Clone, PartialEq)]
struct Stored {
    /// `None` until read back when the store generated it.
    id: Option<Uuid>,
    ty: String,
    data: Value,
    metadata: Value,
    tags: BTreeSet<String>,
}

impl Stored {
    fn from_sent(e: &SentEvent) -> Stored {
        Stored {
            id: e.id,
            ty: e.ty.clone(),
            data: e.data.clone(),
            metadata: e.metadata.clone().unwrap_or_else(|| json!({})),
            tags: e.tags.iter().cloned().collect(),
        }
    }

    fn same_content(&self, e: &SentEvent) -> bool {
        let s = Stored::from_sent(e);
        self.ty == s.ty && self.data == s.data && self.metadata == s.metadata && self.tags == s.tags
    }
}

fn item_matches(it: &Item, e: &Stored) -> bool {
    (it.types.is_empty() || it.types.contains(&e.ty)) && it.tags.iter().all(|t| e.tags.contains(t))
}

fn query_matches(q: &Query, e: &Stored) -> bool {
    match q {
        Query::All => true,
        Query::Items(items) => items.iter().any(|it| item_matches(it, e)),
    }
}

/// The library's matcher, `dcbstore::Query::matches` (what projections and
/// subscriptions filter with), decides every event of the log as the model
/// does: one of the places that implement the query rule (docs/semantics.md,
/// "The query rule, in one place per layer").
fn rust_matcher_agrees(q: &Query, model: &Model, context: &str) {
    let query = q.to_query();
    for (i, e) in model.log.iter().enumerate() {
        let event =
            dcbstore::Event::new(e.ty.clone(), e.data.clone()).with_tags(e.tags.iter().cloned());
        assert_eq!(
            query.matches(&event),
            query_matches(q, e),
            "{context}: Query::matches disagrees with the model on the event at {} for {q:?}",
            i + 1
        );
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Appended(i64),
    Duplicate(i64),
    Conflict {
        position: i64,
        events: Vec<i64>,
    },
    /// The error must name one of these ids.
    Rejected(Vec<Uuid>),
}

impl Expected {
    fn outcome(&self) -> &'static str {
        match self {
            Expected::Appended(_) => "appended",
            Expected::Duplicate(_) => "duplicate",
            Expected::Conflict { .. } => "conflict",
            Expected::Rejected(_) => "rejected",
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Model {
    /// Event at position p is `log[p - 1]` (no gaps: conflicts and
    /// rejections take no position in this store).
    log: Vec<Stored>,
    by_id: HashMap<Uuid, usize>,
}

impl Model {
    fn head(&self) -> i64 {
        self.log.len() as i64
    }

    /// The conflict of `guards` against the log as it stands, if any.
    fn conflict(&self, guards: &[Guard]) -> Option<Expected> {
        let mut hits = BTreeSet::new();
        for g in guards {
            let after = g.after.unwrap_or(0);
            for (i, e) in self.log.iter().enumerate() {
                let p = i as i64 + 1;
                if p > after && query_matches(&g.query, e) {
                    hits.insert(p);
                }
            }
        }
        let latest = *hits.iter().next_back()?;
        Some(Expected::Conflict {
            position: latest,
            events: hits.into_iter().take(CONFLICT_CAP).collect(),
        })
    }

    fn decide(&mut self, r: &Request) -> Expected {
        // 1-2: idempotency by id.
        let found: Vec<(usize, &SentEvent)> = r
            .events
            .iter()
            .filter_map(|e| e.id.and_then(|id| self.by_id.get(&id).map(|&i| (i, e))))
            .collect();
        if !found.is_empty() {
            let differing: Vec<Uuid> = found
                .iter()
                .filter(|(i, e)| !self.log[*i].same_content(e))
                .map(|(_, e)| e.id.unwrap())
                .collect();
            if found.len() == r.events.len() && differing.is_empty() {
                let max = found.iter().map(|(i, _)| *i as i64 + 1).max().unwrap();
                return Expected::Duplicate(max);
            }
            let named = if differing.is_empty() {
                found.iter().map(|(_, e)| e.id.unwrap()).collect()
            } else {
                differing
            };
            return Expected::Rejected(named);
        }
        // 3: guards against the log as it stands.
        if let Some(conflict) = r.guards.as_ref().and_then(|g| self.conflict(g)) {
            return conflict;
        }
        // 4: append.
        for e in &r.events {
            let s = Stored::from_sent(e);
            if let Some(id) = s.id {
                self.by_id.insert(id, self.log.len());
            }
            self.log.push(s);
        }
        Expected::Appended(self.head())
    }
}

// ---------------------------------------------------------------------------
// Generation

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from.choose(rng).unwrap()
}

fn random_tags(rng: &mut StdRng) -> Vec<String> {
    let n = rng.gen_range(0..=3);
    (0..n).map(|_| pick(rng, &TAGS).to_string()).collect()
}

fn random_data(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..6) {
        0 => Value::Null,
        1 => json!(rng.gen_range(-5..1000)),
        2 => json!(format!("s{}", rng.gen_range(0..50))),
        3 => json!([rng.gen_range(0..3), {"k": rng.gen_bool(0.5)}]),
        4 => json!({}),
        _ => json!({"n": rng.gen_range(0..20), "x": {"y": [1, 2]}}),
    }
}

fn random_metadata(rng: &mut StdRng) -> Option<Value> {
    match rng.gen_range(0..4) {
        0 => None,
        1 => Some(json!({})),
        _ => Some(json!({"m": rng.gen_range(0..5)})),
    }
}

fn new_event(rng: &mut StdRng, null_ids: bool) -> SentEvent {
    SentEvent {
        id: if null_ids && rng.gen_bool(0.15) {
            None
        } else {
            Some(Uuid::new_v4())
        },
        ty: pick(rng, &TYPES).to_string(),
        data: random_data(rng),
        metadata: random_metadata(rng),
        tags: random_tags(rng),
    }
}

/// The same content written differently: tags reordered or repeated,
/// metadata `{}` sent as NULL and back.
fn same_content(rng: &mut StdRng, s: &Stored, id: Uuid) -> SentEvent {
    let mut tags: Vec<String> = s.tags.iter().cloned().collect();
    if !tags.is_empty() && rng.gen_bool(0.4) {
        let t = tags.choose(rng).unwrap().clone();
        tags.push(t);
    }
    tags.shuffle(rng);
    let metadata = if s.metadata == json!({}) && rng.gen_bool(0.5) {
        None
    } else {
        Some(s.metadata.clone())
    };
    SentEvent {
        id: Some(id),
        ty: s.ty.clone(),
        data: s.data.clone(),
        metadata,
        tags,
    }
}

/// The same id with content that differs in exactly one field.
fn different_content(rng: &mut StdRng, s: &Stored, id: Uuid) -> SentEvent {
    let mut e = same_content(rng, s, id);
    match rng.gen_range(0..4) {
        0 => {
            let others: Vec<&str> = TYPES.iter().copied().filter(|t| *t != s.ty).collect();
            e.ty = pick(rng, &others).to_string();
        }
        1 => e.data = json!({"changed": s.data.clone()}),
        2 => {
            e.metadata = if s.metadata == json!({}) {
                Some(json!({"m": 99}))
            } else {
                None
            }
        }
        _ => {
            let missing: Vec<&str> = TAGS
                .iter()
                .copied()
                .filter(|t| !s.tags.contains(*t))
                .collect();
            if missing.is_empty() || (!e.tags.is_empty() && rng.gen_bool(0.5)) {
                let drop = e.tags.choose(rng).unwrap().clone();
                e.tags.retain(|t| *t != drop);
            } else {
                e.tags.push(pick(rng, &missing).to_string());
            }
        }
    }
    assert!(!s.same_content(&e), "generator bug: content should differ");
    e
}

fn random_item(rng: &mut StdRng) -> Item {
    let n_types = rng.gen_range(1..=2);
    let n_tags = rng.gen_range(1..=2);
    let types = (0..n_types)
        .map(|_| pick(rng, &TYPES).to_string())
        .collect();
    let tags = (0..n_tags).map(|_| pick(rng, &TAGS).to_string()).collect();
    match rng.gen_range(0..3) {
        0 => Item {
            types,
            tags: vec![],
        },
        1 => Item {
            types: vec![],
            tags,
        },
        _ => Item { types, tags },
    }
}

fn random_query(rng: &mut StdRng) -> Query {
    if rng.gen_bool(0.15) {
        Query::All
    } else {
        let n = rng.gen_range(1..=2);
        Query::Items((0..n).map(|_| random_item(rng)).collect())
    }
}

/// `after` for a guard, given the head when the batch was built.
fn random_after(rng: &mut StdRng, head: i64, beyond_head: bool) -> Option<i64> {
    if beyond_head && rng.gen_bool(0.2) {
        // Beyond the head: forces the sequential path. head + 5 as asked,
        // sometimes closer so the batch's own events straddle it.
        return Some(if rng.gen_bool(0.6) {
            head + 5
        } else {
            head + rng.gen_range(1..=4)
        });
    }
    match rng.gen_range(0..10) {
        0..=1 => None,
        2..=4 => Some(rng.gen_range(0..=head)),
        _ => Some(head),
    }
}

fn random_guards(rng: &mut StdRng, head: i64, beyond_head: bool) -> Option<Vec<Guard>> {
    if rng.gen_bool(0.4) {
        return None;
    }
    let n = rng.gen_range(1..=2);
    Some(
        (0..n)
            .map(|_| {
                let after = random_after(rng, head, beyond_head);
                Guard {
                    query: random_query(rng),
                    after,
                    omit_after: after.is_none() && rng.gen_bool(0.5),
                }
            })
            .collect(),
    )
}

/// A batch of 1..12 requests. In a "special" batch, ids are reused (from the
/// log or from earlier requests of the batch), some ids are NULL and some
/// guards' `after` lie beyond the head; a plain batch has none of these.
fn random_batch(rng: &mut StdRng, model: &Model, special: bool) -> Vec<Request> {
    let head = model.head();
    let n_requests = rng.gen_range(1..=12);
    let mut batch: Vec<Request> = Vec::with_capacity(n_requests);
    for _ in 0..n_requests {
        let guards = random_guards(rng, head, special);
        let mut events: Vec<SentEvent> = Vec::new();
        let roll: f64 = rng.gen();
        let stored: Vec<&Stored> = model.log.iter().filter(|s| s.id.is_some()).collect();
        let earlier: Vec<&SentEvent> = batch
            .iter()
            .flat_map(|r| r.events.iter())
            .filter(|e| e.id.is_some())
            .collect();
        if special && roll < 0.25 && !stored.is_empty() {
            // Reuse 1..3 stored ids: identical, one changed, or mixed with a new event.
            let k = rng.gen_range(1..=3.min(stored.len()));
            let chosen: Vec<&Stored> = stored.choose_multiple(rng, k).copied().collect();
            let change = rng.gen_bool(0.3).then(|| rng.gen_range(0..k));
            for (j, s) in chosen.iter().enumerate() {
                let id = s.id.unwrap();
                events.push(if change == Some(j) {
                    different_content(rng, s, id)
                } else {
                    same_content(rng, s, id)
                });
            }
            if rng.gen_bool(0.15) {
                let at = rng.gen_range(0..=events.len());
                events.insert(at, new_event(rng, false));
            }
        } else if special && roll < 0.40 && !earlier.is_empty() {
            // Reuse an id of an earlier request of this batch.
            let e = (*earlier.choose(rng).unwrap()).clone();
            let s = Stored::from_sent(&e);
            let id = e.id.unwrap();
            events.push(if rng.gen_bool(0.3) {
                different_content(rng, &s, id)
            } else {
                same_content(rng, &s, id)
            });
        } else {
            let n = rng.gen_range(1..=3);
            events = (0..n).map(|_| new_event(rng, special)).collect();
        }
        batch.push(Request { events, guards });
    }
    batch
}

// ---------------------------------------------------------------------------
// Running and checking

#[derive(Debug, Clone, PartialEq)]
struct Row {
    request: i32,
    outcome: String,
    position: Option<i64>,
    conflict: Option<Value>,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct Counts {
    /// (path, outcome) -> requests
    outcomes: BTreeMap<(String, String), usize>,
    /// path -> batches
    batches: BTreeMap<String, usize>,
    conflicts_capped: usize,
    in_batch_duplicates: usize,
    /// Requests read together by `read_pages` and checked.
    requests_read: usize,
}

impl Counts {
    fn merge(&mut self, o: Counts) {
        for (k, v) in o.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        for (k, v) in o.batches {
            *self.batches.entry(k).or_default() += v;
        }
        self.conflicts_capped += o.conflicts_capped;
        self.in_batch_duplicates += o.in_batch_duplicates;
        self.requests_read += o.requests_read;
    }
}

/// Which path `append_batch` dispatches to, by its documented rule: the set
/// path needs no id stored or repeated (or NULL) and no guard after the head;
/// a batch of one such request is decided in place.
fn predicted_path(batch: &[Request], model: &Model) -> &'static str {
    let head = model.head();
    let mut seen = BTreeSet::new();
    let ids_fresh = batch.iter().flat_map(|r| &r.events).all(|e| match e.id {
        Some(id) => !model.by_id.contains_key(&id) && seen.insert(id),
        None => false,
    });
    let afters_ok = batch
        .iter()
        .flat_map(|r| r.guards.iter().flatten())
        .all(|g| g.after.is_none_or(|a| a <= head));
    if ids_fresh && afters_ok && batch.len() == 1 {
        // Decided in append_batch_unchecked itself: neither function runs.
        "single"
    } else if ids_fresh && afters_ok {
        "set"
    } else {
        "sequential"
    }
}

/// Calls of the two paths so far, as the session's pending statistics see
/// them (not flushed within a transaction, so a difference taken inside one
/// transaction counts the calls made in between).
async fn path_calls(tx: &tokio_postgres::Transaction<'_>) -> (i64, i64) {
    let row = tx
        .query_one(
            "SELECT coalesce(sum(calls) FILTER (WHERE funcname = 'append_set'), 0)::int8,                     coalesce(sum(calls) FILTER (WHERE funcname = 'append_sequential'), 0)::int8              FROM pg_stat_xact_user_functions WHERE schemaname = 'dcbstore'",
            &[],
        )
        .await
        .expect("function stats");
    (row.get(0), row.get(1))
}

async fn call_batch(
    client: &mut Client,
    a: &Arrays,
    observe_path: bool,
) -> (Vec<Row>, Option<String>) {
    let tx = client.transaction().await.expect("begin");
    let calls_before = if observe_path {
        Some(path_calls(&tx).await)
    } else {
        None
    };
    let rows = tx
        .query(
            "SELECT request, outcome, position, conflict, error \
             FROM dcbstore.append_batch($1, $2, $3, $4, $5, $6, $7, $8) ORDER BY request",
            &[
                &a.ids,
                &a.types,
                &a.data,
                &a.metadata,
                &a.tag_ends,
                &a.tags,
                &a.request_ends,
                &a.conditions,
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("append_batch failed: {e:?}\narrays: {a:#?}"));
    let path = match calls_before {
        Some((set0, seq0)) => {
            let (set1, seq1) = path_calls(&tx).await;
            match (set1 - set0, seq1 - seq0) {
                (1, 0) => Some("set".to_string()),
                (0, 1) => Some("sequential".to_string()),
                (0, 0) => Some("single".to_string()),
                d => panic!("exactly one path must run once, got (set, sequential) calls {d:?}"),
            }
        }
        None => None,
    };
    tx.commit().await.expect("commit");
    let rows = rows
        .iter()
        .map(|r| Row {
            request: r.get(0),
            outcome: r.get(1),
            position: r.get(2),
            conflict: r.get(3),
            error: r.get(4),
        })
        .collect();
    (rows, path)
}

/// Compares one row with the model; `Err` says what differs.
fn check_row(row: &Row, exp: &Expected, model: &Model) -> Result<(), String> {
    if row.outcome != exp.outcome() {
        return Err(format!("outcome {} expected {exp:?}", row.outcome));
    }
    if row.error.is_some() != matches!(exp, Expected::Rejected(_)) {
        return Err(format!(
            "error {:?} with outcome {}",
            row.error, row.outcome
        ));
    }
    match exp {
        Expected::Appended(p) | Expected::Duplicate(p) => {
            if row.position != Some(*p) || row.conflict.is_some() {
                return Err(format!(
                    "position {:?} conflict {:?}, expected position {p}",
                    row.position, row.conflict
                ));
            }
        }
        Expected::Rejected(named) => {
            if row.position.is_some() || row.conflict.is_some() {
                return Err(format!("rejected with position {:?}", row.position));
            }
            let msg = row.error.as_deref().unwrap_or_default();
            if !named.iter().any(|id| msg.contains(&id.to_string())) {
                return Err(format!("error {msg:?} names none of {named:?}"));
            }
        }
        Expected::Conflict { position, events } => {
            if row.position.is_some() {
                return Err(format!("conflict with position {:?}", row.position));
            }
            let c = row.conflict.as_ref().ok_or("conflict is NULL")?;
            if c["position"].as_i64() != Some(*position) {
                return Err(format!(
                    "conflict position {} expected {position}",
                    c["position"]
                ));
            }
            let got: Vec<&Value> = c["events"].as_array().ok_or("no events")?.iter().collect();
            let got_positions: Vec<i64> =
                got.iter().filter_map(|e| e["position"].as_i64()).collect();
            if &got_positions != events {
                return Err(format!(
                    "conflict events {got_positions:?} expected {events:?}"
                ));
            }
            for e in got {
                let p = e["position"].as_i64().unwrap();
                let s = &model.log[(p - 1) as usize];
                let tags: BTreeSet<String> = serde_json::from_value(e["tags"].clone())
                    .map_err(|x| format!("conflict event tags: {x}"))?;
                let id_ok =
                    s.id.is_none_or(|id| e["id"].as_str() == Some(id.to_string().as_str()));
                if !id_ok
                    || e["type"].as_str() != Some(s.ty.as_str())
                    || tags != s.tags
                    || e["data"] != s.data
                    || e["metadata"] != s.metadata
                {
                    return Err(format!("conflict event {e} differs from model {s:?}"));
                }
            }
        }
    }
    Ok(())
}

/// Compares `dcbstore.events` rows above `from` (all of them when 0) and
/// `dcbstore.event_tags` with the model, and learns the ids the store
/// generated for NULL ids.
async fn check_tables(client: &Client, model: &mut Model, from: i64, context: &str) {
    let rows = client
        .query(
            "SELECT position, id, type, data, metadata, tags FROM dcbstore.events \
             WHERE position > $1 ORDER BY position",
            &[&from],
        )
        .await
        .expect("read events");
    let got_positions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let want_positions: Vec<i64> = ((from + 1)..=model.head()).collect();
    assert_eq!(
        got_positions, want_positions,
        "{context}: positions in dcbstore.events"
    );
    for r in &rows {
        let p: i64 = r.get(0);
        let id: Uuid = r.get(1);
        let tags: Vec<String> = r.get(5);
        let i = (p - 1) as usize;
        let s = &mut model.log[i];
        match s.id {
            Some(want) => assert_eq!(id, want, "{context}: id at {p}"),
            None => {
                s.id = Some(id);
                assert!(
                    model.by_id.insert(id, i).is_none(),
                    "{context}: generated id {id} at {p} already stored"
                );
            }
        }
        let s = &model.log[i];
        let sorted: Vec<String> = s.tags.iter().cloned().collect();
        assert_eq!(r.get::<_, String>(2), s.ty, "{context}: type at {p}");
        assert_eq!(r.get::<_, Value>(3), s.data, "{context}: data at {p}");
        assert_eq!(
            r.get::<_, Value>(4),
            s.metadata,
            "{context}: metadata at {p}"
        );
        assert_eq!(
            tags, sorted,
            "{context}: tags at {p} (sorted, deduplicated)"
        );
    }
    let got_tags: BTreeSet<(String, i64)> = client
        .query(
            "SELECT tag, position FROM dcbstore.event_tags WHERE position > $1",
            &[&from],
        )
        .await
        .expect("read event_tags")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want_tags: BTreeSet<(String, i64)> = model
        .log
        .iter()
        .enumerate()
        .skip(from as usize)
        .flat_map(|(i, s)| s.tags.iter().map(move |t| (t.clone(), i as i64 + 1)))
        .collect();
    assert_eq!(got_tags, want_tags, "{context}: dcbstore.event_tags");
}

fn describe_failure(
    seed: u64,
    round: usize,
    head: i64,
    arrays: &Arrays,
    expected: &[Expected],
    rows: &[Row],
    problems: &[String],
) -> String {
    let mut s = format!(
        "seed {seed} round {round}: append_batch disagrees with the model (head before: {head})\n"
    );
    for p in problems {
        let _ = writeln!(s, "  {p}");
    }
    let _ = writeln!(s, "arrays: {arrays:#?}");
    for (i, e) in expected.iter().enumerate() {
        let _ = writeln!(
            s,
            "request {}: expected {e:?}\n    actual {:?}",
            i + 1,
            rows.get(i)
        );
    }
    s
}

/// Several random requests in one `dcbstore.read_pages` call, each checked
/// against the model alone; returns how many requests were read.
async fn check_read_pages(
    client: &Client,
    model: &Model,
    rng: &mut StdRng,
    context: &str,
) -> usize {
    let head = model.head();
    let backwards = rng.gen_bool(0.3);
    let n = rng.gen_range(1..=8);
    let mut windows = Vec::new();
    let (mut after, mut to, mut limit, mut all) = (vec![], vec![], vec![], vec![]);
    let (mut item_request, mut item_first, mut item_type_ends, mut item_types) =
        (vec![], vec![], vec![], Vec::<String>::new());
    let (mut item_tag_ends, mut item_tags, mut type_request, mut types) =
        (vec![], Vec::<String>::new(), vec![], vec![]);
    for k in 1..=n {
        let query = random_query(rng);
        rust_matcher_agrees(&query, model, context);
        let lo = rng.gen_range(0..=head);
        let hi = rng.gen_range(lo..=head + 3);
        let lim = if rng.gen_bool(0.5) {
            rng.gen_range(1..=4)
        } else {
            head + 1
        };
        after.push(lo);
        to.push(hi);
        limit.push(lim);
        all.push(matches!(query, Query::All));
        if let Query::Items(items) = &query {
            for it in items {
                match it.tags.split_first() {
                    None => {
                        for t in &it.types {
                            type_request.push(k);
                            types.push(t.clone());
                        }
                    }
                    Some((first, others)) => {
                        item_request.push(k);
                        item_first.push(first.clone());
                        item_types.extend(it.types.iter().cloned());
                        item_type_ends.push(item_types.len() as i32);
                        item_tags.extend(others.iter().cloned());
                        item_tag_ends.push(item_tags.len() as i32);
                    }
                }
            }
        }
        windows.push((query, lo, hi, lim));
    }
    let rows = client
        .query(
            "SELECT head, position, type, tags, request FROM dcbstore.read_pages(\
             $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                &after,
                &to,
                &limit,
                &all,
                &item_request,
                &item_first,
                &item_type_ends,
                &item_types,
                &item_tag_ends,
                &item_tags,
                &type_request,
                &types,
                &backwards,
            ],
        )
        .await
        .expect("read_pages");
    let heads: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.get::<_, Option<i64>>(0))
        .collect();
    assert_eq!(heads, [head], "{context}: read_pages' head row");
    for (k, (query, lo, hi, lim)) in windows.iter().enumerate() {
        let k = k as i32 + 1;
        let got: Vec<(i64, String, BTreeSet<String>)> = rows
            .iter()
            .filter(|r| r.get::<_, i32>(4) == k)
            .map(|r| {
                let tags: Vec<String> = r.get(3);
                (r.get(1), r.get(2), tags.into_iter().collect())
            })
            .collect();
        let mut want: Vec<(i64, String, BTreeSet<String>)> = (lo + 1..=(*hi).min(head))
            .map(|p| (p, &model.log[p as usize - 1]))
            .filter(|(_, e)| query_matches(query, e))
            .map(|(p, e)| (p, e.ty.clone(), e.tags.clone()))
            .collect();
        if backwards {
            want.reverse();
        }
        want.truncate(*lim as usize);
        assert_eq!(
            got, want,
            "{context}: read_pages request {k} of {n} ({query:?} in ({lo}, {hi}], at most {lim}, backwards {backwards})"
        );
    }
    n as usize
}

async fn run_seed(seed: u64) -> Counts {
    let db = TestDatabase::create().await.expect("create test database");
    db.migrate().await.expect("migrate");
    let mut client = connect(&db.config().expect("config"))
        .await
        .expect("connect");
    // Observe which path ran where allowed (superuser); else predict it.
    let observe = client
        .batch_execute("SET track_functions = 'pl'")
        .await
        .is_ok();

    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model::default();
    let mut counts = Counts::default();
    for round in 0..ROUNDS {
        let special = rng.gen_bool(0.5);
        let batch = random_batch(&mut rng, &model, special);
        let layout: Vec<bool> = (0..4).map(|_| rng.gen_bool(0.3)).collect();
        let arrays = to_arrays(&batch, &layout);
        let head = model.head();
        let predicted = predicted_path(&batch, &model);

        let before = model.clone();
        let mut expected: Vec<Expected> = batch.iter().map(|r| model.decide(r)).collect();
        // A conflict is reported against the log as the batch leaves it.
        for (e, r) in expected.iter_mut().zip(&batch) {
            if matches!(e, Expected::Conflict { .. }) {
                if let Some(c) = r.guards.as_ref().and_then(|g| model.conflict(g)) {
                    *e = c;
                }
            }
        }
        let (rows, observed) = call_batch(&mut client, &arrays, observe).await;
        let path = observed.unwrap_or_else(|| predicted.to_string());

        let mut problems = Vec::new();
        let requests: Vec<i32> = rows.iter().map(|r| r.request).collect();
        let want_requests: Vec<i32> = (1..=batch.len() as i32).collect();
        if requests != want_requests {
            problems.push(format!("request numbers {requests:?}"));
        }
        for (i, (row, exp)) in rows.iter().zip(&expected).enumerate() {
            if let Err(p) = check_row(row, exp, &model) {
                problems.push(format!("request {}: {p}", i + 1));
            }
        }
        if !problems.is_empty() {
            panic!(
                "{}",
                describe_failure(seed, round, head, &arrays, &expected, &rows, &problems)
            );
        }
        let context = format!("seed {seed} round {round} ({path} path)");
        check_tables(&client, &mut model, head, &context).await;
        if round % 3 == 0 {
            // Its own generator: the batches stay those of the seed.
            let mut rng = StdRng::seed_from_u64(seed ^ (round as u64) << 32);
            counts.requests_read += check_read_pages(&client, &model, &mut rng, &context).await;
        }

        *counts.batches.entry(path.clone()).or_default() += 1;
        for e in &expected {
            *counts
                .outcomes
                .entry((path.clone(), e.outcome().to_string()))
                .or_default() += 1;
            if let Expected::Conflict { position, events } = e {
                let all = events.len() == CONFLICT_CAP && *position > *events.last().unwrap();
                counts.conflicts_capped += usize::from(all);
            }
            if let Expected::Duplicate(p) = e {
                counts.in_batch_duplicates += usize::from(*p > before.head());
            }
        }
    }
    // The whole tables, once more.
    check_tables(&client, &mut model, 0, &format!("seed {seed} at the end")).await;
    let total: i64 = client
        .query_one("SELECT count(*) FROM dcbstore.events", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(total, model.head(), "seed {seed}: number of events");
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn append_batch_agrees_with_the_model() {
    let handles: Vec<_> = SEEDS.iter().map(|&s| tokio::spawn(run_seed(s))).collect();
    let mut counts = Counts::default();
    for h in handles {
        counts.merge(h.await.expect("seed task"));
    }
    eprintln!("batches per path: {:?}", counts.batches);
    eprintln!("requests per (path, outcome): {:?}", counts.outcomes);
    eprintln!(
        "capped conflicts: {}, duplicates of requests of the same batch: {}",
        counts.conflicts_capped, counts.in_batch_duplicates
    );
    for path in ["single", "set", "sequential"] {
        assert!(
            counts.batches.get(path).copied().unwrap_or(0) >= 20,
            "the {path} path ran too rarely: {:?}",
            counts.batches
        );
    }
    let n = |path: &str, outcome: &str| {
        counts
            .outcomes
            .get(&(path.to_string(), outcome.to_string()))
            .copied()
            .unwrap_or(0)
    };
    for (path, outcome) in [
        ("single", "appended"),
        ("single", "conflict"),
        ("set", "appended"),
        ("set", "conflict"),
        ("sequential", "appended"),
        ("sequential", "conflict"),
        ("sequential", "duplicate"),
        ("sequential", "rejected"),
    ] {
        assert!(
            n(path, outcome) >= 10,
            "too few {outcome} on the {path} path: {:?}",
            counts.outcomes
        );
    }
    assert!(
        counts.conflicts_capped > 0,
        "no conflict hit the 100-event cap"
    );
    assert!(
        counts.in_batch_duplicates > 0,
        "no duplicate of a request of the same batch"
    );
    assert!(
        counts.requests_read >= 500,
        "too few requests read together: {}",
        counts.requests_read
    );
}

// ---------------------------------------------------------------------------
// The store API, on every store

/// The library's event of a sent one (a fresh id when it has none).
fn to_event(e: &SentEvent) -> dcbstore::Event {
    let mut event =
        dcbstore::Event::new(e.ty.clone(), e.data.clone()).with_tags(e.tags.iter().cloned());
    if let Some(id) = e.id {
        event = event.with_id(id);
    }
    if let Some(Value::Object(m)) = &e.metadata {
        event = event.with_metadata(m.clone());
    }
    event
}

/// The library's condition of a request's guards.
fn to_condition(guards: &[Guard]) -> dcbstore::AppendCondition {
    let position = |after: Option<i64>| after.map(|a| dcbstore::SequencePosition::new(a as u64));
    let mut guards = guards.iter();
    let first = guards.next().expect("a condition has a guard");
    guards.fold(
        dcbstore::AppendCondition::new(first.query.to_query(), position(first.after)),
        |c, g| c.and(g.query.to_query(), position(g.after)),
    )
}

/// Random requests appended one at a time through `EventStore::append`:
/// each outcome (appended, idempotent duplicate, conflict with its events,
/// id conflict) is the model's, and the log reads back as the model holds
/// it.
async fn appends_through_the_store_api_agree_with_the_model<S: dcbstore::EventStore + Sync>(
    store: &S,
) {
    let mut model = Model::default();
    let mut rng = StdRng::seed_from_u64(20_261_206);
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for round in 0..ROUNDS {
        for r in random_batch(&mut rng, &model, round % 3 != 0) {
            let events: Vec<dcbstore::Event> = r.events.iter().map(to_event).collect();
            let ids: BTreeSet<Uuid> = events.iter().map(|e| e.id).collect();
            if ids.len() < events.len() {
                continue; // the same id twice in one append: Error::Invalid, not the model's
            }
            let condition = r.guards.as_deref().map(to_condition);
            let got = store.append(events.clone(), condition).await;
            let expected = model.decide(&r);
            *seen.entry(expected.outcome()).or_default() += 1;
            let context = format!("round {round}, {r:?}");
            match (&expected, got) {
                (Expected::Appended(p), Ok(a)) => {
                    assert!(!a.already_stored, "{context}");
                    assert_eq!(a.position.get() as i64, *p, "{context}");
                    // Ids the store generated are the ones it stored.
                    let first = *p as usize - events.len();
                    for (k, e) in events.iter().enumerate() {
                        model.log[first + k].id = Some(e.id);
                        model.by_id.insert(e.id, first + k);
                    }
                }
                (Expected::Duplicate(p), Ok(a)) => {
                    assert!(a.already_stored, "{context}");
                    assert_eq!(a.position.get() as i64, *p, "{context}");
                }
                (Expected::Conflict { position, events }, Err(dcbstore::Error::Conflict(c))) => {
                    assert_eq!(c.position.get() as i64, *position, "{context}");
                    let got: Vec<i64> = c.events.iter().map(|e| e.position.get() as i64).collect();
                    assert_eq!(&got, events, "{context}");
                    assert_eq!(c.head.get() as i64, model.head(), "{context}");
                }
                (Expected::Rejected(named), Err(dcbstore::Error::IdConflict { id, .. })) => {
                    if !named.contains(&id) {
                        let log: Vec<dcbstore::SequencedEvent> =
                            futures::TryStreamExt::try_collect(
                                store.read(&dcbstore::Query::all(), dcbstore::ReadOptions::new()),
                            )
                            .await
                            .unwrap();
                        let stored = log.iter().find(|e| e.event.id == id);
                        let m = model.by_id.get(&id).map(|&i| &model.log[i]);
                        panic!("{context}: {id} not among {named:?}; store has {stored:?}; model has {m:?}");
                    }
                }
                (expected, got) => panic!("{context}: expected {expected:?}, got {got:?}"),
            }
        }
    }
    let log: Vec<dcbstore::SequencedEvent> = futures::TryStreamExt::try_collect(
        store.read(&dcbstore::Query::all(), dcbstore::ReadOptions::new()),
    )
    .await
    .expect("read the log");
    assert_eq!(log.len(), model.log.len());
    for (e, m) in log.iter().zip(&model.log) {
        assert_eq!(Some(e.event.id), m.id);
        assert_eq!(e.event.event_type, m.ty);
        assert_eq!(e.event.data, m.data);
        assert_eq!(Value::Object(e.event.metadata.clone()), m.metadata);
        assert_eq!(e.event.tags, m.tags.iter().cloned().collect::<Vec<_>>());
    }
    for outcome in ["appended", "duplicate", "conflict", "rejected"] {
        assert!(
            seen.get(outcome).copied().unwrap_or(0) >= 10,
            "too few {outcome} outcomes to mean anything: {seen:?}"
        );
    }
}

crate::common::on_every_store! {
    appends_through_the_store_api_agree_with_the_model,
}
