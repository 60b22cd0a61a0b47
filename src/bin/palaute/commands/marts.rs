//! The marts: `aggregate` and `audit-disclosure`.

use palaute::ops::aggregate::AggregateOptions;
use palaute::ops::exit;

use super::{open, with_lease};
use crate::args::{AggregateArgs, AuditDisclosureArgs};

/// `palaute aggregate`: compute the marts under the writer lease.
pub async fn aggregate(a: AggregateArgs) -> anyhow::Result<i32> {
    let wh = open(&a.w, false)?;
    let o = AggregateOptions {
        period_types: a.period_types,
        from: a.from,
        to: a.to,
        levels: a.levels,
        rules: a.disclosure.rules()?,
        adjustment: a.disclosure.adjustment()?,
        sql_cubes: a.sql_cubes,
        marts: a.marts,
        fresh_cubes: a.fresh_cubes,
    };
    with_lease(
        wh,
        "aggregate",
        async |wh| palaute::ops::aggregate::aggregate(wh, &o).await,
        |r| {
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print!("{}", palaute::ops::aggregate::render(&r));
            }
            Ok(())
        },
    )
    .await
}

/// `palaute audit-disclosure`: exit 5 when a suppressed value can be recovered.
pub async fn audit(a: AuditDisclosureArgs) -> anyhow::Result<i32> {
    let wh = open(&a.w, false)?;
    let r = palaute::ops::audit::audit(&wh).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", palaute::ops::audit::render(&r));
    }
    Ok(if r.passed() { 0 } else { exit::DISCLOSURE })
}
