//! `palaute check`: validate pipelines and show the plan of their next run, writing nothing.

use super::exit;
use super::run::{ObjectState, RunReport};

/// The plan as text: per object its state and what its rows would do.
pub fn render(r: &RunReport) -> String {
    let mut out = format!("pipeline {}: plan\n", r.pipeline);
    if r.objects.is_empty() && r.warnings.is_empty() {
        out.push_str("  no source objects match\n");
    }
    for o in &r.objects {
        if o.state == ObjectState::Unchanged {
            out.push_str(&format!(
                "  {:<40} unchanged (already loaded; will not be read)\n",
                o.name
            ));
            continue;
        }
        out.push_str(&format!(
            "  {:<40} {:<9} {} rows: {} new, {} updated, {} duplicate, {} quarantined  [{}]\n",
            o.name,
            o.state,
            o.counts.read,
            o.counts.loaded,
            o.counts.updated,
            o.counts.duplicate,
            o.counts.quarantined,
            o.decoded
        ));
        if let Some((from, rows)) = &o.resumed_from {
            out.push_str(&format!(
                "      begins with the bytes of {from}, already loaded: its first {rows} rows will not be read again\n"
            ));
        }
        if !o.ignored_columns.is_empty() {
            out.push_str(&format!(
                "      ignored (not mapped; will not enter the warehouse): {}\n",
                o.ignored_columns.join(", ")
            ));
        }
    }
    let c = &r.counts;
    out.push_str(&format!(
        "  total: {} rows read, {} new, {} updated, {} duplicate, {} quarantined\n",
        c.read, c.loaded, c.updated, c.duplicate, c.quarantined
    ));
    out.push_str(&super::run::warnings_text(r));
    out.push_str(&super::run::quarantine_text(r, "quarantine reasons"));
    if let Some(why) = &r.over_threshold {
        out.push_str(&format!("  the run would fail: {why}\n"));
    }
    out
}

/// The exit code of a plan: a run over the quality threshold would exit with [`exit::QUALITY`].
pub fn exit_code(r: &RunReport) -> i32 {
    if r.over_threshold.is_some() {
        exit::QUALITY
    } else {
        0
    }
}
