//! Privacy: open text is scrubbed of each kind of personal data, ordinary numbers stay, and
//! identifier columns of the source never reach the warehouse.

use crate::common::{Fixture, MAPPING, files_under, palaute, s};

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

/// The response key a warehouse made without a secret held: XXH3-128 of (system, survey, id).
fn unkeyed(id: &str) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (i, part) in ["test", "s1", id].iter().enumerate() {
        if i > 0 {
            h.update(b"\x1f");
        }
        h.update(part.as_bytes());
    }
    format!("{:032x}", h.digest128())
}

const TEN: &str = "id,time,kunta,q1,q2,nps,teksti\n\
    1,2024-02-01,837,4,4,8,hyvä\n2,2024-02-01,837,4,4,8,\n3,2024-02-02,837,5,4,9,\n\
    4,2024-02-02,837,3,4,7,\n5,2024-02-03,837,4,2,8,\n6,2024-02-03,837,4,4,10,\n\
    7,2024-02-04,837,1,4,0,\n8,2024-02-04,837,4,4,8,\n9,2024-02-05,837,4,5,8,\n\
    10,2024-02-05,837,2,4,5,\n";

fn keys(f: &Fixture, envs: &[(&str, &str)]) -> Vec<String> {
    let r = palaute(
        &[
            "sql",
            "--warehouse",
            &f.warehouse(),
            "--format",
            "csv",
            "SELECT response_key FROM responses ORDER BY source_row",
        ],
        envs,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout.lines().skip(1).map(str::to_string).collect()
}

#[test]
fn response_keys_are_keyed_with_a_secret_of_the_warehouse_that_no_table_holds() {
    use std::os::unix::fs::PermissionsExt;
    // no PALAUTE_KEY_SECRET: the warehouse makes its own at its first run
    let own = [("PALAUTE_KEY_SECRET", "")];
    let run = |f: &Fixture, envs: &[(&str, &str)]| {
        let p = f.pipeline("", MAPPING);
        palaute(
            &["run", "--warehouse", &f.warehouse(), p.to_str().unwrap()],
            envs,
        )
    };
    let f = Fixture::new();
    f.input("a.csv", TEN.as_bytes());
    let r = run(&f, &own);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let secret_file = f.path("wh/_keys/response_key.secret");
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let dir_mode = std::fs::metadata(f.path("wh/_keys"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, "{dir_mode:o}");
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    let secret = secret.trim();
    assert_eq!(secret.len(), 64);
    // no stored key is the enumerable unkeyed hash of a source id
    let stored = keys(&f, &own);
    assert_eq!(stored.len(), 10);
    let guesses: Vec<String> = (0..1000).map(|i| unkeyed(&i.to_string())).collect();
    for k in &stored {
        assert!(
            !guesses.contains(k),
            "{k} is the unkeyed hash of a source id"
        );
    }
    // reruns and re-deliveries deduplicate as before
    let r = run(&f, &own);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("1 unchanged"), "{}", r.stdout);
    // the first row edited: the export cannot be resumed, every row is matched by its key
    f.input(
        "b.csv",
        TEN.replace("1,2024-02-01,837,4,4,8,hyvä", "1,2024-02-01,837,5,4,8,hyvä")
            .as_bytes(),
    );
    let r = run(&f, &own);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("0 new, 1 updated, 9 duplicate"),
        "{}",
        r.stdout
    );
    assert_eq!(keys(&f, &own), stored, "an edited response keeps its key");
    // another warehouse, the same export: other keys
    let g = Fixture::new();
    g.input("a.csv", TEN.as_bytes());
    assert_eq!(run(&g, &own).code, 0);
    let other = keys(&g, &own);
    assert!(stored.iter().all(|k| !other.contains(k)));
    // a different secret given for the first warehouse is refused before anything is written
    let before = f.dump();
    let r = run(
        &f,
        &[("PALAUTE_KEY_SECRET", crate::common::TEST_KEY_SECRET)],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("not the one this warehouse's response keys were made with"),
        "{}",
        r.stderr
    );
    assert_eq!(f.dump(), before);
    // the secret is in no table, no output, no data file
    let mut everything = f.dump();
    everything.push_str(&f.sql_csv("SELECT * FROM runs"));
    everything.push_str(&r.stdout);
    everything.push_str(&r.stderr);
    assert!(!everything.contains(secret));
    for p in files_under(&f.path("wh")) {
        if p == secret_file {
            continue;
        }
        let b = std::fs::read(&p).unwrap();
        assert!(
            !b.windows(64).any(|w| w == secret.as_bytes()),
            "{}",
            p.display()
        );
    }
}

