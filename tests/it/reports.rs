//! Interim reports (issue 18): `palaute report` through the CLI on a generated warehouse of
//! several counties and on a tiny local survey; the figures in the page compared with the marts
//! through `palaute sql`; rendered by a real browser (Chromium headless) and checked with
//! axe-core at WCAG 2.1 AA.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::{Fixture, needs, palaute};

/// A warehouse of `rows` generated national-layout responses (every county), with its marts.
fn national(f: &Fixture, rows: u32) -> String {
    let p = crate::common::bench_export(f, rows, 7, "export");
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    f.warehouse()
}

/// Every `data-…` attribute set of the page's figures: (mart, key, field) → value or
/// "suppressed:WHY".
fn figures(html: &str) -> BTreeMap<(String, String, String), String> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let j = tag[i..].find('"')? + i;
        Some(tag[i..j].to_string())
    };
    let mut out = BTreeMap::new();
    for piece in html.split('<').skip(1) {
        let tag = piece.split('>').next().unwrap_or("");
        let (Some(m), Some(k), Some(f)) = (
            attr(tag, "data-mart"),
            attr(tag, "data-key"),
            attr(tag, "data-field"),
        ) else {
            continue;
        };
        let v = attr(tag, "data-value")
            .or_else(|| attr(tag, "data-suppressed").map(|w| format!("suppressed:{w}")))
            .unwrap_or_default();
        out.insert((m, k, f), v);
    }
    out
}

fn close(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}

fn report(wh: &str, args: &[&str]) -> crate::common::Ran {
    let mut v = vec!["report", "--warehouse", wh];
    v.extend_from_slice(args);
    palaute(&v, &[])
}

