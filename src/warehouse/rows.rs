//! The warehouse's column layout on the write path: the builders of each table's Parquet
//! columns, and how a normalized row (its head, body and scrubbed texts) fills them.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    RecordBatch, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;

use super::tables::{ANSWERS, COMMENTS, FEEDBACK, QUARANTINE, RESPONSES, hex32};
use crate::normalize::{Body, Head};
use crate::privacy::Scrubbed;

/// Estimated bytes a buffered row takes (for the spill budget), beyond its variable texts.
pub const RESPONSE_ROW_BYTES: usize = 260;
pub const FEEDBACK_ROW_BYTES: usize = 300;
pub const ANSWER_ROW_BYTES: usize = 64;
pub const COMMENT_ROW_BYTES: usize = 120;
pub const QUARANTINE_ROW_BYTES: usize = 300;

/// What every row of one source object shares: where it came from and what mapped it.
pub struct RowSource<'a> {
    pub pipeline: &'a str,
    pub load_id: &'a str,
    pub system: &'a str,
    pub survey: &'a str,
    pub instrument: &'a str,
    pub version: &'a str,
    pub object: &'a str,
}

impl ResponsesRows {
    /// One response's row (`key`: its key as stored, `line`: its row in the object).
    pub fn push(&mut self, src: &RowSource, line: u64, key: &str, head: &Head, body: &Body) {
        let r = self;
        r.response_key.append_value(key);
        r.row_hash.append_value(head.row_hash);
        r.pipeline.append_value(src.pipeline);
        r.source_system.append_value(src.system);
        r.survey_id.append_value(src.survey);
        r.instrument.append_value(src.instrument);
        r.instrument_version.append_value(src.version);
        r.submitted_at
            .append_value(head.submitted_at.timestamp_micros());
        r.started_at
            .append_option(body.started_at.map(|t| t.timestamp_micros()));
        r.classification_year.append_value(head.classification_year);
        r.municipality.append_option(head.municipality.as_deref());
        r.cooperation_area
            .append_option(head.cooperation_area.as_deref());
        r.local_area.append_option(body.local_area.as_deref());
        r.org_unit.append_option(body.org_unit.as_deref());
        r.service.append_option(body.service.as_deref());
        r.channel.append_option(body.channel.as_deref());
        r.respondent_role
            .append_option(body.respondent_role.as_deref());
        r.language.append_option(body.language.as_deref());
        r.age_group.append_option(body.age_group.as_deref());
        r.gender.append_option(body.gender.as_deref());
        r.nps.append_option(body.nps);
        r.completion.append_value(body.completion);
        r.load_id.append_value(src.load_id);
        r.source_object.append_value(src.object);
        r.source_row.append_value(line as i64);
    }
}

impl FeedbackRows {
    /// One spontaneous feedback's row, with its scrubbed text.
    pub fn push(
        &mut self,
        src: &RowSource,
        line: u64,
        key: &str,
        head: &Head,
        body: &Body,
        text: Option<&Scrubbed>,
    ) {
        let r = self;
        r.feedback_key.append_value(key);
        r.row_hash.append_value(head.row_hash);
        r.pipeline.append_value(src.pipeline);
        r.source_system.append_value(src.system);
        r.source_id.append_value(src.survey);
        r.received_at
            .append_value(head.submitted_at.timestamp_micros());
        r.feedback_type
            .append_value(body.feedback_type.as_deref().unwrap_or_default());
        r.classification_year.append_value(head.classification_year);
        r.municipality.append_option(head.municipality.as_deref());
        r.cooperation_area
            .append_option(head.cooperation_area.as_deref());
        r.local_area.append_option(body.local_area.as_deref());
        r.org_unit.append_option(body.org_unit.as_deref());
        r.service.append_option(body.service.as_deref());
        r.channel.append_option(body.channel.as_deref());
        r.language.append_option(body.language.as_deref());
        r.contact_requested.append_value(body.contact_requested);
        r.text.append_option(text.map(|t| t.text.as_str()));
        r.redactions
            .append_value(text.map_or(0, |t| t.redactions as i32));
        r.redaction_kinds
            .append_value(text.map_or("", |t| t.kinds.as_str()));
        r.load_id.append_value(src.load_id);
        r.source_object.append_value(src.object);
        r.source_row.append_value(line as i64);
    }
}

impl CommentsRows {
    /// One scrubbed open answer of a response (`field`: its item's code).
    pub fn push(&mut self, src: &RowSource, key: &str, field: &str, s: &Scrubbed) {
        let r = self;
        r.response_key.append_value(key);
        r.instrument.append_value(src.instrument);
        r.field.append_value(field);
        r.text.append_value(&s.text);
        r.redactions.append_value(s.redactions as i32);
        r.redaction_kinds.append_value(&s.kinds);
        r.load_id.append_value(src.load_id);
    }
}

/// A quarantined row: where it was, why, and its scrubbed record.
pub struct QuarantineRow<'a> {
    pub pipeline: &'a str,
    pub object: &'a str,
    pub line: u64,
    pub key: Option<String>,
    pub row_hash: i64,
    pub reason_codes: &'a str,
    pub message: &'a str,
    pub record: &'a str,
    pub quarantined_at: i64,
}

impl QuarantineRows {
    pub fn push(&mut self, q: &QuarantineRow) {
        let r = self;
        r.pipeline.append_value(q.pipeline);
        r.source_object.append_value(q.object);
        r.source_row.append_value(q.line as i64);
        r.response_key.append_option(q.key.as_deref());
        r.row_hash.append_value(q.row_hash);
        r.reason_codes.append_value(q.reason_codes);
        r.message.append_value(q.message);
        r.record.append_value(q.record);
        r.quarantined_at.append_value(q.quarantined_at);
    }
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
