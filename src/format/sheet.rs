//! Spreadsheet exports: XLSX, XLS, XLSB and ODS workbooks (calamine; the kind is read from the
//! file's content, not its name).
//!
//! Quirks handled here:
//! - the sheet is chosen by name or by position (1 = the first); a missing sheet is an error that
//!   lists the sheets the workbook has.
//! - empty rows above the header (a title row left blank, a sheet that starts lower) are skipped;
//!   1–3 header rows, the mapping naming columns by one of them (Webropol's wide sheets put
//!   question texts above codes). Header texts may be Finnish, Swedish or English; they are
//!   names, matched as written (white space trimmed).
//! - Microsoft Forms' layout: `ID, Start time, Completion time, Email, Name, Last modified time`,
//!   then one column per question headed by its full text. Email and Name are identifier columns:
//!   a mapping may not name them, so they never enter the warehouse.
//! - dates: a cell formatted as a date becomes ISO 8601 local time (`2024-03-05T14:22:01`, read in
//!   the mapping's time zone); a date that lost its format is a serial number, which the time
//!   parser reads as an Excel serial date; text dates stay text.
//! - numbers: whole floats are written without a fraction (`4.0` → `4`), others as Rust writes
//!   them; booleans as `true` / `false`; an error cell (`#N/A`) is empty.
//! - rows are numbered as the sheet numbers them (1-based), so a quarantined row can be found.

use std::path::Path;

use calamine::{Data, Reader, open_workbook_auto};

use super::{FormatError, table::TableObject};
use crate::config::{Scalar, SheetFormat};

fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty | Data::Error(_) => String::new(),
        Data::String(s) => s.trim().to_string(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                f.to_string()
            }
        }
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(t) if dt.is_datetime() => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
            _ => dt.as_f64().to_string(),
        },
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
    }
}

pub fn open(path: &Path, object: &str, cfg: &SheetFormat) -> Result<TableObject, FormatError> {
    let unreadable = |message: String| FormatError::Unreadable {
        object: object.to_string(),
        message,
    };
    let mut wb = open_workbook_auto(path).map_err(|e| {
        unreadable(format!(
            "not a readable XLSX, XLS, XLSB or ODS workbook: {e}"
        ))
    })?;
    let names = wb.sheet_names();
    let index = match &cfg.sheet {
        None => 0,
        Some(Scalar(s)) => match names.iter().position(|n| n == s) {
            Some(i) => i,
            None => match s.parse::<usize>() {
                Ok(n) if n >= 1 && n <= names.len() => n - 1,
                _ => {
                    return Err(unreadable(format!(
                        "no sheet '{s}' (sheets: {})",
                        names.join(", ")
                    )));
                }
            },
        },
    };
    let Some(sheet) = names.get(index).cloned() else {
        return Err(unreadable("the workbook has no sheets".into()));
    };
    let range = wb
        .worksheet_range(&sheet)
        .map_err(|e| unreadable(format!("sheet '{sheet}': {e}")))?;
    // sheet row numbers: the range may start below row 1
    let first_row = range.start().map(|(r, _)| r as u64 + 1).unwrap_or(1);
    let mut rows = range
        .rows()
        .enumerate()
        .map(|(i, r)| {
            (
                first_row + i as u64,
                r.iter().map(cell_text).collect::<Vec<_>>(),
            )
        })
        .skip_while(|(_, r)| r.iter().all(String::is_empty));
    let mut headers = Vec::new();
    for i in 0..cfg.header_rows {
        match rows.next() {
            Some((_, r)) => headers.push(r),
            None => {
                return Err(FormatError::MissingHeader {
                    object: format!("{object} sheet '{sheet}'"),
                    expected: cfg.header_rows,
                    found: i,
                });
            }
        }
    }
    let mut names_row = headers[cfg.names_row.unwrap_or(cfg.header_rows) - 1].clone();
    while names_row.last().is_some_and(String::is_empty) {
        names_row.pop();
    }
    // a wholly empty row inside the data is no response: leave it out
    let data: Vec<(u64, Vec<String>)> = rows
        .filter(|(_, r)| r.iter().any(|c| !c.is_empty()))
        .collect();
    let description = format!(
        "spreadsheet, sheet '{sheet}' ({} of {}), {} header row(s)",
        index + 1,
        names.len(),
        cfg.header_rows
    );
    let mut t = TableObject::new(names_row, data, description);
    t.part = Some(format!("sheet '{sheet}'"));
    Ok(t)
}
