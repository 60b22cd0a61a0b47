//! Day-to-day operations on a warehouse: `palaute optimize`.

use crate::common::{Fixture, MAPPING, palaute};

fn export(ids: std::ops::Range<u32>, edited: Option<u32>) -> String {
    let mut csv = String::from("id,time,kunta,q1,q2,nps,teksti\n");
    for id in ids {
        let q1 = if Some(id) == edited { 1 } else { 4 };
        csv.push_str(&format!(
            "{id},2024-0{}-{:02} 10:00,{},{q1},5,{},teksti {id}\n",
            1 + id % 3,
            1 + id % 27,
            ["837", "091", "205"][(id as usize / 3) % 3],
            id % 11
        ));
    }
    csv
}

/// The data files of a table folder (its log's checkpoints are Parquet too, and not counted).
fn files_under(dir: &std::path::Path) -> usize {
    crate::common::files_under(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter(|p| !p.components().any(|c| c.as_os_str() == "_delta_log"))
        .count()
}

#[test]
fn optimize_compacts_partitions_without_changing_what_readers_see() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    // two runs over the same months and counties: two files in every partition
    f.input("a.csv", export(0..60, None).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    f.input("b.csv", export(60..120, None).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    let before = f.dump();
    let marts = f.sql_csv("SELECT * FROM item_scores ORDER BY period_type, period, geo_level, geo_code, service, item_code");

    let r = palaute(&["optimize", "--warehouse", &f.warehouse(), "--json"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let answers = &v["tables"]["answers"];
    assert_eq!(answers["files_before"], 18, "{v}"); // 3 months × 3 counties × 2 runs
    assert_eq!(answers["files_after"], 9, "{v}");
    assert_eq!(answers["partitions_compacted"], 9);
    // a checkpoint of the compacted version: readers start from it instead of the whole log
    // (everything below reads through it)
    let last: serde_json::Value = serde_json::from_slice(
        &std::fs::read(f.path("wh/answers/_delta_log/_last_checkpoint")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        last["version"], v["table_versions"]["answers"],
        "{last} {v}"
    );
    assert_eq!(last["numOfAddFiles"], 9, "{last}");
    assert_eq!(f.dump(), before, "optimize changed the data");
    assert_eq!(
        f.sql_csv("SELECT * FROM item_scores ORDER BY period_type, period, geo_level, geo_code, service, item_code"),
        marts
    );
    let runs = f.sql("SELECT pipeline FROM runs ORDER BY seq");
    assert_eq!(runs.last().unwrap()["pipeline"], "optimize");

    // deduplication reads keys from the compacted files: a cumulative export with one edit
    f.input("c.csv", export(0..130, Some(7)).as_bytes());
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("10 new, 1 updated, 119 duplicate"),
        "{}",
        r.stdout
    );
    assert_eq!(f.count("responses"), 130);

    // nothing to compact: no commit, no ledger row
    let n = f.count("runs");
    let r = palaute(&["optimize", "--warehouse", &f.warehouse()], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = palaute(&["optimize", "--warehouse", &f.warehouse(), "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["tables"]["answers"]["partitions_compacted"], 0, "{v}");
    assert_eq!(
        f.count("runs"),
        n + 1,
        "only the first of the two optimizes had work"
    );
}

#[test]
fn a_failed_optimize_leaves_the_warehouse_as_it_was() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    f.input("a.csv", export(0..30, None).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    f.input("b.csv", export(30..60, None).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    let before = f.dump();
    let files = files_under(&f.path("wh/answers"));
    // responses is committed, then answers fails: responses is restored
    let r = palaute(
        &["optimize", "--warehouse", &f.warehouse()],
        &[("PALAUTE_FAILPOINT", "error:commit:answers")],
    );
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert_eq!(f.dump(), before);
    assert_eq!(
        f.sql("SELECT pipeline FROM runs WHERE pipeline = 'optimize'")
            .len(),
        0
    );
    // the answers files it wrote were committed before the failpoint and stay for time travel,
    // but readers see the old layout; a real optimize afterwards still works
    assert!(files_under(&f.path("wh/answers")) >= files);
    let r = palaute(&["optimize", "--warehouse", &f.warehouse()], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(f.dump(), before);
}

#[test]
fn rollback_restores_every_table_and_the_next_run_reloads_what_it_undid() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    f.input("a.csv", export(0..40, None).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    let after_a = f.dump();
    let marts_a = f.sql_csv(
        "SELECT * FROM recommendation ORDER BY period_type, period, geo_level, geo_code, service",
    );
    // the aggregation that ended the first run is the warehouse version to go back to
    let seq: i64 = f.sql("SELECT max(seq) AS s FROM runs")[0]["s"]
        .as_i64()
        .unwrap();
    f.input("b.csv", export(40..90, Some(3)).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    let after_b = f.dump();
    assert_ne!(after_a, after_b);

    let r = palaute(
        &[
            "rollback",
            "--warehouse",
            &f.warehouse(),
            "--to-version",
            &seq.to_string(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        f.dump(),
        after_a,
        "the data tables are as after the first run"
    );
    assert_eq!(
        f.sql_csv("SELECT * FROM recommendation ORDER BY period_type, period, geo_level, geo_code, service"),
        marts_a,
        "and so are the marts"
    );
    // b.csv's run was undone: the next run reads it again instead of skipping it as loaded
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("objects: 1 read, 1 unchanged") && r.stdout.contains("50 new"),
        "{}",
        r.stdout
    );
    assert_eq!(f.dump(), after_b);

    // an unknown target is a usage error
    let r = palaute(
        &[
            "rollback",
            "--warehouse",
            &f.warehouse(),
            "--to-run",
            "nosuchrun",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn vacuum_deletes_replaced_files_and_keeps_what_readers_see() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    f.input("a.csv", export(0..60, None).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    f.input("b.csv", export(60..120, None).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    assert_eq!(
        palaute(&["optimize", "--warehouse", &f.warehouse()], &[]).code,
        0
    );
    let before = f.dump();
    let files = files_under(&f.path("wh/answers"));
    // the runs' aggregations left cube cache files; a process killed while writing one leaves
    // its temporary file beside it
    let items = f.path("wh/_cubes/items");
    let cached: Vec<String> = std::fs::read_dir(&items)
        .expect("the runs' aggregations wrote the cube cache")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !cached.is_empty() && cached.iter().all(|n| n.ends_with(".arrows")),
        "{cached:?}"
    );
    let leftover = items.join(format!("{}.4242.tmp", cached[0]));
    std::fs::write(&leftover, b"half a file").unwrap();
    // a retention of a week keeps the replaced files (time travel), zero deletes them
    let r = palaute(&["vacuum", "--warehouse", &f.warehouse()], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(files_under(&f.path("wh/answers")), files);
    assert!(
        !leftover.exists(),
        "vacuum removes a dead writer's temporary file"
    );
    // nothing else is old enough to go
    assert!(r.stdout.contains("): 1 files deleted"), "{}", r.stdout);
    let mut kept: Vec<String> = std::fs::read_dir(&items)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    let mut cached = cached;
    cached.sort();
    assert_eq!(kept, cached, "the cache files themselves stay");
    let r = palaute(
        &["vacuum", "--warehouse", &f.warehouse(), "--retention", "0"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        files_under(&f.path("wh/answers")),
        9,
        "one file per partition is left"
    );
    assert_eq!(f.dump(), before);
    // and the warehouse goes on working
    f.input("c.csv", export(0..125, None).as_bytes());
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("5 new, 0 updated, 120 duplicate"),
        "{}",
        r.stdout
    );
}

#[test]
fn status_shows_last_run_next_due_time_and_freshness() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("pipelines")).unwrap();
    let schedule = "schedule:\n  cron: \"0 0 6 * * *\"\n  timezone: Europe/Helsinki\n  freshness: {warn_after_hours: 24, error_after_hours: 72}\n";
    let p = f.pipeline_named("kysely", "", MAPPING, schedule);
    let moved = f.path("pipelines/kysely.yaml");
    std::fs::write(
        &moved,
        std::fs::read_to_string(&p).unwrap().replace(
            "location: in",
            &format!("location: {}", f.path("in").display()),
        ),
    )
    .unwrap();
    let status = |at: &str| {
        palaute(
            &[
                "status",
                "--warehouse",
                &f.warehouse(),
                "--pipelines",
                f.path("pipelines").to_str().unwrap(),
                "--json",
                "--at",
                at,
            ],
            &[],
        )
    };
    // never run: past the error window by definition
    let r = status("2030-01-15T10:00:00Z");
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["freshness"], "error");
    assert!(v[0]["last_run"].is_null());

    f.input("a.csv", export(0..10, None).as_bytes());
    assert_eq!(f.run(&moved).code, 0);
    let now = chrono::Utc::now();
    let at = |h: i64| (now + chrono::Duration::hours(h)).to_rfc3339();
    let r = status(&at(1));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["pipeline"], "kysely");
    assert_eq!(v[0]["last_status"], "succeeded");
    assert_eq!(v[0]["freshness"], "ok");
    let r = status(&at(30));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["freshness"], "warn");
    assert_eq!(r.code, 0);
    // a rerun with nothing new does not make the source fresh again
    assert_eq!(f.run(&moved).code, 0);
    let r = status(&at(100));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["freshness"], "error");
    assert_eq!(v[0]["last_status"], "no_change");
    assert_eq!(r.code, 1);
    // 10:00 UTC on 15 January is 12:00 in Helsinki (UTC+2): next due 06:00 local the next day
    let r = status("2030-01-15T10:00:00Z");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["next_due"], "2030-01-16T04:00:00Z");
    // and in summer (UTC+3)
    let r = status("2030-07-15T10:00:00Z");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["next_due"], "2030-07-16T03:00:00Z");
}

#[test]
fn a_bad_schedule_or_a_reserved_name_is_a_configuration_error() {
    let f = Fixture::new();
    let p = f.pipeline_named("t", "", MAPPING, "schedule:\n  cron: \"61 * * * *\"\n");
    let r = f.check(&p);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("schedule.cron"), "{}", r.stderr);
    let p = f.pipeline_named("aggregate", "", MAPPING, "");
    let r = f.check(&p);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("reserved"), "{}", r.stderr);
}

#[test]
fn one_writer_at_a_time_and_a_killed_run_converges_after_its_lease_expires() {
    let export_a = export(0..50, None);
    // the uninterrupted run, for reference
    let reference = Fixture::new();
    reference.input("a.csv", export_a.as_bytes());
    let p = reference.pipeline("", MAPPING);
    assert_eq!(reference.run(&p).code, 0);
    let expected = reference.dump();

    // a slow run holds the writer lease: another run and an operation are turned away
    let f = Fixture::new();
    f.input("a.csv", export_a.as_bytes());
    let p = f.pipeline("", MAPPING);
    let slow = crate::common::command()
        .args(["run", "--warehouse", &f.warehouse(), p.to_str().unwrap()])
        .env_remove("PALAUTE_WAREHOUSE")
        .env("PALAUTE_FAILPOINT", "sleep:ledger:5")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let leases = f.path("wh/_leases/writer");
    let t = std::time::Instant::now();
    while std::fs::read_dir(&leases).map_or(0, |d| d.count()) == 0 {
        assert!(
            t.elapsed().as_secs() < 30,
            "the slow run never took the lease"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = f.run(&p);
    assert_eq!(r.code, 6, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("busy") && r.stderr.contains("run t"),
        "{}",
        r.stderr
    );
    let r = palaute(&["optimize", "--warehouse", &f.warehouse()], &[]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    let out = slow.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(f.dump(), expected);
    // released: the next run goes ahead at once
    assert_eq!(f.run(&p).code, 0);

    // a run killed with SIGKILL between its table commits and its ledger row keeps the lease
    // until it expires; then the next run restores the tables and converges to the
    // uninterrupted result
    let k = Fixture::new();
    k.input("a.csv", export_a.as_bytes());
    let p = k.pipeline("", MAPPING);
    let ttl = [("PALAUTE_LEASE_TTL_SECONDS", "2")];
    let doomed = crate::common::command()
        .args(["run", "--warehouse", &k.warehouse(), p.to_str().unwrap()])
        .env_remove("PALAUTE_WAREHOUSE")
        .env("PALAUTE_FAILPOINT", "sleep:ledger:30")
        .env("PALAUTE_LEASE_TTL_SECONDS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until its tables are committed (the responses table has a version 1)
    let t = std::time::Instant::now();
    while !k
        .path("wh/responses/_delta_log/00000000000000000001.json")
        .exists()
    {
        assert!(t.elapsed().as_secs() < 30, "the run never committed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let st = std::process::Command::new("kill")
        .args(["-9", &doomed.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = doomed.wait_with_output().unwrap();
    assert!(!out.status.success(), "the run was killed");
    let r = k.run_env(&p, &ttl);
    assert_eq!(
        r.code, 6,
        "the dead run's lease has not expired yet: {}",
        r.stderr
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let r = k.run_env(&p, &ttl);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("restored to the committed version first"),
        "{}",
        r.stdout
    );
    assert_eq!(k.dump(), expected);
}

#[test]
fn backfill_replaces_only_the_given_periods() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    // responses 0..60 over January–March 2024 (id % 3 picks the month)
    f.input("a.csv", export(0..60, None).as_bytes());
    assert_eq!(f.run(&p).code, 0);
    let per_month = |f: &Fixture| -> Vec<(String, i64)> {
        f.sql("SELECT period, count(*) AS n FROM responses GROUP BY period ORDER BY period")
            .iter()
            .map(|r| {
                (
                    r["period"].as_str().unwrap().to_string(),
                    r["n"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        per_month(&f),
        [
            ("2024-01".into(), 20),
            ("2024-02".into(), 20),
            ("2024-03".into(), 20)
        ]
    );
    // at the source: response 1 (February) edited, 4 (February) and 3 (January) deleted,
    // 60..63 added (January, February, March)
    let edited: String = export(0..63, Some(1))
        .lines()
        .filter(|l| !l.starts_with("4,") && !l.starts_with("3,"))
        .map(|l| format!("{l}\n"))
        .collect();
    f.input("a.csv", edited.as_bytes());
    let r = crate::common::palaute(
        &[
            "backfill",
            p.to_str().unwrap(),
            "--from",
            "2024-02",
            "--to",
            "2024-02",
            "--warehouse",
            &f.warehouse(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 new, 1 updated"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("1 stored rows the source no longer holds removed"),
        "{}",
        r.stdout
    );
    // February replaced (20 − 1 deleted + 1 added); January and March untouched
    assert_eq!(
        per_month(&f),
        [
            ("2024-01".into(), 20),
            ("2024-02".into(), 20),
            ("2024-03".into(), 20)
        ]
    );
    assert_eq!(
        f.sql("SELECT count(*) AS n FROM responses WHERE response_key IN (SELECT response_key FROM responses WHERE source_row = 5)")[0]["n"],
        1
    );
    let q1 = f.sql(
        "SELECT a.value FROM answers a JOIN responses r ON a.response_key = r.response_key \
         WHERE r.period = '2024-02' AND a.item_code = 'availability' AND a.value = 1",
    );
    assert_eq!(q1.len(), 1, "the edited answer is in");
    // the backfill did not mark the object loaded: a normal run applies the rest
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        per_month(&f),
        [
            ("2024-01".into(), 21),
            ("2024-02".into(), 20),
            ("2024-03".into(), 21)
        ]
    );
}
