//! `palaute aggregate`: compute the comparison marts (`sql/`, docs/marts.md) with disclosure
//! control and write them as Delta tables, replacing the years it recomputes.
//!
//! A recomputation covers whole calendar years: a year's and a half-year's figures, and the
//! suppression pattern across nested periods, depend on every month in them. It covers every
//! period type asked for plus every type the marts already hold for those years, so that nested
//! periods published side by side were always suppressed together. The marts are committed one
//! by one and then a ledger row (pipeline `aggregate`) names their versions: readers see all of
//! the new marts or none, as with a pipeline run.

//!
//! It reads as plan, then execute: `plan` decides the years, period types, levels and cubes;
//! `year` computes each year (`sql_path` for the reference definitions, the fine cubes
//! otherwise), `figures` a mart's cells and figures, `adjust` the case-mix adjustment, `publish`
//! uploads each mart's files; `commit` commits them and the ledger row; `report` renders the
//! result.

mod adjust;
mod commit;
mod figures;
mod plan;
mod publish;
mod report;
mod sql_path;
mod year;

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;

pub use figures::decide;
pub use report::render;

use crate::Cause;
use crate::marts::casemix::{COEFFICIENTS, Settings as CaseMixSettings};
use crate::marts::disclosure::Rules;
use crate::marts::periods::PeriodType;
use crate::marts::{ITEM_SCORES, RECOMMENDATION};
use crate::schema::Catalog;
use crate::warehouse::ledger;
use crate::warehouse::{Warehouse, WarehouseError};
use plan::Plan;
use year::Execution;

use super::sql::SqlError;

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
    #[error("{mart}: {source}")]
    Mart {
        mart: String,
        #[source]
        source: Cause,
    },
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

impl AggregateOptions {
    /// Whether the mart `name` is recomputed (no `--marts`: every one).
    pub fn wants(&self, name: &str) -> bool {
        self.marts.is_empty() || self.marts.iter().any(|m| m == name)
    }
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
    let phase = Instant::now();
    let plan = Plan::make(wh, opts, committed).await?;
    let ctx = plan.session(opts).await?;
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "tables opened");
    let report = AggregateReport {
        run_id: run_id.clone(),
        years: plan.years.clone(),
        period_types: plan.types.iter().map(|t| t.as_str().to_string()).collect(),
        marts: BTreeMap::new(),
        table_versions: plan.committed.clone(),
        partitions_computed: 0,
        partitions_reused: 0,
        casemix_models: 0,
        casemix_notes: Vec::new(),
        seconds: 0.0,
    };
    if plan.years.is_empty() {
        return Ok(AggregateReport {
            seconds: clock.elapsed().as_secs_f64(),
            ..report
        });
    }
    let (os, ob) = sql_path::ordinal_items(Catalog::embedded())?;
    sql_path::register(&ctx, "ordinal_items", vec![ob], os);
    let mut run = Execution::new(wh, opts, &plan, &ctx, &run_id, report);
    let stepped = run.years().await;
    run.report.casemix_notes.sort();
    if stepped.is_ok()
        && !plan.adjusting
        && (opts.wants(ITEM_SCORES) || opts.wants(RECOMMENDATION))
        && wh.table_exists(COEFFICIENTS).await?
    {
        // figures recomputed without adjustment: the coefficients of those years go
        run.written.push((COEFFICIENTS, Vec::new()));
    }
    commit::cache_written(std::mem::take(&mut run.cache_writes)).await;
    if let Err(e) = stepped {
        commit::discard(wh, std::mem::take(&mut run.pending), &run.written).await;
        return Err(e);
    }
    let Execution {
        mut report,
        written,
        ..
    } = run;
    commit::commit(wh, opts, &plan, &run_id, started, &written, &mut report).await?;
    report.seconds = clock.elapsed().as_secs_f64();
    Ok(report)
}
