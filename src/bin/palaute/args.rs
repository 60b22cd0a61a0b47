//! The command line's arguments: one struct per command (clap), and the arguments they share.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use palaute::marts::casemix;
use palaute::marts::disclosure::{DEFAULT_MIN_N, DEFAULT_RELIABLE_N, Rules};
use palaute::marts::periods::PeriodType;
use palaute::ops::sql::OutputFormat;

#[derive(Parser)]
#[command(
    name = "palaute",
    version,
    about = "Client feedback ETL and warehouse for Finnish social and health services"
)]
pub struct Cli {
    /// Log lines as text or JSON (stderr). On a terminal a progress bar is shown instead.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct WarehouseArg {
    /// The warehouse: a folder or s3://bucket/prefix (default: $PALAUTE_WAREHOUSE, else ./warehouse)
    #[arg(long)]
    pub warehouse: Option<String>,
}

#[derive(clap::Args)]
pub struct Pipelines {
    /// Pipeline files
    pub pipelines: Vec<PathBuf>,
    /// Every pipeline (*.yaml) in this folder
    #[arg(long)]
    pub all: Option<PathBuf>,
}

/// Disclosure control of the marts (set the environment variables once for every command).
#[derive(clap::Args)]
pub struct DisclosureArgs {
    /// k: every figure of a cell with 0 < n < k is suppressed
    #[arg(long, env = "PALAUTE_MIN_N", default_value_t = DEFAULT_MIN_N)]
    pub min_n: u64,
    /// figures from fewer answers than this carry low_reliability = true
    #[arg(long, env = "PALAUTE_RELIABLE_N", default_value_t = DEFAULT_RELIABLE_N)]
    pub reliable_n: u64,
    /// count "can't say" in the denominator of shares (the FFT convention)
    #[arg(long, env = "PALAUTE_CANT_SAY_IN_DENOMINATOR")]
    pub cant_say_in_denominator: bool,
    /// publish no case-mix adjusted figures (and no model coefficients)
    #[arg(long, env = "PALAUTE_NO_ADJUSTMENT")]
    pub no_adjustment: bool,
    /// months in the national pool of a period's case-mix model, ending with the period's last
    /// month (1 to 36)
    #[arg(long, env = "PALAUTE_ADJUSTMENT_WINDOW", default_value_t = casemix::DEFAULT_WINDOW_MONTHS)]
    pub adjustment_window: u32,
    /// channels that are no sample (self-selected answers) and stay out of the models' fit,
    /// comma separated; `none` for none
    #[arg(
        long,
        env = "PALAUTE_FIT_EXCLUDE_CHANNELS",
        value_delimiter = ',',
        default_values_t = casemix::DEFAULT_FIT_EXCLUDE_CHANNELS.map(String::from)
    )]
    pub fit_exclude_channel: Vec<String>,
}

impl DisclosureArgs {
    pub fn rules(&self) -> anyhow::Result<Rules> {
        if self.min_n < 1 {
            anyhow::bail!(UsageError("--min-n must be at least 1".into()));
        }
        Ok(Rules {
            min_n: self.min_n,
            reliable_n: self.reliable_n,
            cant_say_in_denominator: self.cant_say_in_denominator,
        })
    }

