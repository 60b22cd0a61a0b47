//! The plan of a run: what the ledger says was loaded, which source objects are new, changed
//! or unchanged, and where an object may resume reading.

use std::collections::{BTreeMap, HashMap};

use super::RunError;
use crate::config::Pipeline;
use crate::format::ResumePoint;
use crate::source::{Source, SourceObject};
use crate::warehouse::Warehouse;
use crate::warehouse::ledger::{self, Counts, RunRecord, RunStatus};

/// What a source object is to this run, by the ledger's fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ObjectState {
    /// not loaded by the pipeline before
    #[default]
    New,
    /// loaded before with another fingerprint: read again
    Changed,
    /// loaded before with this fingerprint: skipped without being read
    Unchanged,
}

impl ObjectState {
    /// As the ledger and `check` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectState::New => "new",
            ObjectState::Changed => "changed",
            ObjectState::Unchanged => "unchanged",
        }
    }
}

impl std::fmt::Display for ObjectState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What happened to one source object.
#[derive(Debug, Clone, Default)]
pub struct ObjectPlan {
    pub name: String,
    pub state: ObjectState,
    pub decoded: String,
    pub counts: Counts,
    pub ignored_columns: Vec<String>,
    /// read from the resume point of this earlier object: its name and the records not read
    pub resumed_from: Option<(String, u64)>,
    /// what the data suggests is mapped wrong (no row is refused for it)
    pub warnings: Vec<String>,
}

/// The ledger as a run starts: its runs, the table versions they committed, the next seq.
pub(super) struct History {
    pub(super) runs: Vec<RunRecord>,
    pub(super) committed: BTreeMap<String, u64>,
    pub(super) next_seq: i64,
}

impl History {
    /// The ledger's runs; a plan of a warehouse that does not exist yet has none.
    pub(super) async fn read(wh: &Warehouse, readable: bool) -> Result<History, RunError> {
        let runs = if readable {
            ledger::read_runs(wh).await?
        } else {
            Vec::new()
        };
        let committed = runs
            .last()
            .map(|r| r.table_versions.clone())
            .unwrap_or_default();
        let next_seq = runs.last().map(|r| r.seq + 1).unwrap_or(1);
        Ok(History {
            runs,
            committed,
            next_seq,
        })
    }

    /// The pipeline's runs that still count: not failed, not undone by a rollback.
    pub(super) fn counted(&self, p: &Pipeline) -> Vec<&RunRecord> {
        super::super::rollback::effective_runs(&self.runs)
            .into_iter()
            .filter(|r| r.pipeline == p.name && r.status != RunStatus::Failed)
            .collect()
    }
}

/// Which objects a run reads, in which order, and where the last may resume.
pub(super) struct Plan {
    /// the hash of the pipeline's configuration ([`config_hash`])
    pub(super) config: String,
    /// the resume points an object may continue from: the earlier object's name and its point
    pub(super) points: Vec<(String, ResumePoint)>,
    /// how many objects the source listed
    pub(super) listed: usize,
    /// the objects skipped unread
    pub(super) unchanged: Vec<ObjectPlan>,
    /// the objects to read, newest first (a response repeated in several is taken from the newest)
    pub(super) to_read: Vec<(SourceObject, ObjectState)>,
}

impl Plan {
    /// List the source and compare it with the objects the pipeline's counted runs loaded (a
    /// backfill reads every object).
    pub(super) async fn make(
        src: &Source,
        p: &Pipeline,
        counted: &[&RunRecord],
        backfill: bool,
    ) -> Result<Plan, RunError> {
        let mut manifest: HashMap<String, String> = HashMap::new();
        for r in counted {
            for o in &r.objects {
                manifest.insert(o.name.clone(), o.fingerprint.clone());
            }
        }
        let config = config_hash(p);
        // rows keyed by their content are keyed by their occurrence in the whole object, so an
        // object is never read from the middle
        let points = if backfill || p.mapping.response_id.0.row_hash {
            Vec::new()
        } else {
            resume_points(counted, &config)
                .into_iter()
                .map(|(name, pt)| (name.to_string(), pt))
                .collect()
        };
        let listed = src.list(&manifest, backfill).await?;
        let mut unchanged = Vec::new();
        let mut to_read = Vec::new();
        for o in &listed {
            let state = match manifest.get(&o.name).filter(|_| !backfill) {
                Some(f) if *f == o.fingerprint() => ObjectState::Unchanged,
                Some(_) => ObjectState::Changed,
                None => ObjectState::New,
            };
            if state == ObjectState::Unchanged {
                unchanged.push(ObjectPlan {
                    name: o.name.clone(),
                    state,
                    ..Default::default()
                });
            } else {
                to_read.push((o.clone(), state));
            }
        }
        to_read.sort_by(|a, b| {
            b.0.last_modified
                .cmp(&a.0.last_modified)
                .then(b.0.name.cmp(&a.0.name))
        });
        Ok(Plan {
            config,
            points,
            listed: listed.len(),
            unchanged,
            to_read,
        })
    }
}

/// The hash of what decides how a pipeline's rows are mapped: its file and the program version.
pub(super) fn config_hash(p: &Pipeline) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&std::fs::read(&p.file).unwrap_or_default());
    h.update(b"\0");
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    format!("{:032x}", h.digest128())
}

/// The resume points a new object of `p` may continue from: those of objects read by the
/// pipeline's last run that changed the warehouse (or by the runs after it, which changed
/// nothing), with the current configuration. A point is recorded only for the first object
/// its run read (newest first), so every row before it was stored as that object has it; and
/// since that run no run of the pipeline changed anything (a backfill, a later object with
/// edits), so re-reading those rows would find every one a duplicate. Rolled-back and failed
/// runs do not count. (A pipeline's response keys are assumed to be its own: another pipeline
/// declaring the same system and survey could change them unseen.)
pub(super) fn resume_points<'a>(
    runs: &[&'a RunRecord],
    config: &str,
) -> Vec<(&'a str, ResumePoint)> {
    let start = runs
        .iter()
        .rposition(|r| r.status == RunStatus::Succeeded)
        .unwrap_or(0);
    runs[start..]
        .iter()
        .flat_map(|r| &r.objects)
        .filter_map(|o| {
            o.resume
                .as_ref()
                .filter(|r| r.config == config)
                .map(|r| (o.name.as_str(), r.point.clone()))
        })
        .collect()
}
