//! CSV exports as survey tools and Excel write them.
//!
//! Quirks handled here:
//! - encoding: UTF-8 with or without a BOM; Windows-1252 / ISO-8859-1 (Excel on Finnish Windows);
//!   UTF-16 (by its BOM, or by the zero bytes of mostly-ASCII text). `auto` takes a BOM at its
//!   word, else decides on evidence: UTF-8 unless the bytes that cannot be UTF-8 outnumber its
//!   well-formed multi-byte sequences (Windows-1252 text: every ä and ö is such a byte). UTF-8 is
//!   read as it is, so a stray invalid byte quarantines its row (reason `encoding`) instead of
//!   becoming U+FFFD or turning the whole file into mojibake.
//! - blank rows: a row of delimiters only (`;;;;`, Excel's trailing empty rows) is skipped.
//! - line ends: LF, CRLF, mixed, and CR alone (read as LF).
//! - delimiter `,`, `;` or TAB, detected from the first rows when `auto`: the candidate that splits
//!   the sample into the most columns with the same count on every row wins.
//! - quoted fields with embedded delimiters, doubled quotes and newlines; CRLF, LF and mixed line
//!   ends.
//! - 1–3 header rows (e.g. question texts above codes); the mapping names columns by one of them.
//! - layouts (`layout:`): Qualtrics (3 header rows, names in row 1, ImportIds in row 3), legacy
//!   Qualtrics (2 header rows, a BOM, a trailing comma on every row), LimeSurvey's VV export (TAB
//!   though named .csv, question texts above codes, `{question_not_shown}` kept distinct from an
//!   empty answer, numbers written `68.0000000000`), Google Forms (question texts as names,
//!   `M/D/YYYY H:MM:SS` times, checkbox answers joined with ", " — split by the known options).
//! - a trailing empty header cell (Qualtrics' legacy trailing comma, LimeSurvey's extra TAB) and
//!   trailing empty cells on data rows are ignored; any other field-count mismatch quarantines the
//!   row.
//!
//! Records are read as bytes and each field is checked for UTF-8 only when it is used.
//!
//! Resuming (cumulative exports): while an object is read, its decoded bytes are hashed up to
//! the start of its last data record; that point ([`ResumePoint`]) goes into the run ledger. A
//! later object whose decoded bytes begin with exactly those bytes (same hash) is read from that
//! point on ([`CsvObject::resume`]): the records before it were parsed from identical bytes
//! before. The point is a record start, so the parser's state there is always "new record",
//! whatever the earlier object's last record looked like (an unterminated quote, no final line
//! end): that record is read again.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use csv::ByteRecord;
use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use xxhash_rust::xxh3::Xxh3;

use super::{FormatError, ResumePoint};
use crate::config::CsvFormat;

const SAMPLE: usize = 64 * 1024;

/// Decoded bytes read but not yet hashed, and the hash of everything before them.
struct Tail {
    hasher: Xxh3,
    /// decoded offset up to which `hasher` has seen the bytes
    hashed: u64,
    pending: Vec<u8>,
}

impl Tail {
    /// Hash the pending bytes before decoded offset `to`.
    fn advance(&mut self, to: u64) {
        let n = (to.saturating_sub(self.hashed) as usize).min(self.pending.len());
        self.hasher.update(&self.pending[..n]);
        self.pending.drain(..n);
        self.hashed += n as u64;
    }
}

/// The decoded stream under the CSV parser, keeping what it hands over for [`Tail`].
struct Hashing<R> {
    inner: R,
    tail: Arc<Mutex<Tail>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tail
            .lock()
            .expect("hash state")
            .pending
            .extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn hex128(h: u128) -> String {
    format!("{h:032x}")
}

/// An open CSV object positioned at its first data row.
pub struct CsvObject {
    pub encoding: &'static str,
    pub delimiter: u8,
    /// every header row, as read
    pub header_rows: Vec<Vec<String>>,
    /// the column names the mapping uses
    pub names: Vec<String>,
    reader: csv::Reader<Box<dyn Read + Send>>,
    path: PathBuf,
    object: String,
    enc: &'static Encoding,
    tail: Arc<Mutex<Tail>>,
    /// decoded offset, line (less one) and data records before the reader's start (not zero
    /// when resumed)
    base: (u64, u64, u64),
    /// data records read, and the decoded offset and line where the last one started
    count: u64,
    last: (u64, u64),
    /// the decoded offset where data records begin
    data_start: u64,
    /// the resume point this object was read from, if any
    pub resumed: Option<ResumePoint>,
}

/// A reader whose CR bytes are LF (a file whose lines end in CR alone).
struct CrAsLf(Box<dyn Read + Send>);

impl Read for CrAsLf {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        for b in &mut buf[..n] {
            if *b == b'\r' {
                *b = b'\n';
            }
        }
        Ok(n)
    }
}

