//! `palaute aggregate`: compute the comparison marts (`sql/`, docs/marts.md) with disclosure
//! control and write them as Delta tables, replacing the years it recomputes.
//!
//! A recomputation covers whole calendar years: a year's and a half-year's figures, and the
//! suppression pattern across nested periods, depend on every month in them. It covers every
//! period type asked for plus every type the marts already hold for those years, so that nested
//! periods published side by side were always suppressed together. The marts are committed one
//! by one and then a ledger row (pipeline `aggregate`) names their versions: readers see all of
//! the new marts or none, as with a pipeline run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use chrono::Utc;
use datafusion::prelude::SessionContext;
use deltalake_core::kernel::Action;
use futures::FutureExt;
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;

use crate::marts::casemix::{
    self, Adjustment, COEFFICIENTS, Settings as CaseMixSettings, coefficient_rows,
};
use crate::marts::cells::{Cells, Key, groups, read_keys};
use crate::marts::disclosure::{Reason, Rules, suppress};
use crate::marts::periods::{ALL_PERIOD_TYPES, PeriodRow, PeriodType, parse_month, period_rows};
use crate::marts::{
    GEO_LEVELS, METHOD, MartSpec, SPECS, SQL_CUBE_RESPONSES, SQL_RESPONSE_DIMS, figure_vars, fill,
    rollup_sql,
};
use crate::schema::{Catalog, ScaleKind};
use crate::warehouse::ledger;
use crate::warehouse::tables::MART_TABLES;
use crate::warehouse::writer::{WrittenFile, add_action, remove_action, writer_properties};
use crate::warehouse::{Warehouse, WarehouseError};

use super::sql::{SqlError, session_of};

/// The pipeline name of aggregation rows in the `runs` ledger.
pub const LEDGER_NAME: &str = "aggregate";

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("aggregate query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Invalid(String),
    #[error("{mart}: {message}")]
    Mart { mart: String, message: String },
    #[error("failpoint {0} (PALAUTE_FAILPOINT): the aggregation stopped on purpose")]
    Failpoint(String),
}

