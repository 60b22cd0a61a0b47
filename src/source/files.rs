//! The `files` source kind: export files in a local folder or under an object-store prefix,
//! selected by a glob on their path below the location.

use std::path::Path as FsPath;

use futures::TryStreamExt;
use globset::{Glob, GlobMatcher};
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

use super::{LocalCopy, SourceError, SourceObject, tempfile_lite::TempFile};
use crate::Cause;
use crate::config::FilesSource;
use crate::store::Location;

pub struct FilesReader {
    pub location: Location,
    glob: GlobMatcher,
}

impl FilesReader {
    pub fn new(cfg: &FilesSource, base: &FsPath) -> Result<Self, SourceError> {
        if !cfg.location.contains("://") {
            let dir = base.join(&cfg.location);
            if !dir.is_dir() {
                return Err(SourceError::NoFolder {
                    location: dir.display().to_string(),
                });
            }
        }
        let location = Location::parse(&cfg.location, base, false)?;
        let glob = Glob::new(&cfg.glob)
            .map_err(|e| SourceError::Glob {
                glob: cfg.glob.clone(),
                source: e,
            })?
            .compile_matcher();
        Ok(FilesReader { location, glob })
    }

    /// Every matching object, in name order.
    pub async fn list(&self) -> Result<Vec<SourceObject>, SourceError> {
        let prefix = self.location.prefix.clone();
        let metas: Vec<_> = self
            .location
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|source| SourceError::List {
                location: self.location.display(),
                source,
            })?;
        let plen = prefix.as_ref().len();
        let mut out = Vec::new();
        for m in metas {
            let full = m.location.as_ref();
            let rel = full[plen..].trim_start_matches('/').to_string();
            if self.glob.is_match(&rel) {
                out.push(SourceObject {
                    name: rel,
                    size: m.size,
                    etag: m.e_tag.clone(),
                    last_modified: m.last_modified,
                    fingerprint: None,
                    range: None,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The object as a file on this machine; a remote object is streamed to a temporary file.
    pub async fn local_copy(&self, obj: &SourceObject) -> Result<LocalCopy, SourceError> {
        let path = self.location.child(&obj.name);
        if let Some(f) = self.location.local_file(&path) {
            return Ok(LocalCopy {
                path: f,
                _temp: None,
            });
        }
        let err = |source: Cause| SourceError::Read {
            object: obj.name.clone(),
            source,
        };
        let tmp = std::env::temp_dir().join(format!("palaute-src-{}", uuid::Uuid::new_v4()));
        let guard = TempFile(tmp.clone());
        let res = self
            .location
            .store
            .get(&path)
            .await
            .map_err(|e| err(e.into()))?;
        let mut stream = res.into_stream();
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| err(e.into()))?;
        while let Some(chunk) = stream.try_next().await.map_err(|e| err(e.into()))? {
            file.write_all(&chunk).await.map_err(|e| err(e.into()))?;
        }
        file.flush().await.map_err(|e| err(e.into()))?;
        Ok(LocalCopy {
            path: tmp,
            _temp: Some(guard),
        })
    }
}
