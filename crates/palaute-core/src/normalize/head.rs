//! The head of a row: what deduplication needs (key, row hash, submission time, partition and
//! geography), checked before anything else is read.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use csv::ByteRecord;

use super::compiled::Submitted;
use super::keys::content_id_of;
use super::time::{self, TimeFormat};
use super::{AMBIGUOUS_DATE, Head, Normalizer, Problem};
use crate::schema::Partition;

impl Normalizer {
    /// The submission time in column `col`, or the problem with it.
    pub(super) fn time_in(
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
        let id = self.response_id(rec, &mut problems);
        let (submitted, submitted_col) = self.submission(rec, &mut problems);
        let (Some(id), Some(submitted)) = (id, submitted) else {
            return Err(problems);
        };
        if let Err(p) = self.check_plausible(submitted, submitted_col) {
            problems.push(p);
            return Err(problems);
        }
        let (period, year) = time::period_of(submitted);
        let cyear = self.catalog.municipalities.classification_year(year);
        let geo = self.geography(rec, cyear, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Head {
            key: self.key_for(&id),
            row_hash: self.hash_of(rec),
            submitted_at: submitted,
            partition: Partition {
                period,
                county: geo.county.unwrap_or_else(|| "unknown".to_string()),
            },
            municipality: geo.municipality,
            classification_year: cyear,
            cooperation_area: geo.cooperation_area,
        })
    }

    /// The row's source id: its id column's text, or for rows keyed by their content the id
    /// of the content's first occurrence.
    fn response_id<'r>(
        &self,
        rec: &'r ByteRecord,
        problems: &mut Vec<Problem>,
    ) -> Option<Cow<'r, str>> {
        let Some(id_col) = self.id_col else {
            return Some(Cow::Owned(content_id_of(self.hash_of(rec), 0)));
        };
        match self.field(rec, id_col) {
            Ok("") => {
                problems.push(Problem {
                    code: "missing_id",
                    column: Some(self.names[id_col].clone()),
                    message: "no response id".into(),
                });
                None
            }
            Ok(s) => Some(Cow::Borrowed(s)),
            Err(p) => {
                problems.push(p);
                None
            }
        }
    }

    /// The submission time and the column it was read from (the fallback column when the
    /// time's own is empty).
    fn submission(
        &self,
        rec: &ByteRecord,
        problems: &mut Vec<Problem>,
    ) -> (Option<DateTime<Utc>>, Option<usize>) {
        match &self.submitted {
            Submitted::Fixed(t) => (Some(*t), None),
            Submitted::Column(c, format) => {
                let col = match self.submitted_fallback {
                    Some(f) if matches!(self.field(rec, *c), Ok("")) => f,
                    _ => *c,
                };
                (self.time_in(rec, col, format, problems), Some(col))
            }
        }
    }

    /// A submission time outside the plausible window is refused.
    fn check_plausible(&self, submitted: DateTime<Utc>, col: Option<usize>) -> Result<(), Problem> {
        let (earliest, latest) = self.plausible;
        if submitted >= earliest && submitted <= latest {
            return Ok(());
        }
        Err(Problem {
            code: "implausible_time",
            column: col.map(|c| self.names[c].clone()),
            message: format!(
                "submitted {}: outside {} .. {} (quality.earliest, and a day after the run)",
                submitted.with_timezone(&self.tz).format("%Y-%m-%d"),
                earliest.format("%Y-%m-%d"),
                latest.format("%Y-%m-%d")
            ),
        })
    }

    /// The row's municipality, county and cooperation area in classification year `cyear`: a
    /// county given beside a municipality must be the municipality's.
    fn geography(&self, rec: &ByteRecord, cyear: i16, problems: &mut Vec<Problem>) -> Geography {
        let munis = &self.catalog.municipalities;
        let mut geo = (None, None, None);
        if let Some(m) = &self.dims.municipality {
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
                        column: m.column_name(),
                        message: format!(
                            "not a municipality code or name of classification year {cyear}"
                        ),
                    }),
                },
                Err(p) => problems.push(p),
            }
        }
        let mut county = geo.1.clone();
        if let Some(c) = &self.dims.county {
            match self.value_of(rec, c) {
                Ok(v) if v.is_empty() => {}
                Ok(v) => {
                    let v = if v.len() == 1 { format!("0{v}") } else { v };
                    if !munis.is_county(&v) {
                        problems.push(Problem {
                            code: "invalid_code",
                            column: c.column_name(),
                            message: "not a wellbeing services county code".into(),
                        });
                    } else if county.as_ref().is_some_and(|mc| *mc != v) {
                        problems.push(Problem {
                            code: "county_mismatch",
                            column: c.column_name(),
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
        Geography {
            municipality: geo.0,
            county,
            cooperation_area: geo.2,
        }
    }
}

/// Where a response belongs geographically.
struct Geography {
    municipality: Option<String>,
    county: Option<String>,
    cooperation_area: Option<String>,
}
