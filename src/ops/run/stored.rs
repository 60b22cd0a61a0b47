//! What the warehouse holds for a run, at the committed versions: the keyed tables' files by
//! partition, the stored keys (loaded partition by partition as rows need them) and the rows
//! quarantined before.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use deltalake_core::DeltaTable;

use super::dedupe::SeenRow;
use super::{RunError, key_column, keyed_tables};
use crate::collections::{FastMap, FastSet};
use crate::config::Pipeline;
use crate::schema::Partition;
use crate::warehouse::tables::{QUARANTINE, parse_key};
use crate::warehouse::{TableFile, Warehouse, WarehouseError, files_by_partition};

pub(super) type FilesByPartition = BTreeMap<Partition, Vec<TableFile>>;

/// The tables a run reads and commits, their files, and the rows quarantined before.
#[derive(Default)]
pub(super) struct Stored {
    pub(super) tables: BTreeMap<&'static str, DeltaTable>,
    /// the keyed tables' files
    pub(super) files: BTreeMap<&'static str, FilesByPartition>,
    /// (key, row hash) of the pipeline's rows in quarantine
    pub(super) quarantined_before: FastSet<(u128, i64)>,
}

impl Stored {
    /// Read what the warehouse holds for `p`. A plan reads the committed versions; a run, after
    /// recovery, the latest (whose content is the committed one) so that its commits follow them.
    pub(super) async fn read(
        wh: &Warehouse,
        p: &Pipeline,
        committed: &BTreeMap<String, u64>,
        dry_run: bool,
    ) -> Result<Stored, RunError> {
        let mut stored = Stored::default();
        for name in keyed_tables(p.kind).iter().copied().chain([QUARANTINE]) {
            let v = dry_run.then(|| committed.get(name).copied().unwrap_or(0));
            let t = wh.table(name, v).await?;
            let files = wh.files(&t).await?;
            if name == QUARANTINE {
                stored.quarantined_before = quarantined(wh, p, &files).await?;
            } else {
                stored.files.insert(name, files_by_partition(files));
            }
            stored.tables.insert(name, t);
        }
        Ok(stored)
    }

    /// The stored keys of the table holding one row per key, none loaded yet.
    pub(super) fn existing(&self, p: &Pipeline) -> Existing {
        let table = keyed_tables(p.kind)[0];
        Existing {
            table,
            files: self.files.get(table).cloned().unwrap_or_default(),
            loaded: HashSet::new(),
            keys: FastMap::default(),
            parts: Vec::new(),
        }
    }
}

/// (key, row hash) of `p`'s quarantined rows in the quarantine's `files`.
async fn quarantined(
    wh: &Warehouse,
    p: &Pipeline,
    files: &[TableFile],
) -> Result<FastSet<(u128, i64)>, WarehouseError> {
    let mut out = FastSet::default();
    let batches = wh
        .read_files(QUARANTINE, files, &["pipeline", "response_key", "row_hash"])
        .await?;
    for b in batches {
        let pl = b.column(0).as_string::<i32>();
        let k = b.column(1).as_string::<i32>();
        let h = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if pl.value(i) == p.name
                && !k.is_null(i)
                && let Some(key) = parse_key(k.value(i))
            {
                out.insert((key, h.value(i)));
            }
        }
    }
    Ok(out)
}

/// Keys already in the warehouse, loaded partition by partition as rows need them.
pub(super) struct Existing {
    /// the table holding one row per key
    table: &'static str,
    files: FilesByPartition,
    pub(super) loaded: HashSet<Partition>,
    /// stored key → (row hash, index into `parts`)
    pub(super) keys: FastMap<u128, (i64, u32)>,
    /// the partitions whose keys are loaded, in load order
    pub(super) parts: Vec<Partition>,
}

impl Existing {
    /// Load the stored keys of the partitions `parts` (those not loaded yet).
    pub(super) async fn load(
        &mut self,
        wh: &Warehouse,
        parts: BTreeSet<Partition>,
    ) -> Result<(), WarehouseError> {
        let mut files = Vec::new();
        for p in &parts {
            if let Some(f) = self.files.get(p) {
                files.extend(f.iter().cloned().map(|f| (p.clone(), f)));
            }
            self.loaded.insert(p.clone());
        }
        if files.is_empty() {
            return Ok(());
        }
        let table = self.table;
        let (parts, files): (Vec<Partition>, Vec<TableFile>) = files.into_iter().unzip();
        // each file's keys are parsed on the task that decoded it; this one only inserts them
        let parsed = wh
            .read_each(
                table,
                &files,
                &[key_column(table), "row_hash"],
                &[],
                |batches: Vec<RecordBatch>| {
                    let mut out: Vec<(u128, i64)> =
                        Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
                    for b in &batches {
                        let keys = b.column(0).as_string::<i32>();
                        let hashes = b.column(1).as_primitive::<Int64Type>();
                        for i in 0..b.num_rows() {
                            if let Some(k) = parse_key(keys.value(i)) {
                                out.push((k, hashes.value(i)));
                            }
                        }
                    }
                    out
                },
            )
            .await?;
        self.keys
            .reserve(parsed.iter().map(|p| p.len()).sum::<usize>());
        for (p, parsed) in parts.into_iter().zip(parsed) {
            let id = match self.parts.iter().position(|x| *x == p) {
                Some(i) => i as u32,
                None => {
                    self.parts.push(p);
                    (self.parts.len() - 1) as u32
                }
            };
            for (k, h) in parsed {
                self.keys.insert(k, (h, id));
            }
        }
        Ok(())
    }
}
/// Keys of `p`'s stored responses in the periods `from`..=`to` that this run did not see.
pub(super) async fn stale_keys(
    wh: &Warehouse,
    p: &Pipeline,
    stored: &Stored,
    from: &str,
    to: &str,
    seen: &FastMap<u128, SeenRow>,
) -> Result<HashMap<Partition, HashSet<u128>>, WarehouseError> {
    let mut out: HashMap<Partition, HashSet<u128>> = HashMap::new();
    let table = keyed_tables(p.kind)[0];
    let Some(index) = stored.files.get(table) else {
        return Ok(out);
    };
    for (part, files) in index {
        if part.period.as_str() < from || part.period.as_str() > to {
            continue;
        }
        for b in wh
            .read_files(table, files, &[key_column(table), "pipeline"])
            .await?
        {
            let k = b.column(0).as_string::<i32>();
            let pl = b.column(1).as_string::<i32>();
            for i in 0..b.num_rows() {
                if pl.value(i) == p.name
                    && let Some(key) = parse_key(k.value(i))
                    && !seen.contains_key(&key)
                {
                    out.entry(part.clone()).or_default().insert(key);
                }
            }
        }
    }
    Ok(out)
}
