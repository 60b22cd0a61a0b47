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
    let rewritten = rewrite_updated(wh, writers, stored, to_delete).await;
    let (mut written, finish_err) = finish_writers(writers);
    let mut removes = match (rewritten, finish_err) {
        (Ok(removes), None) => removes,
        (Err(e), _) | (Ok(_), Some(e)) => return Err((e, written, vec![])),
    };
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
    let uncommitted = |written: &Written, committed_now: &[(&str, u64)]| -> Written {
        // files of tables already committed stay: the versions before the rollback refer to
        // them (vacuum removes them once the retention has passed)
        written
            .iter()
            .filter(|(n, _)| !committed_now.iter().any(|(c, _)| c == n))
            .cloned()
            .collect()
    };
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
                let left = uncommitted(&written, &committed_now);
                return Err((e.into(), left, committed_now));
            }
        }
        if let Err(e) = failpoint(&format!("commit:{name}")) {
            let left = uncommitted(&written, &committed_now);
            return Err((e, left, committed_now));
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

/// The files holding responses this run updates (or a backfill removes), rewritten without
/// them into the run's writers: the remove actions of the files they replace, by table.
async fn rewrite_updated(
    wh: &Warehouse,
    writers: &mut Writers,
    stored: &Stored,
    to_delete: &HashMap<Partition, HashSet<u128>>,
) -> Result<BTreeMap<&'static str, Vec<Action>>, RunError> {
    let mut removes: BTreeMap<&'static str, Vec<Action>> = BTreeMap::new();
    let mut parts: Vec<&Partition> = to_delete.keys().collect();
    parts.sort();
    for name in [RESPONSES, ANSWERS, COMMENTS, FEEDBACK] {
        let Some(index) = stored.files.get(name) else {
            continue;
        };
        for part in &parts {
            let keys = &to_delete[*part];
            for f in index.get(*part).into_iter().flatten() {
                let Some(kept) = without_keys(wh, name, f, keys).await? else {
                    continue;
                };
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
    Ok(removes)
}

/// The rows of a stored file without those of `keys`, or `None` when it holds none of them.
async fn without_keys(
    wh: &Warehouse,
    name: &'static str,
    f: &crate::warehouse::TableFile,
    keys: &HashSet<u128>,
) -> Result<Option<Vec<RecordBatch>>, WarehouseError> {
    let read_err = |e: arrow::error::ArrowError| WarehouseError::Read {
        path: f.path.clone(),
        source: e.into(),
    };
    let batches = wh.read_files(name, std::slice::from_ref(f), &[]).await?;
    let mut removed = 0usize;
    let mut kept = Vec::new();
    for b in batches {
        let k = b.column(0).as_string::<i32>();
        let mask: BooleanArray = (0..b.num_rows())
            .map(|i| Some(!parse_key(k.value(i)).is_some_and(|x| keys.contains(&x))))
            .collect();
        removed += mask.iter().filter(|m| *m == Some(false)).count();
        let fb = arrow::compute::filter_record_batch(&b, &mask).map_err(read_err)?;
        if fb.num_rows() > 0 {
            let schema = table_def(name).file_schema.clone();
            kept.push(RecordBatch::try_new(schema, fb.columns().to_vec()).map_err(read_err)?);
        }
    }
    Ok((removed > 0).then_some(kept))
}

/// Wait for the background spill and finish every shard's writers: the files by table, and the
/// first error (the files written before it are listed all the same, for removal).
fn finish_writers(writers: &mut Writers) -> (Written, Option<RunError>) {
    let mut finish_err: Option<RunError> = None;
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
    let written = by_table
        .into_iter()
        .map(|(name, mut files)| {
            files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
            (name, files)
        })
        .collect();
    (written, finish_err)
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
