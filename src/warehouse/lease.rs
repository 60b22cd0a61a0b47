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
//!
//! Fencing: a holder paused past its expiry (a stopped VM, a stalled store) may find that
//! another writer took over. Every commit made under a lease first checks its [`Fence`]: the
//! holder's last renewal must still be in force and the next generation must not exist (a
//! writer taking over always creates the generation after the newest it read). A commit is a
//! Delta log write and the lease another object, so no store makes the one conditional on the
//! other; the check just before each commit narrows the window to that commit's own duration.

use std::sync::{Arc, Mutex};
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
    fence: Fence,
    /// tables a dead holder had left ahead of the ledger, restored on taking over
    restored: Vec<String>,
}

/// What a commit checks to know that its writer still holds the lease.
#[derive(Clone, Debug)]
pub struct Fence {
    generation: u64,
    /// the expiry of the last renewal the store accepted
    confirmed_until: Arc<Mutex<DateTime<Utc>>>,
}

impl Fence {
    /// `Ok` while the lease is held: its last accepted renewal has not expired and no writer
    /// has created the next generation.
    pub async fn check(&self, wh: &Warehouse) -> Result<(), WarehouseError> {
        let until = *self.confirmed_until.lock().expect("not poisoned");
        if until <= Utc::now() {
            return Err(WarehouseError::LeaseLost(format!(
                "generation {} expired at {until} without a renewal the store accepted",
                self.generation
            )));
        }
        let next = wh.loc.child(&generation_file(self.generation + 1));
        match wh.loc.store.head(&next).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Ok(_) => {
                let by = match newest(wh).await {
                    Ok(Some((g, r))) => format!(
                        "generation {g} is held by {} ({}) since {}",
                        r.holder, r.purpose, r.acquired_at
                    ),
                    _ => format!("generation {} exists", self.generation + 1),
                };
                Err(WarehouseError::LeaseLost(format!(
                    "another writer took over after generation {}: {by}",
                    self.generation
                )))
            }
            Err(e) => Err(io(&next)(e)),
        }
    }
}

fn generation_file(g: u64) -> String {
    format!("{DIR}/{g:020}.json")
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
        source: e.into(),
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
        source: format!("not a lease: {e}").into(),
    })?;
    Ok(Some((g, rec)))
}

impl Lease {
    /// Take the writer lease for `purpose` (e.g. `run demo_county`), or say who holds it.
    pub async fn acquire(wh: &Warehouse, purpose: &str) -> Result<Lease, LeaseError> {
        let ttl = ttl();
        let now = Utc::now();
        let last = newest(wh).await?;
        // a lease neither released nor renewed: its holder died or lost the store
        let stale = last.as_ref().is_some_and(|(_, r)| !r.released);
        let next = match last {
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
        let path = wh.loc.child(&generation_file(next));
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
        let fence = Fence {
            generation: next,
            confirmed_until: Arc::new(Mutex::new(record.expires_at)),
        };
        let mut lease = Lease {
            wh: wh.clone().fenced(fence.clone()),
            path,
            record,
            ttl,
            renewer: None,
            fence,
            restored: Vec::new(),
        };
        lease.start_renewing();
        if stale && lease.wh.exists().await? {
            // what the dead holder committed beyond the ledger is undone now, by whichever
            // writer sees it first, so that no reader of the newest table versions meets it
            lease.restored = lease.wh.recover().await?;
            if !lease.restored.is_empty() {
                tracing::warn!(
                    tables = lease.restored.join(","),
                    "took over a writer lease that was not released: restored the tables its holder left ahead of the ledger"
                );
            }
        }
        Ok(lease)
    }

    /// The tables restored on taking this lease over from a holder that did not release it.
    pub fn restored(&self) -> &[String] {
        &self.restored
    }

    /// The fence of this lease, for [`Warehouse::fenced`].
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    fn start_renewing(&mut self) {
        let (wh, path, mut record, ttl, confirmed) = (
            self.wh.clone(),
            self.path.clone(),
            self.record.clone(),
            self.ttl,
            self.fence.confirmed_until.clone(),
        );
        self.renewer = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                record.expires_at =
                    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
                let body = serde_json::to_vec(&record).expect("serializable");
                match wh.loc.store.put(&path, body.into()).await {
                    Ok(_) => *confirmed.lock().expect("not poisoned") = record.expires_at,
                    Err(e) => tracing::error!(
                        error = %e,
                        "could not renew the writer lease; commits stop when it expires"
                    ),
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
