//! TLS against a real PostgreSQL whose certificate (for `localhost`) was
//! signed by a CA made for this test run: `sslmode=require` encrypts,
//! `verify-full` connects the store, the CLI and projection leases, and every
//! certificate mismatch fails closed with an error that says why and never
//! shows a password.
//!
//! The cluster accepts TCP connections only over TLS (`hostssl` lines in
//! `pg_hba.conf`, password authentication), so plaintext is refused too.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dcbstore::connection::{connect, parse_config, ConnectOptions};
use dcbstore::projection::durable::{self, DurableProjection, RunnerConfig};
use dcbstore::HandlerError;
use dcbstore::{Error, Event, EventStore, Query, QueryItem, ReadOptions, SequencedEvent, Store};
use dcbstore_testing::{shared_cluster, TestCluster};
use deadpool_postgres::Transaction;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;

/// The TLS-only cluster and the client-side files.
struct Tls {
    cluster: TestCluster,
    /// The CA that signed the server's certificate.
    ca: PathBuf,
    /// An unrelated CA.
    other_ca: PathBuf,
    /// Both CAs in one file (the other first).
    bundle: PathBuf,
    /// The superuser's password.
    superuser_password: String,
    /// The password of the role `tls_app`.
    app_password: String,
}

static TLS: OnceLock<Result<Tls, String>> = OnceLock::new();

/// A CA certificate (PEM) and its issuer.
fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// The server's certificate and key (PEM), for `localhost` only.
fn server_cert(issuer: &Issuer<'static, KeyPair>) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn start() -> Result<Tls, String> {
    let e = |e: dcbstore::Error| e.to_string();
    let (ca_pem, issuer) = new_ca("dcbstore test CA");
    let (other_pem, _) = new_ca("some other CA");
    let (cert_pem, key_pem) = server_cert(&issuer);
    let cluster = TestCluster::start().map_err(e)?;
    cluster
        .write_file("server.crt", cert_pem.as_bytes())
        .map_err(e)?;
    cluster
        .write_file("server.key", key_pem.as_bytes())
        .map_err(e)?;
    cluster.write_file("ca.pem", ca_pem.as_bytes()).map_err(e)?;
    cluster
        .write_file("other-ca.pem", other_pem.as_bytes())
        .map_err(e)?;
    cluster
        .write_file("bundle.pem", format!("{other_pem}{ca_pem}").as_bytes())
        .map_err(e)?;
    // TCP only over TLS: no `host` line, so plaintext has no pg_hba.conf entry.
    cluster
        .write_file(
            "pg_hba.conf",
            b"hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n",
        )
        .map_err(e)?;
    cluster
        .configure(&[
            ("ssl", "on"),
            ("ssl_cert_file", "server.crt"),
            ("ssl_key_file", "server.key"),
        ])
        .map_err(e)?;
    let superuser_password = parse_config(&cluster.url("postgres"))
        .map_err(e)?
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let data = cluster.data_dir();
    let tls = Tls {
        ca: data.join("ca.pem"),
        other_ca: data.join("other-ca.pem"),
        bundle: data.join("bundle.pem"),
        superuser_password,
        app_password: format!("App-Pw-{}", uuid::Uuid::new_v4().simple()),
        cluster,
    };
    // The reload is asynchronous: wait until TLS is served, then add a role
    // with a password of its own. On a thread with its own runtime, as this
    // may run inside a test's runtime.
    let admin = tls.url("127.0.0.1", "postgres", "sslmode=require");
    let app_password = tls.app_password.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let options = ConnectOptions::parse(&admin).map_err(e)?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let client = loop {
                match connect(&options).await {
                    Ok(c) => break c,
                    Err(err) if Instant::now() > deadline => {
                        return Err(format!("the server never served TLS: {err}"))
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            client
                .batch_execute(&format!(
                    "CREATE ROLE tls_app LOGIN PASSWORD '{app_password}'"
                ))
                .await
                .map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "setup panicked".to_string())??;
    Ok(tls)
}

async fn setup() -> &'static Tls {
    tokio::task::spawn_blocking(|| TLS.get_or_init(start).as_ref().map_err(Clone::clone))
        .await
        .unwrap()
        .expect("TLS cluster")
}

impl Tls {
    /// key=value string as the superuser: `host` names the server for TLS,
    /// the address is always 127.0.0.1.
    fn url(&self, host: &str, dbname: &str, extra: &str) -> String {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user=postgres password={} dbname={dbname} {extra}",
            self.cluster.port(),
            self.superuser_password
        )
    }

    /// key=value string as `tls_app` (password authentication).
    fn app_url(&self, host: &str, extra: &str) -> String {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user=tls_app password={} dbname=postgres {extra}",
            self.cluster.port(),
            self.app_password
        )
    }

    fn verify_full(&self, root: &std::path::Path) -> String {
        format!("sslmode=verify-full sslrootcert={}", root.display())
    }

    /// Asserts `text` shows neither password.
    fn assert_clean(&self, text: &str) {
        assert!(
            !text.contains(&self.superuser_password) && !text.contains(&self.app_password),
            "a password leaked: {text}"
        );
    }

    /// A new database, migrated, reached with verify-full.
    async fn migrated_db(&self) -> (String, String) {
        let name = format!("tls_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(
            &ConnectOptions::parse(&self.url("localhost", "postgres", &self.verify_full(&self.ca)))
                .unwrap(),
        )
        .await
        .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = self.url("localhost", &name, &self.verify_full(&self.ca));
        let mut client = connect(&ConnectOptions::parse(&url).unwrap())
            .await
            .unwrap();
        let _ = dcbstore::migrate(&mut client).await.unwrap();
        (name, url)
    }
}

