//! The warehouse's tables: their Arrow schemas, partition columns and row builders.
//! `docs/warehouse.md` describes every column for the people who query them.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    RecordBatch, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
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

/// Column builders of one table's Parquet file (no partition columns). Kept inline: one value
/// per open partition file, and the variant is matched on every row.
#[allow(clippy::large_enum_variant)]
pub enum Rows {
    Responses(ResponsesRows),
    Answers(AnswersRows),
    Comments(CommentsRows),
    Feedback(FeedbackRows),
    Quarantine(QuarantineRows),
}

impl Rows {
    pub fn new(table: &str) -> Rows {
        match table {
            RESPONSES => Rows::Responses(ResponsesRows::default()),
            ANSWERS => Rows::Answers(AnswersRows::default()),
            COMMENTS => Rows::Comments(CommentsRows::default()),
            FEEDBACK => Rows::Feedback(FeedbackRows::default()),
            QUARANTINE => Rows::Quarantine(QuarantineRows::default()),
            other => panic!("no row builder for {other}"),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Rows::Responses(r) => r.response_key.len(),
            Rows::Answers(r) => r.rows.len(),
            Rows::Comments(r) => r.response_key.len(),
            Rows::Feedback(r) => r.feedback_key.len(),
            Rows::Quarantine(r) => r.pipeline.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take the rows built so far as a batch of the table's file schema (`symbols`: the writer's
    /// symbol table, for compact rows).
    pub fn finish(&mut self, schema: &SchemaRef, symbols: &[String]) -> RecordBatch {
        let cols: Vec<ArrayRef> = match self {
            Rows::Responses(r) => r.finish(),
            Rows::Answers(r) => r.finish(symbols),
            Rows::Comments(r) => r.finish(),
            Rows::Feedback(r) => r.finish(),
            Rows::Quarantine(r) => r.finish(),
        };
        RecordBatch::try_new(schema.clone(), cols).expect("builders match the table schema")
    }
}

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

macro_rules! finish_all {
    ($($b:expr),* $(,)?) => {
        vec![$(Arc::new($b.finish()) as ArrayRef),*]
    };
}

pub struct ResponsesRows {
    pub response_key: StringBuilder,
    pub row_hash: Int64Builder,
    pub pipeline: StringBuilder,
    pub source_system: StringBuilder,
    pub survey_id: StringBuilder,
    pub instrument: StringBuilder,
    pub instrument_version: StringBuilder,
    pub submitted_at: TimestampMicrosecondBuilder,
    pub started_at: TimestampMicrosecondBuilder,
    pub classification_year: Int16Builder,
    pub municipality: StringBuilder,
    pub cooperation_area: StringBuilder,
    pub local_area: StringBuilder,
    pub org_unit: StringBuilder,
    pub service: StringBuilder,
    pub channel: StringBuilder,
    pub respondent_role: StringBuilder,
    pub language: StringBuilder,
    pub age_group: StringBuilder,
    pub gender: StringBuilder,
    pub nps: Int8Builder,
    pub completion: StringBuilder,
    pub load_id: StringBuilder,
    pub source_object: StringBuilder,
    pub source_row: Int64Builder,
}

impl Default for ResponsesRows {
    fn default() -> Self {
        ResponsesRows {
            response_key: StringBuilder::new(),
            row_hash: Int64Builder::new(),
            pipeline: StringBuilder::new(),
            source_system: StringBuilder::new(),
            survey_id: StringBuilder::new(),
            instrument: StringBuilder::new(),
            instrument_version: StringBuilder::new(),
            submitted_at: ts_builder(),
            started_at: ts_builder(),
            classification_year: Int16Builder::new(),
            municipality: StringBuilder::new(),
            cooperation_area: StringBuilder::new(),
            local_area: StringBuilder::new(),
            org_unit: StringBuilder::new(),
            service: StringBuilder::new(),
            channel: StringBuilder::new(),
            respondent_role: StringBuilder::new(),
            language: StringBuilder::new(),
            age_group: StringBuilder::new(),
            gender: StringBuilder::new(),
            nps: Int8Builder::new(),
            completion: StringBuilder::new(),
            load_id: StringBuilder::new(),
            source_object: StringBuilder::new(),
            source_row: Int64Builder::new(),
        }
    }
}

impl ResponsesRows {
    fn finish(&mut self) -> Vec<ArrayRef> {
        finish_all![
            self.response_key,
            self.row_hash,
            self.pipeline,
            self.source_system,
            self.survey_id,
            self.instrument,
            self.instrument_version,
            self.submitted_at,
            self.started_at,
            self.classification_year,
            self.municipality,
            self.cooperation_area,
            self.local_area,
            self.org_unit,
            self.service,
            self.channel,
            self.respondent_role,
            self.language,
            self.age_group,
            self.gender,
            self.nps,
            self.completion,
            self.load_id,
            self.source_object,
            self.source_row,
        ]
    }
}

/// One answer row, kept compact until its file is written (answers are most of a load's rows):
/// item and option codes are indices into the writer's symbol table.
#[derive(Debug, Clone)]
pub struct CompactAnswer {
    pub key: u128,
    pub item: u16,
    /// `u16::MAX` for none
    pub option: u16,
    pub value: Option<i16>,
    pub status: &'static str,
    pub raw: Option<Box<str>>,
}

#[derive(Default)]
pub struct AnswersRows {
    pub rows: Vec<CompactAnswer>,
}

impl AnswersRows {
    fn finish(&mut self, symbols: &[String]) -> Vec<ArrayRef> {
        let n = self.rows.len();
        let mut key = StringBuilder::with_capacity(n, n * 32);
        let mut item = StringBuilder::with_capacity(n, n * 12);
        let mut option = StringBuilder::with_capacity(n, n * 4);
        let mut value = Int16Builder::with_capacity(n);
        let mut status = StringBuilder::with_capacity(n, n * 8);
        let mut raw = StringBuilder::new();
        for a in self.rows.drain(..) {
            key.append_value(hex32(a.key).as_str());
            item.append_value(&symbols[a.item as usize]);
            if a.option == u16::MAX {
                option.append_null();
            } else {
                option.append_value(&symbols[a.option as usize]);
            }
            value.append_option(a.value);
            status.append_value(a.status);
            raw.append_option(a.raw.as_deref());
        }
        finish_all![key, item, option, value, status, raw]
    }
}

pub struct CommentsRows {
    pub response_key: StringBuilder,
    pub instrument: StringBuilder,
    pub field: StringBuilder,
    pub text: StringBuilder,
    pub redactions: Int32Builder,
    pub redaction_kinds: StringBuilder,
    pub load_id: StringBuilder,
}

impl Default for CommentsRows {
    fn default() -> Self {
        CommentsRows {
            response_key: StringBuilder::new(),
            instrument: StringBuilder::new(),
            field: StringBuilder::new(),
            text: StringBuilder::new(),
            redactions: Int32Builder::new(),
            redaction_kinds: StringBuilder::new(),
            load_id: StringBuilder::new(),
        }
    }
}

impl CommentsRows {
    fn finish(&mut self) -> Vec<ArrayRef> {
        finish_all![
            self.response_key,
            self.instrument,
            self.field,
            self.text,
            self.redactions,
            self.redaction_kinds,
            self.load_id,
        ]
    }
}

pub struct QuarantineRows {
    pub pipeline: StringBuilder,
    pub source_object: StringBuilder,
    pub source_row: Int64Builder,
    pub response_key: StringBuilder,
    pub row_hash: Int64Builder,
    pub reason_codes: StringBuilder,
    pub message: StringBuilder,
    pub record: StringBuilder,
    pub quarantined_at: TimestampMicrosecondBuilder,
}

impl Default for QuarantineRows {
    fn default() -> Self {
        QuarantineRows {
            pipeline: StringBuilder::new(),
            source_object: StringBuilder::new(),
            source_row: Int64Builder::new(),
            response_key: StringBuilder::new(),
            row_hash: Int64Builder::new(),
            reason_codes: StringBuilder::new(),
            message: StringBuilder::new(),
            record: StringBuilder::new(),
            quarantined_at: ts_builder(),
        }
    }
}

impl QuarantineRows {
    fn finish(&mut self) -> Vec<ArrayRef> {
        finish_all![
            self.pipeline,
            self.source_object,
            self.source_row,
            self.response_key,
            self.row_hash,
            self.reason_codes,
            self.message,
            self.record,
            self.quarantined_at,
        ]
    }
}

#[derive(Default)]
pub struct FeedbackRows {
    pub feedback_key: StringBuilder,
    pub row_hash: Int64Builder,
    pub pipeline: StringBuilder,
    pub source_system: StringBuilder,
    pub source_id: StringBuilder,
    pub received_at: TimestampMicrosecondBuilder,
    pub feedback_type: StringBuilder,
    pub classification_year: Int16Builder,
    pub municipality: StringBuilder,
    pub cooperation_area: StringBuilder,
    pub local_area: StringBuilder,
    pub org_unit: StringBuilder,
    pub service: StringBuilder,
    pub channel: StringBuilder,
    pub language: StringBuilder,
    pub contact_requested: BooleanBuilder,
    pub text: StringBuilder,
    pub redactions: Int32Builder,
    pub redaction_kinds: StringBuilder,
    pub load_id: StringBuilder,
    pub source_object: StringBuilder,
    pub source_row: Int64Builder,
}

impl FeedbackRows {
    fn finish(&mut self) -> Vec<ArrayRef> {
        let received: TimestampMicrosecondArray = self.received_at.finish();
        let received = received.with_timezone("UTC");
        let mut v = finish_all![
            self.feedback_key,
            self.row_hash,
            self.pipeline,
            self.source_system,
            self.source_id,
        ];
        v.push(Arc::new(received));
        v.extend(finish_all![
            self.feedback_type,
            self.classification_year,
            self.municipality,
            self.cooperation_area,
            self.local_area,
            self.org_unit,
            self.service,
            self.channel,
            self.language,
            self.contact_requested,
            self.text,
            self.redactions,
            self.redaction_kinds,
            self.load_id,
            self.source_object,
            self.source_row,
        ]);
        v
    }
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
