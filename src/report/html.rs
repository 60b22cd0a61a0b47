//! The report as one self-contained HTML page: inline CSS and SVG, no script, no external
//! fetch; headings in order, every chart a figure with a caption, an SVG with `role="img"`,
//! `<title>` and `<desc>`, and its data table beside it; nothing told by colour alone.

use super::data::{Figure, ReportData, Share};
use super::labels::Labels;

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;background:#fff;max-width:60rem;margin:0 auto;padding:1.5rem;line-height:1.45}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:2px solid #1f4e79;padding-bottom:.2rem}
h3{font-size:1.05rem}.sub{color:#444;margin:0 0 1rem}
.cards{display:flex;flex-wrap:wrap;gap:1rem}.card{border:1px solid #767676;border-radius:6px;padding:.75rem 1rem;min-width:14rem;flex:1}
.card .big{font-size:1.8rem;font-weight:700}.card .nat{color:#333}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.95rem}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{border-bottom:1px solid #bbb;padding:.3rem .4rem;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.sup{font-style:italic;color:#333}.flag{font-weight:700}
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.25rem}
svg text{font-family:inherit;font-size:12px;fill:#1a1a1a}
.legend{font-size:.9rem;color:#222;border-left:4px solid #1f4e79;padding-left:.75rem}
footer{margin-top:2rem;font-size:.85rem;color:#333}
@media print{body{max-width:none;padding:0;font-size:10.5pt}h2{break-after:avoid}figure,table,.card{break-inside:avoid}a{color:inherit;text-decoration:none}}
"#;

const AREA: &str = "#1f4e79";
const NATION: &str = "#595959";

/// A figure as text: its value, or why there is none.
fn shown(fig: &Figure, l: &Labels, fmt: &dyn Fn(f64) -> String) -> String {
    match (&fig.suppression, fig.value) {
        (Some(why), _) => format!(
            "<span class=\"sup\">{}<sup>{}</sup></span>",
            l.t("suppressed"),
            mark(why)
        ),
        (None, Some(v)) => {
            let mut s = fmt(v);
            if fig.low_reliability {
                s.push_str("<sup class=\"flag\">*</sup>");
            }
            s
        }
        (None, None) => format!("<span class=\"sup\">{}</span>", l.t("no_answers")),
    }
}

fn mark(why: &str) -> &'static str {
    if why == "primary" { "a" } else { "b" }
}

fn data_attrs(mart: &str, key: &str, field: &str, fig: &Figure, v: Option<f64>) -> String {
    let mut s = format!(
        " data-mart=\"{mart}\" data-key=\"{}\" data-field=\"{field}\"",
        esc(key)
    );
    match (&fig.suppression, v) {
        (Some(why), _) => s.push_str(&format!(" data-suppressed=\"{why}\"")),
        (None, Some(v)) => s.push_str(&format!(" data-value=\"{v}\"")),
        _ => {}
    }
    s
}

fn significance(fig: &Figure, l: &Labels) -> String {
    compared(fig.diff_significant, fig.value, fig.nation, l)
}

/// The adjusted figure's comparison with the nation.
fn adjusted_significance(fig: &Figure, l: &Labels) -> String {
    compared(fig.adjusted_diff_significant, fig.adjusted, fig.nation, l)
}

fn compared(sig: Option<bool>, value: Option<f64>, nation: Option<f64>, l: &Labels) -> String {
    match (sig, value, nation) {
        (Some(true), Some(v), Some(n)) if v > n => format!("▲ {}", l.t("higher")),
        (Some(true), Some(_), Some(_)) => format!("▼ {}", l.t("lower")),
        (Some(false), ..) => l.t("no_difference").to_string(),
        _ => "–".to_string(),
    }
}

/// The whole page, top to bottom in the order it reads: the title, the headline cards, the
/// statements, the trend, coverage and multi-select shares, the legend and the method.
pub fn render(d: &ReportData, l: &Labels, k: usize) -> String {
    let mut h = String::new();
    h.push_str(&heading(d, l));
    h.push_str(&headline(d, l));
    h.push_str(&statements(d, l));
    h.push_str(&trend(d, l));
    h.push_str(&coverage(d, l));
    h.push_str(&legend_and_method(d, l, k));
    h.push_str(&format!(
        "</main>\n<footer><p>{}</p></footer>\n</body>\n</html>\n",
        esc(&l.t("footer"))
    ));
    h
}

/// The document's head (title, the inline style) and the page's title.
fn heading(d: &ReportData, l: &Labels) -> String {
    let area = l.area_name(&d.area);
    let mut h = String::new();
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        l.lang,
        esc(&format!("{} — {} {}", l.title(&area), l.period_name(d.period_type), d.period))
    ));
    h.push_str(&format!(
        "<h1>{}</h1>\n<p class=\"sub\">{} {} · {} · {}</p>\n",
        esc(&l.title(&area)),
        esc(l.period_name(d.period_type)),
        esc(&d.period),
        esc(&l.instrument_name(&d.instrument)),
        esc(&l.t("compared_with_nation"))
    ));

    h
}

/// The headline cards: responses, NPS with its interval and adjusted figure, the mean 0–10, each beside the nation's.
fn headline(d: &ReportData, l: &Labels) -> String {
    let npsf = |v: f64| l.signed(v);
    let mean = |v: f64| l.decimal(v, 1);
    let count = |v: f64| l.integer(v);
    let mut h = String::new();
    h.push_str(&format!(
        "<h2>{}</h2>\n<div class=\"cards\">\n",
        l.t("summary")
    ));
    h.push_str(&format!(
        "<div class=\"card\"><div>{}</div><div class=\"big\"{}>{}</div><div class=\"nat\">{}: {}</div></div>\n",
        l.t("responses"),
        data_attrs("response_counts", "total", "n_responses", &d.responses, d.responses.value),
        shown(&d.responses, l, &count),
        l.t("nation"),
        d.responses.nation.map(count).unwrap_or_else(|| "–".into())
    ));
    // the NPS card's adjusted figure, beside the raw one
    let nps_adjusted = match (&d.nps.suppression, d.nps.adjusted) {
        (None, Some(a)) => format!(
            "<div class=\"nat\">{}: {} · {}</div>",
            l.t("adjusted"),
            npsf(a),
            adjusted_significance(&d.nps, l)
        ),
        _ => String::new(),
    };
    h.push_str(&format!(
        "<div class=\"card\"><div>{}</div><div class=\"big\"{}>{}</div><div>{}</div><div class=\"nat\">{}: {} · {}</div>{nps_adjusted}</div>\n",
        l.t("nps"),
        data_attrs("recommendation", "nps", "nps", &d.nps, d.nps.value),
        shown(&d.nps, l, &npsf),
        match (&d.nps.suppression, d.nps.low, d.nps.high) {
            (None, Some(lo), Some(hi)) => format!("{} {} … {}", l.t("ci95"), npsf(lo), npsf(hi)),
            _ => String::new(),
        },
        l.t("nation"),
        d.nps.nation.map(npsf).unwrap_or_else(|| "–".into()),
        significance(&d.nps, l)
    ));

    h.push_str(&format!(
        "<div class=\"card\"><div>{}</div><div class=\"big\"{}>{}</div><div class=\"nat\">{}: {}</div></div>\n</div>\n",
        l.t("mean_recommend"),
        data_attrs("recommendation", "mean_recommend", "mean_recommend", &d.mean_recommend, d.mean_recommend.value),
        shown(&d.mean_recommend, l, &mean),
        l.t("nation"),
        d.mean_recommend.nation.map(mean).unwrap_or_else(|| "–".into())
    ));
    h.push_str(&format!("<p>{}</p>\n", esc(&l.t("nps_explained"))));

    h
}

/// The statements as a dot-and-whisker chart and a table, with the adjusted figures.
fn statements(d: &ReportData, l: &Labels) -> String {
    let pct = |v: f64| l.percent(v);
    let mut h = String::new();
    h.push_str(&format!("<h2>{}</h2>\n", l.t("statements")));
    if d.statements.is_empty() {
        h.push_str(&format!("<p>{}</p>\n", l.t("no_statements")));
    } else {
        h.push_str(&statements_chart(d, l));
        h.push_str(&format!(
            "<table>\n<caption>{}</caption>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"num\">{}</th><th scope=\"col\" class=\"num\">{}</th><th scope=\"col\" class=\"num\">{}</th><th scope=\"col\">{}</th><th scope=\"col\" class=\"num\">{}</th><th scope=\"col\">{}</th><th scope=\"col\" class=\"num\">n</th></tr></thead>\n<tbody>\n",
            l.t("statements_table"),
            l.t("statement"),
            l.t("share_agree"),
            l.t("ci95"),
            l.t("nation"),
            l.t("difference"),
            l.t("adjusted"),
            l.t("adjusted_difference")
        ));
        for st in &d.statements {
            let fig = &st.figure;
            h.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td class=\"num\"{}>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\"{}>{}</td><td>{}</td><td class=\"num\">{}</td></tr>\n",
                esc(&l.item_label(&d.instrument, &st.item)),
                data_attrs("item_scores", &st.item, "share_agree", fig, fig.value),
                shown(fig, l, &pct),
                match (&fig.suppression, fig.low, fig.high) {
                    (None, Some(lo), Some(hi)) => format!("{} … {}", pct(lo), pct(hi)),
                    _ => "–".into(),
                },
                fig.nation.map(pct).unwrap_or_else(|| "–".into()),
                significance(fig, l),
                data_attrs("item_scores", &st.item, "share_agree_adjusted", fig, fig.adjusted),
                match (&fig.suppression, fig.adjusted) {
                    (None, Some(a)) => pct(a),
                    _ => "–".into(),
                },
                adjusted_significance(fig, l),
                match (&fig.suppression, fig.n) {
                    (None, Some(n)) => l.integer(n as f64),
                    _ => "–".into(),
                }
            ));
        }
        h.push_str("</tbody>\n</table>\n");
        h.push_str(&format!("<p>{}</p>\n", esc(&l.t("adjusted_explained"))));
    }

    h
}

