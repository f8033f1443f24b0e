//! The operations console in a real headless Chromium (over WebDriver,
//! with fantoccini), against a real PostgreSQL: what an operator sees is
//! what the log holds.

use std::sync::OnceLock;
use std::time::Duration;

use dcbstore::{Event, EventStore, Query, QueryItem, ReadOptions, SequencePosition, Store};
use dcbstore_console::{refresh_until, Console, ConsoleOptions};
use dcbstore_test_support::store;
use dcbstore_test_support::ChromeDriver;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::TryStreamExt;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// One driver for the binary; each test opens its own browser session.
fn driver() -> &'static ChromeDriver {
    static DRIVER: OnceLock<ChromeDriver> = OnceLock::new();
    DRIVER.get_or_init(|| ChromeDriver::start().expect("start chromedriver"))
}

/// Run in a child process by `a_test_run_leaves_no_chromedriver_behind`:
/// starts the driver as the tests do (in the static, never dropped), writes
/// its URL, and ends the process.
#[test]
#[ignore = "a helper: a_test_run_leaves_no_chromedriver_behind runs it in a process of its own"]
fn helper_start_the_driver_and_exit() {
    let Some(path) = std::env::var_os("DCBSTORE_DRIVER_URL_FILE") else {
        return;
    };
    std::fs::write(path, driver().url()).expect("write the driver's URL");
    std::process::exit(0);
}

#[test]
fn a_test_run_leaves_no_chromedriver_behind() {
    let file = std::env::temp_dir().join(format!("dcbstore-driver-url-{}", std::process::id()));
    // The helper's name as the harness knows it: its module path without
    // the crate's name.
    let helper = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::helper_start_the_driver_and_exit"),
        None => "helper_start_the_driver_and_exit".to_string(),
    };
    let status = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--ignored", "--exact", &helper])
        .env("DCBSTORE_DRIVER_URL_FILE", &file)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run the helper");
    assert!(status.success(), "{status}");
    let url = std::fs::read_to_string(&file).expect("the helper wrote its driver's URL");
    let _ = std::fs::remove_file(&file);
    let addr = url.trim_start_matches("http://").to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "a chromedriver still listens at {addr} after the test process that started it ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

async fn browser() -> Client {
    // Several rustls providers are compiled into this binary: pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let d = driver();
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(d.capabilities())
        .connect(&d.url())
        .await
        .expect("a headless Chromium session")
}

/// A console serving on a free loopback port; it stops when dropped.
struct Served {
    /// `http://127.0.0.1:PORT`
    base: String,
    /// The URL it would print: with the generated token, if any.
    url: String,
    _stop: oneshot::Sender<()>,
}

/// A console of `store` on a free loopback port.
async fn serve(store: &Store, options: ConsoleOptions) -> Served {
    serve_with(store, options, None).await
}

async fn serve_with(
    store: &Store,
    options: ConsoleOptions,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Served {
    let mut console = Console::new(
        store.clone(),
        options
            .listen("127.0.0.1:0".parse().unwrap())
            .stats_interval(Duration::from_millis(200)),
    )
    .expect("a loopback console");
    if let Some(handle) = metrics {
        console = console.with_metrics(handle);
    }
    let bound = console.bind().await.expect("bind");
    let base = format!("http://{}", bound.local_addr());
    let url = bound.url();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));
    Served {
        base,
        url,
        _stop: stop,
    }
}

/// A browser that opened the URL the console printed (logged in).
async fn open(c: &Served) -> Client {
    let b = browser().await;
    b.goto(&c.url).await.unwrap();
    b
}

/// An HTTP client (no redirects followed) with the session cookie the
/// console's printed URL gives.
async fn http(c: &Served) -> reqwest::Client {
    session_client(&c.url).await
}

