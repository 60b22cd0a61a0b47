//! Mapping and validation: configuration errors at `check`, row errors to quarantine with file,
//! row and column, and the quality threshold.

use crate::common::{Fixture, MAPPING, int_str, s};

const GOOD: &str = "id,time,kunta,q1,q2,nps,teksti,ip,email\n\
    1,2024-02-01,837,4,4,8,,10.0.0.1,a@b.fi\n\
    2,2024-02-02,837,5,5,9,,10.0.0.2,\n";

#[test]
fn check_reports_every_configuration_error_with_exit_2() {
    let f = Fixture::new();
    f.input("a.csv", GOOD.as_bytes());
    // an unknown key
    let p = f.pipeline(
        "",
        &MAPPING.replace(
            "  municipality: kunta\n",
            "  municipality: kunta\n  munincipality: x\n",
        ),
    );
    let r = f.check(&p);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("unknown key `munincipality` — did you mean `municipality`?"),
        "{}",
        r.stderr
    );

    // an unknown item, a missing column and a bad code constant, all at once
    let m = MAPPING
        .replace(
            "    encounter: q2\n",
            "    encounter: q2\n    kindness: q2\n    safety: q9\n",
        )
        .replace(
            "  municipality: kunta\n",
            "  municipality: kunta\n  channel: {constant: pigeon}\n",
        );
    let p = f.pipeline("", &m);
    let r = f.check(&p);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("a.csv"), "names the object: {}", r.stderr);
    assert!(
        r.stderr
            .contains("mapping.items.kindness: not an item of thl_national version 2"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("column 'q9' is not in the source"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("'pigeon' is not a channel code"),
        "{}",
        r.stderr
    );
    assert!(
        !f.path("wh").join("responses").exists(),
        "check wrote nothing"
    );
}

#[test]
fn check_lists_ignored_columns_and_plans_without_writing() {
    let f = Fixture::new();
    f.input("a.csv", GOOD.as_bytes());
    let p = f.pipeline("", MAPPING);
    let r = f.check(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("a.csv"), "{}", r.stdout);
    assert!(r.stdout.contains("new"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("2 rows: 2 new, 0 updated, 0 duplicate, 0 quarantined"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("ignored (not mapped; will not enter the warehouse): ip, email"),
        "{}",
        r.stdout
    );

    assert_eq!(f.run(&p).code, 0);
    let versions = f.sql("SELECT max(seq) AS s FROM runs")[0]["s"].as_i64();
    // a new export: check plans it, but the warehouse stays as it was
    f.input(
        "b.csv",
        format!("{GOOD}3,2024-02-03,837,1,1,0,,10.0.0.3,\n").as_bytes(),
    );
    let r = f.check(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("a.csv"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("unchanged (already loaded; will not be read)"),
        "{}",
        r.stdout
    );
    // b.csv begins with a.csv's bytes: the plan reads from a.csv's last row on
    assert!(
        r.stdout.contains(
            "begins with the bytes of a.csv, already loaded: its first 1 rows will not be read again"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("2 rows: 1 new, 0 updated, 1 duplicate, 0 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(f.count("responses"), 2);
    assert_eq!(
        f.sql("SELECT max(seq) AS s FROM runs")[0]["s"].as_i64(),
        versions
    );

    // listing the identifiers under `ignore` silences them
    let p = f.pipeline("", &format!("{MAPPING}  ignore: [ip, email]\n"));
    let r = f.check(&p);
    assert!(!r.stdout.contains("ignored"), "{}", r.stdout);
}

#[test]
fn bad_rows_go_to_quarantine_with_reason_row_and_column() {
    let f = Fixture::new();
    let mut csv = String::from("id,time,kunta,q1,q2,nps,teksti,email\n");
    for i in 0..40 {
        csv.push_str(&format!(
            "{},2024-03-{:02} 12:00,837,4,4,8,,x{i}@example.fi\n",
            100 + i,
            i % 28 + 1
        ));
    }
    csv.push_str("200,31.2.2024 12.00,837,4,4,8,,\n"); // line 42: invalid_time
    csv.push_str("201,2024-03-01,Atlantis,4,4,8,,\n"); // 43: unknown_municipality
    csv.push_str("202,2024-03-01,837,6,4,8,,\n"); // 44: out_of_range
    csv.push_str("203,2024-03-01,837,loistava,4,8,soita 040 1234567,\n"); // 45: invalid_value
    csv.push_str(",2024-03-01,837,4,4,8,,\n"); // 46: missing_id
    csv.push_str("205,2024-03-01,837\n"); // 47: field_count
    csv.push_str("206,2024-03-01,837,4,4,11,,\n"); // 48: out_of_range (nps)
    f.input("export.csv", csv.as_bytes());
    let p = f.pipeline(
        "",
        &format!("{MAPPING}  ignore: [email]\nquality:\n  max_quarantined_pct: 20\n"),
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("7 quarantined"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("export.csv row 44: column 'q1': outside the scale 1–5 (out_of_range)"),
        "{}",
        r.stdout
    );
    assert_eq!(f.count("responses"), 40);
    let q = f.sql("SELECT source_object, source_row, reason_codes, message, record FROM quarantine ORDER BY source_row");
    let got: Vec<(i64, &str)> = q
        .iter()
        .map(|r| {
            (
                r["source_row"].as_i64().unwrap(),
                s(r, "reason_codes").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (42, "invalid_time"),
            (43, "unknown_municipality"),
            (44, "out_of_range"),
            (45, "invalid_value"),
            (46, "missing_id"),
            (47, "field_count"),
            (48, "out_of_range"),
        ]
    );
    assert!(s(&q[1], "message").unwrap().contains("column 'kunta'"));
    assert!(s(&q[6], "message").unwrap().contains("column 'nps'"));
    for r in &q {
        assert_eq!(s(r, "source_object"), Some("export.csv"));
        let rec = s(r, "record").unwrap();
        assert!(
            !rec.contains("email") && !rec.contains("example.fi"),
            "unmapped columns stay out: {rec}"
        );
    }
    // the quarantined row's free text is scrubbed, and errors never echo it
    assert!(
        s(&q[3], "record").unwrap().contains("[phone]"),
        "{:?}",
        q[3]
    );
    assert!(!s(&q[3], "message").unwrap().contains("loistava"));
    assert!(!r.stdout.contains("loistava") && !r.stderr.contains("loistava"));
}

#[test]
fn quality_threshold_fails_the_run_and_writes_nothing() {
    let f = Fixture::new();
    f.input("a.csv", GOOD.as_bytes());
    let p = f.pipeline("", MAPPING);
    assert_eq!(f.run(&p).code, 0);
    let before = f.dump();
    f.input("b.csv", b"id,time,kunta,q1,q2,nps,teksti\n9,2024-02-01,837,4,4,8,\n10,bad,837,4,4,8,\n11,bad,837,4,4,8,\n");
    let r = f.run(&p);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("2 of 3 rows"), "{}", r.stderr);
    assert!(r.stderr.contains("invalid_time 2"), "{}", r.stderr);
    assert_eq!(f.dump(), before, "the warehouse is as it was");
    let runs = f.sql("SELECT status FROM runs ORDER BY seq");
    assert_eq!(s(runs.last().unwrap(), "status"), Some("failed"));
    // the failed object is read again next time
    f.remove_input("b.csv");
    f.input(
        "b.csv",
        b"id,time,kunta,q1,q2,nps,teksti\n9,2024-02-01,837,4,4,8,\n",
    );
    assert_eq!(f.run(&p).code, 0);
    assert_eq!(f.count("responses"), 3);
}

#[test]
fn check_exits_3_when_the_run_it_plans_would_fail_the_quality_threshold() {
    let f = Fixture::new();
    // one row of three has an unreadable time: 33 % against the default 5 %
    f.input(
        "a.csv",
        b"id,time,kunta,q1,q2,nps,teksti\n1,2024-02-01,837,4,4,8,\n2,2024-02-01,837,4,4,8,\n3,eilen,837,4,4,8,\n",
    );
    let p = f.pipeline("", MAPPING);
    let r = f.check(&p);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("the run would fail") && r.stdout.contains("over the limit of 5 %"),
        "{}",
        r.stdout
    );
    assert!(
        !f.path("wh").join("responses").exists(),
        "check wrote nothing"
    );
    // the run it planned fails the same way
    assert_eq!(f.run(&p).code, 3);
    // under a limit the rows pass, check exits 0
    let p = f.pipeline_named("t", "", MAPPING, "quality:\n  max_quarantined_pct: 50\n");
    let r = f.check(&p);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(!r.stdout.contains("would fail"), "{}", r.stdout);
}

#[test]
fn placeholders_in_open_text_become_no_answer_and_other_values_are_refused() {
    let f = Fixture::new();
    f.input(
        "a.csv",
        "id,time,kunta,q1,q2,nps,teksti\n\
         1,2024-02-01,837,4,4,8,Did not answer\n\
         2,2024-02-01,837,4,4,8,-\n\
         3,2024-02-01,837,4,4,8,  did NOT answer \n\
         4,2024-02-01,837,4,4,8,Hyvä palvelu\n"
            .as_bytes(),
    );
    let m = MAPPING.replace(
        "    open: teksti\n",
        "    open:\n      column: teksti\n      values: {\"Did not answer\": missing, \"-\": missing}\n",
    );
    let p = f.pipeline("", &m);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let texts: Vec<String> = f
        .sql("SELECT text FROM comments")
        .iter()
        .map(|r| s(r, "text").unwrap().to_string())
        .collect();
    assert_eq!(texts, vec!["Hyvä palvelu".to_string()]);
    // a target other than missing means nothing for a text: a configuration error, not ignored
    let f = Fixture::new();
    f.input(
        "a.csv",
        b"id,time,kunta,q1,q2,nps,teksti\n1,2024-02-01,837,4,4,8,-\n",
    );
    let m = MAPPING.replace(
        "    open: teksti\n",
        "    open:\n      column: teksti\n      values: {\"-\": \"5\"}\n      separator: \",\"\n",
    );
    let p = f.pipeline("", &m);
    let r = f.check(&p);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("mapping.items.open.values: '-' → '5'"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("mapping.items.open.separator"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_missing_source_folder_is_a_configuration_error_and_an_empty_one_a_warning() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    // the folder `in` exists but holds nothing the glob matches
    for r in [f.check(&p), f.run(&p)] {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout.contains(
                "warning: no source object matches glob '*.csv' in in: is the glob right?"
            ),
            "{}",
            r.stdout
        );
    }
    // a misspelled folder
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("location: in", "location: inn");
    std::fs::write(&p, text).unwrap();
    for r in [f.check(&p), f.run(&p)] {
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("source.location:") && r.stderr.contains("inn is not a folder"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn submission_times_outside_a_plausible_window_are_quarantined() {
    let f = Fixture::new();
    f.input(
        "a.csv",
        "id,time,kunta,q1,q2,nps,teksti\n\
         1,1899-12-31,837,4,4,8,\n\
         2,2024-02-01,837,4,4,8,\n\
         3,2999-01-01,837,4,4,8,\n\
         4,9999-12-31 23:59,837,4,4,8,\n\
         5,2019-06-01,837,4,4,8,\n"
            .as_bytes(),
    );
    let p = f.pipeline_named("t", "", MAPPING, "quality:\n  max_quarantined_pct: 80\n");
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let q = f.sql("SELECT source_row, reason_codes, message FROM quarantine ORDER BY source_row");
    assert_eq!(
        int_str(&q, "source_row", "reason_codes"),
        vec![
            (2, "implausible_time"),
            (4, "implausible_time"),
            (5, "implausible_time")
        ]
    );
    assert!(s(&q[0], "message").unwrap().contains("1899-12-31"), "{q:?}");
    // no year partition of 1899 or 9999 in the data or the marts
    let years = f.sql_csv("SELECT DISTINCT period FROM responses ORDER BY period");
    assert_eq!(years, "period\n2019-06\n2024-02\n");
    let marts = f.sql_csv(
        "SELECT DISTINCT period FROM item_scores WHERE period_type = 'year' ORDER BY period",
    );
    assert_eq!(marts, "period\n2019\n2024\n");
    // a pipeline may move the window's start
    let g = Fixture::new();
    g.input(
        "a.csv",
        b"id,time,kunta,q1,q2,nps,teksti\n5,2019-06-01,837,4,4,8,\n6,2024-02-01,837,4,4,8,\n",
    );
    let p = g.pipeline_named(
        "t",
        "",
        MAPPING,
        "quality:\n  earliest: \"2020-01-01\"\n  max_quarantined_pct: 80\n",
    );
    assert_eq!(g.run(&p).code, 0);
    assert_eq!(g.count("quarantine"), 1);
    let p = g.pipeline_named("t", "", MAPPING, "quality:\n  earliest: \"spring 2020\"\n");
    let r = g.check(&p);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("quality.earliest"), "{}", r.stderr);
}

#[test]
fn every_broken_row_counts_against_the_threshold_repeated_ones_too() {
    let f = Fixture::new();
    let mut csv = String::from("id,time,kunta,q1,q2,nps,teksti\n");
    for i in 0..48 {
        csv.push_str(&format!("{i},2024-02-01,837,4,4,8,\n"));
    }
    // 12 identical broken rows (20 % of 60)
    for _ in 0..12 {
        csv.push_str("99,2024-02-01,837,7,4,8,\n");
    }
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline("", MAPPING);
    let r = f.run(&p);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("12 of 60 rows (20.0 %)"), "{}", r.stderr);
    // under a higher limit each is quarantined, with its own row number
    let p = f.pipeline_named("t", "", MAPPING, "quality:\n  max_quarantined_pct: 25\n");
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("48 new, 0 updated, 0 duplicate, 12 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(f.count("quarantine"), 12);
    // a later export repeating the rows an earlier run quarantined (a new row first, so that it
    // is read whole) does not quarantine them again
    let later = csv.replacen(
        "id,time,kunta,q1,q2,nps,teksti\n",
        "id,time,kunta,q1,q2,nps,teksti\n100,2024-02-02,837,4,4,8,\n",
        1,
    );
    f.input("b.csv", later.as_bytes());
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("61 read, 1 new, 0 updated, 60 duplicate, 0 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(f.count("quarantine"), 12, "{}", r.stdout);
}

#[test]
fn a_file_that_is_no_export_of_the_survey_is_bad_data_said_briefly() {
    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    for (bytes, hint) in [
        (
            &b"\x00\x01\x02\xff\xfe garbage \x07\n\x03\x04\n"[..],
            "delimiter",
        ),
        (&b"12;34;56\n78;90;12\n"[..], "right file"),
        (&b"name,email,phone\nx,y,z\n"[..], "right file"),
    ] {
        f.input("a.csv", bytes);
        for r in [f.check(&p), f.run(&p)] {
            assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
            assert!(
                r.stderr.contains("a.csv: its header does not look like this pipeline's: none of the 7 mapped columns is there")
                    && r.stderr.contains(hint),
                "{}",
                r.stderr
            );
            assert!(r.stderr.len() < 600, "{}", r.stderr);
        }
    }
    // a header with some mapped columns missing is still a configuration error
    f.input("a.csv", b"id,time,kunta\n1,2024-02-01,837\n");
    let r = f.check(&p);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("column 'q1' is not in the source"),
        "{}",
        r.stderr
    );
}
