//! `palaute sql`: query the warehouse with DataFusion, every table registered by its name at the
//! version the ledger last committed.

use std::io::Write;
use std::path::Path;

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::warehouse::{Warehouse, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Output(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

/// A DataFusion session with every warehouse table registered.
pub async fn session(wh: &Warehouse) -> Result<SessionContext, SqlError> {
    session_of(&wh.committed_tables().await?).await
}

/// A DataFusion session with `tables` (already opened, as [`Warehouse::committed_tables`] gives
/// them) registered by name.
pub async fn session_of(
    tables: &std::collections::BTreeMap<String, deltalake_core::DeltaTable>,
) -> Result<SessionContext, SqlError> {
    let ctx = SessionContext::new();
    for (name, t) in tables {
        t.update_datafusion_session(&ctx.state())
            .map_err(|e| SqlError::Output(e.to_string()))?;
        let provider = t.table_provider().await?;
        ctx.register_table(name.as_str(), provider)?;
    }
    Ok(ctx)
}

/// Run one query and collect its result.
pub async fn query(wh: &Warehouse, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
    let ctx = session(wh).await?;
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Write batches in `format` to `out` (parquet needs a file).
pub fn write_result(
    batches: &[RecordBatch],
    format: OutputFormat,
    output: Option<&Path>,
) -> Result<(), SqlError> {
    let err = |e: &dyn std::fmt::Display| SqlError::Output(e.to_string());
    let mut sink: Box<dyn Write + Send> = match output {
        Some(p) => Box::new(
            std::fs::File::create(p)
                .map_err(|e| SqlError::Output(format!("{}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    match format {
        OutputFormat::Table => {
            let s = arrow::util::pretty::pretty_format_batches(batches).map_err(|e| err(&e))?;
            writeln!(sink, "{s}").map_err(|e| err(&e))?;
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(sink);
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
        }
        OutputFormat::Json => {
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(sink);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(|e| err(&e))?;
            w.finish().map_err(|e| err(&e))?;
            let mut inner = w.into_inner();
            writeln!(inner).map_err(|e| err(&e))?;
        }
        OutputFormat::Parquet => {
            if output.is_none() {
                return Err(SqlError::Output(
                    "--format parquet needs --output FILE".into(),
                ));
            }
            let schema = batches
                .first()
                .map(|b| b.schema())
                .ok_or_else(|| SqlError::Output("the query returned no batches".into()))?;
            let mut w = parquet::arrow::ArrowWriter::try_new(
                sink,
                schema,
                Some(crate::warehouse::writer::writer_properties()),
            )
            .map_err(|e| err(&e))?;
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
            w.close().map_err(|e| err(&e))?;
        }
    }
    Ok(())
}
