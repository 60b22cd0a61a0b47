//! A cumulative export that begins with the bytes of an export already loaded is read from where
//! those bytes end — and gives the warehouse a full read of it would. Anything that could make
//! the skipped rows differ from what is stored (an edit, another configuration, a rolled-back
//! load) reads the whole export.

use crate::common::{Fixture, MAPPING, palaute, s};

/// Rows `ids` of a Windows-1252, `;`-separated export with two header rows and CRLF line ends;
/// row 3's text spans two lines and response 7 names a municipality that does not exist.
fn export(ids: std::ops::Range<u32>) -> Vec<u8> {
    let mut t = String::from(
        "Vastaustunnus;Vastattu;Kunta;Saatavuus;Kohtelu;Suosittelu;Kerro lisää\r\n\
         id;time;kunta;q1;q2;nps;teksti\r\n",
    );
    for i in ids {
        let kunta = if i == 7 { "Atlantis" } else { "Hämeenlinna" };
        let text = if i == 3 {
            "\"Hyvä palvelu;\r\nkiitos\"".to_string()
        } else {
            format!("Äänestys {i}")
        };
        t.push_str(&format!(
            "{i};{}.3.2024 10.00;{kunta};{};4;{};{text}\r\n",
            i % 28 + 1,
            i % 5 + 1,
            i % 11
        ));
    }
    let (bytes, _, bad) = encoding_rs::WINDOWS_1252.encode(&t);
    assert!(!bad);
    bytes.into_owned()
}

/// (one broken row in a handful is over the default quality limit of 5 %)
const FORMAT: &str =
    "format:\n  kind: csv\n  header_rows: 2\nquality:\n  max_quarantined_pct: 50\n";

/// What a warehouse holds, without what depends on the run (load ids, object names).
fn content(f: &Fixture) -> String {
    let mut s = String::new();
    for q in [
        "SELECT response_key, row_hash, submitted_at, municipality, nps FROM responses ORDER BY response_key",
        "SELECT response_key, item_code, value, status, raw_value FROM answers ORDER BY response_key, item_code",
        "SELECT response_key, field, text FROM comments ORDER BY response_key, field",
        "SELECT response_key, source_row, reason_codes FROM quarantine ORDER BY response_key",
    ] {
        s.push_str(&f.sql_csv(q));
    }
    s
}

/// The same exports loaded in one go into a fresh warehouse.
fn loaded_at_once(name: &str, bytes: &[u8]) -> String {
    let g = Fixture::new();
    g.input(name, bytes);
    let p = g.pipeline(FORMAT, MAPPING);
    let r = g.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    content(&g)
}

