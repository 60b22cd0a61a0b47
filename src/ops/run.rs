//! `palaute run`: one pipeline run as one atomic outcome.
//!
//! 1. Tables left ahead of the ledger by a run that died are restored (see `warehouse`).
//! 2. The source is listed; objects whose name and fingerprint the ledger already holds for this
//!    pipeline are skipped without being read.
//! 3. The other objects are read newest first. Each row is mapped ([`Normalizer::head`]), then
//!    deduplicated by its response key: a key already seen in this run is a duplicate (the newest
//!    object wins); a key already in the warehouse with the same hash of its mapped fields is a
//!    duplicate; with another hash it is an update. Only the partitions the new rows fall into are
//!    looked up, so the cost grows with the new data, not with the warehouse. A row that cannot
//!    be mapped goes to quarantine with its reasons; a row quarantined with the same content by
//!    an earlier run or from another object counts as a duplicate, every broken row of an object
//!    as quarantined.
//!    An object that begins with the bytes of an object whose rows are all still as that object
//!    left them (see `resume_points`) is read from the point where those bytes end.
//! 4. If more rows than `quality.max_quarantined_pct` allows were quarantined, the run fails and
//!    nothing is committed. Otherwise the files holding updated responses are rewritten without
//!    them, every table is committed, and the run's ledger row is appended last. If anything fails
//!    after the first table commit, the committed tables are restored and the failure is recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::Int64Type;
use chrono::Utc;
use csv::ByteRecord;
use deltalake_core::kernel::Action;

use crate::config::{Pipeline, PipelineKind};
use crate::format::FormatError;
use crate::normalize::{
    CONFLICTING_DUPLICATE, Head, IDENTIFYING_VALUE, Normalizer, Partition, Problem,
    unmapped_columns,
};
use crate::privacy::Scrubber;
use crate::schema::Catalog;
use crate::source::{self, SourceError, SourceObject};
use crate::warehouse::ledger::{self, Counts, ObjectRecord, RunRecord, RunStatus};
use crate::warehouse::tables::{
    ANSWERS, COMMENTS, CompactAnswer, FEEDBACK, QUARANTINE, RESPONSES, Rows, hex32, key_hex,
    parse_key, table_def,
};
use crate::warehouse::writer::{
    self, SPILL_BUDGET, TableWriter, WrittenFile, add_action, remove_action,
};
use crate::warehouse::{TableFile, Warehouse, WarehouseError, keys, owed};

use super::exit;

const CHUNK: usize = 16_384;

/// The tables holding a pipeline kind's rows by key; the first holds one row per key.
fn keyed_tables(kind: PipelineKind) -> &'static [&'static str] {
    match kind {
        PipelineKind::Survey => &[RESPONSES, ANSWERS, COMMENTS],
        PipelineKind::Feedback => &[FEEDBACK],
    }
}

/// Why an object is no export of the pipeline's survey: its name, the few columns its header
/// has, and a hint when there is one column only (a wrong delimiter).
fn not_an_export(object: &str, names: &[String], mapped: usize, decoded: &str) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(5)
        .map(|n| {
            let n: String = n.chars().take(30).collect();
            format!("'{n}'")
        })
        .collect();
    let more = names.len().saturating_sub(5);
    let mut m = format!(
        "{object}: its header does not look like this pipeline's: none of the {mapped} mapped columns is there; it has {} column(s): {}{}",
        names.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    if names.len() <= 1 {
        m.push_str(&format!(
            " — is the delimiter right? (read as {decoded}; set format.delimiter)"
        ));
    } else {
        m.push_str(" — is it the right file, and are format.header_rows right?");
    }
    m
}

/// The key column of a keyed table.
fn key_column(table: &str) -> &'static str {
    if table == FEEDBACK {
        "feedback_key"
    } else {
        "response_key"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    #[error(
        "pipeline {pipeline}: {quarantined} of {read} rows ({pct:.1} %) would be quarantined, over the limit of {max} %; nothing was written. Reasons: {reasons}"
    )]
    Quality {
        pipeline: String,
        quarantined: u64,
        read: u64,
        pct: f64,
        max: f64,
        reasons: String,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Format(FormatError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("failpoint {0} (PALAUTE_FAILPOINT): the run stopped on purpose")]
    Failpoint(String),
    #[error("{0}; nothing was written")]
    NotAnExport(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) | RunError::Source(SourceError::NoFolder { .. }) => exit::CONFIG,
            RunError::Format(FormatError::Config(_)) => exit::CONFIG,
            RunError::Quality { .. } | RunError::NotAnExport(_) => exit::QUALITY,
            RunError::Warehouse(e) => e.exit_code(),
            RunError::Source(_) | RunError::Format(_) => exit::ENVIRONMENT,
            RunError::Failpoint(_) => exit::FAILURE,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// plan only: read and map, but write nothing
    pub dry_run: bool,
    /// show a progress bar on an interactive terminal
    pub progress: bool,
    /// backfill: re-read every source object and replace the pipeline's rows of these periods
    /// (first and last month, YYYY-MM); rows of other periods are left alone
    pub backfill: Option<(String, String)>,
}

/// What happened to one source object.
#[derive(Debug, Clone, Default)]
pub struct ObjectPlan {
    pub name: String,
    pub state: &'static str,
    pub decoded: String,
    pub counts: Counts,
    pub ignored_columns: Vec<String>,
    /// read from the resume point of this earlier object: its name and the records not read
    pub resumed_from: Option<(String, u64)>,
    /// what the data suggests is mapped wrong (no row is refused for it)
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub pipeline: String,
    pub run_id: String,
    pub status: RunStatus,
    pub counts: Counts,
    pub objects: Vec<ObjectPlan>,
    /// reason code → rows quarantined for it
    pub reasons: BTreeMap<String, u64>,
    /// the first few quarantined rows: "object row N: problem"
    pub examples: Vec<String>,
    pub table_versions: BTreeMap<String, u64>,
    pub seconds: f64,
    pub restored: Vec<String>,
    /// backfill: rows of the source outside the periods (ignored), and stored rows of the
    /// periods that the source no longer holds (removed)
    pub outside_range: u64,
    pub removed: u64,
    /// periods (YYYY-MM) whose rows this run added, changed or removed
    pub periods: BTreeSet<String>,
    /// a plan (`check`) whose run would fail the quality threshold: why
    pub over_threshold: Option<String>,
    /// what a run should not pass over in silence, though it is no failure
    pub warnings: Vec<String>,
}

fn failpoint(stage: &str) -> Result<(), RunError> {
    super::failpoint::at(stage).map_err(RunError::Failpoint)
}

struct Writers {
    /// one set of table writers per shard: a partition's rows always go to the shard
    /// [`shard_of`] names, so that shards are filled in parallel and each partition's rows keep
    /// their input order; shard 0 also holds the quarantine writer
    shards: Vec<Shard>,
    in_place: bool,
    staging: Option<PathBuf>,
    /// the spill being encoded in the background (at most one: the next waits for it)
    pending: Option<std::thread::JoinHandle<EncodedSpill>>,
}

