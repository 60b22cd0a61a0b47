//! Promises the README makes about safety: user SQL only reads, exit codes follow the table per
//! command, a writer that lost its lease commits nothing, and the program users run has no test
//! hooks.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Fixture, MAPPING, files_under, needs, palaute};

fn export(ids: std::ops::Range<u32>) -> String {
    let mut csv = String::from("id,time,kunta,q1,q2,nps,teksti\n");
    for id in ids {
        csv.push_str(&format!(
            "{id},2024-0{}-{:02} 10:00,837,4,5,{},teksti {id}\n",
            1 + id % 3,
            1 + id % 27,
            id % 11
        ));
    }
    csv
}

fn loaded() -> Fixture {
    let f = Fixture::new();
    f.input("a.csv", export(0..20).as_bytes());
    let p = f.pipeline("", MAPPING);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    f
}

fn sql(f: &Fixture, q: &str) -> crate::common::Ran {
    palaute(&["sql", "--warehouse", &f.warehouse(), q], &[])
}

#[test]
fn sql_reads_and_refuses_every_statement_that_would_write_or_reach_outside() {
    let f = loaded();
    let before = f.dump();
    let versions = std::fs::read_dir(f.path("wh/responses/_delta_log"))
        .unwrap()
        .count();
    let outside = f.path("copied");
    let csv_file = f.path("in/a.csv");
    for q in [
        "INSERT INTO responses SELECT * FROM responses LIMIT 5".to_string(),
        "DELETE FROM responses".to_string(),
        "UPDATE answers SET value = 1".to_string(),
        format!(
            "COPY (SELECT * FROM comments) TO '{}' STORED AS CSV",
            outside.display()
        ),
        format!(
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{}'",
            csv_file.display()
        ),
        "CREATE TABLE t AS SELECT * FROM responses".to_string(),
        "CREATE VIEW v AS SELECT 1".to_string(),
        "DROP TABLE responses".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "EXPLAIN INSERT INTO responses SELECT * FROM responses".to_string(),
    ] {
        let r = sql(&f, &q);
        assert_eq!(r.code, 2, "{q}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("only queries are allowed"),
            "{q}: {}",
            r.stderr
        );
    }
    assert!(!outside.exists(), "COPY wrote {}", outside.display());
    assert_eq!(f.dump(), before);
    assert_eq!(
        std::fs::read_dir(f.path("wh/responses/_delta_log"))
            .unwrap()
            .count(),
        versions,
        "no new table version"
    );
    // queries work, EXPLAIN of a query too
    assert_eq!(f.count("responses"), 20);
    let r = sql(&f, "EXPLAIN SELECT count(*) FROM answers");
    assert_eq!(r.code, 0, "{}", r.stderr);
    // a mistyped query is a bad command line, said once
    let r = sql(&f, "SELECT nosuchcolumn FROM responses");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.matches("nosuchcolumn").count(), 1, "{}", r.stderr);
}

