//! Researcher extracts (issue 17): `palaute extract` and `extract verify` through the CLI, on the
//! demo warehouse and on small generated ones; the package read by pyarrow, DuckDB, polars and
//! the Frictionless validator.

use std::path::Path;

use crate::common::{Fixture, files_under, needs, palaute};

const SECRET: &str = "a-secret-of-the-tests-extracts";

fn spec_path() -> String {
    format!(
        "{}/pipelines/extracts/demo_research.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn extract(warehouse: &str, spec: &str, out: &Path, secret: &str) -> crate::common::Ran {
    palaute(
        &[
            "extract",
            spec,
            "--warehouse",
            warehouse,
            "--out",
            out.to_str().unwrap(),
        ],
        &[("PALAUTE_EXTRACT_SECRET", secret)],
    )
}

fn verify(warehouse: &str, dir: &Path, secret: &str) -> crate::common::Ran {
    palaute(
        &[
            "extract",
            "verify",
            dir.to_str().unwrap(),
            "--warehouse",
            warehouse,
        ],
        &[("PALAUTE_EXTRACT_SECRET", secret)],
    )
}

/// Every file of a package: name → bytes.
fn package(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// Every value and column name of a Parquet file, as text.
fn parquet_text(path: &Path) -> String {
    use arrow::array::AsArray;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
        std::fs::File::open(path).expect("the file"),
        1024,
    )
    .expect("a Parquet file");
    let mut out = String::new();
    for b in reader {
        let b = b.expect("a batch");
        for (i, f) in b.schema().fields().iter().enumerate() {
            out.push_str(f.name());
            out.push('\n');
            let col = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8).unwrap();
            for v in col.as_string::<i32>().iter().flatten() {
                out.push_str(v);
                out.push('\n');
            }
        }
    }
    out
}

/// The rows of `sql` over the warehouse as CSV lines (header dropped).
fn lines(f: &Fixture, sql: &str) -> Vec<String> {
    f.sql_csv(sql).lines().skip(1).map(str::to_string).collect()
}

#[test]
fn the_demo_extract_is_anonymous_reproducible_documented_and_read_by_other_tools() {
    let f = Fixture::new();
    let demo = f.path("demo");
    let r = palaute(&["demo", "--dir", demo.to_str().unwrap()], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let wh = demo.join("warehouse").display().to_string();
    let out = f.path("extract");
    // without a secret nothing is written
    let r = extract(&wh, &spec_path(), &out, "");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("PALAUTE_EXTRACT_SECRET"), "{}", r.stderr);
    assert!(!out.exists());
    let r = extract(&wh, &spec_path(), &out, SECRET);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("extract demo_research"), "{}", r.stdout);
    let files = package(&out);
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        [
            "answers.parquet",
            "codebook.md",
            "datapackage.json",
            "disclosure.md",
            "responses.parquet"
        ]
    );
    // no response key, load id or source object of the warehouse in any byte of the package
    let q = |sql: &str| {
        let r = palaute(&["sql", "--warehouse", &wh, "--format", "csv", sql], &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let secrets: Vec<String> = q("SELECT DISTINCT response_key FROM responses")
        .into_iter()
        .chain(q("SELECT DISTINCT load_id FROM responses"))
        .chain(q("SELECT DISTINCT source_object FROM responses"))
        .collect();
    assert!(secrets.len() > 500, "{}", secrets.len());
    for (name, bytes) in &files {
        // Parquet is compressed: its values are read back as text to be searched
        let text = if name.ends_with(".parquet") {
            parquet_text(&out.join(name))
        } else {
            String::from_utf8_lossy(bytes).to_string()
        };
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{name} holds '{s}'");
        }
        assert!(!text.contains(SECRET), "{name} holds the secret");
        for col in ["response_key", "submitted_at", "org_unit", "source_row"] {
            assert!(
                name.ends_with(".md") || !text.contains(col),
                "{name} names {col}"
            );
        }
    }
    // the same spec over the same warehouse state gives the same bytes, and verify says so
    let again = f.path("again");
    assert_eq!(extract(&wh, &spec_path(), &again, SECRET).code, 0);
    let derived = package(&again);
    let differing: Vec<&String> = files
        .keys()
        .filter(|k| derived.get(*k) != files.get(*k))
        .collect();
    assert!(
        differing.is_empty(),
        "re-derived bytes differ: {differing:?}"
    );
    let r = verify(&wh, &out, SECRET);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("responses.parquet: identical"),
        "{}",
        r.stdout
    );
    // comments only when asked for: as stored, scrubbed
    let with_comments = f.path("with-comments.yaml");
    std::fs::write(
        &with_comments,
        std::fs::read_to_string(spec_path())
            .unwrap()
            .replace("comments: false", "comments: true")
            .replace("name: demo_research", "name: demo_research_comments"),
    )
    .unwrap();
    let wc = f.path("wc");
    let r = extract(&wh, with_comments.to_str().unwrap(), &wc, SECRET);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let texts = parquet_text(&wc.join("comments.parquet"));
    assert!(texts.lines().count() > 20, "{texts}");
    assert!(
        texts.contains("[email]") || texts.contains("[phone]"),
        "the scrubbed markers are there"
    );
    let email = regex::Regex::new(r"[\w.+-]+@[\w-]+\.[\w.]+").unwrap();
    assert!(!email.is_match(&texts), "an e-mail address in an extract");
    // another secret: other pseudonyms, none shared
    let other = f.path("other");
    assert_eq!(
        extract(&wh, &spec_path(), &other, "another-secret-of-16+").code,
        0
    );
    let disclosure = String::from_utf8_lossy(&files["disclosure.md"]).to_string();
    assert!(
        disclosure.contains("k-anonymity: required 5"),
        "{disclosure}"
    );
    // a changed byte is found and named
    let mut bytes = files["responses.parquet"].clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(out.join("responses.parquet"), &bytes).unwrap();
    let r = verify(&wh, &out, SECRET);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("responses.parquet: differs — changed after the package was written"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("answers.parquet: identical"),
        "{}",
        r.stderr
    );

    // read by other tools, k and l checked independently, the descriptor validated
    let Some(v) = needs(
        &["PALAUTE_TEST_PYTHON"],
        "a Python with pyarrow, duckdb, polars and frictionless (.ci/run installs them)",
    ) else {
        return;
    };
    let script = r#"
