//! Maintenance under the writer lease: `optimize`, `rekey`, `rollback` and `vacuum`.

use palaute::ops::rollback::{Target, rollback as roll_back};

use super::{open, with_lease};
use crate::args::{OptimizeArgs, RekeyArgs, RollbackArgs, VacuumArgs};

/// `palaute optimize`: compact each partition into one file.
pub async fn optimize(a: OptimizeArgs) -> anyhow::Result<i32> {
    let wh = open(&a.w, false)?;
    with_lease(
        wh,
        "optimize",
        async |wh| palaute::ops::optimize::optimize(wh).await,
        |r| {
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print!("{}", palaute::ops::optimize::render(&r));
            }
            Ok(())
        },
    )
    .await
}

/// `palaute rekey`: key the response keys of an old warehouse with its secret.
pub async fn rekey(a: RekeyArgs) -> anyhow::Result<i32> {
    let wh = open(&a.w, false)?;
    with_lease(wh, "rekey", async |wh| {
        palaute::ops::optimize::rekey(wh).await
    }, |r| {
        match r {
            Some(r) => {
                let rows: u64 = r.tables.values().map(|t| t.rows_rewritten).sum();
                println!(
                    "rekey {}: {rows} rows' keys now keyed with the warehouse's secret ({:.1} s)",
                    r.run_id, r.seconds
                );
            }
            None => println!("the warehouse's response keys are keyed already: nothing to do"),
        }
        Ok(())
    })
    .await
}

/// `palaute rollback`: restore every table to an earlier ledger row's versions.
pub async fn rollback(a: RollbackArgs) -> anyhow::Result<i32> {
    let wh = open(&a.w, false)?;
    let target = match (a.to_run, a.to_version) {
        (Some(r), _) => Target::Run(r),
        (None, Some(v)) => Target::Seq(v),
        (None, None) => unreachable!("clap requires one"),
    };
    with_lease(
        wh,
        "rollback",
        async |wh| roll_back(wh, &target).await,
        |r| {
            println!(
                "rolled back to seq {} (run {}): {} tables restored",
                r.to_seq,
                r.to_run,
                r.restored.len()
            );
            Ok(())
        },
    )
    .await
}

/// `palaute vacuum`: delete files no version within the retention needs.
pub async fn vacuum(a: VacuumArgs) -> anyhow::Result<i32> {
    let wh = open(&a.w, false)?;
    let (retention, force) = (a.retention, a.force);
    with_lease(
        wh,
        "vacuum",
        async |wh| palaute::ops::vacuum::vacuum(wh, retention, force).await,
        |r| {
            println!(
                "vacuum (retention {} h): {} files deleted",
                r.retention_hours,
                r.deleted.values().sum::<usize>()
            );
            Ok(())
        },
    )
    .await
}
