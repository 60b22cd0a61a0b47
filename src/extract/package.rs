//! The package an extract writes: Parquet files written deterministically, `datapackage.json`
//! (Frictionless Data Package v2), a codebook and a disclosure report, all from the same
//! metadata, none holding a wall-clock time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int16Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use sha2::Digest;

use super::ExtractError;

/// One column of an extracted table: its name, type, description and (for coded columns) its
/// categories with their labels in Finnish, Swedish and English.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub integer: bool,
    pub description: String,
    /// code → (fi, sv, en)
    pub categories: BTreeMap<String, [String; 3]>,
    pub values: Vec<Option<String>>,
}

/// One table of the package.
pub struct Table {
    pub name: &'static str,
    pub description: String,
    pub columns: Vec<Column>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.columns.first().map(|c| c.values.len()).unwrap_or(0)
    }
}

/// The Parquet bytes of a table: fixed writer settings, one row group, no time inside.
pub fn parquet_bytes(t: &Table) -> Result<Vec<u8>, ExtractError> {
    let fields: Vec<Field> = t
        .columns
        .iter()
        .map(|c| {
            Field::new(
                &c.name,
                if c.integer {
                    DataType::Int16
                } else {
                    DataType::Utf8
                },
                c.name != "pseudonym",
            )
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let arrays: Vec<ArrayRef> = t
        .columns
        .iter()
        .map(|c| -> ArrayRef {
            if c.integer {
                Arc::new(Int16Array::from_iter(
                    c.values
                        .iter()
                        .map(|v| v.as_deref().and_then(|s| s.parse().ok())),
                ))
            } else {
                Arc::new(StringArray::from_iter(
                    c.values.iter().map(|v| v.as_deref()),
                ))
            }
        })
        .collect();
    let batch =
        RecordBatch::try_new(schema.clone(), arrays).map_err(|e| ExtractError::Write(e.into()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("a valid level"),
        ))
        .set_created_by(format!("palaute {}", env!("CARGO_PKG_VERSION")))
        .set_max_row_group_row_count(Some(1 << 30))
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props))
        .map_err(|e| ExtractError::Write(e.into()))?;
    w.write(&batch).map_err(|e| ExtractError::Write(e.into()))?;
    w.close().map_err(|e| ExtractError::Write(e.into()))?;
    Ok(buf)
}

pub fn sha256_hex(b: &[u8]) -> String {
    let mut h = sha2::Sha256::new();
    h.update(b);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

// --- datapackage.json (Data Package v2, Table Schema v2) ---

#[derive(Serialize)]
pub struct DataPackage {
    #[serde(rename = "$schema")]
    pub schema: &'static str,
    pub name: String,
    pub title: String,
    pub description: String,
    pub version: String,
    pub resources: Vec<Resource>,
    #[serde(rename = "palaute:provenance")]
    pub provenance: serde_json::Value,
}

#[derive(Serialize)]
pub struct Resource {
    pub name: String,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub format: &'static str,
    pub mediatype: &'static str,
    pub bytes: u64,
    pub hash: String,
    pub description: String,
    #[serde(rename = "palaute:rows")]
    pub rows: u64,
    pub schema: TableSchema,
}

#[derive(Serialize)]
pub struct TableSchema {
    #[serde(rename = "$schema")]
    pub schema: &'static str,
    pub fields: Vec<FieldDescriptor>,
    #[serde(rename = "missingValues")]
    pub missing_values: Vec<MissingValue>,
}

#[derive(Serialize)]
pub struct MissingValue {
    pub value: String,
    pub label: String,
}

#[derive(Serialize)]
pub struct FieldDescriptor {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Category>,
    /// the categories' labels in Finnish, Swedish and English
    #[serde(rename = "palaute:labels", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, BTreeMap<&'static str, String>>,
}

#[derive(Serialize)]
pub struct Category {
    pub value: String,
    pub label: String,
}

pub fn resource(t: &Table, bytes: &[u8], missing: Vec<MissingValue>) -> Resource {
    Resource {
        name: t.name.to_string(),
        path: format!("{}.parquet", t.name),
        kind: "table",
        format: "parquet",
        mediatype: "application/vnd.apache.parquet",
        bytes: bytes.len() as u64,
        hash: format!("sha256:{}", sha256_hex(bytes)),
        description: t.description.clone(),
        rows: t.rows() as u64,
        schema: TableSchema {
            schema: "https://datapackage.org/profiles/2.0/tableschema.json",
            fields: t
                .columns
                .iter()
                .map(|c| FieldDescriptor {
                    name: c.name.clone(),
                    kind: if c.integer { "integer" } else { "string" },
                    description: c.description.clone(),
                    categories: c
                        .categories
                        .iter()
                        .map(|(v, l)| Category {
                            value: v.clone(),
                            label: first_label(l, v),
                        })
                        .collect(),
                    labels: c
                        .categories
                        .iter()
                        .map(|(v, l)| {
                            (
                                v.clone(),
                                [("fi", &l[0]), ("sv", &l[1]), ("en", &l[2])]
                                    .into_iter()
                                    .filter(|(_, s)| !s.is_empty())
                                    .map(|(k, s)| (k, s.clone()))
                                    .collect(),
                            )
                        })
                        .collect(),
                })
                .collect(),
            missing_values: missing,
        },
    }
}

fn first_label(l: &[String; 3], code: &str) -> String {
    l.iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| code.to_string())
}

