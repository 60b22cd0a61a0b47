//! `palaute run`: one pipeline run as one atomic outcome, planned, then executed.
//!
//! 1. Tables left ahead of the ledger by a run that died are restored (see `warehouse`).
//! 2. `plan`: the source is listed; objects whose name and fingerprint the ledger already
//!    holds for this pipeline are skipped without being read.
//! 3. `object`: the other objects are read newest first (`read` reads ahead on a thread of
//!    its own). Each row is mapped ([`Normalizer::head`](crate::normalize::Normalizer::head)),
//!    then deduplicated by its response key (`dedupe`): a key already seen in this run is a
//!    duplicate (the newest object wins); a key already in the warehouse (`stored`) with the
//!    same hash of its mapped fields is a duplicate; with another hash it is an update. Only the
//!    partitions the new rows fall into are looked up, so the cost grows with the new data, not
//!    with the warehouse. A row that cannot be mapped goes to quarantine with its reasons; a row
//!    quarantined with the same content by an earlier run or from another object counts as a
//!    duplicate, every broken row of an object as quarantined. Rows to write go to the
//!    `writers`. An object that begins with the bytes of an object whose rows are all still as
//!    that object left them (see `plan::resume_points`) is read from the point where those
//!    bytes end.
//! 4. If more rows than `quality.max_quarantined_pct` allows were quarantined, the run fails and
//!    nothing is committed. Otherwise `commit`: the files holding updated responses are
//!    rewritten without them, every table is committed, and the run's ledger row is appended
//!    last. If anything fails after the first table commit, the committed tables are restored and
//!    the failure is recorded.

mod commit;
mod dedupe;
mod object;
mod plan;
mod read;
mod report;
mod stored;
mod writers;

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::time::Instant;

use chrono::Utc;

pub use plan::{ObjectPlan, ObjectState};
pub use report::{
    RunReport, quarantine_text, reasons_text, render_summary, resumed_text, warnings_text,
};

use crate::config::{Pipeline, PipelineKind};
use crate::format::FormatError;
use crate::schema::Catalog;
use crate::source::{self, SourceError};
use crate::warehouse::ledger::{self, RunRecord, RunStatus};
use crate::warehouse::tables::{ANSWERS, COMMENTS, FEEDBACK, RESPONSES};
use crate::warehouse::{Warehouse, WarehouseError, keys, owed};
use commit::{Failure, commit_run, discard_all};
use dedupe::Ctx;
use object::{Read, Reading, read_objects};
use plan::{History, Plan};
use stored::Stored;

use super::exit;

/// A row's body and its scrubbed open texts (computed in parallel).
type Mapped = (crate::normalize::Body, Vec<crate::privacy::Scrubbed>);

/// The tables holding a pipeline kind's rows by key; the first holds one row per key.
fn keyed_tables(kind: PipelineKind) -> &'static [&'static str] {
    match kind {
        PipelineKind::Survey => &[RESPONSES, ANSWERS, COMMENTS],
        PipelineKind::Feedback => &[FEEDBACK],
    }
}

/// The key column of a keyed table.
fn key_column(table: &str) -> &'static str {
    if table == FEEDBACK {
        "feedback_key"
    } else {
        "response_key"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    #[error(
        "pipeline {pipeline}: {quarantined} of {read} rows ({pct:.1} %) would be quarantined, over the limit of {max} %; nothing was written. Reasons: {reasons}"
    )]
    Quality {
        pipeline: String,
        quarantined: u64,
        read: u64,
        pct: f64,
        max: f64,
        reasons: String,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Format(FormatError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("failpoint {0} (PALAUTE_FAILPOINT): the run stopped on purpose")]
    Failpoint(String),
    #[error("{0}; nothing was written")]
    NotAnExport(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) | RunError::Source(SourceError::NoFolder { .. }) => exit::CONFIG,
            RunError::Format(FormatError::Config(_)) => exit::CONFIG,
            RunError::Quality { .. } | RunError::NotAnExport(_) => exit::QUALITY,
            RunError::Warehouse(e) => e.exit_code(),
            RunError::Source(_) | RunError::Format(_) => exit::ENVIRONMENT,
            RunError::Failpoint(_) => exit::FAILURE,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// plan only: read and map, but write nothing
    pub dry_run: bool,
    /// show a progress bar on an interactive terminal
    pub progress: bool,
    /// backfill: re-read every source object and replace the pipeline's rows of these periods
    /// (first and last month, YYYY-MM); rows of other periods are left alone
    pub backfill: Option<(String, String)>,
}

fn failpoint(stage: &str) -> Result<(), RunError> {
    super::failpoint::at(stage).map_err(RunError::Failpoint)
}

/// Map `f` over `items` on every core, keeping the order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if threads < 2 || items.len() < 1024 {
        return items.iter().map(&f).collect();
    }
    let size = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(size)
            .map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a mapping thread panicked"))
            .collect()
    })
}

