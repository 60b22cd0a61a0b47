//! A run is one atomic outcome: an error or a crash in the middle leaves the warehouse as it was,
//! and the next run converges to what an uninterrupted run gives.

use crate::common::{Fixture, MAPPING, files_under, s};

fn export(ids: std::ops::Range<u32>) -> String {
    let mut csv = String::from("id,time,kunta,q1,q2,nps,teksti\n");
    for id in ids {
        csv.push_str(&format!(
            "{id},2024-{:02}-10 10:00,{},{},4,8,teksti {id}\n",
            id % 12 + 1,
            ["837", "091", "564"][id as usize % 3],
            id % 5 + 1
        ));
    }
    csv
}

fn parquet_files(f: &Fixture) -> Vec<String> {
    files_under(&f.path("wh"))
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|p| p.ends_with(".parquet") && !p.contains("/runs/"))
        .collect()
}

/// The reference: the same two deliveries without interruption.
fn reference() -> String {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    f.input("a.csv", export(0..30).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    f.input("b.csv", export(20..60).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    f.dump()
}

#[test]
fn an_error_after_a_table_commit_is_rolled_back() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    f.input("a.csv", export(0..30).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    let before = f.dump();
    f.input("b.csv", export(20..60).as_bytes());
    for fp in [
        "error:commit:responses",
        "error:commit:answers",
        "error:commit:comments",
        "error:ledger",
        "error:write",
    ] {
        let r = f.run_env(&p, &[("PALAUTE_FAILPOINT", fp)]);
        assert_eq!(r.code, 1, "{fp}: {}", r.stderr);
        assert!(r.stderr.contains("failpoint"), "{}", r.stderr);
        assert_eq!(f.dump(), before, "{fp} left the warehouse changed");
    }
    let runs = f.sql("SELECT status FROM runs ORDER BY seq");
    assert_eq!(
        runs.iter()
            .filter(|r| s(r, "status") == Some("failed"))
            .count(),
        5
    );
    // the next run loads b.csv as if nothing had happened
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("30 new"), "{}", r.stdout);
    assert_eq!(f.dump(), reference());
}

#[test]
fn a_crash_between_commits_is_invisible_and_recovered() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    f.input("a.csv", export(0..30).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    let before = f.dump();
    f.input("b.csv", export(20..60).as_bytes());
    // like kill -9 after the responses table was committed: no clean-up, no ledger row
    let r = f.run_env(
        &p,
        &[
            ("PALAUTE_FAILPOINT", "crash:commit:answers"),
            ("PALAUTE_LEASE_TTL_SECONDS", "1"),
        ],
    );
    assert_eq!(r.code, 86, "{}", r.stderr);
    // readers see the committed state: the ledger's versions
    assert_eq!(f.dump(), before);
    // the dead run's writer lease expires, then the next run restores and loads
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("restored to the committed version first"),
        "{}",
        r.stdout
    );
    assert_eq!(f.dump(), reference());
}

#[test]
fn a_failed_write_leaves_no_files_behind() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    f.input("a.csv", export(0..30).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    let files = parquet_files(&f);
    f.input("b.csv", export(20..60).as_bytes());
    let r = f.run_env(&p, &[("PALAUTE_FAILPOINT", "error:commit:responses")]);
    assert_eq!(r.code, 1);
    let r = f.run_env(&p, &[("PALAUTE_FAILPOINT", "error:write")]);
    assert_eq!(r.code, 1);
    // files the failed runs wrote are gone, except those of the table that was committed and
    // rolled back: its earlier version still refers to them (vacuum removes them later)
    let now = parquet_files(&f);
    let added: Vec<&String> = now.iter().filter(|x| !files.contains(x)).collect();
    assert!(!added.is_empty());
    assert!(
        added.iter().all(|x| x.contains("/responses/")),
        "stray files: {added:?}"
    );
}