    pub fn adjustment(&self) -> anyhow::Result<casemix::Settings> {
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
pub enum ExtractCmd {
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
pub enum Cmd {
    /// Run pipelines into the warehouse
    Run(RunArgs),
    /// Compute the comparison marts (item_scores, recommendation, response_counts, selections)
    /// with disclosure control, replacing the years recomputed
    Aggregate(AggregateArgs),
    /// Compact each partition of the data tables into one Parquet file (one atomic commit)
    Optimize(OptimizeArgs),
    /// Migrate a warehouse whose response keys were made without a secret (palaute before 0.2):
    /// every data file is rewritten with its keys keyed by the warehouse's secret (one atomic
    /// operation; PALAUTE_KEY_SECRET, else a new secret in the warehouse's _keys/)
    Rekey(RekeyArgs),
    /// Run every scheduled pipeline of a folder when its cron expression is due (until SIGTERM)
    Schedule(ScheduleArgs),
    /// Re-read a pipeline's sources and replace its rows of these periods (one atomic run)
    Backfill(BackfillArgs),
    /// Per pipeline: the last run, the next due time and the freshness of its source (exit 1
    /// when a pipeline is past its error window)
    Status(StatusArgs),
    /// Restore every table to the versions of an earlier ledger row (`palaute history`)
    Rollback(RollbackArgs),
    /// Delete files that no table version within the retention needs
    Vacuum(VacuumArgs),
    /// Write the interim report of an area against the nation (HTML with an XLSX companion),
    /// from the published marts; `--all LEVEL` one per area of a level, with an index page
    Report(ReportArgs),
    /// Write a researcher's extract package (see docs/extracts.md); `extract verify DIR` derives
    /// it again and compares the bytes
    Extract(ExtractArgs),
    /// Try to recover suppressed values from the published marts; exit 5 listing any found
    AuditDisclosure(AuditDisclosureArgs),
    /// Validate pipelines and show the plan of their next run; writes nothing
    Check(CheckArgs),
    /// Query the warehouse with SQL (DataFusion); every table is registered by its name
    Sql(SqlArgs),
    /// List runs from the ledger
    History(HistoryArgs),
    /// The table versions of the last committed run: where an external Delta reader (DuckDB,
    /// polars, Spark) opens each table to see what `palaute sql` sees
    Versions(VersionsArgs),
    /// Generate the demo exports, run the demo pipelines and show the result
    Demo(DemoArgs),
    /// Generate data only: the demo's exports and pipelines, or a benchmark export
    Generate(GenerateArgs),
    /// Measure the pipeline on a generated wide export (docs/performance.md)
    Bench(palaute::ops::bench::BenchArgs),
    /// Write a keying template for paper forms (channel paper), and optionally the pipeline that
    /// loads filled templates strictly
    Template(TemplateArgs),
    /// Serve the warehouse read-only over HTTP and the PostgreSQL protocol to the users of an
    /// access file, each seeing what their role allows (docs/serve.md); `serve hash-password`
    /// makes the access file's hashes
    Serve(ServeArgs),
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub p: Pipelines,
    #[command(flatten)]
    pub w: WarehouseArg,
    /// Print each run's summary as one JSON line
    #[arg(long)]
    pub json: bool,
    /// Do not recompute the marts for the periods the runs changed
    #[arg(long)]
    pub no_aggregate: bool,
    #[command(flatten)]
    pub disclosure: DisclosureArgs,
}

#[derive(clap::Args)]
pub struct AggregateArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    /// Period types to compute (repeatable; default: all five). Types the marts already
    /// hold for those years are recomputed too.
    #[arg(long = "period-type", value_enum)]
    pub period_types: Vec<PeriodType>,
    /// First month (YYYY-MM); the range widens to whole years
    #[arg(long)]
    pub from: Option<String>,
    /// Last month (YYYY-MM)
    #[arg(long)]
    pub to: Option<String>,
    /// Geography levels to publish, comma separated (default: municipality, local_area,
    /// county, cooperation_area, nation; the nation is always included)
    #[arg(long, value_delimiter = ',')]
    pub levels: Vec<String>,
    #[command(flatten)]
    pub disclosure: DisclosureArgs,
    /// Run the reference SQL definitions — the fine cubes (sql/cube_*.sql over the whole
    /// tables) and sql/rollup.sql — instead of the partition-wise cubes and the one-pass
    /// rollup (slower and memory-hungry; a test checks both give identical marts)
    #[arg(long)]
    pub sql_cubes: bool,
    /// Marts to recompute, comma separated (default: all four); the others keep what they
    /// hold
    #[arg(long, value_delimiter = ',')]
    pub marts: Vec<String>,
    /// Compute the cubes of every partition, even of those unchanged since an earlier
    /// aggregation (whose cubes are otherwise taken from the warehouse's `_cubes/` cache)
    #[arg(long)]
    pub fresh_cubes: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct OptimizeArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct RekeyArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
}

#[derive(clap::Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    /// The folder of pipeline files (re-read while running)
    #[arg(long, default_value = "./pipelines")]
    pub pipelines: PathBuf,
    /// Retries of a transient failure (exit 4 or 6) before the next due time
    #[arg(long, default_value_t = 5)]
    pub max_retries: u32,
    /// The first retry's delay in seconds (doubled each time, plus up to 50 % jitter)
    #[arg(long, default_value_t = 30.0)]
    pub backoff_seconds: f64,
    /// On SIGTERM / SIGINT, how long running runs may take to finish
    #[arg(long, default_value_t = 120)]
    pub grace_seconds: u64,
}

#[derive(clap::Args)]
pub struct BackfillArgs {
    /// The pipeline file
    pub pipeline: PathBuf,
    /// First month (YYYY-MM)
    #[arg(long)]
    pub from: String,
    /// Last month (YYYY-MM)
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub w: WarehouseArg,
    /// Do not recompute the marts for those periods
    #[arg(long)]
    pub no_aggregate: bool,
    #[command(flatten)]
    pub disclosure: DisclosureArgs,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    /// The folder of pipeline files
    #[arg(long, default_value = "./pipelines")]
    pub pipelines: PathBuf,
    /// Evaluate at this time (RFC 3339) instead of now
    #[arg(long)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    /// The run id to go back to
    #[arg(
        long,
        conflicts_with = "to_version",
        required_unless_present = "to_version"
    )]
    pub to_run: Option<String>,
    /// The warehouse version (the ledger's seq) to go back to
    #[arg(long)]
    pub to_version: Option<i64>,
}