/// The table writers of one shard.
struct Shard {
    tables: BTreeMap<&'static str, TableWriter>,
    /// (item, option) of the current object's normalizer → this shard's answers symbol
    symbols: FastMap<(u16, u16), u16>,
}

/// Files encoded by a background spill, per shard and table.
type EncodedSpill = Vec<(
    usize,
    &'static str,
    Vec<Result<WrittenFile, WarehouseError>>,
)>;

/// The shard of a partition's rows (a fixed hash: the same partition, the same shard).
fn shard_of(p: &Partition, shards: usize) -> usize {
    if shards < 2 {
        return 0;
    }
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(
        p.county.as_bytes(),
        xxhash_rust::xxh3::xxh3_64(p.period.as_bytes()),
    );
    (h % shards as u64) as usize
}

impl Writers {
    fn new(wh: &Warehouse, load_id: &str, kind: PipelineKind) -> Self {
        let (base, in_place, staging) = match &wh.loc.local_dir {
            Some(d) => (d.clone(), true, None),
            None => {
                let s = std::env::temp_dir().join(format!("palaute-stage-{load_id}"));
                (s.clone(), false, Some(s))
            }
        };
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let shards = (0..n)
            .map(|i| {
                // file names carry the shard so that shards never pick the same name
                let prefix = if i == 0 {
                    load_id.to_string()
                } else {
                    format!("{load_id}-{i}")
                };
                let mut tables = BTreeMap::new();
                for t in keyed_tables(kind).iter() {
                    tables.insert(*t, TableWriter::new(table_def(t), base.join(t), &prefix));
                }
                if i == 0 {
                    tables.insert(
                        QUARANTINE,
                        TableWriter::new(table_def(QUARANTINE), base.join(QUARANTINE), &prefix),
                    );
                }
                Shard {
                    tables,
                    symbols: FastMap::default(),
                }
            })
            .collect();
        Writers {
            shards,
            in_place,
            staging,
            pending: None,
        }
    }

    /// The writer of `table` for partition `p`'s rows.
    fn table(&mut self, table: &str, p: &Partition) -> &mut TableWriter {
        let i = shard_of(p, self.shards.len());
        self.shards[i]
            .tables
            .get_mut(table)
            .expect("a writer per table")
    }

    /// When the buffers together pass the budget, hand them to a background thread that encodes
    /// them into files while the run reads on (the reading steps are partly sequential, so the
    /// encoder uses a core that would otherwise wait). Only one spill is in flight: a second
    /// waits for the first, so memory stays within about twice the budget.
    fn spill_if_over_budget(&mut self) -> Result<(), RunError> {
        let buffered: usize = self
            .shards
            .iter()
            .flat_map(|s| s.tables.values())
            .map(|t| t.buffered)
            .sum();
        if buffered <= SPILL_BUDGET {
            return Ok(());
        }
        self.wait()?;
        let mut taken = Vec::new();
        for (i, s) in self.shards.iter_mut().enumerate() {
            for (name, t) in s.tables.iter_mut() {
                taken.push((i, *name, t.take()));
            }
        }
        self.pending = Some(std::thread::spawn(move || {
            taken
                .into_iter()
                .map(|(i, name, t)| (i, name, t.encode(1)))
                .collect()
        }));
        Ok(())
    }

