//! Real exports (issue 22, continued): conflicting rows with one id, sources without ids,
//! mixed-order dates, long one-row-per-question exports, exports without dates, own items of
//! other scales and age bands that are not the national ones.

use crate::common::{Fixture, int_str, s};

/// A Google Forms export: no id column, the time stamp to the second, written month-first.
const FORMS_MAPPING: &str = r#"mapping:
  instrument: thl_national
  version: 2
  response_id: Timestamp
  submitted_at: Timestamp
  municipality: Kunta
  items:
    availability: Saatavuus
    encounter: Kohtelu
    recommend: Suosittelu
"#;

fn forms_rows(n: usize) -> String {
    let mut csv = String::from("Timestamp,Kunta,Saatavuus,Kohtelu,Suosittelu\n");
    for i in 0..n {
        // two answers a second apart share a time stamp every fifth row
        let sec = i - i / 5;
        csv.push_str(&format!(
            "3/{}/2024 10:{:02}:{:02},837,{},{},{}\n",
            1 + sec / 3600,
            (sec / 60) % 60,
            sec % 60,
            1 + i % 5,
            1 + (i / 2) % 5,
            i % 11
        ));
    }
    csv
}

#[test]
fn rows_with_one_id_and_other_content_are_conflicts_not_duplicates() {
    let f = Fixture::new();
    // 24 rows, of which rows 6, 11, 16, 21 (data rows 5, 10, 15, 20) repeat the time stamp
    // of the row before with other answers, and one row is repeated exactly
    let mut csv = forms_rows(24);
    let last = csv.lines().last().unwrap().to_string();
    csv.push_str(&format!("{last}\n"));
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline_named(
        "t",
        "",
        FORMS_MAPPING,
        "quality:\n  max_quarantined_pct: 30\n",
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("25 read, 20 new, 0 updated, 1 duplicate, 4 quarantined"),
        "{}",
        r.stdout
    );
    let q = f.sql("SELECT source_row, reason_codes, message FROM quarantine ORDER BY source_row");
    assert_eq!(
        int_str(&q, "source_row", "reason_codes"),
        vec![
            (7, "conflicting_duplicate"),
            (12, "conflicting_duplicate"),
            (17, "conflicting_duplicate"),
            (22, "conflicting_duplicate")
        ]
    );
    // both rows named: the quarantined one by its row, the one used in the message
    assert!(
        s(&q[0], "message")
            .unwrap()
            .contains("row 6 of this object"),
        "{q:?}"
    );
    assert!(r.stdout.contains("row_hash: true"), "{}", r.stdout);
    // under the default threshold the run fails, saying why
    let g = Fixture::new();
    g.input("a.csv", csv.as_bytes());
    let r = g.run(&g.pipeline("", FORMS_MAPPING));
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("conflicting_duplicate 4"), "{}", r.stderr);
}

