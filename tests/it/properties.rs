//! Property-based tests of the decoders and the mapping: arbitrary bytes, truncations and
//! mutations of valid CSV, JSON (array and NDJSON) and XLSX exports. Whatever the input, `check`
//! and `run` end — in time — with a clear error naming the object or with every row loaded,
//! counted as a duplicate or quarantined, and a run never leaves a table ahead of the ledger.
//!
//! The plan (the code behind `check`) runs in-process on many cases; `check` and `run` run as
//! the program on fewer, each under a time limit. `PALAUTE_PROPTEST_CASES=N` sets the number of
//! cases per format for both (the suite's defaults are 48 and 6); docs/testing.md gives the
//! longer run for nightly use.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::{Fixture, MAPPING, command};

#[derive(Debug, Clone, Copy)]
enum Fmt {
    Csv,
    JsonArray,
    Ndjson,
    Xlsx,
}

const FORMATS: [Fmt; 4] = [Fmt::Csv, Fmt::JsonArray, Fmt::Ndjson, Fmt::Xlsx];

const ROWS: [[&str; 7]; 4] = [
    [
        "1",
        "2024-02-01 10:00",
        "837",
        "4",
        "5",
        "9",
        "Hyvä palvelu, soita 040 123 4567",
    ],
    [
        "2",
        "3.2.2024 9.15",
        "091",
        "En osaa sanoa",
        "2",
        "",
        "\"lainausmerkit\" ja\nrivinvaihto",
    ],
    ["3", "2024-02-03T08:00:00+02:00", "564", "1", "", "0", ""],
    ["4", "2024-02-04", "837", "5", "5", "10", "kiitos"],
];
const HEADER: [&str; 7] = ["id", "time", "kunta", "q1", "q2", "nps", "teksti"];

/// A valid export in `fmt`, and the file name it goes under.
fn valid(fmt: Fmt, dir: &Path) -> (Vec<u8>, &'static str) {
    match fmt {
        Fmt::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(HEADER).unwrap();
            for r in ROWS {
                w.write_record(r).unwrap();
            }
            (w.into_inner().unwrap(), "export.csv")
        }
        Fmt::JsonArray | Fmt::Ndjson => {
            let objs: Vec<String> = ROWS
                .iter()
                .map(|r| {
                    let m: serde_json::Map<String, serde_json::Value> = HEADER
                        .iter()
                        .zip(r)
                        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                        .collect();
                    serde_json::Value::Object(m).to_string()
                })
                .collect();
            match fmt {
                Fmt::JsonArray => (
                    format!("[{}]", objs.join(",\n")).into_bytes(),
                    "export.json",
                ),
                _ => (objs.join("\n").into_bytes(), "export.ndjson"),
            }
        }
        Fmt::Xlsx => {
            let mut wb = rust_xlsxwriter::Workbook::new();
            let ws = wb.add_worksheet();
            for (c, h) in HEADER.iter().enumerate() {
                ws.write_string(0, c as u16, *h).unwrap();
            }
            for (i, r) in ROWS.iter().enumerate() {
                for (c, v) in r.iter().enumerate() {
                    ws.write_string(i as u32 + 1, c as u16, *v).unwrap();
                }
            }
            let p = dir.join("template.xlsx");
            wb.save(&p).unwrap();
            (std::fs::read(&p).unwrap(), "export.xlsx")
        }
    }
}

fn format_block(fmt: Fmt) -> &'static str {
    match fmt {
        Fmt::Csv => "",
        Fmt::JsonArray => "format:\n  kind: json\n  layout: array\n",
        Fmt::Ndjson => "format:\n  kind: json\n  layout: ndjson\n",
        Fmt::Xlsx => "format:\n  kind: spreadsheet\n",
    }
}

