//! One function per command, grouped by the users' tasks: loading, the marts, maintenance,
//! queries, what is published, and tools.

pub mod load;
pub mod maintain;
pub mod marts;
pub mod publish;
pub mod query;
pub mod tools;

use palaute::config;
use palaute::ops::exit;
use palaute::warehouse::lease::Lease;
use palaute::warehouse::{Warehouse, WarehouseError};

use crate::args::WarehouseArg;

/// Open the warehouse the arguments name (`create`: make it if it does not exist).
fn open(w: &WarehouseArg, create: bool) -> Result<Warehouse, WarehouseError> {
    Warehouse::open(&config::resolve_warehouse(w.warehouse.as_deref()), create)
}

/// Take the warehouse's writer lease, or the exit code to stop with. The warehouse returned
/// commits only while the lease is held (it is fenced by it).
async fn writer_lease(wh: Warehouse, purpose: &str) -> Result<(Warehouse, Lease), i32> {
    match Lease::acquire(&wh, purpose).await {
        Ok(l) => Ok((wh.fenced(l.fence()), l)),
        Err(e) => {
            say("", &e);
            Err(exit::code_of(&e))
        }
    }
}

/// Run `op` on the warehouse holding its writer lease, released afterwards; the exit code to
/// stop with when another holds it.
async fn leased<T>(
    wh: Warehouse,
    purpose: &str,
    op: impl AsyncFnOnce(&Warehouse) -> T,
) -> Result<T, i32> {
    let (wh, lease) = writer_lease(wh, purpose).await?;
    let result = op(&wh).await;
    lease.release().await;
    Ok(result)
}

/// A command that writes: `op` under the writer lease (exit 6 when another holds it), its
/// outcome shown or said under the lease's purpose.
async fn with_lease<T, E: std::error::Error + 'static>(
    wh: Warehouse,
    purpose: &str,
    op: impl AsyncFnOnce(&Warehouse) -> Result<T, E>,
    show: impl FnOnce(T) -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    match leased(wh, purpose, op).await {
        Ok(result) => finish(purpose, result, show),
        Err(code) => Ok(code),
    }
}

/// A command's outcome: on success `show` prints the result (exit 0), else the error is said
/// and its exit code returned.
fn finish<T, E: std::error::Error + 'static>(
    context: &str,
    result: Result<T, E>,
    show: impl FnOnce(T) -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    match result {
        Ok(r) => {
            show(r)?;
            Ok(0)
        }
        Err(e) => {
            say(context, &e);
            Ok(exit::code_of(&e))
        }
    }
}

/// Print an error that ended (part of) a command, its causes once each, no backtrace.
pub fn say(context: &str, e: &(dyn std::error::Error + 'static)) {
    tracing::debug!(error = ?e, "{context} failed");
    if context.is_empty() {
        eprintln!("palaute: {}", exit::render(e));
    } else {
        eprintln!("palaute: {context}: {}", exit::render(e));
    }
}
