//! What planners and researchers receive: `report` and `extract`.

use std::path::PathBuf;

use palaute::ops::exit;
use palaute::report::{Area, ReportError, ReportOptions, definition};

use super::{finish, open, with_lease};
use crate::args::{ExtractArgs, ExtractCmd, ReportArgs, ServeArgs, ServeCmd};

/// `palaute report`: one area's report, every area of a level, or a report definition's.
pub async fn report(a: ReportArgs) -> anyhow::Result<i32> {
    let wh = open(&a.w, false)?;
    let Some(period_type) = palaute::marts::periods::PeriodType::parse(&a.period_type) else {
        eprintln!(
            "palaute: report: --period-type {}: month, bimonth, quarter, half or year",
            a.period_type
        );
        return Ok(exit::CONFIG);
    };
    let o = ReportOptions {
        instrument: a.instrument,
        period_type,
        period: a.period,
        language: a.language,
        k: a.min_n as usize,
    };
    let lines = |names: Vec<String>| {
        for n in names {
            println!("{n}");
        }
        Ok(())
    };
    if let Some(file) = a.definition {
        let result = match definition::ReportDefinition::load(&file) {
            Ok(d) => definition::run(&wh, &d, o.period.clone(), o.k).await,
            Err(e) => Err(e),
        };
        return finish("report", result, lines);
    }
    let result = match (a.area, a.all) {
        (Some(area), _) => match area.parse::<Area>() {
            Ok(area) => {
                let out = a.out.unwrap_or_else(|| {
                    PathBuf::from(format!("report-{}-{}.html", area.level, area.code))
                });
                palaute::report::one(&wh, &area, &o, &out).await
            }
            Err(e) => Err(ReportError::Usage(e)),
        },
        (None, Some(level)) => {
            let dir = a.out.unwrap_or_else(|| PathBuf::from("reports"));
            palaute::report::all(&wh, &level, &o, &dir).await
        }
        (None, None) => unreachable!("clap requires one"),
    };
    finish("report", result, |files| {
        lines(files.iter().map(|f| f.display().to_string()).collect())
    })
}

/// `palaute extract`: write a researcher's package, or `extract verify` one.
pub async fn extract(a: ExtractArgs) -> anyhow::Result<i32> {
    if let Some(ExtractCmd::Verify {
        w,
        dir,
        secret_file,
    }) = a.verify
    {
        let wh = open(&w, false)?;
        let result = palaute::extract::verify(&wh, &dir, secret_file.as_deref()).await;
        return finish("extract verify", result, |lines| {
            for l in lines {
                println!("{l}");
            }
            println!("{}: identical to what the warehouse gives", dir.display());
            Ok(())
        });
    }
    let (spec, out) = (a.spec.expect("required"), a.out.expect("required"));
    let wh = open(&a.w, false)?;
    with_lease(
        wh,
        "extract",
        async |wh| palaute::extract::run(wh, &spec, &out).await,
        |r| {
            print!("{}", palaute::extract::summary(&r, &out));
            Ok(())
        },
    )
    .await
}

/// `palaute serve`: the warehouse over HTTP until SIGTERM; `serve hash-password` the access
/// file's line for a secret.
pub async fn serve(a: ServeArgs) -> anyhow::Result<i32> {
    use palaute::serve::{ServeOptions, hash_line, secrets, serve, session::Limits};
    if let Some(ServeCmd::HashPassword(h)) = a.action {
        if let Some(user) = h.new_for {
            let token = secrets::new_token(&user);
            println!("bearer token (give it to {user}; it is not stored): {token}");
            println!("{}", hash_line(&token, true));
            return Ok(0);
        }
        let mut secret = String::new();
        std::io::stdin().read_line(&mut secret)?;
        let secret = secret.trim_end_matches(['\r', '\n']);
        if secret.is_empty() {
            eprintln!("palaute: no secret on standard input");
            return Ok(exit::CONFIG);
        }
        println!("{}", hash_line(secret, h.token));
        return Ok(0);
    }
    let wh = open(&a.w, false)?;
    let o = ServeOptions {
        access: a.access.expect("required"),
        http: a.http,
        pg: a.pg,
        tls_cert: a.tls_cert,
        tls_key: a.tls_key,
        max_connections: a.max_connections,
        max_queries: a.max_queries,
        limits: Limits {
            query_time: std::time::Duration::from_secs(a.query_seconds.max(1)),
            query_memory: a.query_memory_mib.max(1) << 20,
        },
        refresh: std::time::Duration::from_secs_f64(a.refresh_seconds.max(0.1)),
    };
    serve(wh, o).await?;
    Ok(0)
}
