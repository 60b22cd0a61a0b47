//! Mapping a source record to the national schema.
//!
//! A [`Normalizer`] is compiled from a pipeline's mapping, the catalog and one object's column
//! names; compiling finds every configuration error at once (unknown items, codes or columns).
//! Rows are then normalized in two steps: [`Normalizer::head`] gives what deduplication needs (the
//! response key, a hash of the mapped source fields, the time and the partition), and
//! [`Normalizer::body`] the rest, only for rows that will be written.

//!
//! The module reads as the mapping's life: `compile` (the mapping bound to an object's columns,
//! into the kinds of `compiled`), `head` and `keys` (what deduplication needs), `body` (one
//! function per item kind), `fields` and `values` (reading cells as survey tools write them).
//! `cases.yaml` holds the table-driven cases: records and mappings with what they become.

mod body;
#[cfg(test)]
mod cases;
mod compile;
mod compiled;
mod fields;
mod head;
mod keys;
pub mod time;
mod values;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::Mapping;
use crate::privacy::keys::KeySecret;
use crate::schema::{Catalog, Partition};
use compiled::{CompiledItem, ItemKind, MultiColumns, Submitted};
use time::TimeFormat;

/// Why a row cannot be loaded: a reason code, the column, and a message without answer text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub column: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "column '{c}': {} ({})", self.message, self.code),
            None => write!(f, "{} ({})", self.message, self.code),
        }
    }
}

/// What a strict mapping (a paper-form template) accepts for the statuses, and as an option mark.
pub const STRICT_STATUSES: [(&str, &str); 2] =
    [("cant_say", "eos"), ("not_applicable", "ei koske")];
pub const STRICT_MARK: &str = "x";

/// Answer status of a closed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Answered,
    CantSay,
    NotApplicable,
    /// shown, not answered
    Missing,
    /// not shown to the respondent (survey logic)
    NotShown,
    /// a number on a numeric scale (a slider, a count): not an agreement, kept out of item_scores
    Measured,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Answered => "answered",
            Status::CantSay => "cant_say",
            Status::NotApplicable => "not_applicable",
            Status::Missing => "missing",
            Status::NotShown => "not_shown",
            Status::Measured => "measured",
        }
    }
    fn parse(s: &str) -> Option<Status> {
        match s {
            "cant_say" => Some(Status::CantSay),
            "not_applicable" => Some(Status::NotApplicable),
            "missing" => Some(Status::Missing),
            "not_shown" => Some(Status::NotShown),
            _ => None,
        }
    }
}

/// One closed answer (or one chosen option of a multi-select item).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub item: u16,
    pub option: Option<u16>,
    pub value: Option<i16>,
    pub status: Status,
    pub raw: Option<String>,
}

/// What deduplication needs of a row.
#[derive(Debug, Clone)]
pub struct Head {
    pub key: u128,
    pub row_hash: i64,
    pub submitted_at: DateTime<Utc>,
    pub partition: Partition,
    pub municipality: Option<String>,
    pub classification_year: i16,
    pub cooperation_area: Option<String>,
}

/// The rest of a normalized row.
#[derive(Debug, Clone, Default)]
pub struct Body {
    pub started_at: Option<DateTime<Utc>>,
    pub local_area: Option<String>,
    pub org_unit: Option<String>,
    pub service: Option<String>,
    pub channel: Option<String>,
    pub respondent_role: Option<String>,
    pub language: Option<String>,
    pub age_group: Option<String>,
    pub gender: Option<String>,
    /// `complete` unless the mapping says `partial`
    pub completion: &'static str,
    /// feedback: its type code, and whether contact was asked for
    pub feedback_type: Option<String>,
    pub contact_requested: bool,
    pub nps: Option<i8>,
    pub answers: Vec<Answer>,
    /// (text item index, raw text) — scrubbed before it is stored
    pub texts: Vec<(u16, String)>,
}