#[derive(clap::Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    /// Keep what time travel needs for this many hours
    #[arg(long, default_value_t = palaute::ops::vacuum::DEFAULT_RETENTION_HOURS)]
    pub retention: u64,
    /// Delete also files that recorded extracts still need (their `extract verify` then fails)
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    /// The area: LEVEL:CODE (county:06, municipality:837, cooperation_area:2, local_area:X)
    #[arg(long, conflicts_with_all = ["all", "definition"], required_unless_present_any = ["all", "definition"])]
    pub area: Option<String>,
    /// Every report of a report definition (pipelines/reports/*.yaml; docs/reports.md)
    #[arg(long, conflicts_with = "all")]
    pub definition: Option<PathBuf>,
    /// One report per area of this level, into the folder --out
    #[arg(long)]
    pub all: Option<String>,
    /// month, bimonth (default: the interim reports), quarter, half or year
    #[arg(long, default_value = "bimonth")]
    pub period_type: String,
    /// The period (2025-B2, 2025-Q2, 2025); default: the last complete one of the type
    #[arg(long)]
    pub period: Option<String>,
    #[arg(long, default_value = "thl_national")]
    pub instrument: String,
    /// fi, sv or en
    #[arg(long, default_value = "fi")]
    pub language: String,
    /// The page (FILE.html; its workbook FILE.xlsx beside it), or with --all a folder
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// k of the marts' disclosure control, named in the legend (as `aggregate` used it)
    #[arg(long, env = "PALAUTE_MIN_N", default_value_t = DEFAULT_MIN_N)]
    pub min_n: u64,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ExtractArgs {
    #[command(subcommand)]
    pub verify: Option<ExtractCmd>,
    #[command(flatten)]
    pub w: WarehouseArg,
    /// The extract spec (pipelines/extracts/*.yaml)
    #[arg(required = true)]
    pub spec: Option<PathBuf>,
    /// The package's folder (created; a package there is replaced)
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub action: Option<ServeCmd>,
    #[command(flatten)]
    pub w: WarehouseArg,
    /// The access file: users, roles, areas and hashed secrets (pipelines/access/)
    #[arg(long, required = true)]
    pub access: Option<PathBuf>,
    /// Serve HTTP on this address (port 0: any free port, printed on stdout)
    #[arg(long)]
    pub http: Option<std::net::SocketAddr>,
    /// Serve the PostgreSQL wire protocol on this address, for psql, DBeaver, R, Python and BI
    /// tools (port 0: any free port, printed on stdout)
    #[arg(long)]
    pub pg: Option<std::net::SocketAddr>,
    /// TLS certificate chain (PEM); required on any address but loopback
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Client connections open at once
    #[arg(long, default_value_t = 64)]
    pub max_connections: usize,
    /// Statements running at once (others wait up to --query-seconds for a slot)
    #[arg(long, default_value_t = 4)]
    pub max_queries: usize,
    /// Time limit of one statement
    #[arg(long, default_value_t = 60)]
    pub query_seconds: u64,
    /// Memory limit of one statement, in MiB
    #[arg(long, default_value_t = 512)]
    pub query_memory_mib: usize,
    /// How often the ledger (for a new run's tables) and the access file are looked at
    #[arg(long, default_value_t = 5.0)]
    pub refresh_seconds: f64,
}

#[derive(Subcommand)]
pub enum ServeCmd {
    /// Read a password (or with --token, a bearer token) from standard input and print the line
    /// to put in the access file: a SCRAM-SHA-256 verifier, or an argon2 hash
    HashPassword(HashPasswordArgs),
}

#[derive(clap::Args)]
pub struct HashPasswordArgs {
    /// Hash a bearer token (for HTTP) instead of a password
    #[arg(long)]
    pub token: bool,
    /// Make a new token for this user instead of reading one (printed once, with its hash)
    #[arg(long, requires = "token")]
    pub new_for: Option<String>,
}

#[derive(clap::Args)]
pub struct AuditDisclosureArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub p: Pipelines,
    #[command(flatten)]
    pub w: WarehouseArg,
}

#[derive(clap::Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Write the result to this file instead of standard output
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Read every table as ledger row SEQ left it committed (`palaute history` lists them)
    #[arg(long, value_name = "SEQ")]
    pub as_of: Option<i64>,
    pub query: String,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    #[arg(long)]
    pub pipeline: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct VersionsArgs {
    #[command(flatten)]
    pub w: WarehouseArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "./demo")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    #[arg(value_enum)]
    pub kind: GenKind,
    /// Folder (demo) or file (bench)
    #[arg(long)]
    pub out: PathBuf,
    /// Rows of a benchmark export
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(clap::Args)]
pub struct TemplateArgs {
    /// Instrument code (schemas/instruments/)
    pub instrument: String,
    /// Instrument version (default: the latest)
    #[arg(long)]
    pub version: Option<String>,
    #[arg(long, value_enum, default_value = "xlsx")]
    pub format: TemplateFormat,
    /// Language of the header texts: fi, sv or en
    #[arg(long, default_value = "fi")]
    pub language: String,
    /// The template file (default: <instrument>_template.<format>)
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Also write a pipeline file that loads filled templates from the folder --location
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// The folder (relative to the pipeline file) or s3:// prefix filled templates are saved in
    #[arg(long, default_value = "paper")]
    pub location: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TemplateFormat {
    Csv,
    Xlsx,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GenKind {
    Demo,
    Bench,
}

/// A command line that cannot be carried out as given (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
