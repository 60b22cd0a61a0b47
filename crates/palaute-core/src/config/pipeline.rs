//! The pipeline YAML format.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::{DEFAULT_EARLIEST, DEFAULT_MAX_QUARANTINED_PCT, DEFAULT_TIMEZONE};

/// Pipeline names the ledger uses for warehouse operations.
pub const RESERVED_NAMES: [&str; 4] = ["aggregate", "optimize", "rollback", "vacuum"];

/// One declared pipeline: where responses come from, how they are decoded and how they map to
/// the national schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Unique name; it is the pipeline's key in the run ledger.
    pub name: String,
    /// `survey` (questionnaire responses → responses, answers, comments) or `feedback`
    /// (spontaneous feedback → the feedback table).
    #[serde(default)]
    pub kind: PipelineKind,
    #[serde(default)]
    pub description: Option<String>,
    pub source: SourceConfig,
    /// How a file source's objects are decoded (default CSV); not given for a database source.
    #[serde(default)]
    pub format: Option<FormatConfig>,
    pub mapping: Mapping,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub quality: QualityConfig,
    /// When the scheduler runs the pipeline, and how stale its source may get.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// The file this pipeline was read from (set by the loader).
    #[serde(skip)]
    pub file: PathBuf,
}

/// What a pipeline loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PipelineKind {
    #[default]
    Survey,
    Feedback,
}

/// When a pipeline is due, and how long its source may produce nothing new.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// A cron expression: five fields (minute hour day-of-month month weekday) or six with
    /// seconds first, e.g. `0 30 6 * * *` for 06:30 every day.
    pub cron: String,
    /// The time zone the expression is read in (default Europe/Helsinki).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub freshness: Option<Freshness>,
}

fn default_timezone() -> String {
    DEFAULT_TIMEZONE.to_string()
}

/// `palaute status` warns when the pipeline has loaded nothing new for longer than
/// `warn_after_hours`, and reports an error after `error_after_hours`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    pub warn_after_hours: f64,
    #[serde(default)]
    pub error_after_hours: Option<f64>,
}

impl Schedule {
    fn parsed(&self) -> Result<(croner::Cron, chrono_tz::Tz), String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(&self.cron)
            .map_err(|e| format!("schedule.cron '{}': {e}", self.cron))?;
        let tz: chrono_tz::Tz = self
            .timezone
            .parse()
            .map_err(|_| format!("schedule.timezone '{}' is not a time zone", self.timezone))?;
        Ok((cron, tz))
    }

    /// The first time the pipeline is due strictly after `t`.
    pub fn next_after(
        &self,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Result<chrono::DateTime<chrono::Utc>, String> {
        let (cron, tz) = self.parsed()?;
        cron.find_next_occurrence(&t.with_timezone(&tz), false)
            .map(|d| d.with_timezone(&chrono::Utc))
            .map_err(|e| format!("schedule.cron '{}': {e}", self.cron))
    }
}

/// Where source objects are. One variant per source kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Export files in a local folder or under an object-store prefix (`s3://bucket/prefix`).
    Files(FilesSource),
    /// A LimeSurvey installation's database (MariaDB / MySQL or PostgreSQL), read incrementally.
    LimesurveyDb(LimesurveyDbSource),
}

impl SourceConfig {
    /// The collection system (part of every response key).
    pub fn system(&self) -> &str {
        match self {
            SourceConfig::Files(f) => &f.system,
            SourceConfig::LimesurveyDb(l) => &l.system,
        }
    }

