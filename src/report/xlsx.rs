//! The report's tables as a workbook, for planners who work on in a spreadsheet: the same
//! figures, suppressed ones written as the word, never as a blank or a zero.

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::data::{Figure, ReportData};
use super::labels::Labels;

/// A figure's cell: its value, the word for suppressed with the reason, or the words for no
/// answers.
fn cell(ws: &mut Worksheet, r: u32, c: u16, fig: &Figure, l: &Labels) -> Result<(), XlsxError> {
    match (&fig.suppression, fig.value) {
        (Some(why), _) => ws.write_string(r, c, format!("{} ({why})", l.t("suppressed")))?,
        (None, Some(v)) => ws.write_number(r, c, v)?,
        (None, None) => ws.write_string(r, c, l.t("no_answers"))?,
    };
    Ok(())
}

/// The workbook: the summary, the statements, the trend and the coverage, a sheet each.
pub fn workbook(d: &ReportData, l: &Labels) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    summary(wb.add_worksheet(), d, l, &bold)?;
    statements(wb.add_worksheet(), d, l, &bold)?;
    trend(wb.add_worksheet(), d, l, &bold)?;
    coverage(wb.add_worksheet(), d, l, &bold)?;
    wb.save_to_buffer()
}

/// The headline figures beside the nation's, and the period.
fn summary(ws: &mut Worksheet, d: &ReportData, l: &Labels, bold: &Format) -> Result<(), XlsxError> {
    ws.set_name(l.t("summary"))?;
    for (c, h) in ["", &l.area_name(&d.area), &l.t("nation")]
        .iter()
        .enumerate()
    {
        ws.write_string_with_format(0, c as u16, *h, bold)?;
    }
    for (r, (name, fig)) in [
        (l.t("responses"), &d.responses),
        (l.t("nps"), &d.nps),
        (l.t("mean_recommend"), &d.mean_recommend),
    ]
    .into_iter()
    .enumerate()
    {
        let r = r as u32 + 1;
        ws.write_string(r, 0, name)?;
        cell(ws, r, 1, fig, l)?;
        if let Some(n) = fig.nation {
            ws.write_number(r, 2, n)?;
        }
    }
    ws.write_string(
        5,
        0,
        format!("{} {}", l.period_name(d.period_type), d.period),
    )?;
    Ok(())
}

/// Each statement's share agreeing, its interval, the nation's, the difference and the
/// adjusted figure.
fn statements(
    ws: &mut Worksheet,
    d: &ReportData,
    l: &Labels,
    bold: &Format,
) -> Result<(), XlsxError> {
    ws.set_name(l.t("share_agree"))?;
    for (c, h) in [
        l.t("statement"),
        l.t("share_agree"),
        "CI low".into(),
        "CI high".into(),
        l.t("nation"),
        l.t("difference"),
        "n".into(),
        l.t("adjusted"),
        l.t("adjusted_difference"),
    ]
    .iter()
    .enumerate()
    {
        ws.write_string_with_format(0, c as u16, h, bold)?;
    }
    for (i, st) in d.statements.iter().enumerate() {
        let r = i as u32 + 1;
        let f = &st.figure;
        ws.write_string(r, 0, l.item_label(&d.instrument, &st.item))?;
        cell(ws, r, 1, f, l)?;
        if f.suppression.is_none() {
            if let (Some(lo), Some(hi)) = (f.low, f.high) {
                ws.write_number(r, 2, lo)?;
                ws.write_number(r, 3, hi)?;
            }
            if let Some(n) = f.n {
                ws.write_number(r, 6, n as f64)?;
            }
        }
        if let Some(n) = f.nation {
            ws.write_number(r, 4, n)?;
        }
        let sig = match f.diff_significant {
            Some(true) => {
                if f.value > f.nation {
                    l.t("higher")
                } else {
                    l.t("lower")
                }
            }
            Some(false) => l.t("no_difference"),
            None => String::new(),
        };
        ws.write_string(r, 5, sig)?;
        if f.suppression.is_none()
            && let Some(a) = f.adjusted
        {
            ws.write_number(r, 7, a)?;
            let sig = match f.adjusted_diff_significant {
                Some(true) if f.nation.is_some_and(|n| a > n) => l.t("higher"),
                Some(true) => l.t("lower"),
                Some(false) => l.t("no_difference"),
                None => String::new(),
            };
            ws.write_string(r, 8, sig)?;
        }
    }
    Ok(())
}

/// The NPS of the last periods, the area's and the nation's.
fn trend(ws: &mut Worksheet, d: &ReportData, l: &Labels, bold: &Format) -> Result<(), XlsxError> {
    ws.set_name(l.t("trend"))?;
    for (c, h) in [
        l.period_name(d.period_type).to_string(),
        l.area_name(&d.area),
        l.t("nation"),
    ]
    .iter()
    .enumerate()
    {
        ws.write_string_with_format(0, c as u16, h, bold)?;
    }
    for (i, p) in d.trend.iter().enumerate() {
        let r = i as u32 + 1;
        ws.write_string(r, 0, &p.period)?;
        cell(ws, r, 1, &p.area, l)?;
        cell(ws, r, 2, &p.nation, l)?;
    }
    Ok(())
}

/// The coverage and multi-select shares, each with its n.
fn coverage(
    ws: &mut Worksheet,
    d: &ReportData,
    l: &Labels,
    bold: &Format,
) -> Result<(), XlsxError> {
    ws.set_name(l.t("coverage"))?;
    for (c, h) in ["", &l.t("category"), &l.t("share"), "n"]
        .iter()
        .enumerate()
    {
        ws.write_string_with_format(0, c as u16, *h, bold)?;
    }
    for (i, s) in d.coverage.iter().chain(&d.selections).enumerate() {
        let r = i as u32 + 1;
        ws.write_string(r, 0, &s.group)?;
        ws.write_string(r, 1, &s.category)?;
        let fig = Figure {
            value: s.share,
            suppression: s.suppression.clone(),
            ..Figure::default()
        };
        cell(ws, r, 2, &fig, l)?;
        if let (None, Some(n)) = (&s.suppression, s.n) {
            ws.write_number(r, 3, n as f64)?;
        }
    }
    Ok(())
}
