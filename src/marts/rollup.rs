//! `sql/rollup.sql` computed in one pass over the fine cube, with interned keys: each cube row
//! adds its measures to its period of every requested type, at every requested geography level,
//! for its service and for all services. The SQL file stays the definition (`aggregate
//! --sql-cubes` runs it) and a test checks that both give identical marts; this is what runs
//! by default, because DataFusion's hash aggregation of 50 text-keyed copies of every cube row
//! was the largest part of an aggregation.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};

use super::MartSpec;
use super::cells::MAX_KEYS;
use super::periods::{PeriodRow, PeriodType};

use crate::collections::{FastMap, Interner};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Cell {
    period: u32,
    level: u8,
    parent: u32,
    code: u32,
    service: u32,
    keys: [u32; MAX_KEYS],
}

/// A cube row's cell before the roll-up: month, county, cooperation area, municipality, local
/// area and service (interned), and the mart's own keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Fine {
    dims: [u32; 6],
    keys: [u32; MAX_KEYS],
}

/// Sums per cell, cells numbered in the order first seen. A sum is NULL until a non-NULL value
/// is added to it (bit `m` of the cell's `seen` word for measure `m`).
struct Acc<K> {
    index: FastMap<K, u32>,
    cells: Vec<K>,
    sums: Vec<i64>,
    seen: Vec<u64>,
    nm: usize,
}

impl<K: Copy + Eq + std::hash::Hash> Acc<K> {
    fn new(nm: usize) -> Self {
        assert!(nm <= 64, "at most 64 measures");
        Acc {
            index: FastMap::default(),
            cells: Vec::new(),
            sums: Vec::new(),
            seen: Vec::new(),
            nm,
        }
    }

    /// Add `values` to the sums of `key`; bit `m` of `present` tells whether `values[m]` is a
    /// value (a NULL is passed as 0 and adds nothing).
    fn add(&mut self, key: K, values: &[i64], present: u64) {
        let Acc {
            index,
            cells,
            sums,
            seen,
            nm,
        } = self;
        let nm = *nm;
        let at = *index.entry(key).or_insert_with(|| {
            cells.push(key);
            sums.resize(sums.len() + nm, 0);
            seen.push(0);
            (cells.len() - 1) as u32
        }) as usize;
        for (acc, v) in sums[at * nm..at * nm + nm].iter_mut().zip(values) {
            *acc += v;
        }
        seen[at] |= present;
    }

    /// The sum of measure `m` of cell `i` (NULL when no value was added).
    fn sum(&self, i: usize, m: usize) -> Option<i64> {
        (self.seen[i] >> m & 1 == 1).then(|| self.sums[i * self.nm + m])
    }
}

/// What a fine cell adds to: every period of its month, every wanted level, its service and all
/// services.
struct Expand<'a> {
    wanted: &'a [u8],
    fi: u32,
    null: u32,
    all: u32,
}

impl Expand<'_> {
    fn expand(
        &self,
        acc: &mut Acc<Cell>,
        periods: &[u32],
        d: [u32; 6],
        keys: [u32; MAX_KEYS],
        values: &[i64],
        present: u64,
    ) {
        let [_, county, coop, muni, local, service] = d;
        for &period in periods {
            for &level in self.wanted {
                let (parent, code) = match level {
                    0 => (county, muni),
                    1 => (coop, county),
                    2 => (self.fi, coop),
                    3 => (self.fi, local),
                    _ => (self.null, self.fi),
                };
                for service in [service, self.all] {
                    let cell = Cell {
                        period,
                        level,
                        parent,
                        code,
                        service,
                        keys,
                    };
                    acc.add(cell, values, present);
                }
            }
        }
    }
}

fn column(b: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef, String> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| format!("cube column {name} is missing"))?;
    arrow::compute::cast(c, to).map_err(|e| e.to_string())
}

