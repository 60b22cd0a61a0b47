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

/// A long export as an NHS Friends and Family Test system writes it: one row per question.
const LONG_MAPPING: &str = r#"mapping:
  instrument: thl_national
  version: 2
  long: {question: Question, answer: Answer}
  response_id: Respondent ID
  submitted_at: Date
  municipality: {constant: "837"}
  age_group: Age
  items:
    recommend: "How likely are you to recommend us (0-10)?"
    experience: "Overall, how was your experience of our service?"
    good: "What was good?"
    improve: "What could we do better?"
    wellbeing: "How are you today (0-100)?"
    visits: "Visits this year"
  own_items:
    experience:
      scale: choice
      options:
        very_good: {en: Very good}
        good: {en: Good}
        neither: {en: Neither good nor poor}
        poor: {en: Poor}
        very_poor: {en: Very poor}
    good: {scale: text}
    improve: {scale: text}
    wellbeing: {scale: slider100}
    visits: {scale: count}
"#;

/// (id, date, age band, 0–10, experience, what was good, wellbeing 0–100, visits)
type Respondent<'a> = (u32, &'a str, &'a str, u8, &'a str, &'a str, u8, u16);

fn long_rows(respondents: &[Respondent]) -> String {
    let mut csv = String::from("Respondent ID,Date,Age,Question,Answer\n");
    for (id, date, age, nps, exp, good, wb, visits) in respondents {
        for (q, a) in [
            (
                "Overall, how was your experience of our service?",
                exp.to_string(),
            ),
            (
                "How likely are you to recommend us (0-10)?",
                nps.to_string(),
            ),
            ("What was good?", format!("\"{good}\"")),
            ("What could we do better?", String::new()),
            ("How are you today (0-100)?", wb.to_string()),
            ("Visits this year", visits.to_string()),
        ] {
            csv.push_str(&format!("{id},{date},{age},\"{q}\",{a}\n"));
        }
    }
    csv
}

#[test]
fn a_long_export_one_row_per_question_loads_each_response_once_and_updates_an_edited_one() {
    let f = Fixture::new();
    let first = [
        (
            1001,
            "2024-03-04",
            "18-24",
            9,
            "Very good",
            "Kind staff, thank you",
            80,
            3,
        ),
        (1002, "2024-03-05", "25-34", 6, "Good", "Quick", 55, 1),
        (
            1003,
            "2024-03-06",
            "75+",
            10,
            "very good",
            "Everything",
            90,
            12,
        ),
    ];
    f.input("fft_2024-03-10.csv", long_rows(&first).as_bytes());
    let p = f.pipeline("", LONG_MAPPING);
    let r = f.check(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("long: 18 rows of 3 respondents, 6 questions"),
        "{}",
        r.stdout
    );
    // a band that straddles two national groups is said, and stored as not known
    assert!(r.stdout.contains("'25-34' (1 rows)"), "{}", r.stdout);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("3 read, 3 new, 0 updated, 0 duplicate, 0 quarantined"),
        "{}",
        r.stdout
    );
    let ages = f.sql_csv("SELECT nps, age_group FROM responses ORDER BY nps");
    assert_eq!(ages, "nps,age_group\n6,\n9,18-29\n10,75+\n");
    let answers = f.sql_csv(
        "SELECT r.nps, a.item_code, a.option_code, a.value, a.status FROM answers a \
         JOIN responses r ON a.response_key = r.response_key ORDER BY r.nps, a.item_code",
    );
    assert_eq!(
        answers,
        "nps,item_code,option_code,value,status\n\
         6,experience,good,,answered\n6,visits,,1,measured\n6,wellbeing,,55,measured\n\
         9,experience,very_good,,answered\n9,visits,,3,measured\n9,wellbeing,,80,measured\n\
         10,experience,very_good,,answered\n10,visits,,12,measured\n10,wellbeing,,90,measured\n"
    );
    assert_eq!(f.count("comments"), 3);
    // numbers are no agreement: item_scores has none of them; the choice's shares are selections
    let scored = f.sql_csv(
        "SELECT count(*) AS n FROM item_scores WHERE item_code IN ('wellbeing', 'visits', 'experience')",
    );
    assert_eq!(scored, "n\n0\n");
    let chosen = f.sql_csv(
        "SELECT DISTINCT option_code FROM selections WHERE item_code = 'experience' ORDER BY option_code",
    );
    assert_eq!(chosen, "option_code\n*\ngood\nvery_good\n");
    // the next export repeats every row, edits one answer and adds a respondent
    let mut second = first.to_vec();
    second[1].4 = "Poor";
    second.push((
        1004,
        "2024-03-09",
        "50-64",
        3,
        "Very poor",
        "Nothing",
        10,
        0,
    ));
    f.input("fft_2024-03-20.csv", long_rows(&second).as_bytes());
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("4 read, 1 new, 1 updated, 2 duplicate, 0 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(f.count("responses"), 4);
    let edited = f.sql_csv(
        "SELECT a.option_code FROM answers a JOIN responses r ON a.response_key = r.response_key \
         WHERE r.nps = 6 AND a.item_code = 'experience'",
    );
    assert_eq!(edited, "option_code\npoor\n");
}

