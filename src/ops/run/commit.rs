//! The commit protocol: rewrite the files holding updated responses without them, upload and
//! commit every table that changed (responses first, quarantine last); on failure, what is
//! discarded and what restored, and the failed run's ledger row.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use chrono::Utc;
use deltalake_core::kernel::Action;

use super::stored::Stored;
use super::writers::Writers;
use super::{RunError, failpoint};
use crate::config::Pipeline;
use crate::schema::Partition;
use crate::warehouse::ledger::{self, Counts, ObjectRecord, RunRecord, RunStatus};
use crate::warehouse::tables::{ANSWERS, COMMENTS, FEEDBACK, RESPONSES, parse_key, table_def};
use crate::warehouse::writer::{self, WrittenFile, add_action, remove_action};
use crate::warehouse::{Warehouse, WarehouseError};

pub(super) type Written = Vec<(&'static str, Vec<WrittenFile>)>;
pub(super) type CommitFailure = (RunError, Written, Vec<(&'static str, u64)>);
/// New table versions, the tables committed (with their versions before), the periods written.
pub(super) type Committed = (
    BTreeMap<&'static str, u64>,
    Vec<(&'static str, u64)>,
    BTreeSet<String>,
);

/// Rewrite files holding updated responses, then commit every table that changed.
pub(super) async fn commit_run(
    wh: &Warehouse,
    writers: &mut Writers,
    stored: &Stored,
    to_delete: &HashMap<Partition, HashSet<u128>>,
    load_id: &str,
) -> Result<Committed, CommitFailure> {
    let mut removes: BTreeMap<&'static str, Vec<Action>> = BTreeMap::new();
    let rewrite = async {
        for name in [RESPONSES, ANSWERS, COMMENTS, FEEDBACK] {
            let Some(index) = stored.files.get(name) else {
                continue;
            };
            let mut parts: Vec<&Partition> = to_delete.keys().collect();
            parts.sort();
            for part in parts {
                let keys = &to_delete[part];
                for f in index.get(part).into_iter().flatten() {
                    let batches = wh.read_files(name, std::slice::from_ref(f), &[]).await?;
                    let mut removed = 0usize;
                    let mut kept = Vec::new();
                    for b in batches {
                        let k = b.column(0).as_string::<i32>();
                        let mask: BooleanArray = (0..b.num_rows())
                            .map(|i| {
                                Some(!parse_key(k.value(i)).is_some_and(|x| keys.contains(&x)))
                            })
                            .collect();
                        removed += mask.iter().filter(|m| *m == Some(false)).count();
                        let fb = arrow::compute::filter_record_batch(&b, &mask).map_err(|e| {
                            WarehouseError::Read {
                                path: f.path.clone(),
                                message: e.to_string(),
                            }
                        })?;
                        if fb.num_rows() > 0 {
                            kept.push(
                                RecordBatch::try_new(
                                    table_def(name).file_schema.clone(),
                                    fb.columns().to_vec(),
                                )
                                .map_err(|e| {
                                    WarehouseError::Read {
                                        path: f.path.clone(),
                                        message: e.to_string(),
                                    }
                                })?,
                            );
                        }
                    }
                    if removed == 0 {
                        continue;
                    }
                    let tw = writers.table(name, part);
                    for b in kept {
                        tw.push_batch(part, b);
                    }
                    removes.entry(name).or_default().push(remove_action(
                        &f.path,
                        f.size,
                        &f.partition_values(),
                    ));
                }
            }
        }
        Ok::<(), RunError>(())
    }
    .await;
    let mut written: Written = Vec::new();
    let mut finish_err = rewrite.err();
    if let Err(e) = writers.wait() {
        finish_err.get_or_insert(e.into());
    }
    let mut by_table: BTreeMap<&'static str, Vec<WrittenFile>> = BTreeMap::new();
    for shard in std::mem::take(&mut writers.shards) {
        for (name, tw) in shard.tables {
            match tw.finish() {
                Ok(files) => by_table.entry(name).or_default().extend(files),
                Err(e) => {
                    finish_err.get_or_insert(e.into());
                }
            }
        }
    }
    for (name, mut files) in by_table {
        files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
        written.push((name, files));
    }
    if let Some(e) = finish_err {
        return Err((e, written, vec![]));
    }
    // commit in the order of DATA_TABLES: responses first, quarantine last
    written.sort_by_key(|(n, _)| {
        crate::warehouse::tables::DATA_TABLES
            .iter()
            .position(|t| t == n)
    });
    for (name, files) in &written {
        if let Err(e) = writer::upload(&wh.loc, name, files, writers.in_place).await {
            return Err((e.into(), written, vec![]));
        }
    }
    if let Some(s) = &writers.staging {
        let _ = std::fs::remove_dir_all(s);
    }
    let mut versions = BTreeMap::new();
    let mut committed_now: Vec<(&'static str, u64)> = Vec::new();
    for (name, files) in &written {
        let mut actions: Vec<Action> = files.iter().map(add_action).collect();
        actions.extend(removes.remove(name).unwrap_or_default());
        if actions.is_empty() {
            continue;
        }
        let t = &stored.tables[name];
        let before = t.version().unwrap_or(0);
        match wh.commit(t, name, actions, load_id).await {
            Ok(v) => {
                versions.insert(*name, v);
                committed_now.push((name, before));
            }
            Err(e) => {
                // files of tables already committed stay: the versions before the rollback
                // refer to them (vacuum removes them once the retention has passed)
                let uncommitted = written
                    .iter()
                    .filter(|(n, _)| !committed_now.iter().any(|(c, _)| c == n))
                    .cloned()
                    .collect();
                return Err((e.into(), uncommitted, committed_now));
            }
        }
        if let Err(e) = failpoint(&format!("commit:{name}")) {
            let uncommitted = written
                .iter()
                .filter(|(n, _)| !committed_now.iter().any(|(c, _)| c == n))
                .cloned()
                .collect();
            return Err((e, uncommitted, committed_now));
        }
    }
    let periods = written
        .iter()
        .flat_map(|(_, files)| files.iter())
        .flat_map(|f| f.partition_values.iter())
        .filter(|(k, _)| k == "period")
        .map(|(_, v)| v.clone())
        .collect();
    Ok((versions, committed_now, periods))
}

/// Remove every file a failed run's writers wrote.
pub(super) async fn discard_all(wh: &Warehouse, mut writers: Writers) {
    let _ = writers.wait();
    for shard in writers.shards {
        for (name, tw) in shard.tables {
            writer::discard(&wh.loc, name, tw.written()).await;
        }
    }
    if let Some(s) = writers.staging {
        let _ = std::fs::remove_dir_all(s);
    }
}

/// What a failed run's ledger row needs.
pub(super) struct Failure<'a> {
    pub(super) wh: &'a Warehouse,
    pub(super) p: &'a Pipeline,
    pub(super) load_id: &'a str,
    pub(super) seq: i64,
    pub(super) started: chrono::DateTime<Utc>,
    pub(super) counts: &'a Counts,
    pub(super) objects: &'a [ObjectRecord],
    pub(super) objects_skipped: u64,
}

impl Failure<'_> {
    /// Record a failed run in the ledger (best effort), naming the tables' current versions,
    /// whose content is the committed one.
    pub(super) async fn record(&self, e: &RunError) {
        let Failure {
            wh,
            p,
            load_id,
            seq,
            started,
            counts,
            objects,
            objects_skipped,
        } = *self;
        if matches!(e, RunError::Failpoint(f) if f.starts_with("crash")) {
            return;
        }
        // the marts and anything else the ledger names stay as committed
        let mut table_versions = ledger::committed_versions(wh).await.unwrap_or_default();
        for name in crate::warehouse::tables::DATA_TABLES {
            match wh.table(name, None).await {
                Ok(t) => {
                    table_versions.insert(name.to_string(), t.version().unwrap_or(0));
                }
                Err(_) => return,
            }
        }
        let rec = RunRecord {
            run_id: load_id.to_string(),
            seq,
            pipeline: p.name.clone(),
            started_at: started,
            finished_at: Utc::now(),
            status: RunStatus::Failed,
            message: Some(e.to_string()),
            counts: counts.clone(),
            objects_read: objects.len() as u64,
            objects_skipped,
            objects: objects.to_vec(),
            table_versions,
            palaute_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        if let Err(err) = ledger::append(wh, &rec).await {
            tracing::error!(error = %err, "could not record the failed run in the ledger");
        }
    }
}