impl AggregateError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AggregateError::Invalid(_) => super::exit::CONFIG,
            AggregateError::Failpoint(_) => super::exit::FAILURE,
            AggregateError::Warehouse(e) => e.exit_code(),
            AggregateError::Sql(e) => e.exit_code(),
            _ => super::exit::ENVIRONMENT,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AggregateOptions {
    /// period types to compute (empty: all five)
    pub period_types: Vec<PeriodType>,
    /// first and last month (YYYY-MM); the range widens to whole years
    pub from: Option<String>,
    pub to: Option<String>,
    /// geography levels to publish (empty: all); the nation is always computed
    pub levels: Vec<String>,
    pub rules: Rules,
    /// compute the fine cubes with the SQL files over the whole tables (the reference
    /// definition) instead of partition by partition
    pub sql_cubes: bool,
    /// marts to recompute (empty: all four); the others keep what they hold
    pub marts: Vec<String>,
    /// compute every partition's cubes, not taking unchanged ones from the cube cache
    pub fresh_cubes: bool,
    /// the case-mix adjustment of item_scores and recommendation
    pub adjustment: CaseMixSettings,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MartReport {
    pub rows: u64,
    pub suppressed_primary: u64,
    pub suppressed_secondary: u64,
    pub suppressed_cascade: u64,
    pub low_reliability: u64,
    /// casemix_coefficients: the models fitted and their notes (in the report's own fields)
    #[serde(skip)]
    pub casemix_models: u64,
    #[serde(skip)]
    pub casemix_notes: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AggregateReport {
    pub run_id: String,
    pub years: Vec<i32>,
    pub period_types: Vec<String>,
    pub marts: BTreeMap<String, MartReport>,
    pub table_versions: BTreeMap<String, u64>,
    /// warehouse partitions whose cubes were computed, and taken from the cube cache
    pub partitions_computed: u64,
    pub partitions_reused: u64,
    /// the case-mix models fitted, and what they left out (each note once)
    pub casemix_models: u64,
    pub casemix_notes: Vec<String>,
    pub seconds: f64,
}

fn failpoint(stage: &str) -> Result<(), AggregateError> {
    super::failpoint::at(stage).map_err(AggregateError::Failpoint)
}

fn invalid(m: impl Into<String>) -> AggregateError {
    AggregateError::Invalid(m.into())
}

/// Years to recompute: the range given, else every year the responses or the marts hold.
fn years(
    response_years: &BTreeSet<i32>,
    opts: &AggregateOptions,
    existing: &BTreeSet<(String, String)>,
) -> Result<Vec<i32>, AggregateError> {
    let month = |s: &Option<String>, what: &str| -> Result<Option<(i32, u32)>, AggregateError> {
        match s {
            None => Ok(None),
            Some(v) => parse_month(v)
                .map(Some)
                .ok_or_else(|| invalid(format!("--{what} {v}: expected a month YYYY-MM"))),
        }
    };
    let from = month(&opts.from, "from")?;
    let to = month(&opts.to, "to")?;
    let mut found: BTreeSet<i32> = response_years.clone();
    for (_, y) in existing {
        if let Ok(y) = y.parse() {
            found.insert(y);
        }
    }
    let lo = from.map(|m| m.0).unwrap_or(i32::MIN);
    let hi = to.map(|m| m.0).unwrap_or(i32::MAX);
    if lo > hi {
        return Err(invalid("--from is after --to"));
    }
    Ok(found
        .into_iter()
        .filter(|y| (lo..=hi).contains(y))
        .collect())
}

fn utf8(col: &ArrayRef) -> ArrayRef {
    match col.data_type() {
        DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(_, _) => {
            arrow::compute::cast(col, &DataType::Utf8).unwrap_or_else(|_| col.clone())
        }
        _ => col.clone(),
    }
}

/// Batches with every string column as plain Utf8 (what the mart tables declare).
fn plain(schema: &SchemaRef, batches: Vec<RecordBatch>) -> (SchemaRef, Vec<RecordBatch>) {
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

fn int_column(b: &RecordBatch, name: &str) -> Result<Vec<u64>, String> {
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
    let decided = if super::failpoint::skip("secondary-suppression") {
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

fn register(ctx: &SessionContext, name: &str, batches: Vec<RecordBatch>, schema: SchemaRef) {
    let _ = ctx.deregister_table(name);
    let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
    let t = datafusion::datasource::MemTable::try_new(schema, vec![batches])
        .expect("batches match their schema");
    ctx.register_table(name, Arc::new(t))
        .expect("a fresh name registers");
}

async fn collect(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>), AggregateError> {
    let df = ctx.sql(sql).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok((schema, batches))
}

fn periods_table(years: &[i32], types: &[PeriodType]) -> (SchemaRef, RecordBatch) {
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
fn ordinal_items(catalog: &Catalog) -> Result<(SchemaRef, RecordBatch), AggregateError> {
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

/// One mart's figures, computed in `ctx` (which holds `periods`, `ordinal_items` and
/// `response_cube`).
/// A mart by the reference path: its fine cube by SQL (`--sql-cubes`) and the rollup by
/// `sql/rollup.sql`, in `ctx` (which holds the registered cubes).
async fn rolled_sql(
    ctx: &SessionContext,
    spec: &MartSpec,
    opts: &AggregateOptions,
    range: &[(&str, String)],
    levels: &[&str],
) -> Result<Rolled, AggregateError> {
    let mart_err = |m: String| AggregateError::Mart {
        mart: spec.name.to_string(),
        message: m,
    };
    let (schema, cube) = collect(ctx, &fill(spec.cube_sql, range)).await?;
    // each mart's cube replaces the one before
    let _ = ctx.deregister_table("cube");
    register(ctx, "cube", cube, schema);
    let (schema, rolled) = collect(ctx, &rollup_sql(spec, levels)).await?;
    let (schema, rolled) = plain(&schema, rolled);
    let reasons = decide(&rolled, spec, &opts.rules).map_err(mart_err)?;
    Ok((schema, rolled, reasons))
}

/// A mart's rolled-up cells and their disclosure decisions.
type Rolled = (SchemaRef, Vec<RecordBatch>, Vec<Option<Reason>>);

/// A mart from its fine cube (the default path): the rollup and suppression on a blocking
/// thread, the figures SQL in a session of its own, so that marts and years compute
/// concurrently.
async fn compute_mart(
    cube: Vec<RecordBatch>,
    spec: &'static MartSpec,
    rules: Rules,
    levels: Vec<String>,
    periods: Vec<PeriodRow>,
    adjust: Option<AdjustFuture>,
) -> Result<Computed, AggregateError> {
    let mart_err = |m: String| AggregateError::Mart {
        mart: spec.name.to_string(),
        message: m,
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
    .map_err(|e| mart_err(e.to_string()))?
    .map_err(mart_err)?;
    tracing::debug!(
        mart = spec.name,
        cube_rows,
        rollup_s = t_rollup,
        suppress_s = t.elapsed().as_secs_f64() - t_rollup,
        "phases"
    );
    // the models and the cells' respondent mix (computed beside this mart's rollup)
    let adjust = match adjust {
        Some(waiting) => Some(waiting.await.map_err(mart_err)?.0),
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
async fn figures(
    ctx: &SessionContext,
    spec: &MartSpec,
    rules: &Rules,
    (schema, rolled, reasons): (&SchemaRef, &[RecordBatch], &[Option<Reason>]),
    adjust: Option<&Adjustment>,
) -> Result<Computed, AggregateError> {
    let mart_err = |m: String| AggregateError::Mart {
        mart: spec.name.to_string(),
        message: m,
    };
    let mut report = MartReport::default();
    for r in reasons.iter().flatten() {
        match r {
            Reason::Primary => report.suppressed_primary += 1,
            Reason::Secondary => report.suppressed_secondary += 1,
            Reason::Cascade => report.suppressed_cascade += 1,
        }
    }
    let cells =
        arrow::compute::concat_batches(schema, rolled).map_err(|e| mart_err(e.to_string()))?;
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
        Some(a) => cols.extend(a.columns(spec.name, &cells, reasons).map_err(mart_err)?),
        None => cols.extend(casemix::null_columns(spec.name, cells.num_rows())),
    }
    let cells_schema = Arc::new(Schema::new(fields));
    let cells =
        RecordBatch::try_new(cells_schema.clone(), cols).map_err(|e| mart_err(e.to_string()))?;
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

/// A mart's batches encoded as one Parquet file per (period_type, year): each file's path in the
/// table, bytes and partition values, and its rows.
fn encode_mart(
    name: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    run_id: &str,
) -> Result<Vec<(WrittenFile, Vec<u8>)>, AggregateError> {
    let err = |m: String| AggregateError::Mart {
        mart: name.to_string(),
        message: m,
    };
    let pt_i = schema
        .index_of("period_type")
        .map_err(|e| err(e.to_string()))?;
    let year_i = schema.index_of("year").map_err(|e| err(e.to_string()))?;
    let file_fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != pt_i && *i != year_i)
        .map(|(_, f)| f.as_ref().clone())
        .collect();
    let file_schema = Arc::new(Schema::new(file_fields));
    // rows per partition
    let mut parts: BTreeMap<(String, String), Vec<RecordBatch>> = BTreeMap::new();
    for b in batches {
        let pt = b.column(pt_i).as_string::<i32>();
        let yr = b.column(year_i).as_string::<i32>();
        let mut idx: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
        for i in 0..b.num_rows() {
            idx.entry((pt.value(i).to_string(), yr.value(i).to_string()))
                .or_default()
                .push(i as u32);
        }
        for (k, rows) in idx {
            let take = arrow::array::UInt32Array::from(rows);
            let cols: Vec<ArrayRef> = b
                .columns()
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != pt_i && *i != year_i)
                .map(|(_, c)| arrow::compute::take(c, &take, None))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?;
            parts.entry(k).or_default().push(
                RecordBatch::try_new(file_schema.clone(), cols).map_err(|e| err(e.to_string()))?,
            );
        }
    }
    let mut files = Vec::new();
    for ((pt, year), bs) in parts {
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, file_schema.clone(), Some(writer_properties()))
            .map_err(|e| err(e.to_string()))?;
        let mut rows = 0i64;
        for b in &bs {
            rows += b.num_rows() as i64;
            w.write(b).map_err(|e| err(e.to_string()))?;
        }
        w.close().map_err(|e| err(e.to_string()))?;
        let rel = format!("period_type={pt}/year={year}/part-{run_id}.snappy.parquet");
        let size = buf.len() as i64;
        files.push((
            WrittenFile {
                rel_path: rel,
                local_path: Default::default(),
                partition_values: vec![("period_type".into(), pt), ("year".into(), year)],
                rows,
                size,
            },
            buf,
        ));
    }
    Ok(files)
}

/// Encode a computed mart's files (on a blocking thread) and upload them (uncommitted,
/// invisible until the commit): done on the mart's own task, so that one year's files are
/// encoded while the other year's marts compute.
async fn publish(
    wh: Warehouse,
    name: &'static str,
    computed: Computed,
    run_id: String,
) -> Result<Published, AggregateError> {
    let (schema, batches, report) = computed;
    let s = schema.clone();
    let encoded = tokio::task::spawn_blocking(move || encode_mart(name, &s, &batches, &run_id))
        .await
        .map_err(|e| AggregateError::Mart {
            mart: name.to_string(),
            message: e.to_string(),
        })??;
    failpoint(&format!("publish:{name}"))?;
    let mut files = Vec::new();
    for (f, buf) in encoded {
        let put = wh
            .loc
            .store
            .put(&wh.loc.child(&format!("{name}/{}", f.rel_path)), buf.into())
            .await;
        if let Err(e) = put {
            crate::warehouse::writer::delete_uploaded(&wh.loc, name, &files).await;
            return Err(AggregateError::Mart {
                mart: name.to_string(),
                message: e.to_string(),
            });
        }
        files.push(f);
    }
    Ok((schema, files, report))
}

/// A mart's published schema, rows and counts.
type Computed = (SchemaRef, Vec<RecordBatch>, MartReport);

/// A mart's published schema, files (uploaded, not committed) and counts.
type Published = (SchemaRef, Vec<WrittenFile>, MartReport);

/// A mart being computed on a task of its own: its year, name and start.
type Pending<'a> = (
    i32,
    &'a str,
    Instant,
    tokio::task::JoinHandle<Result<Published, AggregateError>>,
);

/// Roll-up cells (cube rows × period types × geography levels, an estimate) up to which a
/// year's marts start while the previous year's are still being computed, the two side by side
/// on the cores. W2's figures (one period type, one level) are far below and gain from it; a
/// full aggregation (every period type and level, ~20M cells a year at 1M responses) is far
/// above, where running two years side by side needs much more memory and is slower
/// (docs/performance.md has the measurements).
const SIDE_BY_SIDE_CELLS: usize = 8_000_000;

/// Await marts being computed and published, and record each one's files. Every one is
/// awaited even when one fails, and the files of the others are then deleted, so that a failed
/// aggregation leaves no uploaded file behind.
async fn write_marts<'a>(
    wh: &Warehouse,
    done: Vec<Pending<'a>>,
    report: &mut AggregateReport,
    written: &mut Vec<(&'a str, Vec<WrittenFile>)>,
) -> Result<(), AggregateError> {
    let mut results = Vec::new();
    for (year, name, t, handle) in done {
        let r = handle.await.map_err(|e| AggregateError::Mart {
            mart: name.to_string(),
            message: e.to_string(),
        });
        results.push((year, name, t, r.and_then(|r| r)));
    }
    if let Some(i) = results.iter().position(|r| r.3.is_err()) {
        for (_, name, _, r) in &results {
            if let Ok((_, files, _)) = r {
                crate::warehouse::writer::delete_uploaded(&wh.loc, name, files).await;
            }
        }
        let (_, _, _, r) = results.swap_remove(i);
        return r.map(|_| ());
    }
    for (year, name, t, r) in results {
        let (schema, files, mr) = r?;
        // recorded first: a failure from here on deletes them with the rest
        match written.iter_mut().find(|(n, _)| *n == name) {
            Some((_, f)) => f.extend(files),
            None => written.push((name, files)),
        }
        // test hook: create the marts as the version before the case-mix adjustment did, for
        // the test of a warehouse that version wrote
        let schema = if super::failpoint::skip("case-mix-columns") {
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .filter(|f| !f.name().contains("_adjusted"))
                .map(|f| f.as_ref().clone())
                .collect();
            Arc::new(Schema::new(fields))
        } else {
            schema
        };
        wh.ensure_mart(name, &schema, METHOD).await?;
        tracing::info!(
            mart = name,
            year,
            rows = mr.rows,
            primary = mr.suppressed_primary,
            secondary = mr.suppressed_secondary,
            cascade = mr.suppressed_cascade,
            seconds = t.elapsed().as_secs_f64(),
            "mart computed"
        );
        let total = report.marts.entry(name.to_string()).or_default();
        total.rows += mr.rows;
        total.suppressed_primary += mr.suppressed_primary;
        total.suppressed_secondary += mr.suppressed_secondary;
        total.suppressed_cascade += mr.suppressed_cascade;
        total.low_reliability += mr.low_reliability;
        report.casemix_models += mr.casemix_models;
        for n in mr.casemix_notes {
            if !report.casemix_notes.contains(&n) {
                report.casemix_notes.push(n);
            }
        }
    }
    Ok(())
}

/// The reference path: the fine cubes by the SQL files over the whole tables.
async fn sql_cubes(ctx: &SessionContext, range: &[(&str, String)]) -> Result<(), AggregateError> {
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

/// A year's case-mix adjustment: the models of its periods' windows from the casemix cube rows
/// `pool` (every month the windows reach), and every cell's respondent mix from
/// response_counts' rolled-up cells `counts`.
fn adjustment_blocking(
    pool: Vec<RecordBatch>,
    counts: &Rolled,
    periods: &[PeriodRow],
    settings: &CaseMixSettings,
    rules: Rules,
) -> Result<Adjustment, String> {
    let t = Instant::now();
    let models = casemix::fit_models(&pool, &casemix::window_ends(periods), settings, &rules)?;
    let mix = casemix::cell_mix(&counts.1, &counts.2, rules.reliable_n as f64)?;
    tracing::info!(
        models = models.models.len(),
        seconds = t.elapsed().as_secs_f64(),
        "case-mix models fitted"
    );
    Ok(Adjustment { models, mix, rules })
}

/// [`adjustment_blocking`] on a blocking thread.
async fn adjustment(
    pool: Vec<RecordBatch>,
    counts: &Rolled,
    periods: &[PeriodRow],
    opts: &AggregateOptions,
) -> Result<Adjustment, AggregateError> {
    let (settings, rules, periods) = (opts.adjustment.clone(), opts.rules, periods.to_vec());
    let counts = counts.clone();
    tokio::task::spawn_blocking(move || {
        adjustment_blocking(pool, &counts, &periods, &settings, rules)
    })
    .await
    .map_err(|e| invalid(e.to_string()))?
    .map_err(|m| AggregateError::Mart {
        mart: COEFFICIENTS.to_string(),
        message: m,
    })
}

/// A year's adjustment being computed (shared by the marts that await it), with
/// response_counts' rolled-up cells it was computed from.
type AdjustFuture = futures::future::Shared<
    futures::future::BoxFuture<'static, Result<(Arc<Adjustment>, Arc<Rolled>), String>>,
>;

/// The coefficients of a year's models as the rows of `casemix_coefficients`.
fn coefficients_of(a: &Adjustment, year: i32) -> Result<Computed, AggregateError> {
    let b = coefficient_rows(&a.models, year).map_err(|m| AggregateError::Mart {
        mart: COEFFICIENTS.to_string(),
        message: m,
    })?;
    let report = MartReport {
        rows: b.num_rows() as u64,
        casemix_models: a.models.models.len() as u64,
        casemix_notes: a.notes().into_iter().collect(),
        ..MartReport::default()
    };
    Ok((b.schema(), vec![b], report))
}

/// The lowest value of each catalog item's top box.
fn ordinal_top_low(catalog: &Catalog) -> HashMap<(String, String), i64> {
    let mut m = HashMap::new();
    for i in catalog.instruments.values() {
        for (code, it) in &i.items {
            let scale = &catalog.scales[&it.scale];
            if scale.kind == ScaleKind::Ordinal && it.scale != "recommend11" {
                let top = scale.top_box.iter().min().copied().unwrap_or(scale.max);
                m.insert((i.code.clone(), code.clone()), top as i64);
            }
        }
    }
    m
}

/// Compute and publish the marts.
pub async fn aggregate(
    wh: &Warehouse,
    opts: &AggregateOptions,
) -> Result<AggregateReport, AggregateError> {
    let clock = Instant::now();
    let started = Utc::now();
    if !wh.exists().await? {
        return Err(WarehouseError::Missing(wh.loc.display()).into());
    }
    // the ledger's committed versions, read once: recovery restores tables to them
    let committed = ledger::committed_versions(wh).await?;
    wh.recover_to(&committed).await?;
    tracing::debug!(seconds = clock.elapsed().as_secs_f64(), "warehouse checked");
    let run_id = ledger::new_run_id();
    for l in &opts.levels {
        if !GEO_LEVELS.contains(&l.as_str()) {
            return Err(invalid(format!(
                "unknown geography level '{l}' (levels: {})",
                GEO_LEVELS.join(", ")
            )));
        }
    }
    for m in &opts.marts {
        if !MART_TABLES.contains(&m.as_str()) {
            return Err(invalid(format!(
                "unknown mart '{m}' (marts: {})",
                MART_TABLES.join(", ")
            )));
        }
    }
    let wanted = |mart: &str| opts.marts.is_empty() || opts.marts.iter().any(|m| m == mart);
    let mut levels: Vec<&str> = if opts.levels.is_empty() {
        GEO_LEVELS.to_vec()
    } else {
        opts.levels.iter().map(String::as_str).collect()
    };
    if !levels.contains(&"nation") {
        levels.push("nation");
    }
    let phase = Instant::now();
    // the committed version of the tables read, opened once (the reference path's SQL may
    // read any table)
    let committed_tables = if opts.sql_cubes {
        wh.committed_tables_at(&[], &committed).await?
    } else {
        let mut names = vec![
            crate::warehouse::tables::RESPONSES,
            crate::warehouse::tables::ANSWERS,
        ];
        names.extend(MART_TABLES);
        wh.committed_tables_at(&names, &committed).await?
    };
    // what the marts hold now: (period_type, year) partitions
    let mut existing: BTreeSet<(String, String)> = BTreeSet::new();
    for name in MART_TABLES {
        let Some(t) = committed_tables.get(name) else {
            continue;
        };
        for f in &wh.files(t).await? {
            let pv: BTreeMap<String, String> = f.partition_values().into_iter().collect();
            if let (Some(pt), Some(y)) = (pv.get("period_type"), pv.get("year")) {
                existing.insert((pt.clone(), y.clone()));
            }
        }
    }
    // the years that hold responses, from the partition values of the files (no data is read)
    let mut response_years: BTreeSet<i32> = BTreeSet::new();
    for f in &wh
        .files(&committed_tables[crate::warehouse::tables::RESPONSES])
        .await?
    {
        let pv: BTreeMap<String, String> = f.partition_values().into_iter().collect();
        if let Some(y) = pv.get("period").and_then(|p| p.get(..4)?.parse().ok()) {
            response_years.insert(y);
        }
    }
    // the reference path queries the warehouse tables by SQL; the default one reads files
    let ctx = if opts.sql_cubes {
        session_of(&committed_tables).await?
    } else {
        SessionContext::new()
    };
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "tables opened");
    opts.adjustment.check().map_err(invalid)?;
    let adjusting = opts.adjustment.enabled
        && (wanted(crate::marts::ITEM_SCORES) || wanted(crate::marts::RECOMMENDATION));
    let mut years = years(&response_years, opts, &existing)?;
    if adjusting {
        // a later year's adjustment pools reach into the years recomputed: it is recomputed too
        let dependent: Vec<i32> = response_years
            .iter()
            .copied()
            .filter(|z| !years.contains(z))
            .filter(|z| {
                opts.adjustment
                    .years_before(*z)
                    .iter()
                    .any(|y| years.contains(y))
            })
            .collect();
        years.extend(dependent);
        years.sort_unstable();
    }
    let year_set: BTreeSet<String> = years.iter().map(|y| y.to_string()).collect();
    let mut types: BTreeSet<PeriodType> = if opts.period_types.is_empty() {
        ALL_PERIOD_TYPES.into_iter().collect()
    } else {
        opts.period_types.iter().copied().collect()
    };
    for (pt, y) in &existing {
        if year_set.contains(y)
            && let Some(t) = PeriodType::parse(pt)
        {
            types.insert(t);
        }
    }
    let types: Vec<PeriodType> = types.into_iter().collect();
    let mut report = AggregateReport {
        run_id: run_id.clone(),
        years: years.clone(),
        period_types: types.iter().map(|t| t.as_str().to_string()).collect(),
        marts: BTreeMap::new(),
        table_versions: committed.clone(),
        partitions_computed: 0,
        partitions_reused: 0,
        casemix_models: 0,
        casemix_notes: Vec::new(),
        seconds: 0.0,
    };
    if years.is_empty() {
        report.seconds = clock.elapsed().as_secs_f64();
        return Ok(report);
    }
    let (os, ob) = ordinal_items(Catalog::embedded())?;
    register(&ctx, "ordinal_items", vec![ob], os);
    // One year at a time: years are independent (no period, hence no suppression group, spans
    // two). A year's marts are computed on tasks of their own while the next year's cubes are
    // built (and, when small, while that year's marts are computed); they are written before the
    // cubes of the year after that, so memory holds at most two years' cells.
    let mut written: Vec<(&str, Vec<WrittenFile>)> = Vec::new();
    let mut pending: Vec<Pending<'static>> = Vec::new();
    let mut cache_writes = Vec::new();
    let need = crate::marts::cube::Needs {
        core: true,
        counts: wanted(crate::marts::RESPONSE_COUNTS) || adjusting,
        selections: wanted(crate::marts::SELECTIONS),
        casemix: adjusting,
    };
    // the case-mix pools of the years computed, and of earlier years the windows reach into
    let mut pools: BTreeMap<i32, Vec<RecordBatch>> = BTreeMap::new();
    // the next year's cube cache is read while this year's cubes are built and its marts
    // computed
    let prefetch_of = |i: usize| {
        (!opts.sql_cubes && !opts.fresh_cubes)
            .then(|| years.get(i))
            .flatten()
            .map(|y| crate::marts::cube::prefetch(wh, &y.to_string(), need))
    };
    let mut next = prefetch_of(0);
    let step = async {
        for (i, year) in years.iter().enumerate() {
            let this = next.take();
            next = prefetch_of(i + 1);
            let period_list = period_rows(&[*year], &types);
            let range = vec![("from", format!("{year}-01")), ("to", format!("{year}-12"))];
            let t = Instant::now();
            let before = opts.adjustment.years_before(*year);
            if opts.sql_cubes {
                let (ps, pb) = periods_table(&[*year], &types);
                let _ = ctx.deregister_table("periods");
                register(&ctx, "periods", vec![pb], ps);
                for name in ["response_cube", "dims", "response_dims"] {
                    let _ = ctx.deregister_table(name);
                }
                sql_cubes(&ctx, &range).await?;
                tracing::info!(year, seconds = t.elapsed().as_secs_f64(), "fine cubes");
                let mut adjust = None;
                let mut counts_rolled = None;
                if adjusting {
                    let rc = crate::marts::spec(crate::marts::RESPONSE_COUNTS);
                    let rolled = rolled_sql(&ctx, rc, opts, &range, &levels).await?;
                    let from = format!("{}-01", before.first().copied().unwrap_or(*year));
                    let pool_range = vec![("from", from), ("to", range[1].1.clone())];
                    let (_, pool) =
                        collect(&ctx, &fill(crate::marts::SQL_CUBE_CASEMIX, &pool_range)).await?;
                    let a = adjustment(pool, &rolled, &period_list, opts).await?;
                    let coefficients = coefficients_of(&a, *year)?;
                    let (wh, run_id) = (wh.clone(), run_id.clone());
                    pending.push((
                        *year,
                        COEFFICIENTS,
                        Instant::now(),
                        tokio::spawn(async move {
                            publish(wh, COEFFICIENTS, coefficients, run_id).await
                        }),
                    ));
                    adjust = Some(a);
                    counts_rolled = Some(rolled);
                }
                for spec in SPECS.iter().filter(|s| wanted(s.name)) {
                    let t = Instant::now();
                    let rolled = match counts_rolled.take() {
                        Some(r) if spec.name == crate::marts::RESPONSE_COUNTS => r,
                        other => {
                            counts_rolled = other;
                            rolled_sql(&ctx, spec, opts, &range, &levels).await?
                        }
                    };
                    let out = figures(
                        &ctx,
                        spec,
                        &opts.rules,
                        (&rolled.0, &rolled.1, &rolled.2),
                        adjust.as_ref(),
                    )
                    .await;
                    let (wh, run_id) = (wh.clone(), run_id.clone());
                    let handle =
                        tokio::spawn(async move { publish(wh, spec.name, out?, run_id).await });
                    pending.push((*year, spec.name, t, handle));
                }
            } else {
                let built = crate::marts::cube::build(
                    wh,
                    &committed_tables[crate::warehouse::tables::RESPONSES],
                    &committed_tables[crate::warehouse::tables::ANSWERS],
                    &range[0].1,
                    &range[1].1,
                    ordinal_top_low(Catalog::embedded()),
                    need,
                    opts.fresh_cubes,
                    this,
                )
                .await?;
                report.partitions_computed += built.computed as u64;
                report.partitions_reused += built.reused as u64;
                cache_writes.extend(built.cache_writes);
                let c = built.cubes;
                tracing::info!(
                    year,
                    computed = built.computed,
                    reused = built.reused,
                    seconds = t.elapsed().as_secs_f64(),
                    "fine cubes"
                );
                // the previous year's marts ran while these cubes were built; this year's start
                // before they are awaited when both fit side by side (see SIDE_BY_SIDE_CELLS)
                let mut cubes: Vec<(&'static MartSpec, Vec<RecordBatch>)> = SPECS
                    .iter()
                    .filter(|s| wanted(s.name))
                    .map(|s| (crate::marts::spec(s.name), c.of_mart(s.name)))
                    .collect();
                let cube_rows: usize = cubes
                    .iter()
                    .flat_map(|(_, b)| b.iter())
                    .map(|b| b.num_rows())
                    .sum();
                let cells = cube_rows * types.len() * (levels.len() + 1);
                let mut previous = std::mem::take(&mut pending);
                if cells > SIDE_BY_SIDE_CELLS {
                    write_marts(wh, previous, &mut report, &mut written).await?;
                    previous = Vec::new();
                }
                let mut adjust: Option<AdjustFuture> = None;
                if adjusting {
                    // the pools of the earlier years the windows reach into
                    for y in &before {
                        if pools.contains_key(y) || !response_years.contains(y) {
                            continue;
                        }
                        let only = crate::marts::cube::Needs {
                            core: false,
                            counts: false,
                            selections: false,
                            casemix: true,
                        };
                        let earlier = crate::marts::cube::build(
                            wh,
                            &committed_tables[crate::warehouse::tables::RESPONSES],
                            &committed_tables[crate::warehouse::tables::ANSWERS],
                            &format!("{y}-01"),
                            &format!("{y}-12"),
                            ordinal_top_low(Catalog::embedded()),
                            only,
                            opts.fresh_cubes,
                            None,
                        )
                        .await?;
                        cache_writes.extend(earlier.cache_writes);
                        pools.insert(*y, earlier.cubes.casemix.1);
                    }
                    pools.insert(*year, c.casemix.1.clone());
                    let pool: Vec<RecordBatch> = pools
                        .range(before.first().copied().unwrap_or(*year)..=*year)
                        .flat_map(|(_, b)| b.iter().cloned())
                        .collect();
                    // the pools the next year needs: this year's and those after the window
                    let keep = opts
                        .adjustment
                        .years_before(year + 1)
                        .first()
                        .copied()
                        .unwrap_or(year + 1);
                    pools.retain(|y, _| *y >= keep);
                    let rc = crate::marts::spec(crate::marts::RESPONSE_COUNTS);
                    let (counts_cube, periods, levels_owned, rules, settings) = (
                        c.counts.1.clone(),
                        period_list.clone(),
                        levels.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
                        opts.rules,
                        opts.adjustment.clone(),
                    );
                    // response_counts' cells and the models on a task of their own: the other
                    // marts' rollups run beside it, and await it only for their figures
                    let task = tokio::task::spawn_blocking(move || {
                        let levels: Vec<&str> = levels_owned.iter().map(String::as_str).collect();
                        let (schema, rolled) =
                            crate::marts::rollup::rollup(&counts_cube, rc, &periods, &levels)?;
                        let reasons = decide(&rolled, rc, &rules)?;
                        let rolled = (schema, rolled, reasons);
                        let a = adjustment_blocking(pool, &rolled, &periods, &settings, rules)?;
                        Ok::<_, String>((Arc::new(a), Arc::new(rolled)))
                    });
                    let shared: AdjustFuture =
                        async move { task.await.map_err(|e| e.to_string())? }
                            .boxed()
                            .shared();
                    let (wh, run_id, y, waiting) =
                        (wh.clone(), run_id.clone(), *year, shared.clone());
                    pending.push((
                        *year,
                        COEFFICIENTS,
                        Instant::now(),
                        tokio::spawn(async move {
                            let (a, _) = waiting.await.map_err(|m| AggregateError::Mart {
                                mart: COEFFICIENTS.to_string(),
                                message: m,
                            })?;
                            publish(wh, COEFFICIENTS, coefficients_of(&a, y)?, run_id).await
                        }),
                    ));
                    adjust = Some(shared);
                }
                for (spec, cube) in cubes.drain(..) {
                    let levels: Vec<String> = levels.iter().map(|l| l.to_string()).collect();
                    let (wh, run_id, rules) = (wh.clone(), run_id.clone(), opts.rules);
                    let periods = period_list.clone();
                    let adjust = adjust.clone();
                    let handle = tokio::spawn(async move {
                        let computed = match adjust {
                            // response_counts' cells were rolled up with the models
                            Some(waiting) if spec.name == crate::marts::RESPONSE_COUNTS => {
                                let (_, rolled) =
                                    waiting.await.map_err(|m| AggregateError::Mart {
                                        mart: spec.name.to_string(),
                                        message: m,
                                    })?;
                                figures(
                                    &SessionContext::new(),
                                    spec,
                                    &rules,
                                    (&rolled.0, &rolled.1, &rolled.2),
                                    None,
                                )
                                .await?
                            }
                            adjust => {
                                compute_mart(cube, spec, rules, levels, periods, adjust).await?
                            }
                        };
                        publish(wh, spec.name, computed, run_id).await
                    });
                    pending.push((*year, spec.name, Instant::now(), handle));
                }
                write_marts(wh, previous, &mut report, &mut written).await?;
            }
            if opts.sql_cubes || i + 1 == years.len() {
                let done = std::mem::take(&mut pending);
                write_marts(wh, done, &mut report, &mut written).await?;
            }
        }
        Ok::<(), AggregateError>(())
    };
    let stepped = step.await;
    report.casemix_notes.sort();
    if stepped.is_ok()
        && !adjusting
        && (wanted(crate::marts::ITEM_SCORES) || wanted(crate::marts::RECOMMENDATION))
        && wh.table_exists(COEFFICIENTS).await?
    {
        // figures recomputed without adjustment: the coefficients of those years go
        written.push((COEFFICIENTS, Vec::new()));
    }
    // the cube cache is only a cache: a file not written is computed again next time
    for w in cache_writes {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cube cache not written"),
            Err(e) => tracing::warn!(error = %e, "cube cache not written"),
        }
    }
    if let Err(e) = stepped {
        // the marts still being computed are awaited, and their files deleted with the rest
        for (_, name, _, h) in pending {
            if let Ok(Ok((_, files, _))) = h.await {
                crate::warehouse::writer::delete_uploaded(&wh.loc, name, &files).await;
            }
        }
        for (name, files) in &written {
            crate::warehouse::writer::delete_uploaded(&wh.loc, name, files).await;
        }
        return Err(e);
    }

    // commit every mart, then the ledger row
    let mut committed_now: Vec<(&str, u64)> = Vec::new();
    let result = async {
        for (name, files) in &written {
            let t = wh.table(name, None).await?;
            let before = t.version().unwrap_or(0);
            let mut actions: Vec<Action> = files.iter().map(add_action).collect();
            let current = wh.files(&t).await?;
            for f in &current {
                let pv: BTreeMap<String, String> = f.partition_values().into_iter().collect();
                if pv.get("year").is_some_and(|y| year_set.contains(y)) {
                    actions.push(remove_action(&f.path, f.size, &f.partition_values()));
                }
            }
            let v = wh.commit(&t, name, actions, &run_id).await?;
            committed_now.push((name, before));
            report.table_versions.insert(name.to_string(), v);
            failpoint(&format!("commit:{name}"))?;
        }
        tracing::debug!(seconds = clock.elapsed().as_secs_f64(), "marts committed");
        failpoint("aggregate:ledger")?;
        ledger::append_operation(
            wh,
            LEDGER_NAME,
            &run_id,
            started,
            format!(
                "years {}; period types {}; k = {}",
                years
                    .iter()
                    .map(|y| y.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                report.period_types.join(","),
                opts.rules.min_n
            ),
            report.marts.values().map(|m| m.rows).sum(),
            report.table_versions.clone(),
        )
        .await?;
        // every mart, period type and level of these years is now computed from the data
        let complete =
            opts.marts.is_empty() && opts.period_types.is_empty() && opts.levels.is_empty();
        if complete {
            let done: BTreeSet<i32> = years.iter().copied().collect();
            if let Err(e) = crate::warehouse::owed::settle(wh, &done).await {
                // committed all the same: the next run recomputes these years once more
                tracing::warn!(error = %e, "could not record the marts as computed");
            }
        }
        Ok::<(), AggregateError>(())
    }
    .await;
    if let Err(e) = result {
        wh.restore_all(&committed_now).await;
        for (name, files) in &written {
            if !committed_now.iter().any(|(n, _)| n == name) {
                crate::warehouse::writer::delete_uploaded(&wh.loc, name, files).await;
            }
        }
        return Err(e);
    }
    report.seconds = clock.elapsed().as_secs_f64();
    Ok(report)
}

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
