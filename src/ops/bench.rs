//! `palaute bench`: measure the pipeline on a wide export (`demo::bench_data`'s layout), each
//! step in a fresh child process so that its peak memory is its own:
//!
//! 1. full load of N responses into a fresh warehouse;
//! 2. the same run again with nothing new (the object is skipped unread);
//! 3. a cumulative export: the same N rows plus 10,000 new ones, under a new name (the file
//!    begins with the bytes of the one loaded, so the run resumes where they end); then the same
//!    export again with its first row edited, so that it cannot resume: every row is read and
//!    deduplicated against the warehouse (one update, the rest duplicates);
//!
//! 4. `optimize` (one file per partition instead of one per spill);
//! 5. aggregation of the loaded warehouse: W2's figures (per month, county and the nation, and
//!    service: the seven statements' means and top-2 shares and the recommendation item's NPS,
//!    i.e. the `item_scores` and `recommendation` marts: `--period-type month --levels county
//!    --marts item_scores,recommendation`) twice: with every partition's cubes computed
//!    (`--fresh-cubes`, what the first aggregation of loaded data costs), and with every partition
//!    unchanged since the previous aggregation (its cubes taken from the cube cache), both
//!    `--no-adjustment` (W2 adjusts nothing); then, with `--all-marts`, every mart at every
//!    period type and geography level, and that with every partition's cubes computed with and
//!    without the case-mix adjustment (alternating which goes first), and the ratio;
//!
//! 6. with `--nightly`, the run users live with every night: a full rebuild (the export loaded
//!    into a fresh warehouse by `palaute run`, with its closing aggregation of every mart) and
//!    the day's run after it: 1 % of N new responses, all submitted in the export's latest
//!    month (December 2024), loaded by `palaute run` with its closing aggregation; their wall
//!    times and peak memory, and the ratio (issue 24's goal: at most 0.05, under 1 GiB at 5M);
//!
//! and, when given a Python with duckdb and DuckDB's workload script (`--duckdb-script`, kept
//! with the benchmark's reference data, outside this repository), DuckDB's W1 and W2 on the
//! same file in the same sitting, so that the figures are ratios against a baseline measured
//! alongside.
//! Each input is read once, untimed, right before each timed step (the page cache is warm).
//! A round's outputs (the warehouse, DuckDB's Parquet folder) are moved aside, not deleted, before
//! the next round and deleted when the bench ends: deleting thousands of files just before a
//! timed step made its file creations slower (ext4 without a journal skips inodes freed in the
//! last minute or more, scanning past them), a cost of the bench, not of the step.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::demo::bench_data;

const BENCH_YAML: &str = include_str!("../../pipelines/bench.yaml");
const EXTRA: usize = 10_000;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Responses in the generated export
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Working folder (exports, warehouse, DuckDB output)
    #[arg(long, default_value = "./bench-data")]
    pub dir: PathBuf,
    /// Use this export instead of generating one (e.g. gen.py's survey_N.csv)
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// The cumulative export: the same rows plus 10,000 more (generated when --csv is not given)
    #[arg(long)]
    pub cumulative: Option<PathBuf>,
    /// A Python that has duckdb: also time DuckDB's W1 on the same export
    #[arg(long)]
    pub duckdb_python: Option<PathBuf>,
    /// DuckDB's workload script (W1 and W2), needed with --duckdb-python
    #[arg(long, env = "PALAUTE_DUCKDB_SCRIPT")]
    pub duckdb_script: Option<PathBuf>,
    /// Also time `aggregate` of every mart at every period type and geography level (long: it
    /// computes many times W2's figures)
    #[arg(long)]
    pub all_marts: bool,
    /// Repeat each step this many times and report the median
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Also time the nightly run (docs/performance.md): a full rebuild (load and aggregate
    /// from nothing) against the day's run that follows it (1 % new responses, all in the
    /// latest month, with the run's closing aggregation)
    #[arg(long)]
    pub nightly: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Gen(#[from] crate::demo::GenError),
    #[error("{0}")]
    Step(String),
    /// the command line cannot be carried out as given
    #[error("{0}")]
    Usage(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

fn io(p: &Path) -> impl Fn(std::io::Error) -> BenchError + '_ {
    move |e| BenchError::Io(p.display().to_string(), e)
}

fn warm(path: &Path) -> Result<(), BenchError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).map_err(io(path))? > 0 {}
    Ok(())
}

