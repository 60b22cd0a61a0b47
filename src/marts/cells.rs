//! Cells of a mart and the hierarchies between them. A cell's key is its period (type and
//! label), its geography (level, parent, code), its service and the mart's own keys; from the
//! keys alone this module derives every "parent = sum of children" group:
//!
//! - geography: municipality → county → cooperation area → nation, county → nation, local
//!   area → nation (unknown values are cells of their own, so each level partitions the next);
//! - service: each service → all services;
//! - time: a period → every longer period type computed that contains it (see [`super::periods`]);
//! - breakdown (response_counts): each category of a breakdown → the cell's total.
//!
//! The same derivation serves disclosure control at aggregate time and the audit of what was
//! published, so both see the same hierarchies.

use std::collections::BTreeSet;

use crate::collections::{FastMap, FastSet};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;

use super::periods::{PeriodType, parse_month};
use super::{GEO_LEVELS, MartSpec};
use crate::marts::disclosure::Group;

const NATION: u8 = 4;
const COUNTY: u8 = 2;
const COOPERATION_AREA: u8 = 3;
const MUNICIPALITY: u8 = 0;

/// The most own key columns a mart has.
pub const MAX_KEYS: usize = 4;

/// A cell's key. Text is interned in [`Strings`], whose ids follow the texts' sort order, so that
/// keys order exactly as their texts would (ties in disclosure control are broken by this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub period_type: PeriodType,
    pub period: u32,
    pub geo_level: u8,
    pub geo_parent: u32,
    pub geo_code: u32,
    pub service: u32,
    /// the mart's own keys (the unused tail is 0)
    pub keys: [u32; MAX_KEYS],
    /// first month of the period (year, month); determined by the period
    pub start: (i32, u32),
}

/// The texts of a set of cells, each once, numbered in sort order.
#[derive(Debug, Default)]
pub struct Strings {
    sorted: Vec<String>,
    ids: FastMap<String, u32>,
}

