//! Deduplication, the sequential steps of a row: is it a repeat, a conflict, an update, to
//! quarantine or to write; and the quarantine itself.

use std::collections::{BTreeMap, HashMap, HashSet};

use csv::ByteRecord;

use super::stored::{Existing, Stored};
use super::writers::Writers;
use super::{Mapped, RunError, RunOptions};
use crate::collections::{FastMap, FastSet};
use crate::config::Pipeline;
use crate::normalize::{CONFLICTING_DUPLICATE, Head, IDENTIFYING_VALUE, Normalizer, Problem};
use crate::privacy::Scrubber;
use crate::schema::Partition;
use crate::warehouse::ledger::Counts;
use crate::warehouse::rows::{QUARANTINE_ROW_BYTES, QuarantineRow, Rows};
use crate::warehouse::tables::{QUARANTINE, key_hex};

/// The run's deduplication state, and its writers.
pub(super) struct Ctx<'a> {
    pub(super) p: &'a Pipeline,
    pub(super) load_id: String,
    pub(super) scrubber: Scrubber,
    pub(super) writers: Option<Writers>,
    /// the keys this run has seen, with the row that had each first
    pub(super) seen: FastMap<u128, SeenRow>,
    /// rows of the current object quarantined as conflicting with an earlier row
    pub(super) conflicts: u64,
    /// rows keyed by their content: how often each content has occurred in the current object
    pub(super) occurrences: FastMap<u128, u32>,
    pub(super) quarantined_before: FastSet<(u128, i64)>,
    /// keys whose row this run quarantined after reading its head
    pub(super) broken: FastSet<u128>,
    /// (key, row hash) of the rows this run quarantined, with the object they were first in
    pub(super) quarantined_now: HashMap<(u128, i64), String>,
    pub(super) existing: Existing,
    pub(super) to_delete: HashMap<Partition, HashSet<u128>>,
    pub(super) reasons: BTreeMap<String, u64>,
    pub(super) range: Option<(String, String)>,
    pub(super) outside_range: u64,
    pub(super) examples: Vec<String>,
    pub(super) now_micros: i64,
}

/// The first row of this run with a key: its hash, object (by the order read) and row.
#[derive(Clone, Copy)]
pub(super) struct SeenRow {
    hash: i64,
    object: u32,
    line: u32,
}

impl<'a> Ctx<'a> {
    /// A run's state before its first row, taking the stored keys and quarantine from `stored`
    /// (the writers are added for a run that writes).
    pub(super) fn new(
        p: &'a Pipeline,
        load_id: &str,
        opts: &RunOptions,
        started: chrono::DateTime<chrono::Utc>,
        stored: &mut Stored,
    ) -> Ctx<'a> {
        Ctx {
            p,
            load_id: load_id.to_string(),
            scrubber: Scrubber::new(&p.privacy.scrub),
            writers: None,
            seen: FastMap::default(),
            occurrences: FastMap::default(),
            conflicts: 0,
            quarantined_before: std::mem::take(&mut stored.quarantined_before),
            broken: FastSet::default(),
            quarantined_now: HashMap::new(),
            existing: stored.existing(p),
            to_delete: HashMap::new(),
            reasons: BTreeMap::new(),
            range: opts.backfill.clone(),
            outside_range: 0,
            examples: Vec::new(),
            now_micros: started.timestamp_micros(),
        }
    }

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
        let record = norm.quarantine_json(rec, &self.scrubber);
        let row = QuarantineRow {
            pipeline: &self.p.name,
            object,
            line,
            key: key.map(key_hex),
            row_hash: hash,
            reason_codes: &codes.join(","),
            message: &message,
            record: &record,
            quarantined_at: self.now_micros,
        };
        let bytes = QUARANTINE_ROW_BYTES + message.len() + record.len();
        tw.append(&part, bytes, |rows| {
            let Rows::Quarantine(r) = rows else {
                unreachable!()
            };
            r.push(&row);
        });
        Ok(())
    }

    /// The first, sequential step for a row: is it a duplicate, a conflict, to quarantine, or to
    /// write? Rows keyed by their content get the key of their occurrence here.
    pub(super) fn decide(
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
    pub(super) fn apply(
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

/// What the sequential dedupe step decided for a row.
pub(super) enum Decision {
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
