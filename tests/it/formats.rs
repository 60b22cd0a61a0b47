//! Spreadsheet, JSON and multi-header CSV exports, each written the way its tool writes it, run
//! through `palaute run` and read back through `palaute sql`.

use base64::Engine;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

use crate::common::{Fixture, files_under, int_str, s};

fn write_pipeline(f: &Fixture, glob: &str, format: &str, mapping: &str) -> std::path::PathBuf {
    let text = format!(
        "name: t\nsource:\n  kind: files\n  location: in\n  glob: \"{glob}\"\n  system: test\n  survey: s1\n{format}{mapping}quality:\n  max_quarantined_pct: 50\n"
    );
    let p = f.path("t.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A second run over the same objects reads nothing and changes nothing.
fn rerun_loads_nothing(f: &Fixture, p: &std::path::Path) {
    let before = f.dump();
    let r = f.run(p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let last = f.sql(
        "SELECT rows_read, rows_loaded FROM runs WHERE pipeline = 't' ORDER BY seq DESC LIMIT 1",
    );
    assert_eq!(last[0]["rows_read"].as_i64(), Some(0));
    assert_eq!(last[0]["rows_loaded"].as_i64(), Some(0));
    assert_eq!(f.dump(), before);
}

const FORMS_MAPPING: &str = r#"mapping:
  instrument: thl_national
  version: 2
  response_id: ID
  submitted_at: Completion time
  started_at: Start time
  municipality: Kunta
  items:
    availability: Sain palvelua silloin kun tarvitsin.
    recommend: Kuinka todennäköisesti suosittelisit palvelua?
    open: Mitä muuta haluat sanoa?
  ignore: [Last modified time]
"#;

/// A Microsoft Forms export: an instructions sheet first, the answers on "Form1".
fn forms_workbook(path: &std::path::Path) {
    let mut wb = Workbook::new();
    let info = wb.add_worksheet();
    info.set_name("Ohje").unwrap();
    info.write_string(0, 0, "Vastaukset ovat välilehdellä Form1")
        .unwrap();
    let ws = wb.add_worksheet();
    ws.set_name("Form1").unwrap();
    let header = [
        "ID",
        "Start time",
        "Completion time",
        "Email",
        "Name",
        "Last modified time",
        "Kunta",
        "Sain palvelua silloin kun tarvitsin.",
        "Kuinka todennäköisesti suosittelisit palvelua?",
        "Mitä muuta haluat sanoa?",
    ];
    for (c, h) in header.iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    let date = Format::new().set_num_format("d.m.yyyy h:mm");
    let t = |s: &str| ExcelDateTime::parse_from_str(s).unwrap();
    // row 2: dates as date cells
    ws.write_number(1, 0, 1).unwrap();
    ws.write_datetime_with_format(1, 1, t("2024-03-05T14:10:00"), &date)
        .unwrap();
    ws.write_datetime_with_format(1, 2, t("2024-03-05T14:22:00"), &date)
        .unwrap();
    ws.write_string(1, 3, "maija.meikalainen@example.fi")
        .unwrap();
    ws.write_string(1, 4, "Maija Meikäläinen").unwrap();
    ws.write_string(1, 6, "Lahti").unwrap();
    ws.write_string(1, 7, "Täysin samaa mieltä").unwrap();
    ws.write_number(1, 8, 9).unwrap();
    ws.write_string(1, 9, "Hyvä palvelu, soita 040 123 4567")
        .unwrap();
    // row 3: dates as text, the municipality as a number
    ws.write_number(2, 0, 2).unwrap();
    ws.write_string(2, 2, "6.3.2024 9.15").unwrap();
    ws.write_string(2, 3, "teppo@example.fi").unwrap();
    ws.write_string(2, 4, "Teppo Testaaja").unwrap();
    ws.write_number(2, 6, 398).unwrap();
    ws.write_string(2, 7, "En osaa sanoa").unwrap();
    ws.write_number(2, 8, 6).unwrap();
    // row 4: a date that lost its format (a bare serial number): 1 April 2024 at noon
    ws.write_number(3, 0, 3).unwrap();
    ws.write_number(3, 2, 45383.5).unwrap();
    ws.write_string(3, 6, "Lahti").unwrap();
    ws.write_number(3, 7, 4).unwrap();
    ws.write_number(3, 8, 10).unwrap();
    // row 5: out of the 0–10 range
    ws.write_number(4, 0, 4).unwrap();
    ws.write_string(4, 2, "7.3.2024 10.00").unwrap();
    ws.write_string(4, 6, "Lahti").unwrap();
    ws.write_number(4, 8, 11).unwrap();
    wb.save(path).unwrap();
}

#[test]
fn xlsx_microsoft_forms_layout_sheet_by_name_and_every_kind_of_date() {
    let f = Fixture::new();
    forms_workbook(&f.path("in/vastaukset.xlsx"));
    let p = write_pipeline(
        &f,
        "*.xlsx",
        "format:\n  kind: spreadsheet\n  sheet: Form1\n",
        FORMS_MAPPING,
    );
    let c = f.check(&p);
    assert_eq!(c.code, 0, "{}{}", c.stdout, c.stderr);
    // the plan names the identifier columns as left out
    assert!(
        c.stdout.contains("Email") && c.stdout.contains("Name"),
        "{}",
        c.stdout
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rows = f.sql(
        "SELECT source_row, municipality, nps, CAST(submitted_at AS VARCHAR) AS t, CAST(started_at AS VARCHAR) AS st FROM responses ORDER BY source_row",
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    // sheet rows: the header is row 1
    let rownums: Vec<i64> = rows
        .iter()
        .map(|r| r["source_row"].as_i64().unwrap())
        .collect();
    assert_eq!(rownums, vec![2, 3, 4]);
    // Helsinki is UTC+2 in March, UTC+3 from the end of March
    assert!(
        s(&rows[0], "t").unwrap().starts_with("2024-03-05T12:22:00"),
        "{rows:?}"
    );
    assert!(
        s(&rows[0], "st")
            .unwrap()
            .starts_with("2024-03-05T12:10:00")
    );
    assert!(s(&rows[1], "t").unwrap().starts_with("2024-03-06T07:15:00"));
    assert!(s(&rows[2], "t").unwrap().starts_with("2024-04-01T09:00:00"));
    for r in &rows {
        assert_eq!(s(r, "municipality"), Some("398"));
    }
    let a = f.sql("SELECT source_row, value, status FROM answers a JOIN responses r USING (response_key) WHERE item_code = 'availability' ORDER BY source_row");
    assert_eq!(a[0]["value"].as_i64(), Some(5));
    assert_eq!(s(&a[1], "status"), Some("cant_say"));
    assert_eq!(a[2]["value"].as_i64(), Some(4));
    let q = f.sql("SELECT source_row, reason_codes FROM quarantine");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["source_row"].as_i64(), Some(5));
    assert!(s(&q[0], "reason_codes").unwrap().contains("out_of_range"));
    let c = f.sql("SELECT text FROM comments");
    assert_eq!(s(&c[0], "text"), Some("Hyvä palvelu, soita [phone]"));
    // names and e-mail addresses are nowhere in the warehouse's files
    for file in files_under(&f.path("wh")) {
        let b = std::fs::read(&file).unwrap();
        for secret in [&b"Meik"[..], b"Testaaja", b"example.fi"] {
            assert!(
                !b.windows(secret.len()).any(|w| w == secret),
                "{} holds {}",
                file.display(),
                String::from_utf8_lossy(secret)
            );
        }
    }
    // a rerun reads nothing
    let again = f.run(&p);
    assert_eq!(again.code, 0);
    assert_eq!(f.count("responses"), 3);
    assert_eq!(
        f.sql("SELECT rows_read FROM runs ORDER BY seq DESC LIMIT 1")[0]["rows_read"].as_i64(),
        Some(0)
    );
}

#[test]
fn a_mapping_may_not_name_an_identifier_column_and_a_missing_sheet_is_named() {
    let f = Fixture::new();
    forms_workbook(&f.path("in/vastaukset.xlsx"));
    let m = FORMS_MAPPING.replace("    open: Mitä muuta haluat sanoa?", "    open: Email");
    let p = write_pipeline(
        &f,
        "*.xlsx",
        "format:\n  kind: spreadsheet\n  sheet: Form1\n",
        &m,
    );
    let r = f.run(&p);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("vastaukset.xlsx sheet 'Form1': mapping.items.open: column 'Email' identifies the respondent"),
        "{}",
        r.stderr
    );
    assert_eq!(f.count("responses"), 0);

    let p = write_pipeline(
        &f,
        "*.xlsx",
        "format:\n  kind: spreadsheet\n  sheet: Vastaukset\n",
        FORMS_MAPPING,
    );
    let r = f.run(&p);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("vastaukset.xlsx")
            && r.stderr.contains("no sheet 'Vastaukset'")
            && r.stderr.contains("Ohje, Form1"),
        "{}",
        r.stderr
    );
    // by position: the second sheet
    let p = write_pipeline(
        &f,
        "*.xlsx",
        "format:\n  kind: spreadsheet\n  sheet: 2\n",
        FORMS_MAPPING,
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(f.count("responses"), 3);
}

/// A minimal OpenDocument spreadsheet, as LibreOffice stores one: a zip whose first entry is the
/// uncompressed mimetype, the cells in content.xml. Two header rows (question texts above codes,
/// as Webropol's wide exports have them) and a Swedish header text.
fn ods(path: &std::path::Path) {
    ods_with(path, "");
}

/// The ODS workbook of [`ods`], with `extra` (raw rows) after its data rows.
fn ods_with(path: &std::path::Path, extra: &str) {
    use std::io::Write;
    let cell = |v: &str| {
        format!(
            "<table:table-cell office:value-type=\"string\"><text:p>{v}</text:p></table:table-cell>"
        )
    };
    let num = |v: f64| {
        format!(
            "<table:table-cell office:value-type=\"float\" office:value=\"{v}\"><text:p>{v}</text:p></table:table-cell>"
        )
    };
    let date = |v: &str| {
        format!(
            "<table:table-cell office:value-type=\"date\" office:date-value=\"{v}\"><text:p>{v}</text:p></table:table-cell>"
        )
    };
    let row = |cells: Vec<String>| format!("<table:table-row>{}</table:table-row>", cells.concat());
    let rows = [
        row(vec![
            cell("Vastaajan tunniste"),
            cell("Svarstid"),
            cell("Kommun"),
            cell("Jag fick service när jag behövde den."),
        ]),
        row(vec![cell("id"), cell("tid"), cell("kunta"), cell("q1")]),
        row(vec![
            num(11.0),
            date("2024-05-02T08:30:00"),
            cell("Borgå"),
            num(5.0),
        ]),
        row(vec![
            num(12.0),
            date("2024-05-03T16:45:00"),
            num(638.0),
            cell("Helt av samma åsikt"),
        ]),
    ];
    let content = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" \
xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" office:version=\"1.2\">\
<office:body><office:spreadsheet><table:table table:name=\"Svar\">{}{extra}</table:table>\
</office:spreadsheet></office:body></office:document-content>",
        rows.concat()
    );
    let manifest = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\" manifest:version=\"1.2\">\
<manifest:file-entry manifest:full-path=\"/\" manifest:media-type=\"application/vnd.oasis.opendocument.spreadsheet\"/>\
<manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/>\
</manifest:manifest>";
    let file = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(file);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("mimetype", stored).unwrap();
    z.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    z.start_file("META-INF/manifest.xml", stored).unwrap();
    z.write_all(manifest.as_bytes()).unwrap();
    z.start_file("content.xml", stored).unwrap();
    z.write_all(content.as_bytes()).unwrap();
    z.finish().unwrap();
}

#[test]
fn ods_with_two_header_rows_swedish_labels_and_date_cells() {
    let f = Fixture::new();
    ods(&f.path("in/svar.ods"));
    let p = write_pipeline(
        &f,
        "*.ods",
        "format:\n  kind: spreadsheet\n  header_rows: 2\n",
        "mapping:\n  instrument: thl_national\n  version: 2\n  response_id: id\n  submitted_at: tid\n  municipality: kunta\n  language: {constant: sv}\n  items:\n    availability: q1\n",
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rows = f.sql("SELECT municipality, CAST(submitted_at AS VARCHAR) AS t FROM responses ORDER BY source_row");
    assert_eq!(rows.len(), 2, "{rows:?}");
    // Borgå is Porvoo (638), by its Swedish name
    assert_eq!(s(&rows[0], "municipality"), Some("638"));
    assert!(
        s(&rows[0], "t").unwrap().starts_with("2024-05-02T05:30:00"),
        "{rows:?}"
    );
    let a = f.sql("SELECT value FROM answers ORDER BY value");
    assert_eq!(
        a.iter().map(|r| r["value"].as_i64()).collect::<Vec<_>>(),
        vec![Some(5), Some(5)]
    );
    rerun_loads_nothing(&f, &p);
}

#[test]
fn an_ods_sheet_repeating_a_cell_over_billions_of_positions_is_refused_in_time() {
    let f = Fixture::new();
    // one row, repeated a million times, of one value repeated 16,384 times: a few hundred
    // bytes that calamine would lay out as 17 billion cells
    ods_with(
        &f.path("in/svar.ods"),
        "<table:table-row table:number-rows-repeated=\"1000000\"><table:table-cell table:number-columns-repeated=\"16384\" office:value-type=\"float\" office:value=\"1\"><text:p>1</text:p></table:table-cell></table:table-row>",
    );
    let p = write_pipeline(
        &f,
        "*.ods",
        "format:\n  kind: spreadsheet\n  header_rows: 2\n",
        "mapping:\n  instrument: thl_national\n  version: 2\n  response_id: id\n  submitted_at: tid\n  municipality: kunta\n  items:\n    availability: q1\n",
    );
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 8000000; exec \"$0\" run --warehouse \"$1\" \"$2\"")
        .arg(env!("CARGO_BIN_EXE_palaute"))
        .arg(f.warehouse())
        .arg(&p)
        .env_remove("PALAUTE_FAILPOINT")
        .env("PALAUTE_KEY_SECRET", crate::common::TEST_KEY_SECRET)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    // calamine's own limit (100 million cells) refuses it before laying anything out
    assert!(
        err.contains("svar.ods") && err.contains("Cell limit exceeded"),
        "{err}"
    );
}

const JSON_MAPPING: &str = r#"mapping:
  instrument: local_everyday
  version: 1
  response_id: id
  submitted_at: submitdate
  county: {constant: "07"}
  channel: {constant: kiosk}
  items:
    everyday_support: tuki
    recommend: suositus
    activities:
      column: toiminta
      separator: "|"
    good: hyvaa
"#;

#[test]
fn ndjson_drop_with_nested_objects_arrays_and_a_broken_line() {
    let f = Fixture::new();
    let lines = [
        r#"{"id": "k-1", "submitdate": "2024-06-01T10:00:00+03:00", "tuki": 5, "suositus": 10, "toiminta": ["Ryhmätoiminta", "Retket ja tapahtumat"], "hyvaa": "Kivaa! maija@example.fi"}"#,
        "",
        r#"{"id": "k-2", "submitdate": "2024-06-02T11:00:00+03:00", "tuki": "Jokseenkin samaa mieltä", "suositus": null, "toiminta": [], "device": {"kiosk": "K7"}}"#,
        r#"{"id": "k-3", "submitdate": "#,
        r#"{"id": "k-4", "submitdate": "2024-06-03T12:00:00+03:00", "tuki": 9}"#,
    ];
    let mut bytes = lines.join("\n").into_bytes();
    // line 6: Latin-1 bytes where UTF-8 belongs
    bytes.extend_from_slice(b"\n{\"id\": \"k-6\", \"hyvaa\": \"hyv\xe4\"}\n");
    f.input("kioski.ndjson", &bytes);
    let p = write_pipeline(
        &f,
        "*.ndjson",
        "format:\n  kind: json\n  layout: ndjson\n",
        JSON_MAPPING,
    );
    // three of five rows are bad on purpose
    let y = std::fs::read_to_string(&p)
        .unwrap()
        .replace("max_quarantined_pct: 50", "max_quarantined_pct: 75");
    std::fs::write(&p, y).unwrap();
    let c = f.check(&p);
    // the nested object's key is flattened and listed as ignored
    assert!(c.stdout.contains("device.kiosk"), "{}", c.stdout);
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(f.count("responses"), 2);
    let q = f.sql("SELECT source_row, reason_codes FROM quarantine ORDER BY source_row");
    let got: Vec<(i64, String)> = q
        .iter()
        .map(|r| {
            (
                r["source_row"].as_i64().unwrap(),
                s(r, "reason_codes").unwrap().to_string(),
            )
        })
        .collect();
    // line 4 is cut short; line 5 holds 9 on a 1–5 scale; line 6 is not UTF-8
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2].0, 6);
    assert!(got[2].1.contains("field_count"));
    assert_eq!(got[0].0, 4);
    assert!(got[0].1.contains("field_count"));
    assert_eq!(got[1].0, 5);
    assert!(got[1].1.contains("out_of_range"));
    let sel = f
        .sql("SELECT option_code FROM answers WHERE item_code = 'activities' ORDER BY option_code");
    let opts: Vec<&str> = sel.iter().map(|r| s(r, "option_code").unwrap()).collect();
    assert_eq!(opts, vec!["excursion", "group"]);
    let c = f.sql("SELECT text FROM comments");
    assert_eq!(s(&c[0], "text"), Some("Kivaa! [email]"));
    rerun_loads_nothing(&f, &p);
}

