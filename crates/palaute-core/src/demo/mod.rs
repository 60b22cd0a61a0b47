//! Seeded generators of realistic survey exports: the demo's two surveys and the benchmark's wide
//! export. Everything is synthetic; the same seed gives the same bytes.

pub mod bench_data;
pub mod county;
pub mod feedback;
pub mod project;
pub mod text;

use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct GenError {
    pub path: String,
    pub message: String,
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), GenError> {
    let err = |e: std::io::Error| GenError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
