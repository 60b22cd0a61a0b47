//! The end of an aggregation: every mart committed (its recomputed years' files replaced), then
//! the ledger row that makes them visible together; on failure the tables are restored and
//! every uploaded file deleted, so the warehouse is as it was.

use std::collections::{BTreeMap, BTreeSet};

use deltalake_core::kernel::Action;

use super::plan::Plan;
use super::publish::Pending;
use super::{AggregateError, AggregateOptions, AggregateReport, LEDGER_NAME, failpoint};
use crate::warehouse::writer::{WrittenFile, add_action, delete_uploaded, remove_action};
use crate::warehouse::{Warehouse, WarehouseError, ledger};

/// The cube cache is only a cache: a file not written is computed again next time.
pub(super) async fn cache_written(
    writes: Vec<tokio::task::JoinHandle<Result<(), WarehouseError>>>,
) {
    for w in writes {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cube cache not written"),
            Err(e) => tracing::warn!(error = %e, "cube cache not written"),
        }
    }
}

/// After a failure: the marts still being computed are awaited, and their files deleted with
/// the rest.
pub(super) async fn discard(
    wh: &Warehouse,
    pending: Vec<Pending<'static>>,
    written: &[(&'static str, Vec<WrittenFile>)],
) {
    for (_, name, _, h) in pending {
        if let Ok(Ok((_, files, _))) = h.await {
            delete_uploaded(&wh.loc, name, &files).await;
        }
    }
    for (name, files) in written {
        delete_uploaded(&wh.loc, name, files).await;
    }
}

/// Commit every mart, then the ledger row; on failure restore what was committed and delete
/// the files not committed.
pub(super) async fn commit(
    wh: &Warehouse,
    opts: &AggregateOptions,
    plan: &Plan,
    run_id: &str,
    started: chrono::DateTime<chrono::Utc>,
    written: &[(&'static str, Vec<WrittenFile>)],
    report: &mut AggregateReport,
) -> Result<(), AggregateError> {
    let mut committed_now: Vec<(&str, u64)> = Vec::new();
    let result = async {
        for (name, files) in written {
            let v =
                commit_mart(wh, name, files, &plan.year_set, run_id, &mut committed_now).await?;
            report.table_versions.insert(name.to_string(), v);
            failpoint(&format!("commit:{name}"))?;
        }
        tracing::debug!("marts committed");
        failpoint("aggregate:ledger")?;
        append_ledger(wh, opts, plan, run_id, started, report).await?;
        // every mart, period type and level of these years is now computed from the data
        let complete =
            opts.marts.is_empty() && opts.period_types.is_empty() && opts.levels.is_empty();
        if complete {
            let done: BTreeSet<i32> = plan.years.iter().copied().collect();
            if let Err(e) = crate::warehouse::owed::settle(wh, &done).await {
                // committed all the same: the next run recomputes these years once more
                tracing::warn!(error = %e, "could not record the marts as computed");
            }
        }
        Ok::<(), AggregateError>(())
    }
    .await;
    if let Err(e) = result {
        wh.restore_all(&committed_now).await;
        for (name, files) in written {
            if !committed_now.iter().any(|(n, _)| n == name) {
                delete_uploaded(&wh.loc, name, files).await;
            }
        }
        return Err(e);
    }
    Ok(())
}

/// One mart's commit: its new files added, the files of the recomputed years removed. The
/// version before is recorded in `committed_now` (for a restore).
async fn commit_mart<'n>(
    wh: &Warehouse,
    name: &'n str,
    files: &[WrittenFile],
    year_set: &BTreeSet<String>,
    run_id: &str,
    committed_now: &mut Vec<(&'n str, u64)>,
) -> Result<u64, AggregateError> {
    let t = wh.table(name, None).await?;
    let before = t.version().unwrap_or(0);
    let mut actions: Vec<Action> = files.iter().map(add_action).collect();
    for f in &wh.files(&t).await? {
        let pv: BTreeMap<String, String> = f.partition_values().into_iter().collect();
        if pv.get("year").is_some_and(|y| year_set.contains(y)) {
            actions.push(remove_action(&f.path, f.size, &f.partition_values()));
        }
    }
    let v = wh.commit(&t, name, actions, run_id).await?;
    committed_now.push((name, before));
    Ok(v)
}

/// The aggregation's ledger row: what it computed, and the table versions it committed.
async fn append_ledger(
    wh: &Warehouse,
    opts: &AggregateOptions,
    plan: &Plan,
    run_id: &str,
    started: chrono::DateTime<chrono::Utc>,
    report: &AggregateReport,
) -> Result<(), AggregateError> {
    let years: Vec<String> = plan.years.iter().map(|y| y.to_string()).collect();
    ledger::append_operation(
        wh,
        LEDGER_NAME,
        run_id,
        started,
        format!(
            "years {}; period types {}; k = {}",
            years.join(","),
            report.period_types.join(","),
            opts.rules.min_n
        ),
        report.marts.values().map(|m| m.rows).sum(),
        report.table_versions.clone(),
    )
    .await?;
    Ok(())
}
