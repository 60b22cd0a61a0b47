//! `palaute sql`: query the warehouse with DataFusion, every table registered by its name at the
//! version the ledger last committed.

use std::io::Write;
use std::path::Path;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::{Constraints, Statistics};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SQLOptions, SessionContext};

use crate::Cause;
use crate::warehouse::{Warehouse, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error(
        "only queries are allowed (SELECT, WITH, VALUES, EXPLAIN, SHOW, DESCRIBE): {0}; the warehouse is written by palaute's commands alone"
    )]
    NotAQuery(String),
    #[error("{0}")]
    Output(#[source] Cause),
    #[error("--as-of {seq}: the ledger has no row {seq} (rows 1–{last})")]
    NoSuchRow { seq: i64, last: i64 },
}

impl SqlError {
    pub fn exit_code(&self) -> i32 {
        use datafusion::error::DataFusionError as D;
        match self {
            SqlError::Warehouse(e) => e.exit_code(),
            SqlError::NotAQuery(_) | SqlError::NoSuchRow { .. } => super::exit::CONFIG,
            SqlError::Query(e) => match e.find_root() {
                // the statement itself is wrong: a bad command line
                D::SQL(..) | D::Plan(_) | D::SchemaError(..) => super::exit::CONFIG,
                _ => super::exit::FAILURE,
            },
            SqlError::Output(_) => super::exit::ENVIRONMENT,
        }
    }
}

/// The statements a user's SQL may be: queries, nothing that defines, writes or sets anything.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A warehouse table as user SQL sees it: scanned as the Delta provider scans it, never written
/// (`insert_into`, `delete_from`, `update`, `truncate` keep the trait's refusal).
#[derive(Debug)]
pub struct ReadOnly(pub Arc<dyn TableProvider>);

#[async_trait::async_trait]
impl TableProvider for ReadOnly {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }
    fn constraints(&self) -> Option<&Constraints> {
        self.0.constraints()
    }
    fn table_type(&self) -> TableType {
        self.0.table_type()
    }
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> datafusion::error::Result<ScanResult> {
        self.0.scan_with_args(state, args).await
    }
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }
    fn statistics(&self) -> Option<Statistics> {
        self.0.statistics()
    }
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
            .map_err(|e| SqlError::Output(e.into()))?;
        let provider = t.table_provider().await?;
        ctx.register_table(name.as_str(), Arc::new(ReadOnly(provider)))?;
    }
    Ok(ctx)
}

/// Run one user query (only a query: see [`read_only`]) and collect its result.
pub async fn query(wh: &Warehouse, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
    query_as_of(wh, sql, None).await
}

/// [`query`] over every table at the versions ledger row `seq` left committed (the last row's
/// when `None`): a figure published last spring, re-queried as it was.
pub async fn query_as_of(
    wh: &Warehouse,
    sql: &str,
    seq: Option<i64>,
) -> Result<Vec<RecordBatch>, SqlError> {
    let ctx = match seq {
        None => session(wh).await?,
        Some(s) => {
            let runs = crate::warehouse::ledger::read_runs(wh).await?;
            let Some(r) = runs.iter().find(|r| r.seq == s) else {
                return Err(SqlError::NoSuchRow {
                    seq: s,
                    last: runs.last().map(|r| r.seq).unwrap_or(0),
                });
            };
            session_of(&wh.committed_tables_at(&[], &r.table_versions).await?).await?
        }
    };
    let df = ctx
        .sql_with_options(sql, read_only())
        .await
        .map_err(|e| match e.find_root() {
            // the refusal of `read_only`, not a mistake in the statement
            datafusion::error::DataFusionError::Plan(m)
                if m.starts_with("DDL not supported")
                    || m.starts_with("DML not supported")
                    || m.starts_with("Statement not supported") =>
            {
                SqlError::NotAQuery(m.clone())
            }
            _ => SqlError::Query(e),
        })?;
    // an empty result keeps its columns: a table with a header, a CSV header line, a Parquet
    // file with the schema and no rows
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(vec![RecordBatch::new_empty(schema)]);
    }
    Ok(batches)
}

/// The rows of `batches` as column → text (`None`: NULL), every value cast to text.
pub fn rows_as_strings(
    batches: &[RecordBatch],
) -> Result<Vec<std::collections::BTreeMap<String, Option<String>>>, SqlError> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<_> = (0..b.num_columns())
            .map(|i| arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8))
            .collect::<Result<_, _>>()
            .map_err(|e| SqlError::Output(e.into()))?;
        for r in 0..b.num_rows() {
            out.push(
                b.schema()
                    .fields()
                    .iter()
                    .zip(&cols)
                    .map(|(f, c)| {
                        let s = c.as_string::<i32>();
                        (
                            f.name().clone(),
                            (!s.is_null(r)).then(|| s.value(r).to_string()),
                        )
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// Write batches in `format` to `out` (parquet needs a file).
pub fn write_result(
    batches: &[RecordBatch],
    format: OutputFormat,
    output: Option<&Path>,
) -> Result<(), SqlError> {
    let err = |e: Cause| SqlError::Output(e);
    let mut sink: Box<dyn Write + Send> = match output {
        Some(p) => Box::new(
            std::fs::File::create(p)
                .map_err(|e| SqlError::Output(format!("{}: {e}", p.display()).into()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    match format {
        OutputFormat::Table => {
            let s =
                arrow::util::pretty::pretty_format_batches(batches).map_err(|e| err(e.into()))?;
            writeln!(sink, "{s}").map_err(|e| err(e.into()))?;
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(sink);
            for b in batches {
                w.write(b).map_err(|e| err(e.into()))?;
            }
        }
        OutputFormat::Json => {
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(sink);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(|e| err(e.into()))?;
            w.finish().map_err(|e| err(e.into()))?;
            let mut inner = w.into_inner();
            writeln!(inner).map_err(|e| err(e.into()))?;
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
            .map_err(|e| err(e.into()))?;
            for b in batches {
                w.write(b).map_err(|e| err(e.into()))?;
            }
            w.close().map_err(|e| err(e.into()))?;
        }
    }
    Ok(())
}
