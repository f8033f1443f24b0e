//! Bad input on stdin: refused whole, each error naming its line.

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn malformed_stdin_line_names_the_line_and_writes_nothing() {
    let db = migrated().await;
    let url = db.url();
    let h = append(url, &[], &[json!({"type": "Seed"})]);
    let good = json!({"type": "A", "tags": ["x"]}).to_string();

    let cases: Vec<(String, &str)> = vec![
        (format!("{good}\n{{\"type\":\"B\"\n{good}\n"), "line 2"),
        (format!("{good}\n{good}\nnot json\n"), "line 3"),
        // Blank lines are skipped but still counted.
        (format!("\n{good}\n\n[1,2]\n"), "line 4"),
        // Unknown field (a typo of "tags").
        (
            format!("{{\"type\":\"A\",\"tag\":[\"x\"]}}\n{good}\n"),
            "line 1",
        ),
        // No type.
        (format!("{good}\n{{\"data\":1}}\n"), "line 2"),
        // Metadata not an object; tags not strings; id not a UUID.
        ("{\"type\":\"A\",\"metadata\":[]}\n".to_string(), "line 1"),
        (
            format!("{good}\n{{\"type\":\"A\",\"tags\":[1]}}\n"),
            "line 2",
        ),
        (
            format!("{good}\n{{\"type\":\"A\",\"id\":\"nope\"}}\n"),
            "line 2",
        ),
    ];
    for (input, says) in &cases {
        let r = cli(Some(url), &["append"], Some(input));
        r.fails(1, says);
        assert_eq!(head(url), Some(h), "nothing written for {input:?}");
    }
    // Valid JSON, invalid event: rejected before anything is written.
    for (input, says) in [
        (format!("{good}\n{{\"type\":\"\"}}\n"), "type"),
        (
            format!("{good}\n{{\"type\":\"A\",\"tags\":[\"\"]}}\n"),
            "tag",
        ),
    ] {
        cli(Some(url), &["append"], Some(&input)).fails(1, says);
        assert_eq!(head(url), Some(h), "nothing written for {input:?}");
    }
    // NUL bytes, which PostgreSQL cannot store.
    for input in [
        format!("{good}\n{{\"type\":\"A\",\"tags\":[\"a\\u0000b\"]}}\n"),
        format!("{good}\n{{\"type\":\"A\",\"data\":{{\"s\":\"a\\u0000b\"}}}}\n"),
        format!("{good}\n{{\"type\":\"A\\u0000\"}}\n"),
    ] {
        cli(Some(url), &["append"], Some(&input)).fails(1, "NUL");
        assert_eq!(head(url), Some(h), "nothing written for {input:?}");
    }
    let id = Uuid::new_v4();
    let twice = jsonl(&[
        json!({"type": "A", "id": id}),
        json!({"type": "B", "id": id}),
    ]);
    cli(Some(url), &["append"], Some(&twice)).fails(1, &id.to_string());
    assert_eq!(head(url), Some(h));
    assert_eq!(read(url, &[]).len(), 1);

    // CRLF line ends and blank lines are fine.
    let r = cli(
        Some(url),
        &["append"],
        Some("{\"type\":\"A\"}\r\n\r\n{\"type\":\"B\"}\r\n"),
    );
    assert_eq!(r.ok().json()["position"], json!(h + 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_stdin_is_an_error() {
    let db = migrated().await;
    let url = db.url();
    for input in ["", "\n", "\n  \n\t\n"] {
        cli(Some(url), &["append"], Some(input)).fails(1, "no events");
        cli(Some(url), &["append", "--fail-if", "\"all\""], Some(input)).fails(1, "no events");
    }
    // stdin closed (not a pipe): same.
    cli(Some(url), &["append"], None).fails(1, "no events");
    assert_eq!(head(url), None, "nothing written");
}
