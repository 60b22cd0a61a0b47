use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The values of the environment variables that name a server (or program) a test needs. When
/// one is missing the test cannot run: under `CI=true` that fails it; elsewhere it is skipped,
/// said on the terminal itself (cargo test captures a passing test's `eprintln!`, not writes to
/// the standard error stream).
pub fn needs(vars: &[&str], how: &str) -> Option<Vec<String>> {
    let values: Vec<Option<String>> = vars
        .iter()
        .map(|v| std::env::var(v).ok().filter(|x| !x.is_empty()))
        .collect();
    if values.iter().all(Option::is_some) {
        return Some(values.into_iter().flatten().collect());
    }
    let missing: Vec<&str> = vars
        .iter()
        .zip(&values)
        .filter(|(_, x)| x.is_none())
        .map(|(v, _)| *v)
        .collect();
    let what = format!("{} not set; {how}", missing.join(", "));
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {what}: this test must run in CI");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {}: {what} ***",
        std::thread::current().name().unwrap_or("a test")
    );
    None
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    fn from(o: Output) -> Ran {
        Ran {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).to_string(),
            stderr: String::from_utf8_lossy(&o.stderr).to_string(),
        }
    }
}

/// The key secret the tests' warehouses share (`PALAUTE_KEY_SECRET`), so that the response keys
/// of two warehouses loaded alike are equal and their dumps comparable; the privacy tests make
/// warehouses with secrets of their own.
pub const TEST_KEY_SECRET: &str =
    "5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed";

/// `palaute` as the tests run it: no warehouse or failpoint from the environment, the tests' key
/// secret.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_palaute"));
    c.env_remove("PALAUTE_WAREHOUSE")
        .env_remove("PALAUTE_FAILPOINT")
        .env_remove("PALAUTE_EXTRACT_SECRET")
        .env("PALAUTE_KEY_SECRET", TEST_KEY_SECRET);
    c
}

pub fn palaute(args: &[&str], envs: &[(&str, &str)]) -> Ran {
    let mut c = command();
    c.args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    Ran::from(c.output().expect("palaute runs"))
}

/// The rows of `table` in the warehouse at `warehouse`, through `palaute sql` (which must succeed).
pub fn count_in(warehouse: &str, table: &str, envs: &[(&str, &str)]) -> i64 {
    let q = format!("SELECT count(*) AS n FROM {table}");
    let r = palaute(
        &["sql", "--warehouse", warehouse, "--format", "csv", &q],
        envs,
    );
    assert_eq!(r.code, 0, "sql failed: {}", r.stderr);
    let out = r.stdout.trim();
    out.strip_prefix("n\n")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a count: {out}"))
}

/// The standard test pipeline's mapping, for a source with columns
/// id, time, kunta, q1, q2, nps, teksti.
pub const MAPPING: &str = r#"mapping:
  instrument: thl_national
  version: 2
  response_id: id
  submitted_at: time
  municipality: kunta
  items:
    availability: q1
    encounter: q2
    recommend: nps
    open: teksti
"#;

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        Fixture { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn warehouse(&self) -> String {
        self.path("wh").display().to_string()
    }

    /// Write `pipeline.yaml` with the given format block and mapping.
    pub fn pipeline(&self, format: &str, mapping: &str) -> PathBuf {
        self.pipeline_named("t", format, mapping, "")
    }

    pub fn pipeline_named(&self, name: &str, format: &str, mapping: &str, extra: &str) -> PathBuf {
        let text = format!(
            "name: {name}\nsource:\n  kind: files\n  location: in\n  glob: \"*.csv\"\n  system: test\n  survey: s1\n{format}{mapping}{extra}"
        );
        let p = self.path(&format!("{name}.yaml"));
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn input(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path(&format!("in/{name}")), bytes).unwrap();
    }

    pub fn remove_input(&self, name: &str) {
        std::fs::remove_file(self.path(&format!("in/{name}"))).unwrap();
    }

    pub fn run(&self, pipeline: &Path) -> Ran {
        self.run_env(pipeline, &[])
    }

    pub fn run_env(&self, pipeline: &Path, envs: &[(&str, &str)]) -> Ran {
        palaute(
            &[
                "run",
                "--warehouse",
                &self.warehouse(),
                pipeline.to_str().unwrap(),
            ],
            envs,
        )
    }

    pub fn check(&self, pipeline: &Path) -> Ran {
        palaute(
            &[
                "check",
                "--warehouse",
                &self.warehouse(),
                pipeline.to_str().unwrap(),
            ],
            &[],
        )
    }

    /// Rows of a query as JSON objects, through `palaute sql --format json`.
    pub fn sql(&self, q: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let r = palaute(
            &[
                "sql",
                "--warehouse",
                &self.warehouse(),
                "--format",
                "json",
                q,
            ],
            &[],
        );
        assert_eq!(r.code, 0, "sql failed: {}", r.stderr);
        let v: serde_json::Value = serde_json::from_str(r.stdout.trim())
            .unwrap_or_else(|e| panic!("sql output is not JSON ({e}): {}", r.stdout));
        v.as_array()
            .expect("an array")
            .iter()
            .map(|x| x.as_object().expect("an object").clone())
            .collect()
    }

    /// A query's result as CSV text (for comparing whole tables).
    pub fn sql_csv(&self, q: &str) -> String {
        let r = palaute(
            &[
                "sql",
                "--warehouse",
                &self.warehouse(),
                "--format",
                "csv",
                q,
            ],
            &[],
        );
        assert_eq!(r.code, 0, "sql failed: {}", r.stderr);
        r.stdout
    }

    pub fn count(&self, table: &str) -> i64 {
        count_in(&self.warehouse(), table, &[])
    }

    /// Every data table's content, in a stable order (run-specific columns left out).
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for q in [
            "SELECT response_key, row_hash, submitted_at, municipality, county, period, nps FROM responses ORDER BY response_key",
            "SELECT response_key, item_code, option_code, value, status, raw_value FROM answers ORDER BY response_key, item_code, option_code",
            "SELECT response_key, field, text, redactions FROM comments ORDER BY response_key, field",
            "SELECT source_object, source_row, reason_codes FROM quarantine ORDER BY source_object, source_row",
        ] {
            s.push_str(&self.sql_csv(q));
        }
        s
    }
}

