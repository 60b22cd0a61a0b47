//! Case-mix and channel adjustment of the published figures (docs/marts.md, "Adjusted
//! figures"). An area whose feedback comes mostly by SMS right after a visit, or mostly from
//! relatives, scores differently from the nation for reasons that say nothing about its
//! services; the adjusted figure is the area's figure with the nation's mix of respondents:
//!
//! adjusted = raw − Σ β × (area's adjuster share − nation's adjuster share),
//!
//! β from a linear model per outcome ([`fit`]) fitted on the national pool of a rolling window
//! of months ending with the period's last month, with county fixed effects and the adjusters
//! channel, respondent role, age group and language (each with its unknown level).
//!
//! The pool comes from the `casemix` fine cube (per month, county, instrument, outcome and
//! combination of adjuster levels: respondents, Σy, Σy²); the areas' shares from
//! response_counts' cells, whose disclosure decisions say where the shares are published. An
//! adjusted figure is published only where its share figures all are (see [`CellMix`]), so that
//! it is a function of published numbers and reveals nothing they do not.

pub mod fit;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};

use crate::marts::disclosure::{Reason, Rules};

use self::fit::{Estimate, Fit, Obs};

/// The published table of the models' coefficients.
pub const COEFFICIENTS: &str = "casemix_coefficients";

/// The adjusters, as response_counts' breakdowns and the responses' columns.
pub const ADJUSTERS: [&str; 4] = ["channel", "respondent_role", "age_group", "language"];

/// The outcomes of the recommendation item (the casemix cube's `outcome` for mart
/// `recommendation`): the promoter (+1) / passive (0) / detractor (−1) score behind NPS, and
/// the 0–10 value behind its mean.
pub const NPS_SCORE: &str = "nps_score";
pub const RECOMMEND_VALUE: &str = "recommend_value";

/// The casemix cube's string key columns and its counts.
pub const CUBE_KEYS: [&str; 9] = [
    "month",
    "county",
    "instrument",
    "mart",
    "outcome",
    "channel",
    "respondent_role",
    "age_group",
    "language",
];
pub const CUBE_MEASURES: [&str; 4] = ["n", "n_cant_say", "y_sum", "y_sumsq"];

/// How the adjustment is made. The defaults are the one place they are set.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// false: no adjusted figure is computed (`--no-adjustment`)
    pub enabled: bool,
    /// months in the pool of a period's model, ending with the period's last month
    pub window_months: u32,
    /// channels whose responses are no sample (self-selected) and stay out of the fit
    pub fit_exclude_channels: Vec<String>,
}

pub const DEFAULT_WINDOW_MONTHS: u32 = 12;
pub const MAX_WINDOW_MONTHS: u32 = 36;
pub const DEFAULT_FIT_EXCLUDE_CHANNELS: [&str; 1] = ["kiosk"];

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enabled: true,
            window_months: DEFAULT_WINDOW_MONTHS,
            fit_exclude_channels: DEFAULT_FIT_EXCLUDE_CHANNELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl Settings {
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_WINDOW_MONTHS).contains(&self.window_months) {
            return Err(format!(
                "the adjustment window is {} months: it must be 1 to {MAX_WINDOW_MONTHS}",
                self.window_months
            ));
        }
        Ok(())
    }

    /// The earlier years whose months the pools of `year`'s periods reach into.
    pub fn years_before(&self, year: i32) -> Vec<i32> {
        if !self.enabled {
            return Vec::new();
        }
        let back = (self.window_months as i32 - 1 + 11) / 12;
        (year - back..year).collect()
    }
}

/// Months as one number (year × 12 + month − 1), and back.
fn month_index(m: &str) -> Option<i32> {
    let (y, mm) = crate::marts::periods::parse_month(m)?;
    Some(y * 12 + mm as i32 - 1)
}

fn month_text(i: i32) -> String {
    format!("{}-{:02}", i.div_euclid(12), i.rem_euclid(12) + 1)
}

/// A column as plain strings (dictionaries and views cast).
fn strings(b: &RecordBatch, name: &str) -> Result<StringArray, String> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| format!("the casemix cube has no column {name}"))?;
    let c = arrow::compute::cast(c, &DataType::Utf8).map_err(|e| e.to_string())?;
    Ok(c.as_string::<i32>().clone())
}

