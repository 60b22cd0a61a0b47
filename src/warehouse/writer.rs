//! Writing one table's new Parquet files, partition by partition, with bounded memory.
//!
//! Rows arrive in any order (survey exports are not sorted by time), so a run touches many
//! partitions at once. Rows are built into Arrow batches per partition and kept in memory until the
//! run's buffered data passes a budget ([`SPILL_BUDGET`]); then the buffered rows are taken out
//! ([`TableWriter::take`]) and encoded into one new file per partition ([`Taken::encode`]) — by a
//! run on a background thread while it reads on, or spread over the cores — and the memory is
//! freed. A small load writes one file per partition; a load larger than the budget writes one file
//! per partition per spill (`optimize` compacts them). Memory stays flat as the input grows.
//! Files are written beside the table (local warehouse) or staged on local disk and uploaded
//! (object store); either way they are invisible until the run commits them to the Delta log.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;

use arrow::array::RecordBatch;
use deltalake_core::kernel::{Action, Add, Remove};
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::rows::Rows;
use super::tables::TableDef;
use super::{Cause, WarehouseError};
use crate::schema::Partition;
use crate::store::Location;

/// Approximate bytes of buffered rows (all tables of a run) that trigger a spill to files.
pub const SPILL_BUDGET: usize = 256 << 20;
const MAX_ROW_GROUP: usize = 1 << 20;

/// Snappy: the Delta ecosystem's default, readable everywhere, and cheap to set up per column
/// chunk (a run writes many small chunks: every partition × column; zstd's per-chunk contexts cost
/// a fifth of a load's time in measurements). Unique or free-text columns skip the dictionary.
pub fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP))
        .set_created_by(format!("palaute {}", env!("CARGO_PKG_VERSION")));
    for col in ["response_key", "text", "record", "message", "source_row"] {
        b = b.set_column_dictionary_enabled(col.into(), false);
    }
    b.build()
}

/// The largest dictionary page of `answers.response_key` (a file's distinct keys, 36 bytes each).
const KEY_DICTIONARY_LIMIT: usize = 64 << 20;

/// The columns of the warehouse tables that Snappy shrinks: free text, `item_code` and
/// `source_row`. Every other column is stored uncompressed: keys, hashes and timestamps are
/// random to Snappy and code columns are already dictionary ids in run lengths, so compressing
/// them would cost loads and aggregations CPU for no space (docs/performance.md).
const SNAPPY_COLUMNS: [&str; 5] = ["text", "record", "message", "item_code", "source_row"];

/// Columns whose min/max statistics prune nothing (random keys and hashes spread over every
/// file; free text), yet cost a comparison per value while a load encodes them.
const NO_STATISTICS: [&str; 6] = [
    "response_key",
    "row_hash",
    "text",
    "record",
    "message",
    "raw_value",
];

/// [`writer_properties`] for the files of table `def`: Snappy only where it pays
/// (`SNAPPY_COLUMNS`). In `answers` each response key repeats once per answer,
/// consecutively: there it is dictionary-encoded (each key stored once, the rows as run
/// lengths), which is what lets an aggregation read answers without decoding every row's key
/// (it maps dictionary entries, not rows, to responses).
pub fn table_writer_properties(def: &TableDef) -> WriterProperties {
    let mut b = writer_properties()
        .into_builder()
        .set_compression(Compression::UNCOMPRESSED);
    for col in SNAPPY_COLUMNS {
        b = b.set_column_compression(col.into(), Compression::SNAPPY);
    }
    for col in NO_STATISTICS {
        b = b.set_column_statistics_enabled(col.into(), EnabledStatistics::None);
    }
    if def.name == super::tables::ANSWERS {
        b = b
            .set_column_dictionary_enabled("response_key".into(), true)
            .set_column_dictionary_page_size_limit("response_key".into(), KEY_DICTIONARY_LIMIT);
    }
    b.build()
}

/// One file to encode: its relative path, local path, partition values and rows.
type SpillJob = (
    String,
    PathBuf,
    Vec<(String, String)>,
    Rows,
    Vec<RecordBatch>,
);

struct Part {
    rows: Rows,
    batches: Vec<RecordBatch>,
}

/// A file written by this run, not yet committed.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// path relative to the table root
    pub rel_path: String,
    pub local_path: PathBuf,
    pub partition_values: Vec<(String, String)>,
    pub rows: i64,
    pub size: i64,
}

pub struct TableWriter {
    pub def: &'static TableDef,
    table_dir: PathBuf,
    load_id: String,
    parts: crate::collections::FastMap<Partition, Part>,
    seq: usize,
    /// approximate bytes buffered since the last spill
    pub buffered: usize,
    /// item and option codes of compact rows
    symbols: Vec<String>,
    written: Vec<WrittenFile>,
    props: WriterProperties,
}

