//! The body of a row whose head is known: its background dimensions, then each item by its
//! kind (one function per kind).

use std::sync::atomic::Ordering;

use chrono::Datelike;
use csv::ByteRecord;

use super::compiled::{
    Choice, CompiledItem, ItemKind, MultiCell, MultiColumns, Number, Ordinal, Target, Text,
};
use super::values::{parse_integral, parse_number, split_options};
use super::{Answer, Body, Head, Normalizer, Problem, STRICT_MARK, Status, time};
use crate::schema::NOT_SHOWN;
use crate::schema::codes::fold;

impl Normalizer {
    /// Normalize the rest of a row whose head is known.
    pub fn body(&self, rec: &ByteRecord, head: &Head) -> Result<Body, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut body = Body::default();
        self.background(rec, &mut body, &mut problems);
        self.started_at(rec, &mut body, &mut problems);
        self.age_from_birth_year(rec, head, &mut body, &mut problems);
        for (ii, item) in self.items.iter().enumerate() {
            let (ii, b, p) = (ii as u16, &mut body, &mut problems);
            match &item.kind {
                ItemKind::Ordinal(k) => k.read(self, rec, ii, b, p),
                ItemKind::MultiColumns(k) => k.read(self, rec, ii, b, p),
                ItemKind::MultiCell(k) => k.read(self, rec, ii, item, b, p),
                ItemKind::Choice(k) => k.read(self, rec, ii, item, b, p),
                ItemKind::Number(k) => k.read(self, rec, ii, item, b, p),
                ItemKind::Text(k) => k.read(self, rec, ii, b, p),
            }
        }
        if problems.is_empty() {
            Ok(body)
        } else {
            Err(problems)
        }
    }

    /// The coded dimensions, the feedback's type and contact request, and the completion.
    fn background(&self, rec: &ByteRecord, body: &mut Body, problems: &mut Vec<Problem>) {
        let mut take = |r: Result<Option<String>, Problem>| match r {
            Ok(v) => v,
            Err(p) => {
                problems.push(p);
                None
            }
        };
        body.local_area = take(self.coded(rec, &self.dims.local_area, "local area"));
        body.org_unit = take(self.coded(rec, &self.dims.org_unit, "org unit"));
        body.service = take(self.coded(rec, &self.dims.service, "service"));
        body.channel = take(self.coded(rec, &self.dims.channel, "channel"));
        body.respondent_role = take(self.coded(rec, &self.dims.respondent_role, "respondent role"));
        body.language = take(self.coded(rec, &self.dims.language, "language"));
        body.age_group = take(self.coded(rec, &self.dims.age_group, "age group"));
        body.gender = take(self.coded(rec, &self.dims.gender, "gender"));
        body.feedback_type = take(self.coded(rec, &self.dims.feedback_type, "feedback type"));
        let contact = take(self.coded(rec, &self.dims.contact_requested, "contact requested"));
        let completion = take(self.coded(rec, &self.dims.completion, "completion"));
        body.completion = "complete";
        if self.dims.feedback_type.is_some() && body.feedback_type.is_none() && problems.is_empty()
        {
            problems.push(Problem {
                code: "missing_type",
                column: self
                    .dims
                    .feedback_type
                    .as_ref()
                    .and_then(|c| c.from.column_name()),
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
                    column: self.dims.contact_requested.as_ref().and_then(|c| c.from.column_name()),
                    message: "not a yes or no (allowed: yes, kyllä, ja, true, 1, x; no, ei, nej, false, 0)".into(),
                }),
            },
        }
        if self.dims.contact_columns.iter().any(|&c| {
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
                column: self
                    .dims
                    .completion
                    .as_ref()
                    .and_then(|c| c.from.column_name()),
                message: "completion is neither complete nor partial".into(),
            }),
        }
    }

    /// When the respondent started, if the mapping reads it.
    fn started_at(&self, rec: &ByteRecord, body: &mut Body, problems: &mut Vec<Problem>) {
        if let Some((c, fmt)) = &self.dims.started {
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
    }

    /// The age group from a year of birth (the year itself is never kept).
    fn age_from_birth_year(
        &self,
        rec: &ByteRecord,
        head: &Head,
        body: &mut Body,
        problems: &mut Vec<Problem>,
    ) {
        if let Some(by) = &self.dims.birth_year {
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
                            column: by.column_name(),
                            message: "not a plausible year of birth".into(),
                        }),
                    }
                }
                Err(p) => problems.push(p),
            }
        }
    }
}

impl Ordinal {
    /// A value of the scale, a label or a status; the 0–10 item is the response's `nps`.
    fn read(
        &self,
        norm: &Normalizer,
        rec: &ByteRecord,
        ii: u16,
        body: &mut Body,
        problems: &mut Vec<Problem>,
    ) {
        let Ordinal {
            col,
            min,
            max,
            lookup,
            nps,
            allowed,
        } = self;
        let raw = match norm.field_marked(rec, *col) {
            Ok(s) => s,
            Err(p) => {
                problems.push(p);
                return;
            }
        };
        let (value, status, keep_raw) = if raw.is_empty() {
            (None, Status::Missing, false)
        } else if raw == NOT_SHOWN {
            (None, Status::NotShown, false)
        } else if let Some(n) = parse_integral(raw).filter(|_| !lookup.contains_key(&fold(raw))) {
            if n < *min as i64 || n > *max as i64 {
                problems.push(Problem {
                    code: "out_of_range",
                    column: Some(norm.names[*col].clone()),
                    message: match allowed {
                        Some(a) => {
                            format!("outside the scale {min}–{max} (allowed: {a})")
                        }
                        None => format!("outside the scale {min}–{max}"),
                    },
                });
                return;
            }
            (Some(n as i16), Status::Answered, n.to_string() != raw)
        } else {
            match lookup.get(&fold(raw)) {
                Some(Target::Value(v)) => (Some(*v), Status::Answered, true),
                Some(Target::Status(s)) => (None, *s, true),
                None => {
                    problems.push(Problem {
                        code: "invalid_value",
                        column: Some(norm.names[*col].clone()),
                        message: match allowed {
                            Some(a) => format!("not an allowed value (allowed: {a})"),
                            None => format!(
                                "not a value of the scale {min}–{max}, a scale label, or a known status"
                            ),
                        },
                    });
                    return;
                }
            }
        };
        if *nps {
            body.nps = value.map(|v| v as i8);
            return;
        }
        body.answers.push(Answer {
            item: ii,
            option: None,
            value,
            status,
            raw: keep_raw.then(|| raw.to_string()),
        });
    }
}

