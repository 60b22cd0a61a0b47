//! The fine cubes at month grain, computed partition by partition. A warehouse partition
//! (`period`, `county`) holds a response's row in `responses` and its answers in `answers`, so
//! the join of the two never crosses partitions: each partition is read on its own (bounded
//! memory), joined on the response key, and summed to cells that no other partition
//! shares. The result is exactly what `sql/cube_recommendation.sql`, `sql/cube_response_counts.sql`
//! (over `sql/cube_responses.sql`), `sql/cube_items.sql` and `sql/cube_selections.sql` define
//! (a test compares them on the same warehouse); this path exists because a hash join over
//! every answer's 32-character key, the SQL definitions' plan, costs an aggregation most of its
//! time and memory.

use std::collections::{BTreeMap, HashMap};

use crate::collections::{FastMap, FastSet};
use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use futures::StreamExt;

use super::cube_cache::{self, Cached};
use super::{ITEM_SCORES, RECOMMENDATION, RESPONSE_COUNTS, SELECTIONS, spec};
use crate::warehouse::tables::{ANSWERS, RESPONSES};
use crate::warehouse::{TableFile, Warehouse, WarehouseError};

/// The fine cubes, with the columns of their SQL definitions (`sql/cube_*.sql`).
pub struct Cubes {
    pub recommendation: (SchemaRef, Vec<RecordBatch>),
    pub counts: (SchemaRef, Vec<RecordBatch>),
    pub items: (SchemaRef, Vec<RecordBatch>),
    pub selections: (SchemaRef, Vec<RecordBatch>),
    /// the case-mix models' pool ([`super::casemix`]): per month, county, instrument,
    /// outcome and combination of adjuster levels
    pub casemix: (SchemaRef, Vec<RecordBatch>),
}

impl Cubes {
    /// The fine cube mart `mart` is rolled up from.
    pub fn of_mart(&self, mart: &str) -> Vec<RecordBatch> {
        match mart {
            ITEM_SCORES => self.items.1.clone(),
            RECOMMENDATION => self.recommendation.1.clone(),
            RESPONSE_COUNTS => self.counts.1.clone(),
            SELECTIONS => self.selections.1.clone(),
            _ => panic!("{mart} is not a mart"),
        }
    }
}

struct PartCubes {
    recommendation: RecordBatch,
    counts: RecordBatch,
    items: RecordBatch,
    selections: RecordBatch,
    casemix: RecordBatch,
}

struct Schemas {
    recommendation: SchemaRef,
    counts: SchemaRef,
    items: SchemaRef,
    selections: SchemaRef,
    casemix: SchemaRef,
}

/// response_counts' breakdowns, in the order of [`PROFILE`] after the total.
const BREAKDOWNS: [&str; 6] = [
    "total",
    "channel",
    "respondent_role",
    "age_group",
    "gender",
    "language",
];

/// The cubes' geography and service key columns, in key order (then the instrument).
pub(crate) const GEO: [&str; 7] = [
    "month",
    "county",
    "cooperation_area",
    "municipality",
    "local_area",
    "service",
    "instrument",
];
const PROFILE: [&str; 5] = [
    "channel",
    "respondent_role",
    "age_group",
    "gender",
    "language",
];

/// A cube's schema: its key columns are dictionaries (Int32 keys over the partition's names).
fn schema(strings: &[&str], ints: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        strings
            .iter()
            .map(|s| {
                Field::new(
                    *s,
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                    false,
                )
            })
            .chain(ints.iter().map(|s| Field::new(*s, DataType::Int64, false)))
            .chain(std::iter::once(Field::new(
                cube_cache::FINGERPRINT,
                DataType::Int64,
                false,
            )))
            .collect::<Vec<_>>(),
    ))
}

/// Rows of one cube as columns: key columns as ids into the partition's names.
/// A partition's counts of one closed item in one cell: the answers that count (answered, can't
/// say, not applicable), each of those, how many gave each value 1–5, and the values' sum and
/// sum of squares (of every value, as the item cube's SQL definition sums them).
#[derive(Debug, Clone, Copy, Default)]
struct ItemMeasures {
    counted: i64,
    answered: i64,
    cant_say: i64,
    not_applicable: i64,
    /// answers of value 1, 2, 3, 4 and 5
    values: [i64; 5],
    sum: i64,
    sum_sq: i64,
}

impl ItemMeasures {
    /// One answer of status class `class` (0 answered, 1 can't say, 2 not applicable, 3 other)
    /// and its value, if any.
    fn add(&mut self, class: u8, value: Option<i64>) {
        self.counted += (class <= 2) as i64;
        self.answered += (class == 0) as i64;
        self.cant_say += (class == 1) as i64;
        self.not_applicable += (class == 2) as i64;
        if let Some(v) = value {
            if (1..=5).contains(&v) {
                self.values[v as usize - 1] += 1;
            }
            self.sum += v;
            self.sum_sq += v * v;
        }
    }