/// The CSV parser with the settings every object is read with.
fn csv_reader(delimiter: u8, input: Box<dyn Read + Send>) -> csv::Reader<Box<dyn Read + Send>> {
    // LF ends a record, so that line numbers count every line; the CR of a CRLF stays at the
    // end of the last field and is trimmed with the rest of its white space
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 18)
        .from_reader(input)
}

fn io_err(object: &str, e: impl std::fmt::Display) -> FormatError {
    FormatError::Unreadable {
        object: object.to_string(),
        message: e.to_string(),
    }
}

/// The evidence for UTF-8 in a file: (well-formed multi-byte sequences, bytes that cannot be
/// UTF-8). Read in blocks, carrying an incomplete sequence over.
fn utf8_evidence(path: &Path, object: &str) -> Result<(u64, u64), FormatError> {
    let mut f = File::open(path).map_err(|e| io_err(object, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut multibyte, mut invalid) = (0u64, 0u64);
    let mut carry = 0usize;
    loop {
        let n = f.read(&mut buf[carry..]).map_err(|e| io_err(object, e))?;
        let len = carry + n;
        let mut rest = &buf[..len];
        loop {
            match std::str::from_utf8(rest) {
                Ok(t) => {
                    multibyte += t.bytes().filter(|b| *b >= 0xC0).count() as u64;
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (ok, bad) = rest.split_at(e.valid_up_to());
                    multibyte += ok.iter().filter(|b| **b >= 0xC0).count() as u64;
                    match e.error_len() {
                        Some(k) => {
                            invalid += k as u64;
                            rest = &bad[k..];
                        }
                        // an incomplete sequence at the end of the block: read on (or, at the
                        // end of the file, it is invalid)
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        if n == 0 {
            return Ok((multibyte, invalid + rest.len() as u64));
        }
        carry = rest.len();
        let start = len - carry;
        buf.copy_within(start..len, 0);
    }
}

/// UTF-16 by its byte-order mark, or by its NUL bytes: in text that is mostly ASCII, every
/// other byte of UTF-16 is zero.
fn utf16(head: &[u8]) -> Option<&'static Encoding> {
    match head {
        [0xFF, 0xFE, ..] => return Some(encoding_rs::UTF_16LE),
        [0xFE, 0xFF, ..] => return Some(encoding_rs::UTF_16BE),
        _ => {}
    }
    let pairs = head.len() / 2;
    if pairs < 8 {
        return None;
    }
    let odd = head
        .chunks(2)
        .filter(|c| c.len() == 2 && c[1] == 0 && c[0] != 0)
        .count();
    let even = head
        .chunks(2)
        .filter(|c| c.len() == 2 && c[0] == 0 && c[1] != 0)
        .count();
    if odd * 10 >= pairs * 8 {
        Some(encoding_rs::UTF_16LE)
    } else if even * 10 >= pairs * 8 {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    }
}

fn choose_encoding(
    path: &Path,
    object: &str,
    spec: &str,
) -> Result<(&'static Encoding, bool), FormatError> {
    let mut head = vec![0u8; 4096];
    let mut f = File::open(path).map_err(|e| io_err(object, e))?;
    let n = f.read(&mut head).map_err(|e| io_err(object, e))?;
    head.truncate(n);
    let bom = head.starts_with(&[0xEF, 0xBB, 0xBF]);
    if let Some(enc) = utf16(&head) {
        return Ok((enc, false));
    }
    let enc = match spec.to_ascii_lowercase().as_str() {
        "auto" => {
            // on evidence: a stray invalid byte in a UTF-8 file does not make it Windows-1252
            // (its row is quarantined with reason `encoding`)
            let (multibyte, invalid) = utf8_evidence(path, object)?;
            if bom || invalid == 0 || multibyte > invalid {
                UTF_8
            } else {
                WINDOWS_1252
            }
        }
        "utf-8" | "utf8" => UTF_8,
        "windows-1252" | "cp1252" | "iso-8859-1" | "latin1" | "latin-1" => WINDOWS_1252,
        other => {
            return Err(FormatError::Config(format!(
                "format.encoding '{other}': use auto, utf-8, windows-1252 or iso-8859-1"
            )));
        }
    };
    Ok((enc, bom))
}

fn decoded_reader(
    path: &Path,
    object: &str,
    enc: &'static Encoding,
) -> Result<Box<dyn Read + Send>, FormatError> {
    let mut f = File::open(path).map_err(|e| io_err(object, e))?;
    if enc == UTF_8 {
        // read as it is, BOM left out: a byte that is not UTF-8 reaches the mapping, which
        // quarantines its row (reason `encoding`) instead of a decoder writing U+FFFD
        let mut bom = [0u8; 3];
        let n = f.read(&mut bom).map_err(|e| io_err(object, e))?;
        let keep = if bom[..n] == [0xEF, 0xBB, 0xBF] { 0 } else { n };
        let head = std::io::Cursor::new(bom[..keep].to_vec());
        return Ok(Box::new(head.chain(BufReader::with_capacity(1 << 20, f))));
    }
    let r = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(enc))
        .utf8_passthru(true)
        .strip_bom(true)
        .bom_override(true)
        .build(BufReader::with_capacity(1 << 20, f));
    Ok(Box::new(r))
}

fn parse_delimiter(spec: &str) -> Result<Option<u8>, FormatError> {
    Ok(match spec {
        "auto" => None,
        "\t" | "tab" | "TAB" | "\\t" => Some(b'\t'),
        s if s.len() == 1 && s.is_ascii() => Some(s.as_bytes()[0]),
        other => {
            return Err(FormatError::Config(format!(
                "format.delimiter '{other}': use auto, \",\", \";\" or tab"
            )));
        }
    })
}

/// The delimiter that splits the sample into the most columns, consistently.
fn detect_delimiter(sample: &[u8]) -> u8 {
    let mut best = (b',', 0usize, false);
    for d in [b',', b';', b'\t'] {
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(d)
            .has_headers(false)
            .flexible(true)
            .from_reader(sample);
        let mut counts = Vec::new();
        let mut rec = ByteRecord::new();
        // the last record of a cut sample may be partial: leave it out
        while counts.len() < 21 && rdr.read_byte_record(&mut rec).unwrap_or(false) {
            counts.push(rec.len());
        }
        if counts.len() > 1 {
            counts.pop();
        }
        let first = counts.first().copied().unwrap_or(0);
        // allow one extra (empty) trailing field on header or data rows
        let consistent = counts
            .iter()
            .all(|&c| c == first || c + 1 == first || c == first + 1);
        let better = match (consistent, best.2) {
            (true, false) => first > 1,
            (false, true) => false,
            _ => first > best.1,
        };
        if better {
            best = (d, first, consistent);
        }
    }
    best.0
}

impl CsvObject {
    /// Open `path` (the object `object`), decode it and read its header rows.
    pub fn open(path: &Path, object: &str, cfg: &CsvFormat) -> Result<CsvObject, FormatError> {
        let (enc, _bom) = choose_encoding(path, object, cfg.encoding())?;
        let delimiter = match parse_delimiter(cfg.delimiter())? {
            Some(d) => d,
            None => {
                let mut sample = Vec::with_capacity(SAMPLE);
                decoded_reader(path, object, enc)?
                    .take(SAMPLE as u64)
                    .read_to_end(&mut sample)
                    .map_err(|e| io_err(object, e))?;
                detect_delimiter(&sample)
            }
        };
        let tail = Arc::new(Mutex::new(Tail {
            hasher: Xxh3::new(),
            hashed: 0,
            pending: Vec::new(),
        }));
        let mut decoded = decoded_reader(path, object, enc)?;
        // line ends of CR alone (old Mac exports): read as LF
        let mut sample = Vec::with_capacity(SAMPLE);
        decoded_reader(path, object, enc)?
            .take(SAMPLE as u64)
            .read_to_end(&mut sample)
            .map_err(|e| io_err(object, e))?;
        let cr_only = sample.contains(&b'\r') && !sample.contains(&b'\n');
        if cr_only {
            decoded = Box::new(CrAsLf(decoded));
        }
        let input = Hashing {
            inner: decoded,
            tail: tail.clone(),
        };
        let mut reader = csv_reader(delimiter, Box::new(input));
        let mut header_rows = Vec::new();
        let mut record = ByteRecord::new();
        let header_count = cfg.header_rows();
        for i in 0..header_count {
            let ok = reader
                .read_byte_record(&mut record)
                .map_err(|e| io_err(object, e))?;
            if !ok {
                return Err(FormatError::MissingHeader {
                    object: object.to_string(),
                    expected: header_count,
                    found: i,
                });
            }
            let row: Vec<String> = record
                .iter()
                .map(|f| String::from_utf8_lossy(f).trim().to_string())
                .collect();
            header_rows.push(row);
        }
        let names_row = cfg.names_row() - 1;
        let mut names = header_rows[names_row].clone();
        while names.last().is_some_and(|s| s.is_empty()) {
            names.pop();
        }
        let data_start = reader.position().byte();
        Ok(CsvObject {
            encoding: enc.name(),
            delimiter,
            header_rows,
            names,
            reader,
            path: path.to_path_buf(),
            object: object.to_string(),
            enc,
            tail,
            base: (0, 0, 0),
            count: 0,
            last: (0, 0),
            data_start,
            resumed: None,
        })
    }

    /// Read the next data record into `rec` (reusing its memory); returns the line it starts on.
    pub fn read_into(&mut self, rec: &mut ByteRecord) -> Result<Option<u64>, String> {
        loop {
            let pos = self.reader.position();
            let (byte, line) = (self.base.0 + pos.byte(), self.base.1 + pos.line());
            match self.reader.read_byte_record(rec) {
                // a row of delimiters only (Excel writes `;;;;` for trailing empty rows): blank,
                // no response, as the spreadsheet reader skips empty rows
                Ok(true) if rec.len() > 1 && rec.iter().all(|f| f.trim_ascii().is_empty()) => {
                    continue;
                }
                r => return self.record_read(r, byte, line),
            }
        }
    }

    fn record_read(
        &mut self,
        r: csv::Result<bool>,
        byte: u64,
        line: u64,
    ) -> Result<Option<u64>, String> {
        match r {
            Ok(true) => {
                // hash what lies before this record now and then, so that little is held
                if self.count.is_multiple_of(4096) {
                    self.tail.lock().expect("hash state").advance(byte);
                }
                self.count += 1;
                self.last = (byte, line);
                Ok(Some(line))
            }
            Ok(false) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Bytes of the decoded input consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.base.0 + self.reader.position().byte()
    }

    /// After the last record: where a later object that begins with this one's bytes can
    /// resume (nothing for an object without data records).
    pub fn resume_point(&mut self) -> Option<ResumePoint> {
        if self.count == 0 {
            return None;
        }
        let mut t = self.tail.lock().expect("hash state");
        t.advance(self.last.0);
        if t.hashed != self.last.0 {
            return None;
        }
        Some(ResumePoint {
            offset: self.last.0,
            line: self.last.1,
            rows: self.base.2 + self.count - 1,
            hash: hex128(t.hasher.digest128()),
        })
    }

    /// Continue after the longest of `points` whose bytes this object begins with, if any: the
    /// records before it are not read. Returns the index of the point used.
    pub fn resume(&mut self, points: &[ResumePoint]) -> Result<Option<usize>, FormatError> {
        if self.count > 0 {
            return Ok(None);
        }
        let mut order: Vec<usize> = (0..points.len())
            .filter(|&i| points[i].offset >= self.data_start)
            .collect();
        order.sort_by_key(|&i| points[i].offset);
        if order.is_empty() {
            return Ok(None);
        }
        let err = |e: std::io::Error| io_err(&self.object, e);
        let mut input = decoded_reader(&self.path, &self.object, self.enc)?;
        let mut hasher = Xxh3::new();
        let mut at = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        let mut best: Option<(usize, Xxh3)> = None;
        'points: for &i in &order {
            let p = &points[i];
            while at < p.offset {
                let want = ((p.offset - at) as usize).min(buf.len());
                let n = input.read(&mut buf[..want]).map_err(err)?;
                if n == 0 {
                    break 'points;
                }
                hasher.update(&buf[..n]);
                at += n as u64;
            }
            if hex128(hasher.digest128()) == p.hash {
                best = Some((i, hasher.clone()));
            }
        }
        let Some((i, hasher)) = best else {
            return Ok(None);
        };
        let p = &points[i];
        if at != p.offset {
            // a longer point was tried and failed: start again and skip to this one
            input = decoded_reader(&self.path, &self.object, self.enc)?;
            std::io::copy(&mut (&mut input).take(p.offset), &mut std::io::sink()).map_err(err)?;
        }
        let tail = Arc::new(Mutex::new(Tail {
            hasher,
            hashed: p.offset,
            pending: Vec::new(),
        }));
        self.reader = csv_reader(
            self.delimiter,
            Box::new(Hashing {
                inner: input,
                tail: tail.clone(),
            }),
        );
        self.tail = tail;
        self.base = (p.offset, p.line - 1, p.rows);
        self.resumed = Some(p.clone());
        Ok(Some(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_delimiters() {
        assert_eq!(detect_delimiter(b"a;b;c\n1;2;3\n4;5;6\n"), b';');
        assert_eq!(detect_delimiter(b"a,b,c\n1,2,3\n"), b',');
        assert_eq!(detect_delimiter(b"a\tb\tc\t\n1\t2,5\t3\n"), b'\t');
        // commas inside quoted text do not win over the real delimiter
        assert_eq!(
            detect_delimiter(b"id;text\n1;\"a, b, c, d\"\n2;\"e, f\"\n"),
            b';'
        );
    }
}
