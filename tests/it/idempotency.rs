//! Reruns and cumulative exports never duplicate; a response edited at the source is updated in
//! place; an unchanged object is not read again.

use crate::common::{Fixture, MAPPING, s};

fn export(rows: &[(u32, &str, u32)]) -> String {
    let mut csv = String::from("id,time,kunta,q1,q2,nps,teksti\n");
    for (id, day, q1) in rows {
        csv.push_str(&format!("{id},2024-{day} 10:00,837,{q1},4,8,teksti {id}\n"));
    }
    csv
}

#[test]
fn rerun_is_identical_and_skips_unchanged_objects() {
    let f = Fixture::new();
    f.input(
        "a.csv",
        export(&[(1, "01-10", 4), (2, "02-10", 5)]).as_bytes(),
    );
    let p = f.pipeline("", MAPPING);
    assert_eq!(f.run(&p).code, 0);
    let first = f.dump();
    let r = f.run(&p);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("no_change"), "{}", r.stdout);
    assert!(
        r.stdout.contains("0 read, 1 unchanged (skipped unread)"),
        "{}",
        r.stdout
    );
    assert_eq!(f.dump(), first);
    let runs =
        f.sql("SELECT status, rows_read FROM runs WHERE pipeline <> 'aggregate' ORDER BY seq");
    assert_eq!(s(&runs[1], "status"), Some("no_change"));
    assert_eq!(runs[1]["rows_read"].as_i64(), Some(0));
}

