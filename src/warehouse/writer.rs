//! Writing one table's new Parquet files, partition by partition, with bounded memory.
//!
//! Rows arrive in any order (survey exports are not sorted by time), so every partition a run
//! touches has an open file. Memory stays flat as the input grows: each partition's pending rows
//! are encoded once they reach a batch, all pending rows are encoded when their total passes a
//! limit, and open row groups are closed when their encoded size passes a budget.
//! Files are written beside the table (local warehouse) or staged on local disk and uploaded
//! (object store); either way they are invisible until the run commits them to the Delta log.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;

use deltalake_core::kernel::{Action, Add, Remove};
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::WarehouseError;
use super::tables::{Rows, TableDef};
use crate::normalize::Partition;
use crate::store::Location;

const BATCH_ROWS: usize = 8192;
const PENDING_LIMIT: usize = 200_000;
const IN_PROGRESS_BUDGET: usize = 192 << 20;
const MAX_ROW_GROUP: usize = 131_072;

pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("3 is a valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP))
        .set_created_by(format!("palaute {}", env!("CARGO_PKG_VERSION")))
        .build()
}

struct Part {
    rows: Rows,
    writer: Option<ArrowWriter<File>>,
    rel_path: String,
    local_path: PathBuf,
    count: i64,
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
    parts: HashMap<Partition, Part>,
    seq: usize,
    pending: usize,
    flushes: usize,
    written: Vec<WrittenFile>,
    props: WriterProperties,
}

impl TableWriter {
    /// `table_dir` is the table's folder (local warehouse) or a staging folder.
    pub fn new(def: &'static TableDef, table_dir: PathBuf, load_id: &str) -> Self {
        TableWriter {
            def,
            table_dir,
            load_id: load_id.to_string(),
            parts: HashMap::new(),
            seq: 0,
            pending: 0,
            flushes: 0,
            written: Vec::new(),
            props: writer_properties(),
        }
    }

    fn partition_values(&self, p: &Partition) -> Vec<(String, String)> {
        match self.def.partition_by {
            [a, b] => vec![
                (a.to_string(), p.period.clone()),
                (b.to_string(), p.county.clone()),
            ],
            [a] => vec![(a.to_string(), p.period.clone())],
            _ => vec![],
        }
    }

    /// The builders of partition `p`; call [`TableWriter::pushed`] after adding one row.
    pub fn rows(&mut self, p: &Partition) -> &mut Rows {
        if !self.parts.contains_key(p) {
            self.seq += 1;
            let dir: String = self
                .partition_values(p)
                .iter()
                .map(|(k, v)| format!("{k}={v}/"))
                .collect();
            let rel_path = format!("{dir}part-{}-{:05}.zstd.parquet", self.load_id, self.seq);
            let local_path = self.table_dir.join(&rel_path);
            self.parts.insert(
                p.clone(),
                Part {
                    rows: Rows::new(self.def.name),
                    writer: None,
                    rel_path,
                    local_path,
                    count: 0,
                },
            );
        }
        &mut self.parts.get_mut(p).expect("inserted above").rows
    }

    pub fn pushed(&mut self, p: &Partition) -> Result<(), WarehouseError> {
        self.pending += 1;
        let part = self.parts.get_mut(p).expect("rows() was called first");
        part.count += 1;
        if part.rows.len() >= BATCH_ROWS {
            self.pending -= part.rows.len();
            encode(self.def, &self.props, part)?;
        }
        if self.pending >= PENDING_LIMIT {
            self.encode_all()?;
        }
        Ok(())
    }

    fn encode_all(&mut self) -> Result<(), WarehouseError> {
        for part in self.parts.values_mut() {
            if !part.rows.is_empty() {
                encode(self.def, &self.props, part)?;
            }
        }
        self.pending = 0;
        self.flushes += 1;
        let in_progress: usize = self
            .parts
            .values()
            .filter_map(|p| p.writer.as_ref().map(|w| w.in_progress_size()))
            .sum();
        if in_progress > IN_PROGRESS_BUDGET {
            for part in self.parts.values_mut() {
                if let Some(w) = part.writer.as_mut() {
                    w.flush().map_err(|e| WarehouseError::Write {
                        path: part.local_path.display().to_string(),
                        message: e.to_string(),
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Close every file; returns what was written.
    pub fn finish(mut self) -> Result<Vec<WrittenFile>, WarehouseError> {
        self.encode_all()?;
        let mut parts: Vec<(Partition, Part)> = self.parts.drain().collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        for (p, part) in parts {
            let Some(w) = part.writer else { continue };
            let err = |e: String| WarehouseError::Write {
                path: part.local_path.display().to_string(),
                message: e,
            };
            w.close().map_err(|e| err(e.to_string()))?;
            let size = std::fs::metadata(&part.local_path)
                .map_err(|e| err(e.to_string()))?
                .len() as i64;
            let pv = self.partition_values(&p);
            self.written.push(WrittenFile {
                rel_path: part.rel_path,
                local_path: part.local_path,
                partition_values: pv,
                rows: part.count,
                size,
            });
        }
        Ok(self.written)
    }

    /// Write a whole batch as one file of partition `p` (used when rewriting files).
    pub fn write_file(
        &mut self,
        p: &Partition,
        batch: &arrow::array::RecordBatch,
    ) -> Result<(), WarehouseError> {
        self.rows(p);
        let part = self.parts.get_mut(p).expect("created above");
        open_writer(self.def, &self.props, part)?;
        let w = part.writer.as_mut().expect("opened above");
        w.write(batch).map_err(|e| WarehouseError::Write {
            path: part.local_path.display().to_string(),
            message: e.to_string(),
        })?;
        part.count += batch.num_rows() as i64;
        Ok(())
    }
}

fn open_writer(
    def: &TableDef,
    props: &WriterProperties,
    part: &mut Part,
) -> Result<(), WarehouseError> {
    if part.writer.is_some() {
        return Ok(());
    }
    let err = |e: String| WarehouseError::Write {
        path: part.local_path.display().to_string(),
        message: e,
    };
    if let Some(d) = part.local_path.parent() {
        std::fs::create_dir_all(d).map_err(|e| err(e.to_string()))?;
    }
    let f = File::create(&part.local_path).map_err(|e| err(e.to_string()))?;
    part.writer = Some(
        ArrowWriter::try_new(f, def.file_schema.clone(), Some(props.clone()))
            .map_err(|e| err(e.to_string()))?,
    );
    Ok(())
}

fn encode(def: &TableDef, props: &WriterProperties, part: &mut Part) -> Result<(), WarehouseError> {
    open_writer(def, props, part)?;
    let batch = part.rows.finish(&def.file_schema);
    part.writer
        .as_mut()
        .expect("opened above")
        .write(&batch)
        .map_err(|e| WarehouseError::Write {
            path: part.local_path.display().to_string(),
            message: e.to_string(),
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
                message: e.to_string(),
            })?;
        loc.store
            .put(&dest, data.into())
            .await
            .map_err(|e| WarehouseError::Write {
                path: dest.to_string(),
                message: e.to_string(),
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
