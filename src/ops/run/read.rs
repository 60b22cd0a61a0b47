//! Reading a source object: opening it (a long export pivoted to one record per response),
//! reading its records ahead on a thread of their own, and what its header and dates say.

use csv::ByteRecord;

use super::RunError;
use crate::config::Pipeline;
use crate::format::FormatError;
use crate::format::ResumePoint;
use crate::normalize::Normalizer;
use crate::source::{self, SourceError, SourceObject};

/// Records read and processed at a time.
const CHUNK: usize = 16_384;

/// Why an object is no export of the pipeline's survey: its name, the few columns its header
/// has, and a hint when there is one column only (a wrong delimiter).
pub(super) fn not_an_export(
    object: &str,
    names: &[String],
    mapped: usize,
    decoded: &str,
) -> String {
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
/// the bytes of the object read so far, and (at the end) the object's resume point.
pub(super) type ReadChunk =
    Result<(Vec<(u64, ByteRecord)>, usize, u64, Option<ResumePoint>), String>;

/// The receiving and returning ends of a reading thread.
pub(super) struct ReadAhead {
    pub(super) full: std::sync::mpsc::Receiver<ReadChunk>,
    pub(super) empty: std::sync::mpsc::Sender<Vec<(u64, ByteRecord)>>,
}

/// Read `records` on a thread of its own, [`CHUNK`] records at a time into buffers that the
/// receiver hands back; two buffers circulate, so one chunk is read while the other is
/// processed. The thread ends after the last (empty) chunk or an error, or when the receiver
/// is dropped.
pub(super) fn read_ahead(mut records: crate::format::Records) -> ReadAhead {
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

/// What the numeric dates in columns `cols` of `obj` say about their order (a read of the whole
/// object, made only for objects whose times are written `a/b/yyyy` or the like).
pub(super) async fn date_evidence(
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
pub(super) async fn open_object(
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
pub(super) fn recs_names_of(norm: &Normalizer, cols: &[usize]) -> String {
    cols.iter()
        .map(|&c| format!("'{}'", norm.column_name(c)))
        .collect::<Vec<_>>()
        .join(" and ")
}
