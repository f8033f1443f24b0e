//! Level 4 against real brokers: relays publishing to a real `nats-server
//! -js` (started by `dcbstore_test_support::NatsServer`) and to an HTTP webhook
//! served inside the test, from a real PostgreSQL log. Each test has its own
//! database (and its own nats-server when it needs one).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use dcbstore::schema::{Kind, Level};
use dcbstore::{EventStore, Store};
use dcbstore_delivery::dispatch::{to_store_event, Envelope};
use dcbstore_delivery::webhook::{
    self, SignatureErrorKind, IDEMPOTENCY_HEADER, ID_HEADER, STANDARD_SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};
use dcbstore_delivery::{
    self, DeliveryConfig, FailureKind, NatsTransport, OnFailure, PublishError, Relay, Transport,
    WebhookTransport,
};
use dcbstore_test_support::NatsServer;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use uuid::Uuid;

/// How long a test waits for something that must happen (not a
/// performance bound: a liveness one, generous for a loaded machine).
const PATIENCE: Duration = Duration::from_secs(90);

/// Waits until `check` holds, or fails the test with `what`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fast(config: DeliveryConfig) -> DeliveryConfig {
    DeliveryConfig {
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(200),
        poll_interval: Duration::from_millis(100),
        ..config
    }
}

/// A level-4 envelope named `name` with its own idempotency key.
fn envelope(name: &str, key: &str, payload: serde_json::Value) -> Envelope {
    Envelope {
        id: Uuid::now_v7(),
        name: name.into(),
        kind: Kind::Integration,
        version: 1,
        level: Level::Broker,
        payload,
        metadata: serde_json::Map::new(),
        occurred_at: chrono::Utc::now(),
        idempotency_key: key.into(),
        tags: vec![],
    }
}

/// Appends `n` envelopes named `OrderPlaced`, keyed `order-<from + i>`, one
/// append each (so in position order); returns their keys.
async fn append_orders(store: &Store, from: usize, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for i in from..from + n {
        let key = format!("order-{i}");
        let e = envelope("OrderPlaced", &key, json!({ "order": i }));
        let _ = store
            .append(vec![to_store_event(&e)], None)
            .await
            .expect("append");
        keys.push(key);
    }
    keys
}

// ---------------------------------------------------------------- NATS

/// A stream `EVENTS` on `dcbstore.>` with this duplicate window.
async fn create_stream(url: &str, duplicate_window: Duration) -> jetstream::Context {
    let client = async_nats::connect(url).await.expect("connect to nats");
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["dcbstore.>".into()],
        duplicate_window,
        ..Default::default()
    })
    .await
    .expect("create stream");
    js
}

/// A message read back from the stream.
#[derive(Debug, Clone)]
struct Received {
    subject: String,
    msg_id: String,
    envelope: Envelope,
}

/// Everything in the stream, in stream order, read by a JetStream
/// (ephemeral pull) consumer.
async fn read_stream(js: &jetstream::Context) -> Vec<Received> {
    let stream = js.get_stream("EVENTS").await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut out = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .expect("fetch");
        let mut got = 0;
        while let Some(m) = futures::StreamExt::next(&mut batch).await {
            let m = m.expect("message");
            got += 1;
            let msg_id = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_string())
                .unwrap_or_else(|| {
                    panic!(
                        "no Nats-Msg-Id header: {:?} {:?} {:?}",
                        m.subject, m.headers, m.status
                    )
                });
            let envelope: Envelope = serde_json::from_slice(&m.payload).expect("envelope JSON");
            out.push(Received {
                subject: m.subject.to_string(),
                msg_id,
                envelope,
            });
        }
        if got == 0 {
            return out;
        }
    }
}

/// The consumer side of at-least-once: keeps the first message of each
/// `Nats-Msg-Id`.
fn dedup(messages: &[Received]) -> Vec<Received> {
    let mut seen = HashSet::new();
    messages
        .iter()
        .filter(|m| seen.insert(m.msg_id.clone()))
        .cloned()
        .collect()
}

async fn stream_messages(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream("EVENTS").await.expect("stream");
    stream.info().await.expect("info").state.messages
}

/// A transport that publishes through `inner` and, on its `hang_on`-th
/// publish (from 1), publishes the batch and then never returns, as a relay
/// that crashed after the broker took the batch and before its checkpoint.
struct HangAfterPublish {
    inner: NatsTransport,
    calls: AtomicUsize,
    hang_on: usize,
    hung: Arc<tokio::sync::Notify>,
}

