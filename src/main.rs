//! The `palaute` command line: a thin layer over the library's operations.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use palaute::config::{self, Pipeline};
use palaute::marts::casemix;
use palaute::marts::periods::PeriodType;
use palaute::ops::aggregate::{AggregateOptions, aggregate};
use palaute::ops::run::{RunOptions, render_summary, run_pipeline};
use palaute::ops::sql::OutputFormat;
use palaute::ops::{check, demo, exit, history, sql};
use palaute::privacy::disclosure::{DEFAULT_MIN_N, DEFAULT_RELIABLE_N, Rules};
use palaute::warehouse::lease::Lease;
use palaute::warehouse::{Warehouse, WarehouseError};

/// jemalloc: a load allocates and frees many small values per row on two threads; glibc's
/// malloc/free took about a fifth of a load's CPU time in profiles.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "palaute",
    version,
    about = "Client feedback ETL and warehouse for Finnish social and health services"
)]
struct Cli {
    /// Log lines as text or JSON (stderr). On a terminal a progress bar is shown instead.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct WarehouseArg {
    /// The warehouse: a folder or s3://bucket/prefix (default: $PALAUTE_WAREHOUSE, else ./warehouse)
    #[arg(long)]
    warehouse: Option<String>,
}

#[derive(clap::Args)]
struct Pipelines {
    /// Pipeline files
    pipelines: Vec<PathBuf>,
    /// Every pipeline (*.yaml) in this folder
    #[arg(long)]
    all: Option<PathBuf>,
}

/// Disclosure control of the marts (set the environment variables once for every command).
#[derive(clap::Args)]
struct DisclosureArgs {
    /// k: every figure of a cell with 0 < n < k is suppressed
    #[arg(long, env = "PALAUTE_MIN_N", default_value_t = DEFAULT_MIN_N)]
    min_n: u64,
    /// figures from fewer answers than this carry low_reliability = true
    #[arg(long, env = "PALAUTE_RELIABLE_N", default_value_t = DEFAULT_RELIABLE_N)]
    reliable_n: u64,
    /// count "can't say" in the denominator of shares (the FFT convention)
    #[arg(long, env = "PALAUTE_CANT_SAY_IN_DENOMINATOR")]
    cant_say_in_denominator: bool,
    /// publish no case-mix adjusted figures (and no model coefficients)
    #[arg(long, env = "PALAUTE_NO_ADJUSTMENT")]
    no_adjustment: bool,
    /// months in the national pool of a period's case-mix model, ending with the period's last
    /// month (1 to 36)
    #[arg(long, env = "PALAUTE_ADJUSTMENT_WINDOW", default_value_t = casemix::DEFAULT_WINDOW_MONTHS)]
    adjustment_window: u32,
    /// channels that are no sample (self-selected answers) and stay out of the models' fit,
    /// comma separated; `none` for none
    #[arg(
        long,
        env = "PALAUTE_FIT_EXCLUDE_CHANNELS",
        value_delimiter = ',',
        default_values_t = casemix::DEFAULT_FIT_EXCLUDE_CHANNELS.map(String::from)
    )]
    fit_exclude_channel: Vec<String>,
}

impl DisclosureArgs {
    fn rules(&self) -> anyhow::Result<Rules> {
        if self.min_n < 1 {
            anyhow::bail!(UsageError("--min-n must be at least 1".into()));
        }
        Ok(Rules {
            min_n: self.min_n,
            reliable_n: self.reliable_n,
            cant_say_in_denominator: self.cant_say_in_denominator,
        })
    }

    fn adjustment(&self) -> anyhow::Result<casemix::Settings> {
        let s = casemix::Settings {
            enabled: !self.no_adjustment,
            window_months: self.adjustment_window,
            fit_exclude_channels: self
                .fit_exclude_channel
                .iter()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty() && c != "none")
                .collect(),
        };
        s.check()
            .map_err(|m| anyhow::anyhow!(UsageError(format!("--adjustment-window: {m}"))))?;
        Ok(s)
    }
}

