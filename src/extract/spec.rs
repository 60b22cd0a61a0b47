//! The extract spec (`pipelines/extracts/*.yaml`): what a researcher receives, under which
//! permit, generalised how far. Documented with a full example in docs/extracts.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// k of k-anonymity when the spec does not say: every combination of quasi-identifier values is
/// shared by at least this many responses.
pub const DEFAULT_K: usize = 5;
/// l of l-diversity when the spec does not say: every such class holds at least this many
/// distinct values of each sensitive attribute.
pub const DEFAULT_L: usize = 2;
/// The share of responses an extract may suppress to reach k and l, when the spec does not say.
pub const DEFAULT_MAX_SUPPRESSED_PCT: f64 = 5.0;
/// Where the secret of the pseudonyms is read when the spec names no file.
pub const SECRET_ENV: &str = "PALAUTE_EXTRACT_SECRET";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractSpec {
    /// the extract's name (letters, digits, `_`, `-`): the package's name
    pub name: String,
    /// the permit or data request the extract is made under (Findata, a research permit)
    pub permit: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// the warehouse state to read: `latest`, or a ledger seq
    #[serde(default)]
    pub version: Version,
    /// a file holding the pseudonyms' secret (else `PALAUTE_EXTRACT_SECRET`); relative to the spec
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// the columns of `responses` given as they are (not generalised): any of
    /// [`PLAIN_COLUMNS`]
    #[serde(default)]
    pub columns: Vec<String>,
    /// the answers to the instrument's items (one row per answer)
    #[serde(default = "yes")]
    pub answers: bool,
    /// the open-text answers, as the warehouse holds them (scrubbed); never by default
    #[serde(default)]
    pub comments: bool,
    #[serde(default)]
    pub filters: Filters,
    /// quasi-identifier → the generalisation levels it may climb, lowest first
    pub quasi_identifiers: BTreeMap<String, Vec<String>>,
    /// attributes each equivalence class must hold `l` distinct values of: columns of the
    /// extract, or `item:CODE` for an item's answer
    #[serde(default)]
    pub sensitive: Vec<String>,
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default = "default_l")]
    pub l: usize,
    /// refuse the extract when more than this share of the responses would be suppressed
    #[serde(default = "default_max_suppressed")]
    pub max_suppressed_pct: f64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default)]
    pub instruments: Vec<String>,
    /// months `YYYY-MM`, both ends included
    #[serde(default)]
    pub periods: Option<PeriodRange>,
    /// county codes (`06`)
    #[serde(default)]
    pub counties: Vec<String>,
    /// service codes
    #[serde(default)]
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodRange {
    pub from: String,
    pub to: String,
}

/// Which warehouse state an extract reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Version {
    #[default]
    Latest,
    Seq(i64),
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) if s == "latest" => Ok(Version::Latest),
            serde_yaml::Value::Number(n) if n.as_i64().is_some_and(|v| v > 0) => {
                Ok(Version::Seq(n.as_i64().expect("checked")))
            }
            other => Err(D::Error::custom(format!(
                "version: `latest` or a ledger seq (a positive number), not {other:?}"
            ))),
        }
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Version::Latest => s.serialize_str("latest"),
            Version::Seq(n) => s.serialize_i64(*n),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_k() -> usize {
    DEFAULT_K
}
fn default_l() -> usize {
    DEFAULT_L
}
fn default_max_suppressed() -> f64 {
    DEFAULT_MAX_SUPPRESSED_PCT
}

/// Columns of `responses` an extract may give as they are.
pub const PLAIN_COLUMNS: [&str; 8] = [
    "instrument",
    "instrument_version",
    "channel",
    "respondent_role",
    "language",
    "gender",
    "nps",
    "completion",
];

/// The quasi-identifiers with a hierarchy of their own, and the levels each may climb.
pub const HIERARCHIES: [(&str, &[&str]); 4] = [
    ("age_group", &["group", "wide", "broad", "all"]),
    (
        "area",
        &["municipality", "county", "cooperation_area", "nation"],
    ),
    ("time", &["month", "bimonth", "quarter", "year"]),
    ("service", &["service", "all"]),
];

