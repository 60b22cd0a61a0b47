//! `palaute vacuum [--retention HOURS]`: delete the files no table version within the retention
//! needs — files that optimize, updates and rollbacks replaced, and files of runs that died
//! before committing — with delta-rs's vacuum (full mode) on every table, and the cube cache's
//! temporary files that a process killed while writing one left behind. The versions the
//! ledger names as committed are always kept. Time travel and `rollback` reach back as far as the
//! retention (default 168 hours).
//!
//! Delta records a vacuum as commits of its own, so a ledger row (pipeline `vacuum`) names the
//! tables' new versions afterwards.

use std::collections::BTreeMap;

use chrono::Utc;
use deltalake_core::operations::vacuum::VacuumMode;

use crate::warehouse::ledger;
use crate::warehouse::tables::{ALL_TABLES, MART_TABLES};
use crate::warehouse::{Warehouse, WarehouseError};

pub const LEDGER_NAME: &str = "vacuum";
pub const DEFAULT_RETENTION_HOURS: u64 = 168;

#[derive(Debug, Clone, serde::Serialize)]
pub struct VacuumReport {
    pub retention_hours: u64,
    /// table → files deleted
    pub deleted: BTreeMap<String, usize>,
    pub table_versions: BTreeMap<String, u64>,
}

pub async fn vacuum(
    wh: &Warehouse,
    retention_hours: u64,
    force: bool,
) -> Result<VacuumReport, WarehouseError> {
    if !wh.exists().await? {
        return Err(WarehouseError::Missing(wh.loc.display()));
    }
    wh.recover().await?;
    let started = Utc::now();
    let committed = ledger::committed_versions(wh).await?;
    if !force {
        refuse_if_extracts_need(wh, &committed, retention_hours).await?;
    }
    let mut versions = committed.clone();
    let mut deleted = BTreeMap::new();
    for name in ALL_TABLES.into_iter().chain(MART_TABLES) {
        if !wh.table_exists(name).await? {
            continue;
        }
        let t = wh.table(name, None).await?;
        let keep: Vec<u64> = committed.get(name).copied().into_iter().collect();
        let (t, metrics) = t
            .vacuum()
            .with_retention_period(chrono::Duration::hours(retention_hours as i64))
            .with_enforce_retention_duration(false)
            .with_mode(VacuumMode::Full)
            .with_keep_versions(&keep)
            .await
            .map_err(|e| WarehouseError::Delta {
                table: name.to_string(),
                source: Box::new(e),
            })?;
        deleted.insert(name.to_string(), metrics.files_deleted.len());
        if name != crate::warehouse::tables::RUNS {
            versions.insert(name.to_string(), t.version().unwrap_or(0));
        }
    }
    // the cube cache's half-written files of a process that died (the lease excludes a live one)
    let temp = crate::marts::cube_cache::remove_temp_files(wh)?;
    if temp > 0 {
        deleted.insert("_cubes".to_string(), temp);
    }
    ledger::append_operation(
        wh,
        LEDGER_NAME,
        &ledger::new_run_id(),
        started,
        format!(
            "retention {retention_hours} h; {} files deleted",
            deleted.values().sum::<usize>()
        ),
        0,
        versions.clone(),
    )
    .await?;
    Ok(VacuumReport {
        retention_hours,
        deleted,
        table_versions: versions,
    })
}

/// Refuse (naming them) when the files this vacuum would delete include files a recorded
/// extract's table versions hold: `extract verify` could not derive the extract again.
async fn refuse_if_extracts_need(
    wh: &Warehouse,
    committed: &BTreeMap<String, u64>,
    retention_hours: u64,
) -> Result<(), WarehouseError> {
    let records = crate::extract::record::all(wh).await?;
    if records.is_empty() {
        return Ok(());
    }
    let mut needed: Vec<String> = Vec::new();
    for name in crate::extract::read::TABLES {
        if !records.iter().any(|r| r.files.contains_key(name)) {
            continue;
        }
        let t = wh.table(name, None).await?;
        let keep: Vec<u64> = committed.get(name).copied().into_iter().collect();
        let (_, metrics) = t
            .vacuum()
            .with_retention_period(chrono::Duration::hours(retention_hours as i64))
            .with_enforce_retention_duration(false)
            .with_mode(VacuumMode::Full)
            .with_keep_versions(&keep)
            .with_dry_run(true)
            .await
            .map_err(|e| WarehouseError::Delta {
                table: name.to_string(),
                source: Box::new(e),
            })?;
        for r in &records {
            let Some(files) = r.files.get(name) else {
                continue;
            };
            let n = metrics
                .files_deleted
                .iter()
                .filter(|d| files.iter().any(|f| d.ends_with(f.as_str())))
                .count();
            if n > 0 {
                needed.push(format!(
                    "{n} file(s) of table {name} that extract {} (ledger row {}, version {}) still needs",
                    r.name,
                    r.ledger_seq,
                    r.table_versions.get(name).copied().unwrap_or(0)
                ));
            }
        }
    }
    if needed.is_empty() {
        return Ok(());
    }
    Err(WarehouseError::NeededByExtract(format!(
        "vacuum would delete {}; nothing was deleted (`palaute vacuum --force` deletes them, and `extract verify` of those extracts then fails)",
        needed.join("; ")
    )))
}
