//! Mapping a source record to the national schema.
//!
//! A [`Normalizer`] is compiled from a pipeline's mapping, the catalog and one object's column
//! names; compiling finds every configuration error at once (unknown items, codes or columns).
//! Rows are then normalized in two steps: [`Normalizer::head`] gives what deduplication needs (the
//! response key, a hash of the mapped source fields, the time and the partition), and
//! [`Normalizer::body`] the rest, only for rows that will be written.

pub mod time;

use crate::privacy::keys::{KeySecret, unkeyed};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use csv::ByteRecord;

use crate::config::{Field, ItemSpec, Mapping, Pipeline, PipelineKind, Scalar};
use crate::schema::{Catalog, CodeList, Labels, Partition, ScaleKind, codes::fold};
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

/// What LimeSurvey writes (VV export) for a question its conditions did not show; its database
/// holds NULL there, which the LimeSurvey source reads as this marker. Empty means shown but not
/// answered.
pub const NOT_SHOWN: &str = "{question_not_shown}";

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

#[derive(Debug, Clone)]
enum From {
    Column(usize, String),
    Constant(String),
}

#[derive(Debug, Clone)]
struct Coded {
    from: From,
    values: HashMap<String, String>,
    list: Option<&'static CodeList>,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Value(i16),
    Status(Status),
}

#[derive(Debug, Clone)]
enum ItemKind {
    Ordinal {
        col: usize,
        min: i16,
        max: i16,
        lookup: HashMap<String, Target>,
        nps: bool,
        /// strict mappings: what a cell may hold, for the quarantine reason
        allowed: Option<String>,
    },
    MultiColumns {
        cols: Vec<(u16, usize)>,
        selected: Option<HashSet<String>>,
        /// strict mappings: anything but these (and empty) is an invalid option
        strict: bool,
        /// per column: rows read, rows it counted as chosen (for [`Normalizer::always_chosen`])
        tally: std::sync::Arc<[(AtomicU64, AtomicU64)]>,
    },
    MultiCell {
        col: usize,
        sep: String,
        /// (folded text, option index), longest first
        options: Vec<(String, u16)>,
    },
    Text {
        col: usize,
        /// placeholders that mean no answer (`values: {"-": missing}`), folded
        missing: HashSet<String>,
    },
    /// one of the item's options: folded code or label → option index
    Choice {
        col: usize,
        options: HashMap<String, u16>,
        /// words that mean no answer (`values: {"-": missing}`), folded
        missing: HashSet<String>,
    },
    Number {
        col: usize,
        min: i16,
        max: i16,
        missing: HashSet<String>,
    },
}

#[derive(Debug, Clone)]
struct CompiledItem {
    code: String,
    kind: ItemKind,
    options: Vec<String>,
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

/// Where a response's submission time comes from.
enum Submitted {
    Column(usize, TimeFormat),
    /// one time for every row of the object (a constant, or the date in the object's name)
    Fixed(DateTime<Utc>),
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
    completion: Option<Coded>,
    feedback_type: Option<Coded>,
    contact_requested: Option<Coded>,
    contact_columns: Vec<usize>,
    started: Option<(usize, TimeFormat)>,
    tz: Tz,
    /// what a free dimension (org unit, local area, service) may not hold
    guard: crate::privacy::IdentifierGuard,
    /// submission times outside this window are implausible (quarantined)
    plausible: (DateTime<Utc>, DateTime<Utc>),
    municipality: Option<From>,
    county: Option<From>,
    local_area: Option<Coded>,
    org_unit: Option<Coded>,
    service: Option<Coded>,
    channel: Option<Coded>,
    respondent_role: Option<Coded>,
    language: Option<Coded>,
    age_group: Option<Coded>,
    birth_year: Option<From>,
    gender: Option<Coded>,
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

fn scalar_map(m: &std::collections::BTreeMap<Scalar, Scalar>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.0.clone(), v.0.clone())).collect()
}

struct Binder<'a> {
    names: &'a [String],
    index: HashMap<&'a str, usize>,
    dups: HashSet<&'a str>,
    errors: Vec<String>,
    /// the identifier columns of the source's layout, by the names it gives them (lowercase)
    layout_identifiers: &'static [&'static str],
}

impl<'a> Binder<'a> {
    fn new(names: &'a [String]) -> Self {
        let mut index = HashMap::new();
        let mut dups = HashSet::new();
        for (i, n) in names.iter().enumerate() {
            if index.insert(n.as_str(), i).is_some() {
                dups.insert(n.as_str());
            }
        }
        Binder {
            names,
            index,
            dups,
            errors: Vec::new(),
            layout_identifiers: &[],
        }
    }

    fn column(&mut self, key: &str, col: &str) -> Option<usize> {
        if crate::privacy::is_identifier_column(col)
            || self
                .layout_identifiers
                .contains(&col.trim().to_lowercase().as_str())
        {
            self.errors.push(format!(
                "mapping.{key}: column '{col}' identifies the respondent; it never enters the warehouse"
            ));
            return None;
        }
        if self.dups.contains(col) {
            self.errors.push(format!(
                "mapping.{key}: column '{col}' appears more than once in the header"
            ));
            return None;
        }
        match self.index.get(col) {
            Some(i) => Some(*i),
            None => {
                self.errors.push(format!(
                    "mapping.{key}: column '{col}' is not in the source (it has {} columns{})",
                    self.names.len(),
                    suggestion(col, self.names)
                ));
                None
            }
        }
    }

    fn from(&mut self, key: &str, f: &Field) -> Option<From> {
        match (&f.0.column, &f.0.constant) {
            (Some(c), _) => self.column(key, c).map(|i| From::Column(i, c.clone())),
            (None, Some(k)) => Some(From::Constant(k.0.clone())),
            (None, None) => None,
        }
    }

    fn coded(
        &mut self,
        key: &str,
        f: &Option<Field>,
        list: Option<&'static CodeList>,
    ) -> Option<Coded> {
        let f = f.as_ref()?;
        let from = self.from(key, f)?;
        let mut values = HashMap::new();
        for (k, v) in scalar_map(&f.0.values) {
            if let Some(l) = list
                && !l.contains_code(&v)
            {
                self.errors.push(format!(
                    "mapping.{key}.values: '{v}' is not a {key} code (codes: {})",
                    l.codes().join(", ")
                ));
            }
            values.insert(fold(&k), v);
        }
        if let (From::Constant(c), Some(l)) = (&from, list) {
            let code = values
                .get(&fold(c))
                .map(String::as_str)
                .or_else(|| l.lookup(c));
            if code.is_none() {
                self.errors.push(format!(
                    "mapping.{key}.constant: '{c}' is not a {key} code (codes: {})",
                    l.codes().join(", ")
                ));
            }
        }
        Some(Coded { from, values, list })
    }
}