/// The levels of a categorical quasi-identifier without a hierarchy of its own (a plain column).
pub const CATEGORICAL_LEVELS: [&str; 2] = ["value", "all"];

/// Columns that never leave the warehouse in an extract, whatever the spec says.
pub const NEVER: [&str; 11] = [
    "response_key",
    "row_hash",
    "pipeline",
    "source_system",
    "survey_id",
    "source_object",
    "source_row",
    "load_id",
    "submitted_at",
    "started_at",
    "org_unit",
];

impl ExtractSpec {
    /// Read and check a spec; every unknown key is named with its line.
    pub fn load(path: &Path) -> Result<(ExtractSpec, String), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let mut spec: ExtractSpec = crate::config::parse_reporting_every_unknown_key(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(f) = &spec.secret_file
            && f.is_relative()
        {
            spec.secret_file = Some(path.parent().unwrap_or(Path::new(".")).join(f));
        }
        spec.validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((spec, text))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "name: '{}' (letters, digits, _ and - only)",
                self.name
            ));
        }
        if self.permit.trim().is_empty() {
            return Err("permit: name the permit or data request the extract is made under".into());
        }
        for c in &self.columns {
            if NEVER.contains(&c.as_str()) {
                return Err(format!(
                    "columns: '{c}' never leaves the warehouse in an extract"
                ));
            }
            if !PLAIN_COLUMNS.contains(&c.as_str()) {
                return Err(format!(
                    "columns: '{c}' is not a column an extract gives as it is (columns: {}; age_group, area, time and service are quasi-identifiers, generalised by their hierarchy)",
                    PLAIN_COLUMNS.join(", ")
                ));
            }
            if self.quasi_identifiers.contains_key(c) {
                return Err(format!(
                    "columns: '{c}' is also a quasi-identifier: list it once, under quasi_identifiers"
                ));
            }
        }
        if self.quasi_identifiers.is_empty() {
            return Err("quasi_identifiers: name at least one (an extract without any has nothing to check k against)".into());
        }
        for (qi, levels) in &self.quasi_identifiers {
            let known: &[&str] = match HIERARCHIES.iter().find(|(n, _)| n == qi) {
                Some((_, l)) => l,
                None if PLAIN_COLUMNS.contains(&qi.as_str()) && qi != "nps" => &CATEGORICAL_LEVELS,
                None => {
                    return Err(format!(
                        "quasi_identifiers.{qi}: not a quasi-identifier an extract knows (age_group, area, time, service, or one of {})",
                        PLAIN_COLUMNS
                            .iter()
                            .filter(|c| **c != "nps")
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            };
            if levels.is_empty() {
                return Err(format!(
                    "quasi_identifiers.{qi}: list the levels it may climb"
                ));
            }
            let mut last = None;
            for l in levels {
                let Some(i) = known.iter().position(|k| k == l) else {
                    return Err(format!(
                        "quasi_identifiers.{qi}: unknown level '{l}' (levels, lowest first: {})",
                        known.join(", ")
                    ));
                };
                if last.is_some_and(|p| i <= p) {
                    return Err(format!(
                        "quasi_identifiers.{qi}: levels go from the lowest up ({})",
                        known.join(", ")
                    ));
                }
                last = Some(i);
            }
        }
        for s in &self.sensitive {
            let ok = match s.strip_prefix("item:") {
                Some(code) => !code.is_empty() && self.answers,
                None => self.columns.contains(s),
            };
            if !ok {
                return Err(format!(
                    "sensitive: '{s}' is neither a column of the extract nor item:CODE of its answers"
                ));
            }
        }
        if self.k < 2 {
            return Err("k: at least 2".into());
        }
        if self.l < 1 {
            return Err("l: at least 1".into());
        }
        if !(0.0..=100.0).contains(&self.max_suppressed_pct) {
            return Err("max_suppressed_pct: within 0..100".into());
        }
        if let Some(p) = &self.filters.periods {
            for m in [&p.from, &p.to] {
                if crate::marts::periods::parse_month(m).is_none() {
                    return Err(format!("filters.periods: '{m}' is not a month YYYY-MM"));
                }
            }
        }
        Ok(())
    }
}
