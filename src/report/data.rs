//! What a report shows, read from the published marts only (never from raw tables or comments,
//! so that disclosure control cannot be bypassed), at the versions the ledger last committed.

use std::collections::BTreeMap;

use super::ReportError;
use crate::marts::periods::PeriodType;
use crate::warehouse::Warehouse;

/// The area a report is about: a geography level and a code (`county:06`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    pub level: String,
    pub code: String,
}

impl std::str::FromStr for Area {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (level, code) = s
            .split_once(':')
            .ok_or_else(|| format!("--area {s}: write LEVEL:CODE (county:06, municipality:837)"))?;
        if !LEVELS.contains(&level) {
            return Err(format!(
                "--area {s}: unknown level '{level}' (levels: {})",
                LEVELS.join(", ")
            ));
        }
        Ok(Area {
            level: level.to_string(),
            code: code.to_string(),
        })
    }
}

/// The geography levels a report may be about.
pub const LEVELS: [&str; 4] = ["municipality", "county", "cooperation_area", "local_area"];

/// One published figure with its interval, the nation's figure and the comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figure {
    pub value: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub nation: Option<f64>,
    pub diff_significant: Option<bool>,
    pub n: Option<i64>,
    pub low_reliability: bool,
    /// `primary`, `secondary`, `cascade`: suppressed, and why
    pub suppression: Option<String>,
    /// the case-mix adjusted figure and its comparison with the nation (docs/marts.md)
    pub adjusted: Option<f64>,
    pub adjusted_diff_significant: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub item: String,
    pub figure: Figure,
}

#[derive(Debug, Clone)]
pub struct TrendPoint {
    pub period: String,
    pub area: Figure,
    pub nation: Figure,
}

#[derive(Debug, Clone)]
pub struct Share {
    pub group: String,
    pub category: String,
    pub n: Option<i64>,
    pub share: Option<f64>,
    pub low_reliability: bool,
    pub suppression: Option<String>,
}

/// Everything one report shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub area: Area,
    pub instrument: String,
    pub period_type: PeriodType,
    pub period: String,
    pub responses: Figure,
    pub nps: Figure,
    pub mean_recommend: Figure,
    pub statements: Vec<Statement>,
    pub trend: Vec<TrendPoint>,
    pub coverage: Vec<Share>,
    pub selections: Vec<Share>,
    pub seq: i64,
    pub as_of: chrono::DateTime<chrono::Utc>,
}

type Row = BTreeMap<String, Option<String>>;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn rows(wh: &Warehouse, sql: &str) -> Result<Vec<Row>, ReportError> {
    let batches = crate::ops::sql::query(wh, sql).await?;
    Ok(crate::ops::sql::rows_as_strings(&batches)?)
}

fn f(r: &Row, c: &str) -> Option<f64> {
    r.get(c)?.as_deref()?.parse().ok()
}
fn i(r: &Row, c: &str) -> Option<i64> {
    r.get(c)?.as_deref()?.parse().ok()
}
fn s(r: &Row, c: &str) -> Option<String> {
    r.get(c)?.clone().filter(|v| !v.is_empty())
}
fn b(r: &Row, c: &str) -> Option<bool> {
    r.get(c)?.as_deref().map(|v| v == "true")
}

/// A recommendation row's NPS with its interval and comparison.
fn nps_figure(r: &Row) -> Figure {
    Figure {
        value: f(r, "nps"),
        low: f(r, "nps_ci_low"),
        high: f(r, "nps_ci_high"),
        nation: f(r, "national_nps"),
        diff_significant: b(r, "nps_diff_significant"),
        n: i(r, "n_answered"),
        low_reliability: b(r, "low_reliability").unwrap_or(false),
        suppression: s(r, "suppression"),
        adjusted: f(r, "nps_adjusted"),
        adjusted_diff_significant: b(r, "nps_adjusted_diff_significant"),
    }
}

/// The last complete period of `t` before `today`.
pub fn last_complete(t: PeriodType, today: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    let (first, _) = t.bounds(today.month());
    let (y, m) = if first == 1 {
        (today.year() - 1, 12)
    } else {
        (today.year(), first - 1)
    };
    t.label(y, m)
}

