//! The fine cubes of earlier aggregations, kept per year and cube kind under `_cubes/` in the
//! warehouse, so that an aggregation recomputes only the partitions whose files changed since.
//!
//! A partition's cube rows carry its *fingerprint*: a hash of the partition, of the paths of its
//! `responses` and `answers` files (Delta files are never modified; a changed partition has new
//! files) and of this program's version. A file (Arrow IPC; uncompressed and memory-mapped in a
//! local warehouse, LZ4 in an object store) also lists, in its schema's metadata, the
//! fingerprints of every partition it was computed from (a partition may have no rows in a kind).
//! A cached partition is used only when its fingerprint is the current one; anything else —
//! a missing, unreadable or foreign file — means the partition is computed again. The cache is
//! derived data: deleting `_cubes/` loses nothing. It holds unsuppressed counts of fine cells, so
//! it needs the same protection as the tables it is derived from (it never leaves the warehouse).

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow::array::{AsArray, BooleanArray, Int64Array, RecordBatch};
use arrow::datatypes::{Int64Type, SchemaRef};
use std::sync::Arc;

use arrow::buffer::Buffer;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use object_store::{ObjectStoreExt, PutPayload};

use crate::warehouse::{Cause, TableFile, Warehouse, WarehouseError};

/// Bumped whenever the cube's rows or this format change.
const FORMAT: &str = "1";
const PARTITIONS_KEY: &str = "palaute.cube.partitions";
const FORMAT_KEY: &str = "palaute.cube.format";
/// The column of a cube row's partition fingerprint.
pub const FINGERPRINT: &str = "fingerprint";

/// The fingerprint of partition (`period`, `county`) with these files of `responses` and
/// `answers`.
pub fn fingerprint(
    period: &str,
    county: &str,
    responses: &[TableFile],
    answers: &[TableFile],
) -> i64 {
    let paths = |files: &[TableFile]| {
        let mut v: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        v.sort_unstable();
        v.join("\n")
    };
    let text = format!(
        "{FORMAT}|{}|{period}|{county}|{}|{}",
        env!("CARGO_PKG_VERSION"),
        paths(responses),
        paths(answers)
    );
    xxhash_rust::xxh3::xxh3_64(text.as_bytes()) as i64
}

/// The fingerprint of every partition of the current `responses` and `answers` files.
pub async fn partition_fingerprints(
    wh: &Warehouse,
) -> Result<BTreeMap<(String, String), i64>, WarehouseError> {
    use crate::warehouse::tables::{ANSWERS, RESPONSES};
    let group = crate::warehouse::files_by_partition;
    let r = group(wh.files(&wh.table(RESPONSES, None).await?).await?);
    let a = group(wh.files(&wh.table(ANSWERS, None).await?).await?);
    let none = Vec::new();
    Ok(r.into_iter()
        .map(|(part, rf)| {
            let af = a.get(&part).unwrap_or(&none);
            let fp = fingerprint(&part.period, &part.county, &rf, af);
            ((part.period, part.county), fp)
        })
        .collect())
}