fn ints(b: &RecordBatch, name: &str) -> Result<Vec<i64>, String> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| format!("no column {name}"))?;
    let c = arrow::compute::cast(c, &DataType::Int64).map_err(|e| e.to_string())?;
    let c = c.as_primitive::<Int64Type>();
    Ok((0..c.len())
        .map(|i| if c.is_null(i) { 0 } else { c.value(i) })
        .collect())
}

/// Texts numbered in the order first seen.
#[derive(Default, Clone)]
struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.ids.get(s) {
            return *i;
        }
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), self.names.len() as u32 - 1);
        self.names.len() as u32 - 1
    }
    fn text(&self, i: u32) -> &str {
        &self.names[i as usize]
    }
}

/// An outcome: (instrument, mart, outcome).
type OutcomeKey = (String, String, String);

/// One model: its window and fit, and the names of its levels.
pub struct Model {
    pub window_start: String,
    pub window_end: String,
    pub fit: Fit,
}

/// Every model of a year's periods, by (window end month, instrument, mart, outcome).
#[derive(Default)]
pub struct Models {
    pub models: BTreeMap<(String, String, String, String), Model>,
    levels: Vec<Names>,
}

impl Models {
    pub fn get(
        &self,
        window_end: &str,
        instrument: &str,
        mart: &str,
        outcome: &str,
    ) -> Option<&Model> {
        self.models.get(&(
            window_end.to_string(),
            instrument.to_string(),
            mart.to_string(),
            outcome.to_string(),
        ))
    }

    fn level_text(&self, a: usize, id: u32) -> &str {
        self.levels[a].text(id)
    }
}

/// Fit the models of the periods ending in the months `window_ends` (YYYY-MM) from the
/// casemix cube rows `cube` (every month the windows reach).
pub fn fit_models(
    cube: &[RecordBatch],
    window_ends: &BTreeSet<String>,
    settings: &Settings,
    rules: &Rules,
) -> Result<Models, String> {
    let Pools {
        mut pools,
        mut levels,
        counties,
    } = read_pools(cube, settings, rules)?;
    canonicalise(&mut pools, &mut levels, &counties);
    let ends: Vec<i32> = window_ends.iter().filter_map(|e| month_index(e)).collect();
    let window = settings.window_months as i32;
    let adjuster_name = |a: usize| ADJUSTERS[a].to_string();
    let mut models = BTreeMap::new();
    for (key, months) in &pools {
        for &end in &ends {
            let start = end - window + 1;
            let obs = window_obs(months, start, end);
            if obs.is_empty() {
                continue;
            }
            let level_name = |a: usize, l: u32| levels[a].text(l).to_string();
            if let Some(f) = fit::fit(
                &obs,
                ADJUSTERS.len(),
                &adjuster_name,
                &level_name,
                rules.reliable_n as f64,
            ) {
                models.insert(
                    (month_text(end), key.0.clone(), key.1.clone(), key.2.clone()),
                    Model {
                        window_start: month_text(start),
                        window_end: month_text(end),
                        fit: f,
                    },
                );
            }
        }
    }
    Ok(Models { models, levels })
}

/// A cell of the casemix cube in a pool: (county, levels, n, Σy, Σy²).
type PoolRow = (u32, [u32; 4], f64, f64, f64);

/// The cube's rows by outcome and month, with the names of their counties and levels.
struct Pools {
    pools: BTreeMap<OutcomeKey, BTreeMap<i32, Vec<PoolRow>>>,
    levels: Vec<Names>,
    counties: Names,
}

