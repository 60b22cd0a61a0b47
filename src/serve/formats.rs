//! Query results as a client asks for them: CSV (UTF-8, a header row: what Excel's and Power
//! BI's web connectors read), JSON (an array of objects), Parquet, or an XLSX workbook.

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};

use crate::Cause;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Parquet,
    Xlsx,
}

impl Format {
    /// A `format=` value.
    pub fn named(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "parquet" => Some(Format::Parquet),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    /// The first media type of an `Accept` header this server writes (None: none of them, or
    /// any: the caller's default).
    pub fn accepted(accept: &str) -> Option<Format> {
        accept
            .split(',')
            .find_map(|m| match m.split(';').next().unwrap_or("").trim() {
                "text/csv" => Some(Format::Csv),
                "application/json" => Some(Format::Json),
                "application/vnd.apache.parquet" | "application/x-parquet" => Some(Format::Parquet),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => {
                    Some(Format::Xlsx)
                }
                _ => None,
            })
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Parquet => "application/vnd.apache.parquet",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Parquet => "parquet",
            Format::Xlsx => "xlsx",
        }
    }
}

/// `batches` (of `schema`) encoded in `format`.
pub fn encode(
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, Cause> {
    let mut out = Vec::new();
    match format {
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            if batches.is_empty() {
                // the header alone
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(&mut out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs)?;
            // an empty result is `[]` too
            w.finish()?;
        }
        Format::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(
                &mut out,
                schema.clone(),
                Some(crate::warehouse::writer::writer_properties()),
            )?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
        Format::Xlsx => out = xlsx(schema, batches)?,
    }
    Ok(out)
}

/// One sheet: a bold header row, numbers as numbers, booleans as TRUE/FALSE, the rest as text,
/// nulls as empty cells.
fn xlsx(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, Cause> {
    use rust_xlsxwriter::{Format as Style, Workbook};
    let mut wb = Workbook::new();
    let bold = Style::new().set_bold();
    let ws = wb.add_worksheet();
    for (c, f) in schema.fields().iter().enumerate() {
        ws.write_string_with_format(0, c as u16, f.name(), &bold)?;
    }
    let mut row = 1u32;
    for b in batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|a| {
                let numeric = a.data_type().is_numeric();
                let text = arrow::compute::cast(a, &DataType::Utf8)?;
                let number = numeric
                    .then(|| arrow::compute::cast(a, &DataType::Float64))
                    .transpose()?;
                Ok::<_, arrow::error::ArrowError>((a.data_type().clone(), text, number))
            })
            .collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            for (c, (ty, text, number)) in cols.iter().enumerate() {
                if text.is_null(i) {
                    continue;
                }
                let c = c as u16;
                match (ty, number) {
                    (_, Some(n)) => {
                        let n = n
                            .as_any()
                            .downcast_ref::<arrow::array::Float64Array>()
                            .expect("cast to Float64");
                        ws.write_number(row, c, n.value(i))?;
                    }
                    (DataType::Boolean, None) => {
                        let t = text
                            .as_any()
                            .downcast_ref::<arrow::array::StringArray>()
                            .expect("cast to Utf8");
                        ws.write_boolean(row, c, t.value(i) == "true")?;
                    }
                    _ => {
                        let t = text
                            .as_any()
                            .downcast_ref::<arrow::array::StringArray>()
                            .expect("cast to Utf8");
                        ws.write_string(row, c, t.value(i))?;
                    }
                }
            }
            row += 1;
        }
    }
    Ok(wb.save_to_buffer()?)
}
