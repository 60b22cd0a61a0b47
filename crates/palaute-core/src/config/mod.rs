//! Pipeline declarations (`pipelines/*.yaml`) and the few settings every command shares.
//!
//! The format is documented with a full example in `docs/pipelines.md`. Every struct denies
//! unknown keys, so a misspelt key is an error at `palaute check`, not a silent default.

pub mod keys;
mod pipeline;

pub use keys::parse_reporting_every_unknown_key;
pub use pipeline::*;

use std::path::{Path, PathBuf};

/// Where the warehouse is when nothing else says: `./warehouse`.
pub const DEFAULT_WAREHOUSE: &str = "./warehouse";
/// The environment variable naming the warehouse.
pub const WAREHOUSE_ENV: &str = "PALAUTE_WAREHOUSE";
/// The time zone of periods (`YYYY-MM`) and of source times without an offset.
pub const DEFAULT_TIMEZONE: &str = "Europe/Helsinki";
/// The environment variable a LimeSurvey database source reads its connection string from
/// (unless the pipeline names another).
pub const LIMESURVEY_URL_ENV: &str = "PALAUTE_LIMESURVEY_URL";
/// Quarantined share of a run's rows over which the run fails (percent).
pub const DEFAULT_MAX_QUARANTINED_PCT: f64 = 5.0;
/// The earliest submission time taken as real unless a pipeline says otherwise
/// (`quality.earliest`): before any electronic collection of client feedback in these services.
pub const DEFAULT_EARLIEST: &str = "2000-01-01";
/// How far past the run a submission time may be (clocks drift; time zones): one day.
pub const LATEST_AHEAD_HOURS: i64 = 24;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The warehouse URL: the flag, else `PALAUTE_WAREHOUSE`, else `./warehouse`.
pub fn resolve_warehouse(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var(WAREHOUSE_ENV).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_WAREHOUSE.to_string())
}

/// Read and parse one pipeline file.
pub fn load_pipeline(path: &Path) -> Result<Pipeline, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_pipeline(&text, path)
}

/// Parse and validate a pipeline's text, as the file `path` would hold it.
pub fn parse_pipeline(text: &str, path: &Path) -> Result<Pipeline, ConfigError> {
    let mut p: Pipeline =
        keys::parse_reporting_every_unknown_key(text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
    p.file = path.to_path_buf();
    p.validate().map_err(|message| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(p)
}

/// Every `*.yaml` / `*.yml` file directly in `dir`, in name order.
pub fn pipelines_in(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let rd = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    v.sort();
    Ok(v)
}
