//! Reading one source object: its records a chunk at a time, each chunk through the row's
//! steps (head in parallel, the stored keys its partitions need, the sequential dedupe, the
//! body and scrubbing in parallel, the sequential decision, the parallel writes).

use std::collections::BTreeSet;
use std::time::Instant;

use csv::ByteRecord;

use super::dedupe::{Ctx, Decision};
use super::plan::{ObjectPlan, ObjectState, Plan};
use super::read::{date_evidence, not_an_export, open_object, read_ahead, recs_names_of};
use super::{Mapped, RunError, failpoint, par_map, writers};
use crate::config::Pipeline;
use crate::format::FormatError;
use crate::format::ResumePoint;
use crate::normalize::time::{Order, TimeFormat};
use crate::normalize::{CONFLICTING_DUPLICATE, Head, Normalizer, Problem, unmapped_columns};
use crate::privacy::keys::KeySecret;
use crate::schema::{Catalog, Partition};
use crate::source::{self, SourceObject};
use crate::warehouse::Warehouse;
use crate::warehouse::ledger::{self, Counts, ObjectRecord};
use crate::warehouse::rows::RowSource;

/// What reading every object of a run needs.
pub(super) struct Reading<'a> {
    pub(super) wh: &'a Warehouse,
    pub(super) p: &'a Pipeline,
    pub(super) src: &'a source::Source,
    pub(super) catalog: &'static Catalog,
    pub(super) secret: Option<KeySecret>,
    pub(super) plan: &'a Plan,
    pub(super) bar: Option<indicatif::ProgressBar>,
}

/// What the objects read so far gave: their counts, plans and ledger records.
#[derive(Default)]
pub(super) struct Read {
    pub(super) counts: Counts,
    pub(super) plans: Vec<ObjectPlan>,
    pub(super) records: Vec<ObjectRecord>,
}

/// Wall time of each step of a chunk, for the debug log.
#[derive(Default)]
struct Phases {
    read: f64,
    head: f64,
    existing: f64,
    decide: f64,
    body: f64,
    write: f64,
}

/// Read the plan's objects in order into `ctx`; what was read before an error stays in `read`.
pub(super) async fn read_objects(
    r: &Reading<'_>,
    ctx: &mut Ctx<'_>,
    read: &mut Read,
) -> Result<(), RunError> {
    let mut done_bytes = 0u64;
    for (object_no, (obj, state)) in r.plan.to_read.iter().enumerate() {
        let (plan, record) =
            read_object(r, ctx, object_no, obj, *state, done_bytes, &read.counts).await?;
        done_bytes += obj.size;
        let (c, oc) = (&mut read.counts, &plan.counts);
        c.read += oc.read;
        c.loaded += oc.loaded;
        c.updated += oc.updated;
        c.duplicate += oc.duplicate;
        c.quarantined += oc.quarantined;
        read.records.push(record);
        read.plans.push(plan);
    }
    Ok(())
}

/// Read one object: its plan (counts, warnings) and its ledger record.
async fn read_object(
    r: &Reading<'_>,
    ctx: &mut Ctx<'_>,
    object_no: usize,
    obj: &SourceObject,
    state: ObjectState,
    done_bytes: u64,
    before: &Counts,
) -> Result<(ObjectPlan, ObjectRecord), RunError> {
    let p = r.p;
    // `opened` keeps a local copy of a remote object until the object has been read
    let mut opened = open_object(r.src, p, obj).await?;
    let last = object_no + 1 == r.plan.to_read.len();
    let resumed_from = resume(&mut opened.records, r.plan, last)?;
    let recs = &opened.records;
    // an object none of whose header names a mapped column is not an export of this survey
    // (another file, a wrong delimiter, garbage): bad data, not configuration
    let mapped = p.mapping.columns();
    if !mapped.is_empty() && !mapped.iter().any(|c| recs.names().contains(c)) {
        return Err(RunError::NotAnExport(not_an_export(
            &obj.name,
            recs.names(),
            mapped.len(),
            &recs.describe(),
        )));
    }
    let mut norm = Normalizer::new(p, r.catalog, recs.names(), &obj.name, r.secret.clone())
        .map_err(|errs| {
            RunError::Config(format!(
                "{}: {}{}: {}",
                p.file.display(),
                obj.name,
                recs.part().map(|s| format!(" {s}")).unwrap_or_default(),
                errs.join("; ")
            ))
        })?;
    ctx.occurrences.clear();
    if let Some(w) = ctx.writers.as_mut() {
        for shard in &mut w.shards {
            shard.symbols.clear();
        }
    }
    let ignored = unmapped_columns(&p.mapping, recs.names());
    let mut decoded = recs.describe();
    tracing::info!(pipeline = %p.name, object = %obj.name, state = state.as_str(), %decoded, "reading");
    if let Some((from, rows)) = &resumed_from {
        tracing::info!(pipeline = %p.name, object = %obj.name, from = %from, rows_not_read = rows, "resumed where an earlier object's bytes end");
    }
    let at = Progress {
        object_no,
        done_bytes,
        rows_before: before.read,
    };
    let read = chunks(r, ctx, &mut norm, obj, at, opened.records, &mut decoded).await?;
    let (oc, date_warning, point) = (read.counts, read.date_warning, read.point);
    tracing::info!(pipeline = %p.name, object = %obj.name, read = oc.read, new = oc.loaded, updated = oc.updated, duplicate = oc.duplicate, quarantined = oc.quarantined, "object done");
    let record = ObjectRecord {
        name: obj.name.clone(),
        fingerprint: obj.fingerprint(),
        state: state.as_str().to_string(),
        rows: oc.read,
        // only the first object read: every row before its point is stored as it has it
        resume: point
            .filter(|_| object_no == 0)
            .map(|point| ledger::Resume {
                point,
                config: r.plan.config.clone(),
            }),
        resumed_from: resumed_from.clone(),
    };
    let conflicts = std::mem::take(&mut ctx.conflicts);
    let plan = ObjectPlan {
        name: obj.name.clone(),
        state,
        decoded,
        counts: oc,
        ignored_columns: ignored,
        resumed_from,
        warnings: object_warnings(&norm, r.catalog, date_warning, conflicts),
    };
    Ok((plan, record))
}