fn partition_values(def: &TableDef, p: &Partition) -> Vec<(String, String)> {
    match def.partition_by {
        [a, b] => vec![
            (a.to_string(), p.period.clone()),
            (b.to_string(), p.county.clone()),
        ],
        [a] => vec![(a.to_string(), p.period.clone())],
        _ => vec![],
    }
}

impl TableWriter {
    /// `table_dir` is the table's folder (local warehouse) or a staging folder.
    pub fn new(def: &'static TableDef, table_dir: PathBuf, load_id: &str) -> Self {
        TableWriter {
            def,
            table_dir,
            load_id: load_id.to_string(),
            parts: HashMap::default(),
            seq: 0,
            buffered: 0,
            symbols: Vec::new(),
            written: Vec::new(),
            props: table_writer_properties(def),
        }
    }

    /// Append rows of about `bytes` bytes to partition `p` with `f` (one look-up per call).
    pub fn append(&mut self, p: &Partition, bytes: usize, f: impl FnOnce(&mut Rows)) {
        self.buffered += bytes;
        let part = match self.parts.get_mut(p) {
            Some(part) => part,
            None => self.parts.entry(p.clone()).or_insert_with(|| Part {
                rows: Rows::new(self.def.name),
                batches: Vec::new(),
            }),
        };
        f(&mut part.rows);
    }

    /// The symbol table's index of `s` (item and option codes of compact rows).
    pub fn symbol(&mut self, s: &str) -> u16 {
        if let Some(i) = self.symbols.iter().position(|x| x == s) {
            return i as u16;
        }
        self.symbols.push(s.to_string());
        (self.symbols.len() - 1) as u16
    }

    /// Add a whole batch to partition `p` (used when rewriting files).
    pub fn push_batch(&mut self, p: &Partition, batch: RecordBatch) {
        self.buffered += batch.get_array_memory_size();
        let def = self.def;
        self.parts
            .entry(p.clone())
            .or_insert_with(|| Part {
                rows: Rows::new(def.name),
                batches: Vec::new(),
            })
            .batches
            .push(batch);
    }

    /// Encode everything buffered: one new file per partition, spread over the cores.
    pub fn spill(&mut self) -> Result<(), WarehouseError> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let files = self.take().encode(threads);
        self.adopt(files)
    }

    /// Take the buffered rows out, to be encoded (possibly on another thread) by
    /// [`Taken::encode`]; the writer starts buffering afresh.
    pub fn take(&mut self) -> Taken {
        let mut jobs: Vec<SpillJob> = Vec::new();
        let mut keys: Vec<Partition> = self.parts.keys().cloned().collect();
        keys.sort();
        for p in keys {
            let part = self.parts.get_mut(&p).expect("listed above");
            if part.rows.is_empty() && part.batches.is_empty() {
                continue;
            }
            self.seq += 1;
            let pv = partition_values(self.def, &p);
            let dir: String = pv.iter().map(|(k, v)| format!("{k}={v}/")).collect();
            let rel = format!("{dir}part-{}-{:05}.parquet", self.load_id, self.seq);
            let local = self.table_dir.join(&rel);
            let rows = std::mem::replace(&mut part.rows, Rows::new(self.def.name));
            jobs.push((rel, local, pv, rows, std::mem::take(&mut part.batches)));
        }
        self.buffered = 0;
        Taken {
            def: self.def,
            props: self.props.clone(),
            symbols: self.symbols.clone(),
            jobs,
        }
    }

    /// Record files encoded from [`TableWriter::take`]n rows; the first error is returned, the
    /// files written before it are kept for clean-up.
    pub fn adopt(
        &mut self,
        files: Vec<Result<WrittenFile, WarehouseError>>,
    ) -> Result<(), WarehouseError> {
        let mut first = None;
        for r in files {
            match r {
                Ok(f) => self.written.push(f),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Encode what is left and return every file this writer wrote.
    pub fn finish(mut self) -> Result<Vec<WrittenFile>, WarehouseError> {
        self.spill()?;
        self.written.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
        Ok(self.written)
    }

    /// Files written so far (for clean-up after a failure).
    pub fn written(&self) -> &[WrittenFile] {
        &self.written
    }
}

/// Buffered rows of one table, taken out of its writer to be encoded.
pub struct Taken {
    def: &'static TableDef,
    props: WriterProperties,
    symbols: Vec<String>,
    jobs: Vec<SpillJob>,
}

impl Taken {
    /// Encode one file per partition on up to `threads` threads.
    pub fn encode(self, threads: usize) -> Vec<Result<WrittenFile, WarehouseError>> {
        let t0 = std::time::Instant::now();
        let Taken {
            def,
            props,
            symbols,
            jobs,
        } = self;
        let threads = threads.clamp(1, jobs.len().max(1));
        let (props, symbols) = (&props, &symbols);
        let mut shares: Vec<Vec<SpillJob>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, j) in jobs.into_iter().enumerate() {
            shares[i % threads].push(j);
        }
        let one = move |(rel, local, pv, mut rows, mut batches): SpillJob| {
            if !rows.is_empty() {
                batches.push(rows.finish(&def.file_schema, symbols));
            }
            write_one(def, props, &rel, &local, &pv, &batches)
        };
        let mut results: Vec<Result<WrittenFile, WarehouseError>> = Vec::new();
        if threads == 1 {
            results.extend(shares.pop().into_iter().flatten().map(one));
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = shares
                    .into_iter()
                    .map(|mine| s.spawn(move || mine.into_iter().map(one).collect::<Vec<_>>()))
                    .collect();
                for h in handles {
                    results.extend(h.join().expect("an encoder thread panicked"));
                }
            });
        }
        tracing::debug!(
            table = def.name,
            threads,
            seconds = t0.elapsed().as_secs_f64(),
            "spilled"
        );
        results
    }
}