impl Strings {
    fn new(mut all: Vec<String>) -> Strings {
        all.sort();
        all.dedup();
        let ids = all
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        Strings { sorted: all, ids }
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub fn text(&self, id: u32) -> &str {
        &self.sorted[id as usize]
    }

    fn id(&self, s: &str) -> u32 {
        self.ids[s]
    }
}

/// The keys of a mart's rows with their texts.
#[derive(Debug, Default)]
pub struct Cells {
    pub keys: Vec<Key>,
    pub strings: Strings,
}

/// Texts every hierarchy looks up, present whether or not the rows hold them.
const FIXED: [&str; 5] = ["", "FI", "all", "*", "total"];

fn utf8(b: &RecordBatch, col: &str) -> Result<ArrayRef, String> {
    let c = b
        .column_by_name(col)
        .ok_or_else(|| format!("column {col} is missing"))?;
    arrow::compute::cast(c, &DataType::Utf8).map_err(|e| e.to_string())
}

fn text_at(a: &ArrayRef, i: usize) -> &str {
    let s = a.as_string::<i32>();
    if s.is_null(i) { "" } else { s.value(i) }
}

/// The keys of every row of `batches` (rollup output or a published mart).
pub fn read_keys(batches: &[RecordBatch], spec: &MartSpec) -> Result<Cells, String> {
    assert!(spec.keys.len() <= MAX_KEYS, "{}: too many keys", spec.name);
    let text_cols: Vec<&str> = ["period", "geo_parent", "geo_code", "service"]
        .into_iter()
        .chain(spec.keys.iter().copied())
        .collect();
    // the texts, once each
    let mut columns: Vec<(Vec<ArrayRef>, ArrayRef, ArrayRef, ArrayRef)> = Vec::new();
    let mut distinct: FastSet<String> = FIXED.iter().map(|s| s.to_string()).collect();
    for b in batches {
        let cols: Vec<ArrayRef> = text_cols
            .iter()
            .map(|c| utf8(b, c))
            .collect::<Result<_, _>>()?;
        for c in &cols {
            for i in 0..b.num_rows() {
                let t = text_at(c, i);
                if !distinct.contains(t) {
                    distinct.insert(t.to_string());
                }
            }
        }
        columns.push((
            cols,
            utf8(b, "period_type")?,
            utf8(b, "geo_level")?,
            utf8(b, "period_start")?,
        ));
    }
    let strings = Strings::new(distinct.into_iter().collect());
    let mut out = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    let mut starts: FastMap<String, (i32, u32)> = FastMap::default();
    for (b, (cols, pt, level, start)) in batches.iter().zip(&columns) {
        for i in 0..b.num_rows() {
            let pt_s = text_at(pt, i);
            let level_s = text_at(level, i);
            let start_s = text_at(start, i);
            let st = match starts.get(start_s) {
                Some(v) => *v,
                None => {
                    let v = parse_month(start_s)
                        .ok_or_else(|| format!("bad period_start on row {i}"))?;
                    starts.insert(start_s.to_string(), v);
                    v
                }
            };
            let mut keys = [0u32; MAX_KEYS];
            for (k, c) in keys.iter_mut().zip(&cols[4..]) {
                *k = strings.id(text_at(c, i));
            }
            out.push(Key {
                period_type: PeriodType::parse(pt_s)
                    .ok_or_else(|| format!("unknown period_type '{pt_s}'"))?,
                period: strings.id(text_at(&cols[0], i)),
                geo_level: GEO_LEVELS
                    .iter()
                    .position(|l| *l == level_s)
                    .ok_or_else(|| format!("unknown geo_level '{level_s}'"))?
                    as u8,
                geo_parent: strings.id(text_at(&cols[1], i)),
                geo_code: strings.id(text_at(&cols[2], i)),
                service: strings.id(text_at(&cols[3], i)),
                keys,
                start: st,
            });
        }
    }
    Ok(Cells { keys: out, strings })
}

/// Which hierarchy a group belongs to (part of its identity: a nation cell is the parent of
/// its counties, of its cooperation areas and of its local areas, three groups), as (kind,
/// value): geography by the child's level, service, time by the child's period type,
/// breakdown by the child's category. Ordered as the kinds are listed.
type Tag = (u8, u32);
const TAG_GEO: u8 = 0;
const TAG_SERVICE: u8 = 1;
const TAG_TIME: u8 = 2;
const TAG_BREAKDOWN: u8 = 3;

/// Every group among `cells` (which should be in a fixed order: ties are broken by position).
/// Groups come ordered by (parent, hierarchy), children by position.
pub fn groups(cells: &Cells, spec: &MartSpec) -> Vec<Group> {
    let keys = &cells.keys;
    let st = &cells.strings;
    let (empty, fi, all) = (st.id(""), st.id("FI"), st.id("all"));
    let index: FastMap<Key, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let coop_of: FastMap<u32, u32> = keys
        .iter()
        .filter(|k| k.geo_level == COUNTY)
        .map(|k| (k.geo_code, k.geo_parent))
        .collect();
    let types: BTreeSet<PeriodType> = keys.iter().map(|k| k.period_type).collect();
    let breakdown = spec.breakdown.and_then(|(col, total)| {
        spec.keys
            .iter()
            .position(|k| *k == col)
            .map(|i| (i, st.get(total)))
    });
    let nkeys = spec.keys.len();
    // (period type, year, month) → the id of the period's label, if a cell has it
    let mut labels: FastMap<(PeriodType, i32, u32), Option<u32>> = FastMap::default();
    let nation = |k: &Key| Key {
        geo_level: NATION,
        geo_parent: empty,
        geo_code: fi,
        ..*k
    };
    let mut links: Vec<(usize, Tag, usize)> = Vec::with_capacity(keys.len() * 6);
    let mut parents: Vec<(Key, Tag)> = Vec::with_capacity(8);
    for (i, k) in keys.iter().enumerate() {
        parents.clear();
        let tag = (TAG_GEO, k.geo_level as u32);
        match k.geo_level {
            MUNICIPALITY => {
                if let Some(&coop) = coop_of.get(&k.geo_parent) {
                    parents.push((
                        Key {
                            geo_level: COUNTY,
                            geo_parent: coop,
                            geo_code: k.geo_parent,
                            ..*k
                        },
                        tag,
                    ));
                }
            }
            COUNTY => {
                parents.push((
                    Key {
                        geo_level: COOPERATION_AREA,
                        geo_parent: fi,
                        geo_code: k.geo_parent,
                        ..*k
                    },
                    tag,
                ));
                parents.push((nation(k), tag));
            }
            NATION => {}
            _ => parents.push((nation(k), tag)),
        }
        if k.service != all {
            parents.push((Key { service: all, ..*k }, (TAG_SERVICE, 0)));
        }
        for &t in &types {
            if t.contains(k.period_type) {
                let (y, m) = k.start;
                let label = *labels
                    .entry((t, y, m))
                    .or_insert_with(|| st.get(&t.label(y, m)));
                if let Some(period) = label {
                    let (a, _) = t.bounds(m);
                    parents.push((
                        Key {
                            period_type: t,
                            period,
                            start: (y, a),
                            ..*k
                        },
                        (TAG_TIME, k.period_type as u32),
                    ));
                }
            }
        }
        if let Some((bi, Some(total))) = breakdown
            && k.keys[bi] != total
        {
            let mut ks = k.keys;
            ks[bi] = total;
            if bi + 1 < nkeys {
                ks[bi + 1] = all;
            }
            parents.push((Key { keys: ks, ..*k }, (TAG_BREAKDOWN, k.keys[bi])));
        }
        for (pk, tag) in &parents {
            if let Some(&p) = index.get(pk) {
                links.push((p, *tag, i));
            }
        }
    }
    links.sort_unstable();
    let mut out: Vec<Group> = Vec::new();
    let mut last: Option<(usize, Tag)> = None;
    for (p, tag, c) in links {
        if last == Some((p, tag)) {
            out.last_mut().expect("a group").children.push(c);
        } else {
            out.push(Group {
                parent: p,
                children: vec![c],
            });
            last = Some((p, tag));
        }
    }
    out
}