/// Run (or, with `dry_run`, plan) one pipeline.
pub async fn run_pipeline(
    wh: &Warehouse,
    p: &Pipeline,
    opts: &RunOptions,
) -> Result<RunReport, RunError> {
    let started = Utc::now();
    let clock = Instant::now();
    let load_id = ledger::new_run_id();
    let exists = wh.exists().await?;
    let restored = if opts.dry_run {
        Vec::new()
    } else {
        wh.ensure_tables().await?;
        wh.recover().await?
    };
    let history = History::read(wh, exists || !opts.dry_run).await?;
    let secret = key_secret(wh, &history, opts).await?;
    let src = source::open(p).await?;
    let plan = Plan::make(&src, p, &history.counted(p), opts.backfill.is_some()).await?;
    let mut stored = if (exists || !opts.dry_run) && !plan.to_read.is_empty() {
        Stored::read(wh, p, &history.committed, opts.dry_run).await?
    } else {
        Stored::default()
    };
    let mut ctx = Ctx::new(p, &load_id, opts, started, &mut stored);
    if !opts.dry_run {
        ctx.writers = Some(writers::Writers::new(wh, &load_id, p.kind));
    }
    let reading = Reading {
        wh,
        p,
        src: &src,
        catalog: Catalog::embedded(),
        secret,
        plan: &plan,
        bar: progress_bar(p, &plan, opts),
    };
    let mut read = Read::default();
    let result = read_objects(&reading, &mut ctx, &mut read).await;
    if let Some(b) = &reading.bar {
        b.finish_and_clear();
    }
    let mut report = report_of(p, &load_id, &history, &plan, &mut read, &ctx, restored);
    let failure = match result {
        Err(e) => Some(e),
        Ok(()) => over_quality(p, &report),
    };
    if opts.dry_run {
        report.seconds = clock.elapsed().as_secs_f64();
        return match failure {
            Some(q @ RunError::Quality { .. }) => {
                report.over_threshold = Some(q.to_string());
                Ok(report)
            }
            None => Ok(report),
            Some(e) => Err(e),
        };
    }
    let failed = Failure {
        wh,
        p,
        load_id: &load_id,
        seq: history.next_seq,
        started,
        counts: &read.counts,
        objects: &read.records,
        objects_skipped: plan.unchanged.len() as u64,
    };
    let writers = ctx.writers.take().expect("writers exist outside dry runs");
    if let Some(e) = failure {
        discard_all(wh, writers).await;
        failed.record(&e).await;
        return Err(e);
    }
    let execute = Execute {
        wh,
        p,
        opts,
        started,
        history: &history,
        stored: &stored,
        failed: &failed,
    };
    execute.commit(writers, ctx, &mut report).await?;
    report.seconds = clock.elapsed().as_secs_f64();
    Ok(report)
}

/// The warehouse's key secret (made at its first run); the test hook builds a warehouse as
/// palaute made them before keys were keyed, for the migration's test.
async fn key_secret(
    wh: &Warehouse,
    history: &History,
    opts: &RunOptions,
) -> Result<Option<crate::privacy::keys::KeySecret>, RunError> {
    if super::failpoint::skip("key-secret") {
        return Ok(None);
    }
    Ok(Some(
        keys::for_run(wh, &history.committed, !opts.dry_run).await?,
    ))
}

/// A bar of the bytes read, on an interactive terminal.
fn progress_bar(p: &Pipeline, plan: &Plan, opts: &RunOptions) -> Option<indicatif::ProgressBar> {
    let total_bytes: u64 = plan.to_read.iter().map(|(o, _)| o.size).sum();
    (opts.progress && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total_bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_message(p.name.clone());
        b
    })
}

/// The run's report as the reading left it (not committed yet).
fn report_of(
    p: &Pipeline,
    load_id: &str,
    history: &History,
    plan: &Plan,
    read: &mut Read,
    ctx: &Ctx,
    restored: Vec<String>,
) -> RunReport {
    let mut objects = plan.unchanged.clone();
    objects.append(&mut read.plans);
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    let mut report = RunReport {
        pipeline: p.name.clone(),
        run_id: load_id.to_string(),
        status: RunStatus::NoChange,
        counts: read.counts.clone(),
        objects,
        reasons: ctx.reasons.clone(),
        examples: ctx.examples.clone(),
        table_versions: history.committed.clone(),
        seconds: 0.0,
        restored,
        outside_range: ctx.outside_range,
        removed: 0,
        periods: BTreeSet::new(),
        over_threshold: None,
        warnings: Vec::new(),
    };
    if plan.listed == 0
        && let crate::config::SourceConfig::Files(f) = &p.source
    {
        report.warnings.push(format!(
            "no source object matches glob '{}' in {}: is the glob right? (palaute status says how long since new data arrived)",
            f.glob, f.location
        ));
    }
    report
}

