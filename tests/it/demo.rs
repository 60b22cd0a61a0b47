//! `palaute demo` on a fresh folder: what the README promises.

use crate::common::{palaute, s};

#[test]
fn demo_shows_quarantine_dedupe_and_scrubbing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let r = palaute(&["demo", "--dir", d.to_str().unwrap()], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = &r.stdout;
    // first load: 3 exports of 150, 300 and 450 rows; 446 distinct good rows, 4 broken
    assert!(
        out.contains("rows: 900 read, 446 new, 0 updated, 450 duplicate, 4 quarantined"),
        "{out}"
    );
    assert!(
        out.contains("county_mismatch 1, invalid_time 1, out_of_range 1, unknown_municipality 1"),
        "{out}"
    );
    // April's cumulative export: 150 new, the edited response updated, the rest duplicates
    assert!(
        out.contains("rows: 600 read, 150 new, 1 updated, 449 duplicate, 0 quarantined"),
        "{out}"
    );
    assert!(out.contains("no_change"), "{out}");
    assert!(
        out.contains("[email]") || out.contains("[phone]") || out.contains("[hetu]"),
        "{out}"
    );
    // the warehouse agrees, read through palaute sql
    let wh = d.join("warehouse");
    let q = palaute(
        &[
            "sql",
            "--warehouse",
            wh.to_str().unwrap(),
            "--format",
            "json",
            "SELECT pipeline, count(*) AS n FROM responses GROUP BY pipeline ORDER BY pipeline",
        ],
        &[],
    );
    assert_eq!(q.code, 0, "{}", q.stderr);
    let v: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str::<serde_json::Value>(&q.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_object().unwrap().clone())
            .collect();
    assert_eq!(s(&v[0], "pipeline"), Some("demo_county"));
    assert_eq!(v[0]["n"].as_i64(), Some(596));
    // the national reference: every county, so that the county is compared with a real nation
    assert_eq!(s(&v[1], "pipeline"), Some("demo_nation"));
    assert!(v[1]["n"].as_i64().unwrap() > 2900, "{v:?}");
    assert_eq!(s(&v[2], "pipeline"), Some("demo_project"));
    let n_project = v[2]["n"].as_i64().unwrap();
    assert!((15..=200).contains(&n_project));
    // no comment still holds an e-mail address or a phone number
    let c = palaute(
        &[
            "sql",
            "--warehouse",
            wh.to_str().unwrap(),
            "--format",
            "csv",
            "SELECT text FROM comments",
        ],
        &[],
    );
    assert!(
        !c.stdout.contains("@example.fi"),
        "an e-mail address survived"
    );
    assert!(!c.stdout.contains("Soittakaa 0"), "a phone number survived");
    // the marts: region vs nation, and the audit finds nothing to recover in any of them
    assert!(out.contains("5. Comparison marts"), "{out}");
    assert!(
        out.contains("no suppressed value can be recovered by differencing"),
        "{out}"
    );
    let a = palaute(
        &[
            "audit-disclosure",
            "--warehouse",
            wh.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(a.code, 0, "{}", a.stdout);
    let v: serde_json::Value = serde_json::from_str(&a.stdout).unwrap();
    assert_eq!(v["marts"].as_array().unwrap().len(), 4);
    assert!(
        v["suppressed"].as_u64().unwrap() > 0,
        "the demo has small cells"
    );
    // spontaneous feedback from an Excel export: typed, one mistyped row quarantined, contact
    // details reduced to a flag
    let fb = palaute(
        &[
            "sql",
            "--warehouse",
            wh.to_str().unwrap(),
            "--format",
            "json",
            "SELECT count(*) AS n, sum(CASE WHEN contact_requested THEN 1 ELSE 0 END) AS contact, count(DISTINCT feedback_type) AS types FROM feedback",
        ],
        &[],
    );
    assert_eq!(fb.code, 0, "{}", fb.stderr);
    let v: serde_json::Value = serde_json::from_str(&fb.stdout).unwrap();
    let n = v[0]["n"].as_i64().unwrap();
    assert!((49..=79).contains(&n), "{v}");
    assert!(v[0]["contact"].as_i64().unwrap() > 0, "{v}");
    assert_eq!(v[0]["types"].as_i64(), Some(4));
    assert!(out.contains("demo_feedback"), "{out}");
    for file in crate::common::files_under(&wh) {
        let b = std::fs::read(&file).unwrap();
        for secret in [&b"Esimerkki"[..], b"palaute1", b"@example.fi"] {
            assert!(
                !b.windows(secret.len()).any(|w| w == secret),
                "{} holds {}",
                file.display(),
                String::from_utf8_lossy(secret)
            );
        }
    }
    // history lists the seven runs and the aggregation
    let h = palaute(&["history", "--warehouse", wh.to_str().unwrap()], &[]);
    let runs = h
        .stdout
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(runs, 8, "{}", h.stdout);
    assert_eq!(
        h.stdout
            .lines()
            .filter(|l| l.contains(" aggregate "))
            .count(),
        1,
        "{}",
        h.stdout
    );
    // the demo county's interim report compares it with a nation of every county
    let page = d.join("reports/c09.html");
    let r = palaute(
        &[
            "report",
            "--warehouse",
            wh.to_str().unwrap(),
            "--area",
            "county:09",
            "--period",
            "2025-B2",
            "--out",
            page.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Päijät-Hämeen hyvinvointialue"), "{html}");
    let nation = html
        .split("Koko maa: ")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .map(|s| s.replace('\u{a0}', ""))
        .and_then(|s| s.parse::<i64>().ok())
        .expect("the nation's responses");
    assert!(nation > 1000, "{nation}");
    assert!(html.contains("merkitsev"), "a comparison is made: {html}");
}
