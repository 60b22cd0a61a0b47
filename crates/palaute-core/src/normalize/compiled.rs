//! A mapping compiled for one object's columns: where each field is read from, and each item's
//! kind with what its cells may hold.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};

use super::Status;
use super::time::TimeFormat;
use crate::schema::CodeList;

/// Where a field's value comes from: a column (its index and name) or a constant.
#[derive(Debug, Clone)]
pub(super) enum From {
    Column(usize, String),
    Constant(String),
}

impl From {
    /// The column's name, for a problem's report (none for a constant).
    pub(super) fn column_name(&self) -> Option<String> {
        match self {
            From::Column(_, n) => Some(n.clone()),
            From::Constant(_) => None,
        }
    }
}

/// A coded dimension: where it is read, the mapping's own values (folded source text → code),
/// and the code list its codes come from, if any.
#[derive(Debug, Clone)]
pub(super) struct Coded {
    pub(super) from: From,
    pub(super) values: HashMap<String, String>,
    pub(super) list: Option<&'static CodeList>,
}

/// What an ordinal item's word stands for: a value of the scale or a status.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Value(i16),
    Status(Status),
}

/// Where a response's submission time comes from.
pub(super) enum Submitted {
    Column(usize, TimeFormat),
    /// one time for every row of the object (a constant, or the date in the object's name)
    Fixed(DateTime<Utc>),
}

/// An item of the mapping: its code, its kind and its options' codes (by index).
#[derive(Debug, Clone)]
pub(super) struct CompiledItem {
    pub(super) code: String,
    pub(super) kind: ItemKind,
    pub(super) options: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) enum ItemKind {
    Ordinal(Ordinal),
    MultiColumns(MultiColumns),
    MultiCell(MultiCell),
    Text(Text),
    Choice(Choice),
    Number(Number),
}

/// A value of an ordinal scale (1–5, 0–10), a label of one, or a status word.
#[derive(Debug, Clone)]
pub(super) struct Ordinal {
    pub(super) col: usize,
    pub(super) min: i16,
    pub(super) max: i16,
    pub(super) lookup: HashMap<String, Target>,
    pub(super) nps: bool,
    /// strict mappings: what a cell may hold, for the quarantine reason
    pub(super) allowed: Option<String>,
}

/// A multi-select item with a column per option.
#[derive(Debug, Clone)]
pub(super) struct MultiColumns {
    pub(super) cols: Vec<(u16, usize)>,
    pub(super) selected: Option<HashSet<String>>,
    /// strict mappings: anything but these (and empty) is an invalid option
    pub(super) strict: bool,
    /// per column: rows read, rows it counted as chosen (for [`super::Normalizer::always_chosen`])
    pub(super) tally: std::sync::Arc<[(AtomicU64, AtomicU64)]>,
}

/// A multi-select item in one cell.
#[derive(Debug, Clone)]
pub(super) struct MultiCell {
    pub(super) col: usize,
    pub(super) sep: String,
    /// (folded text, option index), longest first
    pub(super) options: Vec<(String, u16)>,
}

/// An open-text item.
#[derive(Debug, Clone)]
pub(super) struct Text {
    pub(super) col: usize,
    /// placeholders that mean no answer (`values: {"-": missing}`), folded
    pub(super) missing: HashSet<String>,
}

/// One of the item's options: folded code or label → option index.
#[derive(Debug, Clone)]
pub(super) struct Choice {
    pub(super) col: usize,
    pub(super) options: HashMap<String, u16>,
    /// words that mean no answer (`values: {"-": missing}`), folded
    pub(super) missing: HashSet<String>,
}

/// A whole number within a range (a slider, a count).
#[derive(Debug, Clone)]
pub(super) struct Number {
    pub(super) col: usize,
    pub(super) min: i16,
    pub(super) max: i16,
    pub(super) missing: HashSet<String>,
}

/// The response's background: completion, the feedback's type and contact, times, geography
/// and the coded dimensions.
pub(super) struct Dimensions {
    pub(super) completion: Option<Coded>,
    pub(super) feedback_type: Option<Coded>,
    pub(super) contact_requested: Option<Coded>,
    pub(super) contact_columns: Vec<usize>,
    pub(super) started: Option<(usize, TimeFormat)>,
    pub(super) municipality: Option<From>,
    pub(super) county: Option<From>,
    pub(super) local_area: Option<Coded>,
    pub(super) org_unit: Option<Coded>,
    pub(super) service: Option<Coded>,
    pub(super) channel: Option<Coded>,
    pub(super) respondent_role: Option<Coded>,
    pub(super) language: Option<Coded>,
    pub(super) age_group: Option<Coded>,
    pub(super) birth_year: Option<From>,
    pub(super) gender: Option<Coded>,
}
