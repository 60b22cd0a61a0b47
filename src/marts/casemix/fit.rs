//! The case-mix model of one outcome over one national pool: a linear model with area fixed
//! effects and a dummy for every level of every adjuster but its reference level,
//!
//! y = α_area + Σ β_level · x_level + ε,
//!
//! fitted by the within-area estimator from grouped data. Every regressor is an indicator, so
//! the pool can be given as cells (an area and one level of every adjuster) holding the number
//! of respondents, the sum of their outcomes and the sum of their squares: that is all the
//! estimator and its heteroskedasticity-robust (HC1) standard errors need, exactly — no
//! respondent-level data is read.

use nalgebra::{DMatrix, DVector};

/// One cell of the pool: the respondents of one area with one combination of adjuster levels
/// (`levels[a]` is the level id of adjuster `a`), their count and the sums of y and y².
#[derive(Debug, Clone, PartialEq)]
pub struct Obs {
    pub area: u32,
    pub levels: Vec<u32>,
    pub n: f64,
    pub sy: f64,
    pub syy: f64,
}

/// What the fit made of one level of one adjuster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimate {
    /// the adjuster's most common level in the pool: its β is 0 by definition
    Reference,
    Estimated,
    /// fewer respondents than the fit's minimum: counted with the reference level
    PooledWithReference,
    /// does not vary within areas, or is collinear with other levels: not estimable
    NotEstimable,
    /// the adjuster has a single level (after pooling) and is left out of the model
    Dropped,
}

impl Estimate {
    pub fn as_str(self) -> &'static str {
        match self {
            Estimate::Reference => "reference",
            Estimate::Estimated => "estimated",
            Estimate::PooledWithReference => "pooled_with_reference",
            Estimate::NotEstimable => "not_estimable",
            Estimate::Dropped => "dropped",
        }
    }
}

/// One level of one adjuster in a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub adjuster: usize,
    pub level: u32,
    /// respondents in the pool with this level
    pub n: f64,
    pub estimate: Estimate,
    /// the model's column of this level (estimated levels only)
    pub column: Option<usize>,
}

/// A fitted model: β of each column, their covariance (robust, HC1), and what became of each
/// level.
#[derive(Debug, Clone)]
pub struct Fit {
    pub n: f64,
    pub areas: usize,
    pub levels: Vec<Level>,
    /// (adjuster, level) of each column
    pub columns: Vec<(usize, u32)>,
    pub beta: Vec<f64>,
    /// row-major k × k; NaN when the pool leaves no degrees of freedom
    pub cov: Vec<f64>,
    /// adjusters left out of the model, each with why
    pub notes: Vec<String>,
}

impl Fit {
    /// β of column `j` and its standard error.
    pub fn coefficient(&self, j: usize) -> (f64, f64) {
        let k = self.beta.len();
        (self.beta[j], self.cov[j * k + j].max(0.0).sqrt())
    }

    /// Σ β (x − x_ref) and its variance from the coefficients' covariance, for the adjusters'
    /// level shares `x` and `x_ref` of two groups (each indexed by column).
    pub fn term(&self, x: &[f64], x_ref: &[f64]) -> (f64, f64) {
        let k = self.beta.len();
        let d: Vec<f64> = x.iter().zip(x_ref).map(|(a, b)| a - b).collect();
        let term = d.iter().zip(&self.beta).map(|(a, b)| a * b).sum();
        let mut var = 0.0;
        for i in 0..k {
            for j in 0..k {
                var += d[i] * self.cov[i * k + j] * d[j];
            }
        }
        (term, var)
    }
}

/// Relative size under which a column's pivot counts as zero: the level does not vary within
/// areas once the columns kept before it are accounted for.
const PIVOT_TOLERANCE: f64 = 1e-9;