impl MultiColumns {
    /// One column per option: each option whose column says chosen.
    fn read(
        &self,
        norm: &Normalizer,
        rec: &ByteRecord,
        ii: u16,
        body: &mut Body,
        problems: &mut Vec<Problem>,
    ) {
        let MultiColumns {
            cols,
            selected,
            strict,
            tally,
        } = self;
        for ((oi, col), (read, chosen_n)) in cols.iter().zip(tally.iter()) {
            let v = match norm.field(rec, *col) {
                Ok(s) => s,
                Err(p) => {
                    problems.push(p);
                    continue;
                }
            };
            if *strict && !v.is_empty() && !selected.as_ref().is_some_and(|s| s.contains(&fold(v)))
            {
                problems.push(Problem {
                    code: "invalid_option",
                    column: Some(norm.names[*col].clone()),
                    message: format!("not an allowed mark (allowed: {STRICT_MARK} or empty)"),
                });
                continue;
            }
            // numbers compare as numbers: LimeSurvey's VV writes 1.0000000000 and
            // 0.0000000000
            let chosen = match selected {
                Some(set) => {
                    set.contains(&fold(v))
                        || parse_number(v)
                            .is_some_and(|x| set.iter().any(|s| parse_number(s) == Some(x)))
                }
                None => {
                    !v.is_empty()
                        && parse_number(v) != Some(0.0)
                        && !matches!(fold(v).as_str(), "n" | "no" | "ei" | "false" | "nej")
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
}

impl MultiCell {
    /// The chosen options in one cell.
    fn read(
        &self,
        norm: &Normalizer,
        rec: &ByteRecord,
        ii: u16,
        item: &CompiledItem,
        body: &mut Body,
        problems: &mut Vec<Problem>,
    ) {
        let MultiCell { col, sep, options } = self;
        let cell = match norm.field(rec, *col) {
            Ok(s) => s,
            Err(p) => {
                problems.push(p);
                return;
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
                column: Some(norm.names[*col].clone()),
                message: format!(
                    "holds a choice that is not an option of {} (options: {})",
                    item.code,
                    item.options.join(", ")
                ),
            }),
        }
    }
}

impl Choice {
    /// One of the item's options by its code or label.
    fn read(
        &self,
        norm: &Normalizer,
        rec: &ByteRecord,
        ii: u16,
        item: &CompiledItem,
        body: &mut Body,
        problems: &mut Vec<Problem>,
    ) {
        let Choice {
            col,
            options,
            missing,
        } = self;
        let Some(s) = norm.answer_text(rec, *col, missing, problems) else {
            return;
        };
        match options.get(&fold(s)) {
            Some(&oi) => body.answers.push(Answer {
                item: ii,
                option: Some(oi),
                value: None,
                status: Status::Answered,
                raw: None,
            }),
            None => problems.push(Problem {
                code: "invalid_option",
                column: Some(norm.names[*col].clone()),
                message: format!(
                    "not an option of {} (options: {})",
                    item.code,
                    item.options.join(", ")
                ),
            }),
        }
    }
}

impl Number {
    /// A whole number within the scale's range, stored as measured.
    fn read(
        &self,
        norm: &Normalizer,
        rec: &ByteRecord,
        ii: u16,
        item: &CompiledItem,
        body: &mut Body,
        problems: &mut Vec<Problem>,
    ) {
        let Number {
            col,
            min,
            max,
            missing,
        } = self;
        let Some(s) = norm.answer_text(rec, *col, missing, problems) else {
            return;
        };
        match parse_integral(s) {
            Some(v) if (*min as i64..=*max as i64).contains(&v) => body.answers.push(Answer {
                item: ii,
                option: None,
                value: Some(v as i16),
                status: Status::Measured,
                raw: None,
            }),
            Some(_) => problems.push(Problem {
                code: "out_of_range",
                column: Some(norm.names[*col].clone()),
                message: format!("outside {min}–{max} ({})", item.code),
            }),
            None => problems.push(Problem {
                code: "invalid_value",
                column: Some(norm.names[*col].clone()),
                message: format!("not a whole number ({})", item.code),
            }),
        }
    }
}

impl Text {
    /// Open text, kept for scrubbing unless it is a placeholder meaning no answer.
    fn read(
        &self,
        norm: &Normalizer,
        rec: &ByteRecord,
        ii: u16,
        body: &mut Body,
        problems: &mut Vec<Problem>,
    ) {
        let Text { col, missing } = self;
        if let Some(s) = norm.answer_text(rec, *col, missing, problems) {
            body.texts.push((ii, s.to_string()));
        }
    }
}