/// Whether `period` is a period of type `t` (`2025-B2` of bimonth).
pub fn is_period_of(t: PeriodType, period: &str) -> bool {
    let Some(y) = period.get(..4).and_then(|y| y.parse::<i32>().ok()) else {
        return false;
    };
    (1..=12).any(|m| t.label(y, m) == period)
}

/// Read what the report of `area` for `period` shows: the ledger row it is as of, then each
/// part of the page from its mart.
pub async fn read(
    wh: &Warehouse,
    area: &Area,
    instrument: &str,
    period_type: PeriodType,
    period: &str,
) -> Result<ReportData, ReportError> {
    let runs = crate::warehouse::ledger::read_runs(wh).await?;
    let last = runs
        .iter()
        .rev()
        .find(|r| r.pipeline != "extract")
        .ok_or_else(|| ReportError::Empty("the warehouse has no committed run".into()))?;
    let (seq, as_of) = (last.seq, last.finished_at);
    let q = Query {
        wh,
        area,
        instrument,
        period_type,
        period,
    };
    let responses = q.responses().await?;
    let (nps, mean_recommend) = q.recommendation().await?;
    let statements = q.statements().await?;
    let trend = q.trend().await?;
    let (coverage, selections) = q.shares().await?;
    Ok(ReportData {
        area: area.clone(),
        instrument: instrument.to_string(),
        period_type,
        period: period.to_string(),
        responses,
        nps,
        mean_recommend,
        statements,
        trend,
        coverage,
        selections,
        seq,
        as_of,
    })
}

/// The rows one report reads: an area's and the nation's, of one instrument and period, all
/// services.
struct Query<'a> {
    wh: &'a Warehouse,
    area: &'a Area,
    instrument: &'a str,
    period_type: PeriodType,
    period: &'a str,
}