// --- the codebook ---

/// The codebook in Markdown: per table and variable its description, and per category its
/// labels and frequency, frequencies under `k` shown as suppressed.
pub fn codebook(
    title: &str,
    header: &[(String, String)],
    tables: &[&Table],
    items: &BTreeMap<String, [String; 3]>,
    k: usize,
) -> String {
    let mut s = format!("# Codebook: {title}\n\n");
    for (k, v) in header {
        s.push_str(&format!("- {k}: {v}\n"));
    }
    s.push_str(&format!(
        "\nFrequencies under {k} are shown as `< {k}` (suppressed). Labels are Finnish / Swedish / English.\n"
    ));
    for t in tables {
        s.push_str(&format!(
            "\n## {}.parquet ({} rows)\n\n{}\n\n| variable | type | description |\n|---|---|---|\n",
            t.name,
            t.rows(),
            t.description
        ));
        for c in &t.columns {
            s.push_str(&format!(
                "| `{}` | {} | {} |\n",
                c.name,
                if c.integer { "integer" } else { "string" },
                c.description
            ));
        }
        for c in &t.columns {
            if c.name == "pseudonym" || c.name == "text" {
                continue;
            }
            let mut freq: BTreeMap<Option<&str>, usize> = BTreeMap::new();
            for v in &c.values {
                *freq.entry(v.as_deref()).or_default() += 1;
            }
            s.push_str(&format!("\n### `{}`\n\n{}\n\n", c.name, c.description));
            s.push_str("| value | label | n |\n|---|---|---|\n");
            let keys: BTreeSet<Option<&str>> = freq.keys().copied().collect();
            let mut keys: Vec<Option<&str>> = keys.into_iter().collect();
            if c.integer {
                keys.sort_by_key(|k| k.and_then(|v| v.parse::<i64>().ok()));
            }
            for key in keys {
                let n = freq[&key];
                let label = match key {
                    None => "(not known / not given)".to_string(),
                    Some(v) => c
                        .categories
                        .get(v)
                        .or_else(|| {
                            if c.name == "item_code" {
                                items.get(v)
                            } else {
                                None
                            }
                        })
                        .map(|l| {
                            l.iter()
                                .filter(|s| !s.is_empty())
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(" / ")
                        })
                        .unwrap_or_default(),
                };
                let shown = if n < k {
                    format!("< {k}")
                } else {
                    n.to_string()
                };
                s.push_str(&format!(
                    "| {} | {} | {shown} |\n",
                    key.unwrap_or("(empty)"),
                    label.replace('|', "\\|")
                ));
            }
        }
    }
    s
}