/// The NPS over the last periods, the area's beside the nation's, as a chart and a table.
fn trend(d: &ReportData, l: &Labels) -> String {
    let npsf = |v: f64| l.signed(v);
    let area = l.area_name(&d.area);
    let mut h = String::new();
    h.push_str(&format!("<h2>{}</h2>\n", l.t("trend")));
    h.push_str(&trend_chart(d, l));
    h.push_str(&format!(
        "<table>\n<caption>{}</caption>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"num\">{}</th><th scope=\"col\" class=\"num\">{}</th><th scope=\"col\" class=\"num\">n</th></tr></thead>\n<tbody>\n",
        l.t("trend_table"),
        l.period_name(d.period_type),
        esc(&area),
        l.t("nation"),
    ));
    for p in &d.trend {
        h.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td class=\"num\"{}>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            esc(&p.period),
            data_attrs("recommendation", &p.period, "nps", &p.area, p.area.value),
            shown(&p.area, l, &npsf),
            shown(&p.nation, l, &npsf),
            match (&p.area.suppression, p.area.n) {
                (None, Some(n)) => l.integer(n as f64),
                _ => "–".into(),
            }
        ));
    }
    h.push_str("</tbody>\n</table>\n");

    h
}

/// Who answered (channel, respondent role) and the multi-select items' shares.
fn coverage(d: &ReportData, l: &Labels) -> String {
    let pct = |v: f64| l.percent(v);
    let mut h = String::new();
    h.push_str(&format!("<h2>{}</h2>\n", l.t("coverage")));
    for group in ["channel", "respondent_role"] {
        let rows: Vec<&Share> = d.coverage.iter().filter(|s| s.group == group).collect();
        share_table(
            &mut h,
            l,
            &l.t(group),
            "response_counts",
            &rows,
            |s| l.code_label(group, &s.category),
            &pct,
        );
    }
    if !d.selections.is_empty() {
        h.push_str(&format!("<h3>{}</h3>\n", l.t("selections")));
        let mut items: Vec<&str> = d.selections.iter().map(|s| s.group.as_str()).collect();
        items.dedup();
        for item in items {
            let rows: Vec<&Share> = d.selections.iter().filter(|s| s.group == item).collect();
            share_table(
                &mut h,
                l,
                &l.item_label(&d.instrument, item),
                "selections",
                &rows,
                |s| l.option_label(&d.instrument, item, &s.category),
                &pct,
            );
        }
    }

    h
}