impl Transport for HangAfterPublish {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn publish(&self, batch: &[Envelope]) -> Result<(), PublishError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.publish(batch).await?;
        if call == self.hang_on {
            self.hung.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

async fn checkpoint(store: &Store, name: &str) -> i64 {
    store
        .pool()
        .get()
        .await
        .expect("client")
        .query_one(
            "SELECT checkpoint FROM dcbstore.projections WHERE name = $1",
            &[&name],
        )
        .await
        .expect("checkpoint row")
        .get(0)
}

/// Runs a relay that hangs after the broker took its second batch, aborts
/// it, then runs a fresh one of the same name; returns the stream's
/// messages and the keys appended.
async fn crash_mid_batch(js_window: Duration) -> (Vec<Received>, Vec<String>, u64) {
    let nats = NatsServer::start().expect("nats-server");
    let js = create_stream(&nats.url(), js_window).await;
    let (store, _db) = dcbstore_test_support::store().await;
    let keys = append_orders(&store, 0, 20).await;
    let config = fast(DeliveryConfig {
        batch_size: 5,
        ..DeliveryConfig::default()
    });
    let hung = Arc::new(tokio::sync::Notify::new());
    let crashing = HangAfterPublish {
        inner: NatsTransport::connect(nats.url()).await.expect("transport"),
        calls: AtomicUsize::new(0),
        hang_on: 2,
        hung: hung.clone(),
    };
    let runner = Relay::for_events(crashing, vec!["OrderPlaced".into()], config).start(&store);
    tokio::time::timeout(PATIENCE, hung.notified())
        .await
        .expect("the relay reached its second batch");
    runner.abort();
    // Resends come after the broker's duplicate window, when that is short
    // (to show what a consumer's dedup is for).
    if js_window < Duration::from_secs(1) {
        tokio::time::sleep(js_window * 3).await;
    }
    // Killed mid-batch: the first batch is checkpointed, the second was
    // published but not checkpointed.
    let positions: Vec<u64> = {
        use futures::TryStreamExt;
        store
            .read(&dcbstore::Query::all(), dcbstore::ReadOptions::new())
            .map_ok(|e| e.position.get())
            .try_collect()
            .await
            .expect("read")
    };
    assert_eq!(
        checkpoint(&store, "relay:nats").await,
        i64::try_from(positions[4]).unwrap()
    );
    assert_eq!(
        stream_messages(&js).await,
        10,
        "two batches reached the broker"
    );

    let transport = NatsTransport::connect(nats.url()).await.expect("transport");
    let runner = Relay::for_events(transport, vec!["OrderPlaced".into()], config).start(&store);
    let last = i64::try_from(positions[19]).unwrap();
    eventually("the new relay checkpoints every event", || {
        let store = store.clone();
        async move { checkpoint(&store, "relay:nats").await == last }
    })
    .await;
    runner.stop().await;
    let raw = stream_messages(&js).await;
    (read_stream(&js).await, keys, raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_batch_loses_nothing_and_a_dedup_consumer_sees_each_event_once() {
    // A 100 ms duplicate window (the least nats-server takes), passed before
    // the resend: the broker keeps the resends, as it does past its window;
    // the consumer's dedup by Nats-Msg-Id is what holds.
    let (messages, keys, raw) = crash_mid_batch(Duration::from_millis(100)).await;
    assert_eq!(raw, 25, "the second batch (5 events) was published twice");
    assert_eq!(messages.len(), 25);
    let once = dedup(&messages);
    let ids: Vec<&str> = once.iter().map(|m| m.msg_id.as_str()).collect();
    assert_eq!(ids, keys, "each event exactly once, in position order");
    for m in &once {
        assert_eq!(m.msg_id, m.envelope.idempotency_key);
        assert_eq!(m.subject, "dcbstore.OrderPlaced");
        assert_eq!(m.envelope.name, "OrderPlaced");
        assert_eq!(m.envelope.level, Level::Broker);
    }
    // The resent ones are the second batch, exactly.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in &messages {
        *counts.entry(m.msg_id.as_str()).or_default() += 1;
    }
    let twice: HashSet<&str> = counts
        .iter()
        .filter(|(_, n)| **n == 2)
        .map(|(k, _)| *k)
        .collect();
    let second_batch: HashSet<&str> = keys[5..10].iter().map(String::as_str).collect();
    assert_eq!(twice, second_batch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brokers_duplicate_window_drops_the_resends_of_a_killed_relay() {
    let (messages, keys, raw) = crash_mid_batch(Duration::from_secs(120)).await;
    assert_eq!(raw, 20, "the resent batch was dropped by Nats-Msg-Id");
    let ids: Vec<&str> = messages.iter().map(|m| m.msg_id.as_str()).collect();
    assert_eq!(ids, keys, "no duplicate in the stream, in position order");
}

async fn last_error(store: &Store, name: &str) -> Option<String> {
    store
        .pool()
        .get()
        .await
        .expect("client")
        .query_opt(
            "SELECT last_error FROM dcbstore.projections WHERE name = $1",
            &[&name],
        )
        .await
        .expect("query")
        .and_then(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_stopped_then_restarted_the_relay_backs_off_and_resumes_in_order() {
    let nats = NatsServer::start().expect("nats-server");
    let js = create_stream(&nats.url(), Duration::from_secs(120)).await;
    let (store, _db) = dcbstore_test_support::store().await;
    let transport = NatsTransport::builder(nats.url())
        .ack_timeout(Duration::from_millis(500))
        .reconnect_max(Duration::from_millis(200))
        .connect()
        .await
        .expect("transport");
    let config = fast(DeliveryConfig {
        batch_size: 4,
        max_attempts: 2,
        ..DeliveryConfig::default()
    });
    let runner = Relay::for_events(transport, vec!["OrderPlaced".into()], config).start(&store);
    let mut keys = append_orders(&store, 0, 10).await;
    eventually("the first 10 are in the stream", || {
        let js = js.clone();
        async move { stream_messages(&js).await == 10 }
    })
    .await;

    nats.stop().expect("stop nats-server");
    keys.extend(append_orders(&store, 10, 10).await);
    eventually("the relay notices the broker is down", || {
        let store = store.clone();
        async move { last_error(&store, "relay:nats").await.is_some() }
    })
    .await;
    nats.restart().expect("restart nats-server");

    eventually("all 20 are in the stream", || {
        let js = js.clone();
        async move { stream_messages(&js).await >= 20 }
    })
    .await;
    runner.stop().await;
    let messages = read_stream(&js).await;
    let ids: Vec<&str> = messages.iter().map(|m| m.msg_id.as_str()).collect();
    assert_eq!(ids, keys, "every event, once, in position order");
    // Waited out as unavailable: no attempt used up, nothing dead-lettered.
    let letters = dcbstore_delivery::list(&store, None)
        .await
        .expect("dead letters");
    assert!(letters.is_empty(), "{letters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_without_a_stream_is_retried_then_dead_lettered() {
    let nats = NatsServer::start().expect("nats-server");
    let (store, _db) = dcbstore_test_support::store().await;
    // No stream at all.
    let transport = NatsTransport::builder(nats.url())
        .subject_prefix("nowhere.")
        .connect()
        .await
        .expect("transport");
    let e = envelope("OrderPlaced", "lonely", json!({}));
    let direct = transport.publish(std::slice::from_ref(&e)).await;
    let failure = direct.expect_err("no stream takes nowhere.OrderPlaced");
    assert_eq!(failure.kind, FailureKind::Retryable, "{failure}");
    assert_eq!(failure.delivered, 0);

    let _ = store.append(vec![to_store_event(&e)], None).await.unwrap();
    let config = fast(DeliveryConfig {
        max_attempts: 2,
        ..DeliveryConfig::default()
    });
    let runner = Relay::for_events(transport, vec!["OrderPlaced".into()], config).start(&store);
    eventually("dead-lettered", || {
        let store = store.clone();
        async move {
            !dcbstore_delivery::list(&store, None)
                .await
                .unwrap()
                .is_empty()
        }
    })
    .await;
    runner.stop().await;
    let letters = dcbstore_delivery::list(&store, Some("relay:nats"))
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_batch_reports_how_many_went_through_before_the_first_failure() {
    let nats = NatsServer::start().expect("nats-server");
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    // A stream for `pipe.A` only: `pipe.B` has none.
    js.create_stream(jetstream::stream::Config {
        name: "PIPE".into(),
        subjects: vec!["pipe.A".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let transport = NatsTransport::builder(nats.url())
        .subject_prefix("pipe.")
        .connect()
        .await
        .unwrap();
    let batch = [
        envelope("A", "a1", json!({})),
        envelope("A", "a2", json!({})),
        envelope("B", "b3", json!({})),
        envelope("A", "a4", json!({})),
    ];
    let f = transport.publish(&batch).await.unwrap_err();
    assert_eq!((f.delivered, f.kind), (2, FailureKind::Retryable), "{f}");
    let mut stream = js.get_stream("PIPE").await.unwrap();
    // All were sent before the acks were read, but a4 expected b3 as the
    // stream's last message: it was not stored ahead of b3.
    assert_eq!(stream.info().await.unwrap().state.messages, 2);

    // An event name that is no subject token is refused before sending,
    // and nothing after it is sent.
    let batch = [
        envelope("A", "a5", json!({})),
        envelope("not a token", "x6", json!({})),
        envelope("A", "a7", json!({})),
    ];
    let f = transport.publish(&batch).await.unwrap_err();
    assert_eq!((f.delivered, f.kind), (1, FailureKind::Permanent), "{f}");
    assert_eq!(stream.info().await.unwrap().state.messages, 3);
    // A resend of what went through is dropped by its Nats-Msg-Id.
    let resent = transport.publish(&[envelope("A", "a5", json!({}))]).await;
    assert!(resent.is_ok());
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        3,
        "a5's resend dropped"
    );
}

// ---------------------------------------------------------------- webhook

const SECRET: &[u8] = b"test-shared-secret";

/// What the receiver saw: each request's headers and raw body.
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    /// Answers for the payloads with a `"status"` field, while `healed` is
    /// false.
    healed: Arc<AtomicBool>,
}

impl Receiver {
    fn requests(&self) -> Vec<(HeaderMap, Bytes)> {
        self.requests.lock().unwrap().clone()
    }

    /// The envelopes received, in order.
    fn envelopes(&self) -> Vec<Envelope> {
        self.requests()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).expect("envelope"))
            .collect()
    }

    /// How many requests carried this idempotency key.
    fn tries(&self, key: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(h, _)| h.get(IDEMPOTENCY_HEADER).and_then(|v| v.to_str().ok()) == Some(key))
            .count()
    }

    /// Keys delivered with a 2xx, in order.
    fn accepted(&self) -> Vec<String> {
        self.envelopes()
            .into_iter()
            .filter(|e| self.healed.load(Ordering::SeqCst) || e.payload.get("status").is_none())
            .map(|e| e.idempotency_key)
            .collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let envelope: Option<Envelope> = serde_json::from_slice(&body).ok();
    r.requests.lock().unwrap().push((headers, body));
    let status = envelope
        .and_then(|e| e.payload.get("status").and_then(serde_json::Value::as_u64))
        .filter(|_| !r.healed.load(Ordering::SeqCst));
    match status {
        Some(s) => StatusCode::from_u16(u16::try_from(s).unwrap()).unwrap(),
        None => StatusCode::NO_CONTENT,
    }
}

/// A local HTTP receiver; returns its URL.
async fn serve(receiver: Receiver) -> String {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

/// Appends `Hooked` envelopes, one per `(key, payload)`, in order.
async fn append_hooks(store: &Store, items: &[(&str, serde_json::Value)]) -> Vec<u64> {
    let mut positions = Vec::new();
    for (key, payload) in items {
        let e = envelope("Hooked", key, payload.clone());
        let a = store.append(vec![to_store_event(&e)], None).await.unwrap();
        positions.push(a.position.get());
    }
    positions
}

/// The Standard Webhooks signature of `id.timestamp.body` with `key`,
/// computed here, apart from the crate: `v1,<base64 HMAC-SHA256>`.
fn standard_signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_signs_id_timestamp_and_body_as_standard_webhooks_and_verify_refuses_replays() {
    // A secret as Standard Webhooks tools make them: whsec_ and the base64
    // of the key.
    let key = b"a 24-byte signing key!!!";
    let secret = format!("whsec_{}", BASE64.encode(key));
    let receiver = Receiver::default();
    let url = serve(receiver.clone()).await;
    let (store, _db) = dcbstore_test_support::store().await;
    append_hooks(
        &store,
        &[("key-a", json!({"n": 1})), ("key-b", json!({"n": 2}))],
    )
    .await;
    let transport = WebhookTransport::new(url, secret.as_bytes()).unwrap();
    let runner = Relay::for_events(
        transport,
        vec!["Hooked".into()],
        fast(DeliveryConfig::default()),
    )
    .start(&store);
    eventually("both delivered", || {
        let r = receiver.clone();
        async move { r.requests().len() >= 2 }
    })
    .await;
    runner.stop().await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let now = chrono::Utc::now().timestamp();
    for ((headers, body), key_of) in requests.iter().zip(["key-a", "key-b"]) {
        let envelope: Envelope = serde_json::from_slice(body).unwrap();
        assert_eq!(envelope.idempotency_key, key_of);
        assert_eq!(
            headers[ID_HEADER], key_of,
            "webhook-id is the idempotency key"
        );
        assert_eq!(headers[IDEMPOTENCY_HEADER], key_of);
        assert_eq!(headers["content-type"], "application/json");
        let timestamp = headers[TIMESTAMP_HEADER].to_str().unwrap();
        let sent: i64 = timestamp.parse().expect("seconds since the epoch");
        assert!((now - sent).abs() < 300, "signed now: {sent} vs {now}");
        // The signature covers id, timestamp and body, with the decoded key.
        let signature = headers[STANDARD_SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(
            signature,
            standard_signature(key, key_of, timestamp, body),
            "v1,<base64 HMAC-SHA256 of id.timestamp.body>"
        );
        // The receiver's helper accepts it, with the whsec_ secret or the
        // raw key.
        webhook::verify(secret.as_bytes(), headers, body).expect("verifies");
        // The deprecated body-only header is still sent, with the secret's
        // bytes as given, for one more release.
        #[allow(deprecated)]
        let legacy = headers[webhook::SIGNATURE_HEADER].to_str().unwrap();
        let mut check = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        check.update(body);
        let mac = hex::decode(legacy.strip_prefix("sha256=").unwrap()).unwrap();
        assert!(check.verify_slice(&mac).is_ok(), "the legacy signature");

        // What an attacker replays or changes is refused.
        let mut tampered = body.to_vec();
        tampered.extend_from_slice(b" ");
        let e = webhook::verify(secret.as_bytes(), headers, &tampered).unwrap_err();
        assert_eq!(e.kind(), SignatureErrorKind::Mismatch, "{e}");
        let mut other_id = headers.clone();
        other_id.insert(ID_HEADER, "key-z".parse().unwrap());
        let e = webhook::verify(secret.as_bytes(), &other_id, body).unwrap_err();
        assert_eq!(
            e.kind(),
            SignatureErrorKind::Mismatch,
            "the id is signed: {e}"
        );
        let e = webhook::verify(b"another secret", headers, body).unwrap_err();
        assert_eq!(e.kind(), SignatureErrorKind::Mismatch, "{e}");
        // A captured request replayed an hour later, even re-signed with
        // its own (old) timestamp, or one dated ahead.
        for (ts, kind) in [
            (sent - 3600, SignatureErrorKind::TooOld),
            (sent - 301, SignatureErrorKind::TooOld),
            (sent + 3600, SignatureErrorKind::InFuture),
        ] {
            let mut old = headers.clone();
            old.insert(TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
            old.insert(
                STANDARD_SIGNATURE_HEADER,
                webhook::sign(secret.as_bytes(), key_of, ts, body)
                    .unwrap()
                    .parse()
                    .unwrap(),
            );
            let e = webhook::verify(secret.as_bytes(), &old, body).unwrap_err();
            assert_eq!(e.kind(), kind, "{ts}: {e}");
            assert!(!e.to_string().contains(&secret), "{e}");
        }
        for missing in [ID_HEADER, TIMESTAMP_HEADER, STANDARD_SIGNATURE_HEADER] {
            let mut h = headers.clone();
            h.remove(missing);
            let e = webhook::verify(secret.as_bytes(), &h, body).unwrap_err();
            assert_eq!(e.kind(), SignatureErrorKind::Header, "{missing}: {e}");
        }
    }
    // A raw secret (not whsec_) is the key itself.
    let raw = WebhookTransport::new(serve(receiver.clone()).await, SECRET).unwrap();
    raw.publish(&[envelope("Hooked", "key-c", json!({}))])
        .await
        .unwrap();
    let (headers, body) = receiver.requests().pop().unwrap();
    webhook::verify(SECRET, &headers, &body).expect("a raw secret verifies");
    assert!(webhook::verify(secret.as_bytes(), &headers, &body).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_500_is_retried_then_dead_lettered_and_does_not_block_the_rest() {
    let receiver = Receiver::default();
    let url = serve(receiver.clone()).await;
    let (store, _db) = dcbstore_test_support::store().await;
    let positions = append_hooks(
        &store,
        &[
            ("before", json!({})),
            ("poison", json!({"status": 500})),
            ("refused", json!({"status": 422})),
            ("after-1", json!({})),
            ("after-2", json!({})),
        ],
    )
    .await;
    let transport = WebhookTransport::new(url, SECRET).unwrap();
    let config = fast(DeliveryConfig {
        max_attempts: 3,
        ..DeliveryConfig::default()
    });
    let runner = Relay::for_events(transport, vec!["Hooked".into()], config).start(&store);
    eventually("the events behind the poison are delivered", || {
        let r = receiver.clone();
        async move { r.accepted().contains(&"after-2".to_string()) }
    })
    .await;
    runner.stop().await;
    assert_eq!(receiver.accepted(), ["before", "after-1", "after-2"]);
    assert_eq!(
        receiver.tries("poison"),
        3,
        "a 500 is retried up to the attempts"
    );
    assert_eq!(receiver.tries("refused"), 1, "a 4xx is not retried");
    let letters = dcbstore_delivery::list(&store, Some("relay:webhook"))
        .await
        .unwrap();
    let at: Vec<(u64, i32)> = letters.iter().map(|l| (l.position, l.attempts)).collect();
    assert_eq!(at, [(positions[1], 3), (positions[2], 1)]);
    assert!(
        letters[0].last_error.contains("500"),
        "{}",
        letters[0].last_error
    );
    assert!(
        letters[1].last_error.contains("422"),
        "{}",
        letters[1].last_error
    );
    assert!(
        !letters
            .iter()
            .any(|l| l.last_error.contains("test-shared-secret")),
        "no secret in the errors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_block_policy_a_poison_event_blocks_the_events_behind_it() {
    let receiver = Receiver::default();
    let url = serve(receiver.clone()).await;
    let (store, _db) = dcbstore_test_support::store().await;
    append_hooks(
        &store,
        &[
            ("before", json!({})),
            ("poison", json!({"status": 503})),
            ("after", json!({})),
        ],
    )
    .await;
    let transport = WebhookTransport::new(url, SECRET).unwrap();
    let config = fast(DeliveryConfig {
        max_attempts: 2,
        retry_max: Duration::from_millis(50),
        on_failure: OnFailure::Block,
        ..DeliveryConfig::default()
    });
    let runner = Relay::for_events(transport, vec!["Hooked".into()], config).start(&store);
    eventually("the poison is retried past its attempts", || {
        let r = receiver.clone();
        async move { r.tries("poison") >= 5 }
    })
    .await;
    // Retried well past max_attempts, and still nothing behind it.
    assert_eq!(receiver.accepted(), ["before"]);
    assert_eq!(receiver.tries("after"), 0);
    assert!(dcbstore_delivery::list(&store, None)
        .await
        .unwrap()
        .is_empty());
    // The receiver recovers: the blocked event goes through, then the rest.
    receiver.healed.store(true, Ordering::SeqCst);
    eventually("the rest is delivered", || {
        let r = receiver.clone();
        async move { r.tries("after") >= 1 }
    })
    .await;
    runner.stop().await;
    let keys: Vec<String> = receiver
        .envelopes()
        .into_iter()
        .map(|e| e.idempotency_key)
        .filter(|k| k != "poison")
        .collect();
    assert_eq!(keys, ["before", "after"]);
    assert!(dcbstore_delivery::list(&store, None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_refuses_connections_is_waited_out_without_using_attempts() {
    let (store, _db) = dcbstore_test_support::store().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    append_hooks(&store, &[("first", json!({})), ("second", json!({}))]).await;
    let transport = WebhookTransport::new(format!("http://127.0.0.1:{port}/hook"), SECRET).unwrap();
    let config = fast(DeliveryConfig {
        max_attempts: 1,
        ..DeliveryConfig::default()
    });
    let runner = Relay::for_events(transport, vec!["Hooked".into()], config).start(&store);
    eventually("the relay finds the endpoint down", || {
        let store = store.clone();
        async move { last_error(&store, "relay:webhook").await.is_some() }
    })
    .await;
    // The endpoint comes up on that port.
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    eventually("both delivered", || {
        let r = receiver.clone();
        async move { r.accepted().len() >= 2 }
    })
    .await;
    runner.stop().await;
    assert_eq!(receiver.accepted(), ["first", "second"]);
    assert!(dcbstore_delivery::list(&store, None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_failure_kinds() {
    let e = envelope("Hooked", "k", json!({}));
    // Nothing listens: connection refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = WebhookTransport::new(format!("http://127.0.0.1:{port}/"), SECRET).unwrap();
    let f = t.publish(std::slice::from_ref(&e)).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Unavailable, "{f}");

    // A receiver slower than the timeout.
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let t = WebhookTransport::builder(format!("http://{addr}/slow"), SECRET)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let f = t.publish(std::slice::from_ref(&e)).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Retryable, "{f}");

    // A batch reports how many went through before the failure.
    let receiver = Receiver::default();
    let url = serve(receiver.clone()).await;
    let t = WebhookTransport::new(url, SECRET).unwrap();
    let batch = [
        envelope("Hooked", "1", json!({})),
        envelope("Hooked", "2", json!({"status": 404})),
        envelope("Hooked", "3", json!({})),
    ];
    let f = t.publish(&batch).await.unwrap_err();
    assert_eq!((f.delivered, f.kind), (1, FailureKind::Permanent), "{f}");
    assert_eq!(receiver.tries("3"), 0, "nothing sent past the failure");
    assert!(!format!("{t:?}").contains("test-shared-secret"));
}

// ---------------------------------------------------------------- leases

/// A transport that records which relay published each envelope.
struct Recording {
    relay: usize,
    log: Arc<Mutex<Vec<(usize, String)>>>,
}

impl Transport for Recording {
    fn name(&self) -> &str {
        "shared"
    }

    async fn publish(&self, batch: &[Envelope]) -> Result<(), PublishError> {
        let mut log = self.log.lock().unwrap();
        for e in batch {
            log.push((self.relay, e.idempotency_key.clone()));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_relays_for_one_transport_only_one_publishes() {
    let (store_a, db) = dcbstore_test_support::store().await;
    let store_b = Store::builder(db.url()).unwrap().build().await.unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let config = fast(DeliveryConfig {
        batch_size: 3,
        ..DeliveryConfig::default()
    });
    let relay = |n: usize| {
        Relay::for_events(
            Recording {
                relay: n,
                log: log.clone(),
            },
            vec!["OrderPlaced".into()],
            config,
        )
    };
    let a = relay(0).start(&store_a);
    let b = relay(1).start(&store_b);
    let keys = append_orders(&store_a, 0, 30).await;
    eventually("all 30 published", || {
        let log = log.clone();
        async move { log.lock().unwrap().len() >= 30 }
    })
    .await;
    // Another round, while both still run.
    let more = append_orders(&store_b, 30, 10).await;
    eventually("all 40 published", || {
        let log = log.clone();
        async move { log.lock().unwrap().len() >= 40 }
    })
    .await;
    let owner: Option<String> = store_a
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT owner FROM dcbstore.projections WHERE name = 'relay:shared'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    a.stop().await;
    b.stop().await;
    let log = log.lock().unwrap().clone();
    let publishers: HashSet<usize> = log.iter().map(|(r, _)| *r).collect();
    assert_eq!(publishers.len(), 1, "one relay published: {log:?}");
    let published: Vec<String> = log.into_iter().map(|(_, k)| k).collect();
    let expected: Vec<String> = keys.into_iter().chain(more).collect();
    assert_eq!(published, expected, "each event once, in order");
    assert!(owner.is_some(), "the lease has an owner");
}

// ---------------------------------------------------------------- order and fencing

/// A NATS transport whose failed publishes the test can see.
struct Observed {
    inner: NatsTransport,
    failures: Arc<AtomicUsize>,
}

impl Transport for Observed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn publish(&self, batch: &[Envelope]) -> Result<(), PublishError> {
        let r = self.inner.publish(batch).await;
        if r.is_err() {
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_stream_never_holds_an_event_before_an_earlier_one_when_an_ack_fails() {
    let nats = NatsServer::start().expect("nats-server");
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    // At first the stream does not take `Special`: its publish is refused
    // (an ack failure) in the middle of a pipelined batch.
    let config = |subjects: &[&str]| jetstream::stream::Config {
        name: "EVENTS".into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    js.create_stream(config(&["dcbstore.OrderPlaced"]))
        .await
        .unwrap();
    let (store, _db) = dcbstore_test_support::store().await;
    let mut keys = append_orders(&store, 0, 2).await;
    let special = envelope("Special", "special-2", json!({}));
    let _ = store
        .append(vec![to_store_event(&special)], None)
        .await
        .unwrap();
    keys.push("special-2".into());
    keys.extend(append_orders(&store, 3, 2).await);
    let last = store.head().await.unwrap().unwrap().get();

    let failures = Arc::new(AtomicUsize::new(0));
    let observed = Observed {
        inner: NatsTransport::connect(nats.url()).await.unwrap(),
        failures: failures.clone(),
    };
    let config_of_relay = fast(DeliveryConfig {
        batch_size: 10,
        on_failure: OnFailure::Block,
        ..DeliveryConfig::default()
    });
    let runner = Relay::for_events(
        observed,
        vec!["OrderPlaced".into(), "Special".into()],
        config_of_relay,
    )
    .start(&store);
    eventually("the batch failed at the event no stream takes", || {
        let failures = failures.clone();
        async move { failures.load(Ordering::SeqCst) >= 1 }
    })
    .await;
    // Now a stream takes it: the relay's resend goes through.
    js.update_stream(config(&["dcbstore.OrderPlaced", "dcbstore.Special"]))
        .await
        .unwrap();
    eventually("every event is checkpointed", || {
        let store = store.clone();
        async move { checkpoint(&store, "relay:nats").await == i64::try_from(last).unwrap() }
    })
    .await;
    runner.stop().await;
    let ids: Vec<String> = read_stream(&js)
        .await
        .into_iter()
        .map(|m| m.msg_id)
        .collect();
    assert_eq!(
        ids, keys,
        "each event once, and none before an earlier one of the relay"
    );
}

/// A webhook receiver that records each request's key and holds the one
/// keyed `hold` until released.
#[derive(Clone, Default)]
struct Gate {
    keys: Arc<Mutex<Vec<String>>>,
    hold: Arc<Mutex<Option<String>>>,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Gate {
    fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }
}

async fn gated(State(g): State<Gate>, headers: HeaderMap) -> StatusCode {
    let key = headers[IDEMPOTENCY_HEADER].to_str().unwrap().to_string();
    g.keys.lock().unwrap().push(key.clone());
    if g.hold.lock().unwrap().as_deref() == Some(key.as_str()) {
        g.entered.notify_one();
        g.release.notified().await;
    }
    StatusCode::NO_CONTENT
}

async fn serve_gate(gate: Gate) -> String {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(gated))
        .with_state(gate);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_lost_its_lease_mid_batch_sends_nothing_more() {
    let (store, _db) = dcbstore_test_support::store().await;
    let items: Vec<(String, serde_json::Value)> = (0..10)
        .map(|i| (format!("h{i}"), json!({ "i": i })))
        .collect();
    let items: Vec<(&str, serde_json::Value)> =
        items.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let positions = append_hooks(&store, &items).await;
    let config = fast(DeliveryConfig {
        batch_size: 10,
        ..DeliveryConfig::default()
    });
    // The first runner's receiver holds its third request.
    let old_gate = Gate::default();
    *old_gate.hold.lock().unwrap() = Some("h2".into());
    let old_url = serve_gate(old_gate.clone()).await;
    let old = Relay::for_events(
        WebhookTransport::new(old_url, SECRET).unwrap(),
        vec!["Hooked".into()],
        config,
    )
    .named("relay:hooks")
    .start(&store);
    tokio::time::timeout(PATIENCE, old_gate.entered.notified())
        .await
        .expect("the first runner is in the middle of its batch");

    // Its lease connection is cut (a network failure, an operator's
    // pg_terminate_backend): the lease is lost, and another runner takes it.
    let admin = store.pool().get().await.unwrap();
    let holders: Vec<i32> = admin
        .query(
            "SELECT l.pid FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.granted
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(holders.len(), 1, "the lease's connection holds one lock");
    let gone: bool = admin
        .query_one("SELECT pg_terminate_backend($1, 60000)", &[&holders[0]])
        .await
        .unwrap()
        .get(0);
    assert!(gone);
    let new_gate = Gate::default();
    let new_url = serve_gate(new_gate.clone()).await;
    let new = Relay::for_events(
        WebhookTransport::new(new_url, SECRET).unwrap(),
        vec!["Hooked".into()],
        config,
    )
    .named("relay:hooks")
    .start(&store);
    let last = i64::try_from(*positions.last().unwrap()).unwrap();
    eventually("the new holder delivers everything", || {
        let store = store.clone();
        async move { checkpoint(&store, "relay:hooks").await == last }
    })
    .await;
    let all: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
    assert_eq!(new_gate.keys(), all);

    // The old runner's request returns: it must not send the rest.
    old_gate.release.notify_one();
    old.stop().await;
    new.stop().await;
    assert_eq!(
        old_gate.keys(),
        ["h0", "h1", "h2"],
        "nothing sent after the lease was lost"
    );
    assert_eq!(checkpoint(&store, "relay:hooks").await, last);
}

// ---------------------------------------------------------------- credentials

/// A `nats-server -js` that wants a user and password; killed on drop.
struct AuthNats {
    child: std::process::Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl AuthNats {
    async fn start(user: &str, password: &str) -> AuthNats {
        let exe = dcbstore_test_support::nats_server_exe().expect("nats-server");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(format!("dcbstore-auth-nats-{}", Uuid::new_v4()));
        let child = std::process::Command::new(exe)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["--user", user, "--pass", password])
            .arg("-sd")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        let server = AuthNats { child, dir, port };
        eventually("the authenticated nats-server is up", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        server
    }
}

impl Drop for AuthNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Everything logged through `tracing` on this thread while the guard
/// lives: dcbstore's logs at every level, other crates' at debug and above.
/// (At trace level the NATS client dumps every protocol line it writes, the
/// CONNECT line with its credentials among them: a wire trace, not a log to
/// keep.) Scoped to the thread, not global, so that the other tests of this
/// binary neither log into it nor pay for it: the test runs on a
/// current-thread runtime, where every task it spawns runs on its thread.
fn captured_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug,dcbstore=trace"))
        .with_ansi(false)
        .with_writer(move || Capture(sink.clone()))
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn nats_credentials_in_the_url_authenticate_and_never_appear_in_errors_debug_or_logs() {
    let (logs, _guard) = captured_logs();
    let password = "hunter2-nats-secret";
    let nats = AuthNats::start("relay", password).await;
    let url = format!("nats://relay:{password}@127.0.0.1:{}", nats.port);

    // The credentials in the URL are the ones the server gets.
    let admin = async_nats::ConnectOptions::new()
        .user_and_password("relay".into(), password.into())
        .connect(format!("nats://127.0.0.1:{}", nats.port))
        .await
        .expect("the test's own client authenticates");
    let js = jetstream::new(admin);
    js.create_stream(jetstream::stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["dcbstore.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let transport = NatsTransport::builder(url.as_str())
        .connect()
        .await
        .expect("connects");
    transport
        .publish(&[envelope("OrderPlaced", "with-credentials", json!({}))])
        .await
        .expect("published with the URL's credentials");
    assert_eq!(stream_messages(&js).await, 1);
    let mut shown = vec![
        format!("{transport:?}"),
        format!("{:?}", NatsTransport::builder(url.as_str())),
    ];

    // Wrong credentials, a server that is down, URLs that do not parse:
    // whatever fails says where, never with what secret.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for bad in [
        format!("nats://relay:{password}-wrong@127.0.0.1:{}", nats.port),
        format!("nats://relay:{password}@127.0.0.1:{down}"),
        format!("nats://{password}@127.0.0.1:{down}"),
        format!("nats://relay:{password}@127.0.0.1:99999"),
        format!("http://relay:{password}@127.0.0.1:{down}"),
        format!("nats://relay:{password}@[::1"),
        format!("nats://127.0.0.1:{down},nats://relay:{password}@127.0.0.1:99999"),
    ] {
        let builder = NatsTransport::builder(bad.as_str())
            .connect_timeout(Duration::from_millis(300))
            .reconnect_max(Duration::from_millis(50));
        shown.push(format!("{builder:?}"));
        match builder.connect().await {
            Ok(t) => {
                shown.push(format!("{t:?}"));
                let f = t
                    .publish(&[envelope("OrderPlaced", "never", json!({}))])
                    .await
                    .expect_err("nothing is published there");
                shown.push(f.to_string());
                shown.push(format!("{f:?}"));
            }
            Err(e) => {
                shown.push(e.to_string());
                shown.push(format!("{e:?}"));
            }
        }
    }
    for s in &shown {
        assert!(!s.contains(password), "{s}");
    }
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        logged.contains("127.0.0.1"),
        "the client's logs were captured"
    );
    assert!(!logged.contains(password), "a credential in the logs");
}
