//! Spontaneous feedback: a `kind: feedback` pipeline writes the feedback table; contact details
//! never enter the warehouse, only the flag.

use crate::common::{Fixture, files_under, palaute, s};

const PIPELINE: &str = r#"name: palaute_lomake
kind: feedback
source:
  kind: files
  location: in
  glob: "*.csv"
  system: verkkolomake
  survey: anna-palautetta
mapping:
  feedback_id: id
  received_at: saapunut
  feedback_type: tyyppi
  org_unit: yksikko
  service:
    column: palvelu
    values: {Kotihoito: SH-KOT}
  channel: kanava
  municipality: kunta
  text: palaute
  contact_requested: haluan_yhteydenoton
  contact_columns: [sahkoposti, puhelin, nimi]
quality:
  max_quarantined_pct: 50
"#;

const HEADER: &str = "id;saapunut;tyyppi;yksikko;palvelu;kanava;kunta;palaute;haluan_yhteydenoton;sahkoposti;puhelin;nimi\n";

#[test]
fn feedback_is_typed_scrubbed_and_keeps_only_the_contact_flag() {
    let f = Fixture::new();
    let p = f.path("feedback.yaml");
    std::fs::write(&p, PIPELINE).unwrap();
    let export = format!(
        "{HEADER}\
         f1;3.6.2024 10.15;Kiitos;Kotihoito Etelä;Kotihoito;Verkkolinkki;Lahti;Hoitaja oli ihana, kiitos!;Ei;;;\n\
         f2;4.6.2024 12.00;Moite;Kotihoito Etelä;Kotihoito;Verkkolinkki;Lahti;Käynti myöhästyi. Soittakaa 040 555 1234 tai liisa.virtanen@example.fi;Kyllä;liisa.virtanen@example.fi;040 555 1234;Liisa Virtanen\n\
         f3;5.6.2024 9.30;Kehitysehdotus;;;Sähköposti;Hollola;Pidempiä käyntejä;;matti@example.fi;;Matti Meikäläinen\n\
         f4;5.6.2024 9.45;Valitus!!;;;;Lahti;Jotain;;;;\n"
    );
    f.input("palaute_2024-06.csv", export.as_bytes());
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rows = f.sql("SELECT source_row, feedback_type, org_unit, service, channel, municipality, county, period, contact_requested, text, redactions FROM feedback ORDER BY source_row");
    assert_eq!(rows.len(), 3, "{rows:?}");
    let types: Vec<&str> = rows
        .iter()
        .map(|r| s(r, "feedback_type").unwrap())
        .collect();
    assert_eq!(types, vec!["praise", "complaint", "suggestion"]);
    let contact: Vec<bool> = rows
        .iter()
        .map(|r| r["contact_requested"].as_bool().unwrap())
        .collect();
    // f2 asked; f3 left an e-mail address, which counts as asking
    assert_eq!(contact, vec![false, true, true]);
    assert_eq!(s(&rows[1], "service"), Some("SH-KOT"));
    assert_eq!(s(&rows[1], "channel"), Some("web"));
    assert_eq!(s(&rows[0], "municipality"), Some("398"));
    assert_eq!(s(&rows[0], "period"), Some("2024-06"));
    assert_eq!(
        s(&rows[1], "text"),
        Some("Käynti myöhästyi. Soittakaa [phone] tai [email]")
    );
    assert_eq!(rows[1]["redactions"].as_i64(), Some(2));
    let q = f.sql("SELECT source_row, reason_codes FROM quarantine");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["source_row"].as_i64(), Some(5));
    assert!(s(&q[0], "reason_codes").unwrap().contains("invalid_code"));
    // no survey rows, no marts from feedback
    assert_eq!(f.count("responses"), 0);
    assert!(!f.path("wh/item_scores").exists());
    for file in files_under(&f.path("wh")) {
        let b = std::fs::read(&file).unwrap();
        for secret in [&b"Virtanen"[..], b"example.fi", b"555 1234", b"Meik"] {
            assert!(
                !b.windows(secret.len()).any(|w| w == secret),
                "{} holds {}",
                file.display(),
                String::from_utf8_lossy(secret)
            );
        }
    }

    // a newer cumulative export: f1 reclassified, f5 new; nothing is duplicated
    let newer = format!(
        "{HEADER}\
         f1;3.6.2024 10.15;Kysymys;Kotihoito Etelä;Kotihoito;Verkkolinkki;Lahti;Hoitaja oli ihana, kiitos!;Ei;;;\n\
         f2;4.6.2024 12.00;Moite;Kotihoito Etelä;Kotihoito;Verkkolinkki;Lahti;Käynti myöhästyi. Soittakaa 040 555 1234 tai liisa.virtanen@example.fi;Kyllä;liisa.virtanen@example.fi;040 555 1234;Liisa Virtanen\n\
         f5;1.7.2024 8.00;Kiitos;;;Paperilomake;Lahti;Hyvä;Ei;;;\n"
    );
    f.input("palaute_2024-07.csv", newer.as_bytes());
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rows = f.sql("SELECT feedback_type, period FROM feedback ORDER BY received_at");
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (s(r, "feedback_type").unwrap(), s(r, "period").unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("question", "2024-06"),
            ("complaint", "2024-06"),
            ("suggestion", "2024-06"),
            ("praise", "2024-07")
        ]
    );
    // a rerun reads nothing
    assert_eq!(f.run(&p).code, 0);
    assert_eq!(f.count("feedback"), 4);
}

#[test]
fn a_feedback_pipeline_takes_no_instrument_or_background() {
    let f = Fixture::new();
    let p = f.path("feedback.yaml");
    for (extra, want) in [
        ("  instrument: thl_national\n", "no instrument"),
        ("  age_group: ika\n", "no respondent background"),
    ] {
        std::fs::write(
            &p,
            PIPELINE.replace("  text: palaute\n", &format!("  text: palaute\n{extra}")),
        )
        .unwrap();
        let r = palaute(&["check", p.to_str().unwrap()], &[]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains(want), "{}", r.stderr);
    }
    std::fs::write(&p, PIPELINE.replace("  feedback_type: tyyppi\n", "")).unwrap();
    let r = palaute(&["check", p.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("feedback_type and mapping.text are required"),
        "{}",
        r.stderr
    );
}
