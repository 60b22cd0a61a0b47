//! The `runs` ledger: one row per pipeline run, appended as the run's last commit.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};

use super::tables::{RUNS, table_def};
use super::writer::{WrittenFile, add_action, writer_properties};
use super::{Warehouse, WarehouseError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// committed new data
    Succeeded,
    /// nothing new: every object was unchanged, or every row was already loaded
    NoChange,
    /// the run failed and left the data tables as they were
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::NoChange => "no_change",
            RunStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> RunStatus {
        match s {
            "succeeded" => RunStatus::Succeeded,
            "no_change" => RunStatus::NoChange,
            _ => RunStatus::Failed,
        }
    }
}

/// A source object as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub name: String,
    pub fingerprint: String,
    /// `new`, `changed` or `unchanged`
    pub state: String,
    pub rows: u64,
    /// where a later object that begins with this one's bytes can resume (CSV objects read
    /// first in their run), with the hash of the pipeline file and program version it holds for
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
    /// the object was read from another object's resume point: that object's name and the
    /// data records not read again
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<(String, u64)>,
}

/// A resume point and the configuration it is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    #[serde(flatten)]
    pub point: crate::format::ResumePoint,
    pub config: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read: u64,
    pub loaded: u64,
    pub updated: u64,
    pub duplicate: u64,
    pub quarantined: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub seq: i64,
    pub pipeline: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status: RunStatus,
    pub message: Option<String>,
    pub counts: Counts,
    pub objects_read: u64,
    pub objects_skipped: u64,
    pub objects: Vec<ObjectRecord>,
    /// table → version that this run left committed
    pub table_versions: BTreeMap<String, u64>,
    pub palaute_version: String,
}

fn col_str(b: &RecordBatch, name: &str, i: usize) -> Option<String> {
    let c = b.column_by_name(name)?.as_string::<i32>();
    (!c.is_null(i)).then(|| c.value(i).to_string())
}

fn col_i64(b: &RecordBatch, name: &str, i: usize) -> i64 {
    b.column_by_name(name)
        .map(|c| c.as_primitive::<Int64Type>().value(i))
        .unwrap_or(0)
}

fn col_ts(b: &RecordBatch, name: &str, i: usize) -> DateTime<Utc> {
    b.column_by_name(name)
        .and_then(|c| {
            DateTime::from_timestamp_micros(c.as_primitive::<TimestampMicrosecondType>().value(i))
        })
        .unwrap_or_default()
}

/// A new run id: UTC time and 8 random hex digits (sorts by start time).
pub fn new_run_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", Utc::now().format("%Y%m%dT%H%M%SZ"), &u[..8])
}

/// Append the row of a warehouse operation (`aggregate`, `optimize`, `rollback`, `vacuum`: not a
/// pipeline run) naming the table versions it leaves committed; it is the operation's commit
/// point. Returns the row's seq.
pub async fn append_operation(
    w: &Warehouse,
    name: &str,
    run_id: &str,
    started_at: DateTime<Utc>,
    message: String,
    rows_loaded: u64,
    table_versions: BTreeMap<String, u64>,
) -> Result<i64, WarehouseError> {
    let seq = read_runs(w).await?.last().map(|r| r.seq + 1).unwrap_or(1);
    let rec = RunRecord {
        run_id: run_id.to_string(),
        seq,
        pipeline: name.to_string(),
        started_at,
        finished_at: Utc::now(),
        status: RunStatus::Succeeded,
        message: Some(message),
        counts: Counts {
            loaded: rows_loaded,
            ..Counts::default()
        },
        objects_read: 0,
        objects_skipped: 0,
        objects: Vec::new(),
        table_versions,
        palaute_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    append(w, &rec).await?;
    Ok(seq)
}

/// Every run in the ledger, in commit order.
pub async fn read_runs(w: &Warehouse) -> Result<Vec<RunRecord>, WarehouseError> {
    if !w.exists().await? {
        return Ok(Vec::new());
    }
    let t = w.table(RUNS, None).await?;
    let files = w.files(&t).await?;
    let batches = w.read_files(RUNS, &files, &[]).await?;
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let objects: Vec<ObjectRecord> =
                serde_json::from_str(&col_str(b, "objects", i).unwrap_or_default())
                    .map_err(|e| WarehouseError::Ledger(e.into()))?;
            let table_versions: BTreeMap<String, u64> =
                serde_json::from_str(&col_str(b, "table_versions", i).unwrap_or_default())
                    .map_err(|e| WarehouseError::Ledger(e.into()))?;
            out.push(RunRecord {
                run_id: col_str(b, "run_id", i).unwrap_or_default(),
                seq: col_i64(b, "seq", i),
                pipeline: col_str(b, "pipeline", i).unwrap_or_default(),
                started_at: col_ts(b, "started_at", i),
                finished_at: col_ts(b, "finished_at", i),
                status: RunStatus::parse(&col_str(b, "status", i).unwrap_or_default()),
                message: col_str(b, "message", i),
                counts: Counts {
                    read: col_i64(b, "rows_read", i) as u64,
                    loaded: col_i64(b, "rows_loaded", i) as u64,
                    updated: col_i64(b, "rows_updated", i) as u64,
                    duplicate: col_i64(b, "rows_duplicate", i) as u64,
                    quarantined: col_i64(b, "rows_quarantined", i) as u64,
                },
                objects_read: col_i64(b, "objects_read", i) as u64,
                objects_skipped: col_i64(b, "objects_skipped", i) as u64,
                objects,
                table_versions,
                palaute_version: col_str(b, "palaute_version", i).unwrap_or_default(),
            });
        }
    }
    out.sort_by_key(|r| r.seq);
    Ok(out)
}