impl Query<'_> {
    /// The SQL selecting the area's and the nation's rows of `table` for the period.
    fn key(&self, table: &str, extra: &str) -> String {
        format!(
            "SELECT * FROM {table} WHERE period_type = {} AND period = {} AND instrument = {} AND service = 'all' \
             AND ((geo_level = {} AND geo_code = {}) OR geo_level = 'nation') {extra}",
            quote(self.period_type.as_str()),
            quote(self.period),
            quote(self.instrument),
            quote(&self.area.level),
            quote(&self.area.code)
        )
    }

    /// Whether a row is the area's (the others are the nation's).
    fn is_area(&self, r: &Row) -> bool {
        s(r, "geo_level").as_deref() == Some(self.area.level.as_str())
    }

    /// The number of responses; no row of the area is an error naming what was looked for.
    async fn responses(&self) -> Result<Figure, ReportError> {
        let counts = rows(
            self.wh,
            &self.key("response_counts", "AND breakdown = 'total'"),
        )
        .await?;
        if !counts.iter().any(|r| self.is_area(r)) {
            return Err(ReportError::Empty(format!(
                "the marts have no {} {} of {} for {} {} (is the area's code right, and the period aggregated?)",
                self.area.level,
                self.area.code,
                self.instrument,
                self.period_type.as_str(),
                self.period
            )));
        }
        let mut responses = Figure::default();
        for r in &counts {
            if self.is_area(r) {
                responses.value = f(r, "n_responses");
                responses.n = i(r, "n_responses");
                responses.low_reliability = b(r, "low_reliability").unwrap_or(false);
                responses.suppression = s(r, "suppression");
            } else {
                responses.nation = f(r, "n_responses");
            }
        }
        Ok(responses)
    }

    /// The NPS and the mean 0–10 of the area, each with the nation's.
    async fn recommendation(&self) -> Result<(Figure, Figure), ReportError> {
        let rec = rows(self.wh, &self.key("recommendation", "")).await?;
        let (mut nps, mut mean_recommend) = (Figure::default(), Figure::default());
        for r in rec.iter().filter(|r| self.is_area(r)) {
            nps = nps_figure(r);
            mean_recommend = Figure {
                value: f(r, "mean_recommend"),
                low: None,
                high: None,
                nation: f(r, "national_mean_recommend"),
                diff_significant: b(r, "mean_recommend_diff_significant"),
                adjusted: f(r, "mean_recommend_adjusted"),
                adjusted_diff_significant: b(r, "mean_recommend_adjusted_diff_significant"),
                ..nps.clone()
            };
        }
        Ok((nps, mean_recommend))
    }

    /// The share agreeing with each statement, by item code.
    async fn statements(&self) -> Result<Vec<Statement>, ReportError> {
        let rows = rows(self.wh, &self.key("item_scores", "ORDER BY item_code")).await?;
        Ok(rows
            .iter()
            .filter(|r| self.is_area(r))
            .map(|r| Statement {
                item: s(r, "item_code").unwrap_or_default(),
                figure: Figure {
                    value: f(r, "share_agree"),
                    low: f(r, "share_agree_ci_low"),
                    high: f(r, "share_agree_ci_high"),
                    nation: f(r, "national_share_agree"),
                    diff_significant: b(r, "share_agree_diff_significant"),
                    n: i(r, "n_answered"),
                    low_reliability: b(r, "low_reliability").unwrap_or(false),
                    suppression: s(r, "suppression"),
                    adjusted: f(r, "share_agree_adjusted"),
                    adjusted_diff_significant: b(r, "share_agree_adjusted_diff_significant"),
                },
            })
            .collect())
    }

    /// The NPS of the last six periods of the type, up to this one, the area's and the nation's.
    async fn trend(&self) -> Result<Vec<TrendPoint>, ReportError> {
        let trend_rows = rows(
            self.wh,
            &format!(
                "SELECT * FROM recommendation WHERE period_type = {} AND period <= {} AND instrument = {} AND service = 'all' \
                 AND ((geo_level = {} AND geo_code = {}) OR geo_level = 'nation') ORDER BY period",
                quote(self.period_type.as_str()),
                quote(self.period),
                quote(self.instrument),
                quote(&self.area.level),
                quote(&self.area.code)
            ),
        )
        .await?;
        let mut by_period: BTreeMap<String, (Figure, Figure)> = BTreeMap::new();
        for r in &trend_rows {
            let fig = nps_figure(r);
            let e = by_period
                .entry(s(r, "period").unwrap_or_default())
                .or_default();
            if self.is_area(r) {
                e.0 = fig;
            } else {
                e.1 = fig;
            }
        }
        let mut trend: Vec<TrendPoint> = by_period
            .into_iter()
            .map(|(period, (area, nation))| TrendPoint {
                period,
                area,
                nation,
            })
            .collect();
        let skip = trend.len().saturating_sub(6);
        trend.drain(..skip);
        Ok(trend)
    }

    /// The coverage shares (channel, respondent role) and the multi-select items' shares.
    async fn shares(&self) -> Result<(Vec<Share>, Vec<Share>), ReportError> {
        let share_of = |r: &Row, group: &str, category: &str, n: &str, share: &str| Share {
            group: s(r, group).unwrap_or_default(),
            category: s(r, category).unwrap_or_default(),
            n: i(r, n),
            share: f(r, share),
            low_reliability: b(r, "low_reliability").unwrap_or(false),
            suppression: s(r, "suppression"),
        };
        let coverage = rows(
            self.wh,
            &self.key(
                "response_counts",
                "AND breakdown IN ('channel', 'respondent_role') ORDER BY breakdown, category",
            ),
        )
        .await?
        .iter()
        .filter(|r| self.is_area(r))
        .map(|r| share_of(r, "breakdown", "category", "n_responses", "share"))
        .collect();
        let selections = rows(
            self.wh,
            &self.key(
                "selections",
                "AND option_code <> '*' ORDER BY item_code, option_code",
            ),
        )
        .await?
        .iter()
        .filter(|r| self.is_area(r))
        .map(|r| {
            share_of(
                r,
                "item_code",
                "option_code",
                "n_selected",
                "share_selected",
            )
        })
        .collect();
        Ok((coverage, selections))
    }
}

/// The areas of a level that the marts hold for a period (for `--all LEVEL`).
pub async fn areas_of(
    wh: &Warehouse,
    level: &str,
    instrument: &str,
    period_type: PeriodType,
    period: &str,
) -> Result<Vec<String>, ReportError> {
    let r = rows(
        wh,
        &format!(
            "SELECT DISTINCT geo_code FROM response_counts WHERE period_type = {} AND period = {} AND instrument = {} \
             AND service = 'all' AND breakdown = 'total' AND geo_level = {} AND geo_code <> 'unknown' ORDER BY geo_code",
            quote(period_type.as_str()),
            quote(period),
            quote(instrument),
            quote(level)
        ),
    )
    .await?;
    Ok(r.iter().filter_map(|r| s(r, "geo_code")).collect())
}
