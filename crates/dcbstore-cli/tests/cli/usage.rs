//! Usage errors (exit 2) and help.

use crate::*;

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    for args in [
        &[][..],
        &["bogus"],
        &["head", "extra"],
        &["status", "--yaml"],
        &["read", "--limit", "-1"],
        &["read", "--limit", "many"],
        &["read", "--after", "x"],
        &["read", "--to"],
        &["read", "--query"],
        &["read", "--after", "1", "--from", "2"],
        &["read", "--query", "\"all\"", "--type", "A"],
        &["append", "--after", "1"],
        &[
            "append",
            "--fail-if",
            "\"all\"",
            "--condition",
            "[{\"query\":\"all\"}]",
        ],
        &["append", "--fail-if", "[{}]"],
        &["append", "--condition", "[]"],
        &[
            "append",
            "--fail-if",
            "\"all\"",
            "--after",
            "9223372036854775808",
        ],
    ] {
        let r = cli(Some("host=127.0.0.1 port=1"), args, Some(""));
        assert_eq!(r.code, 2, "usage error for {args:?}: {r:#?}");
        assert!(r.stdout.is_empty(), "{r:#?}");
        assert!(!r.stderr.is_empty(), "{r:#?}");
    }
    for args in [&["--help"][..], &["read", "--help"], &["--version"]] {
        let r = cli(None, args, None);
        r.ok();
        assert!(!r.stdout.is_empty(), "{r:#?}");
    }
    let r = cli(None, &["--help"], None);
    for sub in ["migrate", "status", "head", "append", "read"] {
        assert!(r.stdout.contains(sub), "--help lists {sub}: {r:#?}");
    }
    let r = cli(None, &["read", "--help"], None);
    for flag in [
        "--query",
        "--type",
        "--tag",
        "--after",
        "--from",
        "--to",
        "--backwards",
        "--limit",
    ] {
        assert!(r.stdout.contains(flag), "read --help lists {flag}: {r:#?}");
    }
    let r = cli(None, &["append", "--help"], None);
    for flag in ["--fail-if", "--after", "--condition"] {
        assert!(
            r.stdout.contains(flag),
            "append --help lists {flag}: {r:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn help_shows_global_options_once_and_the_line_format_and_messages_count_lines() {
    let r = cli(None, &["append", "--help"], None);
    r.ok();
    assert_eq!(
        r.stdout.matches("Global options").count(),
        2,
        "one heading, one for limits: {r:#?}"
    );
    assert_eq!(r.stdout.matches("--database-url <").count(), 1, "{r:#?}");
    let options =
        &r.stdout[r.stdout.find("Options:").unwrap()..r.stdout.find("Global options").unwrap()];
    assert!(
        options.contains("--fail-if")
            && !options.contains("--database-url")
            && !options.contains("--max-"),
        "{r:#?}"
    );
    assert!(
        r.stdout.contains(r#"{"type": "T", "data": JSON"#),
        "line format: {r:#?}"
    );
    assert!(
        r.stdout.contains("Example:") && r.stdout.contains("| dcbstore append"),
        "{r:#?}"
    );
    let r = cli(None, &["--help"], None);
    assert_eq!(r.stdout.matches("--database-url <").count(), 1, "{r:#?}");

    let db = migrated().await;
    let url = db.url();
    // A JSON array: what it is, and the remedy.
    cli(
        Some(url),
        &["append"],
        Some("[{\"type\":\"A\"},{\"type\":\"B\"}]\n"),
    )
    .fails(1, "expected one JSON object per line, got an array")
    .fails(1, "jq -c '.[]'");
    cli(Some(url), &["append"], Some("\n[\n  {\"type\":\"A\"}\n]\n")).fails(1, "line 2");
    // Blank lines count, in the tool's checks and in the store's.
    cli(
        Some(url),
        &["append"],
        Some("\n{\"type\":\"A\"}\n\n{\"type\":\n"),
    )
    .fails(1, "line 4");
    cli(
        Some(url),
        &["append"],
        Some("\n{\"type\":\"A\"}\n\n{\"type\":\"B\",\"tags\":[\"\"]}\n"),
    )
    .fails(1, "line 4");
    cli(
        Some(url),
        &["--max-tags-per-event", "1", "append"],
        Some("\n\n{\"type\":\"A\"}\n\n\n{\"type\":\"B\",\"tags\":[\"a\",\"b\"]}\n"),
    )
    .fails(1, "line 6");
    assert_eq!(head(url), None);

    // --log-format json: the final error is a JSON record too.
    let bad = format!(
        "host=127.0.0.1 port={} user=u password={SECRET} dbname=x",
        closed_port()
    );
    let r = cli(Some(&bad), &["--log-format", "json", "head"], None);
    assert_eq!(r.code, 1, "{r:#?}");
    r.hides(SECRET);
    let last: Value =
        serde_json::from_str(r.stderr.lines().last().unwrap()).expect("a JSON record");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert_eq!(last["fields"]["exit_status"], 1, "{last}");
    assert!(
        last["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{last}"
    );
    let r = cli(
        Some(url),
        &["--log-format", "json", "read", "--from", "0"],
        None,
    );
    assert_eq!(r.code, 2, "{r:#?}");
    let last: Value = serde_json::from_str(r.stderr.trim()).expect("a JSON usage error");
    assert_eq!(last["fields"]["exit_status"], 2, "{last}");
}