import sys, json, hashlib, subprocess, os
import pyarrow.parquet as pq, duckdb, polars as pl
d, other = sys.argv[1], sys.argv[2]
dp = json.load(open(os.path.join(d, "datapackage.json")))
for r in dp["resources"]:
    b = open(os.path.join(d, r["path"]), "rb").read()
    assert r["bytes"] == len(b), r["path"]
    assert r["hash"] == "sha256:" + hashlib.sha256(b).hexdigest(), r["path"]
    assert pq.read_table(os.path.join(d, r["path"])).num_rows == r["palaute:rows"]
    assert pl.read_parquet(os.path.join(d, r["path"])).height == r["palaute:rows"]
resp = os.path.join(d, "responses.parquet")
k = duckdb.sql(f"SELECT min(n) FROM (SELECT count(*) n FROM '{resp}' GROUP BY age_group, area, time, service)").fetchall()[0][0]
l = duckdb.sql(f"SELECT min(c) FROM (SELECT count(DISTINCT nps) c FROM '{resp}' GROUP BY age_group, area, time, service)").fetchall()[0][0]
shared = duckdb.sql(f"SELECT count(*) FROM '{resp}' a JOIN '{os.path.join(other, 'responses.parquet')}' b USING (pseudonym)").fetchall()[0][0]
orphans = duckdb.sql(f"SELECT count(*) FROM '{os.path.join(d, 'answers.parquet')}' a ANTI JOIN '{resp}' r USING (pseudonym)").fetchall()[0][0]
fl = subprocess.run([os.path.join(os.path.dirname(sys.executable), "frictionless"), "validate",
                     os.path.join(d, "datapackage.json"), "--skip-errors", "byte-count,hash-count", "--json"],
                    capture_output=True, text=True)
report = json.loads(fl.stdout)
print(json.dumps({"k": k, "l": l, "shared": shared, "orphans": orphans, "valid": report["valid"],
                  "errors": [e.get("message") for t in report.get("tasks", []) for e in t.get("errors", [])]}))
"#;
    // verify's check left a changed file: restore it for the other tools
    std::fs::write(out.join("responses.parquet"), &files["responses.parquet"]).unwrap();
    let o = std::process::Command::new(&v[0])
        .args(["-c", script, out.to_str().unwrap(), other.to_str().unwrap()])
        .output()
        .expect("python runs");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let res: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(res["k"].as_i64().unwrap() >= 5, "{res}");
    assert!(res["l"].as_i64().unwrap() >= 2, "{res}");
    assert_eq!(res["shared"], 0, "{res}");
    assert_eq!(res["orphans"], 0, "{res}");
    assert_eq!(res["valid"], true, "frictionless: {res}");
}