    /// The survey's id in that system (part of every response key).
    pub fn survey(&self) -> String {
        match self {
            SourceConfig::Files(f) => f.survey.clone(),
            SourceConfig::LimesurveyDb(l) => l.survey_id.to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSource {
    /// A folder (relative to the pipeline file) or `s3://bucket/prefix`.
    pub location: String,
    /// Which objects under `location` to read (glob on the path below it).
    #[serde(default = "default_glob")]
    pub glob: String,
    /// The survey tool or collection system (part of every response key).
    pub system: String,
    /// The survey's id in that system (part of every response key).
    pub survey: String,
}

fn default_glob() -> String {
    "*.csv".to_string()
}

/// Which LimeSurvey response-table layout a database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimesurveySchema {
    /// detected from the tables present
    #[default]
    Auto,
    /// LimeSurvey 3 and 4: `<prefix>survey_<sid>`, labels in `<prefix>answers.answer`
    V3,
    /// LimeSurvey 5 and 6: `<prefix>survey_<sid>`, labels in `<prefix>answer_l10ns`
    V5,
    /// LimeSurvey 7: `<prefix>responses_<sid>` with `Q<qid>` columns
    V7,
}

/// What to do with responses LimeSurvey has not marked submitted (`submitdate` NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Incomplete {
    /// leave them in the database (they are read again when submitted)
    #[default]
    Skip,
    /// load them with completion `partial`
    Partial,
}

/// What a LimeSurvey answer's text is in the records: its label (in the chosen language) or its
/// code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AnswerText {
    #[default]
    Label,
    Code,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimesurveyDbSource {
    /// The environment variable holding the connection string (`mysql://…` or `postgres://…`).
    /// The connection string itself never appears in a pipeline file.
    #[serde(default = "default_ls_env")]
    pub url_env: String,
    /// The survey id (`sid`).
    pub survey_id: u64,
    /// The installation's table prefix.
    #[serde(default = "default_ls_prefix")]
    pub table_prefix: String,
    #[serde(default)]
    pub schema: LimesurveySchema,
    #[serde(default)]
    pub incomplete: Incomplete,
    /// The language whose answer labels replace answer codes (default: fi, else sv, else en,
    /// else any the survey has).
    #[serde(default)]
    pub language: Option<String>,
    /// `label` (answer codes replaced by their labels) or `code`.
    #[serde(default)]
    pub answers: AnswerText,
    /// At most this many new responses per run; the next run continues from the watermark.
    #[serde(default = "default_ls_batch")]
    pub max_rows_per_run: u64,
    /// An unsubmitted response newer than this holds the watermark back (it may still be
    /// submitted); older ones are passed over.
    #[serde(default = "default_ls_pending")]
    pub pending_days: u32,
    /// The system name in response keys.
    #[serde(default = "default_ls_system")]
    pub system: String,
}

fn default_ls_env() -> String {
    super::LIMESURVEY_URL_ENV.to_string()
}
fn default_ls_prefix() -> String {
    "lime_".to_string()
}
fn default_ls_batch() -> u64 {
    100_000
}
fn default_ls_pending() -> u32 {
    7
}
fn default_ls_system() -> String {
    "limesurvey".to_string()
}

/// How a source object is decoded. One variant per file format.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FormatConfig {
    Csv(CsvFormat),
    /// XLSX, XLS, XLSB or ODS (by content)
    Spreadsheet(SheetFormat),
    Json(JsonFormat),
}

impl Default for FormatConfig {
    fn default() -> Self {
        FormatConfig::Csv(CsvFormat::default())
    }
}

/// Known CSV layouts: each sets the header rows, the names row and the delimiter (which the
/// pipeline may still set itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CsvLayout {
    #[default]
    Generic,
    /// row 1 column names, row 2 question labels, row 3 `{"ImportId":…}`
    Qualtrics,
    /// row 1 column names, row 2 question labels (BOM, a trailing comma on every row)
    QualtricsLegacy,
    /// LimeSurvey's VV export: TAB, row 1 question texts, row 2 codes
    LimesurveyVv,
    /// Google Forms: one header row of question texts
    GoogleForms,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CsvFormat {
    /// A known export layout (sets the defaults below).
    #[serde(default)]
    pub layout: CsvLayout,
    /// `auto` (BOM, else UTF-8 if the whole file is valid UTF-8, else Windows-1252), `utf-8`,
    /// `windows-1252` or `iso-8859-1`.
    #[serde(default)]
    pub encoding: Option<String>,
    /// `auto` (detected from the first rows among `,` `;` TAB), or the delimiter itself
    /// (`","`, `";"`, `"\t"` or `tab`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// How many header rows precede the data (1–3).
    #[serde(default)]
    pub header_rows: Option<usize>,
    /// Which header row holds the column names the mapping uses (1-based; default the last).
    #[serde(default)]
    pub names_row: Option<usize>,
}