/// "; did you mean 'X'?" for a column the source lacks: a name that differs only in case and
/// spacing, else only in punctuation (LimeSurvey writes a subquestion `Q1[SQ001]` in one export
/// and `Q1_SQ001` in another), else the nearest name within a few edits.
fn suggestion(col: &str, names: &[String]) -> String {
    let f = fold(col);
    let alnum = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let a = alnum(col);
    names
        .iter()
        .find(|n| fold(n) == f)
        .or_else(|| names.iter().find(|n| !a.is_empty() && alnum(n) == a))
        .or_else(|| {
            names
                .iter()
                .map(|n| (strsim::levenshtein(&f, &fold(n)), n))
                .filter(|(d, _)| *d <= 2.max(f.chars().count() / 4))
                .min_by_key(|(d, _)| *d)
                .map(|(_, n)| n)
        })
        .map(|n| format!("; did you mean '{n}'?"))
        .unwrap_or_default()
}

fn time_format(f: &Field) -> TimeFormat {
    match f.0.format.as_deref() {
        None | Some("auto") => TimeFormat::Auto,
        Some("excel") => TimeFormat::Excel,
        Some(other) => TimeFormat::Custom(other.to_string()),
    }
}

/// Identifier columns a layout names by position rather than by what they hold: Qualtrics'
/// legacy export heads its columns V1…V10, of which V3 is the name, V4 the external reference,
/// V5 the e-mail address and V6 the IP address.
fn layout_identifiers(p: &Pipeline) -> &'static [&'static str] {
    use crate::config::{CsvLayout, FormatConfig};
    match p.format() {
        FormatConfig::Csv(c) if c.layout == CsvLayout::QualtricsLegacy => &["v3", "v4", "v5", "v6"],
        _ => &[],
    }
}

/// The window of plausible submission times: from the pipeline's `quality.earliest` (validated
/// with the pipeline) to a day after now.
fn plausible_window(p: &Pipeline) -> (DateTime<Utc>, DateTime<Utc>) {
    let earliest = chrono::NaiveDate::parse_from_str(&p.quality.earliest, "%Y-%m-%d")
        .unwrap_or(chrono::NaiveDate::MIN)
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let latest = Utc::now() + chrono::Duration::hours(crate::config::LATEST_AHEAD_HOURS);
    (earliest, latest)
}

/// An open-text field's `values`: placeholders mapped to `missing` ("-", "Did not answer",
/// "ei kommentoitavaa") are no answer; any other target is an error, never ignored.
fn text_placeholders(
    key: &str,
    values: &BTreeMap<Scalar, Scalar>,
    errors: &mut Vec<String>,
) -> HashSet<String> {
    let mut out = HashSet::new();
    for (from, to) in values {
        if fold(&to.0) == "missing" {
            out.insert(fold(&from.0));
        } else {
            errors.push(format!(
                "mapping.{key}.values: '{}' → '{}': an open-text field's values can only be `missing` (a placeholder that means no answer)",
                from.0, to.0
            ));
        }
    }
    out
}

/// A number as survey tools write one (`1`, `1.0000000000`, `0,5`), or `None`.
fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() || !t.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        return None;
    }
    t.replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
}

/// Parse a number as survey tools write one: `4`, `4.0`, `4,0`, `68.0000000000`.
fn parse_integral(s: &str) -> Option<i64> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let f: f64 = s.replace(',', ".").parse().ok()?;
    (f.fract() == 0.0 && f.is_finite()).then_some(f as i64)
}

impl Normalizer {
    /// Compile the mapping for an object with the columns `names`. Every problem is listed.
    pub fn new(
        p: &Pipeline,
        catalog: &'static Catalog,
        names: &[String],
        object: &str,
        secret: Option<KeySecret>,
    ) -> Result<Normalizer, Vec<String>> {
        let m = &p.mapping;
        let mut b = Binder::new(names);
        b.layout_identifiers = layout_identifiers(p);
        let mut errors = Vec::new();
        let feedback = p.kind == PipelineKind::Feedback;
        let instrument = match catalog.instrument(&m.instrument) {
            _ if feedback => None,
            Ok(i) => Some(i),
            Err(e) => {
                errors.push(format!("mapping.instrument: {e}"));
                None
            }
        };
        let version = instrument.and_then(|i| match i.version(&m.version.0) {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(format!("mapping.version: {e}"));
                None
            }
        });
        let tz: Tz = match m.timezone.parse() {
            Ok(t) => t,
            Err(_) => {
                errors.push(format!(
                    "mapping.timezone: unknown time zone '{}'",
                    m.timezone
                ));
                chrono_tz::Europe::Helsinki
            }
        };
        // Ok(None): rows are keyed by their content; Err: the id column is not there
        let id_col: Result<Option<usize>, ()> = match &m.response_id.0.column {
            Some(c) => b.column("response_id", c).map(Some).ok_or(()),
            None => Ok(None),
        };
        let submitted = match (
            &m.submitted_at.0.constant,
            &m.submitted_at.0.from_object_name,
        ) {
            (Some(c), _) => time::parse_time(&c.0, &TimeFormat::Auto, tz).map(Submitted::Fixed),
            (None, Some(f)) => match time::date_in_name(object, f) {
                Ok(Some(d)) => {
                    time::parse_time(&d.to_string(), &TimeFormat::Auto, tz).map(Submitted::Fixed)
                }
                _ => {
                    errors.push(format!(
                        "mapping.submitted_at.from_object_name: the object's name has no date in the form '{f}'"
                    ));
                    None
                }
            },
            (None, None) => b
                .from("submitted_at", &m.submitted_at)
                .and_then(|f| match f {
                    From::Column(i, _) => Some(Submitted::Column(i, time_format(&m.submitted_at))),
                    From::Constant(_) => None,
                }),
        };
        let submitted_fallback = m
            .submitted_at
            .0
            .fallback
            .as_ref()
            .and_then(|c| b.column("submitted_at.fallback", c));
        let completion = b.coded("completion", &m.completion, None);
        let feedback_type = b.coded(
            "feedback_type",
            &m.feedback_type,
            Some(catalog.list("feedback_type")),
        );
        let contact_requested = b.coded("contact_requested", &m.contact_requested, None);
        // contact details: only whether one is filled is read
        let mut contact_columns = Vec::new();
        for c in &m.contact_columns {
            match names.iter().position(|n| n == c) {
                Some(i) => contact_columns.push(i),
                None => errors.push(format!(
                    "mapping.contact_columns: column '{c}' is not in the source"
                )),
            }
        }
        if let Some(c) = &completion {
            for v in c.values.values() {
                if !matches!(v.as_str(), "complete" | "partial") {
                    errors.push(format!(
                        "mapping.completion.values: '{v}' is neither complete nor partial"
                    ));
                }
            }
        }
        let started = m
            .started_at
            .as_ref()
            .and_then(|f| match b.from("started_at", f) {
                Some(From::Column(i, _)) => Some((i, time_format(f))),
                _ => None,
            });
        let municipality = m
            .municipality
            .as_ref()
            .and_then(|f| b.from("municipality", f));
        let county = m.county.as_ref().and_then(|f| b.from("county", f));
        if let Some(From::Constant(c)) = &county
            && !catalog.municipalities.is_county(c)
        {
            errors.push(format!(
                "mapping.county.constant: '{c}' is not a wellbeing services county code (01–21, 90, 91)"
            ));
        }
        if let Some(From::Constant(c)) = &municipality {
            let y = *catalog.municipalities.years().last().unwrap_or(&2026);
            if catalog.municipalities.resolve(c, y).is_none()
                && catalog
                    .municipalities
                    .years()
                    .iter()
                    .all(|y| catalog.municipalities.resolve(c, *y).is_none())
            {
                errors.push(format!(
                    "mapping.municipality.constant: '{c}' is not a municipality code or name"
                ));
            }
        }
        let local_area = b.coded("local_area", &m.local_area, None);
        let org_unit = b.coded("org_unit", &m.org_unit, None);
        let service = b.coded("service", &m.service, None);
        let channel = b.coded("channel", &m.channel, Some(catalog.list("channel")));
        let respondent_role = b.coded(
            "respondent_role",
            &m.respondent_role,
            Some(catalog.list("respondent_role")),
        );
        let language = b.coded("language", &m.language, Some(catalog.list("language")));
        let age_group = b.coded("age_group", &m.age_group, Some(catalog.list("age_group")));
        let birth_year = m.birth_year.as_ref().and_then(|f| b.from("birth_year", f));
        let gender = b.coded("gender", &m.gender, Some(catalog.list("gender")));

