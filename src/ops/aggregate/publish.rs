//! Publishing a computed mart: its files encoded (one per period type and year) and uploaded,
//! uncommitted, on the mart's own task; awaiting the marts and recording their files.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;

use super::figures::Computed;
use super::{AggregateError, AggregateReport, MartReport, failpoint};
use crate::Cause;
use crate::marts::METHOD;
use crate::warehouse::Warehouse;
use crate::warehouse::writer::{WrittenFile, writer_properties};

/// A mart's batches encoded as one Parquet file per (period_type, year): each file's path in the
/// table, bytes and partition values, and its rows.
pub(super) fn encode_mart(
    name: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    run_id: &str,
) -> Result<Vec<(WrittenFile, Vec<u8>)>, AggregateError> {
    let err = |m: Cause| AggregateError::Mart {
        mart: name.to_string(),
        source: m,
    };
    let pt_i = schema.index_of("period_type").map_err(|e| err(e.into()))?;
    let year_i = schema.index_of("year").map_err(|e| err(e.into()))?;
    let file_fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != pt_i && *i != year_i)
        .map(|(_, f)| f.as_ref().clone())
        .collect();
    let file_schema = Arc::new(Schema::new(file_fields));
    // rows per partition
    let mut parts: BTreeMap<(String, String), Vec<RecordBatch>> = BTreeMap::new();
    for b in batches {
        let pt = b.column(pt_i).as_string::<i32>();
        let yr = b.column(year_i).as_string::<i32>();
        let mut idx: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
        for i in 0..b.num_rows() {
            idx.entry((pt.value(i).to_string(), yr.value(i).to_string()))
                .or_default()
                .push(i as u32);
        }
        for (k, rows) in idx {
            let take = arrow::array::UInt32Array::from(rows);
            let cols: Vec<ArrayRef> = b
                .columns()
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != pt_i && *i != year_i)
                .map(|(_, c)| arrow::compute::take(c, &take, None))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.into()))?;
            parts
                .entry(k)
                .or_default()
                .push(RecordBatch::try_new(file_schema.clone(), cols).map_err(|e| err(e.into()))?);
        }
    }
    let mut files = Vec::new();
    for ((pt, year), bs) in parts {
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, file_schema.clone(), Some(writer_properties()))
            .map_err(|e| err(e.into()))?;
        let mut rows = 0i64;
        for b in &bs {
            rows += b.num_rows() as i64;
            w.write(b).map_err(|e| err(e.into()))?;
        }
        w.close().map_err(|e| err(e.into()))?;
        let rel = format!("period_type={pt}/year={year}/part-{run_id}.snappy.parquet");
        let size = buf.len() as i64;
        files.push((
            WrittenFile {
                rel_path: rel,
                local_path: Default::default(),
                partition_values: vec![("period_type".into(), pt), ("year".into(), year)],
                rows,
                size,
            },
            buf,
        ));
    }
    Ok(files)
}

/// Encode a computed mart's files (on a blocking thread) and upload them (uncommitted,
/// invisible until the commit): done on the mart's own task, so that one year's files are
/// encoded while the other year's marts compute.
pub(super) async fn publish(
    wh: Warehouse,
    name: &'static str,
    computed: Computed,
    run_id: String,
) -> Result<Published, AggregateError> {
    let (schema, batches, report) = computed;
    let s = schema.clone();
    let encoded = tokio::task::spawn_blocking(move || encode_mart(name, &s, &batches, &run_id))
        .await
        .map_err(|e| AggregateError::Mart {
            mart: name.to_string(),
            source: e.into(),
        })??;
    failpoint(&format!("publish:{name}"))?;
    let mut files = Vec::new();
    for (f, buf) in encoded {
        let put = wh
            .loc
            .store
            .put(&wh.loc.child(&format!("{name}/{}", f.rel_path)), buf.into())
            .await;
        if let Err(e) = put {
            crate::warehouse::writer::delete_uploaded(&wh.loc, name, &files).await;
            return Err(AggregateError::Mart {
                mart: name.to_string(),
                source: e.into(),
            });
        }
        files.push(f);
    }
    Ok((schema, files, report))
}

/// A mart's published schema, files (uploaded, not committed) and counts.
pub(super) type Published = (SchemaRef, Vec<WrittenFile>, MartReport);

/// A mart being computed on a task of its own: its year, name and start.
pub(super) type Pending<'a> = (
    i32,
    &'a str,
    Instant,
    tokio::task::JoinHandle<Result<Published, AggregateError>>,
);

/// Roll-up cells (cube rows × period types × geography levels, an estimate) up to which a
/// year's marts start while the previous year's are still being computed, the two side by side
/// on the cores. W2's figures (one period type, one level) are far below and gain from it; a
/// full aggregation (every period type and level, ~20M cells a year at 1M responses) is far
/// above, where running two years side by side needs much more memory and is slower
/// (docs/performance.md has the measurements).
pub(super) const SIDE_BY_SIDE_CELLS: usize = 8_000_000;

/// Await marts being computed and published, and record each one's files. Every one is
/// awaited even when one fails, and the files of the others are then deleted, so that a failed
/// aggregation leaves no uploaded file behind.
pub(super) async fn write_marts<'a>(
    wh: &Warehouse,
    done: Vec<Pending<'a>>,
    report: &mut AggregateReport,
    written: &mut Vec<(&'a str, Vec<WrittenFile>)>,
) -> Result<(), AggregateError> {
    let mut results = Vec::new();
    for (year, name, t, handle) in done {
        let r = handle.await.map_err(|e| AggregateError::Mart {
            mart: name.to_string(),
            source: e.into(),
        });
        results.push((year, name, t, r.and_then(|r| r)));
    }
    if let Some(i) = results.iter().position(|r| r.3.is_err()) {
        for (_, name, _, r) in &results {
            if let Ok((_, files, _)) = r {
                crate::warehouse::writer::delete_uploaded(&wh.loc, name, files).await;
            }
        }
        let (_, _, _, r) = results.swap_remove(i);
        return r.map(|_| ());
    }
    for (year, name, t, r) in results {
        let (schema, files, mr) = r?;
        // recorded first: a failure from here on deletes them with the rest
        match written.iter_mut().find(|(n, _)| *n == name) {
            Some((_, f)) => f.extend(files),
            None => written.push((name, files)),
        }
        // test hook: create the marts as the version before the case-mix adjustment did, for
        // the test of a warehouse that version wrote
        let schema = if crate::ops::failpoint::skip("case-mix-columns") {
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .filter(|f| !f.name().contains("_adjusted"))
                .map(|f| f.as_ref().clone())
                .collect();
            Arc::new(Schema::new(fields))
        } else {
            schema
        };
        wh.ensure_mart(name, &schema, METHOD).await?;
        tracing::info!(
            mart = name,
            year,
            rows = mr.rows,
            primary = mr.suppressed_primary,
            secondary = mr.suppressed_secondary,
            cascade = mr.suppressed_cascade,
            seconds = t.elapsed().as_secs_f64(),
            "mart computed"
        );
        let total = report.marts.entry(name.to_string()).or_default();
        total.rows += mr.rows;
        total.suppressed_primary += mr.suppressed_primary;
        total.suppressed_secondary += mr.suppressed_secondary;
        total.suppressed_cascade += mr.suppressed_cascade;
        total.low_reliability += mr.low_reliability;
        report.casemix_models += mr.casemix_models;
        for n in mr.casemix_notes {
            if !report.casemix_notes.contains(&n) {
                report.casemix_notes.push(n);
            }
        }
    }
    Ok(())
}
