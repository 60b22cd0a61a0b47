//! Records held in memory: what a spreadsheet, a JSON document or a database query yields. Each
//! row keeps the number the user would look for (the sheet row, the line, the response id).

use csv::ByteRecord;

pub struct TableObject {
    pub names: Vec<String>,
    /// (row number as the source counts it, fields)
    rows: Vec<(u64, Vec<Vec<u8>>)>,
    pub description: String,
    /// the part of the object read (`sheet 'Form1'`), named in messages
    pub part: Option<String>,
    next: usize,
    bytes: u64,
}

impl TableObject {
    pub fn new(names: Vec<String>, rows: Vec<(u64, Vec<String>)>, description: String) -> Self {
        let rows = rows
            .into_iter()
            .map(|(n, fields)| (n, fields.into_iter().map(String::into_bytes).collect()))
            .collect();
        Self::from_bytes(names, rows, description)
    }

    /// Rows whose fields are bytes as read (not necessarily UTF-8: the normalizer quarantines
    /// what is not).
    pub fn from_bytes(
        names: Vec<String>,
        rows: Vec<(u64, Vec<Vec<u8>>)>,
        description: String,
    ) -> Self {
        TableObject {
            names,
            rows,
            description,
            part: None,
            next: 0,
            bytes: 0,
        }
    }

    pub fn read_into(&mut self, rec: &mut ByteRecord) -> Option<u64> {
        let (line, fields) = self.rows.get_mut(self.next)?;
        self.next += 1;
        rec.clear();
        for f in fields.iter() {
            rec.push_field(f);
            self.bytes += f.len() as u64 + 1;
        }
        // the row is not needed again: free it as the cursor passes
        fields.clear();
        fields.shrink_to_fit();
        Some(*line)
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }
}
