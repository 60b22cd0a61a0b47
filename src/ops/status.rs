//! `palaute status`: per pipeline, its last run and outcome, when it is next due (its schedule's
//! cron expression in its time zone) and the freshness of its source — how long since a run last
//! loaded new or changed rows, against the pipeline's `schedule.freshness` window.

use chrono::{DateTime, Utc};

use crate::config::Pipeline;
use crate::warehouse::ledger::{self, RunStatus};
use crate::warehouse::{Warehouse, WarehouseError};

use super::rollback::effective_runs;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// new data within the window
    Ok,
    /// nothing new for longer than warn_after_hours (or never)
    Warn,
    /// nothing new for longer than error_after_hours (or never, with an error window)
    Error,
    /// no freshness window configured
    Unchecked,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PipelineStatus {
    pub pipeline: String,
    pub last_run: Option<String>,
    pub last_status: Option<String>,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub last_message: Option<String>,
    pub last_new_data_at: Option<DateTime<Utc>>,
    pub hours_since_new_data: Option<f64>,
    pub freshness: Freshness,
    pub next_due: Option<DateTime<Utc>>,
}

/// The status of `pipelines` at `at` (None for `wh` when there is no warehouse yet).
pub async fn status(
    wh: Option<&Warehouse>,
    pipelines: &[Pipeline],
    at: DateTime<Utc>,
) -> Result<Vec<PipelineStatus>, WarehouseError> {
    let runs = match wh {
        Some(w) => ledger::read_runs(w).await?,
        None => Vec::new(),
    };
    let runs = effective_runs(&runs);
    let mut out = Vec::new();
    for p in pipelines {
        let mine: Vec<_> = runs.iter().filter(|r| r.pipeline == p.name).collect();
        let last = mine.last();
        let new_data = mine
            .iter()
            .rev()
            .find(|r| r.status == RunStatus::Succeeded && r.counts.loaded + r.counts.updated > 0)
            .map(|r| r.finished_at);
        let hours = new_data.map(|t| (at - t).num_seconds() as f64 / 3600.0);
        let window = p.schedule.as_ref().and_then(|s| s.freshness.as_ref());
        let freshness = match (window, hours) {
            (None, _) => Freshness::Unchecked,
            (Some(w), None) => {
                if w.error_after_hours.is_some() {
                    Freshness::Error
                } else {
                    Freshness::Warn
                }
            }
            (Some(w), Some(h)) => {
                if w.error_after_hours.is_some_and(|e| h > e) {
                    Freshness::Error
                } else if h > w.warn_after_hours {
                    Freshness::Warn
                } else {
                    Freshness::Ok
                }
            }
        };
        out.push(PipelineStatus {
            pipeline: p.name.clone(),
            last_run: last.map(|r| r.run_id.clone()),
            last_status: last.map(|r| r.status.as_str().to_string()),
            last_finished_at: last.map(|r| r.finished_at),
            last_message: last.and_then(|r| r.message.clone()),
            last_new_data_at: new_data,
            hours_since_new_data: hours,
            freshness,
            next_due: p.schedule.as_ref().and_then(|s| s.next_after(at).ok()),
        });
    }
    Ok(out)
}

/// The warning that marts are behind the data, when they are.
pub fn render_owed(o: &crate::warehouse::owed::Owed) -> Option<String> {
    if o.years.is_empty() {
        return None;
    }
    let years: Vec<String> = o.years.iter().map(|y| y.to_string()).collect();
    Some(format!(
        "the marts of {} do not show the data committed since {}: the next `palaute run` (or `palaute aggregate`) computes them",
        years.join(", "),
        o.since
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "an earlier run".into())
    ))
}

pub fn render(rows: &[PipelineStatus]) -> String {
    use std::fmt::Write;
    let mut s = format!(
        "{:<20} {:<10} {:<20} {:<20} {:<9} {}\n",
        "pipeline", "last", "finished", "next due", "fresh", "new data"
    );
    let t = |d: &Option<DateTime<Utc>>| {
        d.map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "-".into())
    };
    for r in rows {
        let _ = writeln!(
            s,
            "{:<20} {:<10} {:<20} {:<20} {:<9} {}",
            r.pipeline,
            r.last_status.as_deref().unwrap_or("never"),
            t(&r.last_finished_at),
            t(&r.next_due),
            format!("{:?}", r.freshness).to_lowercase(),
            r.hours_since_new_data
                .map(|h| format!("{h:.1} h ago"))
                .unwrap_or_else(|| "never".into())
        );
        if let (Some(m), Some("failed")) = (&r.last_message, r.last_status.as_deref()) {
            let _ = writeln!(s, "  last error: {m}");
        }
    }
    s
}