async fn ssl_in_use(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Connects with `url`, expecting a failure; returns the message.
async fn refused(url: &str) -> Error {
    match ConnectOptions::parse(url) {
        Ok(options) => match connect(&options).await {
            Ok(_) => panic!("connected, but should have been refused"),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

fn cli(database_url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(crate::common::cli::bin())
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn require_encrypts_without_verifying_the_certificate() {
    let t = setup().await;
    // The host is not in the certificate, and no root is given: not checked.
    for url in [
        t.url("127.0.0.1", "postgres", "sslmode=require"),
        t.app_url("127.0.0.1", "sslmode=require"),
        format!(
            "postgres://tls_app:{}@127.0.0.1:{}/postgres?sslmode=require",
            t.app_password,
            t.cluster.port()
        ),
    ] {
        let client = connect(&ConnectOptions::parse(&url).unwrap())
            .await
            .unwrap();
        assert!(ssl_in_use(&client).await, "{url}");
    }
    // A bare driver Config with sslmode=require also gets TLS.
    let config = parse_config(&t.url("127.0.0.1", "postgres", "sslmode=require")).unwrap();
    assert!(ssl_in_use(&connect(&config).await.unwrap()).await);
    // prefer (the default) takes TLS when the server offers it.
    let client = connect(&ConnectOptions::parse(&t.app_url("127.0.0.1", "")).unwrap())
        .await
        .unwrap();
    assert!(ssl_in_use(&client).await);
}

/// A durable projection that only counts, to take a projection lease (a
/// dedicated connection) over verify-full.
struct Counter;

impl DurableProjection for Counter {
    fn name(&self) -> &str {
        "tls_counter"
    }
    fn query(&self) -> Query {
        Query::item(QueryItem::types(["Tested"]))
    }
    async fn setup(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
        tx.batch_execute("CREATE TABLE IF NOT EXISTS tls_counter (n bigint)")
            .await?;
        Ok(())
    }
    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), HandlerError> {
        tx.batch_execute("DELETE FROM tls_counter").await?;
        Ok(())
    }
    async fn apply(&self, tx: &Transaction<'_>, _e: &SequencedEvent) -> Result<(), HandlerError> {
        tx.batch_execute("INSERT INTO tls_counter VALUES (1)")
            .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_connects_the_store_the_cli_and_projections() {
    let t = setup().await;
    let (db, url) = t.migrated_db().await;
    let client = connect(&ConnectOptions::parse(&url).unwrap())
        .await
        .unwrap();
    assert!(ssl_in_use(&client).await);

    let store = Store::connect(&url).await.unwrap();
    let _ = store
        .append(
            vec![Event::new("Tested", json!({"over": "tls"})).with_tag("tls:1")],
            None,
        )
        .await
        .unwrap();
    let read = store
        .read_all(&Query::item(QueryItem::tags(["tls:1"])), ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].event.data, json!({"over": "tls"}));
    assert_eq!(store.head().await.unwrap().map(|p| p.get()), Some(1));
    assert!(ssl_in_use(&store.pool().get().await.unwrap()).await);
    assert!(store.tls().verifies_certificate());

    // A projection's lease is a dedicated connection with the same settings.
    let applied = durable::rebuild(
        &store,
        &Counter,
        &RunnerConfig::default(),
        Duration::from_secs(10),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(applied, 1);

    // The CLI, URL form; `status` opens a single connection, `head` a store.
    let cli_url = format!(
        "postgres://postgres:{}@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
        t.superuser_password,
        t.cluster.port(),
        t.ca.display()
    );
    let (ok, stdout, stderr) = cli(&cli_url, &["head"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "1");
    let (ok, _, stderr) = cli(&cli_url, &["status"]);
    assert!(ok, "{stderr}");

    // verify-ca checks the chain only: an address the certificate does not
    // name is fine, and a file of several roots is read whole.
    let client = connect(
        &ConnectOptions::parse(&t.url(
            "127.0.0.1",
            &db,
            &format!("sslmode=verify-ca sslrootcert={}", t.bundle.display()),
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(ssl_in_use(&client).await);
    // So does require with a root file, as in libpq.
    let client = connect(
        &ConnectOptions::parse(&t.url(
            "127.0.0.1",
            &db,
            &format!("sslmode=require sslrootcert={}", t.ca.display()),
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(ssl_in_use(&client).await);
}

#[tokio::test]
async fn verify_full_fails_closed_on_a_host_the_certificate_does_not_name() {
    let t = setup().await;
    for url in [
        t.url("127.0.0.1", "postgres", &t.verify_full(&t.ca)),
        t.app_url("127.0.0.1", &t.verify_full(&t.ca)),
    ] {
        let err = refused(&url).await;
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("not valid for host 127.0.0.1")
                && msg.contains("it names localhost")
                && msg.contains("verify-ca"),
            "{msg}"
        );
        t.assert_clean(&msg);
        t.assert_clean(&format!("{err:?}"));

        // The store's pool fails the same way.
        let err = Store::connect(&url).await.unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert!(
            err.to_string().contains("not valid for host 127.0.0.1"),
            "{err}"
        );
        t.assert_clean(&err.to_string());
    }
    let cli_url = format!(
        "postgres://tls_app:{}@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
        t.app_password,
        t.cluster.port(),
        t.ca.display()
    );
    let (ok, stdout, stderr) = cli(&cli_url, &["head"]);
    assert!(!ok);
    assert!(stderr.contains("not valid for host 127.0.0.1"), "{stderr}");
    t.assert_clean(&stdout);
    t.assert_clean(&stderr);
}

#[tokio::test]
async fn verify_fails_closed_on_an_unknown_authority() {
    let t = setup().await;
    let other = t.other_ca.display().to_string();
    for url in [
        t.app_url("localhost", &t.verify_full(&t.other_ca)),
        t.app_url(
            "localhost",
            &format!("sslmode=verify-ca sslrootcert={other}"),
        ),
        t.app_url("localhost", &format!("sslmode=require sslrootcert={other}")),
    ] {
        let err = refused(&url).await;
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("signed by an unknown authority")
                && msg.contains(&format!("sslrootcert {other}"))
                && msg.contains("set sslrootcert=PATH"),
            "{msg}"
        );
        t.assert_clean(&msg);
    }

    // No sslrootcert: the platform's roots, which do not hold a test CA.
    for url in [
        t.app_url("localhost", "sslmode=verify-full"),
        t.app_url("localhost", "sslmode=verify-ca"),
        t.app_url("localhost", "sslrootcert=system"),
    ] {
        let err = refused(&url).await;
        let msg = err.to_string();
        assert!(
            msg.contains("signed by an unknown authority (not one of the platform's")
                || msg.contains("found no trusted root certificates"),
            "{msg}"
        );
        assert!(msg.contains("sslrootcert=PATH"), "{msg}");
        t.assert_clean(&msg);
        let err = Store::connect(&url).await.unwrap_err();
        t.assert_clean(&err.to_string());
    }
}

#[tokio::test]
async fn a_tls_only_server_refuses_plaintext_clearly() {
    let t = setup().await;
    for url in [
        t.app_url("localhost", "sslmode=disable"),
        t.url("127.0.0.1", "postgres", "sslmode=disable"),
    ] {
        let err = refused(&url).await;
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("no encryption")
                && msg.contains("only over TLS")
                && msg.contains("instead of sslmode=disable"),
            "{msg}"
        );
        t.assert_clean(&msg);
    }
    let cli_url = format!(
        "postgres://tls_app:{}@localhost:{}/postgres?sslmode=disable",
        t.app_password,
        t.cluster.port()
    );
    let (ok, _, stderr) = cli(&cli_url, &["status"]);
    assert!(!ok);
    assert!(stderr.contains("only over TLS"), "{stderr}");
    t.assert_clean(&stderr);
}

#[tokio::test]
async fn no_error_shows_a_password() {
    let t = setup().await;
    // Authentication fails after a verified handshake.
    let wrong = t.app_url("localhost", &t.verify_full(&t.ca)).replace(
        &format!("password={}", t.app_password),
        &format!("password={}-wrong", t.app_password),
    );
    let err = refused(&wrong).await;
    let msg = err.to_string();
    assert!(msg.contains("password authentication failed"), "{msg}");
    t.assert_clean(&msg);

    // Parameters that swallowed a password, or a bad root file: refused
    // before connecting, without echoing the password.
    let p = &t.app_password;
    for url in [
        format!("host=localhost sslrootcert= password={p}"),
        format!("host=localhost sslmode= password={p}"),
        format!("host=localhost password={p} sslmode=verify-fully"),
        format!("host=localhost password={p} sslmode=verify-full sslrootcert=/nonexistent/{p}"),
    ] {
        let err = refused(&url).await;
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        t.assert_clean(&err.to_string());
        t.assert_clean(&format!("{err:?}"));
    }
    let err = Store::connect(&format!(
        "host=localhost password={p} sslmode=verify-full sslrootcert=/nonexistent/{p}"
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot read sslrootcert"), "{err}");
    t.assert_clean(&err.to_string());
    let (ok, stdout, stderr) = cli(
        &format!("host=localhost sslrootcert= password={p}"),
        &["head"],
    );
    assert!(!ok);
    t.assert_clean(&stdout);
    t.assert_clean(&stderr);
}

#[tokio::test]
async fn tls_modes_against_a_server_without_tls() {
    let t = setup().await;
    let plain = tokio::task::spawn_blocking(shared_cluster)
        .await
        .unwrap()
        .unwrap();
    let url = plain.url("postgres");
    // prefer falls back to plaintext.
    let client = connect(&ConnectOptions::parse(&url).unwrap())
        .await
        .unwrap();
    assert!(!ssl_in_use(&client).await);
    for mode in ["require", "verify-full"] {
        let err = refused(&format!(
            "{url} sslmode={mode} sslrootcert={}",
            t.ca.display()
        ))
        .await;
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("the server does not support TLS")
                && msg.contains(&format!("sslmode={mode} requires it")),
            "{msg}"
        );
    }
}
