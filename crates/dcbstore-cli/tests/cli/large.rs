//! Large logs: reads stream in bounded memory.

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn large_reads_page_through_and_conflicts_are_capped_and_closed_pipes_are_fine() {
    let db = migrated().await;
    let url = db.url();
    let n: u64 = 2500;
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": if i % 2 == 0 { "Even" } else { "Odd" }, "data": {"i": i, "pad": "x".repeat(100)}, "tags": [format!("k{}", i % 3)]}))
        .collect();
    let last = append(url, &[], &events);
    assert_eq!(last, n);

    // More than one page (1000), in both directions, with and without limits.
    let all = positions(url, &[]);
    assert_eq!(all, (1..=n).collect::<Vec<_>>());
    let back = positions(url, &["--backwards", "--limit", "1500"]);
    assert_eq!(back, (n - 1499..=n).rev().collect::<Vec<_>>());
    let window = positions(url, &["--after", "700", "--to", "2300", "--limit", "1200"]);
    assert_eq!(window, (701..=1900).collect::<Vec<_>>());
    let odd = read(url, &["--type", "Odd", "--tag", "k0"]);
    let expect: Vec<u64> = (1..=n)
        .filter(|p| (p - 1) % 2 == 1 && (p - 1) % 3 == 0)
        .collect();
    assert_eq!(
        odd.iter()
            .map(|e| e["position"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        expect
    );
    assert_eq!(odd[0]["data"]["i"], json!(expect[0] - 1));

    // A conflict reports the latest position and at most 100 events (the earliest).
    let r = cli(
        Some(url),
        &["append", "--fail-if", "\"all\""],
        Some(&jsonl(&[json!({"type": "A"})])),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out["conflict"]["position"], json!(n));
    let ps: Vec<u64> = out["conflict"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(ps, (1..=100).collect::<Vec<_>>());
    assert_eq!(head(url), Some(n), "nothing written");

    // `dcbstore read | head -1`: a reader that stops early is not an error.
    let mut child = command()
        .args(["--database-url", url, "read"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    {
        use std::io::BufRead;
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(&first).unwrap()["position"],
        1
    );
}