#[test]
fn limesurvey_remotecontrol_export_in_its_json_rpc_reply() {
    let f = Fixture::new();
    // what export_responses(…, 'json', …) decodes to: old versions wrap each response in an
    // object keyed by its id
    let doc = serde_json::json!({"responses": [
        {"1": {"id": "1", "submitdate": "2024-09-10 12:00:00", "tuki": "Täysin samaa mieltä", "suositus": "8", "toiminta": "Vertaistuki", "hyvaa": "Mukavaa", "token": "tok-SECRET-1", "ipaddr": "192.0.2.44"}},
        {"id": "2", "submitdate": "2024-09-11 13:30:00", "tuki": "{question_not_shown}", "suositus": "3", "toiminta": "", "hyvaa": null, "token": "tok-SECRET-2", "ipaddr": "192.0.2.45"}
    ]});
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc.to_string());
    let reply = serde_json::json!({"id": 1, "result": b64, "error": null});
    f.input("export_2024-09.json", reply.to_string().as_bytes());
    let m = format!("{JSON_MAPPING}  ignore: [token, ipaddr]\n");
    let p = write_pipeline(
        &f,
        "*.json",
        "format:\n  kind: json\n  layout: limesurvey_remotecontrol\n",
        &m,
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rows =
        f.sql("SELECT nps, CAST(submitted_at AS VARCHAR) AS t FROM responses ORDER BY source_row");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["nps"].as_i64(), Some(8));
    assert!(s(&rows[1], "t").unwrap().starts_with("2024-09-11T10:30:00"));
    let a = f.sql(
        "SELECT value, status FROM answers WHERE item_code = 'everyday_support' ORDER BY status",
    );
    assert_eq!(a[0]["value"].as_i64(), Some(5));
    assert_eq!(s(&a[1], "status"), Some("not_shown"));
    for file in files_under(&f.path("wh")) {
        let b = std::fs::read(&file).unwrap();
        assert!(
            !b.windows(10).any(|w| w == b"tok-SECRET"),
            "{}",
            file.display()
        );
    }
    rerun_loads_nothing(&f, &p);
    // an error reply names the object and loads nothing
    f.input(
        "export_2024-10.json",
        br#"{"id": 1, "result": {"status": "No Response found for Token"}, "error": null}"#,
    );
    let r = f.run(&p);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains("export_2024-10.json") && r.stderr.contains("No Response found"),
        "{}",
        r.stderr
    );
}

