//! Privacy: open text is scrubbed of each kind of personal data, ordinary numbers stay, and
//! identifier columns of the source never reach the warehouse.

use crate::common::{Fixture, MAPPING, files_under, s};

#[test]
fn open_text_is_scrubbed_of_each_kind() {
    let f = Fixture::new();
    let cases = [
        (
            "Ottakaa yhteyttä matti.virtanen@example.fi kiitos",
            "Ottakaa yhteyttä [email] kiitos",
            "email",
        ),
        (
            "soittakaa 040 123 4567 iltaisin",
            "soittakaa [phone] iltaisin",
            "phone",
        ),
        ("numero +358 50 1234567", "numero [phone]", "phone"),
        ("hetu 131052-308T", "hetu [hetu]", "hetu"),
        (
            "tilille FI21 1234 5600 0007 85 kiitos",
            "tilille [iban] kiitos",
            "iban",
        ),
        (
            "lomake https://kysely.example.fi/s?id=42&t=abc auki",
            "lomake [url] auki",
            "url",
        ),
        (
            "asun Hämeenkatu 12 B 5 Tampereella",
            "asun [address] Tampereella",
            "address",
        ),
        (
            "käyn 3 kertaa viikossa klo 14.30, maksoin 1 200 euroa 5.3.2024",
            "käyn 3 kertaa viikossa klo 14.30, maksoin 1 200 euroa 5.3.2024",
            "",
        ),
        (
            "koodi 131052-308U ei ole tunnus",
            "koodi 131052-308U ei ole tunnus",
            "",
        ),
    ];
    let mut csv = String::from("id,time,kunta,q1,q2,nps,teksti\n");
    for (i, (t, _, _)) in cases.iter().enumerate() {
        csv.push_str(&format!("{i},2024-02-01,837,4,4,8,\"{t}\"\n"));
    }
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline("", MAPPING);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = f.sql("SELECT c.text, c.redactions, c.redaction_kinds, r.source_row FROM comments c JOIN responses r ON c.response_key = r.response_key ORDER BY r.source_row");
    assert_eq!(rows.len(), cases.len());
    for (row, (_, want, kind)) in rows.iter().zip(cases) {
        assert_eq!(s(row, "text"), Some(want));
        assert_eq!(s(row, "redaction_kinds"), Some(kind));
        assert_eq!(
            row["redactions"].as_i64(),
            Some(if kind.is_empty() { 0 } else { 1 })
        );
    }
    // nothing printed names answer text
    assert!(!r.stdout.contains("matti") && !r.stderr.contains("matti"));
}

#[test]
fn identifier_columns_never_enter_the_warehouse() {
    let f = Fixture::new();
    let csv = "id,time,kunta,q1,q2,nps,teksti,Email,Name,token,ipaddr\n\
               1,2024-02-01,837,4,4,8,hyvä,maija@example.fi,Maija Meikäläinen,tok123XYZ,192.0.2.7\n";
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline("", MAPPING);
    assert_eq!(f.run(&p).code, 0);
    let mut everything = f.dump();
    everything.push_str(&f.sql_csv("SELECT * FROM responses"));
    everything.push_str(&f.sql_csv("SELECT * FROM answers"));
    everything.push_str(&f.sql_csv("SELECT * FROM runs"));
    for secret in ["maija", "Meikäläinen", "tok123XYZ", "192.0.2.7"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    // and not in the files either
    for p in files_under(&f.path("wh")) {
        let b = std::fs::read(&p).unwrap();
        assert!(!b.windows(9).any(|w| w == b"tok123XYZ"), "{}", p.display());
    }
}

#[test]
fn birth_year_becomes_an_age_group_and_is_not_stored() {
    let f = Fixture::new();
    // row 4's time is broken, so it is quarantined with its year of birth still readable
    let csv =
        "id,time,by\n1,2024-05-01,1950\n2,2024-05-01,2000\n3,2024-05-01,2030\n4,yesterday,1961\n";
    f.input("a.csv", csv.as_bytes());
    let m = "mapping:\n  instrument: local_everyday\n  version: 1\n  response_id: id\n  submitted_at: time\n  county: {constant: \"08\"}\n  birth_year: by\n  items: {}\n";
    let p = f.pipeline("", m);
    let r = f.run(&p);
    assert_eq!(
        r.code, 3,
        "one of three rows is bad: over the 5 % default: {}",
        r.stderr
    );
    let p = f.pipeline_named("t", "", m, "quality:\n  max_quarantined_pct: 50\n");
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows =
        f.sql("SELECT age_group, county, cooperation_area FROM responses ORDER BY source_row");
    assert_eq!(s(&rows[0], "age_group"), Some("65-74"));
    assert_eq!(s(&rows[1], "age_group"), Some("18-29"));
    assert_eq!(s(&rows[0], "county"), Some("08"));
    assert_eq!(s(&rows[0], "cooperation_area"), Some("3"));
    let q = f.sql("SELECT reason_codes, record FROM quarantine ORDER BY source_row");
    assert_eq!(s(&q[0], "reason_codes"), Some("invalid_birth_year"));
    assert_eq!(s(&q[1], "reason_codes"), Some("invalid_time"));
    assert!(!f.sql_csv("SELECT * FROM responses").contains("1950"));
    // no table holds a year of birth, the quarantine's records and messages included
    let stored = format!(
        "{}{}{}",
        f.sql_csv("SELECT record, message FROM quarantine"),
        f.sql_csv("SELECT * FROM answers"),
        f.sql_csv("SELECT * FROM comments")
    );
    for year in ["1950", "2000", "2030", "1961"] {
        assert!(!stored.contains(year), "{year} stored: {stored}");
    }
    let record: serde_json::Value = serde_json::from_str(s(&q[1], "record").unwrap()).unwrap();
    assert_eq!(record["by"], "[birth_year]", "{record}");
    assert_eq!(record["time"], "yesterday", "{record}");
}
