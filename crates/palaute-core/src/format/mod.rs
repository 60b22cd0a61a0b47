//! File formats: each turns one source object into column names and records of text fields.
//! One module per format; the normalizer sees only [`Records`].

pub mod csv;
pub mod json;
pub mod long;
pub mod sheet;
pub mod table;

use std::path::Path;

use crate::config::FormatConfig;

/// Where a later object that begins with this object's bytes can be resumed: the start of the
/// object's last data record in its decoded bytes, the line it starts on, the data records
/// before it, and a hash (XXH3-128, hex) of the decoded bytes before it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumePoint {
    pub offset: u64,
    pub line: u64,
    pub rows: u64,
    pub hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{0}")]
    Config(String),
    #[error("{object}: cannot read: {message}")]
    Unreadable { object: String, message: String },
    #[error("{object}: expected {expected} header row(s), the file has {found}")]
    MissingHeader {
        object: String,
        expected: usize,
        found: usize,
    },
}

/// An open object: its column names and a cursor over its records.
pub enum Records {
    Csv(Box<csv::CsvObject>),
    /// spreadsheets, JSON and database rows, held in memory
    Table(table::TableObject),
}

impl Records {
    pub fn open(path: &Path, object: &str, cfg: &FormatConfig) -> Result<Records, FormatError> {
        match cfg {
            FormatConfig::Csv(c) => Ok(Records::Csv(Box::new(csv::CsvObject::open(
                path, object, c,
            )?))),
            FormatConfig::Spreadsheet(s) => Ok(Records::Table(sheet::open(path, object, s)?)),
            FormatConfig::Json(j) => Ok(Records::Table(json::open(path, object, j)?)),
        }
    }

    pub fn names(&self) -> &[String] {
        match self {
            Records::Csv(c) => &c.names,
            Records::Table(t) => &t.names,
        }
    }

    /// A short description of how the object was decoded (for `check`).
    pub fn describe(&self) -> String {
        match self {
            Records::Csv(c) => format!(
                "csv, {}, delimiter {}, {} header row(s)",
                c.encoding,
                match c.delimiter {
                    b'\t' => "TAB".to_string(),
                    d => format!("'{}'", d as char),
                },
                c.header_rows.len()
            ),
            Records::Table(t) => t.description.clone(),
        }
    }

    /// The part of the object the records come from (a spreadsheet's sheet), for messages.
    pub fn part(&self) -> Option<&str> {
        match self {
            Records::Csv(_) => None,
            Records::Table(t) => t.part.as_deref(),
        }
    }

    /// Read the next record into `rec`, reusing its memory; returns its row number.
    pub fn read_into(&mut self, rec: &mut ::csv::ByteRecord) -> Result<Option<u64>, String> {
        match self {
            Records::Csv(c) => c.read_into(rec),
            Records::Table(t) => Ok(t.read_into(rec)),
        }
    }

    /// Continue after the longest of `points` whose bytes this object begins with (CSV only);
    /// returns the index of the point used.
    pub fn resume(&mut self, points: &[ResumePoint]) -> Result<Option<usize>, FormatError> {
        match self {
            Records::Csv(c) => c.resume(points),
            Records::Table(_) => Ok(None),
        }
    }

    /// After the last record: where a later object beginning with this one's bytes can resume.
    pub fn resume_point(&mut self) -> Option<ResumePoint> {
        match self {
            Records::Csv(c) => c.resume_point(),
            Records::Table(_) => None,
        }
    }

    pub fn bytes_read(&self) -> u64 {
        match self {
            Records::Csv(c) => c.bytes_read(),
            Records::Table(t) => t.bytes_read(),
        }
    }
}