/// Each row's interned id of a text column (plain, or a dictionary whose values are interned
/// once per batch).
fn ids(st: &mut Interner, a: &ArrayRef) -> Vec<u32> {
    if let Some(d) = a.as_dictionary_opt::<Int32Type>() {
        let values = d.values().as_string::<i32>();
        let map: Vec<u32> = (0..values.len())
            .map(|j| st.id((!values.is_null(j)).then(|| values.value(j))))
            .collect();
        return d
            .keys()
            .iter()
            .map(|k| k.map_or(0, |k| map[k as usize]))
            .collect();
    }
    let s = a.as_string::<i32>();
    (0..s.len())
        .map(|i| st.id((!s.is_null(i)).then(|| s.value(i))))
        .collect()
}

/// A text column as plain strings or as a dictionary of them.
fn text_column(b: &RecordBatch, name: &str) -> Result<ArrayRef, String> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| format!("cube column {name} is missing"))?;
    match c.data_type() {
        DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
            Ok(c.clone())
        }
        _ => arrow::compute::cast(c, &DataType::Utf8).map_err(|e| e.to_string()),
    }
}

/// The geography levels of a rolled-up cell, in the order their indexes name them.
const LEVELS: [&str; 5] = [
    "municipality",
    "county",
    "cooperation_area",
    "local_area",
    "nation",
];

/// The rollup of `cube` (the mart's fine cube) over `periods` (the requested period types of
/// the year) and `levels`; the same columns, types and rows as rollup.sql gives.
pub fn rollup(
    cube: &[RecordBatch],
    spec: &MartSpec,
    periods: &[PeriodRow],
    levels: &[&str],
) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let mut st = Interner::default();
    let fi = st.id(Some("FI"));
    let null = st.id(None);
    let all = st.id(Some("all"));
    // month → the periods that hold it, each period named by its first row (the rows are one
    // per month and period type)
    let mut first: FastMap<(PeriodType, &str), u32> = FastMap::default();
    let mut months: FastMap<String, Vec<u32>> = FastMap::default();
    for (i, p) in periods.iter().enumerate() {
        let id = *first
            .entry((p.period_type, p.period.as_str()))
            .or_insert(i as u32);
        months.entry(p.month.clone()).or_default().push(id);
    }
    // the requested levels, as indexes into LEVELS
    let wanted: Vec<u8> = (0..LEVELS.len() as u8)
        .filter(|&l| levels.contains(&LEVELS[l as usize]))
        .collect();
    let nm = spec.measures.len();
    let mut acc: Acc<Cell> = Acc::new(nm);
    // months by interned id
    let mut month_periods: FastMap<u32, &[u32]> = FastMap::default();
    for (m, ps) in &months {
        month_periods.insert(st.id(Some(m)), ps.as_slice());
    }
    // Without the municipality or local-area level, cube rows that differ only there are summed
    // first (each then costs one hash look-up instead of one per period, level and service);
    // the sums are the same, integer addition being exact.
    let premerge = !wanted.contains(&0) || !wanted.contains(&3);
    let mut fine: Acc<Fine> = Acc::new(nm);
    let ctx = Expand {
        wanted: &wanted,
        fi,
        null,
        all,
    };
    let every: u64 = if nm == 64 { u64::MAX } else { (1u64 << nm) - 1 };
    let mut values: Vec<i64> = vec![0; nm];
    for b in cube {
        // the cube's key columns up to the service (the instrument leads the mart's own keys),
        // then the mart's own keys, as interned ids
        let dims: Vec<Vec<u32>> = super::cube::GEO[..6]
            .iter()
            .map(|c| text_column(b, c).map(|a| ids(&mut st, &a)))
            .collect::<Result<_, _>>()?;
        let keys: Vec<Vec<u32>> = spec
            .keys
            .iter()
            .map(|c| text_column(b, c).map(|a| ids(&mut st, &a)))
            .collect::<Result<_, _>>()?;
        let measures: Vec<ArrayRef> = spec
            .measures
            .iter()
            .map(|c| column(b, c, &DataType::Int64))
            .collect::<Result<_, _>>()?;
        let measures: Vec<&Int64Array> = measures
            .iter()
            .map(|m| m.as_primitive::<Int64Type>())
            .collect();
        let raw: Vec<&[i64]> = measures.iter().map(|m| m.values().as_ref()).collect();
        // the measures that hold NULLs, checked row by row
        let nullable: Vec<(usize, &Int64Array)> = measures
            .iter()
            .enumerate()
            .filter(|(_, m)| m.null_count() > 0)
            .map(|(j, m)| (j, *m))
            .collect();
        // each interned id's periods (None: a month outside the requested range)
        let periods_of: Vec<Option<&[u32]>> = (0..st.len() as u32)
            .map(|id| month_periods.get(&id).copied())
            .collect();
        for i in 0..b.num_rows() {
            let Some(ps) = periods_of[dims[0][i] as usize] else {
                continue;
            };
            let mut d = [
                dims[0][i], dims[1][i], dims[2][i], dims[3][i], dims[4][i], dims[5][i],
            ];
            let mut k = [0u32; MAX_KEYS];
            for (slot, a) in k.iter_mut().zip(&keys) {
                *slot = a[i];
            }
            for (v, r) in values.iter_mut().zip(&raw) {
                *v = r[i];
            }
            let mut present = every;
            for (j, m) in &nullable {
                if m.is_null(i) {
                    values[*j] = 0;
                    present &= !(1u64 << j);
                }
            }
            if premerge {
                if !wanted.contains(&0) {
                    d[3] = null;
                }
                if !wanted.contains(&3) {
                    d[4] = null;
                }
                fine.add(Fine { dims: d, keys: k }, &values, present);
            } else {
                ctx.expand(&mut acc, ps, d, k, &values, present);
            }
        }
    }
    for (j, c) in fine.cells.iter().enumerate() {
        ctx.expand(
            &mut acc,
            month_periods[&c.dims[0]],
            c.dims,
            c.keys,
            &fine.sums[j * nm..j * nm + nm],
            fine.seen[j],
        );
    }
    cells_batch(&acc, &st, spec, periods)
}