const CSV_MAPPING: &str = r#"mapping:
  instrument: thl_national
  version: 2
  response_id: ResponseId
  submitted_at: EndDate
  municipality: kunta
  items:
    availability: Q1
    recommend: Q2
"#;

#[test]
fn qualtrics_three_header_rows_and_the_legacy_layout() {
    let f = Fixture::new();
    let modern = "ResponseId,EndDate,kunta,Q1,Q2\n\
        Response ID,End Date,Kunta,Sain palvelua,Suosittelisitko\n\
        \"{\"\"ImportId\"\":\"\"_recordId\"\"}\",\"{\"\"ImportId\"\":\"\"endDate\"\",\"\"timeZone\"\":\"\"Europe/Helsinki\"\"}\",\"{\"\"ImportId\"\":\"\"QID9_TEXT\"\"}\",\"{\"\"ImportId\"\":\"\"QID1\"\"}\",\"{\"\"ImportId\"\":\"\"QID2\"\"}\"\n\
        R_1abc,2024-02-01 10:00:00,091,4,9\n";
    f.input("qualtrics.csv", modern.as_bytes());
    let p = write_pipeline(
        &f,
        "qualtrics.csv",
        "format:\n  kind: csv\n  layout: qualtrics\n",
        CSV_MAPPING,
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(f.count("responses"), 1);
    assert_eq!(f.count("quarantine"), 0);

    // legacy: a BOM, two header rows, a trailing comma on every row
    let legacy = "\u{feff}ResponseId,EndDate,kunta,Q1,Q2,\r\n\
        Response ID,End Date,Kunta,Sain palvelua,Suosittelisitko,\r\n\
        R_2def,2024-02-02 11:00:00,092,5,10,\r\n\
        R_3ghi,2024-02-03 12:00:00,092,2,3,\r\n";
    f.input("legacy.csv", legacy.as_bytes());
    let p = write_pipeline(
        &f,
        "legacy.csv",
        "format:\n  kind: csv\n  layout: qualtrics_legacy\n",
        CSV_MAPPING,
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(f.count("responses"), 3);
    assert_eq!(f.count("quarantine"), 0);
    let rows = f.sql(
        "SELECT source_row, nps FROM responses WHERE municipality = '092' ORDER BY source_row",
    );
    // data starts on line 3 of the file
    assert_eq!(rows[0]["source_row"].as_i64(), Some(3));
    assert_eq!(rows[1]["nps"].as_i64(), Some(3));
    rerun_loads_nothing(&f, &p);
}

#[test]
fn limesurvey_vv_tab_separated_with_not_shown_and_padded_numbers() {
    let f = Fixture::new();
    // row 1 question texts, row 2 codes; the header rows carry one TAB more than the data rows
    let vv = "Vastaustunnus\tLähetetty\tKunta\tSain palvelua\tSuosittelisitko\tSyntymävuosi\t\n\
        id\tsubmitdate\tkunta\tq1\tq2\tsv\t\n\
        68.0000000000\t2024-03-10 09:00:00\t091\t5.0000000000\t9.0000000000\t1968.0000000000\n\
        69.0000000000\t2024-03-11 09:00:00\t091\t{question_not_shown}\t10.0000000000\t\n\
        70.0000000000\t2024-03-12 09:00:00\t091\t\t{question_not_shown}\t\n";
    f.input("vvexport_123456.csv", vv.as_bytes());
    let p = write_pipeline(
        &f,
        "*.csv",
        "format:\n  kind: csv\n  layout: limesurvey_vv\n",
        "mapping:\n  instrument: thl_national\n  version: 2\n  response_id: id\n  submitted_at: submitdate\n  municipality: kunta\n  birth_year: sv\n  items:\n    availability: q1\n    recommend: q2\n",
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(f.count("quarantine"), 0);
    let rows = f.sql("SELECT nps, age_group FROM responses ORDER BY source_row");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["nps"].as_i64(), Some(9));
    // born 1968, answered 2024: 56
    assert_eq!(s(&rows[0], "age_group"), Some("50-64"));
    assert_eq!(rows[2]["nps"].as_i64(), None);
    let a = f.sql("SELECT r.source_row, value, status FROM answers a JOIN responses r USING (response_key) WHERE item_code = 'availability' ORDER BY r.source_row");
    let got: Vec<(Option<i64>, &str)> = a
        .iter()
        .map(|r| (r["value"].as_i64(), s(r, "status").unwrap()))
        .collect();
    // not shown and shown-but-empty stay apart
    assert_eq!(
        got,
        vec![
            (Some(5), "answered"),
            (None, "not_shown"),
            (None, "missing")
        ]
    );
    rerun_loads_nothing(&f, &p);
}

#[test]
fn google_forms_us_timestamps_and_checkbox_labels_with_commas() {
    let f = Fixture::new();
    let csv = "Timestamp,Kunta,Mihin toimintaan olet osallistunut?,Sain tukea arkeeni.\n\
        4/27/2024 11:02:10,Lahti,\"Retket, tapahtumat ja juhlat, Ryhmätoiminta\",Täysin samaa mieltä\n\
        5/2/2024 8:15:00,Lahti,\"Ryhmätoiminta, Retket, tapahtumat ja juhlat, Vertaistuki\",4\n\
        5/3/2024 9:00:00,Lahti,\"Ryhmätoiminta, Keilailu\",3\n";
    f.input("google.csv", csv.as_bytes());
    let mapping = r#"mapping:
  instrument: local_everyday
  version: 1
  response_id: Timestamp
  submitted_at: Timestamp
  municipality: Kunta
  items:
    everyday_support: Sain tukea arkeeni.
    activities:
      column: Mihin toimintaan olet osallistunut?
      separator: ", "
      values: {"Retket, tapahtumat ja juhlat": excursion}
"#;
    let p = write_pipeline(
        &f,
        "*.csv",
        "format:\n  kind: csv\n  layout: google_forms\n",
        mapping,
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rows =
        f.sql("SELECT CAST(submitted_at AS VARCHAR) AS t FROM responses ORDER BY source_row");
    assert_eq!(rows.len(), 2);
    assert!(
        s(&rows[0], "t").unwrap().starts_with("2024-04-27T08:02:10"),
        "{rows:?}"
    );
    let sel = f.sql("SELECT r.source_row, option_code FROM answers a JOIN responses r USING (response_key) WHERE item_code = 'activities' ORDER BY r.source_row, option_code");
    let got = int_str(&sel, "source_row", "option_code");
    assert_eq!(
        got,
        vec![
            (2, "excursion"),
            (2, "group"),
            (3, "excursion"),
            (3, "group"),
            (3, "peer")
        ]
    );
    // "Keilailu" is not an option: the row is quarantined, naming the column
    let q = f.sql("SELECT source_row, reason_codes, message FROM quarantine");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["source_row"].as_i64(), Some(4));
    assert!(s(&q[0], "reason_codes").unwrap().contains("invalid_option"));
    rerun_loads_nothing(&f, &p);
}

#[test]
fn a_stray_cell_far_away_costs_nothing_and_its_row_is_quarantined() {
    let f = Fixture::new();
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in ["id", "time", "kunta", "q1", "q2", "nps", "teksti"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for i in 1..=3u32 {
        ws.write_number(i, 0, i).unwrap();
        ws.write_string(i, 1, "2024-02-01").unwrap();
        ws.write_string(i, 2, "837").unwrap();
        ws.write_number(i, 3, 4).unwrap();
        ws.write_number(i, 4, 5).unwrap();
        ws.write_number(i, 5, 9).unwrap();
    }
    // the last cell a sheet can have (XFD1048576): read as a dense rectangle, 17 billion cells
    ws.write_string(1_048_575, 16_383, "x").unwrap();
    wb.save(f.path("in/a.xlsx")).unwrap();
    assert!(std::fs::metadata(f.path("in/a.xlsx")).unwrap().len() < 20_000);
    let p = write_pipeline(
        &f,
        "*.xlsx",
        "format:\n  kind: spreadsheet\n",
        crate::common::MAPPING,
    );
    // under a memory cap, so that a regression fails instead of exhausting the machine
    let capped = |cmd: &str| {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v 8000000; exec \"$0\" {cmd} --warehouse \"$1\" \"$2\""
            ))
            .arg(env!("CARGO_BIN_EXE_palaute"))
            .arg(f.warehouse())
            .arg(&p)
            .env_remove("PALAUTE_FAILPOINT")
            .env("PALAUTE_KEY_SECRET", crate::common::TEST_KEY_SECRET)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, out, err) = capped("check");
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = capped("run");
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(f.count("responses"), 3);
    // the row holding only the stray cell has a value where the header names no column
    let q = f.sql("SELECT source_row, reason_codes, message FROM quarantine");
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["source_row"].as_i64(), Some(1_048_576));
    assert!(
        s(&q[0], "message").is_some_and(|m| m.contains("16384 fields where the header has 7")),
        "{q:?}"
    );
}

