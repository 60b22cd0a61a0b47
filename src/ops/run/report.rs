//! The report of a run, and its text for people.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{ObjectPlan, ObjectState};
use crate::warehouse::ledger::{Counts, RunStatus};

/// What a run (or a plan) did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub pipeline: String,
    pub run_id: String,
    pub status: RunStatus,
    pub counts: Counts,
    pub objects: Vec<ObjectPlan>,
    /// reason code → rows quarantined for it
    pub reasons: BTreeMap<String, u64>,
    /// the first few quarantined rows: "object row N: problem"
    pub examples: Vec<String>,
    pub table_versions: BTreeMap<String, u64>,
    pub seconds: f64,
    pub restored: Vec<String>,
    /// backfill: rows of the source outside the periods (ignored), and stored rows of the
    /// periods that the source no longer holds (removed)
    pub outside_range: u64,
    pub removed: u64,
    /// periods (YYYY-MM) whose rows this run added, changed or removed
    pub periods: BTreeSet<String>,
    /// a plan (`check`) whose run would fail the quality threshold: why
    pub over_threshold: Option<String>,
    /// what a run should not pass over in silence, though it is no failure
    pub warnings: Vec<String>,
}
pub fn render_summary(r: &RunReport) -> String {
    let c = &r.counts;
    let read = r
        .objects
        .iter()
        .filter(|o| o.state != ObjectState::Unchanged)
        .count();
    let mut s = format!(
        "{}: {} in {:.2} s — objects: {} read, {} unchanged (skipped unread); rows: {} read, {} new, {} updated, {} duplicate, {} quarantined\n",
        r.pipeline,
        r.status.as_str(),
        r.seconds,
        read,
        r.objects.len() - read,
        c.read,
        c.loaded,
        c.updated,
        c.duplicate,
        c.quarantined
    );
    s.push_str(&resumed_text(r));
    s.push_str(&warnings_text(r));
    s.push_str(&quarantine_text(r, "quarantined"));
    if !r.restored.is_empty() {
        s.push_str(&format!(
            "  restored to the committed version first (an earlier run did not finish): {}\n",
            r.restored.join(", ")
        ));
    }
    s
}

/// A line per warning: the run's, then each object's.
pub fn warnings_text(r: &RunReport) -> String {
    let run = r.warnings.iter().map(|w| format!("  warning: {w}\n"));
    let objects = r.objects.iter().flat_map(|o| {
        o.warnings
            .iter()
            .map(move |w| format!("  warning: {}: {w}\n", o.name))
    });
    run.chain(objects).collect()
}

/// A line per object read from an earlier object's resume point.
pub fn resumed_text(r: &RunReport) -> String {
    r.objects
        .iter()
        .filter_map(|o| {
            o.resumed_from.as_ref().map(|(from, rows)| {
                format!(
                    "  {}: begins with the bytes of {from}, already loaded: its first {rows} rows not read again\n",
                    o.name
                )
            })
        })
        .collect()
}

/// "code count, …" of quarantine reasons.
pub fn reasons_text(reasons: &BTreeMap<String, u64>) -> String {
    reasons
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The quarantine lines of a report (reasons and the first rows), or nothing.
pub fn quarantine_text(r: &RunReport, label: &str) -> String {
    if r.reasons.is_empty() {
        return String::new();
    }
    let mut s = format!("  {label}: {}\n", reasons_text(&r.reasons));
    for e in &r.examples {
        s.push_str(&format!("    {e}\n"));
    }
    s
}