    /// Wait for the background spill and record its files (also after an error, so that a
    /// failed run can remove them).
    fn wait(&mut self) -> Result<(), WarehouseError> {
        let Some(h) = self.pending.take() else {
            return Ok(());
        };
        let mut first = Ok(());
        for (i, name, files) in h.join().expect("the spill thread panicked") {
            let tw = self.shards[i]
                .tables
                .get_mut(name)
                .expect("a writer per spilled table");
            if let Err(e) = tw.adopt(files)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}

/// Keys already in the warehouse, loaded partition by partition as rows need them.
struct Existing {
    /// the table holding one row per key
    table: &'static str,
    files: HashMap<Partition, Vec<TableFile>>,
    loaded: HashSet<Partition>,
    /// stored key → (row hash, index into `parts`)
    keys: FastMap<u128, (i64, u32)>,
    /// the partitions whose keys are loaded, in load order
    parts: Vec<Partition>,
}

fn index_by_partition(files: Vec<TableFile>) -> HashMap<Partition, Vec<TableFile>> {
    let mut m: HashMap<Partition, Vec<TableFile>> = HashMap::new();
    for f in files {
        let pv = f.partition_values();
        let get = |k: &str| pv.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let p = Partition {
            period: get("period").unwrap_or_default(),
            county: get("county").unwrap_or_default(),
        };
        m.entry(p).or_default().push(f);
    }
    m
}

impl Existing {
    async fn load(
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

impl Shard {
    /// Append one normalized row to this shard's writers.
    #[allow(clippy::too_many_arguments)]
    fn write_row(
        &mut self,
        pipeline: &str,
        load_id: &str,
        norm: &Normalizer,
        object: &str,
        line: u64,
        head: &Head,
        body: &crate::normalize::Body,
        texts: &[crate::privacy::Scrubbed],
    ) {
        let key = hex32(head.key);
        let key = key.as_str();
        let part = &head.partition;
        if let Some(tw) = self.tables.get_mut(FEEDBACK) {
            let text = texts.first();
            let bytes = 300 + object.len() + text.map_or(0, |t| t.text.len());
            tw.append(part, bytes, |rows| {
                let Rows::Feedback(r) = rows else {
                    unreachable!()
                };
                r.feedback_key.append_value(key);
                r.row_hash.append_value(head.row_hash);
                r.pipeline.append_value(pipeline);
                r.source_system.append_value(&norm.system);
                r.source_id.append_value(&norm.survey);
                r.received_at
                    .append_value(head.submitted_at.timestamp_micros());
                r.feedback_type
                    .append_value(body.feedback_type.as_deref().unwrap_or_default());
                r.classification_year.append_value(head.classification_year);
                r.municipality.append_option(head.municipality.as_deref());
                r.cooperation_area
                    .append_option(head.cooperation_area.as_deref());
                r.local_area.append_option(body.local_area.as_deref());
                r.org_unit.append_option(body.org_unit.as_deref());
                r.service.append_option(body.service.as_deref());
                r.channel.append_option(body.channel.as_deref());
                r.language.append_option(body.language.as_deref());
                r.contact_requested.append_value(body.contact_requested);
                r.text.append_option(text.map(|t| t.text.as_str()));
                r.redactions
                    .append_value(text.map_or(0, |t| t.redactions as i32));
                r.redaction_kinds
                    .append_value(text.map_or("", |t| t.kinds.as_str()));
                r.load_id.append_value(load_id);
                r.source_object.append_value(object);
                r.source_row.append_value(line as i64);
            });
            return;
        }
        {
            let tw = self.tables.get_mut(RESPONSES).expect("responses writer");
            tw.append(part, 260 + object.len(), |rows| {
                let Rows::Responses(r) = rows else {
                    unreachable!()
                };
                r.response_key.append_value(key);
                r.row_hash.append_value(head.row_hash);
                r.pipeline.append_value(pipeline);
                r.source_system.append_value(&norm.system);
                r.survey_id.append_value(&norm.survey);
                r.instrument.append_value(&norm.instrument);
                r.instrument_version.append_value(&norm.version);
                r.submitted_at
                    .append_value(head.submitted_at.timestamp_micros());
                r.started_at
                    .append_option(body.started_at.map(|t| t.timestamp_micros()));
                r.classification_year.append_value(head.classification_year);
                r.municipality.append_option(head.municipality.as_deref());
                r.cooperation_area
                    .append_option(head.cooperation_area.as_deref());
                r.local_area.append_option(body.local_area.as_deref());
                r.org_unit.append_option(body.org_unit.as_deref());
                r.service.append_option(body.service.as_deref());
                r.channel.append_option(body.channel.as_deref());
                r.respondent_role
                    .append_option(body.respondent_role.as_deref());
                r.language.append_option(body.language.as_deref());
                r.age_group.append_option(body.age_group.as_deref());
                r.gender.append_option(body.gender.as_deref());
                r.nps.append_option(body.nps);
                r.completion.append_value(body.completion);
                r.load_id.append_value(load_id);
                r.source_object.append_value(object);
                r.source_row.append_value(line as i64);
            });
        }
        if !body.answers.is_empty() {
            let tw = self.tables.get_mut(ANSWERS).expect("answers writer");
            let syms: Vec<(u16, u16)> = body
                .answers
                .iter()
                .map(|a| {
                    let item = *self
                        .symbols
                        .entry((a.item, u16::MAX))
                        .or_insert_with(|| tw.symbol(norm.item_code(a.item)));
                    let opt = match a.option {
                        None => u16::MAX,
                        Some(o) => *self
                            .symbols
                            .entry((a.item, o))
                            .or_insert_with(|| tw.symbol(norm.option_code(a.item, o))),
                    };
                    (item, opt)
                })
                .collect();
            tw.append(part, 64 * body.answers.len(), |rows| {
                let Rows::Answers(r) = rows else {
                    unreachable!()
                };
                for (a, (item, option)) in body.answers.iter().zip(syms) {
                    r.rows.push(CompactAnswer {
                        key: head.key,
                        item,
                        option,
                        value: a.value,
                        status: a.status.as_str(),
                        raw: a.raw.as_deref().map(Box::from),
                    });
                }
            });
        }
        if !body.texts.is_empty() {
            let tw = self.tables.get_mut(COMMENTS).expect("comments writer");
            let bytes: usize = texts.iter().map(|t| 120 + t.text.len()).sum();
            tw.append(part, bytes, |rows| {
                let Rows::Comments(r) = rows else {
                    unreachable!()
                };
                for ((item, _), s) in body.texts.iter().zip(texts) {
                    r.response_key.append_value(key);
                    r.instrument.append_value(&norm.instrument);
                    r.field.append_value(norm.item_code(*item));
                    r.text.append_value(&s.text);
                    r.redactions.append_value(s.redactions as i32);
                    r.redaction_kinds.append_value(&s.kinds);
                    r.load_id.append_value(load_id);
                }
            });
        }
    }
}

struct Ctx<'a> {
    p: &'a Pipeline,
    load_id: String,
    scrubber: Scrubber,
    writers: Option<Writers>,
    /// the keys this run has seen, with the row that had each first
    seen: FastMap<u128, SeenRow>,
    /// rows of the current object quarantined as conflicting with an earlier row
    conflicts: u64,
    /// rows keyed by their content: how often each content has occurred in the current object
    occurrences: FastMap<u128, u32>,
    quarantined_before: FastSet<(u128, i64)>,
    /// keys whose row this run quarantined after reading its head
    broken: FastSet<u128>,
    /// (key, row hash) of the rows this run quarantined, with the object they were first in
    quarantined_now: HashMap<(u128, i64), String>,
    existing: Existing,
    to_delete: HashMap<Partition, HashSet<u128>>,
    reasons: BTreeMap<String, u64>,
    range: Option<(String, String)>,
    outside_range: u64,
    examples: Vec<String>,
    now_micros: i64,
}

/// The first row of this run with a key: its hash, object (by the order read) and row.
#[derive(Clone, Copy)]
struct SeenRow {
    hash: i64,
    object: u32,
    line: u32,
}

impl Ctx<'_> {
    fn quarantine(
        &mut self,
        norm: &Normalizer,
        object: &str,
        line: u64,
        rec: &ByteRecord,
        problems: &[Problem],
        counts: &mut Counts,
    ) -> Result<(), RunError> {
        let key = norm.key_of(rec);
        let hash = norm.hash_of(rec);
        // a row quarantined with the same content by an earlier run, or from another object of
        // this run (a cumulative export repeats it), is that row again: a duplicate. Within one
        // object every broken row is quarantined and counts, identical ones too.
        if let Some(k) = key {
            let repeat = self.quarantined_before.contains(&(k, hash))
                || self
                    .quarantined_now
                    .get(&(k, hash))
                    .is_some_and(|o| o.as_str() != object);
            if repeat {
                counts.duplicate += 1;
                return Ok(());
            }
            self.quarantined_now
                .entry((k, hash))
                .or_insert_with(|| object.to_string());
        }
        counts.quarantined += 1;
        let mut codes: Vec<&str> = problems.iter().map(|p| p.code).collect();
        codes.dedup();
        for c in &codes {
            *self.reasons.entry(c.to_string()).or_default() += 1;
        }
        let message = problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        if self.examples.len() < 10 {
            self.examples
                .push(format!("{object} row {line}: {message}"));
        }
        let Some(w) = self.writers.as_mut() else {
            return Ok(());
        };
        let part = Partition {
            period: self.load_id.clone(),
            county: String::new(),
        };
        let tw = w.shards[0]
            .tables
            .get_mut(QUARANTINE)
            .expect("quarantine writer");
        let (pipeline, now) = (&self.p.name, self.now_micros);
        let record = norm.quarantine_json(rec, &self.scrubber);
        tw.append(&part, 300 + message.len() + record.len(), |rows| {
            let Rows::Quarantine(r) = rows else {
                unreachable!()
            };
            r.pipeline.append_value(pipeline);
            r.source_object.append_value(object);
            r.source_row.append_value(line as i64);
            r.response_key.append_option(key.map(key_hex));
            r.row_hash.append_value(hash);
            r.reason_codes.append_value(codes.join(","));
            r.message.append_value(&message);
            r.record.append_value(&record);
            r.quarantined_at.append_value(now);
        });
        Ok(())
    }

    /// The first, sequential step for a row: is it a duplicate, a conflict, to quarantine, or to
    /// write? Rows keyed by their content get the key of their occurrence here.
    fn decide(
        &mut self,
        norm: &Normalizer,
        head: &mut Result<Head, Vec<Problem>>,
        object: u32,
        line: u64,
        counts: &mut Counts,
    ) -> Decision {
        counts.read += 1;
        let head = match head {
            Ok(h) => h,
            Err(_) => return Decision::Quarantine,
        };
        if norm.keyed_by_content() {
            let n = self.occurrences.entry(head.key).or_default();
            if *n > 0 {
                head.key = norm.occurrence_key(head.row_hash, *n);
            }
            *n += 1;
        }
        let this = SeenRow {
            hash: head.row_hash,
            object,
            line: u32::try_from(line).unwrap_or(u32::MAX),
        };
        // the same response in a newer object of this run (read first) wins; within one object a
        // row with a seen key is a duplicate if it is the same, and a conflict if it is not
        if let Some(first) = self.seen.get(&head.key) {
            return if first.object == object && first.hash != head.row_hash {
                Decision::Conflict(first.line)
            } else {
                Decision::Repeat
            };
        }
        if let Some((from, to)) = &self.range
            && (head.partition.period < *from || head.partition.period > *to)
        {
            self.outside_range += 1;
            return Decision::Skip;
        }
        self.seen.insert(head.key, this);
        match self.existing.keys.get(&head.key) {
            Some((hash, _)) if *hash == head.row_hash => {
                counts.duplicate += 1;
                Decision::Skip
            }
            Some((_, part)) => Decision::Write(Some(self.existing.parts[*part as usize].clone())),
            None => Decision::Write(None),
        }
    }

    /// The last, sequential step: write the mapped row or quarantine it.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        norm: &Normalizer,
        object: &str,
        line: u64,
        rec: &ByteRecord,
        head: &Result<Head, Vec<Problem>>,
        decision: Decision,
        mapped: Option<&Result<Mapped, Vec<Problem>>>,
        counts: &mut Counts,
    ) -> Result<bool, RunError> {
        match (decision, head, mapped) {
            (Decision::Skip, _, _) => Ok(false),
            (Decision::Repeat, Ok(head), _) => {
                // a repeat of a row this run quarantined is no duplicate of a loaded row
                let problems = if self.broken.contains(&head.key) {
                    norm.body(rec, head).err()
                } else {
                    None
                };
                match problems {
                    Some(problems) => self.quarantine(norm, object, line, rec, &problems, counts),
                    None => {
                        counts.duplicate += 1;
                        Ok(())
                    }
                }
                .map(|_| false)
            }
            (Decision::Conflict(first), Ok(_), _) => {
                self.conflicts += 1;
                let problem = Problem {
                    code: CONFLICTING_DUPLICATE,
                    column: norm.id_column().map(str::to_string),
                    message: format!(
                        "the response id of row {first} of this object, with other content: row {first} is the one used"
                    ),
                };
                self.quarantine(norm, object, line, rec, &[problem], counts)
                    .map(|_| false)
            }
            (Decision::Quarantine, Err(problems), _) => self
                .quarantine(norm, object, line, rec, problems, counts)
                .map(|_| false),
            (Decision::Write(_), Ok(_), Some(Err(problems)))
                if problems.iter().any(|p| p.code == IDENTIFYING_VALUE) =>
            {
                let p = problems
                    .iter()
                    .find(|p| p.code == IDENTIFYING_VALUE)
                    .expect("found");
                Err(RunError::Config(format!(
                    "{}: {object} row {line}: {p} — nothing was written",
                    self.p.file.display()
                )))
            }
            (Decision::Write(_), Ok(head), Some(Err(problems))) => {
                self.broken.insert(head.key);
                self.quarantine(norm, object, line, rec, problems, counts)
                    .map(|_| false)
            }
            (Decision::Write(previous), Ok(head), Some(Ok(_))) => {
                match previous {
                    Some(part) => {
                        counts.updated += 1;
                        self.to_delete.entry(part).or_default().insert(head.key);
                    }
                    None => counts.loaded += 1,
                }
                Ok(true)
            }
            _ => unreachable!("a decision to write comes with a head and a mapped body"),
        }
    }
}

/// Append the rows to write (index into the chunk, index into the mapped bodies) to their
/// shards' writers, the shards in parallel; each shard takes its rows in input order.
#[allow(clippy::too_many_arguments)]
fn append_rows(
    w: &mut Writers,
    p: &Pipeline,
    load_id: &str,
    norm: &Normalizer,
    object: &str,
    chunk: &[(u64, ByteRecord)],
    heads: &[Result<Head, Vec<Problem>>],
    mapped: &[Result<Mapped, Vec<Problem>>],
    rows: &[(usize, usize)],
) {
    let n = w.shards.len();
    let fill = |i: usize, shard: &mut Shard| {
        for &(row, m) in rows {
            let head = heads[row].as_ref().expect("a row to write has a head");
            if shard_of(&head.partition, n) != i {
                continue;
            }
            let (body, texts) = mapped[m].as_ref().expect("a row to write was mapped");
            shard.write_row(
                &p.name,
                load_id,
                norm,
                object,
                chunk[row].0,
                head,
                body,
                texts,
            );
        }
    };
    if n == 1 || rows.len() < 1024 {
        for (i, shard) in w.shards.iter_mut().enumerate() {
            fill(i, shard);
        }
        return;
    }
    std::thread::scope(|s| {
        let mut shards = w.shards.iter_mut().enumerate();
        let first = shards.next();
        for (i, shard) in shards {
            s.spawn(move || fill(i, shard));
        }
        if let Some((i, shard)) = first {
            fill(i, shard);
        }
    });
}

/// A chunk of records read ahead: the buffer, how many of its records were read (0 at the end),
/// the bytes of the object read so far, and (at the end) the object's resume point.
type ReadChunk = Result<
    (
        Vec<(u64, ByteRecord)>,
        usize,
        u64,
        Option<crate::format::csv::ResumePoint>,
    ),
    String,
>;

/// The receiving and returning ends of a reading thread.
struct ReadAhead {
    full: std::sync::mpsc::Receiver<ReadChunk>,
    empty: std::sync::mpsc::Sender<Vec<(u64, ByteRecord)>>,
}

/// Read `records` on a thread of its own, [`CHUNK`] records at a time into buffers that the
/// receiver hands back; two buffers circulate, so one chunk is read while the other is
/// processed. The thread ends after the last (empty) chunk or an error, or when the receiver
/// is dropped.
fn read_ahead(mut records: crate::format::Records) -> ReadAhead {
    let (full_tx, full) = std::sync::mpsc::sync_channel::<ReadChunk>(1);
    let (empty, empty_rx) = std::sync::mpsc::channel::<Vec<(u64, ByteRecord)>>();
    for _ in 0..2 {
        let _ = empty.send((0..CHUNK).map(|_| (0, ByteRecord::new())).collect());
    }
    std::thread::spawn(move || {
        while let Ok(mut chunk) = empty_rx.recv() {
            let mut n = 0;
            while n < CHUNK {
                let (line, rec) = &mut chunk[n];
                match records.read_into(rec) {
                    Ok(Some(l)) => {
                        *line = l;
                        n += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        return;
                    }
                }
            }
            let bytes = records.bytes_read();
            let point = if n == 0 { records.resume_point() } else { None };
            if full_tx.send(Ok((chunk, n, bytes, point))).is_err() || n == 0 {
                return;
            }
        }
    });
    ReadAhead { full, empty }
}

/// Keys of `p`'s stored responses in the periods `from`..=`to` that this run did not see.
async fn stale_keys(
    wh: &Warehouse,
    p: &Pipeline,
    table_files: &BTreeMap<&'static str, HashMap<Partition, Vec<TableFile>>>,
    from: &str,
    to: &str,
    seen: &FastMap<u128, SeenRow>,
) -> Result<HashMap<Partition, HashSet<u128>>, WarehouseError> {
    let mut out: HashMap<Partition, HashSet<u128>> = HashMap::new();
    let table = keyed_tables(p.kind)[0];
    let Some(index) = table_files.get(table) else {
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

/// The hash of what decides how a pipeline's rows are mapped: its file and the program version.
fn config_hash(p: &Pipeline) -> String {
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
fn resume_points<'a>(
    runs: &[&'a RunRecord],
    config: &str,
) -> Vec<(&'a str, crate::format::csv::ResumePoint)> {
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

/// What the numeric dates in columns `cols` of `obj` say about their order (a read of the whole
/// object, made only for objects whose times are written `a/b/yyyy` or the like).
async fn date_evidence(
    src: &source::Source,
    p: &Pipeline,
    obj: &SourceObject,
    cols: &[usize],
    sep: char,
) -> Result<crate::normalize::time::OrderEvidence, RunError> {
    let mut opened = open_object(src, p, obj).await?;
    let mut ev = crate::normalize::time::OrderEvidence::default();
    let mut rec = ByteRecord::new();
    while opened
        .records
        .read_into(&mut rec)
        .map_err(|message| {
            RunError::Format(FormatError::Unreadable {
                object: obj.name.clone(),
                message,
            })
        })?
        .is_some()
    {
        for &c in cols {
            if let Some(pair) = rec
                .get(c)
                .and_then(|f| std::str::from_utf8(f).ok())
                .and_then(|f| crate::normalize::time::leading_pair(f, sep))
            {
                ev.add(pair);
            }
        }
    }
    Ok(ev)
}

/// Open an object's records; a long export's rows become one record per response.
async fn open_object(
    src: &source::Source,
    p: &Pipeline,
    obj: &SourceObject,
) -> Result<source::Opened, RunError> {
    let mut opened = src.records(obj).await.map_err(|e| match e {
        SourceError::Format(f) => RunError::Format(f),
        other => RunError::Source(other),
    })?;
    if let (Some(long), Some(id)) = (&p.mapping.long, &p.mapping.response_id.0.column) {
        let records = std::mem::replace(
            &mut opened.records,
            crate::format::Records::Table(crate::format::table::TableObject::new(
                Vec::new(),
                Vec::new(),
                String::new(),
            )),
        );
        opened.records =
            crate::format::long::pivot(records, long, id, &obj.name).map_err(|e| match e {
                FormatError::Config(m) => RunError::Config(format!("{}: {m}", p.file.display())),
                other => RunError::Format(other),
            })?;
    }
    Ok(opened)
}

/// "'a'" or "'a' and 'b'": the names of columns, for messages.
fn recs_names_of(norm: &Normalizer, cols: &[usize]) -> String {
    cols.iter()
        .map(|&c| format!("'{}'", norm.column_name(c)))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// What the sequential dedupe step decided for a row.
enum Decision {
    Skip,
    /// a key this run has seen: a duplicate, unless that row was quarantined (then this one is
    /// mapped and quarantined too if it is as broken)
    Repeat,
    /// the key of an earlier row of the same object (its row number) with other content
    Conflict(u32),
    Quarantine,
    /// write it; with the partition of the stored version it replaces
    Write(Option<Partition>),
}

/// A row's body and its scrubbed open texts (computed in parallel).
type Mapped = (crate::normalize::Body, Vec<crate::privacy::Scrubbed>);

/// Map `f` over `items` on every core, keeping the order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if threads < 2 || items.len() < 1024 {
        return items.iter().map(&f).collect();
    }
    let size = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(size)
            .map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a mapping thread panicked"))
            .collect()
    })
}

/// Run (or, with `dry_run`, plan) one pipeline.
pub async fn run_pipeline(
    wh: &Warehouse,
    p: &Pipeline,
    opts: &RunOptions,
) -> Result<RunReport, RunError> {
    let started = Utc::now();
    let clock = Instant::now();
    let load_id = ledger::new_run_id();
    let catalog = Catalog::embedded();
    let exists = wh.exists().await?;
    let mut restored = Vec::new();
    if !opts.dry_run {
        wh.ensure_tables().await?;
        restored = wh.recover().await?;
    }
    let runs = if exists || !opts.dry_run {
        ledger::read_runs(wh).await?
    } else {
        Vec::new()
    };
    let committed: BTreeMap<String, u64> = runs
        .last()
        .map(|r| r.table_versions.clone())
        .unwrap_or_default();
    let next_seq = runs.last().map(|r| r.seq + 1).unwrap_or(1);
    // the warehouse's key secret (made at its first run); the test hook builds a warehouse
    // as palaute made them before keys were keyed, for the migration's test
    let secret = if super::failpoint::skip("key-secret") {
        None
    } else {
        Some(keys::for_run(wh, &committed, !opts.dry_run).await?)
    };
    let mut manifest: HashMap<String, String> = HashMap::new();
    let backfill = opts.backfill.is_some();
    // objects loaded by runs that still count (a rollback undoes the runs after its target)
    let counted: Vec<&RunRecord> = super::rollback::effective_runs(&runs)
        .into_iter()
        .filter(|r| r.pipeline == p.name && r.status != RunStatus::Failed)
        .collect();
    for r in &counted {
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
        resume_points(&counted, &config)
    };

    let src = source::open(p).await?;
    let listed = src.list(&manifest, backfill).await?;
    let mut plans: Vec<ObjectPlan> = Vec::new();
    let mut to_read: Vec<(SourceObject, &'static str)> = Vec::new();
    let mut records: Vec<ObjectRecord> = Vec::new();
    for o in &listed {
        let state = match manifest.get(&o.name).filter(|_| !backfill) {
            Some(f) if *f == o.fingerprint() => "unchanged",
            Some(_) => "changed",
            None => "new",
        };
        if state == "unchanged" {
            plans.push(ObjectPlan {
                name: o.name.clone(),
                state,
                ..Default::default()
            });
            continue;
        }
        to_read.push((o.clone(), state));
    }
    // newest first, so that a response repeated in several objects is taken from the newest
    to_read.sort_by(|a, b| {
        b.0.last_modified
            .cmp(&a.0.last_modified)
            .then(b.0.name.cmp(&a.0.name))
    });
    let objects_skipped = plans.len() as u64;

    // what the warehouse holds, at the committed versions
    let mut existing = Existing {
        table: keyed_tables(p.kind)[0],
        files: HashMap::new(),
        loaded: HashSet::new(),
        keys: FastMap::default(),
        parts: Vec::new(),
    };
    let mut table_files: BTreeMap<&'static str, HashMap<Partition, Vec<TableFile>>> =
        BTreeMap::new();
    let mut quarantined_before = FastSet::default();
    let mut tables = BTreeMap::new();
    if (exists || !opts.dry_run) && !to_read.is_empty() {
        for name in keyed_tables(p.kind).iter().copied().chain([QUARANTINE]) {
            // a plan reads the committed versions; a run, after recovery, the latest (whose
            // content is the committed one) so that its commits follow them
            let v = opts
                .dry_run
                .then(|| committed.get(name).copied().unwrap_or(0));
            let t = wh.table(name, v).await?;
            let files = wh.files(&t).await?;
            if name == QUARANTINE {
                let batches = wh
                    .read_files(
                        QUARANTINE,
                        &files,
                        &["pipeline", "response_key", "row_hash"],
                    )
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
                            quarantined_before.insert((key, h.value(i)));
                        }
                    }
                }
            } else {
                table_files.insert(name, index_by_partition(files));
            }
            tables.insert(name, t);
        }
        existing.files = table_files
            .get(keyed_tables(p.kind)[0])
            .cloned()
            .unwrap_or_default();
    }