/// Every row of the four marts, in a fixed order.
pub fn dump_marts(f: &Fixture) -> String {
    let mut out = String::new();
    for (mart, keys) in [
        ("item_scores", "item_code"),
        ("recommendation", "instrument"),
        ("response_counts", "breakdown, category"),
        ("selections", "item_code, option_code"),
    ] {
        out.push_str(&f.sql_csv(&format!(
            "SELECT * FROM {mart} ORDER BY period_type, period, geo_level, geo_parent, \
             geo_code, service, instrument, {keys}"
        )));
    }
    out
}

pub fn s<'a>(row: &'a serde_json::Map<String, serde_json::Value>, k: &str) -> Option<&'a str> {
    row.get(k).and_then(|v| v.as_str())
}

/// Every file below `dir`, in path order.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// (integer column, text column) of each row, e.g. (source_row, option_code).
pub fn int_str<'a>(
    rows: &'a [serde_json::Map<String, serde_json::Value>],
    int_col: &str,
    str_col: &str,
) -> Vec<(i64, &'a str)> {
    rows.iter()
        .map(|r| {
            (
                r[int_col]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{int_col}: {r:?}")),
                s(r, str_col).unwrap_or_else(|| panic!("{str_col}: {r:?}")),
            )
        })
        .collect()
}

/// A generated export of `rows` national-layout responses of every county (`palaute generate
/// bench`, seed `seed`) at `in/NAME.csv`, and the bench pipeline that reads `in/`: its path.
pub fn bench_export(f: &Fixture, rows: u32, seed: u32, name: &str) -> PathBuf {
    let csv = f.path(&format!("in/{name}.csv"));
    let r = palaute(
        &[
            "generate",
            "bench",
            "--out",
            csv.to_str().unwrap(),
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(format!(
        "{}/pipelines/bench.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("../bench-data/in", "in");
    let p = f.path("bench.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The warehouse of `rows` generated responses (seed `seed`, `in/first.csv`) loaded by the bench
/// pipeline, copied into `f` (`in/`, `bench.yaml`, `wh/`) from the one this test binary made on
/// the first call for the same rows and seed: the server tests read the same warehouse, and
/// generating and loading it was most of their time. Returns the pipeline's path in `f`.
pub fn loaded_bench(f: &Fixture, rows: u32, seed: u32) -> PathBuf {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    static MADE: Mutex<BTreeMap<(u32, u32), PathBuf>> = Mutex::new(BTreeMap::new());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let shared = Path::new(env!("CARGO_TARGET_TMPDIR")).join("loaded-bench");
    if made.is_empty() {
        // what earlier runs of the test binary left
        if let Ok(entries) = std::fs::read_dir(&shared) {
            for e in entries.flatten() {
                if !e
                    .file_name()
                    .to_string_lossy()
                    .ends_with(&format!("-{pid}"))
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let src = made
        .entry((rows, seed))
        .or_insert_with(|| {
            let dir = shared.join(format!("{rows}-{seed}-{pid}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("in")).unwrap();
            let g = Fixture {
                dir: tempfile::TempDir::new_in(&shared).unwrap(),
            };
            std::fs::create_dir_all(g.path("in")).unwrap();
            let p = bench_export(&g, rows, seed, "first");
            let r = g.run(&p);
            assert_eq!(r.code, 0, "{}", r.stderr);
            // kept for the binary's life: renamed out of the temporary folder's reach
            for part in ["wh", "in/first.csv", "bench.yaml"] {
                std::fs::rename(g.path(part), dir.join(part)).unwrap();
            }
            dir
        })
        .clone();
    drop(made);
    copy_tree(&src.join("wh"), &f.path("wh"));
    std::fs::copy(src.join("in/first.csv"), f.path("in/first.csv")).unwrap();
    std::fs::copy(src.join("bench.yaml"), f.path("bench.yaml")).unwrap();
    f.path("bench.yaml")
}

/// Copy a folder and everything in it (files copied, never linked: a table's files are
/// rewritten by the tests that run on the copy).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}