/// Move `path` (if it exists) into the `trash` folder, under a name of its own.
fn set_aside(path: &Path, trash: &Path) -> Result<(), BenchError> {
    if !path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(trash).map_err(io(trash))?;
    let base = path.file_name().map(|n| n.to_string_lossy().to_string());
    for i in 0.. {
        let dest = trash.join(format!("{}-{i}", base.as_deref().unwrap_or("out")));
        if !dest.exists() {
            return std::fs::rename(path, &dest).map_err(io(path));
        }
    }
    unreachable!("an unused name exists")
}

fn place(src: &Path, dir: &Path, name: &str) -> Result<(), BenchError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dest = dir.join(name);
    if std::fs::hard_link(src, &dest).is_err() {
        std::fs::copy(src, &dest).map_err(io(&dest))?;
    }
    Ok(())
}

struct Step {
    seconds: f64,
    rss_mb: Option<f64>,
    rows: Option<serde_json::Value>,
    resumed: bool,
}

/// A copy of `src` (the bench layout) whose first data row has another `q1`, so that the copy
/// does not begin with the bytes of `src`.
fn edited_copy(src: &Path, dest: &Path) -> Result<(), BenchError> {
    let bytes = std::fs::read(src).map_err(io(src))?;
    let bad = |e: csv::Error| BenchError::Step(format!("{}: {e}", src.display()));
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[..]);
    let mut rec = csv::ByteRecord::new();
    r.read_byte_record(&mut rec).map_err(bad)?;
    let header_end = r.position().byte() as usize;
    r.read_byte_record(&mut rec).map_err(bad)?;
    let end = r.position().byte() as usize;
    let fields: Vec<Vec<u8>> = rec
        .iter()
        .enumerate()
        .map(|(i, f)| match (i, f) {
            (8, b"5") => b"4".to_vec(),
            (8, _) => b"5".to_vec(),
            _ => f.to_vec(),
        })
        .collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&fields)
        .map_err(|e| BenchError::Step(e.to_string()))?;
    let row = w
        .into_inner()
        .map_err(|e| BenchError::Step(e.to_string()))?;
    let mut out = Vec::with_capacity(bytes.len() + 8);
    out.extend_from_slice(&bytes[..header_end]);
    out.extend_from_slice(&row);
    out.extend_from_slice(&bytes[end..]);
    std::fs::write(dest, out).map_err(io(dest))
}

