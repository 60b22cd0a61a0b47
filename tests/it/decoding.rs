//! Every decoding case of real exports, through `palaute run` and back through `palaute sql`.

use crate::common::{Fixture, MAPPING, s};

const HEADER: &str = "id,time,kunta,q1,q2,nps,teksti";

#[test]
fn utf8_bom_comma_iso_offsets_and_finnish_periods() {
    let f = Fixture::new();
    let csv = format!(
        "\u{feff}{HEADER}\n1,2024-01-31T23:30:00Z,091,5,4,9,Hyvä palvelu\n2,2024-07-05T14:22:01+03:00,Vantaa,3,2,6,\n"
    );
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline("", MAPPING);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = f.sql("SELECT municipality, county, period, CAST(submitted_at AS VARCHAR) AS t, nps FROM responses ORDER BY source_row");
    assert_eq!(rows.len(), 2);
    // 23:30 UTC on 31 January is already February in Helsinki
    assert_eq!(s(&rows[0], "period"), Some("2024-02"));
    assert_eq!(s(&rows[0], "municipality"), Some("091"));
    assert_eq!(s(&rows[0], "county"), Some("90"));
    assert_eq!(rows[0]["nps"].as_i64(), Some(9));
    assert_eq!(s(&rows[1], "municipality"), Some("092"));
    assert_eq!(s(&rows[1], "county"), Some("04"));
    assert!(
        s(&rows[1], "t").unwrap().starts_with("2024-07-05T11:22:01"),
        "{:?}",
        rows[1]
    );
    let c = f.sql("SELECT text FROM comments");
    assert_eq!(s(&c[0], "text"), Some("Hyvä palvelu"));
}