impl CsvFormat {
    pub fn encoding(&self) -> &str {
        self.encoding.as_deref().unwrap_or("auto")
    }
    pub fn delimiter(&self) -> &str {
        match (&self.delimiter, self.layout) {
            (Some(d), _) => d,
            (None, CsvLayout::LimesurveyVv) => "tab",
            (None, CsvLayout::Qualtrics | CsvLayout::QualtricsLegacy | CsvLayout::GoogleForms) => {
                ","
            }
            (None, CsvLayout::Generic) => "auto",
        }
    }
    pub fn header_rows(&self) -> usize {
        self.header_rows.unwrap_or(match self.layout {
            CsvLayout::Qualtrics => 3,
            CsvLayout::QualtricsLegacy | CsvLayout::LimesurveyVv => 2,
            CsvLayout::Generic | CsvLayout::GoogleForms => 1,
        })
    }
    /// 1-based
    pub fn names_row(&self) -> usize {
        self.names_row.unwrap_or(match self.layout {
            CsvLayout::Qualtrics | CsvLayout::QualtricsLegacy => 1,
            _ => self.header_rows(),
        })
    }
}

/// A sheet of a spreadsheet workbook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SheetFormat {
    /// The sheet: its name, or its position (1 = the first). Default: the first sheet.
    #[serde(default)]
    pub sheet: Option<Scalar>,
    /// Header rows above the data (1–3); empty rows above the first header row are skipped.
    #[serde(default = "one")]
    pub header_rows: usize,
    /// Which header row holds the column names the mapping uses (1-based; default the last).
    #[serde(default)]
    pub names_row: Option<usize>,
}

/// How a JSON object is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum JsonLayout {
    /// one JSON object per line (kiosks, SMS vendors)
    #[default]
    Ndjson,
    /// one JSON array of objects
    Array,
    /// LimeSurvey RemoteControl `export_responses` output: base64 of a JSON document with a
    /// `responses` array (raw, as a JSON string, or inside the JSON-RPC reply)
    LimesurveyRemotecontrol,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JsonFormat {
    #[serde(default)]
    pub layout: JsonLayout,
}

/// A scalar written in YAML as a string, a number or a boolean, kept as its text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(Scalar(s)),
            serde_yaml::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_yaml::Value::Bool(b) => Ok(Scalar(b.to_string())),
            other => Err(D::Error::custom(format!(
                "expected a string or a number, found {other:?}"
            ))),
        }
    }
}

/// Where one field of the national schema comes from: a source column (optionally recoded) or a
/// constant. Written as a plain string it is a column name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(default)]
    pub column: Option<String>,
    #[serde(default)]
    pub constant: Option<Scalar>,
    /// source value → code (tried before the code list's own codes, labels and aliases)
    #[serde(default)]
    pub values: BTreeMap<Scalar, Scalar>,
    /// for times: `auto` (ISO 8601, Finnish `d.m.yyyy H.mm`, US `M/D/YYYY H:MM:SS`, Excel
    /// serial numbers), `excel`, or a chrono format string
    #[serde(default)]
    pub format: Option<String>,
    /// a column read when `column` is empty (e.g. the last-activity time of a partial response)
    #[serde(default)]
    pub fallback: Option<String>,
    /// `response_id` only: key rows by their mapped content and its occurrence in the object, for
    /// sources without an id column (see docs/pipelines.md)
    #[serde(default)]
    pub row_hash: bool,
    /// `submitted_at` only: the date in the object's name, by a chrono format (`%Y-%m`), for
    /// exports that carry only their period
    #[serde(default)]
    pub from_object_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Field(pub FieldSpec);

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(Field(FieldSpec {
                column: Some(s),
                ..FieldSpec::default()
            })),
            v @ serde_yaml::Value::Mapping(_) => FieldSpec::deserialize(v)
                .map(Field)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "expected a column name or a mapping, found {other:?}"
            ))),
        }
    }
}