/// A pipeline for `fmt` reading `name` from the fixture's `in/`.
fn pipeline(f: &Fixture, fmt: Fmt, name: &str) -> std::path::PathBuf {
    let text = format!(
        "name: t\nsource:\n  kind: files\n  location: in\n  glob: \"{name}\"\n  system: test\n  survey: s1\n{}{MAPPING}quality:\n  max_quarantined_pct: 100\n",
        format_block(fmt)
    );
    let p = f.path("t.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// What is done to a valid export.
#[derive(Debug, Clone)]
enum Mutation {
    /// arbitrary bytes instead
    Replace(Vec<u8>),
    /// cut at this share of its length
    Truncate(f64),
    /// bytes XORed at these shares of its length
    Flip(Vec<(f64, u8)>),
    /// bytes inserted at a share of its length
    Insert(f64, Vec<u8>),
    /// a range removed (start share, length share)
    Delete(f64, f64),
    /// a range repeated
    Repeat(f64, f64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let share = 0.0..1.0f64;
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600).prop_map(Mutation::Replace),
        share.clone().prop_map(Mutation::Truncate),
        prop::collection::vec((share.clone(), 1..=255u8), 1..8).prop_map(Mutation::Flip),
        (
            share.clone(),
            prop::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    Just(b'"'),
                    Just(b','),
                    Just(b'\n'),
                    Just(b'\r'),
                    Just(b'{'),
                    Just(0xff)
                ],
                1..40
            )
        )
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        (share.clone(), 0.0..0.5f64).prop_map(|(a, l)| Mutation::Delete(a, l)),
        (share, 0.0..0.3f64).prop_map(|(a, l)| Mutation::Repeat(a, l)),
    ]
}

fn apply(m: &Mutation, valid: &[u8]) -> Vec<u8> {
    let at = |s: f64| ((s * valid.len() as f64) as usize).min(valid.len());
    let mut b = valid.to_vec();
    match m {
        Mutation::Replace(x) => b = x.clone(),
        Mutation::Truncate(s) => b.truncate(at(*s)),
        Mutation::Flip(xs) => {
            for (s, x) in xs {
                if let Some(v) = b.get_mut(at(*s).min(valid.len().saturating_sub(1))) {
                    *v ^= x;
                }
            }
        }
        Mutation::Insert(s, x) => {
            let i = at(*s);
            b.splice(i..i, x.iter().copied());
        }
        Mutation::Delete(s, l) => {
            let i = at(*s);
            let j = (i + at(*l)).min(b.len());
            b.drain(i..j);
        }
        Mutation::Repeat(s, l) => {
            let i = at(*s);
            let j = (i + at(*l)).min(b.len());
            let piece = b[i..j].to_vec();
            b.splice(j..j, piece);
        }
    }
    b
}