#[test]
fn windows_1252_semicolons_two_header_rows_crlf_and_finnish_dates() {
    let f = Fixture::new();
    let text = "Vastaustunnus;Vastattu;Kunta;Sain palvelua;Kohtelu;Suosittelu;Kerro lisää\r\n\
                id;time;kunta;q1;q2;nps;teksti\r\n\
                7;5.3.2024 14.22;Hämeenlinna;Täysin samaa mieltä;En osaa sanoa;10;Äiti sai hyvää hoitoa\r\n\
                8;05.03.2024 9:05;Ähtäri;jokseenkin eri mieltä;Ei koske minua;0;\r\n";
    let (bytes, _, bad) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!bad);
    f.input("vienti.csv", &bytes);
    let p = f.pipeline("format:\n  kind: csv\n  header_rows: 2\n", MAPPING);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = f.sql("SELECT municipality, CAST(submitted_at AS VARCHAR) AS t FROM responses ORDER BY source_row");
    assert_eq!(s(&rows[0], "municipality"), Some("109"));
    assert!(s(&rows[0], "t").unwrap().starts_with("2024-03-05T12:22:00"));
    assert_eq!(s(&rows[1], "municipality"), Some("989"));
    assert!(s(&rows[1], "t").unwrap().starts_with("2024-03-05T07:05:00"));
    let a =
        f.sql("SELECT item_code, value, status, raw_value FROM answers ORDER BY item_code, status");
    let got: Vec<(String, Option<i64>, String)> = a
        .iter()
        .map(|r| {
            (
                s(r, "item_code").unwrap().to_string(),
                r["value"].as_i64(),
                s(r, "status").unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        got.contains(&("availability".into(), Some(5), "answered".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("availability".into(), Some(2), "answered".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("encounter".into(), None, "cant_say".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("encounter".into(), None, "not_applicable".into())),
        "{got:?}"
    );
    let c = f.sql("SELECT text FROM comments");
    assert_eq!(s(&c[0], "text"), Some("Äiti sai hyvää hoitoa"));
    // check shows how the object was decoded
    let plan = f.check(&p);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("unchanged"), "{}", plan.stdout);
}

#[test]
fn tab_delimiter_three_header_rows_names_in_the_middle() {
    let f = Fixture::new();
    let text = "Q\tQ\tQ\tQ\tQ\tQ\tQ\n\
                id\ttime\tkunta\tq1\tq2\tnps\tteksti\n\
                x\tx\tx\tx\tx\tx\tx\n\
                1\t2024-02-01 10:00\t837\t4\t4\t8\tok, hyvä\n";
    f.input("lime.csv", text.as_bytes());
    let p = f.pipeline(
        "format:\n  kind: csv\n  header_rows: 3\n  names_row: 2\n",
        MAPPING,
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(f.count("responses"), 1);
    let c = f.sql("SELECT text FROM comments");
    assert_eq!(s(&c[0], "text"), Some("ok, hyvä"));
}

#[test]
fn quoted_fields_with_newlines_quotes_and_mixed_line_ends() {
    let f = Fixture::new();
    let csv = format!(
        "{HEADER}\r\n1,2024-02-01,837,4,4,8,\"rivi yksi\nrivi \"\"kaksi\"\", kolme\"\n2,2024-02-02,837,5,5,9,\"a;b\r\nc\"\r\n3,2024-02-03,837,3,3,7,loppu\n"
    );
    f.input("q.csv", csv.as_bytes());
    let p = f.pipeline("", MAPPING);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(f.count("responses"), 3);
    let c = f.sql("SELECT text FROM comments ORDER BY text");
    let texts: Vec<&str> = c.iter().map(|r| s(r, "text").unwrap()).collect();
    assert_eq!(
        texts,
        vec!["a;b\r\nc", "loppu", "rivi yksi\nrivi \"kaksi\", kolme"]
    );
    // the source row is the line a record starts on
    let rows = f.sql("SELECT source_row FROM responses ORDER BY source_row");
    let lines: Vec<i64> = rows
        .iter()
        .map(|r| r["source_row"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, vec![2, 4, 6]);
}

#[test]
fn decimal_comma_and_padded_numbers() {
    let f = Fixture::new();
    let csv = "id;time;kunta;q1;q2;nps;teksti\n1;2024-02-01;837;4,0;3.0000000000;8,0;\n";
    f.input("n.csv", csv.as_bytes());
    let p = f.pipeline("", MAPPING);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let a = f.sql("SELECT item_code, value, raw_value FROM answers ORDER BY item_code");
    assert_eq!(a[0]["value"].as_i64(), Some(4));
    assert_eq!(s(&a[0], "raw_value"), Some("4,0"));
    assert_eq!(a[1]["value"].as_i64(), Some(3));
    assert_eq!(
        f.sql("SELECT nps FROM responses")[0]["nps"].as_i64(),
        Some(8)
    );
}

#[test]
fn declared_encoding_and_delimiter_and_trailing_separators() {
    let f = Fixture::new();
    // a legacy export: a trailing separator on every row, ISO-8859-1 declared
    let text = "id;time;kunta;q1;q2;nps;teksti;\n1;1.2.2024;Närpiö;5;5;10;Kiitos;\n";
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(text);
    f.input("l.csv", &bytes);
    let p = f.pipeline(
        "format:\n  kind: csv\n  encoding: iso-8859-1\n  delimiter: \";\"\n",
        MAPPING,
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = f.sql("SELECT municipality FROM responses");
    assert_eq!(s(&rows[0], "municipality"), Some("545"));
}

#[test]
fn malformed_inputs_decode_on_evidence_skip_blank_rows_and_read_cr_and_utf16() {
    let texts = |f: &Fixture| -> Vec<String> {
        f.sql("SELECT c.text FROM comments c JOIN responses r USING (response_key) ORDER BY r.source_row")
            .iter()
            .map(|r| s(r, "text").unwrap().to_string())
            .collect()
    };
    let mapping = "mapping:\n  instrument: thl_national\n  version: 2\n  response_id: id\n  submitted_at: time\n  municipality: kunta\n  items:\n    availability: q1\n    open: teksti\n";
    let extra = "quality:\n  max_quarantined_pct: 50\n";
    let rows: Vec<String> = (1..=6)
        .map(|i| format!("{i},2024-02-0{i},837,4,Enemmän henkilökuntaa {i}"))
        .collect();

    // one stray Windows-1252 byte in a UTF-8 file without a BOM: still UTF-8, that row
    // quarantined with reason `encoding`, no mojibake anywhere
    let f = Fixture::new();
    let mut b = format!("id,time,kunta,q1,teksti\n{}\n", rows.join("\n")).into_bytes();
    let at = b.windows(2).position(|w| w == "ö".as_bytes()).unwrap();
    b.splice(at..at + 2, [0xF6]);
    f.input("a.csv", &b);
    let p = f.pipeline_named("t", "", mapping, extra);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("5 new") && r.stdout.contains("1 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(
        s(
            &f.sql("SELECT reason_codes FROM quarantine")[0],
            "reason_codes"
        ),
        Some("encoding")
    );
    let t = texts(&f);
    assert_eq!(t.len(), 5);
    assert!(
        t.iter().all(|x| x.starts_with("Enemmän henkilökuntaa")),
        "{t:?}"
    );

    // rows of delimiters only (Excel's trailing empty rows) are blank, not broken rows
    let f = Fixture::new();
    f.input(
        "a.csv",
        format!(
            "id;time;kunta;q1;teksti\r\n{}\r\n;;;;\r\n;;;;\r\n",
            rows.join("\r\n").replace(',', ";")
        )
        .as_bytes(),
    );
    let p = f.pipeline_named("t", "", mapping, "");
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("6 read, 6 new"), "{}", r.stdout);
    assert_eq!(f.count("quarantine"), 0);

    // line ends of CR alone
    let f = Fixture::new();
    f.input(
        "a.csv",
        format!("id,time,kunta,q1,teksti\r{}\r", rows.join("\r")).as_bytes(),
    );
    let p = f.pipeline_named("t", "", mapping, "");
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(texts(&f).len(), 6);
    let lines = f.sql_csv("SELECT source_row FROM responses ORDER BY source_row");
    assert_eq!(lines, "source_row\n2\n3\n4\n5\n6\n7\n");

    // UTF-16 (little-endian, with its BOM), as some tools save "Unicode text"
    let f = Fixture::new();
    let text = format!(
        "id\ttime\tkunta\tq1\tteksti\r\n{}\r\n",
        rows.join("\r\n").replace(',', "\t")
    );
    let mut b = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        b.extend_from_slice(&u.to_le_bytes());
    }
    f.input("a.csv", &b);
    let p = f.pipeline_named("t", "", mapping, "");
    let c = f.check(&p);
    assert!(c.stdout.contains("UTF-16LE"), "{}", c.stdout);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(texts(&f)[0], "Enemmän henkilökuntaa 1");
}