#[derive(Subcommand)]
enum ExtractCmd {
    /// Derive the package in DIR again from the warehouse and compare it file by file (exit 0:
    /// identical; 3: differs, naming the files; 4: the warehouse no longer has its versions)
    Verify {
        #[command(flatten)]
        w: WarehouseArg,
        dir: PathBuf,
        /// The pseudonyms' secret (else PALAUTE_EXTRACT_SECRET)
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Run pipelines into the warehouse
    Run {
        #[command(flatten)]
        p: Pipelines,
        #[command(flatten)]
        w: WarehouseArg,
        /// Print each run's summary as one JSON line
        #[arg(long)]
        json: bool,
        /// Do not recompute the marts for the periods the runs changed
        #[arg(long)]
        no_aggregate: bool,
        #[command(flatten)]
        disclosure: DisclosureArgs,
    },
    /// Compute the comparison marts (item_scores, recommendation, response_counts, selections)
    /// with disclosure control, replacing the years recomputed
    Aggregate {
        #[command(flatten)]
        w: WarehouseArg,
        /// Period types to compute (repeatable; default: all five). Types the marts already
        /// hold for those years are recomputed too.
        #[arg(long = "period-type", value_enum)]
        period_types: Vec<PeriodType>,
        /// First month (YYYY-MM); the range widens to whole years
        #[arg(long)]
        from: Option<String>,
        /// Last month (YYYY-MM)
        #[arg(long)]
        to: Option<String>,
        /// Geography levels to publish, comma separated (default: municipality, local_area,
        /// county, cooperation_area, nation; the nation is always included)
        #[arg(long, value_delimiter = ',')]
        levels: Vec<String>,
        #[command(flatten)]
        disclosure: DisclosureArgs,
        /// Run the reference SQL definitions — the fine cubes (sql/cube_*.sql over the whole
        /// tables) and sql/rollup.sql — instead of the partition-wise cubes and the one-pass
        /// rollup (slower and memory-hungry; a test checks both give identical marts)
        #[arg(long)]
        sql_cubes: bool,
        /// Marts to recompute, comma separated (default: all four); the others keep what they
        /// hold
        #[arg(long, value_delimiter = ',')]
        marts: Vec<String>,
        /// Compute the cubes of every partition, even of those unchanged since an earlier
        /// aggregation (whose cubes are otherwise taken from the warehouse's `_cubes/` cache)
        #[arg(long)]
        fresh_cubes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Compact each partition of the data tables into one Parquet file (one atomic commit)
    Optimize {
        #[command(flatten)]
        w: WarehouseArg,
        #[arg(long)]
        json: bool,
    },
    /// Migrate a warehouse whose response keys were made without a secret (palaute before 0.2):
    /// every data file is rewritten with its keys keyed by the warehouse's secret (one atomic
    /// operation; PALAUTE_KEY_SECRET, else a new secret in the warehouse's _keys/)
    Rekey {
        #[command(flatten)]
        w: WarehouseArg,
    },
    /// Run every scheduled pipeline of a folder when its cron expression is due (until SIGTERM)
    Schedule {
        #[command(flatten)]
        w: WarehouseArg,
        /// The folder of pipeline files (re-read while running)
        #[arg(long, default_value = "./pipelines")]
        pipelines: PathBuf,
        /// Retries of a transient failure (exit 4 or 6) before the next due time
        #[arg(long, default_value_t = 5)]
        max_retries: u32,
        /// The first retry's delay in seconds (doubled each time, plus up to 50 % jitter)
        #[arg(long, default_value_t = 30.0)]
        backoff_seconds: f64,
        /// On SIGTERM / SIGINT, how long running runs may take to finish
        #[arg(long, default_value_t = 120)]
        grace_seconds: u64,
    },
    /// Re-read a pipeline's sources and replace its rows of these periods (one atomic run)
    Backfill {
        /// The pipeline file
        pipeline: PathBuf,
        /// First month (YYYY-MM)
        #[arg(long)]
        from: String,
        /// Last month (YYYY-MM)
        #[arg(long)]
        to: String,
        #[command(flatten)]
        w: WarehouseArg,
        /// Do not recompute the marts for those periods
        #[arg(long)]
        no_aggregate: bool,
        #[command(flatten)]
        disclosure: DisclosureArgs,
    },
    /// Per pipeline: the last run, the next due time and the freshness of its source (exit 1
    /// when a pipeline is past its error window)
    Status {
        #[command(flatten)]
        w: WarehouseArg,
        /// The folder of pipeline files
        #[arg(long, default_value = "./pipelines")]
        pipelines: PathBuf,
        /// Evaluate at this time (RFC 3339) instead of now
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        json: bool,
    },
    /// Restore every table to the versions of an earlier ledger row (`palaute history`)
    Rollback {
        #[command(flatten)]
        w: WarehouseArg,
        /// The run id to go back to
        #[arg(
            long,
            conflicts_with = "to_version",
            required_unless_present = "to_version"
        )]
        to_run: Option<String>,
        /// The warehouse version (the ledger's seq) to go back to
        #[arg(long)]
        to_version: Option<i64>,
    },
    /// Delete files that no table version within the retention needs
    Vacuum {
        #[command(flatten)]
        w: WarehouseArg,
        /// Keep what time travel needs for this many hours
        #[arg(long, default_value_t = palaute::ops::vacuum::DEFAULT_RETENTION_HOURS)]
        retention: u64,
        /// Delete also files that recorded extracts still need (their `extract verify` then fails)
        #[arg(long)]
        force: bool,
    },
    /// Write the interim report of an area against the nation (HTML with an XLSX companion),
    /// from the published marts; `--all LEVEL` one per area of a level, with an index page
    Report {
        #[command(flatten)]
        w: WarehouseArg,
        /// The area: LEVEL:CODE (county:06, municipality:837, cooperation_area:2, local_area:X)
        #[arg(long, conflicts_with_all = ["all", "definition"], required_unless_present_any = ["all", "definition"])]
        area: Option<String>,
        /// Every report of a report definition (pipelines/reports/*.yaml; docs/reports.md)
        #[arg(long, conflicts_with = "all")]
        definition: Option<PathBuf>,
        /// One report per area of this level, into the folder --out
        #[arg(long)]
        all: Option<String>,
        /// month, bimonth (default: the interim reports), quarter, half or year
        #[arg(long, default_value = "bimonth")]
        period_type: String,
        /// The period (2025-B2, 2025-Q2, 2025); default: the last complete one of the type
        #[arg(long)]
        period: Option<String>,
        #[arg(long, default_value = "thl_national")]
        instrument: String,
        /// fi, sv or en
        #[arg(long, default_value = "fi")]
        language: String,
        /// The page (FILE.html; its workbook FILE.xlsx beside it), or with --all a folder
        #[arg(long)]
        out: Option<PathBuf>,
        /// k of the marts' disclosure control, named in the legend (as `aggregate` used it)
        #[arg(long, env = "PALAUTE_MIN_N", default_value_t = DEFAULT_MIN_N)]
        min_n: u64,
    },
    /// Write a researcher's extract package (see docs/extracts.md); `extract verify DIR` derives
    /// it again and compares the bytes
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Extract {
        #[command(subcommand)]
        verify: Option<ExtractCmd>,
        #[command(flatten)]
        w: WarehouseArg,
        /// The extract spec (pipelines/extracts/*.yaml)
        #[arg(required = true)]
        spec: Option<PathBuf>,
        /// The package's folder (created; a package there is replaced)
        #[arg(long, required = true)]
        out: Option<PathBuf>,
    },
    /// Try to recover suppressed values from the published marts; exit 5 listing any found
    AuditDisclosure {
        #[command(flatten)]
        w: WarehouseArg,
        #[arg(long)]
        json: bool,
    },
    /// Validate pipelines and show the plan of their next run; writes nothing
    Check {
        #[command(flatten)]
        p: Pipelines,
        #[command(flatten)]
        w: WarehouseArg,
    },
    /// Query the warehouse with SQL (DataFusion); every table is registered by its name
    Sql {
        #[command(flatten)]
        w: WarehouseArg,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Write the result to this file instead of standard output
        #[arg(long)]
        output: Option<PathBuf>,
        /// Read every table as ledger row SEQ left it committed (`palaute history` lists them)
        #[arg(long, value_name = "SEQ")]
        as_of: Option<i64>,
        query: String,
    },
    /// List runs from the ledger
    History {
        #[command(flatten)]
        w: WarehouseArg,
        #[arg(long)]
        pipeline: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The table versions of the last committed run: where an external Delta reader (DuckDB,
    /// polars, Spark) opens each table to see what `palaute sql` sees
    Versions {
        #[command(flatten)]
        w: WarehouseArg,
        #[arg(long)]
        json: bool,
    },
    /// Generate the demo exports, run the demo pipelines and show the result
    Demo {
        #[arg(long, default_value = "./demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Generate data only: the demo's exports and pipelines, or a benchmark export
    Generate {
        #[arg(value_enum)]
        kind: GenKind,
        /// Folder (demo) or file (bench)
        #[arg(long)]
        out: PathBuf,
        /// Rows of a benchmark export
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Measure the pipeline on a generated wide export (see README: Performance)
    Bench(palaute::ops::bench::BenchArgs),
    /// Write a keying template for paper forms (channel paper), and optionally the pipeline that
    /// loads filled templates strictly
    Template {
        /// Instrument code (schemas/instruments/)
        instrument: String,
        /// Instrument version (default: the latest)
        #[arg(long)]
        version: Option<String>,
        #[arg(long, value_enum, default_value = "xlsx")]
        format: TemplateFormat,
        /// Language of the header texts: fi, sv or en
        #[arg(long, default_value = "fi")]
        language: String,
        /// The template file (default: <instrument>_template.<format>)
        #[arg(long)]
        output: Option<PathBuf>,
        /// Also write a pipeline file that loads filled templates from the folder --location
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// The folder (relative to the pipeline file) or s3:// prefix filled templates are saved in
        #[arg(long, default_value = "paper")]
        location: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TemplateFormat {
    Csv,
    Xlsx,
}

#[derive(Clone, Copy, ValueEnum)]
enum GenKind {
    Demo,
    Bench,
}

fn pipeline_files(p: &Pipelines) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = p.pipelines.clone();
    if let Some(dir) = &p.all {
        files.extend(config::pipelines_in(dir)?);
    }
    if files.is_empty() {
        anyhow::bail!(UsageError("give pipeline files, or --all DIR".into()));
    }
    Ok(files)
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn load_all(files: &[PathBuf]) -> anyhow::Result<Vec<Pipeline>> {
    let mut out: Vec<Pipeline> = Vec::new();
    for f in files {
        let p = config::load_pipeline(f)?;
        if let Some(prev) = out.iter().find(|x| x.name == p.name) {
            anyhow::bail!(UsageError(format!(
                "{} and {} both name the pipeline '{}'",
                prev.file.display(),
                f.display(),
                p.name
            )));
        }
        out.push(p);
    }
    Ok(out)
}

/// Recompute the marts of the months `from`..=`to` after a run or a backfill and print the
/// result; returns the exit code.
async fn aggregate_after(
    wh: &Warehouse,
    from: &str,
    to: &str,
    (rules, adjustment): (Rules, &casemix::Settings),
    json: bool,
) -> i32 {
    let o = AggregateOptions {
        from: Some(from.to_string()),
        to: Some(to.to_string()),
        rules,
        adjustment: adjustment.clone(),
        ..AggregateOptions::default()
    };
    match aggregate(wh, &o).await {
        Ok(r) => {
            if json {
                println!("{}", serde_json::json!({ "aggregate": r }));
            } else {
                print!("{}", palaute::ops::aggregate::render(&r));
            }
            0
        }
        Err(e) => {
            say("aggregate", &e);
            e.exit_code()
        }
    }
}

/// Take the warehouse's writer lease, or the exit code to stop with. The warehouse returned
/// commits only while the lease is held (it is fenced by it).
async fn writer_lease(wh: Warehouse, purpose: &str) -> Result<(Warehouse, Lease), i32> {
    match Lease::acquire(&wh, purpose).await {
        Ok(l) => Ok((wh.fenced(l.fence()), l)),
        Err(e) => {
            say("", &e);
            Err(exit::code_of(&e))
        }
    }
}

/// Print an error that ended (part of) a command, its causes once each, no backtrace.
fn say(context: &str, e: &(dyn std::error::Error + 'static)) {
    tracing::debug!(error = ?e, "{context} failed");
    if context.is_empty() {
        eprintln!("palaute: {}", exit::render(e));
    } else {
        eprintln!("palaute: {context}: {}", exit::render(e));
    }
}

fn init_logs(format: LogFormat) {
    let interactive = std::io::stderr().is_terminal();
    let default = if interactive { "warn" } else { "info" };
    // the Delta kernel logs, with a backtrace, each error it also returns to palaute, which
    // says it once: its own lines only with RUST_LOG
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("palaute={default},warn,buoyant_kernel=off"))
    });
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.with_ansi(interactive).init(),
    }
}

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn main_inner(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::Run {
            p,
            w,
            json,
            no_aggregate,
            disclosure,
        } => {
            let rules = disclosure.rules()?;
            let adjustment = disclosure.adjustment()?;
            let pipelines = load_all(&pipeline_files(&p)?)?;
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), true)?;
            let opts = RunOptions {
                dry_run: false,
                progress: !json,
                ..RunOptions::default()
            };
            let names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
            let (wh, lease) = match writer_lease(wh, &format!("run {}", names.join(","))).await {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let mut code = 0;
            let mut periods = std::collections::BTreeSet::new();
            // restored on taking the lease over: the first run's report says so
            let mut restored = lease.restored().to_vec();
            for p in &pipelines {
                match run_pipeline(&wh, p, &opts).await {
                    Ok(mut r) => {
                        r.restored.splice(0..0, std::mem::take(&mut restored));
                        // the marts are computed from survey responses only
                        if p.kind == config::PipelineKind::Survey {
                            periods.extend(r.periods.iter().cloned());
                        }
                        if json {
                            let v = serde_json::json!({
                                "pipeline": r.pipeline, "run_id": r.run_id, "status": r.status,
                                "rows": r.counts, "seconds": r.seconds, "reasons": r.reasons,
                                "table_versions": r.table_versions, "peak_rss_mb": peak_rss_mb(),
                                "warnings": r.warnings.iter().cloned().chain(r.objects.iter().flat_map(|o| o.warnings.iter().map(|w| format!("{}: {w}", o.name)))).collect::<Vec<_>>(),
                                "resumed": r.objects.iter().filter_map(|o| o.resumed_from.as_ref().map(|(from, rows)| {
                                    serde_json::json!({"object": o.name, "from": from, "rows_not_read": rows})
                                })).collect::<Vec<_>>(),
                            });
                            println!("{v}");
                        } else {
                            print!("{}", render_summary(&r));
                        }
                    }
                    Err(e) => {
                        say(&p.name, &e);
                        code = code.max(e.exit_code());
                    }
                }
            }
            if !no_aggregate {
                // the years these runs changed, and those an earlier run left owed (killed
                // during its aggregation, or run with --no-aggregate)
                let mut years = palaute::warehouse::owed::years_of(&periods);
                match palaute::warehouse::owed::read(&wh).await {
                    Ok(o) => years.extend(o.years),
                    Err(e) => say("marts owed", &e),
                }
                if let (Some(first), Some(last)) = (years.first(), years.last()) {
                    let (from, to) = (format!("{first}-01"), format!("{last}-12"));
                    code = code
                        .max(aggregate_after(&wh, &from, &to, (rules, &adjustment), json).await);
                }
            }
            lease.release().await;
            Ok(code)
        }
        Cmd::Aggregate {
            w,
            period_types,
            from,
            to,
            levels,
            disclosure,
            sql_cubes,
            marts,
            fresh_cubes,
            json,
        } => {
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
            let o = AggregateOptions {
                period_types,
                from,
                to,
                levels,
                rules: disclosure.rules()?,
                adjustment: disclosure.adjustment()?,
                sql_cubes,
                marts,
                fresh_cubes,
            };
            let (wh, lease) = match writer_lease(wh, "aggregate").await {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let result = aggregate(&wh, &o).await;
            lease.release().await;
            match result {
                Ok(r) => {
                    if json {
                        println!("{}", serde_json::to_string(&r)?);
                    } else {
                        print!("{}", palaute::ops::aggregate::render(&r));
                    }
                    Ok(0)
                }
                Err(e) => {
                    say("aggregate", &e);
                    Ok(e.exit_code())
                }
            }
        }
        Cmd::Optimize { w, json } => {
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
            let (wh, lease) = match writer_lease(wh, "optimize").await {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let result = palaute::ops::optimize::optimize(&wh).await;
            lease.release().await;
            match result {
                Ok(r) => {
                    if json {
                        println!("{}", serde_json::to_string(&r)?);
                    } else {
                        print!("{}", palaute::ops::optimize::render(&r));
                    }
                    Ok(0)
                }
                Err(e) => {
                    say("optimize", &e);
                    Ok(e.exit_code())
                }
            }
        }
        Cmd::Rekey { w } => {
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
            let (wh, lease) = match writer_lease(wh, "rekey").await {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let result = palaute::ops::optimize::rekey(&wh).await;
            lease.release().await;
            match result {
                Ok(Some(r)) => {
                    let rows: u64 = r.tables.values().map(|t| t.rows_rewritten).sum();
                    println!(
                        "rekey {}: {rows} rows' keys now keyed with the warehouse's secret ({:.1} s)",
                        r.run_id, r.seconds
                    );
                    Ok(0)
                }
                Ok(None) => {
                    println!("the warehouse's response keys are keyed already: nothing to do");
                    Ok(0)
                }
                Err(e) => {
                    say("rekey", &e);
                    Ok(e.exit_code())
                }
            }
        }
        Cmd::Schedule {
            w,
            pipelines,
            max_retries,
            backoff_seconds,
            grace_seconds,
        } => {
            let o = palaute::ops::schedule::ScheduleOptions {
                pipelines,
                warehouse: config::resolve_warehouse(w.warehouse.as_deref()),
                max_retries,
                backoff: std::time::Duration::from_secs_f64(backoff_seconds.max(0.0)),
                grace: std::time::Duration::from_secs(grace_seconds),
            };
            palaute::ops::schedule::schedule(&o).await?;
            Ok(0)
        }
        Cmd::Backfill {
            pipeline,
            from,
            to,
            w,
            no_aggregate,
            disclosure,
        } => {
            use palaute::marts::periods::parse_month;
            if parse_month(&from).is_none() || parse_month(&to).is_none() || from > to {
                anyhow::bail!(UsageError(format!(
                    "--from {from} --to {to}: give two months YYYY-MM, the first not after the last"
                )));
            }
            let rules = disclosure.rules()?;
            let adjustment = disclosure.adjustment()?;
            let p = config::load_pipeline(&pipeline)?;
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), true)?;
            let (wh, lease) = match writer_lease(wh, &format!("backfill {}", p.name)).await {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let opts = RunOptions {
                dry_run: false,
                progress: true,
                backfill: Some((from.clone(), to.clone())),
            };
            let mut code = 0;
            match run_pipeline(&wh, &p, &opts).await {
                Ok(r) => {
                    print!("{}", render_summary(&r));
                    println!(
                        "  backfill {from}..{to}: {} source rows of other periods left alone, {} stored rows the source no longer holds removed",
                        r.outside_range, r.removed
                    );
                    if !no_aggregate
                        && p.kind == config::PipelineKind::Survey
                        && r.status != palaute::warehouse::RunStatus::NoChange
                    {
                        let mut first = from.clone();
                        let mut last = to.clone();
                        if let (Some(a), Some(b)) = (r.periods.first(), r.periods.last()) {
                            first = first.min(a.clone());
                            last = last.max(b.clone());
                        }
                        code =
                            aggregate_after(&wh, &first, &last, (rules, &adjustment), false).await;
                    }
                }
                Err(e) => {
                    say(&p.name, &e);
                    code = e.exit_code();
                }
            }
            lease.release().await;
            Ok(code)
        }
        Cmd::Status {
            w,
            pipelines,
            at,
            json,
        } => {
            let ps = load_all(&config::pipelines_in(&pipelines)?)?;
            let wh =
                match Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false) {
                    Ok(wh) => Some(wh),
                    Err(WarehouseError::Missing(_)) => None,
                    Err(e) => return Err(e.into()),
                };
            let rows =
                palaute::ops::status::status(wh.as_ref(), &ps, at.unwrap_or_else(chrono::Utc::now))
                    .await?;
            let owed = match &wh {
                Some(wh) => palaute::warehouse::owed::read(wh).await?,
                None => Default::default(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", palaute::ops::status::render(&rows));
            }
            if let Some(line) = palaute::ops::status::render_owed(&owed) {
                eprintln!("palaute: {line}");
            }
            let stale = rows
                .iter()
                .any(|r| r.freshness == palaute::ops::status::Freshness::Error);
            Ok(if stale { exit::FAILURE } else { 0 })
        }
        Cmd::Rollback {
            w,
            to_run,
            to_version,
        } => {
            use palaute::ops::rollback::{RollbackError, Target, rollback};
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
            let target = match (to_run, to_version) {
                (Some(r), _) => Target::Run(r),
                (None, Some(v)) => Target::Seq(v),
                (None, None) => unreachable!("clap requires one"),
            };
            let (wh, lease) = match writer_lease(wh, "rollback").await {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let result = rollback(&wh, &target).await;
            lease.release().await;
            match result {
                Ok(r) => {
                    println!(
                        "rolled back to seq {} (run {}): {} tables restored",
                        r.to_seq,
                        r.to_run,
                        r.restored.len()
                    );
                    Ok(0)
                }
                Err(RollbackError::Target(m)) => {
                    eprintln!("palaute: rollback: {m}");
                    Ok(exit::CONFIG)
                }
                Err(e) => {
                    say("rollback", &e);
                    Ok(match e {
                        RollbackError::Warehouse(w) => w.exit_code(),
                        RollbackError::Target(_) => exit::CONFIG,
                    })
                }
            }
        }
        Cmd::Report {
            w,
            area,
            definition,
            all,
            period_type,
            period,
            instrument,
            language,
            out,
            min_n,
        } => {
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
            let Some(period_type) = palaute::marts::periods::PeriodType::parse(&period_type) else {
                eprintln!(
                    "palaute: report: --period-type {period_type}: month, bimonth, quarter, half or year"
                );
                return Ok(exit::CONFIG);
            };
            let o = palaute::report::ReportOptions {
                instrument,
                period_type,
                period,
                language,
                k: min_n as usize,
            };
            if let Some(file) = definition {
                let result = match palaute::report::definition::ReportDefinition::load(&file) {
                    Ok(d) => palaute::report::definition::run(&wh, &d, o.period.clone(), o.k).await,
                    Err(e) => Err(e),
                };
                return match result {
                    Ok(names) => {
                        for n in names {
                            println!("{n}");
                        }
                        Ok(0)
                    }
                    Err(e) => {
                        say("report", &e);
                        Ok(e.exit_code())
                    }
                };
            }
            let result = match (area, all) {
                (Some(a), _) => match a.parse::<palaute::report::Area>() {
                    Ok(area) => {
                        let out = out.unwrap_or_else(|| {
                            PathBuf::from(format!("report-{}-{}.html", area.level, area.code))
                        });
                        palaute::report::one(&wh, &area, &o, &out).await
                    }
                    Err(e) => Err(palaute::report::ReportError::Usage(e)),
                },
                (None, Some(level)) => {
                    let dir = out.unwrap_or_else(|| PathBuf::from("reports"));
                    palaute::report::all(&wh, &level, &o, &dir).await
                }
                (None, None) => unreachable!("clap requires one"),
            };
            match result {
                Ok(files) => {
                    for f in files {
                        println!("{}", f.display());
                    }
                    Ok(0)
                }
                Err(e) => {
                    say("report", &e);
                    Ok(e.exit_code())
                }
            }
        }
        Cmd::Extract {
            verify,
            w,
            spec,
            out,
        } => match verify {
            Some(ExtractCmd::Verify {
                w,
                dir,
                secret_file,
            }) => {
                let wh =
                    Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
                match palaute::extract::verify(&wh, &dir, secret_file.as_deref()).await {
                    Ok(lines) => {
                        for l in lines {
                            println!("{l}");
                        }
                        println!("{}: identical to what the warehouse gives", dir.display());
                        Ok(0)
                    }
                    Err(e) => {
                        say("extract verify", &e);
                        Ok(e.exit_code())
                    }
                }
            }
            None => {
                let (spec, out) = (spec.expect("required"), out.expect("required"));
                let wh =
                    Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
                let (wh, lease) = match writer_lease(wh, "extract").await {
                    Ok(l) => l,
                    Err(code) => return Ok(code),
                };
                let result = palaute::extract::run(&wh, &spec, &out).await;
                lease.release().await;
                match result {
                    Ok(r) => {
                        print!("{}", palaute::extract::summary(&r, &out));
                        Ok(0)
                    }
                    Err(e) => {
                        say("extract", &e);
                        Ok(e.exit_code())
                    }
                }
            }
        },
        Cmd::Vacuum {
            w,
            retention,
            force,
        } => {
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
            let (wh, lease) = match writer_lease(wh, "vacuum").await {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let result = palaute::ops::vacuum::vacuum(&wh, retention, force).await;
            lease.release().await;
            match result {
                Ok(r) => {
                    println!(
                        "vacuum (retention {} h): {} files deleted",
                        r.retention_hours,
                        r.deleted.values().sum::<usize>()
                    );
                    Ok(0)
                }
                Err(e) => {
                    say("vacuum", &e);
                    Ok(e.exit_code())
                }
            }
        }
        Cmd::AuditDisclosure { w, json } => {
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
            let r = palaute::ops::audit::audit(&wh).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", palaute::ops::audit::render(&r));
            }
            Ok(if r.passed() { 0 } else { exit::DISCLOSURE })
        }
        Cmd::Check { p, w } => {
            let pipelines = load_all(&pipeline_files(&p)?)?;
            let spec = config::resolve_warehouse(w.warehouse.as_deref());
            let mut scratch = None;
            let wh = match Warehouse::open(&spec, false) {
                Ok(wh) => wh,
                // no warehouse yet: plan against an empty folder, removed afterwards
                Err(WarehouseError::Missing(_)) => {
                    let d =
                        std::env::temp_dir().join(format!("palaute-empty-{}", std::process::id()));
                    let wh = Warehouse::open(&d.display().to_string(), true)?;
                    scratch = Some(d);
                    wh
                }
                Err(e) => return Err(e.into()),
            };
            let mut code = 0;
            for p in &pipelines {
                let opts = RunOptions {
                    dry_run: true,
                    progress: false,
                    ..RunOptions::default()
                };
                match run_pipeline(&wh, p, &opts).await {
                    Ok(r) => {
                        print!("{}", check::render(&r));
                        code = code.max(check::exit_code(&r));
                    }
                    Err(e) => {
                        say(&p.name, &e);
                        code = code.max(e.exit_code());
                    }
                }
            }
            if let Some(d) = scratch {
                let _ = std::fs::remove_dir_all(d);
            }
            Ok(code)
        }
        Cmd::Sql {
            w,
            format,
            output,
            as_of,
            query,
        } => {
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
            let batches = sql::query_as_of(&wh, &query, as_of).await?;
            sql::write_result(&batches, format, output.as_deref())?;
            Ok(0)
        }
        Cmd::History { w, pipeline, json } => {
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
            let runs = history::runs(&wh, pipeline.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print!("{}", history::render(&runs));
            }
            Ok(0)
        }
        Cmd::Versions { w, json } => {
            let wh = Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), false)?;
            let v = history::versions(&wh).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", history::render_versions(&v));
            }
            Ok(0)
        }
        Cmd::Demo { dir, seed } => {
            let out = demo::run(&dir, seed).await?;
            print!("{out}");
            Ok(0)
        }
        Cmd::Generate {
            kind,
            out,
            rows,
            seed,
        } => {
            match kind {
                GenKind::Demo => demo::generate(&out, seed, palaute::demo::county::MONTHS.len())?,
                GenKind::Bench => palaute::demo::bench_data::write(&out, rows, seed)?,
            }
            println!("wrote {}", out.display());
            Ok(0)
        }
        Cmd::Template {
            instrument,
            version,
            format,
            language,
            output,
            pipeline,
            location,
        } => {
            use palaute::ops::template;
            let catalog = palaute::schema::Catalog::embedded();
            let version = match (version, catalog.instrument(&instrument)) {
                (Some(v), _) => v,
                (None, Ok(i)) => i
                    .versions
                    .last()
                    .map(|v| v.version.clone())
                    .unwrap_or_default(),
                (None, Err(e)) => {
                    eprintln!("palaute: {e}");
                    return Ok(exit::CONFIG);
                }
            };
            let cols = match template::columns(catalog, &instrument, &version, &language) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("palaute: {e}");
                    return Ok(exit::CONFIG);
                }
            };
            let xlsx = format == TemplateFormat::Xlsx;
            let out = output.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "{instrument}_template.{}",
                    if xlsx { "xlsx" } else { "csv" }
                ))
            });
            if xlsx {
                template::write_xlsx(&out, &cols, &language)?;
            } else {
                template::write_csv(&out, &cols)?;
            }
            println!(
                "wrote {} ({} columns, instrument {instrument} version {version}, channel paper)",
                out.display(),
                cols.len()
            );
            if let Some(p) = pipeline {
                // the file's name, as a valid pipeline name
                let name: String = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("paper")
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let yaml =
                    template::pipeline_yaml(&name, &instrument, &version, &cols, xlsx, &location);
                std::fs::write(&p, yaml).with_context(|| format!("writing {}", p.display()))?;
                println!(
                    "wrote {} (loads filled templates from {location})",
                    p.display()
                );
            }
            Ok(0)
        }
        Cmd::Bench(args) => {
            palaute::ops::bench::run(&args).await?;
            Ok(0)
        }
    }
}

/// The exit code of an error that ended a command: a bad command line, else what its kind and
/// causes decide ([`exit::code_of`]).
fn code_of(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<UsageError>().is_some() {
        exit::CONFIG
    } else {
        exit::code_of(e.as_ref())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime");
    let result = rt.and_then(|rt| rt.block_on(main_inner(cli)));
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            say("", e.as_ref());
            ExitCode::from(code_of(&e) as u8)
        }
    }
}
