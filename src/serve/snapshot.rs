//! The warehouse as the server shows it: every table at the versions of the ledger's last row,
//! replaced by the next one when a run commits (a run in progress is never half-visible: its
//! tables' new versions count only once its ledger row is written).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::catalog::TableProvider;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;

use super::ServeError;
use crate::warehouse::{Warehouse, ledger};

/// The tables at one ledger row.
#[derive(Debug)]
pub struct Snapshot {
    /// the ledger row (0: an empty warehouse)
    pub seq: i64,
    pub providers: BTreeMap<String, Arc<dyn TableProvider>>,
}

/// The current snapshot, shared by every connection; and the runtime whose object stores
/// every session reads through.
pub struct Snapshots {
    wh: Warehouse,
    current: RwLock<Arc<Snapshot>>,
    pub runtime: Arc<RuntimeEnv>,
}

impl Snapshots {
    pub async fn open(wh: Warehouse) -> Result<Snapshots, ServeError> {
        let ctx = SessionContext::new();
        let first = load(&wh, &ctx).await?;
        Ok(Snapshots {
            wh,
            current: RwLock::new(Arc::new(first)),
            runtime: ctx.runtime_env(),
        })
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.current.read().expect("not poisoned").clone()
    }

    /// Take the ledger's last row when it is newer than the current snapshot's; returns the new
    /// row's number when it changed.
    pub async fn refresh(&self) -> Result<Option<i64>, ServeError> {
        let seq = last_seq(&self.wh).await?;
        if seq == self.current().seq {
            return Ok(None);
        }
        let ctx = SessionContext::new_with_config_rt(Default::default(), self.runtime.clone());
        let next = load(&self.wh, &ctx).await?;
        let seq = next.seq;
        *self.current.write().expect("not poisoned") = Arc::new(next);
        Ok(Some(seq))
    }
}

async fn last_seq(wh: &Warehouse) -> Result<i64, ServeError> {
    Ok(ledger::read_runs(wh).await?.last().map_or(0, |r| r.seq))
}

/// Open every table at the versions of the ledger's last row (read once, so that the versions
/// and the row number belong together).
async fn load(wh: &Warehouse, ctx: &SessionContext) -> Result<Snapshot, ServeError> {
    let runs = ledger::read_runs(wh).await?;
    let Some(last) = runs.last() else {
        return Ok(Snapshot {
            seq: 0,
            providers: BTreeMap::new(),
        });
    };
    let tables = wh.committed_tables_at(&[], &last.table_versions).await?;
    let mut providers = BTreeMap::new();
    for (name, t) in tables {
        t.update_datafusion_session(&ctx.state())
            .map_err(|e| ServeError::Open(e.into()))?;
        let p = t
            .table_provider()
            .await
            .map_err(|e| ServeError::Open(e.into()))?;
        providers.insert(name, p);
    }
    Ok(Snapshot {
        seq: last.seq,
        providers,
    })
}
