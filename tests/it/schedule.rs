//! `palaute schedule` as a process: second-resolution cron, pipelines added and removed while it
//! runs, retries of transient failures and none of permanent ones, a clean stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Fixture, MAPPING};

fn count(f: &Fixture, pipeline: &str) -> i64 {
    f.sql(&format!(
        "SELECT count(*) AS n FROM runs WHERE pipeline = '{pipeline}'"
    ))[0]["n"]
        .as_i64()
        .unwrap()
}

fn write_pipeline(f: &Fixture, name: &str, location: &str, extra: &str) {
    let p = f.pipeline_named(name, "", MAPPING, extra);
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("location: in", &format!("location: {location}"));
    std::fs::write(f.path(&format!("pipelines/{name}.yaml")), text).unwrap();
    std::fs::remove_file(p).unwrap();
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn the_scheduler_runs_due_pipelines_retries_transient_failures_and_stops_cleanly() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("pipelines")).unwrap();
    f.input(
        "a.csv",
        b"id,time,kunta,q1,q2,nps,teksti\n1,2024-03-01 10:00,837,4,4,9,\n",
    );
    let every2 = "schedule:\n  cron: \"*/2 * * * * *\"\n";
    write_pipeline(&f, "every2", f.path("in").to_str().unwrap(), every2);
    let log = f.path("schedule.log");
    let mut child = crate::common::command()
        .args([
            "schedule",
            "--warehouse",
            &f.warehouse(),
            "--pipelines",
            f.path("pipelines").to_str().unwrap(),
            "--backoff-seconds",
            "0.3",
            "--max-retries",
            "2",
            "--grace-seconds",
            "20",
        ])
        .env_remove("PALAUTE_WAREHOUSE")
        .env_remove("PALAUTE_FAILPOINT")
        .env("RUST_LOG", "palaute=info")
        .env(
            "PALAUTE_TEST_CLOSED_URL",
            format!("mysql://u:p@127.0.0.1:{}/db", closed_port()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !cond() {
            assert!(
                t.elapsed() < Duration::from_secs(40),
                "timed out waiting for {what}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // every two seconds
    wait_for("two runs of every2", &|| {
        f.path("wh/runs").exists() && count(&f, "every2") >= 2
    });
    // added while running: a source that cannot be reached (a database on a closed loopback
    // port: transient, retried) and a source over its quality threshold (permanent, not retried)
    std::fs::write(
        f.path("pipelines/missing.yaml"),
        format!(
            "name: missing\nsource:\n  kind: limesurvey_db\n  url_env: PALAUTE_TEST_CLOSED_URL\n  survey_id: 1\n  system: ls\nmapping:\n  instrument: local_everyday\n  version: 1\n  response_id: id\n  submitted_at: submitdate\n  items:\n    everyday_support: tuki\n{every2}"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(f.path("strict_in")).unwrap();
    std::fs::write(
        f.path("strict_in/x.csv"),
        "id,time,kunta,q1,q2,nps,teksti\n1,2024-03-01 10:00,837,9,4,9,\n",
    )
    .unwrap();
    write_pipeline(
        &f,
        "strict",
        f.path("strict_in").to_str().unwrap(),
        &format!("{every2}quality:\n  max_quarantined_pct: 0\n"),
    );
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("a retry and a permanent failure", &|| {
        let t = text();
        t.contains("transient failure: retrying") && t.contains("pipeline=strict exit=3")
    });
    // removed while running: no more runs of every2
    std::fs::remove_file(f.path("pipelines/every2.yaml")).unwrap();
    wait_for("the removal", &|| text().contains("pipeline removed"));
    std::thread::sleep(Duration::from_millis(500));
    let after_removal = count(&f, "every2");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&f, "every2"), after_removal, "a removed pipeline ran");

    // SIGTERM: stop starting runs, let the running ones finish
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {}", text());
    let t = text();
    assert!(t.contains("scheduler stopped"), "{t}");
    let retry_lines: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("transient failure: retrying"))
        .collect();
    assert!(
        retry_lines
            .iter()
            .any(|l| l.contains("pipeline=missing") && l.contains("exit=4")),
        "an unreachable source is retried: {t}"
    );
    assert!(
        retry_lines
            .iter()
            .all(|l| l.contains("retry=1") || l.contains("retry=2")),
        "at most --max-retries retries in a row: {t}"
    );
    assert!(
        !retry_lines.iter().any(|l| l.contains("pipeline=strict")),
        "a permanent failure was retried: {t}"
    );
    assert!(
        t.lines().any(|l| l.contains("not retried")
            && l.contains("pipeline=strict")
            && l.contains("exit=3")),
        "{t}"
    );
    // the one response was loaded once, however many runs
    assert_eq!(f.count("responses"), 1);
}

#[test]
fn the_scheduler_runs_a_report_definition_after_the_load_it_names() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("pipelines/reports")).unwrap();
    let mut csv = String::from("id,time,kunta,q1,q2,nps,teksti\n");
    for i in 0..12 {
        csv.push_str(&format!("{i},2024-03-{:02} 10:00,837,4,5,9,\n", i + 1));
    }
    f.input("a.csv", csv.as_bytes());
    let every2 = "schedule:\n  cron: \"*/2 * * * * *\"\n";
    write_pipeline(&f, "load", f.path("in").to_str().unwrap(), every2);
    std::fs::write(
        f.path("pipelines/reports/monthly.yaml"),
        format!(
            "name: monthly\nareas: [\"county:08\"]\nperiod_type: month\nperiod: \"2024-03\"\nlanguages: [fi]\nout: {}\n{every2}after: [load]\n",
            f.path("reports").display()
        ),
    )
    .unwrap();
    let log = f.path("schedule.log");
    let mut child = crate::common::command()
        .args([
            "schedule",
            "--warehouse",
            &f.warehouse(),
            "--pipelines",
            f.path("pipelines").to_str().unwrap(),
            "--grace-seconds",
            "20",
        ])
        .env("RUST_LOG", "palaute=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let page = f.path("reports/county-08-2024-03-fi.html");
    let t = Instant::now();
    while !page.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no report: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    // the load ran before the report, and the report shows what it loaded
    let load = text
        .find("run started pipeline=load")
        .expect("the load ran");
    let report = text
        .find("run started pipeline=report:monthly")
        .expect("the report ran");
    assert!(load < report, "{text}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("data-mart=\"response_counts\""), "{html}");
    assert!(html.contains(">12<"), "the 12 responses loaded: {html}");
    assert!(f.path("reports/index-2024-03-fi.html").exists());
}