/// Read the cube into pools: the channels left out of the fit skipped, the denominator as
/// the rules count it (can't say as 0 under the FFT convention), empty cells dropped.
fn read_pools(cube: &[RecordBatch], settings: &Settings, rules: &Rules) -> Result<Pools, String> {
    let mut levels: Vec<Names> = vec![Names::default(); ADJUSTERS.len()];
    let mut counties = Names::default();
    let mut pools: BTreeMap<OutcomeKey, BTreeMap<i32, Vec<PoolRow>>> = BTreeMap::new();
    let exclude: BTreeSet<&str> = settings
        .fit_exclude_channels
        .iter()
        .map(String::as_str)
        .collect();
    for b in cube {
        let cols: Vec<StringArray> = CUBE_KEYS
            .iter()
            .map(|c| strings(b, c))
            .collect::<Result<_, _>>()?;
        let [n_col, cant_say, y_sum, y_sumsq]: [Vec<i64>; 4] = CUBE_MEASURES
            .iter()
            .map(|c| ints(b, c))
            .collect::<Result<Vec<_>, _>>()?
            .try_into()
            .expect("four measures");
        for i in 0..b.num_rows() {
            let text = |c: usize| {
                if cols[c].is_null(i) {
                    "unknown"
                } else {
                    cols[c].value(i)
                }
            };
            if exclude.contains(text(5)) {
                continue;
            }
            let Some(month) = month_index(text(0)) else {
                continue;
            };
            let mart = text(3);
            // the outcome's denominator: can't say counts (as 0) under the FFT convention
            let n = n_col[i]
                + if rules.cant_say_in_denominator {
                    cant_say[i]
                } else {
                    0
                };
            if n <= 0 {
                continue;
            }
            let lv: [u32; 4] = std::array::from_fn(|a| levels[a].id(text(5 + a)));
            pools
                .entry((text(2).to_string(), mart.to_string(), text(4).to_string()))
                .or_default()
                .entry(month)
                .or_default()
                .push((
                    counties.id(text(1)),
                    lv,
                    n as f64,
                    y_sum[i] as f64,
                    y_sumsq[i] as f64,
                ));
        }
    }
    Ok(Pools {
        pools,
        levels,
        counties,
    })
}

/// Number the counties and levels in the order of their names, so that the models' columns
/// and sums do not depend on the order the cube's rows came in (the partition-wise and the SQL
/// cubes give the same β to the last bit).
fn canonicalise(
    pools: &mut BTreeMap<OutcomeKey, BTreeMap<i32, Vec<PoolRow>>>,
    levels: &mut [Names],
    counties: &Names,
) {
    let canonical = |names: &Names| -> (Names, Vec<u32>) {
        let mut sorted = names.names.clone();
        sorted.sort();
        let mut out = Names::default();
        for n in &sorted {
            out.id(n);
        }
        let map = names.names.iter().map(|n| out.ids[n]).collect();
        (out, map)
    };
    let (_, county_map) = canonical(counties);
    let mut level_maps = Vec::new();
    for l in levels.iter_mut() {
        let (sorted, map) = canonical(l);
        *l = sorted;
        level_maps.push(map);
    }
    for months in pools.values_mut() {
        for rows in months.values_mut() {
            for (county, lv, ..) in rows.iter_mut() {
                *county = county_map[*county as usize];
                for (a, l) in lv.iter_mut().enumerate() {
                    *l = level_maps[a][*l as usize];
                }
            }
        }
    }
}

/// The observations of one window: the cells of the months `start..=end` summed by county and
/// levels, in a fixed order (the sums, and so the published β, then do not depend on hashing).
fn window_obs(months: &BTreeMap<i32, Vec<PoolRow>>, start: i32, end: i32) -> Vec<Obs> {
    let mut cells: HashMap<(u32, [u32; 4]), (f64, f64, f64)> = HashMap::new();
    for (_, rows) in months.range(start..=end) {
        for (county, lv, n, sy, syy) in rows {
            let c = cells.entry((*county, *lv)).or_default();
            c.0 += n;
            c.1 += sy;
            c.2 += syy;
        }
    }
    let mut obs: Vec<Obs> = cells
        .into_iter()
        .map(|((area, lv), (n, sy, syy))| Obs {
            area,
            levels: lv.to_vec(),
            n,
            sy,
            syy,
        })
        .collect();
    obs.sort_by(|a, b| (a.area, &a.levels).cmp(&(b.area, &b.levels)));
    obs
}

/// The coefficients table's columns (after which `period_type` and `year`, its partitions).
pub fn coefficients_schema() -> SchemaRef {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        s("window_start", false),
        s("window_end", false),
        s("instrument", false),
        s("mart", false),
        s("outcome", false),
        s("adjuster", false),
        s("level", false),
        s("estimate", false),
        Field::new("beta", DataType::Float64, true),
        Field::new("se", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
        Field::new("n_pool", DataType::Int64, false),
        Field::new("n_areas", DataType::Int64, false),
        s("note", true),
        s("period_type", false),
        s("year", false),
    ]))
}