        // items: the instrument version's items plus the pipeline's own
        let mut items = Vec::new();
        let mut text_cols = HashSet::new();
        // a feedback's text is an open-text item of its own
        if let Some(f) = &m.text {
            match b.from("text", f) {
                Some(From::Column(col, _)) => {
                    text_cols.insert(col);
                    let missing = text_placeholders("text", &f.0.values, &mut errors);
                    items.push(CompiledItem {
                        code: "text".to_string(),
                        kind: ItemKind::Text { col, missing },
                        options: Vec::new(),
                    });
                }
                Some(From::Constant(_)) => {
                    errors.push("mapping.text: name the column holding the text".into())
                }
                None => {}
            }
        }
        for (code, spec) in &m.items {
            let (scale_name, options): (String, Vec<(String, Labels)>) = if let Some(own) =
                m.own_items.get(code)
            {
                if instrument.is_some_and(|i| i.items.contains_key(code)) {
                    errors.push(format!(
                            "mapping.own_items.{code}: the instrument already has an item with this code"
                        ));
                }
                (
                    own.scale.clone(),
                    own.options
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            } else {
                match (instrument, version) {
                    (Some(i), Some(v)) => {
                        if !v.items.contains(code) {
                            errors.push(format!(
                                    "mapping.items.{code}: not an item of {} version {} (items: {}; a region's own statements go under own_items)",
                                    i.code,
                                    v.version,
                                    v.items.join(", ")
                                ));
                            continue;
                        }
                        let it = &i.items[code];
                        (
                            it.scale.clone(),
                            it.options
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        )
                    }
                    _ => continue,
                }
            };
            let Some(scale) = catalog.scales.get(&scale_name) else {
                errors.push(format!(
                    "mapping.own_items.{code}: unknown scale '{scale_name}'"
                ));
                continue;
            };
            let key = format!("items.{code}");
            let s: &ItemSpec = &spec.0;
            let option_codes: Vec<String> = options.iter().map(|(k, _)| k.clone()).collect();
            let kind = match scale.kind {
                ScaleKind::Ordinal => {
                    let Some(col) = s.column.as_ref().and_then(|c| b.column(&key, c)) else {
                        if s.column.is_none() {
                            errors
                                .push(format!("mapping.{key}: an ordinal item reads one `column`"));
                        }
                        continue;
                    };
                    let mut lookup = HashMap::new();
                    let mut allowed = None;
                    if m.strict {
                        let mut words = vec![format!("{}–{}", scale.min, scale.max)];
                        for (st, word) in STRICT_STATUSES {
                            if scale.statuses.contains_key(st) {
                                let status = Status::parse(st).unwrap_or(Status::CantSay);
                                lookup.insert(fold(word), Target::Status(status));
                                words.push(word.to_string());
                            }
                        }
                        allowed = Some(words.join(", "));
                    } else {
                        for (st, words) in &scale.statuses {
                            let status = Status::parse(st).unwrap_or(Status::CantSay);
                            for w in words {
                                lookup.insert(fold(w), Target::Status(status));
                            }
                        }
                        for (v, labels) in &scale.values {
                            for l in labels.all() {
                                lookup.insert(fold(l), Target::Value(*v));
                            }
                        }
                    }
                    for (k, v) in scalar_map(&s.values) {
                        let t = if let Some(st) = Status::parse(&v) {
                            Target::Status(st)
                        } else if let Some(n) = parse_integral(&v)
                            .filter(|n| (scale.min as i64..=scale.max as i64).contains(n))
                        {
                            Target::Value(n as i16)
                        } else {
                            errors.push(format!(
                                "mapping.{key}.values: '{v}' is neither a value of scale {scale_name} ({}–{}) nor cant_say / not_applicable / missing",
                                scale.min, scale.max
                            ));
                            continue;
                        };
                        lookup.insert(fold(&k), t);
                    }
                    ItemKind::Ordinal {
                        col,
                        min: scale.min,
                        max: scale.max,
                        lookup,
                        nps: scale_name == "recommend11",
                        allowed,
                    }
                }
                ScaleKind::Multi => {
                    if !s.columns.is_empty() {
                        let mut cols = Vec::new();
                        for (opt, col) in &s.columns {
                            match option_codes.iter().position(|o| o == opt) {
                                Some(oi) => {
                                    if let Some(c) = b.column(&format!("{key}.columns.{opt}"), col) {
                                        cols.push((oi as u16, c));
                                    }
                                }
                                None => errors.push(format!(
                                    "mapping.{key}.columns: '{opt}' is not an option of {code} (options: {})",
                                    option_codes.join(", ")
                                )),
                            }
                        }
                        let selected = if m.strict {
                            Some([fold(STRICT_MARK)].into_iter().collect())
                        } else {
                            (!s.selected.is_empty())
                                .then(|| s.selected.iter().map(|x| fold(&x.0)).collect())
                        };
                        ItemKind::MultiColumns {
                            tally: cols.iter().map(|_| Default::default()).collect(),
                            cols,
                            selected,
                            strict: m.strict,
                        }
                    } else {
                        let Some(col) = s.column.as_ref().and_then(|c| b.column(&key, c)) else {
                            continue;
                        };
                        let mut opts: Vec<(String, u16)> = Vec::new();
                        for (oi, (oc, labels)) in options.iter().enumerate() {
                            opts.push((fold(oc), oi as u16));
                            for l in labels.all() {
                                opts.push((fold(l), oi as u16));
                            }
                        }
                        for (k, v) in scalar_map(&s.values) {
                            match option_codes.iter().position(|o| *o == v) {
                                Some(oi) => opts.push((fold(&k), oi as u16)),
                                None => errors.push(format!(
                                    "mapping.{key}.values: '{v}' is not an option of {code} (options: {})",
                                    option_codes.join(", ")
                                )),
                            }
                        }
                        opts.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
                        ItemKind::MultiCell {
                            col,
                            sep: s.separator.clone().unwrap_or_else(|| ";".to_string()),
                            options: opts,
                        }
                    }
                }
                ScaleKind::Choice | ScaleKind::Number => {
                    let what = if scale.kind == ScaleKind::Choice {
                        "a single-choice item"
                    } else {
                        "a numeric item"
                    };
                    for (set, field) in [
                        (!s.columns.is_empty(), "columns"),
                        (s.separator.is_some(), "separator"),
                        (!s.selected.is_empty(), "selected"),
                    ] {
                        if set {
                            errors.push(format!(
                                "mapping.{key}.{field}: {code} is {what}, which reads one `column`"
                            ));
                        }
                    }
                    let Some(col) = s.column.as_ref().and_then(|c| b.column(&key, c)) else {
                        if s.column.is_none() {
                            errors.push(format!("mapping.{key}: {what} reads one `column`"));
                        }
                        continue;
                    };
                    let mut missing = HashSet::new();
                    let mut mapped = HashMap::new();
                    for (k, v) in scalar_map(&s.values) {
                        if v == "missing" {
                            missing.insert(fold(&k));
                        } else if scale.kind == ScaleKind::Choice
                            && let Some(oi) = option_codes.iter().position(|o| *o == v)
                        {
                            mapped.insert(fold(&k), oi as u16);
                        } else {
                            errors.push(format!(
                                "mapping.{key}.values: '{v}' is {}",
                                if scale.kind == ScaleKind::Choice {
                                    format!(
                                        "neither an option of {code} ({}) nor missing",
                                        option_codes.join(", ")
                                    )
                                } else {
                                    "not missing (a numeric item's cells are its numbers)".into()
                                }
                            ));
                        }
                    }
                    if scale.kind == ScaleKind::Number {
                        ItemKind::Number {
                            col,
                            min: scale.min,
                            max: scale.max,
                            missing,
                        }
                    } else {
                        if options.is_empty() {
                            errors.push(format!(
                                "mapping.own_items.{code}: a single-choice item needs its `options`"
                            ));
                        }
                        for (oi, (oc, labels)) in options.iter().enumerate() {
                            mapped.entry(fold(oc)).or_insert(oi as u16);
                            for l in labels.all() {
                                mapped.entry(fold(l)).or_insert(oi as u16);
                            }
                        }
                        ItemKind::Choice {
                            col,
                            options: mapped,
                            missing,
                        }
                    }
                }
                ScaleKind::Text => {
                    for (set, what) in [
                        (!s.columns.is_empty(), "columns"),
                        (s.separator.is_some(), "separator"),
                        (!s.selected.is_empty(), "selected"),
                    ] {
                        if set {
                            errors.push(format!(
                                "mapping.{key}.{what}: {code} is an open-text item, which has no options"
                            ));
                        }
                    }
                    let missing = text_placeholders(&key, &s.values, &mut errors);
                    let Some(col) = s.column.as_ref().and_then(|c| b.column(&key, c)) else {
                        continue;
                    };
                    text_cols.insert(col);
                    ItemKind::Text { col, missing }
                }
            };
            items.push(CompiledItem {
                code: code.clone(),
                kind,
                options: option_codes,
            });
        }
        errors.append(&mut b.errors);
        let (Ok(id_col), Some(submitted)) = (id_col, submitted) else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut hash_cols: BTreeSet<usize> = BTreeSet::new();
        for c in m.columns() {
            if let Some(i) = names.iter().position(|n| *n == c) {
                hash_cols.insert(i);
            }
        }
        Ok(Normalizer {
            instrument: m.instrument.clone(),
            version: m.version.0.clone(),
            system: p.source.system().to_string(),
            survey: p.source.survey(),
            secret,
            names: names.to_vec(),
            id_col,
            submitted,
            mixed_dates: None,
            wide_bands: Default::default(),
            submitted_fallback,
            completion,
            feedback_type,
            contact_requested,
            contact_columns,
            started,
            tz,
            plausible: plausible_window(p),
            guard: Default::default(),
            municipality,
            county,
            local_area,
            org_unit,
            service,
            channel,
            respondent_role,
            language,
            age_group,
            birth_year,
            gender,
            items,
            hash_cols: hash_cols.into_iter().collect(),
            text_cols,
            catalog,
        })
    }