/// The legend of the marks and how the figures were made (with the ledger row they come from).
fn legend_and_method(d: &ReportData, l: &Labels, k: usize) -> String {
    let mut h = String::new();
    h.push_str(&format!(
        "<h2>{}</h2>\n<div class=\"legend\">\n<p><strong>{}</strong><sup>a</sup>: {}</p>\n<p><strong>{}</strong><sup>b</sup>: {}</p>\n<p><sup class=\"flag\">*</sup> {}</p>\n<p>▲ / ▼: {}</p>\n</div>\n",
        l.t("legend"),
        l.t("suppressed"),
        esc(&l.t("primary").replace("{k}", &k.to_string())),
        l.t("suppressed"),
        esc(&l.t("secondary")),
        esc(&l.t("low_reliability")),
        esc(&l.t("significance"))
    ));
    h.push_str(&format!(
        "<h2>{}</h2>\n<ul>\n<li>{}</li>\n<li>{}</li>\n<li>{}</li>\n<li>{}</li>\n<li>{}</li>\n</ul>\n",
        l.t("method"),
        esc(&l.t("method_scales")),
        esc(&l.t("method_denominator")),
        esc(&l.t("method_test")),
        esc(&l.t("method_k").replace("{k}", &k.to_string())),
        esc(&l.t("method_version")
            .replace("{seq}", &d.seq.to_string())
            .replace("{as_of}", &d.as_of.format("%Y-%m-%d %H:%M UTC").to_string()))
    ));
    h
}