fn cases(default: u32) -> u32 {
    std::env::var("PALAUTE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// A plan's rows: read, written (new or updated), duplicate, quarantined.
type Planned = (u64, u64, u64, u64);

/// The plan of `pipeline` in-process (what `check` runs), on a thread of its own with a time
/// limit: Ok(Ok(counts)) planned, Ok(Err(message)) a clear error, Err: a panic or a hang.
fn plan_in_process(f: &Fixture, pipeline: &Path) -> Result<Result<Planned, String>, String> {
    let p = palaute::config::load_pipeline(pipeline).map_err(|e| e.to_string())?;
    let wh_dir = f.path("scratch-wh").display().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let out = rt.block_on(async {
            let wh =
                palaute::warehouse::Warehouse::open(&wh_dir, true).map_err(|e| e.to_string())?;
            let opts = palaute::ops::run::RunOptions {
                dry_run: true,
                ..Default::default()
            };
            palaute::ops::run::run_pipeline(&wh, &p, &opts)
                .await
                .map(|r| {
                    let c = r.counts;
                    (c.read, c.loaded + c.updated, c.duplicate, c.quarantined)
                })
                .map_err(|e| palaute::ops::exit::render(&e))
        });
        let _ = tx.send(out);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(r) => Ok(r),
        Err(mpsc::RecvTimeoutError::Timeout) => Err("the plan did not end within 60 s".into()),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("the plan panicked".into()),
    }
}

#[test]
fn any_mutation_of_an_export_is_planned_or_refused_clearly_never_a_panic_or_a_hang() {
    for fmt in FORMATS {
        let f = Fixture::new();
        let (good, name) = valid(fmt, &f.path("."));
        let p = pipeline(&f, fmt, name);
        // the valid export plans every row
        f.input(name, &good);
        let ok = plan_in_process(&f, &p)
            .unwrap()
            .unwrap_or_else(|e| panic!("{fmt:?}: {e}"));
        assert_eq!(ok.0, 4, "{fmt:?}: {ok:?}");
        assert_eq!(ok.1, 4, "{fmt:?}: {ok:?}");
        let mut r = runner(cases(48));
        let result = r.run(&mutation(), |m| {
            let bytes = apply(&m, &good);
            f.input(name, &bytes);
            match plan_in_process(&f, &p).map_err(TestCaseError::fail)? {
                Ok((read, written, duplicate, quarantined)) => {
                    prop_assert_eq!(read, written + duplicate + quarantined, "{:?}", m);
                }
                Err(e) => {
                    prop_assert!(!e.trim().is_empty());
                    prop_assert!(!e.contains("panicked"), "{}", e);
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{fmt:?}: {e}");
        }
    }
}

/// Run the program with a time limit: (exit code, stdout, stderr).
fn timed(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = command()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let o = child.wait_with_output().unwrap();
            let _ = st;
            return (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).to_string(),
                String::from_utf8_lossy(&o.stderr).to_string(),
            );
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            return (
                None,
                String::new(),
                format!("{args:?} did not end within 120 s"),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The newest version of each table in the warehouse's folder.
fn latest_versions(wh: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for t in ["responses", "answers", "comments", "feedback", "quarantine"] {
        let log = wh.join(t).join("_delta_log");
        let Ok(d) = std::fs::read_dir(&log) else {
            continue;
        };
        let v = d
            .filter_map(|e| {
                let n = e.ok()?.file_name().to_string_lossy().to_string();
                n.strip_suffix(".json")?.parse::<u64>().ok()
            })
            .max()
            .unwrap_or(0);
        out.insert(t.to_string(), v);
    }
    out
}

#[test]
fn check_and_run_of_any_mutated_export_end_clearly_and_never_commit_part_of_a_run() {
    for fmt in FORMATS {
        let f = Fixture::new();
        let (good, name) = valid(fmt, &f.path("."));
        let p = pipeline(&f, fmt, name);
        let p_s = p.to_str().unwrap().to_string();
        let n = std::cell::Cell::new(0u32);
        let mut r = runner(cases(6));
        let result = r.run(&mutation(), |m| {
            n.set(n.get() + 1);
            let wh = f.path(&format!("wh{}", n.get()));
            let wh_s = wh.display().to_string();
            f.input(name, &apply(&m, &good));
            for cmd in ["check", "run"] {
                let args = [cmd, "--warehouse", &wh_s, "--json", "--no-aggregate", &p_s];
                let args: Vec<&str> = if cmd == "check" {
                    vec![cmd, "--warehouse", &wh_s, &p_s]
                } else {
                    args.to_vec()
                };
                let (code, out, err) = timed(&args);
                let code = code.ok_or_else(|| TestCaseError::fail(err.clone()))?;
                // 0 done; 2 configuration (the object's columns); 3 the object is no export of
                // the survey (the threshold is 100 % here); 4 the object could not be read.
                // Never 1 (unexplained) or 101 (panic).
                prop_assert!(
                    [0, 2, 3, 4].contains(&code),
                    "{} exit {}: {}{}",
                    cmd,
                    code,
                    out,
                    err
                );
                prop_assert!(!err.contains("panicked"), "{}", err);
                if code != 0 {
                    prop_assert!(
                        err.contains(name),
                        "{} exit {} does not name {}: {}",
                        cmd,
                        code,
                        name,
                        err
                    );
                }
                if cmd == "run" && code == 0 {
                    let v: serde_json::Value =
                        serde_json::from_str(out.lines().next().unwrap_or("{}"))
                            .map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
                    let c = &v["rows"];
                    let sum = ["loaded", "updated", "duplicate", "quarantined"]
                        .iter()
                        .map(|k| c[k].as_u64().unwrap_or(0))
                        .sum::<u64>();
                    prop_assert_eq!(c["read"].as_u64(), Some(sum), "{}", out);
                }
            }
            // whatever happened, no table is ahead of the ledger
            if wh.join("runs").exists() {
                let (code, out, err) = timed(&["versions", "--warehouse", &wh_s, "--json"]);
                prop_assert_eq!(code, Some(0), "{}", err);
                let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
                for (t, latest) in latest_versions(&wh) {
                    let committed = v["table_versions"][&t].as_u64().unwrap_or(0);
                    prop_assert_eq!(latest, committed, "{} ahead of the ledger", t);
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{fmt:?}: {e}");
        }
    }
}
