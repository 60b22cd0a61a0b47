//! One session per connection or request, holding only the tables its user's role may see, at
//! the versions of the snapshot it was made from; statements read-only; each query under a
//! time limit and a memory pool of its own.
//!
//! A planner's tables are the marts, each wrapped in [`AreaScoped`], whose scan itself keeps
//! only the planner's areas and the nation: the filter is part of the plan of every query that
//! reads the table (a join, a union, a subquery, a CTE), whatever filters the query pushes down.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::datasource::TableType;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::sync::OwnedSemaphorePermit;

use super::ServeError;
use super::access::{Role, Scope};
use super::snapshot::Snapshot;
use crate::ops::sql::{ReadOnly, read_only};
use crate::warehouse::tables::MART_TABLES;

/// What one query may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub query_time: Duration,
    pub query_memory: usize,
}

/// The columns a planner's rows are chosen by.
const GEO: [&str; 3] = ["geo_level", "geo_code", "geo_parent"];

/// The tables a role sees, by name.
pub fn tables_of(role: &Role, snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .providers
        .keys()
        .filter(|name| match role {
            Role::Engineer => true,
            Role::Planner(_) => MART_TABLES.contains(&name.as_str()),
        })
        .cloned()
        .collect()
}

/// A session for `role` over `snapshot`.
pub fn session(
    role: &Role,
    snapshot: &Snapshot,
    base: &RuntimeEnv,
    limits: Limits,
) -> Result<SessionContext, ServeError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(limits.query_memory)))
        .with_object_store_registry(base.object_store_registry.clone())
        .build_arc()?;
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema("datafusion", "public");
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    for name in tables_of(role, snapshot) {
        let inner = snapshot.providers[&name].clone();
        let provider: Arc<dyn TableProvider> = match role {
            Role::Planner(scope) if GEO.iter().all(|c| inner.schema().index_of(c).is_ok()) => {
                Arc::new(AreaScoped::new(inner, scope))
            }
            _ => Arc::new(ReadOnly(inner)),
        };
        ctx.register_table(name.as_str(), provider)?;
    }
    Ok(ctx)
}

/// Run one statement (a query only) under the limits: its result's schema (also for no rows)
/// and batches.
pub async fn query(
    ctx: &SessionContext,
    sql: &str,
    limits: Limits,
    slot: OwnedSemaphorePermit,
) -> Result<(SchemaRef, Vec<RecordBatch>), ServeError> {
    let (ctx, sql) = (ctx.clone(), sql.to_string());
    within(limits, slot, async move {
        let df = ctx.sql_with_options(&sql, read_only()).await?;
        collect(df).await
    })
    .await
}

/// Run a plan made by [`plan`] (the PostgreSQL front end's statements) under the limits.
pub async fn run_plan(
    ctx: &SessionContext,
    plan: LogicalPlan,
    limits: Limits,
    slot: OwnedSemaphorePermit,
) -> Result<(SchemaRef, Vec<RecordBatch>), ServeError> {
    let ctx = ctx.clone();
    within(limits, slot, async move {
        read_only().verify_plan(&plan)?;
        collect(ctx.execute_logical_plan(plan).await?).await
    })
    .await
}

/// The plan of one parsed statement, refused unless it is a query.
pub async fn plan(
    ctx: &SessionContext,
    statement: datafusion::sql::sqlparser::ast::Statement,
) -> Result<LogicalPlan, ServeError> {
    use datafusion::sql::parser::Statement;
    let plan = ctx
        .state()
        .statement_to_plan(Statement::Statement(Box::new(statement)))
        .await?;
    read_only().verify_plan(&plan)?;
    Ok(plan)
}

async fn collect(
    df: datafusion::dataframe::DataFrame,
) -> datafusion::error::Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    Ok((schema, df.collect().await?))
}