/// Fit the model on the pool `obs` with `adjusters` adjusters. `level_name(a, l)` names a level
/// in the notes; a level with fewer than `min_level_n` respondents is pooled with the reference.
/// None when the pool is empty.
pub fn fit(
    obs: &[Obs],
    adjusters: usize,
    adjuster_name: &dyn Fn(usize) -> String,
    level_name: &dyn Fn(usize, u32) -> String,
    min_level_n: f64,
) -> Option<Fit> {
    let n_total: f64 = obs.iter().map(|o| o.n).sum();
    if n_total <= 0.0 {
        return None;
    }
    let Design {
        mut levels,
        mut notes,
        columns,
        col_of,
    } = design(obs, adjusters, adjuster_name, level_name, min_level_n);
    let k = columns.len();
    let active = |o: &Obs| -> Vec<usize> {
        o.levels
            .iter()
            .enumerate()
            .filter_map(|(a, l)| col_of[a].get(l).copied())
            .collect()
    };
    let areas = area_sums(obs, k, &active);
    let (a_m, b_v) = within_area(&areas, k);
    let kept = well_conditioned(&a_m, k);
    for lv in levels.iter_mut() {
        if lv.estimate == Estimate::Estimated {
            let cand = col_of[lv.adjuster][&lv.level];
            match kept.iter().position(|c| *c == cand) {
                Some(p) => lv.column = Some(p),
                None => {
                    lv.estimate = Estimate::NotEstimable;
                    notes.push(format!(
                        "{} '{}' not estimable: it does not vary within areas apart from the other levels",
                        adjuster_name(lv.adjuster),
                        level_name(lv.adjuster, lv.level)
                    ));
                }
            }
        }
    }
    let kk = kept.len();
    let a_s = DMatrix::from_fn(kk, kk, |r, c| a_m[(kept[r], kept[c])]);
    let b_s = DVector::from_fn(kk, |r, _| b_v[kept[r]]);
    let (beta, a_inv) = if kk == 0 {
        (DVector::zeros(0), DMatrix::zeros(0, 0))
    } else {
        let ch = a_s.clone().cholesky()?;
        (ch.solve(&b_s), ch.inverse())
    };
    // robust covariance: A⁻¹ (Σ_cells x̃ x̃' Σ e²) A⁻¹ · N / (N − areas − k)
    let meat = meat(obs, &areas, &kept, k, &beta, &active);
    let df = n_total - areas.len() as f64 - kk as f64;
    let cov = if df > 0.0 {
        (&a_inv * meat * &a_inv) * (n_total / df)
    } else {
        DMatrix::from_element(kk, kk, f64::NAN)
    };
    let cols: Vec<(usize, u32)> = kept.iter().map(|c| columns[*c]).collect();
    Some(Fit {
        n: n_total,
        areas: areas.len(),
        levels,
        columns: cols,
        beta: beta.iter().copied().collect(),
        cov: (0..kk * kk).map(|i| cov[(i / kk, i % kk)]).collect(),
        notes,
    })
}

/// The design of a fit: each adjuster's levels with how they are estimated, the notes on
/// what was dropped, the candidate columns (adjuster, level) and, per adjuster, each estimated
/// level's column.
struct Design {
    levels: Vec<Level>,
    notes: Vec<String>,
    columns: Vec<(usize, u32)>,
    col_of: Vec<std::collections::HashMap<u32, usize>>,
}

/// Each adjuster's reference (its most common level), the levels estimated against it (those
/// with `min_level_n` respondents), pooled with it or dropped.
fn design(
    obs: &[Obs],
    adjusters: usize,
    adjuster_name: &dyn Fn(usize) -> String,
    level_name: &dyn Fn(usize, u32) -> String,
    min_level_n: f64,
) -> Design {
    // respondents per level of each adjuster
    let mut counts: Vec<std::collections::BTreeMap<u32, f64>> = vec![Default::default(); adjusters];
    for o in obs {
        for (a, l) in o.levels.iter().enumerate() {
            *counts[a].entry(*l).or_default() += o.n;
        }
    }
    let mut levels = Vec::new();
    let mut notes = Vec::new();
    let mut columns: Vec<(usize, u32)> = Vec::new();
    // col_of[a][level] → candidate column
    let mut col_of: Vec<std::collections::HashMap<u32, usize>> =
        vec![Default::default(); adjusters];
    for (a, c) in counts.iter().enumerate() {
        let present: Vec<(u32, f64)> = c
            .iter()
            .filter(|(_, n)| **n > 0.0)
            .map(|(l, n)| (*l, *n))
            .collect();
        // the reference: the most common level (ties: the first by name)
        let reference = present
            .iter()
            .copied()
            .max_by(|x, y| {
                x.1.partial_cmp(&y.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| level_name(a, y.0).cmp(&level_name(a, x.0)))
            })
            .map(|(l, _)| l);
        let Some(reference) = reference else { continue };
        let estimable: Vec<u32> = present
            .iter()
            .filter(|(l, n)| *l != reference && *n >= min_level_n)
            .map(|(l, _)| *l)
            .collect();
        if estimable.is_empty() {
            notes.push(if present.len() == 1 {
                format!(
                    "{} dropped: a single level ('{}') in the pool",
                    adjuster_name(a),
                    level_name(a, reference)
                )
            } else {
                format!(
                    "{} dropped: no level but '{}' has {} respondents in the pool",
                    adjuster_name(a),
                    level_name(a, reference),
                    min_level_n
                )
            });
        }
        for (l, n) in &present {
            let estimate = if *l == reference {
                if estimable.is_empty() {
                    Estimate::Dropped
                } else {
                    Estimate::Reference
                }
            } else if estimable.contains(l) {
                col_of[a].insert(*l, columns.len());
                columns.push((a, *l));
                Estimate::Estimated
            } else if estimable.is_empty() {
                Estimate::Dropped
            } else {
                Estimate::PooledWithReference
            };
            levels.push(Level {
                adjuster: a,
                level: *l,
                n: *n,
                estimate,
                column: None,
            });
        }
    }
    Design {
        levels,
        notes,
        columns,
        col_of,
    }
}