#[test]
fn an_unreadable_warehouse_exits_4_under_every_command_and_says_so_once() {
    let f = loaded();
    // the ledger's log is damaged
    for p in files_under(&f.path("wh/runs/_delta_log")) {
        if p.extension().is_some_and(|e| e == "json") {
            std::fs::write(&p, b"{ this is not a Delta log entry").unwrap();
        }
    }
    let pipelines = f.path("pipelines");
    std::fs::create_dir_all(&pipelines).unwrap();
    let wh = f.warehouse();
    let pipelines = pipelines.to_str().unwrap();
    for args in [
        vec!["sql", "--warehouse", &wh, "SELECT 1"],
        vec!["history", "--warehouse", &wh],
        vec!["status", "--warehouse", &wh, "--pipelines", pipelines],
        vec!["audit-disclosure", "--warehouse", &wh],
        vec!["aggregate", "--warehouse", &wh],
    ] {
        let r = palaute(&args, &[("RUST_BACKTRACE", "1")]);
        assert_eq!(r.code, 4, "{args:?}: {}", r.stderr);
        let lines: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("palaute:"))
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("backtrace"), "{args:?}: {}", r.stderr);
        // each part of the message once
        let parts: Vec<&str> = lines[0].split(": ").filter(|p| p.len() > 12).collect();
        for p in &parts {
            assert_eq!(
                lines[0].matches(p).count(),
                1,
                "{args:?} repeats '{p}': {}",
                lines[0]
            );
        }
    }
    // a warehouse that cannot be created is an environment failure too (the scheduler retries)
    let blocker = f.path("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let p = f.pipeline("", MAPPING);
    let r = palaute(
        &[
            "run",
            "--warehouse",
            blocker.join("wh").to_str().unwrap(),
            p.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

#[test]
fn a_writer_paused_past_its_lease_commits_nothing_after_another_took_over() {
    // what the warehouse must end as: only the second writer's export loaded
    let reference = Fixture::new();
    reference.input("b.csv", export(100..130).as_bytes());
    let p = reference.pipeline("", MAPPING);
    assert_eq!(reference.run(&p).code, 0);
    let expected = reference.dump();

    let f = Fixture::new();
    f.input("a.csv", export(0..50).as_bytes());
    let p = f.pipeline("", MAPPING);
    let ttl = ("PALAUTE_LEASE_TTL_SECONDS", "2");
    let paused = crate::common::command()
        .args(["run", "--warehouse", &f.warehouse(), p.to_str().unwrap()])
        .env_remove("PALAUTE_WAREHOUSE")
        .env("PALAUTE_FAILPOINT", "sleep:ledger:3")
        .env(ttl.0, ttl.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // its tables are committed, its ledger row is not: pause it (a stopped VM) past its expiry
    wait_for("the first writer never committed its tables", || {
        f.path("wh/responses/_delta_log/00000000000000000001.json")
            .exists()
    });
    signal(paused.id(), "-STOP");
    std::thread::sleep(Duration::from_millis(2600));

    // another writer takes over: it undoes what the paused one left ahead of the ledger and
    // loads the export that is there now
    f.remove_input("a.csv");
    f.input("b.csv", export(100..130).as_bytes());
    let r = f.run_env(&p, &[ttl]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("restored to the committed version first"),
        "{}",
        r.stdout
    );

    // the paused writer wakes up: its next commit finds the lease lost and it stops with 6
    signal(paused.id(), "-CONT");
    let out = paused.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("lost the warehouse's writer lease"),
        "{stderr}"
    );
    assert_eq!(f.dump(), expected);
    // the ledger holds the second run and its closing aggregation, nothing of the paused one
    let rows = f.sql_csv("SELECT pipeline, status FROM runs ORDER BY seq");
    assert_eq!(
        rows, "pipeline,status\nt,succeeded\naggregate,succeeded\n",
        "{rows}"
    );
}

#[test]
fn test_hooks_are_absent_from_a_default_build() {
    // .ci/run builds the program as users get it (no features) and names it here
    let Some(bin) = needs(
        &["PALAUTE_DEFAULT_BIN"],
        "build it with `cargo build --bin palaute` and copy target/debug/palaute aside (.ci/run does)",
    ) else {
        return;
    };
    let bin = &bin[0];
    let f = Fixture::new();
    f.input("a.csv", export(0..20).as_bytes());
    let p = f.pipeline("", MAPPING);
    for fp in ["error:write", "crash:ledger", "error:publish:item_scores"] {
        let out = Command::new(bin)
            .args(["run", "--warehouse", &f.warehouse(), p.to_str().unwrap()])
            .env("PALAUTE_FAILPOINT", fp)
            .env("PALAUTE_KEY_SECRET", crate::common::TEST_KEY_SECRET)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{fp}: {stderr}");
        assert!(!stderr.contains("failpoint"), "{fp}: {stderr}");
    }
    assert_eq!(f.count("responses"), 20);
    // and the same with the suite's build: the hooks are there
    let r = f.run_env(&p, &[("PALAUTE_FAILPOINT", "error:write")]);
    assert_eq!(r.code, 0, "nothing new to write: {}", r.stderr);
    f.input("b.csv", export(20..30).as_bytes());
    let r = f.run_env(&p, &[("PALAUTE_FAILPOINT", "error:write")]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("failpoint"), "{}", r.stderr);
}

/// Rows of a table as an external Delta reader (delta-rs with DataFusion) sees them: at its
/// newest version, or at `version`.
fn external_rows(table: &std::path::Path, version: Option<u64>) -> i64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = url::Url::from_directory_path(table).unwrap();
        let mut b = deltalake_core::DeltaTableBuilder::from_url(url).unwrap();
        if let Some(v) = version {
            b = b.with_version(v);
        }
        let t = b.load().await.unwrap();
        let ctx = datafusion::prelude::SessionContext::new();
        t.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", t.table_provider().await.unwrap())
            .unwrap();
        let b = ctx
            .sql("SELECT count(*) AS n FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        use arrow::array::AsArray;
        b[0].column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0)
    })
}