fn share_table(
    h: &mut String,
    l: &Labels,
    caption: &str,
    mart: &str,
    rows: &[&Share],
    label: impl Fn(&Share) -> String,
    pct: &dyn Fn(f64) -> String,
) {
    if rows.is_empty() {
        return;
    }
    h.push_str(&format!(
        "<table>\n<caption>{}</caption>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\" class=\"num\">{}</th><th scope=\"col\" class=\"num\">n</th></tr></thead>\n<tbody>\n",
        esc(caption),
        l.t("category"),
        l.t("share"),
    ));
    for s in rows {
        let fig = Figure {
            value: s.share,
            n: s.n,
            low_reliability: s.low_reliability,
            suppression: s.suppression.clone(),
            ..Figure::default()
        };
        h.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td class=\"num\"{}>{}</td><td class=\"num\">{}</td></tr>\n",
            esc(&label(s)),
            data_attrs(mart, &format!("{}/{}", s.group, s.category), "share", &fig, fig.value),
            shown(&fig, l, pct),
            match (&fig.suppression, fig.n) {
                (None, Some(n)) => l.integer(n as f64),
                _ => "–".into(),
            }
        ));
    }
    h.push_str("</tbody>\n</table>\n");
}

/// Dot-and-whisker: each statement's share agreeing with its interval (a circle), the nation's
/// figure (a diamond); significance is said in the table beside it, in words.
fn statements_chart(d: &ReportData, l: &Labels) -> String {
    let (left, width, row) = (250.0, 360.0, 30.0);
    let height = 40.0 + row * d.statements.len() as f64;
    let x = |v: f64| left + v.clamp(0.0, 1.0) * width;
    let mut s = format!(
        "<figure>\n<figcaption>{}</figcaption>\n<svg role=\"img\" aria-labelledby=\"st-title st-desc\" viewBox=\"0 0 {} {height}\" width=\"100%\">\n<title id=\"st-title\">{}</title>\n<desc id=\"st-desc\">{}</desc>\n",
        l.t("statements_chart"),
        left + width + 30.0,
        l.t("statements_chart"),
        esc(&l.t("statements_desc"))
    );
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        s.push_str(&format!(
            "<line x1=\"{0}\" x2=\"{0}\" y1=\"20\" y2=\"{1}\" stroke=\"#ccc\"/><text x=\"{0}\" y=\"14\" text-anchor=\"middle\">{2}</text>\n",
            x(t),
            height - 10.0,
            l.percent_short(t)
        ));
    }
    for (i, st) in d.statements.iter().enumerate() {
        let y = 35.0 + row * i as f64;
        let mut label = l.item_label(&d.instrument, &st.item);
        if label.chars().count() > 38 {
            label = label.chars().take(37).collect::<String>() + "…";
        }
        s.push_str(&format!(
            "<text x=\"0\" y=\"{}\">{}</text>\n",
            y + 4.0,
            esc(&label)
        ));
        let f = &st.figure;
        if let Some(n) = f.nation {
            s.push_str(&format!(
                "<path d=\"M{0} {1} l6 6 l-6 6 l-6 -6 z\" fill=\"#fff\" stroke=\"{NATION}\" stroke-width=\"2\"/>\n",
                x(n),
                y - 6.0
            ));
        }
        match (&f.suppression, f.value) {
            (Some(_), _) | (None, None) => s.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" font-style=\"italic\">{}</text>\n",
                left + 4.0,
                y + 4.0,
                l.t("suppressed")
            )),
            (None, Some(v)) => {
                if let (Some(lo), Some(hi)) = (f.low, f.high) {
                    s.push_str(&format!(
                        "<line x1=\"{}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{AREA}\" stroke-width=\"2\"/>\n",
                        x(lo),
                        x(hi)
                    ));
                }
                s.push_str(&format!(
                    "<circle cx=\"{}\" cy=\"{y}\" r=\"5\" fill=\"{AREA}\"/>\n",
                    x(v)
                ));
            }
        }
    }
    s.push_str("</svg>\n");
    s.push_str(&format!(
        "<p class=\"legend\">● {} ({}) · ◇ {}</p>\n</figure>\n",
        esc(&l.area_name(&d.area)),
        l.t("ci95"),
        l.t("nation")
    ));
    s
}