/// Counts in the coefficients table are rounded to this: two overlapping windows' counts
/// differ by a month's count at each end, which would otherwise recover small monthly counts.
pub const COUNT_ROUNDING: i64 = 10;

fn rounded(n: f64) -> i64 {
    let n = n.round() as i64;
    (n + COUNT_ROUNDING / 2) / COUNT_ROUNDING * COUNT_ROUNDING
}

/// The coefficients of `models` as the rows of `casemix_coefficients` for `year`.
pub fn coefficient_rows(models: &Models, year: i32) -> Result<RecordBatch, String> {
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); 8];
    let (mut beta, mut se, mut n, mut n_pool, mut n_areas, mut note) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for ((_, instrument, mart, outcome), m) in &models.models {
        let f = &m.fit;
        let mut lv: Vec<&fit::Level> = f.levels.iter().collect();
        lv.sort_by(|a, b| {
            (a.adjuster, models.level_text(a.adjuster, a.level))
                .cmp(&(b.adjuster, models.level_text(b.adjuster, b.level)))
        });
        for l in lv {
            let row = [
                m.window_start.as_str(),
                m.window_end.as_str(),
                instrument,
                mart,
                outcome,
                ADJUSTERS[l.adjuster],
                models.level_text(l.adjuster, l.level),
                l.estimate.as_str(),
            ];
            for (c, v) in cols.iter_mut().zip(row) {
                c.push(Some(v.to_string()));
            }
            let (b, s) = match l.column {
                Some(j) => {
                    let (b, s) = f.coefficient(j);
                    (Some(b), s.is_finite().then_some(s))
                }
                None if l.estimate == Estimate::Reference => (Some(0.0), None),
                None => (None, None),
            };
            beta.push(b);
            se.push(s);
            // a level's count only where it is large enough to be estimated or the reference
            n.push(
                matches!(
                    l.estimate,
                    Estimate::Estimated | Estimate::Reference | Estimate::NotEstimable
                )
                .then(|| rounded(l.n)),
            );
            n_pool.push(rounded(f.n));
            n_areas.push(f.areas as i64);
            note.push(
                f.notes
                    .iter()
                    .find(|x| {
                        x.starts_with(&format!("{} ", ADJUSTERS[l.adjuster]))
                            && (l.estimate == Estimate::Dropped
                                || (l.estimate == Estimate::NotEstimable
                                    && x.contains(&format!(
                                        "'{}'",
                                        models.level_text(l.adjuster, l.level)
                                    ))))
                    })
                    .cloned(),
            );
        }
    }
    let rows = beta.len();
    let mut arrays: Vec<ArrayRef> = cols
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    arrays.push(Arc::new(Float64Array::from(beta)));
    arrays.push(Arc::new(Float64Array::from(se)));
    arrays.push(Arc::new(Int64Array::from(n)));
    arrays.push(Arc::new(Int64Array::from(n_pool)));
    arrays.push(Arc::new(Int64Array::from(n_areas)));
    arrays.push(Arc::new(StringArray::from(note)));
    arrays.push(Arc::new(StringArray::from(vec!["month"; rows])));
    arrays.push(Arc::new(StringArray::from(vec![year.to_string(); rows])));
    RecordBatch::try_new(coefficients_schema(), arrays).map_err(|e| e.to_string())
}

/// A cell's respondents by adjuster level as response_counts publishes them.
#[derive(Debug, Clone, Default)]
pub struct Mix {
    /// the cell's respondents (None: response_counts suppresses its total)
    pub total: Option<f64>,
    /// the published count of each (adjuster, level)
    pub published: HashMap<(usize, String), f64>,
    /// the levels of each adjuster whose count response_counts suppresses
    pub suppressed: Vec<Vec<String>>,
}

