//! `palaute optimize`: compact each partition of the data tables into one Parquet file.
//!
//! A large load writes one file per partition per spill, and every run adds files; readers then
//! open many small files (an aggregation, and a cumulative export's key lookup, pay per file).
//! Optimize rewrites every partition that has more than one file as a single file with the same
//! rows, commits each table (adds and removes in one commit) and appends a ledger row (pipeline
//! `optimize`) naming the new versions, like a run: readers see the old layout or the new one,
//! never a mix, and a failure restores the tables it committed. The removed files stay for time
//! travel until `vacuum`.
//!
//! The same rewrite, of every partition and with the key columns mapped through the warehouse's
//! key secret, is `palaute rekey`: the migration of a warehouse made before keys were keyed.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use deltalake_core::kernel::Action;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use arrow::datatypes::DataType;

use crate::Cause;
use crate::privacy::keys::KeySecret;
use crate::warehouse::tables::{DATA_TABLES, hex32, parse_key, table_def};
use crate::warehouse::writer::{WrittenFile, add_action, remove_action, table_writer_properties};
use crate::warehouse::{TableFile, Warehouse, WarehouseError};
use crate::warehouse::{keys, ledger};

/// The pipeline name of optimize rows in the `runs` ledger.
pub const LEDGER_NAME: &str = "optimize";
/// The pipeline name of the key migration's row.
pub const REKEY_LEDGER_NAME: &str = "rekey";

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableReport {
    pub files_before: u64,
    pub files_after: u64,
    pub partitions_compacted: u64,
    pub rows_rewritten: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OptimizeReport {
    pub run_id: String,
    pub tables: BTreeMap<String, TableReport>,
    pub table_versions: BTreeMap<String, u64>,
    /// cube cache files whose compacted partitions were moved to the new files' fingerprints
    pub cube_cache_files_carried: u64,
    pub seconds: f64,
}

fn failpoint(stage: &str) -> Result<(), WarehouseError> {
    super::failpoint::at(stage).map_err(|fp| WarehouseError::Write {
        path: stage.to_string(),
        source: format!("failpoint {fp} (PALAUTE_FAILPOINT)").into(),
    })
}

/// Rewrite one partition's files as one file.
async fn compact(
    wh: &Warehouse,
    name: &'static str,
    files: Vec<TableFile>,
    run_id: &str,
    n: usize,
    rekey: Option<KeySecret>,
) -> Result<WrittenFile, WarehouseError> {
    let def = table_def(name);
    let mut batches = wh.read_files(name, &files, &[]).await?;
    if let Some(secret) = &rekey {
        let err = |m: Cause| WarehouseError::Write {
            path: name.to_string(),
            source: m,
        };
        batches = batches
            .into_iter()
            .map(|b| rekey_batch(&b, secret).map_err(err))
            .collect::<Result<_, _>>()?;
    }
    let partition_values = files[0].partition_values();
    let dir: String = partition_values
        .iter()
        .map(|(k, v)| format!("{k}={v}/"))
        .collect();
    let rel = format!("{dir}part-{run_id}-opt{n:05}.parquet");
    let err = |e: Cause| WarehouseError::Write {
        path: format!("{name}/{rel}"),
        source: e,
    };
    let mut buf = Vec::new();
    let mut rows = 0i64;
    {
        let mut w = ArrowWriter::try_new(
            &mut buf,
            def.file_schema.clone(),
            Some(table_writer_properties(def)),
        )
        .map_err(|e| err(e.into()))?;
        for b in &batches {
            rows += b.num_rows() as i64;
            let b =
                arrow::array::RecordBatch::try_new(def.file_schema.clone(), b.columns().to_vec())
                    .map_err(|e| err(e.into()))?;
            w.write(&b).map_err(|e| err(e.into()))?;
        }
        w.close().map_err(|e| err(e.into()))?;
    }
    let size = buf.len() as i64;
    wh.loc
        .store
        .put(&wh.loc.child(&format!("{name}/{rel}")), buf.into())
        .await
        .map_err(|e| err(e.into()))?;
    Ok(WrittenFile {
        rel_path: rel,
        local_path: Default::default(),
        partition_values,
        rows,
        size,
    })
}

/// The key columns of a batch (`response_key`, `feedback_key`; NULLs stay NULL) mapped
/// through the secret: the migration of keys made without one.
fn rekey_batch(b: &RecordBatch, secret: &KeySecret) -> Result<RecordBatch, Cause> {
    let mut cols = b.columns().to_vec();
    for (i, f) in b.schema().fields().iter().enumerate() {
        if f.name() != "response_key" && f.name() != "feedback_key" {
            continue;
        }
        let text = arrow::compute::cast(&cols[i], &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(text.len(), text.len() * 32);
        for v in text.iter() {
            match v {
                None => out.append_null(),
                Some(k) => {
                    let k = parse_key(k).ok_or_else(|| format!("{}: not a key: {k}", f.name()))?;
                    out.append_value(hex32(secret.key(k)).as_str());
                }
            }
        }
        let mapped: ArrayRef = std::sync::Arc::new(out.finish());
        cols[i] = arrow::compute::cast(&mapped, f.data_type())?;
    }
    Ok(RecordBatch::try_new(b.schema(), cols)?)
}

pub async fn optimize(wh: &Warehouse) -> Result<OptimizeReport, WarehouseError> {
    rewrite(wh, None).await
}

/// `palaute rekey`: the migration of a warehouse whose response keys were made without a secret
/// (palaute before 0.2). Every partition of the data tables is rewritten with its keys mapped
/// through the warehouse's new secret, in one operation committed like optimize (pipeline
/// `rekey` in the ledger); then the warehouse is marked keyed. Returns `None` when its keys are
/// keyed already.
pub async fn rekey(wh: &Warehouse) -> Result<Option<OptimizeReport>, WarehouseError> {
    if !wh.exists().await? {
        return Err(WarehouseError::Missing(wh.loc.display()));
    }
    let Some(secret) = keys::for_rekey(wh).await? else {
        return Ok(None);
    };
    // a migration that committed but stopped before marking the warehouse keyed: mark it now
    // (rewriting again would key the keys twice)
    let runs = ledger::read_runs(wh).await?;
    if let Some(done) = runs
        .iter()
        .rev()
        .find(|r| r.pipeline == REKEY_LEDGER_NAME && r.status == ledger::RunStatus::Succeeded)
    {
        keys::rekeyed(wh, &secret).await?;
        return Ok(Some(OptimizeReport {
            run_id: done.run_id.clone(),
            tables: BTreeMap::new(),
            table_versions: done.table_versions.clone(),
            cube_cache_files_carried: 0,
            seconds: 0.0,
        }));
    }
    let r = rewrite(wh, Some(secret.clone())).await?;
    keys::rekeyed(wh, &secret).await?;
    Ok(Some(r))
}

/// Rewrite one table's partitions (every partition of several files; under a migration every
/// partition): the new files written, the remove actions of the files they replace.
async fn compact_table(
    wh: &Warehouse,
    name: &'static str,
    run_id: &str,
    rekey: &Option<KeySecret>,
) -> Result<(TableReport, Vec<WrittenFile>, Vec<Action>), WarehouseError> {
    let t = wh.table(name, None).await?;
    let files = wh.files(&t).await?;
    let mut tr = TableReport {
        files_before: files.len() as u64,
        ..TableReport::default()
    };
    let mut parts: BTreeMap<Vec<(String, String)>, Vec<TableFile>> = BTreeMap::new();
    for f in files {
        parts.entry(f.partition_values()).or_default().push(f);
    }
    let mut removes = Vec::new();
    let mut jobs = Vec::new();
    for (i, (_, fs)) in parts.into_iter().enumerate() {
        // a migration rewrites every file; compaction only partitions of several
        if fs.len() < 2 && rekey.is_none() {
            tr.files_after += fs.len() as u64;
            continue;
        }
        for f in &fs {
            removes.push(remove_action(&f.path, f.size, &f.partition_values()));
        }
        jobs.push(compact(wh, name, fs, run_id, i, rekey.clone()));
    }
    let mut new_files = Vec::new();
    let mut stream = futures::stream::iter(jobs).buffer_unordered(2);
    while let Some(f) = stream.next().await {
        let f = f?;
        tr.rows_rewritten += f.rows as u64;
        tr.partitions_compacted += 1;
        tr.files_after += 1;
        new_files.push(f);
    }
    Ok((tr, new_files, removes))
}

/// Carry the cached cubes of the compacted partitions over to their new files (their rows are
/// the same); returns how many cache files were carried. A failure only costs the next
/// aggregation the compacted partitions' cubes.
async fn carry_cube_cache(wh: &Warehouse, fps_before: &BTreeMap<(String, String), i64>) -> u64 {
    let carried = async {
        let after = crate::marts::cube_cache::partition_fingerprints(wh).await?;
        let moved: std::collections::HashMap<i64, i64> = fps_before
            .iter()
            .filter_map(|(k, old)| {
                after
                    .get(k)
                    .filter(|new| *new != old)
                    .map(|new| (*old, *new))
            })
            .collect();
        crate::marts::cube_cache::carry_over(wh, &moved).await
    };
    match carried.await {
        Ok(n) => n as u64,
        Err(e) => {
            tracing::warn!(error = %e, "cube cache not carried over (the next aggregation computes the compacted partitions again)");
            0
        }
    }
}

async fn rewrite(
    wh: &Warehouse,
    rekey: Option<KeySecret>,
) -> Result<OptimizeReport, WarehouseError> {
    let clock = Instant::now();
    let started = Utc::now();
    if !wh.exists().await? {
        return Err(WarehouseError::Missing(wh.loc.display()));
    }
    wh.recover().await?;
    let run_id = ledger::new_run_id();
    let committed = ledger::committed_versions(wh).await?;
    let mut report = OptimizeReport {
        run_id: run_id.clone(),
        tables: BTreeMap::new(),
        table_versions: committed.clone(),
        cube_cache_files_carried: 0,
        seconds: 0.0,
    };
    // the cube cache's partition fingerprints before: compacted partitions keep their rows, so
    // their cached cubes are carried over to the new files afterwards
    let fps_before = crate::marts::cube_cache::partition_fingerprints(wh)
        .await
        .ok();
    let mut written: Vec<(&'static str, Vec<WrittenFile>, Vec<Action>)> = Vec::new();
    let mut committed_now: Vec<(&'static str, u64)> = Vec::new();
    let result = async {
        for name in DATA_TABLES {
            let (tr, new_files, removes) = compact_table(wh, name, &run_id, &rekey).await?;
            report.tables.insert(name.to_string(), tr);
            written.push((name, new_files, removes));
        }
        for (name, files, removes) in &written {
            if files.is_empty() {
                continue;
            }
            let t = wh.table(name, None).await?;
            let before = t.version().unwrap_or(0);
            let mut actions: Vec<Action> = files.iter().map(add_action).collect();
            actions.extend(removes.iter().cloned());
            let v = wh.commit(&t, name, actions, &run_id).await?;
            committed_now.push((name, before));
            report.table_versions.insert(name.to_string(), v);
            failpoint(&format!("commit:{name}"))?;
        }
        if committed_now.is_empty() {
            return Ok(());
        }
        failpoint("ledger")?;
        let compacted: u64 = report.tables.values().map(|t| t.partitions_compacted).sum();
        let (ledger_name, message) = match &rekey {
            None => (LEDGER_NAME, format!("compacted {compacted} partitions")),
            Some(_) => (
                REKEY_LEDGER_NAME,
                format!(
                    "response keys keyed with the warehouse's secret in {compacted} partitions"
                ),
            ),
        };
        ledger::append_operation(
            wh,
            ledger_name,
            &run_id,
            started,
            message,
            0,
            report.table_versions.clone(),
        )
        .await?;
        Ok::<(), WarehouseError>(())
    }
    .await;
    if let Err(e) = result {
        wh.restore_all(&committed_now).await;
        for (name, files, _) in &written {
            if committed_now.iter().any(|(n, _)| n == name) {
                continue;
            }
            crate::warehouse::writer::delete_uploaded(&wh.loc, name, files).await;
        }
        return Err(e);
    }
    // a checkpoint of each compacted table's new version: opening the table (every command
    // does) then reads one Parquet file of its active files instead of replaying every JSON
    // commit since the table began
    for (name, _, _) in &written {
        if !committed_now.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Err(e) = wh.checkpoint(name).await {
            tracing::warn!(table = *name, error = %e, "no checkpoint written (the log is complete without it)");
        }
    }
    if let (false, Some(fps_before)) = (written.is_empty(), fps_before) {
        report.cube_cache_files_carried = carry_cube_cache(wh, &fps_before).await;
    }
    report.seconds = clock.elapsed().as_secs_f64();
    Ok(report)
}

pub fn render(r: &OptimizeReport) -> String {
    use std::fmt::Write;
    let mut s = format!("optimize {} ({:.1} s)\n", r.run_id, r.seconds);
    for (name, t) in &r.tables {
        let _ = writeln!(
            s,
            "  {name:<12} {:>6} files → {:>6} ({} partitions compacted, {} rows rewritten)",
            t.files_before, t.files_after, t.partitions_compacted, t.rows_rewritten
        );
    }
    if r.cube_cache_files_carried > 0 {
        let _ = writeln!(
            s,
            "  cube cache: {} file(s) moved to the compacted files (nothing to compute again)",
            r.cube_cache_files_carried
        );
    }
    s
}