#[test]
fn a_warehouse_made_with_unkeyed_keys_is_migrated_once_by_rekey() {
    let f = Fixture::new();
    f.input("a.csv", TEN.as_bytes());
    let p = f.pipeline("", MAPPING);
    let wh = f.warehouse();
    // as palaute made warehouses before keys were keyed (a test hook)
    let r = f.run_env(&p, &[("PALAUTE_FAILPOINT", "skip:key-secret")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let legacy = keys(&f, &[]);
    let want: Vec<String> = (1..=10).map(|i| unkeyed(&i.to_string())).collect();
    assert_eq!(legacy, want);
    let legacy_seq = f.sql("SELECT max(seq) AS s FROM runs")[0]["s"]
        .as_i64()
        .unwrap();
    let answers = f.count("answers");
    // a run refuses to mix keys, and says what to do
    // the first row edited: the export cannot be resumed, every row is matched by its key
    f.input(
        "b.csv",
        TEN.replace("1,2024-02-01,837,4,4,8,hyvä", "1,2024-02-01,837,5,4,8,hyvä")
            .as_bytes(),
    );
    let r = f.run(&p);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("palaute rekey"), "{}", r.stderr);
    // the migration
    let r = palaute(&["rekey", "--warehouse", &wh], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("keys now keyed"), "{}", r.stdout);
    let migrated = keys(&f, &[]);
    assert_eq!(migrated.len(), 10);
    assert!(migrated.iter().all(|k| !legacy.contains(k)));
    // every answer still belongs to its response
    let joined = f.sql(
        "SELECT count(*) AS n FROM answers a JOIN responses r ON a.response_key = r.response_key",
    );
    assert_eq!(joined[0]["n"].as_i64(), Some(answers));
    // and the next delivery deduplicates against the migrated keys: one edit, nine duplicates
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("0 new, 1 updated, 9 duplicate"),
        "{}",
        r.stdout
    );
    assert_eq!(keys(&f, &[]), migrated);
    // once is enough; rolling back to before it is refused
    let r = palaute(&["rekey", "--warehouse", &wh], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("keyed already"), "{}", r.stdout);
    let r = palaute(
        &[
            "rollback",
            "--warehouse",
            &wh,
            "--to-version",
            &legacy_seq.to_string(),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("before the key migration"),
        "{}",
        r.stderr
    );
}

#[test]
fn first_names_are_scrubbed_when_the_pipeline_asks() {
    let f = Fixture::new();
    let csv = "id,time,kunta,q1,q2,nps,teksti\n\
        1,2024-02-01,837,4,4,8,Hoitaja Liisa Virtanen oli ihana ja kiitos Matille\n\
        2,2024-02-01,837,4,4,8,Toivo on kova. Asun Kaarinassa.\n";
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline_named(
        "t",
        "",
        MAPPING,
        "privacy:\n  scrub: [url, email, iban, hetu, phone, address, name]\n",
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = f.sql(
        "SELECT c.text, c.redactions, c.redaction_kinds FROM comments c JOIN responses r ON c.response_key = r.response_key ORDER BY r.source_row",
    );
    assert_eq!(
        s(&rows[0], "text"),
        Some("Hoitaja [name] oli ihana ja kiitos [name]")
    );
    assert_eq!(s(&rows[0], "redaction_kinds"), Some("name"));
    assert_eq!(rows[0]["redactions"].as_i64(), Some(2));
    assert_eq!(s(&rows[1], "text"), Some("Toivo on kova. Asun Kaarinassa."));
    assert!(!r.stdout.contains("Liisa") && !r.stderr.contains("Liisa"));
}

#[test]
fn identifier_columns_by_position_and_identifying_values_in_a_dimension_fail_the_run() {
    // Qualtrics' legacy layout heads its columns V1…V10 (V3 name, V5 e-mail, V6 IP address)
    let f = Fixture::new();
    let legacy = "V1,V2,V3,V4,V5,V6,V7,V8,V9,V10,kunta,Q1\r\n\
        ResponseID,ResponseSet,Name,ExternalDataReference,EmailAddress,IPAddress,Status,StartDate,EndDate,Finished,Kunta,Sain palvelua\r\n\
        R_1,Default,Maija M,,maija@example.fi,192.0.2.7,0,2024-02-01 10:00:00,2024-02-01 10:05:00,1,092,5\r\n";
    f.input("legacy.csv", legacy.as_bytes());
    let m = |unit: &str| {
        format!(
            "mapping:\n  instrument: thl_national\n  version: 2\n  response_id: V1\n  submitted_at: V9\n  municipality: kunta\n  org_unit: {unit}\n  items:\n    availability: Q1\n"
        )
    };
    let legacy_pipeline = |unit: &str| {
        let p = f.pipeline(
            "format:\n  kind: csv\n  layout: qualtrics_legacy\n",
            &m(unit),
        );
        let t = std::fs::read_to_string(&p)
            .unwrap()
            .replace("*.csv", "legacy.csv");
        std::fs::write(&p, t).unwrap();
        p
    };
    for col in ["V3", "V5", "V6"] {
        let p = legacy_pipeline(col);
        let r = f.check(&p);
        assert_eq!(r.code, 2, "{col}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr
                .contains(&format!("column '{col}' identifies the respondent")),
            "{}",
            r.stderr
        );
        assert_eq!(f.run(&p).code, 2);
    }
    assert!(!f.path("wh/responses").exists() || f.count("responses") == 0);
    // a generic export whose mapped dimension holds e-mail addresses (or phones, IPs, hetu)
    let g = Fixture::new();
    g.input(
        "a.csv",
        b"id,time,kunta,yksikko,q1\n1,2024-02-01,837,Ensiapu,4\n2,2024-02-01,837,matti@example.fi,4\n",
    );
    let mapping = "mapping:\n  instrument: thl_national\n  version: 2\n  response_id: id\n  submitted_at: time\n  municipality: kunta\n  org_unit: yksikko\n  items:\n    availability: q1\n";
    let p = g.pipeline("", mapping);
    for r in [g.check(&p), g.run(&p)] {
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("a.csv row 3")
                && r.stderr.contains("column 'yksikko'")
                && r.stderr.contains("holds an e-mail address"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("matti"), "{}", r.stderr);
    }
    // nothing was written
    assert_eq!(g.count("responses"), 0);
    assert!(!g.sql_csv("SELECT * FROM quarantine").contains("matti"));
}