/// Run pipeline `p`: it succeeds and its summary holds every one of `expected`; the summary.
fn run_ok(f: &Fixture, p: &std::path::Path, expected: &[&str]) -> String {
    let r = f.run(p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for e in expected {
        assert!(r.stdout.contains(e), "no {e:?} in:\n{}", r.stdout);
    }
    r.stdout
}

#[test]
fn a_cumulative_export_resumes_where_the_loaded_bytes_end() {
    let f = Fixture::new();
    let p = f.pipeline(FORMAT, MAPPING);
    f.input("vienti_05.csv", &export(1..6));
    run_ok(&f, &p, &["5 new"]);

    // the next export repeats the five rows byte for byte and adds three, one of them broken
    let next = export(1..9);
    f.input("vienti_08.csv", &next);
    let plan = f.check(&p);
    assert!(
        plan.stdout.contains(
            "begins with the bytes of vienti_05.csv, already loaded: its first 4 rows will not be read again"
        ),
        "{}",
        plan.stdout
    );
    // the last row of the earlier export is read again (a resume point is where a record
    // starts), then the new rows
    run_ok(
        &f,
        &p,
        &[
            "rows: 4 read, 2 new, 0 updated, 1 duplicate, 1 quarantined",
            "vienti_08.csv: begins with the bytes of vienti_05.csv, already loaded: its first 4 rows not read again",
        ],
    );
    // the broken row is named by the line it is on in the whole file: two header lines, row 3
    // on two lines, so response 7 starts on line 10
    let q = f.sql("SELECT source_object, source_row, reason_codes FROM quarantine");
    assert_eq!(q.len(), 1);
    assert_eq!(s(&q[0], "source_object"), Some("vienti_08.csv"));
    assert_eq!(q[0]["source_row"].as_i64(), Some(10));
    assert_eq!(s(&q[0], "reason_codes"), Some("unknown_municipality"));
    // and the warehouse is what loading the whole export at once gives
    assert_eq!(content(&f), loaded_at_once("vienti_08.csv", &next));

    // the ledger keeps where the new export can be resumed: a third one continues from it
    let third = export(1..12);
    f.input("vienti_11.csv", &third);
    run_ok(
        &f,
        &p,
        &[
            "its first 7 rows not read again",
            "rows: 4 read, 3 new, 0 updated, 1 duplicate",
        ],
    );
    assert_eq!(content(&f), loaded_at_once("vienti_11.csv", &third));
    let h = palaute(&["history", "--warehouse", &f.warehouse(), "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let last = v
        .as_array()
        .unwrap()
        .iter()
        .rfind(|r| r["pipeline"] == "t")
        .unwrap();
    assert_eq!(last["objects"][0]["resumed_from"][0], "vienti_08.csv");
    assert_eq!(last["objects"][0]["resume"]["rows"], 10);
}

#[test]
fn an_unfinished_last_row_is_read_again_whole() {
    // the first export ends inside a quoted text (the tool was still writing it)
    let mut first = export(1..5);
    first.extend_from_slice(b"5;5.3.2024 10.00;H\xe4meenlinna;3;4;5;\"Kesken\r\n");
    let mut second = first.clone();
    second.extend_from_slice(b"jatkuu\"\r\n6;6.3.2024 10.00;Hattula;4;4;9;\r\n");
    let f = Fixture::new();
    let p = f.pipeline(FORMAT, MAPPING);
    f.input("a.csv", &first);
    run_ok(&f, &p, &["5 new"]);
    f.input("b.csv", &second);
    run_ok(
        &f,
        &p,
        &[
            "its first 4 rows not read again",
            "rows: 2 read, 1 new, 1 updated, 0 duplicate",
        ],
    );
    let c = f.sql("SELECT text FROM comments WHERE text LIKE 'Kesken%'");
    assert_eq!(c.len(), 1);
    assert!(s(&c[0], "text").unwrap().ends_with("jatkuu"), "{c:?}");
    assert_eq!(content(&f), loaded_at_once("b.csv", &second));
}

#[test]
fn edits_configuration_changes_and_rollbacks_read_the_whole_export() {
    let f = Fixture::new();
    let p = f.pipeline(FORMAT, MAPPING);
    f.input("a.csv", &export(1..6));
    run_ok(&f, &p, &["5 new"]);

    // response 1 edited at the source: the export does not begin with a.csv's bytes
    let mut edited = export(1..8);
    let at = edited.windows(4).position(|w| w == b"1;2.").expect("row 1");
    edited[at + 2] = b'3';
    f.input("b.csv", &edited);
    let out = run_ok(
        &f,
        &p,
        &["rows: 7 read, 1 new, 1 updated, 4 duplicate, 1 quarantined"],
    );
    assert!(!out.contains("not read again"), "{out}");
    assert_eq!(content(&f), loaded_at_once("b.csv", &edited));
    let seq_b: i64 = f.sql("SELECT max(seq) AS s FROM runs")[0]["s"]
        .as_i64()
        .unwrap();

    // c.csv continues b.csv: resumed at b.csv's last row (the broken one, quarantined before)
    let mut c = edited.clone();
    c.extend_from_slice(b"8;9.3.2024 10.00;Hattula;2;2;3;\r\n");
    f.input("c.csv", &c);
    run_ok(
        &f,
        &p,
        &[
            "begins with the bytes of b.csv",
            "rows: 2 read, 1 new, 0 updated, 1 duplicate, 0 quarantined",
        ],
    );

    // c.csv's run rolled back: d.csv (c.csv and one more row) resumes from b.csv's point, not
    // c.csv's, and so reads the row c.csv had added again
    let r = palaute(
        &[
            "rollback",
            "--warehouse",
            &f.warehouse(),
            "--to-version",
            &seq_b.to_string(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    f.remove_input("c.csv");
    let mut d = c.clone();
    d.extend_from_slice(b"9;9.3.2024 11.00;Hattula;5;5;10;\r\n");
    f.input("d.csv", &d);
    run_ok(
        &f,
        &p,
        &[
            "begins with the bytes of b.csv",
            "rows: 3 read, 2 new, 0 updated, 1 duplicate",
        ],
    );
    assert_eq!(content(&f), loaded_at_once("d.csv", &d));

    // the pipeline file changed: rows might map differently, so nothing is skipped
    let mut e = d.clone();
    e.extend_from_slice(b"10;9.3.2024 12.00;Hattula;1;1;0;\r\n");
    f.input("e.csv", &e);
    std::fs::write(&p, std::fs::read_to_string(&p).unwrap() + "# reviewed\n").unwrap();
    let out = run_ok(
        &f,
        &p,
        &["rows: 10 read, 1 new, 0 updated, 9 duplicate, 0 quarantined"],
    );
    assert!(!out.contains("not read again"), "{out}");
    // and the next export resumes from the point recorded with the new file
    let mut g = e.clone();
    g.extend_from_slice(b"11;9.3.2024 13.00;Hattula;3;3;7;\r\n");
    f.input("g.csv", &g);
    run_ok(
        &f,
        &p,
        &[
            "begins with the bytes of e.csv",
            "rows: 2 read, 1 new, 0 updated, 1 duplicate",
        ],
    );
    assert_eq!(content(&f), loaded_at_once("g.csv", &g));
}
