//! A mart's figures from its rolled-up cells: the disclosure decision of every cell, the rollup
//! and suppression of the default path, and the figures SQL over the cells.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use super::adjust::AdjustFuture;
use super::sql_path::{collect, register};
use super::{AggregateError, MartReport};
use crate::Cause;
use crate::marts::casemix::{self, Adjustment};
use crate::marts::cells::{Cells, Key, groups, read_keys};
use crate::marts::disclosure::{Reason, Rules, suppress};
use crate::marts::periods::PeriodRow;
use crate::marts::{MartSpec, figure_vars, fill};

pub(super) fn utf8(col: &ArrayRef) -> ArrayRef {
    match col.data_type() {
        DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(_, _) => {
            arrow::compute::cast(col, &DataType::Utf8).unwrap_or_else(|_| col.clone())
        }
        _ => col.clone(),
    }
}

/// Batches with every string column as plain Utf8 (what the mart tables declare).
pub(super) fn plain(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> (SchemaRef, Vec<RecordBatch>) {
    // the batches' own schema: a plan's logical schema may name other string encodings
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or(schema.clone());
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(_, _) => {
                Field::new(f.name(), DataType::Utf8, true)
            }
            _ => f.as_ref().clone().with_nullable(true),
        })
        .collect();
    let out_schema = Arc::new(Schema::new(fields));
    let out = batches
        .into_iter()
        .map(|b| {
            let cols: Vec<ArrayRef> = b.columns().iter().map(utf8).collect();
            RecordBatch::try_new(out_schema.clone(), cols).expect("same columns")
        })
        .collect();
    (out_schema, out)
}

pub(super) fn int_column(b: &RecordBatch, name: &str) -> Result<Vec<u64>, String> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| format!("column {name} is missing"))?;
    let c = arrow::compute::cast(c, &DataType::Int64).map_err(|e| e.to_string())?;
    let c = c.as_primitive::<Int64Type>();
    Ok((0..c.len())
        .map(|i| {
            if c.is_null(i) {
                0
            } else {
                c.value(i).max(0) as u64
            }
        })
        .collect())
}

/// The disclosure decision of every rollup row.
pub fn decide(
    batches: &[RecordBatch],
    spec: &MartSpec,
    rules: &Rules,
) -> Result<Vec<Option<Reason>>, String> {
    let t = Instant::now();
    let cells = read_keys(batches, spec)?;
    let t_keys = t.elapsed().as_secs_f64();
    let keys = &cells.keys;
    let mut size = Vec::new();
    let mut primary = Vec::new();
    for b in batches {
        let n = int_column(b, spec.size)?;
        let also: Vec<Vec<u64>> = spec
            .also_primary
            .iter()
            .map(|c| int_column(b, c))
            .collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            size.push(n[i]);
            primary.push(rules.small(n[i]) || also.iter().any(|a| rules.small(a[i])));
        }
    }
    // units of suppression: every row, or only the '*' rows of the unit key
    let unit_col = spec
        .unit_key
        .and_then(|u| spec.keys.iter().position(|k| *k == u));
    let star = cells.strings.get("*").expect("'*' is always interned");
    let is_unit = |k: &Key| unit_col.is_none_or(|c| k.keys[c] == star);
    let mut order: Vec<usize> = (0..keys.len()).filter(|&i| is_unit(&keys[i])).collect();
    // keys are unique: an unstable sort gives the one order
    order.sort_unstable_by_key(|&i| keys[i]);
    let unit_cells = Cells {
        keys: order.iter().map(|&i| keys[i]).collect(),
        strings: cells.strings,
    };
    let unit_n: Vec<u64> = order.iter().map(|&i| size[i]).collect();
    let unit_primary: Vec<bool> = order.iter().map(|&i| primary[i]).collect();
    let t_order = t.elapsed().as_secs_f64();
    let g = groups(&unit_cells, spec);
    let t_groups = t.elapsed().as_secs_f64();
    let decided = if crate::ops::failpoint::skip("secondary-suppression") {
        // tests only: publish with primary suppression alone, for the audit to catch
        unit_primary
            .iter()
            .map(|&p| p.then_some(Reason::Primary))
            .collect()
    } else {
        suppress(&unit_n, &unit_primary, &g)
    };
    tracing::debug!(
        mart = spec.name,
        cells = keys.len(),
        groups = g.len(),
        keys_s = t_keys,
        order_s = t_order - t_keys,
        groups_s = t_groups - t_order,
        suppress_s = t.elapsed().as_secs_f64() - t_groups,
        "disclosure phases"
    );
    let Some(c) = unit_col else {
        // every row is a unit: back to the rows' order
        let mut out = vec![None; keys.len()];
        for (&i, r) in order.iter().zip(decided) {
            out[i] = r;
        }
        return Ok(out);
    };
    // other rows follow their unit (an option its item's '*' row)
    let by_unit: crate::collections::FastMap<Key, Option<Reason>> = unit_cells
        .keys
        .iter()
        .zip(&decided)
        .map(|(k, r)| (*k, *r))
        .collect();
    Ok(keys
        .iter()
        .map(|k| {
            let mut u = *k;
            u.keys[c] = star;
            by_unit.get(&u).copied().flatten()
        })
        .collect())
}