/// Per area: n, Σy, Σy², Σx, Σxx', Σxy.
struct AreaSums {
    n: f64,
    sy: f64,
    syy: f64,
    sx: Vec<f64>,
    sxx: Vec<f64>,
    sxy: Vec<f64>,
}

/// The sums of each area over the pool, `active(o)` being the columns a cell's levels set.
fn area_sums(
    obs: &[Obs],
    k: usize,
    active: &dyn Fn(&Obs) -> Vec<usize>,
) -> std::collections::BTreeMap<u32, AreaSums> {
    let mut areas: std::collections::BTreeMap<u32, AreaSums> = Default::default();
    for o in obs {
        let s = areas.entry(o.area).or_insert_with(|| AreaSums {
            n: 0.0,
            sy: 0.0,
            syy: 0.0,
            sx: vec![0.0; k],
            sxx: vec![0.0; k * k],
            sxy: vec![0.0; k],
        });
        s.n += o.n;
        s.sy += o.sy;
        s.syy += o.syy;
        let act = active(o);
        for &i in &act {
            s.sx[i] += o.n;
            s.sxy[i] += o.sy;
            for &j in &act {
                s.sxx[i * k + j] += o.n;
            }
        }
    }
    areas
}

/// The within-area cross products A = Σ (Σxx' − Σx Σx' / n) and b = Σ (Σxy − Σx Σy / n).
fn within_area(
    areas: &std::collections::BTreeMap<u32, AreaSums>,
    k: usize,
) -> (DMatrix<f64>, DVector<f64>) {
    let mut a_m = DMatrix::<f64>::zeros(k, k);
    let mut b_v = DVector::<f64>::zeros(k);
    for s in areas.values() {
        if s.n <= 0.0 {
            continue;
        }
        for i in 0..k {
            b_v[i] += s.sxy[i] - s.sx[i] * s.sy / s.n;
            for j in 0..k {
                a_m[(i, j)] += s.sxx[i * k + j] - s.sx[i] * s.sx[j] / s.n;
            }
        }
    }
    (a_m, b_v)
}

/// The columns kept one at a time while the kept set stays well conditioned (a column whose
/// pivot is under `PIVOT_TOLERANCE` of its diagonal is left out).
fn well_conditioned(a_m: &DMatrix<f64>, k: usize) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    for j in 0..k {
        let ajj = a_m[(j, j)];
        let scale = (0..k).map(|i| a_m[(i, i)]).fold(0.0f64, f64::max);
        if ajj <= PIVOT_TOLERANCE * scale.max(1.0) {
            continue;
        }
        let mut trial = kept.clone();
        trial.push(j);
        let sub = DMatrix::from_fn(trial.len(), trial.len(), |r, c| a_m[(trial[r], trial[c])]);
        if let Some(ch) = sub.cholesky() {
            let l = ch.l();
            let last = trial.len() - 1;
            if l[(last, last)] * l[(last, last)] > PIVOT_TOLERANCE * ajj {
                kept.push(j);
            }
        }
    }
    kept
}

