//! `palaute history`: the runs ledger, newest last.

use crate::warehouse::ledger::{RunRecord, read_runs};
use crate::warehouse::{Warehouse, WarehouseError};

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
