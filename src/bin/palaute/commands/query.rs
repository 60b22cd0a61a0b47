//! Reading the warehouse: `status`, `sql`, `history` and `versions`.

use palaute::config;
use palaute::ops::{exit, history as ledger, sql as query};
use palaute::warehouse::WarehouseError;

use super::load::load_all;
use super::open;
use crate::args::{HistoryArgs, SqlArgs, StatusArgs, VersionsArgs};

/// `palaute status`: per pipeline its last run, next due time and freshness (exit 1 when one
/// is past its error window).
pub async fn status(a: StatusArgs) -> anyhow::Result<i32> {
    use palaute::ops::status::{Freshness, render, render_owed};
    let ps = load_all(&config::pipelines_in(&a.pipelines)?)?;
    let wh = match open(&a.w, false) {
        Ok(wh) => Some(wh),
        Err(WarehouseError::Missing(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let at = a.at.unwrap_or_else(chrono::Utc::now);
    let rows = palaute::ops::status::status(wh.as_ref(), &ps, at).await?;
    let owed = match &wh {
        Some(wh) => palaute::warehouse::owed::read(wh).await?,
        None => Default::default(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render(&rows));
    }
    if let Some(line) = render_owed(&owed) {
        eprintln!("palaute: {line}");
    }
    let stale = rows.iter().any(|r| r.freshness == Freshness::Error);
    Ok(if stale { exit::FAILURE } else { 0 })
}

/// `palaute sql`: a read-only query, optionally as of an earlier ledger row.
pub async fn sql(a: SqlArgs) -> anyhow::Result<i32> {
    let wh = open(&a.w, false)?;
    let batches = query::query_as_of(&wh, &a.query, a.as_of).await?;
    query::write_result(&batches, a.format, a.output.as_deref())?;
    Ok(0)
}

/// `palaute history`: the ledger's runs.
pub async fn history(a: HistoryArgs) -> anyhow::Result<i32> {
    let wh = open(&a.w, false)?;
    let runs = ledger::runs(&wh, a.pipeline.as_deref()).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        print!("{}", ledger::render(&runs));
    }
    Ok(0)
}

/// `palaute versions`: the table versions of the last committed run.
pub async fn versions(a: VersionsArgs) -> anyhow::Result<i32> {
    let wh = open(&a.w, false)?;
    let v = ledger::versions(&wh).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", ledger::render_versions(&v));
    }
    Ok(0)
}