/// After `optimize` rewrote partitions' files with the same rows: the cached cubes of those
/// partitions still hold, so their fingerprints are changed from the old files' to the new
/// files' (`moved`: old → new) in every cache file, and the next aggregation reuses them instead
/// of computing them again. Returns how many cache files were rewritten.
pub async fn carry_over(
    wh: &Warehouse,
    moved: &HashMap<i64, i64>,
) -> Result<usize, WarehouseError> {
    use futures::TryStreamExt;
    if moved.is_empty() {
        return Ok(0);
    }
    let listed: Vec<object_store::ObjectMeta> = wh
        .loc
        .store
        .list(Some(&wh.loc.child("_cubes")))
        .try_collect()
        .await
        .map_err(|e| WarehouseError::Read {
            path: "_cubes".into(),
            source: e.into(),
        })?;
    let mut n = 0;
    for meta in listed {
        let full = meta.location.to_string();
        let Some(rel) = full.find("_cubes/").map(|i| &full[i..]) else {
            continue;
        };
        // _cubes/<kind>/year=<year>.arrows
        let Some((kind, year)) = rel
            .strip_prefix("_cubes/")
            .and_then(|r| r.strip_suffix(".arrows"))
            .and_then(|r| r.split_once("/year="))
        else {
            continue;
        };
        let bytes = match wh.loc.store.get(&meta.location).await {
            Ok(r) => r.bytes().await.ok(),
            Err(_) => None,
        };
        // an unreadable or foreign file is left as it is: the next aggregation recomputes it
        let Some(Ok(Some(cached))) = bytes.map(|b| decode(Buffer::from(b))) else {
            continue;
        };
        if !cached.partitions.iter().any(|p| moved.contains_key(p)) {
            continue;
        }
        let remap = |fp: i64| moved.get(&fp).copied().unwrap_or(fp);
        let mut batches = Vec::new();
        for b in &cached.batches {
            let Some(i) = b.schema().index_of(FINGERPRINT).ok() else {
                continue;
            };
            let fps: Int64Array = b
                .column(i)
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(remap))
                .collect();
            let mut cols = b.columns().to_vec();
            cols[i] = Arc::new(fps);
            batches.push(RecordBatch::try_new(b.schema(), cols).map_err(|e| {
                WarehouseError::Write {
                    path: rel.to_string(),
                    source: e.into(),
                }
            })?);
        }
        let Some(schema) = batches.first().map(|b| b.schema()) else {
            continue;
        };
        let partitions: Vec<i64> = cached.partitions.iter().map(|p| remap(*p)).collect();
        write(wh, kind, year, &schema, &batches, &partitions).await?;
        n += 1;
    }
    Ok(n)
}

/// Delete the temporary files that a process which died while writing a local cache file left
/// beside it (`year=YYYY.arrows.<pid>.tmp`; readers never look at them). Only for a caller
/// holding the warehouse's writer lease: no other process is writing one then. Returns how many
/// were deleted.
pub fn remove_temp_files(wh: &Warehouse) -> Result<usize, WarehouseError> {
    let Some(dir) = &wh.loc.local_dir else {
        // an object store's put is atomic: nothing is left half-written
        return Ok(0);
    };
    let err = |path: &std::path::Path, e: std::io::Error| WarehouseError::Write {
        path: path.display().to_string(),
        source: e.into(),
    };
    let root = dir.join("_cubes");
    let kinds = match std::fs::read_dir(&root) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(err(&root, e)),
    };
    let mut n = 0;
    for kind in kinds {
        let kind = kind.map_err(|e| err(&root, e))?.path();
        if !kind.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&kind).map_err(|e| err(&kind, e))? {
            let f = f.map_err(|e| err(&kind, e))?.path();
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if is_temp(name) {
                std::fs::remove_file(&f).map_err(|e| err(&f, e))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Where cache file `file` is written before it is renamed over itself:
/// `year=YYYY.arrows.<pid>.tmp` (the process id keeps two writers apart).
fn temp_file(file: &std::path::Path) -> std::path::PathBuf {
    file.with_extension(format!("arrows.{}.tmp", std::process::id()))
}

/// Whether a file name under `_cubes/<kind>/` is a [`temp_file`].
fn is_temp(name: &str) -> bool {
    name.contains(".arrows.") && name.ends_with(".tmp")
}

fn path(kind: &str, year: &str) -> String {
    format!("_cubes/{kind}/year={year}.arrows")
}

/// A cached cube of one kind and year: the fingerprints it was computed from, and its rows.
pub struct Cached {
    pub partitions: HashSet<i64>,
    pub batches: Vec<RecordBatch>,
}

/// The cached cube of `kind` for `year`, if there is a readable one of this format. An
/// unreadable file is logged and treated as absent (it is rewritten by this aggregation).
pub async fn read(wh: &Warehouse, kind: &str, year: &str, schema: &SchemaRef) -> Option<Cached> {
    let rel = path(kind, year);
    let location = wh.loc.child(&rel);
    let bytes = match wh.loc.local_file(&location) {
        Some(file) => match map(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = rel, error = %e, "cube cache unreadable; recomputing");
                return None;
            }
        },
        None => match wh.loc.store.get(&location).await {
            Ok(r) => match r.bytes().await {
                Ok(b) => Buffer::from(b),
                Err(e) => {
                    tracing::warn!(file = rel, error = %e, "cube cache unreadable; recomputing");
                    return None;
                }
            },
            Err(object_store::Error::NotFound { .. }) => return None,
            Err(e) => {
                tracing::warn!(file = rel, error = %e, "cube cache unreadable; recomputing");
                return None;
            }
        },
    };
    match decode(bytes) {
        Ok(Some(c))
            if c.batches
                .iter()
                .any(|b| b.schema().fields() != schema.fields()) =>
        {
            tracing::warn!(file = rel, "cube cache of another layout; recomputing");
            None
        }
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(file = rel, error = %e, "cube cache unreadable; recomputing");
            None
        }
    }
}

