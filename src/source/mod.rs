//! Sources: where a pipeline's raw objects come from. One module per source kind, behind
//! [`SourceObject`] listings and [`open_local`] access; formats (CSV, …) read what a source opens.

mod files;

pub use files::FilesReader;

use std::path::PathBuf;

use crate::config::{Pipeline, SourceConfig};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{location}: listing failed: {source}")]
    List {
        location: String,
        source: object_store::Error,
    },
    #[error("{object}: cannot read: {message}")]
    Read { object: String, message: String },
    #[error("source.glob '{glob}': {message}")]
    Glob { glob: String, message: String },
}

/// One object a source offers (an export file), with what identifies its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceObject {
    /// path relative to the source location (what the ledger and messages show)
    pub name: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

impl SourceObject {
    /// The identity compared with the ledger: an object with the same name, size and etag (or
    /// modification time where the store gives no etag) is unchanged and is not read again.
    pub fn fingerprint(&self) -> String {
        match &self.etag {
            Some(e) => format!("{}:{}", self.size, e),
            None => format!("{}:{}", self.size, self.last_modified.timestamp_micros()),
        }
    }
}

/// A source object available as a file on this machine (a local file, or a downloaded copy that is
/// removed when this is dropped).
pub struct LocalCopy {
    pub path: PathBuf,
    _temp: Option<tempfile_lite::TempFile>,
}

/// Open the reader of a pipeline's source.
pub fn open(p: &Pipeline) -> Result<FilesReader, SourceError> {
    match &p.source {
        SourceConfig::Files(f) => {
            let base = p
                .file
                .parent()
                .map(|d| d.to_path_buf())
                .unwrap_or_else(|| PathBuf::from("."));
            FilesReader::new(f, &base)
        }
    }
}

pub(crate) mod tempfile_lite {
    //! A downloaded object's temporary file, removed on drop.
    use std::path::PathBuf;

    pub struct TempFile(pub PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
