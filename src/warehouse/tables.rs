//! The warehouse's tables: their Arrow schemas and partition columns (their row builders are
//! in `rows`).
//! `docs/warehouse.md` describes every column for the people who query them.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const RESPONSES: &str = "responses";
pub const ANSWERS: &str = "answers";
pub const COMMENTS: &str = "comments";
pub const QUARANTINE: &str = "quarantine";
pub const FEEDBACK: &str = "feedback";
pub const RUNS: &str = "runs";

/// The data tables runs write (the ledger `runs` is written last, as the commit point), in
/// commit order.
pub const DATA_TABLES: [&str; 5] = [RESPONSES, ANSWERS, COMMENTS, FEEDBACK, QUARANTINE];
pub const ALL_TABLES: [&str; 6] = [RESPONSES, ANSWERS, COMMENTS, FEEDBACK, QUARANTINE, RUNS];

/// The comparison marts `palaute aggregate` writes (their schemas come from `sql/`; they are
/// created on the first aggregation), and the coefficients of the case-mix models their
/// adjusted figures come from.
pub const MART_TABLES: [&str; 5] = [
    "item_scores",
    "recommendation",
    "response_counts",
    "selections",
    "casemix_coefficients",
];
/// Marts are partitioned by period type and year: a recomputation replaces whole years.
pub const MART_PARTITIONS: [&str; 2] = ["period_type", "year"];

/// A table's partition columns.
pub fn partition_columns(name: &str) -> &'static [&'static str] {
    if MART_TABLES.contains(&name) {
        &MART_PARTITIONS
    } else {
        table_def(name).partition_by
    }
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn s(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// A table's full schema (partition columns last) and its partition columns.
pub struct TableDef {
    pub name: &'static str,
    pub schema: SchemaRef,
    pub partition_by: &'static [&'static str],
    /// the schema of the Parquet files (without partition columns)
    pub file_schema: SchemaRef,
}

fn def(name: &'static str, fields: Vec<Field>, partition_by: &'static [&'static str]) -> TableDef {
    let schema = Arc::new(Schema::new(fields));
    let file_fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| !partition_by.contains(&f.name().as_str()))
        .map(|f| f.as_ref().clone())
        .collect();
    TableDef {
        name,
        schema,
        partition_by,
        file_schema: Arc::new(Schema::new(file_fields)),
    }
}

/// The definition of warehouse table `name`. Long by design: it is the tables' schemas as one
/// literal, column by column, in the order docs/warehouse.md describes them.
pub fn table_def(name: &str) -> &'static TableDef {
    static DEFS: OnceLock<Vec<TableDef>> = OnceLock::new();
    let defs = DEFS.get_or_init(|| {
        vec![
            def(
                RESPONSES,
                vec![
                    s("response_key", false),
                    Field::new("row_hash", DataType::Int64, false),
                    s("pipeline", false),
                    s("source_system", false),
                    s("survey_id", false),
                    s("instrument", false),
                    s("instrument_version", false),
                    Field::new("submitted_at", ts(), false),
                    Field::new("started_at", ts(), true),
                    Field::new("classification_year", DataType::Int16, false),
                    s("municipality", true),
                    s("cooperation_area", true),
                    s("local_area", true),
                    s("org_unit", true),
                    s("service", true),
                    s("channel", true),
                    s("respondent_role", true),
                    s("language", true),
                    s("age_group", true),
                    s("gender", true),
                    Field::new("nps", DataType::Int8, true),
                    s("completion", false),
                    s("load_id", false),
                    s("source_object", false),
                    Field::new("source_row", DataType::Int64, false),
                    s("period", false),
                    s("county", false),
                ],
                &["period", "county"],
            ),
            def(
                ANSWERS,
                vec![
                    s("response_key", false),
                    s("item_code", false),
                    s("option_code", true),
                    Field::new("value", DataType::Int16, true),
                    s("status", false),
                    s("raw_value", true),
                    s("period", false),
                    s("county", false),
                ],
                &["period", "county"],
            ),
            def(
                FEEDBACK,
                vec![
                    s("feedback_key", false),
                    Field::new("row_hash", DataType::Int64, false),
                    s("pipeline", false),
                    s("source_system", false),
                    s("source_id", false),
                    Field::new("received_at", ts(), false),
                    s("feedback_type", false),
                    Field::new("classification_year", DataType::Int16, false),
                    s("municipality", true),
                    s("cooperation_area", true),
                    s("local_area", true),
                    s("org_unit", true),
                    s("service", true),
                    s("channel", true),
                    s("language", true),
                    Field::new("contact_requested", DataType::Boolean, false),
                    s("text", true),
                    Field::new("redactions", DataType::Int32, false),
                    s("redaction_kinds", false),
                    s("load_id", false),
                    s("source_object", false),
                    Field::new("source_row", DataType::Int64, false),
                    s("period", false),
                    s("county", false),
                ],
                &["period", "county"],
            ),
            def(
                COMMENTS,
                vec![
                    s("response_key", false),
                    s("instrument", false),
                    s("field", false),
                    s("text", false),
                    Field::new("redactions", DataType::Int32, false),
                    s("redaction_kinds", false),
                    s("load_id", false),
                    s("period", false),
                    s("county", false),
                ],
                &["period", "county"],
            ),
            def(
                QUARANTINE,
                vec![
                    s("pipeline", false),
                    s("source_object", false),
                    Field::new("source_row", DataType::Int64, false),
                    s("response_key", true),
                    Field::new("row_hash", DataType::Int64, true),
                    s("reason_codes", false),
                    s("message", false),
                    s("record", false),
                    Field::new("quarantined_at", ts(), false),
                    s("load_id", false),
                ],
                &["load_id"],
            ),
            def(
                RUNS,
                vec![
                    s("run_id", false),
                    Field::new("seq", DataType::Int64, false),
                    s("pipeline", false),
                    Field::new("started_at", ts(), false),
                    Field::new("finished_at", ts(), false),
                    s("status", false),
                    s("message", true),
                    Field::new("rows_read", DataType::Int64, false),
                    Field::new("rows_loaded", DataType::Int64, false),
                    Field::new("rows_updated", DataType::Int64, false),
                    Field::new("rows_duplicate", DataType::Int64, false),
                    Field::new("rows_quarantined", DataType::Int64, false),
                    Field::new("objects_read", DataType::Int64, false),
                    Field::new("objects_skipped", DataType::Int64, false),
                    s("objects", false),
                    s("table_versions", false),
                    s("palaute_version", false),
                ],
                &[],
            ),
        ]
    });
    defs.iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("{name} is a warehouse table"))
}

/// Format a response key as stored (32 lowercase hex digits).
pub fn key_hex(k: u128) -> String {
    String::from(hex32(k).as_str())
}

/// A response key's 32 hex digits without allocating (every row of a load formats its key).
pub struct Hex32([u8; 32]);

impl Hex32 {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

pub fn hex32(k: u128) -> Hex32 {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in k.to_be_bytes().iter().enumerate() {
        out[2 * i] = DIGITS[(b >> 4) as usize];
        out[2 * i + 1] = DIGITS[(b & 15) as usize];
    }
    Hex32(out)
}

pub fn parse_key(s: &str) -> Option<u128> {
    u128::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_format_as_32_lowercase_hex_digits_and_parse_back() {
        for k in [
            0u128,
            1,
            0xabcdef,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            assert_eq!(hex32(k).as_str(), format!("{k:032x}"));
            assert_eq!(parse_key(&key_hex(k)), Some(k));
        }
    }
}