/// A local cache file mapped into memory, as a buffer the decoded arrays share: no copy, and
/// the file's pages (in the page cache after the aggregation that wrote it) are mapped rather
/// than copied into freshly faulted memory.
///
/// The crate's one use of `unsafe` (`[lints] unsafe_code = "deny"` elsewhere): mapping a file,
/// and handing the mapping to arrow as a buffer, cannot be written safely.
#[allow(unsafe_code)]
fn map(file: &std::path::Path) -> std::io::Result<Buffer> {
    let f = std::fs::File::open(file)?;
    // SAFETY: the map must not change while mapped. palaute never writes a cache file in
    // place: a new one is written beside it and renamed over it ([`write`]), which leaves the
    // mapped file intact until it is unmapped.
    let m = unsafe { memmap2::Mmap::map(&f)? };
    if m.is_empty() {
        return Ok(Buffer::from(Vec::<u8>::new()));
    }
    let ptr = std::ptr::NonNull::new(m.as_ptr() as *mut u8).expect("a mapping is not null");
    let len = m.len();
    // SAFETY: `ptr` is valid for `len` bytes for as long as the mapping lives, which the
    // buffer owns (the mapping is unmapped when the last array using it is dropped)
    Ok(unsafe { Buffer::from_custom_allocation(ptr, len, Arc::new(m)) })
}

/// Decode a cache file. Its bytes become the batches' buffers as they are (no copy), when the
/// file is uncompressed as a local warehouse's are.
fn decode(mut buf: Buffer) -> Result<Option<Cached>, Cause> {
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    let mut checked = false;
    while !buf.is_empty() {
        let batch = decoder.decode(&mut buf)?;
        if !checked && let Some(schema) = decoder.schema() {
            // a file of another format is not decoded further
            if schema.metadata().get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
                return Ok(None);
            }
            checked = true;
        }
        batches.extend(batch);
    }
    decoder.finish()?;
    // the schema comes first in a stream: it has been checked above
    let schema = decoder.schema().ok_or("no schema in the file")?;
    let partitions = schema
        .metadata()
        .get(PARTITIONS_KEY)
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>().map_err(|e| format!("partition list: {e}")))
        .collect::<Result<HashSet<i64>, String>>()?;
    Ok(Some(Cached {
        partitions,
        batches,
    }))
}

