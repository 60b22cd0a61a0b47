//! Report definitions (`pipelines/reports/*.yaml`): which areas, period type and languages, where
//! the pages go, and when — `palaute schedule` runs a definition like a pipeline, after the loads
//! it names, so that the interim reports appear every two months without anyone running a
//! command. Documented in docs/reports.md.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Area, ReportError, ReportOptions, data, html, labels::Labels};
use crate::config::Schedule;
use crate::marts::periods::PeriodType;
use crate::warehouse::Warehouse;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportDefinition {
    pub name: String,
    /// areas as LEVEL:CODE (`county:06`)
    #[serde(default)]
    pub areas: Vec<String>,
    /// every area of this level the marts hold for the period
    #[serde(default)]
    pub all: Option<String>,
    #[serde(default = "bimonth")]
    pub period_type: String,
    /// one fixed period (a one-off report); default: the last complete period of the type
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default = "fi")]
    pub languages: Vec<String>,
    #[serde(default = "national")]
    pub instrument: String,
    /// a folder (relative to this file) or an `s3://bucket/prefix`
    pub out: String,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// pipelines whose due loads run first
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(skip)]
    pub file: PathBuf,
}

fn bimonth() -> String {
    "bimonth".into()
}
fn fi() -> Vec<String> {
    vec!["fi".into()]
}
fn national() -> String {
    "thl_national".into()
}

impl ReportDefinition {
    pub fn load(path: &Path) -> Result<ReportDefinition, ReportError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ReportError::Usage(format!("{}: cannot read: {e}", path.display())))?;
        let mut d: ReportDefinition = crate::config::parse_reporting_every_unknown_key(&text)
            .map_err(|e| ReportError::Usage(format!("{}: {e}", path.display())))?;
        d.file = path.to_path_buf();
        let bad = |m: String| ReportError::Usage(format!("{}: {m}", path.display()));
        if d.areas.is_empty() == d.all.is_none() {
            return Err(bad("give `areas` or `all`, one of them".into()));
        }
        for a in &d.areas {
            a.parse::<Area>().map_err(bad)?;
        }
        if let Some(l) = &d.all
            && !data::LEVELS.contains(&l.as_str())
        {
            return Err(bad(format!("all: {l}: one of {}", data::LEVELS.join(", "))));
        }
        if PeriodType::parse(&d.period_type).is_none() {
            return Err(bad(format!(
                "period_type: {}: month, bimonth, quarter, half or year",
                d.period_type
            )));
        }
        for l in &d.languages {
            Labels::new(l).map_err(|e| bad(e.replace("--language", "languages:")))?;
        }
        if let Some(s) = &d.schedule {
            s.next_after(chrono::Utc::now())
                .map_err(|e| bad(format!("schedule: {e}")))?;
        }
        Ok(d)
    }
}

/// Write every report of a definition (the last complete period unless `period` is given), and
/// an index page per language. Returns the names written.
pub async fn run(
    wh: &Warehouse,
    d: &ReportDefinition,
    period: Option<String>,
    k: usize,
) -> Result<Vec<String>, ReportError> {
    let period_type = PeriodType::parse(&d.period_type).expect("validated");
    let base = d.file.parent().unwrap_or(Path::new("."));
    let loc = crate::store::Location::parse(&d.out, base, true)
        .map_err(|e| ReportError::Usage(format!("{}: out: {e}", d.file.display())))?;
    let period = period.or_else(|| d.period.clone());
    let mut written = Vec::new();
    for lang in &d.languages {
        let o = ReportOptions {
            instrument: d.instrument.clone(),
            period_type,
            period: period.clone(),
            language: lang.clone(),
            k,
        };
        let period = super::resolve_period(&o)?;
        let o = ReportOptions {
            period: Some(period.clone()),
            ..o
        };
        let areas: Vec<Area> = match &d.all {
            Some(level) => data::areas_of(wh, level, &d.instrument, period_type, &period)
                .await?
                .into_iter()
                .map(|code| Area {
                    level: level.clone(),
                    code,
                })
                .collect(),
            None => d
                .areas
                .iter()
                .map(|a| a.parse().expect("validated"))
                .collect(),
        };
        let l = Labels::new(lang).expect("validated");
        let mut links = String::new();
        for area in &areas {
            let r = super::render(wh, area, &o).await?;
            let stem = format!("{}-{}-{period}-{lang}", area.level, area.code);
            for (name, bytes) in [
                (format!("{stem}.html"), r.html.into_bytes()),
                (format!("{stem}.xlsx"), r.xlsx),
            ] {
                put(&loc, &name, bytes).await?;
                written.push(name);
            }
            links.push_str(&format!(
                "<li><a href=\"{stem}.html\">{}</a> (<a href=\"{stem}.xlsx\">XLSX</a>)</li>\n",
                html::esc(&l.area_name(area))
            ));
        }
        let index = format!(
            "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t} {period}</title>\n</head>\n<body>\n<main>\n<h1>{t} {period}</h1>\n<ul>\n{links}</ul>\n</main>\n</body>\n</html>\n",
            t = html::esc(&format!("{}: {}", l.t("index"), d.name))
        );
        let name = format!("index-{period}-{lang}.html");
        put(&loc, &name, index.into_bytes()).await?;
        written.push(name);
    }
    Ok(written)
}

async fn put(loc: &crate::store::Location, name: &str, bytes: Vec<u8>) -> Result<(), ReportError> {
    use object_store::ObjectStoreExt;
    loc.store
        .put(&loc.child(name), bytes.into())
        .await
        .map(|_| ())
        .map_err(|e| ReportError::Write {
            path: PathBuf::from(loc.display()).join(name),
            source: e.into(),
        })
}
