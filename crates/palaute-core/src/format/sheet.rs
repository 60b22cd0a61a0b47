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
//! - size: XLSX and XLSB sheets are read cell by cell, keeping only the cells that hold a value,
//!   so a stray cell far away (`XFD1048576`) costs nothing; the cells' text is bounded
//!   ([`MAX_TEXT_BYTES`]). XLS sheets are read whole (the format's 65,536 × 256 bounds them);
//!   ODS sheets, which calamine expands as it opens the workbook, calamine itself refuses beyond
//!   100 million cells (a test holds it to that).

use std::path::Path;

use std::io::{Read, Seek};

use calamine::{Data, DataRef, Reader, Sheets, open_workbook_auto};

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

/// The most text a sheet's cells may hold together (a few hundred thousand responses' worth).
pub const MAX_TEXT_BYTES: usize = 1 << 30;

enum CellsError {
    Calamine(String),
    TooMuchText,
}

/// A sheet's rows that hold a value, in order, each with its sheet row number (1-based) and its
/// non-empty cells.
fn read_cells<RS: Read + Seek>(
    wb: &mut Sheets<RS>,
    sheet: &str,
) -> Result<Vec<(u64, SparseRow)>, CellsError> {
    let mut rows = Rows::default();
    match wb {
        Sheets::Xlsx(x) => {
            let mut r = x
                .worksheet_cells_reader(sheet)
                .map_err(|e| CellsError::Calamine(e.to_string()))?;
            while let Some(c) = r
                .next_cell()
                .map_err(|e| CellsError::Calamine(e.to_string()))?
            {
                rows.push(c.get_position(), c.get_value())?;
            }
        }
        Sheets::Xlsb(x) => {
            let mut r = x
                .worksheet_cells_reader(sheet)
                .map_err(|e| CellsError::Calamine(e.to_string()))?;
            while let Some(c) = r
                .next_cell()
                .map_err(|e| CellsError::Calamine(e.to_string()))?
            {
                rows.push(c.get_position(), c.get_value())?;
            }
        }
        wb => {
            let range = wb
                .worksheet_range(sheet)
                .map_err(|e| CellsError::Calamine(e.to_string()))?;
            for c in range.used_cells() {
                let (r, col, v) = c;
                let (r0, c0) = range.start().unwrap_or((0, 0));
                rows.push_text((r0 + r as u32, c0 + col as u32), cell_text(v))?;
            }
        }
    }
    Ok(rows.done())
}

/// A row's non-empty cells: (column, text), left to right.
type SparseRow = Vec<(u32, String)>;

/// Rows built from cells in sheet order (row by row, left to right).
#[derive(Default)]
struct Rows {
    rows: Vec<(u64, SparseRow)>,
    text: usize,
}

impl Rows {
    fn push(&mut self, pos: (u32, u32), v: &DataRef<'_>) -> Result<(), CellsError> {
        self.push_text(pos, cell_text(&Data::from(v.clone())))
    }

    fn push_text(&mut self, (row, col): (u32, u32), text: String) -> Result<(), CellsError> {
        if text.is_empty() {
            return Ok(());
        }
        self.text += text.len();
        if self.text > MAX_TEXT_BYTES {
            return Err(CellsError::TooMuchText);
        }
        let n = row as u64 + 1;
        // cells come row by row; one out of order (not written by a spreadsheet program) is
        // put in its place
        let i = match self.rows.last() {
            Some((last, _)) if *last == n => self.rows.len() - 1,
            Some((last, _)) if *last > n => {
                let i = self.rows.partition_point(|(r, _)| *r < n);
                if self.rows[i].0 != n {
                    self.rows.insert(i, (n, Vec::new()));
                }
                i
            }
            _ => {
                self.rows.push((n, Vec::new()));
                self.rows.len() - 1
            }
        };
        let cells = &mut self.rows[i].1;
        match cells.binary_search_by_key(&col, |(c, _)| *c) {
            Ok(k) => cells[k].1 = text,
            Err(k) => cells.insert(k, (col, text)),
        }
        Ok(())
    }

    fn done(self) -> Vec<(u64, SparseRow)> {
        self.rows
    }
}

/// A row's cells as text, `width` of them (`None`: to its last non-empty cell).
fn dense(cells: SparseRow, width: Option<usize>) -> Vec<String> {
    let w = width.unwrap_or_else(|| cells.last().map_or(0, |(c, _)| *c as usize + 1));
    let mut out = vec![String::new(); w];
    for (c, t) in cells {
        if let Some(slot) = out.get_mut(c as usize) {
            *slot = t;
        }
    }
    out
}

/// The most cells the data rows may hold once laid out under their header (each row as wide as
/// the header or its last value, empty cells included).
pub const MAX_CELLS: usize = 100_000_000;

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
    let read = read_cells(&mut wb, &sheet).map_err(|e| match e {
        CellsError::Calamine(m) => unreadable(format!("sheet '{sheet}': {m}")),
        CellsError::TooMuchText => unreadable(format!(
            "sheet '{sheet}' holds more than {} MiB of cell text: not an export this reads",
            MAX_TEXT_BYTES >> 20
        )),
    })?;
    // the rows that hold a value (a blank row above the header, or inside the data, is no
    // response), with their sheet row numbers
    let mut rows = read.into_iter();
    let mut headers = Vec::new();
    for i in 0..cfg.header_rows {
        match rows.next() {
            Some((_, r)) => headers.push(dense(r, None)),
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
    // a value right of the last named column has no name and cannot be mapped
    // each row as wide as the header, or wider when it has a value right of the last named
    // column (the mapping then quarantines it: nothing is cut silently)
    let width = names_row.len();
    let row_width = |r: &SparseRow| width.max(r.last().map_or(0, |(c, _)| *c as usize + 1));
    let rows: Vec<(u64, SparseRow)> = rows.collect();
    let cells: usize = rows.iter().map(|(_, r)| row_width(r)).sum();
    if cells > MAX_CELLS {
        return Err(unreadable(format!(
            "sheet '{sheet}': its {} rows laid out under the header's {width} columns are {cells} cells, more than {MAX_CELLS}",
            rows.len()
        )));
    }
    let data: Vec<(u64, Vec<String>)> = rows
        .into_iter()
        .map(|(n, r)| {
            let w = row_width(&r);
            (n, dense(r, Some(w)))
        })
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