/// How one instrument item is read from the source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemSpec {
    /// one column holding the answer (for a multi-select item: a list of options)
    #[serde(default)]
    pub column: Option<String>,
    /// a multi-select item with one column per option: option code → column
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// a multi-select item in one cell: the separator between chosen options. Options are matched
    /// against the known option labels first, so labels containing the separator still work.
    #[serde(default)]
    pub separator: Option<String>,
    /// a multi-select option column counts as chosen when it holds one of these (default: any
    /// non-empty value except 0, N, no, ei, false)
    #[serde(default)]
    pub selected: Vec<Scalar>,
    /// source value → scale value, status (`cant_say`, `not_applicable`) or option code
    #[serde(default)]
    pub values: BTreeMap<Scalar, Scalar>,
}

#[derive(Debug, Clone)]
pub struct ItemMap(pub ItemSpec);

impl<'de> Deserialize<'de> for ItemMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(ItemMap(ItemSpec {
                column: Some(s),
                ..ItemSpec::default()
            })),
            v @ serde_yaml::Value::Mapping(_) => ItemSpec::deserialize(v)
                .map(ItemMap)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "expected a column name or a mapping, found {other:?}"
            ))),
        }
    }
}

/// A region's or project's own statement, appended to the instrument.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnItem {
    pub scale: String,
    #[serde(default = "own_theme")]
    pub theme: String,
    #[serde(default)]
    pub labels: crate::schema::Labels,
    #[serde(default)]
    pub options: BTreeMap<String, crate::schema::Labels>,
}

fn own_theme() -> String {
    "own".to_string()
}

/// A long export, one row per question: which column names the question and which holds the
/// answer (rows are grouped into responses by `response_id`; see `format::long`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongInput {
    pub question: String,
    pub answer: String,
    /// between the distinct answers of one respondent to one question (a multi-select's
    /// options on rows of their own), and between differing values of the other columns
    #[serde(default = "default_long_join")]
    pub join: String,
}

fn default_long_join() -> String {
    "; ".to_string()
}

/// The mapping of a source to the national schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// the instrument (survey pipelines)
    #[serde(default)]
    pub instrument: String,
    #[serde(default)]
    pub version: Scalar,
    /// a long export (one row per question): its rows become one record per response, whose
    /// columns are the other columns and one per question
    #[serde(default)]
    pub long: Option<LongInput>,
    /// the response's (a feedback pipeline: the feedback's) id in the source
    #[serde(alias = "feedback_id")]
    pub response_id: Field,
    /// when it was answered (a feedback pipeline: received)
    #[serde(alias = "received_at")]
    pub submitted_at: Field,
    #[serde(default)]
    pub started_at: Option<Field>,
    /// time zone of source times written without an offset
    #[serde(default = "default_tz")]
    pub timezone: String,
    #[serde(default)]
    pub municipality: Option<Field>,
    #[serde(default)]
    pub county: Option<Field>,
    #[serde(default)]
    pub local_area: Option<Field>,
    #[serde(default)]
    pub org_unit: Option<Field>,
    #[serde(default)]
    pub service: Option<Field>,
    #[serde(default)]
    pub channel: Option<Field>,
    #[serde(default)]
    pub respondent_role: Option<Field>,
    #[serde(default)]
    pub language: Option<Field>,
    #[serde(default)]
    pub age_group: Option<Field>,
    #[serde(default)]
    pub birth_year: Option<Field>,
    #[serde(default)]
    pub gender: Option<Field>,
    /// `complete` or `partial` (default: every response is complete)
    #[serde(default)]
    pub completion: Option<Field>,
    /// instrument item code (or own item code) → where its answer is
    #[serde(default)]
    pub items: BTreeMap<String, ItemMap>,
    /// feedback: praise / complaint / suggestion / question (codes, fi/sv/en labels, aliases)
    #[serde(default)]
    pub feedback_type: Option<Field>,
    /// feedback: the free text (scrubbed before it is stored)
    #[serde(default)]
    pub text: Option<Field>,
    /// feedback: whether the sender asked to be contacted (yes / kyllä / true / 1 / x, or no)
    #[serde(default)]
    pub contact_requested: Option<Field>,
    /// feedback: contact-detail columns (e-mail, phone, name). Only whether one of them is
    /// filled is read, to set `contact_requested`; their values never leave the reader.
    #[serde(default)]
    pub contact_columns: Vec<String>,
    #[serde(default)]
    pub own_items: BTreeMap<String, OwnItem>,
    /// source columns knowingly left out (they are not listed as ignored by `check`)
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Strict values, for forms keyed in by staff (`palaute template`): a closed item takes its
    /// scale's numbers, `eos` (can't say) or `ei koske` (not applicable) only, an option column
    /// `x` or nothing; anything else is quarantined with the allowed values in its reason.
    #[serde(default)]
    pub strict: bool,
}

