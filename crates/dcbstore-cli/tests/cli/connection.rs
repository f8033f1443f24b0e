//! Connection strings, libpq's variables, the password file and `.env`:
//! connecting as psql and sqlx-cli users expect, and the password never shown.

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn database_url_comes_from_the_flag_or_the_environment() {
    let db = TestDatabase::create().await.unwrap();
    let url = db.url();

    // DATABASE_URL on the child only.
    let mut cmd = command();
    cmd.env("DATABASE_URL", url).arg("migrate");
    run_cmd(cmd, None).ok();
    let mut cmd = command();
    cmd.env("DATABASE_URL", url).arg("append");
    let r = run_cmd(cmd, Some(&jsonl(&[json!({"type": "A"})])));
    assert_eq!(r.ok().json()["position"], json!(1));
    let mut cmd = command();
    cmd.env("DATABASE_URL", url).arg("head");
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");

    // The flag wins over the environment.
    let bad = format!(
        "host=127.0.0.1 port={} user=postgres password={SECRET} dbname=x connect_timeout=5",
        closed_port()
    );
    let mut cmd = command();
    cmd.env("DATABASE_URL", &bad)
        .args(["--database-url", url, "head"]);
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");
    // The flag may follow the subcommand.
    let r = cli(None, &["head", "--database-url", url], None);
    assert_eq!(r.ok().stdout, "1\n");
    // The environment alone, when wrong, fails (and hides the password).
    let mut cmd = command();
    cmd.env("DATABASE_URL", &bad).arg("head");
    run_cmd(cmd, None).fails(1, "cannot connect").hides(SECRET);

    // Neither: an error saying how to give one.
    for args in [&["head"][..], &["read"], &["status"], &["migrate"]] {
        cli(None, args, None).fails(1, "--database-url");
        let mut cmd = command();
        cmd.env("DATABASE_URL", "").args(args);
        run_cmd(cmd, None).fails(1, "DATABASE_URL");
    }
}

