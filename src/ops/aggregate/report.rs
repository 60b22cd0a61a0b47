//! An aggregation's report for people.

use super::AggregateReport;

/// The report for people.
pub fn render(r: &AggregateReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if r.years.is_empty() {
        return "aggregate: nothing to compute (no responses in the range)\n".into();
    }
    let _ = writeln!(
        s,
        "aggregate {}: years {}, period types {} ({:.1} s)",
        r.run_id,
        r.years
            .iter()
            .map(|y| y.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        r.period_types.join(", "),
        r.seconds
    );
    if r.partitions_computed + r.partitions_reused > 0 {
        let _ = writeln!(
            s,
            "  cubes: {} partitions computed, {} unchanged since an earlier aggregation",
            r.partitions_computed, r.partitions_reused
        );
    }
    for (name, m) in &r.marts {
        let _ = writeln!(
            s,
            "  {name:<16} {:>8} rows, suppressed {} primary / {} secondary / {} cascade, {} low reliability",
            m.rows,
            m.suppressed_primary,
            m.suppressed_secondary,
            m.suppressed_cascade,
            m.low_reliability
        );
    }
    if r.casemix_models > 0 {
        let _ = writeln!(
            s,
            "  case-mix adjustment: {} models (see casemix_coefficients)",
            r.casemix_models
        );
        for n in &r.casemix_notes {
            let _ = writeln!(s, "    {n}");
        }
    }
    s
}
