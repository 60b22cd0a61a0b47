//! `palaute bench`, run small the way a user runs it (without DuckDB).

use crate::common::{Fixture, count_in, palaute};

#[test]
fn bench_times_every_step_on_a_generated_export_with_a_fresh_warehouse_each_round() {
    let f = Fixture::new();
    let dir = f.path("bench");
    let dir_s = dir.display().to_string();
    let r = palaute(
        &[
            "bench",
            "--rows",
            "300",
            "--repeat",
            "2",
            "--dir",
            &dir_s,
            "--all-marts",
            "--nightly",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for step in [
        "full load",
        "rerun, nothing new",
        "cumulative export (+10000 rows)",
        "first row edited (no resume)",
        "optimize",
        "aggregate, W2's figures",
        "again, no partition changed",
        "aggregate, every mart/period/level",
        "(case-mix adjustment's cost)",
        "nightly: full rebuild (load + marts)",
        "the day's run (+3 in the last month)",
    ] {
        assert!(r.stdout.contains(step), "no '{step}' in:\n{}", r.stdout);
    }
    assert!(r.stderr.contains("round 2 of 2"), "{}", r.stderr);
    assert!(
        r.stdout.contains("(+10000 rows)") && r.stdout.contains("resumed"),
        "{}",
        r.stdout
    );
    // the rounds' warehouses were set aside, then deleted when the bench ended
    assert!(!dir.join("trash").exists());
    // the warehouse left is the last round's alone: its four loads and nothing earlier
    let wh = dir.join("warehouse").display().to_string();
    let h = palaute(&["history", "--warehouse", &wh, "--json"], &[]);
    assert_eq!(h.code, 0, "{}", h.stderr);
    let v: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let loads: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["pipeline"] == "bench")
        .collect();
    assert_eq!(loads.len(), 4, "{}", h.stdout);
    let sum = |k: &str| -> i64 {
        loads
            .iter()
            .map(|r| {
                r["counts"][k]
                    .as_i64()
                    .unwrap_or_else(|| panic!("no {k} in {r}"))
            })
            .sum()
    };
    // full load 300; again: skipped unread; the cumulative export resumed at the start of the
    // loaded file's last row: that row (a duplicate) and the 10,000 new ones read; edited: all
    // 10,300 read, one updated, the rest duplicates
    assert_eq!(sum("read"), 300 + 10_001 + 10_300, "{}", h.stdout);
    assert_eq!(sum("updated"), 1, "{}", h.stdout);
    assert_eq!(sum("duplicate"), 1 + 10_299, "{}", h.stdout);
    assert_eq!(sum("loaded") + sum("quarantined"), 10_300, "{}", h.stdout);
    assert_eq!(count_in(&wh, "responses", &[]), sum("loaded"));

    // the nightly step: its warehouse holds the last round's rebuild and day's run, the day's
    // three responses all in December 2024, each run with its closing aggregation
    assert!(r.stderr.contains("nightly round 2 of 2"), "{}", r.stderr);
    let nwh = dir.join("nightly-warehouse").display().to_string();
    let h = palaute(&["history", "--warehouse", &nwh, "--json"], &[]);
    assert_eq!(h.code, 0, "{}", h.stderr);
    let v: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let rows = v.as_array().unwrap();
    let loads: Vec<&serde_json::Value> = rows.iter().filter(|r| r["pipeline"] == "bench").collect();
    let read: Vec<i64> = loads
        .iter()
        .map(|r| r["counts"]["read"].as_i64().unwrap())
        .collect();
    assert_eq!(read, vec![300, 3], "{}", h.stdout);
    let day_loaded = loads[1]["counts"]["loaded"].as_i64().unwrap();
    assert!(day_loaded >= 1, "{}", h.stdout);
    let aggregations = rows.iter().filter(|r| r["pipeline"] != "bench").count();
    assert!(aggregations >= 2, "{}", h.stdout);
    let q = palaute(
        &[
            "sql",
            "--warehouse",
            &nwh,
            "--format",
            "csv",
            "SELECT count(*) AS n, min(period) AS first, max(period) AS last FROM responses WHERE source_object LIKE '%day.csv'",
        ],
        &[],
    );
    assert_eq!(q.code, 0, "{}", q.stderr);
    assert_eq!(
        q.stdout.trim(),
        format!("n,first,last\n{day_loaded},2024-12,2024-12"),
        "{}",
        q.stdout
    );
}