async fn session_client(url: &str) -> reqwest::Client {
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = plain.get(url).send().await.unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(cookie) = r.headers().get("set-cookie") {
        let pair = cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        headers.insert("cookie", pair.parse().unwrap());
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Saves a screenshot of the browser's page as `docs/console/<name>.png`
/// when `DCBSTORE_SCREENSHOTS` is set (the README shows them).
async fn screenshot(b: &Client, name: &str) {
    if std::env::var_os("DCBSTORE_SCREENSHOTS").is_none() {
        return;
    }
    let png = b.screenshot().await.expect("screenshot");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The positions of the rows of the events table, top to bottom.
async fn shown(b: &Client) -> Vec<u64> {
    let mut out = Vec::new();
    for row in b
        .find_all(Locator::Css("#events tbody tr[data-position]"))
        .await
        .unwrap()
    {
        out.push(
            row.attr("data-position")
                .await
                .unwrap()
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    out
}

/// Clicks the element (a link or a form's button) and waits until the page
/// it loads is there: another URL, fully loaded. Reading the old page while
/// the new one loads would see stale rows.
async fn click(b: &Client, at: Locator<'_>) {
    let before = b.current_url().await.unwrap();
    b.find(at).await.unwrap().click().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let url = b.current_url().await.unwrap();
        let ready = b
            .execute("return document.readyState", vec![])
            .await
            .unwrap();
        if url != before && ready == "complete" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the click on {before} loaded no page"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn text(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The Prometheus recorder of this test binary (one per process), installed
/// by the first test that needs it.
fn recorder() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| dcbstore_console::install_prometheus().expect("the only recorder"))
        .clone()
}

/// A connection as the database's owner (the test role).
async fn owner(db: &dcbstore_testing::TestDatabase) -> tokio_postgres::Client {
    dcbstore::connection::connect(&db.options().unwrap())
        .await
        .unwrap()
}

fn numbered(n: u64, tags: &[&str]) -> Event {
    Event::new("Numbered", json!({"n": n})).with_tags(tags.iter().copied())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_renders_with_the_right_head_and_counts() {
    let (store, _db) = store().await;
    for chunk in 0..3 {
        let events: Vec<Event> = (0..41)
            .map(|i| {
                Event::new(if i % 2 == 0 { "Even" } else { "Odd" }, json!({"i": i}))
                    .with_tag(format!("chunk:{chunk}"))
            })
            .collect();
        let _ = store.append(events, None).await.unwrap();
    }
    refresh_until(&store, 123, Duration::from_secs(30))
        .await
        .unwrap();
    let c = serve(&store, ConsoleOptions::new()).await;
    let base = c.base.clone();
    let b = open(&c).await;
    b.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(text(&b, "#head").await, "123");
    assert_eq!(text(&b, "h1").await, "Overview");
    // Every event was appended this minute: the counts say so.
    let types = text(&b, "table.bars").await;
    assert!(types.contains("Even") && types.contains("63"), "{types}");
    assert!(types.contains("Odd") && types.contains("60"), "{types}");
    let source = b.source().await.unwrap();
    assert!(source.contains("chunk:2"), "the most used tags are listed");
    assert!(
        source.contains("<svg"),
        "the append-rate chart is server-rendered SVG"
    );
    screenshot(&b, "overview").await;
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtering_by_a_tag_shows_exactly_that_tags_events() {
    let (store, _db) = store().await;
    let events: Vec<Event> = (1..=90)
        .map(|n| match n % 3 {
            0 => numbered(n, &["a", "b"]),
            1 => numbered(n, &["a"]),
            _ => numbered(n, &["b"]),
        })
        .collect();
    let _ = store.append(events, None).await.unwrap();
    let c = serve(&store, ConsoleOptions::new()).await;
    let base = c.base.clone();
    let b = open(&c).await;
    b.goto(&format!("{base}/events")).await.unwrap();
    // Through the form, as an operator would: one tag, then a second (AND).
    let tag = b
        .find(Locator::Css("form.filter input[name=tag][type=text]"))
        .await
        .unwrap();
    tag.send_keys("a").await.unwrap();
    click(&b, Locator::Css("form.filter button[type=submit]")).await;
    let expected = |tags: &[&str]| {
        let q = Query::item(QueryItem::tags(tags.iter().copied()));
        let store = store.clone();
        async move {
            let all: Vec<_> = store
                .read(&q, ReadOptions::new().backwards().limit(50))
                .try_collect()
                .await
                .unwrap();
            all.iter().map(|e| e.position.get()).collect::<Vec<_>>()
        }
    };
    assert!(b.current_url().await.unwrap().as_str().contains("tag=a"));
    let with_a = shown(&b).await;
    assert_eq!(with_a, expected(&["a"]).await);
    assert_eq!(with_a.len(), 50, "a full page of the 60 tagged a");
    let tag = b
        .find(Locator::Css("form.filter input[name=tag][type=text]"))
        .await
        .unwrap();
    tag.send_keys("b").await.unwrap();
    click(&b, Locator::Css("form.filter button[type=submit]")).await;
    let with_both = shown(&b).await;
    assert_eq!(with_both, expected(&["a", "b"]).await);
    assert_eq!(with_both.len(), 30);
    assert!(with_both.iter().all(|p| p % 3 == 0));
    screenshot(&b, "events").await;
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_both_ways_is_consistent_and_pages_can_be_shared() {
    let (store, _db) = store().await;
    let _ = store
        .append((1..=130).map(|n| numbered(n, &["p"])).collect(), None)
        .await
        .unwrap();
    let c = serve(&store, ConsoleOptions::new()).await;
    let base = c.base.clone();
    let b = open(&c).await;
    b.goto(&format!("{base}/events?tag=p")).await.unwrap();
    let first = shown(&b).await;
    assert_eq!(first, (81..=130).rev().collect::<Vec<_>>());
    assert!(
        b.find(Locator::Css("a#newer")).await.is_err(),
        "no newer page"
    );
    click(&b, Locator::Css("a#older")).await;
    let second = shown(&b).await;
    assert_eq!(second, (31..=80).rev().collect::<Vec<_>>());
    let shared = b.current_url().await.unwrap().to_string();
    click(&b, Locator::Css("a#older")).await;
    assert_eq!(shown(&b).await, (1..=30).rev().collect::<Vec<_>>());
    assert!(
        b.find(Locator::Css("a#older")).await.is_err(),
        "no older page"
    );
    click(&b, Locator::Css("a#newer")).await;
    assert_eq!(shown(&b).await, second, "newer from the last page");
    click(&b, Locator::Css("a#newer")).await;
    assert_eq!(shown(&b).await, first, "back to the first page");
    // A page's URL shows the same page to whoever opens it, even after
    // more events are appended.
    let _ = store
        .append((131..=140).map(|n| numbered(n, &["p"])).collect(), None)
        .await
        .unwrap();
    b.goto(&shared).await.unwrap();
    assert_eq!(shown(&b).await, second);
    // The window parameters narrow it.
    b.goto(&format!("{base}/events?tag=p&after=10&to=20"))
        .await
        .unwrap();
    assert_eq!(shown(&b).await, (11..=20).rev().collect::<Vec<_>>());
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_page_shows_its_json_tags_and_redaction_mark() {
    let (store, db) = store().await;
    let data = json!({"student": {"id": "s-1", "name": "Ada"}, "courses": [1, 2, 3], "fee": 12.5});
    let mut metadata = serde_json::Map::new();
    metadata.insert("correlation".into(), json!("c-42"));
    let _ = store
        .append(
            vec![
                Event::new("StudentEnrolled", data.clone())
                    .with_tags(["student:s-1", "course:1"])
                    .with_metadata(metadata.clone()),
                Event::new("Other", json!({"secret": "x"})),
            ],
            None,
        )
        .await
        .unwrap();
    let owner = owner(&db).await;
    dcbstore::roles::redact(
        &owner,
        SequencePosition::new(2),
        &json!({"erased": true}),
        "GDPR request 7",
        None,
    )
    .await
    .unwrap();
    let c = serve(&store, ConsoleOptions::new()).await;
    let base = c.base.clone();
    let b = open(&c).await;
    b.goto(&format!("{base}/events/1")).await.unwrap();
    let shown: Value = serde_json::from_str(&text(&b, "#data").await).unwrap();
    assert_eq!(shown, data);
    let meta: Value = serde_json::from_str(&text(&b, "#metadata").await).unwrap();
    assert_eq!(meta, Value::Object(metadata));
    assert!(
        text(&b, "#data").await.contains('\n'),
        "formatted, not one line"
    );
    screenshot(&b, "event").await;
    // A tag links to that tag's events.
    click(&b, Locator::LinkText("student:s-1")).await;
    assert!(b
        .current_url()
        .await
        .unwrap()
        .as_str()
        .ends_with("/events?tag=student%3As-1"));
    assert_eq!(self::shown(&b).await, vec![1]);
    b.goto(&format!("{base}/events/2")).await.unwrap();
    let mark = text(&b, "#redaction").await;
    assert!(
        mark.contains("redacted") && mark.contains("GDPR request 7"),
        "{mark}"
    );
    b.goto(&format!("{base}/events/3")).await.unwrap();
    assert!(text(&b, "main").await.contains("no event at position 3"));
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_mode_shows_an_event_appended_after_the_page_opened() {
    let (store, _db) = store().await;
    let _ = store
        .append(vec![numbered(1, &["live"]), numbered(2, &["other"])], None)
        .await
        .unwrap();
    let c = serve(&store, ConsoleOptions::new()).await;
    let base = c.base.clone();
    let b = open(&c).await;
    b.goto(&format!("{base}/events?tag=live&live=1"))
        .await
        .unwrap();
    assert_eq!(shown(&b).await, vec![1]);
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(
            "//*[@id='live-status' and contains(., 'following')]",
        ))
        .await
        .expect("the live stream opens");
    let _ = store
        .append(vec![numbered(3, &["other"]), numbered(4, &["live"])], None)
        .await
        .unwrap();
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#events tbody tr[data-position='4']"))
        .await
        .expect("the appended event shows up without a reload");
    assert_eq!(
        shown(&b).await,
        vec![4, 1],
        "only the filter's events, newest first"
    );
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xss_payload_in_every_field_stays_inert() {
    let (store, _db) = store().await;
    let payload = r#"<script>window.__xss=1</script>"'><img src=x onerror="window.__xss=2">"#;
    let mut metadata = serde_json::Map::new();
    metadata.insert(payload.into(), json!(payload));
    let _ = store
        .append(
            vec![Event::new(payload, json!({ payload: payload }))
                .with_tags([
                    payload.to_string(),
                    "x\" onmouseover=\"window.__xss=3".to_string(),
                ])
                .with_metadata(metadata)],
            None,
        )
        .await
        .unwrap();
    refresh_until(&store, 1, Duration::from_secs(30))
        .await
        .unwrap();
    let c = serve(&store, ConsoleOptions::new()).await;
    let base = c.base.clone();
    let b = open(&c).await;
    for path in [
        "/",
        "/events",
        "/events?live=1",
        "/events/1",
        "/events?tag=x",
    ] {
        b.goto(&format!("{base}{path}")).await.unwrap();
        // Hover everything: an attribute that broke out would fire.
        for el in b.find_all(Locator::Css("a, td, span")).await.unwrap() {
            let _ = b
                .execute(
                    "arguments[0].dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))",
                    vec![serde_json::to_value(&el).unwrap()],
                )
                .await;
        }
        let fired = b
            .execute(
                "return window.__xss === undefined ? null : window.__xss",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(fired, Value::Null, "a payload ran on {path}");
        assert!(
            b.find_all(Locator::Css("main img"))
                .await
                .unwrap()
                .is_empty(),
            "an <img> was injected on {path}"
        );
    }
    // Shown as text: the operator sees what was stored.
    b.goto(&format!("{base}/events/1")).await.unwrap();
    assert!(text(&b, "h1 + div + table, #event")
        .await
        .contains("<script>window.__xss=1</script>"));
    assert!(text(&b, "#data").await.contains("onerror"));
    // The policy that would stop a payload that escaped the escaping.
    let response = http(&c)
        .await
        .get(format!("{base}/events/1"))
        .send()
        .await
        .unwrap();
    let csp = response
        .headers()
        .get("content-security-policy")
        .expect("a Content-Security-Policy")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_bind_without_a_token_is_refused() {
    let (store, _db) = store().await;
    let open = ConsoleOptions::new().listen("0.0.0.0:0".parse().unwrap());
    let refused = Console::new(store.clone(), open.clone()).unwrap_err();
    assert!(refused.to_string().contains("--token"), "{refused}");
    Console::new(store.clone(), open.clone().insecure_no_auth(true))
        .expect("explicitly insecure is allowed");
    Console::new(store.clone(), open.token("a-long-random-s3cret-token")).expect("with a token");
    let empty = Console::new(store.clone(), ConsoleOptions::new().token("")).unwrap_err();
    assert!(empty.to_string().contains("empty"), "{empty}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_pages_need_it_and_browsers_log_in_once() {
    let (store, _db) = store().await;
    let _ = store.append(vec![numbered(1, &[])], None).await.unwrap();
    let c = serve_with(
        &store,
        ConsoleOptions::new().token("s3cret-token"),
        Some(
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .build_recorder()
                .handle(),
        ),
    )
    .await;
    let base = c.base.clone();
    assert_eq!(
        c.url,
        format!("{base}/"),
        "a configured token is never printed"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/events", "/events/1", "/metrics", "/projections"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without the token");
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth("s3cret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with the token");
        assert!(!r.text().await.unwrap().contains("s3cret-token"));
    }
    for path in ["/healthz", "/readyz"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} stays open for probes");
    }
    let b = browser().await;
    b.goto(&format!("{base}/events/1")).await.unwrap();
    assert!(b.current_url().await.unwrap().path().starts_with("/login"));
    let field = b.find(Locator::Css("input[name=token]")).await.unwrap();
    field.send_keys("wrong").await.unwrap();
    click(&b, Locator::Css("button[type=submit]")).await;
    assert!(text(&b, "main").await.contains("not this console's"));
    let field = b.find(Locator::Css("input[name=token]")).await.unwrap();
    field.send_keys("s3cret-token").await.unwrap();
    click(&b, Locator::Css("button[type=submit]")).await;
    assert_eq!(
        b.current_url().await.unwrap().path(),
        "/events/1",
        "back where it was going"
    );
    assert_eq!(text(&b, "h1").await, "Event 1");
    let cookies = b.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| !c.value().contains("s3cret-token")),
        "the cookie is not the token"
    );
    b.goto(&format!("{base}/projections")).await.unwrap();
    assert!(text(&b, "h1").await.starts_with("Projections"));
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_discarded_only_with_actions_allowed_and_the_csrf_token() {
    let (store, db) = store().await;
    let _ = store
        .append(vec![numbered(1, &[]), numbered(2, &[])], None)
        .await
        .unwrap();
    let owner = owner(&db).await;
    owner
        .batch_execute(
            "INSERT INTO dcbstore.dead_letters VALUES
               ('mailer', 1, 3, 'smtp said 550 <no such user>', now(), now()),
               ('mailer', 2, 1, 'timeout', now(), now())",
        )
        .await
        .unwrap();
    // Read only: no forms, and a forged POST is refused.
    let ro_console = serve(&store, ConsoleOptions::new()).await;
    let ro = ro_console.base.clone();
    let http = http(&ro_console).await;
    let page = http
        .get(format!("{ro}/dead-letters"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("smtp said 550 &lt;no such user&gt;"),
        "{page}"
    );
    assert!(!page.contains("<form"), "no action forms when read only");
    let r = http
        .post(format!("{ro}/dead-letters/discard"))
        .form(&[("csrf", "x"), ("subscriber", "mailer"), ("position", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // With actions: a POST without this console's CSRF token is refused.
    let rw_console = serve(&store, ConsoleOptions::new().allow_actions(true)).await;
    let rw = rw_console.base.clone();
    let r = self::http(&rw_console)
        .await
        .post(format!("{rw}/dead-letters/discard"))
        .form(&[
            ("csrf", "guessed"),
            ("subscriber", "mailer"),
            ("position", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        dcbstore_delivery::list(&store, None).await.unwrap().len(),
        2
    );
    // The browser's form carries it.
    let b = open(&rw_console).await;
    b.goto(&format!("{rw}/dead-letters")).await.unwrap();
    screenshot(&b, "dead-letters").await;
    click(
        &b,
        Locator::XPath("//tr[td/a[.='1']]//form[@action='/dead-letters/discard']//button"),
    )
    .await;
    let after = text(&b, "main").await;
    assert!(after.contains("discarded 1"), "{after}");
    let left = dcbstore_delivery::list(&store, None).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].position, 2);
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_and_schema_pages_show_what_the_store_and_the_file_hold() {
    let (store, db) = store().await;
    let _ = store
        .append((1..=20).map(|n| numbered(n, &["p"])).collect(), None)
        .await
        .unwrap();
    let owner = owner(&db).await;
    owner
        .batch_execute(
            "INSERT INTO dcbstore.projections (name, checkpoint, state, last_error, error_position, failures)
             VALUES ('roster', 15, 'failed', 'handler panicked: <boom>', 16, 4),
                    ('caught_up', 20, 'idle', NULL, NULL, 0)",
        )
        .await
        .unwrap();
    let schema = dcbstore::schema::SchemaFile::load(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/school.schema.json"),
    )
    .unwrap();
    let first = schema.events.first().unwrap().name.clone();
    let c = serve(&store, ConsoleOptions::new().schema(schema)).await;
    let base = c.base.clone();
    let b = open(&c).await;
    b.goto(&format!("{base}/projections")).await.unwrap();
    let roster = text(&b, "#projections tr[data-name='roster']").await;
    assert!(roster.contains("15") && roster.contains('5'), "{roster}");
    assert!(
        roster.contains("failed") && roster.contains("handler panicked: <boom>"),
        "{roster}"
    );
    let caught_up = text(&b, "#projections tr[data-name='caught_up']").await;
    assert!(
        caught_up.contains("0.0 s"),
        "caught up: no lag in time: {caught_up}"
    );
    screenshot(&b, "projections").await;
    b.goto(&format!("{base}/schema")).await.unwrap();
    assert!(text(&b, "#schema-summary").await.contains(&first));
    screenshot(&b, "schema").await;
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_answer_in_their_formats() {
    let (store, db) = store().await;
    // The recorder of this test binary; the append after it is counted.
    let handle = recorder();
    let _ = store.append(vec![numbered(1, &[])], None).await.unwrap();
    let console = Console::new(
        store.clone(),
        ConsoleOptions::new()
            .listen("127.0.0.1:0".parse().unwrap())
            .stats_interval(Duration::from_millis(100)),
    )
    .unwrap()
    .with_metrics(handle);
    let bound = console.bind().await.unwrap();
    let base = format!("http://{}", bound.local_addr());
    let url = bound.url();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));
    let http = session_client(&url).await;
    let mut body = String::new();
    for _ in 0..100 {
        let r = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        body = r.text().await.unwrap();
        if body.contains("dcbstore_head_position") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        body.contains("# TYPE dcbstore_head_position gauge"),
        "{body}"
    );
    assert!(body.contains("dcbstore_appends_total"), "{body}");
    assert!(
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .all(|l| l.starts_with("dcbstore_")),
        "every metric is named dcbstore_*: {body}"
    );
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok\n"
    );
    assert_eq!(
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    // A database migrated by a newer build is not ready for this one.
    owner(&db)
        .await
        .execute(
            "INSERT INTO dcbstore.schema_migrations (version, name, checksum) VALUES ($1, 'future', 'x')",
            &[&(dcbstore::migrate::expected_version() + 1)],
        )
        .await
        .unwrap();
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("newer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcbstore_serve_refuses_an_open_bind_keeps_secrets_out_and_stops_on_sigterm() {
    let bin = dcbstore_test_support::bin();
    let (store, db) = store().await;
    let _ = store.append(vec![numbered(1, &[])], None).await.unwrap();
    // A login role with a password, so the URL carries a secret.
    let c = owner(&db).await;
    let role = format!("console_{}", uuid::Uuid::new_v4().simple());
    c.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'hunter2-secret'"
    ))
    .await
    .unwrap();
    let granted = std::process::Command::new(bin)
        .args(["grant", &role, "--read-only"])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(granted.status.success(), "{granted:?}");
    let mut config = db.config().unwrap();
    config.user(&role).password("hunter2-secret");
    let url = dcbstore_testing::to_key_value(&config);

    let refused = std::process::Command::new(bin)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--token"), "{stderr}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &url)
        .env("DCBSTORE_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Lines::of(child.stderr.take().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    // Without a token it makes one up, and prints the URL with it once.
    let printed = stderr.wait_for("dcbstore console on ");
    let opened = printed
        .split_once("dcbstore console on ")
        .unwrap()
        .1
        .trim()
        .to_owned();
    assert!(opened.starts_with(&format!("{base}/?token=")), "{printed}");
    let token = opened.split_once("?token=").unwrap().1.to_owned();
    assert!(token.len() >= 32, "an unguessable token: {token}");
    let mut up = false;
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            up = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the read-only role serves a ready console");
    let anonymous = reqwest::get(format!("{base}/events")).await.unwrap();
    assert_eq!(anonymous.status(), 401, "pages need the printed token");
    let http = session_client(&opened).await;
    // Every page renders for the read-only role, and shows no secret.
    let _ = tokio::time::sleep(Duration::from_millis(300)).await;
    for path in [
        "/",
        "/events",
        "/events/1",
        "/projections",
        "/dead-letters",
        "/schema",
        "/metrics",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("hunter2"), "{path} shows the password");
        assert!(!body.contains(&token), "{path} shows the token");
    }
    let overview = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(overview.contains("up to position"), "{overview}");
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let logs = stderr.all();
    assert!(logs.contains(&format!("127.0.0.1:{port}")), "{logs}");
    assert!(
        !logs.contains("hunter2"),
        "a log shows the password: {logs}"
    );
    assert_eq!(
        logs.matches(&token).count(),
        1,
        "the token is printed once, in the URL, and never logged: {logs}"
    );
}

/// The lines a child process writes to a pipe, read as they come.
struct Lines {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Lines {
    fn of(pipe: impl std::io::Read + Send + 'static) -> Lines {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = lines.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap().push(line);
            }
        });
        Lines {
            lines,
            reader: Some(reader),
        }
    }

    /// The first line that contains `needle` (within 60 s).
    fn wait_for(&self, needle: &str) -> String {
        for _ in 0..1200 {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no line with {needle:?}: {:?}", self.lines.lock().unwrap());
    }

    /// Everything, once the pipe is closed.
    fn all(mut self) -> String {
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.lines.lock().unwrap().join("\n")
    }
}

// ---- Hostile hosts (DNS rebinding), bounded resources, the smaller holes ----

/// A browser whose resolver points `names` at 127.0.0.1, as a rebinding
/// attacker's DNS would.
async fn browser_resolving(names: &[&str]) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let d = driver();
    let mut caps = d.capabilities();
    let rules = names
        .iter()
        .map(|n| format!("MAP {n} 127.0.0.1"))
        .collect::<Vec<_>>()
        .join(",");
    caps["goog:chromeOptions"]["args"]
        .as_array_mut()
        .unwrap()
        .push(json!(format!("--host-resolver-rules={rules}")));
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&d.url())
        .await
        .expect("a headless Chromium session")
}

async fn dead_letters(db: &dcbstore_testing::TestDatabase, subscriber: &str, positions: &[i64]) {
    let owner = owner(db).await;
    for p in positions {
        owner
            .execute(
                "INSERT INTO dcbstore.dead_letters VALUES ($1, $2, 1, 'failed', now(), now())",
                &[&subscriber, p],
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_host_name_reads_nothing_and_discards_nothing() {
    let (store, db) = store().await;
    let _ = store
        .append(vec![numbered(1, &["secret-tag"])], None)
        .await
        .unwrap();
    dead_letters(&db, "mailer", &[1]).await;
    let c = serve(&store, ConsoleOptions::new().allow_actions(true)).await;
    let port = c.base.rsplit(':').next().unwrap().to_owned();
    let evil = format!("evil.example:{port}");
    // The attacker's page, once its name points at 127.0.0.1, is of the
    // same origin as the console for the browser: it loads nothing.
    let b = browser_resolving(&["evil.example"]).await;
    for path in ["/", "/events", "/dead-letters", "/metrics", "/healthz"] {
        b.goto(&format!("http://{evil}{path}")).await.unwrap();
        let body = text(&b, "body").await;
        assert!(
            body.contains("421"),
            "{path} answered a rebound name: {body}"
        );
        assert!(
            !body.contains("secret-tag") && !body.contains("mailer"),
            "{body}"
        );
    }
    b.close().await.unwrap();
    // The same requests as a program sends them: the attacker reads the
    // form's CSRF token from the page, then posts with its own Origin.
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = raw
        .get(format!("{}/dead-letters", c.base))
        .header("host", &evil)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 421);
    let body = page.text().await.unwrap();
    assert!(!body.contains("csrf"), "{body}");
    // Even with the form's real CSRF token (read by the console's own page).
    let own = http(&c).await;
    let form = own
        .get(format!("{}/dead-letters", c.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page's CSRF token")
        .to_owned();
    let r = raw
        .post(format!("{}/dead-letters/discard", c.base))
        .header("host", &evil)
        .header("origin", format!("http://{evil}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("subscriber", "mailer"),
            ("position", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    assert_eq!(
        dcbstore_delivery::list(&store, None).await.unwrap().len(),
        1
    );
    // Its own names still work: localhost, the address, a configured name.
    let named = serve(
        &store,
        ConsoleOptions::new().allowed_host("console.internal"),
    )
    .await;
    let own = http(&named).await;
    for host in [
        format!("localhost:{port}"),
        "127.0.0.1".to_owned(),
        "console.internal".to_owned(),
    ] {
        let r = own
            .get(format!("{}/events", named.base))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_a_loopback_console_needs_the_secret_it_printed() {
    let (store, _db) = store().await;
    let _ = store.append(vec![numbered(1, &["t"])], None).await.unwrap();
    let c = serve(&store, ConsoleOptions::new()).await;
    let (printed, token) = c.url.split_once("?token=").expect("a URL with a token");
    assert_eq!(printed, format!("{}/", c.base));
    assert!(token.len() >= 32, "{token}");
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/events", "/events/1", "/dead-letters", "/metrics"] {
        let r = raw.get(format!("{}{path}", c.base)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without the secret");
    }
    let wrong = raw
        .get(format!("{}/events?token=guess", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    // The printed URL: the cookie, and the token taken out of the URL.
    let b = browser().await;
    b.goto(&format!("{}/events?tag=t&token={token}", c.base))
        .await
        .unwrap();
    let now = b.current_url().await.unwrap();
    assert_eq!(now.path(), "/events");
    assert_eq!(now.query(), Some("tag=t"), "the token left the URL");
    assert_eq!(shown(&b).await, vec![1]);
    b.goto(&format!("{}/events/1", c.base)).await.unwrap();
    assert_eq!(text(&b, "h1").await, "Event 1", "the session holds");
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_beyond_the_cap_get_503_and_health_still_answers() {
    let (store, _db) = store().await;
    let _ = store.append(vec![numbered(1, &["a"])], None).await.unwrap();
    let c = serve(&store, ConsoleOptions::new().max_live_streams(2)).await;
    let http = http(&c).await;
    let open = |tag: &'static str| {
        let http = http.clone();
        let url = format!("{}/events/live?tag={tag}&after=1", c.base);
        async move { http.get(url).send().await.unwrap() }
    };
    let mut first = open("a").await;
    let mut second = open("b").await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open("a").await;
    assert_eq!(third.status(), 503, "one stream past the cap");
    assert!(third.text().await.unwrap().contains("live streams"));
    let health = reqwest::get(format!("{}/healthz", c.base)).await.unwrap();
    assert_eq!(health.status(), 200);
    // Both streams get their events from the one shared follower.
    let _ = store
        .append(vec![numbered(2, &["b"]), numbered(3, &["a"])], None)
        .await
        .unwrap();
    assert!(first_row(&mut first).await.contains("id: 3"));
    assert!(first_row(&mut second).await.contains("id: 2"));
    // A closed stream frees its place.
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        let r = open("a").await;
        if r.status() == 200 {
            again = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        again.is_some(),
        "the place of a closed stream is given again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_get_503_and_probes_still_answer() {
    let (store, _db) = store().await;
    let c = serve(&store, ConsoleOptions::new().max_connections(3)).await;
    let http = http(&c).await;
    let addr = c.base.trim_start_matches("http://").to_owned();
    // Three clients that connect and never finish their request.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    // The server takes the held connections in as it gets to them (later on
    // a loaded machine): a page is refused once it has all three. (A
    // liveness bound of 20 s, not a timing.)
    let mut page = None;
    for _ in 0..400 {
        let r = http
            .get(format!("{}/events", c.base))
            .header("connection", "close")
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            page = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = page.expect("pages past the cap get 503");
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = fresh
        .get(format!("{}/healthz", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "probes answer past the cap");
    let ready = fresh
        .get(format!("{}/readyz", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(page.text().await.unwrap().contains("connection limit"));
    drop(held);
    let mut served = false;
    for _ in 0..100 {
        let r = fresh.get(format!("{}/events", c.base)).send().await;
        // Without the cookie: 401 is the page answering again.
        if r.is_ok_and(|r| r.status() == 401) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "closed connections free their places");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_idle_connection_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (store, _db) = store().await;
    let c = serve(
        &store,
        ConsoleOptions::new().header_timeout(Duration::from_millis(300)),
    )
    .await;
    let addr = c.base.trim_start_matches("http://").to_owned();
    let closed = |mut s: tokio::net::TcpStream| async move {
        let mut buf = vec![0u8; 4096];
        loop {
            // The guard only: the server closes it long before.
            match tokio::time::timeout(Duration::from_secs(25), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    };
    // Half a request's headers, then nothing.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    assert!(closed(slow).await, "slow headers: closed");
    // Nothing at all.
    let silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(closed(silent).await, "a silent connection: closed");
    // A kept-alive connection after its answer.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert!(closed(idle).await, "an idle kept-alive connection: closed");
}

/// The stream's text up to its first row.
async fn first_row(r: &mut reqwest::Response) -> String {
    let mut seen = String::new();
    while !seen.contains("data-position") {
        let chunk = tokio::time::timeout(Duration::from_secs(30), r.chunk())
            .await
            .expect("a row within 30 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

/// Console backends of this database waiting for a lock.
async fn waiting(owner: &tokio_postgres::Client) -> i64 {
    owner
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_page_ends_at_the_deadline_holds_few_backends_and_leaves_no_statement() {
    let (store, db) = store().await;
    let _ = store.append(vec![numbered(1, &["x"])], None).await.unwrap();
    let c = serve(
        &store,
        ConsoleOptions::new()
            .max_reads(2)
            .request_timeout(Duration::from_secs(2))
            // Its background refresh would wait for the lock too.
            .refresh_stats(false),
    )
    .await;
    let http = http(&c).await;
    // A statement that waits as long as this transaction holds its locks
    // (as a 128-item query on a 1M log runs as long as its plan does).
    let mut locker = owner(&db).await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute(
        "LOCK TABLE dcbstore.redactions, dcbstore.stats_cursor IN ACCESS EXCLUSIVE MODE",
    )
    .await
    .unwrap();
    let watcher = owner(&db).await;
    let mut requests = Vec::new();
    for path in ["/", "/events", "/events/1", "/", "/events", "/events?tag=x"] {
        let http = http.clone();
        let url = format!("{}{path}", c.base);
        requests.push(tokio::spawn(async move {
            // The guard only: the console answers long before.
            tokio::time::timeout(Duration::from_secs(60), http.get(url).send())
                .await
                .map(|r| r.map(|r| r.status().as_u16()).unwrap_or(0))
                .unwrap_or(0)
        }));
    }
    let mut most = 0;
    while !requests.iter().all(tokio::task::JoinHandle::is_finished) {
        most = most.max(waiting(&watcher).await);
        let health = reqwest::get(format!("{}/readyz", c.base)).await.unwrap();
        assert_eq!(health.status(), 200, "the probes answer meanwhile");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in requests {
        assert_eq!(
            r.await.unwrap(),
            503,
            "a stuck page answers 503 at the deadline"
        );
    }
    assert!(most >= 1, "the pages did reach the database");
    assert!(most <= 2, "{most} pages waited in the database at once");
    // Nothing of theirs is left running once they answered.
    let mut left = waiting(&watcher).await;
    for _ in 0..100 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = waiting(&watcher).await;
    }
    assert_eq!(left, 0, "statements of abandoned pages still run");
    tx.rollback().await.unwrap();
    let r = http.get(format!("{}/events", c.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "served again once the lock is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_come_in_pages_of_200_none_skipped_none_repeated() {
    let (store, db) = store().await;
    let big = "x".repeat(100_000);
    let _ = store
        .append(
            (1..=450u64)
                .map(|n| Event::new("Big", json!({"n": n, "pad": big})))
                .collect(),
            None,
        )
        .await
        .unwrap();
    owner(&db)
        .await
        .batch_execute(
            "INSERT INTO dcbstore.dead_letters
             SELECT CASE WHEN p % 2 = 0 THEN 'a-mailer' ELSE 'b-relay' END, p, 1, 'failed', now(), now()
               FROM generate_series(1, 450) AS p",
        )
        .await
        .unwrap();
    let c = serve(&store, ConsoleOptions::new()).await;
    let http = http(&c).await;
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut url = format!("{}/dead-letters", c.base);
    let mut pages = 0;
    loop {
        let page = http.get(&url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let body = page.text().await.unwrap();
        assert!(body.len() < 2_000_000, "a page of {} bytes", body.len());
        let rows: Vec<(String, i64)> = body
            .split("<td><a href=\"/dead-letters?subscriber=")
            .skip(1)
            .map(|r| {
                let name = r.split('"').next().unwrap().to_owned();
                let p = r
                    .split("<a href=\"/events/")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                (name, p)
            })
            .collect();
        assert!(rows.len() <= 200, "{} rows on one page", rows.len());
        seen.extend(rows);
        pages += 1;
        match body.split("id=\"more\" rel=\"next\" href=\"").nth(1) {
            Some(r) => {
                let next = r.split('"').next().unwrap().replace("&amp;", "&");
                url = format!("{}{next}", c.base);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<(String, i64)> = (1..=450)
        .map(|p| {
            let name = if p % 2 == 0 { "a-mailer" } else { "b-relay" };
            (name.to_owned(), p)
        })
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "every letter once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_gauge_goes_to_zero_and_names_only_known_consumers() {
    let (store, db) = store().await;
    let _ = store
        .append(vec![numbered(1, &[]), numbered(2, &[])], None)
        .await
        .unwrap();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let known = format!("mailer_{id}");
    let made_up = format!("made_up_{id}");
    owner(&db)
        .await
        .execute(
            "INSERT INTO dcbstore.projections (name, checkpoint, kind) VALUES ($1, 2, 'subscriber')",
            &[&known],
        )
        .await
        .unwrap();
    dead_letters(&db, &known, &[1, 2]).await;
    dead_letters(&db, &made_up, &[1]).await;
    let c = serve_with(&store, ConsoleOptions::new(), Some(recorder())).await;
    let http = http(&c).await;
    let metrics = || {
        let http = http.clone();
        let url = format!("{}/metrics", c.base);
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let line = format!("dcbstore_dead_letters{{subscriber=\"{known}\"}}");
    let until = |value: &'static str| {
        let line = line.clone();
        let metrics = &metrics;
        async move {
            for _ in 0..200 {
                let body = metrics().await;
                if body.lines().any(|l| l == format!("{line} {value}")) {
                    return body;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{line} never showed {value}: {}", metrics().await);
        }
    };
    let body = until("2").await;
    assert!(
        !body.contains(&made_up),
        "a name written in a dead letter is not a label: {body}"
    );
    owner(&db)
        .await
        .execute(
            "DELETE FROM dcbstore.dead_letters WHERE subscriber = $1",
            &[&known],
        )
        .await
        .unwrap();
    until("0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_login_the_browser_only_goes_to_a_path_of_this_console() {
    let (store, _db) = store().await;
    let token = "a-long-enough-s3cret-token";
    let c = serve(&store, ConsoleOptions::new().token(token)).await;
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = url::Url::parse(&c.base).unwrap();
    for next in [
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\r\n/evil.example/",
        "\t//evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "/\\/evil.example/",
        "/.//evil.example/",
        "/x/..//evil.example/",
        "https://evil.example/",
        "/%2f%2fevil.example/",
        "javascript:alert(1)",
    ] {
        let r = raw
            .post(format!("{}/login", c.base))
            .form(&[("token", token), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{next:?}");
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        // Followed as a browser follows it (WHATWG URL parsing).
        let followed = base.join(&to).unwrap();
        assert_eq!(
            followed.origin(),
            base.origin(),
            "{next:?} sent the browser to {to:?}"
        );
    }
    // In a real browser, through the form.
    let b = browser_resolving(&["evil.example"]).await;
    b.goto(&format!("{}/login?next=/%09/evil.example/", c.base))
        .await
        .unwrap();
    b.find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click(&b, Locator::Css("button[type=submit]")).await;
    let now = b.current_url().await.unwrap();
    assert_eq!(
        now.host_str(),
        Some("127.0.0.1"),
        "the browser went to {now}"
    );
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letters_page_shows_no_text_from_its_url() {
    let (store, _db) = store().await;
    let c = serve(&store, ConsoleOptions::new()).await;
    let http = http(&c).await;
    let lure = "Session expired: call +1 555 0100 with your token";
    let body = http
        .get(format!("{}/dead-letters", c.base))
        .query(&[("done", lure), ("discarded", "x")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!body.contains("call +1 555"), "{body}");
    let body = http
        .get(format!("{}/dead-letters?discarded=3", c.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("discarded 3"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guesses_past_the_limit_get_429_even_the_right_one() {
    let (store, _db) = store().await;
    let token = "a-long-enough-s3cret-token";
    let c = serve(&store, ConsoleOptions::new().token(token)).await;
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut limited = 0;
    for i in 0..30 {
        let r = raw
            .post(format!("{}/login", c.base))
            .form(&[("token", format!("guess-{i}").as_str()), ("next", "/")])
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited += 1;
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    assert!(limited >= 5, "{limited} of 30 guesses were limited");
    // Over the limit the token is not even compared: no oracle.
    let right = raw
        .post(format!("{}/login", c.base))
        .form(&[("token", token), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 429);
    let bearer = raw
        .get(format!("{}/events", c.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 429, "bearer tokens share the limit");
    let url = raw
        .get(format!("{}/events?token={token}", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(url.status(), 429, "URL tokens share the limit");
    // Another client address has its own quota.
    let other = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let r = other
        .get(format!("{}/events", c.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_bind_refuses_a_guessable_token() {
    let (store, _db) = store().await;
    let public = ConsoleOptions::new().listen("0.0.0.0:0".parse().unwrap());
    for weak in ["x", "password", "123456789012345", "               x"] {
        let refused = Console::new(store.clone(), public.clone().token(weak)).unwrap_err();
        assert!(refused.to_string().contains("at least 16"), "{refused}");
    }
    Console::new(store.clone(), public.token("0123456789abcdef")).expect("16 characters");
    Console::new(store.clone(), ConsoleOptions::new().token("short"))
        .expect("loopback: only this machine's users can guess");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_expires_in_the_browser_and_on_the_server() {
    let (store, _db) = store().await;
    let c = serve(
        &store,
        ConsoleOptions::new().session_lifetime(Duration::from_secs(1)),
    )
    .await;
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = raw.get(&c.url).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Max-Age=1"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let with = |pair: String| {
        let raw = raw.clone();
        let url = format!("{}/events", c.base);
        async move {
            raw.get(url)
                .header("cookie", pair)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(with(pair.clone()).await, 200);
    // A browser that keeps the cookie past its Max-Age gets nothing more.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        with(pair.clone()).await,
        401,
        "an expired session is refused"
    );
    // Nor can the expiry be moved: it is signed.
    let (_, mac) = pair.split_once('.').unwrap();
    let forged = format!("dcbstore_console={}.{mac}", u64::MAX / 2);
    assert_eq!(with(forged).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_tells_strangers_the_state_not_the_error() {
    let (_store, db) = store().await;
    let c = owner(&db).await;
    let role = format!("probe_{}", uuid::Uuid::new_v4().simple());
    c.batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'first-pw'"))
        .await
        .unwrap();
    dcbstore::roles::grant_app(&c, &role, dcbstore::roles::Grants::read_only())
        .await
        .unwrap();
    let mut config = db.config().unwrap();
    config.user(&role).password("first-pw");
    let store = Store::connect(&dcbstore_testing::to_key_value(&config))
        .await
        .unwrap();
    let console = serve(&store, ConsoleOptions::new()).await;
    let ready = reqwest::get(format!("{}/readyz", console.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // The role's password changes and its connections go: the store fails.
    c.batch_execute(&format!(
        "ALTER ROLE {role} PASSWORD 'second-pw';
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    ))
    .await
    .unwrap();
    let r = reqwest::get(format!("{}/readyz", console.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("not ready: the database does not answer"),
        "{body}"
    );
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    for secret in [role.as_str(), "password", "authentication", port.as_str()] {
        assert!(!body.contains(secret), "/readyz shows {secret:?}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcbstore_serve_reads_its_token_from_a_file_and_says_the_flag_shows_it() {
    let bin = dcbstore_test_support::bin();
    let (store, db) = store().await;
    let _ = store.append(vec![numbered(1, &[])], None).await.unwrap();
    let token = format!("file-token-{}", uuid::Uuid::new_v4().simple());
    let dir = std::env::temp_dir().join(format!(
        "dcbstore-console-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let short = dir.join("short");
    std::fs::write(&short, "abc\n").unwrap();
    // A public bind with a short token in the file is refused.
    let refused = std::process::Command::new(bin)
        .args(["serve", "--listen", "0.0.0.0:0", "--token-file"])
        .arg(&short)
        .env("DATABASE_URL", db.url())
        .env_remove("DCBSTORE_CONSOLE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("at least 16"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--token-file",
        ])
        .arg(&file)
        .env("DATABASE_URL", db.url())
        .env_remove("DCBSTORE_CONSOLE_TOKEN")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Lines::of(child.stderr.take().unwrap());
    let printed = stderr.wait_for("dcbstore console on ");
    assert!(
        printed.ends_with(&format!("http://127.0.0.1:{port}/")),
        "{printed}"
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(&token));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/events")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{base}/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the file's token");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    let logs = stderr.all();
    assert!(!logs.contains(&token), "{logs}");
    // The token on the command line works, with a warning that says so.
    let mut flagged = std::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--token", &token])
        .env("DATABASE_URL", db.url())
        .env_remove("DCBSTORE_CONSOLE_TOKEN")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Lines::of(flagged.stderr.take().unwrap());
    let warning = stderr.wait_for("process list");
    assert!(warning.contains("--token-file"), "{warning}");
    stderr.wait_for("dcbstore console on ");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &flagged.id().to_string()])
        .status();
    assert!(flagged.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_live_streams_share_one_follower_of_the_log() {
    let (store, db) = store().await;
    let _ = store.append(vec![numbered(1, &["a"])], None).await.unwrap();
    let c = serve(
        &store,
        ConsoleOptions::new()
            .max_live_streams(8)
            .refresh_stats(false),
    )
    .await;
    let http = http(&c).await;
    let mut streams = Vec::new();
    for _ in 0..8 {
        let r = http
            .get(format!("{}/events/live?tag=a&after=1", c.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        streams.push(r);
    }
    // Every reader of the log now waits for this lock: the backends that
    // wait are the followers there are (and the gauges' sampler).
    let mut locker = owner(&db).await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE dcbstore.events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let watcher = owner(&db).await;
    let mut most = 0;
    // A follower polls every second at most: 4 s see them all waiting.
    for _ in 0..40 {
        most = most.max(waiting(&watcher).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tx.rollback().await.unwrap();
    assert!(most >= 1, "the follower reads the log");
    assert!(
        most <= 2,
        "{most} readers of the log for 8 streams: one follower (and the sampler) expected"
    );
    let _ = store.append(vec![numbered(2, &["a"])], None).await.unwrap();
    for s in &mut streams {
        assert!(first_row(s).await.contains("id: 2"));
    }
}

/// An event a reader cannot decode (stored before the database refused such
/// values) never takes a page down: the events page lists it in its place,
/// saying why and how to redact it, and its own page shows it as stored,
/// every digit kept.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_a_reader_cannot_decode_is_shown_with_how_to_redact_it() {
    let (store, db) = store().await;
    let _ = store.append(vec![numbered(1, &["t"])], None).await.unwrap();
    let owner = owner(&db).await;
    owner
        .batch_execute(
            "WITH e AS (INSERT INTO dcbstore.events (position, id, type, data, tags)
                        VALUES (2, gen_random_uuid(), 'Legacy', '{\"n\": 1e400, \"big\": 123456789012345678901234567890}', '{t}')
                        RETURNING position)
             INSERT INTO dcbstore.event_tags (tag, position, type) SELECT 't', position, 'Legacy' FROM e",
        )
        .await
        .unwrap();
    let _ = store.append(vec![numbered(3, &["t"])], None).await.unwrap();
    let c = serve(&store, ConsoleOptions::new()).await;
    let client = http(&c).await;
    for url in ["/events", "/events?tag=t"] {
        let r = client.get(format!("{}{url}", c.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let body = r.text().await.unwrap();
        assert!(body.contains("data-position=\"3\""), "{url}");
        assert!(body.contains("data-position=\"1\""), "{url}");
        assert!(body.contains("cannot be decoded"), "{url}");
        assert!(body.contains("dcbstore redact 2"), "{url}");
    }
    let r = client
        .get(format!("{}/events/2", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("cannot be decoded"));
    assert!(body.contains("123456789012345678901234567890"));
    assert!(body.contains(&format!("1{}", "0".repeat(400))));
}
