//! `head`, `append`, `read`, `export` and redactions: output shapes, windows, positions.

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn head_is_null_when_empty_then_the_last_position() {
    let db = migrated().await;
    let url = db.url();
    let r = cli(Some(url), &["head"], None);
    r.ok();
    assert_eq!(r.stdout, "null\n");
    assert!(r.stderr.is_empty(), "{r:#?}");
    assert!(read(url, &[]).is_empty(), "empty store reads nothing");

    let p1 = append(url, &[], &[json!({"type": "A"})]);
    assert_eq!(p1, 1, "positions start at 1");
    assert_eq!(head(url), Some(p1));
    let p2 = append(url, &[], &[json!({"type": "B"}), json!({"type": "C"})]);
    assert_eq!(p2, p1 + 2, "a batch takes consecutive positions");
    let r = cli(Some(url), &["head"], None);
    r.ok();
    assert_eq!(r.stdout, format!("{p2}\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn append_one_batch_and_read_exact_lines_in_key_order() {
    let db = migrated().await;
    let url = db.url();
    let id1 = Uuid::new_v4();
    let data1 = json!({"courseId": "c1", "capacity": 10, "name": "Ünïcode \"q\" \\ /", "nested": {"z": [1, 2.5, null, true]}});
    let meta1 = json!({"user": "u1", "n": [1, 2.5, null]});
    let events = [
        json!({"type": "CourseDefined", "data": data1, "tags": ["course:c1", "b", "course:c1"], "metadata": meta1, "id": id1}),
        json!({"type": "Bare"}),
        json!({"type": "X", "data": [1, "two", false], "tags": ["t"]}),
    ];
    let before = chrono::Utc::now();
    // One batch: the output is the last event's position.
    let r = cli(Some(url), &["append"], Some(&jsonl(&events)));
    r.ok();
    let ids: Vec<String> = r.json()["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|i| format!("{i}"))
        .collect();
    assert_eq!(ids[0], format!("\"{id1}\""), "ids in input order");
    assert_eq!(
        r.stdout,
        format!(
            "{{\"position\":3,\"first_position\":1,\"ids\":[{}],\"already_stored\":false}}\n",
            ids.join(",")
        ),
        "exact output"
    );
    assert!(r.stderr.is_empty(), "{r:#?}");
    let after = chrono::Utc::now();

    let raw = cli(Some(url), &["read"], None);
    raw.ok();
    for line in raw.stdout.lines() {
        assert_eq!(ordered_keys(line), READ_KEYS, "key order of {line}");
    }
    let lines = raw.json_lines();
    assert_eq!(lines.len(), 3, "{raw:#?}");
    for l in &lines {
        assert_eq!(keys(l).len(), READ_KEYS.len(), "no extra keys: {l}");
    }
    let pos: Vec<u64> = lines
        .iter()
        .map(|l| l["position"].as_u64().unwrap())
        .collect();
    assert_eq!(pos, [1, 2, 3], "consecutive, in the order given");

    assert_eq!(lines[0]["id"], json!(id1.to_string()));
    assert_eq!(lines[0]["type"], "CourseDefined");
    assert_eq!(lines[0]["data"], data1);
    assert_eq!(
        lines[0]["tags"],
        json!(["b", "course:c1"]),
        "duplicate tags removed"
    );
    assert_eq!(lines[0]["metadata"], meta1);

    assert_eq!(lines[1]["type"], "Bare");
    assert_eq!(lines[1]["data"], Value::Null, "data defaults to null");
    assert_eq!(lines[1]["tags"], json!([]), "no tags");
    assert_eq!(lines[1]["metadata"], json!({}), "metadata defaults to {{}}");
    let generated: Uuid = lines[1]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(generated.get_version_num(), 7, "generated ids are v7");

    assert_eq!(lines[2]["data"], json!([1, "two", false]));
    assert_eq!(lines[2]["tags"], json!(["t"]));
    let id3: Uuid = lines[2]["id"].as_str().unwrap().parse().unwrap();
    assert_ne!(id3, generated);

    let times: Vec<chrono::DateTime<chrono::Utc>> = lines
        .iter()
        .map(|l| {
            chrono::DateTime::parse_from_rfc3339(l["recorded_at"].as_str().unwrap())
                .expect("recorded_at is RFC 3339")
                .into()
        })
        .collect();
    for t in &times {
        let slack = chrono::Duration::seconds(5);
        assert!(
            *t >= before - slack && *t <= after + slack,
            "{t} not within the append ({before} .. {after})"
        );
    }
    assert!(
        times.iter().all(|t| *t == times[0]),
        "one batch, one transaction time: {times:?}"
    );
    assert_eq!(head(url), Some(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn re_append_of_the_same_ids_is_idempotent() {
    let db = migrated().await;
    let url = db.url();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(url, &[], &[json!({"type": "Before"})]);
    let batch = [
        json!({"type": "A", "data": {"n": 1}, "tags": ["x", "y"], "metadata": {"m": 1}, "id": a}),
        json!({"type": "B", "tags": ["x"], "id": b}),
    ];
    let p = append(url, &[], &batch);
    assert_eq!(head(url), Some(p));

    // The same batch again: same position, nothing new.
    let r = cli(Some(url), &["append"], Some(&jsonl(&batch)));
    r.ok();
    assert_eq!(
        r.json(),
        json!({"position": p, "first_position": p - 1, "ids": [a, b], "already_stored": true})
    );
    assert_eq!(head(url), Some(p), "nothing new written");
    assert_eq!(read(url, &[]).len(), 3);
    // Tags given in another order or repeated are the same set.
    let reordered = [
        json!({"type": "A", "data": {"n": 1}, "tags": ["y", "x", "x"], "metadata": {"m": 1}, "id": a}),
        json!({"type": "B", "tags": ["x"], "id": b}),
    ];
    assert_eq!(append(url, &[], &reordered), p);
    // A retry of part of the batch returns that part's last position.
    assert_eq!(append(url, &[], &batch[..1]), p - 1);
    assert_eq!(head(url), Some(p));

    // The same id with other content is an error naming the id.
    let changed =
        [json!({"type": "A", "data": {"n": 2}, "tags": ["x", "y"], "metadata": {"m": 1}, "id": a})];
    cli(Some(url), &["append"], Some(&jsonl(&changed))).fails(1, &a.to_string());
    assert_eq!(head(url), Some(p), "nothing written");

    // A batch mixing a stored id with a new one is an error naming the
    // stored id (ids are unique in the store), and writes nothing.
    let c = Uuid::new_v4();
    let mixed = [
        json!({"type": "B", "tags": ["x"], "id": b}),
        json!({"type": "New", "id": c}),
    ];
    cli(Some(url), &["append"], Some(&jsonl(&mixed))).fails(1, &b.to_string());
    assert_eq!(head(url), Some(p), "nothing written");
    assert!(read(url, &["--type", "New"]).is_empty());

    // Without ids, each run generates new ones: two appends, two events.
    let no_ids = [json!({"type": "C"})];
    let q1 = append(url, &[], &no_ids);
    let q2 = append(url, &[], &no_ids);
    assert!(q2 > q1 && q1 > p);
    assert_eq!(head(url), Some(q2));
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_of_a_conditional_append_is_idempotent_not_a_conflict() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "Other", "tags": ["course:c8"]})]);
    let id = Uuid::new_v4();
    let batch = [json!({"type": "CourseDefined", "tags": ["course:c9"], "id": id})];
    let guard = ["--fail-if", r#"[{"tags":["course:c9"]}]"#];
    let p = append(url, &guard, &batch);
    // The client lost the answer and retries the same command: the stored
    // events now match its own guard, but it is the same append.
    let r = cli(
        Some(url),
        &["append", guard[0], guard[1]],
        Some(&jsonl(&batch)),
    );
    assert_eq!(r.code, 0, "idempotent retry, not a conflict: {r:#?}");
    assert_eq!(
        r.json(),
        json!({"position": p, "first_position": p, "ids": [id], "already_stored": true})
    );
    assert_eq!(head(url), Some(p));
}

/// 1: A[x]  2: B[x,y]  3: C[y]  4: A[x,y,z]  5: B[]  6: C[z], one append each.
/// Returns the six positions.
fn seed(url: &str) -> Vec<u64> {
    [
        ("A", &["x"][..]),
        ("B", &["x", "y"]),
        ("C", &["y"]),
        ("A", &["x", "y", "z"]),
        ("B", &[]),
        ("C", &["z"]),
    ]
    .iter()
    .map(|(t, tags)| append(url, &[], &[json!({"type": t, "tags": tags})]))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn read_windows_after_from_to_backwards_limit() {
    let db = migrated().await;
    let url = db.url();
    let ps = seed(url);
    assert!(ps.windows(2).all(|w| w[0] < w[1]), "{ps:?}");
    let s = |i: usize| ps[i].to_string();
    let pick = |idx: &[usize]| idx.iter().map(|&i| ps[i]).collect::<Vec<u64>>();

    assert_eq!(positions(url, &[]), ps);
    assert_eq!(positions(url, &["--after", &s(1)]), pick(&[2, 3, 4, 5]));
    assert_eq!(positions(url, &["--from", &s(1)]), pick(&[1, 2, 3, 4, 5]));
    assert_eq!(positions(url, &["--to", &s(3)]), pick(&[0, 1, 2, 3]));
    assert_eq!(
        positions(url, &["--from", &s(1), "--to", &s(3)]),
        pick(&[1, 2, 3])
    );
    assert_eq!(
        positions(url, &["--after", &s(1), "--to", &s(3)]),
        pick(&[2, 3])
    );
    assert_eq!(positions(url, &["--after", &s(5)]), pick(&[]));
    assert_eq!(positions(url, &["--from", &s(5)]), pick(&[5]));
    // Positions start at 1: `--to 0` is a usage error (only --after takes 0).
    assert_eq!(cli(Some(url), &["read", "--to", "0"], None).code, 2);

    assert_eq!(positions(url, &["--backwards"]), pick(&[5, 4, 3, 2, 1, 0]));
    // The window bounds positions the same way in both directions.
    assert_eq!(
        positions(url, &["--backwards", "--after", &s(1), "--to", &s(4)]),
        pick(&[4, 3, 2])
    );
    assert_eq!(
        positions(url, &["--backwards", "--from", &s(1), "--to", &s(4)]),
        pick(&[4, 3, 2, 1])
    );
    assert_eq!(
        positions(url, &["--backwards", "--to", &s(3)]),
        pick(&[3, 2, 1, 0])
    );

    assert_eq!(positions(url, &["--limit", "2"]), pick(&[0, 1]));
    assert_eq!(
        positions(url, &["--backwards", "--limit", "2"]),
        pick(&[5, 4])
    );
    assert_eq!(
        positions(url, &["--after", &s(0), "--to", &s(4), "--limit", "2"]),
        pick(&[1, 2])
    );
    assert_eq!(
        positions(
            url,
            &[
                "--backwards",
                "--after",
                &s(0),
                "--to",
                &s(4),
                "--limit",
                "2"
            ]
        ),
        pick(&[4, 3])
    );
    assert_eq!(positions(url, &["--limit", "0"]), pick(&[]));
    assert_eq!(positions(url, &["--limit", "100"]), ps);
    // Windows combine with filters.
    assert_eq!(
        positions(url, &["--tag", "x", "--backwards", "--limit", "2"]),
        pick(&[3, 1])
    );

    // --after and --from are two forms of one bound.
    cli(Some(url), &["read", "--after", "1", "--from", "2"], None).fails(2, "--from");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_type_and_tag_filters_or_types_and_tags() {
    let db = migrated().await;
    let url = db.url();
    let ps = seed(url);
    let pick = |idx: &[usize]| idx.iter().map(|&i| ps[i]).collect::<Vec<u64>>();

    assert_eq!(positions(url, &["--type", "A"]), pick(&[0, 3]));
    assert_eq!(
        positions(url, &["--type", "A", "--type", "B"]),
        pick(&[0, 1, 3, 4]),
        "types are OR'd"
    );
    assert_eq!(positions(url, &["--tag", "x"]), pick(&[0, 1, 3]));
    assert_eq!(
        positions(url, &["--tag", "x", "--tag", "y"]),
        pick(&[1, 3]),
        "tags are AND'd"
    );
    assert_eq!(
        positions(url, &["--tag", "x", "--tag", "y", "--tag", "z"]),
        pick(&[3])
    );
    assert_eq!(
        positions(url, &["--type", "A", "--tag", "y"]),
        pick(&[3]),
        "type AND tags"
    );
    assert_eq!(
        positions(url, &["--type", "B", "--type", "C", "--tag", "y"]),
        pick(&[1, 2])
    );
    assert_eq!(
        positions(url, &["--tag", "x", "--tag", "x"]),
        pick(&[0, 1, 3]),
        "a repeated tag is harmless"
    );
    assert_eq!(positions(url, &["--type", "Nope"]), pick(&[]));
    assert_eq!(positions(url, &["--tag", "nope"]), pick(&[]));
    let types: Vec<Value> = read(url, &["--type", "C"])
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(types, [json!("C"), json!("C")]);

    // --query: items OR'd.
    assert_eq!(
        positions(url, &["--query", r#"[{"types":["C"]},{"tags":["x","y"]}]"#]),
        pick(&[1, 2, 3, 5])
    );
    assert_eq!(
        positions(url, &["--query", r#"[{"types":["A","B"],"tags":["y"]}]"#]),
        pick(&[1, 3])
    );
    assert_eq!(positions(url, &["--query", r#""all""#]), ps);
    assert_eq!(
        positions(url, &["--query", r#"[{"tags":["z"]}]"#, "--backwards"]),
        pick(&[5, 3])
    );
    // --query excludes --type/--tag.
    cli(
        Some(url),
        &["read", "--query", r#""all""#, "--type", "A"],
        None,
    )
    .fails(2, "--type");
    cli(
        Some(url),
        &["read", "--query", r#""all""#, "--tag", "x"],
        None,
    )
    .fails(2, "--tag");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_query_or_condition_is_a_usage_error() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "A", "tags": ["x"]})]);
    let ev = jsonl(&[json!({"type": "A", "tags": ["x"]})]);

    for (q, says) in [
        ("[{}]", "all"),
        ("[]", "all"),
        ("not json", "query"),
        (r#"{"types":["A"]}"#, "all"),
        (r#""everything""#, "all"),
        (r#"[{"type":["A"]}]"#, "type"),
        (r#"[{"types":[""]}]"#, "empty"),
        (r#"[{"tags":[""]}]"#, "empty"),
    ] {
        cli(Some(url), &["read", "--query", q], None).fails(2, says);
        cli(Some(url), &["append", "--fail-if", q], Some(&ev)).fails(2, says);
    }
    for c in [
        "[]",
        "not json",
        r#"[{"query":[{}]}]"#,
        r#"[{"after":1}]"#,
        r#"[{"query":"all","afterr":1}]"#,
        r#"{"query":"all"}"#,
        r#"[{"query":"all","after":-1}]"#,
    ] {
        let r = cli(Some(url), &["append", "--condition", c], Some(&ev));
        r.fails(2, "--condition");
    }
    assert_eq!(head(url), Some(1), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn append_prints_first_and_last_position_ids_in_input_order_and_already_stored() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "Before"})]);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let input = format!(
        "{}\n\n{}\n{}\n",
        json!({"type": "A", "id": b}),
        json!({"type": "B"}),
        json!({"type": "C", "id": a})
    );
    let out = cli(Some(url), &["append"], Some(&input)).ok().json();
    assert_eq!(out["position"], 4, "{out}");
    assert_eq!(out["first_position"], 2, "{out}");
    assert_eq!(out["already_stored"], false, "{out}");
    let ids = out["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], json!(b));
    assert_eq!(ids[2], json!(a));
    let generated = ids[1].as_str().unwrap();
    assert_eq!(read(url, &["--type", "B"])[0]["id"], json!(generated));

    // The documented retry from the CLI: resend the same ids.
    let retry = format!(
        "{}\n{}\n{}\n",
        json!({"type": "A", "id": b}),
        json!({"type": "B", "id": generated}),
        json!({"type": "C", "id": a})
    );
    let again = cli(Some(url), &["append"], Some(&retry)).ok().json();
    assert_eq!(
        again,
        json!({"position": 4, "first_position": 2, "ids": [b, generated, a], "already_stored": true})
    );
    assert_eq!(head(url), Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn export_keeps_recorded_at_and_refuses_to_overwrite_without_force() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "A"}), json!({"type": "B"})]);
    let dir = std::env::temp_dir().join(format!("dcbstore-export-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("backup.jsonl");
    let f = file.to_str().unwrap();
    cli(Some(url), &["export", "--output", f], None).ok();
    let exported = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines.iter().all(|l| l["recorded_at"].is_string()),
        "{exported}"
    );
    // An existing file is refused (usage), kept as it was; --force overwrites.
    std::fs::write(&file, "precious\n").unwrap();
    cli(Some(url), &["export", "--output", f], None).fails(2, "--force");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious\n");
    assert!(!dir.join("backup.jsonl.partial").exists());
    cli(Some(url), &["export", "--output", f, "--force"], None).ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), exported);
    assert_eq!(
        cli(Some(url), &["export", "--force"], None).code,
        2,
        "--force needs --output"
    );

    // Imported into an empty store, the export is the same log: positions,
    // ids, content and recorded_at; exported again, the same bytes.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let target = migrated().await;
    cli(Some(target.url()), &["import", "--input", f], None).ok();
    let again = cli(Some(target.url()), &["export"], None);
    assert_eq!(again.ok().stdout, exported, "the same log");
    // A time that would go back along positions is refused, naming the
    // line; a line without one gets the import time.
    let later = lines[1]["recorded_at"].as_str().unwrap().to_string();
    let old = json!({"id": Uuid::new_v4(), "type": "Old", "recorded_at": "2001-01-01T00:00:00Z"});
    let none = json!({"id": Uuid::new_v4(), "type": "NoTime"});
    cli(Some(target.url()), &["import"], Some(&jsonl(&[old]))).fails(1, "line 1: recorded_at");
    cli(Some(target.url()), &["import"], Some(&jsonl(&[none]))).ok();
    let tail = cli(Some(target.url()), &["read", "--from", "3"], None)
        .ok()
        .json_lines();
    assert_eq!(tail.len(), 1, "{tail:?}");
    assert!(
        tail[0]["recorded_at"].as_str().unwrap() > later.as_str(),
        "the import time: {tail:?}"
    );
    cli(
        Some(target.url()),
        &["import"],
        Some(&jsonl(&[
            json!({"id": Uuid::new_v4(), "type": "X", "recorded_at": "soon"}),
        ])),
    )
    .fails(1, "line 1");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_marks_redacted_events_and_redactions_lists_the_audit_rows() {
    let db = migrated().await;
    let url = db.url();
    append(
        url,
        &[],
        &[
            json!({"type": "A", "data": {"email": "x@y"}}),
            json!({"type": "B"}),
        ],
    );
    let before = chrono::Utc::now();
    cli(
        Some(url),
        &[
            "redact",
            "--position",
            "1",
            "--data",
            "null",
            "--reason",
            "erasure request",
        ],
        None,
    )
    .ok();
    let lines = cli(Some(url), &["read"], None).ok().json_lines();
    assert_eq!(lines[0]["data"], Value::Null);
    assert_eq!(
        lines[0]["redacted"]["reason"], "erasure request",
        "{}",
        lines[0]
    );
    let at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(lines[0]["redacted"]["at"].clone()).unwrap();
    assert!(at >= before - chrono::Duration::seconds(5), "{at}");
    assert!(
        lines[1].get("redacted").is_none(),
        "only redacted events are marked"
    );
    assert_eq!(
        ordered_keys(cli(Some(url), &["read", "--from", "2"], None).stdout.trim()),
        READ_KEYS
    );
    // A window that leaves it out does not mark it; one with it does.
    assert!(read(url, &["--after", "1"])
        .iter()
        .all(|l| l.get("redacted").is_none()));
    assert!(cli(Some(url), &["read", "--to", "1"], None)
        .ok()
        .json_lines()[0]["redacted"]
        .is_object());

    cli(
        Some(url),
        &[
            "redact",
            "--position",
            "1",
            "--data",
            "{}",
            "--reason",
            "second",
        ],
        None,
    )
    .ok();
    let rows = cli(Some(url), &["redactions"], None).ok().json_lines();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["position"], 1);
    assert_eq!(rows[0]["reason"], "erasure request");
    assert_eq!(rows[1]["reason"], "second");
    for key in [
        "redaction",
        "redacted_at",
        "redacted_by",
        "erased_sha256",
        "replacement_sha256",
    ] {
        assert!(rows[0].get(key).is_some(), "{key}: {rows:?}");
    }
    assert_eq!(
        cli(Some(url), &["read", "--to", "1"], None)
            .ok()
            .json_lines()[0]["redacted"]["reason"],
        "second",
        "the latest"
    );
    assert_eq!(
        cli(Some(url), &["redactions", "--position", "2"], None)
            .ok()
            .stdout,
        ""
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn positions_are_1_to_i64_max_and_after_also_0_in_every_command() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "A"}), json!({"type": "B"})]);
    let over = "9223372036854775808";
    for args in [
        &["read", "--after", "-1"][..],
        &["read", "--after", over],
        &["read", "--from", "0"],
        &["read", "--from", over],
        &["read", "--to", "0"],
        &["read", "--to", "-3"],
        &["read", "--to", over],
        &["export", "--after", "-1"],
        &["export", "--after", over],
        &[
            "redact",
            "--position",
            "0",
            "--data",
            "null",
            "--reason",
            "r",
        ],
        &[
            "redact",
            "--position",
            over,
            "--data",
            "null",
            "--reason",
            "r",
        ],
        &[
            "redact",
            "--position",
            "-1",
            "--data",
            "null",
            "--reason",
            "r",
        ],
        &["redactions", "--position", "0"],
        &["append", "--fail-if", "all", "--after", "-1"],
        &["append", "--fail-if", "all", "--after", over],
        &["append", "--condition", r#"[{"query":"all","after":-1}]"#],
        &[
            "append",
            "--condition",
            r#"[{"query":"all","after":9223372036854775808}]"#,
        ],
    ] {
        let r = cli(Some(url), args, Some(&jsonl(&[json!({"type": "X"})])));
        assert_eq!(r.code, 2, "usage error for {args:?}: {r:#?}");
        assert!(r.stdout.is_empty(), "{r:#?}");
    }
    assert_eq!(head(url), Some(2), "nothing appended");
    let max = "9223372036854775807";
    assert_eq!(positions(url, &["--after", "0"]), [1, 2]);
    assert_eq!(positions(url, &["--from", "1", "--to", max]), [1, 2]);
    assert!(positions(url, &["--after", "2"]).is_empty(), "at the head");
    assert!(
        positions(url, &["--after", "1000"]).is_empty(),
        "beyond the head: nothing"
    );
    assert!(positions(url, &["--after", max]).is_empty());
    let r = cli(Some(url), &["export", "--after", "0"], None);
    assert_eq!(r.ok().stdout.lines().count(), 2);
    append(
        url,
        &["--fail-if", "all", "--after", max],
        &[json!({"type": "C"})],
    );
    let r = cli(
        Some(url),
        &["append", "--fail-if", "all", "--after", "0"],
        Some(&jsonl(&[json!({"type": "D"})])),
    );
    assert_eq!(r.code, 3, "after 0: every event conflicts: {r:#?}");
}