#[test]
fn versions_name_the_consistent_state_and_any_writer_taking_over_restores_it() {
    let f = loaded();
    let v = palaute(&["versions", "--warehouse", &f.warehouse(), "--json"], &[]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    let committed: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    let at = committed["table_versions"]["responses"].as_u64().unwrap();
    // a run killed between its table commits and its ledger row
    f.input("b.csv", export(20..30).as_bytes());
    let p = f.pipeline("", MAPPING);
    let ttl = ("PALAUTE_LEASE_TTL_SECONDS", "1");
    let r = f.run_env(&p, &[("PALAUTE_FAILPOINT", "crash:commit:comments"), ttl]);
    assert_eq!(r.code, 86, "{}", r.stderr);
    let responses = f.path("wh/responses");
    // a reader of the newest versions sees the dead run's rows; one pinned to `versions`, and
    // palaute sql, see the committed state
    assert_eq!(external_rows(&responses, None), 30);
    assert_eq!(external_rows(&responses, Some(at)), 20);
    assert_eq!(f.count("responses"), 20);
    let again = palaute(&["versions", "--warehouse", &f.warehouse(), "--json"], &[]);
    assert_eq!(again.stdout, v.stdout, "the ledger did not move");
    // once the lease has expired, a writer that is no pipeline run (here vacuum) restores the
    // tables as it takes the lease over
    std::thread::sleep(Duration::from_millis(1500));
    let r = palaute(&["vacuum", "--warehouse", &f.warehouse()], &[ttl]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(external_rows(&responses, None), 20);
    // the restore is a new version, which vacuum's ledger row names; the text form says the same
    let now: serde_json::Value = serde_json::from_str(
        &palaute(&["versions", "--warehouse", &f.warehouse(), "--json"], &[]).stdout,
    )
    .unwrap();
    let restored = now["table_versions"]["responses"].as_u64().unwrap();
    assert!(restored > at, "{now}");
    assert_eq!(external_rows(&responses, Some(restored)), 20);
    let t = palaute(&["versions", "--warehouse", &f.warehouse()], &[]);
    assert!(
        t.stdout
            .contains(&format!("responses            version {restored}\n")),
        "{}",
        t.stdout
    );
}

#[test]
fn an_empty_query_result_keeps_its_columns_in_every_format() {
    let f = loaded();
    let q = "SELECT response_key, nps FROM responses WHERE nps > 100";
    let wh = f.warehouse();
    let table = palaute(&["sql", "--warehouse", &wh, q], &[]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("| response_key | nps |"),
        "{}",
        table.stdout
    );
    let csv = palaute(&["sql", "--warehouse", &wh, "--format", "csv", q], &[]);
    assert_eq!(csv.stdout, "response_key,nps\n");
    let json = palaute(&["sql", "--warehouse", &wh, "--format", "json", q], &[]);
    assert_eq!(json.stdout.trim(), "[]");
    let out = f.path("empty.parquet");
    let r = palaute(
        &[
            "sql",
            "--warehouse",
            &wh,
            "--format",
            "parquet",
            "--output",
            out.to_str().unwrap(),
            q,
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&out).unwrap(),
    )
    .unwrap();
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["response_key", "nps"]);
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 0);
}