impl Mix {
    /// The respondents of each (adjuster, level) from published numbers only: a published
    /// count as it is, and the suppressed levels' combined count (the total less the published
    /// levels) shared among them in proportion to `like`'s published counts of those levels
    /// (evenly where it has none). None when the total is suppressed.
    pub fn counts(&self, like: Option<&Mix>) -> Option<HashMap<(usize, String), f64>> {
        let total = self.total?;
        let mut out = self.published.clone();
        for (a, levels) in self.suppressed.iter().enumerate() {
            if levels.is_empty() {
                continue;
            }
            let shown: f64 = self
                .published
                .iter()
                .filter(|((x, _), _)| *x == a)
                .map(|(_, n)| *n)
                .sum();
            let rest = (total - shown).max(0.0);
            let weight = |l: &String| {
                like.and_then(|m| m.published.get(&(a, l.clone())))
                    .copied()
                    .unwrap_or(0.0)
            };
            let sum: f64 = levels.iter().map(weight).sum();
            for l in levels {
                let share = if sum > 0.0 {
                    weight(l) / sum
                } else {
                    1.0 / levels.len() as f64
                };
                out.insert((a, l.clone()), rest * share);
            }
        }
        Some(out)
    }
}

/// The respondent mix of every response_counts cell, keyed by [`cell_key`].
#[derive(Default)]
pub struct CellMix {
    pub cells: HashMap<String, Mix>,
}

/// A cell's key across marts: period type, period, geography (level, parent, code), service and
/// instrument.
pub fn cell_key(parts: [&str; 7]) -> String {
    parts.join("\u{1f}")
}

/// The key columns of [`cell_key`], as the marts name them.
pub const CELL_COLUMNS: [&str; 7] = [
    "period_type",
    "period",
    "geo_level",
    "geo_parent",
    "geo_code",
    "service",
    "instrument",
];

/// response_counts' cells and disclosure decisions (`reasons`, None: published) as each cell's
/// published mix: of the nation's cells and of the cells with at least `min_total` published
/// responses (a cell with fewer has no figure to adjust: an adjusted figure needs that many
/// answers).
pub fn cell_mix(
    rolled: &[RecordBatch],
    reasons: &[Option<Reason>],
    min_total: f64,
) -> Result<CellMix, String> {
    struct Cols {
        keys: Vec<StringArray>,
        breakdown: StringArray,
        category: StringArray,
        n: Vec<i64>,
    }
    let cols: Vec<Cols> = rolled
        .iter()
        .map(|b| {
            Ok::<_, String>(Cols {
                keys: CELL_COLUMNS
                    .iter()
                    .map(|c| strings(b, c))
                    .collect::<Result<_, _>>()?,
                breakdown: strings(b, "breakdown")?,
                category: strings(b, "category")?,
                n: ints(b, "n_responses")?,
            })
        })
        .collect::<Result<_, _>>()?;
    fn parts(c: &Cols, i: usize) -> [&str; 7] {
        std::array::from_fn(|k| {
            if c.keys[k].is_null(i) {
                ""
            } else {
                c.keys[k].value(i)
            }
        })
    }
    // the cells kept: their total rows, published and large enough (every nation cell)
    let mut kept: std::collections::HashSet<[&str; 7]> = Default::default();
    let mut at = 0usize;
    for c in &cols {
        for i in 0..c.n.len() {
            if c.breakdown.value(i) == "total" {
                let p = parts(c, i);
                let shown = reasons[at + i].is_none();
                if p[2] == "nation" || (shown && c.n[i] as f64 >= min_total) {
                    kept.insert(p);
                }
            }
        }
        at += c.n.len();
    }
    let mut out: HashMap<String, Mix> = HashMap::with_capacity(kept.len());
    let mut at = 0usize;
    for c in &cols {
        for i in 0..c.n.len() {
            let p = parts(c, i);
            if !kept.contains(&p) {
                continue;
            }
            let mix = out.entry(cell_key(p)).or_insert_with(|| Mix {
                suppressed: vec![Vec::new(); ADJUSTERS.len()],
                ..Mix::default()
            });
            let shown = reasons[at + i].is_none();
            let br = c.breakdown.value(i);
            if br == "total" {
                mix.total = shown.then_some(c.n[i] as f64);
            } else if let Some(a) = ADJUSTERS.iter().position(|x| *x == br) {
                let level = c.category.value(i).to_string();
                if shown {
                    mix.published.insert((a, level), c.n[i] as f64);
                } else {
                    mix.suppressed[a].push(level);
                }
            }
        }
        at += c.n.len();
    }
    for m in out.values_mut() {
        for l in &mut m.suppressed {
            l.sort();
        }
    }
    Ok(CellMix { cells: out })
}

/// A cell's respondents by (adjuster, the models' level id), and its total.
type Shares = (HashMap<(usize, u32), f64>, f64);
type Memo<'a> = HashMap<[&'a str; 7], Option<Arc<Shares>>>;