/// Every command that connects, with the input it needs.
fn connecting_commands() -> Vec<(Vec<&'static str>, Option<String>)> {
    let ev = Some(jsonl(&[json!({"type": "A"})]));
    vec![
        (vec!["migrate"], None),
        (vec!["status"], None),
        (vec!["status", "--json"], None),
        (vec!["head"], None),
        (vec!["read"], None),
        (vec!["read", "--type", "A", "--tag", "x"], None),
        (vec!["append"], ev.clone()),
        (vec!["append", "--fail-if", "\"all\"", "--after", "1"], ev),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_fails_clearly_without_showing_the_password() {
    let port = closed_port();
    let urls = [
        format!("host=127.0.0.1 port={port} user=postgres password={SECRET} dbname=app connect_timeout=5"),
        format!("host=127.0.0.1 port={port} user=postgres password='{SECRET}' dbname=app"),
        format!("postgresql://postgres:{SECRET}@127.0.0.1:{port}/app"),
        format!("postgres://postgres:{SECRET}@127.0.0.1:{port}/app?connect_timeout=5"),
    ];
    for url in &urls {
        for (args, input) in connecting_commands() {
            let r = cli(Some(url), &args, input.as_deref());
            r.fails(1, "cannot connect").hides(SECRET);
            assert!(
                r.stderr.contains(&format!("127.0.0.1:{port}")),
                "says where: {r:#?}"
            );
            // Through the environment too.
            let mut cmd = command();
            cmd.env("DATABASE_URL", url).args(&args);
            run_cmd(cmd, input.as_deref())
                .fails(1, "cannot connect")
                .hides(SECRET);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_on_the_real_server_fails_without_showing_it() {
    let db = migrated().await;
    let config = db.config().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("test server not on TCP: {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().expect("user");
    let dbname = config.get_dbname().expect("dbname");
    let urls = [
        format!("host={host} port={port} user={user} password={SECRET} dbname={dbname}"),
        format!("postgresql://{user}:{SECRET}@{host}:{port}/{dbname}"),
    ];
    // The throwaway cluster checks passwords (scram-sha-256); a server given
    // by DATABASE_URL may trust everyone.
    let checks_passwords = std::env::var("DATABASE_URL").is_err();
    for url in &urls {
        for (args, input) in connecting_commands() {
            let r = cli(Some(url), &args, input.as_deref());
            r.hides(SECRET);
            if checks_passwords {
                r.fails(1, "password authentication failed");
            }
        }
    }
    assert_eq!(head(db.url()), None, "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_connection_strings_and_help_never_show_the_password() {
    let port = closed_port();
    for url in [
        format!("host=127.0.0.1 port=notaport password={SECRET}"),
        format!("host=127.0.0.1 password='{SECRET}"),
        format!("host=127.0.0.1 password={SECRET} bogus_option=1"),
        format!("host=127.0.0.1 password={SECRET} sslmode=bogus"),
        format!("postgresql://postgres:{SECRET}@127.0.0.1:notaport/app"),
        format!("postgresql://postgres:{SECRET}@127.0.0.1:99999/app"),
        format!("postgresql://postgres:{SECRET}@127.0.0.1:{port}/app?bogus=1"),
    ] {
        for (args, input) in connecting_commands() {
            cli(Some(&url), &args, input.as_deref())
                .fails(1, "invalid")
                .hides(SECRET);
        }
    }

    // --help and usage errors, with the password in the flag or the environment.
    let url = format!("host=127.0.0.1 port={port} user=postgres password={SECRET}");
    let helps: [&[&str]; 6] = [
        &["--help"],
        &["help"],
        &["append", "--help"],
        &["read", "--help"],
        &["status", "--help"],
        &["--version"],
    ];
    for args in helps {
        let mut cmd = command();
        cmd.env("DATABASE_URL", &url).args(args);
        let r = run_cmd(cmd, None);
        r.ok().hides(SECRET);
        assert!(!r.stdout.is_empty(), "{r:#?}");
        let r = cli(Some(&url), args, None);
        r.ok().hides(SECRET);
    }
    let mut cmd = command();
    cmd.env("DATABASE_URL", &url).arg("--help");
    let r = run_cmd(cmd, None);
    assert!(r.stdout.contains("--database-url"), "{r:#?}");
    assert!(r.stdout.contains("DATABASE_URL"), "{r:#?}");

    let usage: [&[&str]; 6] = [
        &[],
        &["bogus"],
        &["read", "--limit", "many"],
        &["read", "--after", "1", "--from", "1"],
        &["append", "--after", "1"],
        &["head", "--database-url"],
    ];
    for args in usage {
        let mut cmd = command();
        cmd.env("DATABASE_URL", &url).args(args);
        let r = run_cmd(cmd, None);
        assert_eq!(r.code, 2, "{r:#?}");
        r.hides(SECRET);
        let r = cli(Some(&url), args, None);
        assert_eq!(r.code, 2, "{r:#?}");
        r.hides(SECRET);
    }
    // The flag given twice.
    let r = cli(Some(&url), &["--database-url", &url, "head"], None);
    assert_eq!(r.code, 2, "{r:#?}");
    r.hides(SECRET);
}

/// An empty `host=`, `user=` or `dbname=` value (an unset shell variable:
/// `"host=$PGHOST password=$PW"`) makes the parser take the next token,
/// `password=...`, as that value, and the connection error prints it.
#[tokio::test(flavor = "multi_thread")]
async fn empty_parameter_before_the_password_does_not_show_it() {
    let port = closed_port();
    for url in [
        format!("host= password={SECRET}"),
        format!("host=127.0.0.1 port={port} user= password={SECRET}"),
        format!("host=127.0.0.1 port={port} dbname= password={SECRET}"),
    ] {
        let r = cli(Some(&url), &["head"], None);
        assert_eq!(r.code, 1, "{r:#?}");
        r.hides(SECRET);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_settings_come_from_libpq_variables_the_password_file_and_dotenv() {
    let db = migrated().await;
    let config = db.config().unwrap();
    let (host, port) = host_port(&db);
    let user = config.get_user().unwrap().to_string();
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
    append(db.url(), &[], &[json!({"type": "A"})]);
    let dir = std::env::temp_dir().join(format!("dcbstore-cli-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let pg = |cmd: &mut Command| {
        cmd.env("PGHOST", &host)
            .env("PGPORT", port.to_string())
            .env("PGUSER", &user)
            .env("PGDATABASE", db.name())
            .env("PGSSLMODE", "disable");
    };

    // The PG* variables alone, as psql; the password never shown, even in debug logs.
    let mut cmd = command();
    pg(&mut cmd);
    cmd.env("PGPASSWORD", &password)
        .env("DCBSTORE_LOG", "debug")
        .env("PGAPPNAME", "dcbstore-test")
        .arg("head");
    let r = run_cmd(cmd, None);
    assert_eq!(r.ok().stdout, "1\n");
    r.hides(&password);
    // A wrong PGPASSWORD fails without showing it.
    let mut cmd = command();
    pg(&mut cmd);
    cmd.env("PGPASSWORD", SECRET).arg("head");
    run_cmd(cmd, None).fails(1, "password").hides(SECRET);
    // Bad variables are clear errors.
    let mut cmd = command();
    pg(&mut cmd);
    cmd.env("PGCONNECT_TIMEOUT", "soon").arg("head");
    run_cmd(cmd, None).fails(1, "PGCONNECT_TIMEOUT");
    let mut cmd = command();
    pg(&mut cmd);
    cmd.env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", dir.join("no-such-ca.pem"))
        .arg("head");
    run_cmd(cmd, None).fails(1, "no-such-ca.pem");

    // A URL without a password (the README's recipe): the password file.
    let pgpass = dir.join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "other:1:*:*:nope\n{host}:{port}:{}:{user}:{password}\n",
            db.name()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let bare = format!(
        "postgres://{user}@{host}:{port}/{}?sslmode=disable",
        db.name()
    );
    let mut cmd = command();
    cmd.env("PGPASSFILE", &pgpass)
        .env("DATABASE_URL", &bare)
        .arg("head");
    let r = run_cmd(cmd, None);
    assert_eq!(r.ok().stdout, "1\n");
    r.hides(&password);
    // ~/.pgpass when PGPASSFILE is unset.
    std::fs::copy(&pgpass, dir.join(".pgpass")).unwrap();
    let mut cmd = command();
    cmd.env("HOME", &dir)
        .args(["--database-url", &bare, "head"]);
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");
    // PGPASSWORD comes before the file; the string's password before both.
    let mut cmd = command();
    cmd.env("PGPASSFILE", &pgpass)
        .env("PGPASSWORD", SECRET)
        .args(["--database-url", &bare, "head"]);
    run_cmd(cmd, None).fails(1, "password").hides(SECRET);
    let mut cmd = command();
    cmd.env("PGPASSWORD", SECRET)
        .args(["--database-url", db.url(), "head"]);
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");
    // The string wins over a variable: its sslmode over PGSSLMODE.
    let mut cmd = command();
    cmd.env("PGSSLMODE", "verify-full")
        .env("PGPASSFILE", &pgpass)
        .args(["--database-url", &bare, "head"]);
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");

    // DATABASE_URL from ./.env, after the flag and the environment.
    let work = dir.join("project");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join(".env"),
        format!(
            "# settings\nOTHER=1\nDATABASE_URL=\"{}\"\n",
            db.url().replace('"', "\\\"")
        ),
    )
    .unwrap();
    let mut cmd = command();
    cmd.current_dir(&work).arg("head");
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");
    let bad = format!(
        "host=127.0.0.1 port={} user=postgres password={SECRET} dbname=x connect_timeout=5",
        closed_port()
    );
    let mut cmd = command();
    cmd.current_dir(&work).env("DATABASE_URL", &bad).arg("head");
    run_cmd(cmd, None).fails(1, "cannot connect").hides(SECRET);
    std::fs::write(work.join(".env"), format!("DATABASE_URL='{bad}'\n")).unwrap();
    let mut cmd = command();
    cmd.current_dir(&work)
        .args(["--database-url", db.url(), "head"]);
    assert_eq!(run_cmd(cmd, None).ok().stdout, "1\n");
    let mut cmd = command();
    cmd.current_dir(&work).arg("head");
    run_cmd(cmd, None).fails(1, "cannot connect").hides(SECRET);
    // A malformed .env is an error that never shows its lines.
    std::fs::write(
        work.join(".env"),
        format!("DATABASE_URL='host=h password={SECRET}\n"),
    )
    .unwrap();
    let mut cmd = command();
    cmd.current_dir(&work).arg("head");
    run_cmd(cmd, None)
        .fails(1, "cannot read .env")
        .hides(SECRET);

    // The library's Store::connect follows the same rules (this process's
    // environment is shared with other tests: only the password file, by
    // a URL that names it).
    let with_file = format!(
        "postgres://{user}@{host}:{port}/{}?sslmode=disable",
        db.name()
    );
    let resolved = dcbstore::connection::ConnectOptions::resolve_with(&with_file, &|k| {
        (k == "PGPASSFILE").then(|| pgpass.display().to_string())
    })
    .unwrap();
    let store = dcbstore::Store::builder(&with_file)
        .unwrap()
        .tls(resolved.tls.clone());
    drop(store);
    let store = dcbstore::StoreBuilder::new(resolved.config)
        .tls(resolved.tls)
        .build()
        .await
        .unwrap();
    use dcbstore::EventStore;
    assert_eq!(store.head().await.unwrap().map(|p| p.get()), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