fn default_tz() -> String {
    DEFAULT_TIMEZONE.to_string()
}

/// Kinds of personal data scrubbed from open text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Url,
    Iban,
    Hetu,
    Phone,
    Address,
    /// first names from a list (and a capitalised word right after one): optional, not in the
    /// default set
    Name,
}

impl PiiKind {
    /// Every kind, in the order markers are counted and named.
    pub const ALL: [PiiKind; 7] = [
        PiiKind::Url,
        PiiKind::Email,
        PiiKind::Iban,
        PiiKind::Hetu,
        PiiKind::Phone,
        PiiKind::Address,
        PiiKind::Name,
    ];
    /// What a pipeline scrubs unless it says otherwise.
    pub const DEFAULT: [PiiKind; 6] = [
        PiiKind::Url,
        PiiKind::Email,
        PiiKind::Iban,
        PiiKind::Hetu,
        PiiKind::Phone,
        PiiKind::Address,
    ];
    pub fn marker(self) -> &'static str {
        match self {
            PiiKind::Email => "[email]",
            PiiKind::Url => "[url]",
            PiiKind::Iban => "[iban]",
            PiiKind::Hetu => "[hetu]",
            PiiKind::Phone => "[phone]",
            PiiKind::Address => "[address]",
            PiiKind::Name => "[name]",
        }
    }
    /// The kind's name, as configured and as `redaction_kinds` lists it.
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Url => "url",
            PiiKind::Iban => "iban",
            PiiKind::Hetu => "hetu",
            PiiKind::Phone => "phone",
            PiiKind::Address => "address",
            PiiKind::Name => "name",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// which kinds of personal data open text is scrubbed of (default: all but `name`)
    #[serde(default = "all_pii")]
    pub scrub: Vec<PiiKind>,
}

fn all_pii() -> Vec<PiiKind> {
    PiiKind::DEFAULT.to_vec()
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig { scrub: all_pii() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// fail the run (the warehouse untouched) when more than this percentage of the rows read
    /// would be quarantined
    #[serde(default = "default_max_q")]
    pub max_quarantined_pct: f64,
    /// the earliest plausible submission date (YYYY-MM-DD, default 2000-01-01); a row submitted
    /// earlier, or more than a day after the run, is quarantined as `implausible_time`
    #[serde(default = "default_earliest")]
    pub earliest: String,
    /// what a run does with an object whose numeric dates are of both orders (some only
    /// day-first, some only month-first): quarantine the rows that read either way as
    /// `ambiguous_date` (the default), or fail the run
    #[serde(default)]
    pub ambiguous_dates: AmbiguousDates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AmbiguousDates {
    #[default]
    Quarantine,
    Fail,
}

fn default_max_q() -> f64 {
    DEFAULT_MAX_QUARANTINED_PCT
}

fn default_earliest() -> String {
    DEFAULT_EARLIEST.to_string()
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            max_quarantined_pct: DEFAULT_MAX_QUARANTINED_PCT,
            earliest: default_earliest(),
            ambiguous_dates: AmbiguousDates::default(),
        }
    }
}