#[test]
fn a_county_report_shows_the_marts_figures_with_suppression_said_and_no_external_fetch() {
    let f = Fixture::new();
    let wh = national(&f, 4000);
    // the latest two-month period, and the county with most responses in it
    let rows = f.sql(
        "SELECT period, geo_code, n_responses FROM response_counts WHERE period_type = 'bimonth' \
         AND geo_level = 'county' AND service = 'all' AND breakdown = 'total' AND instrument = 'thl_national' \
         AND n_responses IS NOT NULL ORDER BY period DESC, n_responses DESC LIMIT 1",
    );
    let period = rows[0]["period"].as_str().unwrap().to_string();
    let county = rows[0]["geo_code"].as_str().unwrap().to_string();
    let out = f.path("r/county.html");
    let r = report(
        &wh,
        &[
            "--area",
            &format!("county:{county}"),
            "--period",
            &period,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>\n<html lang=\"fi\">"),
        "{}",
        &html[..80]
    );
    assert!(!html.contains("http:") && !html.contains("https:") && !html.contains("<script"));
    // every statement's share agreeing is the mart's, suppressed where the mart suppressed it
    let figs = figures(&html);
    let marts = f.sql(&format!(
        "SELECT item_code, share_agree, suppression FROM item_scores WHERE period_type = 'bimonth' \
         AND period = '{period}' AND geo_level = 'county' AND geo_code = '{county}' AND service = 'all' \
         AND instrument = 'thl_national' ORDER BY item_code"
    ));
    assert!(marts.len() >= 5, "{marts:?}");
    for m in &marts {
        let item = m["item_code"].as_str().unwrap();
        let want = match m["suppression"].as_str() {
            Some(why) => format!("suppressed:{why}"),
            None => m["share_agree"].to_string(),
        };
        let got = &figs[&(
            "item_scores".to_string(),
            item.to_string(),
            "share_agree".to_string(),
        )];
        assert!(close(got, &want), "{item}: page {got}, mart {want}");
    }
    let nps = f.sql(&format!(
        "SELECT nps, suppression FROM recommendation WHERE period_type = 'bimonth' AND period = '{period}' \
         AND geo_level = 'county' AND geo_code = '{county}' AND service = 'all' AND instrument = 'thl_national'"
    ));
    let got = &figs[&(
        "recommendation".to_string(),
        "nps".to_string(),
        "nps".to_string(),
    )];
    assert!(
        close(got, &nps[0]["nps"].to_string()),
        "page {got}, mart {:?}",
        nps[0]
    );
    // the mean of 0–10 is named as a mean, never as NPS
    assert!(html.contains("Suosittelun keskiarvo (0–10)"));
    // a suppressed cell of the coverage tables is shown as suppressed, with its reason in the legend
    let suppressed = f.sql(&format!(
        "SELECT breakdown, category, suppression FROM response_counts WHERE period_type = 'bimonth' \
         AND period = '{period}' AND geo_level = 'county' AND geo_code = '{county}' AND service = 'all' \
         AND instrument = 'thl_national' AND breakdown IN ('channel', 'respondent_role') AND suppression IS NOT NULL"
    ));
    for s in &suppressed {
        let key = format!(
            "{}/{}",
            s["breakdown"].as_str().unwrap(),
            s["category"].as_str().unwrap()
        );
        let got = &figs[&(
            "response_counts".to_string(),
            key.clone(),
            "share".to_string(),
        )];
        assert_eq!(
            got,
            &format!("suppressed:{}", s["suppression"].as_str().unwrap()),
            "{key}"
        );
    }
    assert!(html.contains("alle 5 vastausta"));
    // Swedish and English pages, and the workbook beside each
    for lang in ["sv", "en"] {
        let p = f.path(&format!("r/county-{lang}.html"));
        let r = report(
            &wh,
            &[
                "--area",
                &format!("county:{county}"),
                "--period",
                &period,
                "--language",
                lang,
                "--out",
                p.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let h = std::fs::read_to_string(&p).unwrap();
        assert!(h.contains(&format!("<html lang=\"{lang}\">")));
        assert_eq!(figures(&h), figs, "{lang}: the same figures");
        let x = std::fs::read(p.with_extension("xlsx")).unwrap();
        assert!(x.starts_with(b"PK"), "an XLSX (zip) file");
    }
    // one per county with an index page
    let dir = f.path("all");
    let r = report(
        &wh,
        &[
            "--all",
            "county",
            "--period",
            &period,
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let n_counties = f.sql(&format!(
        "SELECT count(DISTINCT geo_code) AS n FROM response_counts WHERE period_type = 'bimonth' AND period = '{period}' \
         AND geo_level = 'county' AND geo_code <> 'unknown' AND instrument = 'thl_national'"
    ))[0]["n"]
        .as_i64()
        .unwrap();
    assert_eq!(index.matches("<li>").count() as i64, n_counties, "{index}");
    // a wrong area or period says so
    let r = report(
        &wh,
        &[
            "--area",
            "county:77",
            "--period",
            &period,
            "--out",
            f.path("x.html").to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no county 77"), "{}", r.stderr);
    let r = report(
        &wh,
        &[
            "--area",
            "county:06",
            "--period",
            "2025-Q2",
            "--out",
            f.path("x.html").to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);

    browser_checks(&f, &out);
}

#[test]
fn a_tiny_local_survey_publishes_nothing_under_k() {
    let f = Fixture::new();
    // 15 responses of one project: 12 in Lahti, 3 in Hollola
    let mut csv = String::from("id,time,kunta,q1,q2,nps\n");
    for i in 0..15 {
        let kunta = if i < 12 { "398" } else { "098" };
        csv.push_str(&format!(
            "{i},2025-03-{:02},{kunta},{},{},{}\n",
            1 + i,
            1 + i % 5,
            1 + (i + 2) % 5,
            i % 11
        ));
    }
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline(
        "",
        "mapping:\n  instrument: thl_national\n  version: 2\n  response_id: id\n  submitted_at: time\n  municipality: kunta\n  items:\n    availability: q1\n    encounter: q2\n    recommend: nps\n",
    );
    assert_eq!(f.run(&p).code, 0);
    let out = f.path("hollola.html");
    let r = report(
        &f.warehouse(),
        &[
            "--area",
            "municipality:098",
            "--period",
            "2025-B2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let html = std::fs::read_to_string(&out).unwrap();
    let figs = figures(&html);
    assert!(!figs.is_empty());
    // every figure of the 3 responses' municipality is suppressed: none has a value
    for ((mart, key, field), v) in &figs {
        assert!(v.starts_with("suppressed:"), "{mart} {key} {field} = {v}");
    }
    assert!(html.contains("Hollola"), "the area is named");
}

/// Render the page in Chromium (a screenshot and a PDF) and run axe-core on it at WCAG 2.1 AA.
fn browser_checks(f: &Fixture, page: &Path) {
    let Some(v) = needs(
        &["PALAUTE_TEST_CHROMIUM", "PALAUTE_TEST_AXE"],
        "Chromium and axe-core (.ci/run installs Debian's chromium and npm's axe-core)",
    ) else {
        return;
    };
    let (chromium, axe) = (PathBuf::from(&v[0]), PathBuf::from(&v[1]));
    let run = |args: &[String]| {
        let o = std::process::Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
            ])
            .args(args)
            .output()
            .expect("chromium runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o
    };
    let url = format!("file://{}", page.display());
    let png = f.path("report.png");
    let pdf = f.path("report.pdf");
    run(&[
        format!("--screenshot={}", png.display()),
        "--window-size=1280,2400".into(),
        url.clone(),
    ]);
    run(&[
        format!("--print-to-pdf={}", pdf.display()),
        "--no-pdf-header-footer".into(),
        url,
    ]);
    let png_bytes = std::fs::read(&png).expect("a screenshot");
    assert!(
        png_bytes.starts_with(b"\x89PNG") && png_bytes.len() > 20_000,
        "{}",
        png_bytes.len()
    );
    let pdf_bytes = std::fs::read(&pdf).expect("a PDF");
    assert!(pdf_bytes.starts_with(b"%PDF"));
    if let Ok(keep) = std::env::var("PALAUTE_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
    // axe-core in the page itself, its verdict written into the DOM
    let html = std::fs::read_to_string(page).unwrap();
    let axe_js = std::fs::read_to_string(axe).unwrap();
    let runner = "<script>axe.run(document,{runOnly:{type:'tag',values:['wcag2a','wcag2aa','wcag21a','wcag21aa']}}).then(function(r){var p=document.createElement('pre');p.id='axe-result';p.textContent=JSON.stringify({violations:r.violations.map(function(v){return {id:v.id,help:v.help,nodes:v.nodes.map(function(n){return n.html;}).slice(0,3)};}),passes:r.passes.length});document.body.appendChild(p);});</script>";
    let checked = html.replace(
        "</body>",
        &format!("<script>{axe_js}</script>{runner}</body>"),
    );
    let with_axe = f.path("axe.html");
    std::fs::write(&with_axe, checked).unwrap();
    let o = run(&[
        "--virtual-time-budget=30000".into(),
        "--dump-dom".into(),
        format!("file://{}", with_axe.display()),
    ]);
    let dom = String::from_utf8_lossy(&o.stdout);
    let i = dom.find("<pre id=\"axe-result\">").expect("axe ran") + "<pre id=\"axe-result\">".len();
    let j = dom[i..].find("</pre>").unwrap() + i;
    let result: serde_json::Value = serde_json::from_str(
        &dom[i..j]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
    .unwrap();
    assert!(result["passes"].as_i64().unwrap() > 10, "{result}");
    assert_eq!(
        result["violations"],
        serde_json::json!([]),
        "WCAG AA violations: {result}"
    );
}

#[test]
fn a_report_definition_writes_its_areas_and_languages_and_is_checked_like_a_pipeline() {
    let f = Fixture::new();
    let wh = national(&f, 1500);
    let period = f.sql(
        "SELECT max(period) AS p FROM recommendation WHERE period_type = 'quarter' AND geo_level = 'nation'",
    )[0]["p"]
        .as_str()
        .unwrap()
        .to_string();
    let def = f.path("reports/q.yaml");
    std::fs::create_dir_all(def.parent().unwrap()).unwrap();
    std::fs::write(
        &def,
        "name: quarterly\nall: cooperation_area\nperiod_type: quarter\nlanguages: [fi, en]\nout: ../out\nschedule:\n  cron: \"0 0 7 1 1,4,7,10 *\"\n",
    )
    .unwrap();
    let r = report(
        &wh,
        &["--definition", def.to_str().unwrap(), "--period", &period],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let areas = f.sql(&format!(
        "SELECT count(DISTINCT geo_code) AS n FROM response_counts WHERE period_type = 'quarter' AND period = '{period}' \
         AND geo_level = 'cooperation_area' AND geo_code <> 'unknown' AND instrument = 'thl_national'"
    ))[0]["n"]
        .as_i64()
        .unwrap() as usize;
    let out = f.path("out");
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    // a page and a workbook per area and language, and an index per language
    assert_eq!(files.len(), areas * 2 * 2 + 2, "{files:?}");
    assert!(
        files.contains(&format!("index-{period}-en.html")),
        "{files:?}"
    );
    let en = std::fs::read_to_string(out.join(format!("index-{period}-en.html"))).unwrap();
    assert_eq!(en.matches("<li>").count(), areas);
    // a misspelt key is named with its line, as in a pipeline
    std::fs::write(
        &def,
        "name: q\nareas: [\"county:06\"]\nlangauges: [fi]\nout: x\n",
    )
    .unwrap();
    let r = report(&wh, &["--definition", def.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("line 3 column 1: unknown key `langauges` — did you mean `languages`?"),
        "{}",
        r.stderr
    );
}
