//! The run's table writers: one set per shard, filled in parallel, spilled to files in the
//! background when their buffers pass the budget.

use std::collections::BTreeMap;
use std::path::PathBuf;

use csv::ByteRecord;

use super::{Mapped, RunError, keyed_tables};
use crate::collections::FastMap;
use crate::config::PipelineKind;
use crate::normalize::{Body, Head, Normalizer, Problem};
use crate::schema::Partition;
use crate::warehouse::rows::{
    ANSWER_ROW_BYTES, COMMENT_ROW_BYTES, CompactAnswer, FEEDBACK_ROW_BYTES, RESPONSE_ROW_BYTES,
    RowSource, Rows,
};
use crate::warehouse::tables::{
    ANSWERS, COMMENTS, FEEDBACK, QUARANTINE, RESPONSES, hex32, table_def,
};
use crate::warehouse::writer::{SPILL_BUDGET, TableWriter, WrittenFile};
use crate::warehouse::{Warehouse, WarehouseError};

/// The symbol key of an answer's item itself (no option).
const NO_OPTION: u16 = u16::MAX;

pub(super) struct Writers {
    /// one set of table writers per shard: a partition's rows always go to the shard
    /// [`shard_of`] names, so that shards are filled in parallel and each partition's rows keep
    /// their input order; shard 0 also holds the quarantine writer
    pub(super) shards: Vec<Shard>,
    pub(super) in_place: bool,
    pub(super) staging: Option<PathBuf>,
    /// the spill being encoded in the background (at most one: the next waits for it)
    pending: Option<std::thread::JoinHandle<EncodedSpill>>,
}

/// The table writers of one shard.
pub(super) struct Shard {
    pub(super) tables: BTreeMap<&'static str, TableWriter>,
    /// (item, option) of the current object's normalizer → this shard's answers symbol
    pub(super) symbols: FastMap<(u16, u16), u16>,
}

/// Files encoded by a background spill, per shard and table.
type EncodedSpill = Vec<(
    usize,
    &'static str,
    Vec<Result<WrittenFile, WarehouseError>>,
)>;

/// The shard of a partition's rows (a fixed hash: the same partition, the same shard).
pub(super) fn shard_of(p: &Partition, shards: usize) -> usize {
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
    pub(super) fn new(wh: &Warehouse, load_id: &str, kind: PipelineKind) -> Self {
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
    pub(super) fn table(&mut self, table: &str, p: &Partition) -> &mut TableWriter {
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
    pub(super) fn spill_if_over_budget(&mut self) -> Result<(), RunError> {
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
    pub(super) fn wait(&mut self) -> Result<(), WarehouseError> {
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

impl Shard {
    /// Append one normalized row (and its scrubbed open texts) to this shard's writers.
    fn write_row(
        &mut self,
        src: &RowSource,
        norm: &Normalizer,
        line: u64,
        head: &Head,
        (body, texts): &Mapped,
    ) {
        let key = hex32(head.key);
        let key = key.as_str();
        let part = &head.partition;
        if let Some(tw) = self.tables.get_mut(FEEDBACK) {
            let text = texts.first();
            let bytes = FEEDBACK_ROW_BYTES + src.object.len() + text.map_or(0, |t| t.text.len());
            tw.append(part, bytes, |rows| {
                let Rows::Feedback(r) = rows else {
                    unreachable!()
                };
                r.push(src, line, key, head, body, text);
            });
            return;
        }
        let tw = self.tables.get_mut(RESPONSES).expect("responses writer");
        tw.append(part, RESPONSE_ROW_BYTES + src.object.len(), |rows| {
            let Rows::Responses(r) = rows else {
                unreachable!()
            };
            r.push(src, line, key, head, body);
        });
        if !body.answers.is_empty() {
            self.write_answers(norm, head, body);
        }
        if !body.texts.is_empty() {
            let tw = self.tables.get_mut(COMMENTS).expect("comments writer");
            let bytes: usize = texts.iter().map(|t| COMMENT_ROW_BYTES + t.text.len()).sum();
            tw.append(part, bytes, |rows| {
                let Rows::Comments(r) = rows else {
                    unreachable!()
                };
                for ((item, _), s) in body.texts.iter().zip(texts) {
                    r.push(src, key, norm.item_code(*item), s);
                }
            });
        }
    }

    /// A response's closed answers, their item and option codes as this shard's symbols.
    fn write_answers(&mut self, norm: &Normalizer, head: &Head, body: &Body) {
        let tw = self.tables.get_mut(ANSWERS).expect("answers writer");
        let syms: Vec<(u16, u16)> = body
            .answers
            .iter()
            .map(|a| {
                let item = *self
                    .symbols
                    .entry((a.item, NO_OPTION))
                    .or_insert_with(|| tw.symbol(norm.item_code(a.item)));
                let opt = match a.option {
                    None => NO_OPTION,
                    Some(o) => *self
                        .symbols
                        .entry((a.item, o))
                        .or_insert_with(|| tw.symbol(norm.option_code(a.item, o))),
                };
                (item, opt)
            })
            .collect();
        let bytes = ANSWER_ROW_BYTES * body.answers.len();
        tw.append(&head.partition, bytes, |rows| {
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
}

/// Append the rows to write (index into the chunk, index into the mapped bodies) to their
/// shards' writers, the shards in parallel; each shard takes its rows in input order.
pub(super) fn append_rows(
    w: &mut Writers,
    src: &RowSource,
    norm: &Normalizer,
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
            let mapped = mapped[m].as_ref().expect("a row to write was mapped");
            shard.write_row(src, norm, chunk[row].0, head, mapped);
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