fn write_one(
    def: &TableDef,
    props: &WriterProperties,
    rel: &str,
    local: &PathBuf,
    pv: &[(String, String)],
    batches: &[RecordBatch],
) -> Result<WrittenFile, WarehouseError> {
    let err = |e: Cause| WarehouseError::Write {
        path: local.display().to_string(),
        source: e,
    };
    if let Some(d) = local.parent() {
        std::fs::create_dir_all(d).map_err(|e| err(e.into()))?;
    }
    let f = File::create(local).map_err(|e| err(e.into()))?;
    let mut w = ArrowWriter::try_new(f, def.file_schema.clone(), Some(props.clone()))
        .map_err(|e| err(e.into()))?;
    let mut rows = 0i64;
    for b in batches {
        rows += b.num_rows() as i64;
        w.write(b).map_err(|e| err(e.into()))?;
    }
    w.close().map_err(|e| err(e.into()))?;
    let size = std::fs::metadata(local).map_err(|e| err(e.into()))?.len() as i64;
    Ok(WrittenFile {
        rel_path: rel.to_string(),
        local_path: local.clone(),
        partition_values: pv.to_vec(),
        rows,
        size,
    })
}

/// The Delta `add` action of a written file.
pub fn add_action(f: &WrittenFile) -> Action {
    let now = chrono::Utc::now().timestamp_millis();
    Action::Add(Add {
        path: f.rel_path.clone(),
        size: f.size,
        partition_values: f
            .partition_values
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect(),
        modification_time: now,
        data_change: true,
        stats: Some(format!("{{\"numRecords\":{}}}", f.rows)),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    })
}

/// The Delta `remove` action of a file this run replaces.
pub fn remove_action(path: &str, size: i64, partition_values: &[(String, String)]) -> Action {
    Action::Remove(Remove {
        path: path.to_string(),
        data_change: true,
        deletion_timestamp: Some(chrono::Utc::now().timestamp_millis()),
        extended_file_metadata: Some(true),
        partition_values: Some(
            partition_values
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
        ),
        size: Some(size),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
    })
}

/// Move staged files to the table in the object store (a no-op for files already in place).
pub async fn upload(
    loc: &Location,
    table: &str,
    files: &[WrittenFile],
    in_place: bool,
) -> Result<(), WarehouseError> {
    if in_place {
        return Ok(());
    }
    for f in files {
        let dest = loc.child(&format!("{table}/{}", f.rel_path));
        let data = tokio::fs::read(&f.local_path)
            .await
            .map_err(|e| WarehouseError::Write {
                path: f.local_path.display().to_string(),
                source: e.into(),
            })?;
        loc.store
            .put(&dest, data.into())
            .await
            .map_err(|e| WarehouseError::Write {
                path: dest.to_string(),
                source: e.into(),
            })?;
        let _ = tokio::fs::remove_file(&f.local_path).await;
    }
    Ok(())
}

/// Remove files a failed run wrote (best effort; `vacuum` removes anything left over).
pub async fn discard(loc: &Location, table: &str, files: &[WrittenFile]) {
    for f in files {
        let _ = tokio::fs::remove_file(&f.local_path).await;
        if loc.local_dir.is_none() {
            let _ = loc
                .store
                .delete(&loc.child(&format!("{table}/{}", f.rel_path)))
                .await;
        }
    }
}

/// Remove files written straight to the store (marts, compacted files) that were not committed
/// (best effort; `vacuum` removes anything left over).
pub async fn delete_uploaded(loc: &Location, table: &str, files: &[WrittenFile]) {
    for f in files {
        let _ = loc
            .store
            .delete(&loc.child(&format!("{table}/{}", f.rel_path)))
            .await;
    }
}