/// A pipeline of `rows` (municipality, age group, nps) responses.
fn warehouse_of(f: &Fixture, rows: &[(&str, &str, u8)]) -> std::path::PathBuf {
    let mut csv = String::from("id,time,kunta,ika,q1,nps\n");
    for (i, (m, a, n)) in rows.iter().enumerate() {
        csv.push_str(&format!("{i},2024-03-{:02},{m},{a},4,{n}\n", 1 + i % 28));
    }
    f.input("a.csv", csv.as_bytes());
    let p = f.pipeline(
        "",
        "mapping:\n  instrument: thl_national\n  version: 2\n  response_id: id\n  submitted_at: time\n  municipality: kunta\n  age_group: ika\n  items:\n    availability: q1\n    recommend: nps\n",
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    p
}

fn small_spec(f: &Fixture, extra: &str) -> String {
    let text = format!(
        "name: small\npermit: TEST-1\ncolumns: [nps]\nquasi_identifiers:\n  area: [municipality, county]\n  age_group: [group, all]\n{extra}"
    );
    let p = f.path("small.yaml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn k_forces_generalisation_or_local_suppression_and_an_unmeetable_spec_writes_nothing() {
    let f = Fixture::new();
    // Tampere (837) 12 responses, Kangasala (211) 3, both in Pirkanmaa; one age group
    let mut rows = Vec::new();
    for i in 0..12 {
        rows.push(("837", "30-49", (i % 11) as u8));
    }
    for i in 0..3 {
        rows.push(("211", "30-49", (i * 3) as u8));
    }
    warehouse_of(&f, &rows);
    let wh = f.warehouse();
    // no suppression allowed: the municipality climbs to the county
    let out = f.path("x1");
    let r = extract(
        &wh,
        &small_spec(&f, "max_suppressed_pct: 0\n"),
        &out,
        SECRET,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("area county"), "{}", r.stdout);
    assert!(
        r.stdout.contains("15 of 15 responses (0 suppressed"),
        "{}",
        r.stdout
    );
    // 20 % may be suppressed: the municipality stays and Kangasala's 3 are suppressed
    let out2 = f.path("x2");
    let r = extract(
        &wh,
        &small_spec(&f, "max_suppressed_pct: 20\n"),
        &out2,
        SECRET,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("area municipality"), "{}", r.stdout);
    assert!(
        r.stdout.contains("12 of 15 responses (3 suppressed, 20 %)"),
        "{}",
        r.stdout
    );
    let d = std::fs::read_to_string(out2.join("disclosure.md")).unwrap();
    assert!(d.contains("locally suppressed: 3 (20 %)"), "{d}");
    assert!(d.contains("k-anonymity: required 5, achieved 12"), "{d}");
    // the suppressed responses' answers left with them
    let dp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out2.join("datapackage.json")).unwrap()).unwrap();
    let rows_of = |name: &str| {
        dp["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["palaute:rows"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(rows_of("responses"), 12);
    assert_eq!(rows_of("answers"), 12);
    // k = 20 of 15 responses cannot be met: refused, nothing written
    let out3 = f.path("x3");
    let r = extract(&wh, &small_spec(&f, "k: 20\n"), &out3, SECRET);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("k = 20 and l = 2 cannot be met"),
        "{}",
        r.stderr
    );
    assert!(!out3.exists());
    // a column that never leaves is refused at once
    std::fs::write(
        f.path("bad.yaml"),
        "name: bad\npermit: T\ncolumns: [response_key]\nquasi_identifiers:\n  area: [county]\n",
    )
    .unwrap();
    let r = extract(&wh, f.path("bad.yaml").to_str().unwrap(), &out3, SECRET);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("'response_key' never leaves the warehouse"),
        "{}",
        r.stderr
    );
}

#[test]
fn vacuum_keeps_what_an_extract_needs_and_sql_reads_the_past() {
    let f = Fixture::new();
    let rows: Vec<(&str, &str, u8)> = (0..20).map(|i| ("837", "30-49", (i % 11) as u8)).collect();
    let p = warehouse_of(&f, &rows);
    let wh = f.warehouse();
    let out = f.path("x");
    let spec = small_spec(&f, "");
    assert_eq!(extract(&wh, &spec, &out, SECRET).code, 0);
    let seq_before: i64 = lines(&f, "SELECT count(*) FROM responses")[0]
        .parse()
        .unwrap();
    assert_eq!(seq_before, 20);
    // the next export edits every answer and adds one: the files the extract read are replaced
    let mut csv = String::from("id,time,kunta,ika,q1,nps\n");
    for i in 0..21 {
        csv.push_str(&format!(
            "{i},2024-03-{:02},837,30-49,5,{}\n",
            1 + i % 28,
            (i + 1) % 11
        ));
    }
    f.input("b.csv", csv.as_bytes());
    assert_eq!(f.run(&p).code, 0);
    // the past as it was: the ledger row of the first run
    let r = palaute(
        &[
            "sql",
            "--warehouse",
            &wh,
            "--format",
            "csv",
            "--as-of",
            "1",
            "SELECT count(*) AS n FROM responses",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "n\n20\n");
    assert_eq!(lines(&f, "SELECT count(*) FROM responses"), ["21"]);
    let r = palaute(
        &["sql", "--warehouse", &wh, "--as-of", "99", "SELECT 1"],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    // vacuum refuses to delete what the extract needs, naming it
    let r = palaute(&["vacuum", "--warehouse", &wh, "--retention", "0"], &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("that extract small (ledger row"),
        "{}",
        r.stderr
    );
    let r = verify(&wh, &out, SECRET);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // forced, it deletes them, and verify says the version is gone
    let r = palaute(
        &["vacuum", "--warehouse", &wh, "--retention", "0", "--force"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = verify(&wh, &out, SECRET);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no longer has version"), "{}", r.stderr);
}
