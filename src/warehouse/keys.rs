//! Where a warehouse's key secret lives ([`crate::privacy::keys`]): `PALAUTE_KEY_SECRET` (64 hex
//! digits) when set, else `_keys/response_key.secret` in the warehouse, created at first use
//! (owner-only permissions on a local disk; on an object store, restrict `_keys/` by policy or
//! give the variable instead). `_keys/response_key.check` holds the secret's fingerprint, so a
//! run with another secret is refused instead of keying every response anew; it is written
//! once the warehouse's keys are made with the secret (at first use, or when `palaute rekey`
//! has migrated a warehouse whose keys were made without one).

use std::collections::BTreeMap;

use object_store::{ObjectStoreExt, PutMode, PutOptions};

use super::tables::{FEEDBACK, QUARANTINE, RESPONSES};
use super::{Cause, Warehouse, WarehouseError};
use crate::privacy::keys::KeySecret;

pub const ENV: &str = "PALAUTE_KEY_SECRET";
const SECRET: &str = "_keys/response_key.secret";
const CHECK: &str = "_keys/response_key.check";

fn err(path: &str, source: impl Into<Cause>) -> WarehouseError {
    WarehouseError::Write {
        path: path.to_string(),
        source: source.into(),
    }
}

async fn read(wh: &Warehouse, rel: &str) -> Result<Option<String>, WarehouseError> {
    match wh.loc.store.get(&wh.loc.child(rel)).await {
        Ok(r) => {
            let b = r.bytes().await.map_err(|e| err(rel, e))?;
            Ok(Some(String::from_utf8_lossy(&b).trim().to_string()))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(err(rel, e)),
    }
}

fn from_env() -> Result<Option<KeySecret>, WarehouseError> {
    match std::env::var(ENV) {
        Ok(v) if !v.trim().is_empty() => KeySecret::from_hex(&v).map(Some).ok_or_else(|| {
            WarehouseError::KeySecret(format!("{ENV} is not 64 hex digits (a 256-bit secret)"))
        }),
        _ => Ok(None),
    }
}

/// The secret given or stored, if any.
async fn available(wh: &Warehouse) -> Result<Option<KeySecret>, WarehouseError> {
    if let Some(s) = from_env()? {
        return Ok(Some(s));
    }
    match read(wh, SECRET).await? {
        Some(hex) => KeySecret::from_hex(&hex)
            .map(Some)
            .ok_or_else(|| WarehouseError::KeySecret(format!("{SECRET} is damaged"))),
        None => Ok(None),
    }
}

/// Store a new secret in the warehouse, never overwriting one: on a local disk created
/// owner-only from the start (the folder too), on an object store with a conditional create.
async fn store(wh: &Warehouse, s: &KeySecret) -> Result<(), WarehouseError> {
    let path = wh.loc.child(SECRET);
    let body = format!("{}\n", s.to_hex());
    if let Some(local) = wh.loc.local_file(&path) {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let e = |e: std::io::Error| err(SECRET, e);
        if let Some(dir) = local.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(e)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&local)
            .map_err(e)?;
        f.write_all(body.as_bytes()).map_err(e)?;
        return f.sync_all().map_err(e);
    }
    let opts = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    wh.loc
        .store
        .put_opts(&path, body.into(), opts)
        .await
        .map(|_| ())
        .map_err(|e| err(SECRET, e))
}

async fn mark(wh: &Warehouse, s: &KeySecret) -> Result<(), WarehouseError> {
    wh.loc
        .store
        .put(&wh.loc.child(CHECK), format!("{}\n", s.check()).into())
        .await
        .map(|_| ())
        .map_err(|e| err(CHECK, e))
}

/// Whether the warehouse holds keyed rows of an earlier version without a secret.
fn holds_rows(committed: &BTreeMap<String, u64>) -> bool {
    [RESPONSES, FEEDBACK, QUARANTINE]
        .iter()
        .any(|t| committed.get(*t).is_some_and(|v| *v > 0))
}

/// The secret a run keys its rows with. `committed`: the ledger's table versions. With
/// `create`, a warehouse that has none yet gets one (a plan, `check`, makes up a throwaway one
/// instead: it writes nothing and matches no stored key).
pub async fn for_run(
    wh: &Warehouse,
    committed: &BTreeMap<String, u64>,
    create: bool,
) -> Result<KeySecret, WarehouseError> {
    let secret = available(wh).await?;
    match (read(wh, CHECK).await?, secret) {
        (Some(check), Some(s)) if s.check() == check => Ok(s),
        (Some(_), Some(_)) => Err(WarehouseError::KeySecret(format!(
            "the key secret given ({ENV} or {SECRET}) is not the one this warehouse's response keys were made with; every response would be keyed anew"
        ))),
        (Some(_), None) => Err(WarehouseError::KeySecret(format!(
            "this warehouse's response keys were made with a secret that is not here: set {ENV} to it"
        ))),
        (None, _) if holds_rows(committed) => Err(WarehouseError::KeySecret(
            "this warehouse's response keys were made without a secret (by palaute before 0.2): run `palaute rekey` once to migrate them".into(),
        )),
        (None, secret) if !create => Ok(secret.unwrap_or_else(KeySecret::generate)),
        (None, secret) => {
            let s = match secret {
                Some(s) => s,
                None => {
                    let s = KeySecret::generate();
                    store(wh, &s).await?;
                    s
                }
            };
            mark(wh, &s).await?;
            Ok(s)
        }
    }
}

/// For `palaute rekey`: the secret to migrate the keys with (given, stored by an interrupted
/// migration, or new and stored now), or `None` when the warehouse's keys are keyed already.
pub async fn for_rekey(wh: &Warehouse) -> Result<Option<KeySecret>, WarehouseError> {
    if read(wh, CHECK).await?.is_some() {
        return Ok(None);
    }
    if let Some(s) = available(wh).await? {
        return Ok(Some(s));
    }
    let s = KeySecret::generate();
    store(wh, &s).await?;
    Ok(Some(s))
}

/// The migration committed: the warehouse's keys are made with `s` from now on.
pub async fn rekeyed(wh: &Warehouse, s: &KeySecret) -> Result<(), WarehouseError> {
    mark(wh, s).await
}
