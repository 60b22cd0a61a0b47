//! Object stores for warehouses and sources: a local folder or `s3://bucket/prefix`.
//!
//! S3 credentials, region and a custom endpoint come from the standard AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`), read by object_store's `AmazonS3Builder::from_env`.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

use crate::Cause;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{location}: {source}")]
    Location {
        location: String,
        #[source]
        source: Cause,
    },
    #[error("{location}: {source}")]
    ObjectStore {
        location: String,
        source: object_store::Error,
    },
}

/// Delta tables on S3 commit through delta-rs's default log store, which writes each commit file
/// with a conditional create (`If-None-Match: *`, which S3 and S3-compatible stores support), so
/// two writers cannot both commit the same version. deltalake-core registers log stores for
/// `file://` and `memory://` only (the `deltalake-aws` crate would add a DynamoDB-locked one);
/// this registers the default one for `s3://` once.
fn register_s3_log_store() {
    use deltalake_core::logstore::{
        LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
        logstore_factories,
    };
    struct S3 {}
    impl LogStoreFactory for S3 {
        fn with_options(
            &self,
            prefixed_store: ObjectStoreRef,
            root_store: ObjectStoreRef,
            location: &Url,
            options: &StorageConfig,
        ) -> deltalake_core::DeltaResult<Arc<dyn LogStore>> {
            Ok(default_logstore(
                prefixed_store,
                root_store,
                location,
                options,
            ))
        }
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        logstore_factories().insert(Url::parse("s3://").expect("a valid URL"), Arc::new(S3 {}));
    });
}

/// A location resolved to a store, the path of its root inside the store, and its URL.
#[derive(Clone, Debug)]
pub struct Location {
    /// the store, rooted at `/` (local) or at the bucket (S3)
    pub store: Arc<dyn ObjectStore>,
    /// the location's path inside the store
    pub prefix: Path,
    /// `file:///abs/dir` or `s3://bucket/prefix`
    pub url: Url,
    /// the folder on this machine for a local location
    pub local_dir: Option<PathBuf>,
}

impl Location {
    /// Resolve `spec` (a path, relative ones against `base`, or `s3://…`). A local folder is
    /// created when `create` is set.
    pub fn parse(spec: &str, base: &FsPath, create: bool) -> Result<Location, StoreError> {
        let err = |source: Cause| StoreError::Location {
            location: spec.to_string(),
            source,
        };
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(err("no bucket in the URL".into()));
            }
            register_s3_log_store();
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| err(e.into()))?;
            let prefix = prefix.trim_end_matches('/');
            let url = Url::parse(&format!("s3://{bucket}/{prefix}")).map_err(|e| err(e.into()))?;
            return Ok(Location {
                store: Arc::new(store),
                prefix: Path::from(prefix),
                url,
                local_dir: None,
            });
        }
        if spec.contains("://") {
            return Err(err(
                "unsupported URL scheme (use a local path or s3://bucket/prefix)".into(),
            ));
        }
        let p = FsPath::new(spec);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        };
        if create {
            std::fs::create_dir_all(&p).map_err(|e| err(e.into()))?;
        }
        let abs = std::fs::canonicalize(&p).map_err(|e| err(e.into()))?;
        let url = Url::from_directory_path(&abs)
            .map_err(|_| err("not an absolute folder path".into()))?;
        let prefix = Path::from_absolute_path(&abs).map_err(|e| err(e.into()))?;
        Ok(Location {
            store: Arc::new(object_store::local::LocalFileSystem::new()),
            prefix,
            url,
            local_dir: Some(abs),
        })
    }

    /// The path of `rel` (a `/`-separated relative path) inside the store.
    pub fn child(&self, rel: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    /// The URL of `rel` below this location (for a Delta table's root).
    pub fn child_url(&self, rel: &str) -> Url {
        let mut s = self.url.to_string();
        if !s.ends_with('/') {
            s.push('/');
        }
        s.push_str(rel);
        Url::parse(&s).expect("a child of a valid URL is valid")
    }

    /// For a local location, the file of a store path on this machine.
    pub fn local_file(&self, p: &Path) -> Option<PathBuf> {
        self.local_dir.as_ref()?;
        Some(PathBuf::from(format!("/{}", p.as_ref())))
    }

    /// How the location is shown to users.
    pub fn display(&self) -> String {
        match &self.local_dir {
            Some(d) => d.display().to_string(),
            None => self.url.to_string(),
        }
    }
}
