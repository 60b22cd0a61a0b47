//! Long exports, one row per question (the NHS Friends and Family Test and many feedback
//! systems): rows keyed by a respondent id, with a column naming the question and one holding
//! the answer. They are turned into one record per respondent whose columns are the object's
//! other columns and one column per question, so that the mapping names questions as it names
//! the columns of a wide export (`items: {improve: "What could we do better?"}`).
//!
//! - Respondents keep the order of their first row, and that row's number.
//! - A question answered on several rows of one respondent (the options of a multi-select) gets
//!   the distinct answers joined with `join`; an item reads them with `separator:`.
//! - The other columns should be the same on every row of a respondent; where they differ the
//!   distinct values are joined with `join` too, so nothing is dropped: a time or a code so
//!   joined no longer reads, and the response is quarantined with both values in its record.
//! - A row without an id, or with the wrong number of fields, is a record of its own (quarantined
//!   as `missing_id` or `field_count`); a row with an answer and no question gets the column
//!   `(no question)`, which `check` lists as not mapped.

use std::collections::HashMap;

use csv::ByteRecord;

use super::{FormatError, Records};
use crate::config::LongInput;

/// The column of answers whose question cell is empty.
pub const NO_QUESTION: &str = "(no question)";

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// Add `value` to a pivoted cell: the first non-blank value, then every distinct one joined.
/// Returns whether the cell held another value already.
fn merge(cell: &mut Vec<u8>, value: &[u8], join: &[u8]) -> bool {
    let v = trim(value);
    if v.is_empty() {
        return false;
    }
    if cell.is_empty() {
        cell.extend_from_slice(v);
        return false;
    }
    if cell.split_inner(join).any(|part| part == v) {
        return false;
    }
    cell.extend_from_slice(join);
    cell.extend_from_slice(v);
    true
}

trait SplitInner {
    fn split_inner<'a>(&'a self, sep: &'a [u8]) -> Box<dyn Iterator<Item = &'a [u8]> + 'a>;
}

impl SplitInner for Vec<u8> {
    fn split_inner<'a>(&'a self, sep: &'a [u8]) -> Box<dyn Iterator<Item = &'a [u8]> + 'a> {
        if sep.is_empty() {
            return Box::new(std::iter::once(self.as_slice()));
        }
        let mut rest: &'a [u8] = self;
        let mut done = false;
        Box::new(std::iter::from_fn(move || {
            if done {
                return None;
            }
            match rest.windows(sep.len()).position(|w| w == sep) {
                Some(i) => {
                    let part = &rest[..i];
                    rest = &rest[i + sep.len()..];
                    Some(part)
                }
                None => {
                    done = true;
                    Some(rest)
                }
            }
        }))
    }
}

/// One record per respondent of a long object whose respondents are in column `id`.
pub fn pivot(
    mut records: Records,
    spec: &LongInput,
    id: &str,
    object: &str,
) -> Result<Records, FormatError> {
    let names = records.names().to_vec();
    let find = |what: &str, c: &str| {
        names.iter().position(|n| n == c).ok_or_else(|| {
            FormatError::Config(format!(
                "{object}: {what}: column '{c}' is not in the object (it has: {})",
                names.join(", ")
            ))
        })
    };
    let qi = find("mapping.long.question", &spec.question)?;
    let ai = find("mapping.long.answer", &spec.answer)?;
    let ii = find("mapping.response_id", id)?;
    let shared: Vec<usize> = (0..names.len()).filter(|i| *i != qi && *i != ai).collect();
    let mut out_names: Vec<String> = shared.iter().map(|&i| names[i].clone()).collect();
    let join = spec.join.as_bytes();
    let mut questions: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut respondents: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut rows: Vec<(u64, Vec<Vec<u8>>)> = Vec::new();
    // rows kept as read, of another width: quarantined as `field_count`
    let mut whole = std::collections::HashSet::new();
    let (mut read, mut differing) = (0u64, 0u64);
    let mut rec = ByteRecord::new();
    while let Some(line) =
        records
            .read_into(&mut rec)
            .map_err(|message| FormatError::Unreadable {
                object: object.to_string(),
                message,
            })?
    {
        read += 1;
        let extra_blank = rec.iter().skip(names.len()).all(|f| trim(f).is_empty());
        if rec.len() < names.len() || !extra_blank {
            whole.insert(rows.len());
            rows.push((line, rec.iter().map(<[u8]>::to_vec).collect()));
            continue;
        }
        let key = trim(&rec[ii]);
        let r = if key.is_empty() {
            rows.push((line, vec![Vec::new(); shared.len()]));
            rows.len() - 1
        } else {
            *respondents.entry(key.to_vec()).or_insert_with(|| {
                rows.push((line, vec![Vec::new(); shared.len()]));
                rows.len() - 1
            })
        };
        for (k, &i) in shared.iter().enumerate() {
            differing += merge(&mut rows[r].1[k], &rec[i], join) as u64;
        }
        let (q, a) = (trim(&rec[qi]), &rec[ai]);
        // a question asked and not answered is still a column (the mapping may name it)
        if q.is_empty() && trim(a).is_empty() {
            continue;
        }
        let q = if q.is_empty() {
            NO_QUESTION.as_bytes()
        } else {
            q
        };
        let col = match questions.get(q) {
            Some(c) => *c,
            None => {
                let name = String::from_utf8_lossy(q).into_owned();
                if out_names.contains(&name) {
                    return Err(FormatError::Config(format!(
                        "{object}: the question '{name}' (in column '{}', row {line}) is also the name of a column: rename one of them",
                        spec.question
                    )));
                }
                out_names.push(name);
                questions.insert(q.to_vec(), out_names.len() - 1);
                out_names.len() - 1
            }
        };
        let cells = &mut rows[r].1;
        if cells.len() <= col {
            cells.resize(col + 1, Vec::new());
        }
        merge(&mut cells[col], a, join);
    }
    let width = out_names.len();
    for (i, (_, cells)) in rows.iter_mut().enumerate() {
        if !whole.contains(&i) {
            cells.resize(width, Vec::new());
        }
    }
    let mut description = format!(
        "{}; long: {read} rows of {} respondents, {} questions",
        records.describe(),
        rows.len(),
        questions.len()
    );
    if differing > 0 {
        description.push_str(&format!(
            ", {differing} values that differ between one respondent's rows (joined with '{}')",
            spec.join
        ));
    }
    Ok(Records::Table(super::table::TableObject::from_bytes(
        out_names,
        rows,
        description,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_every_distinct_value_once() {
        let mut c = Vec::new();
        assert!(!merge(&mut c, b" a ", b"; "));
        assert!(!merge(&mut c, b"a", b"; "));
        assert!(!merge(&mut c, b"  ", b"; "));
        assert!(merge(&mut c, b"b", b"; "));
        assert!(!merge(&mut c, b"b", b"; "));
        assert_eq!(c, b"a; b");
    }
}