impl Pipeline {
    /// The format of a file source's objects (CSV unless the pipeline says otherwise).
    pub fn format(&self) -> FormatConfig {
        self.format.clone().unwrap_or_default()
    }

    /// Checks that need no catalog and no source: shapes and ranges. A list of independent
    /// checks, one per setting, in the order the pipeline file has them (hence its length).
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "name '{}': use letters, digits, '_' and '-' only",
                self.name
            ));
        }
        if RESERVED_NAMES.contains(&self.name.as_str()) {
            return Err(format!(
                "name '{}' is reserved for the ledger rows of warehouse operations ({})",
                self.name,
                RESERVED_NAMES.join(", ")
            ));
        }
        if let Some(s) = &self.schedule {
            s.parsed()?;
            if let Some(f) = &s.freshness
                && f.error_after_hours.is_some_and(|e| e < f.warn_after_hours)
            {
                return Err(
                    "schedule.freshness: error_after_hours is below warn_after_hours".into(),
                );
            }
        }
        let (header_rows, names_row) = match (&self.source, &self.format) {
            (SourceConfig::LimesurveyDb(_), Some(_)) => {
                return Err(
                    "format: a limesurvey_db source reads the database; remove `format`".into(),
                );
            }
            (SourceConfig::LimesurveyDb(l), None) => {
                if !l
                    .table_prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(format!(
                        "source.table_prefix '{}': letters, digits and '_' only",
                        l.table_prefix
                    ));
                }
                if l.max_rows_per_run == 0 {
                    return Err("source.max_rows_per_run: must be at least 1".into());
                }
                (1, 1)
            }
            (_, None) => (1, 1),
            (_, Some(FormatConfig::Csv(c))) => (c.header_rows(), c.names_row()),
            (_, Some(FormatConfig::Spreadsheet(x))) => {
                (x.header_rows, x.names_row.unwrap_or(x.header_rows))
            }
            (_, Some(FormatConfig::Json(_))) => (1, 1),
        };
        if !(1..=3).contains(&header_rows) {
            return Err(format!(
                "format.header_rows: {header_rows} (allowed 1 to 3)"
            ));
        }
        if names_row == 0 || names_row > header_rows {
            return Err(format!(
                "format.names_row: {names_row} (allowed 1 to header_rows = {header_rows})"
            ));
        }
        if chrono::NaiveDate::parse_from_str(&self.quality.earliest, "%Y-%m-%d").is_err() {
            return Err(format!(
                "quality.earliest: '{}' is not a date YYYY-MM-DD",
                self.quality.earliest
            ));
        }
        if !(0.0..=100.0).contains(&self.quality.max_quarantined_pct) {
            return Err("quality.max_quarantined_pct: must be within 0..100".into());
        }
        let m = &self.mapping;
        for (name, f) in m.fields() {
            let s = &f.0;
            if s.row_hash && name != "response_id" {
                return Err(format!(
                    "mapping.{name}.row_hash: only mapping.response_id can be keyed by the row"
                ));
            }
            if s.from_object_name.is_some() && name != "submitted_at" {
                return Err(format!(
                    "mapping.{name}.from_object_name: only mapping.submitted_at can be read from the object's name"
                ));
            }
            let given = [
                s.column.is_some(),
                s.constant.is_some(),
                s.row_hash,
                s.from_object_name.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(format!(
                    "mapping.{name}: give exactly one of {}",
                    match name {
                        "response_id" => "`column` and `row_hash: true`",
                        "submitted_at" => "`column`, `constant` and `from_object_name`",
                        _ => "`column` and `constant`",
                    }
                ));
            }
        }
        if let Some(l) = &m.long {
            if m.response_id.0.column.is_none() {
                return Err("mapping.long: the rows of a respondent are found by their id: mapping.response_id must name its column".into());
            }
            if l.question == l.answer {
                return Err("mapping.long: question and answer must be different columns".into());
            }
        }
        if m.response_id.0.constant.is_some() {
            return Err("mapping.response_id: a constant would make every row the same response; name the id column, or key rows by their content with `row_hash: true`".into());
        }
        if let Some(c) = &m.submitted_at.0.constant
            && crate::normalize::time::parse_time(
                &c.0,
                &crate::normalize::time::TimeFormat::Auto,
                chrono_tz::UTC,
            )
            .is_none()
        {
            return Err(format!(
                "mapping.submitted_at.constant: '{}' is not a date (write it as 2025-03-15)",
                c.0
            ));
        }
        if let Some(f) = &m.submitted_at.0.from_object_name
            && crate::normalize::time::date_in_name("", f).is_err()
        {
            return Err(format!(
                "mapping.submitted_at.from_object_name: '{f}' is not a date format with a year (e.g. \"%Y-%m\" or \"%Y%m%d\")"
            ));
        }
        match self.kind {
            PipelineKind::Survey => {
                if m.instrument.is_empty() || m.version.0.is_empty() {
                    return Err("mapping.instrument and mapping.version are required".into());
                }
                if m.feedback_type.is_some()
                    || m.text.is_some()
                    || m.contact_requested.is_some()
                    || !m.contact_columns.is_empty()
                {
                    return Err("mapping: feedback_type, text, contact_requested and contact_columns belong to `kind: feedback` pipelines".into());
                }
            }
            PipelineKind::Feedback => {
                if !m.instrument.is_empty() || !m.items.is_empty() || !m.own_items.is_empty() {
                    return Err(
                        "mapping: a feedback pipeline has no instrument, items or own_items".into(),
                    );
                }
                if m.feedback_type.is_none() || m.text.is_none() {
                    return Err(
                        "mapping.feedback_type and mapping.text are required for `kind: feedback`"
                            .into(),
                    );
                }
                if m.started_at.is_some()
                    || m.respondent_role.is_some()
                    || m.age_group.is_some()
                    || m.birth_year.is_some()
                    || m.gender.is_some()
                    || m.completion.is_some()
                {
                    return Err("mapping: a feedback pipeline maps no respondent background (started_at, respondent_role, age_group, birth_year, gender, completion)".into());
                }
            }
        }
        if m.age_group.is_some() && m.birth_year.is_some() {
            return Err("mapping: give age_group or birth_year, not both".into());
        }
        for (code, it) in &m.items {
            let s = &it.0;
            if s.column.is_some() != s.columns.is_empty() {
                return Err(format!(
                    "mapping.items.{code}: give exactly one of `column` and `columns`"
                ));
            }
        }
        Ok(())
    }
}