/// Where an object is in the run, for the progress bar.
#[derive(Clone, Copy)]
struct Progress {
    object_no: usize,
    /// bytes of the objects read before it
    done_bytes: u64,
    /// rows of the objects read before it
    rows_before: u64,
}

/// What reading an object's records gave: its counts, the warning its dates call for, and
/// where a later object may resume.
struct Chunks {
    counts: Counts,
    date_warning: Option<String>,
    point: Option<ResumePoint>,
}

/// Read an object's records a chunk at a time, each through the row's steps. Records are read
/// into reused buffers, so that the keys of the partitions a chunk touches can be loaded
/// together; a thread of its own reads (parses) the next chunk while this one is processed.
async fn chunks(
    r: &Reading<'_>,
    ctx: &mut Ctx<'_>,
    norm: &mut Normalizer,
    obj: &SourceObject,
    at: Progress,
    records: crate::format::Records,
    decoded: &mut String,
) -> Result<Chunks, RunError> {
    let mut oc = Counts::default();
    let mut date_warning = None;
    let reader = read_ahead(records);
    let mut phase = Phases::default();
    let point: Option<ResumePoint>;
    loop {
        let tick = Instant::now();
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
        if oc.read == 0 {
            date_warning = check_dates(r, obj, norm, chunk, decoded).await?;
        }
        phase.read += tick.elapsed().as_secs_f64();
        process_chunk(r, ctx, norm, obj, at.object_no, chunk, &mut oc, &mut phase).await?;
        if let Some(b) = &r.bar {
            b.set_position(at.done_bytes + bytes_read.min(obj.size));
            b.set_message(format!(
                "{} object {}/{} rows {}",
                r.p.name,
                at.object_no + 1,
                r.plan.to_read.len(),
                at.rows_before + oc.read
            ));
        }
        failpoint("write")?;
        // the buffer goes back to the reader (which has gone when the object ended)
        let _ = reader.empty.send(buffer);
    }
    tracing::debug!(
        read_s = phase.read,
        head_s = phase.head,
        existing_s = phase.existing,
        decide_s = phase.decide,
        body_s = phase.body,
        write_s = phase.write,
        "object phases"
    );
    Ok(Chunks {
        counts: oc,
        date_warning,
        point,
    })
}

/// The last object read may skip what an earlier object already loaded (a row seen in this run
/// must not be skipped in favour of an older object read after it): the earlier object it
/// resumes from and the records not read.
fn resume(
    recs: &mut crate::format::Records,
    plan: &Plan,
    last: bool,
) -> Result<Option<(String, u64)>, RunError> {
    if !last || plan.points.is_empty() {
        return Ok(None);
    }
    let pts: Vec<_> = plan.points.iter().map(|(_, pt)| pt.clone()).collect();
    Ok(recs.resume(&pts).map_err(RunError::Format)?.map(|i| {
        let (name, pt) = &plan.points[i];
        (name.clone(), pt.rows)
    }))
}