#[test]
fn a_source_without_ids_keys_rows_by_content_and_loads_each_once_across_cumulative_exports() {
    let f = Fixture::new();
    let mapping =
        FORMS_MAPPING.replace("response_id: Timestamp", "response_id:\n    row_hash: true");
    let mut csv = forms_rows(84);
    // two people answering the same in the same second are two responses
    let last = csv.lines().last().unwrap().to_string();
    csv.push_str(&format!("{last}\n"));
    f.input("2024-03.csv", csv.as_bytes());
    let p = f.pipeline("", &mapping);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("85 read, 85 new, 0 updated, 0 duplicate, 0 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(f.count("responses"), 85);
    // the next export repeats every row (in another order) and adds two
    let mut lines: Vec<&str> = csv.lines().skip(1).collect();
    lines.reverse();
    let mut later = String::from("Timestamp,Kunta,Saatavuus,Kohtelu,Suosittelu\n");
    later.push_str("3/2/2024 09:00:00,837,5,5,10\n");
    for l in lines {
        later.push_str(l);
        later.push('\n');
    }
    later.push_str("3/2/2024 09:00:01,837,4,4,9\n");
    f.input("2024-03b.csv", later.as_bytes());
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("87 read, 2 new, 0 updated, 85 duplicate, 0 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(f.count("responses"), 87);
    // a key names no column
    let bad = mapping.replace("row_hash: true", "row_hash: true\n    column: Timestamp");
    let r = f.check(&f.pipeline("", &bad));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("mapping.response_id: give exactly one of `column` and `row_hash: true`"),
        "{}",
        r.stderr
    );
}

/// The NHS layout: a Date column written day-first, with a block written month-first.
const NHS_MAPPING: &str = r#"mapping:
  instrument: thl_national
  version: 2
  response_id: Ref
  submitted_at: {column: Date, format: "%d/%m/%Y"}
  municipality: {constant: "837"}
  items:
    recommend: Score
"#;

#[test]
fn dates_of_both_orders_in_one_column_are_quarantined_where_they_read_either_way() {
    let f = Fixture::new();
    let mut csv = String::from("Ref,Date,Score\n");
    // rows 2–5 day-first (30/09/2021 and 15/10/2021 by evidence, 05/03/2022 and 11/11/2021
    // either way or the same), rows 6–8 month-first (9/24/2022 by evidence, 10/3/2021 either way)
    for (i, d) in [
        "30/09/2021",
        "15/10/2021",
        "05/03/2022",
        "11/11/2021",
        "9/24/2022",
        "10/17/2021",
        "10/3/2021",
    ]
    .iter()
    .enumerate()
    {
        csv.push_str(&format!("r{i},{d},{}\n", i % 11));
    }
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline_named(
        "t",
        "",
        NHS_MAPPING,
        "quality:\n  max_quarantined_pct: 90\n",
    );
    // check reports the orders seen, and what the run will do
    let r = f.check(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(
            "dates in 'Date': 2 day-first (first number above 12), 2 month-first (second above 12), 2 either way"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("quarantined as ambiguous_date"),
        "{}",
        r.stdout
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let q = f.sql("SELECT source_row, reason_codes, message FROM quarantine ORDER BY source_row");
    assert_eq!(
        int_str(&q, "source_row", "reason_codes"),
        vec![
            (4, "ambiguous_date"),
            (6, "invalid_time"),
            (7, "invalid_time"),
            (8, "ambiguous_date")
        ]
    );
    assert!(
        s(&q[1], "message").unwrap().contains("written month-first"),
        "{q:?}"
    );
    // nothing was swapped: the loaded rows are the day-first ones and 11/11
    // (midnight in Helsinki, read back in UTC: three hours on gives the day)
    let d = f.sql_csv(
        "SELECT CAST(submitted_at + INTERVAL '3 hours' AS DATE) AS d FROM responses ORDER BY d",
    );
    assert_eq!(d, "d\n2021-09-30\n2021-10-15\n2021-11-11\n", "{d}");
    // or the object fails the run, by configuration
    let g = Fixture::new();
    g.input("a.csv", csv.as_bytes());
    let p = g.pipeline_named("t", "", NHS_MAPPING, "quality:\n  ambiguous_dates: fail\n");
    let r = g.run(&p);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "a.csv: 'Date' has dates that only month-first reads, where the format reads day-first"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(g.count("responses"), 0);
}

#[test]
fn check_warns_when_auto_read_slash_dates_are_day_first_by_evidence() {
    let f = Fixture::new();
    f.input(
        "a.csv",
        b"Ref,Date,Score\nr1,30/09/2021 10:00,9\nr2,04/10/2021 11:00,8\nr3,01/10/2021 12:00,7\nr4,10/10/2021 12:00,7\n",
    );
    let mapping = NHS_MAPPING.replace("{column: Date, format: \"%d/%m/%Y\"}", "Date");
    let p = f.pipeline_named("t", "", &mapping, "quality:\n  max_quarantined_pct: 90\n");
    let r = f.check(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("the `auto` format reads a/b/yyyy month-first"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("1 new, 0 updated, 0 duplicate, 3 quarantined"),
        "{}",
        r.stdout
    );
    // ISO dates need no look at the whole column and get no such line
    let g = Fixture::new();
    g.input("a.csv", b"Ref,Date,Score\nr1,2021-09-30,9\n");
    let r = g.check(&g.pipeline("", &mapping));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("dates in"), "{}", r.stdout);
}