    let mut ctx = Ctx {
        p,
        load_id: load_id.clone(),
        scrubber: Scrubber::new(&p.privacy.scrub),
        writers: (!opts.dry_run).then(|| Writers::new(wh, &load_id, p.kind)),
        seen: FastMap::default(),
        occurrences: FastMap::default(),
        conflicts: 0,
        quarantined_before,
        broken: FastSet::default(),
        quarantined_now: HashMap::new(),
        existing,
        to_delete: HashMap::new(),
        reasons: BTreeMap::new(),
        range: opts.backfill.clone(),
        outside_range: 0,
        examples: Vec::new(),
        now_micros: started.timestamp_micros(),
    };

    let total_bytes: u64 = to_read.iter().map(|(o, _)| o.size).sum();
    let bar = (opts.progress && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total_bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_message(p.name.clone());
        b
    });

    let mut counts = Counts::default();
    let result: Result<(), RunError> = async {
        let mut done_bytes = 0u64;
        for (object_no, (obj, state)) in to_read.iter().enumerate() {
            let mut opened = open_object(&src, p, obj).await?;
            let recs = &mut opened.records;
            // the last object read may skip what an earlier object already loaded (a row seen
            // in this run must not be skipped in favour of an older object read after it)
            let mut resumed_from = None;
            if object_no + 1 == to_read.len() && !points.is_empty() {
                let pts: Vec<_> = points.iter().map(|(_, pt)| pt.clone()).collect();
                if let Some(i) = recs.resume(&pts).map_err(RunError::Format)? {
                    let (name, pt) = &points[i];
                    resumed_from = Some((name.to_string(), pt.rows));
                }
            }
            // an object none of whose header names a mapped column is not an export of this
            // survey (another file, a wrong delimiter, garbage): bad data, not configuration
            let mapped = p.mapping.columns();
            if !mapped.is_empty() && !mapped.iter().any(|c| recs.names().contains(c)) {
                return Err(RunError::NotAnExport(not_an_export(
                    &obj.name,
                    recs.names(),
                    mapped.len(),
                    &recs.describe(),
                )));
            }
            let mut norm = Normalizer::new(p, catalog, recs.names(), &obj.name, secret.clone()).map_err(|errs| {
                RunError::Config(format!(
                    "{}: {}{}: {}",
                    p.file.display(),
                    obj.name,
                    recs.part().map(|s| format!(" {s}")).unwrap_or_default(),
                    errs.join("; ")
                ))
            })?;
            let mut oc = Counts::default();
            ctx.occurrences.clear();
            if let Some(w) = ctx.writers.as_mut() {
                for shard in &mut w.shards {
                    shard.symbols.clear();
                }
            }
            let ignored = unmapped_columns(&p.mapping, recs.names());
            let mut decoded = recs.describe();
            let mut date_warning = None;
            tracing::info!(pipeline = %p.name, object = %obj.name, state, %decoded, "reading");
            if let Some((from, rows)) = &resumed_from {
                tracing::info!(pipeline = %p.name, object = %obj.name, from = %from, rows_not_read = rows, "resumed where an earlier object's bytes end");
            }
            // records are read into reused buffers, a chunk at a time, so that the keys of the
            // partitions a chunk touches can be loaded together; a thread of its own reads (parses)
            // the next chunk while this one is processed
            let reader = read_ahead(opened.records);
            // wall time of each step, for the debug log
            let mut phase = [0f64; 6];
            let mut tick = Instant::now();
            let mut lap = |i: usize, phase: &mut [f64; 6]| {
                phase[i] += tick.elapsed().as_secs_f64();
                tick = Instant::now();
            };
            let point;
            loop {
                let (buffer, n, bytes_read, end) = match reader.full.recv() {
                    Ok(Ok(c)) => c,
                    Ok(Err(message)) => {
                        return Err(RunError::Format(FormatError::Unreadable {
                            object: obj.name.clone(),
                            message,
                        }));
                    }
                    Err(_) => panic!("the reading thread stopped without a word"),
                };
                if n == 0 {
                    point = end;
                    break;
                }
                let chunk = &buffer[..n];
                if oc.read == 0
                    && let Some((cols, order, sep)) = norm.date_columns()
                    && matches!(src, source::Source::Files(_))
                    && chunk.iter().any(|(_, r)| {
                        cols.iter().any(|&c| {
                            r.get(c)
                                .and_then(|f| std::str::from_utf8(f).ok())
                                .and_then(|f| crate::normalize::time::leading_pair(f, sep))
                                .is_some()
                        })
                    })
                {
                    // numeric dates: which order they are in is a property of the whole column,
                    // so the column is read once before its first row is decided
                    let ev = date_evidence(&src, p, obj, &cols, sep).await?;
                    let column = recs_names_of(&norm, &cols);
                    decoded.push_str(&format!("; dates in {column}: {}", ev.describe()));
                    if ev.against(order) > 0 {
                        let other = match order {
                            crate::normalize::time::Order::DayFirst => "month-first",
                            crate::normalize::time::Order::MonthFirst => "day-first",
                        };
                        let what = format!(
                            "{column} has dates that only {other} reads, where the format reads {}: {}",
                            order.name(),
                            ev.describe()
                        );
                        if p.quality.ambiguous_dates == crate::config::AmbiguousDates::Fail {
                            return Err(RunError::NotAnExport(format!(
                                "{}: {what} (quality.ambiguous_dates: fail)",
                                obj.name
                            )));
                        }
                        date_warning = Some(format!(
                            "{what}; the {} rows that read either way are quarantined as ambiguous_date{}",
                            ev.either,
                            if matches!(norm.date_format(), Some(crate::normalize::time::TimeFormat::Auto)) {
                                " (the `auto` format reads a/b/yyyy month-first: for day-first dates declare `format: \"%d/%m/%Y %H:%M\"` or the like)"
                            } else {
                                ""
                            }
                        ));
                        norm.set_mixed_dates(ev);
                    }
                }
                lap(0, &mut phase);
                let mut heads: Vec<Result<Head, Vec<Problem>>> =
                    par_map(chunk, |(_, r)| norm.head(r));
                lap(1, &mut phase);
                let missing: BTreeSet<Partition> = heads
                    .iter()
                    .filter_map(|h| h.as_ref().ok())
                    .map(|h| &h.partition)
                    .filter(|p| !ctx.existing.loaded.contains(*p))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    ctx.existing.load(wh, missing).await?;
                }
                lap(2, &mut phase);
                let decisions: Vec<Decision> = heads
                    .iter_mut()
                    .zip(chunk)
                    .map(|(h, (line, _))| ctx.decide(&norm, h, object_no as u32, *line, &mut oc))
                    .collect();
                lap(3, &mut phase);
                let scrubber = &ctx.scrubber;
                let work: Vec<usize> = decisions
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| matches!(d, Decision::Write(_)))
                    .map(|(i, _)| i)
                    .collect();
                let mapped: Vec<Result<Mapped, Vec<Problem>>> = par_map(&work, |&i| {
                    let head = heads[i].as_ref().expect("a row to write has a head");
                    norm.body(&chunk[i].1, head).map(|body| {
                        let texts = body.texts.iter().map(|(_, t)| scrubber.scrub(t)).collect();
                        (body, texts)
                    })
                });
                lap(4, &mut phase);
                let mut next = 0;
                let mut rows = Vec::with_capacity(work.len());
                for (row, (((line, rec), head), decision)) in
                    chunk.iter().zip(&heads).zip(decisions).enumerate()
                {
                    let m = matches!(decision, Decision::Write(_)).then(|| {
                        next += 1;
                        next - 1
                    });
                    let mr = m.map(|m| &mapped[m]);
                    if ctx.apply(&norm, &obj.name, *line, rec, head, decision, mr, &mut oc)? {
                        rows.push((row, m.expect("a row to write was mapped")));
                    }
                }
                if let Some(w) = ctx.writers.as_mut() {
                    append_rows(
                        w,
                        p,
                        &ctx.load_id,
                        &norm,
                        &obj.name,
                        chunk,
                        &heads,
                        &mapped,
                        &rows,
                    );
                    w.spill_if_over_budget()?;
                }
                lap(5, &mut phase);
                if let Some(b) = &bar {
                    b.set_position(done_bytes + bytes_read.min(obj.size));
                    b.set_message(format!(
                        "{} object {}/{} rows {}",
                        p.name,
                        object_no + 1,
                        to_read.len(),
                        counts.read + oc.read
                    ));
                }
                failpoint("write")?;
                // the buffer goes back to the reader (which has gone when the object ended)
                let _ = reader.empty.send(buffer);
            }
            done_bytes += obj.size;
            tracing::debug!(
                read_s = phase[0],
                head_s = phase[1],
                existing_s = phase[2],
                decide_s = phase[3],
                body_s = phase[4],
                write_s = phase[5],
                "object phases"
            );
            tracing::info!(pipeline = %p.name, object = %obj.name, read = oc.read, new = oc.loaded, updated = oc.updated, duplicate = oc.duplicate, quarantined = oc.quarantined, "object done");
            records.push(ObjectRecord {
                name: obj.name.clone(),
                fingerprint: obj.fingerprint(),
                state: state.to_string(),
                rows: oc.read,
                // only the first object read: every row before its point is stored as it has it
                resume: point.filter(|_| object_no == 0).map(|point| ledger::Resume {
                    point,
                    config: config.clone(),
                }),
                resumed_from: resumed_from.clone(),
            });
            counts.read += oc.read;
            counts.loaded += oc.loaded;
            counts.updated += oc.updated;
            counts.duplicate += oc.duplicate;
            counts.quarantined += oc.quarantined;
            let mut warnings: Vec<String> = norm
                .always_chosen(crate::privacy::disclosure::DEFAULT_MIN_N)
                .into_iter()
                .map(|c| format!(
                    "every one of its rows counts column '{c}' as chosen: if it writes \"not chosen\" in a way not recognised, say what \"chosen\" is with `selected:`"
                ))
                .collect();
            warnings.extend(date_warning.take());
            let bands = norm.straddling_age_bands();
            if !bands.is_empty() {
                warnings.push(format!(
                    "age bands that do not nest in a national age group, stored as age group not known: {} (national groups: {})",
                    bands
                        .iter()
                        .map(|(b, n)| format!("'{b}' ({n} rows)"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    catalog.list("age_group").codes().join(", ")
                ));
            }
            let conflicts = std::mem::take(&mut ctx.conflicts);
            if conflicts > 0 {
                warnings.push(format!(
                    "{conflicts} row(s) have the response id of an earlier row of the object with other content (quarantined as {CONFLICTING_DUPLICATE}); if '{}' is not an id of its own (a time stamp, say), key rows by their content: `response_id: {{row_hash: true}}`",
                    norm.id_column().unwrap_or_default()
                ));
            }
            plans.push(ObjectPlan {
                name: obj.name.clone(),
                state,
                decoded,
                counts: oc,
                ignored_columns: ignored,
                resumed_from,
                warnings,
            });
        }
        Ok(())
    }
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    plans.sort_by(|a, b| a.name.cmp(&b.name));

    let mut report = RunReport {
        pipeline: p.name.clone(),
        run_id: load_id.clone(),
        status: RunStatus::NoChange,
        counts: counts.clone(),
        objects: plans,
        reasons: ctx.reasons.clone(),
        examples: ctx.examples.clone(),
        table_versions: committed.clone(),
        seconds: 0.0,
        restored,
        outside_range: ctx.outside_range,
        removed: 0,
        periods: BTreeSet::new(),
        over_threshold: None,
        warnings: Vec::new(),
    };
    if listed.is_empty()
        && let crate::config::SourceConfig::Files(f) = &p.source
    {
        report.warnings.push(format!(
            "no source object matches glob '{}' in {}: is the glob right? (palaute status says how long since new data arrived)",
            f.glob, f.location
        ));
    }
    // the share is of the objects' rows, the rows not read again (resumed) included: they
    // passed before, as they would have if read
    let rows = counts.read
        + report
            .objects
            .iter()
            .filter_map(|o| o.resumed_from.as_ref().map(|(_, n)| *n))
            .sum::<u64>();
    let quality = match &result {
        Ok(()) if rows > 0 => {
            let pct = counts.quarantined as f64 * 100.0 / rows as f64;
            (pct > p.quality.max_quarantined_pct).then(|| RunError::Quality {
                pipeline: p.name.clone(),
                quarantined: counts.quarantined,
                read: rows,
                pct,
                max: p.quality.max_quarantined_pct,
                reasons: reasons_text(&ctx.reasons),
            })
        }
        _ => None,
    };
    let failure = match (result, quality) {
        (Err(e), _) => Some(e),
        (Ok(()), Some(q)) => Some(q),
        _ => None,
    };

    if opts.dry_run {
        report.seconds = clock.elapsed().as_secs_f64();
        return match failure {
            Some(q @ RunError::Quality { .. }) => {
                report.over_threshold = Some(q.to_string());
                Ok(report)
            }
            None => Ok(report),
            Some(e) => Err(e),
        };
    }
    let mut writers = ctx.writers.take().expect("writers exist outside dry runs");
    let failed = Failure {
        wh,
        p,
        load_id: &load_id,
        seq: next_seq,
        started,
        counts: &counts,
        objects: &records,
        objects_skipped,
    };
    if let Some(e) = failure {
        discard_all(wh, writers).await;
        failed.record(&e).await;
        return Err(e);
    }

    if let Some((from, to)) = &opts.backfill {
        // stored rows of the periods that the source no longer holds
        let stale = stale_keys(wh, p, &table_files, from, to, &ctx.seen).await;
        let stale = match stale {
            Ok(s) => s,
            Err(e) => {
                let e = RunError::from(e);
                discard_all(wh, writers).await;
                failed.record(&e).await;
                return Err(e);
            }
        };
        for (part, keys) in stale {
            report.removed += keys.len() as u64;
            ctx.to_delete.entry(part).or_default().extend(keys);
        }
    }
    let outcome = commit_run(
        wh,
        &mut writers,
        &tables,
        &table_files,
        &ctx.to_delete,
        &load_id,
    )
    .await;
    for part in ctx.to_delete.keys() {
        report.periods.insert(part.period.clone());
    }
    let (versions, committed_now) = match outcome {
        Ok((v, c, periods)) => {
            report.periods.extend(periods);
            (v, c)
        }
        Err((e, written, committed_now)) => {
            for (name, files) in &written {
                writer::discard(&wh.loc, name, files).await;
            }
            wh.restore_all(&committed_now).await;
            failed.record(&e).await;
            return Err(e);
        }
    };
    let mut table_versions = committed.clone();
    for (k, v) in versions {
        table_versions.insert(k.to_string(), v);
    }
    let changed = counts.loaded + counts.updated + counts.quarantined + report.removed > 0;
    let status = if changed {
        RunStatus::Succeeded
    } else {
        RunStatus::NoChange
    };
    let rec = RunRecord {
        run_id: load_id.clone(),
        seq: next_seq,
        pipeline: p.name.clone(),
        started_at: started,
        finished_at: Utc::now(),
        status,
        message: opts
            .backfill
            .as_ref()
            .map(|(f, t)| format!("backfill {f}..{t}")),
        counts: counts.clone(),
        objects_read: records.len() as u64,
        objects_skipped,
        // a backfill applied only some periods of its objects: it does not mark them loaded
        objects: if backfill {
            Vec::new()
        } else {
            records.clone()
        },
        table_versions: table_versions.clone(),
        palaute_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let appended = async {
        // the marts of the years this run changed are owed until an aggregation computes them
        if p.kind == crate::config::PipelineKind::Survey && !report.periods.is_empty() {
            owed::add(wh, &owed::years_of(&report.periods)).await?;
        }
        failpoint("ledger")?;
        ledger::append(wh, &rec).await.map_err(RunError::from)
    }
    .await;
    if let Err(e) = appended {
        wh.restore_all(&committed_now).await;
        failed.record(&e).await;
        return Err(e);
    }
    report.status = status;
    report.table_versions = table_versions;
    report.seconds = clock.elapsed().as_secs_f64();
    Ok(report)
}