    /// The item cube's measure columns, with the answers agreeing (values from `top`).
    fn row(&self, top: i64) -> [i64; 12] {
        let agree: i64 = (1..=5)
            .filter(|v| *v >= top)
            .map(|v| self.values[v as usize - 1])
            .sum();
        let [v1, v2, v3, v4, v5] = self.values;
        [
            self.counted,
            self.answered,
            self.cant_say,
            self.not_applicable,
            v1,
            v2,
            v3,
            v4,
            v5,
            agree,
            self.sum,
            self.sum_sq,
        ]
    }
}

/// A partition's 0–10 answers in one cell: how many, promoters (9–10), passives (7–8),
/// detractors (0–6), and the values' sum and sum of squares.
#[derive(Debug, Clone, Copy, Default)]
struct RecommendMeasures {
    n: i64,
    promoters: i64,
    passives: i64,
    detractors: i64,
    sum: i64,
    sum_sq: i64,
}

impl RecommendMeasures {
    fn add(&mut self, v: i64) {
        self.n += 1;
        self.promoters += (v >= 9) as i64;
        self.passives += (7..=8).contains(&v) as i64;
        self.detractors += (v <= 6) as i64;
        self.sum += v;
        self.sum_sq += v * v;
    }

    /// The recommendation cube's measure columns.
    fn row(&self) -> [i64; 6] {
        [
            self.n,
            self.promoters,
            self.passives,
            self.detractors,
            self.sum,
            self.sum_sq,
        ]
    }
}

struct Out {
    strings: Vec<Vec<i32>>,
    ints: Vec<Vec<i64>>,
}

impl Out {
    fn new(ns: usize, ni: usize) -> Out {
        Out {
            strings: vec![Vec::new(); ns],
            ints: vec![Vec::new(); ni],
        }
    }
    fn push(&mut self, s: &[u32], i: &[i64]) {
        for (c, v) in self.strings.iter_mut().zip(s) {
            c.push(*v as i32);
        }
        for (c, v) in self.ints.iter_mut().zip(i) {
            c.push(*v);
        }
    }
    /// The rows as a batch of `schema`, with `names` as the dictionary of every key column and
    /// the partition's fingerprint `fp` on every row.
    fn batch(self, schema: &SchemaRef, names: &ArrayRef, fp: i64) -> RecordBatch {
        let rows = self.ints.first().map_or(0, Vec::len);
        let mut cols: Vec<ArrayRef> = Vec::new();
        for c in self.strings {
            let keys = arrow::array::Int32Array::from(c);
            cols.push(Arc::new(
                arrow::array::DictionaryArray::<Int32Type>::try_new(keys, names.clone())
                    .expect("ids index the names"),
            ));
        }
        for c in self.ints {
            cols.push(Arc::new(Int64Array::from(c)));
        }
        cols.push(Arc::new(Int64Array::from(vec![fp; rows])));
        RecordBatch::try_new(schema.clone(), cols).expect("columns match the cube schema")
    }
}

fn utf8(b: &RecordBatch, col: &str) -> ArrayRef {
    match b.column_by_name(col) {
        Some(c) => arrow::compute::cast(c, &DataType::Utf8).expect("strings cast to Utf8"),
        None => Arc::new(StringArray::new_null(b.num_rows())),
    }
}

fn int64(b: &RecordBatch, col: &str) -> ArrayRef {
    match b.column_by_name(col) {
        Some(c) => arrow::compute::cast(c, &DataType::Int64).expect("integers cast to Int64"),
        None => Arc::new(Int64Array::new_null(b.num_rows())),
    }
}

/// A column as read (a dictionary-encoded code column stays encoded); NULLs when absent.
fn column(b: &RecordBatch, col: &str) -> ArrayRef {
    match b.column_by_name(col) {
        Some(c) => c.clone(),
        None => Arc::new(StringArray::new_null(b.num_rows())),
    }
}

/// Code texts numbered in the order first seen, across batches.
#[derive(Default)]
struct Codes<'a> {
    ids: FastMap<&'a str, u32>,
    names: Vec<&'a str>,
}

impl<'a> Codes<'a> {
    fn id(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        self.names.push(s);
        self.ids.insert(s, (self.names.len() - 1) as u32);
        (self.names.len() - 1) as u32
    }

