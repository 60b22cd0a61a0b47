//! The warehouse: Delta Lake tables on a local folder or an object store (docs/architecture.md, "Rules the code relies on").
//!
//! A run commits its data tables one by one and then appends its row to the `runs` ledger; the
//! ledger row, with the table versions it names, is the run's commit point. Readers
//! ([`Warehouse::committed_tables`]) open every table at the versions of the last ledger row, so a
//! run that died between its table commits is invisible; the next run restores such tables to the
//! committed versions before it starts ([`Warehouse::recover`]).

pub mod keys;
pub mod lease;
pub mod ledger;
pub mod owed;
pub mod rows;
pub mod tables;
pub mod writer;

use std::collections::BTreeMap;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use deltalake_core::kernel::Action;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::CommitBuilder;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;

use crate::store::{Location, StoreError};
pub use ledger::{RunRecord, RunStatus};
use tables::{ALL_TABLES, table_def};

pub use crate::Cause;

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("table {table}: {source}")]
    Delta {
        table: String,
        source: Box<DeltaTableError>,
    },
    #[error("{path}: {source}")]
    Write {
        path: String,
        #[source]
        source: Cause,
    },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: Cause,
    },
    #[error("the ledger is damaged: {0}")]
    Ledger(#[source] Cause),
    #[error("no warehouse at {0} (run a pipeline first, or check --warehouse / PALAUTE_WAREHOUSE)")]
    Missing(String),
    #[error("this writer lost the warehouse's writer lease: {0}; nothing more was committed")]
    LeaseLost(String),
    #[error("{0}")]
    KeySecret(String),
    /// `vacuum` would delete files a recorded extract still needs
    #[error("{0}")]
    NeededByExtract(String),
}

impl WarehouseError {
    pub fn exit_code(&self) -> i32 {
        match self {
            WarehouseError::LeaseLost(_) => crate::ops::exit::LEASE,
            // a setting to fix, not a failure to retry
            WarehouseError::KeySecret(_) | WarehouseError::NeededByExtract(_) => {
                crate::ops::exit::CONFIG
            }
            _ => crate::ops::exit::ENVIRONMENT,
        }
    }
}

fn delta(table: &str) -> impl Fn(DeltaTableError) -> WarehouseError + '_ {
    move |source| WarehouseError::Delta {
        table: table.to_string(),
        source: Box::new(source),
    }
}

/// A file of a table version: its path below the table root and its size.
#[derive(Debug, Clone)]
pub struct TableFile {
    pub path: String,
    pub size: i64,
}

/// A data table's files by (period, county) partition (files without both values are not
/// listed: every file of the data tables has them).
pub fn files_by_partition(
    files: Vec<TableFile>,
) -> BTreeMap<crate::schema::Partition, Vec<TableFile>> {
    let mut m: BTreeMap<crate::schema::Partition, Vec<TableFile>> = BTreeMap::new();
    for f in files {
        if let Some(p) = f.partition() {
            m.entry(p).or_default().push(f);
        }
    }
    m
}

impl TableFile {
    /// The (period, county) partition of a data table's file.
    pub fn partition(&self) -> Option<crate::schema::Partition> {
        let pv = self.partition_values();
        let get = |k: &str| pv.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        Some(crate::schema::Partition {
            period: get("period")?,
            county: get("county")?,
        })
    }

    /// Hive-style partition values in the path (`period=2024-01/county=08/…`).
    pub fn partition_values(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        let parts: Vec<&str> = self.path.split('/').collect();
        for seg in &parts[..parts.len().saturating_sub(1)] {
            if let Some((k, val)) = seg.split_once('=') {
                v.push((k.to_string(), val.to_string()));
            }
        }
        v
    }
}

#[derive(Clone)]
pub struct Warehouse {
    pub loc: Location,
    /// the writer lease this handle commits under: checked before every commit
    fence: Option<lease::Fence>,
}