/// The table versions the last run left committed (empty for a new warehouse: version 0).
pub async fn committed_versions(w: &Warehouse) -> Result<BTreeMap<String, u64>, WarehouseError> {
    Ok(read_runs(w)
        .await?
        .pop()
        .map(|r| r.table_versions)
        .unwrap_or_default())
}

/// Append a run's row to the ledger (the run's commit point).
pub async fn append(w: &Warehouse, r: &RunRecord) -> Result<u64, WarehouseError> {
    use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
    let def = table_def(RUNS);
    let ts = |t: DateTime<Utc>| {
        Arc::new(TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC"))
            as ArrayRef
    };
    let st = |s: &str| Arc::new(StringArray::from(vec![s])) as ArrayRef;
    let int = |v: i64| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
    let cols: Vec<ArrayRef> = vec![
        st(&r.run_id),
        int(r.seq),
        st(&r.pipeline),
        ts(r.started_at),
        ts(r.finished_at),
        st(r.status.as_str()),
        Arc::new(StringArray::from(vec![r.message.clone()])) as ArrayRef,
        int(r.counts.read as i64),
        int(r.counts.loaded as i64),
        int(r.counts.updated as i64),
        int(r.counts.duplicate as i64),
        int(r.counts.quarantined as i64),
        int(r.objects_read as i64),
        int(r.objects_skipped as i64),
        st(&serde_json::to_string(&r.objects).expect("serializable")),
        st(&serde_json::to_string(&r.table_versions).expect("serializable")),
        st(&r.palaute_version),
    ];
    let batch = RecordBatch::try_new(def.file_schema.clone(), cols)
        .map_err(|e| WarehouseError::Ledger(e.into()))?;
    let mut buf = Vec::new();
    {
        let mut wr =
            ArrowWriter::try_new(&mut buf, def.file_schema.clone(), Some(writer_properties()))
                .map_err(|e| WarehouseError::Ledger(e.into()))?;
        wr.write(&batch)
            .map_err(|e| WarehouseError::Ledger(e.into()))?;
        wr.close().map_err(|e| WarehouseError::Ledger(e.into()))?;
    }
    let rel = format!("part-{}-{:08}.snappy.parquet", r.run_id, r.seq);
    let size = buf.len() as i64;
    w.loc
        .store
        .put(&w.loc.child(&format!("{RUNS}/{rel}")), buf.into())
        .await
        .map_err(|e| WarehouseError::Write {
            path: format!("{RUNS}/{rel}"),
            source: e.into(),
        })?;
    let t = w.table(RUNS, None).await?;
    let add = add_action(&WrittenFile {
        rel_path: rel,
        local_path: Default::default(),
        partition_values: vec![],
        rows: 1,
        size,
    });
    w.commit(&t, RUNS, vec![add], &r.run_id).await
}
