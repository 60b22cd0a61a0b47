//! Cells of a mart and the hierarchies between them. A cell's key is its period (type and
//! label), its geography (level, parent, code), its service and the mart's own keys; from the
//! keys alone this module derives every "parent = sum of children" group:
//!
//! - geography: municipality → county → cooperation area → nation, county → nation, local
//!   area → nation (unknown values are cells of their own, so each level partitions the next);
//! - service: each service → all services;
//! - time: a period → every longer period type computed that contains it (see [`periods`]);
//! - breakdown (response_counts): each category of a breakdown → the cell's total.
//!
//! The same derivation serves disclosure control at aggregate time and the audit of what was
//! published, so both see the same hierarchies.

use std::collections::{BTreeMap, BTreeSet, HashMap};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;

use super::periods::{PeriodType, parse_month};
use super::{GEO_LEVELS, MartSpec};
use crate::privacy::disclosure::Group;

const NATION: u8 = 4;
const COUNTY: u8 = 2;
const COOPERATION_AREA: u8 = 3;
const MUNICIPALITY: u8 = 0;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub period_type: PeriodType,
    pub period: String,
    pub geo_level: u8,
    pub geo_parent: String,
    pub geo_code: String,
    pub service: String,
    pub keys: Vec<String>,
    /// first month of the period (year, month); determined by the period
    pub start: (i32, u32),
}

fn strings(b: &RecordBatch, col: &str) -> Result<Vec<Option<String>>, String> {
    let c = b
        .column_by_name(col)
        .ok_or_else(|| format!("column {col} is missing"))?;
    let c = arrow::compute::cast(c, &DataType::Utf8).map_err(|e| e.to_string())?;
    let s = c.as_string::<i32>();
    Ok((0..s.len())
        .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
        .collect())
}

/// The keys of every row of `batches` (rollup output or a published mart).
pub fn read_keys(batches: &[RecordBatch], spec: &MartSpec) -> Result<Vec<Key>, String> {
    let mut out = Vec::new();
    for b in batches {
        let pt = strings(b, "period_type")?;
        let period = strings(b, "period")?;
        let start = strings(b, "period_start")?;
        let level = strings(b, "geo_level")?;
        let parent = strings(b, "geo_parent")?;
        let code = strings(b, "geo_code")?;
        let service = strings(b, "service")?;
        let keys: Vec<Vec<Option<String>>> = spec
            .keys
            .iter()
            .map(|k| strings(b, k))
            .collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            let pt_s = text(&pt[i]);
            let level_s = text(&level[i]);
            out.push(Key {
                period_type: PeriodType::parse(&pt_s)
                    .ok_or_else(|| format!("unknown period_type '{pt_s}'"))?,
                period: text(&period[i]),
                geo_level: GEO_LEVELS
                    .iter()
                    .position(|l| *l == level_s)
                    .ok_or_else(|| format!("unknown geo_level '{level_s}'"))?
                    as u8,
                geo_parent: text(&parent[i]),
                geo_code: text(&code[i]),
                service: text(&service[i]),
                keys: keys.iter().map(|k| text(&k[i])).collect(),
                start: parse_month(&text(&start[i]))
                    .ok_or_else(|| format!("bad period_start on row {i}"))?,
            });
        }
    }
    Ok(out)
}

/// Which hierarchy a group belongs to (part of its identity: a nation cell is the parent of
/// its counties, of its cooperation areas and of its local areas, three groups).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Tag {
    Geo(u8),
    Service,
    Time(PeriodType),
    Breakdown(String),
}

fn nation(k: &Key) -> Key {
    Key {
        geo_level: NATION,
        geo_parent: String::new(),
        geo_code: "FI".into(),
        ..k.clone()
    }
}

/// Every group among `cells` (which should be in a fixed order: ties are broken by position).
pub fn groups(cells: &[Key], spec: &MartSpec) -> Vec<Group> {
    let index: FastMap<&Key, usize> = cells.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let coop_of: FastMap<&str, &str> = cells
        .iter()
        .filter(|k| k.geo_level == COUNTY)
        .map(|k| (k.geo_code.as_str(), k.geo_parent.as_str()))
        .collect();
    let types: BTreeSet<PeriodType> = cells.iter().map(|k| k.period_type).collect();
    let breakdown = spec
        .breakdown
        .and_then(|(col, total)| spec.keys.iter().position(|k| *k == col).map(|i| (i, total)));
    let mut groups: BTreeMap<(usize, Tag), Vec<usize>> = BTreeMap::new();
    for (i, k) in cells.iter().enumerate() {
        let mut parents: Vec<(Key, Tag)> = Vec::new();
        let tag = Tag::Geo(k.geo_level);
        match k.geo_level {
            MUNICIPALITY => {
                if let Some(coop) = coop_of.get(k.geo_parent.as_str()) {
                    parents.push((
                        Key {
                            geo_level: COUNTY,
                            geo_parent: coop.to_string(),
                            geo_code: k.geo_parent.clone(),
                            ..k.clone()
                        },
                        tag,
                    ));
                }
            }
            COUNTY => {
                parents.push((
                    Key {
                        geo_level: COOPERATION_AREA,
                        geo_parent: "FI".into(),
                        geo_code: k.geo_parent.clone(),
                        ..k.clone()
                    },
                    tag.clone(),
                ));
                parents.push((nation(k), tag));
            }
            NATION => {}
            _ => parents.push((nation(k), tag)),
        }
        if k.service != "all" {
            parents.push((
                Key {
                    service: "all".into(),
                    ..k.clone()
                },
                Tag::Service,
            ));
        }
        for &t in &types {
            if t.contains(k.period_type) {
                let (y, m) = k.start;
                let (a, _) = t.bounds(m);
                parents.push((
                    Key {
                        period_type: t,
                        period: t.label(y, m),
                        start: (y, a),
                        ..k.clone()
                    },
                    Tag::Time(k.period_type),
                ));
            }
        }
        if let Some((bi, total)) = breakdown
            && k.keys[bi] != total
        {
            let mut keys = k.keys.clone();
            keys[bi] = total.to_string();
            if let Some(c) = keys.get_mut(bi + 1) {
                *c = "all".into();
            }
            parents.push((
                Key { keys, ..k.clone() },
                Tag::Breakdown(k.keys[bi].clone()),
            ));
        }
        for (pk, tag) in parents {
            if let Some(&p) = index.get(&pk) {
                groups.entry((p, tag)).or_default().push(i);
            }
        }
    }
    groups
        .into_iter()
        .map(|((parent, _), children)| Group { parent, children })
        .collect()
}
