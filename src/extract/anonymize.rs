//! k-anonymity and l-diversity by full-domain generalisation (as ARX searches its lattice): every
//! quasi-identifier is raised to one level of its hierarchy for all records; among the level
//! combinations whose equivalence classes, after suppressing the records of classes smaller than
//! k or with fewer than l distinct values of a sensitive attribute, suppress no more than the
//! allowed share, the one with the least total height is taken (ties: fewer suppressed, then the
//! lower levels of the quasi-identifiers in the spec's order). Suppression is local and whole:
//! a suppressed response leaves every table of the extract.

use std::collections::{HashMap, HashSet};

use crate::marts::periods::{PeriodType, parse_month};

/// Equivalence classes: the generalised quasi-identifier values → the records holding them.
type Classes = HashMap<Vec<Option<String>>, Vec<usize>>;

/// One quasi-identifier: its name and the levels the spec allows, lowest first.
#[derive(Debug, Clone)]
pub struct Qi {
    pub name: String,
    pub levels: Vec<String>,
}

/// The value of a quasi-identifier of one record at a level (`None`: not known, a class of its
/// own at every level but the top).
pub fn generalise(qi: &str, level: &str, record: &Record) -> Option<String> {
    if level == "all" || level == "nation" {
        return Some(if level == "nation" { "FI" } else { "*" }.to_string());
    }
    match qi {
        "age_group" => {
            let v = record.get("age_group")?;
            Some(match level {
                "group" => v.to_string(),
                "wide" => widen(
                    v,
                    &[
                        ("7-12", "7-17"),
                        ("13-17", "7-17"),
                        ("18-29", "18-49"),
                        ("30-49", "18-49"),
                        ("50-64", "50-74"),
                        ("65-74", "50-74"),
                    ],
                ),
                "broad" => widen(
                    v,
                    &[
                        ("7-12", "7-17"),
                        ("13-17", "7-17"),
                        ("18-29", "18-64"),
                        ("30-49", "18-64"),
                        ("50-64", "18-64"),
                        ("65-74", "65+"),
                        ("75+", "65+"),
                    ],
                ),
                _ => return None,
            })
        }
        "area" => record.get(level).map(str::to_string),
        "time" => {
            let month = record.get("period")?;
            if level == "month" {
                return Some(month.to_string());
            }
            let (y, m) = parse_month(month)?;
            let t = PeriodType::parse(level)?;
            Some(t.label(y, m))
        }
        "service" => record.get("service").map(str::to_string),
        // a plain column: itself, or all
        other => record.get(other).map(str::to_string),
    }
}

fn widen(v: &str, map: &[(&str, &str)]) -> String {
    map.iter()
        .find(|(from, _)| *from == v)
        .map(|(_, to)| to.to_string())
        .unwrap_or_else(|| v.to_string())
}

/// A response as the search sees it: column → value (absent or `None`: not known).
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub values: HashMap<String, Option<String>>,
}

impl Record {
    pub fn get(&self, c: &str) -> Option<&str> {
        self.values.get(c).and_then(|v| v.as_deref())
    }
}

/// The outcome of the search.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// per quasi-identifier (in the spec's order), the level chosen
    pub levels: Vec<String>,
    /// per record, whether it is suppressed
    pub suppressed: Vec<bool>,
    pub n_suppressed: usize,
    /// the smallest class size among the records kept
    pub k_achieved: usize,
    /// per sensitive attribute, the fewest distinct values in a class
    pub l_achieved: Vec<(String, usize)>,
    pub classes: usize,
    /// records kept in classes of the smallest size, and in classes smaller than 2k
    pub in_smallest: usize,
    pub below_2k: usize,
    /// level combinations evaluated
    pub evaluated: usize,
}

/// Why no level combination satisfies the spec.
#[derive(Debug, Clone)]
pub struct Unsatisfiable {
    /// the fewest records a combination would suppress, and that combination
    pub best_suppressed: usize,
    pub best_levels: Vec<String>,
    pub allowed: usize,
}

/// The classes of `records` with every quasi-identifier at `levels`, and the records each has.
fn classes(records: &[Record], qis: &[Qi], levels: &[usize]) -> Classes {
    let mut m: Classes = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let key: Vec<Option<String>> = qis
            .iter()
            .zip(levels)
            .map(|(q, &l)| generalise(&q.name, &q.levels[l], r))
            .collect();
        m.entry(key).or_default().push(i);
    }
    m
}

/// Evaluate one level combination: which records are suppressed.
fn evaluate(
    records: &[Record],
    sensitive: &[(String, Vec<Option<String>>)],
    qis: &[Qi],
    levels: &[usize],
    k: usize,
    l: usize,
) -> (Vec<bool>, usize, Classes) {
    let cls = classes(records, qis, levels);
    let mut suppressed = vec![false; records.len()];
    let mut n = 0;
    for members in cls.values() {
        let diverse = sensitive.iter().all(|(_, values)| {
            members
                .iter()
                .filter_map(|&i| values[i].as_deref())
                .collect::<HashSet<_>>()
                .len()
                >= l
        });
        if members.len() < k || !diverse {
            for &i in members {
                suppressed[i] = true;
            }
            n += members.len();
        }
    }
    (suppressed, n, cls)
}

