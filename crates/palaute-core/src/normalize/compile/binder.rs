//! Binding a mapping's fields to an object's columns, with every problem named: a column not
//! in the source (and the one probably meant), a duplicate, an identifier column.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::super::compiled::{Coded, From};
use super::super::time::TimeFormat;
use crate::config::{Field, Pipeline, Scalar};
use crate::schema::CodeList;
use crate::schema::codes::fold;

pub(super) fn scalar_map(m: &std::collections::BTreeMap<Scalar, Scalar>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.0.clone(), v.0.clone())).collect()
}

pub(super) struct Binder<'a> {
    names: &'a [String],
    index: HashMap<&'a str, usize>,
    dups: HashSet<&'a str>,
    pub(super) errors: Vec<String>,
    /// the identifier columns of the source's layout, by the names it gives them (lowercase)
    pub(super) layout_identifiers: &'static [&'static str],
}

impl<'a> Binder<'a> {
    pub(super) fn new(names: &'a [String]) -> Self {
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

    pub(super) fn column(&mut self, key: &str, col: &str) -> Option<usize> {
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

    pub(super) fn from(&mut self, key: &str, f: &Field) -> Option<From> {
        match (&f.0.column, &f.0.constant) {
            (Some(c), _) => self.column(key, c).map(|i| From::Column(i, c.clone())),
            (None, Some(k)) => Some(From::Constant(k.0.clone())),
            (None, None) => None,
        }
    }

    pub(super) fn coded(
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
pub(super) fn suggestion(col: &str, names: &[String]) -> String {
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

pub(super) fn time_format(f: &Field) -> TimeFormat {
    match f.0.format.as_deref() {
        None | Some("auto") => TimeFormat::Auto,
        Some("excel") => TimeFormat::Excel,
        Some(other) => TimeFormat::Custom(other.to_string()),
    }
}

/// Identifier columns a layout names by position rather than by what they hold: Qualtrics'
/// legacy export heads its columns V1…V10, of which V3 is the name, V4 the external reference,
/// V5 the e-mail address and V6 the IP address.
pub(super) fn layout_identifiers(p: &Pipeline) -> &'static [&'static str] {
    use crate::config::{CsvLayout, FormatConfig};
    match p.format() {
        FormatConfig::Csv(c) if c.layout == CsvLayout::QualtricsLegacy => &["v3", "v4", "v5", "v6"],
        _ => &[],
    }
}

/// The window of plausible submission times: from the pipeline's `quality.earliest` (validated
/// with the pipeline) to a day after now.
pub(super) fn plausible_window(p: &Pipeline) -> (DateTime<Utc>, DateTime<Utc>) {
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
pub(super) fn text_placeholders(
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
}
