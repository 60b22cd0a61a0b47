//! The warehouse and the source on an S3-compatible server (moto in CI, started by `.ci/run`).
//! Without `PALAUTE_TEST_S3_ENDPOINT` and `PALAUTE_TEST_S3_BUCKET` the test fails under CI=true
//! and is skipped, on the terminal, elsewhere.

use std::sync::Arc;

use object_store::ObjectStoreExt;

use crate::common::{Fixture, MAPPING, count_in, needs, palaute};

fn server() -> Option<(String, String)> {
    let v = needs(
        &["PALAUTE_TEST_S3_ENDPOINT", "PALAUTE_TEST_S3_BUCKET"],
        ".ci/run starts a moto server and sets them",
    )?;
    Some((v[0].clone(), v[1].clone()))
}

#[test]
fn a_pipeline_runs_from_s3_into_a_warehouse_on_s3() {
    let Some((endpoint, bucket)) = server() else {
        return;
    };
    let envs: Vec<(&str, &str)> = vec![
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    // the export, uploaded with object_store (a real S3 client)
    let store = Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_region("us-east-1")
            .with_bucket_name(&bucket)
            .build()
            .unwrap(),
    );
    let mut csv = String::from("id,time,kunta,q1,q2,nps,teksti\n");
    for i in 0..40 {
        csv.push_str(&format!(
            "{i},2024-03-{:02} 10:00,837,{},4,{},soita 040 123 4567\n",
            1 + i % 28,
            1 + i % 5,
            i % 11
        ));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let export = object_store::path::Path::from(format!("{run_id}/in/export.csv"));
    rt.block_on(store.put(&export, csv.clone().into_bytes().into()))
        .unwrap();

    let f = Fixture::new();
    let p = f.pipeline("", MAPPING);
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "location: in",
        &format!("location: s3://{bucket}/{run_id}/in"),
    );
    std::fs::write(&p, text).unwrap();
    let wh = format!("s3://{bucket}/{run_id}/warehouse");
    let run = || palaute(&["run", "--warehouse", &wh, p.to_str().unwrap()], &envs);
    let r = run();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("40 new"), "{}", r.stdout);
    assert_eq!(count_in(&wh, "responses", &envs), 40);
    let q = palaute(
        &[
            "sql",
            "--warehouse",
            &wh,
            "--format",
            "csv",
            "SELECT DISTINCT text FROM comments",
        ],
        &envs,
    );
    assert_eq!(q.stdout.trim(), "text\nsoita [phone]", "scrubbed on S3 too");
    // a rerun skips the unchanged object; the marts and the audit work on S3
    let r = run();
    assert!(
        r.stdout.contains("1 unchanged (skipped unread)"),
        "{}",
        r.stdout
    );
    let a = palaute(&["audit-disclosure", "--warehouse", &wh], &envs);
    assert_eq!(a.code, 0, "{}{}", a.stdout, a.stderr);
    assert!(a.stdout.contains("4 marts"), "{}", a.stdout);

    // the tool replaces the object with a cumulative export: read from the ledger's resume
    // point (kept on S3 with the warehouse), the object downloaded as any other
    for i in 40..45 {
        csv.push_str(&format!("{i},2024-04-02 10:00,837,3,3,7,\n"));
    }
    rt.block_on(store.put(&export, csv.into_bytes().into()))
        .unwrap();
    let r = run();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "export.csv: begins with the bytes of export.csv, already loaded: its first 39 rows not read again"
        ) && r.stdout.contains("rows: 6 read, 5 new, 0 updated, 1 duplicate"),
        "{}",
        r.stdout
    );
}