/// The runtime statements execute on, apart from the one that serves connections: a query's
/// operators may poll for long stretches without yielding (a semi-join's probe over long hash
/// chains runs batch after batch in one poll until tokio's budget makes it yield), and on the
/// serving runtime that would hold back the timers of every time limit, the accept loops and
/// `/health`. A statement over its limit is answered on time and its task aborted; its
/// operators stop at their next yield, which can be long after. Until then it keeps its query
/// slot (so such work is bounded by `--max-queries`), and the runtime has two threads more than
/// the machine has cores, so that another statement can start beside it.
fn query_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()) + 2)
                .thread_name("palaute-query")
                .enable_all()
                .build()
                .expect("a tokio runtime can be built")
        })
        .handle()
}

async fn within<T: Send + 'static>(
    limits: Limits,
    slot: OwnedSemaphorePermit,
    run: impl std::future::Future<Output = datafusion::error::Result<T>> + Send + 'static,
) -> Result<T, ServeError> {
    /// Aborts the statement's task when its caller stops waiting: over the limit, or a client
    /// gone (its request dropped); nothing when the task has finished.
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    // the slot goes with the task: released when the statement's work has ended
    let task = query_runtime().spawn(async move {
        let r = run.await;
        drop(slot);
        r
    });
    let _abort = AbortOnDrop(task.abort_handle());
    match tokio::time::timeout(limits.query_time, task).await {
        Ok(Ok(r)) => Ok(r?),
        Ok(Err(e)) => Err(ServeError::Query(
            datafusion::error::DataFusionError::External(Box::new(e)),
        )),
        Err(_) => Err(ServeError::TimeLimit(limits.query_time)),
    }
}

/// The rows a planner may see: the nation's, the scope's areas', the municipalities of its
/// counties and the counties of its cooperation areas.
pub fn scope_predicate(scope: &Scope) -> Expr {
    let mut p = col("geo_level").eq(lit("nation"));
    for (level, code) in &scope.areas {
        p = p.or(col("geo_level")
            .eq(lit(level.as_str()))
            .and(col("geo_code").eq(lit(code.as_str()))));
    }
    let parents = |level: &str, codes: &std::collections::BTreeSet<String>| {
        col("geo_level")
            .eq(lit(level))
            .and(col("geo_parent").in_list(codes.iter().map(|c| lit(c.as_str())).collect(), false))
    };
    if !scope.counties.is_empty() {
        p = p.or(parents("municipality", &scope.counties));
    }
    if !scope.cooperation_areas.is_empty() {
        p = p.or(parents("county", &scope.cooperation_areas));
    }
    p
}

/// A mart as a planner sees it: its scan reads the rows of the planner's areas and the
/// nation's only. No filter is taken over from the query (each is applied above the scan),
/// nor a limit (it would count rows before the scope's filter), and nothing is written.
#[derive(Debug)]
pub struct AreaScoped {
    inner: Arc<dyn TableProvider>,
    predicate: Expr,
}

impl AreaScoped {
    pub fn new(inner: Arc<dyn TableProvider>, scope: &Scope) -> AreaScoped {
        AreaScoped {
            inner,
            predicate: scope_predicate(scope),
        }
    }
}

#[async_trait::async_trait]
impl TableProvider for AreaScoped {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let schema = self.inner.schema();
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        // the scope's columns are read whatever the query projects
        let mut read = wanted.clone();
        for c in GEO {
            let i = schema.index_of(c)?;
            if !read.contains(&i) {
                read.push(i);
            }
        }
        let scan = self.inner.scan(state, Some(&read), &[], None).await?;
        let scanned = scan.schema();
        let df_schema = DFSchema::try_from(scanned.as_ref().clone())?;
        let predicate = state.create_physical_expr(self.predicate.clone(), &df_schema)?;
        let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, scan)?);
        // back to the columns the query asked for, in its order
        let exprs = wanted
            .iter()
            .map(|&i| {
                let name = schema.field(i).name();
                let at = scanned.index_of(name)?;
                Ok(ProjectionExpr {
                    expr: Arc::new(datafusion::physical_expr::expressions::Column::new(
                        name, at,
                    )),
                    alias: name.clone(),
                })
            })
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        Ok(Arc::new(ProjectionExec::try_new(exprs, filtered)?))
    }
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }
}
