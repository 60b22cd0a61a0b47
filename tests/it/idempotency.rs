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

    // both exports again under new names, in one run: the newest wins, nothing changes
    let before = f.dump();
    f.input(
        "export_02b.csv",
        export(&[(1, "01-10", 1), (2, "01-20", 5), (3, "02-05", 3)]).as_bytes(),
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("0 new, 0 updated, 3 duplicate"),
        "{}",
        r.stdout
    );
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