/// The rolled-up cells as the columns rollup.sql gives: every string plain Utf8, every sum
/// Int64.
fn cells_batch(
    acc: &Acc<Cell>,
    st: &Interner,
    spec: &MartSpec,
    periods: &[PeriodRow],
) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let cells = &acc.cells;
    let nm = spec.measures.len();
    let mut fields: Vec<Field> = [
        "period_type",
        "period",
        "period_start",
        "period_end",
        "year",
        "geo_level",
        "geo_parent",
        "geo_code",
        "service",
    ]
    .iter()
    .chain(spec.keys)
    .map(|n| Field::new(*n, DataType::Utf8, true))
    .collect();
    fields.extend(
        spec.measures
            .iter()
            .map(|m| Field::new(*m, DataType::Int64, true)),
    );
    let schema = Arc::new(Schema::new(fields));
    let years: Vec<String> = periods.iter().map(|p| p.year.to_string()).collect();
    fn column_of<'s>(cells: &[Cell], f: impl Fn(&Cell) -> Option<&'s str>) -> ArrayRef {
        Arc::new(cells.iter().map(f).collect::<StringArray>())
    }
    let period = |c: &Cell| &periods[c.period as usize];
    let mut cols: Vec<ArrayRef> = vec![
        column_of(cells, |c| Some(period(c).period_type.as_str())),
        column_of(cells, |c| Some(period(c).period.as_str())),
        column_of(cells, |c| Some(period(c).period_start.as_str())),
        column_of(cells, |c| Some(period(c).period_end.as_str())),
        column_of(cells, |c| Some(years[c.period as usize].as_str())),
        column_of(cells, |c| Some(LEVELS[c.level as usize])),
        column_of(cells, |c| st.text(c.parent)),
        column_of(cells, |c| st.text(c.code)),
        column_of(cells, |c| st.text(c.service)),
    ];
    for k in 0..spec.keys.len() {
        cols.push(column_of(cells, |c| st.text(c.keys[k])));
    }
    for m in 0..nm {
        cols.push(Arc::new(
            (0..cells.len())
                .map(|i| acc.sum(i, m))
                .collect::<Int64Array>(),
        ));
    }
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())?;
    Ok((schema, vec![batch]))
}