/// Numeric dates: which order they are in is a property of the whole column, so when the
/// first chunk has some, the column is read once before its first row is decided. Returns the
/// warning to give when the object has dates only the other order reads.
async fn check_dates(
    r: &Reading<'_>,
    obj: &SourceObject,
    norm: &mut Normalizer,
    chunk: &[(u64, ByteRecord)],
    decoded: &mut String,
) -> Result<Option<String>, RunError> {
    let Some((cols, order, sep)) = norm.date_columns() else {
        return Ok(None);
    };
    let numeric = chunk.iter().any(|(_, rec)| {
        cols.iter().any(|&c| {
            rec.get(c)
                .and_then(|f| std::str::from_utf8(f).ok())
                .and_then(|f| crate::normalize::time::leading_pair(f, sep))
                .is_some()
        })
    });
    if !matches!(r.src, source::Source::Files(_)) || !numeric {
        return Ok(None);
    }
    let ev = date_evidence(r.src, r.p, obj, &cols, sep).await?;
    let column = recs_names_of(norm, &cols);
    decoded.push_str(&format!("; dates in {column}: {}", ev.describe()));
    if ev.against(order) == 0 {
        return Ok(None);
    }
    let other = match order {
        Order::DayFirst => "month-first",
        Order::MonthFirst => "day-first",
    };
    let what = format!(
        "{column} has dates that only {other} reads, where the format reads {}: {}",
        order.name(),
        ev.describe()
    );
    if r.p.quality.ambiguous_dates == crate::config::AmbiguousDates::Fail {
        return Err(RunError::NotAnExport(format!(
            "{}: {what} (quality.ambiguous_dates: fail)",
            obj.name
        )));
    }
    let warning = format!(
        "{what}; the {} rows that read either way are quarantined as ambiguous_date{}",
        ev.either,
        if matches!(norm.date_format(), Some(TimeFormat::Auto)) {
            " (the `auto` format reads a/b/yyyy month-first: for day-first dates declare `format: \"%d/%m/%Y %H:%M\"` or the like)"
        } else {
            ""
        }
    );
    norm.set_mixed_dates(ev);
    Ok(Some(warning))
}

/// One chunk of records through the row's steps.
#[allow(clippy::too_many_arguments)]
async fn process_chunk(
    r: &Reading<'_>,
    ctx: &mut Ctx<'_>,
    norm: &Normalizer,
    obj: &SourceObject,
    object_no: usize,
    chunk: &[(u64, ByteRecord)],
    oc: &mut Counts,
    phase: &mut Phases,
) -> Result<(), RunError> {
    let mut tick = Instant::now();
    let mut lap = |t: &mut f64| {
        *t += tick.elapsed().as_secs_f64();
        tick = Instant::now();
    };
    let mut heads: Vec<Result<Head, Vec<Problem>>> = par_map(chunk, |(_, rec)| norm.head(rec));
    lap(&mut phase.head);
    let missing: BTreeSet<Partition> = heads
        .iter()
        .filter_map(|h| h.as_ref().ok())
        .map(|h| &h.partition)
        .filter(|p| !ctx.existing.loaded.contains(*p))
        .cloned()
        .collect();
    if !missing.is_empty() {
        ctx.existing.load(r.wh, missing).await?;
    }
    lap(&mut phase.existing);
    let decisions: Vec<Decision> = heads
        .iter_mut()
        .zip(chunk)
        .map(|(h, (line, _))| ctx.decide(norm, h, object_no as u32, *line, oc))
        .collect();
    lap(&mut phase.decide);
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
    lap(&mut phase.body);
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
        if ctx.apply(norm, &obj.name, *line, rec, head, decision, mr, oc)? {
            rows.push((row, m.expect("a row to write was mapped")));
        }
    }
    if let Some(w) = ctx.writers.as_mut() {
        let src = RowSource {
            pipeline: &r.p.name,
            load_id: &ctx.load_id,
            system: &norm.system,
            survey: &norm.survey,
            instrument: &norm.instrument,
            version: &norm.version,
            object: &obj.name,
        };
        writers::append_rows(w, &src, norm, chunk, &heads, &mapped, &rows);
        w.spill_if_over_budget()?;
    }
    lap(&mut phase.write);
    Ok(())
}

/// What an object's rows suggest is mapped wrong, though no row is refused for it.
fn object_warnings(
    norm: &Normalizer,
    catalog: &Catalog,
    date_warning: Option<String>,
    conflicts: u64,
) -> Vec<String> {
    let mut warnings: Vec<String> = norm
        .always_chosen(crate::marts::disclosure::DEFAULT_MIN_N)
        .into_iter()
        .map(|c| format!(
            "every one of its rows counts column '{c}' as chosen: if it writes \"not chosen\" in a way not recognised, say what \"chosen\" is with `selected:`"
        ))
        .collect();
    warnings.extend(date_warning);
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
    if conflicts > 0 {
        warnings.push(format!(
            "{conflicts} row(s) have the response id of an earlier row of the object with other content (quarantined as {CONFLICTING_DUPLICATE}); if '{}' is not an id of its own (a time stamp, say), key rows by their content: `response_id: {{row_hash: true}}`",
            norm.id_column().unwrap_or_default()
        ));
    }
    warnings
}