/// What the figures of a year's item_scores and recommendation are adjusted with.
pub struct Adjustment {
    pub models: Models,
    pub mix: CellMix,
    pub rules: Rules,
}

/// One outcome's columns in a mart's cells: the adjustment term against the nation, against the
/// rest of the country, and the term's variance (from the coefficients' covariance).
pub struct TermColumns {
    pub term: Option<f64>,
    pub term_rest: Option<f64>,
    pub var: Option<f64>,
}

/// The columns the figures SQL reads for outcome `prefix` (`cm`, `cm_nps`, `cm_mean`).
pub fn term_fields(prefix: &str) -> [Field; 3] {
    [
        Field::new(format!("{prefix}_term"), DataType::Float64, true),
        Field::new(format!("{prefix}_term_rest"), DataType::Float64, true),
        Field::new(format!("{prefix}_var"), DataType::Float64, true),
    ]
}

/// The outcomes a mart is adjusted for: (column prefix, outcome; None: the row's item_code).
pub fn outcomes_of(mart: &str) -> &'static [(&'static str, Option<&'static str>)] {
    match mart {
        crate::marts::ITEM_SCORES => &[("cm", None)],
        crate::marts::RECOMMENDATION => &[
            ("cm_nps", Some(NPS_SCORE)),
            ("cm_mean", Some(RECOMMEND_VALUE)),
        ],
        _ => &[],
    }
}

impl Adjustment {
    /// What the models left out, each note once.
    pub fn notes(&self) -> BTreeSet<String> {
        self.models
            .models
            .values()
            .flat_map(|m| m.fit.notes.iter().cloned())
            .collect()
    }