    /// Multi-select columns that counted every one of more than `min_rows` rows as chosen since
    /// this normalizer was made: a sign that the column's "not chosen" value is not recognised
    /// (a 0/1 column written another way, a text for "not chosen"), so that `selected:` should
    /// say what "chosen" is.
    pub fn always_chosen(&self, min_rows: u64) -> Vec<String> {
        let mut out = Vec::new();
        for item in &self.items {
            if let ItemKind::MultiColumns { cols, tally, .. } = &item.kind {
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

    /// A field's text; LimeSurvey's "not shown" marker reads as empty.
    fn field<'r>(&self, rec: &'r ByteRecord, i: usize) -> Result<&'r str, Problem> {
        self.field_marked(rec, i)
            .map(|s| if s == NOT_SHOWN { "" } else { s })
    }

    /// A field's text with the "not shown" marker kept (closed items record it as a status).
    fn field_marked<'r>(&self, rec: &'r ByteRecord, i: usize) -> Result<&'r str, Problem> {
        let b = rec.get(i).unwrap_or(b"");
        std::str::from_utf8(b).map(str::trim).map_err(|_| Problem {
            code: "encoding",
            column: Some(self.names[i].clone()),
            message: "not valid text in the file's encoding".into(),
        })
    }

    fn value_of(&self, rec: &ByteRecord, from: &From) -> Result<String, Problem> {
        match from {
            From::Column(i, _) => self.field(rec, *i).map(str::to_string),
            From::Constant(c) => Ok(c.clone()),
        }
    }

    fn coded(
        &self,
        rec: &ByteRecord,
        c: &Option<Coded>,
        what: &str,
    ) -> Result<Option<String>, Problem> {
        let Some(c) = c else { return Ok(None) };
        let raw = self.value_of(rec, &c.from)?;
        if raw.is_empty() {
            return Ok(None);
        }
        let f = fold(&raw);
        if let Some(v) = c.values.get(&f) {
            return Ok(Some(v.clone()));
        }
        match c.list {
            None => match self.guard.kind_of(&raw) {
                // a free dimension holding personal data: the mapping is wrong (run fails)
                Some(kind) => Err(Problem {
                    code: IDENTIFYING_VALUE,
                    column: match &c.from {
                        From::Column(_, n) => Some(n.clone()),
                        From::Constant(_) => None,
                    },
                    message: format!(
                        "the {what} holds {kind}: a dimension may not identify a respondent; map another column"
                    ),
                }),
                None => Ok(Some(raw)),
            },
            Some(l) if l.has_bands() && l.lookup(&raw).is_none() => {
                match crate::schema::codes::parse_age_band(&raw) {
                    // a band of the export's own that nests in a national one
                    Some(r) => match l.band_holding(r) {
                        Some(code) => Ok(Some(code.to_string())),
                        None => {
                            // one that straddles national bands: the age group is not known
                            *self
                                .wide_bands
                                .lock()
                                .expect("the tally's lock")
                                .entry(raw)
                                .or_default() += 1;
                            Ok(None)
                        }
                    },
                    None => Err(Problem {
                        code: "invalid_code",
                        column: match &c.from {
                            From::Column(_, n) => Some(n.clone()),
                            From::Constant(_) => None,
                        },
                        message: format!(
                            "not a {what} code, label or band of ages (codes: {})",
                            l.codes().join(", ")
                        ),
                    }),
                }
            }
            Some(l) => l
                .lookup(&raw)
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| Problem {
                    code: "invalid_code",
                    column: match &c.from {
                        From::Column(_, n) => Some(n.clone()),
                        From::Constant(_) => None,
                    },
                    message: format!(
                        "not a {what} code or label (codes: {})",
                        l.codes().join(", ")
                    ),
                }),
        }
    }

    /// The submission time in column `col`, or the problem with it.
    fn time_in(
        &self,
        rec: &ByteRecord,
        col: usize,
        format: &TimeFormat,
        problems: &mut Vec<Problem>,
    ) -> Option<DateTime<Utc>> {
        let s = match self.field(rec, col) {
            Ok(s) => s,
            Err(p) => {
                problems.push(p);
                return None;
            }
        };
        let order = time::order_of(format);
        let pair = order.and_then(|(_, sep)| time::leading_pair(s, sep));
        if let (Some(ev), Some(pair)) = (&self.mixed_dates, pair)
            && time::is_ambiguous(pair)
        {
            problems.push(Problem {
                code: AMBIGUOUS_DATE,
                column: Some(self.names[col].clone()),
                message: format!(
                    "reads as another date day-first and month-first, and this object has dates of the order the format does not read ({})",
                    ev.describe()
                ),
            });
            return None;
        }
        let t = time::parse_time(s, format, self.tz);
        if t.is_none() {
            let other = match (order, pair) {
                (Some((time::Order::DayFirst, _)), Some((a, b))) if b > 12 && a <= 12 => {
                    Some("month-first (its second number is above 12); the format reads day-first")
                }
                (Some((time::Order::MonthFirst, _)), Some((a, b))) if a > 12 && b <= 12 => {
                    Some("day-first (its first number is above 12); the format reads month-first")
                }
                _ => None,
            };
            problems.push(Problem {
                code: if s.is_empty() {
                    "missing_time"
                } else {
                    "invalid_time"
                },
                column: Some(self.names[col].clone()),
                message: match other {
                    _ if s.is_empty() => "no submission time".into(),
                    Some(why) => format!("a date written {why}"),
                    None => "not a date and time in a known format".into(),
                },
            });
        }
        t
    }

    /// Check the field count, then derive key, hash, time and partition.
    pub fn head(&self, rec: &ByteRecord) -> Result<Head, Vec<Problem>> {
        let n = self.names.len();
        let blank = |f: &[u8]| f.iter().all(u8::is_ascii_whitespace);
        if rec.len() < n || (rec.len() > n && rec.iter().skip(n).any(|f| !blank(f))) {
            return Err(vec![Problem {
                code: "field_count",
                column: None,
                message: format!("{} fields where the header has {n}", rec.len()),
            }]);
        }
        let mut problems = Vec::new();
        let content_id;
        let id = match self.id_col {
            None => {
                content_id = content_id_of(self.hash_of(rec), 0);
                Some(content_id.as_str())
            }
            Some(id_col) => match self.field(rec, id_col) {
                Ok("") => {
                    problems.push(Problem {
                        code: "missing_id",
                        column: Some(self.names[id_col].clone()),
                        message: "no response id".into(),
                    });
                    None
                }
                Ok(s) => Some(s),
                Err(p) => {
                    problems.push(p);
                    None
                }
            },
        };
        let (submitted, submitted_col) = match &self.submitted {
            Submitted::Fixed(t) => (Some(*t), None),
            Submitted::Column(c, format) => {
                let col = match self.submitted_fallback {
                    Some(f) if matches!(self.field(rec, *c), Ok("")) => f,
                    _ => *c,
                };
                (self.time_in(rec, col, format, &mut problems), Some(col))
            }
        };
        let (Some(id), Some(submitted)) = (id, submitted) else {
            return Err(problems);
        };
        let (earliest, latest) = self.plausible;
        if submitted < earliest || submitted > latest {
            problems.push(Problem {
                code: "implausible_time",
                column: submitted_col.map(|c| self.names[c].clone()),
                message: format!(
                    "submitted {}: outside {} .. {} (quality.earliest, and a day after the run)",
                    submitted.with_timezone(&self.tz).format("%Y-%m-%d"),
                    earliest.format("%Y-%m-%d"),
                    latest.format("%Y-%m-%d")
                ),
            });
            return Err(problems);
        }
        let (period, year) = time::period_of(submitted);
        let munis = &self.catalog.municipalities;
        let cyear = munis.classification_year(year);
        let mut geo = (None, None, None);
        if let Some(m) = &self.municipality {
            match self.value_of(rec, m) {
                Ok(v) if v.is_empty() => {}
                Ok(v) => match munis.resolve(&v, cyear) {
                    Some(g) => {
                        geo = (
                            Some(g.municipality),
                            Some(g.county),
                            Some(g.cooperation_area),
                        )
                    }
                    None => problems.push(Problem {
                        code: "unknown_municipality",
                        column: match m {
                            From::Column(_, n) => Some(n.clone()),
                            From::Constant(_) => None,
                        },
                        message: format!(
                            "not a municipality code or name of classification year {cyear}"
                        ),
                    }),
                },
                Err(p) => problems.push(p),
            }
        }
        let mut county = geo.1.clone();
        if let Some(c) = &self.county {
            match self.value_of(rec, c) {
                Ok(v) if v.is_empty() => {}
                Ok(v) => {
                    let v = if v.len() == 1 { format!("0{v}") } else { v };
                    if !munis.is_county(&v) {
                        problems.push(Problem {
                            code: "invalid_code",
                            column: match c {
                                From::Column(_, n) => Some(n.clone()),
                                From::Constant(_) => None,
                            },
                            message: "not a wellbeing services county code".into(),
                        });
                    } else if county.as_ref().is_some_and(|mc| *mc != v) {
                        problems.push(Problem {
                            code: "county_mismatch",
                            column: match c {
                                From::Column(_, n) => Some(n.clone()),
                                From::Constant(_) => None,
                            },
                            message: format!(
                                "the municipality belongs to county {}, not {v}",
                                county.clone().unwrap_or_default()
                            ),
                        });
                    } else {
                        if geo.2.is_none() {
                            geo.2 = munis.county_cooperation_area(&v).map(str::to_string);
                        }
                        county = Some(v);
                    }
                }
                Err(p) => problems.push(p),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Head {
            key: self.key_for(id),
            row_hash: self.hash_of(rec),
            submitted_at: submitted,
            partition: Partition {
                period,
                county: county.unwrap_or_else(|| "unknown".to_string()),
            },
            municipality: geo.0,
            classification_year: cyear,
            cooperation_area: geo.2,
        })
    }

    /// Normalize the rest of a row whose head is known.
    pub fn body(&self, rec: &ByteRecord, head: &Head) -> Result<Body, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut body = Body::default();
        let mut take = |r: Result<Option<String>, Problem>| match r {
            Ok(v) => v,
            Err(p) => {
                problems.push(p);
                None
            }
        };
        body.local_area = take(self.coded(rec, &self.local_area, "local area"));
        body.org_unit = take(self.coded(rec, &self.org_unit, "org unit"));
        body.service = take(self.coded(rec, &self.service, "service"));
        body.channel = take(self.coded(rec, &self.channel, "channel"));
        body.respondent_role = take(self.coded(rec, &self.respondent_role, "respondent role"));
        body.language = take(self.coded(rec, &self.language, "language"));
        body.age_group = take(self.coded(rec, &self.age_group, "age group"));
        body.gender = take(self.coded(rec, &self.gender, "gender"));
        body.feedback_type = take(self.coded(rec, &self.feedback_type, "feedback type"));
        let contact = take(self.coded(rec, &self.contact_requested, "contact requested"));
        let completion = take(self.coded(rec, &self.completion, "completion"));
        body.completion = "complete";
        if self.feedback_type.is_some() && body.feedback_type.is_none() && problems.is_empty() {
            problems.push(Problem {
                code: "missing_type",
                column: match self.feedback_type.as_ref().map(|c| &c.from) {
                    Some(From::Column(_, n)) => Some(n.clone()),
                    _ => None,
                },
                message: "no feedback type".into(),
            });
        }
        match contact.as_deref() {
            None => {}
            Some(v) => match fold(v).as_str() {
                "yes" | "kyllä" | "kylla" | "ja" | "true" | "1" | "x" | "y" | "k" => {
                    body.contact_requested = true
                }
                "no" | "ei" | "nej" | "false" | "0" | "n" | "e" => {}
                _ => problems.push(Problem {
                    code: "invalid_value",
                    column: match self.contact_requested.as_ref().map(|c| &c.from) {
                        Some(From::Column(_, n)) => Some(n.clone()),
                        _ => None,
                    },
                    message: "not a yes or no (allowed: yes, kyllä, ja, true, 1, x; no, ei, nej, false, 0)".into(),
                }),
            },
        }
        if self.contact_columns.iter().any(|&c| {
            rec.get(c)
                .is_some_and(|v| !v.iter().all(u8::is_ascii_whitespace))
        }) {
            body.contact_requested = true;
        }
        match completion.as_deref() {
            None | Some("complete") => {}
            Some("partial") => body.completion = "partial",
            Some(_) => problems.push(Problem {
                code: "invalid_code",
                column: match self.completion.as_ref().map(|c| &c.from) {
                    Some(From::Column(_, n)) => Some(n.clone()),
                    _ => None,
                },
                message: "completion is neither complete nor partial".into(),
            }),
        }
        if let Some((c, fmt)) = &self.started {
            match self.field(rec, *c) {
                Ok("") => {}
                Ok(s) => match time::parse_time(s, fmt, self.tz) {
                    Some(t) => body.started_at = Some(t),
                    None => problems.push(Problem {
                        code: "invalid_time",
                        column: Some(self.names[*c].clone()),
                        message: "not a date and time in a known format".into(),
                    }),
                },
                Err(p) => problems.push(p),
            }
        }
        if let Some(by) = &self.birth_year {
            match self.value_of(rec, by) {
                Ok(v) if v.is_empty() => {}
                Ok(v) => {
                    let year = head.submitted_at.year() as i64;
                    let band = parse_integral(&v)
                        .filter(|b| (1890..=year).contains(b))
                        .and_then(|b| self.catalog.list("age_group").band_for((year - b) as u16));
                    match band {
                        Some(b) => body.age_group = Some(b.to_string()),
                        None => problems.push(Problem {
                            code: "invalid_birth_year",
                            column: match by {
                                From::Column(_, n) => Some(n.clone()),
                                From::Constant(_) => None,
                            },
                            message: "not a plausible year of birth".into(),
                        }),
                    }
                }
                Err(p) => problems.push(p),
            }
        }
        for (ii, item) in self.items.iter().enumerate() {
            let ii = ii as u16;
            match &item.kind {
                ItemKind::Ordinal {
                    col,
                    min,
                    max,
                    lookup,
                    nps,
                    allowed,
                } => {
                    let raw = match self.field_marked(rec, *col) {
                        Ok(s) => s,
                        Err(p) => {
                            problems.push(p);
                            continue;
                        }
                    };
                    let (value, status, keep_raw) = if raw.is_empty() {
                        (None, Status::Missing, false)
                    } else if raw == NOT_SHOWN {
                        (None, Status::NotShown, false)
                    } else if let Some(n) =
                        parse_integral(raw).filter(|_| !lookup.contains_key(&fold(raw)))
                    {
                        if n < *min as i64 || n > *max as i64 {
                            problems.push(Problem {
                                code: "out_of_range",
                                column: Some(self.names[*col].clone()),
                                message: match allowed {
                                    Some(a) => {
                                        format!("outside the scale {min}–{max} (allowed: {a})")
                                    }
                                    None => format!("outside the scale {min}–{max}"),
                                },
                            });
                            continue;
                        }
                        (Some(n as i16), Status::Answered, n.to_string() != raw)
                    } else {
                        match lookup.get(&fold(raw)) {
                            Some(Target::Value(v)) => (Some(*v), Status::Answered, true),
                            Some(Target::Status(s)) => (None, *s, true),
                            None => {
                                problems.push(Problem {
                                    code: "invalid_value",
                                    column: Some(self.names[*col].clone()),
                                    message: match allowed {
                                        Some(a) => format!("not an allowed value (allowed: {a})"),
                                        None => format!(
                                            "not a value of the scale {min}–{max}, a scale label, or a known status"
                                        ),
                                    },
                                });
                                continue;
                            }
                        }
                    };
                    if *nps {
                        body.nps = value.map(|v| v as i8);
                        continue;
                    }
                    body.answers.push(Answer {
                        item: ii,
                        option: None,
                        value,
                        status,
                        raw: keep_raw.then(|| raw.to_string()),
                    });
                }
                ItemKind::MultiColumns {
                    cols,
                    selected,
                    strict,
                    tally,
                } => {
                    for ((oi, col), (read, chosen_n)) in cols.iter().zip(tally.iter()) {
                        let v = match self.field(rec, *col) {
                            Ok(s) => s,
                            Err(p) => {
                                problems.push(p);
                                continue;
                            }
                        };
                        if *strict
                            && !v.is_empty()
                            && !selected.as_ref().is_some_and(|s| s.contains(&fold(v)))
                        {
                            problems.push(Problem {
                                code: "invalid_option",
                                column: Some(self.names[*col].clone()),
                                message: format!(
                                    "not an allowed mark (allowed: {STRICT_MARK} or empty)"
                                ),
                            });
                            continue;
                        }
                        // numbers compare as numbers: LimeSurvey's VV writes 1.0000000000 and
                        // 0.0000000000
                        let chosen = match selected {
                            Some(set) => {
                                set.contains(&fold(v))
                                    || parse_number(v).is_some_and(|x| {
                                        set.iter().any(|s| parse_number(s) == Some(x))
                                    })
                            }
                            None => {
                                !v.is_empty()
                                    && parse_number(v) != Some(0.0)
                                    && !matches!(
                                        fold(v).as_str(),
                                        "n" | "no" | "ei" | "false" | "nej"
                                    )
                            }
                        };
                        read.fetch_add(1, Ordering::Relaxed);
                        if chosen {
                            chosen_n.fetch_add(1, Ordering::Relaxed);
                            body.answers.push(Answer {
                                item: ii,
                                option: Some(*oi),
                                value: None,
                                status: Status::Answered,
                                raw: None,
                            });
                        }
                    }
                }
                ItemKind::MultiCell { col, sep, options } => {
                    let cell = match self.field(rec, *col) {
                        Ok(s) => s,
                        Err(p) => {
                            problems.push(p);
                            continue;
                        }
                    };
                    match split_options(cell, sep, options) {
                        Ok(chosen) => {
                            for oi in chosen {
                                body.answers.push(Answer {
                                    item: ii,
                                    option: Some(oi),
                                    value: None,
                                    status: Status::Answered,
                                    raw: None,
                                });
                            }
                        }
                        Err(()) => problems.push(Problem {
                            code: "invalid_option",
                            column: Some(self.names[*col].clone()),
                            message: format!(
                                "holds a choice that is not an option of {} (options: {})",
                                item.code,
                                item.options.join(", ")
                            ),
                        }),
                    }
                }
                ItemKind::Choice {
                    col,
                    options,
                    missing,
                } => match self.field(rec, *col) {
                    Ok("") => {}
                    Ok(s) if missing.contains(&fold(s)) => {}
                    Ok(s) => match options.get(&fold(s)) {
                        Some(&oi) => body.answers.push(Answer {
                            item: ii,
                            option: Some(oi),
                            value: None,
                            status: Status::Answered,
                            raw: None,
                        }),
                        None => problems.push(Problem {
                            code: "invalid_option",
                            column: Some(self.names[*col].clone()),
                            message: format!(
                                "not an option of {} (options: {})",
                                item.code,
                                item.options.join(", ")
                            ),
                        }),
                    },
                    Err(p) => problems.push(p),
                },
                ItemKind::Number {
                    col,
                    min,
                    max,
                    missing,
                } => match self.field(rec, *col) {
                    Ok("") => {}
                    Ok(s) if missing.contains(&fold(s)) => {}
                    Ok(s) => match parse_integral(s) {
                        Some(v) if (*min as i64..=*max as i64).contains(&v) => {
                            body.answers.push(Answer {
                                item: ii,
                                option: None,
                                value: Some(v as i16),
                                status: Status::Measured,
                                raw: None,
                            })
                        }
                        Some(_) => problems.push(Problem {
                            code: "out_of_range",
                            column: Some(self.names[*col].clone()),
                            message: format!("outside {min}–{max} ({})", item.code),
                        }),
                        None => problems.push(Problem {
                            code: "invalid_value",
                            column: Some(self.names[*col].clone()),
                            message: format!("not a whole number ({})", item.code),
                        }),
                    },
                    Err(p) => problems.push(p),
                },
                ItemKind::Text { col, missing } => match self.field(rec, *col) {
                    Ok("") => {}
                    Ok(s) if !missing.is_empty() && missing.contains(&fold(s)) => {}
                    Ok(s) => body.texts.push((ii, s.to_string())),
                    Err(p) => problems.push(p),
                },
            }
        }
        if problems.is_empty() {
            Ok(body)
        } else {
            Err(problems)
        }
    }

    /// The mapped fields of a rejected row as JSON (column → text), with open text scrubbed, the
    /// year of birth replaced by a marker (the warehouse never stores one; the reasons name the
    /// column when it was the problem) and every unmapped column left out.
    pub fn quarantine_json(&self, rec: &ByteRecord, scrub: &crate::privacy::Scrubber) -> String {
        let birth_col = match &self.birth_year {
            Some(From::Column(c, _)) => Some(*c),
            _ => None,
        };
        let mut m = serde_json::Map::new();
        for &c in &self.hash_cols {
            let v = String::from_utf8_lossy(rec.get(c).unwrap_or(b"")).to_string();
            let v = if Some(c) == birth_col {
                BIRTH_YEAR_MARKER.to_string()
            } else if self.text_cols.contains(&c) {
                scrub.scrub(&v).text
            } else {
                v
            };
            m.insert(self.names[c].clone(), serde_json::Value::String(v));
        }
        serde_json::Value::Object(m).to_string()
    }

    /// The response key of a row whose id is readable (for quarantine bookkeeping).
    pub fn key_of(&self, rec: &ByteRecord) -> Option<u128> {
        let Some(id_col) = self.id_col else {
            return Some(self.key_for(&content_id_of(self.hash_of(rec), 0)));
        };
        let id = std::str::from_utf8(rec.get(id_col)?).ok()?.trim();
        (!id.is_empty()).then(|| self.key_for(id))
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

    /// The key of the `n`th row (from 0) of an object with the content hash `row_hash`, when
    /// rows are keyed by their content: identical rows of one object are different responses,
    /// and a later export repeating them repeats their keys.
    pub fn occurrence_key(&self, row_hash: i64, n: u32) -> u128 {
        self.key_for(&content_id_of(row_hash, n))
    }

    /// The id column's name, if the rows have one.
    pub fn id_column(&self) -> Option<&str> {
        self.id_col.map(|c| self.names[c].as_str())
    }

    /// The response key of a source id: the keyed hash of its unkeyed identity
    /// ([`crate::privacy::keys`]).
    fn key_for(&self, id: &str) -> u128 {
        let identity = unkeyed(&self.system, &self.survey, id);
        match &self.secret {
            Some(s) => s.key(identity),
            None => identity,
        }
    }

    /// The hash of a row's mapped fields.
    pub fn hash_of(&self, rec: &ByteRecord) -> i64 {
        hash_fields(self.hash_cols.iter().map(|&c| rec.get(c).unwrap_or(b"")))
    }
}

