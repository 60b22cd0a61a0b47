//! The runner of the table-driven cases in `cases.yaml`: each case's mapping compiled for its
//! header, each row through the head and the body, the outcome compared with what the case says.

use std::collections::BTreeMap;

use csv::ByteRecord;
use serde::Deserialize;

use super::{Body, Head, Normalizer, Problem, Status};
use crate::schema::Catalog;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    case: String,
    mapping: String,
    header: Vec<String>,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    rows: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    row: Vec<String>,
    head: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    answers: Option<Vec<String>>,
    texts: Option<Vec<String>>,
    quarantined: Option<Vec<String>>,
}

/// The case's pipeline: its mapping over a folder of CSV files.
fn pipeline(case: &Case) -> crate::config::Pipeline {
    let mapping: String = case.mapping.lines().map(|l| format!("  {l}\n")).collect();
    let text = format!(
        "name: cases\nsource:\n  kind: files\n  location: in\n  glob: \"*.csv\"\n  system: test\n  survey: s1\nmapping:\n{mapping}"
    );
    crate::config::parse_pipeline(&text, std::path::Path::new("cases.yaml"))
        .unwrap_or_else(|e| panic!("case '{}': its pipeline: {e}", case.case))
}

fn problems(ps: &[Problem]) -> Vec<String> {
    ps.iter()
        .map(|p| match &p.column {
            Some(c) => format!("{} {c}", p.code),
            None => p.code.to_string(),
        })
        .collect()
}

fn head_text(h: &Head) -> String {
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    format!(
        "{} {} {} {}",
        h.partition.period,
        h.partition.county,
        or_dash(&h.municipality),
        or_dash(&h.cooperation_area)
    )
}

fn answers(norm: &Normalizer, b: &Body) -> Vec<String> {
    b.answers
        .iter()
        .map(|a| {
            let item = norm.item_code(a.item);
            let mut s = match (a.option, a.value, a.status) {
                (Some(o), _, _) => format!("{item}.{}", norm.option_code(a.item, o)),
                (None, Some(v), Status::Answered) => format!("{item} = {v}"),
                (None, Some(v), st) => format!("{item} = {v} {}", st.as_str()),
                (None, None, st) => format!("{item} {}", st.as_str()),
            };
            if let Some(raw) = &a.raw {
                s.push_str(&format!(" (raw {raw})"));
            }
            s
        })
        .collect()
}

fn field(b: &Body, name: &str) -> String {
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    match name {
        "channel" => or_dash(&b.channel),
        "language" => or_dash(&b.language),
        "age_group" => or_dash(&b.age_group),
        "gender" => or_dash(&b.gender),
        "service" => or_dash(&b.service),
        "local_area" => or_dash(&b.local_area),
        "org_unit" => or_dash(&b.org_unit),
        "respondent_role" => or_dash(&b.respondent_role),
        "feedback_type" => or_dash(&b.feedback_type),
        "completion" => b.completion.to_string(),
        "contact_requested" => b.contact_requested.to_string(),
        "nps" => b.nps.map_or("-".into(), |n| n.to_string()),
        other => panic!("cases.yaml names no body field '{other}'"),
    }
}

/// One row's outcome against what the case says; the differences, described.
fn check_row(norm: &Normalizer, r: &Row) -> Vec<String> {
    let rec = ByteRecord::from(r.row.clone());
    let mut out = Vec::new();
    let mapped = norm
        .head(&rec)
        .and_then(|h| norm.body(&rec, &h).map(|b| (h, b)));
    let (head, body) = match (mapped, &r.quarantined) {
        (Err(ps), Some(want)) => {
            if problems(&ps) != *want {
                out.push(format!("quarantined {:?}, not {want:?}", problems(&ps)));
            }
            return out;
        }
        (Err(ps), None) => return vec![format!("quarantined {:?}", problems(&ps))],
        (Ok(_), Some(want)) => return vec![format!("mapped, not quarantined {want:?}")],
        (Ok(hb), None) => hb,
    };
    if let Some(want) = &r.head
        && head_text(&head) != *want
    {
        out.push(format!("head '{}', not '{want}'", head_text(&head)));
    }
    for (name, want) in &r.fields {
        let got = field(&body, name);
        if got != *want {
            out.push(format!("{name} '{got}', not '{want}'"));
        }
    }
    if let Some(want) = &r.answers
        && answers(norm, &body) != *want
    {
        out.push(format!("answers {:?}, not {want:?}", answers(norm, &body)));
    }
    if let Some(want) = &r.texts {
        let got: Vec<String> = body
            .texts
            .iter()
            .map(|(i, t)| format!("{}: {t}", norm.item_code(*i)))
            .collect();
        if got != *want {
            out.push(format!("texts {got:?}, not {want:?}"));
        }
    }
    out
}

#[test]
fn every_case_of_cases_yaml_maps_or_quarantines_its_rows_as_it_says() {
    let cases: Vec<Case> =
        serde_yaml::from_str(include_str!("cases.yaml")).expect("cases.yaml parses");
    assert!(cases.len() >= 10, "cases.yaml has its cases");
    let mut failures = Vec::new();
    for case in &cases {
        let p = pipeline(case);
        let compiled = Normalizer::new(&p, Catalog::embedded(), &case.header, "cases.csv", None);
        let norm = match (compiled, case.errors.is_empty()) {
            (Ok(n), true) => n,
            (Ok(_), false) => {
                failures.push(format!("{}: compiled, not refused", case.case));
                continue;
            }
            (Err(errs), want_ok) => {
                let all = errs.join("; ");
                if want_ok {
                    failures.push(format!("{}: refused: {all}", case.case));
                }
                for e in &case.errors {
                    if !all.contains(e.as_str()) {
                        failures.push(format!("{}: no error '{e}' in: {all}", case.case));
                    }
                }
                continue;
            }
        };
        for (i, r) in case.rows.iter().enumerate() {
            for d in check_row(&norm, r) {
                failures.push(format!("{}: row {} {:?}: {d}", case.case, i + 1, r.row));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