    /// Each row's code id (None for NULL): a dictionary's values are numbered once, and its
    /// rows looked up as they are read (no vector of ids per batch).
    fn ids(&mut self, col: &'a ArrayRef) -> Ids<'a> {
        if let Some(d) = col.as_dictionary_opt::<Int32Type>() {
            let values = d.values().as_string::<i32>();
            let map: Vec<u32> = (0..values.len())
                .map(|j| {
                    self.id(if values.is_null(j) {
                        ""
                    } else {
                        values.value(j)
                    })
                })
                .collect();
            return Ids::Dict {
                keys: d.keys().values(),
                nulls: d.keys().nulls(),
                map,
            };
        }
        let s = col.as_string::<i32>();
        Ids::Plain(
            (0..s.len())
                .map(|i| text(s, i).map(|v| self.id(v)))
                .collect(),
        )
    }
}

/// A column's code ids, row by row (see [`Codes::ids`]).
enum Ids<'a> {
    Dict {
        keys: &'a [i32],
        nulls: Option<&'a arrow::buffer::NullBuffer>,
        map: Vec<u32>,
    },
    Plain(Vec<Option<u32>>),
}

impl Ids<'_> {
    #[inline]
    fn get(&self, i: usize) -> Option<u32> {
        match self {
            Ids::Dict { keys, nulls, map } => {
                if nulls.is_some_and(|n| n.is_null(i)) {
                    None
                } else {
                    Some(map[keys[i] as usize])
                }
            }
            Ids::Plain(v) => v[i],
        }
    }
}

/// Answer keys matched to responses. `answers` stores a partition's answers in the order of its
/// responses, so most keys are the next response's: that is tried first (and a few after it, for
/// responses without answers); a map of every key is built only when the order is broken.
struct KeyJoin<'a> {
    keyed: &'a [(&'a str, usize)],
    next: usize,
    map: Option<FastMap<&'a str, usize>>,
}

impl<'a> KeyJoin<'a> {
    fn new(keyed: &'a [(&'a str, usize)]) -> Self {
        KeyJoin {
            keyed,
            next: 0,
            map: None,
        }
    }

    /// The geo cell of the response with key `k`.
    fn cell(&mut self, k: &str) -> Option<usize> {
        let end = (self.next + 4).min(self.keyed.len());
        for j in self.next..end {
            if self.keyed[j].0 == k {
                self.next = j + 1;
                return Some(self.keyed[j].1);
            }
        }
        let keyed = self.keyed;
        let map = self.map.get_or_insert_with(|| {
            keyed
                .iter()
                .enumerate()
                .map(|(j, (k, _))| (*k, j))
                .collect()
        });
        let j = *map.get(k)?;
        self.next = j + 1;
        Some(self.keyed[j].1)
    }
}

/// Answer keys and the geo cell of each one's response (None: no such response).
type KeyCells<'a> = Vec<(&'a str, Option<usize>)>;

/// The key list of the batch last matched, and the address of its dictionary's values (the
/// batches of a file share one dictionary, matched once).
type LastKeys<'a> = (usize, KeyCells<'a>);

/// Each answer row's response as an index into `last`'s list of (key, geo cell of its
/// response): a dictionary-encoded key column (how `answers` stores it) is matched once per
/// dictionary entry and once per dictionary, a plain one once per run of equal keys (a
/// response's answers are stored together).
fn response_keys<'a>(
    col: &'a ArrayRef,
    join: &mut KeyJoin,
    last: &mut LastKeys<'a>,
) -> Vec<Option<u32>> {
    if let Some(d) = col.as_dictionary_opt::<Int32Type>() {
        let values = d.values().as_string::<i32>();
        let at = values.values().as_ptr() as usize;
        if !(last.0 == at && last.1.len() == values.len()) {
            last.0 = at;
            last.1 = (0..values.len())
                .map(|j| {
                    let k = text(values, j).unwrap_or("");
                    (k, join.cell(k))
                })
                .collect();
        }
        return d.keys().iter().map(|k| k.map(|k| k as u32)).collect();
    }
    let s = col.as_string::<i32>();
    let keys = &mut last.1;
    last.0 = 0;
    keys.clear();
    (0..s.len())
        .map(|i| {
            let k = text(s, i)?;
            if keys.last().is_none_or(|(l, _)| *l != k) {
                keys.push((k, join.cell(k)));
            }
            Some((keys.len() - 1) as u32)
        })
        .collect()
}

fn text(s: &StringArray, i: usize) -> Option<&str> {
    (!s.is_null(i)).then(|| s.value(i))
}

