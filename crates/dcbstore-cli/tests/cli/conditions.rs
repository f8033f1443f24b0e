//! Conditional appends from the command line: guards, `all`, conflicts (exit 3).

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn fail_if_conflict_prints_the_events_and_exits_3() {
    let db = migrated().await;
    let url = db.url();
    let (i1, i2) = (Uuid::new_v4(), Uuid::new_v4());
    let p1 = append(
        url,
        &[],
        &[
            json!({"type": "CourseDefined", "data": {"cap": 10}, "tags": ["course:c1"], "metadata": {"by": "u"}, "id": i1}),
        ],
    );
    append(
        url,
        &[],
        &[json!({"type": "Unrelated", "tags": ["course:c2"]})],
    );
    let p2 = append(
        url,
        &[],
        &[json!({"type": "CourseCapacityChanged", "tags": ["course:c1"], "id": i2})],
    );
    let h = head(url).unwrap();
    let c1 = r#"[{"tags":["course:c1"]}]"#;
    let new = jsonl(&[json!({"type": "StudentSubscribed", "tags": ["course:c1", "student:s1"]})]);

    // No --after: any matching event conflicts.
    let r = cli(Some(url), &["append", "--fail-if", c1], Some(&new));
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(
        r.stderr.is_empty(),
        "a conflict is an answer on stdout: {r:#?}"
    );
    let line = r.stdout.lines().next().unwrap();
    let o = ordered(line);
    assert_eq!(o.keys(), ["conflict"]);
    assert_eq!(o.get("conflict").keys(), ["position", "events", "head"]);
    for e in o.get("conflict").get("events").items() {
        assert_eq!(e.keys(), READ_KEYS, "conflict events print like read lines");
    }
    let out = r.json();
    assert_eq!(out["conflict"]["position"], json!(p2));
    assert_eq!(
        out["conflict"]["head"],
        json!(h),
        "checked against the head"
    );
    let evs = out["conflict"]["events"].as_array().unwrap();
    let stored = read(url, &["--tag", "course:c1"]);
    assert_eq!(
        evs, &stored,
        "the conflicting events, in position order, as read prints them"
    );
    assert_eq!(evs[0]["id"], json!(i1.to_string()));
    assert_eq!(evs[0]["position"], json!(p1));
    assert_eq!(evs[1]["id"], json!(i2.to_string()));
    assert_eq!(head(url), Some(h), "nothing written");

    // --after below the latest match: only later matches are reported.
    let r = cli(
        Some(url),
        &["append", "--fail-if", c1, "--after", &p1.to_string()],
        Some(&new),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    let out = r.json();
    assert_eq!(out["conflict"]["position"], json!(p2));
    let evs = out["conflict"]["events"].as_array().unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["id"], json!(i2.to_string()));
    assert_eq!(head(url), Some(h), "nothing written");

    // --after at the latest match: success.
    let p = append(
        url,
        &["--fail-if", c1, "--after", &p2.to_string()],
        &[json!({"type": "StudentSubscribed", "tags": ["course:c1", "student:s1"]})],
    );
    assert_eq!(p, h + 1);
    // A query nothing matches never conflicts.
    let p = append(
        url,
        &["--fail-if", r#"[{"types":["Nope"]}]"#],
        &[json!({"type": "A"})],
    );
    assert_eq!(p, h + 2);
    // "all" after the head: success; "all" without --after: conflict.
    let p = append(
        url,
        &["--fail-if", r#""all""#, "--after", &p.to_string()],
        &[json!({"type": "A"})],
    );
    assert_eq!(p, h + 3);
    let r = cli(
        Some(url),
        &["append", "--fail-if", r#""all""#],
        Some(&jsonl(&[json!({"type": "A"})])),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    assert_eq!(r.json()["conflict"]["position"], json!(p));
    assert_eq!(head(url), Some(p));

    // --after needs --fail-if; --condition excludes both.
    cli(Some(url), &["append", "--after", "3"], Some(&new)).fails(2, "--fail-if");
    cli(
        Some(url),
        &[
            "append",
            "--fail-if",
            c1,
            "--condition",
            r#"[{"query":"all"}]"#,
        ],
        Some(&new),
    )
    .fails(2, "--condition");
    assert_eq!(head(url), Some(p), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn condition_with_several_guards() {
    let db = migrated().await;
    let url = db.url();
    let c = append(
        url,
        &[],
        &[json!({"type": "CourseDefined", "tags": ["course:c1"]})],
    );
    let s = append(
        url,
        &[],
        &[json!({"type": "StudentRegistered", "tags": ["student:s1"]})],
    );
    let other = append(
        url,
        &[],
        &[json!({"type": "CourseDefined", "tags": ["course:c2"]})],
    );
    let guards = |course_after: u64, student_after: u64| {
        format!(
            r#"[{{"query":[{{"tags":["course:c1"]}}],"after":{course_after}}},{{"query":[{{"tags":["student:s1"]}}],"after":{student_after}}}]"#
        )
    };
    let ev = [json!({"type": "StudentSubscribed", "tags": ["course:c1", "student:s1"]})];

    // Second guard violated (student event after 1): conflict, its events only.
    let r = cli(
        Some(url),
        &["append", "--condition", &guards(c, c)],
        Some(&jsonl(&ev)),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    let out = r.json();
    assert_eq!(keys(&out), ["conflict"]);
    assert_eq!(out["conflict"]["position"], json!(s));
    let ps: Vec<&Value> = out["conflict"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["position"])
        .collect();
    assert_eq!(ps, [&json!(s)]);
    assert_eq!(head(url), Some(other), "nothing written");

    // Both guards violated: the events of both, in position order.
    let r = cli(
        Some(url),
        &[
            "append",
            "--condition",
            r#"[{"query":[{"tags":["student:s1"]}]},{"query":[{"tags":["course:c1"]}]}]"#,
        ],
        Some(&jsonl(&ev)),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    let out = r.json();
    assert_eq!(out["conflict"]["position"], json!(s));
    let ps: Vec<u64> = out["conflict"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(ps, [c, s]);
    assert_eq!(head(url), Some(other), "nothing written");

    // Each guard at its own position, neither violated: success (even though
    // the course guard alone at `c` would miss the student event at `s`).
    let p = append(url, &["--condition", &guards(c, s)], &ev);
    assert_eq!(p, other + 1);
    // A guard without "after" counts every position.
    let r = cli(
        Some(url),
        &[
            "append",
            "--condition",
            &format!(
                r#"[{{"query":[{{"types":["Nope"]}}],"after":{p}}},{{"query":[{{"tags":["course:c2"]}}]}}]"#
            ),
        ],
        Some(&jsonl(&ev)),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    assert_eq!(r.json()["conflict"]["position"], json!(other));
    // The batch is never checked against its own events.
    let p2 = append(
        url,
        &[
            "--condition",
            &format!(r#"[{{"query":[{{"tags":["fresh"]}}],"after":{p}}}]"#),
        ],
        &[
            json!({"type": "A", "tags": ["fresh"]}),
            json!({"type": "B", "tags": ["fresh"]}),
        ],
    );
    assert_eq!(p2, p + 2);
    assert_eq!(head(url), Some(p2));
}

#[tokio::test(flavor = "multi_thread")]
async fn bare_all_works_for_query_and_fail_if_and_errors_name_cli_syntax() {
    let db = migrated().await;
    let url = db.url();
    append(url, &[], &[json!({"type": "A"}), json!({"type": "B"})]);
    assert_eq!(positions(url, &["--query", "all"]), [1, 2]);
    assert_eq!(
        positions(url, &["--query", "\"all\""]),
        [1, 2],
        "quoted JSON still works"
    );
    let r = cli(
        Some(url),
        &["append", "--fail-if", "all", "--after", "1"],
        Some(&jsonl(&[json!({"type": "C"})])),
    );
    assert_eq!(r.code, 3, "an event after 1 matches all: {r:#?}");
    append(
        url,
        &["--fail-if", "all", "--after", "2"],
        &[json!({"type": "C"})],
    );
    for args in [
        &["read", "--query", "[]"][..],
        &["read", "--query", "[{}]"],
        &["append", "--fail-if", "[]"],
        &["append", "--condition", r#"[{"query":[]}]"#],
    ] {
        let r = cli(Some(url), args, Some(""));
        assert_eq!(r.code, 2, "{args:?}: {r:#?}");
        assert!(!r.stderr.contains("Query::"), "no Rust names: {r:#?}");
        assert!(r.stderr.contains("all"), "{r:#?}");
    }
    let r = cli(Some(url), &["read", "--query", "[]"], None);
    assert!(r.stderr.contains("--query all"), "{r:#?}");
}