    /// A cell's published mix (see [`Mix::counts`]) by the models' level ids, and its total;
    /// computed once per cell (`memo`).
    fn shares<'a>(
        &self,
        key: [&'a str; 7],
        like: Option<[&'a str; 7]>,
        memo: &mut Memo<'a>,
    ) -> Option<Arc<Shares>> {
        if let Some(s) = memo.get(&key) {
            return s.clone();
        }
        let like = like.and_then(|k| self.mix.cells.get(&cell_key(k)));
        let out = self.mix.cells.get(&cell_key(key)).and_then(|m| {
            let total = m.total.filter(|t| *t > 0.0)?;
            let counts = m.counts(like)?;
            let by_id: HashMap<(usize, u32), f64> = counts
                .into_iter()
                .filter_map(|((a, l), n)| Some(((a, *self.models.levels[a].ids.get(&l)?), n)))
                .collect();
            Some(Arc::new((by_id, total)))
        });
        memo.insert(key, out.clone());
        out
    }

    /// The adjustment of one cell for one outcome's `model` (None where no adjusted figure may
    /// be published: see docs/marts.md).
    fn cell<'a>(
        &self,
        key: [&'a str; 7],
        model: Option<&Model>,
        n: i64,
        memo: &mut Memo<'a>,
    ) -> TermColumns {
        let none = TermColumns {
            term: None,
            term_rest: None,
            var: None,
        };
        if (n as u64) < self.rules.reliable_n {
            return none;
        }
        let Some(model) = model else {
            return none;
        };
        let nation_key = [key[0], key[1], "nation", "", "FI", key[5], key[6]];
        // shares from published numbers only (see Mix::counts)
        let Some(nation) = self.shares(nation_key, None, memo) else {
            return none;
        };
        let Some(cell) = self.shares(key, Some(nation_key), memo) else {
            return none;
        };
        let ((nc, nt), (cc, ct)) = (&*nation, &*cell);
        let (nt, ct) = (*nt, *ct);
        let f = &model.fit;
        let count = |m: &HashMap<(usize, u32), f64>, c: (usize, u32)| -> f64 {
            m.get(&c).copied().unwrap_or(0.0)
        };
        let x: Vec<f64> = f.columns.iter().map(|c| count(cc, *c) / ct).collect();
        let xn: Vec<f64> = f.columns.iter().map(|c| count(nc, *c) / nt).collect();
        let (term, _) = f.term(&x, &xn);
        if key[2] == "nation" {
            return TermColumns {
                term: Some(0.0),
                term_rest: None,
                var: None,
            };
        }
        let rest_total = nt - ct;
        if rest_total <= 0.0 {
            return TermColumns {
                term: Some(term),
                term_rest: None,
                var: None,
            };
        }
        let xr: Vec<f64> = f
            .columns
            .iter()
            .map(|c| (count(nc, *c) - count(cc, *c)) / rest_total)
            .collect();
        let (term_rest, var) = f.term(&x, &xr);
        TermColumns {
            term: Some(term),
            term_rest: Some(term_rest),
            var: var.is_finite().then_some(var),
        }
    }

    /// The term columns of mart `mart`'s rolled-up cells, `reasons` their disclosure decisions.
    pub fn columns(
        &self,
        mart: &str,
        rolled: &RecordBatch,
        reasons: &[Option<Reason>],
    ) -> Result<Vec<ArrayRef>, String> {
        if outcomes_of(mart).is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<StringArray> = CELL_COLUMNS
            .iter()
            .map(|c| strings(rolled, c))
            .collect::<Result<_, _>>()?;
        let period_end = strings(rolled, "period_end")?;
        let item = if mart == crate::marts::ITEM_SCORES {
            Some(strings(rolled, "item_code")?)
        } else {
            None
        };
        let n = ints(rolled, "n_answered")?;
        let mut out = Vec::new();
        let mut memo = Memo::new();
        for (_, outcome) in outcomes_of(mart) {
            let (mut t, mut tr, mut v) = (Vec::new(), Vec::new(), Vec::new());
            // each (window end, instrument, outcome)'s model, looked up once
            let mut models: HashMap<(&str, &str, &str), Option<&Model>> = HashMap::new();
            for i in 0..rolled.num_rows() {
                let c = if reasons[i].is_some() || (n[i] as u64) < self.rules.reliable_n {
                    TermColumns {
                        term: None,
                        term_rest: None,
                        var: None,
                    }
                } else {
                    let key: [&str; 7] = std::array::from_fn(|c| {
                        if keys[c].is_null(i) {
                            ""
                        } else {
                            keys[c].value(i)
                        }
                    });
                    let outcome = match (outcome, &item) {
                        (Some(o), _) => *o,
                        (None, Some(it)) => it.value(i),
                        (None, None) => "",
                    };
                    let end = period_end.value(i);
                    let model = *models
                        .entry((end, key[6], outcome))
                        .or_insert_with(|| self.models.get(end, key[6], mart, outcome));
                    self.cell(key, model, n[i], &mut memo)
                };
                t.push(c.term);
                tr.push(c.term_rest);
                v.push(c.var);
            }
            out.push(Arc::new(Float64Array::from(t)) as ArrayRef);
            out.push(Arc::new(Float64Array::from(tr)) as ArrayRef);
            out.push(Arc::new(Float64Array::from(v)) as ArrayRef);
        }
        Ok(out)
    }
}

/// The term columns of a mart computed without adjustment: all NULL.
pub fn null_columns(mart: &str, rows: usize) -> Vec<ArrayRef> {
    outcomes_of(mart)
        .iter()
        .flat_map(|_| (0..3).map(|_| Arc::new(Float64Array::new_null(rows)) as ArrayRef))
        .collect()
}

/// The window ends of periods `periods`: their last months.
pub fn window_ends(periods: &[crate::marts::periods::PeriodRow]) -> BTreeSet<String> {
    periods.iter().map(|p| p.period_end.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_reach_back_into_earlier_years() {
        let s = Settings::default();
        assert_eq!(s.years_before(2025), vec![2024]);
        let one = Settings {
            window_months: 1,
            ..Settings::default()
        };
        assert!(one.years_before(2025).is_empty());
        let long = Settings {
            window_months: 24,
            ..Settings::default()
        };
        assert_eq!(long.years_before(2025), vec![2023, 2024]);
        let off = Settings {
            enabled: false,
            ..Settings::default()
        };
        assert!(off.years_before(2025).is_empty());
        assert!(
            Settings {
                window_months: 0,
                ..Settings::default()
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn months_count_across_years() {
        assert_eq!(month_index("2025-01"), Some(2025 * 12));
        assert_eq!(month_text(2025 * 12 - 11), "2024-02");
        assert_eq!(rounded(4.0), 0);
        assert_eq!(rounded(15.0), 20);
        assert_eq!(rounded(1234.0), 1230);
    }
}