#[test]
fn long_rows_that_disagree_are_kept_and_quarantined_not_dropped() {
    let f = Fixture::new();
    let mut csv = long_rows(&[(2001, "2024-03-04", "18-24", 9, "Good", "Fine", 50, 2)]);
    // one of the respondent's rows gives another date: both dates stay, and the response does
    // not load under either
    csv.push_str("2001,2024-03-05,18-24,\"What could we do better?\",Parking\n");
    // an answer without a question lands in a column that check lists as not mapped
    csv.push_str("2002,2024-03-05,18-24,,Lost answer\n");
    csv.push_str("2002,2024-03-05,18-24,\"How likely are you to recommend us (0-10)?\",8\n");
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline_named(
        "t",
        "",
        LONG_MAPPING,
        "quality:\n  max_quarantined_pct: 60\n",
    );
    let r = f.check(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("1 values that differ"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("ignored (not mapped; will not enter the warehouse): (no question)"),
        "{}",
        r.stdout
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let q = f.sql("SELECT source_row, reason_codes, record FROM quarantine");
    assert_eq!(
        int_str(&q, "source_row", "reason_codes"),
        vec![(2, "invalid_time")]
    );
    assert!(
        s(&q[0], "record")
            .unwrap()
            .contains("2024-03-04; 2024-03-05"),
        "{q:?}"
    );
    assert_eq!(f.count("responses"), 1);
}

#[test]
fn exports_without_a_date_take_it_from_the_object_name_or_a_constant() {
    let f = Fixture::new();
    let csv = b"id,kunta,q1\n1,837,4\n2,837,5\n";
    f.input("palaute_2025-03.csv", csv);
    let mapping = "mapping:\n  instrument: thl_national\n  version: 2\n  response_id: id\n  submitted_at: {from_object_name: \"%Y-%m\"}\n  municipality: kunta\n  items:\n    availability: q1\n";
    let p = f.pipeline("", mapping);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        f.sql_csv("SELECT DISTINCT period FROM responses"),
        "period\n2025-03\n"
    );
    // an object whose name has no such date is named
    f.input("palaute.csv", csv);
    let r = f.run(&p);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("palaute.csv")
            && r.stderr
                .contains("the object's name has no date in the form '%Y-%m'"),
        "{}",
        r.stderr
    );
    // a constant
    let g = Fixture::new();
    g.input("a.csv", csv);
    let p = g.pipeline(
        "",
        &mapping.replace(
            "{from_object_name: \"%Y-%m\"}",
            "{constant: \"2025-02-15\"}",
        ),
    );
    let r = g.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        g.sql_csv("SELECT DISTINCT period FROM responses"),
        "period\n2025-02\n"
    );
    let p = g.pipeline(
        "",
        &mapping.replace("{from_object_name: \"%Y-%m\"}", "{constant: \"spring\"}"),
    );
    let r = g.check(&p);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("mapping.submitted_at.constant: 'spring' is not a date"),
        "{}",
        r.stderr
    );
}

#[test]
fn check_names_every_misspelt_key_with_its_line_and_suggests_the_column_meant() {
    let f = Fixture::new();
    f.input(
        "a.csv",
        b"id,submitdate,Q1[SQ001],Q1[SQ002]\n1,2024-03-01,4,5\n",
    );
    let text = "name: t\nsource:\n  kind: files\n  locaton: in\n  glob: \"*.csv\"\n  system: test\n  survey: s1\nmapping:\n  instrument: thl_national\n  version: 2\n  response_id: id\n  submited_at: submitdate\n  municipality: {constant: \"837\"}\n  items:\n    availability: {colum: Q1_SQ001}\n";
    let p = f.path("t.yaml");
    std::fs::write(&p, text).unwrap();
    let r = f.check(&p);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for want in [
        "line 4 column 3: unknown key `locaton` — did you mean `location`?",
        "line 12 column 3: unknown key `submited_at` — did you mean `submitted_at`?",
        "line 15 column 20: unknown key `colum` — did you mean `column`?",
    ] {
        assert!(r.stderr.contains(want), "{want}\n{}", r.stderr);
    }
    // with the keys right, the column that is not there is named with the one meant
    std::fs::write(
        &p,
        text.replace("locaton", "location")
            .replace("submited_at", "submitted_at")
            .replace("colum:", "column:"),
    )
    .unwrap();
    let r = f.check(&p);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "mapping.items.availability: column 'Q1_SQ001' is not in the source (it has 4 columns; did you mean 'Q1[SQ001]'?)"
        ),
        "{}",
        r.stderr
    );
    // one wrong field is blamed alone
    assert!(!r.stderr.contains("submitted_at"), "{}", r.stderr);
}