/// NPS over the last periods: the area solid with circles, the nation dashed with diamonds.
fn trend_chart(d: &ReportData, l: &Labels) -> String {
    let (left, width, top, height) = (40.0, 520.0, 20.0, 200.0);
    let n = d.trend.len().max(1);
    let x = |i: usize| {
        left + if n == 1 {
            width / 2.0
        } else {
            width * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| top + (100.0 - v.clamp(-100.0, 100.0)) / 200.0 * height;
    let mut s = format!(
        "<figure>\n<figcaption>{}</figcaption>\n<svg role=\"img\" aria-labelledby=\"tr-title tr-desc\" viewBox=\"0 0 {} {}\" width=\"100%\">\n<title id=\"tr-title\">{}</title>\n<desc id=\"tr-desc\">{}</desc>\n",
        l.t("trend_chart"),
        left + width + 40.0,
        top + height + 40.0,
        l.t("trend_chart"),
        esc(&l.t("trend_desc"))
    );
    for v in [-100.0, -50.0, 0.0, 50.0, 100.0] {
        s.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{right}\" y1=\"{yv}\" y2=\"{yv}\" stroke=\"#ccc\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\n",
            right = left + width,
            yv = y(v),
            tx = left - 6.0,
            ty = y(v) + 4.0,
            label = l.signed(v)
        ));
    }
    let mut area_pts = Vec::new();
    let mut nation_pts = Vec::new();
    for (i, p) in d.trend.iter().enumerate() {
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            x(i),
            top + height + 20.0,
            esc(&p.period)
        ));
        if let (None, Some(v)) = (&p.area.suppression, p.area.value) {
            area_pts.push((x(i), y(v)));
        } else {
            s.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-style=\"italic\">{}</text>\n",
                x(i),
                top + height - 6.0,
                l.t("suppressed")
            ));
        }
        if let (None, Some(v)) = (&p.nation.suppression, p.nation.value) {
            nation_pts.push((x(i), y(v)));
        }
    }
    let path = |pts: &[(f64, f64)]| {
        pts.iter()
            .enumerate()
            .map(|(i, (a, b))| format!("{}{a:.1} {b:.1}", if i == 0 { "M" } else { " L" }))
            .collect::<String>()
    };
    if nation_pts.len() > 1 {
        s.push_str(&format!(
            "<path d=\"{}\" fill=\"none\" stroke=\"{NATION}\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n",
            path(&nation_pts)
        ));
    }
    for (a, b) in &nation_pts {
        s.push_str(&format!(
            "<path d=\"M{a} {} l6 6 l-6 6 l-6 -6 z\" fill=\"#fff\" stroke=\"{NATION}\" stroke-width=\"2\"/>\n",
            b - 6.0
        ));
    }
    if area_pts.len() > 1 {
        s.push_str(&format!(
            "<path d=\"{}\" fill=\"none\" stroke=\"{AREA}\" stroke-width=\"2.5\"/>\n",
            path(&area_pts)
        ));
    }
    for (a, b) in &area_pts {
        s.push_str(&format!(
            "<circle cx=\"{a}\" cy=\"{b}\" r=\"5\" fill=\"{AREA}\"/>\n"
        ));
    }
    s.push_str("</svg>\n");
    s.push_str(&format!(
        "<p class=\"legend\">● — {} · ◇ - - {}</p>\n</figure>\n",
        esc(&l.area_name(&d.area)),
        l.t("nation")
    ));
    s
}