/// One partition's cubes (the hot loop works on borrowed strings and small integer ids). One
/// function on purpose: the responses' and answers' passes share the numbered cells and the
/// per-row lookups, which splitting would turn into hashing again.
#[allow(clippy::too_many_arguments)]
fn partition_cubes(
    period: &str,
    county: &str,
    fp: i64,
    responses: &[RecordBatch],
    answers: &[RecordBatch],
    top_low: &HashMap<(String, String), i64>,
    schemas: &Schemas,
    need: Needs,
) -> PartCubes {
    const GEO_COLS: [&str; 5] = [
        "cooperation_area",
        "municipality",
        "local_area",
        "service",
        "instrument",
    ];
    let rcols: Vec<(ArrayRef, Vec<ArrayRef>, Vec<ArrayRef>, ArrayRef)> = responses
        .iter()
        .map(|b| {
            (
                utf8(b, "response_key"),
                GEO_COLS.iter().map(|c| column(b, c)).collect(),
                PROFILE.iter().map(|c| column(b, c)).collect(),
                int64(b, "nps"),
            )
        })
        .collect();
    // responses: key → geo cell; counts per (geo cell, profile). Geography and profile codes are
    // read dictionary-encoded and numbered per batch, so a row hashes integers.
    let mut codes = Codes::default();
    let unknown = codes.id("unknown");
    let mut geo_ids: FastMap<[u32; 5], usize> = FastMap::default();
    let mut geos: Vec<[u32; 5]> = Vec::new();
    // every response's key and geo cell, in the order stored
    let mut keyed: Vec<(&str, usize)> = Vec::new();
    // each keyed response's geo cell and case-mix profile (instrument and adjuster levels)
    let mut rinfo: Vec<(usize, u32)> = Vec::new();
    let mut prof_ids: FastMap<[u32; 5], u32> = FastMap::default();
    let mut profs: Vec<[u32; 5]> = Vec::new();
    // the recommendation item per profile: answered, promoters − detractors, promoters +
    // detractors, Σ value, Σ value²
    let mut crec: Vec<[i64; 5]> = Vec::new();
    // recommendation per geo cell; response counts per (geo cell, breakdown, category)
    let mut rec: Vec<RecommendMeasures> = Vec::new();
    let mut counts: FastMap<(usize, u8, u32), i64> = FastMap::default();
    for (key, geo, prof, nps) in &rcols {
        let nps = nps.as_primitive::<Int64Type>();
        let key = key.as_string::<i32>();
        let geo: Vec<Ids> = geo.iter().map(|a| codes.ids(a)).collect();
        let prof: Vec<Ids> = if need.counts || need.casemix {
            prof.iter().map(|a| codes.ids(a)).collect()
        } else {
            Vec::new()
        };
        for i in 0..key.len() {
            let g: [u32; 5] = std::array::from_fn(|c| geo[c].get(i).unwrap_or(unknown));
            let gid = *geo_ids.entry(g).or_insert_with(|| {
                geos.push(g);
                geos.len() - 1
            });
            // the response's case-mix profile: its instrument and the adjusters' levels
            // (channel, respondent role, age group, language: PROFILE without gender)
            let pid = if need.casemix {
                let p: [u32; 5] = [
                    g[4],
                    prof[0].get(i).unwrap_or(unknown),
                    prof[1].get(i).unwrap_or(unknown),
                    prof[2].get(i).unwrap_or(unknown),
                    prof[4].get(i).unwrap_or(unknown),
                ];
                *prof_ids.entry(p).or_insert_with(|| {
                    profs.push(p);
                    crec.push([0; 5]);
                    (profs.len() - 1) as u32
                })
            } else {
                0
            };
            if let Some(k) = text(key, i) {
                keyed.push((k, rinfo.len()));
                rinfo.push((gid, pid));
            }
            if need.counts {
                *counts.entry((gid, 0, u32::MAX)).or_default() += 1;
                for (c, col) in prof.iter().enumerate() {
                    let v = col.get(i).unwrap_or(unknown);
                    *counts.entry((gid, c as u8 + 1, v)).or_default() += 1;
                }
            }
            if rec.len() <= gid {
                rec.resize(gid + 1, RecommendMeasures::default());
            }
            if !nps.is_null(i) {
                let v = nps.value(i);
                rec[gid].add(v);
                if need.casemix {
                    let c = &mut crec[pid as usize];
                    let score = (v >= 9) as i64 - (v <= 6) as i64;
                    c[0] += 1;
                    c[1] += score;
                    c[2] += score * score;
                    c[3] += v;
                    c[4] += v * v;
                }
            }
        }
    }
    let mut join = KeyJoin::new(&keyed);
    // answers: closed items and multi-select options. Item, option and status codes are read
    // dictionary-encoded and numbered once per batch, so the loop below hashes integers only.
    let acols: Vec<[ArrayRef; 5]> = answers
        .iter()
        .map(|b| {
            [
                column(b, "response_key"),
                column(b, "item_code"),
                column(b, "option_code"),
                int64(b, "value"),
                column(b, "status"),
            ]
        })
        .collect();
    let mut items = Codes::default();
    let mut options = Codes::default();
    let mut statuses = Codes::default();
    // item cells: [geo cell][item id], a dense table (few items, every cell looked up per row)
    let mut ic: Vec<Vec<Option<ItemMeasures>>> = Vec::new();
    // case-mix item cells: [profile][item] → answered, can't say, the values 1–5
    let mut cic: Vec<Vec<Option<[i64; 7]>>> = Vec::new();
    let mut sc: FastMap<(usize, u32, u32), i64> = FastMap::default();
    let mut chose: FastSet<(&str, u32)> = FastSet::default();
    let mut respondents: FastMap<(usize, u32), i64> = FastMap::default();
    let mut last: LastKeys = (0, Vec::new());
    for [key, item, option, value, status] in &acols {
        let value = value.as_primitive::<Int64Type>();
        let row_key = response_keys(key, &mut join, &mut last);
        let keys = &last.1;
        let item = items.ids(item);
        let option = options.ids(option);
        let status = statuses.ids(status);
        let empty = items.id("");
        let missing = statuses.id("missing");
        // status classes by id: answered, can't say, not applicable, other; and the numbers of
        // numeric items (sliders, counts), which are no agreement and in no cube
        let class: Vec<u8> = statuses
            .names
            .iter()
            .map(|s| match *s {
                "answered" => 0,
                "cant_say" => 1,
                "not_applicable" => 2,
                "measured" => 4,
                _ => 3,
            })
            .collect();
        for (i, j) in row_key.iter().enumerate() {
            let Some((k, Some(r))) = j.map(|j| keys[j as usize]) else {
                continue;
            };
            let (gid, pid) = rinfo[r];
            let item = item.get(i).unwrap_or(empty);
            let class = class[status.get(i).unwrap_or(missing) as usize];
            if class == 4 {
                continue;
            }
            match option.get(i) {
                Some(opt) => {
                    if need.selections && class == 0 {
                        *sc.entry((gid, item, opt)).or_default() += 1;
                        if chose.insert((k, item)) {
                            *respondents.entry((gid, item)).or_default() += 1;
                        }
                    }
                }
                None => {
                    if need.casemix && class <= 1 {
                        if cic.len() <= pid as usize {
                            cic.resize_with(pid as usize + 1, Vec::new);
                        }
                        let row = &mut cic[pid as usize];
                        if row.len() <= item as usize {
                            row.resize(item as usize + 1, None);
                        }
                        let m = row[item as usize].get_or_insert([0; 7]);
                        m[0] += (class == 0) as i64;
                        m[1] += (class == 1) as i64;
                        if class == 0 && !value.is_null(i) {
                            let v = value.value(i);
                            if (1..=5).contains(&v) {
                                m[1 + v as usize] += 1;
                            }
                        }
                    }
                    if !need.core {
                        continue;
                    }
                    if ic.len() <= gid {
                        ic.resize_with(gid + 1, Vec::new);
                    }
                    let row = &mut ic[gid];
                    if row.len() <= item as usize {
                        row.resize(item as usize + 1, None);
                    }
                    let m = row[item as usize].get_or_insert_with(ItemMeasures::default);
                    m.add(class, (!value.is_null(i)).then(|| value.value(i)));
                }
            }
        }
    }
    // the output's texts as one numbering (`codes`), so that its columns are dictionaries over
    // one list of names
    let item_id: Vec<u32> = items.names.iter().map(|n| codes.id(n)).collect();
    let option_id: Vec<u32> = options.names.iter().map(|n| codes.id(n)).collect();
    let breakdown_id: Vec<u32> = BREAKDOWNS.iter().map(|n| codes.id(n)).collect();
    let (period_id, county_id) = (codes.id(period), codes.id(county));
    let (all_id, star_id) = (codes.id("all"), codes.id("*"));
    // the agreeing values of each (instrument, item): from `top_low`, once per pair
    let mut tops: FastMap<(u32, u32), i64> = FastMap::default();
    for g in &geos {
        for (item, name) in items.names.iter().enumerate() {
            tops.entry((g[4], item as u32)).or_insert_with(|| {
                top_low
                    .get(&(codes.names[g[4] as usize].to_string(), name.to_string()))
                    .copied()
                    .unwrap_or(4)
            });
        }
    }
    let (items_mart, rec_mart) = (codes.id(ITEM_SCORES), codes.id(RECOMMENDATION));
    let (nps_score, rec_value) = (
        codes.id(super::casemix::NPS_SCORE),
        codes.id(super::casemix::RECOMMEND_VALUE),
    );
    let names: ArrayRef = Arc::new(StringArray::from(codes.names.clone()));
    let geo_of = |gid: usize| {
        let g = geos[gid];
        [period_id, county_id, g[0], g[1], g[2], g[3], g[4]]
    };
    let mut ro = Out::new(7, 6);
    for (gid, m) in rec.iter().enumerate() {
        if m.n > 0 {
            ro.push(&geo_of(gid), &m.row());
        }
    }
    let mut co = Out::new(9, 1);
    for ((gid, b, cat), n) in &counts {
        let mut s: Vec<u32> = geo_of(*gid).to_vec();
        s.push(breakdown_id[*b as usize]);
        s.push(if *cat == u32::MAX { all_id } else { *cat });
        co.push(&s, &[*n]);
    }
    let mut io = Out::new(8, 12);
    let cells = ic.iter().enumerate().flat_map(|(gid, row)| {
        row.iter()
            .enumerate()
            .filter_map(move |(item, m)| m.as_ref().map(|m| ((gid, item as u32), m)))
    });
    for ((gid, item), m) in cells {
        let g = geo_of(gid);
        let top = tops[&(g[6], item)];
        let mut s: Vec<u32> = g.to_vec();
        s.push(item_id[item as usize]);
        io.push(&s, &m.row(top));
    }
    let mut so = Out::new(9, 1);
    for ((gid, item, opt), n) in &sc {
        let mut s: Vec<u32> = geo_of(*gid).to_vec();
        s.push(item_id[*item as usize]);
        s.push(option_id[*opt as usize]);
        so.push(&s, &[*n]);
    }
    for ((gid, item), n) in &respondents {
        let mut s: Vec<u32> = geo_of(*gid).to_vec();
        s.push(item_id[*item as usize]);
        s.push(star_id);
        so.push(&s, &[*n]);
    }
    let mut cmo = Out::new(9, 4);
    for (pid, row) in cic.iter().enumerate() {
        let p = profs[pid];
        for (item, m) in row.iter().enumerate() {
            let Some(m) = m else { continue };
            let top = tops[&(p[0], item as u32)];
            let agree: i64 = (1..=5)
                .filter(|v| *v >= top)
                .map(|v| m[1 + v as usize])
                .sum();
            let s = [
                period_id,
                county_id,
                p[0],
                items_mart,
                item_id[item],
                p[1],
                p[2],
                p[3],
                p[4],
            ];
            cmo.push(&s, &[m[0], m[1], agree, agree]);
        }
    }
    for (pid, c) in crec.iter().enumerate() {
        if c[0] == 0 {
            continue;
        }
        let p = profs[pid];
        for (outcome, sum, sumsq) in [(nps_score, c[1], c[2]), (rec_value, c[3], c[4])] {
            let s = [
                period_id, county_id, p[0], rec_mart, outcome, p[1], p[2], p[3], p[4],
            ];
            cmo.push(&s, &[c[0], 0, sum, sumsq]);
        }
    }
    PartCubes {
        casemix: cmo.batch(&schemas.casemix, &names, fp),
        recommendation: ro.batch(&schemas.recommendation, &names, fp),
        counts: co.batch(&schemas.counts, &names, fp),
        items: io.batch(&schemas.items, &names, fp),
        selections: so.batch(&schemas.selections, &names, fp),
    }
}

