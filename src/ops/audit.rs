//! `palaute audit-disclosure`: attack the published marts the way a reader could. For every
//! mart it rebuilds the hierarchies from the published keys ([`crate::marts::cells`]), writes
//! one equation "parent = sum of children" per group and count column, the within-row sums
//! (n = answered + can't say + not applicable, answered = the distribution, …) and the sums
//! behind published means (mean × n), then solves every equation with a single unknown until
//! nothing more follows ([`crate::marts::disclosure::recover`]). Any suppressed value derived
//! that way is a leak; the command lists each one and exits with status 5.
//!
//! The case-mix adjusted figures must be functions of published numbers: every published one is
//! recomputed from the published raw figure, the published coefficients (`casemix_coefficients`)
//! and the published respondent mix (response_counts); one that cannot be, or comes out
//! different, is listed and fails the audit as a leak does.
//!
//! Limits: it runs the differencing attack only (no general linear algebra or interval bounds),
//! within one mart at a time, on the marts' committed versions.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};

use crate::Cause;
use crate::marts::cells::{Key, Strings, groups, read_keys};
use crate::marts::disclosure::{Equation, recover};
use crate::marts::{MARTS, spec};
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
    /// adjusted figures recomputed from published numbers
    pub adjusted_checked: u64,
    /// adjusted figures that are not a function of published numbers, each with why
    pub adjusted_unexplained: Vec<String>,
}

impl AuditReport {
    /// Nothing suppressed can be recovered, and every adjusted figure follows from published
    /// numbers.
    pub fn passed(&self) -> bool {
        self.leaks.is_empty() && self.adjusted_unexplained.is_empty()
    }
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
            source: m.into(),
        })?;
    }
    audit_adjusted(&ctx, &mut report).await?;
    Ok(report)
}