/// Search the lattice of level combinations for the least generalisation satisfying k and l with
/// at most `max_suppressed` records suppressed.
pub fn search(
    records: &[Record],
    qis: &[Qi],
    sensitive: &[(String, Vec<Option<String>>)],
    k: usize,
    l: usize,
    max_suppressed: usize,
) -> Result<Outcome, Unsatisfiable> {
    // every combination, lowest total height first
    let mut nodes: Vec<Vec<usize>> = vec![Vec::new()];
    for q in qis {
        nodes = nodes
            .into_iter()
            .flat_map(|n| {
                (0..q.levels.len()).map(move |l| {
                    let mut m = n.clone();
                    m.push(l);
                    m
                })
            })
            .collect();
    }
    nodes.sort_by_key(|n| (n.iter().sum::<usize>(), n.clone()));
    let mut best: Option<(usize, Vec<usize>)> = None;
    let mut chosen: Option<(Vec<usize>, Vec<bool>, usize, HashMap<_, _>)> = None;
    let mut evaluated = 0;
    for node in &nodes {
        let height: usize = node.iter().sum();
        if let Some((h, ..)) = chosen.as_ref().map(|(n, ..)| (n.iter().sum::<usize>(),))
            && height > h
        {
            break;
        }
        evaluated += 1;
        let (mask, n, cls) = evaluate(records, sensitive, qis, node, k, l);
        if best.as_ref().is_none_or(|(b, _)| n < *b) {
            best = Some((n, node.clone()));
        }
        if n <= max_suppressed && chosen.as_ref().is_none_or(|(_, _, m, _)| n < *m) {
            chosen = Some((node.clone(), mask, n, cls));
        }
    }
    let names = |node: &[usize]| -> Vec<String> {
        qis.iter()
            .zip(node)
            .map(|(q, &l)| q.levels[l].clone())
            .collect()
    };
    let Some((node, suppressed, n_suppressed, cls)) = chosen else {
        let (b, node) = best.unwrap_or((records.len(), vec![0; qis.len()]));
        return Err(Unsatisfiable {
            best_suppressed: b,
            best_levels: names(&node),
            allowed: max_suppressed,
        });
    };
    let kept: Vec<&Vec<usize>> = cls
        .values()
        .filter(|m| m.first().is_some_and(|&i| !suppressed[i]))
        .collect();
    let k_achieved = kept.iter().map(|m| m.len()).min().unwrap_or(0);
    let l_achieved = sensitive
        .iter()
        .map(|(name, values)| {
            let fewest = kept
                .iter()
                .map(|m| {
                    m.iter()
                        .filter_map(|&i| values[i].as_deref())
                        .collect::<HashSet<_>>()
                        .len()
                })
                .min()
                .unwrap_or(0);
            (name.clone(), fewest)
        })
        .collect();
    Ok(Outcome {
        levels: names(&node),
        n_suppressed,
        k_achieved,
        l_achieved,
        classes: kept.len(),
        in_smallest: kept
            .iter()
            .filter(|m| m.len() == k_achieved)
            .map(|m| m.len())
            .sum(),
        below_2k: kept
            .iter()
            .filter(|m| m.len() < 2 * k)
            .map(|m| m.len())
            .sum(),
        suppressed,
        evaluated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> Record {
        Record {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
        }
    }

    #[test]
    fn hierarchies_climb_as_documented() {
        let r = rec(&[
            ("age_group", "30-49"),
            ("municipality", "837"),
            ("county", "06"),
            ("cooperation_area", "YTA3"),
            ("period", "2024-04"),
            ("service", "TH-VOS"),
        ]);
        let g = |q: &str, l: &str| generalise(q, l, &r);
        assert_eq!(g("age_group", "wide").as_deref(), Some("18-49"));
        assert_eq!(g("age_group", "broad").as_deref(), Some("18-64"));
        assert_eq!(g("area", "county").as_deref(), Some("06"));
        assert_eq!(g("area", "nation").as_deref(), Some("FI"));
        assert_eq!(g("time", "bimonth").as_deref(), Some("2024-B2"));
        assert_eq!(g("time", "quarter").as_deref(), Some("2024-Q2"));
        assert_eq!(g("time", "year").as_deref(), Some("2024"));
        assert_eq!(g("service", "all").as_deref(), Some("*"));
    }

    #[test]
    fn the_least_generalisation_that_gives_k_is_chosen_then_outliers_suppressed() {
        // 6 in municipality 837 and 4 in 091, all in county 01: k = 5 needs the county level
        let mut records = Vec::new();
        for i in 0..10 {
            records.push(rec(&[
                ("municipality", if i < 6 { "837" } else { "091" }),
                ("county", "01"),
                ("period", "2024-01"),
            ]));
        }
        let qis = vec![
            Qi {
                name: "area".into(),
                levels: vec!["municipality".into(), "county".into()],
            },
            Qi {
                name: "time".into(),
                levels: vec!["month".into(), "year".into()],
            },
        ];
        let o = search(&records, &qis, &[], 5, 1, 0).unwrap();
        assert_eq!(o.levels, vec!["county", "month"]);
        assert_eq!((o.n_suppressed, o.k_achieved, o.classes), (0, 10, 1));
        // allowed to suppress 4, the municipality level is kept and 091 suppressed
        let o = search(&records, &qis, &[], 5, 1, 4).unwrap();
        assert_eq!(o.levels, vec!["municipality", "month"]);
        assert_eq!((o.n_suppressed, o.k_achieved), (4, 6));
        // l = 2 on a value every record shares cannot be met
        let same = vec![("nps".to_string(), vec![Some("9".to_string()); 10])];
        let e = search(&records, &qis, &same, 5, 2, 1).unwrap_err();
        assert_eq!(e.best_suppressed, 10);
    }
}
