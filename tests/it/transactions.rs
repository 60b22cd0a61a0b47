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

/// `palaute status` of the fixture's warehouse (its warning about owed marts is on stderr).
fn status(f: &Fixture) -> crate::common::Ran {
    crate::common::palaute(
        &[
            "status",
            "--warehouse",
            &f.warehouse(),
            "--pipelines",
            f.path("in").to_str().unwrap(),
        ],
        &[],
    )
}

fn run_without_aggregation(f: &Fixture, p: &std::path::Path) -> crate::common::Ran {
    crate::common::palaute(
        &[
            "run",
            "--no-aggregate",
            "--warehouse",
            &f.warehouse(),
            p.to_str().unwrap(),
        ],
        &[],
    )
}

/// The data and the marts of a warehouse, for comparing whole warehouses.
fn everything(f: &Fixture) -> String {
    format!("{}{}", f.dump(), crate::common::dump_marts(f))
}

/// Two deliveries, the second killed at `kill` (a crash failpoint, or SIGKILL after a delay);
/// then the lease expires and a plain rerun must converge to the uninterrupted warehouse.
fn killed_then_rerun(kill: Result<&str, std::time::Duration>) -> (Fixture, String) {
    let ttl = ("PALAUTE_LEASE_TTL_SECONDS", "1");
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    f.input("a.csv", export(0..30).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    f.input("b.csv", export(20..60).as_bytes());
    let what = match kill {
        Ok(fp) => {
            let r = f.run_env(&p, &[("PALAUTE_FAILPOINT", fp), ttl]);
            assert_eq!(r.code, 86, "{fp} was not reached: {}{}", r.stdout, r.stderr);
            fp.to_string()
        }
        Err(after) => {
            let mut child = crate::common::command()
                .args(["run", "--warehouse", &f.warehouse(), p.to_str().unwrap()])
                .env_remove("PALAUTE_FAILPOINT")
                .env(ttl.0, ttl.1)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(after);
            let _ = child.kill();
            let _ = child.wait();
            format!("SIGKILL after {after:?}")
        }
    };
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let r = f.run(&p);
    assert_eq!(r.code, 0, "rerun after {what}: {}{}", r.stdout, r.stderr);
    (f, what)
}

#[test]
fn a_kill_anywhere_in_a_run_or_its_aggregation_converges_marts_included() {
    let reference = {
        let f = Fixture::new();
        let p = f.pipeline("", MAPPING);
        f.input("a.csv", export(0..30).as_bytes());
        assert_eq!(f.run(&p).code, 0);
        f.input("b.csv", export(20..60).as_bytes());
        assert_eq!(f.run(&p).code, 0);
        everything(&f)
    };
    // every stage a run and its closing aggregation pass, in order
    for fp in [
        "crash:write",
        "crash:commit:responses",
        "crash:commit:answers",
        "crash:ledger",
        "crash:publish:item_scores",
        "crash:commit:item_scores",
        "crash:commit:response_counts",
        "crash:aggregate:ledger",
    ] {
        let (f, what) = killed_then_rerun(Ok(fp));
        assert_eq!(everything(&f), reference, "after {what}");
        // nothing is left owed, and status says nothing is
        let st = status(&f);
        assert!(!st.stderr.contains("do not show"), "{what}: {}", st.stderr);
    }
    // and at a few random moments (bounded: 2 rounds, seeded)
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = std::time::Duration::from_millis(100 + x % 1400);
        let (f, what) = killed_then_rerun(Err(after));
        assert_eq!(everything(&f), reference, "after {what}");
    }
}

#[test]
fn marts_owed_by_a_run_without_aggregation_are_named_and_computed_by_the_next_run() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    f.input("a.csv", export(0..30).as_bytes());
    let r = run_without_aggregation(&f, &p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let st = status(&f);
    assert!(
        st.stderr.contains("the marts of 2024 do not show the data"),
        "{}",
        st.stderr
    );
    // nothing new to load, but the owed year is aggregated
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("unchanged"), "{}", r.stdout);
    assert!(f.count("item_scores") > 0);
    assert!(!status(&f).stderr.contains("do not show"));
    // a partial aggregation does not count as computing the year
    f.input("b.csv", export(30..40).as_bytes());
    let r = run_without_aggregation(&f, &p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = crate::common::palaute(
        &[
            "aggregate",
            "--warehouse",
            &f.warehouse(),
            "--marts",
            "item_scores",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(status(&f).stderr.contains("the marts of 2024"));
    let r = crate::common::palaute(&["aggregate", "--warehouse", &f.warehouse()], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!status(&f).stderr.contains("do not show"));
}