impl Warehouse {
    /// Open the warehouse at `spec` (a folder, created when `create`, or `s3://bucket/prefix`).
    pub fn open(spec: &str, create: bool) -> Result<Warehouse, WarehouseError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
        if !create && !spec.contains("://") && !std::path::Path::new(spec).exists() {
            return Err(WarehouseError::Missing(spec.to_string()));
        }
        Ok(Warehouse {
            loc: Location::parse(spec, &cwd, create)?,
            fence: None,
        })
    }

    /// This warehouse, committing only while `fence`'s lease is held: every commit and restore
    /// first checks that the lease was neither taken over nor left to expire
    /// ([`lease::Fence::check`]), and fails with [`WarehouseError::LeaseLost`] otherwise.
    pub fn fenced(mut self, fence: lease::Fence) -> Warehouse {
        self.fence = Some(fence);
        self
    }

    async fn check_fence(&self) -> Result<(), WarehouseError> {
        match &self.fence {
            Some(f) => f.check(self).await,
            None => Ok(()),
        }
    }

    fn builder(&self, name: &str) -> Result<DeltaTableBuilder, WarehouseError> {
        let url = self.loc.child_url(name);
        Ok(DeltaTableBuilder::from_url(url.clone())
            .map_err(delta(name))?
            .with_storage_backend(self.loc.store.clone(), url))
    }

    /// A table at its latest version, or at `version`.
    pub async fn table(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<DeltaTable, WarehouseError> {
        let mut b = self.builder(name)?;
        if let Some(v) = version {
            b = b.with_version(v);
        }
        b.load().await.map_err(delta(name))
    }

    pub async fn table_exists(&self, name: &str) -> Result<bool, WarehouseError> {
        let t = self.builder(name)?.build().map_err(delta(name))?;
        t.verify_deltatable_existence().await.map_err(delta(name))
    }

    /// Create every table that does not exist yet (each at version 0, empty).
    pub async fn ensure_tables(&self) -> Result<(), WarehouseError> {
        for name in ALL_TABLES {
            if self.table_exists(name).await? {
                continue;
            }
            let def = table_def(name);
            let st: deltalake_core::kernel::StructType = def
                .schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| WarehouseError::Write {
                    path: name.to_string(),
                    source: e.into(),
                })?;
            let t = self.builder(name)?.build().map_err(delta(name))?;
            let mut c = t
                .create()
                .with_table_name(name)
                .with_columns(st.fields().cloned())
                .with_comment(format!("palaute warehouse table {name}"));
            if !def.partition_by.is_empty() {
                c = c.with_partition_columns(def.partition_by.iter().map(|s| s.to_string()));
            }
            c.await.map_err(delta(name))?;
        }
        Ok(())
    }

    /// Create a mart table with `schema` (every column nullable) partitioned by period type and
    /// year, unless it exists. `comment` describes its method.
    pub async fn ensure_mart(
        &self,
        name: &str,
        schema: &arrow::datatypes::Schema,
        comment: &str,
    ) -> Result<(), WarehouseError> {
        if self.table_exists(name).await? {
            return self.add_mart_columns(name, schema).await;
        }
        let fields: Vec<arrow::datatypes::Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let arrow_schema = arrow::datatypes::Schema::new(fields);
        let st: deltalake_core::kernel::StructType =
            (&arrow_schema)
                .try_into_kernel()
                .map_err(|e| WarehouseError::Write {
                    path: name.to_string(),
                    source: e.into(),
                })?;
        let t = self.builder(name)?.build().map_err(delta(name))?;
        t.create()
            .with_table_name(name)
            .with_columns(st.fields().cloned())
            .with_partition_columns(tables::MART_PARTITIONS.iter().map(|s| s.to_string()))
            .with_comment(comment)
            .with_raise_if_key_not_exists(false)
            .with_configuration([("palaute.method", Some(comment))])
            .await
            .map_err(delta(name))?;
        Ok(())
    }

    /// A mart written by an earlier version of palaute: the columns its SQL has gained since
    /// (the case-mix adjusted figures) are added to the table's schema, as nullable columns
    /// that the files written before do not hold. One commit, ahead of the ledger until the
    /// aggregation commits (a failed one restores it, and the next adds them again).
    async fn add_mart_columns(
        &self,
        name: &str,
        schema: &arrow::datatypes::Schema,
    ) -> Result<(), WarehouseError> {
        let t = self.table(name, None).await?;
        let have: std::collections::HashSet<String> = t
            .snapshot()
            .map_err(delta(name))?
            .schema()
            .field_names()
            .cloned()
            .collect();
        let missing: Vec<arrow::datatypes::Field> = schema
            .fields()
            .iter()
            .filter(|f| !have.contains(f.name()))
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missing.iter().map(|f| f.name().clone()).collect();
        let st: deltalake_core::kernel::StructType = (&arrow::datatypes::Schema::new(missing))
            .try_into_kernel()
            .map_err(|e| WarehouseError::Write {
                path: name.to_string(),
                source: e.into(),
            })?;
        self.check_fence().await?;
        t.add_columns()
            .with_fields(st.fields().cloned().collect::<Vec<_>>())
            .await
            .map_err(delta(name))?;
        tracing::info!(table = name, columns = %names.join(", "), "mart columns added");
        Ok(())
    }

    /// Whether this location holds a palaute warehouse (its ledger exists).
    pub async fn exists(&self) -> Result<bool, WarehouseError> {
        self.table_exists(tables::RUNS).await
    }

    /// The active files of a table version.
    pub async fn files(&self, t: &DeltaTable) -> Result<Vec<TableFile>, WarehouseError> {
        let name = t
            .table_url()
            .path()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        let views: Vec<_> = t
            .get_active_add_actions_by_predicate(None)
            .try_collect()
            .await
            .map_err(delta(&name))?;
        Ok(views
            .into_iter()
            .map(|v| TableFile {
                path: v.path().to_string(),
                size: v.size(),
            })
            .collect())
    }

    /// Read `columns` (all when empty) of the given files of table `name`.
    pub async fn read_files(
        &self,
        name: &str,
        files: &[TableFile],
        columns: &[&str],
    ) -> Result<Vec<RecordBatch>, WarehouseError> {
        self.read_files_with(name, files, columns, &[]).await
    }

    /// [`Warehouse::read_files`], with the string columns `dictionary` read as dictionary arrays
    /// (Int32 keys): code columns then decode without copying each row's text.
    pub async fn read_files_with(
        &self,
        name: &str,
        files: &[TableFile],
        columns: &[&str],
        dictionary: &[&str],
    ) -> Result<Vec<RecordBatch>, WarehouseError> {
        let out = self
            .read_each(name, files, columns, dictionary, |b| b)
            .await?;
        Ok(out.into_iter().flatten().collect())
    }

    /// Read `files` as [`Warehouse::read_files_with`] does, each turned by `then` into a value
    /// on the task that decoded it (in the order of `files`).
    pub async fn read_each<T: Send + 'static>(
        &self,
        name: &str,
        files: &[TableFile],
        columns: &[&str],
        dictionary: &[&str],
        then: impl Fn(Vec<RecordBatch>) -> T + Clone + Send + 'static,
    ) -> Result<Vec<T>, WarehouseError> {
        let store = self.loc.store.clone();
        let loc = self.loc.clone();
        let reads = files.iter().map(|f| {
            let store = store.clone();
            let path: Path = loc.child(&format!("{name}/{}", f.path));
            let size = f.size as u64;
            let cols: Vec<String> = columns.iter().map(|s| s.to_string()).collect();
            let dict: Vec<String> = dictionary.iter().map(|s| s.to_string()).collect();
            let then = then.clone();
            // each file is decoded in a task of its own, so that files are decoded on every
            // worker thread (a future polled here would decode them all on this one)
            let read = async move {
                let err = |e: Cause| WarehouseError::Read {
                    path: path.to_string(),
                    source: e,
                };
                #[allow(deprecated)]
                let mut reader = ParquetObjectReader::new(store, path.clone()).with_file_size(size);
                let meta = ArrowReaderMetadata::load_async(&mut reader, Default::default())
                    .await
                    .map_err(|e| err(e.into()))?;
                let meta = if dict.is_empty() {
                    meta
                } else {
                    let fields: Vec<Field> = meta
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| {
                            if dict.iter().any(|d| d == f.name())
                                && f.data_type() == &DataType::Utf8
                            {
                                Field::new(
                                    f.name(),
                                    DataType::Dictionary(
                                        Box::new(DataType::Int32),
                                        Box::new(DataType::Utf8),
                                    ),
                                    f.is_nullable(),
                                )
                            } else {
                                f.as_ref().clone()
                            }
                        })
                        .collect();
                    ArrowReaderMetadata::try_new(
                        meta.metadata().clone(),
                        ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(fields))),
                    )
                    .map_err(|e| err(e.into()))?
                };
                let b = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta);
                let b = if cols.is_empty() {
                    b
                } else {
                    let mask = ProjectionMask::columns(
                        b.parquet_schema(),
                        cols.iter().map(String::as_str),
                    );
                    b.with_projection(mask)
                };
                let stream = b
                    .with_batch_size(65536)
                    .build()
                    .map_err(|e| err(e.into()))?;
                stream
                    .try_collect::<Vec<_>>()
                    .await
                    .map(then)
                    .map_err(|e| err(e.into()))
            };
            let name = name.to_string();
            async move {
                tokio::spawn(read).await.map_err(|e| WarehouseError::Read {
                    path: name,
                    source: e.into(),
                })?
            }
        });
        futures::stream::iter(reads).buffered(8).try_collect().await
    }

    /// Commit actions to a table; returns the new version.
    pub async fn commit(
        &self,
        t: &DeltaTable,
        name: &str,
        actions: Vec<Action>,
        load_id: &str,
    ) -> Result<u64, WarehouseError> {
        let partition_by = tables::partition_columns(name);
        let mut meta = std::collections::HashMap::new();
        meta.insert(
            "palaute.load_id".to_string(),
            serde_json::Value::String(load_id.to_string()),
        );
        let op = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: (!partition_by.is_empty())
                .then(|| partition_by.iter().map(|s| s.to_string()).collect()),
            predicate: None,
        };
        let snapshot = t.snapshot().map_err(delta(name))?;
        self.check_fence().await?;
        // the table's checkpoint interval (every 100 versions by default) applies; old log
        // entries are kept (versions are restored and read by number)
        let done = CommitBuilder::from(
            deltalake_core::kernel::transaction::CommitProperties::default()
                .with_create_checkpoint(true)
                .with_cleanup_expired_logs(Some(false)),
        )
        .with_actions(actions)
        .with_app_metadata(meta)
        .build(Some(snapshot), t.log_store(), op)
        .await
        .map_err(delta(name))?;
        Ok(done.version())
    }

    /// Write a Delta checkpoint of table `name` at its latest version.
    pub async fn checkpoint(&self, name: &str) -> Result<(), WarehouseError> {
        let t = self.table(name, None).await?;
        deltalake_core::protocol::checkpoints::create_checkpoint(&t, None)
            .await
            .map_err(delta(name))
    }

    /// Restore a table to `version` (a new version with that version's content).
    pub async fn restore(&self, name: &str, version: u64) -> Result<(), WarehouseError> {
        let t = self.table(name, None).await?;
        self.check_fence().await?;
        t.restore()
            .with_version_to_restore(version)
            .await
            .map_err(delta(name))?;
        Ok(())
    }

    /// Best effort: restore tables an unfinished operation committed to their versions before it
    /// (the next run's [`Warehouse::recover`] does it if this fails).
    pub async fn restore_all(&self, committed_now: &[(&str, u64)]) {
        for (name, before) in committed_now {
            if let Err(e) = self.restore(name, *before).await {
                tracing::error!(table = name, error = %e, "rollback failed; the next run restores the table");
            }
        }
    }

    /// Bring tables that are ahead of the ledger (a run died between its commits) back to the
    /// committed versions. Returns the tables restored.
    pub async fn recover(&self) -> Result<Vec<String>, WarehouseError> {
        let committed = ledger::committed_versions(self).await?;
        self.recover_to(&committed).await
    }

    /// [`Warehouse::recover`] to the ledger's `committed` versions, already read. The tables
    /// are looked at one after another, so that the local store's file operations start no
    /// extra blocking threads, which would stay for the load that follows and spread its
    /// allocations over more allocator arenas (docs/performance.md).
    pub async fn recover_to(
        &self,
        committed: &BTreeMap<String, u64>,
    ) -> Result<Vec<String>, WarehouseError> {
        let mut restored = Vec::new();
        for name in tables::DATA_TABLES.into_iter().chain(tables::MART_TABLES) {
            if !self.table_exists(name).await? {
                continue;
            }
            // the latest version from the log's listing (the table's files are not loaded)
            let latest = self
                .builder(name)?
                .build()
                .map_err(delta(name))?
                .get_latest_version()
                .await
                .map_err(delta(name))?;
            let want = committed.get(name).copied().unwrap_or(0);
            if latest > want {
                tracing::warn!(
                    table = name,
                    from = latest,
                    to = want,
                    "restoring a table an unfinished run left ahead of the ledger"
                );
                self.restore(name, want).await?;
                restored.push(name.to_string());
            }
        }
        Ok(restored)
    }

    /// Every table at its committed version (what readers see).
    pub async fn committed_tables(&self) -> Result<BTreeMap<String, DeltaTable>, WarehouseError> {
        self.committed_tables_of(&[]).await
    }

    /// [`Warehouse::committed_tables`], only the tables `names` (all when empty; a mart that
    /// does not exist yet is left out).
    pub async fn committed_tables_of(
        &self,
        names: &[&str],
    ) -> Result<BTreeMap<String, DeltaTable>, WarehouseError> {
        let committed = ledger::committed_versions(self).await?;
        self.committed_tables_at(names, &committed).await
    }

    /// [`Warehouse::committed_tables_of`] at the ledger's `committed` versions, already read.
    /// The tables are opened concurrently.
    pub async fn committed_tables_at(
        &self,
        names: &[&str],
        committed: &BTreeMap<String, u64>,
    ) -> Result<BTreeMap<String, DeltaTable>, WarehouseError> {
        let wanted = |n: &str| names.is_empty() || names.contains(&n);
        // (table, version to open (None: the latest), whether it may not exist yet)
        let mut open: Vec<(&str, Option<u64>, bool)> = Vec::new();
        for name in ALL_TABLES.into_iter().filter(|n| wanted(n)) {
            let v = if name == tables::RUNS {
                None
            } else {
                Some(committed.get(name).copied().unwrap_or(0))
            };
            open.push((name, v, false));
        }
        for name in tables::MART_TABLES.into_iter().filter(|n| wanted(n)) {
            open.push((name, Some(committed.get(name).copied().unwrap_or(0)), true));
        }
        let opened =
            futures::future::try_join_all(open.into_iter().map(|(name, v, optional)| async move {
                if optional && !self.table_exists(name).await? {
                    return Ok::<_, WarehouseError>(None);
                }
                Ok(Some((name.to_string(), self.table(name, v).await?)))
            }))
            .await?;
        let out: BTreeMap<String, DeltaTable> = opened.into_iter().flatten().collect();
        Ok(out)
    }
}