/// The middle of the cluster-robust sandwich: Σ over cells of e² x̃ x̃', x̃ the kept columns
/// centred on the area's means.
fn meat(
    obs: &[Obs],
    areas: &std::collections::BTreeMap<u32, AreaSums>,
    kept: &[usize],
    k: usize,
    beta: &DVector<f64>,
    active: &dyn Fn(&Obs) -> Vec<usize>,
) -> DMatrix<f64> {
    let kk = kept.len();
    let mut meat = DMatrix::<f64>::zeros(kk, kk);
    let pos: Vec<Option<usize>> = (0..k).map(|c| kept.iter().position(|x| *x == c)).collect();
    for o in obs {
        let s = &areas[&o.area];
        let ybar = s.sy / s.n;
        let mut xt = vec![0.0; kk];
        for (p, &c) in kept.iter().enumerate() {
            xt[p] = -s.sx[c] / s.n;
        }
        for c in active(o) {
            if let Some(p) = pos[c] {
                xt[p] += 1.0;
            }
        }
        let t: f64 = xt.iter().zip(beta.iter()).map(|(x, b)| x * b).sum();
        let e2 = (o.syy - 2.0 * ybar * o.sy + o.n * ybar * ybar - 2.0 * t * (o.sy - o.n * ybar)
            + o.n * t * t)
            .max(0.0);
        for i in 0..kk {
            for j in 0..kk {
                meat[(i, j)] += e2 * xt[i] * xt[j];
            }
        }
    }
    meat
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(a: usize) -> String {
        ["channel", "role"][a].to_string()
    }
    fn level(_: usize, l: u32) -> String {
        format!("l{l}")
    }

    /// Respondents of `area` with levels `levels` and outcomes `ys`, as one cell.
    fn cell(area: u32, levels: &[u32], ys: &[f64]) -> Obs {
        Obs {
            area,
            levels: levels.to_vec(),
            n: ys.len() as f64,
            sy: ys.iter().sum(),
            syy: ys.iter().map(|y| y * y).sum(),
        }
    }

    #[test]
    fn an_exact_model_is_recovered_with_area_effects_absorbed() {
        // y = area effect (0, 10) + 2 × channel level 1 + 5 × role level 1, no noise, each
        // combination present in both areas with different weights
        let mut obs = Vec::new();
        for (area, base) in [(0u32, 0.0), (1, 10.0)] {
            for (ch, role, n) in [
                (0, 0, 50),
                (1, 0, 20 + area as usize * 30),
                (0, 1, 40),
                (1, 1, 35),
            ] {
                let y = base + 2.0 * ch as f64 + 5.0 * role as f64;
                obs.push(cell(area, &[ch, role], &vec![y; n]));
            }
        }
        let f = fit(&obs, 2, &names, &level, 1.0).unwrap();
        assert_eq!(f.columns.len(), 2);
        let by = |a: usize| {
            let j = f.columns.iter().position(|c| c.0 == a).unwrap();
            f.coefficient(j)
        };
        assert!((by(0).0 - 2.0).abs() < 1e-9, "{:?}", by(0));
        assert!((by(1).0 - 5.0).abs() < 1e-9, "{:?}", by(1));
        // no residual: no uncertainty
        assert!(by(0).1 < 1e-6, "{:?}", by(0));
        assert_eq!(f.areas, 2);
    }

    #[test]
    fn a_single_level_adjuster_is_dropped_with_a_note() {
        let obs = vec![
            cell(0, &[0, 3], &[1.0, 0.0, 1.0]),
            cell(0, &[1, 3], &[1.0, 1.0]),
            cell(1, &[0, 3], &[0.0, 0.0]),
            cell(1, &[1, 3], &[1.0, 0.0, 1.0]),
        ];
        let f = fit(&obs, 2, &names, &level, 1.0).unwrap();
        assert_eq!(f.columns, vec![(0, 1)]);
        assert_eq!(
            f.notes,
            vec!["role dropped: a single level ('l3') in the pool"]
        );
        let role: Vec<_> = f.levels.iter().filter(|l| l.adjuster == 1).collect();
        assert_eq!(role.len(), 1);
        assert_eq!(role[0].estimate, Estimate::Dropped);
    }

    #[test]
    fn small_levels_pool_with_the_reference_and_constant_ones_are_not_estimable() {
        // channel level 2 has 3 respondents (< 5): pooled; role level 1 exists only in area 1,
        // all of whose respondents have it: no variation within areas
        let obs = vec![
            cell(0, &[0, 0], &[1.0; 10]),
            cell(0, &[1, 0], &[0.0; 8]),
            cell(0, &[2, 0], &[1.0; 3]),
            cell(1, &[0, 1], &[1.0; 9]),
            cell(1, &[1, 1], &[0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
        ];
        let f = fit(&obs, 2, &names, &level, 5.0).unwrap();
        let est = |a: usize, l: u32| {
            f.levels
                .iter()
                .find(|x| x.adjuster == a && x.level == l)
                .unwrap()
                .estimate
        };
        assert_eq!(est(0, 0), Estimate::Reference);
        assert_eq!(est(0, 1), Estimate::Estimated);
        assert_eq!(est(0, 2), Estimate::PooledWithReference);
        assert_eq!(est(1, 1), Estimate::NotEstimable);
        assert_eq!(f.columns, vec![(0, 1)]);
        assert!(
            f.notes
                .iter()
                .any(|n| n.contains("role 'l1' not estimable")),
            "{:?}",
            f.notes
        );
    }

    #[test]
    fn grouped_cells_give_the_respondent_level_estimate_and_robust_errors() {
        // the same respondents as one cell each or grouped: identical β and SE
        let data: Vec<(u32, u32, f64)> = (0..200)
            .map(|i| {
                let area = (i % 3) as u32;
                let ch = ((i / 3) % 2) as u32;
                let y =
                    (i * 7 + area as usize * 3 + ch as usize * 5).is_multiple_of(4) as u8 as f64;
                (area, ch, y)
            })
            .collect();
        let single: Vec<Obs> = data
            .iter()
            .map(|(a, c, y)| cell(*a, &[*c], &[*y]))
            .collect();
        let mut grouped: std::collections::BTreeMap<(u32, u32), Vec<f64>> = Default::default();
        for (a, c, y) in &data {
            grouped.entry((*a, *c)).or_default().push(*y);
        }
        let grouped: Vec<Obs> = grouped
            .iter()
            .map(|((a, c), ys)| cell(*a, &[*c], ys))
            .collect();
        let one = |a: usize| ["channel"][a].to_string();
        let f1 = fit(&single, 1, &one, &level, 1.0).unwrap();
        let f2 = fit(&grouped, 1, &one, &level, 1.0).unwrap();
        let (b1, s1) = f1.coefficient(0);
        let (b2, s2) = f2.coefficient(0);
        assert!(
            (b1 - b2).abs() < 1e-12 && (s1 - s2).abs() < 1e-12,
            "{b1} {b2} {s1} {s2}"
        );
        assert!(s1 > 0.0);
        // the within estimator by hand: demeaned by area, then a simple regression
        let mut sxx = 0.0;
        let mut sxy = 0.0;
        for area in 0..3u32 {
            let rows: Vec<_> = data.iter().filter(|r| r.0 == area).collect();
            let (mx, my) = (
                rows.iter().map(|r| r.1 as f64).sum::<f64>() / rows.len() as f64,
                rows.iter().map(|r| r.2).sum::<f64>() / rows.len() as f64,
            );
            for r in rows {
                sxx += (r.1 as f64 - mx) * (r.1 as f64 - mx);
                sxy += (r.1 as f64 - mx) * (r.2 - my);
            }
        }
        assert!((b1 - sxy / sxx).abs() < 1e-12);
    }

    #[test]
    fn the_term_is_beta_times_the_difference_in_shares() {
        let f = Fit {
            n: 100.0,
            areas: 2,
            levels: Vec::new(),
            columns: vec![(0, 1), (1, 1)],
            beta: vec![0.2, -0.1],
            cov: vec![0.01, 0.0, 0.0, 0.04],
            notes: Vec::new(),
        };
        let (t, v) = f.term(&[0.8, 0.5], &[0.3, 0.5]);
        assert!((t - 0.1).abs() < 1e-12);
        assert!((v - 0.25 * 0.01).abs() < 1e-12);
    }
}
