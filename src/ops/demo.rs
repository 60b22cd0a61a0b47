//! `palaute demo`: generate the demo exports, run the demo pipelines twice around a new cumulative
//! export, and show what the warehouse holds. No server, no credentials, no network.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::load_pipeline;
use crate::demo::{GenError, county, feedback, project};
use crate::warehouse::Warehouse;

use super::run::{RunError, RunOptions, render_summary, run_pipeline};
use super::sql::{self, SqlError};

const COUNTY_YAML: &str = include_str!("../../pipelines/demo_county.yaml");
const PROJECT_YAML: &str = include_str!("../../pipelines/demo_project.yaml");
const FEEDBACK_YAML: &str = include_str!("../../pipelines/demo_feedback.yaml");
const NATION_YAML: &str = include_str!("../../pipelines/demo_nation.yaml");
/// Responses of the national reference (every county, the demo county's four months).
pub const NATION_ROWS: usize = 3000;
/// Responses per month in the demo county's survey.
pub const PER_MONTH: usize = 150;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Gen(#[from] GenError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Aggregate(#[from] super::aggregate::AggregateError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Warehouse(#[from] crate::warehouse::WarehouseError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Write the demo's exports and pipeline files under `dir` (exports of the first `months` months).
pub fn generate(dir: &Path, seed: u64, months: usize) -> Result<(), DemoError> {
    for m in 0..months {
        county::write_export(&dir.join("exports/county"), seed, m, PER_MONTH)?;
    }
    project::write(&dir.join("exports/project"), seed)?;
    feedback::write(&dir.join("exports/feedback"), seed)?;
    {
        use chrono::TimeZone;
        let start = chrono_tz::Europe::Helsinki
            .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .expect("valid");
        // January–April 2025
        crate::demo::bench_data::write_between(
            &dir.join("exports/nation/vertailu_2025-01_2025-04.csv"),
            NATION_ROWS,
            seed,
            start,
            120 * 24 * 60,
        )?;
    }
    let pdir = dir.join("pipelines");
    std::fs::create_dir_all(&pdir).map_err(|e| DemoError::Io(pdir.display().to_string(), e))?;
    for (name, text) in [
        ("demo_county.yaml", COUNTY_YAML),
        ("demo_project.yaml", PROJECT_YAML),
        ("demo_feedback.yaml", FEEDBACK_YAML),
        ("demo_nation.yaml", NATION_YAML),
    ] {
        let t = text.replace("location: ../demo/exports/", "location: ../exports/");
        let p = pdir.join(name);
        std::fs::write(&p, t).map_err(|e| DemoError::Io(p.display().to_string(), e))?;
    }
    Ok(())
}

async fn table(wh: &Warehouse, q: &str) -> Result<String, DemoError> {
    let b = sql::query(wh, q).await?;
    Ok(arrow::util::pretty::pretty_format_batches(&b)
        .map(|t| t.to_string())
        .unwrap_or_default())
}

/// Run the whole demo; returns what it prints.
pub async fn run(dir: &Path, seed: u64) -> Result<String, DemoError> {
    for sub in ["exports", "warehouse", "pipelines"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(|e| DemoError::Io(p.display().to_string(), e))?;
        }
    }
    let mut out = String::new();
    generate(dir, seed, 3)?;
    let wh_dir: PathBuf = dir.join("warehouse");
    let wh = Warehouse::open(&wh_dir.display().to_string(), true)?;
    let county = load_pipeline(&dir.join("pipelines/demo_county.yaml"))?;
    let project = load_pipeline(&dir.join("pipelines/demo_project.yaml"))?;
    let feedback = load_pipeline(&dir.join("pipelines/demo_feedback.yaml"))?;
    let nation = load_pipeline(&dir.join("pipelines/demo_nation.yaml"))?;
    let opts = RunOptions {
        dry_run: false,
        progress: true,
        ..RunOptions::default()
    };
    let _ = writeln!(out, "palaute demo in {}\n", dir.display());
    let _ = writeln!(
        out,
        "1. First load: three monthly cumulative exports of the county survey, the project survey, the county's spontaneous feedback (an Excel export), and a national reference of every county to compare with"
    );
    out.push_str(&render_summary(&run_pipeline(&wh, &county, &opts).await?));
    out.push_str(&render_summary(&run_pipeline(&wh, &project, &opts).await?));
    out.push_str(&render_summary(&run_pipeline(&wh, &feedback, &opts).await?));
    out.push_str(&render_summary(&run_pipeline(&wh, &nation, &opts).await?));

    let _ = writeln!(
        out,
        "\n2. The survey tool delivers April's cumulative export (all responses to date; one response was edited at the source)"
    );
    county::write_export(&dir.join("exports/county"), seed, 3, PER_MONTH)?;
    out.push_str(&render_summary(&run_pipeline(&wh, &county, &opts).await?));

    let _ = writeln!(out, "\n3. Run again: nothing new");
    out.push_str(&render_summary(&run_pipeline(&wh, &county, &opts).await?));
    out.push_str(&render_summary(&run_pipeline(&wh, &project, &opts).await?));

    let _ = writeln!(
        out,
        "\n4. The warehouse (palaute sql --warehouse {} \"…\")",
        wh_dir.display()
    );
    out.push_str(&table(&wh, "SELECT pipeline, period, county, count(*) AS responses, round(avg(nps), 2) AS mean_recommend_0_10 FROM responses GROUP BY pipeline, period, county ORDER BY pipeline, period, county").await?);
    out.push('\n');
    out.push_str(&table(&wh, "SELECT a.item_code, a.status, count(*) AS answers FROM answers a JOIN responses r ON a.response_key = r.response_key WHERE r.instrument = 'thl_national' AND a.item_code = 'availability' GROUP BY a.item_code, a.status ORDER BY a.status").await?);
    out.push('\n');
    out.push_str(
        &table(
            &wh,
            "SELECT reason_codes, source_object, source_row FROM quarantine ORDER BY source_row",
        )
        .await?,
    );
    out.push('\n');
    out.push_str(&table(&wh, "SELECT redaction_kinds, count(*) AS comments, sum(redactions) AS redactions FROM comments WHERE redactions > 0 GROUP BY redaction_kinds ORDER BY redaction_kinds").await?);
    out.push('\n');
    out.push_str(&table(&wh, "SELECT field, text FROM comments WHERE redactions > 0 ORDER BY response_key, field LIMIT 3").await?);
    out.push('\n');
    out.push_str(&table(&wh, "SELECT feedback_type, count(*) AS feedback, sum(CASE WHEN contact_requested THEN 1 ELSE 0 END) AS contact_requested, sum(redactions) AS redactions FROM feedback GROUP BY feedback_type ORDER BY feedback_type").await?);
    out.push('\n');
    let _ = writeln!(
        out,
        "5. Comparison marts with disclosure control (palaute aggregate; k = 5)"
    );
    let agg =
        super::aggregate::aggregate(&wh, &super::aggregate::AggregateOptions::default()).await?;
    out.push_str(&super::aggregate::render(&agg));
    out.push('\n');
    out.push_str(&table(&wh, "SELECT period, geo_level, geo_code, item_code, n_answered, round(share_agree * 100, 1) AS agree_pct, round(share_agree_ci_low * 100, 1) AS ci_low, round(share_agree_ci_high * 100, 1) AS ci_high, round(national_share_agree * 100, 1) AS nation_pct, share_agree_diff_significant AS differs, round(share_agree_adjusted * 100, 1) AS adjusted_pct, share_agree_adjusted_diff_significant AS adj_differs FROM item_scores WHERE period_type = 'bimonth' AND service = 'all' AND geo_level = 'county' AND instrument = 'thl_national' AND item_code IN ('availability', 'encounter') ORDER BY period, geo_code, item_code").await?);
    out.push('\n');
    out.push_str(&table(&wh, "SELECT period, geo_level, geo_code, n_answered, round(nps, 1) AS nps, round(nps_ci_low, 1) AS nps_ci_low, round(nps_ci_high, 1) AS nps_ci_high, round(mean_recommend, 2) AS mean_0_10, round(national_nps, 1) AS nation_nps FROM recommendation WHERE period_type = 'bimonth' AND service = 'all' AND geo_level IN ('county', 'nation') AND instrument = 'thl_national' ORDER BY period, geo_level, geo_code").await?);
    out.push('\n');
    out.push_str(&table(&wh, "SELECT geo_level, count(*) AS cells, sum(CASE WHEN suppression = 'primary' THEN 1 ELSE 0 END) AS primary_supp, sum(CASE WHEN suppression = 'secondary' THEN 1 ELSE 0 END) AS secondary_supp, sum(CASE WHEN suppression = 'cascade' THEN 1 ELSE 0 END) AS cascade_supp FROM item_scores WHERE period_type = 'bimonth' GROUP BY geo_level ORDER BY geo_level").await?);
    out.push('\n');
    let audit = super::audit::audit(&wh).await?;
    out.push_str(&super::audit::render(&audit));
    out.push('\n');
    let _ = writeln!(out, "Try: palaute history --warehouse {}", wh_dir.display());
    let _ = writeln!(
        out,
        "     palaute report --warehouse {} --area county:09 --period 2025-B2 --out {}",
        wh_dir.display(),
        dir.join("reports/paijat-hame-2025-B2.html").display()
    );
    Ok(out)
}