/// Files by (period, county) partition, as the cubes key them.
pub(crate) fn by_period_county(
    files: Vec<TableFile>,
) -> BTreeMap<(String, String), Vec<TableFile>> {
    crate::warehouse::files_by_partition(files)
        .into_iter()
        .map(|(p, f)| ((p.period, p.county), f))
        .collect()
}

/// Which of the optional cubes to build (recommendation and item cubes always are).
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// the recommendation and item cubes (false: only the cubes asked for below, as for the
    /// case-mix pool of an earlier year)
    pub core: bool,
    pub counts: bool,
    pub selections: bool,
    pub casemix: bool,
}

/// The cubes, and how many partitions were computed and how many taken from the cube cache.
pub struct Built {
    pub cubes: Cubes,
    pub computed: usize,
    pub reused: usize,
    /// the cube cache's files being written (on tasks of their own, so that the marts and the
    /// next year's cubes need not wait): the caller awaits them before it ends
    pub cache_writes: Vec<tokio::task::JoinHandle<Result<(), WarehouseError>>>,
}

fn schemas() -> Schemas {
    let with = |extra: &[&'static str]| GEO.iter().chain(extra.iter()).copied().collect::<Vec<_>>();
    Schemas {
        recommendation: schema(&GEO, spec(RECOMMENDATION).measures),
        counts: schema(
            &with(&["breakdown", "category"]),
            spec(RESPONSE_COUNTS).measures,
        ),
        items: schema(&with(&["item_code"]), spec(ITEM_SCORES).measures),
        selections: schema(
            &with(&["item_code", "option_code"]),
            spec(SELECTIONS).measures,
        ),
        casemix: schema(&super::casemix::CUBE_KEYS, &super::casemix::CUBE_MEASURES),
    }
}

fn kinds(need: Needs) -> Vec<Kind> {
    let core: &[Kind] = if need.core {
        &[Kind::Recommendation, Kind::Items]
    } else {
        &[]
    };
    core.iter()
        .copied()
        .chain(need.counts.then_some(Kind::Counts))
        .chain(need.selections.then_some(Kind::Selections))
        .chain(need.casemix.then_some(Kind::Casemix))
        .collect()
}

/// A year's cube cache files being read (and decoded), each kind on a task of its own; started
/// ahead so that a year's cached cubes are ready when its turn comes.
pub struct Prefetch {
    year: String,
    kinds: Vec<Kind>,
    read: futures::future::BoxFuture<'static, Vec<Option<Cached>>>,
}

/// Start reading `year`'s cube cache files for the cubes `need` asks for.
pub fn prefetch(wh: &Warehouse, year: &str, need: Needs) -> Prefetch {
    use futures::FutureExt;
    let schemas = schemas();
    let kinds = kinds(need);
    let handles: Vec<_> = kinds
        .iter()
        .map(|k| {
            let (wh, kind, schema, y) = (
                wh.clone(),
                k.name(),
                k.schema(&schemas).clone(),
                year.to_string(),
            );
            tokio::spawn(async move { cube_cache::read(&wh, kind, &y, &schema).await })
        })
        .collect();
    Prefetch {
        year: year.to_string(),
        kinds,
        // a read that failed is a file not there: its partitions are computed
        read: futures::future::join_all(handles)
            .map(|r| r.into_iter().map(|r| r.unwrap_or(None)).collect())
            .boxed(),
    }
}

/// A partition to compute: (period, county), its responses' files and its answers' files.
type Part = ((String, String), Vec<TableFile>, Vec<TableFile>);

/// The cubes of `parts` (each with its fingerprint), four partitions at a time: each reads its
/// two tables' files at once and computes on a blocking thread.
async fn compute(
    wh: &Warehouse,
    parts: Vec<(Part, i64)>,
    top_low: &Arc<HashMap<(String, String), i64>>,
    schemas: &Arc<Schemas>,
    need: Needs,
) -> Result<Vec<PartCubes>, WarehouseError> {
    // the profile columns only for response_counts (a column not read reads as unknown)
    let mut rcols = vec![
        "response_key",
        "cooperation_area",
        "municipality",
        "local_area",
        "service",
        "instrument",
        "nps",
    ];
    if need.counts || need.casemix {
        rcols.extend(PROFILE);
    }
    let rcols = Arc::new(rcols);
    let acols = [
        "response_key",
        "item_code",
        "option_code",
        "value",
        "status",
    ];
    let jobs = parts.into_iter().map(|(((period, county), rf, af), fp)| {
        let schemas = schemas.clone();
        let top_low = top_low.clone();
        let rcols = rcols.clone();
        async move {
            let t = std::time::Instant::now();
            // both tables' files at once (each file is decoded on a task of its own)
            let ((r, t_r), (a, t_a)) = futures::join!(
                async {
                    let r = wh
                        .read_files_with(RESPONSES, &rf, &rcols[..], &rcols[1..rcols.len()])
                        .await;
                    (r, t.elapsed().as_secs_f64())
                },
                async {
                    let a = wh
                        .read_files_with(
                            ANSWERS,
                            &af,
                            &acols,
                            &["response_key", "item_code", "option_code", "status"],
                        )
                        .await;
                    (a, t.elapsed().as_secs_f64())
                }
            );
            let (r, a) = (r?, a?);
            let out = tokio::task::spawn_blocking(move || {
                let t = std::time::Instant::now();
                let out = partition_cubes(&period, &county, fp, &r, &a, &top_low, &schemas, need);
                (out, t.elapsed().as_secs_f64())
            })
            .await
            .map_err(|e| WarehouseError::Read {
                path: "answers".into(),
                source: e.into(),
            })?;
            Ok::<_, WarehouseError>((out, [t_r, t_a]))
        }
    });
    let mut stream = futures::stream::iter(jobs).buffer_unordered(4);
    let mut parts = Vec::new();
    // seconds spent reading responses, reading answers and computing, summed over partitions
    let mut spent = [0.0; 3];
    while let Some(res) = stream.next().await {
        let ((out, compute), [r, a]) = res?;
        spent[0] += r;
        spent[1] += a;
        spent[2] += compute;
        parts.push(out);
    }
    tracing::debug!(
        read_responses_s = spent[0],
        read_answers_s = spent[1],
        compute_s = spent[2],
        "cube phases (summed over partitions)"
    );
    Ok(parts)
}

/// The cubes of the months `from`..=`to` (YYYY-MM) of the committed tables. For a whole year,
/// partitions unchanged since an earlier aggregation are taken from the cube cache
/// ([`cube_cache`]) unless `fresh`, and the cache is brought up to date.
#[allow(clippy::too_many_arguments)]
pub async fn build(
    wh: &Warehouse,
    responses: &deltalake_core::DeltaTable,
    answers: &deltalake_core::DeltaTable,
    from: &str,
    to: &str,
    top_low: HashMap<(String, String), i64>,
    need: Needs,
    fresh: bool,
    prefetched: Option<Prefetch>,
) -> Result<Built, WarehouseError> {
    let schemas = Arc::new(schemas());
    let top_low = Arc::new(top_low);
    let clock = std::time::Instant::now();
    let rfiles = by_period_county(wh.files(responses).await?);
    let mut afiles = by_period_county(wh.files(answers).await?);
    let parts: Vec<Part> = rfiles
        .into_iter()
        .filter(|((p, _), _)| p.as_str() >= from && p.as_str() <= to)
        .map(|(k, r)| {
            let a = afiles.remove(&k).unwrap_or_default();
            (k, r, a)
        })
        .collect();
    // the cache holds whole years
    let year = (from.len() == 7
        && to.len() == 7
        && from[..4] == to[..4]
        && from.ends_with("-01")
        && to.ends_with("-12"))
    .then(|| from[..4].to_string());
    let kinds = kinds(need);
    let fps: Vec<i64> = parts
        .iter()
        .map(|((p, c), rf, af)| cube_cache::fingerprint(p, c, rf, af))
        .collect();
    let cached: Vec<Option<Cached>> = match (&year, fresh, prefetched) {
        (Some(y), false, Some(p)) if p.year == *y && p.kinds == kinds => p.read.await,
        (Some(y), false, _) => prefetch(wh, y, need).read.await,
        _ => kinds.iter().map(|_| None).collect(),
    };
    tracing::debug!(
        seconds = clock.elapsed().as_secs_f64(),
        "cube files listed and cache read"
    );
    let reuse: HashSet<i64> = fps
        .iter()
        .copied()
        .filter(|fp| {
            cached
                .iter()
                .all(|c| c.as_ref().is_some_and(|c| c.partitions.contains(fp)))
        })
        .collect();
    let reused = reuse.len();
    let parts: Vec<(Part, i64)> = parts
        .into_iter()
        .zip(fps.iter().copied())
        .filter(|(_, fp)| !reuse.contains(fp))
        .collect();
    let computed = parts.len();
    let parts = compute(wh, parts, &top_low, &schemas, need).await?;
    // each kind: the cached rows of the partitions reused, then the rows computed
    let mut out: HashMap<Kind, Vec<RecordBatch>> = HashMap::new();
    let mut cache_writes = Vec::new();
    for (k, c) in kinds.iter().zip(&cached) {
        let mut batches = match c {
            Some(c) => cube_cache::rows_of(c, &reuse).map_err(|e| WarehouseError::Read {
                path: format!("_cubes/{}", k.name()),
                source: e,
            })?,
            None => Vec::new(),
        };
        batches.extend(parts.iter().map(|p| k.of(p).clone()));
        if let Some(y) = &year {
            let same = c
                .as_ref()
                .is_some_and(|c| computed == 0 && c.partitions.len() == fps.len());
            if !same {
                let (wh, kind, y) = (wh.clone(), k.name(), y.clone());
                let (schema, batches, fps) =
                    (k.schema(&schemas).clone(), batches.clone(), fps.clone());
                cache_writes.push(tokio::spawn(async move {
                    cube_cache::write(&wh, kind, &y, &schema, &batches, &fps).await
                }));
            }
        }
        out.insert(*k, batches);
    }
    let mut take = |k: Kind| {
        (
            k.schema(&schemas).clone(),
            out.remove(&k).unwrap_or_default(),
        )
    };
    Ok(Built {
        cubes: Cubes {
            recommendation: take(Kind::Recommendation),
            counts: take(Kind::Counts),
            items: take(Kind::Items),
            selections: take(Kind::Selections),
            casemix: take(Kind::Casemix),
        },
        computed,
        reused,
        cache_writes,
    })
}

/// The cubes, as the cache names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Recommendation,
    Counts,
    Items,
    Selections,
    Casemix,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Recommendation => "recommendation",
            Kind::Counts => "response_counts",
            Kind::Items => "items",
            Kind::Selections => "selections",
            Kind::Casemix => "casemix",
        }
    }
    fn schema(self, s: &Schemas) -> &SchemaRef {
        match self {
            Kind::Recommendation => &s.recommendation,
            Kind::Counts => &s.counts,
            Kind::Items => &s.items,
            Kind::Selections => &s.selections,
            Kind::Casemix => &s.casemix,
        }
    }
    fn of(self, p: &PartCubes) -> &RecordBatch {
        match self {
            Kind::Recommendation => &p.recommendation,
            Kind::Counts => &p.counts,
            Kind::Items => &p.items,
            Kind::Selections => &p.selections,
            Kind::Casemix => &p.casemix,
        }
    }
}
