//! `palaute report`: the interim report of an area against the nation, as one self-contained,
//! accessible HTML page (with an XLSX companion of its tables), read only from the published
//! marts.
//!
//! Plan, then execute: the area, period and language are resolved, the figures read
//! ([`data::read`]), the page and workbook rendered in memory ([`html::render`], [`xlsx`]), and
//! only then written.

pub mod data;
pub mod definition;
pub mod html;
pub mod labels;
pub mod xlsx;

use std::path::{Path, PathBuf};

use crate::marts::periods::PeriodType;
use crate::warehouse::{Warehouse, WarehouseError};
pub use data::Area;
use labels::Labels;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Usage(String),
    /// the marts hold nothing for what was asked
    #[error("{0}")]
    Empty(String),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Sql(#[from] crate::ops::sql::SqlError),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: crate::Cause,
    },
}

impl ReportError {
    pub fn exit_code(&self) -> i32 {
        use crate::ops::exit;
        match self {
            ReportError::Usage(_) | ReportError::Empty(_) => exit::CONFIG,
            ReportError::Warehouse(e) => e.exit_code(),
            ReportError::Sql(e) => e.exit_code(),
            ReportError::Write { .. } => exit::ENVIRONMENT,
        }
    }
}

/// What one `palaute report` makes.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub instrument: String,
    pub period_type: PeriodType,
    /// `None`: the last complete period of the type
    pub period: Option<String>,
    pub language: String,
    /// k of the marts' disclosure control, named in the legend
    pub k: usize,
}

/// The period a report is for: the one given (checked against the type), else the last
/// complete one.
pub fn resolve_period(o: &ReportOptions) -> Result<String, ReportError> {
    match &o.period {
        Some(p) if data::is_period_of(o.period_type, p) => Ok(p.clone()),
        Some(p) => Err(ReportError::Usage(format!(
            "--period {p}: not a {} period (e.g. {})",
            o.period_type.as_str(),
            o.period_type.label(2025, 3)
        ))),
        None => Ok(data::last_complete(
            o.period_type,
            chrono::Utc::now().date_naive(),
        )),
    }
}

/// One report, rendered: the page and its workbook.
pub struct Rendered {
    pub html: String,
    pub xlsx: Vec<u8>,
    pub title: String,
}

pub async fn render(
    wh: &Warehouse,
    area: &Area,
    o: &ReportOptions,
) -> Result<Rendered, ReportError> {
    let l = Labels::new(&o.language).map_err(ReportError::Usage)?;
    let period = resolve_period(o)?;
    let d = data::read(wh, area, &o.instrument, o.period_type, &period).await?;
    let html = html::render(&d, &l, o.k);
    let xlsx = xlsx::workbook(&d, &l).map_err(|e| ReportError::Write {
        path: PathBuf::from("(workbook)"),
        source: e.into(),
    })?;
    Ok(Rendered {
        html,
        xlsx,
        title: format!("{} — {period}", l.area_name(area)),
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let err = |e: std::io::Error| ReportError::Write {
        path: path.to_path_buf(),
        source: e.into(),
    };
    if let Some(p) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).map_err(err)?;
    }
    // written beside and renamed, so that a reader never sees half a page
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Write one report to `out` (`.html`) and its workbook beside it (`.xlsx`).
pub async fn one(
    wh: &Warehouse,
    area: &Area,
    o: &ReportOptions,
    out: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    let r = render(wh, area, o).await?;
    let xlsx = out.with_extension("xlsx");
    write(out, r.html.as_bytes())?;
    write(&xlsx, &r.xlsx)?;
    Ok(vec![out.to_path_buf(), xlsx])
}

/// Write one report per area of `level` into `dir`, with an index page.
pub async fn all(
    wh: &Warehouse,
    level: &str,
    o: &ReportOptions,
    dir: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    if !data::LEVELS.contains(&level) {
        return Err(ReportError::Usage(format!(
            "--all {level}: one of {}",
            data::LEVELS.join(", ")
        )));
    }
    let l = Labels::new(&o.language).map_err(ReportError::Usage)?;
    let period = resolve_period(o)?;
    let codes = data::areas_of(wh, level, &o.instrument, o.period_type, &period).await?;
    if codes.is_empty() {
        return Err(ReportError::Empty(format!(
            "the marts have no {level} of {} for {} {period}",
            o.instrument,
            o.period_type.as_str()
        )));
    }
    let fixed = ReportOptions {
        period: Some(period.clone()),
        ..o.clone()
    };
    let mut written = Vec::new();
    let mut links = String::new();
    for code in codes {
        let area = Area {
            level: level.to_string(),
            code: code.clone(),
        };
        let file = format!("{level}-{code}-{period}-{}.html", o.language);
        written.extend(one(wh, &area, &fixed, &dir.join(&file)).await?);
        links.push_str(&format!(
            "<li><a href=\"{}\">{}</a> (<a href=\"{}\">XLSX</a>)</li>\n",
            html::esc(&file),
            html::esc(&l.area_name(&area)),
            html::esc(&file.replace(".html", ".xlsx"))
        ));
    }
    let index = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{} {period}</title>\n</head>\n<body>\n<main>\n<h1>{} {period}</h1>\n<ul>\n{links}</ul>\n</main>\n</body>\n</html>\n",
        l.lang,
        html::esc(&l.t("index")),
        html::esc(&l.t("index"))
    );
    let path = dir.join("index.html");
    write(&path, index.as_bytes())?;
    written.push(path);
    Ok(written)
}