fn run_palaute(args: &[&str]) -> Result<Step, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::Io("current_exe".into(), e))?;
    let t = Instant::now();
    let out = Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| BenchError::Io("palaute run".into(), e))?;
    let seconds = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(BenchError::Step(format!(
            "palaute {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.lines().last().unwrap_or("{}"))
        .map_err(|e| BenchError::Step(format!("unexpected run output: {e}")))?;
    Ok(Step {
        seconds,
        rss_mb: v.get("peak_rss_mb").and_then(|x| x.as_f64()),
        rows: v.get("rows").cloned(),
        resumed: v
            .get("resumed")
            .and_then(|r| r.as_array())
            .is_some_and(|r| !r.is_empty()),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn write_regions(path: &Path) -> Result<(), BenchError> {
    let c = crate::schema::Catalog::embedded();
    let mut s = String::from("municipality_code,municipality_name,county_code,county_name\n");
    for m in c.municipalities.municipality_codes(2024) {
        let cn = c.municipalities.county_name(&m.county).unwrap_or("");
        s.push_str(&format!("{},{},{},{}\n", m.code, m.name_fi, m.county, cn));
    }
    std::fs::write(path, s).map_err(io(path))
}

/// Run the benchmark's steps in order, each timed in a child process: a script of steps, long
/// because each step is written out where it is measured.
pub async fn run(a: &BenchArgs) -> Result<(), BenchError> {
    let duckdb = match (&a.duckdb_python, &a.duckdb_script) {
        (Some(py), Some(script)) => Some((py, script)),
        (Some(_), None) => {
            return Err(BenchError::Usage(
                "--duckdb-python needs DuckDB's workload script: --duckdb-script FILE (or PALAUTE_DUCKDB_SCRIPT)".into(),
            ));
        }
        (None, _) => None,
    };
    let dir = &a.dir;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
    let (base, cumulative) = match &a.csv {
        Some(c) => (c.clone(), a.cumulative.clone()),
        None => {
            let base = dir.join(format!("survey_{}.csv", a.rows));
            let cum = dir.join(format!("survey_{}.csv", a.rows + EXTRA));
            for (p, n) in [(&base, a.rows), (&cum, a.rows + EXTRA)] {
                if !p.exists() {
                    eprintln!("generating {} ({n} rows)", p.display());
                    bench_data::write(p, n, 42)?;
                }
            }
            (base, Some(cum))
        }
    };
    let base = std::fs::canonicalize(&base).map_err(io(&base))?;
    let yaml = dir.join("bench.yaml");
    let text = BENCH_YAML.replace(
        "location: ../bench-data/in",
        &format!("location: {}", dir.join("in").display()),
    );
    std::fs::write(&yaml, text).map_err(io(&yaml))?;
    let wh = dir.join("warehouse");
    let wh_s = wh.display().to_string();
    let yaml_s = yaml.display().to_string();
    let run_args = [
        "run",
        "--json",
        "--no-aggregate",
        "--warehouse",
        wh_s.as_str(),
        yaml_s.as_str(),
    ];

    // outputs of earlier rounds, deleted at the end (see the module's documentation)
    let trash = dir.join("trash");
    let mut duck = Vec::new();
    let mut full = Vec::new();
    let mut again = Vec::new();
    let mut cum = Vec::new();
    let mut cum_resumed = true;
    let mut cum_edited = Vec::new();
    let mut rss = Vec::new();
    let mut rows = None;
    let mut duck_w2 = Vec::new();
    let mut agg_w2 = Vec::new();
    let mut agg_w2_warm = Vec::new();
    let mut agg_all = Vec::new();
    // every mart with every partition's cubes computed, with and without the case-mix
    // adjustment, in alternating order
    let mut agg_all_fresh = Vec::new();
    let mut agg_all_fresh_raw = Vec::new();
    let mut opt = Vec::new();
    let opt_args = ["optimize", "--json", "--warehouse", wh_s.as_str()];
    let agg_w2_args = [
        "aggregate",
        "--json",
        "--period-type",
        "month",
        "--levels",
        "county",
        "--marts",
        "item_scores,recommendation",
        // DuckDB's W2 adjusts nothing: like with like
        "--no-adjustment",
        "--warehouse",
        wh_s.as_str(),
    ];
    let agg_all_args = ["aggregate", "--json", "--warehouse", wh_s.as_str()];
    for i in 0..a.repeat.max(1) {
        eprintln!("round {} of {}", i + 1, a.repeat.max(1));
        if let Some((py, script)) = duckdb {
            let regions = dir.join("regions.csv");
            write_regions(&regions)?;
            let pq = dir.join("duckdb_pq");
            set_aside(&pq, &trash)?;
            warm(&base)?;
            let t = Instant::now();
            let st = Command::new(py)
                .arg(script)
                .args(["w1", "--csv"])
                .arg(&base)
                .arg("--regions")
                .arg(&regions)
                .arg("--parquet")
                .arg(&pq)
                .status()
                .map_err(|e| BenchError::Io(py.display().to_string(), e))?;
            if !st.success() {
                return Err(BenchError::Step("DuckDB W1 failed".into()));
            }
            duck.push(t.elapsed().as_secs_f64());
        }
        set_aside(&wh, &trash)?;
        place(&base, &dir.join("in"), "survey.csv")?;
        warm(&base)?;
        let s = run_palaute(&run_args)?;
        full.push(s.seconds);
        if let Some(r) = s.rss_mb {
            rss.push(r);
        }
        rows = s.rows;
        opt.push(run_palaute(&opt_args)?.seconds);
        // W2's figures from the loaded warehouse: one untimed warm-up, then timed with every
        // partition's cubes computed, then with every partition unchanged
        run_palaute(&agg_w2_args)?;
        let mut fresh = agg_w2_args.to_vec();
        fresh.push("--fresh-cubes");
        agg_w2.push(run_palaute(&fresh)?.seconds);
        agg_w2_warm.push(run_palaute(&agg_w2_args)?.seconds);
        if a.all_marts {
            agg_all.push(run_palaute(&agg_all_args)?.seconds);
            let mut fresh = agg_all_args.to_vec();
            fresh.push("--fresh-cubes");
            let mut raw = fresh.clone();
            raw.push("--no-adjustment");
            for adjusted in [i % 2 == 0, i % 2 == 1] {
                if adjusted {
                    agg_all_fresh.push(run_palaute(&fresh)?.seconds);
                } else {
                    agg_all_fresh_raw.push(run_palaute(&raw)?.seconds);
                }
            }
        }
        if let Some((py, script)) = duckdb {
            let w2 = || -> Result<f64, BenchError> {
                let t = Instant::now();
                let st = Command::new(py)
                    .arg(script)
                    .args(["w2", "--parquet"])
                    .arg(dir.join("duckdb_pq"))
                    .arg("--out")
                    .arg(dir.join("duckdb_out"))
                    .status()
                    .map_err(|e| BenchError::Io(py.display().to_string(), e))?;
                if !st.success() {
                    return Err(BenchError::Step("DuckDB W2 failed".into()));
                }
                Ok(t.elapsed().as_secs_f64())
            };
            w2()?; // warm-up, untimed
            duck_w2.push(w2()?);
        }
        let s = run_palaute(&run_args)?;
        again.push(s.seconds);
        if let Some(c) = &cumulative {
            place(c, &dir.join("in"), "survey_cumulative.csv")?;
            warm(c)?;
            let s = run_palaute(&run_args)?;
            cum_resumed &= s.resumed;
            cum.push(s.seconds);
            let edited = dir.join("survey_cumulative_edited.csv");
            edited_copy(c, &edited)?;
            place(&edited, &dir.join("in"), "survey_cumulative_edited.csv")?;
            std::fs::remove_file(&edited).map_err(io(&edited))?;
            warm(&dir.join("in").join("survey_cumulative_edited.csv"))?;
            let s = run_palaute(&run_args)?;
            if s.resumed {
                return Err(BenchError::Step(
                    "the edited cumulative export was resumed".into(),
                ));
            }
            cum_edited.push(s.seconds);
        }
    }
    let nightly = if a.nightly {
        Some(nightly(a, &dir, &base, &yaml_s, &trash)?)
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&trash);
    let full_m = median(full);
    println!(
        "palaute bench: {} ({} bytes)",
        base.display(),
        std::fs::metadata(&base).map(|m| m.len()).unwrap_or(0)
    );
    if let Some(r) = rows {
        println!("  rows of the full load: {r}");
    }
    println!("  step                                   wall s   peak RSS MB   ratio");
    let d = (!duck.is_empty()).then(|| median(duck));
    if let Some(d) = d {
        println!("  DuckDB W1 (baseline)                   {d:>6.2}            -     1.00");
    }
    let ratio = |x: f64| {
        d.map(|d| format!("{:>7.2}", x / d))
            .unwrap_or_else(|| "      -".into())
    };
    println!(
        "  full load                              {full_m:>6.2}   {:>11}  {} (vs DuckDB W1)",
        rss.iter()
            .cloned()
            .reduce(f64::max)
            .map(|r| format!("{r:.0}"))
            .unwrap_or("-".into()),
        ratio(full_m)
    );
    let again_m = median(again);
    println!(
        "  rerun, nothing new                     {again_m:>6.2}            -  {:>7.3} (vs full load)",
        again_m / full_m
    );
    if !cum.is_empty() {
        let c = median(cum);
        println!(
            "  cumulative export (+{EXTRA} rows)        {c:>6.2}            -  {:>7.3} (vs full load){}",
            c / full_m,
            if cum_resumed {
                ", resumed"
            } else {
                ", NOT resumed"
            }
        );
        let e = median(cum_edited);
        println!(
            "  the same, first row edited (no resume) {e:>6.2}            -  {:>7.3} (vs full load)",
            e / full_m
        );
    }
    let om = median(opt);
    println!(
        "  optimize (compact partitions)          {om:>6.2}            -  {:>7.3} (vs full load)",
        om / full_m
    );
    let dw2 = (!duck_w2.is_empty()).then(|| median(duck_w2));
    if let Some(d) = dw2 {
        println!("  DuckDB W2 (baseline)                   {d:>6.2}            -     1.00");
    }
    let w2m = median(agg_w2);
    println!(
        "  aggregate, W2's figures                {w2m:>6.2}            -  {} (vs DuckDB W2)",
        dw2.map(|d| format!("{:>7.2}", w2m / d))
            .unwrap_or_else(|| "      -".into())
    );
    let w2w = median(agg_w2_warm);
    println!(
        "    again, no partition changed          {w2w:>6.2}            -  {} (vs DuckDB W2)",
        dw2.map(|d| format!("{:>7.2}", w2w / d))
            .unwrap_or_else(|| "      -".into())
    );
    if !agg_all.is_empty() {
        let allm = median(agg_all);
        println!(
            "  aggregate, every mart/period/level     {allm:>6.2}            -  {} (vs DuckDB W2)",
            dw2.map(|d| format!("{:>7.2}", allm / d))
                .unwrap_or_else(|| "      -".into())
        );
        let (adj, raw) = (median(agg_all_fresh), median(agg_all_fresh_raw));
        println!(
            "    --fresh-cubes, adjusted / raw only   {adj:>6.2} / {raw:.2}    -  {:>7.2} (case-mix adjustment's cost)",
            adj / raw
        );
    }
    if let Some(n) = nightly {
        n.print();
    }
    Ok(())
}

/// The nightly step's medians: (seconds, peak RSS MB) of the full rebuild and the day's run.
struct Nightly {
    rebuild: (f64, Option<f64>),
    day: (f64, Option<f64>),
    day_rows: usize,
}

impl Nightly {
    fn print(&self) {
        let mb = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.0}"));
        println!(
            "  nightly: full rebuild (load + marts)   {:>6.2}   {:>11}     1.00",
            self.rebuild.0,
            mb(self.rebuild.1)
        );
        println!(
            "    the day's run (+{} in the last month) {:>6.2}   {:>11}  {:>7.3} (vs full rebuild; goal <= 0.05)",
            self.day_rows,
            self.day.0,
            mb(self.day.1),
            self.day.0 / self.rebuild.0
        );
    }
}

/// The day's export: `rows` new responses submitted in December 2024 (the bench export's last
/// month), with ids of their own (the generator numbers every export from 1).
fn day_export(path: &Path, rows: usize) -> Result<(), BenchError> {
    use chrono::TimeZone;
    let start = chrono_tz::Europe::Helsinki
        .with_ymd_and_hms(2024, 12, 1, 0, 0, 0)
        .single()
        .expect("a valid time");
    let raw = path.with_extension("raw");
    bench_data::write_between(&raw, rows, 20_241_201, start, 31 * 24 * 60 - 1)?;
    let text = std::fs::read_to_string(&raw).map_err(io(&raw))?;
    let mut out = String::with_capacity(text.len() + rows * 4);
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push_str("day-");
        }
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(path, out).map_err(io(path))?;
    std::fs::remove_file(&raw).map_err(io(&raw))
}

/// `--nightly`: a full rebuild and the day's run after it, each `--repeat` times, in a
/// warehouse of their own.
fn nightly(
    a: &BenchArgs,
    dir: &Path,
    base: &Path,
    yaml: &str,
    trash: &Path,
) -> Result<Nightly, BenchError> {
    let wh = dir.join("nightly-warehouse");
    let wh_s = wh.display().to_string();
    let run_args = ["run", "--json", "--warehouse", wh_s.as_str(), yaml];
    let base_rows = match &a.csv {
        Some(_) => count_rows(base)?,
        None => a.rows,
    };
    let day_rows = (base_rows / 100).max(1);
    let day = dir.join(format!("day_{day_rows}.csv"));
    if !day.exists() {
        eprintln!("generating {} ({day_rows} rows)", day.display());
        day_export(&day, day_rows)?;
    }
    let (mut rebuild, mut rebuild_rss, mut nightly, mut nightly_rss) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..a.repeat.max(1) {
        eprintln!("nightly round {} of {}", i + 1, a.repeat.max(1));
        set_aside(&wh, trash)?;
        place(base, &dir.join("in"), "survey.csv")?;
        warm(base)?;
        let s = run_palaute(&run_args)?;
        rebuild.push(s.seconds);
        rebuild_rss.extend(s.rss_mb);
        place(&day, &dir.join("in"), "day.csv")?;
        warm(&day)?;
        let s = run_palaute(&run_args)?;
        nightly.push(s.seconds);
        nightly_rss.extend(s.rss_mb);
    }
    let med = |v: Vec<f64>| (!v.is_empty()).then(|| median(v));
    Ok(Nightly {
        rebuild: (median(rebuild), med(rebuild_rss)),
        day: (median(nightly), med(nightly_rss)),
        day_rows,
    })
}

/// Data rows of a CSV export (its lines but the header).
fn count_rows(path: &Path) -> Result<usize, BenchError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0usize;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count();
    }
    Ok(lines.saturating_sub(1))
}