/// The rows of `cached` whose partition is in `keep`.
pub fn rows_of(cached: &Cached, keep: &HashSet<i64>) -> Result<Vec<RecordBatch>, Cause> {
    let mut out = Vec::new();
    for b in &cached.batches {
        let fp = b
            .column_by_name(FINGERPRINT)
            .ok_or("cached cube without fingerprints")?
            .as_primitive_opt::<Int64Type>()
            .ok_or("cached fingerprints are not Int64")?;
        let mask: BooleanArray = fp
            .iter()
            .map(|v| Some(v.is_some_and(|v| keep.contains(&v))))
            .collect();
        // kept whole when every partition in it is kept (a file holds one batch)
        match mask.true_count() {
            0 => {}
            n if n == b.num_rows() => out.push(b.clone()),
            _ => out.push(arrow::compute::filter_record_batch(b, &mask)?),
        }
    }
    Ok(out)
}

/// Replace the cached cube of `kind` for `year` with `batches`, computed from `partitions`.
pub async fn write(
    wh: &Warehouse,
    kind: &str,
    year: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    partitions: &[i64],
) -> Result<(), WarehouseError> {
    let rel = path(kind, year);
    let err = |e: Cause| WarehouseError::Write {
        path: rel.clone(),
        source: e,
    };
    let list: Vec<String> = partitions.iter().map(|p| p.to_string()).collect();
    let meta = std::collections::HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT.to_string()),
        (PARTITIONS_KEY.to_string(), list.join(",")),
    ]);
    let schema = Arc::new(schema.as_ref().clone().with_metadata(meta));
    // Arrow IPC: nothing is re-encoded on the way in or out. Uncompressed in a local warehouse
    // (read back, its bytes are the arrays' buffers: decompressing LZ4 was most of reading a
    // cache of 5M responses), LZ4-compressed in an object store (fewer bytes to transfer).
    let compression = wh
        .loc
        .local_dir
        .is_none()
        .then_some(CompressionType::LZ4_FRAME);
    let opts = IpcWriteOptions::default()
        .try_with_compression(compression)
        .map_err(|e| err(e.into()))?;
    // one batch: a dictionary and a buffer per column (per-partition batches made thousands of
    // small messages, whose decoding dominated reading the file back); the cached rows' fields
    // carry the dictionary ids of the file they were read from, hence the rebuild
    let rebuilt = batches
        .iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.into()))?;
    let one = arrow::compute::concat_batches(&schema, &rebuilt).map_err(|e| err(e.into()))?;
    drop(rebuilt);
    let location = wh.loc.child(&rel);
    if let Some(file) = wh.loc.local_file(&location) {
        // a local file is written as it is encoded (no copy of it in memory), beside the
        // cache file, and renamed over it: a reader that mapped the old file keeps it whole
        let tmp = temp_file(&file);
        let written = (|| -> Result<(), Cause> {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let f = std::fs::File::create(&tmp)?;
            encode(std::io::BufWriter::new(f), &schema, opts, &one)?
                .into_inner()
                .map_err(|e| e.into_error())?;
            Ok(std::fs::rename(&tmp, &file)?)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        return written.map_err(err);
    }
    let buf = encode(Vec::new(), &schema, opts, &one).map_err(err)?;
    wh.loc
        .store
        .put(&location, PutPayload::from(buf))
        .await
        .map_err(|e| err(e.into()))?;
    Ok(())
}

/// `batch` as an Arrow IPC stream written to `out`, which is returned.
fn encode<W: std::io::Write>(
    out: W,
    schema: &SchemaRef,
    opts: IpcWriteOptions,
    batch: &RecordBatch,
) -> Result<W, Cause> {
    let mut w = StreamWriter::try_new_with_options(out, schema, opts)?;
    w.write(batch)?;
    w.finish()?;
    Ok(w.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_cache_file_is_recognised_and_a_cache_file_is_not() {
        let file = std::path::Path::new("/w/_cubes/items/year=2024.arrows");
        let tmp = temp_file(file);
        assert_eq!(tmp.parent(), file.parent(), "written beside the cache file");
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, format!("year=2024.arrows.{}.tmp", std::process::id()));
        assert!(is_temp(name));
        assert!(!is_temp("year=2024.arrows"));
    }
}
