//! The warehouse's writer lease: one writer (a pipeline run or a warehouse operation) at a time,
//! across processes and machines sharing the warehouse.
//!
//! A lease is an object `_leases/writer/<generation>.json` (holder, what it runs, expiry). To
//! acquire, a writer reads the newest generation; if it is held and not expired, the warehouse
//! is busy; otherwise the writer creates the next generation with a conditional create
//! (`PutMode::Create`: atomic on a local disk and on S3), so of two writers racing for the same
//! generation exactly one wins. The holder renews the expiry while it works; a holder that was
//! killed leaves its lease to expire (`PALAUTE_LEASE_TTL_SECONDS`, default 600), after which the
//! next writer takes over and `recover` undoes what the dead one left uncommitted. Release marks
//! the lease released.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use super::{Warehouse, WarehouseError};

const DIR: &str = "_leases/writer";
pub const DEFAULT_TTL_SECONDS: u64 = 600;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub holder: String,
    pub purpose: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub released: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "the warehouse is busy: {purpose} ({holder}) holds the writer lease until {expires_at} \
         unless it renews it"
    )]
    Held {
        holder: String,
        purpose: String,
        expires_at: DateTime<Utc>,
    },
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// A lease this process holds.
pub struct Lease {
    wh: Warehouse,
    path: Path,
    record: LeaseRecord,
    ttl: Duration,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

fn ttl() -> Duration {
    Duration::from_secs(
        std::env::var("PALAUTE_LEASE_TTL_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_TTL_SECONDS),
    )
}

fn io(path: &Path) -> impl Fn(object_store::Error) -> WarehouseError + '_ {
    move |e| WarehouseError::Write {
        path: path.to_string(),
        message: e.to_string(),
    }
}

async fn newest(wh: &Warehouse) -> Result<Option<(u64, LeaseRecord)>, WarehouseError> {
    let dir = wh.loc.child(DIR);
    let metas: Vec<_> = wh
        .loc
        .store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(io(&dir))?;
    let newest = metas
        .iter()
        .filter_map(|m| {
            m.location
                .filename()?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
                .map(|g| (g, m.location.clone()))
        })
        .max_by_key(|(g, _)| *g);
    let Some((g, path)) = newest else {
        return Ok(None);
    };
    let bytes = wh
        .loc
        .store
        .get(&path)
        .await
        .map_err(io(&path))?
        .bytes()
        .await
        .map_err(io(&path))?;
    let rec: LeaseRecord = serde_json::from_slice(&bytes).map_err(|e| WarehouseError::Write {
        path: path.to_string(),
        message: format!("not a lease: {e}"),
    })?;
    Ok(Some((g, rec)))
}

impl Lease {
    /// Take the writer lease for `purpose` (e.g. `run demo_county`), or say who holds it.
    pub async fn acquire(wh: &Warehouse, purpose: &str) -> Result<Lease, LeaseError> {
        let ttl = ttl();
        let now = Utc::now();
        let next = match newest(wh).await? {
            Some((_, r)) if !r.released && r.expires_at > now => {
                return Err(LeaseError::Held {
                    holder: r.holder,
                    purpose: r.purpose,
                    expires_at: r.expires_at,
                });
            }
            Some((g, _)) => g + 1,
            None => 1,
        };
        let record = LeaseRecord {
            holder: format!(
                "{}:{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
                std::process::id()
            ),
            purpose: purpose.to_string(),
            acquired_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
            released: false,
        };
        let path = wh.loc.child(&format!("{DIR}/{next:020}.json"));
        let body = serde_json::to_vec(&record).expect("serializable");
        match wh
            .loc
            .store
            .put_opts(
                &path,
                body.into(),
                PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                },
            )
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                // another writer won the race for this generation
                let held = newest(wh).await?.map(|(_, r)| r);
                return Err(match held {
                    Some(r) => LeaseError::Held {
                        holder: r.holder,
                        purpose: r.purpose,
                        expires_at: r.expires_at,
                    },
                    None => LeaseError::Held {
                        holder: "another writer".into(),
                        purpose: "unknown".into(),
                        expires_at: now,
                    },
                });
            }
            Err(e) => return Err(io(&path)(e).into()),
        }
        let mut lease = Lease {
            wh: wh.clone(),
            path,
            record,
            ttl,
            renewer: None,
        };
        lease.start_renewing();
        Ok(lease)
    }

    fn start_renewing(&mut self) {
        let (wh, path, mut record, ttl) = (
            self.wh.clone(),
            self.path.clone(),
            self.record.clone(),
            self.ttl,
        );
        self.renewer = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                record.expires_at =
                    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
                let body = serde_json::to_vec(&record).expect("serializable");
                if let Err(e) = wh.loc.store.put(&path, body.into()).await {
                    tracing::error!(error = %e, "could not renew the writer lease");
                }
            }
        }));
    }

    /// Give the lease up (the next writer need not wait for it to expire).
    pub async fn release(mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        self.record.released = true;
        let body = serde_json::to_vec(&self.record).expect("serializable");
        if let Err(e) = self.wh.loc.store.put(&self.path, body.into()).await {
            tracing::warn!(error = %e, "could not release the writer lease; it expires by itself");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}
