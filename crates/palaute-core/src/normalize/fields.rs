//! Reading a record's fields: text in the file's encoding, constants, coded dimensions.

use std::collections::HashSet;

use csv::ByteRecord;

use super::compiled::{Coded, From};
use super::{IDENTIFYING_VALUE, Normalizer, Problem};
use crate::schema::NOT_SHOWN;
use crate::schema::codes::fold;

impl Normalizer {
    /// The text of an answer cell, unless it is empty or one of the placeholders `missing`
    /// (folded) that mean no answer; an unreadable cell's problem goes to `problems`.
    pub(super) fn answer_text<'r>(
        &self,
        rec: &'r ByteRecord,
        col: usize,
        missing: &HashSet<String>,
        problems: &mut Vec<Problem>,
    ) -> Option<&'r str> {
        match self.field(rec, col) {
            Ok("") => None,
            Ok(s) if !missing.is_empty() && missing.contains(&fold(s)) => None,
            Ok(s) => Some(s),
            Err(p) => {
                problems.push(p);
                None
            }
        }
    }

    /// A field's text; LimeSurvey's "not shown" marker reads as empty.
    pub(super) fn field<'r>(&self, rec: &'r ByteRecord, i: usize) -> Result<&'r str, Problem> {
        self.field_marked(rec, i)
            .map(|s| if s == NOT_SHOWN { "" } else { s })
    }

    /// A field's text with the "not shown" marker kept (closed items record it as a status).
    pub(super) fn field_marked<'r>(
        &self,
        rec: &'r ByteRecord,
        i: usize,
    ) -> Result<&'r str, Problem> {
        let b = rec.get(i).unwrap_or(b"");
        std::str::from_utf8(b).map(str::trim).map_err(|_| Problem {
            code: "encoding",
            column: Some(self.names[i].clone()),
            message: "not valid text in the file's encoding".into(),
        })
    }

    pub(super) fn value_of(&self, rec: &ByteRecord, from: &From) -> Result<String, Problem> {
        match from {
            From::Column(i, _) => self.field(rec, *i).map(str::to_string),
            From::Constant(c) => Ok(c.clone()),
        }
    }

    pub(super) fn coded(
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
                    column: c.from.column_name(),
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
                        column: c.from.column_name(),
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
                    column: c.from.column_name(),
                    message: format!(
                        "not a {what} code or label (codes: {})",
                        l.codes().join(", ")
                    ),
                }),
        }
    }
}