/// A mart's rolled-up cells and their disclosure decisions.
pub(super) type Rolled = (SchemaRef, Vec<RecordBatch>, Vec<Option<Reason>>);

/// A mart's published schema, rows and counts.
pub(super) type Computed = (SchemaRef, Vec<RecordBatch>, MartReport);

/// A mart from its fine cube (the default path): the rollup and suppression on a blocking
/// thread, the figures SQL in a session of its own, so that marts and years compute
/// concurrently.
pub(super) async fn compute_mart(
    cube: Vec<RecordBatch>,
    spec: &'static MartSpec,
    rules: Rules,
    levels: Vec<String>,
    periods: Vec<PeriodRow>,
    adjust: Option<AdjustFuture>,
) -> Result<Computed, AggregateError> {
    let mart_err = |m: Cause| AggregateError::Mart {
        mart: spec.name.to_string(),
        source: m,
    };
    let t = Instant::now();
    let cube_rows: usize = cube.iter().map(|b| b.num_rows()).sum();
    let (schema, rolled, reasons, t_rollup) = tokio::task::spawn_blocking(move || {
        let levels: Vec<&str> = levels.iter().map(String::as_str).collect();
        let (schema, rolled) = crate::marts::rollup::rollup(&cube, spec, &periods, &levels)?;
        let t_rollup = t.elapsed().as_secs_f64();
        let reasons = decide(&rolled, spec, &rules)?;
        Ok::<_, String>((schema, rolled, reasons, t_rollup))
    })
    .await
    .map_err(|e| mart_err(e.into()))?
    .map_err(|m| mart_err(m.into()))?;
    tracing::debug!(
        mart = spec.name,
        cube_rows,
        rollup_s = t_rollup,
        suppress_s = t.elapsed().as_secs_f64() - t_rollup,
        "phases"
    );
    // the models and the cells' respondent mix (computed beside this mart's rollup)
    let adjust = match adjust {
        Some(waiting) => Some(waiting.await.map_err(|m| mart_err(m.into()))?.0),
        None => None,
    };
    let tf = Instant::now();
    let out = figures(
        &SessionContext::new(),
        spec,
        &rules,
        (&schema, &rolled, &reasons),
        adjust.as_deref(),
    )
    .await;
    tracing::debug!(
        mart = spec.name,
        seconds = tf.elapsed().as_secs_f64(),
        "figures"
    );
    out
}

/// The mart's published rows: the figures SQL over the rolled-up cells and their suppression
/// reasons (registered in `ctx` as `cells`).
pub(super) async fn figures(
    ctx: &SessionContext,
    spec: &MartSpec,
    rules: &Rules,
    (schema, rolled, reasons): (&SchemaRef, &[RecordBatch], &[Option<Reason>]),
    adjust: Option<&Adjustment>,
) -> Result<Computed, AggregateError> {
    let mart_err = |m: Cause| AggregateError::Mart {
        mart: spec.name.to_string(),
        source: m,
    };
    let mut report = MartReport::default();
    for r in reasons.iter().flatten() {
        match r {
            Reason::Primary => report.suppressed_primary += 1,
            Reason::Secondary => report.suppressed_secondary += 1,
            Reason::Cascade => report.suppressed_cascade += 1,
        }
    }
    let cells = arrow::compute::concat_batches(schema, rolled).map_err(|e| mart_err(e.into()))?;
    let suppression: ArrayRef = Arc::new(StringArray::from(
        reasons
            .iter()
            .map(|r| r.map(Reason::as_str))
            .collect::<Vec<_>>(),
    ));
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("suppression", DataType::Utf8, true));
    let mut cols = cells.columns().to_vec();
    cols.push(suppression);
    // the case-mix adjustment's terms of item_scores and recommendation (NULL without it)
    for (prefix, _) in casemix::outcomes_of(spec.name) {
        fields.extend(casemix::term_fields(prefix));
    }
    match adjust {
        Some(a) => cols.extend(
            a.columns(spec.name, &cells, reasons)
                .map_err(|m| mart_err(m.into()))?,
        ),
        None => cols.extend(casemix::null_columns(spec.name, cells.num_rows())),
    }
    let cells_schema = Arc::new(Schema::new(fields));
    let cells = RecordBatch::try_new(cells_schema.clone(), cols).map_err(|e| mart_err(e.into()))?;
    register(ctx, "cells", vec![cells], cells_schema);
    let sql = fill(spec.figures_sql, &figure_vars(rules));
    let (schema, out) = collect(ctx, &sql).await?;
    let (schema, out) = plain(&schema, out);
    report.rows = out.iter().map(|b| b.num_rows() as u64).sum();
    for b in &out {
        if let Some(c) = b.column_by_name("low_reliability") {
            report.low_reliability +=
                c.as_boolean().iter().filter(|v| *v == Some(true)).count() as u64;
        }
    }
    Ok((schema, out, report))
}
