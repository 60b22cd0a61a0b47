//! Executing a plan, one year at a time: years are independent (no period, hence no suppression
//! group, spans two). A year's marts are computed on tasks of their own while the next year's
//! cubes are built (and, when small, while that year's marts are computed); they are written
//! before the cubes of the year after that, so memory holds at most two years' cells.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::FutureExt;

use super::adjust::{AdjustFuture, adjustment, adjustment_blocking, coefficients_of};
use super::figures::{compute_mart, decide, figures};
use super::plan::{Plan, ordinal_top_low};
use super::publish::{Pending, SIDE_BY_SIDE_CELLS, publish, write_marts};
use super::sql_path::{collect, periods_table, register, rolled_sql, sql_cubes};
use super::{AggregateError, AggregateOptions, AggregateReport};
use crate::marts::casemix::COEFFICIENTS;
use crate::marts::cube::{self, Needs, Prefetch};
use crate::marts::periods::{PeriodRow, period_rows};
use crate::marts::{MartSpec, RESPONSE_COUNTS, SPECS};
use crate::schema::Catalog;
use crate::warehouse::tables::{ANSWERS, RESPONSES};
use crate::warehouse::writer::WrittenFile;
use crate::warehouse::{Warehouse, WarehouseError};

/// The state of an aggregation while its years are computed: the marts' files uploaded so far,
/// the marts still computing, the cube cache's writes, and the case-mix pools kept for the next
/// year's windows.
pub(super) struct Execution<'a> {
    pub(super) wh: &'a Warehouse,
    pub(super) opts: &'a AggregateOptions,
    pub(super) plan: &'a Plan,
    pub(super) ctx: &'a SessionContext,
    pub(super) run_id: &'a str,
    pub(super) report: AggregateReport,
    /// every mart's files uploaded (not committed)
    pub(super) written: Vec<(&'static str, Vec<WrittenFile>)>,
    /// marts being computed and published on tasks of their own
    pub(super) pending: Vec<Pending<'static>>,
    pub(super) cache_writes: Vec<tokio::task::JoinHandle<Result<(), WarehouseError>>>,
    /// the case-mix pools of the years computed, and of earlier years the windows reach into
    pools: BTreeMap<i32, Vec<RecordBatch>>,
}

