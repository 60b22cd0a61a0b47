//! The plan of an aggregation: which years, period types and geography levels it recomputes,
//! which cubes they need, and the tables at the ledger's committed versions; inspected before
//! anything is computed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use datafusion::prelude::SessionContext;
use deltalake_core::DeltaTable;

use super::{AggregateError, AggregateOptions, invalid};
use crate::marts::cube::Needs;
use crate::marts::periods::{ALL_PERIOD_TYPES, PeriodType, parse_month};
use crate::marts::{GEO_LEVELS, ITEM_SCORES, RECOMMENDATION, RESPONSE_COUNTS, SELECTIONS};
use crate::ops::sql::session_of;
use crate::schema::{Catalog, ScaleKind};
use crate::warehouse::Warehouse;
use crate::warehouse::tables::{ANSWERS, MART_TABLES, RESPONSES};

/// What an aggregation recomputes, read from the warehouse at the ledger's committed versions.
pub(super) struct Plan {
    /// the ledger's committed table versions
    pub(super) committed: BTreeMap<String, u64>,
    /// the tables read, opened at those versions
    pub(super) tables: BTreeMap<String, DeltaTable>,
    /// the years that hold responses
    pub(super) response_years: BTreeSet<i32>,
    /// the years recomputed (whole years), in order
    pub(super) years: Vec<i32>,
    /// the same, as the marts' `year` partition values
    pub(super) year_set: BTreeSet<String>,
    /// the period types computed: those asked for and those the marts hold for these years
    pub(super) types: Vec<PeriodType>,
    /// the geography levels published (the nation always)
    pub(super) levels: Vec<&'static str>,
    /// whether item_scores and recommendation get their case-mix adjustment
    pub(super) adjusting: bool,
    /// the cubes the marts asked for need
    pub(super) need: Needs,
}

impl Plan {
    /// Check the options and decide what to recompute. `opts.marts` empty means every mart.
    pub(super) async fn make(
        wh: &Warehouse,
        opts: &AggregateOptions,
        committed: BTreeMap<String, u64>,
    ) -> Result<Plan, AggregateError> {
        let levels = levels(opts)?;
        for m in &opts.marts {
            if !MART_TABLES.contains(&m.as_str()) {
                return Err(invalid(format!(
                    "unknown mart '{m}' (marts: {})",
                    MART_TABLES.join(", ")
                )));
            }
        }
        opts.adjustment.check().map_err(invalid)?;
        // the committed version of the tables read, opened once (the reference path's SQL may
        // read any table)
        let tables = if opts.sql_cubes {
            wh.committed_tables_at(&[], &committed).await?
        } else {
            let mut names = vec![RESPONSES, ANSWERS];
            names.extend(MART_TABLES);
            wh.committed_tables_at(&names, &committed).await?
        };
        let existing = mart_partitions(wh, &tables).await?;
        let response_years = response_years(wh, &tables).await?;
        let adjusting =
            opts.adjustment.enabled && (opts.wants(ITEM_SCORES) || opts.wants(RECOMMENDATION));
        let mut years = years(&response_years, opts, &existing)?;
        if adjusting {
            // a later year's adjustment pools reach into the years recomputed: it is
            // recomputed too
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
        let need = Needs {
            core: true,
            counts: opts.wants(RESPONSE_COUNTS) || adjusting,
            selections: opts.wants(SELECTIONS),
            casemix: adjusting,
        };
        Ok(Plan {
            committed,
            tables,
            response_years,
            years,
            year_set,
            types: types.into_iter().collect(),
            levels,
            adjusting,
            need,
        })
    }

    /// The session the reference path queries the warehouse tables in; the default path reads
    /// files, and its session holds only the tables it registers.
    pub(super) async fn session(
        &self,
        opts: &AggregateOptions,
    ) -> Result<SessionContext, AggregateError> {
        Ok(if opts.sql_cubes {
            session_of(&self.tables).await?
        } else {
            SessionContext::new()
        })
    }
}

/// The geography levels asked for (all when none), the nation always among them.
fn levels(opts: &AggregateOptions) -> Result<Vec<&'static str>, AggregateError> {
    let mut levels: Vec<&'static str> = Vec::new();
    for l in &opts.levels {
        match GEO_LEVELS.iter().find(|g| **g == l.as_str()) {
            Some(g) => levels.push(g),
            None => {
                return Err(invalid(format!(
                    "unknown geography level '{l}' (levels: {})",
                    GEO_LEVELS.join(", ")
                )));
            }
        }
    }
    if levels.is_empty() {
        levels = GEO_LEVELS.to_vec();
    }
    if !levels.contains(&"nation") {
        levels.push("nation");
    }
    Ok(levels)
}

/// What the marts hold now: their (period_type, year) partitions.
async fn mart_partitions(
    wh: &Warehouse,
    tables: &BTreeMap<String, DeltaTable>,
) -> Result<BTreeSet<(String, String)>, AggregateError> {
    let mut existing = BTreeSet::new();
    for name in MART_TABLES {
        let Some(t) = tables.get(name) else {
            continue;
        };
        for f in &wh.files(t).await? {
            let pv: BTreeMap<String, String> = f.partition_values().into_iter().collect();
            if let (Some(pt), Some(y)) = (pv.get("period_type"), pv.get("year")) {
                existing.insert((pt.clone(), y.clone()));
            }
        }
    }
    Ok(existing)
}

/// The years that hold responses, from the partition values of the files (no data is read).
async fn response_years(
    wh: &Warehouse,
    tables: &BTreeMap<String, DeltaTable>,
) -> Result<BTreeSet<i32>, AggregateError> {
    let mut years = BTreeSet::new();
    for f in &wh.files(&tables[RESPONSES]).await? {
        let pv: BTreeMap<String, String> = f.partition_values().into_iter().collect();
        if let Some(y) = pv.get("period").and_then(|p| p.get(..4)?.parse().ok()) {
            years.insert(y);
        }
    }
    Ok(years)
}

/// Years to recompute: the range given, else every year the responses or the marts hold.
pub(super) fn years(
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

/// The lowest value of each catalog item's top box.
pub(super) fn ordinal_top_low(catalog: &Catalog) -> HashMap<(String, String), i64> {
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
