//! The national schema: instruments, answer scales and code lists.
//!
//! The files under `schemas/` are the source of truth; they are compiled into the binary so that
//! `palaute` behaves the same wherever it runs. Everything here is read-only reference data.

pub mod codes;

pub use codes::{CodeList, Geography, Municipality, MunicipalityLists};

use std::collections::BTreeMap;

use serde::Deserialize;

/// Errors in the embedded reference data (a broken build) or in a lookup by a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schemas/{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("unknown instrument '{0}' (known: {1})")]
    UnknownInstrument(String, String),
    #[error("instrument '{instrument}' has no version '{version}' (known: {known})")]
    UnknownVersion {
        instrument: String,
        version: String,
        known: String,
    },
}

/// Labels of one thing in the three national languages.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    #[serde(default)]
    pub fi: String,
    #[serde(default)]
    pub sv: String,
    #[serde(default)]
    pub en: String,
}

impl Labels {
    pub fn all(&self) -> impl Iterator<Item = &str> {
        [self.fi.as_str(), self.sv.as_str(), self.en.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
    }
}

/// What kind of answer an item takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleKind {
    Ordinal,
    Multi,
    /// one option of the item's own options
    Choice,
    /// a whole number within min–max (a slider, a count)
    Number,
    Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub kind: ScaleKind,
    #[serde(default)]
    pub min: i16,
    #[serde(default)]
    pub max: i16,
    #[serde(default)]
    pub top_box: Vec<i16>,
    #[serde(default)]
    pub values: BTreeMap<i16, Labels>,
    /// status code (`cant_say`, `not_applicable`) → the words that mean it
    #[serde(default)]
    pub statuses: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub theme: String,
    pub scale: String,
    pub labels: Labels,
    /// options of a multi-select item: option code → labels
    #[serde(default)]
    pub options: BTreeMap<String, Labels>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentVersion {
    pub version: String,
    pub population: String,
    pub min_age: u16,
    pub items: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    pub code: String,
    pub title: Labels,
    pub wording_verified: bool,
    pub items: BTreeMap<String, Item>,
    pub versions: Vec<InstrumentVersion>,
}

impl Instrument {
    pub fn version(&self, v: &str) -> Result<&InstrumentVersion, SchemaError> {
        self.versions
            .iter()
            .find(|x| x.version == v)
            .ok_or_else(|| SchemaError::UnknownVersion {
                instrument: self.code.clone(),
                version: v.to_string(),
                known: self
                    .versions
                    .iter()
                    .map(|x| x.version.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// All reference data, parsed once.
#[derive(Debug)]
pub struct Catalog {
    pub scales: BTreeMap<String, Scale>,
    pub instruments: BTreeMap<String, Instrument>,
    pub lists: BTreeMap<String, CodeList>,
    pub municipalities: MunicipalityLists,
}

const SCALES: &str = include_str!("../../../../schemas/scales.yaml");
const LISTS: &str = include_str!("../../../../schemas/codes/lists.yaml");
const INSTRUMENTS: &[(&str, &str)] = &[
    (
        "instruments/thl_national.yaml",
        include_str!("../../../../schemas/instruments/thl_national.yaml"),
    ),
    (
        "instruments/thl_child.yaml",
        include_str!("../../../../schemas/instruments/thl_child.yaml"),
    ),
    (
        "instruments/local_everyday.yaml",
        include_str!("../../../../schemas/instruments/local_everyday.yaml"),
    ),
];

fn invalid(file: &str, message: impl std::fmt::Display) -> SchemaError {
    SchemaError::Invalid {
        file: file.to_string(),
        message: message.to_string(),
    }
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn embedded() -> &'static Catalog {
        static CATALOG: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        CATALOG.get_or_init(|| Catalog::load().expect("the embedded schemas/ are valid"))
    }

    fn load() -> Result<Catalog, SchemaError> {
        let scales: BTreeMap<String, Scale> =
            serde_yaml::from_str(SCALES).map_err(|e| invalid("scales.yaml", e))?;
        let lists = codes::parse_lists(LISTS).map_err(|e| invalid("codes/lists.yaml", e))?;
        let mut instruments = BTreeMap::new();
        for (file, text) in INSTRUMENTS {
            let ins: Instrument = serde_yaml::from_str(text).map_err(|e| invalid(file, e))?;
            for v in &ins.versions {
                for it in &v.items {
                    let item = ins.items.get(it).ok_or_else(|| {
                        invalid(
                            file,
                            format!("version {} lists unknown item {it}", v.version),
                        )
                    })?;
                    if !scales.contains_key(&item.scale) {
                        return Err(invalid(
                            file,
                            format!("item {it} has unknown scale {}", item.scale),
                        ));
                    }
                }
            }
            instruments.insert(ins.code.clone(), ins);
        }
        let municipalities = MunicipalityLists::embedded().map_err(|e| invalid("codes/", e))?;
        Ok(Catalog {
            scales,
            instruments,
            lists,
            municipalities,
        })
    }

    pub fn instrument(&self, code: &str) -> Result<&Instrument, SchemaError> {
        self.instruments.get(code).ok_or_else(|| {
            SchemaError::UnknownInstrument(
                code.to_string(),
                self.instruments
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
    }

    pub fn list(&self, name: &str) -> &CodeList {
        self.lists
            .get(name)
            .unwrap_or_else(|| panic!("code list {name} is part of schemas/codes/lists.yaml"))
    }
}

/// What LimeSurvey writes (VV export) for a question its conditions did not show; its database
/// holds NULL there, which the LimeSurvey source reads as this marker. Empty means shown but not
/// answered.
pub const NOT_SHOWN: &str = "{question_not_shown}";

/// Where a response belongs: the month it was given (YYYY-MM) and its county's code. The data
/// tables are partitioned by it, and every stage from mapping to the marts names rows by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub period: String,
    pub county: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_loads_and_links() {
        let c = Catalog::embedded();
        let thl = c.instrument("thl_national").unwrap();
        assert_eq!(thl.version("1").unwrap().min_age, 18);
        assert_eq!(thl.version("2").unwrap().min_age, 13);
        assert!(thl.version("9").is_err());
        assert_eq!(c.scales["agree5"].max, 5);
        assert!(c.list("channel").lookup("Tekstiviesti").is_some());
        assert_eq!(c.list("gender").lookup(" nainen ").unwrap(), "2");
    }
}