impl<'a> Execution<'a> {
    pub(super) fn new(
        wh: &'a Warehouse,
        opts: &'a AggregateOptions,
        plan: &'a Plan,
        ctx: &'a SessionContext,
        run_id: &'a str,
        report: AggregateReport,
    ) -> Execution<'a> {
        Execution {
            wh,
            opts,
            plan,
            ctx,
            run_id,
            report,
            written: Vec::new(),
            pending: Vec::new(),
            cache_writes: Vec::new(),
            pools: BTreeMap::new(),
        }
    }

    /// Compute every year of the plan; the marts' files are uploaded, not committed.
    pub(super) async fn years(&mut self) -> Result<(), AggregateError> {
        let years = &self.plan.years;
        // the next year's cube cache is read while this year's cubes are built and its marts
        // computed
        let prefetch_of = |i: usize| {
            (!self.opts.sql_cubes && !self.opts.fresh_cubes)
                .then(|| years.get(i))
                .flatten()
                .map(|y| cube::prefetch(self.wh, &y.to_string(), self.plan.need))
        };
        let mut next = prefetch_of(0);
        for (i, year) in years.iter().enumerate() {
            let this = next.take();
            next = prefetch_of(i + 1);
            if self.opts.sql_cubes {
                self.sql_year(*year).await?;
            } else {
                self.cube_year(*year, this).await?;
            }
            if self.opts.sql_cubes || i + 1 == years.len() {
                let done = std::mem::take(&mut self.pending);
                write_marts(self.wh, done, &mut self.report, &mut self.written).await?;
            }
        }
        Ok(())
    }

    /// The months of `year` as the SQL definitions' range.
    fn range(year: i32) -> Vec<(&'static str, String)> {
        vec![("from", format!("{year}-01")), ("to", format!("{year}-12"))]
    }

    /// Spawn a mart's publishing task.
    fn spawn_publish(
        &mut self,
        year: i32,
        name: &'static str,
        started: Instant,
        task: impl Future<Output = Result<super::figures::Computed, AggregateError>> + Send + 'static,
    ) {
        let (wh, run_id) = (self.wh.clone(), self.run_id.to_string());
        let handle = tokio::spawn(async move { publish(wh, name, task.await?, run_id).await });
        self.pending.push((year, name, started, handle));
    }

    /// A year by the reference path: the fine cubes by SQL, then each mart's rollup and figures.
    async fn sql_year(&mut self, year: i32) -> Result<(), AggregateError> {
        let (opts, ctx, plan) = (self.opts, self.ctx, self.plan);
        let periods = period_rows(&[year], &plan.types);
        let range = Self::range(year);
        let t = Instant::now();
        let (ps, pb) = periods_table(&[year], &plan.types);
        let _ = ctx.deregister_table("periods");
        register(ctx, "periods", vec![pb], ps);
        for name in ["response_cube", "dims", "response_dims"] {
            let _ = ctx.deregister_table(name);
        }
        sql_cubes(ctx, &range).await?;
        tracing::info!(year, seconds = t.elapsed().as_secs_f64(), "fine cubes");
        let mut adjust = None;
        let mut counts_rolled = None;
        if plan.adjusting {
            let before = opts.adjustment.years_before(year);
            let rc = crate::marts::spec(RESPONSE_COUNTS);
            let rolled = rolled_sql(ctx, rc, opts, &range, &plan.levels).await?;
            let from = format!("{}-01", before.first().copied().unwrap_or(year));
            let pool_range = vec![("from", from), ("to", range[1].1.clone())];
            let (_, pool) = collect(
                ctx,
                &crate::marts::fill(crate::marts::SQL_CUBE_CASEMIX, &pool_range),
            )
            .await?;
            let a = adjustment(pool, &rolled, &periods, opts).await?;
            let coefficients = coefficients_of(&a, year)?;
            self.spawn_publish(year, COEFFICIENTS, Instant::now(), async move {
                Ok(coefficients)
            });
            adjust = Some(a);
            counts_rolled = Some(rolled);
        }
        for spec in SPECS.iter().filter(|s| opts.wants(s.name)) {
            let t = Instant::now();
            let rolled = match counts_rolled.take() {
                Some(r) if spec.name == RESPONSE_COUNTS => r,
                other => {
                    counts_rolled = other;
                    rolled_sql(ctx, spec, opts, &range, &plan.levels).await?
                }
            };
            let rolled = (&rolled.0, &rolled.1[..], &rolled.2[..]);
            let out = figures(ctx, spec, &opts.rules, rolled, adjust.as_ref()).await;
            self.spawn_publish(year, spec.name, t, async move { out });
        }
        Ok(())
    }

    /// A year by the default path: the fine cubes partition by partition (cached ones reused),
    /// then each mart's rollup, suppression and figures on a task of its own.
    async fn cube_year(&mut self, year: i32, this: Option<Prefetch>) -> Result<(), AggregateError> {
        let (opts, plan) = (self.opts, self.plan);
        let periods = period_rows(&[year], &plan.types);
        let range = Self::range(year);
        let t = Instant::now();
        let built = self
            .build(&range[0].1, &range[1].1, plan.need, this)
            .await?;
        self.report.partitions_computed += built.computed as u64;
        self.report.partitions_reused += built.reused as u64;
        let c = built.cubes;
        tracing::info!(
            year,
            computed = built.computed,
            reused = built.reused,
            seconds = t.elapsed().as_secs_f64(),
            "fine cubes"
        );
        // the previous year's marts ran while these cubes were built; this year's start before
        // they are awaited when both fit side by side (see SIDE_BY_SIDE_CELLS)
        let cubes: Vec<(&'static MartSpec, Vec<RecordBatch>)> = SPECS
            .iter()
            .filter(|s| opts.wants(s.name))
            .map(|s| (crate::marts::spec(s.name), c.of_mart(s.name)))
            .collect();
        let cube_rows: usize = cubes
            .iter()
            .flat_map(|(_, b)| b.iter())
            .map(|b| b.num_rows())
            .sum();
        let cells = cube_rows * plan.types.len() * (plan.levels.len() + 1);
        let mut previous = std::mem::take(&mut self.pending);
        if cells > SIDE_BY_SIDE_CELLS {
            write_marts(self.wh, previous, &mut self.report, &mut self.written).await?;
            previous = Vec::new();
        }
        let adjust = if plan.adjusting {
            let pool = self.pool(year, c.casemix.1.clone()).await?;
            Some(self.adjust_task(year, pool, c.counts.1.clone(), &periods))
        } else {
            None
        };
        for (spec, cube) in cubes {
            self.spawn_mart(year, spec, cube, &periods, adjust.clone());
        }
        write_marts(self.wh, previous, &mut self.report, &mut self.written).await
    }

    /// The fine cubes of the months `from`..=`to` that `need` asks for.
    async fn build(
        &mut self,
        from: &str,
        to: &str,
        need: Needs,
        prefetched: Option<Prefetch>,
    ) -> Result<cube::Built, AggregateError> {
        let mut built = cube::build(
            self.wh,
            &self.plan.tables[RESPONSES],
            &self.plan.tables[ANSWERS],
            from,
            to,
            ordinal_top_low(Catalog::embedded()),
            need,
            self.opts.fresh_cubes,
            prefetched,
        )
        .await?;
        self.cache_writes.append(&mut built.cache_writes);
        Ok(built)
    }

    /// The national pool of `year`'s case-mix windows: its own casemix cube `own` and those of
    /// the earlier years the windows reach into (built when not kept from the year before).
    async fn pool(
        &mut self,
        year: i32,
        own: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>, AggregateError> {
        let before = self.opts.adjustment.years_before(year);
        for y in &before {
            if self.pools.contains_key(y) || !self.plan.response_years.contains(y) {
                continue;
            }
            let only = Needs {
                core: false,
                counts: false,
                selections: false,
                casemix: true,
            };
            let (from, to) = (format!("{y}-01"), format!("{y}-12"));
            let earlier = self.build(&from, &to, only, None).await?;
            self.pools.insert(*y, earlier.cubes.casemix.1);
        }
        self.pools.insert(year, own);
        let pool: Vec<RecordBatch> = self
            .pools
            .range(before.first().copied().unwrap_or(year)..=year)
            .flat_map(|(_, b)| b.iter().cloned())
            .collect();
        // the pools the next year needs: this year's and those after the window
        let keep = self
            .opts
            .adjustment
            .years_before(year + 1)
            .first()
            .copied()
            .unwrap_or(year + 1);
        self.pools.retain(|y, _| *y >= keep);
        Ok(pool)
    }

    /// response_counts' cells and the models on a task of their own: the other marts' rollups
    /// run beside it, and await it only for their figures. The coefficients are published when
    /// it is done.
    fn adjust_task(
        &mut self,
        year: i32,
        pool: Vec<RecordBatch>,
        counts_cube: Vec<RecordBatch>,
        periods: &[PeriodRow],
    ) -> AdjustFuture {
        let rc = crate::marts::spec(RESPONSE_COUNTS);
        let (periods, rules, settings) = (
            periods.to_vec(),
            self.opts.rules,
            self.opts.adjustment.clone(),
        );
        let levels = self.plan.levels.clone();
        let task = tokio::task::spawn_blocking(move || {
            let (schema, rolled) =
                crate::marts::rollup::rollup(&counts_cube, rc, &periods, &levels)?;
            let reasons = decide(&rolled, rc, &rules)?;
            let rolled = (schema, rolled, reasons);
            let a = adjustment_blocking(pool, &rolled, &periods, &settings, rules)?;
            Ok::<_, String>((Arc::new(a), Arc::new(rolled)))
        });
        let shared: AdjustFuture = async move { task.await.map_err(|e| e.to_string())? }
            .boxed()
            .shared();
        let waiting = shared.clone();
        self.spawn_publish(year, COEFFICIENTS, Instant::now(), async move {
            let (a, _) = waiting.await.map_err(|m| AggregateError::Mart {
                mart: COEFFICIENTS.to_string(),
                source: m.into(),
            })?;
            coefficients_of(&a, year)
        });
        shared
    }

    /// One mart of a year from its fine cube, on a task of its own.
    fn spawn_mart(
        &mut self,
        year: i32,
        spec: &'static MartSpec,
        cube: Vec<RecordBatch>,
        periods: &[PeriodRow],
        adjust: Option<AdjustFuture>,
    ) {
        let levels: Vec<String> = self.plan.levels.iter().map(|l| l.to_string()).collect();
        let (rules, periods) = (self.opts.rules, periods.to_vec());
        self.spawn_publish(year, spec.name, Instant::now(), async move {
            match adjust {
                // response_counts' cells were rolled up with the models
                Some(waiting) if spec.name == RESPONSE_COUNTS => {
                    let (_, rolled) = waiting.await.map_err(|m| AggregateError::Mart {
                        mart: spec.name.to_string(),
                        source: m.into(),
                    })?;
                    let rolled = (&rolled.0, &rolled.1[..], &rolled.2[..]);
                    figures(&SessionContext::new(), spec, &rules, rolled, None).await
                }
                adjust => compute_mart(cube, spec, rules, levels, periods, adjust).await,
            }
        });
    }
}