/// The source id of a row keyed by its content: the hash of its mapped fields and which
/// occurrence of that content in its object it is.
fn content_id_of(row_hash: i64, n: u32) -> String {
    if n == 0 {
        format!("row:{:016x}", row_hash as u64)
    } else {
        format!("row:{:016x}#{n}", row_hash as u64)
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

/// XXH3 of the fields, each followed by 0x1F (the `row_hash` stored in `responses`), hashed in
/// one call over a copy: the same value as feeding the pieces to a streaming hasher, as earlier
/// versions did, at half the cost.
fn hash_fields<'a>(fields: impl Iterator<Item = &'a [u8]>) -> i64 {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        for f in fields {
            buf.extend_from_slice(f);
            buf.push(0x1f);
        }
        xxhash_rust::xxh3::xxh3_64(buf) as i64
    })
}

/// Split a multi-select cell into options, matching known option texts (longest first) before
/// separators, so that labels that contain the separator are kept whole.
fn split_options(cell: &str, sep: &str, options: &[(String, u16)]) -> Result<Vec<u16>, ()> {
    let folded = fold(cell);
    let mut rest = folded.as_str();
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        while let Some(r) = rest.strip_prefix(sep.trim()) {
            rest = r.trim_start();
        }
        if rest.is_empty() {
            return Ok(out);
        }
        let hit = options.iter().find(|(text, _)| {
            // the option text must end at a separator or at the end of the cell
            rest.starts_with(text.as_str()) && {
                let after = rest[text.len()..].trim_start();
                after.is_empty() || after.starts_with(sep.trim())
            }
        });
        match hit {
            Some((text, oi)) => {
                if !out.contains(oi) {
                    out.push(*oi);
                }
                rest = &rest[text.len()..];
            }
            None => return Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_column_suggests_the_one_meant() {
        let names: Vec<String> = ["id", "Q1[SQ001]", "Q1[SQ002]", "Kunta", "submitdate"]
            .map(String::from)
            .to_vec();
        assert_eq!(suggestion("kunta ", &names), "; did you mean 'Kunta'?");
        assert_eq!(
            suggestion("Q1_SQ002", &names),
            "; did you mean 'Q1[SQ002]'?"
        );
        assert_eq!(
            suggestion("submitdat", &names),
            "; did you mean 'submitdate'?"
        );
        assert_eq!(suggestion("vastattu", &names), "");
    }

    #[test]
    fn row_hashes_equal_the_streaming_form_earlier_versions_stored() {
        // a warehouse loaded by an earlier version must not see every row as changed
        let fields: [&[u8]; 5] = [
            b"12345",
            b"",
            b"2025-01-03T10:00:00+02:00",
            b"205",
            "hyv\u{e4} \"x\"; y".as_bytes(),
        ];
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for f in fields {
            h.update(f);
            h.update(b"\x1f");
        }
        assert_eq!(hash_fields(fields.into_iter()), h.digest() as i64);
        // a field boundary moved is a different row
        let moved: [&[u8]; 5] = [b"1234", b"5", b"2025-01-03T10:00:00+02:00", b"205", b""];
        assert_ne!(
            hash_fields(moved.into_iter()),
            hash_fields(fields.into_iter())
        );
        // long rows (past XXH3's short-input paths) too
        let long = vec![b'x'; 700];
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for f in [&long[..], b"a"] {
            h.update(f);
            h.update(b"\x1f");
        }
        assert_eq!(
            hash_fields([&long[..], b"a"].into_iter()),
            h.digest() as i64
        );
    }

    #[test]
    fn multi_cells_split_by_known_labels() {
        let opts = vec![
            (fold("Ryhmät, kurssit ja kerhot"), 0u16),
            (fold("Retket"), 1),
            (fold("Muu"), 2),
        ];
        let mut o = opts.clone();
        o.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
        assert_eq!(
            split_options("Ryhmät, kurssit ja kerhot, Retket", ",", &o),
            Ok(vec![0, 1])
        );
        assert_eq!(split_options("Retket", ",", &o), Ok(vec![1]));
        assert_eq!(split_options("", ",", &o), Ok(vec![]));
        assert_eq!(split_options("Retket, Uinti", ",", &o), Err(()));
    }

    #[test]
    fn numbers_as_tools_write_them() {
        assert_eq!(parse_integral("4"), Some(4));
        assert_eq!(parse_integral("4,0"), Some(4));
        assert_eq!(parse_integral("68.0000000000"), Some(68));
        assert_eq!(parse_integral("4,5"), None);
        assert_eq!(parse_integral("abc"), None);
    }
}
