//! Extracts recorded in the warehouse (`_state/extracts/NAME.json`): the ledger row and table
//! versions each was derived from, and the data files those versions hold, so that `vacuum`
//! refuses to delete a file an extract still needs (unless forced) and says which extract it is.
//! Each extract also appends an `extract` row to the run ledger, with the committed versions
//! unchanged, so that `history` shows when it was made.

use std::collections::{BTreeMap, BTreeSet};

use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::warehouse::{Warehouse, WarehouseError, ledger};

const PREFIX: &str = "_state/extracts";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractRecord {
    pub name: String,
    pub permit: String,
    pub spec_sha256: String,
    pub ledger_seq: i64,
    pub table_versions: BTreeMap<String, u64>,
    /// table → the data files of its version (paths inside the table)
    pub files: BTreeMap<String, BTreeSet<String>>,
}

fn err(path: &str, source: impl Into<crate::Cause>) -> WarehouseError {
    WarehouseError::Write {
        path: path.to_string(),
        source: source.into(),
    }
}

/// Record an extract (replacing an earlier one of the same name) and add its ledger row.
pub async fn record(wh: &Warehouse, rec: &ExtractRecord) -> Result<(), WarehouseError> {
    let rel = format!("{PREFIX}/{}.json", rec.name);
    let body = serde_json::to_vec_pretty(rec).expect("serializable");
    wh.loc
        .store
        .put(&wh.loc.child(&rel), body.into())
        .await
        .map_err(|e| err(&rel, e))?;
    let committed = ledger::committed_versions(wh).await?;
    ledger::append_operation(
        wh,
        "extract",
        &ledger::new_run_id(),
        chrono::Utc::now(),
        format!(
            "extract {} (permit {}) from ledger row {}",
            rec.name, rec.permit, rec.ledger_seq
        ),
        0,
        committed,
    )
    .await?;
    Ok(())
}

/// Every recorded extract.
pub async fn all(wh: &Warehouse) -> Result<Vec<ExtractRecord>, WarehouseError> {
    use futures::TryStreamExt;
    let prefix = wh.loc.child(PREFIX);
    let metas: Vec<_> = wh
        .loc
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| err(PREFIX, e))?;
    let mut out = Vec::new();
    for m in metas {
        let bytes = wh
            .loc
            .store
            .get(&m.location)
            .await
            .map_err(|e| err(PREFIX, e))?
            .bytes()
            .await
            .map_err(|e| err(PREFIX, e))?;
        let rec: ExtractRecord = serde_json::from_slice(&bytes)
            .map_err(|e| err(m.location.as_ref(), format!("not an extract record: {e}")))?;
        out.push(rec);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
