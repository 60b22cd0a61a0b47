//! The case-mix adjustment of a year: its models fitted on the national pool and the cells'
//! respondent mix, on a blocking thread; shared by the marts that await it.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;

use super::figures::{Computed, Rolled};
use super::{AggregateError, AggregateOptions, MartReport, invalid};
use crate::marts::casemix::{
    self, Adjustment, COEFFICIENTS, Settings as CaseMixSettings, coefficient_rows,
};
use crate::marts::disclosure::Rules;
use crate::marts::periods::PeriodRow;

/// A year's case-mix adjustment: the models of its periods' windows from the casemix cube rows
/// `pool` (every month the windows reach), and every cell's respondent mix from
/// response_counts' rolled-up cells `counts`.
pub(super) fn adjustment_blocking(
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
pub(super) async fn adjustment(
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
        source: m.into(),
    })
}

/// A year's adjustment being computed (shared by the marts that await it), with
/// response_counts' rolled-up cells it was computed from.
pub(super) type AdjustFuture = futures::future::Shared<
    futures::future::BoxFuture<'static, Result<(Arc<Adjustment>, Arc<Rolled>), String>>,
>;

/// The coefficients of a year's models as the rows of `casemix_coefficients`.
pub(super) fn coefficients_of(a: &Adjustment, year: i32) -> Result<Computed, AggregateError> {
    let b = coefficient_rows(&a.models, year).map_err(|m| AggregateError::Mart {
        mart: COEFFICIENTS.to_string(),
        source: m.into(),
    })?;
    let report = MartReport {
        rows: b.num_rows() as u64,
        casemix_models: a.models.models.len() as u64,
        casemix_notes: a.notes().into_iter().collect(),
        ..MartReport::default()
    };
    Ok((b.schema(), vec![b], report))
}