impl Mapping {
    /// Every single-valued field with its key name.
    pub fn fields(&self) -> Vec<(&'static str, &Field)> {
        let mut v: Vec<(&'static str, &Field)> = vec![
            ("response_id", &self.response_id),
            ("submitted_at", &self.submitted_at),
        ];
        let opt: [(&'static str, &Option<Field>); 11] = [
            ("started_at", &self.started_at),
            ("municipality", &self.municipality),
            ("county", &self.county),
            ("local_area", &self.local_area),
            ("org_unit", &self.org_unit),
            ("service", &self.service),
            ("channel", &self.channel),
            ("respondent_role", &self.respondent_role),
            ("language", &self.language),
            ("age_group", &self.age_group),
            ("birth_year", &self.birth_year),
        ];
        for (k, f) in opt {
            if let Some(f) = f {
                v.push((k, f));
            }
        }
        if let Some(g) = &self.gender {
            v.push(("gender", g));
        }
        if let Some(c) = &self.completion {
            v.push(("completion", c));
        }
        for (k, f) in [
            ("feedback_type", &self.feedback_type),
            ("text", &self.text),
            ("contact_requested", &self.contact_requested),
        ] {
            if let Some(f) = f {
                v.push((k, f));
            }
        }
        v
    }

    /// Every source column the mapping reads.
    pub fn columns(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .fields()
            .into_iter()
            .flat_map(|(_, f)| f.0.column.iter().chain(f.0.fallback.iter()).cloned())
            .collect();
        for it in self.items.values() {
            v.extend(it.0.column.iter().cloned());
            v.extend(it.0.columns.values().cloned());
        }
        v
    }
}

fn one() -> usize {
    1
}