pub struct Normalizer {
    pub instrument: String,
    pub version: String,
    pub system: String,
    pub survey: String,
    /// the warehouse's key secret (`None`: the unkeyed identity, as warehouses made before
    /// response keys were keyed hold; only a test hook builds such a warehouse now)
    secret: Option<KeySecret>,
    names: Vec<String>,
    /// the id column; `None`: rows are keyed by their mapped content (`row_hash: true`)
    id_col: Option<usize>,
    submitted: Submitted,
    /// the object's submission times hold dates of both orders (see `set_mixed_dates`)
    mixed_dates: Option<time::OrderEvidence>,
    /// read when the submission time is empty (e.g. the last activity of a partial response)
    submitted_fallback: Option<usize>,
    /// the background: completion, feedback, times, geography and the coded dimensions
    dims: compiled::Dimensions,
    tz: Tz,
    /// what a free dimension (org unit, local area, service) may not hold
    guard: crate::privacy::IdentifierGuard,
    /// submission times outside this window are implausible (quarantined)
    plausible: (DateTime<Utc>, DateTime<Utc>),
    items: Vec<CompiledItem>,
    /// age bands of the source that straddle national ones (stored as unknown), with their rows
    wide_bands: std::sync::Mutex<BTreeMap<String, u64>>,
    hash_cols: Vec<usize>,
    /// mapped columns that hold open text (scrubbed in quarantine rows too)
    text_cols: HashSet<usize>,
    catalog: &'static Catalog,
}

/// The columns of an object that the mapping does not read and does not list under `ignore`.
pub fn unmapped_columns(m: &Mapping, names: &[String]) -> Vec<String> {
    let mut used: HashSet<String> = m.columns().into_iter().collect();
    used.extend(m.contact_columns.iter().cloned());
    let ignored: HashSet<&str> = m.ignore.iter().map(String::as_str).collect();
    names
        .iter()
        .filter(|n| !n.is_empty() && !used.contains(*n) && !ignored.contains(n.as_str()))
        .cloned()
        .collect()
}

impl Normalizer {
    /// Multi-select columns that counted every one of more than `min_rows` rows as chosen since
    /// this normalizer was made: a sign that the column's "not chosen" value is not recognised
    /// (a 0/1 column written another way, a text for "not chosen"), so that `selected:` should
    /// say what "chosen" is.
    pub fn always_chosen(&self, min_rows: u64) -> Vec<String> {
        let mut out = Vec::new();
        for item in &self.items {
            if let ItemKind::MultiColumns(MultiColumns { cols, tally, .. }) = &item.kind {
                for ((_, col), (read, chosen)) in cols.iter().zip(tally.iter()) {
                    let read = read.load(Ordering::Relaxed);
                    if read > min_rows && chosen.load(Ordering::Relaxed) == read {
                        out.push(self.names[*col].clone());
                    }
                }
            }
        }
        out
    }

    /// Item codes by index (as in [`Answer::item`]).
    pub fn item_code(&self, i: u16) -> &str {
        &self.items[i as usize].code
    }

    pub fn option_code(&self, item: u16, opt: u16) -> &str {
        &self.items[item as usize].options[opt as usize]
    }

    pub fn column_name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The columns holding submission times whose dates may be written day- or month-first, with
    /// the order the format reads and the separator (for the run's look at the whole column).
    pub fn date_columns(&self) -> Option<(Vec<usize>, time::Order, char)> {
        let Submitted::Column(c, format) = &self.submitted else {
            return None;
        };
        let (order, sep) = time::order_of(format)?;
        let mut cols = vec![*c];
        cols.extend(self.submitted_fallback);
        Some((cols, order, sep))
    }

    /// The object's submission times are not all in the order the format reads: rows whose date
    /// reads as another date in the other order are quarantined as `ambiguous_date`.
    pub fn set_mixed_dates(&mut self, evidence: time::OrderEvidence) {
        self.mixed_dates = Some(evidence);
    }

    /// The format of the submission-time column, if the times come from a column.
    pub fn date_format(&self) -> Option<&TimeFormat> {
        match &self.submitted {
            Submitted::Column(_, f) => Some(f),
            Submitted::Fixed(_) => None,
        }
    }

    /// The source's age bands that straddle national ones (their age group is stored as not
    /// known), with how many rows had each.
    pub fn straddling_age_bands(&self) -> BTreeMap<String, u64> {
        self.wide_bands.lock().expect("the tally's lock").clone()
    }

    /// Whether rows are keyed by their content (`response_id: {row_hash: true}`).
    pub fn keyed_by_content(&self) -> bool {
        self.id_col.is_none()
    }
}

/// The problem code of a dimension value that identifies a respondent: not a row to quarantine
/// but a mapping to fix (the run fails, naming the row and column).
pub const IDENTIFYING_VALUE: &str = "identifying_value";

/// The quarantine reason of a row with the response id of an earlier row of its object but
/// other content.
pub const CONFLICTING_DUPLICATE: &str = "conflicting_duplicate";

/// The quarantine reason of a date that reads as another date day-first and month-first, in an
/// object whose dates are of both orders.
pub const AMBIGUOUS_DATE: &str = "ambiguous_date";

/// What `quarantine.record` holds in place of a year of birth.
pub const BIRTH_YEAR_MARKER: &str = "[birth_year]";