#[test]
fn limesurvey_vv_multiple_choice_cells_written_as_decimals_count_only_the_chosen() {
    // a VV export writes numeric cells as decimal(30,10): chosen 1.0000000000, not chosen
    // 0.0000000000 or empty, depending on the question type and version
    let f = Fixture::new();
    let mut vv = String::from(
        "Vastaustunnus\tLähetetty\tRyhmä\tRetket\tTuki\n\
         id\tsubmitdate\tact[SQ001]\tact[SQ002]\ttuki\n",
    );
    let mut want = (0, 0);
    for i in 0..12u32 {
        let group = if i % 3 == 0 {
            "1.0000000000"
        } else {
            "0.0000000000"
        };
        let excursion = if i % 4 == 0 { "1.0000000000" } else { "" };
        want.0 += (i % 3 == 0) as i64;
        want.1 += (i % 4 == 0) as i64;
        vv.push_str(&format!(
            "{i}.0000000000\t2024-03-{:02} 09:00:00\t{group}\t{excursion}\t4.0000000000\n",
            i + 1
        ));
    }
    f.input("vvexport_123456.csv", vv.as_bytes());
    let mapping = |selected: &str| {
        format!(
            "mapping:\n  instrument: local_everyday\n  version: 1\n  response_id: id\n  submitted_at: submitdate\n  county: {{constant: \"07\"}}\n  items:\n    everyday_support: tuki\n    activities:\n      columns: {{group: \"act[SQ001]\", excursion: \"act[SQ002]\"}}\n{selected}"
        )
    };
    let counts = |f: &Fixture| {
        let rows = f.sql("SELECT option_code, count(*) AS n FROM answers WHERE item_code = 'activities' GROUP BY option_code ORDER BY option_code");
        rows.iter()
            .map(|r| {
                (
                    s(r, "option_code").unwrap().to_string(),
                    r["n"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    // the default: any non-empty value but zero, numerically
    let p = write_pipeline(
        &f,
        "*.csv",
        "format:\n  kind: csv\n  layout: limesurvey_vv\n",
        &mapping(""),
    );
    let r = f.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        counts(&f),
        vec![
            ("excursion".to_string(), want.1),
            ("group".to_string(), want.0)
        ]
    );
    assert!(!r.stdout.contains("warning"), "{}", r.stdout);
    // selected: ["1"] matches 1.0000000000 as the number it is
    let g = Fixture::new();
    g.input("vvexport_123456.csv", vv.as_bytes());
    let p = write_pipeline(
        &g,
        "*.csv",
        "format:\n  kind: csv\n  layout: limesurvey_vv\n",
        &mapping("      selected: [\"1\"]\n"),
    );
    let r = g.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        counts(&g),
        vec![
            ("excursion".to_string(), want.1),
            ("group".to_string(), want.0)
        ]
    );
    // a column every row counts as chosen, in more than k rows, is named in a warning
    let h = Fixture::new();
    h.input(
        "vvexport_123456.csv",
        vv.replace("\t0.0000000000\t", "\tEi valittu\t").as_bytes(),
    );
    let p = write_pipeline(
        &h,
        "*.csv",
        "format:\n  kind: csv\n  layout: limesurvey_vv\n",
        &mapping(""),
    );
    let c = h.check(&p);
    assert!(
        c.stdout.contains("warning: vvexport_123456.csv: every one of its rows counts column 'act[SQ001]' as chosen"),
        "{}",
        c.stdout
    );
    let r = h.run(&p);
    assert!(
        r.stdout.contains("counts column 'act[SQ001]' as chosen"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("'act[SQ002]'"), "{}", r.stdout);
}