type Written = Vec<(&'static str, Vec<WrittenFile>)>;
type CommitFailure = (RunError, Written, Vec<(&'static str, u64)>);
/// New table versions, the tables committed (with their versions before), the periods written.
type Committed = (
    BTreeMap<&'static str, u64>,
    Vec<(&'static str, u64)>,
    BTreeSet<String>,
);

/// Rewrite files holding updated responses, then commit every table that changed.
async fn commit_run(
    wh: &Warehouse,
    writers: &mut Writers,
    tables: &BTreeMap<&'static str, deltalake_core::DeltaTable>,
    table_files: &BTreeMap<&'static str, HashMap<Partition, Vec<TableFile>>>,
    to_delete: &HashMap<Partition, HashSet<u128>>,
    load_id: &str,
) -> Result<Committed, CommitFailure> {
    let mut removes: BTreeMap<&'static str, Vec<Action>> = BTreeMap::new();
    let rewrite = async {
        for name in [RESPONSES, ANSWERS, COMMENTS, FEEDBACK] {
            let Some(index) = table_files.get(name) else {
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
        let t = &tables[name];
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

async fn discard_all(wh: &Warehouse, mut writers: Writers) {
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
struct Failure<'a> {
    wh: &'a Warehouse,
    p: &'a Pipeline,
    load_id: &'a str,
    seq: i64,
    started: chrono::DateTime<Utc>,
    counts: &'a Counts,
    objects: &'a [ObjectRecord],
    objects_skipped: u64,
}

impl Failure<'_> {
    /// Record a failed run in the ledger (best effort), naming the tables' current versions,
    /// whose content is the committed one.
    async fn record(&self, e: &RunError) {
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

/// A run's summary for people.
pub fn render_summary(r: &RunReport) -> String {
    let c = &r.counts;
    let read = r.objects.iter().filter(|o| o.state != "unchanged").count();
    let mut s = format!(
        "{}: {} in {:.2} s — objects: {} read, {} unchanged (skipped unread); rows: {} read, {} new, {} updated, {} duplicate, {} quarantined\n",
        r.pipeline,
        r.status.as_str(),
        r.seconds,
        read,
        r.objects.len() - read,
        c.read,
        c.loaded,
        c.updated,
        c.duplicate,
        c.quarantined
    );
    s.push_str(&resumed_text(r));
    s.push_str(&warnings_text(r));
    s.push_str(&quarantine_text(r, "quarantined"));
    if !r.restored.is_empty() {
        s.push_str(&format!(
            "  restored to the committed version first (an earlier run did not finish): {}\n",
            r.restored.join(", ")
        ));
    }
    s
}

/// A line per warning: the run's, then each object's.
pub fn warnings_text(r: &RunReport) -> String {
    let run = r.warnings.iter().map(|w| format!("  warning: {w}\n"));
    let objects = r.objects.iter().flat_map(|o| {
        o.warnings
            .iter()
            .map(move |w| format!("  warning: {}: {w}\n", o.name))
    });
    run.chain(objects).collect()
}

/// A line per object read from an earlier object's resume point.
pub fn resumed_text(r: &RunReport) -> String {
    r.objects
        .iter()
        .filter_map(|o| {
            o.resumed_from.as_ref().map(|(from, rows)| {
                format!(
                    "  {}: begins with the bytes of {from}, already loaded: its first {rows} rows not read again\n",
                    o.name
                )
            })
        })
        .collect()
}

/// "code count, …" of quarantine reasons.
pub fn reasons_text(reasons: &BTreeMap<String, u64>) -> String {
    reasons
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The quarantine lines of a report (reasons and the first rows), or nothing.
pub fn quarantine_text(r: &RunReport, label: &str) -> String {
    if r.reasons.is_empty() {
        return String::new();
    }
    let mut s = format!("  {label}: {}\n", reasons_text(&r.reasons));
    for e in &r.examples {
        s.push_str(&format!("    {e}\n"));
    }
    s
}