#[test]
fn cumulative_export_adds_only_new_rows_and_updates_edited_ones() {
    let f = Fixture::new();
    f.input(
        "export_01.csv",
        export(&[(1, "01-10", 4), (2, "01-20", 5)]).as_bytes(),
    );
    let p = f.pipeline("", MAPPING);
    assert_eq!(f.run(&p).code, 0);
    assert_eq!(f.count("responses"), 2);
    // February's export repeats January's rows, edits response 1 and adds response 3
    f.input(
        "export_02.csv",
        export(&[(1, "01-10", 1), (2, "01-20", 5), (3, "02-05", 3)]).as_bytes(),
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("1 new, 1 updated, 1 duplicate"),
        "{}",
        r.stdout
    );
    assert_eq!(f.count("responses"), 3);
    let a = f.sql("SELECT r.source_object, a.value FROM answers a JOIN responses r ON a.response_key = r.response_key WHERE a.item_code = 'availability' ORDER BY r.submitted_at");
    let vals: Vec<i64> = a.iter().map(|r| r["value"].as_i64().unwrap()).collect();
    assert_eq!(vals, vec![1, 5, 3], "response 1 updated in place");
    assert_eq!(s(&a[0], "source_object"), Some("export_02.csv"));
    // one answer row per item and response, one comment per response: nothing duplicated
    assert_eq!(f.count("answers"), 6);
    assert_eq!(f.count("comments"), 3);

    // both exports again under new names, in one run: the newest wins (response 1 stays as
    // edited), nothing changes; every row of both is read (only the object read last may
    // resume, and export_01b.csv does not begin with export_02.csv's bytes)
    let before = f.dump();
    f.input(
        "export_01b.csv",
        export(&[(1, "01-10", 4), (2, "01-20", 5)]).as_bytes(),
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    f.input(
        "export_02b.csv",
        export(&[(1, "01-10", 1), (2, "01-20", 5), (3, "02-05", 3)]).as_bytes(),
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout
            .contains("rows: 5 read, 0 new, 0 updated, 5 duplicate"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("not read again"), "{}", r.stdout);
    assert_eq!(f.dump(), before);
}

#[test]
fn a_changed_object_is_read_again() {
    let f = Fixture::new();
    f.input("all.csv", export(&[(1, "01-10", 4)]).as_bytes());
    let p = f.pipeline("", MAPPING);
    assert_eq!(f.run(&p).code, 0);
    // the tool overwrites the same file with a cumulative export
    f.input(
        "all.csv",
        export(&[(1, "01-10", 4), (2, "03-01", 2)]).as_bytes(),
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("1 new, 0 updated, 1 duplicate"),
        "{}",
        r.stdout
    );
    assert_eq!(f.count("responses"), 2);
    let h = crate::common::palaute(&["history", "--warehouse", &f.warehouse(), "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let loads: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["pipeline"] != "aggregate")
        .collect();
    assert_eq!(loads[1]["objects"][0]["state"], "changed");
}

/// Enough rows that a chunk's rows are written by several threads at once (each partition by
/// one of them) and that the reading thread fills and recycles its buffers several times (a
/// chunk is 16,384 records), spread over 24 months and five counties.
#[test]
fn a_large_export_over_many_partitions_loads_each_row_once_and_repeats_as_duplicates() {
    use std::collections::BTreeMap;
    let f = Fixture::new();
    let kunnat = ["091", "837", "564", "853", "179"];
    let n = 40_000u32;
    let mut csv = String::from("id,time,kunta,q1,q2,nps,teksti\n");
    let mut expected: BTreeMap<(String, String), i64> = BTreeMap::new();
    let (mut q2_answered, mut texts, mut bad) = (0i64, 0i64, 0i64);
    for i in 1..=n {
        let month = i % 24;
        let period = format!("{}-{:02}", 2023 + month / 12, month % 12 + 1);
        let kunta = if i % 500 == 0 {
            bad += 1;
            "999"
        } else {
            kunnat[(i as usize / 3) % kunnat.len()]
        };
        let q2 = if i % 7 == 0 {
            String::new()
        } else {
            (i % 5 + 1).to_string()
        };
        let teksti = if i % 3 == 0 { "ihan hyvä" } else { "" };
        csv.push_str(&format!(
            "{i},{period}-{:02}T10:00:00+02:00,{kunta},{},{q2},{},{teksti}\n",
            i % 27 + 1,
            i % 5 + 1,
            i % 11
        ));
        if kunta != "999" {
            *expected.entry((period, kunta.to_string())).or_default() += 1;
            q2_answered += i64::from(!q2.is_empty());
            texts += i64::from(!teksti.is_empty());
        }
    }
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline("", MAPPING);
    let wh = f.warehouse();
    let run = |p: &std::path::Path| {
        crate::common::palaute(
            &[
                "run",
                "--no-aggregate",
                "--warehouse",
                &wh,
                p.to_str().unwrap(),
            ],
            &[],
        )
    };
    let r = run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let got: BTreeMap<(String, String), i64> = f
        .sql("SELECT period, municipality, count(*) AS n, count(DISTINCT response_key) AS k FROM responses GROUP BY period, municipality")
        .iter()
        .map(|row| {
            assert_eq!(row["n"], row["k"], "a response twice: {row:?}");
            (
                (
                    s(row, "period").unwrap().to_string(),
                    s(row, "municipality").unwrap().to_string(),
                ),
                row["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    let loaded: i64 = expected.values().sum();
    assert_eq!(loaded, i64::from(n) - bad);
    let items = f.sql(
        "SELECT item_code, count(*) AS n FROM answers WHERE status = 'answered' GROUP BY item_code ORDER BY item_code",
    );
    let by_item: BTreeMap<&str, i64> = items
        .iter()
        .map(|r| (s(r, "item_code").unwrap(), r["n"].as_i64().unwrap()))
        .collect();
    assert_eq!(by_item.get("availability"), Some(&loaded));
    assert_eq!(by_item.get("encounter"), Some(&q2_answered));
    assert_eq!(by_item.len(), 2, "{by_item:?}");
    // the recommendation answer is a column of the response
    assert_eq!(f.count("responses WHERE nps IS NOT NULL"), loaded);
    assert_eq!(f.count("comments"), texts);
    assert_eq!(f.count("quarantine"), bad);
    let first = f.dump();

    // the same rows again under another name, in reverse order (so that the export does not
    // begin with a.csv's bytes and every row is looked up): every one a duplicate, nothing
    // written
    let (header, rows) = csv.split_once('\n').unwrap();
    let mut reversed: Vec<&str> = rows.lines().collect();
    reversed.reverse();
    f.input(
        "b.csv",
        format!("{header}\n{}\n", reversed.join("\n")).as_bytes(),
    );
    let r = run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("0 new, 0 updated, {} duplicate, 0 quarantined", n)),
        "{}",
        r.stdout
    );
    assert_eq!(f.dump(), first);
}
