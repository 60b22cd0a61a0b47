//! `palaute audit-disclosure`: attack the published marts the way a reader could. For every
//! mart it rebuilds the hierarchies from the published keys ([`crate::marts::cells`]), writes
//! one equation "parent = sum of children" per group and count column, the within-row sums
//! (n = answered + can't say + not applicable, answered = the distribution, …) and the sums
//! behind published means (mean × n), then solves every equation with a single unknown until
//! nothing more follows ([`crate::privacy::disclosure::recover`]). Any suppressed value derived
//! that way is a leak; the command lists each one and exits with status 5.
//!
//! Limits: it runs the differencing attack only (no general linear algebra or interval bounds),
//! within one mart at a time, on the marts' committed versions.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};

use crate::marts::cells::{Key, Strings, groups, read_keys};
use crate::marts::{MARTS, spec};
use crate::privacy::disclosure::{Equation, recover};
use crate::warehouse::Warehouse;

use super::aggregate::AggregateError;
use super::sql::session;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Leak {
    pub mart: String,
    pub cell: String,
    pub column: String,
    pub value: i64,
    pub suppression: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuditReport {
    pub marts: Vec<String>,
    pub cells: u64,
    pub suppressed: u64,
    pub equations: u64,
    pub leaks: Vec<Leak>,
}

fn describe(k: &Key, st: &Strings, keys: &[&str]) -> String {
    let own: Vec<String> = keys
        .iter()
        .zip(&k.keys)
        .map(|(n, v)| format!("{n}={}", st.text(*v)))
        .collect();
    let parent = st.text(k.geo_parent);
    format!(
        "{} {} {}={}{} service={} {}",
        k.period_type,
        st.text(k.period),
        crate::marts::GEO_LEVELS[k.geo_level as usize],
        st.text(k.geo_code),
        if parent.is_empty() {
            String::new()
        } else {
            format!(" (in {parent})")
        },
        st.text(k.service),
        own.join(" ")
    )
}

fn ints(b: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>, String> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| format!("column {name} is missing"))?;
    let c = arrow::compute::cast(c, &DataType::Int64).map_err(|e| e.to_string())?;
    let c = c.as_primitive::<Int64Type>();
    Ok((0..c.len())
        .map(|i| (!c.is_null(i)).then(|| c.value(i)))
        .collect())
}

fn floats(b: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>, String> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| format!("column {name} is missing"))?;
    let c = arrow::compute::cast(c, &DataType::Float64).map_err(|e| e.to_string())?;
    let c = c.as_primitive::<Float64Type>();
    Ok((0..c.len())
        .map(|i| (!c.is_null(i)).then(|| c.value(i)))
        .collect())
}

/// Audit one mart's published rows.
pub fn audit_batches(
    name: &str,
    batches: &[RecordBatch],
    report: &mut AuditReport,
) -> Result<(), String> {
    let spec = spec(name);
    let cells = read_keys(batches, spec)?;
    let keys = &cells.keys;
    let mut columns: Vec<&str> = spec.audited.to_vec();
    if spec.mean_times.is_some() {
        columns.push("value_sum");
    }
    // known[row * ncol + c]
    let ncol = columns.len();
    let mut known: Vec<Option<i64>> = Vec::with_capacity(keys.len() * ncol);
    let mut suppression: Vec<Option<String>> = Vec::with_capacity(keys.len());
    for b in batches {
        let cols: Vec<Vec<Option<i64>>> = spec
            .audited
            .iter()
            .map(|c| ints(b, c))
            .collect::<Result<_, _>>()?;
        let derived = match spec.mean_times {
            Some((mean, n)) => {
                let m = floats(b, mean)?;
                let n = ints(b, n)?;
                Some(
                    m.iter()
                        .zip(&n)
                        .map(|(m, n)| match (m, n) {
                            (Some(m), Some(n)) => Some((m * *n as f64).round() as i64),
                            (None, Some(0)) => Some(0),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                )
            }
            None => None,
        };
        let sup = b
            .column_by_name("suppression")
            .ok_or("column suppression is missing")?;
        let sup = arrow::compute::cast(sup, &DataType::Utf8).map_err(|e| e.to_string())?;
        let sup = sup.as_string::<i32>();
        for i in 0..b.num_rows() {
            for c in &cols {
                known.push(c[i]);
            }
            if let Some(d) = &derived {
                known.push(d[i]);
            }
            suppression.push((!sup.is_null(i)).then(|| sup.value(i).to_string()));
        }
    }
    let mut eqs = Vec::new();
    for g in groups(&cells, spec) {
        for c in 0..ncol {
            eqs.push(Equation {
                total: g.parent * ncol + c,
                parts: g.children.iter().map(|&ch| ch * ncol + c).collect(),
            });
        }
    }
    let col_index: HashMap<&str, usize> =
        columns.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    for row in 0..keys.len() {
        for (total, parts) in spec.row_sums {
            eqs.push(Equation {
                total: row * ncol + col_index[total],
                parts: parts.iter().map(|p| row * ncol + col_index[p]).collect(),
            });
        }
    }
    report.marts.push(name.to_string());
    report.cells += keys.len() as u64;
    report.suppressed += suppression.iter().filter(|s| s.is_some()).count() as u64;
    report.equations += eqs.len() as u64;
    for (var, value) in recover(&known, &eqs) {
        let (row, c) = (var / ncol, var % ncol);
        let Some(reason) = &suppression[row] else {
            continue;
        };
        report.leaks.push(Leak {
            mart: name.to_string(),
            cell: describe(&keys[row], &cells.strings, spec.keys),
            column: columns[c].to_string(),
            value,
            suppression: reason.clone(),
        });
    }
    Ok(())
}

/// Audit every published mart.
pub async fn audit(wh: &Warehouse) -> Result<AuditReport, AggregateError> {
    let ctx = session(wh).await?;
    let mut report = AuditReport::default();
    for name in MARTS {
        if !ctx.table_exist(name)? {
            continue;
        }
        let batches = ctx
            .sql(&format!("SELECT * FROM {name}"))
            .await?
            .collect()
            .await?;
        audit_batches(name, &batches, &mut report).map_err(|m| AggregateError::Mart {
            mart: name.to_string(),
            message: m,
        })?;
    }
    Ok(report)
}

pub fn render(r: &AuditReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if r.marts.is_empty() {
        return "audit-disclosure: no marts published (run palaute aggregate)\n".into();
    }
    let _ = writeln!(
        s,
        "audit-disclosure: {} marts, {} cells ({} suppressed), {} equations tried",
        r.marts.len(),
        r.cells,
        r.suppressed,
        r.equations
    );
    if r.leaks.is_empty() {
        let _ = writeln!(s, "no suppressed value can be recovered by differencing");
    } else {
        let _ = writeln!(s, "{} suppressed values can be recovered:", r.leaks.len());
        for l in &r.leaks {
            let _ = writeln!(
                s,
                "  {} {}: {} = {} (suppressed: {})",
                l.mart, l.cell, l.column, l.value, l.suppression
            );
        }
    }
    s
}
