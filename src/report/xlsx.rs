//! The report's tables as a workbook, for planners who work on in a spreadsheet: the same
//! figures, suppressed ones written as the word, never as a blank or a zero.

use rust_xlsxwriter::{Format, Workbook};

use super::data::{Figure, ReportData};
use super::labels::Labels;

fn cell(
    ws: &mut rust_xlsxwriter::Worksheet,
    r: u32,
    c: u16,
    fig: &Figure,
    l: &Labels,
) -> Result<(), String> {
    let e = |e: rust_xlsxwriter::XlsxError| e.to_string();
    match (&fig.suppression, fig.value) {
        (Some(why), _) => ws
            .write_string(r, c, format!("{} ({why})", l.t("suppressed")))
            .map_err(e)?,
        (None, Some(v)) => ws.write_number(r, c, v).map_err(e)?,
        (None, None) => ws.write_string(r, c, l.t("no_answers")).map_err(e)?,
    };
    Ok(())
}

pub fn workbook(d: &ReportData, l: &Labels) -> Result<Vec<u8>, String> {
    let e = |e: rust_xlsxwriter::XlsxError| e.to_string();
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    {
        let ws = wb.add_worksheet();
        ws.set_name(l.t("summary")).map_err(e)?;
        for (c, h) in ["", &l.area_name(&d.area), &l.t("nation")]
            .iter()
            .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *h, &bold)
                .map_err(e)?;
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
            ws.write_string(r, 0, name).map_err(e)?;
            cell(ws, r, 1, fig, l)?;
            if let Some(n) = fig.nation {
                ws.write_number(r, 2, n).map_err(e)?;
            }
        }
        ws.write_string(
            5,
            0,
            format!("{} {}", l.period_name(d.period_type), d.period),
        )
        .map_err(e)?;
    }
    {
        let ws = wb.add_worksheet();
        ws.set_name(l.t("share_agree")).map_err(e)?;
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
            ws.write_string_with_format(0, c as u16, h, &bold)
                .map_err(e)?;
        }
        for (i, st) in d.statements.iter().enumerate() {
            let r = i as u32 + 1;
            let f = &st.figure;
            ws.write_string(r, 0, l.item_label(&d.instrument, &st.item))
                .map_err(e)?;
            cell(ws, r, 1, f, l)?;
            if f.suppression.is_none() {
                if let (Some(lo), Some(hi)) = (f.low, f.high) {
                    ws.write_number(r, 2, lo).map_err(e)?;
                    ws.write_number(r, 3, hi).map_err(e)?;
                }
                if let Some(n) = f.n {
                    ws.write_number(r, 6, n as f64).map_err(e)?;
                }
            }
            if let Some(n) = f.nation {
                ws.write_number(r, 4, n).map_err(e)?;
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
            ws.write_string(r, 5, sig).map_err(e)?;
            if f.suppression.is_none()
                && let Some(a) = f.adjusted
            {
                ws.write_number(r, 7, a).map_err(e)?;
                let sig = match f.adjusted_diff_significant {
                    Some(true) if f.nation.is_some_and(|n| a > n) => l.t("higher"),
                    Some(true) => l.t("lower"),
                    Some(false) => l.t("no_difference"),
                    None => String::new(),
                };
                ws.write_string(r, 8, sig).map_err(e)?;
            }
        }
    }
    {
        let ws = wb.add_worksheet();
        ws.set_name(l.t("trend")).map_err(e)?;
        for (c, h) in [
            l.period_name(d.period_type).to_string(),
            l.area_name(&d.area),
            l.t("nation"),
        ]
        .iter()
        .enumerate()
        {
            ws.write_string_with_format(0, c as u16, h, &bold)
                .map_err(e)?;
        }
        for (i, p) in d.trend.iter().enumerate() {
            let r = i as u32 + 1;
            ws.write_string(r, 0, &p.period).map_err(e)?;
            cell(ws, r, 1, &p.area, l)?;
            cell(ws, r, 2, &p.nation, l)?;
        }
    }
    {
        let ws = wb.add_worksheet();
        ws.set_name(l.t("coverage")).map_err(e)?;
        for (c, h) in ["", &l.t("category"), &l.t("share"), "n"]
            .iter()
            .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *h, &bold)
                .map_err(e)?;
        }
        for (i, s) in d.coverage.iter().chain(&d.selections).enumerate() {
            let r = i as u32 + 1;
            ws.write_string(r, 0, &s.group).map_err(e)?;
            ws.write_string(r, 1, &s.category).map_err(e)?;
            let fig = Figure {
                value: s.share,
                suppression: s.suppression.clone(),
                ..Figure::default()
            };
            cell(ws, r, 2, &fig, l)?;
            if let (None, Some(n)) = (&s.suppression, s.n) {
                ws.write_number(r, 3, n as f64).map_err(e)?;
            }
        }
    }
    wb.save_to_buffer().map_err(e)
}
