//! `palaute rollback --to-run RUN_ID | --to-version SEQ`: bring every table back to the versions
//! a ledger row names (a warehouse version is a `runs` row: its `seq`, or its run id).
//!
//! Each table is restored (a new Delta version with the old content; nothing is deleted, so a
//! rollback can itself be rolled back), then a ledger row (pipeline `rollback`, message
//! `rollback to seq N`) names the new versions: readers switch at that row, as after a run.
//! Runs after the target no longer count as having loaded their source objects, so the next run
//! of their pipelines reads those objects again.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::warehouse::ledger::{self, RunRecord, RunStatus};
use crate::warehouse::tables::{ALL_TABLES, MART_TABLES, RUNS};
use crate::warehouse::{Warehouse, WarehouseError};

pub const LEDGER_NAME: &str = "rollback";

/// The message of a rollback row; [`rolled_back_after`] reads it back.
fn message(seq: i64, run_id: &str) -> String {
    format!("rollback to seq {seq} (run {run_id})")
}

/// For a rollback row, the seq it rolled back to.
pub fn rolled_back_after(r: &RunRecord) -> Option<i64> {
    if r.pipeline != LEDGER_NAME || r.status != RunStatus::Succeeded {
        return None;
    }
    r.message
        .as_deref()?
        .strip_prefix("rollback to seq ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// The runs whose loads still count, in order: rolled-back runs are left out.
pub fn effective_runs(runs: &[RunRecord]) -> Vec<&RunRecord> {
    let mut out: Vec<&RunRecord> = Vec::new();
    for r in runs {
        if let Some(target) = rolled_back_after(r) {
            out.retain(|x| x.seq <= target);
            continue;
        }
        out.push(r);
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("{0}")]
    Target(String),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RollbackReport {
    pub to_seq: i64,
    pub to_run: String,
    pub restored: BTreeMap<String, u64>,
    pub table_versions: BTreeMap<String, u64>,
}

pub enum Target {
    Seq(i64),
    Run(String),
}

pub async fn rollback(wh: &Warehouse, target: &Target) -> Result<RollbackReport, RollbackError> {
    if !wh.exists().await? {
        return Err(WarehouseError::Missing(wh.loc.display()).into());
    }
    wh.recover().await?;
    let runs = ledger::read_runs(wh).await?;
    let row = runs
        .iter()
        .find(|r| match target {
            Target::Seq(s) => r.seq == *s,
            Target::Run(id) => &r.run_id == id,
        })
        .ok_or_else(|| {
            RollbackError::Target(match target {
                Target::Seq(s) => format!("no run with seq {s} in the ledger (palaute history)"),
                Target::Run(id) => format!("no run {id} in the ledger (palaute history)"),
            })
        })?;
    if row.status == RunStatus::Failed {
        return Err(RollbackError::Target(format!(
            "run {} failed; roll back to a run that succeeded",
            row.run_id
        )));
    }
    // the key migration rewrote every key: the versions before it hold unkeyed keys
    if let Some(m) = runs.iter().find(|r| {
        r.pipeline == super::optimize::REKEY_LEDGER_NAME
            && r.status == RunStatus::Succeeded
            && r.seq > row.seq
    }) {
        return Err(RollbackError::Target(format!(
            "seq {} is before the key migration (seq {}, palaute rekey): its keys were made without the secret; roll back to seq {} or later",
            row.seq, m.seq, m.seq
        )));
    }
    let started = Utc::now();
    let committed = ledger::committed_versions(wh).await?;
    let mut versions = committed.clone();
    let mut restored = BTreeMap::new();
    let mut done: Vec<(&str, u64)> = Vec::new();
    let result = async {
        for name in ALL_TABLES.into_iter().chain(MART_TABLES) {
            if name == RUNS || !wh.table_exists(name).await? {
                continue;
            }
            let want = row.table_versions.get(name).copied().unwrap_or(0);
            let now = committed.get(name).copied().unwrap_or(0);
            if want == now {
                continue;
            }
            wh.restore(name, want).await?;
            done.push((name, now));
            let v = wh.table(name, None).await?.version().unwrap_or(0);
            versions.insert(name.to_string(), v);
            restored.insert(name.to_string(), want);
        }
        ledger::append_operation(
            wh,
            LEDGER_NAME,
            &ledger::new_run_id(),
            started,
            message(row.seq, &row.run_id),
            0,
            versions.clone(),
        )
        .await?;
        Ok::<(), WarehouseError>(())
    }
    .await;
    if let Err(e) = result {
        // put back what this rollback changed; the next run would do it otherwise
        wh.restore_all(&done).await;
        return Err(e.into());
    }
    Ok(RollbackReport {
        to_seq: row.seq,
        to_run: row.run_id.clone(),
        restored,
        table_versions: versions,
    })
}
