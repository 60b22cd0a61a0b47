//! The marts a committed change still owes: the years whose survey data changed since their
//! marts were last computed in full.
//!
//! A run that commits survey data adds its years here before its ledger row (so a kill at any
//! later point leaves them recorded); a complete aggregation of a year (every mart, period type
//! and level) removes it after its own ledger row. So a run killed during its closing
//! aggregation, or loaded with `--no-aggregate`, leaves its years here: the next `palaute run`
//! aggregates them even when it finds nothing new, and `palaute status` names them. The object is
//! written only under the writer lease. Years listed that a failed run never committed cost an
//! aggregation that changes nothing, never a wrong mart.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use super::{Cause, Warehouse, WarehouseError};

const PATH: &str = "_state/marts_owed.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owed {
    pub years: BTreeSet<i32>,
    /// when the oldest of them became owed
    pub since: Option<DateTime<Utc>>,
}

fn err(source: impl Into<Cause>) -> WarehouseError {
    WarehouseError::Write {
        path: PATH.to_string(),
        source: source.into(),
    }
}

/// The years owed (none when nothing is).
pub async fn read(wh: &Warehouse) -> Result<Owed, WarehouseError> {
    let path = wh.loc.child(PATH);
    match wh.loc.store.get(&path).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(err)?;
            serde_json::from_slice(&bytes).map_err(|e| err(format!("not a marts record: {e}")))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(Owed::default()),
        Err(e) => Err(err(e)),
    }
}

async fn write(wh: &Warehouse, owed: &Owed) -> Result<(), WarehouseError> {
    let path = wh.loc.child(PATH);
    if owed.years.is_empty() {
        return match wh.loc.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(err(e)),
        };
    }
    let body = serde_json::to_vec(owed).expect("serializable");
    wh.loc
        .store
        .put(&path, body.into())
        .await
        .map(|_| ())
        .map_err(err)
}

/// Record `years` as owed.
pub async fn add(wh: &Warehouse, years: &BTreeSet<i32>) -> Result<(), WarehouseError> {
    let mut owed = read(wh).await?;
    if years.is_subset(&owed.years) {
        return Ok(());
    }
    owed.years.extend(years);
    owed.since.get_or_insert_with(Utc::now);
    write(wh, &owed).await
}

/// `years` were aggregated in full: no longer owed.
pub async fn settle(wh: &Warehouse, years: &BTreeSet<i32>) -> Result<(), WarehouseError> {
    let mut owed = read(wh).await?;
    if owed.years.is_disjoint(years) {
        return Ok(());
    }
    owed.years.retain(|y| !years.contains(y));
    if owed.years.is_empty() {
        owed.since = None;
    }
    write(wh, &owed).await
}

/// The years of periods `YYYY-MM`.
pub fn years_of<'a>(periods: impl IntoIterator<Item = &'a String>) -> BTreeSet<i32> {
    periods
        .into_iter()
        .filter_map(|p| p.get(..4)?.parse().ok())
        .collect()
}
