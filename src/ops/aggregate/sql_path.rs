//! The reference path (`--sql-cubes`): the fine cubes by the SQL files over the whole tables,
//! and each mart's rollup by `sql/rollup.sql`, in one DataFusion session.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use super::figures::{Rolled, decide, plain};
use super::{AggregateError, AggregateOptions, invalid};
use crate::Cause;
use crate::marts::periods::{PeriodType, period_rows};
use crate::marts::{MartSpec, SQL_CUBE_RESPONSES, SQL_RESPONSE_DIMS, fill, rollup_sql};
use crate::schema::{Catalog, ScaleKind};

pub(super) fn register(
    ctx: &SessionContext,
    name: &str,
    batches: Vec<RecordBatch>,
    schema: SchemaRef,
) {
    let _ = ctx.deregister_table(name);
    let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
    let t = datafusion::datasource::MemTable::try_new(schema, vec![batches])
        .expect("batches match their schema");
    ctx.register_table(name, Arc::new(t))
        .expect("a fresh name registers");
}

pub(super) async fn collect(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>), AggregateError> {
    let df = ctx.sql(sql).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok((schema, batches))
}

pub(super) fn periods_table(years: &[i32], types: &[PeriodType]) -> (SchemaRef, RecordBatch) {
    let rows = period_rows(years, types);
    let schema = Arc::new(Schema::new(
        [
            "month",
            "period_type",
            "period",
            "period_start",
            "period_end",
            "year",
        ]
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, false))
        .collect::<Vec<_>>(),
    ));
    let col = |f: &dyn Fn(&crate::marts::periods::PeriodRow) -> String| {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            col(&|r| r.month.clone()),
            col(&|r| r.period_type.as_str().to_string()),
            col(&|r| r.period.clone()),
            col(&|r| r.period_start.clone()),
            col(&|r| r.period_end.clone()),
            col(&|r| r.year.to_string()),
        ],
    )
    .expect("columns match");
    (schema, b)
}

/// The closed items on a 1–5 scale, with the lowest value of their scale's top box.
pub(super) fn ordinal_items(catalog: &Catalog) -> Result<(SchemaRef, RecordBatch), AggregateError> {
    let (mut inst, mut item, mut top) = (Vec::new(), Vec::new(), Vec::new());
    for i in catalog.instruments.values() {
        for (code, it) in &i.items {
            let scale = &catalog.scales[&it.scale];
            if scale.kind != ScaleKind::Ordinal || it.scale == "recommend11" {
                continue;
            }
            if scale.min != 1 || scale.max > 5 {
                return Err(invalid(format!(
                    "item {code} of {}: item_scores holds scales within 1–5, not {}–{}",
                    i.code, scale.min, scale.max
                )));
            }
            inst.push(i.code.clone());
            item.push(code.clone());
            top.push(scale.top_box.iter().min().copied().unwrap_or(scale.max) as i64);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("instrument", DataType::Utf8, false),
        Field::new("item_code", DataType::Utf8, false),
        Field::new("top_low", DataType::Int64, false),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(inst)),
            Arc::new(StringArray::from(item)),
            Arc::new(arrow::array::Int64Array::from(top)),
        ],
    )
    .expect("columns match");
    Ok((schema, b))
}

/// A mart by the reference path: its fine cube by SQL (`--sql-cubes`) and the rollup by
/// `sql/rollup.sql`, in `ctx` (which holds the registered cubes).
pub(super) async fn rolled_sql(
    ctx: &SessionContext,
    spec: &MartSpec,
    opts: &AggregateOptions,
    range: &[(&str, String)],
    levels: &[&str],
) -> Result<Rolled, AggregateError> {
    let mart_err = |m: Cause| AggregateError::Mart {
        mart: spec.name.to_string(),
        source: m,
    };
    let (schema, cube) = collect(ctx, &fill(spec.cube_sql, range)).await?;
    // each mart's cube replaces the one before
    let _ = ctx.deregister_table("cube");
    register(ctx, "cube", cube, schema);
    let (schema, rolled) = collect(ctx, &rollup_sql(spec, levels)).await?;
    let (schema, rolled) = plain(&schema, rolled);
    let reasons = decide(&rolled, spec, &opts.rules).map_err(|m| mart_err(m.into()))?;
    Ok((schema, rolled, reasons))
}

/// The reference path: the fine cubes by the SQL files over the whole tables.
pub(super) async fn sql_cubes(
    ctx: &SessionContext,
    range: &[(&str, String)],
) -> Result<(), AggregateError> {
    let (schema, rc) = collect(ctx, &fill(SQL_CUBE_RESPONSES, range)).await?;
    register(ctx, "response_cube", rc, schema);
    // every response's fine cell as a number (see sql/response_dims.sql)
    let (schema, dims) = collect(
        ctx,
        "SELECT DISTINCT month, county, cooperation_area, municipality, local_area, service, \
         instrument FROM response_cube",
    )
    .await?;
    let (schema, dims) = plain(&schema, dims);
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("dim_id", DataType::Int32, false));
    let dims_schema = Arc::new(Schema::new(fields));
    let mut next = 0i32;
    let dims: Vec<RecordBatch> = dims
        .into_iter()
        .map(|b| {
            let ids = arrow::array::Int32Array::from_iter_values(next..next + b.num_rows() as i32);
            next += b.num_rows() as i32;
            let mut cols = b.columns().to_vec();
            cols.push(Arc::new(ids));
            RecordBatch::try_new(dims_schema.clone(), cols).expect("columns match")
        })
        .collect();
    register(ctx, "dims", dims, dims_schema);
    let (schema, rd) = collect(ctx, &fill(SQL_RESPONSE_DIMS, range)).await?;
    register(ctx, "response_dims", rd, schema);
    Ok(())
}