/// The published rows of `sql`.
async fn rows(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> Result<Vec<RecordBatch>, AggregateError> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// A case-mix model: (window end, instrument, mart, outcome).
type ModelKey = (String, String, String, String);

/// The published β of each model: its (adjuster, level, β) of the estimated levels.
async fn published_betas(
    ctx: &datafusion::prelude::SessionContext,
) -> Result<HashMap<ModelKey, Vec<(usize, String, f64)>>, AggregateError> {
    use crate::marts::casemix::{ADJUSTERS, COEFFICIENTS};
    let err = |m: Cause| AggregateError::Mart {
        mart: COEFFICIENTS.to_string(),
        source: m,
    };
    let mut beta: HashMap<ModelKey, Vec<(usize, String, f64)>> = HashMap::new();
    if ctx.table_exist(COEFFICIENTS)? {
        for b in rows(
            ctx,
            "SELECT window_end, instrument, mart, outcome, adjuster, level, beta              FROM casemix_coefficients WHERE estimate = 'estimated'",
        )
        .await?
        {
            let t = |c: &str| text_column(&b, c);
            let cols: Vec<Vec<Option<String>>> =
                ["window_end", "instrument", "mart", "outcome", "adjuster", "level"]
                    .iter()
                    .map(|c| t(c))
                    .collect::<Result<_, _>>()
                    .map_err(|m| err(m.into()))?;
            let bs = floats(&b, "beta").map_err(|m| err(m.into()))?;
            for i in 0..b.num_rows() {
                let v = |c: usize| cols[c][i].clone().unwrap_or_default();
                let (Some(a), Some(x)) = (ADJUSTERS.iter().position(|a| *a == v(4)), bs[i]) else {
                    continue;
                };
                beta.entry((v(0), v(1), v(2), v(3)))
                    .or_default()
                    .push((a, v(5), x));
            }
        }
    }
    Ok(beta)
}

/// Recompute every published adjusted figure from published numbers only (see the module
/// documentation).
async fn audit_adjusted(
    ctx: &datafusion::prelude::SessionContext,
    report: &mut AuditReport,
) -> Result<(), AggregateError> {
    use crate::marts::casemix::{COEFFICIENTS, NPS_SCORE, RECOMMEND_VALUE};
    let err = |m: Cause| AggregateError::Mart {
        mart: COEFFICIENTS.to_string(),
        source: m,
    };
    let adjusted_marts = [
        (
            crate::marts::ITEM_SCORES,
            "share_agree_adjusted",
            "share_agree",
            None,
            1.0,
        ),
        (
            crate::marts::RECOMMENDATION,
            "nps_adjusted",
            "nps",
            Some(NPS_SCORE),
            100.0,
        ),
        (
            crate::marts::RECOMMENDATION,
            "mean_recommend_adjusted",
            "mean_recommend",
            Some(RECOMMEND_VALUE),
            1.0,
        ),
    ];
    let mut any = false;
    for (mart, column, _, _, _) in adjusted_marts {
        if ctx.table_exist(mart)? {
            let n = rows(ctx, &format!("SELECT count({column}) AS n FROM {mart}")).await?;
            any |= n
                .first()
                .and_then(|b| ints(b, "n").ok())
                .and_then(|v| v.first().copied().flatten())
                .is_some_and(|n| n > 0);
        }
    }
    if !any {
        return Ok(());
    }
    let beta = published_betas(ctx).await?;
    // the published respondent mix of every cell
    let counts = rows(ctx, "SELECT * FROM response_counts").await?;
    let mut reasons = Vec::new();
    for b in &counts {
        let sup = text_column(b, "suppression").map_err(|m| err(m.into()))?;
        reasons.extend(
            sup.into_iter()
                .map(|s| s.map(|_| crate::marts::disclosure::Reason::Primary)),
        );
    }
    let mix = crate::marts::casemix::cell_mix(&counts, &reasons, 0.0).map_err(|m| err(m.into()))?;
    for m in adjusted_marts {
        if ctx.table_exist(m.0)? {
            check_mart(ctx, report, m, &beta, &mix).await?;
        }
    }
    Ok(())
}

/// Check the adjusted figures of one mart's column against its raw figure, the published
/// coefficients and the published mixes of its cell and the nation.
async fn check_mart(
    ctx: &datafusion::prelude::SessionContext,
    report: &mut AuditReport,
    (mart, column, raw, outcome, scale): AdjustedColumn,
    beta: &HashMap<ModelKey, Vec<(usize, String, f64)>>,
    mix: &crate::marts::casemix::CellMix,
) -> Result<(), AggregateError> {
    use crate::marts::casemix::{COEFFICIENTS, cell_key};
    let err = |m: Cause| AggregateError::Mart {
        mart: COEFFICIENTS.to_string(),
        source: m,
    };
    let keys = crate::marts::casemix::CELL_COLUMNS;
    let item = if mart == crate::marts::ITEM_SCORES {
        ", item_code"
    } else {
        ""
    };
    let batches = rows(
        ctx,
        &format!(
            "SELECT {}, period_end{item}, {raw} AS raw, {column} AS adjusted FROM {mart}                  WHERE {column} IS NOT NULL",
            keys.join(", ")
        ),
    )
    .await?;
    for b in &batches {
        let cols: Vec<Vec<Option<String>>> = keys
            .iter()
            .chain(["period_end"].iter())
            .map(|c| text_column(b, c))
            .collect::<Result<_, _>>()
            .map_err(|m| err(m.into()))?;
        let items = if item.is_empty() {
            None
        } else {
            Some(text_column(b, "item_code").map_err(|m| err(m.into()))?)
        };
        let (raw_v, adj_v) = (
            floats(b, "raw").map_err(|m| err(m.into()))?,
            floats(b, "adjusted").map_err(|m| err(m.into()))?,
        );
        for i in 0..b.num_rows() {
            report.adjusted_checked += 1;
            let v = |c: usize| cols[c][i].clone().unwrap_or_default();
            let key: [String; 7] = std::array::from_fn(v);
            let what = format!(
                "{mart} {column} {} {} {}={} service={} {}{}",
                key[0],
                key[1],
                key[2],
                key[4],
                key[5],
                key[6],
                items
                    .as_ref()
                    .map(|it| format!(" item={}", it[i].clone().unwrap_or_default()))
                    .unwrap_or_default()
            );
            let outcome = match (outcome, &items) {
                (Some(o), _) => o.to_string(),
                (None, Some(it)) => it[i].clone().unwrap_or_default(),
                (None, None) => String::new(),
            };
            let model = beta
                .get(&(v(7), key[6].clone(), mart.to_string(), outcome))
                .cloned()
                .unwrap_or_default();
            let refs: [&str; 7] = std::array::from_fn(|c| key[c].as_str());
            let nation = [refs[0], refs[1], "nation", "", "FI", refs[5], refs[6]];
            let cell = mix.cells.get(&cell_key(refs));
            let nat = mix.cells.get(&cell_key(nation));
            let shares = |m: Option<&crate::marts::casemix::Mix>,
                          like: Option<&crate::marts::casemix::Mix>| {
                let m = m?;
                let c = m.counts(like)?;
                let t = m.total?;
                Some((c, t))
            };
            let (Some((cc, ct)), Some((nc, nt))) = (shares(cell, nat), shares(nat, None)) else {
                report
                    .adjusted_unexplained
                    .push(format!("{what}: its respondent mix is not published"));
                continue;
            };
            let share = |c: &HashMap<(usize, String), f64>, t: f64, a: usize, l: &str| {
                c.get(&(a, l.to_string())).copied().unwrap_or(0.0) / t
            };
            let term: f64 = if key[2] == "nation" {
                0.0
            } else {
                model
                    .iter()
                    .map(|(a, l, b)| b * (share(&cc, ct, *a, l) - share(&nc, nt, *a, l)))
                    .sum()
            };
            let (Some(raw), Some(adj)) = (raw_v[i], adj_v[i]) else {
                report
                    .adjusted_unexplained
                    .push(format!("{what}: published without its raw figure"));
                continue;
            };
            let expected = raw - scale * term;
            if (expected - adj).abs() > 1e-6 * scale.max(1.0) {
                report.adjusted_unexplained.push(format!(
                    "{what}: published {adj}, published numbers give {expected}"
                ));
            }
        }
    }
    Ok(())
}

/// An adjusted column: (mart, adjusted column, raw column, the outcome of its model when fixed
/// (else the item), the scale of the figure).
type AdjustedColumn = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    f64,
);

/// A column as optional strings (any string type).
fn text_column(b: &RecordBatch, name: &str) -> Result<Vec<Option<String>>, String> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| format!("no column {name}"))?;
    let c = arrow::compute::cast(c, &DataType::Utf8).map_err(|e| e.to_string())?;
    let s = c.as_string::<i32>();
    Ok((0..s.len())
        .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
        .collect())
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
    if r.adjusted_checked > 0 {
        if r.adjusted_unexplained.is_empty() {
            let _ = writeln!(
                s,
                "{} case-mix adjusted figures, each recomputed from published numbers",
                r.adjusted_checked
            );
        } else {
            let _ = writeln!(
                s,
                "{} of {} adjusted figures are not functions of published numbers:",
                r.adjusted_unexplained.len(),
                r.adjusted_checked
            );
            for u in &r.adjusted_unexplained {
                let _ = writeln!(s, "  {u}");
            }
        }
    }
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
