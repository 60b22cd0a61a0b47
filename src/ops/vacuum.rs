//! `palaute vacuum [--retention HOURS]`: delete the files no table version within the retention
//! needs — files that optimize, updates and rollbacks replaced, and files of runs that died
//! before committing — with delta-rs's vacuum (full mode) on every table. The versions the ledger
//! names as committed are always kept. Time travel and `rollback` reach back as far as the
//! retention (default 168 hours).
//!
//! Delta records a vacuum as commits of its own, so a ledger row (pipeline `vacuum`) names the
//! tables' new versions afterwards.

use std::collections::BTreeMap;

use chrono::Utc;
use deltalake_core::operations::vacuum::VacuumMode;

use crate::warehouse::ledger::{self, Counts, RunRecord, RunStatus};
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

pub async fn vacuum(wh: &Warehouse, retention_hours: u64) -> Result<VacuumReport, WarehouseError> {
    if !wh.exists().await? {
        return Err(WarehouseError::Missing(wh.loc.display()));
    }
    wh.recover().await?;
    let committed = ledger::committed_versions(wh).await?;
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
    let runs = ledger::read_runs(wh).await?;
    let rec = RunRecord {
        run_id: format!(
            "{}-{}",
            Utc::now().format("%Y%m%dT%H%M%SZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        seq: runs.last().map(|r| r.seq + 1).unwrap_or(1),
        pipeline: LEDGER_NAME.to_string(),
        started_at: Utc::now(),
        finished_at: Utc::now(),
        status: RunStatus::Succeeded,
        message: Some(format!(
            "retention {retention_hours} h; {} files deleted",
            deleted.values().sum::<usize>()
        )),
        counts: Counts::default(),
        objects_read: 0,
        objects_skipped: 0,
        objects: Vec::new(),
        table_versions: versions.clone(),
        palaute_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    ledger::append(wh, &rec).await?;
    Ok(VacuumReport {
        retention_hours,
        deleted,
        table_versions: versions,
    })
}