/// The quality threshold's failure, if more rows were quarantined than the pipeline allows. The
/// share is of the objects' rows, the rows not read again (resumed) included: they passed
/// before, as they would have if read.
fn over_quality(p: &Pipeline, report: &RunReport) -> Option<RunError> {
    let counts = &report.counts;
    let rows = counts.read
        + report
            .objects
            .iter()
            .filter_map(|o| o.resumed_from.as_ref().map(|(_, n)| *n))
            .sum::<u64>();
    if rows == 0 {
        return None;
    }
    let pct = counts.quarantined as f64 * 100.0 / rows as f64;
    (pct > p.quality.max_quarantined_pct).then(|| RunError::Quality {
        pipeline: p.name.clone(),
        quarantined: counts.quarantined,
        read: rows,
        pct,
        max: p.quality.max_quarantined_pct,
        reasons: reasons_text(&report.reasons),
    })
}

/// What committing a read run needs.
struct Execute<'a> {
    wh: &'a Warehouse,
    p: &'a Pipeline,
    opts: &'a RunOptions,
    started: chrono::DateTime<Utc>,
    history: &'a History,
    stored: &'a Stored,
    failed: &'a Failure<'a>,
}

impl Execute<'_> {
    /// Commit the run's tables, then its ledger row; on failure the warehouse is left as it was
    /// and the failure recorded.
    async fn commit(
        &self,
        mut writers: writers::Writers,
        mut ctx: Ctx<'_>,
        report: &mut RunReport,
    ) -> Result<(), RunError> {
        let (wh, failed) = (self.wh, self.failed);
        if let Some((from, to)) = &self.opts.backfill {
            // stored rows of the periods that the source no longer holds
            match stored::stale_keys(wh, self.p, self.stored, from, to, &ctx.seen).await {
                Ok(stale) => {
                    for (part, keys) in stale {
                        report.removed += keys.len() as u64;
                        ctx.to_delete.entry(part).or_default().extend(keys);
                    }
                }
                Err(e) => {
                    let e = RunError::from(e);
                    discard_all(wh, writers).await;
                    failed.record(&e).await;
                    return Err(e);
                }
            }
        }
        let outcome = commit_run(
            wh,
            &mut writers,
            self.stored,
            &ctx.to_delete,
            failed.load_id,
        )
        .await;
        for part in ctx.to_delete.keys() {
            report.periods.insert(part.period.clone());
        }
        let (versions, committed_now) = match outcome {
            Ok((v, c, periods)) => {
                report.periods.extend(periods);
                (v, c)
            }
            Err((e, written, committed_now)) => {
                for (name, files) in &written {
                    crate::warehouse::writer::discard(&wh.loc, name, files).await;
                }
                wh.restore_all(&committed_now).await;
                failed.record(&e).await;
                return Err(e);
            }
        };
        let mut table_versions = self.history.committed.clone();
        for (k, v) in versions {
            table_versions.insert(k.to_string(), v);
        }
        let counts = &report.counts;
        let changed = counts.loaded + counts.updated + counts.quarantined + report.removed > 0;
        let status = if changed {
            RunStatus::Succeeded
        } else {
            RunStatus::NoChange
        };
        let rec = self.ledger_row(status, report, table_versions.clone());
        if let Err(e) = self.append(&rec, &report.periods).await {
            wh.restore_all(&committed_now).await;
            failed.record(&e).await;
            return Err(e);
        }
        report.status = status;
        report.table_versions = table_versions;
        Ok(())
    }

    /// The run's ledger row.
    fn ledger_row(
        &self,
        status: RunStatus,
        report: &RunReport,
        table_versions: BTreeMap<String, u64>,
    ) -> RunRecord {
        let backfill = self.opts.backfill.is_some();
        let f = self.failed;
        RunRecord {
            run_id: f.load_id.to_string(),
            seq: f.seq,
            pipeline: self.p.name.clone(),
            started_at: self.started,
            finished_at: Utc::now(),
            status,
            message: self
                .opts
                .backfill
                .as_ref()
                .map(|(f, t)| format!("backfill {f}..{t}")),
            counts: report.counts.clone(),
            objects_read: f.objects.len() as u64,
            objects_skipped: f.objects_skipped,
            // a backfill applied only some periods of its objects: it does not mark them loaded
            objects: if backfill {
                Vec::new()
            } else {
                f.objects.to_vec()
            },
            table_versions,
            palaute_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The marts of the years this run changed are owed until an aggregation computes them;
    /// then the ledger row, last.
    async fn append(&self, rec: &RunRecord, periods: &BTreeSet<String>) -> Result<(), RunError> {
        if self.p.kind == PipelineKind::Survey && !periods.is_empty() {
            owed::add(self.wh, &owed::years_of(periods)).await?;
        }
        failpoint("ledger")?;
        ledger::append(self.wh, rec).await?;
        Ok(())
    }
}
