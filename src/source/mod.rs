//! Sources: where a pipeline's raw objects come from. One module per source kind, behind one
//! seam: [`Source::list`] offers objects with fingerprints, [`Source::records`] opens one as
//! [`Records`] (a file source through its format module: CSV, spreadsheet, JSON).

mod files;
pub mod limesurvey;

pub use files::FilesReader;
pub use limesurvey::LimesurveyReader;

use std::path::PathBuf;

use crate::Cause;
use crate::config::{FormatConfig, Pipeline, SourceConfig};
use crate::format::{FormatError, Records};
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
    #[error("{object}: cannot read: {source}")]
    Read {
        object: String,
        #[source]
        source: Cause,
    },
    #[error("source.glob '{glob}': {source}")]
    Glob {
        glob: String,
        #[source]
        source: globset::Error,
    },
    #[error(
        "source.location: {location} is not a folder (a location is relative to the pipeline file's folder)"
    )]
    NoFolder { location: String },
    #[error("pipeline {pipeline}: LimeSurvey database: {message}")]
    Database { pipeline: String, message: String },
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// One object a source offers (an export file), with what identifies its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceObject {
    /// path relative to the source location (what the ledger and messages show)
    pub name: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: chrono::DateTime<chrono::Utc>,
    /// a fingerprint the source sets itself (a database source: its next watermark)
    pub fingerprint: Option<String>,
    /// a database source: the response ids (exclusive, inclusive) the object covers
    pub range: Option<(i64, i64)>,
}

impl SourceObject {
    /// The identity compared with the ledger: an object with the same name, size and etag (or
    /// modification time where the store gives no etag) is unchanged and is not read again.
    pub fn fingerprint(&self) -> String {
        if let Some(f) = &self.fingerprint {
            return f.clone();
        }
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

/// An open source.
pub enum Source {
    Files(Box<(FilesReader, FormatConfig)>),
    Limesurvey(Box<LimesurveyReader>),
}

/// Open the reader of a pipeline's source.
pub async fn open(p: &Pipeline) -> Result<Source, SourceError> {
    match &p.source {
        SourceConfig::Files(f) => {
            let base = p
                .file
                .parent()
                .map(|d| d.to_path_buf())
                .unwrap_or_else(|| PathBuf::from("."));
            Ok(Source::Files(Box::new((
                FilesReader::new(f, &base)?,
                p.format(),
            ))))
        }
        SourceConfig::LimesurveyDb(l) => Ok(Source::Limesurvey(Box::new(
            LimesurveyReader::connect(l, &p.name).await?,
        ))),
    }
}

/// A source object opened for reading, with what must live as long as its records.
pub struct Opened {
    pub records: Records,
    _copy: Option<LocalCopy>,
}

impl Source {
    /// Every object the source offers. `manifest` holds the fingerprints of objects loaded by
    /// runs that count (a database source reads its watermark there); `from_start` ignores it.
    pub async fn list(
        &self,
        manifest: &std::collections::HashMap<String, String>,
        from_start: bool,
    ) -> Result<Vec<SourceObject>, SourceError> {
        match self {
            Source::Files(f) => f.0.list().await,
            Source::Limesurvey(l) => {
                let prev = manifest
                    .get(l.object_name())
                    .filter(|_| !from_start)
                    .map(String::as_str);
                l.list(prev).await
            }
        }
    }

    pub async fn records(&self, obj: &SourceObject) -> Result<Opened, SourceError> {
        match self {
            Source::Files(f) => {
                let (f, fmt) = f.as_ref();
                let copy = f.local_copy(obj).await?;
                let records = Records::open(&copy.path, &obj.name, fmt)?;
                Ok(Opened {
                    records,
                    _copy: Some(copy),
                })
            }
            Source::Limesurvey(l) => Ok(Opened {
                records: Records::Table(l.records(obj).await?),
                _copy: None,
            }),
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
