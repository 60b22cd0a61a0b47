//! `palaute history`: the runs ledger, newest last.

use crate::warehouse::ledger::{RunRecord, read_runs};
use crate::warehouse::{Warehouse, WarehouseError};

/// The warehouse's consistent state: the last ledger row and the table versions it committed,
/// which an external Delta reader opens each table at (docs/warehouse.md).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Versions {
    pub seq: i64,
    pub run_id: String,
    pub pipeline: String,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub table_versions: std::collections::BTreeMap<String, u64>,
}

pub async fn versions(wh: &Warehouse) -> Result<Option<Versions>, WarehouseError> {
    Ok(read_runs(wh).await?.pop().map(|r| Versions {
        seq: r.seq,
        run_id: r.run_id,
        pipeline: r.pipeline,
        finished_at: r.finished_at,
        table_versions: r.table_versions,
    }))
}

pub fn render_versions(v: &Option<Versions>) -> String {
    let Some(v) = v else {
        return "no run has committed yet: every table is at version 0\n".into();
    };
    let mut out = format!(
        "seq {} (run {}, {}, finished {}): open each table at\n",
        v.seq, v.run_id, v.pipeline, v.finished_at
    );
    for (t, n) in &v.table_versions {
        out.push_str(&format!("  {t:<20} version {n}\n"));
    }
    out
}

pub async fn runs(
    wh: &Warehouse,
    pipeline: Option<&str>,
) -> Result<Vec<RunRecord>, WarehouseError> {
    Ok(read_runs(wh)
        .await?
        .into_iter()
        .filter(|r| pipeline.is_none_or(|p| r.pipeline == p))
        .collect())
}

/// A fixed-width table of runs.
pub fn render(runs: &[RunRecord]) -> String {
    let mut out = format!(
        "{:<4} {:<26} {:<20} {:<10} {:>8} {:>8} {:>8} {:>9} {:>11} {:>7} {:>8}\n",
        "seq",
        "run",
        "pipeline",
        "status",
        "read",
        "loaded",
        "updated",
        "duplicate",
        "quarantined",
        "objects",
        "seconds"
    );
    for r in runs {
        let secs = (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0;
        out.push_str(&format!(
            "{:<4} {:<26} {:<20} {:<10} {:>8} {:>8} {:>8} {:>9} {:>11} {:>7} {:>8.2}\n",
            r.seq,
            r.run_id,
            r.pipeline,
            r.status.as_str(),
            r.counts.read,
            r.counts.loaded,
            r.counts.updated,
            r.counts.duplicate,
            r.counts.quarantined,
            format!("{}+{}", r.objects_read, r.objects_skipped),
            secs
        ));
        if let Some(m) = &r.message {
            out.push_str(&format!("     {m}\n"));
        }
    }
    out
}
