//! Loading: `run`, `backfill`, `check` and `schedule`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use palaute::config::{self, Pipeline, PipelineKind};
use palaute::marts::casemix;
use palaute::marts::disclosure::Rules;
use palaute::ops::aggregate::{AggregateOptions, aggregate};
use palaute::ops::run::{RunOptions, RunReport, render_summary, run_pipeline};
use palaute::ops::{check as plan, exit};
use palaute::warehouse::{Warehouse, WarehouseError, owed};

use super::{open, say, writer_lease};
use crate::args::{BackfillArgs, CheckArgs, Pipelines, RunArgs, ScheduleArgs, UsageError};

/// The pipeline files the arguments name.
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

/// Load pipeline files, refusing two that give the same name.
pub(super) fn load_all(files: &[PathBuf]) -> anyhow::Result<Vec<Pipeline>> {
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
    (from, to): (&str, &str),
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
                // the process's peak after the aggregation: the whole run's
                println!(
                    "{}",
                    serde_json::json!({ "aggregate": r, "peak_rss_mb": peak_rss_mb() })
                );
            } else {
                print!("{}", palaute::ops::aggregate::render(&r));
            }
            0
        }
        Err(e) => {
            say("aggregate", &e);
            exit::code_of(&e)
        }
    }
}

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A run's summary as one JSON line.
fn json_line(r: &RunReport) -> serde_json::Value {
    let warnings: Vec<String> = r
        .warnings
        .iter()
        .cloned()
        .chain(
            r.objects
                .iter()
                .flat_map(|o| o.warnings.iter().map(move |w| format!("{}: {w}", o.name))),
        )
        .collect();
    let resumed: Vec<serde_json::Value> = r
        .objects
        .iter()
        .filter_map(|o| {
            o.resumed_from.as_ref().map(|(from, rows)| {
                serde_json::json!({"object": o.name, "from": from, "rows_not_read": rows})
            })
        })
        .collect();
    serde_json::json!({
        "pipeline": r.pipeline, "run_id": r.run_id, "status": r.status,
        "rows": r.counts, "seconds": r.seconds, "reasons": r.reasons,
        "table_versions": r.table_versions, "peak_rss_mb": peak_rss_mb(),
        "warnings": warnings,
        "resumed": resumed,
    })
}

/// `palaute run`: each pipeline in turn under one writer lease, then the marts of the years
/// the runs changed or an earlier run left owed.
pub async fn run(a: RunArgs) -> anyhow::Result<i32> {
    let rules = a.disclosure.rules()?;
    let adjustment = a.disclosure.adjustment()?;
    let pipelines = load_all(&pipeline_files(&a.p)?)?;
    let wh = open(&a.w, true)?;
    let opts = RunOptions {
        dry_run: false,
        progress: !a.json,
        ..RunOptions::default()
    };
    let names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
    let (wh, lease) = match writer_lease(wh, &format!("run {}", names.join(","))).await {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let mut code = 0;
    let mut periods = BTreeSet::new();
    // restored on taking the lease over: the first run's report says so
    let mut restored = lease.restored().to_vec();
    for p in &pipelines {
        match run_pipeline(&wh, p, &opts).await {
            Ok(mut r) => {
                r.restored.splice(0..0, std::mem::take(&mut restored));
                // the marts are computed from survey responses only
                if p.kind == PipelineKind::Survey {
                    periods.extend(r.periods.iter().cloned());
                }
                if a.json {
                    println!("{}", json_line(&r));
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
    if !a.no_aggregate {
        // the years these runs changed, and those an earlier run left owed (killed during its
        // aggregation, or run with --no-aggregate)
        let mut years = owed::years_of(&periods);
        match owed::read(&wh).await {
            Ok(o) => years.extend(o.years),
            Err(e) => say("marts owed", &e),
        }
        if let (Some(first), Some(last)) = (years.first(), years.last()) {
            let (from, to) = (format!("{first}-01"), format!("{last}-12"));
            let settings = (rules, &adjustment);
            code = code.max(aggregate_after(&wh, (&from, &to), settings, a.json).await);
        }
    }
    lease.release().await;
    Ok(code)
}

/// `palaute backfill`: re-read a pipeline's sources for some periods, then their marts.
pub async fn backfill(a: BackfillArgs) -> anyhow::Result<i32> {
    use palaute::marts::periods::parse_month;
    let (from, to) = (a.from, a.to);
    if parse_month(&from).is_none() || parse_month(&to).is_none() || from > to {
        anyhow::bail!(UsageError(format!(
            "--from {from} --to {to}: give two months YYYY-MM, the first not after the last"
        )));
    }
    let rules = a.disclosure.rules()?;
    let adjustment = a.disclosure.adjustment()?;
    let p = config::load_pipeline(&a.pipeline)?;
    let wh = open(&a.w, true)?;
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
            if !a.no_aggregate
                && p.kind == PipelineKind::Survey
                && r.status != palaute::warehouse::RunStatus::NoChange
            {
                let mut first = from.clone();
                let mut last = to.clone();
                if let (Some(a), Some(b)) = (r.periods.first(), r.periods.last()) {
                    first = first.min(a.clone());
                    last = last.max(b.clone());
                }
                code = aggregate_after(&wh, (&first, &last), (rules, &adjustment), false).await;
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

/// `palaute check`: the plan of each pipeline's next run, writing nothing.
pub async fn check(a: CheckArgs) -> anyhow::Result<i32> {
    let pipelines = load_all(&pipeline_files(&a.p)?)?;
    let mut scratch = None;
    let wh = match open(&a.w, false) {
        Ok(wh) => wh,
        // no warehouse yet: plan against an empty folder, removed afterwards
        Err(WarehouseError::Missing(_)) => {
            let d = std::env::temp_dir().join(format!("palaute-empty-{}", std::process::id()));
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
                print!("{}", plan::render(&r));
                code = code.max(plan::exit_code(&r));
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

/// `palaute schedule`: run the scheduled pipelines of a folder until SIGTERM.
pub async fn schedule(a: ScheduleArgs) -> anyhow::Result<i32> {
    let o = palaute::ops::schedule::ScheduleOptions {
        pipelines: a.pipelines,
        warehouse: config::resolve_warehouse(a.w.warehouse.as_deref()),
        max_retries: a.max_retries,
        backoff: std::time::Duration::from_secs_f64(a.backoff_seconds.max(0.0)),
        grace: std::time::Duration::from_secs(a.grace_seconds),
    };
    palaute::ops::schedule::schedule(&o).await?;
    Ok(0)
}
